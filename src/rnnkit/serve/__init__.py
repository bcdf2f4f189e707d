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

from rnnkit.serve.predictor import (
    PREDICTORS,
    AnomalyPredictor,
    AudioPredictor,
    ForecastPredictor,
    LMPredictor,
    TextPredictor,
    load_predictor,
)

__all__ = ["PREDICTORS", "load_predictor", "LMPredictor", "AnomalyPredictor", "ForecastPredictor",
           "AudioPredictor", "TextPredictor", "create_app", "Limits"]


def __getattr__(name: str):
    if name in ("create_app", "Limits"):  # FastAPI is imported only by the server
        from rnnkit.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'rnnkit.serve' has no attribute {name!r}")
