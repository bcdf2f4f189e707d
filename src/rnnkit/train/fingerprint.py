"""What a run trained on, as a hash: the check that a resumed run reads the same data.

A task that has ``data_splits() -> {"train": ..., "valid": ...}`` (the data as it built it:
token ids, windows, feature arrays) gets one SHA-256 per split, written into every
checkpoint's ``trainer_state.json``.  ``--resume`` compares them with the task rebuilt from
the data now: a corpus edited in place (same file name, same vocabulary) is caught where the
config and the assets say nothing changed.

The hash covers values, dtypes, shapes and nesting, not object identity: a list and a tuple
of the same numbers hash alike, a float32 and a float64 array do not.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

__all__ = ["fingerprint", "data_fingerprints"]


def _update(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        # bfloat16 and friends have no NumPy dtype: hash the bytes through a same-size int view
        t = t.view(torch.int16) if t.dtype in (torch.bfloat16, torch.float16) else t
        h.update(t.numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        if a.dtype == object:
            h.update(f"O{a.shape}".encode())
            for v in a.ravel():
                _update(h, v)
            return
        h.update(f"A{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif isinstance(obj, (list, tuple)):
        if obj and all(type(v) is int for v in obj):  # token ids: one array, not n updates
            h.update(f"I{len(obj)}".encode())
            h.update(np.asarray(obj, dtype=np.int64).tobytes())
            return
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _update(h, v)
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=str):
            _update(h, str(k))
            _update(h, obj[k])
    elif isinstance(obj, str):
        b = obj.encode("utf-8")
        h.update(f"S{len(b)}:".encode())
        h.update(b)
    elif obj is None or isinstance(obj, (bool, int, float, np.generic)):
        h.update(f"V{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(
            f"fingerprint: cannot hash a {type(obj).__name__}; give tensors, arrays, lists, "
            "tuples, dicts, strings or numbers"
        )


def fingerprint(obj: Any) -> str:
    """SHA-256 (hex) of ``obj``: tensors, NumPy arrays, lists, tuples, dicts (by sorted key),
    strings, numbers and None, nested.

    >>> fingerprint([1, 2, 3]) == fingerprint((1, 2, 3)) != fingerprint([1, 2, 4])
    True
    """
    h = hashlib.sha256()
    _update(h, obj)
    return h.hexdigest()


def data_fingerprints(task: Any) -> dict[str, str] | None:
    """``{split: sha256}`` of ``task.data_splits()``, or None for a task that has no
    ``data_splits`` (its resumes are not checked against the data)."""
    splits = getattr(task, "data_splits", None)
    if splits is None:
        return None
    return {str(k): fingerprint(v) for k, v in splits().items()}
