"""Time-series anomaly detection with recurrent networks, and NAB's benchmark protocol.

- :mod:`~rnnkit.anomaly.detectors`: prediction-error (LSTM-AD) and reconstruction-error
  (EncDec-AD) detectors, any rnnkit cell; :mod:`~rnnkit.anomaly.models` their networks.
- :mod:`~rnnkit.anomaly.gaussian`: the Gaussian error model and the tail-probability score.
- :mod:`~rnnkit.anomaly.thresholds`: percentile, Gaussian tail and dynamic thresholds.
- :mod:`~rnnkit.anomaly.streaming`: row-by-row scores with the recurrent state carried.
- :mod:`~rnnkit.anomaly.nab_scoring`: NAB's scaled-sigmoid scoring, profiles, threshold
  optimisation and normalisation; point and window precision/recall/F1.
- :mod:`~rnnkit.anomaly.baselines`: NAB's random and windowed-Gaussian detectors.
- :mod:`~rnnkit.anomaly.benchmark`: run a detector over NAB files and score it.
- :mod:`~rnnkit.anomaly.plots`: the per-series plot.

Example::

    from rnnkit.anomaly import DetectorConfig, build_detector, StreamingScorer
    det = build_detector(DetectorConfig(kind="prediction")).fit(values, fit_end=750)
    scores = det.score(values)                       # batch, (N,) in [0, 1)
    live = StreamingScorer(det)                      # or one value at a time
"""

from rnnkit.anomaly.detectors import (
    Detector,
    DetectorConfig,
    PredictionDetector,
    ReconstructionDetector,
    build_detector,
    load_detector,
)
from rnnkit.anomaly.gaussian import ErrorScorer, GaussianErrorModel
from rnnkit.anomaly.nab_scoring import (
    PROFILES,
    ScoredFile,
    nab_score,
    point_metrics,
    window_metrics,
)
from rnnkit.anomaly.streaming import StreamingScorer
from rnnkit.anomaly.thresholds import (
    dynamic_threshold,
    gaussian_tail_threshold,
    percentile_threshold,
)

__all__ = [
    "Detector",
    "DetectorConfig",
    "PredictionDetector",
    "ReconstructionDetector",
    "build_detector",
    "load_detector",
    "ErrorScorer",
    "GaussianErrorModel",
    "PROFILES",
    "ScoredFile",
    "nab_score",
    "point_metrics",
    "window_metrics",
    "StreamingScorer",
    "dynamic_threshold",
    "gaussian_tail_threshold",
    "percentile_threshold",
]
