"""ONNX (onnxruntime) and TorchScript exports reproduce the checkpoint: any T and B, lengths, carried state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.commands import main
from rnnkit.export import export_checkpoint, export_spec, load_exported, verify_export


def _close(a, b, tol=2e-5):
    np.testing.assert_allclose(np.asarray(a), b.detach().numpy() if torch.is_tensor(b) else b, atol=tol, rtol=1e-4)


@pytest.fixture(scope="module", params=["onnx", "torchscript"])
def lm_export(request, lm_ckpt, tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / f"lm.{request.param}"
    info = export_checkpoint(lm_ckpt, request.param, path)
    return request.param, path, info


def test_lm_export_equals_the_checkpoint_model_with_state_carried(lm_export, lm_ckpt):
    from rnnkit.tasks.lm import load_lm_checkpoint

    fmt, path, info = lm_export
    assert info["verify"]["max_abs_diff"] < 1e-4 and info["inputs"] == ["tokens", "lengths", "h0", "c0"]
    assert json.loads(open(str(path) + ".json").read())["state"] == [["h0", "h_n"], ["c0", "c_n"]]
    model, vocab, _ = load_lm_checkpoint(lm_ckpt)
    run = load_exported(path, fmt)
    torch.manual_seed(1)
    seq = torch.randint(0, len(vocab), (30, 2))  # (T, B): one stream of 30 tokens per row
    with torch.no_grad():
        ref, (h_ref, c_ref) = model(seq)  # the checkpoint's own forward, all at once
    # the exported graph over three chunks (T = 13, 1, 16), state fed back by the caller
    h = np.zeros((2, 2, 24), np.float32)
    c = np.zeros_like(h)
    outs, t = [], 0
    for T in (13, 1, 16):
        logits, h, c = run(seq[t:t + T], torch.full((2,), T), torch.from_numpy(h), torch.from_numpy(c))
        outs.append(logits)
        t += T
    _close(np.concatenate(outs), ref)
    _close(h, h_ref)
    _close(c, c_ref)


def test_lm_export_with_lengths_equals_each_sequence_alone(lm_export, lm_ckpt):
    from rnnkit.tasks.lm import load_lm_checkpoint

    fmt, path, _ = lm_export
    model, vocab, _ = load_lm_checkpoint(lm_ckpt)
    run = load_exported(path, fmt)
    lengths = [9, 4, 1, 6]
    torch.manual_seed(2)
    seqs = [torch.randint(0, len(vocab), (n,)) for n in lengths]
    x = torch.zeros(9, 4, dtype=torch.long)
    for b, s in enumerate(seqs):
        x[:len(s), b] = s
    z = torch.zeros(2, 4, 24)
    logits, h, c = run(x, torch.tensor(lengths), z, z)
    for b, s in enumerate(seqs):
        with torch.no_grad():
            ref, (hr, cr) = model(s[:, None])  # alone, no padding
        _close(logits[:len(s), b], ref[:, 0])
        _close(h[:, b], hr[:, 0])
        _close(c[:, b], cr[:, 0])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_gru_lm_export(fmt, gru_lm_ckpt, tmp_path):
    info = export_checkpoint(gru_lm_ckpt, fmt, tmp_path / f"m.{fmt}")
    assert info["inputs"] == ["tokens", "lengths", "h0"] and info["outputs"] == ["logits", "h_n"]
    assert info["verify"]["checks"][1]["carried_state"] and info["verify"]["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("fixture", ["forecast_ckpt", "anomaly_ckpt", "audio_ckpt"])
def test_other_pipelines_export_to_onnx(fixture, request, tmp_path):
    ckpt = request.getfixturevalue(fixture)
    info = export_checkpoint(ckpt, "onnx", tmp_path / "m.onnx")
    assert info["verify"]["max_abs_diff"] < 1e-4
    spec = export_spec(ckpt)
    run = load_exported(tmp_path / "m.onnx", "onnx")
    # a batch size and length the trace never saw, checked against the PyTorch module
    sizes = ((30, 5), (12, 5)) if fixture != "forecast_ckpt" else ((24, 5), (17, 5))
    assert verify_export(spec, run, sizes=sizes)["max_abs_diff"] < 1e-4


def test_forecast_export_matches_forecaster_forward(forecast_ckpt, tmp_path):
    from rnnkit.tasks.forecast import load_forecast_checkpoint

    model, _, _ = load_forecast_checkpoint(forecast_ckpt)
    export_checkpoint(forecast_ckpt, "onnx", tmp_path / "f.onnx")
    run = load_exported(tmp_path / "f.onnx", "onnx")
    g = torch.Generator().manual_seed(0)
    x, xf = torch.randn(6, 24, model.C + model.P + model.F, generator=g), torch.randn(6, 6, model.F, generator=g)
    with torch.no_grad():
        ref = model(x, xf)  # full windows, no lengths
    (got,) = run(x, xf, torch.full((6,), 24))
    _close(got, ref)


def test_export_verification_catches_a_wrong_file(lm_ckpt, gru_lm_ckpt, tmp_path):
    """The check has teeth: another model's file must fail verification."""
    export_checkpoint(gru_lm_ckpt, "torchscript", tmp_path / "gru.pt")
    spec = export_spec(lm_ckpt)
    wrong = load_exported(tmp_path / "gru.pt", "torchscript")

    def run(tokens, lengths, h0, c0):
        return [*wrong(tokens, lengths, h0), c0.numpy()]

    with pytest.raises(ValueError, match="differs from the checkpoint"):
        verify_export(spec, run)


def test_export_cli_and_errors(lm_ckpt, tmp_path, capsys):
    assert main(["export", str(lm_ckpt), "--format", "torchscript", "--out", str(tmp_path / "x.pt")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"].endswith("x.pt") and out["max_abs_diff"] < 1e-4
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "checkpoint directory not found" in capsys.readouterr().err


def test_non_native_layer_is_a_clear_error(train_lm, tmp_path):
    ckpt = train_lm(tmp_path / "z", model={"extras": {"zoneout": 0.1}}, trainer={"max_steps": 1})
    with pytest.raises(ValueError, match="zoneout"):
        export_checkpoint(ckpt, "onnx", tmp_path / "z.onnx")


def test_reconstruction_detector_exports(anomaly_ckpt, workdir, tmp_path):
    from rnnkit.anomaly.detectors import DetectorConfig, build_detector

    values = np.load(workdir / "anomaly_values.npy")  # written with the anomaly checkpoint
    det = build_detector(DetectorConfig(kind="reconstruction", cell="gru", hidden_size=8, window=12,
                                        max_epochs=2, patience=1)).fit(values[:400], fit_end=300)
    det.save(tmp_path / "rec")
    info = export_checkpoint(tmp_path / "rec", "onnx", tmp_path / "rec.onnx")
    assert info["inputs"] == ["x"] and info["meta"]["window"] == 12 and info["verify"]["max_abs_diff"] < 1e-4
    w = np.lib.stride_tricks.sliding_window_view((values[:60] - det.mean) / det.std, 12)  # (49, 12)
    run = load_exported(tmp_path / "rec.onnx", "onnx")
    (got,) = run(torch.tensor(w.T[..., None], dtype=torch.float32))  # (L, B, 1)
    _close(got[..., 0].T, det.reconstruct(w), tol=1e-4)


def test_known_harmless_export_warnings_are_dropped_others_kept(capfd):
    """torch's C++ 'shape inference of prim::PackPadded ... is missing' lines are dropped (every
    export is verified in onnxruntime instead); any other stderr line still reaches the user."""
    import os

    from rnnkit.export import _quiet_harmless_stderr

    with _quiet_harmless_stderr():
        os.write(2, b"[W] Warning: The shape inference of prim::PackPadded type is missing, so it"
                    b" may result in wrong shape inference\nsomething else went wrong\n")
    err = capfd.readouterr().err
    assert "something else went wrong" in err and "PackPadded" not in err
