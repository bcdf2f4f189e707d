"""Per-series anomaly plot: the values with the labelled windows, and the scores with the threshold.

Two stacked panels sharing the time axis: the series (windows shaded red, the probationary
period grey, detections marked), and the anomaly score with the threshold line.

Example::

    plot_series("plots/nyc_taxi.png", s.timestamps, s.values, scores, 0.93, s.windows)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_series"]


def plot_series(path: str | Path, timestamps, values: np.ndarray, scores: np.ndarray,
                threshold: float | None, windows: list[tuple[int, int]], *, probation: int = 0,
                title: str = "") -> Path:
    """Write the PNG at ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(timestamps)
    values, scores = np.asarray(values, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 5), sharex=True, height_ratios=[3, 2])
    for ax in (ax1, ax2):
        for k, (a, b) in enumerate(windows):
            ax.axvspan(t[a], t[b], color="tab:red", alpha=0.15, lw=0,
                       label="labelled window" if k == 0 else None)
        if probation:
            ax.axvspan(t[0], t[probation - 1], color="0.85", lw=0, label="probationary period")
    ax1.plot(t, values, lw=0.6, color="tab:blue", label="value")
    if threshold is not None and np.isfinite(threshold):
        hit = np.flatnonzero(scores >= threshold)
        hit = hit[hit >= probation]
        ax1.plot(t[hit], values[hit], "o", ms=3, color="tab:orange", label="detection")
        ax2.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:.6g}")
    ax2.plot(t, scores, lw=0.6, color="tab:purple", label="anomaly score")
    ax1.set_ylabel("value")
    ax2.set_ylabel("score")
    ax1.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="upper left", fontsize=7)
    if title:
        ax1.set_title(title, fontsize=9)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
