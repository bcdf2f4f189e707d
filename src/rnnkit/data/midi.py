"""MIDI files <-> piano rolls on a beat grid, through pretty_midi (``pip install rnnkit[music]``).

Reading samples the notes of every non-drum instrument on a grid of ``steps_per_quarter``
steps per quarter note, laid in MIDI ticks, so tempo changes move the grid with the music::

    grid tick  g_j = j * resolution / steps_per_quarter         j = 0 .. ceil(end / step) - 1
    roll[j, k] = 1  if a note of pitch 21 + k sounds at g_j  (start <= g_j < end, in ticks)

so a note shorter than a step that falls between two grid points is not heard, as in the
quarter-note JSB Chorales. Writing merges consecutive steps of a key into one held note
(the roll cannot tell a held note from a repeated one), at a fixed tempo; reading a written
roll gives it back exactly (tested).

Example::

    roll, dropped = read_midi("bach.mid", steps_per_quarter=1)   # (T, 88), notes off the piano
    write_midi(roll, "copy.mid", steps_per_quarter=1, tempo=100)
    rolls = read_midi_folder("my_music/")                         # {path: roll}
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnnkit.data.music import LOWEST_NOTE, NUM_KEYS, MusicDataError

__all__ = ["read_midi", "write_midi", "list_midi", "read_midi_folder", "MIDI_SUFFIXES"]

MIDI_SUFFIXES = (".mid", ".midi")


def _pretty_midi():
    try:
        import pretty_midi
    except ImportError:
        raise MusicDataError("reading and writing MIDI needs pretty_midi: pip install "
                             "'rnnkit[music]' (or pip install pretty_midi)") from None
    return pretty_midi


def read_midi(path: str | Path, *, steps_per_quarter: int = 1) -> tuple[np.ndarray, int]:
    """``(roll (T, 88) uint8, notes dropped for lying off the piano)`` of a MIDI file.

    Raises:
        MusicDataError: an unreadable file, or one without notes, naming it.
    """
    if steps_per_quarter < 1:
        raise ValueError(f"steps_per_quarter={steps_per_quarter}: expected a positive integer")
    pm_mod, p = _pretty_midi(), Path(path)
    if not p.is_file():
        raise MusicDataError(f"{p}: no such file; expected a MIDI file (.mid)")
    try:
        pm = pm_mod.PrettyMIDI(str(p))
    except Exception as e:  # mido/pretty_midi raise many types on a bad file
        msg = " ".join(str(e).split())[:200] or type(e).__name__
        raise MusicDataError(f"{p}: not a readable MIDI file ({msg}); expected a standard "
                             "MIDI file") from None
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    if not notes:
        raise MusicDataError(f"{p}: no notes; expected a MIDI file with at least one pitched "
                             "(non-drum) note")
    step = pm.resolution / steps_per_quarter  # ticks per grid step
    starts = np.array([pm.time_to_tick(n.start) for n in notes], dtype=np.float64)
    ends = np.array([pm.time_to_tick(n.end) for n in notes], dtype=np.float64)
    T = max(1, math.ceil(ends.max() / step))
    roll = np.zeros((T, NUM_KEYS), dtype=np.uint8)
    dropped = 0
    for n, s, e in zip(notes, starts, ends):
        k = n.pitch - LOWEST_NOTE
        if not 0 <= k < NUM_KEYS:
            dropped += 1
            continue
        first, last = math.ceil(s / step - 1e-6), math.ceil(e / step - 1e-6)  # g_j in [s, e)
        roll[first:last, k] = 1
    return roll, dropped


def write_midi(roll: np.ndarray, path: str | Path, *, steps_per_quarter: int = 1,
               tempo: float = 100.0, program: int = 0, velocity: int = 90) -> Path:
    """Write ``roll`` (T, 88) as a one-instrument MIDI file at ``tempo`` quarter notes/min."""
    pm_mod = _pretty_midi()
    roll = np.asarray(roll) > 0
    pm = pm_mod.PrettyMIDI(resolution=480, initial_tempo=float(tempo))
    inst = pm_mod.Instrument(program=program)
    seconds = 60.0 / tempo / steps_per_quarter  # per step
    T = roll.shape[0]
    for k in range(roll.shape[1]):
        on = np.flatnonzero(np.diff(np.concatenate([[0], roll[:, k].astype(np.int8), [0]])))
        for a, b in zip(on[::2], on[1::2]):  # runs [a, b) of sounding steps
            inst.notes.append(pm_mod.Note(velocity=velocity, pitch=LOWEST_NOTE + k,
                                          start=a * seconds, end=min(b, T) * seconds))
    pm.instruments.append(inst)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(out))
    return out


def list_midi(folder: str | Path) -> list[Path]:
    """Every ``.mid`` / ``.midi`` file under ``folder`` (recursively), sorted.

    Raises:
        MusicDataError: not a folder, or one with no MIDI files.
    """
    f = Path(folder)
    if not f.is_dir():
        raise MusicDataError(f"{f}: not a folder; expected a folder of MIDI files (.mid)")
    files = sorted(p for p in f.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    if not files:
        raise MusicDataError(f"{f}: no .mid or .midi files in this folder")
    return files


def read_midi_folder(folder: str | Path, *, steps_per_quarter: int = 1
                     ) -> tuple[dict[str, np.ndarray], int]:
    """``({relative path: roll}, notes dropped)`` of every MIDI file under ``folder``."""
    rolls, dropped = {}, 0
    for p in list_midi(folder):
        roll, d = read_midi(p, steps_per_quarter=steps_per_quarter)
        rolls[str(p.relative_to(folder))] = roll
        dropped += d
    return rolls, dropped
