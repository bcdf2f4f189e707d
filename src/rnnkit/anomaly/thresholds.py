"""Turning anomaly scores (or errors) into alarms: percentile, Gaussian tail, dynamic.

- **percentile**: ``tau = P_q(reference scores)`` (linear interpolation, as ``np.percentile``).
- **Gaussian tail**: ``tau = mu + Phi^-1(1 - alpha) sigma`` of reference values (population
  std): under a Gaussian a new value exceeds it with probability ``alpha``.
- **dynamic** (Hundman et al. 2018, "Detecting spacecraft anomalies using LSTMs and
  nonparametric dynamic thresholding"): errors are smoothed by an exponentially weighted
  moving average ``e_s``; for each block of rows a threshold ``eps = mu(e_s) + z sigma(e_s)``
  over the block's history window is picked among ``z in z_range`` to maximise::

      f(eps) = (dmu / mu + dsigma / sigma) / (|e_a| + |E_seq|^2)

  where ``dmu, dsigma`` are the drops in mean and std of ``e_s`` when the values ``> eps``
  (``e_a``, forming the contiguous sequences ``E_seq``) are removed.  Then *pruning*: the
  maxima of the anomalous sequences, sorted descending and followed by the largest normal
  value, give percent decreases ``d_i = (m_i - m_{i+1}) / m_i``; the sequences after the last
  ``d_i > p`` (``p`` = ``min_decrease``) are re-labelled normal.

In every case a row is an alarm when its value is ``>= tau`` (dynamic: ``> eps``, then pruning).

Example::

    tau = percentile_threshold(val_scores, 99.0)
    tau = gaussian_tail_threshold(val_errors, alpha=0.001)
    res = dynamic_threshold(errors, window=1000, step=100)   # res.flags (N,) bool
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import norm

Z_RANGE = tuple(np.arange(2.0, 10.5, 0.5))  # Hundman et al.'s z in 2..10, step 0.5

__all__ = ["Z_RANGE", "percentile_threshold", "gaussian_tail_threshold", "ewma",
           "DynamicThreshold", "dynamic_threshold"]


def _values(x, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(v) == 0:
        raise ValueError(f"{name}: expected at least one value")
    if not np.isfinite(v).all():
        first = int(np.flatnonzero(~np.isfinite(v))[0])
        raise ValueError(f"{name}: contains NaN or infinite values (index {first})")
    return v


def percentile_threshold(scores, q: float) -> float:
    """The ``q``-th percentile (0..100) of ``scores``."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q={q}: expected a percentile in [0, 100]")
    return float(np.percentile(_values(scores, "scores"), q))


def gaussian_tail_threshold(values, alpha: float) -> float:
    """``mean + Phi^-1(1 - alpha) * std`` of ``values`` (one-sided tail probability ``alpha``)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha}: expected a tail probability in (0, 1)")
    v = _values(values, "values")
    return float(v.mean() + norm.isf(alpha) * v.std())


def ewma(errors, span: float | None) -> np.ndarray:
    """Exponentially weighted moving average (pandas ``ewm(span=...)``, adjusted); None: no
    smoothing."""
    e = _values(errors, "errors")
    if span is None:
        return e
    if span < 1:
        raise ValueError(f"span={span}: expected >= 1")
    return pd.Series(e).ewm(span=span).mean().to_numpy()


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` of each run of True in ``mask``."""
    starts = np.flatnonzero(mask & ~np.r_[False, mask[:-1]])
    ends = np.flatnonzero(mask & ~np.r_[mask[1:], False])
    return list(zip(starts.tolist(), ends.tolist()))


def _best_epsilon(e: np.ndarray, z_range: np.ndarray) -> float:
    """Hundman et al.'s threshold for one history window (``inf`` when none is useful)."""
    mu, sd = e.mean(), e.std()
    if sd == 0.0:
        return np.inf
    best, best_eps = -np.inf, np.inf
    for z in z_range:
        eps = mu + z * sd
        below = e[e <= eps]
        above = e > eps
        if not above.any() or len(below) == 0:
            continue
        d_mu, d_sd = mu - below.mean(), sd - below.std()
        f = (d_mu / mu if mu else d_mu) + d_sd / sd
        f /= above.sum() + len(_runs(above)) ** 2
        if f > best:
            best, best_eps = f, eps
    return best_eps


class DynamicThreshold(NamedTuple):
    """Alarms ``flags`` (N,), the threshold used at each row, the smoothed errors and the
    anomalous sequences kept after pruning (inclusive row limits)."""

    flags: np.ndarray
    thresholds: np.ndarray
    smoothed: np.ndarray
    sequences: list[tuple[int, int]]


def dynamic_threshold(errors, *, window: int | None = None, step: int | None = None,
                      span: float | None = 30, z_range=Z_RANGE,
                      min_decrease: float = 0.13) -> DynamicThreshold:
    """Hundman et al.'s nonparametric dynamic threshold with pruning (module docstring).

    Args:
        errors: (N,) non-negative errors or anomaly scores, in time order.
        window: history length each threshold is computed over (None: all rows at once).
        step: rows per block sharing one threshold (default ``window``); the block's threshold
            uses the ``window`` rows ending with the block (causal).
        span: EWMA span of the smoothing (None: none).
        z_range: candidate ``z`` values.
        min_decrease: pruning parameter ``p``.
    """
    e_s = ewma(errors, span)
    n = len(e_s)
    window = n if window is None else int(window)
    step = window if step is None else int(step)
    if window < 2 or step < 1:
        raise ValueError(f"window={window}, step={step}: expected window >= 2 and step >= 1")
    z_range = np.asarray(z_range, dtype=np.float64)
    eps = np.full(n, np.inf)
    for start in range(0, n, step):
        stop = min(n, start + step)
        eps[start:stop] = _best_epsilon(e_s[max(0, stop - window):stop], z_range)
    flags = e_s > eps
    seqs = _runs(flags)
    if seqs:
        peaks = np.array([e_s[a:b + 1].max() for a, b in seqs])
        order = np.argsort(-peaks, kind="stable")
        normal_max = e_s[~flags].max() if (~flags).any() else 0.0
        m = np.r_[peaks[order], normal_max]
        d = (m[:-1] - m[1:]) / np.where(m[:-1] > 0, m[:-1], 1.0)
        big = np.flatnonzero(d > min_decrease)
        keep = set(order[: big[-1] + 1].tolist()) if len(big) else set()
        for k, (a, b) in enumerate(seqs):
            if k not in keep:
                flags[a:b + 1] = False
        seqs = [s for k, s in enumerate(seqs) if k in keep]
    return DynamicThreshold(flags, eps, e_s, seqs)
