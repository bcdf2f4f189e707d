"""Checkpoints: exact round trip, atomic replacement, and clear errors for bad directories."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.models.lm import LanguageModel, LMConfig
from rnnkit.train import checkpoint as ck


def _model(tie=True):
    torch.manual_seed(0)
    return LanguageModel(LMConfig(embedding_size=8, hidden_size=8, num_layers=2, tie_weights=tie), 11)


def _write(d, model, **kw):
    return ck.write_checkpoint(d, model_state=model.state_dict(), config={"a": 1}, task="lm",
                               version="0.1.0", **kw)


def test_model_roundtrip_with_tied_weights(tmp_path):
    m = _model()
    _write(tmp_path / "c", m)
    m2 = LanguageModel(m.config, 11)
    ck.load_model_weights(m2, tmp_path / "c")
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert m2.decoder.weight is m2.embedding.weight  # still tied
    meta = ck.read_config(tmp_path / "c", task="lm")
    assert meta["rnnkit_version"] == "0.1.0" and meta["config"] == {"a": 1}


def test_optimizer_and_nested_state_roundtrip(tmp_path):
    m = _model(tie=False)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.8, 0.9))
    m(torch.randint(0, 11, (3, 2)))[0].sum().backward()
    opt.step()
    tensors = {}
    carry = (torch.randn(2, 1, 2, 8), torch.randn(2, 1, 2, 8))
    meta = {"optim": ck.optimizer_to_flat(opt.state_dict(), tensors),
            "carry": ck.flatten_tensors(carry, "carry", tensors), "none": ck.flatten_tensors(None, "n", tensors)}
    _write(tmp_path / "c", m, trainer_tensors=tensors, trainer_json=meta)
    got, t = ck.read_trainer_state(tmp_path / "c")
    opt2 = torch.optim.Adam(m.parameters(), lr=5.0)
    opt2.load_state_dict(ck.optimizer_from_flat(got["optim"], t))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["betas"] == (0.8, 0.9) and s2["param_groups"][0]["lr"] == 1e-3
    for i in s1["state"]:
        for k, v in s1["state"][i].items():
            assert torch.equal(v, s2["state"][i][k])
    c2 = ck.unflatten_tensors(got["carry"], t)
    assert isinstance(c2, tuple) and all(torch.equal(a, b) for a, b in zip(carry, c2))
    assert got["none"] is None


def test_failed_write_keeps_old_checkpoint_and_leaves_nothing(tmp_path):
    m = _model()
    _write(tmp_path / "last", m)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()

    def boom(d):
        (d / "vocab.json").write_text("{}")
        raise RuntimeError("disk full")

    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    with pytest.raises(RuntimeError, match="disk full"):
        _write(tmp_path / "last", m, write_assets=boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temp dir left
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before
    _write(tmp_path / "last", m)  # a successful write replaces it
    assert (tmp_path / "last" / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_recover_interrupted_replace(tmp_path):
    m = _model()
    _write(tmp_path / "last", m)
    # a kill between "move old aside" and "move new in": only .last.old-N and a temp dir exist
    (tmp_path / "last").rename(tmp_path / ".last.old-123")
    (tmp_path / ".last.tmp-abc").mkdir()
    ck.recover_interrupted(tmp_path / "last")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    ck.load_model_weights(_model(), tmp_path / "last")


def test_bad_checkpoints_give_one_line_errors(tmp_path):
    m = _model()
    d = _write(tmp_path / "c", m)
    with pytest.raises(ck.CheckpointError, match="checkpoint directory not found"):
        ck.read_config(tmp_path / "missing")
    with pytest.raises(ck.CheckpointError, match="from task 'lm'; expected a 'classify' checkpoint"):
        ck.read_config(d, task="classify")
    # truncated safetensors
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ck.CheckpointError, match="model.safetensors: truncated or corrupted") as e:
        ck.load_model_weights(m, d)
    assert "\n" not in str(e.value)
    f.write_bytes(b"\x00" * 3)
    with pytest.raises(ck.CheckpointError, match="truncated or corrupted"):
        ck.read_model_state(d)
    # bad JSON and missing config
    (d / "config.json").write_text('{"format": "rnnkit.checkpoint", ')
    with pytest.raises(ck.CheckpointError, match=r"config.json:1:\d+: corrupted JSON"):
        ck.read_config(d)
    (d / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ck.CheckpointError, match="not an rnnkit checkpoint config"):
        ck.read_config(d)
    (d / "config.json").unlink()
    with pytest.raises(ck.CheckpointError, match="not a checkpoint \\(config.json is missing\\)"):
        ck.read_config(d)
    with pytest.raises(ck.CheckpointError, match="trainer_state.json is missing"):
        ck.read_trainer_state(d)


def test_shape_mismatch_is_named(tmp_path):
    d = _write(tmp_path / "c", _model())
    other = LanguageModel(LMConfig(embedding_size=8, hidden_size=8, num_layers=2, tie_weights=True), 12)
    with pytest.raises(ck.CheckpointError, match=r"decoder.bias has shape \(11,\), the model expects \(12,\)"):
        ck.load_model_weights(other, d)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    d = _write(tmp_path / "c", _model())

    def no_pickle(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_pickle)
    import pickle

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    ck.load_model_weights(_model(), d)
    ck.read_config(d)
