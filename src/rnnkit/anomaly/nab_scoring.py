"""NAB scoring (Lavin & Ahmad 2015; numenta/NAB v1.x ``sweeper.py``), plus P/R/F1.

Every row ``i`` at or after the probationary period gets a weight ``w_i`` that it adds to
the file's score if it is a detection (anomaly score ``>= threshold``).  With the scaled
sigmoid ``sigma(y) = 2 / (1 + exp(5 y)) - 1`` (``-1`` for ``y >= 3``) and a profile's weights
``A_TP, A_FP, A_FN``:

- inside a window ``[a, b]`` of ``W = b - a + 1`` rows, ``y = -(b - i + 1) / W`` and
  ``w_i = A_TP * sigma(y) / sigma(-1)``: ``A_TP`` at the window start, ``~0`` at its end;
- outside, after the last window ``[a', b']`` that ended before ``i``,
  ``y = (i - b') / (W' - 1)`` and ``w_i = A_FP * sigma(y)`` (a detection just after a
  window costs little, one far after it ``-A_FP``); before any window ``w_i = -A_FP``.

A file's raw score is ``sum_{detected i outside windows} w_i + sum_windows s_k`` with
``s_k = max_{detected i in window k} w_i`` (the earliest detection counts, once) or
``s_k = -A_FN`` for a missed window.  The profiles (``config/profiles.json``)::

    standard            A_TP 1.0  A_FP 0.11  A_FN 1.0
    reward_low_FP_rate  A_TP 1.0  A_FP 0.22  A_FN 1.0
    reward_low_FN_rate  A_TP 1.0  A_FP 0.11  A_FN 2.0

**Threshold.** As NAB's optimiser does, one threshold per detector and profile is chosen
for the whole corpus: every distinct anomaly score (and "no detection") is tried and the
one with the largest summed raw score wins (ties: the highest threshold).  **Normalisation**
(NAB ``runner.normalize``)::

    score = 100 * (raw - raw_null) / (raw_perfect - raw_null)

where ``raw_null`` is the null detector's raw score (a constant anomaly score, optimised the
same way: it detects nothing, ``-A_FN`` per window) and ``raw_perfect = A_TP * #windows``.

The point and window metrics use one threshold too: point precision/recall/F1 count rows
(detections vs rows inside windows); window recall is the fraction of windows with a
detection and window precision the fraction of alarm *events* (maximal runs of consecutive
detections) that touch a window.  Rows in the probationary period are ignored throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rnnkit.data.nab import PROBATION_PERCENT, probation_length

__all__ = [
    "Profile",
    "PROFILES",
    "scaled_sigmoid",
    "ScoredFile",
    "sweep_weights",
    "ThresholdCurve",
    "threshold_curve",
    "FileScore",
    "score_file",
    "NABResult",
    "nab_score",
    "PRF",
    "point_metrics",
    "window_metrics",
]


@dataclass(frozen=True)
class Profile:
    """A NAB application profile (cost matrix)."""

    tp: float
    fp: float
    fn: float
    tn: float = 1.0


PROFILES = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


def _profile(p: str | Profile) -> Profile:
    if isinstance(p, Profile):
        return p
    if p not in PROFILES:
        raise ValueError(f"profile={p!r}: expected one of {', '.join(PROFILES)}")
    return PROFILES[p]


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """``2 sigmoid(-5 y) - 1``, and exactly ``-1`` for ``y >= 3`` (NAB's ``scaledSigmoid``)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore"):
        s = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y >= 3.0, -1.0, s)


@dataclass
class ScoredFile:
    """A detector's output on one file: ``N`` anomaly scores and the file's windows.

    ``windows`` are inclusive row limits ``(a, b)``, sorted and disjoint.
    """

    key: str
    scores: np.ndarray
    windows: list[tuple[int, int]]
    probation: int | None = None

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = len(self.scores)
        if np.isnan(self.scores).any():
            row = int(np.argmax(np.isnan(self.scores)))
            raise ValueError(f"{self.key}: anomaly scores contain NaN (row {row})")
        prev = -1
        for a, b in self.windows:
            if not (prev < a <= b < n):
                raise ValueError(f"{self.key}: window ({a}, {b}) is not sorted, disjoint and "
                                 f"inside 0..{n - 1}")
            prev = b
        if self.probation is None:
            self.probation = probation_length(n, PROBATION_PERCENT)


def sweep_weights(n: int, windows: list[tuple[int, int]],
                  profile: str | Profile) -> tuple[np.ndarray, np.ndarray]:
    """Per-row weight ``w_i`` (module docstring) and window id (``-1`` outside windows).

    Returns ``(w (N,), window_id (N,))``.
    """
    p = _profile(profile)
    i = np.arange(n)
    w = np.full(n, -p.fp, dtype=np.float64)  # before any window: y = 3 -> sigma = -1
    wid = np.full(n, -1, dtype=np.int64)
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (a, b) in enumerate(windows):
        width = b - a + 1
        inside = slice(a, b + 1)
        w[inside] = scaled_sigmoid(-(b - i[inside] + 1) / width) * p.tp / max_tp
        wid[inside] = k
        end = windows[k + 1][0] if k + 1 < len(windows) else n
        after = slice(b + 1, end)
        y = (i[after] - b) / (width - 1) if width > 1 else np.full(end - b - 1, 3.0)
        w[after] = scaled_sigmoid(y) * p.fp
    return w, wid


class ThresholdCurve(NamedTuple):
    """Corpus score at every candidate threshold, highest threshold first.

    ``thresholds[0] = inf`` is "no detection"; row ``k`` counts the rows with score ``>=
    thresholds[k]`` as detections.  ``tp/fp`` count detected rows inside/outside windows.
    """

    thresholds: np.ndarray
    raw: np.ndarray
    tp: np.ndarray
    fp: np.ndarray

    def best(self) -> tuple[float, float]:
        """``(threshold, raw score)`` with the largest score (the highest threshold on ties)."""
        k = int(np.argmax(self.raw))
        return float(self.thresholds[k]), float(self.raw[k])


def threshold_curve(files: list[ScoredFile], profile: str | Profile) -> ThresholdCurve:
    """Summed raw NAB score of ``files`` at every distinct anomaly score (NAB's sweep)."""
    p = _profile(profile)
    scores, weights, groups = [], [], []
    n_windows, offset = 0, 0
    for f in files:
        w, wid = sweep_weights(len(f.scores), f.windows, p)
        keep = slice(f.probation, None)
        scores.append(f.scores[keep])
        weights.append(w[keep])
        g = wid[keep]
        groups.append(np.where(g >= 0, g + offset, -1))
        n_windows += len(np.unique(g[g >= 0]))  # windows with at least one scored row
        offset += len(f.windows)
    s = np.concatenate(scores) if scores else np.zeros(0)
    w = np.concatenate(weights) if weights else np.zeros(0)
    g = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    order = np.argsort(-s, kind="stable")  # descending score
    s, w, g = s[order], w[order], g[order]
    delta = np.where(g < 0, w, 0.0)  # a false positive adds its weight
    for k in np.unique(g[g >= 0]):  # a window adds the rise of its running max over -A_FN
        pos = np.flatnonzero(g == k)
        best = np.maximum.accumulate(np.concatenate([[-p.fn], w[pos]]))
        delta[pos] = np.diff(best)
    raw = -p.fn * n_windows + np.cumsum(delta)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.zeros(0, dtype=np.int64)
    tp, fp = np.cumsum(g >= 0), np.cumsum(g < 0)
    return ThresholdCurve(np.r_[np.inf, s[ends]], np.r_[-p.fn * n_windows, raw[ends]],
                          np.r_[0, tp[ends]], np.r_[0, fp[ends]])


class FileScore(NamedTuple):
    """One file at one threshold (NAB's results row): raw score and row counts."""

    key: str
    raw: float
    tp: int
    tn: int
    fp: int
    fn: int


def score_file(f: ScoredFile, threshold: float, profile: str | Profile) -> FileScore:
    """Raw NAB score of one file with detections ``scores >= threshold``."""
    p = _profile(profile)
    w, wid = sweep_weights(len(f.scores), f.windows, p)
    s, w, wid = f.scores[f.probation:], w[f.probation:], wid[f.probation:]
    det = s >= threshold
    raw = float(w[det & (wid < 0)].sum())
    for k in np.unique(wid[wid >= 0]):
        hit = det & (wid == k)
        raw += float(w[hit].max()) if hit.any() else -p.fn
    inside = wid >= 0
    return FileScore(f.key, raw, int((det & inside).sum()), int((~det & ~inside).sum()),
                     int((det & ~inside).sum()), int((~det & inside).sum()))


@dataclass
class NABResult:
    """NAB's outcome for one detector and profile on a corpus."""

    profile: str
    threshold: float
    score: float  # normalised, 0 = null detector, 100 = perfect
    raw: float
    raw_null: float
    raw_perfect: float
    files: list[FileScore]


def nab_score(files: list[ScoredFile], profile: str = "standard",
              threshold: float | None = None) -> NABResult:
    """Normalised NAB score of a detector's ``files``, its threshold optimised on them
    (or the given ``threshold``), exactly as NAB's optimise/score/normalise steps."""
    p = _profile(profile)
    if threshold is None:
        threshold, _ = threshold_curve(files, p).best()
    rows = [score_file(f, threshold, p) for f in files]
    raw = math.fsum(r.raw for r in rows)
    null = [ScoredFile(f.key, np.full(len(f.scores), 0.5), f.windows, f.probation) for f in files]
    _, raw_null = threshold_curve(null, p).best()
    raw_perfect = p.tp * sum(len(f.windows) for f in files)
    denom = raw_perfect - raw_null
    score = 100.0 * (raw - raw_null) / denom if denom > 0 else float("nan")
    return NABResult(str(profile), float(threshold), score, raw, raw_null, raw_perfect, rows)


# --------------------------------------------------------------------------- P / R / F1


class PRF(NamedTuple):
    precision: float
    recall: float
    f1: float


def _prf(tp: float, n_pred: float, n_true: float) -> PRF:
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_true if n_true else 0.0
    return PRF(prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def point_metrics(files: list[ScoredFile], threshold: float) -> PRF:
    """Row-level precision/recall/F1 of ``scores >= threshold`` against window membership."""
    tp = n_pred = n_true = 0
    for f in files:
        _, wid = sweep_weights(len(f.scores), f.windows, "standard")
        det, inside = f.scores[f.probation:] >= threshold, wid[f.probation:] >= 0
        tp += int((det & inside).sum())
        n_pred += int(det.sum())
        n_true += int(inside.sum())
    return _prf(tp, n_pred, n_true)


def window_metrics(files: list[ScoredFile], threshold: float) -> PRF:
    """Window recall (windows with a detection) and event precision (alarm runs touching a
    window)."""
    hit = n_win = good = n_events = 0
    for f in files:
        _, wid = sweep_weights(len(f.scores), f.windows, "standard")
        det, g = f.scores[f.probation:] >= threshold, wid[f.probation:]
        for k in np.unique(g[g >= 0]):
            n_win += 1
            hit += int((det & (g == k)).any())
        starts = np.flatnonzero(det & ~np.r_[False, det[:-1]])  # first row of each alarm run
        stops = np.flatnonzero(det & ~np.r_[det[1:], False])
        n_events += len(starts)
        good += sum(int((g[a:b + 1] >= 0).any()) for a, b in zip(starts, stops))
    prec = good / n_events if n_events else 0.0
    rec = hit / n_win if n_win else 0.0
    return PRF(prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0)
