"""``InputError``: what a layer raises for a forward argument it cannot take."""
from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError, RuntimeError):
    """A bad argument to a layer's ``forward`` or ``step``: a ValueError and a RuntimeError.

    torch.nn raises ValueError for some of these mistakes (the input's rank or dtype)
    and RuntimeError for others (sizes, hidden-state shapes, an empty sequence), so
    rnnkit's one class is both: code written to catch torch's error, or rnnkit's
    earlier ValueError, catches it. The message names the argument, what it got and
    what was expected, then gives torch's own sentence in parentheses.

    Example::

        >>> try:
        ...     rnnkit.GRU(3, 5)(torch.randn(4, 2, 3), torch.zeros(1, 3, 5))
        ... except RuntimeError as e:
        ...     print(e)
        hx: expected shape (1, 2, 5), got (1, 3, 5); the input has 2 sequences (Expected ...)
    """
