"""Serving: streaming predictors and an HTTP API (FastAPI + uvicorn).

::

    rnnkit serve runs/shakespeare_char/best --port 8000 [--int8] [--max-tokens 500]
    curl -s localhost:8000/generate -H 'content-type: application/json' \\
         -d '{"prompt": "ROMEO:", "max_tokens": 200, "temperature": 0.8, "seed": 0}'

Python::

    from rnnkit.serve import load_predictor
    p = load_predictor("runs/nab/nyc_taxi")          # an anomaly checkpoint
    for v in stream:
        alert = p.step(v) > 0.99
"""

from pathlib import Path
from typing import Any

from rnnkit.tasks.predictors import (
    AnomalyPredictor,
    ASRPredictor,
    AudioPredictor,
    ForecastPredictor,
    LMPredictor,
    TextPredictor,
)

__all__ = ["load_predictor", "LMPredictor", "AnomalyPredictor", "ForecastPredictor",
           "AudioPredictor", "ASRPredictor", "TextPredictor", "create_app", "Limits"]


def load_predictor(checkpoint: str | Path, *, int8: bool = False) -> Any:
    """The streaming predictor of a checkpoint, from its pipeline's TaskSpec; ``int8``
    quantises its recurrent and linear layers dynamically
    (:func:`rnnkit.compress.quantize_dynamic`)."""
    from rnnkit.train.checkpoint import read_config
    from rnnkit.train.task import get_task_spec, task_names

    task = read_config(checkpoint).get("task")
    spec = get_task_spec(task) if isinstance(task, str) else None
    if spec is None or spec.predictor is None:
        have = [n for n in task_names() if get_task_spec(n).predictor is not None]
        raise ValueError(f"{checkpoint}: a {task!r} checkpoint; serving supports "
                         f"{', '.join(have)} checkpoints")
    return spec.predictor(Path(checkpoint), int8)


def __getattr__(name: str):
    if name in ("create_app", "Limits"):  # FastAPI is imported only by the server
        from rnnkit.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'rnnkit.serve' has no attribute {name!r}")
