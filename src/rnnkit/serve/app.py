"""The HTTP API of ``rnnkit serve``: FastAPI over a checkpoint's predictor.

Endpoints (only those of the checkpoint's task are mounted, so ``/openapi.json`` and
``/docs`` describe exactly what this server does)::

    GET  /health      {"status": "ok", "task", "checkpoint", "requests", "uptime_s"}
    GET  /info        task facts and the limits below
    POST /generate    lm:       {"prompt", "max_tokens", "temperature", "top_k", "top_p", "seed"} -> {"text"}
    POST /predict     lm:       {"texts": [...]} -> per-text loss / ppl / bits
                      audio:    {"audio": [...], "sample_rate", "top_k"} -> label, prob, top
                      classify, tag, translate: {"texts": [...], "top_k", "beam_size", "max_len"}
    POST /score       anomaly:  {"values": [...], "threshold"} -> {"scores", "anomalies"}
    POST /forecast    forecast: {"timestamps": [...], "values": {"y": [...]}} -> {"forecast": [...]}

Bounds: request bodies over ``max_body_bytes`` get 413 before they are parsed (declared
``Content-Length`` or counted while streaming); ``max_tokens`` (generation length) and
``max_items`` (list lengths) are part of the request schema, so violations are 422 with
the field named; inputs the model cannot take (a character outside the vocabulary, a
series shorter than the input window) are 422 with the pipeline's one-line message.  At
most ``slots`` requests run the model at once (the rest wait), which bounds memory.

Example::

    app = create_app("runs/shakespeare_char/best", Limits(max_tokens=500))
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

# no `from __future__ import annotations`: FastAPI must see the request classes defined
# inside create_app as objects, not as names it cannot resolve

import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from rnnkit.serve.predictor import load_predictor

__all__ = ["Limits", "create_app", "BodyLimit"]


@dataclass
class Limits:
    """Server bounds (see the module docstring)."""

    max_body_bytes: int = 1_000_000
    max_tokens: int = 1000
    max_prompt_chars: int = 10_000
    max_items: int = 100_000
    slots: int = 2


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes, declared or streamed.

    The body is read here (at most ``limit`` bytes are ever held) and replayed to the app,
    so a chunked upload without ``Content-Length`` is cut off as soon as it passes the limit.
    """

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":  # client went away
                return None
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            more = msg.get("more_body", False)
            if size > self.limit:
                return await self._reject(send)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _reject(self, send) -> None:
        body = (b'{"detail":"request body too large: the limit is %d bytes"}' % self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def create_app(checkpoint: str | Path, limits: Limits | None = None, *, int8: bool = False,
               predictor: Any = None) -> FastAPI:
    """The FastAPI app serving ``checkpoint`` (see the module docstring)."""
    lim = limits or Limits()
    pred = predictor if predictor is not None else load_predictor(checkpoint, int8=int8)
    task = pred.task
    gate = threading.BoundedSemaphore(lim.slots)
    # calls share one predictor and its read-only model; each call that streams gets its own
    # stream (generation, scoring); forecasting edits the predictor's config, so it takes a lock
    lock = threading.Lock()
    counters = {"requests": 0, "started": time.time()}
    app = FastAPI(title=f"rnnkit serve: {task}", version="1",
                  description=f"rnnkit {task} checkpoint {checkpoint}")

    @app.exception_handler(ValueError)
    async def value_error(_, e: ValueError):  # the pipelines' one-line input errors
        return JSONResponse(status_code=422, content={"detail": " ".join(str(e).split())})

    def run(fn, *a, **k):
        with gate:
            counters["requests"] += 1
            return fn(*a, **k)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "task": task, "checkpoint": str(checkpoint), "int8": int8,
                "requests": counters["requests"], "uptime_s": round(time.time() - counters["started"], 1)}

    @app.get("/info")
    def info() -> dict[str, Any]:
        return {"task": task, "limits": asdict(lim), "int8": int8, **_facts(pred)}

    Items = lim.max_items
    if task == "lm":
        from rnnkit.serve.predictor import LMPredictor

        class GenerateRequest(_Strict):
            prompt: str = Field("", max_length=lim.max_prompt_chars, description="text to continue")
            max_tokens: int = Field(100, ge=0, le=lim.max_tokens, description="tokens to generate")
            temperature: float = Field(1.0, ge=0.0, le=100.0, description="0 = greedy")
            top_k: int | None = Field(None, ge=1)
            top_p: float | None = Field(None, gt=0.0, le=1.0)
            seed: int | None = Field(None, ge=0, lt=2**63)

        class GenerateResponse(BaseModel):
            text: str
            tokens: int

        class ScoreTextsRequest(_Strict):
            texts: Annotated[list[Annotated[str, Field(max_length=lim.max_prompt_chars)]],
                             Field(min_length=1, max_length=min(Items, 256))]

        @app.post("/generate", response_model=GenerateResponse)
        def generate(r: GenerateRequest) -> dict[str, Any]:
            def go() -> str:
                p = LMPredictor(pred.model, pred.vocab, pred.config)  # own stream and generator
                return p.generate(r.prompt, r.max_tokens, temperature=r.temperature, top_k=r.top_k,
                                  top_p=r.top_p, seed=r.seed)

            return {"text": run(go), "tokens": r.max_tokens}

        @app.post("/predict")
        def predict(r: ScoreTextsRequest) -> dict[str, Any]:
            return {"results": run(lambda: [pred.score(t) for t in r.texts])}

    elif task == "anomaly":
        class ScoreRequest(_Strict):
            values: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]],
                              Field(min_length=1, max_length=Items)]
            threshold: float | None = Field(None, ge=0.0, le=1.0)

        @app.post("/score")
        def score(r: ScoreRequest) -> dict[str, Any]:
            s = run(pred.score, r.values)
            out: dict[str, Any] = {"scores": s}
            if r.threshold is not None:
                out["anomalies"] = [i for i, v in enumerate(s) if v >= r.threshold]
            return out

    elif task == "forecast":
        class ForecastRequest(_Strict):
            timestamps: Annotated[list[str], Field(min_length=1, max_length=Items)]
            values: dict[str, Annotated[list[Annotated[float, Field(allow_inf_nan=False)]],
                                        Field(max_length=Items)]]

        @app.post("/forecast")
        def forecast(r: ForecastRequest) -> dict[str, Any]:
            def go():
                with lock:
                    return pred.forecast(r.timestamps, r.values)

            return {"forecast": run(go)}

    elif task in ("classify", "tag", "translate"):
        class TextsRequest(_Strict):
            texts: Annotated[list[Annotated[str, Field(min_length=1, max_length=lim.max_prompt_chars)]],
                             Field(min_length=1, max_length=min(Items, 256))]
            top_k: int = Field(1, ge=1, le=100, description="classify: labels per text")
            beam_size: int = Field(5, ge=1, le=32, description="translate: beam width")
            max_len: int = Field(100, ge=1, le=lim.max_tokens, description="translate: longest output")

        @app.post("/predict")
        def predict_texts(r: TextsRequest) -> dict[str, Any]:
            res = run(pred.predict, r.texts, top_k=r.top_k, beam_size=r.beam_size, max_len=r.max_len)
            return {"results": res}

    elif task == "audio":
        class AudioRequest(_Strict):
            audio: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]],
                             Field(min_length=1, max_length=Items)]
            sample_rate: int = Field(8000, ge=1000, le=192_000)
            top_k: int = Field(1, ge=1, le=100)

        @app.post("/predict")
        def predict_audio(r: AudioRequest) -> dict[str, Any]:
            return run(pred.classify, r.audio, r.sample_rate, r.top_k)

    app.add_middleware(BodyLimit, limit=lim.max_body_bytes)
    return app


def _facts(pred: Any) -> dict[str, Any]:
    if pred.task == "lm":
        return {"vocab_size": len(pred.vocab), "level": pred.vocab.level}
    if pred.task == "forecast":
        d = pred.config.data
        return {"targets": pred.targets, "input_length": d.input_length, "horizon": d.horizon}
    if pred.task == "anomaly":
        c = pred.detector.config
        return {"kind": c.kind, "horizon": c.horizon, "window": c.window}
    if pred.task == "audio":
        return {"classes": pred.classes, "sample_rate": pred.feats["features"].sample_rate}
    return {}
