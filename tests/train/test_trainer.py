"""The Trainer on a tiny char LM, in process: resume exactness, clipping, stopping, outputs."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from rnnkit.train import load_recipe, run_training
from rnnkit.train.checkpoint import read_trainer_state


@pytest.fixture
def tiny_recipe(lm_helpers):
    return lm_helpers[0]


@pytest.fixture
def weights(lm_helpers):
    return lm_helpers[1]


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_mid_epoch_is_exact(tmp_path, corpus, tiny_recipe, weights):
    """Stop after 7 steps (mid-epoch, carried state saved), resume: same weights as one run."""
    recipe = tiny_recipe(tmp_path, corpus, data={"variable_bptt": True, "bptt": 20})
    full = run_training(load_recipe(recipe), out=tmp_path / "full", test_split=None)
    steps = full["step"]
    assert full["stopped"] == "max_epochs" and steps > 10
    part = run_training(load_recipe(recipe, ["trainer.max_steps=7"]), out=tmp_path / "part", test_split=None)
    assert part["stopped"] == "max_steps" and part["step"] == 7
    meta, tensors = read_trainer_state(tmp_path / "part" / "last")
    assert meta["state"]["batch_in_epoch"] == 7 and meta["carry"] is not None
    assert any(k.startswith("carry.") for k in tensors)  # the hidden state (h, c) is in the checkpoint
    before = weights(tmp_path / "part")
    with pytest.raises(AssertionError):
        _equal(before, weights(tmp_path / "full"))
    resumed = run_training(load_recipe(recipe), resume=tmp_path / "part", test_split=None)
    assert resumed["step"] == steps and resumed["stopped"] == "max_epochs"
    _equal(weights(tmp_path / "part"), weights(tmp_path / "full"))
    assert resumed["val"] == full["val"]


def test_global_norm_clipping(tmp_path, corpus, tiny_recipe, weights):
    """SGD lr 1 with clip c moves the parameters by exactly c (global L2 norm) when the grad is larger."""
    recipe = tiny_recipe(tmp_path, corpus, optim={"name": "sgd", "lr": 1.0},
                         model={"dropout": 0.0, "embedding_dropout": 0.0},
                         trainer={"max_steps": 1, "grad_clip": 1e-3, "log_every_steps": 1})
    cfg = load_recipe(recipe)
    from rnnkit.tasks import get_task_spec
    from rnnkit.train.state import seed_everything

    seed_everything(cfg.trainer.seed)
    init = {k: v.clone() for k, v in get_task_spec("lm").build(cfg).model.state_dict().items()}
    summary = run_training(cfg, out=tmp_path / "r", test_split=None)
    after = weights(tmp_path / "r")
    delta = torch.sqrt(sum(((after[k] - init[k]) ** 2).sum() for k in after))
    assert delta.item() == pytest.approx(1e-3, rel=1e-3)
    meta, _ = read_trainer_state(tmp_path / "r" / "last")
    norms = [r["grad_norm"] for r in meta["state"]["history"] if "grad_norm" in r]
    assert len(norms) == 1 and norms[0] > 1e-2  # the recorded norm is the pre-clip one
    assert summary["step"] == 1


def test_early_stopping_and_outputs(tmp_path, corpus, tiny_recipe, weights):
    recipe = tiny_recipe(tmp_path, corpus, trainer={
        "max_epochs": 10, "patience": 0, "mode": "max", "loggers": ["csv", "tensorboard"], "plot": True})
    s = run_training(load_recipe(recipe), out=tmp_path / "r", test_split=None)
    # val_loss falls, so under mode=max the 2nd evaluation is no improvement: stop (patience 0)
    assert s["stopped"] == "early_stopping" and s["epoch"] == 2
    r = tmp_path / "r"
    assert (r / "best" / "model.safetensors").is_file() and not (r / "best" / "trainer_state.json").exists()
    assert (r / "last" / "trainer_state.json").is_file() and (r / "last" / "vocab.json").is_file()
    assert (r / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(next((r / "logs" / "csv").glob("version_*/metrics.csv")))))
    assert any(row.get("val_loss") for row in rows) and any(row.get("train_loss") for row in rows)
    assert list((r / "logs" / "tensorboard").rglob("events.out.tfevents*"))
    summary = json.loads((r / "summary.json").read_text())
    assert summary["best"] == pytest.approx(min(v for v in [summary["best"]]))
    # under mode=max the first evaluation (end of epoch 1 of 2) stays the best: best/ is from it
    assert summary["best_step"] == summary["step"] // 2 > 0
    assert set(summary["val"]) == {"val_loss", "val_ppl", "val_bpc"}
    assert summary["val"]["val_bpc"] == pytest.approx(summary["val"]["val_loss"] / torch.log(torch.tensor(2.0)).item())


def test_time_budget_and_loss_decreases(tmp_path, corpus, tiny_recipe, weights):
    recipe = tiny_recipe(tmp_path, corpus, trainer={"max_epochs": 3})
    s = run_training(load_recipe(recipe), out=tmp_path / "a", test_split=None)
    meta, _ = read_trainer_state(tmp_path / "a" / "last")
    vals = [r["val_loss"] for r in meta["state"]["history"] if "val_loss" in r]
    assert len(vals) == 3 and vals[-1] < vals[0] < 4.2  # below log(V) ~ 4.1 of a uniform guess
    t = run_training(load_recipe(recipe, ["trainer.max_time_minutes=0.00001"]), out=tmp_path / "b",
                     test_split=None)
    assert t["stopped"] == "time" and t["step"] == 1 and s["step"] > 1


def test_failed_run_leaves_no_checkpoint(tmp_path, corpus, tiny_recipe, weights):
    recipe = tiny_recipe(tmp_path, corpus, model={"tie_weights": True})  # H=16 != E=8
    with pytest.raises(ValueError, match="tie_weights needs .*hidden_size=16.* embedding_size=8"):
        run_training(load_recipe(recipe), out=tmp_path / "r")
    assert not (tmp_path / "r" / "last").exists() and not (tmp_path / "r" / "best").exists()
