"""The HTTP API of ``rnnkit serve``: FastAPI over a checkpoint's predictor.

Endpoints (only those of the predictor's ``api`` are mounted, so ``/openapi.json`` and
``/docs`` describe exactly what this server does). The checkpoint's TaskSpec builds the
predictor (:func:`rnnkit.serve.load_predictor`); the routes follow its ``api``, never a task
name, so a new pipeline whose predictor has one of these APIs is served as it is::

    GET  /health      {"status": "ok", "task", "checkpoint", "requests", "uptime_s"}
    GET  /info        task facts (the predictor's ``facts()``) and the limits below
    api "generate" (lm):
      POST /generate  {"prompt", "max_tokens", "temperature", "top_k", "top_p", "seed"}
                      -> {"text"}
      POST /predict   {"texts": [...]} -> per-text loss / ppl / bits
    api "texts" (classify, tag, translate):
      POST /predict   {"texts": [...], "top_k", "beam_size", "max_len"} -> {"results"}
                      (only the options the pipeline takes: classify top_k, translate
                      beam_size and max_len, tag none; the others are 422)
    api "audio" (audio):
      POST /predict   {"audio": [...], "sample_rate", "top_k"} -> label, prob, top
    api "transcribe" (asr):
      POST /transcribe?beam_size=1   body: a WAV (FLAC, OGG) file -> {"text", "seconds"}
    api "score" (anomaly):
      POST /score     {"values": [...], "threshold"} -> {"scores", "anomalies"}
    api "forecast" (forecast):
      POST /forecast  {"timestamps": [...], "values": {"y": [...]}} -> {"forecast": [...]}

Bounds: request bodies over ``max_body_bytes`` get 413 before they are parsed (declared
``Content-Length`` or counted while streaming), and a body that has not fully arrived
``body_timeout_s`` after the request began gets 408; both close the connection.
``max_tokens`` (generation length) and ``max_items`` (list lengths) are part of the request
schema, so violations are 422 with the field named. Types are strict (``true`` is not an
integer, ``"3"`` is not a number) and numbers finite (``NaN``, ``Infinity``, ``1e400`` are
422), a key given twice in a JSON object is 422 naming it (JSON readers disagree on which
one wins), and a query parameter the endpoint does not declare is 422 where it takes a body
or declares parameters (``/health?probe=1`` is fine; ``/generate`` takes
everything in its body). Inputs the model cannot take (a character outside the vocabulary,
a series shorter than the input window, a ``values`` key that is no column of the model)
are 422 with the pipeline's one-line message, naming the item (``texts[2]``). Error
messages never echo the request's values and never name a path of the server.

Threads: the model runs in a pool of ``slots`` threads (the rest of the requests wait in
its queue); everything else (parsing, validation, ``/health``, ``/info``) runs on the event
loop and never waits for that pool. A fixed set of threads touches the model's buffers,
so the allocator's per-thread arenas, and with them the memory, stay bounded.

Example::

    app = create_app("runs/shakespeare_char/best", Limits(max_tokens=500))
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

# no `from __future__ import annotations`: FastAPI must see the request classes defined
# inside create_app as objects, not as names it cannot resolve

import asyncio
import functools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from rnnkit.serve import load_predictor
from rnnkit.serve.strict import (
    _SERVER_TMP,
    _item_error,
    _short,
    _Strict,
    _StrictRoute,
    _validation_errors,
    _value_error,
)

__all__ = ["Limits", "create_app", "BodyLimit"]


@dataclass
class Limits:
    """Server bounds (see the module docstring)."""

    max_body_bytes: int = 1_000_000
    max_tokens: int = 1000
    max_prompt_chars: int = 10_000
    max_items: int = 100_000
    slots: int = 2
    body_timeout_s: float = 10.0

    def check(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise ValueError(f"Limits.{f.name}: {v!r}; expected a positive number")


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes, declared or streamed;
    408 for a body not complete ``timeout`` seconds after the request began.

    The body is read here (at most ``limit`` bytes are ever held) and replayed to the app,
    so a chunked upload without ``Content-Length`` is cut off as soon as it passes the limit,
    and a body dribbled a byte at a time cannot hold a connection (and its memory) open.
    Both answers close the connection: the rest of the body is never read.
    """

    def __init__(self, app: Any, limit: int, timeout: float = 10.0):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        chunks, size, more = [], 0, True
        while more:
            try:
                msg = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                return await _close_with(
                    send, 408, f"request body not received within {self.timeout:g} s"
                )
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
        await _close_with(send, 413, f"request body too large: the limit is {self.limit} bytes")


async def _close_with(send, status: int, detail: str) -> None:
    """A JSON error response that closes the connection (the request was not read to its end)."""
    body = JSONResponse({"detail": detail}).body
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _Message(BaseModel):
    detail: str


#: what the body middleware answers on every POST (documented in the schema)
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    408: {"model": _Message, "description": "the body did not arrive within body_timeout_s"},
    413: {"model": _Message, "description": "the body is larger than max_body_bytes"},
}


def create_app(checkpoint: str | Path, limits: Limits | None = None, *, int8: bool = False,
               predictor: Any = None) -> FastAPI:
    """The FastAPI app serving ``checkpoint`` (see the module docstring)."""
    lim = limits or Limits()
    lim.check()
    pred = predictor if predictor is not None else load_predictor(checkpoint, int8=int8)
    task = pred.task
    name = _public_name(checkpoint)
    # the model runs only in these threads (see the module docstring); calls share one
    # predictor and its read-only model, each call that streams gets its own stream
    # (generation, scoring); forecasting edits the predictor's config, so it takes a lock
    pool = ThreadPoolExecutor(lim.slots, thread_name_prefix="rnnkit-model")
    lock = threading.Lock()
    counters = {"requests": 0, "started": time.time()}
    hide = sorted({str(checkpoint), str(Path(checkpoint).resolve())}, key=len, reverse=True)

    @asynccontextmanager
    async def lifespan(_):
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title=f"rnnkit serve: {task}", version="1", lifespan=lifespan,
                  description=f"rnnkit {task} checkpoint {name}")
    app.router.route_class = _StrictRoute  # duplicate JSON keys, undeclared query parameters

    def clean(msg: str) -> str:
        """One line, no server path (the checkpoint's, a temporary file's), at most 1000
        characters."""
        for h in hide:
            msg = msg.replace(h, name)
        msg = _SERVER_TMP.sub("request", " ".join(msg.split()))
        return _short(msg, 1000)

    @app.exception_handler(ValueError)
    async def value_error(_, e: ValueError):  # the pipelines' one-line input errors
        return JSONResponse(status_code=422, content={"detail": [_value_error(clean(str(e)))]})

    @app.exception_handler(RequestValidationError)
    async def invalid(_, e: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": _validation_errors(e)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        # FastAPI's answer to a body that is not UTF-8: 422 as for bad JSON
        if e.status_code == 400:
            return JSONResponse(
                status_code=422,
                content={
                    "detail": [
                        {
                            "loc": ["body"],
                            "msg": "JSON decode error: the body is not UTF-8 text",
                            "type": "json_invalid",
                        }
                    ]
                },
            )
        return await http_exception_handler(request, e)

    async def run(fn, *a, **k):
        counters["requests"] += 1
        out = await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *a, **k))
        if not _finite(out):  # JSON has no NaN: say why here, not "Out of range float values ..."
            raise ValueError("the model's output is not finite for this input (values far outside "
                             "the range it was trained on?)")
        return out

    @app.get("/health")
    async def health() -> dict[str, Any]:  # on the event loop: never behind the model's queue
        return {
            "status": "ok",
            "task": task,
            "checkpoint": name,
            "int8": int8,
            "requests": counters["requests"],
            "uptime_s": round(time.time() - counters["started"], 1),
        }

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {"task": task, "limits": asdict(lim), "int8": int8, **pred.facts()}

    Items = lim.max_items
    if pred.api == "generate":
        from rnnkit.tasks.predictors import LMPredictor

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

        @app.post("/generate", response_model=GenerateResponse, responses=_BODY_ERRORS)
        async def generate(r: GenerateRequest) -> dict[str, Any]:
            def go() -> str:
                p = LMPredictor(pred.model, pred.vocab, pred.config)  # own stream and generator
                return p.generate(r.prompt, r.max_tokens, temperature=r.temperature, top_k=r.top_k,
                                  top_p=r.top_p, seed=r.seed)

            return {"text": await run(go), "tokens": r.max_tokens}

        @app.post("/predict", responses=_BODY_ERRORS)
        async def predict(r: ScoreTextsRequest) -> dict[str, Any]:
            def go() -> list[dict[str, float]]:
                out = []
                for i, t in enumerate(r.texts):
                    try:
                        out.append(pred.score(t))
                    except ValueError as e:  # name the text: "texts[2]: 'é' at position ..."
                        raise _item_error("texts", i, e) from None
                return out

            return {"results": await run(go)}

    elif pred.api == "score":
        class ScoreRequest(_Strict):
            values: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]],
                              Field(min_length=1, max_length=Items)]
            threshold: float | None = Field(None, ge=0.0, le=1.0)

        @app.post("/score", responses=_BODY_ERRORS)
        async def score(r: ScoreRequest) -> dict[str, Any]:
            s = await run(pred.score, r.values)
            out: dict[str, Any] = {"scores": s}
            if r.threshold is not None:
                out["anomalies"] = [i for i, v in enumerate(s) if v >= r.threshold]
            return out

    elif pred.api == "forecast":
        class ForecastRequest(_Strict):
            timestamps: Annotated[list[str], Field(min_length=1, max_length=Items)]
            values: dict[str, Annotated[list[Annotated[float, Field(allow_inf_nan=False)]],
                                        Field(max_length=Items)]]

        @app.post("/forecast", responses=_BODY_ERRORS)
        async def forecast(r: ForecastRequest) -> dict[str, Any]:
            def go():
                with lock:
                    return pred.forecast(r.timestamps, r.values)

            return {"forecast": await run(go)}

    elif pred.api == "texts":
        # only the options this pipeline takes (classify: top_k; translate: beam_size,
        # max_len; tag: none): any other is an unknown field, 422, as the CLI rejects it
        option_fields = {
            "top_k": (int, Field(1, ge=1, le=100, description="classify: labels per text")),
            "beam_size": (int, Field(5, ge=1, le=32, description="translate: beam width")),
            "max_len": (int, Field(100, ge=1, le=lim.max_tokens,
                                   description="translate: longest output")),
        }
        takes = pred.options() if hasattr(pred, "options") else dict.fromkeys(option_fields)
        TextsRequest = create_model(  # noqa: N806 - a class
            "TextsRequest",
            __base__=_Strict,
            texts=(Annotated[
                list[Annotated[str, Field(min_length=1, max_length=lim.max_prompt_chars)]],
                Field(min_length=1, max_length=min(Items, 256)),
            ], ...),
            **{k: v for k, v in option_fields.items() if k in takes},
        )

        @app.post("/predict", responses=_BODY_ERRORS)
        async def predict_texts(r: TextsRequest) -> dict[str, Any]:
            opts = {k: getattr(r, k) for k in option_fields if k in takes}
            return {"results": await run(pred.predict, r.texts, **opts)}

    elif pred.api == "audio":
        class AudioRequest(_Strict):
            audio: Annotated[
                list[Annotated[float, Field(ge=-1e6, le=1e6)]],
                Field(min_length=1, max_length=Items, description="samples, usually in [-1, 1]"),
            ]
            sample_rate: int = Field(8000, ge=1000, le=192_000)
            top_k: int = Field(1, ge=1, le=100)

        @app.post("/predict", responses=_BODY_ERRORS)
        async def predict_audio(r: AudioRequest) -> dict[str, Any]:
            return await run(pred.classify, r.audio, r.sample_rate, r.top_k)

    elif pred.api == "transcribe":
        wav = {"requestBody": {"required": True, "content": {
            "audio/wav": {"schema": {"type": "string", "format": "binary"}}}}}

        @app.post("/transcribe", responses=_BODY_ERRORS, openapi_extra=wav)
        async def transcribe(request: Request, beam_size: Annotated[int, Query(
                ge=1, le=32, description="1: greedy; more: beam search (lexicon)")] = 1
        ) -> dict[str, Any]:
            body = await request.body()  # at most max_body_bytes (BodyLimit)
            if not body:
                raise ValueError("body: empty; expected a WAV file")
            return await run(pred.transcribe_wav, body, beam_size)

    app.add_middleware(BodyLimit, limit=lim.max_body_bytes, timeout=lim.body_timeout_s)
    return app


def _finite(x: Any) -> bool:
    if isinstance(x, float):
        return math.isfinite(x)
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_finite(v) for v in x)
    return True


def _public_name(checkpoint: str | Path) -> str:
    """What responses call the checkpoint: its run's and its own directory name, never a path."""
    p = Path(checkpoint).resolve()
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
