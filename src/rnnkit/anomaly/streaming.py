"""Streaming anomaly scores: one row at a time, as the rows arrive.

:class:`StreamingScorer` wraps a fitted detector and returns the score of each new value
without looking ahead, in O(1) work per row:

- prediction detector: the recurrent state ``s_t`` is carried from row to row (one
  ``(1, 1, 1)`` step of the network per row) and the last ``l`` predictions are kept, so
  ``e_t[j-1] = x_t - (prediction of x_t made at t - j)`` as soon as ``x_t`` arrives;
- reconstruction detector: a ring buffer of the last ``L`` values; each full window is
  encoded and decoded on arrival of its last value.

The rolling error model refits on the same rows as the batch path.  Streaming scores
equal :meth:`Detector.score` on the whole series up to float32 rounding of the network.

Example::

    scorer = StreamingScorer(load_detector("runs/anomaly/nyc"))
    for value in feed:
        if scorer.update(value) >= threshold:
            alert()
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from rnnkit.anomaly.detectors import Detector, PredictionDetector, ReconstructionDetector

__all__ = ["StreamingScorer"]


class StreamingScorer:
    """Row-by-row scores of a fitted :class:`~rnnkit.anomaly.detectors.Detector`."""

    def __init__(self, detector: Detector):
        if not isinstance(detector, (PredictionDetector, ReconstructionDetector)):
            raise TypeError(f"expected a fitted PredictionDetector or ReconstructionDetector, got "
                            f"{type(detector).__name__}")
        self.detector = detector
        self.errors = detector.error_scorer()  # raises if the detector is not fitted
        detector.model.eval()
        self.t = 0  # rows seen
        self.state = None  # carried recurrent state (prediction)
        d = detector.dim
        self.pending: deque[np.ndarray] = deque(maxlen=d)  # last l predictions (prediction)
        self.window: deque[float] = deque(maxlen=d)  # last L values (reconstruction)

    def _standardise(self, value: float) -> float:
        v = float(value)
        if not np.isfinite(v):
            raise ValueError(f"row {self.t}: value {value!r} is not a finite number")
        return (v - self.detector.mean) / self.detector.std

    @torch.no_grad()
    def update(self, value: float) -> float:
        """Score of the next value (0 until the detector has a full error vector)."""
        z = self._standardise(value)
        det, t = self.detector, self.t
        score = 0.0
        if isinstance(det, PredictionDetector):
            if t >= det.valid_from:
                l = det.dim
                e = np.array([z - self.pending[-j][j - 1] for j in range(1, l + 1)])
                score = self.errors.push(t, e)
            x = torch.tensor([[[z]]], dtype=torch.float32)  # (1, 1, 1)
            y, self.state = det.model(x, self.state)
            self.pending.append(y[0, 0].double().numpy())
        else:
            self.window.append(z)
            if t >= det.valid_from:
                w = np.array(self.window)[None]  # (1, L)
                score = self.errors.push(t, np.abs(w - det.reconstruct(w))[0])
        self.t += 1
        return score

    def update_many(self, values) -> np.ndarray:
        """Scores of several values fed in order."""
        return np.array([self.update(v) for v in values], dtype=np.float64)
