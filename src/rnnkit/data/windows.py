"""Preprocessing and windows for forecasting: scalers, differencing, STL, sliding windows.

The chain from a raw series ``y`` to what a model sees, each step fitted on the training
split only and undone in reverse for forecasts::

    z = scale(log(y))                  "scaled" space (log optional); standard: (v - mean) / std,
                                       min-max: (v - min) / (max - min); global or per series
    u = z - s[phase(t)]                STL seasonal profile removed (optional, period m)
    d = u_t - u_{t-lag}                differencing (optional, lag 1 or seasonal lag)

Windows: for a forecast origin ``t`` (the first step to predict) the input window is
``[t - L, t)`` and the target window ``[t, t + H)``.  A split owns the origins whose target
window lies inside it; its inputs may reach back into the previous split (the Informer
protocol).  Shapes: ``N`` windows, ``L`` input length, ``H`` horizon, ``K`` channels.

The long-horizon benchmark protocol (LTSF: Informer, Autoformer, DLinear, PatchTST, SegRNN)
splits by row: train the first 12 months, validation the next 4, test the next 4, months of 30
days at the series' own step (:func:`ltsf_split_rows`: ETTh ``[8640, 11520, 14400]``, ETTm four
times that).  With origins as above, a split of ``n`` steps has ``n - H + 1`` windows, its
inputs reaching ``L`` steps back into the split before.

Example::

    sc = Scaler("standard").fit({"": train})            # train: (T_train, K)
    z = sc.transform(x, "")                             # (T, K)
    x_in, x_out = gather_windows(z, np.array([10, 11]), 8, 4)   # (2, 8, K), (2, 4, K)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from rnnkit.data._show import shown

__all__ = [
    "Scaler",
    "difference",
    "undifference",
    "stl_decompose",
    "SeasonalProfile",
    "Preprocessor",
    "window_origins",
    "gather_windows",
    "LTSF_MONTHS",
    "ltsf_split_rows",
]


# --------------------------------------------------------------------------- scalers


class Scaler:
    """Affine scaler ``z = (v - loc) / scale`` per channel, fitted on training data only.

    Args:
        kind: "standard" (mean / population std, as sklearn's StandardScaler), "minmax"
            (min / range, to [0, 1] on the training data) or "none".
        per_series: one (loc, scale) per series id; else one for all series pooled.
    """

    def __init__(
        self, kind: Literal["standard", "minmax", "none"] = "standard", per_series: bool = False
    ):
        if kind not in ("standard", "minmax", "none"):
            raise ValueError(f"data.scaler={kind!r}: expected standard, minmax or none")
        self.kind, self.per_series = kind, per_series
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, train: dict[str, np.ndarray]) -> Scaler:
        """Fit on ``{series_id: (T_i, K) training values}``."""
        groups = train if self.per_series else {"*": np.concatenate(list(train.values()), axis=0)}
        for sid, v in groups.items():
            with np.errstate(over="ignore", invalid="ignore"):
                if self.kind == "standard":
                    loc, scale = v.mean(axis=0), v.std(axis=0)
                    if not (np.isfinite(loc).all() and np.isfinite(scale).all()):
                        m = np.abs(v).max(axis=0)  # ~1e154 and up: the squares overflow
                        m = np.where(m > 0, m, 1.0)
                        loc, scale = (v / m).mean(axis=0) * m, (v / m).std(axis=0) * m
                elif self.kind == "minmax":
                    loc, scale = v.min(axis=0), v.max(axis=0) - v.min(axis=0)
                else:
                    loc, scale = np.zeros(v.shape[1]), np.ones(v.shape[1])
            if not (np.isfinite(loc).all() and np.isfinite(scale).all()):
                k = int(np.flatnonzero(~(np.isfinite(loc) & np.isfinite(scale)))[0])
                where = "" if sid == "*" else f" of series {shown(sid)}"
                raise ValueError(
                    f"data.scaler={self.kind}: channel {k}{where} spans more than float64 can "
                    "scale (values near 1e308)"
                )
            # a constant channel stays put; "constant" is relative to the values' size, so
            # data in tiny units (1e-20) is still scaled
            tiny = 1e-12 * np.maximum(np.abs(v).max(axis=0, initial=0.0), 1e-300)
            scale = np.where(scale > np.minimum(tiny, 1e-12), scale, 1.0)
            self.stats[sid] = (np.asarray(loc, np.float64), np.asarray(scale, np.float64))
        return self

    def params(self, sid: str) -> tuple[np.ndarray, np.ndarray]:
        """``(loc, scale)``, each (K,), for series ``sid``."""
        key = sid if self.per_series else "*"
        if key not in self.stats:
            raise KeyError(
                f"series {shown(sid)} was not seen when the per-series scaler was fitted "
                f"(known: {', '.join(sorted(self.stats)[:5])})"
            )
        return self.stats[key]

    def transform(self, v: np.ndarray, sid: str) -> np.ndarray:
        loc, scale = self.params(sid)
        return (v - loc) / scale

    def inverse_transform(self, z: np.ndarray, sid: str) -> np.ndarray:
        loc, scale = self.params(sid)
        return z * scale + loc

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "per_series": self.per_series,
                "stats": {k: [l.tolist(), s.tolist()] for k, (l, s) in self.stats.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        """Inverse of :meth:`to_dict`; a non-finite ``loc`` or a scale that is not finite and
        positive (a corrupt or tampered state: JSON readers accept NaN) is a ValueError."""
        sc = cls(d["kind"], d["per_series"])
        sc.stats = {
            k: (np.asarray(l, np.float64), np.asarray(s, np.float64))
            for k, (l, s) in d["stats"].items()
        }
        for sid, (loc, scale) in sc.stats.items():
            for name, v, ok in (
                ("loc", loc, np.isfinite(loc)),
                ("scale", scale, np.isfinite(scale) & (scale > 0)),
            ):
                if not ok.all():
                    i = int(np.flatnonzero(~ok)[0])
                    raise ValueError(
                        f"scaler: series {shown(sid)}, {name}[{i}] is {v[i]}; expected a finite "
                        f"{'positive ' if name == 'scale' else ''}number"
                    )
        return sc


# --------------------------------------------------------------------------- differencing


def difference(x: np.ndarray, lag: int = 1) -> np.ndarray:
    """``d_t = x_t - x_{t-lag}`` along axis 0; the first ``lag`` rows are NaN.  (T, K) -> (T, K)."""
    if lag < 1:
        raise ValueError(f"difference lag={lag}; expected a positive integer")
    d = np.full_like(x, np.nan, dtype=np.float64)
    d[lag:] = x[lag:] - x[:-lag]
    return d


def undifference(d: np.ndarray, last: np.ndarray, lag: int = 1) -> np.ndarray:
    """Integrate differenced forecasts: ``x_{t+h} = x_{t+h-lag} + d_{t+h}``.

    Args:
        d: (N, H, ...) forecast differences for steps ``t..t+H-1``.
        last: (N, lag, ...) the observed levels at ``t-lag..t-1``.
    Returns:
        (N, H, ...) levels.
    """
    H = d.shape[1]
    out = np.concatenate([last, np.zeros_like(d)], axis=1)  # (N, lag + H, ...)
    for h in range(H):
        out[:, lag + h] = out[:, h] + d[:, h]
    return out[:, lag:]


# --------------------------------------------------------------------------- STL


def stl_decompose(x: np.ndarray, period: int, robust: bool = True) -> dict[str, np.ndarray]:
    """STL (Cleveland et al. 1990, statsmodels) of each channel: ``x = trend + seasonal + resid``.

    Args:
        x: (T, K) with ``T >= 2 * period``.
    Returns:
        ``{"trend", "seasonal", "resid"}``, each (T, K).
    """
    from statsmodels.tsa.seasonal import STL

    if period < 2 or len(x) < 2 * period:
        raise ValueError(
            f"data.stl_period={period}: STL needs period >= 2 and at least two periods of "
            f"training data (have {len(x)} steps)"
        )
    parts = {"trend": [], "seasonal": [], "resid": []}
    for k in range(x.shape[1]):
        r = STL(x[:, k], period=period, robust=robust).fit()
        parts["trend"].append(r.trend)
        parts["seasonal"].append(r.seasonal)
        parts["resid"].append(r.resid)
    return {k: np.stack(v, axis=1) for k, v in parts.items()}


class SeasonalProfile:
    """The seasonal part of an STL fit, extended periodically: ``s[phase(t)]``.

    The profile is STL's seasonal component over the last full period of the training data
    (what ``statsmodels.tsa.forecasting.stl.STLForecast`` extrapolates with a seasonal
    naive forecast); ``phase(t) = t mod m`` with ``t`` counted from the series start.
    """

    def __init__(self, period: int, profile: np.ndarray):
        self.period, self.profile = period, np.asarray(profile, np.float64)  # (m, K)

    @classmethod
    def fit(cls, train: np.ndarray, period: int) -> SeasonalProfile:
        """From (T, K) training values starting at step 0."""
        seasonal = stl_decompose(train, period)["seasonal"]
        T = len(train)
        last = seasonal[T - period:]  # (m, K): steps T-m .. T-1
        return cls(period, np.roll(last, (T - period) % period, axis=0))  # row p = phase p

    def at(self, steps: np.ndarray) -> np.ndarray:
        """Seasonal values at absolute steps ``steps`` (any shape S) -> (*S, K)."""
        return self.profile[np.mod(steps, self.period)]


# --------------------------------------------------------------------------- the chain


class Preprocessor:
    """log -> scaler -> STL profile -> differencing, fitted on training splits only.

    Args:
        scaler: a :class:`Scaler` (not fitted yet).
        log: take ``log(y)`` first (values must be positive).
        stl_period: remove an STL seasonal profile with this period (None: no).
        lag: difference with this lag (0: no differencing).
    """

    def __init__(
        self, scaler: Scaler, *, log: bool = False, stl_period: int | None = None, lag: int = 0
    ):
        self.scaler, self.log, self.stl_period, self.lag = scaler, log, stl_period, lag
        self.profiles: dict[str, SeasonalProfile] = {}

    def fit(self, train: dict[str, np.ndarray]) -> Preprocessor:
        """``train``: ``{series_id: (T_i, K) training values}``, each starting at step 0."""
        if self.log:
            for sid, v in train.items():
                if (v <= 0).any():
                    raise ValueError(f"data.transform=log: series {shown(sid)} has values <= 0")
        self.scaler.fit({k: self._log(v) for k, v in train.items()})
        if self.stl_period:
            for sid, v in train.items():
                self.profiles[sid] = SeasonalProfile.fit(self.scale(v, sid), self.stl_period)
        return self

    def _log(self, v: np.ndarray) -> np.ndarray:
        return np.log(v) if self.log else v

    def scale(self, y: np.ndarray, sid: str) -> np.ndarray:
        """Raw values -> scaled space ``z``; (..., K)."""
        return self.scaler.transform(self._log(y), sid)

    def unscale(self, z: np.ndarray, sid: str) -> np.ndarray:
        """Scaled space -> raw values; (..., K)."""
        v = self.scaler.inverse_transform(z, sid)
        return np.exp(v) if self.log else v

    def seasonal(self, sid: str, steps: np.ndarray) -> np.ndarray:
        """STL seasonal values at absolute steps (0 without STL); (*S,) -> (*S, K)."""
        if not self.stl_period:
            return 0.0
        if sid not in self.profiles:
            raise KeyError(f"series {shown(sid)} has no fitted STL profile")
        return self.profiles[sid].at(steps)

    def to_model(self, z: np.ndarray, sid: str, steps: np.ndarray) -> np.ndarray:
        """Scaled (T, K) at absolute ``steps`` (T,) -> model space (T, K) (NaN for the first
        lag rows)."""
        u = z - self.seasonal(sid, steps)
        return difference(u, self.lag) if self.lag else u

    def from_model(
        self, d: np.ndarray, sid: str, steps: np.ndarray, z_last: np.ndarray
    ) -> np.ndarray:
        """Model-space forecasts back to the scaled space.

        Args:
            d: (N, H, K, ...) model-space forecasts (trailing dims, e.g. quantiles, allowed).
            steps: (N, H) absolute steps of the forecasts.
            z_last: (N, lag, K) scaled levels just before each origin (unused without lag).
        Returns:
            (N, H, K, ...) in the scaled space.
        """
        extra = d.ndim - 3
        if self.lag:
            lag_steps = steps[:, :1] - np.arange(self.lag, 0, -1)  # (N, lag)
            u_last = z_last - self.seasonal(sid, lag_steps)
            u_last = u_last.reshape(u_last.shape + (1,) * extra)  # (N, lag, K, 1...)
            u_last = np.broadcast_to(u_last, u_last.shape[:3] + d.shape[3:])
            d = undifference(d, u_last, self.lag)
        s = self.seasonal(sid, steps)
        if not np.isscalar(s):
            s = s.reshape(s.shape + (1,) * extra)
        return d + s

    def to_dict(self) -> dict[str, Any]:
        return {
            "scaler": self.scaler.to_dict(),
            "log": self.log,
            "stl_period": self.stl_period,
            "lag": self.lag,
            "profiles": {k: p.profile.tolist() for k, p in self.profiles.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        pre = cls(
            Scaler.from_dict(d["scaler"]), log=d["log"], stl_period=d["stl_period"], lag=d["lag"]
        )
        pre.profiles = {k: SeasonalProfile(d["stl_period"], v) for k, v in d["profiles"].items()}
        return pre


# --------------------------------------------------------------------------- windows


def window_origins(start: int, stop: int, input_length: int, horizon: int, *, first: int = 0,
                   stride: int = 1) -> np.ndarray:
    """Origins ``t`` whose target window ``[t, t+H)`` lies in ``[start, stop)`` and whose input
    window ``[t-L, t)`` starts at or after ``first``; every ``stride``-th, counted from the last
    (so the latest window is always kept)."""
    lo = max(start, first + input_length)
    hi = stop - horizon
    if hi < lo:
        return np.zeros(0, dtype=np.int64)
    return np.arange(hi, lo - 1, -stride, dtype=np.int64)[::-1].copy()


def gather_windows(
    x: np.ndarray, origins: np.ndarray, before: int, after: int
) -> tuple[np.ndarray, np.ndarray]:
    """Input and target windows at ``origins``.

    Args:
        x: (T, K) values.
        origins: (N,) forecast origins.
    Returns:
        ``(x[t-before:t], x[t:t+after])`` stacked: (N, before, K), (N, after, K).
    """
    origins = np.asarray(origins, dtype=np.int64)
    past = origins[:, None] + np.arange(-before, 0)  # (N, before)
    fut = origins[:, None] + np.arange(after)  # (N, after)
    if len(origins) and (past.min() < 0 or fut.max() >= len(x)):
        raise IndexError(f"windows [t-{before}, t+{after}) leave the series of length {len(x)}")
    return x[past], x[fut]


LTSF_MONTHS = (12, 4, 4)  # train / validation / test, months of 30 days


def ltsf_split_rows(step: str) -> list[int]:
    """``[train_end, val_end, test_end]`` rows of the LTSF protocol at the step ``step`` (a pandas
    frequency): 12/4/4 months of 30 days; "h" -> [8640, 11520, 14400], "15min" -> 4x that."""
    import pandas as pd

    try:
        per_day = pd.Timedelta("1D") / pd.to_timedelta(pd.tseries.frequencies.to_offset(step))
    except (ValueError, TypeError):
        raise ValueError(
            f"data.protocol='ltsf' needs a fixed step (hours, minutes); the series' step is "
            f"{step!r}"
        ) from None
    if per_day != int(per_day) or per_day < 1:
        raise ValueError(f"data.protocol='ltsf': the step {step!r} does not divide a day")
    ends = np.cumsum(LTSF_MONTHS) * 30 * int(per_day)
    return [int(e) for e in ends]
