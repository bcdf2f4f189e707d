"""Streaming predictors equal the batch paths; the HTTP server over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from rnnkit.serve import load_predictor

# --------------------------------------------------------------------------- predictors


def test_lm_predictor_streams_what_generate_prints(lm_ckpt):
    from rnnkit.generate import generate
    from rnnkit.tasks.lm import load_lm_checkpoint

    model, vocab, _ = load_lm_checkpoint(lm_ckpt)
    ref = "".join(generate(model, vocab, "the cat", 40, temperature=0.9, top_k=5, seed=3))
    p = load_predictor(lm_ckpt)
    assert p.generate("the cat", 40, temperature=0.9, top_k=5, seed=3) == ref
    # the same by hand: feed, then step() with the state carried between calls
    p.reset()
    p.generator.manual_seed(3)
    p.feed("the ")
    p.feed("cat")  # feeding in pieces carries the state: same as one feed
    assert "".join(p.step(temperature=0.9, top_k=5) for _ in range(40)) == ref
    s = p.score("the cat sat on the mat")
    assert s["tokens"] == 22 and s["ppl"] == pytest.approx(np.exp(s["loss"]))
    with pytest.raises(ValueError, match="not in the checkpoint's vocabulary"):
        p.feed("Z")


def test_anomaly_predictor_step_equals_batch_scores(anomaly_ckpt, workdir):
    from rnnkit.anomaly.detectors import load_detector

    values = np.load(workdir / "anomaly_values.npy")[:200]
    ref = load_detector(anomaly_ckpt).score(values)
    p = load_predictor(anomaly_ckpt)
    got = [p.step(v) for v in values]
    np.testing.assert_allclose(got, ref, atol=1e-6)
    np.testing.assert_allclose(p.score(list(values)), ref, atol=1e-6)
    assert max(got) > 0


def test_forecast_predictor_equals_predict_checkpoint(forecast_ckpt, workdir):
    import pandas as pd

    from rnnkit.tasks.forecast import predict_checkpoint

    frame = pd.read_csv(workdir / "series.csv")
    hist = frame.iloc[100:130]
    hist.to_csv(workdir / "hist.csv", index=False)
    ref = predict_checkpoint(forecast_ckpt, workdir / "hist.csv")
    p = load_predictor(forecast_ckpt)
    got = p.forecast(list(hist["time"]), {"y": list(hist["y"])})
    np.testing.assert_allclose([r["forecast"] for r in got], ref["forecast"].to_numpy(), atol=1e-5)
    assert [r["timestamp"] for r in got] == [str(t) for t in ref["timestamp"]]
    # streaming: nothing until the window (24 rows) is full, then the same forecast at the end
    outs = [p.step(t, {"y": y}) for t, y in zip(hist["time"], hist["y"])]
    assert all(o is None for o in outs[:23]) and outs[23] is not None
    np.testing.assert_allclose([r["forecast"] for r in outs[-1]], ref["forecast"].to_numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="needs the last 24"):
        p.forecast(list(hist["time"][:5]), {"y": list(hist["y"][:5])})


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, ckpt: Path, *extra: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", str(ckpt), "--port",
                                      str(self.port), *extra], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server did not start: {self.proc.stdout.read() if self.proc.poll() is not None else 'timeout'}")
            time.sleep(0.3)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def close(self):
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ThreadServer:
    """uvicorn in a thread of this process (real HTTP on 127.0.0.1, no interpreter start-up)."""

    def __init__(self, app):
        import threading

        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("in-process server did not start")
            time.sleep(0.05)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def close(self):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def lm_server(lm_ckpt):
    s = Server(lm_ckpt, "--max-tokens", "64", "--max-body-kb", "8", "--max-items", "500", "--slots", "2")
    yield s
    s.close()


def test_health_info_and_openapi(lm_server):
    c = lm_server.client
    h = c.get("/health").json()
    assert h["status"] == "ok" and h["task"] == "lm"
    info = c.get("/info").json()
    assert info["limits"]["max_tokens"] == 64 and info["vocab_size"] > 5
    spec = c.get("/openapi.json").json()
    assert {"/generate", "/predict", "/health"} <= set(spec["paths"]) and "/score" not in spec["paths"]
    gen = spec["components"]["schemas"]["GenerateRequest"]["properties"]["max_tokens"]
    assert gen["maximum"] == 64


def test_generate_is_the_checkpoints_generation(lm_server, lm_ckpt):
    from rnnkit.generate import generate
    from rnnkit.tasks.lm import load_lm_checkpoint

    model, vocab, _ = load_lm_checkpoint(lm_ckpt)
    ref = "".join(generate(model, vocab, "the", 30, temperature=0.8, top_k=4, seed=11))
    r = lm_server.client.post("/generate", json={"prompt": "the", "max_tokens": 30, "temperature": 0.8,
                                                 "top_k": 4, "seed": 11})
    assert r.status_code == 200 and r.json() == {"text": ref, "tokens": 30}
    p = lm_server.client.post("/predict", json={"texts": ["the cat sat", "a dog ran far"]}).json()
    assert len(p["results"]) == 2 and p["results"][0]["tokens"] == 11


@pytest.mark.parametrize("body,status,needle", [
    ({"prompt": "the", "max_tokens": 65}, 422, "max_tokens"),           # over the generation bound
    ({"prompt": "the", "max_tokens": -1}, 422, "max_tokens"),
    ({"prompt": "the", "temperature": -0.5}, 422, "temperature"),
    ({"prompt": "the", "top_p": 1.5}, 422, "top_p"),
    ({"prompt": "QX", "max_tokens": 3}, 422, "not in the checkpoint's vocabulary"),
    ({"prompt": 5}, 422, "prompt"),
    ({"prompt": "the", "bogus": 1}, 422, "bogus"),                       # unknown fields rejected
])
def test_bad_inputs_are_clear_4xx(lm_server, body, status, needle):
    r = lm_server.client.post("/generate", json=body)
    assert r.status_code == status and needle in r.text
    assert "--" not in r.text  # HTTP replies name request fields, never the CLI's --flags


def test_malformed_oversized_and_wrong_endpoint(lm_server):
    c = lm_server.client
    r = c.post("/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    big = json.dumps({"prompt": "the " * 3000, "max_tokens": 1})  # 12 kB > 8 kB
    r = c.post("/generate", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "8000 bytes" in r.text

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b" " * 1000

    r = c.post("/generate", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert c.post("/score", json={"values": [1.0]}).status_code == 404
    assert c.post("/predict", json={"texts": ["the"] * 501}).status_code == 422  # list bound
    assert c.get("/health").status_code == 200  # still alive


def test_concurrent_requests_and_bounded_load_without_leak(lm_server):
    c = lm_server.client
    body = {"prompt": "the cat", "max_tokens": 20, "temperature": 1.0, "seed": 5}
    expect = c.post("/generate", json=body).json()["text"]

    def one(i: int):
        with httpx.Client(base_url=lm_server.url, timeout=60) as cl:
            b = dict(body, seed=5 if i % 2 == 0 else 6)
            r = cl.post("/generate", json=b)
            return r.status_code, r.json()["text"], i

    with ThreadPoolExecutor(8) as ex:  # 8 clients, 2 model slots: requests queue, none fails
        res = list(ex.map(one, range(24)))
    assert all(s == 200 for s, _, _ in res)
    assert all(t == expect for s, t, i in res if i % 2 == 0)  # per-request generator: no cross-talk
    assert len({t for s, t, i in res if i % 2 == 1}) == 1
    # bounded load: RSS after warm-up must not keep growing
    pid = lm_server.proc.pid
    for _ in range(40):
        c.post("/generate", json=dict(body, max_tokens=10))
        c.post("/generate", content=b"{bad", headers={"content-type": "application/json"})
    rss0 = _rss_kb(pid)
    with ThreadPoolExecutor(4) as ex:
        codes = list(ex.map(lambda i: one(i)[0], range(120)))
    for _ in range(60):
        c.post("/predict", json={"texts": ["the cat sat on the mat"]})
    rss1 = _rss_kb(pid)
    assert all(code == 200 for code in codes)
    assert rss1 - rss0 < 20_000, f"RSS grew {rss1 - rss0} kB over 180 requests"
    assert lm_server.proc.poll() is None


def test_anomaly_and_forecast_servers(anomaly_ckpt, forecast_ckpt, workdir):
    import pandas as pd

    from rnnkit.anomaly.detectors import load_detector
    from rnnkit.serve.app import Limits, create_app

    values = np.load(workdir / "anomaly_values.npy")[:150]
    s = ThreadServer(create_app(anomaly_ckpt, Limits(max_items=1000)))
    try:
        r = s.client.post("/score", json={"values": values.tolist(), "threshold": 0.5})
        assert r.status_code == 200
        np.testing.assert_allclose(r.json()["scores"], load_detector(anomaly_ckpt).score(values), atol=1e-6)
        assert s.client.post("/score", json={"values": []}).status_code == 422
        assert s.client.post("/score", json={"values": [0.0] * 1001}).status_code == 422
        bad = s.client.post("/score", content=b'{"values": [1.0, NaN]}', headers={"content-type": "application/json"})
        assert bad.status_code == 422
        # the step the client's series must have (None: this detector was fitted on bare values)
        assert s.client.get("/info").json()["step"] is None
    finally:
        s.close()
    frame = pd.read_csv(workdir / "series.csv").iloc[:40]
    s = ThreadServer(create_app(forecast_ckpt))
    try:
        r = s.client.post("/forecast", json={"timestamps": list(frame["time"]), "values": {"y": list(frame["y"])}})
        assert r.status_code == 200 and len(r.json()["forecast"]) == 6
        short = s.client.post("/forecast", json={"timestamps": list(frame["time"][:3]),
                                                 "values": {"y": list(frame["y"][:3])}})
        assert short.status_code == 422 and "input_length=24" in short.text
        mism = s.client.post("/forecast", json={"timestamps": list(frame["time"]), "values": {"y": [1.0]}})
        assert mism.status_code == 422 and "timestamps" in mism.text
        gap = list(frame["time"])
        gap[10] = "2030-01-01 00:00:00"
        assert s.client.post("/forecast", json={"timestamps": gap, "values": {"y": list(frame["y"])}}).status_code == 422
    finally:
        s.close()


def test_text_tasks_are_served_through_their_predict_functions(lm_ckpt, monkeypatch):
    """classify/tag/translate plug in through their TaskSpec's predict (a stand-in here)."""
    import dataclasses

    from fastapi.testclient import TestClient

    from rnnkit.serve.app import Limits, create_app
    from rnnkit.tasks.predictors import TextPredictor
    from rnnkit.train.task import TASKS, get_task_spec

    calls = []

    def predict(checkpoint, inputs, *, top_k=1):
        calls.append((checkpoint, inputs, top_k))
        return [{"input": t, "label": "pos" if "good" in t else "neg", "text": t} for t in inputs]

    monkeypatch.setitem(TASKS, "classify", dataclasses.replace(get_task_spec("classify"), predict=predict))
    pred = TextPredictor(lm_ckpt, "classify")
    c = TestClient(create_app(lm_ckpt, Limits(max_prompt_chars=50), predictor=pred))
    r = c.post("/predict", json={"texts": ["a good film", "dull"], "top_k": 2})
    assert r.status_code == 200 and [x["label"] for x in r.json()["results"]] == ["pos", "neg"]
    assert calls[0] == (str(lm_ckpt), ["a good film", "dull"], 2)
    assert c.post("/predict", json={"texts": ["x" * 51]}).status_code == 422
    assert c.post("/predict", json={"texts": []}).status_code == 422
