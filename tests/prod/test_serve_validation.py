"""The HTTP server misreads no request: duplicate JSON keys, unknown query parameters, options
the pipeline does not take, and ``values`` keys that are no column of the model are 422 naming
what is wrong; an error about one of several texts names its index."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from rnnkit.serve.app import Limits, create_app

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def lm_client(lm_ckpt):
    with TestClient(create_app(lm_ckpt, Limits(max_tokens=64))) as c:
        yield c


def test_duplicate_json_keys_are_422_naming_the_key(lm_client):
    r = lm_client.post("/generate", content=b'{"prompt": "th", "prompt": "zz", "max_tokens": 2}', headers=JSON)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "prompt"] and "more than once" in err["msg"]
    # nested objects too; and one key once is still fine
    r = lm_client.post("/predict", content=b'{"texts": ["the cat"], "texts": ["a dog"]}', headers=JSON)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "texts"]
    r = lm_client.post("/generate", content=b'{"prompt": "th", "max_tokens": 2, "seed": 1}', headers=JSON)
    assert r.status_code == 200 and r.json()["tokens"] == 2
    # malformed JSON keeps its own message
    r = lm_client.post("/generate", content=b'{"prompt": "th",}', headers=JSON)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_unknown_query_parameters_are_422(lm_client):
    r = lm_client.post("/generate?max_tokens=5", json={"prompt": "th"})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["query", "max_tokens"] and "field of the JSON body" in err["msg"]
    r = lm_client.post("/predict?bogus=1", json={"texts": ["the cat"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "bogus"]
    assert lm_client.get("/health").status_code == 200  # no query: as before
    # a route with neither body nor query parameters ignores a query (health-check probes)
    assert lm_client.get("/health?probe=1").status_code == 200
    assert lm_client.get("/info?x=1").status_code == 200


def test_lm_scoring_names_the_text_that_fails(lm_client):
    r = lm_client.post("/predict", json={"texts": ["the cat", "QX the"]})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "texts", 1] and err["msg"].startswith("texts[1]: ")
    assert "not in the checkpoint's vocabulary" in err["msg"] and "--" not in err["msg"]


@pytest.fixture
def stand_in_task(monkeypatch):
    """``stand_in_task(name, predict)``: the pipeline ``name`` predicts with ``predict``."""
    from rnnkit.train.task import TASKS, get_task_spec

    def use(name, predict):
        monkeypatch.setitem(TASKS, name, dataclasses.replace(get_task_spec(name), predict=predict))

    return use


def test_texts_options_are_those_the_pipeline_takes(lm_ckpt, stand_in_task):
    from rnnkit.tasks.predictors import TextPredictor

    calls = []

    def classify(checkpoint, inputs, *, top_k=1):
        calls.append(top_k)
        return [{"input": t, "label": "pos"} for t in inputs]

    def translate(checkpoint, inputs, *, beam_size=5, max_len=100):
        calls.append((beam_size, max_len))
        return [{"input": t, "text": t[::-1]} for t in inputs]

    stand_in_task("classify", classify)
    stand_in_task("translate", translate)
    c = TestClient(create_app(lm_ckpt, predictor=TextPredictor(lm_ckpt, "classify")))
    assert c.post("/predict", json={"texts": ["a good film"], "top_k": 2}).status_code == 200
    r = c.post("/predict", json={"texts": ["a good film"], "beam_size": 7, "max_len": 3})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("body", "beam_size"), ("body", "max_len")}
    props = c.get("/openapi.json").json()["components"]["schemas"]["TextsRequest"]["properties"]
    assert set(props) == {"texts", "top_k"}

    t = TestClient(create_app(lm_ckpt, predictor=TextPredictor(lm_ckpt, "translate")))
    assert t.post("/predict", json={"texts": ["abc"], "beam_size": 3, "max_len": 9}).status_code == 200
    assert t.post("/predict", json={"texts": ["abc"], "top_k": 2}).status_code == 422
    assert calls == [2, (3, 9)]

    with pytest.raises(ValueError, match="beam_size: does not apply to classify checkpoints"):
        TextPredictor(lm_ckpt, "classify").predict(["x"], beam_size=3)


def test_forecast_values_must_be_the_models_columns(forecast_ckpt, workdir):
    from rnnkit.serve import load_predictor

    frame = pd.read_csv(workdir / "series.csv").iloc[:40]
    ts, ys = list(frame["time"]), list(frame["y"])
    c = TestClient(create_app(forecast_ckpt))
    assert c.post("/forecast", json={"timestamps": ts, "values": {"y": ys}}).status_code == 200
    for extra in ("junk", "time"):
        r = c.post("/forecast", json={"timestamps": ts, "values": {"y": ys, extra: [0.0] * 40}})
        assert r.status_code == 422
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "values", extra] and "expected the keys ['y']" in err["msg"]
    r = c.post("/forecast", content=b'{"timestamps": ["2021-01-01"], "values": {"y": [1.0], "y": [2.0]}}',
               headers=JSON)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "y"]
    p = load_predictor(forecast_ckpt)
    with pytest.raises(ValueError, match=r"values\['junk'\]"):
        p.step(ts[0], {"y": ys[0], "junk": 1.0})
