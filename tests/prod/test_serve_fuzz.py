"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis; issue 19's fuzzing harness).

Each task's app (lm, anomaly, forecast, audio) is served by uvicorn in a thread of this
process on 127.0.0.1 only, and schemathesis sends it requests generated from the app's
``/openapi.json``: valid ones and, in its negative mode, ones that break the schema. For
every response:

- no 5xx, and the status, content type and body conform to the schema (schemathesis' checks);
- no hang: every call has a 10 s timeout (a hang fails the example, it cannot stall CI);
- bounded memory: this process's RSS stays within 150 MB of its level when the server
  started (the server runs in it).

The limits are small (``FUZZ_LIMITS``) so that a valid request is cheap: the schema carries
them, so schemathesis stays inside them for its valid requests. Derandomised by the ``ci``
Hypothesis profile; ``max_examples`` below (times 20 with HYPOTHESIS_PROFILE=long).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from rnnkit.serve.app import Limits, create_app
from rnnkit.testing import fuzz_examples

HOST = "127.0.0.1"
FUZZ_LIMITS = Limits(max_body_bytes=20_000, max_tokens=8, max_prompt_chars=64, max_items=64, slots=2,
                     body_timeout_s=5.0)
EXAMPLES = fuzz_examples(100)  # per operation and generation phase
TIMEOUT_S = 10.0
RSS_BOUND_MB = 150.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class _Served:
    """An app on a free port of 127.0.0.1 (uvicorn in a daemon thread), with its schema."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        self.url = f"http://{HOST}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="critical"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("fuzz server did not start")
            time.sleep(0.05)
        self.schema = schemathesis.openapi.from_dict(app.openapi())
        self.rss0 = _rss_mb()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _serve(ckpt: Path):
    served = _Served(create_app(ckpt, FUZZ_LIMITS))
    yield served
    served.close()


@pytest.fixture(scope="module")
def lm_served(lm_ckpt):
    yield from _serve(lm_ckpt)


@pytest.fixture(scope="module")
def anomaly_served(anomaly_ckpt):
    yield from _serve(anomaly_ckpt)


@pytest.fixture(scope="module")
def forecast_served(forecast_ckpt):
    yield from _serve(forecast_ckpt)


@pytest.fixture(scope="module")
def audio_served(audio_ckpt):
    yield from _serve(audio_ckpt)


@pytest.fixture(scope="module")
def lm_schema(lm_served):
    return lm_served.schema


@pytest.fixture(scope="module")
def anomaly_schema(anomaly_served):
    return anomaly_served.schema


@pytest.fixture(scope="module")
def forecast_schema(forecast_served):
    return forecast_served.schema


@pytest.fixture(scope="module")
def audio_schema(audio_served):
    return audio_served.schema


def _check(case, served) -> None:
    t0 = time.monotonic()
    # positive_data_acceptance is left out on purpose: a request can fit the schema and still
    # be one the model cannot take (a character outside the vocabulary, a series shorter
    # than the input window): that is the documented 422 with the pipeline's message
    case.call_and_validate(base_url=served.url, timeout=TIMEOUT_S, excluded_checks=[positive_data_acceptance])
    assert time.monotonic() - t0 < TIMEOUT_S
    grown = _rss_mb() - served.rss0
    assert grown < RSS_BOUND_MB, f"RSS grew {grown:.0f} MB during the fuzz run"


FUZZ = settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck), deadline=None)


@schemathesis.pytest.from_fixture("lm_schema").parametrize()
@FUZZ
def test_fuzz_lm_api(case, lm_served):
    _check(case, lm_served)


@schemathesis.pytest.from_fixture("anomaly_schema").parametrize()
@FUZZ
def test_fuzz_anomaly_api(case, anomaly_served):
    _check(case, anomaly_served)


@schemathesis.pytest.from_fixture("forecast_schema").parametrize()
@FUZZ
def test_fuzz_forecast_api(case, forecast_served):
    _check(case, forecast_served)


@schemathesis.pytest.from_fixture("audio_schema").parametrize()
@FUZZ
def test_fuzz_audio_api(case, audio_served):
    _check(case, audio_served)

