"""Time-series forecasting: data -> windows -> Forecaster -> Trainer -> metrics vs baselines.

A recipe names a file (:func:`rnnkit.data.timeseries.read_timeseries`), its columns, the
splits and the preprocessing (:class:`rnnkit.data.windows.Preprocessor`, fitted on the
training split only), and a :class:`~rnnkit.models.forecast.ForecastModelConfig`.  Each
series of length ``T`` is split chronologically (``split_rows`` or ``val_size``/``test_size``,
a count of steps if >= 1, else a fraction of ``T``); a split's windows are the origins whose
targets lie inside it, their inputs reaching back (the Informer protocol).

Metrics (over every window, step and target; ``v`` actuals, ``f`` forecasts, in the
``metric_space``: "original" units or the "scaled" space, e.g. standardised for Informer)::

    MSE = mean (v - f)^2      MAE = mean |v - f|      RMSE = sqrt(MSE)
    MAPE  = 100 mean |v - f| / |v|                    sMAPE = 200 mean |v - f| / (|v| + |f|)
    MASE  = mean |v - f| / s,  s = mean_t |v_t - v_{t-m}| on the series' training split (m = season_length)

Every evaluation also scores the baselines on the same windows: naive (last value), seasonal
naive (last season) and a linear AR(p) fitted on the training split.  Evaluating every origin
of the test split with one trained model is rolling-origin evaluation; :func:`backtest` (in
:mod:`rnnkit.tasks.forecast_eval`) retrains on expanding windows.

Example::

    cfg = build_run_config({"task": "forecast", "data": {"path": "air.csv", "horizon": 12,
                            "input_length": 24, "season_length": 12}, "model": {"cell": "gru"}})
    task = ForecastTask(cfg)          # what rnnkit's Trainer runs
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from rnnkit.data.timeseries import (
    TimeSeriesData,
    TimeSeriesError,
    calendar_features,
    read_timeseries,
    steps_between,
)
from rnnkit.data.windows import Preprocessor, Scaler, window_origins
from rnnkit.models.forecast import (
    Forecaster,
    ForecastModelConfig,
    LinearAR,
    forecast_loss,
    naive_forecast,
    point_forecast,
    quantile_forecast,
    seasonal_naive_forecast,
)
from rnnkit.tasks.export_steps import forecast_export
from rnnkit.tasks.forecast_eval import evaluate_checkpoint
from rnnkit.tasks.predictors import forecast_predictor
from rnnkit.train.checkpoint import CheckpointError, load_model_weights, read_config
from rnnkit.train.config import ConfigError, RunConfig, build_run_config
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = [
    "ForecastDataConfig",
    "ForecastData",
    "ForecastTask",
    "forecast_metrics",
    "evaluate_windows",
    "load_forecast_checkpoint",
    "ASSET",
]

ASSET = "scaler.json"  # preprocessing state + schema, written into every checkpoint


@dataclass
class ForecastDataConfig:
    """The ``data:`` section of a forecasting recipe.

    Attributes:
        path: CSV/Parquet file (absolute, relative to the working directory, or to ``data_dir``).
        data_dir: where to look for a relative ``path`` (else ``--data-dir``, $RNNKIT_DATA).
        time_col / targets / past_covariates / future_covariates / series_id / freq / fill:
            as in :func:`~rnnkit.data.timeseries.read_timeseries` (targets default: the rest).
        calendar: add calendar features of every step to the known-future covariates.
        transform: "log" takes ``log(y)`` before scaling (positive series with growing swings).
        scaler / per_series: target scaling fitted on the training split ("standard", "minmax", "none").
        difference: differencing lag (0: none; 1: first differences; m: seasonal).
        stl_period: remove an STL seasonal profile with this period (None: no).
        input_length / horizon: L and H.
        split_rows: ``[train_end, val_end, test_end]`` step indices per series (e.g. Informer's
            ``[8640, 11520, 14400]``); else ``val_size``/``test_size`` (steps if >= 1, else fractions).
        end_offset: drop the last k steps of every series first (backtest folds).
        season_length: m for seasonal naive and MASE.
        ar_order: p of the linear AR baseline (default: input_length).
        train_stride: keep every k-th training window (1: all).
        batch_size / eval_batch_size: windows per training / evaluation batch.
        metric_space: "original" units or "scaled" (after log and scaler).
        interval_level: central prediction interval reported (e.g. 0.8 -> 10%..90%).
    """

    path: str = ""
    data_dir: str | None = None
    time_col: str | None = None
    targets: list[str] = field(default_factory=list)
    past_covariates: list[str] = field(default_factory=list)
    future_covariates: list[str] = field(default_factory=list)
    series_id: str | None = None
    freq: str | None = None
    fill: Literal["error", "ffill", "linear", "zero"] = "error"
    calendar: bool = True
    transform: Literal["none", "log"] = "none"
    scaler: Literal["standard", "minmax", "none"] = "standard"
    per_series: bool = False
    difference: int = 0
    stl_period: int | None = None
    input_length: int = 96
    horizon: int = 24
    split_rows: list[int] | None = None
    val_size: float = 0.2
    test_size: float = 0.2
    end_offset: int = 0
    season_length: int = 1
    ar_order: int | None = None
    train_stride: int = 1
    batch_size: int = 64
    eval_batch_size: int = 256
    metric_space: Literal["original", "scaled"] = "original"
    interval_level: float = 0.8


def resolve_path(d: ForecastDataConfig, data_dir: str | None = None) -> Path:
    """``data.path`` as given, else under ``data_dir`` / ``data.data_dir`` / $RNNKIT_DATA."""
    if not d.path:
        raise ConfigError("config key 'data.path': missing (a CSV or Parquet file)")
    p = Path(d.path)
    tried = [p]
    if not p.is_absolute():
        for base in (data_dir, d.data_dir, os.environ.get("RNNKIT_DATA")):
            if base:
                tried.append(Path(base) / p)
    for t in tried:
        if t.is_file():
            return t
    raise TimeSeriesError(f"{d.path}: file not found (looked in {', '.join(str(t) for t in tried)})")


def _split_bounds(d: ForecastDataConfig, T: int) -> tuple[int, int, int]:
    if d.split_rows is not None:
        if len(d.split_rows) != 3 or not 0 < d.split_rows[0] < d.split_rows[1] < d.split_rows[2]:
            raise ConfigError(f"config key 'data.split_rows': expected increasing [train_end, val_end, "
                              f"test_end], got {d.split_rows}")
        a, b, c = d.split_rows
        return a, b, min(c, T)

    def n(size: float) -> int:
        return int(size) if size >= 1 else int(round(size * T))

    test_end = T
    val_end = T - n(d.test_size)
    return val_end - n(d.val_size), val_end, test_end


class ForecastData:
    """A file read, split, preprocessed and laid out for windowing.

    With ``state`` (a checkpoint's :data:`ASSET`) the fitted preprocessing is reused; else it
    is fitted on the training split.  Per series ``s`` (``T_s`` steps): ``z`` (T, C) scaled
    targets, ``inputs`` (T, C+P+F) model-space targets + scaled covariates, ``future`` (T, F)
    known-future covariates, ``bounds`` the split ends.  All series are concatenated with
    ``offsets`` so a batch is one fancy-indexing gather.
    """

    def __init__(self, d: ForecastDataConfig, *, data_dir: str | None = None, state: dict | None = None,
                 path: str | Path | None = None, future_rows: bool = False):
        for key in ("input_length", "horizon", "batch_size", "eval_batch_size", "train_stride", "season_length"):
            if getattr(d, key) < 1:
                raise ConfigError(f"config key 'data.{key}': expected a positive integer, got {getattr(d, key)}")
        if not 0 < d.interval_level < 1:
            raise ConfigError(f"config key 'data.interval_level': expected a level in (0, 1), got {d.interval_level}")
        self.cfg = d
        self.path = Path(path) if path is not None else resolve_path(d, data_dir)
        s = state["schema"] if state else None
        self.ts: TimeSeriesData = read_timeseries(
            self.path, time_col=s["time_col"] if s else d.time_col,
            targets=s["targets"] if s else (d.targets or None),
            past_covariates=d.past_covariates, future_covariates=d.future_covariates,
            series_id=d.series_id, freq=s["freq"] if s else d.freq, fill=d.fill, future_rows=future_rows)
        self.L, self.H, self.lag = d.input_length, d.horizon, d.difference
        self.ar_p = d.ar_order or d.input_length
        series = self.ts.series
        if d.end_offset:
            for x in series:
                keep = len(x) - d.end_offset
                if keep < 2:
                    raise ConfigError(f"data.end_offset={d.end_offset}: series {x.id!r} has only {len(x)} steps")
                x.index, x.target, x.past, x.future, x.rows = (x.index[:keep], x.target[:keep], x.past[:keep],
                                                               x.future[:keep], x.rows[:keep])
        self.bounds = {x.id: _split_bounds(d, len(x)) for x in series}
        fitting = state is None
        if fitting:
            state = self._fit_state(series)
        self.state = state
        self.pre = Preprocessor.from_dict(state["preprocessor"])
        self.cov_scaler = Scaler.from_dict(state["covariates"])
        self.anchors = {k: pd.Timestamp(v) for k, v in state["anchors"].items()}
        self.C, self.P = len(self.ts.targets), len(self.ts.past_covariates)
        self.F = len(self.ts.future_covariates) + len(state["schema"]["calendar"])
        self._layout(series)
        if fitting and not self.origins["train"]:
            raise self.too_short("train", 0)

    # ------------------------------------------------------------------ fitting

    def _fit_state(self, series) -> dict[str, Any]:
        d = self.cfg
        train = {}
        for x in series:
            a = self.bounds[x.id][0]
            if a < 2:
                raise ConfigError(f"{self.path}: series {x.id!r} has no training split (train ends at step {a})")
            train[x.id] = x
        pre = Preprocessor(Scaler(d.scaler, d.per_series), log=d.transform == "log", stl_period=d.stl_period,
                           lag=d.difference)
        pre.fit({k: x.target[:self.bounds[k][0]] for k, x in train.items()})
        covs = {k: np.hstack([x.past, x.future])[:self.bounds[k][0]] for k, x in train.items()}
        cov = Scaler("standard" if d.past_covariates or d.future_covariates else "none", d.per_series).fit(covs)
        cal = calendar_features(series[0].index[:1], self.ts.freq)[1] if d.calendar else []
        mase = {}
        for k, x in train.items():
            v = self._metric(pre, pre.scale(x.target[:self.bounds[k][0]], k), k)
            m = d.season_length if len(v) > d.season_length else 1
            s = np.abs(v[m:] - v[:-m]).mean(axis=0)
            mase[k] = np.where(s > 1e-12, s, 1.0).tolist()
        schema = {"time_col": self.ts.time_col, "targets": self.ts.targets, "freq": self.ts.freq,
                  "calendar": cal, "series": [x.id for x in series]}
        ar_train = [pre.scale(x.target[:self.bounds[x.id][0]], x.id) for x in series if self.bounds[x.id][0] > self.ar_p]
        if not ar_train:
            raise ConfigError(f"config key 'data.ar_order': {self.ar_p} lags need a training split longer than "
                              f"{self.ar_p} steps in at least one series of {self.path}")
        ar = LinearAR(self.ar_p).fit(ar_train)
        return {"schema": schema, "preprocessor": pre.to_dict(), "covariates": cov.to_dict(),
                "anchors": {x.id: str(x.index[0]) for x in series}, "mase_scale": mase,
                "ar_coef": ar.coef.tolist()}

    def _metric(self, pre: Preprocessor, z: np.ndarray, sid: str) -> np.ndarray:
        return pre.unscale(z, sid) if self.cfg.metric_space == "original" else z

    def steps(self, sid: str, index: pd.DatetimeIndex) -> np.ndarray:
        """Absolute steps of ``index`` from the series anchor (fixes the STL phase)."""
        if sid not in self.anchors:
            if self.pre.stl_period or self.pre.scaler.per_series:
                raise TimeSeriesError(f"{self.path}: series {sid!r} was not in the training data; its "
                                      "per-series scaler/STL profile is unknown")
            return np.arange(len(index))
        return steps_between(self.anchors[sid], index, self.ts.freq)

    def known_future(self, x_future: np.ndarray, index: pd.DatetimeIndex, sid: str) -> np.ndarray:
        """Scaled file covariates + calendar features: (T, F)."""
        cal = calendar_features(index, self.ts.freq)[0] if self.state["schema"]["calendar"] else np.zeros((len(index), 0))
        return np.hstack([x_future, cal])

    def _layout(self, series) -> None:
        d, C = self.cfg, self.C
        inputs, futures, zs, offs, self.ids = [], [], [], [], []
        self.origins: dict[str, list[tuple[int, np.ndarray]]] = {"train": [], "valid": [], "test": []}
        off = 0
        need = max(self.L + self.lag, d.season_length, self.ar_p)
        for i, x in enumerate(series):
            st = self.steps(x.id, x.index)
            z = self.pre.scale(x.target, x.id)
            m = self.pre.to_model(z, x.id, st)
            covs = np.hstack([x.past, x.future])
            covs = self.cov_scaler.transform(covs, x.id) if covs.shape[1] else covs
            fut = self.known_future(covs[:, self.P:], x.index, x.id)
            inputs.append(np.hstack([np.nan_to_num(m), covs[:, :self.P], fut]))
            futures.append(fut)
            zs.append(z)
            self.ids.append(x.id)
            a, b, c = self.bounds[x.id]
            for split, lo, hi in (("train", 0, a), ("valid", a, b), ("test", b, c)):
                o = window_origins(lo, hi, need, self.H, stride=d.train_stride if split == "train" else 1)
                if len(o):
                    self.origins[split].append((i, o))
            offs.append(off)
            off += len(x)
        self.series = series
        self.inputs = torch.tensor(np.concatenate(inputs), dtype=torch.float32)  # (sum T, C+P+F)
        self.future = torch.tensor(np.concatenate(futures), dtype=torch.float32)  # (sum T, F)
        self.model_y = self.inputs[:, :C]  # (sum T, C) model-space targets
        self.z = np.concatenate(zs)  # (sum T, C) scaled targets
        self.offsets = np.asarray(offs)

    def too_short(self, split: str, which: int) -> TimeSeriesError:
        """The error for a split without a single window (horizon longer than the data allows)."""
        x = self.series[which]
        a, b, c = self.bounds[x.id]
        lo, hi = {"train": (0, a), "valid": (a, b), "test": (b, c)}[split]
        rows = x.rows[lo:hi][x.rows[lo:hi] > 0]
        span = f"rows {rows[0]}..{rows[-1]}" if len(rows) else "no rows"
        where = f" of series {x.id!r}" if x.id else ""
        need = max(self.L + self.lag, self.cfg.season_length, self.ar_p)
        return TimeSeriesError(
            f"{self.path}: column {self.ts.targets[0]!r}: data.horizon={self.H} is longer than the data "
            f"allows: the {split} split{where} covers {span} ({max(hi - lo, 0)} steps) and needs {self.H} "
            f"target steps after {need} earlier steps (input_length={self.L}, difference={self.lag}, "
            f"season_length={self.cfg.season_length}, ar_order={self.ar_p})")

    # ------------------------------------------------------------------ batches

    def global_origins(self, split: str) -> np.ndarray:
        """(N,) origins of ``split`` as indices into the concatenated arrays."""
        parts = [self.offsets[i] + o for i, o in self.origins[split]]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def batch(self, g: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Windows at global origins ``g`` (N,): ``x (N, L, C+P+F)``, ``xf (N, H, F)``, ``y (N, H, C)``."""
        g = torch.as_tensor(g, dtype=torch.long)
        past = g[:, None] + torch.arange(-self.L, 0)  # (N, L)
        fut = g[:, None] + torch.arange(self.H)  # (N, H)
        return self.inputs[past], self.future[fut], self.model_y[fut]


# --------------------------------------------------------------------------- metrics


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray | float = 1.0) -> dict[str, float]:
    """MSE, MAE, RMSE, MAPE, sMAPE (both in %) and MASE over all elements.

    Args:
        actual, forecast: same shape (..., C).
        scale: the MASE denominator per element (broadcast), e.g. (N, 1, C).
    """
    e = actual - forecast
    ae = np.abs(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(actual != 0, ae / np.abs(actual), np.nan)
        den = np.abs(actual) + np.abs(forecast)
        sape = np.where(den > 0, 2 * ae / den, 0.0)
    return {"mse": float((e**2).mean()), "mae": float(ae.mean()), "rmse": float(np.sqrt((e**2).mean())),
            "mape": float(100 * np.nanmean(ape)) if np.isfinite(ape).any() else float("nan"),
            "smape": float(100 * sape.mean()), "mase": float((ae / scale).mean())}


@torch.no_grad()
def _model_params(model: Forecaster, data: ForecastData, g: np.ndarray, batch: int) -> Tensor:
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(g), batch):
        x, xf, _ = data.batch(g[i:i + batch])
        outs.append(model(x.to(dev), xf.to(dev)).float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0)  # (N, H, C, K)


def evaluate_windows(model: Forecaster | None, data: ForecastData, split: str, *,
                     baselines: bool = True) -> dict[str, Any]:
    """Forecasts and metrics on every window of ``split`` (rolling origin, step 1).

    Returns ``{"metrics": {name: {...}}, "actual", "forecasts": {name: (N, H, C)}, "lower",
    "upper" (the model's central interval, metric space; not for a point head), "origins"
    [(series, t)], "loss"}``; names are
    "model" (if given), "naive", "seasonal_naive", "linear_ar".
    """
    d, cfg_level = data.cfg, data.cfg.interval_level
    if not data.origins[split]:
        raise data.too_short(split, 0)
    g = data.global_origins(split)
    probs = [(1 - cfg_level) / 2, 0.5, (1 + cfg_level) / 2]
    res: dict[str, Any] = {"forecasts": {}, "metrics": {}}
    params = None
    if model is not None:
        was = model.training
        model.eval()
        params = _model_params(model, data, g, d.eval_batch_size)
        model.train(was)
        y = data.batch(g)[2]
        res["loss"] = float(forecast_loss(params, y, model.config))
        pt = point_forecast(params, model.config).numpy()  # (N, H, C)
        qs = quantile_forecast(params, model.config, probs).numpy()  # (N, H, C, 3)
    ar = LinearAR(data.ar_p)
    ar.coef = np.asarray(data.state["ar_coef"])
    acts, outs, origins, scales = [], {k: [] for k in ("model", "lower", "upper", "naive", "seasonal_naive",
                                                         "linear_ar")}, [], []
    start = 0
    for i, o in data.origins[split]:
        sid, n = data.ids[i], len(o)
        z = data.z[data.offsets[i]:data.offsets[i] + len(data.series[i])]  # (T, C) scaled
        idx = data.series[i].index
        st = data.steps(sid, idx)
        fut = o[:, None] + np.arange(data.H)  # (n, H)

        def metric(v: np.ndarray, sid: str = sid) -> np.ndarray:
            return data._metric(data.pre, v, sid)

        acts.append(metric(z[fut]))
        if params is not None:
            z_last = z[o[:, None] + np.arange(-max(data.lag, 1), 0)]  # (n, lag, C)
            outs["model"].append(metric(data.pre.from_model(pt[start:start + n], sid, st[fut], z_last)))
            q = data.pre.from_model(qs[start:start + n], sid, st[fut], z_last)  # (n, H, C, 3)
            outs["lower"].append(metric(q[..., 0]))
            outs["upper"].append(metric(q[..., 2]))
        if baselines:
            hist = z[o[:, None] + np.arange(-max(data.L, d.season_length, data.ar_p), 0)]  # (n, Lb, C)
            outs["naive"].append(metric(naive_forecast(hist, data.H)))
            outs["seasonal_naive"].append(metric(seasonal_naive_forecast(hist, data.H, d.season_length)))
            outs["linear_ar"].append(metric(ar.forecast(hist, data.H)))
        scales.append(np.broadcast_to(np.asarray(data.state["mase_scale"].get(sid, 1.0)), (n, 1, data.C)))
        origins += [(sid, int(t)) for t in o]
        start += n
    actual, scale = np.concatenate(acts), np.concatenate(scales)
    res.update(actual=actual, origins=origins)
    for k, v in outs.items():
        if v:
            res["forecasts"][k] = np.concatenate(v)
            if k not in ("lower", "upper"):
                res["metrics"][k] = forecast_metrics(actual, res["forecasts"][k], scale)
    if params is not None:
        lo, hi = res["forecasts"].pop("lower"), res["forecasts"].pop("upper")
        if model.config.head != "point":  # the interval, and the share of actuals inside it
            res["lower"], res["upper"] = lo, hi
            res["metrics"]["model"]["coverage"] = float(((actual >= lo) & (actual <= hi)).mean())
    return res


# --------------------------------------------------------------------------- the Task


class ForecastTask:
    """The forecasting task for :class:`~rnnkit.train.Trainer` (see the module docstring)."""

    name = "forecast"
    item_name = "windows"

    def __init__(self, config: RunConfig, *, data_dir: str | None = None):
        self.config = config
        self.data = ForecastData(config.data, data_dir=data_dir)
        d = self.data
        self.model = build_model(Forecaster, config.model, n_targets=d.C, n_past=d.P, n_future=d.F,
                                 horizon=d.H, run=config)
        self.eval_splits = tuple(s for s in ("valid", "test") if d.origins[s])
        self.order = d.global_origins("train")
        self.rank, self.world, self.b = 0, 1, config.data.batch_size

    def setup(self, rank: int, world_size: int) -> None:
        if self.config.data.batch_size % world_size:
            raise ConfigError(f"config key 'data.batch_size': {self.config.data.batch_size} windows cannot be "
                              f"split evenly over {world_size} processes")
        self.rank, self.world, self.b = rank, world_size, self.config.data.batch_size // world_size

    def _perm(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(self.config.trainer.seed + 7919 * epoch)
        p = self.order[rng.permutation(len(self.order))]
        p = p[:max(1, len(p) // self.world) * self.world] if self.world > 1 else p  # equal shares: no DDP hang
        return p[self.rank::self.world]  # this rank's share

    def steps_per_epoch(self, epoch: int) -> int:
        return -(-len(self._perm(epoch)) // self.b)

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        p = self._perm(epoch)
        for i in range(start_step, self.steps_per_epoch(epoch)):
            yield self.data.batch(p[i * self.b:(i + 1) * self.b])

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], carry: Any) -> StepOutput:
        dev = next(model.parameters()).device
        x, xf, y = (t.to(dev) for t in batch)
        p = model(x, xf, y_teacher=y)  # (B, H, C, K)
        loss = forecast_loss(p.float(), y, self.config.model)
        return StepOutput(loss, None, x.size(0))

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Model loss, and MSE/MAE of the point forecast in the metric space."""
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split {split!r}: expected train, valid or test")
        r = evaluate_windows(model, self.data, split, baselines=False)
        m = r["metrics"]["model"]
        return {"loss": r["loss"], "mse": m["mse"], "mae": m["mae"]}

    def write_assets(self, directory: Path) -> None:
        import json

        (Path(directory) / ASSET).write_text(json.dumps(self.data.state, indent=1) + "\n")


def build_forecast_task(config: RunConfig, data_dir: str | None = None) -> ForecastTask:
    return ForecastTask(config, data_dir=data_dir)


def load_forecast_checkpoint(directory: str | Path) -> tuple[Forecaster, dict[str, Any], RunConfig]:
    """Model (eval mode), preprocessing state (:data:`ASSET`) and run config of a checkpoint.

    Raises:
        CheckpointError: not a checkpoint, another task's, or missing/corrupted assets.
    """
    import json

    d = Path(directory)
    meta = read_config(d, task="forecast")
    try:
        cfg = build_run_config(meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"{d / 'config.json'}: invalid config ({e})") from None
    asset = d / ASSET
    if not asset.is_file():
        raise CheckpointError(f"{d}: not a complete forecasting checkpoint ({ASSET} is missing)")
    try:
        state = json.loads(asset.read_text(encoding="utf-8"))
        s = state["schema"]
        C, F = len(s["targets"]), len(cfg.data.future_covariates) + len(s["calendar"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{asset}: corrupted preprocessing state ({e})") from None
    model = build_model(Forecaster, cfg.model, n_targets=C, n_past=len(cfg.data.past_covariates), n_future=F,
                        horizon=cfg.data.horizon, run=cfg, training=False, source=d / "config.json")
    load_model_weights(model, d)
    return model.eval(), state, cfg


SPEC = register_task(TaskSpec(
    name="forecast",
    data_config=ForecastDataConfig,
    model_config=ForecastModelConfig,
    build=build_forecast_task,
    description="time-series forecasting (single-step, recursive, direct, seq2seq) with baselines",
    evaluate=evaluate_checkpoint,
    predictor=forecast_predictor,
    export=forecast_export,
))
