"""Keep freed memory in the process (glibc), so the fused scans' buffers are not refaulted.

Each training step of a fused scan allocates its saved activations and gradient
buffers afresh (several (T, B, G) tensors), and so does torch.nn.LSTM (its oneDNN
workspace). glibc returns large freed blocks to the kernel (``munmap`` for blocks
above its mmap threshold, at most 32 MB; trimming the heap top for the rest), so the
next step's buffers come back as new pages, each zero-filled by a page fault on first
touch, which costs about ten times as much as refilling memory the process kept. This is
why PyTorch's CPU performance guide recommends jemalloc or tcmalloc; :func:`tune_malloc`
gets the same from glibc with two ``mallopt`` settings:

- ``M_MMAP_MAX = 0``: every block comes from the heap, whatever its size;
- ``M_TRIM_THRESHOLD = -1``: freed heap memory is not given back.

The measurements (page-fault cost, and the LayerNorm-LSTM's and torch.nn.LSTM's times with
and without the tuning) are in docs/kernels.md, "Small choices", with their result files
(``benchmarks/results/bench_split_s5.json``, ``bench_targets_matrix_s4*.json`` -> ``_s5*``)
and commands (``python benchmarks/bench_fill.py [--tune-malloc]``,
``python benchmarks/bench_split.py --shape B,T,H --tune-malloc``).

It changes the whole process's allocator, so a library import never calls it: the
``rnnkit`` command and :class:`rnnkit.Trainer` do (they run the process), and
``Trainer.fit`` gives the freed memory back at its end (:func:`trim_malloc`); call
them yourself in your own training script. The cost: while tuned, the process keeps
its peak memory (as PyTorch's CUDA allocator does on a GPU). ``RNNKIT_MALLOC_TUNE=0``
turns it off. A no-op outside Linux/glibc.
"""
from __future__ import annotations

import ctypes
import functools
import os
import platform

__all__ = ["tune_malloc", "trim_malloc", "malloc_tuned"]

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_done = False  # whether the tuning is in effect


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (looked up on first use, never at import), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def malloc_tuned() -> bool:
    """Whether :func:`tune_malloc`'s settings are in effect in this process."""
    return _done


def tune_malloc() -> bool:
    """Apply the settings above (again after :func:`trim_malloc`); whether they are in effect."""
    global _done
    if os.environ.get("RNNKIT_MALLOC_TUNE", "1") == "0":
        return False
    if not _done and (libc := _glibc()) is not None:
        try:
            _done = bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, -1))
        except AttributeError:  # a libc without mallopt
            pass
    return _done


def trim_malloc(threshold: int = 128 * 2**10) -> bool:
    """Give the heap's free memory back to the system now, and trim again from here on.

    Undoes :func:`tune_malloc`'s retention: large blocks use ``mmap`` again (at most
    65536 of them, glibc's default) and the heap top is trimmed above ``threshold`` bytes
    (glibc's default is 128 kB, adjusted by glibc as it goes; set here, it stays fixed).
    Returns whether memory was released.
    """
    global _done
    libc = _glibc()
    if libc is None or not _done:
        return False
    try:
        libc.mallopt(_M_MMAP_MAX, 65536)
        libc.mallopt(_M_TRIM_THRESHOLD, int(threshold))
        _done = False
        return bool(libc.malloc_trim(0))
    except AttributeError:
        return False
