"""Forecasting baselines in NumPy, scored on the same windows as every model.

:func:`naive_forecast` (the last value), :func:`seasonal_naive_forecast` (the last season) and
:class:`LinearAR` (least-squares AR(p), iterated).  Shapes: ``N`` windows, ``L`` input steps,
``H`` horizon, ``C`` channels.  DLinear, the trained linear baseline, is
:class:`rnnkit.models.forecast_linear.DLinear`.

Example::

    hist = np.random.randn(10, 48, 2)                       # (N, L, C)
    seasonal_naive_forecast(hist, 36, 24).shape             # (10, 36, 2)
    LinearAR(4).fit([np.random.randn(200, 2)]).forecast(hist, 36).shape
"""

from __future__ import annotations

import numpy as np

__all__ = ["naive_forecast", "seasonal_naive_forecast", "LinearAR"]


def naive_forecast(hist: np.ndarray, horizon: int) -> np.ndarray:
    """Last value repeated: (N, L, C) -> (N, H, C)."""
    return np.repeat(hist[:, -1:], horizon, axis=1)


def seasonal_naive_forecast(hist: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """``y_{t+h} = y_{t+h-m*ceil((h+1)/m)}``: the last season repeated; (N, L>=m, C) ->
    (N, H, C)."""
    if hist.shape[1] < m:
        raise ValueError(
            f"seasonal naive with season_length={m} needs input windows of at least {m} steps"
        )
    L = hist.shape[1]
    return hist[:, L - m + np.arange(horizon) % m]


class LinearAR:
    """Linear autoregression ``y_t = b + sum_{i=1..p} a_i y_{t-i}`` per channel, least squares
    (ridge ``1e-6``) pooled over series, forecast by iterating its own predictions."""

    def __init__(self, order: int):
        if order < 1:
            raise ValueError(f"data.ar_order={order}: expected a positive integer")
        self.p = order
        self.coef: np.ndarray | None = None  # (C, p + 1): lags t-p..t-1, then the intercept

    def fit(self, train: list[np.ndarray]) -> LinearAR:
        """``train``: series of (T_i, C) values (each longer than p)."""
        p = self.p
        C = train[0].shape[1]
        self.coef = np.zeros((C, p + 1))
        for k in range(C):
            X, y = [], []
            for s in train:
                v = s[:, k]
                if len(v) <= p:
                    continue
                X.append(np.lib.stride_tricks.sliding_window_view(v[:-1], p))  # (T-p, p)
                y.append(v[p:])
            if not X:
                raise ValueError(
                    f"linear AR({p}): every training series is shorter than {p + 1} steps"
                )
            A = np.concatenate(X)
            A = np.hstack([A, np.ones((len(A), 1))])  # (n, p + 1)
            b = np.concatenate(y)
            G = A.T @ A + 1e-6 * len(A) * np.eye(p + 1)
            self.coef[k] = np.linalg.solve(G, A.T @ b)
        return self

    def forecast(self, hist: np.ndarray, horizon: int) -> np.ndarray:
        """(N, L>=p, C) -> (N, H, C)."""
        p, a = self.p, self.coef
        buf = np.concatenate([hist[:, -p:], np.zeros((hist.shape[0], horizon, hist.shape[2]))], 1)
        for h in range(horizon):
            win = buf[:, h:h + p]  # (N, p, C)
            buf[:, p + h] = np.einsum("npc,cp->nc", win, a[:, :p]) + a[:, p]
        return buf[:, p:]
