"""Process-level facts every level may need: where rnnkit caches files.

A leaf module (standard library only), so that kernels, data readers and the CLI can all
ask it without importing one another.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(name: str | None = None) -> Path:
    """``$XDG_CACHE_HOME/rnnkit[/name]``, default ``~/.cache/rnnkit[/name]`` (not created)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    base = Path(root) / "rnnkit"
    return base / name if name else base
