"""Time-series anomaly detection: typed train / score / evaluate functions and the ``anomaly`` task.

A recipe (``configs/anomaly_*.yaml``) has the usual sections; ``data`` is
:class:`AnomalyDataConfig` and ``model`` the detector
(:class:`~rnnkit.anomaly.detectors.DetectorConfig`)::

    task: anomaly
    data:  {source: nab, families: [realKnownCause]}      # or source: path/to/series.csv
    model: {kind: prediction, cell: lstm, hidden_size: 32, horizon: 4}

Functions (what ``rnnkit anomaly ...`` calls):

- :func:`run_nab` scores the detector on NAB files (one fit per file on its probationary
  period) and returns NAB scores under the three profiles plus P/R/F1; it writes NAB
  results CSVs and a plot per file.
- :func:`train_series` fits one detector on the first rows of a CSV and saves it as a
  checkpoint; :func:`score_csv` scores a CSV with a checkpoint (batch or streaming) and
  writes ``timestamp,value,anomaly_score[,is_anomaly]``.

With ``rnnkit train`` an anomaly recipe trains one series' detector under the full Trainer
(:class:`AnomalyTask`); the ``optim``/``trainer`` sections then govern training, while the
model's ``lr``/``max_epochs``/``patience`` apply to the lean per-series loop of the other
commands.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rnnkit.anomaly.benchmark import detector_name, evaluate_nab, run_detector
from rnnkit.anomaly.detectors import Detector, DetectorConfig, build_detector, load_detector
from rnnkit.data.nab import default_nab_root, load_nab_corpus, read_nab_csv
from rnnkit.data.timeseries import TimeSeriesError, step_summary
from rnnkit.tasks.export_steps import ExportSpec, anomaly_export_spec
from rnnkit.tasks.predictors import AnomalyPredictor, maybe_int8
from rnnkit.train.config import ConfigError, RunConfig, load_recipe
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = ["AnomalyDataConfig", "AnomalyTask", "load_anomaly_recipe", "run_nab", "train_series",
           "score_csv", "read_series"]


@dataclass
class AnomalyDataConfig:
    """The ``data:`` section of an anomaly recipe.

    Attributes:
        source: "nab" (the NAB corpus) or a CSV file with ``time_col``/``value_col`` columns.
        data_dir: NAB root (or a folder holding ``nab/``); default ``$RNNKIT_DATA/nab`` or
            ``../shared/datasets/nab``.
        families / files: which NAB files (families like "realKnownCause", or file keys).
        time_col / value_col: the CSV's columns (NAB: timestamp, value).
        fit_fraction: for a CSV, the detector learns from the first ``fit_fraction`` of rows
            (NAB files use their probationary period instead).
    """

    source: str = "nab"
    data_dir: str | None = None
    families: list[str] = field(default_factory=lambda: ["realKnownCause", "realAWSCloudwatch"])
    files: list[str] = field(default_factory=list)
    time_col: str = "timestamp"
    value_col: str = "value"
    fit_fraction: float = 0.15


def load_anomaly_recipe(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """A typed anomaly recipe (``task: anomaly``)."""
    cfg = load_recipe(path, overrides)
    if cfg.task != "anomaly":
        raise ConfigError(
            f"{path}: task is {cfg.task!r}; expected an anomaly recipe (task: anomaly)"
        )
    return cfg


#: the hint an out-of-order error gets: the option that reads such a file as NAB does
IN_FILE_ORDER_HINT = ("; `rnnkit anomaly train` and `score` read such a file in row order, as "
                      "NAB does (its own files repeat a timestamp at a daylight-saving change), "
                      "with --in-file-order")


def read_series(
    path: str | Path, time_col: str = "timestamp", value_col: str = "value", *,
    in_file_order: bool = False,
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """A user series, validated strictly (duplicate/decreasing timestamps and non-numeric
    values are one-line errors naming the file, row and column).

    ``in_file_order`` accepts repeated or decreasing timestamps and keeps the rows in file
    order, as NAB's corpus is read and scored (:func:`~rnnkit.data.nab.read_nab_csv` with
    ``strict=False``); it needs the ``timestamp,value`` columns.
    """
    if in_file_order and (time_col, value_col) != ("timestamp", "value"):
        raise TimeSeriesError(f"{path}: in-file-order reading is for NAB's timestamp,value "
                              f"columns, not {time_col!r},{value_col!r}")
    if (time_col, value_col) == ("timestamp", "value"):
        try:
            return read_nab_csv(path, strict=not in_file_order)
        except TimeSeriesError as e:
            if "must strictly increase" not in str(e):
                raise
            raise TimeSeriesError(str(e) + IN_FILE_ORDER_HINT) from None
    from rnnkit.data.timeseries import read_timeseries

    s = read_timeseries(path, time_col=time_col, targets=[value_col], regular=False).series[0]
    return s.index, s.target[:, 0].copy()


def _fit_end(n: int, fraction: float) -> int:
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(
            f"config key 'data.fit_fraction': expected a value in (0, 1], got {fraction}"
        )
    return max(1, int(math.floor(fraction * n)))


# --------------------------------------------------------------------------- functions


def run_nab(
    detector: str | DetectorConfig,
    data: AnomalyDataConfig | None = None,
    *,
    out: str | Path | None = None,
    seed: int = 42,
    plots: bool = True,
    log=print,
) -> dict:
    """Score ``detector`` on NAB files and return :func:`~rnnkit.anomaly.benchmark.evaluate_nab`'s
    report (with the detector name); writes results CSVs and plots under ``out``."""
    data = data or AnomalyDataConfig()
    corpus = load_nab_corpus(default_nab_root(data.data_dir), families=data.families or None,
                             files=data.files or None)
    files = run_detector(detector, corpus, out=out, seed=seed, log=log)
    report = {"detector": detector_name(detector), **evaluate_nab(files)}
    if out is not None and plots:
        from rnnkit.anomaly.plots import plot_series

        th = report["profiles"]["standard"]["threshold"]
        for s, f in zip(corpus, files):
            family, fname = s.key.split("/", 1)
            plot_series(
                Path(out) / report["detector"] / "plots" / family / fname.replace(".csv", ".png"),
                s.timestamps,
                s.values,
                f.scores,
                th,
                s.windows,
                probation=s.probation,
                title=f"{report['detector']}: {s.key}",
            )
    return report


def train_series(
    csv: str | Path,
    detector: DetectorConfig,
    out: str | Path,
    *,
    fit_fraction: float = 0.15,
    time_col: str = "timestamp",
    value_col: str = "value",
    in_file_order: bool = False,
) -> Detector:
    """Fit ``detector`` on the first ``fit_fraction`` of a CSV series and save it to ``out``.

    The detector records the series' median step (``Detector.step``), so scoring a series at
    another step is an error (:func:`score_csv`); ``Detector.history["steps"]`` is the
    series' :func:`~rnnkit.data.timeseries.step_summary` (its gaps). ``in_file_order``: see
    :func:`read_series`.
    """
    ts, values = read_series(csv, time_col, value_col, in_file_order=in_file_order)
    det = build_detector(detector).fit(values, fit_end=_fit_end(len(values), fit_fraction))
    steps = step_summary(ts)
    det.step, det.history["steps"] = steps["step"], steps
    det.save(out)
    return det


#: how far apart two median steps may be and still be one sampling step: months run 28-31
#: days and quarters 90-92, so a slice's median differs from the whole series' by up to 4%
STEP_TOLERANCE = 0.1


def _check_step(det: Detector, checkpoint: str | Path, csv: str | Path, step: str | None) -> None:
    """A detector's windows count rows: scoring a series at another step misreads it."""
    if det.step is None or step is None:
        return
    ours, theirs = (pd.Timedelta(pd.tseries.frequencies.to_offset(x)) for x in (step, det.step))
    if abs(ours - theirs) <= STEP_TOLERANCE * theirs:
        return
    raise TimeSeriesError(
        f"{csv}: the series steps {step} (median), but the detector {checkpoint} was trained on "
        f"one stepping {det.step}; its windows count rows, so they would span another length of "
        f"time. Resample the series to {det.step}, or score it as it is with any_step=True "
        "(`--any-step`)"
    )


def score_csv(checkpoint: str | Path, csv: str | Path, out: str | Path | None = None, *,
              threshold: float | None = None, streaming: bool = False, time_col: str = "timestamp",
              value_col: str = "value", any_step: bool = False,
              in_file_order: bool = False) -> pd.DataFrame:
    """Scores of a CSV series by a saved detector; ``is_anomaly`` if a threshold is given.

    ``streaming`` feeds the rows one at a time (:mod:`rnnkit.anomaly.streaming`); the
    scores equal the batch ones up to float rounding.  The series must step as the detector's
    training series did (median step; checkpoints written before the step was recorded are
    not checked) unless ``any_step``.  Rows are scored in order whatever the timestamps' gaps;
    ``frame.attrs["steps"]`` is the series' :func:`~rnnkit.data.timeseries.step_summary`, so
    the caller can show them. ``in_file_order``: see :func:`read_series`.
    """
    if threshold is not None and not 0.0 < threshold < 1.0:  # also NaN
        raise ValueError(f"threshold={threshold}: expected a value in (0, 1); scores lie in "
                         "[0, 1)")
    det = load_detector(checkpoint)
    ts, values = read_series(csv, time_col, value_col, in_file_order=in_file_order)
    if len(values) <= det.valid_from:
        raise TimeSeriesError(
            f"{csv}: {len(values)} rows, but the detector {checkpoint} scores a row only after "
            f"{det.valid_from} earlier ones; the series needs at least {det.valid_from + 1}"
        )
    steps = step_summary(ts)
    if not any_step:
        _check_step(det, checkpoint, csv, steps["step"])
    if streaming:
        from rnnkit.anomaly.streaming import StreamingScorer

        scorer = StreamingScorer(det)
        scores = np.array([scorer.update(v) for v in values])
    else:
        scores = det.score(values)
    frame = pd.DataFrame(
        {time_col: ts.strftime("%Y-%m-%d %H:%M:%S"), value_col: values, "anomaly_score": scores}
    )
    if threshold is not None:
        frame["is_anomaly"] = (scores >= threshold).astype(int)
    frame.attrs["steps"] = steps
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, float_format="%.10g")
    return frame


# --------------------------------------------------------------------------- Trainer task


def _series_for(
    d: AnomalyDataConfig, data_dir: str | None
) -> tuple[pd.DatetimeIndex, np.ndarray, int, str]:
    """``(timestamps, values, fit_end, name)`` of the one series an ``rnnkit train`` recipe
    names."""
    if d.source == "nab":
        if len(d.files) != 1:
            raise ConfigError(
                "config key 'data.files': `rnnkit train` fits one NAB file; give exactly one key "
                "(e.g. [realKnownCause/nyc_taxi.csv]), or use `rnnkit anomaly nab` for many"
            )
        s = load_nab_corpus(default_nab_root(data_dir or d.data_dir), files=d.files)[0]
        return pd.DatetimeIndex(s.timestamps), s.values, s.probation, s.key
    ts, values = read_series(d.source, d.time_col, d.value_col)
    return ts, values, _fit_end(len(values), d.fit_fraction), str(d.source)


class AnomalyTask:
    """One series' detector trained by the Trainer (``rnnkit train configs/anomaly_*.yaml``).

    The fit rows are split as in :meth:`Detector.prepare`; ``valid`` is the validation MSE;
    each checkpoint gets ``detector.json`` (scaler and the error Gaussian fitted with the
    weights being saved), so ``best/`` loads with :func:`load_detector`.
    """

    name = "anomaly"
    item_name = "windows"
    loss_name = "MSE (standardised values)"  # the y-label of curves.png
    eval_splits = ("valid",)

    def __init__(self, config: RunConfig, *, data_dir: str | None = None):
        self.config = config
        ts, values, fit_end, self.series = _series_for(config.data, data_dir)
        self.steps = step_summary(ts)
        self.detector = build_detector(config.model)
        self.detector.prepare(values, fit_end)
        self.model: nn.Module = self.detector.model

    def setup(self, rank: int, world_size: int) -> None:
        if world_size != 1:
            raise ConfigError(
                "config key 'trainer.devices': an anomaly detector trains in one process"
            )

    def steps_per_epoch(self, epoch: int) -> int:
        return len(self.detector.batches(epoch))

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        return iter(self.detector.batches(epoch)[start_step:])

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch: Any, carry: Any) -> StepOutput:
        loss = self.detector.loss(batch)
        n = 1 if batch is None else len(batch)
        return StepOutput(loss, None, n, float(loss.detach()))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split != "valid":
            raise ValueError(f"split {split!r}: an anomaly task has only 'valid'")
        return {"loss": self.detector.val_loss()}

    def data_splits(self) -> dict[str, Any]:
        """The training and validation rows of the series, hashed for ``--resume``."""
        x, det = self.detector.fit_values, self.detector
        return {"train": x[:det.train_end], "valid": x[det.train_end:det.fit_end]}

    def resume_assets(self, directory: Path) -> None:
        """The part of ``detector.json`` that comes from the series alone (its scaler, splits
        and step), what a resumed run must find unchanged; the error model is fitted with the
        weights, and ``history.series`` names where the file was."""
        state = {"mean": self.detector.mean, "std": self.detector.std,
                 "fit_end": self.detector.fit_end, "train_end": self.detector.train_end,
                 "step": self.steps["step"]}
        (directory / "detector.json").write_text(json.dumps(state, indent=1) + "\n",
                                                 encoding="utf-8")

    def write_assets(self, directory: Path) -> None:
        was = self.model.training
        self.detector.fit_error_model()
        self.model.train(was)
        state = {
            "mean": self.detector.mean,
            "std": self.detector.std,
            "fit_end": self.detector.fit_end,
            "train_end": self.detector.train_end,
            "error_model": self.detector.base.to_dict(),
            "history": {"series": self.series, "steps": self.steps},
            "step": self.steps["step"],
        }
        (directory / "detector.json").write_text(
            json.dumps(state, indent=1) + "\n", encoding="utf-8"
        )


def build_anomaly_task(config: RunConfig, data_dir: str | None = None) -> AnomalyTask:
    return AnomalyTask(config, data_dir=data_dir)


def _predictor(directory: Path, int8: bool) -> AnomalyPredictor:
    det = load_detector(directory)
    det.model = maybe_int8(det.model, int8)
    return AnomalyPredictor(det)


def _export(directory: Path) -> ExportSpec:
    return anomaly_export_spec(load_detector(directory))


SPEC = register_task(
    TaskSpec(
        name="anomaly",
        data_config=AnomalyDataConfig,
        model_config=DetectorConfig,
        build=build_anomaly_task,
        description=(
            "time-series anomaly detection (LSTM-AD prediction error, EncDec-AD reconstruction)"
        ),
        predictor=_predictor,
        export=_export,
    )
)
