"""NAB's own baseline detectors, re-implemented to run on the same files with our scorer.

**Random** (NAB ``random_detector.py``): each file restarts Python's Mersenne Twister at
``seed`` (42 in NAB) and draws ``random.uniform(0, 1)`` per row.  NAB's scoreboard reports
the mean over several seeds.

**Windowed Gaussian** (NAB ``windowedGaussian_detector.py``, v1.1): the score of row ``t``
is ``1 - Q(|x_t - mu| / sigma)`` with ``Q`` the standard normal tail probability and
``mu, sigma`` (population std, floored to 1e-6) the mean and standard deviation of a
window of previous values: the window grows with every row up to ``window = 6400`` rows,
then slides forward by ``step = 100`` rows at a time (statistics refreshed once per step).
The first row scores 0.  Scores lie in ``[0.5, 1)`` after the first row.

Example::

    s = windowed_gaussian_scores(values)      # (N,) in [0, 1)
    r = random_scores(len(values), seed=42)   # (N,) uniform
"""

from __future__ import annotations

import random

import numpy as np
from scipy.special import erfc

__all__ = ["random_scores", "windowed_gaussian_scores"]


def random_scores(n: int, seed: int = 42) -> np.ndarray:
    """``n`` draws of ``random.uniform(0, 1)`` after ``random.seed(seed)`` (NAB's random
    detector)."""
    rng = random.Random(seed)
    return np.array([rng.uniform(0, 1) for _ in range(n)], dtype=np.float64)


def windowed_gaussian_scores(values: np.ndarray, window: int = 6400, step: int = 100) -> np.ndarray:
    """NAB's windowed-Gaussian anomaly scores of a 1-D series (see the module docstring).

    Equivalent to NAB's record-by-record loop: the statistics used for row ``t`` are those of
    the window as it stood after row ``t - 1``.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if window < 1 or step < 1:
        raise ValueError(f"window={window}, step={step}: expected positive integers")
    n = len(x)
    mu, sd = np.zeros(n), np.ones(n)
    g = min(n, window)
    # growing phase: row t (1 <= t <= window) sees the window x[0:t]; cumulative sums of
    # values shifted by their mean keep the variance free of cancellation
    shift = x[:g].mean() if g else 0.0
    c1 = np.cumsum(x[:g] - shift)
    c2 = np.cumsum((x[:g] - shift) ** 2)
    t = np.arange(1, min(n, window + 1))
    m = c1[t - 1] / t
    mu[t] = shift + m
    sd[t] = np.sqrt(np.maximum(c2[t - 1] / t - m * m, 0.0))
    # sliding phase: row t > window sees x[k step : window + k step], k = (t - window) // step
    for k in range((n - 1 - window) // step + 1 if n > window + 1 else 0):
        rows = slice(window + k * step if k else window + 1, min(n, window + (k + 1) * step))
        win = x[k * step: window + k * step]
        mu[rows], sd[rows] = win.mean(), win.std()
    sd = np.where(sd == 0.0, 1e-6, sd)
    z = np.abs(x - mu) / sd
    scores = 1.0 - 0.5 * erfc(z / np.sqrt(2.0))
    if n:
        scores[0] = 0.0
    return scores
