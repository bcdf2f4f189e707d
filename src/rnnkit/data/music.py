"""Piano rolls: the JSB Chorales JSON, folders of MIDI files, transposition and batching.

A piano roll is a binary matrix ``roll[t, k]`` (``T`` steps x ``K = 88`` keys): 1 when the
key ``k`` (MIDI note ``21 + k``, A0 to C8) sounds at step ``t``. Notes outside the piano's
range (MIDI < 21 or > 108) cannot be written in it: they are dropped, and the readers count
them (``dropped``) so that a caller can say how many.

JSB Chorales (Boulanger-Lewandowski et al. 2012's quarter-note version, split 229/76/77)
comes as JSON ``{"train": [chorale, ...], "valid": [...], "test": [...]}``, a chorale a list
of steps, a step a list of the MIDI notes sounding then (an empty list is a rest)::

    splits = load_jsb("../shared/datasets/jsb_chorales/jsb-chorales-quarter.json")
    splits["train"][0].shape              # (T, 88) uint8
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
           "load_jsb", "transpose", "transpositions", "random_transpose", "collate"]

#: keys of a piano roll (the piano's 88)
NUM_KEYS = 88
#: the MIDI number of its lowest key (A0)
LOWEST_NOTE = 21
SPLITS = ("train", "valid", "test")


class MusicDataError(ValueError):
    """Unreadable music data (one line naming the file and what was expected)."""


def steps_to_roll(steps: Sequence[Sequence[int]], *, where: str = "") -> tuple[np.ndarray, int]:
    """``(roll (T, 88) uint8, notes dropped)`` from per-step lists of MIDI note numbers.

    Raises:
        MusicDataError: a step that is not a list of whole numbers, naming ``where``.
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
            k = int(n) - LOWEST_NOTE
            if 0 <= k < NUM_KEYS:
                roll[t, k] = 1
            else:
                dropped += 1
    return roll, dropped


def roll_to_steps(roll: np.ndarray) -> list[list[int]]:
    """The inverse of :func:`steps_to_roll`: per step, the sounding MIDI notes (ascending)."""
    return [[LOWEST_NOTE + int(k) for k in np.flatnonzero(row)] for row in np.asarray(roll)]


def load_jsb(path: str | Path) -> dict[str, list[np.ndarray]]:
    """The splits of a JSB-Chorales-style JSON file (``.json`` or ``.json.gz``) as piano rolls.

    Raises:
        MusicDataError: a missing or malformed file, naming it, the piece and the step.
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
    out = {}
    for split in SPLITS:
        pieces = doc.get(split)
        if pieces is None:
            continue
        if not isinstance(pieces, list):
            raise MusicDataError(f"{p}: {split!r} is {type(pieces).__name__}; expected a list of "
                                 "pieces")
        rolls = []
        for i, steps in enumerate(pieces):
            if not isinstance(steps, list) or not steps:
                raise MusicDataError(f"{p}: {split}[{i}]: expected a non-empty list of steps")
            rolls.append(steps_to_roll(steps, where=f"{p}: {split}[{i}] ")[0])
        out[split] = rolls
    if "train" not in out:
        raise MusicDataError(f"{p}: no 'train' split; expected keys train, valid, test")
    return out


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
