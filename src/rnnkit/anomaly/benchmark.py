"""Run a detector over NAB files and score it the way NAB does.

For each data file a detector produces one anomaly score per row (the recurrent detectors
are fitted on the file's probationary period first).  The scores are written in NAB's
results layout, ``<out>/<detector>/<family>/<detector>_<file>.csv`` with columns
``timestamp,value,anomaly_score,label``, and then scored by :func:`evaluate_nab`: per profile,
the threshold optimised over the files scored together, the normalised NAB score, raw /
null / perfect scores, and point and window precision/recall/F1 at the standard-profile
threshold.

Detector names: ``random`` (NAB's, ``seed``), ``windowed_gaussian`` (NAB's), or any
:class:`~rnnkit.anomaly.detectors.DetectorConfig` (the recurrent detectors).

Example::

    corpus = load_nab_corpus(root, families=["realKnownCause"])
    files = run_detector(DetectorConfig(kind="prediction"), corpus)
    report = evaluate_nab(files)               # {"standard": {"score": ..., ...}, ...}
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.anomaly.baselines import random_scores, windowed_gaussian_scores
from rnnkit.anomaly.detectors import DetectorConfig, build_detector
from rnnkit.anomaly.nab_scoring import (
    PROFILES,
    ScoredFile,
    nab_score,
    point_metrics,
    window_metrics,
)
from rnnkit.anomaly.thresholds import dynamic_threshold
from rnnkit.data.nab import NABSeries, window_mask

__all__ = ["detector_name", "score_series", "run_detector", "evaluate_nab", "dynamic_alarms",
           "write_results_csv", "read_results_csv", "DYNAMIC"]

# dynamic thresholding of each file's scores (Hundman et al. 2018), our settings: EWMA span 30,
# thresholds over the last 2000 rows refreshed every 100 rows, pruning p = 0.13, z in 2..10
DYNAMIC = {"span": 30, "window": 2000, "step": 100, "min_decrease": 0.13}


def detector_name(detector: str | DetectorConfig) -> str:
    """``random``, ``windowed_gaussian``, or ``lstm_prediction``,
    ``gru_reconstruction_rolling6400`` ..."""
    if isinstance(detector, DetectorConfig):
        suffix = f"_rolling{detector.rolling_window}" if detector.error_model == "rolling" else ""
        return f"{detector.cell}_{detector.kind}{suffix}"
    return detector


def score_series(detector: str | DetectorConfig, series: NABSeries, *,
                 seed: int = 42) -> tuple[np.ndarray, dict]:
    """Anomaly scores ``(N,)`` of one NAB file and a dict of fit information."""
    if detector == "random":
        return random_scores(len(series), seed=seed), {}
    if detector == "windowed_gaussian":
        return windowed_gaussian_scores(series.values), {}
    if isinstance(detector, DetectorConfig):
        det = build_detector(detector).fit(series.values, fit_end=series.probation)
        return det.score(series.values), dict(det.history)
    raise ValueError(f"detector {detector!r}: expected 'random', 'windowed_gaussian' or a "
                     "DetectorConfig")


def write_results_csv(path: Path, series: NABSeries, scores: np.ndarray) -> None:
    """NAB results file: ``timestamp,value,anomaly_score,label`` (label = inside a window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "timestamp": series.timestamps.strftime("%Y-%m-%d %H:%M:%S"),
        "value": series.values,
        "anomaly_score": scores,
        "label": window_mask(len(series), series.windows).astype(int),
    }).to_csv(path, index=False, float_format="%.17g")


def read_results_csv(path: Path, series: NABSeries) -> np.ndarray:
    """The ``anomaly_score`` column of a results file, checked against its data file: the
    same number of rows, the same timestamp on every row (NAB scores by row, so a reordered
    or shifted file would be scored against the wrong windows), finite scores."""
    frame = pd.read_csv(path)
    for col in ("timestamp", "anomaly_score"):
        if col not in frame.columns:
            raise ValueError(f"{path}: row 1: no column {col!r}")
    if len(frame) != len(series):
        raise ValueError(f"{path}: {len(frame)} rows, but {series.path} has {len(series)}")
    ts = pd.to_datetime(frame["timestamp"], errors="coerce", format="mixed")
    same = ts.to_numpy() == pd.DatetimeIndex(series.timestamps).as_unit("ns").to_numpy()
    if not same.all():
        i = int(np.flatnonzero(~same)[0])
        got = frame["timestamp"].iloc[i]
        raise ValueError(f"{path}: row {i + 2}, column 'timestamp': {got!r}, "
                         f"but row {i + 2} of {series.path} is {series.timestamps[i]}")
    s = pd.to_numeric(frame["anomaly_score"], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(s).all():
        i = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ValueError(f"{path}: row {i + 2}, column 'anomaly_score': not a finite number "
                         f"({frame['anomaly_score'].iloc[i]!r})")
    return s


def run_detector(detector: str | DetectorConfig, corpus: list[NABSeries], *,
                 out: str | Path | None = None, seed: int = 42,
                 log=print) -> list[ScoredFile]:
    """Score every file of ``corpus``; write NAB results CSVs under ``out`` if given."""
    name = detector_name(detector)
    files = []
    for s in corpus:
        t0 = time.time()
        scores, info = score_series(detector, s, seed=seed)
        files.append(ScoredFile(s.key, scores, s.windows, s.probation))
        if out is not None:
            family, fname = s.key.split("/", 1)
            write_results_csv(Path(out) / name / family / f"{name}_{fname}", s, scores)
        if log is not None:
            extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in info.items())
            log(f"{name} {s.key}: {len(s)} rows, {time.time() - t0:.1f}s {extra}".rstrip())
    return files


def evaluate_nab(files: list[ScoredFile]) -> dict:
    """NAB scores under every profile plus point/window P/R/F1 (module docstring)."""
    out = {"files": [f.key for f in files], "windows": sum(len(f.windows) for f in files),
           "profiles": {}}
    for profile in PROFILES:
        r = nab_score(files, profile)
        out["profiles"][profile] = {
            "score": r.score, "threshold": r.threshold, "raw": r.raw, "raw_null": r.raw_null,
            "raw_perfect": r.raw_perfect,
            "per_file": {f.key: {"raw": f.raw, "tp": f.tp, "fp": f.fp, "fn": f.fn, "tn": f.tn}
                         for f in r.files},
        }
    th = out["profiles"]["standard"]["threshold"]
    out["point"] = point_metrics(files, th)._asdict()
    out["window"] = window_metrics(files, th)._asdict()
    alarms = dynamic_alarms(files)
    out["dynamic"] = {
        "settings": DYNAMIC,
        "profiles": {p: nab_score(alarms, p, threshold=0.5).score for p in PROFILES},
        "point": point_metrics(alarms, 0.5)._asdict(),
        "window": window_metrics(alarms, 0.5)._asdict(),
    }
    return out


def dynamic_alarms(files: list[ScoredFile], **settings) -> list[ScoredFile]:
    """0/1 alerts per file: :func:`~rnnkit.anomaly.thresholds.dynamic_threshold` applied to
    ``u = -ln(1 - score)`` of the rows after the probationary period (no label is used); each
    anomalous sequence it keeps raises one alert, at its first row."""
    kw = {**DYNAMIC, **settings}
    out = []
    for f in files:
        u = -np.log(np.clip(1.0 - f.scores[f.probation:], 1e-300, 1.0))
        flags = np.zeros(len(f.scores))
        if len(u) >= 2:
            for a, _ in dynamic_threshold(u, **kw).sequences:
                flags[f.probation + a] = 1.0
        out.append(ScoredFile(f.key, flags, f.windows, f.probation))
    return out


def config_dict(detector: str | DetectorConfig) -> dict | str:
    return asdict(detector) if isinstance(detector, DetectorConfig) else detector
