"""Forecasting baselines in NumPy, scored on the same windows as every model.

:func:`naive_forecast` (the last value), :func:`seasonal_naive_forecast` (the last season) and
:class:`LinearAR` (least-squares AR(p), iterated) and :class:`NLinear` (a direct linear map of
the window minus its last value, in closed form).  Shapes: ``N`` windows, ``L`` input steps,
``H`` horizon, ``C`` channels.  DLinear, the trained linear baseline, is
:class:`rnnkit.models.forecast_linear.DLinear`.

Example::

    hist = np.random.randn(10, 48, 2)                       # (N, L, C)
    seasonal_naive_forecast(hist, 36, 24).shape             # (10, 36, 2)
    LinearAR(4).fit([np.random.randn(200, 2)]).forecast(hist, 36).shape
    NLinear().fit([(hist, np.random.randn(10, 36, 2))]).forecast(hist).shape  # (10, 36, 2)
"""

from __future__ import annotations

import numpy as np

__all__ = ["naive_forecast", "seasonal_naive_forecast", "LinearAR", "NLinear"]


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


class NLinear:
    """NLinear (Zeng et al. 2023) in closed form: ``y = x_L + W (x - x_L) + a``, one map
    ``W`` (H, L; its last column is 0, as ``x_L - x_L`` is) and intercept ``a`` (H,) shared
    by the channels (each channel is its own sample), fitted by ridge least squares
    (``ridge * n``, the intercept not shrunk) on training windows.  Subtracting the window's
    last value makes it level-free: a shifted window gets the same forecast, shifted (the
    iterated :class:`LinearAR` instead drifts to the training split's mean).  :meth:`affine`
    gives it as one affine map of the window."""

    def __init__(self, ridge: float = 1e-4):
        if ridge < 0:
            raise ValueError(f"NLinear: ridge={ridge}: expected a non-negative number")
        self.ridge = ridge
        self.W: np.ndarray | None = None  # (H, L)
        self.a: np.ndarray | None = None  # (H,)

    def fit(self, batches) -> NLinear:
        """``batches``: an iterable of ``(x (N, L, C), y (N, H, C))`` training windows (arrays
        or tensors; every batch the same ``L``, ``H`` and ``C``), in float64."""
        G = R = None
        n = 0
        for x, y in batches:
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            if x.ndim != 3 or y.ndim != 3 or len(x) != len(y) or x.shape[2] != y.shape[2]:
                raise ValueError(f"NLinear.fit: expected x (N, L, C) and y (N, H, C); got "
                                 f"{x.shape} and {y.shape}")
            L, H = x.shape[1], y.shape[1]
            x = x.transpose(0, 2, 1).reshape(-1, L)  # one row per (window, channel)
            y = y.transpose(0, 2, 1).reshape(-1, H)
            last = x[:, -1:]
            z = np.hstack([x[:, :-1] - last, np.ones((len(x), 1))])  # x_L - x_L is always 0
            if G is None:
                G, R = np.zeros((L, L)), np.zeros((L, H))
            if G.shape[0] != L or R.shape[1] != H:
                raise ValueError(f"NLinear.fit: a batch of {L} input and {H} output steps after "
                                 f"{G.shape[0]} and {R.shape[1]}")
            G += z.T @ z
            R += z.T @ (y - last)
            n += len(x)
        if not n:
            raise ValueError("NLinear.fit: no training windows")
        reg = self.ridge * n * np.eye(len(G))
        reg[-1, -1] = 0.0
        sol = np.linalg.solve(G + reg, R).T  # (H, L): W's first L - 1 columns, then a
        self.W = np.hstack([sol[:, :-1], np.zeros((len(sol), 1))])  # x_L's weight: 0
        self.a = sol[:, -1]
        return self

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A (H, L), a (H,))`` with ``forecast = A @ window + a`` for each channel."""
        if self.W is None:
            raise ValueError("NLinear: fit it first")
        A = self.W.copy()
        A[:, -1] += 1.0 - self.W.sum(1)
        return A, self.a.copy()

    def forecast(self, hist: np.ndarray) -> np.ndarray:
        """(N, L, C) -> (N, H, C)."""
        A, a = self.affine()
        if hist.shape[1] != A.shape[1]:
            raise ValueError(f"NLinear: fitted on windows of {A.shape[1]} steps; got "
                             f"{hist.shape[1]}")
        return np.einsum("nlc,hl->nhc", hist, A) + a[None, :, None]
