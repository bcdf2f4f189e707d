"""Pruning is exact and magnitude-ordered; fine-tuning keeps the zeros; int8 stays close to float."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.commands import main
from rnnkit.compress import (
    TorchRecurrent,
    make_permanent,
    prune_model,
    quantize_dynamic,
    sparsity,
    to_torch_recurrent,
)
from rnnkit.compress.study import finetune, load_task, prune_table, quantize_report


class Net(nn.Module):
    def __init__(self, cell=rnnkit.LSTM, **kw):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = cell(6, 10, num_layers=2, **kw)
        self.head = nn.Linear(10 * (2 if kw.get("bidirectional") else 1), 3)

    def forward(self, x, lengths=None):
        out, h = self.rnn(x, lengths=lengths)
        return self.head(out), h


def test_per_layer_sparsity_is_exact_and_smallest_magnitudes_go():
    net = Net()
    orig = {n: p.detach().clone() for n, p in net.rnn.named_parameters()}
    targets = prune_model(net, 0.3, scope="layer")
    assert sorted(n for n, _, _ in targets) == sorted(
        f"rnn.weight_{k}_l{i}" for k in ("ih", "hh") for i in (0, 1))
    sp = sparsity(targets)
    for name, m, p in targets:
        w, w0 = getattr(m, p), orig[p]
        k = round(0.3 * w.numel())  # torch rounds the count
        assert int((w == 0).sum()) == k and sp[name] == pytest.approx(k / w.numel())
        kept = w0[w != 0].abs()
        assert w0[w == 0].abs().max() <= kept.min()  # the k smallest |w| of this tensor
        assert torch.equal(w[w != 0], w0[w != 0])  # the rest untouched
    assert "rnn.bias_ih_l0" not in sp  # biases are never pruned


def test_global_pruning_uses_one_threshold():
    net = Net()
    targets = prune_model(net, 0.6, scope="global")
    ws = [getattr(m, p) for _, m, p in targets]
    n = sum(w.numel() for w in ws)
    zeros = sum(int((w == 0).sum()) for w in ws)
    assert zeros == round(0.6 * n)
    # one threshold: every pruned |w_orig| <= every kept |w_orig|, across tensors
    pruned = torch.cat([getattr(m, p + "_orig")[getattr(m, p) == 0].abs() for _, m, p in targets])
    kept = torch.cat([getattr(m, p + "_orig")[getattr(m, p) != 0].abs() for _, m, p in targets])
    assert pruned.max() <= kept.min()
    per = sparsity(targets)
    assert len({round(v, 3) for k, v in per.items() if k != "total"}) > 1  # tensors differ
    assert per["total"] == pytest.approx(0.6, abs=1 / n)


@pytest.mark.parametrize("backend", ["auto", "loop"])
def test_pruned_layer_computes_with_the_zeros_and_permanent_keeps_them(backend):
    net = Net(backend=backend)
    targets = prune_model(net, 0.5, scope="layer")
    x = torch.randn(5, 2, 6)
    y, _ = net(x)
    ref = torch.nn.LSTM(6, 10, num_layers=2)
    ref.load_state_dict({p: getattr(net.rnn, p).detach() for p in dict(ref.named_parameters())})
    torch.testing.assert_close(net.head(ref(x)[0]), y, atol=1e-5, rtol=1e-5)
    make_permanent(targets)
    assert not any(n.endswith("_orig") or n.endswith("_mask") for n in net.state_dict())
    assert sparsity(targets)["total"] == pytest.approx(0.5, abs=0.01)
    torch.testing.assert_close(net(x)[0], y)


def test_prune_rejects_bad_amount_and_models_without_rnn():
    with pytest.raises(ValueError, match="amount"):
        prune_model(Net(), 1.0)
    with pytest.raises(ValueError, match="no rnnkit recurrent"):
        prune_model(nn.Linear(2, 2), 0.5)


@pytest.mark.parametrize("cell,kw", [(rnnkit.LSTM, {}), (rnnkit.GRU, {"bidirectional": True}),
                                     (rnnkit.RNN, {})])
def test_torch_twin_is_exact_with_lengths(cell, kw):
    net = Net(cell, **kw).eval()
    x, lengths = torch.randn(7, 3, 6), torch.tensor([7, 2, 5])
    y, h = net(x, lengths)
    twin, conv, skipped = to_torch_recurrent(Net(cell, **kw).eval())
    assert conv == ["rnn"] and not skipped and isinstance(twin.rnn, TorchRecurrent)
    y2, h2 = twin(x, lengths)
    torch.testing.assert_close(y2, y, atol=1e-6, rtol=1e-5)
    for a, b in zip(h2 if isinstance(h2, tuple) else (h2,), h if isinstance(h, tuple) else (h,)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_non_native_layers_are_skipped_with_a_reason():
    net = Net(rnnkit.LSTM, zoneout=0.1)
    _, conv, skipped = to_torch_recurrent(net)
    assert conv == [] and "zoneout" in skipped["rnn"]


def test_int8_is_close_to_float_and_smaller():
    torch.manual_seed(0)
    net = Net(rnnkit.LSTM).eval()
    q, rep = quantize_dynamic(net)
    assert rep["converted"] == ["rnn"]
    assert "DynamicQuantizedLSTM" in repr(q) and "DynamicQuantizedLinear" in repr(q)
    x, lengths = torch.randn(9, 4, 6), torch.tensor([9, 3, 6, 1])
    with torch.no_grad():
        y, _ = net(x, lengths)
        yq, _ = q(x, lengths)
    err = (yq - y).abs().max().item()
    assert 0 < err < 0.05 * y.abs().max().item()  # quantised (not identical) but close
    assert rep["int8_bytes"] < rep["float_bytes"]
    big = nn.Sequential(rnnkit.LSTM(64, 128))
    _, rep = quantize_dynamic(big)
    assert rep["int8_bytes"] < 0.35 * rep["float_bytes"]  # int8 weights: about a quarter


def test_finetune_keeps_pruned_weights_zero_and_changes_the_rest(lm_ckpt):
    task, cfg = load_task(lm_ckpt)
    targets = prune_model(task.model, 0.5, scope="global")
    before = {n: getattr(m, p).detach().clone() for n, m, p in targets}
    secs, val = finetune(task, cfg, 3)
    assert secs > 0 and "loss" in val
    for n, m, p in targets:
        w = getattr(m, p).detach()
        assert torch.equal(w[before[n] == 0], torch.zeros_like(w[before[n] == 0]))
        assert not torch.equal(w, before[n])  # the unpruned weights trained


def test_finetune_scales_a_cosine_floor_with_the_rate_and_checks_the_scale(lm_ckpt):
    import dataclasses

    task, cfg = load_task(lm_ckpt)  # a floor between lr * 0.3 and lr was an error after scaling
    cos = dataclasses.replace(cfg, schedule=dataclasses.replace(
        cfg.schedule, name="cosine", min_lr=0.5 * cfg.optim.lr))
    secs, val = finetune(task, cos, 2)
    assert secs > 0 and "loss" in val
    for bad in (float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError, match=r"--finetune-lr-scale=.*: expected a positive finite number"):
            finetune(task, cfg, 2, lr_scale=bad)


def test_prune_table_and_cli(lm_ckpt, tmp_path):
    rows = prune_table(lm_ckpt, [0.5, 0.9], scopes=["layer"], finetune_steps=0, log=lambda *a: None)
    assert [r["scope"] for r in rows] == ["dense", "layer", "layer"]
    assert rows[1]["sparsity"] == pytest.approx(0.5, abs=0.01) and rows[2]["sparsity"] == pytest.approx(0.9, abs=0.01)
    # the dense row is the checkpoint's own validation loss (what the Trainer recorded as best)
    best = json.loads((lm_ckpt.parent / "summary.json").read_text())["best"]
    assert rows[0]["before"] == pytest.approx(best, rel=1e-5)
    assert rows[2]["before"] > rows[0]["before"]  # 90% of the weights gone hurts
    model = load_task(lm_ckpt)[0].model  # the share of the model that the pruned set is
    rnn = sum(p.numel() for n, p in model.rnn.named_parameters() if n.startswith("weight_"))
    assert rows[1]["share_of_model"] == pytest.approx(rnn / sum(p.numel() for p in model.parameters()))
    assert rows[2]["model_sparsity"] == pytest.approx(rows[2]["sparsity"] * rows[2]["share_of_model"])
    assert main(["prune", str(lm_ckpt), "--amounts", "0.5", "--finetune-steps", "2", "--out",
                 str(tmp_path), "--save"]) == 0
    table = json.loads((tmp_path / "pruning.json").read_text())["rows"]
    assert table[1]["finetune_steps"] == 2 and (tmp_path / "pruning.md").read_text().startswith("| scope")
    task, _ = load_task(tmp_path / "global-0.5")  # an ordinary checkpoint, zeros included
    w = task.model.rnn.weight_hh_l0
    assert 0.3 < float((w == 0).float().mean()) < 0.7
    assert main(["prune", str(lm_ckpt), "--amounts", "1.5"]) == 2


def test_quantize_report(lm_ckpt, forecast_ckpt):
    rep = quantize_report(lm_ckpt, repeats=1, log=lambda *a: None)
    k = rep["metric"]
    assert k == "loss" and abs(rep["metric_change"]) < 0.05
    assert rep["metrics"]["float_torch_nn"][k] == pytest.approx(rep["metrics"]["float"][k], abs=1e-5)
    assert set(rep["cpu_seconds_median"]) == {"evaluate", "generate_200_tokens"}
    assert rep["bytes"]["int8"] < rep["bytes"]["float"]
    fr = quantize_report(forecast_ckpt, repeats=1, log=lambda *a: None)
    assert fr["converted"] == ["encoder"] and abs(fr["metric_change"]) < 0.1 * fr["metrics"]["float"]["loss"] + 1e-3
