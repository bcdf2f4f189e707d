"""Process-level facts and settings every level may need.

- :func:`cache_dir`: where rnnkit caches files (downloads, compiled steps);
- :func:`tune_malloc` / :func:`trim_malloc` (:mod:`rnnkit.runtime.malloc`): the process's
  allocator, which the ``rnnkit`` command and :class:`rnnkit.Trainer` tune;
- ``__version__``.

A leaf package (standard library only), so that kernels, data readers, the Trainer and the
commands can all ask it without importing one another.
"""
from __future__ import annotations

import os
from pathlib import Path

from rnnkit.runtime.malloc import malloc_tuned, trim_malloc, tune_malloc

__all__ = ["__version__", "cache_dir", "tune_malloc", "trim_malloc", "malloc_tuned", "busy"]

__version__ = "0.1.0"


def cache_dir(name: str | None = None) -> Path:
    """``$XDG_CACHE_HOME/rnnkit[/name]``, default ``~/.cache/rnnkit[/name]`` (not created)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    base = Path(root) / "rnnkit"
    return base / name if name else base


def busy() -> bool:
    """Whether other work already keeps every core busy (1-minute load average >= cores).

    Then one torch thread is much faster than several competing for the cores: the demo,
    ``rnnkit generate`` and ``rnnkit predict`` drop to one thread unless told otherwise.
    """
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except (AttributeError, OSError):  # no load average on this platform
        return False
