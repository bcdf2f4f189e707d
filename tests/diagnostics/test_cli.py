"""``rnnkit explain`` on the adding problem, a fresh recipe model and checkpoints: PNG + JSON."""
import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.commands.explain import add_parser
from rnnkit.diagnostics import explain_checkpoint, hidden_gradient_norms
from rnnkit.train.checkpoint import write_checkpoint
from rnnkit.train.config import build_run_config, to_dict

PNG = b"\x89PNG\r\n\x1a\n"


def explain(*argv):
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    a = ap.parse_args(["explain", *map(str, argv)])
    return a.func(a)


def test_explain_adding_writes_plots_and_the_numbers(tmp_path, capsys):
    out = tmp_path / "adding"
    assert explain("adding", "--cells", "rnn_tanh,lstm", "--T", 12, "--steps", 4, "--hidden", 8,
                   "--snapshots", "0,4", "--out", out) == 0
    assert "wrote" in capsys.readouterr().out
    for name in ("gradient_flow.png", "grad_clipping.png", "gates_rnn_tanh.png", "gates_lstm.png"):
        assert (out / name).read_bytes()[:8] == PNG
    rep = json.loads((out / "explain.json").read_text())
    assert rep["settings"]["T"] == 12 and set(rep["cells"]) == {"rnn_tanh", "lstm"}
    lstm = rep["cells"]["lstm"]
    assert set(lstm["snapshots"]) == {"0", "4"} and len(lstm["clipping"]["before"]) == 4
    assert len(lstm["snapshots"]["0"]["norms"]["h"]) == 12 and "c" in lstm["snapshots"]["0"]["norms"]
    assert set(lstm["snapshots"]["4"]["gate_stats"]) == {"i", "f", "g", "o", "h", "c"}
    # the initial curve is the gradient flow of the freshly seeded model on the probe batch
    from rnnkit.data.synthetic import adding_problem
    from rnnkit.diagnostics.adding_task import AddingModel

    torch.manual_seed(0)
    model = AddingModel("lstm", 8).eval()
    x, y = adding_problem(100, 12, generator=torch.Generator().manual_seed(777))
    (flow,) = hidden_gradient_norms(model, lambda m: F.mse_loss(m(x), y))
    np.testing.assert_allclose(lstm["snapshots"]["0"]["norms"]["h"], flow["norms"]["h"], rtol=1e-5)
    np.testing.assert_allclose(lstm["snapshots"]["0"]["norms"]["c"], flow["norms"]["c"], rtol=1e-5)
    clip = lstm["clipping"]
    assert all(a == pytest.approx(min(b, 1.0), rel=1e-5) for a, b in zip(clip["after"], clip["before"]))


def _lm_config(tmp_path):
    return build_run_config({
        "task": "lm",
        "data": {"corpus": "tinyshakespeare", "level": "char", "batch_size": 2, "bptt": 9,
                 "download": False, "valid_fraction": 0.1},
        "model": {"cell": "lstm", "embedding_size": 6, "hidden_size": 5, "num_layers": 2},
        "trainer": {"grad_clip": 0.5, "out_dir": str(tmp_path)},
    })


def test_explain_a_checkpoint_of_another_pipeline(tmp_path):
    from rnnkit.tasks.lm import LMTask

    cfg = _lm_config(tmp_path)
    task = LMTask(cfg)
    history = [{"step": 10, "epoch": 0, "grad_norm": 2.0}, {"step": 20, "epoch": 0, "grad_norm": 0.3},
               {"step": 20, "epoch": 0, "val_loss": 3.0}]
    ckpt = write_checkpoint(tmp_path / "run" / "last", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="lm", version="0", trainer_tensors={},
                            trainer_json={"state": {"history": history}},
                            write_assets=task.write_assets)
    rep = explain_checkpoint(ckpt, tmp_path / "ex")
    assert rep["task"] == "lm"
    assert [(f["module"], f["layer"]) for f in rep["gradient_flow"]] == [("rnn", 0), ("rnn", 1)]
    assert len(rep["gradient_flow"][0]["norms"]["h"]) == 9  # bptt steps
    assert set(rep["gates"][1]["stats"]) == {"i", "f", "g", "o", "h", "c"}
    assert rep["clipping"]["before"] == [2.0, 0.3] and rep["clipping"]["after"] == [0.5, 0.3]
    for name in ("gradient_flow.png", "grad_clipping.png", "gates_rnn_l0_forward.png",
                 "gates_rnn_l1_forward.png"):
        assert (tmp_path / "ex" / name).read_bytes()[:8] == PNG
    # the numbers are the task's training loss on its first batch
    task.setup(0, 1)
    batch = next(iter(task.train_batches(0, 0)))
    task.model.eval()
    flows = hidden_gradient_norms(task.model, lambda m: task.training_step(m, batch, None).loss)
    np.testing.assert_allclose(rep["gradient_flow"][1]["norms"]["c"], flows[1]["norms"]["c"], rtol=1e-5)


def test_explain_a_fresh_model_from_a_recipe(tmp_path, monkeypatch, capsys):
    sf = pytest.importorskip("soundfile")
    pytest.importorskip("librosa")
    import yaml

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    (tmp_path / "clips").mkdir()
    for i in range(6):
        t = np.arange(int(8000 * rng.uniform(0.15, 0.3))) / 8000
        sf.write(str(tmp_path / "clips" / f"{'ab'[i % 2]}_s_{i}.wav"),
                 (0.3 * np.sin(2 * np.pi * (300 + 300 * i) * t)).astype(np.float32), 8000)
    recipe = tmp_path / "tones.yaml"
    recipe.write_text(yaml.safe_dump({
        "task": "audio",
        "data": {"source": str(tmp_path / "clips"), "test": None, "valid_fraction": 0.0,
                 "batch_size": 3, "features": {"kind": "mfcc", "n_mfcc": 8}},
        "model": {"cell": "gru", "conv_channels": [4], "conv_strides": [2], "hidden_size": 3},
    }))
    out = tmp_path / "fresh"
    assert explain(recipe, "--out", out, "--sequence", 1) == 0
    rep = json.loads((out / "explain.json").read_text())
    assert rep["initialised"] is True and rep["task"] == "audio"
    dirs = [f["direction"] for f in rep["gradient_flow"]]
    assert dirs == ["forward", "reverse"]
    for f in rep["gradient_flow"]:
        assert all(v > 0 for v in f["norms"]["h"][:min(f["lengths"])])
    assert set(rep["gates"][0]["stats"]) == {"r", "z", "n", "h"}
    for name in ("gradient_flow.png", "gates_rnn_l0_forward.png", "gates_rnn_l0_reverse.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert "rnn layer 0 reverse" in capsys.readouterr().out


def test_explain_rejects_unknown_targets(tmp_path):
    with pytest.raises(ValueError, match="is not a checkpoint directory, a .yaml recipe or 'adding'"):
        explain(tmp_path / "nothing.txt")
    with pytest.raises(ValueError, match=r"--cells: unknown \['lstmm'\]"):
        explain("adding", "--cells", "lstmm", "--out", tmp_path)
