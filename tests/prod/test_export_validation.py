"""Export never passes a file it has not verified, and its sidecar says what the graph expects.

- NaN or infinite outputs fail verification (Python's ``max()`` dropped NaN: an all-NaN file
  passed with ``max_abs_diff 0.0``); a NaN/negative/infinite ``atol`` is rejected.
- The forecast sidecar records the preprocessing (scaler, transforms, feature layout) the graph
  expects: a consumer that follows it reproduces ``ForecastPredictor``'s numbers.
- Token ids: the LM sidecar documents [0, V); the predictor checks them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.commands import main
from rnnkit.export import export_checkpoint, export_spec, verify_export


def _real_run(spec):
    def run(*xs):
        with torch.no_grad():
            return [o.numpy() for o in spec.module(*xs)]

    return run


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_verify_export_fails_on_non_finite_outputs(lm_ckpt, bad):
    spec = export_spec(lm_ckpt)
    real = _real_run(spec)
    assert verify_export(spec, real)["max_abs_diff"] == 0.0  # the real thing passes

    def poisoned(*xs):
        logits, *state = real(*xs)
        return [np.full_like(logits, bad), *state]

    with pytest.raises(ValueError, match=r"logits .*not finite"):
        verify_export(spec, poisoned)

    def one_nan(*xs):  # a single NaN among finite logits
        logits, *state = real(*xs)
        logits = logits.copy()
        logits[0, 0, 0] = math.nan
        return [logits, *state]

    with pytest.raises(ValueError, match="not finite"):
        verify_export(spec, one_nan)


def test_verify_export_fails_on_another_shape(lm_ckpt):
    spec = export_spec(lm_ckpt)
    real = _real_run(spec)

    def short(*xs):
        logits, *state = real(*xs)
        return [logits[:1], *state]  # broadcasts against the reference: must not pass

    with pytest.raises(ValueError, match="another shape"):
        verify_export(spec, short)


@pytest.mark.parametrize("atol", [math.nan, math.inf, -1e-4, "1e-4", True])
def test_verify_export_requires_a_finite_non_negative_atol(lm_ckpt, atol):
    spec = export_spec(lm_ckpt)
    with pytest.raises(ValueError, match="atol: .*expected a finite number >= 0"):
        verify_export(spec, _real_run(spec), atol=atol)


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "x"])
def test_export_cli_rejects_bad_atol(lm_ckpt, tmp_path, capsys, text):
    with pytest.raises(SystemExit) as e:
        main(["export", str(lm_ckpt), "--out", str(tmp_path / "m.pt"), "--format", "torchscript",
              "--atol", text])
    assert e.value.code == 2
    assert "--atol" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()


def test_export_checkpoint_rejects_nan_atol_before_writing(lm_ckpt, tmp_path):
    with pytest.raises(ValueError, match="atol"):
        export_checkpoint(lm_ckpt, "torchscript", tmp_path / "m.pt", atol=math.nan)
    assert not (tmp_path / "m.pt").exists()


def test_forecast_sidecar_has_the_preprocessing_the_graph_expects(forecast_ckpt, workdir, tmp_path):
    """A consumer with raw values and the sidecar alone gets the predictor's forecast."""
    from rnnkit.data.timeseries import calendar_features, future_index
    from rnnkit.export import load_exported
    from rnnkit.serve import load_predictor
    from rnnkit.tasks.forecast import load_forecast_checkpoint

    export_checkpoint(forecast_ckpt, "onnx", tmp_path / "f.onnx")
    meta = json.loads((tmp_path / "f.onnx.json").read_text())["meta"]
    _, state, cfg = load_forecast_checkpoint(forecast_ckpt)
    pre = state["preprocessor"]
    loc, scale = pre["scaler"]["stats"]["*"]
    assert meta["inputs_scaled"] is True and meta["outputs_scaled"] is True
    assert meta["lookback"] == 24 and meta["horizon"] == 6
    assert meta["features"] == ["y", *state["schema"]["calendar"]] and len(meta["features"]) == meta["n_features"]
    assert meta["future_features"] == state["schema"]["calendar"]
    sc = meta["preprocessing"]["scaler"]
    assert sc["kind"] == "standard" and sc["series"]["*"] == {"loc": {"y": loc[0]}, "scale": {"y": scale[0]}}
    assert sc["mean"] == {"y": loc[0]} and sc["std"] == {"y": scale[0]}
    assert meta["preprocessing"]["order"] == ["scale"] and meta["preprocessing"]["log"] is False

    # the consumer: raw values -> x, xf by the sidecar; params -> raw units by the sidecar
    frame = pd.read_csv(workdir / "series.csv").iloc[:60]
    L, H = meta["lookback"], meta["horizon"]
    ts = pd.DatetimeIndex(frame["time"])
    m, s = sc["series"]["*"]["loc"]["y"], sc["series"]["*"]["scale"]["y"]
    z = (frame["y"].to_numpy()[-L:] - m) / s
    cal, names = calendar_features(ts[-L:], meta["freq"])
    assert names == meta["features"][1:]
    x = np.hstack([z[:, None], cal])[None].astype(np.float32)
    fut, _ = calendar_features(future_index(ts[-1], meta["freq"], H), meta["freq"])
    xf = fut[None].astype(np.float32)
    run = load_exported(tmp_path / "f.onnx", "onnx")
    (params,) = run(torch.from_numpy(x), torch.from_numpy(xf), torch.tensor([L]))
    got = params[0, :, 0, 0] * s + m  # point head: params[..., 0]

    p = load_predictor(forecast_ckpt)
    ref = [r["forecast"] for r in p.forecast(list(frame["time"]), {"y": list(frame["y"])})]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_lm_sidecar_documents_the_token_range_and_the_predictor_checks_it(lm_ckpt, tmp_path):
    from rnnkit.serve import load_predictor

    info = export_checkpoint(lm_ckpt, "torchscript", tmp_path / "lm.pt")
    V = info["meta"]["vocab_size"]
    assert info["meta"]["token_range"] == [0, V] and "[-V, -1]" in info["meta"]["tokens"]
    p = load_predictor(lm_ckpt)
    p.feed_ids([0, V - 1])  # valid ids run
    for bad in (-1, -V, V, 2.0, True):
        with pytest.raises(ValueError, match=r"ids\[1\]: .* expected an integer in \[0, "):
            p.feed_ids([0, bad])
