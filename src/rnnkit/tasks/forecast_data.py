"""Forecasting data: the recipe's ``data`` section, and the series cut into windows.

:class:`ForecastDataConfig` types the section; :class:`ForecastData` reads the file
(:func:`rnnkit.data.timeseries.read_timeseries`), splits each series chronologically, fits
the preprocessing on the training split and serves batches of windows.  The rest of the
pipeline is :mod:`rnnkit.tasks.forecast_task` (metrics, the Task, checkpoints) and
:mod:`rnnkit.tasks.forecast` (the pipeline's functions and its TaskSpec).
"""


from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from rnnkit.data.timeseries import (
    TimeSeriesData,
    TimeSeriesError,
    calendar_features,
    read_timeseries,
    steps_between,
)
from rnnkit.data.windows import Preprocessor, Scaler, ltsf_split_rows, window_origins
from rnnkit.models.forecast import (
    LinearAR,
)
from rnnkit.train.config import ConfigError

__all__ = [
    "ForecastDataConfig",
    "ForecastData",
    "resolve_path",
    "ltsf_protocol",
    "ltsf_window_counts",
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
        scaler / per_series: target scaling fitted on the training split ("standard", "minmax",
            "none").
        difference: differencing lag (0: none; 1: first differences; m: seasonal).
        stl_period: remove an STL seasonal profile with this period (None: no).
        input_length / horizon: L and H.
        split_rows: ``[train_end, val_end, test_end]`` step indices per series (e.g. Informer's
            ``[8640, 11520, 14400]``); else ``val_size``/``test_size`` (steps if >= 1, else
            fractions).
        end_offset: drop the last k steps of every series first (backtest folds); under
            ``protocol: ltsf``, move every split boundary k steps earlier instead (the
            protocol's own split lengths, ending k steps before its test end).
        season_length: m for seasonal naive and MASE.
        ar_order: p of the linear AR baseline (default: input_length).
        train_stride: keep every k-th training window (1: all).
        batch_size / eval_batch_size: windows per training / evaluation batch.
        metric_space: "original" units or "scaled" (after log and scaler).
        interval_level: central prediction interval reported (e.g. 0.8 -> 10%..90%).
        interval_calibration: how ``forecast evaluate`` calibrates the head's interval on past
            windows (:mod:`rnnkit.tasks.forecast_intervals`): "none", "split" (conformalized
            quantile regression on the validation windows) or "rolling" (the last
            ``calibration_window`` windows whose targets are observed at each origin).
        calibration_window: K, windows in the rolling calibration set.
        protocol: "ltsf": the long-horizon benchmark (:func:`ltsf_protocol`): 12/4/4-month
            row splits at the series' step, standardised with training statistics, scored in
            the standardised space on every window (the window counts are checked).
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
    interval_calibration: Literal["none", "split", "rolling"] = "none"
    calibration_window: int = 720
    protocol: Literal["none", "ltsf"] = "none"
    EVAL_ONLY_KEYS: ClassVar[tuple[str, ...]] = (  # a mid-epoch resume may change them
        "metric_space", "interval_level", "interval_calibration", "calibration_window")


def ltsf_protocol(d: ForecastDataConfig, freq: str) -> list[int]:
    """The LTSF split rows for a series at step ``freq``, once the recipe is checked against
    the protocol: standard scaling fitted on the whole training split (not per series), metrics
    in that scaled space, no split_rows of its own.  ``data.end_offset`` k moves every boundary
    k steps earlier (a rolling-origin fold: train [0, 12 months - k), validation and test the
    next 4 months each); k must leave a training split longer than the validation split."""
    want = {"scaler": "standard", "per_series": False, "metric_space": "scaled",
            "transform": "none", "split_rows": None}
    for key, v in want.items():
        if getattr(d, key) != v:
            raise ConfigError(
                f"config key 'data.{key}': {getattr(d, key)!r} does not fit data.protocol='ltsf' "
                f"(it fixes {key}: {v!r})"
            )
    try:
        rows = ltsf_split_rows(freq)
    except ValueError as e:
        raise ConfigError(f"config key 'data.protocol': {e}") from None
    k = d.end_offset
    if k < 0 or rows[0] - k <= rows[1] - rows[0]:
        raise ConfigError(
            f"config key 'data.end_offset': {k} does not fit data.protocol='ltsf' (expected 0 <= "
            f"k < {2 * rows[0] - rows[1]} steps, so that training keeps more than the "
            f"{rows[1] - rows[0]}-step validation split)"
        )
    return [r - k for r in rows]


def ltsf_window_counts(rows: list[int], L: int, H: int, stride: int = 1) -> dict[str, int]:
    """Windows per split under the LTSF protocol: validation and test ``n - H + 1`` for a split
    of ``n`` rows (every window); training ``ceil((train_end - L - H + 1) / stride)``."""
    a, b, c = rows
    return {"train": -(-(a - L - H + 1) // stride), "valid": b - a - H + 1, "test": c - b - H + 1}


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
    raise TimeSeriesError(
        f"{d.path}: file not found (looked in {', '.join(str(t) for t in tried)})"
    )


def _check_sizes(d: ForecastDataConfig) -> None:
    """``data.val_size`` / ``data.test_size``: a fraction in [0, 1) or a whole step count."""
    for key in ("val_size", "test_size"):
        v = getattr(d, key)
        if not (math.isfinite(v) and v >= 0 and (v < 1 or float(v).is_integer())):
            raise ConfigError(
                f"config key 'data.{key}': expected a fraction in [0, 1) or a whole number of "
                f"steps >= 1, got {v}"
            )
    if d.end_offset < 0:
        raise ConfigError(
            f"config key 'data.end_offset': expected a number of steps >= 0, got {d.end_offset}"
        )


def _split_bounds(
    d: ForecastDataConfig, T: int, sid: str = "", check: bool = True
) -> tuple[int, int, int]:
    """``(train_end, val_end, test_end)`` of a series of ``T`` steps; ``check``: a training
    file (not a history given to a checkpoint) must reach into its test split."""
    where = f"series {sid!r} " if sid else "the series "
    if d.split_rows is not None:
        if len(d.split_rows) != 3 or not 0 < d.split_rows[0] < d.split_rows[1] < d.split_rows[2]:
            raise ConfigError(
                f"config key 'data.split_rows': expected increasing [train_end, val_end, "
                f"test_end], got {d.split_rows}"
            )
        a, b, c = d.split_rows
        if check and b >= T:
            raise ConfigError(
                f"config key 'data.split_rows': val_end {b} leaves no test split: {where}has "
                f"{T} steps"
            )
        return a, b, min(c, T)  # test_end past the end: to the end

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

    def __init__(
        self,
        d: ForecastDataConfig,
        *,
        data_dir: str | None = None,
        state: dict | None = None,
        path: str | Path | None = None,
        future_rows: bool = False,
    ):
        for key in (
            "input_length",
            "horizon",
            "batch_size",
            "eval_batch_size",
            "train_stride",
            "season_length",
            "calibration_window",
        ):
            if getattr(d, key) < 1:
                raise ConfigError(
                    f"config key 'data.{key}': expected a positive integer, got {getattr(d, key)}"
                )
        if not 0 < d.interval_level < 1:
            raise ConfigError(
                f"config key 'data.interval_level': expected a level in (0, 1), "
                f"got {d.interval_level}"
            )
        _check_sizes(d)
        self.cfg = d
        self.path = Path(path) if path is not None else resolve_path(d, data_dir)
        s = state["schema"] if state else None
        self.ts: TimeSeriesData = read_timeseries(
            self.path,
            time_col=s["time_col"] if s else d.time_col,
            targets=s["targets"] if s else (d.targets or None),
            past_covariates=d.past_covariates,
            future_covariates=d.future_covariates,
            series_id=d.series_id,
            freq=s["freq"] if s else d.freq,
            fill=d.fill,
            future_rows=future_rows,
        )
        self.L, self.H, self.lag = d.input_length, d.horizon, d.difference
        self.ar_p = d.ar_order or d.input_length
        series = self.ts.series
        if d.end_offset and d.protocol != "ltsf":  # ltsf moves its split rows instead
            for x in series:
                keep = len(x) - d.end_offset
                if keep < 2:
                    raise ConfigError(
                        f"data.end_offset={d.end_offset}: series {x.id!r} has only {len(x)} steps"
                    )
                x.index, x.target, x.past, x.future, x.rows = (
                    x.index[:keep],
                    x.target[:keep],
                    x.past[:keep],
                    x.future[:keep],
                    x.rows[:keep],
                )
        if d.protocol == "ltsf":
            rows = ltsf_protocol(d, self.ts.freq)
            if len(series) != 1 or len(series[0]) < rows[2]:
                less = f", less data.end_offset={d.end_offset}" if d.end_offset else ""
                raise TimeSeriesError(
                    f"{self.path}: data.protocol='ltsf' needs one series of at least {rows[2]} "
                    f"steps (12+4+4 months at {self.ts.freq!r}{less}); got {len(series)} series "
                    f"of {min(len(x) for x in series)}+ steps"
                )
            self.bounds = {series[0].id: tuple(rows)}
        else:
            self.bounds = {x.id: _split_bounds(d, len(x), x.id, state is None) for x in series}
        if d.transform == "log":  # every split, and before fitting: the row is named
            for x in series:
                self._check_positive(x)
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
        if d.protocol == "ltsf":
            self._check_ltsf_counts()

    def _check_ltsf_counts(self) -> None:
        """Every validation and test window is there (no dropped batch, no lost target)."""
        d = self.cfg
        want = ltsf_window_counts(list(self.bounds[self.ids[0]]), self.L, self.H, d.train_stride)
        need = max(self.L + self.lag, d.season_length, self.ar_p)
        for split in ("valid", "test"):
            got = len(self.global_origins(split))
            if got != want[split]:
                raise TimeSeriesError(
                    f"{self.path}: data.protocol='ltsf': the {split} split has {got} windows; "
                    f"expected {want[split]} (every origin, horizon {self.H}); an input need of "
                    f"{need} steps (input_length, season_length, ar_order) reaches past row 0"
                )
        self.window_counts = {s: len(self.global_origins(s)) for s in ("train", "valid", "test")}

    # ------------------------------------------------------------------ fitting

    def _fit_state(self, series) -> dict[str, Any]:
        d = self.cfg
        train = {}
        for x in series:
            a = self.bounds[x.id][0]
            if a < 2:
                raise ConfigError(
                    f"{self.path}: series {x.id!r} has no training split (train ends at step {a})"
                )
            train[x.id] = x
        pre = Preprocessor(
            Scaler(d.scaler, d.per_series),
            log=d.transform == "log",
            stl_period=d.stl_period,
            lag=d.difference,
        )
        covs = {k: np.hstack([x.past, x.future])[:self.bounds[k][0]] for k, x in train.items()}
        try:  # the scalers' errors name the channel; say which file it is in
            pre.fit({k: x.target[:self.bounds[k][0]] for k, x in train.items()})
            cov = Scaler(
                "standard" if d.past_covariates or d.future_covariates else "none", d.per_series
            ).fit(covs)
        except ValueError as e:
            raise TimeSeriesError(f"{self.path}: {e}") from None
        cal = calendar_features(series[0].index[:1], self.ts.freq)[1] if d.calendar else []
        mase = {}
        for k, x in train.items():
            v = self._metric(pre, pre.scale(x.target[:self.bounds[k][0]], k), k)
            m = d.season_length if len(v) > d.season_length else 1
            s = np.abs(v[m:] - v[:-m]).mean(axis=0)
            mase[k] = np.where(s > 1e-12, s, 1.0).tolist()
        schema = {"time_col": self.ts.time_col, "targets": self.ts.targets, "freq": self.ts.freq,
                  "calendar": cal, "series": [x.id for x in series]}
        ar_train = [
            pre.scale(x.target[: self.bounds[x.id][0]], x.id)
            for x in series
            if self.bounds[x.id][0] > self.ar_p
        ]
        if not ar_train:
            raise ConfigError(
                f"config key 'data.ar_order': {self.ar_p} lags need a training split longer than "
                f"{self.ar_p} steps in at least one series of {self.path}"
            )
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
                raise TimeSeriesError(
                    f"{self.path}: series {sid!r} was not in the training data; its "
                    "per-series scaler/STL profile is unknown"
                )
            return np.arange(len(index))
        return steps_between(self.anchors[sid], index, self.ts.freq)

    def known_future(self, x_future: np.ndarray, index: pd.DatetimeIndex, sid: str) -> np.ndarray:
        """Scaled file covariates + calendar features: (T, F)."""
        cal = (
            calendar_features(index, self.ts.freq)[0]
            if self.state["schema"]["calendar"]
            else np.zeros((len(index), 0))
        )
        return np.hstack([x_future, cal])

    def _layout(self, series) -> None:
        d, C = self.cfg, self.C
        inputs, futures, zs, offs, self.ids = [], [], [], [], []
        self.origins: dict[str, list[tuple[int, np.ndarray]]] = {
            "train": [],
            "valid": [],
            "test": [],
        }
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
                o = window_origins(
                    lo, hi, need, self.H, stride=d.train_stride if split == "train" else 1
                )
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

    def check_windows(self) -> None:
        """Every series whose validation or test split has steps has a window there.

        A split left empty on purpose (``val_size`` or ``test_size`` 0) is skipped; one that
        has steps but is too short for a window raises, rather than being scored without
        that series (or, for the test split, falling back to the validation split).
        """
        for k, split in ((1, "valid"), (2, "test")):
            have = {i for i, _ in self.origins[split]}
            for i, x in enumerate(self.series):
                lo, hi = self.bounds[x.id][k - 1], min(self.bounds[x.id][k], len(x))
                if hi > lo and i not in have:
                    raise self.too_short(split, i)

    def _check_positive(self, x) -> None:
        """``data.transform: log`` needs every target > 0, not only the training split's."""
        bad = np.argwhere(x.target <= 0)
        if len(bad):
            t, c = bad[0]
            where = f" (series {x.id!r})" if x.id else ""
            row = f"row {x.rows[t]}" if x.rows[t] > 0 else f"filled step {x.index[t]}"
            raise TimeSeriesError(
                f"{self.path}: {row}, column {self.ts.targets[c]!r}{where}: data.transform=log "
                f"needs target values > 0, got {x.target[t, c]:g}"
            )

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
            f"{self.path}: column {self.ts.targets[0]!r}: data.horizon={self.H} is longer than "
            f"the data allows: the {split} split{where} covers {span} ({max(hi - lo, 0)} steps) "
            f"and needs {self.H} target steps after {need} earlier steps "
            f"(input_length={self.L}, difference={self.lag}, "
            f"season_length={self.cfg.season_length}, ar_order={self.ar_p})"
        )

    # ------------------------------------------------------------------ batches

    def global_origins(self, split: str) -> np.ndarray:
        """(N,) origins of ``split`` as indices into the concatenated arrays."""
        parts = [self.offsets[i] + o for i, o in self.origins[split]]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def batch(self, g: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Windows at global origins ``g`` (N,): ``x (N, L, C+P+F)``, ``xf (N, H, F)``,
        ``y (N, H, C)``."""
        g = torch.as_tensor(g, dtype=torch.long)
        past = g[:, None] + torch.arange(-self.L, 0)  # (N, L)
        fut = g[:, None] + torch.arange(self.H)  # (N, H)
        return self.inputs[past], self.future[fut], self.model_y[fut]


