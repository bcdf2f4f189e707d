"""Finite differences, the check of every hand-written backward in :mod:`rnnkit.reference`.

>>> import numpy as np
>>> w = np.array([1.0, 2.0])
>>> round(central_difference(lambda: float(np.sum(w ** 3)), w, (1,)), 6)  # d/dw_1 = 3 w_1^2
12.0
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["central_difference", "gradient_mismatches"]


def central_difference(f: Callable[[], float], array: np.ndarray, index: tuple,
                       eps: float = 1e-6) -> float:
    """``(f(a + eps e_i) - f(a - eps e_i)) / (2 eps)``, ``e_i`` the unit at ``index`` of
    ``array``, which ``f`` reads: perturbed in place, then restored. Its error is O(eps^2)
    from the truncation plus O(ulp(f) / eps) from rounding (about 1e-10 at eps = 1e-6 for a
    float64 loss of order 1)."""
    saved = array[index]
    array[index] = saved + eps
    up = f()
    array[index] = saved - eps
    down = f()
    array[index] = saved
    return (up - down) / (2 * eps)


def gradient_mismatches(f: Callable[[], float], arrays: dict[str, np.ndarray],
                        grads: dict[str, np.ndarray], eps: float = 1e-6, atol: float = 1e-7,
                        rtol: float = 1e-6, sample: int | None = None,
                        rng: np.random.Generator | None = None) -> tuple[list, float]:
    """Every entry of every array (or ``sample`` random entries of each) against its central
    difference: ``(mismatches, checked)``, the ``(name, index, numeric, analytic)`` beyond
    ``atol + rtol * |analytic|`` and the sum of ``|analytic|`` over the entries checked (a
    check that saw only zeros proves nothing)."""
    mismatches, checked = [], 0.0
    rng = np.random.default_rng(0) if rng is None else rng
    for name, array in arrays.items():
        indices = list(np.ndindex(array.shape))
        if sample is not None and len(indices) > sample:
            indices = [indices[i] for i in rng.choice(len(indices), sample, replace=False)]
        for index in indices:
            numeric, analytic = central_difference(f, array, index, eps), grads[name][index]
            if abs(numeric - analytic) > atol + rtol * abs(analytic):
                mismatches.append((name, index, numeric, analytic))
            checked += abs(analytic)
    return mismatches, checked
