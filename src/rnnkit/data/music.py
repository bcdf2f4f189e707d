"""Piano rolls: the JSB Chorales JSON, folders of MIDI files, transposition and batching.

A piano roll is a binary matrix ``roll[t, k]`` (``T`` steps x ``K = 88`` keys): 1 when the
key ``k`` (MIDI note ``21 + k``, A0 to C8) sounds at step ``t``. Notes outside the piano's
range (MIDI < 21 or > 108) cannot be written in it: they are dropped, and the readers count
them (``dropped``) so that a caller can say how many. A number outside MIDI's 0-127 is not a
note at all: an error naming the file, the piece and the step.

JSB Chorales (Boulanger-Lewandowski et al. 2012's quarter-note version, split 229/76/77)
comes as JSON ``{"train": [chorale, ...], "valid": [...], "test": [...]}`` (no other keys;
``valid`` and ``test`` may be left out), a chorale a list of steps, a step a list of the MIDI
notes sounding then (an empty list is a rest)::

    splits, dropped = read_jsb("../shared/datasets/jsb_chorales/jsb-chorales-quarter.json")
    splits["train"][0].shape              # (T, 88) uint8; dropped: notes off the piano
    x, lengths = collate([r1, r2])        # (B, T_max, 88) float32, zero-padded; (B,)

MIDI files are read and written by :mod:`rnnkit.data.midi` (pretty_midi).
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["NUM_KEYS", "LOWEST_NOTE", "SPLITS", "MusicDataError", "steps_to_roll", "roll_to_steps",
           "read_jsb", "transpose", "transpositions", "random_transpose", "collate"]

#: keys of a piano roll (the piano's 88)
NUM_KEYS = 88
#: the MIDI number of its lowest key (A0)
LOWEST_NOTE = 21
SPLITS = ("train", "valid", "test")
#: the range of MIDI note numbers
MIDI_NOTES = range(128)


class MusicDataError(ValueError):
    """Unreadable music data (one line naming the file and what was expected)."""


def steps_to_roll(steps: Sequence[Sequence[int]], *, where: str = "") -> tuple[np.ndarray, int]:
    """``(roll (T, 88) uint8, notes dropped)`` from per-step lists of MIDI note numbers.

    Raises:
        MusicDataError: a step that is not a list of whole numbers, or a number outside MIDI's
            0-127, naming ``where``.
    """
    roll = np.zeros((len(steps), NUM_KEYS), dtype=np.uint8)
    dropped = 0
    for t, step in enumerate(steps):
        if not isinstance(step, (list, tuple)):
            raise MusicDataError(f"{where}step {t}: expected a list of MIDI note numbers, got "
                                 f"{type(step).__name__}")
        for n in step:
            if isinstance(n, bool) or not isinstance(n, (int, float)) or n != int(n):
                raise MusicDataError(f"{where}step {t}: {n!r} is not a MIDI note number "
                                     "(expected whole numbers, 21-108 on the piano)")
            if int(n) not in MIDI_NOTES:
                raise MusicDataError(f"{where}step {t}: note {int(n)} is not a MIDI note number "
                                     "(expected 0-127; 21-108 on the piano)")
            k = int(n) - LOWEST_NOTE
            if 0 <= k < NUM_KEYS:
                roll[t, k] = 1
            else:
                dropped += 1
    return roll, dropped


def roll_to_steps(roll: np.ndarray) -> list[list[int]]:
    """The inverse of :func:`steps_to_roll`: per step, the sounding MIDI notes (ascending)."""
    return [[LOWEST_NOTE + int(k) for k in np.flatnonzero(row)] for row in np.asarray(roll)]


def read_jsb(path: str | Path) -> tuple[dict[str, list[np.ndarray]], int]:
    """``({split: [roll (T, 88) uint8, ...]}, notes dropped)`` of a JSB-Chorales-style JSON
    file (``.json`` or ``.json.gz``); ``dropped`` counts the notes off the piano (MIDI 0-20 and
    109-127) over all splits.

    Raises:
        MusicDataError: a missing or malformed file, a key other than train/valid/test, or a
            number that is not a MIDI note (0-127), naming the file, the piece and the step.
    """
    p = Path(path)
    if not p.is_file() and Path(str(p) + ".gz").is_file():
        p = Path(str(p) + ".gz")
    try:
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        doc = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise MusicDataError(f"{p}: no such file; expected the JSB Chorales JSON "
                             "(jsb_chorales/jsb-chorales-quarter.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MusicDataError(f"{p}: not readable JSON ({' '.join(str(e).split())}); expected "
                             '{"train": [...], "valid": [...], "test": [...]}') from None
    if not isinstance(doc, dict) or not any(s in doc for s in SPLITS):
        raise MusicDataError(f"{p}: expected a JSON object with keys train, valid, test (each a "
                             "list of pieces, a piece a list of steps of MIDI notes)")
    for key in doc:
        if key not in SPLITS:
            raise MusicDataError(f"{p}: unknown key {key!r}; expected keys train, valid, test")
    out, dropped = {}, 0
    for split in SPLITS:
        if split not in doc:
            continue
        pieces = doc[split]
        if not isinstance(pieces, list):
            raise MusicDataError(f"{p}: {split!r} is {type(pieces).__name__}; expected a list of "
                                 "pieces")
        rolls = []
        for i, steps in enumerate(pieces):
            if not isinstance(steps, list) or not steps:
                raise MusicDataError(f"{p}: {split}[{i}]: expected a non-empty list of steps")
            roll, d = steps_to_roll(steps, where=f"{p}: {split}[{i}] ")
            rolls.append(roll)
            dropped += d
        out[split] = rolls
    if "train" not in out:
        raise MusicDataError(f"{p}: no 'train' split; expected keys train, valid, test")
    return out, dropped


def transpositions(roll: np.ndarray, max_shift: int) -> list[int]:
    """The shifts in ``[-max_shift, max_shift]`` (semitones) that keep every note on the piano."""
    keys = np.flatnonzero(np.asarray(roll).any(axis=0))
    if keys.size == 0:
        return [0]
    lo, hi = -int(keys.min()), NUM_KEYS - 1 - int(keys.max())
    return [s for s in range(-max_shift, max_shift + 1) if lo <= s <= hi]


def transpose(roll: np.ndarray, shift: int) -> np.ndarray:
    """``roll`` moved ``shift`` semitones up (down if negative); notes pushed off the piano
    are dropped (:func:`transpositions` lists the shifts that drop none)."""
    out = np.zeros_like(roll)
    if shift >= 0:
        out[:, shift:] = roll[:, :NUM_KEYS - shift]
    else:
        out[:, :shift] = roll[:, -shift:]
    return out


def random_transpose(roll: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """``roll`` transposed by a shift drawn uniformly from :func:`transpositions`."""
    shifts = transpositions(roll, max_shift)
    return transpose(roll, int(shifts[rng.integers(len(shifts))]))


def collate(rolls: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """``(x (B, T_max, 88) float32 zero-padded, lengths (B,) int64)``."""
    lengths = torch.tensor([len(r) for r in rolls], dtype=torch.long)
    x = torch.zeros(len(rolls), int(lengths.max()), NUM_KEYS)
    for b, r in enumerate(rolls):
        x[b, :len(r)] = torch.from_numpy(np.asarray(r, dtype=np.float32))
    return x, lengths
