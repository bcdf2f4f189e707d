"""The forecasting pipeline: its TaskSpec, and train-and-report, evaluate, predict and backtest.

The parts, bottom up: :mod:`rnnkit.tasks.forecast_data` (the ``data`` section, the series
cut into windows), :mod:`rnnkit.tasks.forecast_task` (metrics against the baselines, the
Task the Trainer runs, checkpoints) and this module, which registers the pipeline and
re-exports the parts' public names.  :mod:`rnnkit.commands.forecast` is the command line
(``rnnkit forecast train|evaluate|predict|backtest``).

:func:`train_forecast` runs the Trainer, then scores the best checkpoint and the baselines on the
test split and writes ``report.json``, ``forecast.png`` (actuals, forecast, interval) and
``test_forecasts.csv`` into the run directory.  ``predict_checkpoint`` forecasts the ``horizon``
steps after the end of each series in ``--data`` (known-future covariates for those steps go in
trailing rows with empty targets) and writes them to CSV.  ``backtest`` retrains on
expanding windows: fold ``k`` of ``n`` drops the last ``(n-1-k) * step`` steps and tests on
the end of what is left (rolling origin with refitting); under ``data.protocol: ltsf`` the fold
moves every split boundary of the protocol that many steps earlier instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnnkit.models.forecast import ForecastModelConfig
from rnnkit.tasks.export_steps import ExportSpec, forecast_export_spec
from rnnkit.tasks.forecast_data import ASSET, ForecastData, ForecastDataConfig, resolve_path
from rnnkit.tasks.forecast_intervals import IntervalCalibrator, calibrate_interval
from rnnkit.tasks.forecast_task import (
    ForecastTask,
    blend_checkpoint,
    build_forecast_task,
    evaluate_windows,
    forecast_metrics,
    load_forecast_checkpoint,
)
from rnnkit.tasks.predictors import ForecastPredictor, maybe_int8
from rnnkit.train.task import TaskSpec, register_task

__all__ = [
    "ForecastDataConfig",
    "ForecastData",
    "ForecastTask",
    "build_forecast_task",
    "forecast_metrics",
    "evaluate_windows",
    "load_forecast_checkpoint",
    "resolve_path",
    "ASSET",
    "train_forecast",
    "evaluate_checkpoint",
    "predict_checkpoint",
    "backtest",
    "blend_checkpoint",
    "format_report",
]

_NAMES = ("model", "naive", "seasonal_naive", "linear_ar")


def format_report(metrics: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per forecaster, one column per metric."""
    cols = ["mse", "mae", "rmse", "mape", "smape", "mase", "coverage"]
    cols = [c for c in cols if any(c in m for m in metrics.values())]
    lines = [f"{'':16s}" + "".join(f"{c:>11s}" for c in cols)]
    for name, m in metrics.items():
        lines.append(
            f"{name:16s}" + "".join(f"{m[c]:11.4f}" if c in m else f"{'':11s}" for c in cols)
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- outputs


def _plot(path: Path, title: str, panels: list[dict[str, Any]]) -> None:
    """One panel per (series, target): history, actual future, forecast, interval, baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.8 * len(panels)), squeeze=False)
    for ax, p in zip(axes[:, 0], panels):
        ax.plot(p["hist_t"], p["hist"], color="black", lw=1, label="actual")
        if p.get("actual") is not None:
            ax.plot(p["t"], p["actual"], color="black", lw=1)
        if p.get("lower") is not None:
            ax.fill_between(p["t"], p["lower"], p["upper"], color="tab:blue", alpha=0.25,
                            label=f"{p['level']:.0%} interval")
        ax.plot(p["t"], p["forecast"], color="tab:blue", lw=1.5, label="forecast")
        if p.get("baseline") is not None:
            ax.plot(p["t"], p["baseline"], color="tab:gray", ls="--", lw=1, label="seasonal naive")
        ax.set_title(p["title"], fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        if np.issubdtype(np.asarray(p["hist_t"]).dtype, np.datetime64):
            # dates: as many ticks as fit, labelled concisely (no overlapping full dates)
            locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _eval_panels(data: Any, r: dict[str, Any], max_panels: int = 4) -> list[dict[str, Any]]:
    """Panels for the last window of each series (metric space)."""
    panels = []
    last = {}
    for n, (sid, t) in enumerate(r["origins"]):
        last[sid] = (n, t)
    for sid, (n, t) in list(last.items())[:max_panels]:
        i = data.ids.index(sid)
        s = data.series[i]
        z = data.z[data.offsets[i]:data.offsets[i] + len(s)]
        h0 = max(0, t - max(data.L, 2 * data.H))
        hist = data._metric(data.pre, z[h0:t], sid)
        for c, name in enumerate(data.ts.targets[:max(1, max_panels // max(1, len(last)))]):
            panels.append(
                {
                    "title": (
                        f"{Path(data.path).name} {('series ' + sid + ' ') if sid else ''}"
                        f"{name}: last test window"
                    ),
                    "hist_t": s.index[h0:t],
                    "hist": hist[:, c],
                    "t": s.index[t : t + data.H],
                    "actual": r["actual"][n, :, c],
                    "forecast": r["forecasts"]["model"][n, :, c],
                    "lower": r["lower"][n, :, c] if "lower" in r else None,
                    "upper": r["upper"][n, :, c] if "upper" in r else None,
                    "level": data.cfg.interval_level,
                    "baseline": r["forecasts"].get("seasonal_naive", [None] * (n + 1))[n][:, c]
                    if "seasonal_naive" in r["forecasts"]
                    else None,
                }
            )
    return panels


def _eval_frame(data: Any, r: dict[str, Any], stride: int | None) -> Any:
    """Long table of forecasts (a DataFrame); ``stride`` keeps every k-th origin per series,
    counted from the last."""
    import numpy as np
    import pandas as pd

    keep = np.ones(len(r["origins"]), dtype=bool)
    if stride and stride > 1:
        by: dict[str, list[int]] = {}
        for n, (sid, _) in enumerate(r["origins"]):
            by.setdefault(sid, []).append(n)
        keep[:] = False
        for ns in by.values():
            keep[ns[::-1][::stride]] = True
    rows = []
    lvl = int(round(100 * data.cfg.interval_level))
    for n in np.flatnonzero(keep):
        sid, t = r["origins"][n]
        s = data.series[data.ids.index(sid)]
        for h in range(data.H):
            for c, name in enumerate(data.ts.targets):
                row = {
                    "series_id": sid,
                    "origin": s.index[t],
                    "timestamp": s.index[t + h],
                    "step": h + 1,
                    "target": name,
                    "actual": r["actual"][n, h, c],
                }
                for k, v in r["forecasts"].items():
                    row["forecast" if k == "model" else k] = v[n, h, c]
                if "lower" in r:
                    row[f"lower_{lvl}"], row[f"upper_{lvl}"] = (
                        r["lower"][n, h, c],
                        r["upper"][n, h, c],
                    )
                rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- functions


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    plot: str | Path | None = None,
    csv: str | Path | None = None,
    csv_stride: int | None = None,
    calibration: str | None = None,
) -> dict[str, Any]:
    """Metrics of a checkpoint and of the baselines on every window of ``split``.

    ``data`` replaces the recipe's file (same columns); the checkpoint's preprocessing is reused.
    ``calibration`` (None: the recipe's ``data.interval_calibration``): "none", "split" or
    "rolling" calibration of the head's interval and its coverage
    (:func:`~rnnkit.tasks.forecast_intervals.calibrate_interval`).
    Returns ``{"split", "windows", "horizon", "metric_space", "metrics": {name: {...}},
    "calibration"}``.
    """

    model, state, cfg = load_forecast_checkpoint(checkpoint)
    d = cfg.data
    if data is not None:
        d.path = data
    fd = ForecastData(d, data_dir=data_dir, state=state)
    if split not in ("train", "valid", "test"):
        raise ValueError(f"--split {split}: expected train, valid or test")
    r = evaluate_windows(model, fd, split)
    method = d.interval_calibration if calibration is None else calibration
    if calibration is None and (split == "train" or (split, method) == ("valid", "split")):
        method = "none"  # the recipe's calibration where it applies (test; valid if rolling)
    if method not in ("none", "split", "rolling"):
        raise ValueError(f"--calibration {method}: expected none, split or rolling")
    if method != "none" and "lower" in r:
        r["lower"], r["upper"] = calibrate_interval(model, fd, r, split, method=method,
                                                    window=d.calibration_window)
        inside = (r["actual"] >= r["lower"]) & (r["actual"] <= r["upper"])
        r["metrics"]["model"]["coverage"] = float(inside.mean())
    if plot is not None:
        _plot(
            Path(plot),
            f"{cfg.model.cell} {cfg.model.strategy} ({cfg.model.head}), horizon {fd.H}",
            _eval_panels(fd, r),
        )
    if csv is not None:
        Path(csv).parent.mkdir(parents=True, exist_ok=True)
        _eval_frame(fd, r, csv_stride).to_csv(csv, index=False)
    return {
        "split": split,
        "windows": len(r["origins"]),
        "horizon": fd.H,
        "metric_space": d.metric_space,
        "metrics": r["metrics"],
        "calibration": method,
    }


def _horizon_covariates(fd: Any, s: Any, idx: Any) -> Any:
    """Scaled file covariates for the forecast steps ``idx`` (H, F_file); a missing one is an
    error."""
    import numpy as np
    import pandas as pd

    from rnnkit.data.timeseries import TimeSeriesError

    names = fd.ts.future_covariates
    have = s.horizon_index if s.horizon_index is not None else pd.DatetimeIndex([])
    where = f" of series {s.id!r}" if s.id else ""
    if len(have) > len(idx):  # more empty-target rows than steps to forecast: not all are future
        raise TimeSeriesError(
            f"{fd.path}: row {s.horizon_rows[0]}, column {fd.ts.targets[0]!r}: {len(have)} rows "
            f"after the last target (row {s.rows[-1]}{where}) have empty targets, more than the "
            f"horizon of {len(idx)}; a history must end with an observed value"
        )
    if not names:
        return np.zeros((len(idx), 0))
    pos = have.get_indexer(idx)
    if (pos < 0).any():
        k = int(np.flatnonzero(pos < 0)[0])
        raise TimeSeriesError(
            f"{fd.path}: column {names[0]!r}: known-future covariate missing at prediction time "
            f"for {idx[k]} (step {k + 1} of {len(idx)} after the last target at row "
            f"{s.rows[-1]}{where}); add rows for the next {len(idx)} steps with the covariates and "
            f"empty targets"
        )
    vals = s.horizon_future[pos]
    if np.isnan(vals).any():
        k, c = (int(v[0]) for v in np.nonzero(np.isnan(vals)))
        raise TimeSeriesError(
            f"{fd.path}: row {s.horizon_rows[pos[k]]}, column {names[c]!r}: known-future "
            f"covariate missing at prediction time (empty cell for {idx[k]}{where})"
        )
    loc, scale = fd.cov_scaler.params(s.id)
    return (vals - loc[fd.P:]) / scale[fd.P:]


def predict_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    *,
    output: str | Path | None = None,
    plot: str | Path | None = None,
    calibration: str | None = None,
    data_dir: str | None = None,
) -> Any:
    """Forecast the ``horizon`` steps after the end of every series in ``data``.

    Returns (and writes to ``output`` as CSV) ``series_id, timestamp, step, target, forecast,
    lower_<level>, upper_<level>`` (a DataFrame) in original units; ``attrs["calibration"]``
    names how the interval was calibrated.

    ``calibration`` (None: the recipe's ``data.interval_calibration``) calibrates a quantile or
    Gaussian head's interval by CQR in the model's scaled units, as ``forecast evaluate`` does:
    "rolling" on the last ``data.calibration_window`` complete windows of each series' own
    history (windows whose ``H`` targets all lie in ``data``), "split" on every validation
    window of the recipe's data file (looked up in ``data_dir``, else the recipe's), "none" not
    at all.
    """
    import numpy as np
    import pandas as pd
    import torch

    from rnnkit.data.timeseries import TimeSeriesError, future_index
    from rnnkit.models.forecast import point_forecast, quantile_forecast

    model, state, cfg = load_forecast_checkpoint(checkpoint)
    d = cfg.data
    calibrate = IntervalCalibrator(model, cfg, state, method=calibration, data_dir=data_dir)
    lvl = d.interval_level
    probs = [(1 - lvl) / 2, 0.5, (1 + lvl) / 2]
    d.end_offset = 0
    d.protocol = "none"  # the benchmark's split rows do not apply to a history to forecast from
    fd = ForecastData(d, state=state, path=data, future_rows=True)
    rows, panels = [], []
    for i, s in enumerate(fd.series):
        T, need = len(s), fd.L + fd.lag
        if T < need:
            raise TimeSeriesError(
                f"{fd.path}: column {fd.ts.targets[0]!r}: series{' ' + repr(s.id) if s.id else ''} "
                f"has {T} steps (rows {s.rows[0]}..{s.rows[-1]}); the model needs the last "
                f"{need} (input_length={fd.L}, difference={fd.lag})"
            )
        idx = future_index(s.index[-1], fd.ts.freq, fd.H)
        xf = fd.known_future(_horizon_covariates(fd, s, idx), idx, s.id)  # (H, F)
        g = fd.offsets[i] + T
        x = fd.inputs[g - fd.L:g][None]  # (1, L, C+P+F)
        with torch.no_grad():
            p = model(x, torch.tensor(xf, dtype=torch.float32)[None])  # (1, H, C, K)
        z_last = fd.z[g - max(fd.lag, 1):g][None]  # (1, lag, C)
        steps = fd.steps(s.id, idx)[None]  # (1, H)
        pt = fd.pre.unscale(
            fd.pre.from_model(point_forecast(p, cfg.model).numpy(), s.id, steps, z_last), s.id
        )[0]
        q = fd.pre.from_model(quantile_forecast(p, cfg.model, probs).numpy(), s.id, steps, z_last)[
            0
        ]  # (H, C, 3), scaled
        q = calibrate(fd, i, q, f"{fd.path}: series {s.id!r}" if s.id else str(fd.path))
        q = fd.pre.unscale(np.moveaxis(q, -1, 0), s.id)  # (3, H, C)
        for h in range(fd.H):
            for c, name in enumerate(fd.ts.targets):
                row = {
                    "series_id": s.id,
                    "timestamp": idx[h],
                    "step": h + 1,
                    "target": name,
                    "forecast": pt[h, c],
                }
                if cfg.model.head != "point":
                    row[f"lower_{round(100 * lvl)}"], row[f"upper_{round(100 * lvl)}"] = (
                        q[0, h, c],
                        q[2, h, c],
                    )
                rows.append(row)
        h0 = max(0, T - max(fd.L, 3 * fd.H))
        for c, name in enumerate(fd.ts.targets[:3]):
            if len(panels) < 4:
                panels.append(
                    {
                        "title": f"{Path(fd.path).name} {s.id} {name}: forecast",
                        "hist_t": s.index[h0:],
                        "hist": s.target[h0:, c],
                        "t": idx,
                        "forecast": pt[:, c],
                        "level": lvl,
                        "lower": q[0, :, c] if cfg.model.head != "point" else None,
                        "upper": q[2, :, c],
                    }
                )
    out = pd.DataFrame(rows)
    out.attrs["calibration"] = calibrate.method
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(output, index=False)
    if plot is not None:
        _plot(Path(plot), f"{cfg.model.cell} {cfg.model.strategy}: next {fd.H} steps", panels)
    return out


def train_forecast(
    recipe: str | Path | None,
    *,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    data_dir: str | None = None,
    resume: str | Path | None = None,
    console=None,
) -> dict[str, Any]:
    """Train a recipe, then score the best checkpoint against the baselines on the test split.

    Writes ``report.json``, ``forecast.png`` and ``test_forecasts.csv`` (non-overlapping test
    windows) into the run directory and returns the summary with ``"report"`` added.
    ``resume`` continues a killed run from its ``last/`` checkpoint (the recipe may then be
    ``None``: the run's saved config is used).
    """
    from rnnkit.train.run import recipe_or_resume, run_training

    cfg, name = recipe_or_resume(recipe, overrides, resume)
    where = recipe if recipe is not None else f"--resume {resume}"
    if cfg.task != "forecast":
        raise ValueError(f"{where}: task {cfg.task!r}; rnnkit forecast train needs task: forecast")
    summary = run_training(
        cfg, recipe_name=name, out=out, resume=resume, data_dir=data_dir, console=console
    )
    run_dir = Path(summary["run_dir"])
    split = "test" if "test" in summary else "valid"
    # no validation: last
    ckpt = run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "last"
    report = evaluate_checkpoint(
        ckpt,
        split=split,
        data_dir=data_dir,
        plot=run_dir / "forecast.png",
        csv=run_dir / f"{split}_forecasts.csv",
        csv_stride=cfg.data.horizon,
    )
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    summary["report"] = report
    return summary


def backtest(
    recipe: str | Path,
    *,
    folds: int = 3,
    step: int | None = None,
    overrides: list[str] | None = None,
    out: str | Path = "runs/backtest",
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Rolling-origin backtest with refitting (see the module docstring).

    Returns ``{"folds": [{"end_offset", "metrics"}], "mean": {name: {metric: mean over folds}}}``.
    """
    import numpy as np

    from rnnkit.train.config import load_recipe
    from rnnkit.train.run import run_training

    if folds < 1:
        raise ValueError(f"--folds {folds}: expected a positive integer")
    if step is not None and step < 1:
        raise ValueError(f"--step {step}: expected a positive number of steps")
    base = load_recipe(recipe, overrides)
    step = step or base.data.horizon
    results = []
    for k in range(folds):
        off = (folds - 1 - k) * step
        cfg = load_recipe(
            recipe, list(overrides or []) + [f"data.end_offset={off + base.data.end_offset}"]
        )
        run_dir = Path(out) / f"fold{k}"
        run_training(cfg, recipe_name=f"fold{k}", out=run_dir, data_dir=data_dir, test_split=None)
        r = evaluate_checkpoint(run_dir / "best", split="test", data_dir=data_dir)
        results.append({"end_offset": off, "windows": r["windows"], "metrics": r["metrics"]})
    mean = {
        n: {
            m: float(np.mean([f["metrics"][n][m] for f in results]))
            for m in results[0]["metrics"][n]
        }
        for n in results[0]["metrics"]
    }
    report = {"folds": results, "mean": mean, "step": step}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "backtest.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _predictor(directory: Path, int8: bool) -> ForecastPredictor:
    model, state, cfg = load_forecast_checkpoint(directory)
    return ForecastPredictor(maybe_int8(model, int8), state, cfg)


def _export(directory: Path) -> ExportSpec:
    return forecast_export_spec(*load_forecast_checkpoint(directory))


SPEC = register_task(TaskSpec(
    name="forecast",
    data_config=ForecastDataConfig,
    model_config=ForecastModelConfig,
    build=build_forecast_task,
    description="time-series forecasting (single-step, recursive, direct, seq2seq) with baselines",
    evaluate=evaluate_checkpoint,
    predictor=_predictor,
    export=_export,
))
