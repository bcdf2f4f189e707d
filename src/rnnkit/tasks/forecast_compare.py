"""Is one forecaster's lower error more than test-sample noise?  The Diebold-Mariano test.

Two forecasters scored on the same windows give, per forecast origin ``t``, a loss differential
``d_t = L(a)_t - L(b)_t`` (here the squared error averaged over the ``H`` steps and the
channels of the window).  Windows that start one step apart share ``H - 1`` targets, so ``d_t``
is autocorrelated up to lag ``H - 1``; the test divides the mean differential by a long-run
standard error, the sum of the autocovariances up to that lag with equal weights (Diebold and
Mariano 1995), for which Harvey, Leybourne and Newbold's (1997) small-sample factor was derived;
the statistic is read against Student's t with ``n - 1`` degrees of freedom.  Where that sum is
not positive, Newey-West's Bartlett weights (never negative, but a variance too small at these
lags: the test rejects a true null more often) are used instead, and the record says so.

Windows of several series are taken series by series as one sequence: the test then ignores
what the series share at the same time steps, so its p-values are too small there (the record
counts the series).

The test is about the test windows as a sample of the series' future: it says nothing about
the seed-to-seed spread of a trained model, which the benchmark's seeds measure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["diebold_mariano", "compare_checkpoints", "null_cutoff"]


def null_cutoff(n: int, lag: int, *, reps: int = 1000, level: float = 0.05,
                seed: int = 0) -> dict[str, float]:
    """How :func:`diebold_mariano` behaves under a true null at ``n`` windows and ``lag``, by
    simulation: loss differences that overlap as ``lag + 1``-step windows do (each a mean of
    ``lag + 1`` consecutive standard normal shocks, so equal expected loss), ``reps`` draws.
    When ``n`` is only a few times ``lag + 1`` the long-run variance is estimated from a few
    independent stretches and the nominal p-value is too small.

    Returns ``{"n", "lag", "reps", "level", "size"}`` (the share of draws with p below
    ``level``) and ``"cutoff"`` (the ``level`` quantile of the simulated p-values: the p below
    which a test rejects ``level`` of the time under this null).  An assumption-laden check,
    not an exact correction: real loss differences are neither normal nor a plain moving mean.
    """
    if reps < 1:
        raise ValueError(f"null_cutoff: reps={reps}; expected at least 1 draw")
    rng = np.random.default_rng(seed)
    h = lag + 1
    ps = np.empty(reps)
    zeros = np.zeros(n)
    for i in range(reps):
        d = np.convolve(rng.standard_normal(n + h - 1), np.ones(h) / h, "valid")
        ps[i] = diebold_mariano(d, zeros, lag=lag)["p_value"]
    return {"n": n, "lag": lag, "reps": reps, "level": level,
            "size": float((ps < level).mean()), "cutoff": float(np.quantile(ps, level))}


def diebold_mariano(loss_a: Any, loss_b: Any, lag: int = 0) -> dict[str, float]:
    """Diebold-Mariano test of equal expected loss, two-sided.

    Args:
        loss_a, loss_b: per-origin losses of the two forecasters on the same windows, in time
            order (1-D, equal length).
        lag: the autocorrelation the long-run variance allows for: ``H - 1`` for ``H``-step
            windows at every origin (0: independent losses).

    Returns ``{"n", "lag", "mean_a", "mean_b", "mean_diff", "relative_diff" (mean_diff /
    mean_b), "stat", "p_value", "kernel"}`` ("uniform", or "bartlett" where the uniform sum is
    not positive); a negative statistic: ``a`` has the lower loss.

    Raises:
        ValueError: unequal or too few losses (at most ``lag + 1``), or not finite.
    """
    a = np.asarray(loss_a, dtype=np.float64).ravel()
    b = np.asarray(loss_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"diebold_mariano: {a.size} losses against {b.size}; expected the same "
                         "windows for both forecasters")
    if lag < 0:
        raise ValueError(f"diebold_mariano: lag {lag}; expected 0 or more")
    n = a.size
    if n <= lag + 1:
        raise ValueError(f"diebold_mariano: {n} losses for lag {lag}; expected more than "
                         f"{lag + 1}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("diebold_mariano: a loss is not finite")
    d = a - b
    mean = float(d.mean())
    e = d - mean
    gamma = [float(e @ e) / n] + [float(e[k:] @ e[:-k]) / n for k in range(1, lag + 1)]
    kernel, var = "uniform", gamma[0] + 2.0 * sum(gamma[1:])
    if var <= 0.0:
        kernel = "bartlett"
        var = gamma[0] + 2.0 * sum((1.0 - k / (lag + 1)) * g for k, g in enumerate(gamma[1:], 1))
    out = {"n": n, "lag": lag, "mean_a": float(a.mean()), "mean_b": float(b.mean()),
           "mean_diff": mean, "relative_diff": mean / float(b.mean()) if b.mean() else math.nan,
           "kernel": kernel}
    if var <= 0.0:  # a constant difference: none (p 1) or certain (p 0)
        return out | {"stat": 0.0 if mean == 0.0 else math.copysign(math.inf, mean),
                      "p_value": 1.0 if mean == 0.0 else 0.0}
    h = lag + 1
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat = hln * mean / math.sqrt(var / n)
    from scipy.stats import t as student_t

    return out | {"stat": stat, "p_value": float(2.0 * student_t.sf(abs(stat), n - 1))}


def _window_losses(loaded: tuple, split: str, data_dir: str | None,
                   baselines: bool = True) -> dict[str, Any]:
    from rnnkit.tasks.forecast_data import ForecastData
    from rnnkit.tasks.forecast_task import evaluate_windows

    model, state, cfg = loaded
    data = ForecastData(cfg.data, data_dir=data_dir, state=state)
    r = evaluate_windows(model, data, split, baselines=baselines)
    axes = tuple(range(1, r["actual"].ndim))
    losses = {k: ((f - r["actual"]) ** 2).mean(axis=axes) for k, f in r["forecasts"].items()
              if k in ("model", "naive", "seasonal_naive", "linear_ar")}
    return {"losses": losses, "origins": list(r["origins"]), "actual": r["actual"],
            "horizon": data.H, "series": len({sid for sid, _ in r["origins"]})}


def compare_checkpoints(checkpoints_a: list[str | Path], checkpoints_b: list[str | Path], *,
                        split: str = "test", data_dir: str | None = None) -> dict[str, Any]:
    """Diebold-Mariano tests of ``a`` (one or more checkpoints, e.g. one per seed) against
    ``b`` and against the fixed baselines, on every window of ``split``.

    Each side's per-window squared error (mean over steps and channels, the scale the
    checkpoints report) is averaged over its checkpoints, so that the test's mean difference is
    the difference of the seeds' mean MSEs.  Every checkpoint must see the same windows with
    the same targets; anything else raises.

    Returns ``{"split", "windows", "series", "horizon", "lag", "a_vs_b": {...},
    "a_vs_<baseline>": {...}}`` (each :func:`diebold_mariano`'s record).
    """
    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    if not checkpoints_a or not checkpoints_b:
        raise ValueError("compare_checkpoints: expected at least one checkpoint on each side")
    every = [*checkpoints_a, *checkpoints_b]
    loaded = [load_forecast_checkpoint(c) for c in every]  # every path and config, first
    first = loaded[0][2].data
    for c, (_, _, cfg) in zip(every, loaded):
        for field in ("horizon", "input_length", "targets"):
            if getattr(cfg.data, field) != getattr(first, field):
                raise ValueError(f"{c}: data.{field} {getattr(cfg.data, field)!r}, "
                                 f"{every[0]}'s is {getattr(first, field)!r}; expected the same "
                                 "windows on both sides")
    # the baselines once, on the first checkpoint's windows (the others must be the same)
    runs = [_window_losses(x, split, data_dir, baselines=i == 0) for i, x in enumerate(loaded)]
    ref = runs[0]
    for c, r in zip(every, runs):
        if r["origins"] != ref["origins"]:
            raise ValueError(f"{c}: {len(r['origins'])} {split} windows, {every[0]}'s "
                             f"{len(ref['origins'])}, or at other origins; expected the same")
        if not np.allclose(r["actual"], ref["actual"], rtol=1e-6, atol=1e-9):
            raise ValueError(f"{c}: its {split} targets differ from {every[0]}'s (another "
                             "scaling or metric space?); expected the same")
    k = len(checkpoints_a)
    a = np.mean([r["losses"]["model"] for r in runs[:k]], axis=0)
    b = np.mean([r["losses"]["model"] for r in runs[k:]], axis=0)
    lag = ref["horizon"] - 1
    out: dict[str, Any] = {"split": split, "windows": int(a.size), "series": ref["series"],
                           "horizon": ref["horizon"], "lag": lag,
                           "a_vs_b": diebold_mariano(a, b, lag)}
    for name in ("naive", "seasonal_naive", "linear_ar"):
        if name in ref["losses"]:
            out[f"a_vs_{name}"] = diebold_mariano(a, ref["losses"][name], lag)
    return out
