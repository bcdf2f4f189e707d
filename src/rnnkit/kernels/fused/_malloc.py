"""Keep freed memory in the process (glibc), so the fused scans' buffers are not refaulted.

Each training step of a fused scan allocates its saved activations and gradient
buffers afresh (several (T, B, G) tensors). glibc returns large freed blocks to
the kernel (``munmap``, or trimming the heap top), so the next step's buffers come
back as new pages, each zero-filled by a page fault on first touch (about 0.36 s per
GB on the 2-core AMD EPYC we measure on). :func:`tune_malloc` raises glibc's
``M_MMAP_THRESHOLD`` to its maximum (32 MB) and ``M_TRIM_THRESHOLD`` to 1 GB, so that
blocks up to 32 MB are served from, and returned to, the heap that the process
keeps. Measured with ``benchmarks/bench_split.py`` (LayerNorm-LSTM, B=32, T=100,
H=256, one thread): forward+backward 84-89 ms without, 72-76 ms with (backward 55-59 ->
44-48 ms), 1.49-1.57x and 1.28-1.31x torch.nn.LSTM's time in four runs of five.

It changes the whole process's allocator, so a library import never calls it: the
``rnnkit`` command and :class:`rnnkit.Trainer` do (they run the process); call it
yourself in your own training script. ``RNNKIT_MALLOC_TUNE=0`` turns it off. A no-op
outside Linux/glibc. The cost: the process keeps up to 1 GB of freed heap memory.
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_done: bool | None = None


def tune_malloc() -> bool:
    """Apply the settings above once; returns whether they are in effect."""
    global _done
    if os.environ.get("RNNKIT_MALLOC_TUNE", "1") == "0":
        return False
    if _done is None:
        _done = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL("libc.so.6")
                _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
                             and libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
            except (OSError, AttributeError):
                _done = False
    return _done
