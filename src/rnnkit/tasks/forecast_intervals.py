"""Prediction intervals, scored: coverage and CRPS of the model's and the baselines' intervals.

The model's intervals come from its head (quantile or Gaussian, :func:`quantile_forecast`).
A point forecaster (the baselines) gets **residual-based** intervals: the empirical quantiles
of its errors ``e = y - f`` on the validation windows, per step ``h`` and channel ``c``, added
to its test forecasts (a split-conformal interval; no test data used)::

    q_p(f)[h, c] = f[h, c] + Quantile_p({e_n[h, c] : validation windows n})

Scores, pooled over every test window, step and channel (``v`` actuals)::

    coverage(a)  = mean 1[ q_{(1-a)/2} <= v <= q_{(1+a)/2} ]         (target: a)
    width(a)     = mean (q_{(1+a)/2} - q_{(1-a)/2})
    pinball_p    = mean max(p (v - q_p), (p - 1)(v - q_p))
    CRPS        ~= 2 mean_p pinball_p over p = 0.05, 0.10, ..., 0.95

(CRPS is the integral of twice the pinball loss over all levels; the 19-level mean is the same
approximation for every forecaster, so they compare fairly.)

Example::

    rep = interval_report(model, data, levels=(0.8, 0.95))
    rep["model"]["coverage_80"], rep["linear_ar"]["crps"]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from rnnkit.tasks.forecast_data import ForecastData
from rnnkit.tasks.forecast_task import evaluate_windows

__all__ = ["CRPS_LEVELS", "pinball", "crps_from_quantiles", "residual_quantiles",
           "interval_scores", "interval_report"]

CRPS_LEVELS = [round(k / 20, 2) for k in range(1, 20)]  # 0.05 .. 0.95


def pinball(actual: np.ndarray, q: np.ndarray, p: float) -> float:
    """Mean pinball (quantile) loss of the level-``p`` forecast ``q`` (same shape as actual)."""
    e = actual - q
    return float(np.maximum(p * e, (p - 1) * e).mean())


def crps_from_quantiles(actual: np.ndarray, q: np.ndarray, probs: list[float]) -> float:
    """``2 mean_p pinball_p``: ``actual (...)``, ``q (..., P)`` at ``probs`` (P,)."""
    return 2 * float(np.mean([pinball(actual, q[..., j], p) for j, p in enumerate(probs)]))


def residual_quantiles(actual: np.ndarray, forecast: np.ndarray, probs: list[float]) -> np.ndarray:
    """Empirical quantiles of ``actual - forecast`` over the windows: (N, H, C) -> (H, C, P)."""
    return np.moveaxis(np.quantile(actual - forecast, probs, axis=0), 0, -1)


def interval_scores(actual: np.ndarray, q: np.ndarray, probs: list[float],
                    levels: tuple[float, ...]) -> dict[str, float]:
    """Coverage and width of each central interval, and the CRPS, from quantiles ``q`` (N, H,
    C, P) at ``probs``, which must hold CRPS_LEVELS and both ends of every level."""
    out: dict[str, float] = {}
    for a in levels:
        lo, hi = q[..., probs.index(_lo(a))], q[..., probs.index(_hi(a))]
        tag = f"{round(100 * a)}"
        out[f"coverage_{tag}"] = float(((actual >= lo) & (actual <= hi)).mean())
        out[f"width_{tag}"] = float((hi - lo).mean())
    idx = [probs.index(p) for p in CRPS_LEVELS]
    out["crps"] = crps_from_quantiles(actual, q[..., idx], CRPS_LEVELS)
    return out


def _lo(a: float) -> float:
    return round((1 - a) / 2, 4)


def _hi(a: float) -> float:
    return round((1 + a) / 2, 4)


def interval_report(model: nn.Module | None, data: ForecastData, *,
                    levels: tuple[float, ...] = (0.8, 0.95), split: str = "test"
                    ) -> dict[str, Any]:
    """Interval scores of the model (its head's quantiles, if not a point head) and of each
    baseline (validation residuals) on every window of ``split``; also each one's MSE."""
    probs = sorted(set(CRPS_LEVELS) | {_lo(a) for a in levels} | {_hi(a) for a in levels})
    val = evaluate_windows(None, data, "valid")
    test = evaluate_windows(model, data, split,
                            quantiles=probs if model is not None else None)
    actual = test["actual"]
    rep: dict[str, Any] = {"levels": list(levels), "crps_levels": CRPS_LEVELS,
                           "windows": len(test["origins"])}
    if model is not None and model.config.head != "point":
        rep["model"] = interval_scores(actual, test["quantiles"], probs, levels)
        rep["model"]["mse"] = test["metrics"]["model"]["mse"]
    for name in ("naive", "seasonal_naive", "linear_ar"):
        shift = residual_quantiles(val["actual"], val["forecasts"][name], probs)  # (H, C, P)
        q = test["forecasts"][name][..., None] + shift  # (N, H, C, P)
        rep[name] = interval_scores(actual, q, probs, levels)
        rep[name]["mse"] = test["metrics"][name]["mse"]
    return rep
