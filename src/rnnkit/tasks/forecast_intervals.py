"""Prediction intervals, calibrated and scored: coverage and CRPS of the model's and the
baselines' intervals.

The model's intervals come from its head (quantile or Gaussian, :func:`quantile_forecast`);
a point forecaster (the baselines) has a zero-width "interval", its forecast ``f`` at every
level.  Both are then **calibrated** on past windows (``calibration``), with the same windows,
the same finite-sample rule and the same rule for the window size ``K``:

- ``"none"``: the head's quantiles as they are (a point forecaster has no interval; the
  baselines are left out).
- ``"split"``: split conformal on every validation window.
- ``"rolling"``: the same rule on the most recent ``K`` windows whose target is already
  observed at the forecast origin (validation windows, then test windows, in time order).

Per step ``h`` and channel ``c``, for window ``n`` with origin ``t_n`` (its first target is
row ``t_n``, so step ``h = 0..H-1`` forecasts row ``t_n + h`` from rows ``< t_n``), the
calibration set ``S_n,h`` is: split, all validation windows; rolling, the last ``K`` windows
``j`` of the same series with ``t_j + h < t_n`` (their step-``h`` target was observed before
``t_n``).  No target at or after ``t_n`` reaches window ``n``.  ``m = |S_n,h|``; ``k_+(b) =
ceil((m + 1) b)``, ``k_-(b) = floor((m + 1) b)``; ``s_(k)`` the ``k``-th smallest score
(``+inf`` if ``k > m``, ``-inf`` if ``k < 1``).

- Model (CQR, Romano et al. 2019), each central level ``a = 1 - 2p`` of the pair
  ``(q_p, q_{1-p})``: score ``s = max(q_p - y, y - q_{1-p})``; both ends move by
  ``Q = s_(k_+(a))``: ``q_p - Q, q_{1-p} + Q`` (``Q < 0`` narrows).  The median stays.
- Baselines (the per-level residual shift, i.e. CQR of a zero-width interval end by end):
  residual ``e = y - f``; ``q_p = f + e_(k_+(p))`` for ``p >= 1/2``, ``f + e_(k_-(p))`` below.
- Then the quantiles of each (window, step, channel) are sorted (rearrangement; it can only
  lower the pinball loss).

With exchangeable scores each central interval covers at least ``a`` on average (split
conformal, Vovk et al. 2005; a fixed set of ``K`` earlier windows is exchangeable with the new
one too).  Overlapping windows of a drifting series are not exchangeable: there no guarantee
holds, and ``rolling`` is the practical answer to drift (its set follows the recent errors;
adaptive conformal inference, Gibbs and Candes 2021, is not used).  ``K`` is chosen on
validation alone (:func:`choose_window`): the rolling rule run over the validation windows,
scored on those with a full set at every step, picking the candidate in ``WINDOWS`` whose
80%/95% coverages are nearest their levels.

Scores, pooled over every test window, step and channel (``v`` actuals)::

    coverage(a)  = mean 1[ q_{(1-a)/2} <= v <= q_{(1+a)/2} ]         (target: a)
    width(a)     = mean (q_{(1+a)/2} - q_{(1-a)/2})
    pinball_p    = mean max(p (v - q_p), (p - 1)(v - q_p))
    CRPS        ~= 2 mean_p pinball_p over p = 0.05, 0.10, ..., 0.95

(CRPS is the integral of twice the pinball loss over all levels; the 19-level mean is the same
approximation for every forecaster, so they compare fairly.)

Shapes: ``N`` windows, ``H`` steps, ``C`` channels, ``P`` levels, ``K`` rolling window.

Example::

    rep = interval_report(model, data, levels=(0.8, 0.95), calibration="rolling", window=720)
    rep["model"]["coverage_80"], rep["linear_ar"]["crps"]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from rnnkit.tasks.forecast_data import ForecastData
from rnnkit.tasks.forecast_task import _model_params, evaluate_windows

__all__ = ["CRPS_LEVELS", "CALIBRATIONS", "pinball", "crps_from_quantiles", "residual_quantiles",
           "conformal_rank", "calibrate", "calibrate_interval", "calibrate_forecast",
           "IntervalCalibrator",
           "scaled_windows", "choose_window", "interval_scores",
           "interval_reports", "interval_report"]

CRPS_LEVELS = [round(k / 20, 2) for k in range(1, 20)]  # 0.05 .. 0.95
CALIBRATIONS = ("none", "split", "rolling")
WINDOWS = (168, 336, 720, 1440)  # candidate K (windows; hours on ETTh) for choose_window


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


# --------------------------------------------------------------------------- calibration


def conformal_rank(m: np.ndarray | int, b: float, up: bool = True) -> np.ndarray:
    """1-based order statistic ``ceil((m + 1) b)`` (``up``) or ``floor((m + 1) b)`` of ``m``
    scores (> m: +inf; < 1: -inf)."""
    x = (np.asarray(m) + 1) * b
    return (np.ceil(x - 1e-9) if up else np.floor(x + 1e-9)).astype(np.int64)


def _order_stats(s: np.ndarray, m: np.ndarray, ranks: list[tuple[float, bool]]) -> list:
    """The ``k(b)``-th smallest of the first ``m`` scores of each row, for each ``(b, up)``:
    ``s (N, M, C)`` (in any order), ``m (N,)`` -> [(N, C)]."""
    N, M, C = s.shape
    out = [np.empty((N, C)) for _ in ranks]
    ks = [conformal_rank(m, b, up) for b, up in ranks]  # each (N,)
    full = m == M  # one rank per level for these rows: a partial sort does
    if full.any() and M:
        kth = sorted({int(np.clip(k[full][0] - 1, 0, M - 1)) for k in ks})
        part = np.partition(s[full], kth, axis=1)  # (N_full, M, C)
        for o, k in zip(out, ks, strict=True):
            o[full] = part[:, int(np.clip(k[full][0] - 1, 0, M - 1))]
    for i in np.flatnonzero(~full):  # rows with fewer scores (the start of a series)
        srt = np.sort(s[i, :m[i]], axis=0)  # (m_i, C)
        for o, k in zip(out, ks, strict=True):
            o[i] = srt[np.clip(k[i] - 1, 0, max(m[i] - 1, 0))] if m[i] else 0.0
    return [np.where((k > m)[:, None], np.inf, np.where((k < 1)[:, None], -np.inf, o))
            for o, k in zip(out, ks, strict=True)]


def _windows(org_cal: np.ndarray, org: np.ndarray, h: int, K: int) -> tuple[np.ndarray, ...]:
    """Each window's calibration set at step ``h`` among the calibration windows (sorted
    origins ``org_cal`` (J,)): the last ``K`` with ``t_j + h < t_n``.  Returns the indices
    ``(N, K)``, those it lacks (at a series' start) pointing at 0 and listed last, and the
    number ``m (N,)`` that are real."""
    end = np.searchsorted(org_cal, org - h, side="left")  # (N,) count of t_j < t_n - h
    m = np.minimum(end, K)
    idx = end[:, None] - m[:, None] + np.arange(K)  # (N, K): the m real ones first
    return np.where(np.arange(K) < m[:, None], idx, 0), m


def _set_stats(s: np.ndarray, sets: tuple[np.ndarray, np.ndarray] | None,
               ranks: list[tuple[float, bool]]) -> list:
    """Order statistics of step-``h`` scores ``s (J, C)`` over each window's set (None: all J,
    one set) -> [(N or 1, C)]."""
    if sets is None:
        return _order_stats(s[None], np.array([len(s)]), ranks)
    idx, m = sets
    return _order_stats(s[idx], m, ranks)  # s[idx]: (N, K, C)


def calibrate(q: np.ndarray, probs: list[float], cal: dict[str, Any], *, kind: str,
              method: str, origins: list | None = None, window: int = 720) -> np.ndarray:
    """Calibrated quantiles ``(N, H, C, P)`` of ``q`` (N, H, C, P) at sorted ``probs``.

    ``cal`` holds the calibration windows, in time order: ``"q"`` (J, H, C, P), ``"actual"``
    (J, H, C), ``"origins"`` [(series, t)].  ``kind``: ``"cqr"`` (a head's quantiles) or
    ``"residual"`` (a point forecast, repeated over P).  ``method``: ``"split"`` (every
    calibration window) or ``"rolling"`` (the last ``window`` observed before each origin;
    then ``cal`` may include the windows being calibrated and ``origins`` gives theirs).
    """
    if method not in ("split", "rolling"):
        raise ValueError(f"calibration {method!r}: expected split or rolling")
    if kind not in ("cqr", "residual"):
        raise ValueError(f"kind {kind!r}: expected cqr or residual")
    N, H, C, P = q.shape
    out = q.astype(np.float64).copy()
    y, qc = cal["actual"], cal["q"]
    if method == "split":
        groups = [(np.arange(N), np.arange(len(y)), None, None)]
    else:
        sids = [s for s, _ in origins]
        csids = [s for s, _ in cal["origins"]]
        groups = []
        for sid in dict.fromkeys(sids):
            n = np.array([i for i, s in enumerate(sids) if s == sid])
            j = np.array([i for i, s in enumerate(csids) if s == sid], dtype=np.int64)
            groups.append((n, j, np.array([origins[i][1] for i in n]),
                           np.array([cal["origins"][i][1] for i in j])))
    pairs = [(probs.index(p), probs.index(round(1 - p, 4))) for p in probs if p < 0.5]
    for n, j, org, org_cal in groups:
        if kind == "cqr":  # per pair (p, 1 - p), one score; both ends move by its statistic
            s = [np.maximum(qc[j, ..., lo] - y[j], y[j] - qc[j, ..., hi]) for lo, hi in pairs]
        else:  # one residual (the forecast is the same at every level), a rank per level
            e = y[j] - qc[j, ..., 0]  # (J, H, C)
        for h in range(H):
            sets = None if org is None else _windows(org_cal, org, h, window)
            if kind == "cqr":
                for (lo, hi), s_p in zip(pairs, s, strict=True):
                    (Q,) = _set_stats(s_p[:, h], sets, [(probs[hi] - probs[lo], True)])
                    out[n, h, :, lo] -= Q  # Q: (N or 1, C)
                    out[n, h, :, hi] += Q
            else:
                stats = _set_stats(e[:, h], sets, [(p, p >= 0.5) for p in probs])
                for c, v in enumerate(stats):
                    out[n, h, :, c] += v
    return np.sort(out, axis=-1)


def choose_window(q: np.ndarray, actual: np.ndarray, origins: list, probs: list[float], *,
                  kind: str, levels: tuple[float, ...] = (0.8, 0.95),
                  candidates: tuple[int, ...] = WINDOWS) -> tuple[int, dict[int, float]]:
    """``K`` for the rolling calibration from one split alone (validation): run it over that
    split and score windows ``n >= max(candidates) + H`` (a full set at every step); return the
    candidate with the least mean |coverage(a) - a| and each candidate's error."""
    H = q.shape[1]
    first = max(candidates) + H
    if len(actual) <= first:
        raise ValueError(f"{len(actual)} windows: too few to choose K among {candidates}")
    cal = {"q": q, "actual": actual, "origins": origins}
    err = {}
    for K in candidates:
        qq = calibrate(q, probs, cal, kind=kind, method="rolling", origins=origins, window=K)
        s = interval_scores(actual[first:], qq[first:], probs, levels)
        err[K] = float(np.mean([abs(s[f"coverage_{round(100 * a)}"] - a) for a in levels]))
    return min(err, key=err.get), err


def calibrate_interval(model: nn.Module, data: ForecastData, res: dict[str, Any], split: str,
                       *, method: str, window: int = 720) -> tuple[np.ndarray, np.ndarray]:
    """The head's central interval at ``data.cfg.interval_level`` of :func:`evaluate_windows`'
    ``res`` on ``split``, calibrated by ``method`` (CQR): ``(lower, upper)``, each (N, H, C).
    split: on the validation windows (so ``split`` must be test); rolling: on the windows of
    validation then ``split`` (test or valid) observed before each origin."""
    if split not in ("valid", "test") or (method == "split" and split != "test"):
        raise ValueError(f"calibration {method!r} of the {split!r} windows: split calibrates "
                         f"test on validation, rolling calibrates test or valid")
    probs = [_lo(data.cfg.interval_level), _hi(data.cfg.interval_level)]
    q = np.stack([res["lower"], res["upper"]], -1)  # (N, H, C, 2)
    if split == "valid":
        cal = {"q": q, "actual": res["actual"], "origins": res["origins"]}
    else:
        v = evaluate_windows(model, data, "valid", baselines=False)
        qv = np.stack([v["lower"], v["upper"]], -1)
        cal = {"q": qv, "actual": v["actual"], "origins": v["origins"]}
        if method == "rolling":
            cal = {"q": np.concatenate([qv, q]), "actual": np.concatenate([v["actual"],
                                                                           res["actual"]]),
                   "origins": v["origins"] + res["origins"]}
    out = calibrate(q, probs, cal, kind="cqr", method=method, origins=res["origins"],
                    window=window)
    return out[..., 0], out[..., 1]


def scaled_windows(model: nn.Module, data: ForecastData, origins: list[tuple[int, np.ndarray]],
                   probs: list[float]) -> dict[str, Any]:
    """The head's quantiles at ``probs`` and the actuals of the windows at ``origins`` (pairs
    ``(series index, (n,) origins)``, each window's ``H`` targets observed), in the model's
    scaled units (the same for every series, before the scaler is undone):
    ``{"q": (N, H, C, P), "actual": (N, H, C), "origins": [(series, t)]}``."""
    from rnnkit.models.forecast import quantile_forecast

    origins = [(i, o) for i, o in origins if len(o)]
    g = (np.concatenate([data.offsets[i] + o for i, o in origins]) if origins
         else np.zeros(0, dtype=np.int64))
    was = model.training
    model.eval()
    params = _model_params(model, data, g, data.cfg.eval_batch_size)
    model.train(was)
    qs = quantile_forecast(params, model.config, probs).numpy() if len(g) else None
    qq, acts, org, start = [], [], [], 0
    for i, o in origins:
        sid, n = data.ids[i], len(o)
        z = data.z[data.offsets[i]:data.offsets[i] + len(data.series[i])]  # (T, C) scaled
        fut = o[:, None] + np.arange(data.H)  # (n, H)
        z_last = z[o[:, None] + np.arange(-max(data.lag, 1), 0)]
        st = data.steps(sid, data.series[i].index)
        qq.append(data.pre.from_model(qs[start:start + n], sid, st[fut], z_last))
        acts.append(z[fut])
        org += [(sid, int(t)) for t in o]
        start += n
    H, C, P = data.H, data.C, len(probs)
    return {"q": np.concatenate(qq) if qq else np.zeros((0, H, C, P)),
            "actual": np.concatenate(acts) if acts else np.zeros((0, H, C)), "origins": org}


def min_windows(level: float) -> int:
    """The fewest calibration windows whose conformal rank bounds a central ``level`` interval
    (4 for 80%, 19 for 95%)."""
    return next(k for k in range(1, 100_000) if conformal_rank(k, level) <= k)


def calibrate_forecast(q: np.ndarray, level: float, cal: dict[str, Any], *, method: str,
                       origin: tuple[str, int], window: int, where: str) -> np.ndarray:
    """One forecast's central interval ``q`` (H, C, 2) at ``level``, calibrated (CQR) on the
    windows ``cal`` (:func:`scaled_windows`): ``method`` "split" (all of them) or "rolling" (the
    last ``window`` whose step-``h`` target is observed before ``origin``).  Too few calibration
    windows to bound the interval (the conformal rank above their number) raise, naming
    ``where``."""
    H = q.shape[0]
    if method == "split":
        m = len(cal["actual"])
    else:
        t = np.array([tj for s, tj in cal["origins"] if s == origin[0]], dtype=np.int64)
        m = min(int((t + H - 1 < origin[1]).sum()), window)  # the last step has the fewest
    need = min_windows(level)
    if m < need:
        raise ValueError(
            f"{where}: {method} calibration of the {level:.0%} interval has {m} complete "
            f"calibration windows; it needs at least {need} (else the interval is unbounded): "
            f"give a longer history or use --calibration none")
    return calibrate(q[None], [_lo(level), _hi(level)], cal, kind="cqr", method=method,
                     origins=[origin], window=window)[0]


class IntervalCalibrator:
    """How ``forecast predict`` and the forecast server calibrate one forecast's central
    interval: ``method`` (None: the recipe's ``data.interval_calibration``; a point head has no
    interval, so "none") "rolling" on the last ``data.calibration_window`` complete windows of
    the history given, "split" on every validation window of the recipe's own data file (read
    here, from ``data_dir`` or the recipe's), or "none".  Works in the model's scaled units."""

    def __init__(self, model: nn.Module, config: Any, state: dict[str, Any], *,
                 method: str | None = None, data_dir: str | None = None):
        import copy

        d = config.data
        method = d.interval_calibration if method is None else method
        if method not in CALIBRATIONS:
            raise ValueError(f"--calibration {method}: expected none, split or rolling")
        self.method = "none" if config.model.head == "point" else method
        self.model, self.level, self.window = model, d.interval_level, d.calibration_window
        self.probs = [_lo(self.level), _hi(self.level)]
        self.cal: dict[str, Any] | None = None
        if self.method == "split":  # the recipe's validation windows, computed once
            try:
                rec = ForecastData(copy.deepcopy(d), data_dir=data_dir, state=state)
            except (OSError, ValueError) as e:
                raise ValueError(
                    f"split calibration of the interval reads the recipe's validation windows, "
                    f"and its data could not be read ({e}); give the directory that holds "
                    f"{d.path!r} (--data-dir), or use --calibration rolling or none") from e
            self.cal = scaled_windows(model, rec, rec.origins["valid"], self.probs)

    def history(self, d: Any) -> tuple[int, int]:
        """Rows of history (data config ``d``) a calibrated forecast needs at least, and uses
        at most (rolling: enough complete windows to bound the interval, and all K)."""
        need = d.input_length + d.difference
        if self.method != "rolling":
            return need, need
        k = min_windows(self.level)
        return need + d.horizon - 1 + k, need + d.horizon - 1 + self.window

    def __call__(self, data: ForecastData, i: int, q: np.ndarray, where: str) -> np.ndarray:
        """Series ``i``'s (of ``data``, history of ``T`` rows) forecast quantiles ``q`` (H, C, P)
        at (lo, ..., hi) in scaled units, their outer pair calibrated (a new array)."""
        if self.method == "none":
            return q
        T = len(data.series[i])
        cal = self.cal
        if self.method == "rolling":  # the last K complete windows of this history
            first = max(data.L + data.lag, T - data.H + 1 - self.window)
            cal = scaled_windows(self.model, data, [(i, np.arange(first, T - data.H + 1))],
                                 self.probs)
        out = q.astype(np.float64).copy()
        out[..., [0, -1]] = calibrate_forecast(q[..., [0, -1]], self.level, cal,
                                               method=self.method, origin=(data.ids[i], T),
                                               window=self.window, where=where)
        return out


# --------------------------------------------------------------------------- scores and reports


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


def _probs(levels: tuple[float, ...]) -> list[float]:
    return sorted(set(CRPS_LEVELS) | {_lo(a) for a in levels} | {_hi(a) for a in levels})


def interval_reports(model: nn.Module | None, data: ForecastData, *,
                     levels: tuple[float, ...] = (0.8, 0.95), split: str = "test",
                     calibrations: tuple[str, ...] = CALIBRATIONS,
                     window: int | None = None) -> dict[str, dict[str, Any]]:
    """:func:`interval_report` under each calibration, from one pass over the windows.
    ``window`` None: each forecaster's ``K`` chosen on validation (:func:`choose_window`)."""
    for c in calibrations:
        if c not in CALIBRATIONS:
            raise ValueError(f"calibration {c!r}: expected one of {', '.join(CALIBRATIONS)}")
    probs = _probs(levels)
    head = model is not None and model.config.head != "point"
    val = evaluate_windows(model if head else None, data, "valid",
                           quantiles=probs if head else None)
    test = evaluate_windows(model, data, split, quantiles=probs if head else None)
    P = len(probs)
    fc: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}  # name -> (kind, val q, test q)
    if head:
        fc["model"] = ("cqr", val["quantiles"], test["quantiles"])
    for name in ("naive", "seasonal_naive", "linear_ar"):
        fc[name] = ("residual", np.repeat(val["forecasts"][name][..., None], P, -1),
                    np.repeat(test["forecasts"][name][..., None], P, -1))
    actual = test["actual"]
    both = {"q": None, "actual": np.concatenate([val["actual"], actual]),
            "origins": val["origins"] + test["origins"]}
    reps: dict[str, dict[str, Any]] = {}
    for c in calibrations:
        rep: dict[str, Any] = {"levels": list(levels), "crps_levels": CRPS_LEVELS,
                               "windows": len(test["origins"]), "calibration": c}
        for name, (kind, qv, qt) in fc.items():
            if c == "none":
                if kind == "residual":
                    continue
                q = qt
            elif c == "split":
                q = calibrate(qt, probs, {"q": qv, "actual": val["actual"],
                                          "origins": val["origins"]}, kind=kind, method="split")
            else:
                K = window
                if K is None:
                    K, err = choose_window(qv, val["actual"], val["origins"], probs, kind=kind,
                                           levels=levels)
                    rep.setdefault("window_choice", {})[name] = err
                cal = dict(both, q=np.concatenate([qv, qt]))
                q = calibrate(qt, probs, cal, kind=kind, method="rolling",
                              origins=test["origins"], window=K)
                rep.setdefault("window", {})[name] = K
            rep[name] = interval_scores(actual, q, probs, levels)
            rep[name]["mse"] = test["metrics"][name]["mse"]
        reps[c] = rep
    return reps


def interval_report(model: nn.Module | None, data: ForecastData, *,
                    levels: tuple[float, ...] = (0.8, 0.95), split: str = "test",
                    calibration: str = "split", window: int | None = None) -> dict[str, Any]:
    """Interval scores of the model (its head's quantiles, if not a point head) and of each
    baseline (point forecast plus calibrated residual shifts) on every window of ``split``,
    under ``calibration`` (none, split or rolling; see the module docstring); also each one's
    MSE.  ``window``: K for rolling (None: chosen on validation)."""
    return interval_reports(model, data, levels=levels, split=split,
                            calibrations=(calibration,), window=window)[calibration]
