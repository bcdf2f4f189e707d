"""File content quoted in error messages, cut to a readable length.

A reader's error repeats the offending cell so that the user can find it, but a cell may
be a 20 MB blob (a whole file pasted into one field): the message stays one short line::

    shown("n/a")            # "'n/a'"
    shown("x" * 10**7)      # "'xxxx...xxxx'... (10,000,000 characters)"
"""
from __future__ import annotations

import numbers

__all__ = ["LIMIT", "shown", "shown_list", "shown_path"]

#: characters of a value kept in a message
LIMIT = 40


def shown(value: object, limit: int = LIMIT) -> str:
    """``repr(value)``; a longer string keeps its first ``limit`` characters and says how many
    it had, any other long ``repr`` is cut at ``limit`` characters; a number is shown as
    ``str`` (``inf``, not ``np.float64(inf)``)."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        value_str = str(value)
        return value_str if len(value_str) <= limit else f"{value_str[:limit]}..."
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    r = repr(value)
    return r if len(r) <= limit + 2 else f"{r[:limit]}... ({len(r):,} characters)"


def shown_list(values, limit: int = LIMIT, most: int = 12) -> str:
    """``'a', 'b', ...`` of at most ``most`` values, each :func:`shown`."""
    values = list(values)
    out = ", ".join(shown(v, limit) for v in values[:most])
    return out + (f", ... ({len(values)} in all)" if len(values) > most else "")


def shown_path(path: object, limit: int = 300) -> str:
    """A path as is, or quoted (:func:`shown`) when it has a newline or other unprintable
    character (file names from a folder listing may) or is longer than ``limit``."""
    s = str(path)
    return s if s.isprintable() and len(s) <= limit else shown(s, limit)
