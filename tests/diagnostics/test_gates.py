"""Gate heatmap values equal the cell's gates recomputed by hand; saturation statistics."""
import numpy as np
import pytest
import torch

from rnnkit.diagnostics import gate_activity, plot_gate_heatmaps, saturation
from rnnkit.layers import build_layer


def _by_hand_lstm(x, p, H):
    """i, f, g, o, h, c over time for one sequence x (T, I), from the equations."""
    h, c = torch.zeros(H, dtype=x.dtype), torch.zeros(H, dtype=x.dtype)
    out = {k: [] for k in "ifgohc"}
    for x_t in x:
        a = p["weight_ih"] @ x_t + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
        i, f, g, o = torch.sigmoid(a[:H]), torch.sigmoid(a[H:2 * H]), torch.tanh(a[2 * H:3 * H]), \
            torch.sigmoid(a[3 * H:])
        c = f * c + i * g
        h = o * torch.tanh(c)
        for k, v in zip("ifgohc", (i, f, g, o, h, c)):
            out[k].append(v)
    return {k: torch.stack(v).numpy() for k, v in out.items()}


def test_lstm_gates_equal_the_equations_both_directions_with_padding():
    torch.manual_seed(0)
    H, T = 4, 6
    layer = build_layer("lstm", 3, H, bidirectional=True).double()
    x = torch.randn(T, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 4])
    acts = gate_activity(layer, lambda m: m(x, lengths=lengths), sequence=1)
    fwd, rev = acts
    assert (fwd["direction"], rev["direction"], fwd["length"]) == ("forward", "reverse", 4)
    with torch.no_grad():
        want = _by_hand_lstm(x[:4, 1], layer._params(0, 0), H)
        back = _by_hand_lstm(x[:4, 1].flip(0), layer._params(0, 1), H)  # run on the reversed clip
    for k in "ifgohc":
        assert fwd["values"][k].shape == (4, H)
        np.testing.assert_allclose(fwd["values"][k], want[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(rev["values"][k], back[k][::-1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gates_equal_the_equations(reset_after):
    torch.manual_seed(1)
    H, T = 5, 7
    layer = build_layer("gru", 2, H, reset_after=reset_after).double()
    x = torch.randn(T, 3, 2, dtype=torch.float64)
    (act,) = gate_activity(layer, lambda m: m(x), sequence=2)
    p = {k: v.detach() for k, v in layer._params(0, 0).items()}
    W_ir, W_iz, W_in = p["weight_ih"].split(H)
    W_hr, W_hz, W_hn = p["weight_hh"].split(H)
    b_ir, b_iz, b_in = p["bias_ih"].split(H)
    b_hr, b_hz, b_hn = p["bias_hh"].split(H)
    h = torch.zeros(H, dtype=x.dtype)
    for t in range(T):
        x_t = x[t, 2]
        r = torch.sigmoid(W_ir @ x_t + b_ir + W_hr @ h + b_hr)
        z = torch.sigmoid(W_iz @ x_t + b_iz + W_hz @ h + b_hz)
        rec = r * (W_hn @ h + b_hn) if reset_after else W_hn @ (r * h) + b_hn
        n = torch.tanh(W_in @ x_t + b_in + rec)
        h = (1 - z) * n + z * h
        for k, v in (("r", r), ("z", z), ("n", n), ("h", h)):
            np.testing.assert_allclose(act["values"][k][t], v.numpy(), rtol=1e-12, atol=1e-12)


def test_stacked_layers_and_models_holding_layers():
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.enc = build_layer("lstm", 3, 4, num_layers=2, batch_first=True)
    x = torch.randn(2, 5, 3)
    acts = gate_activity(model, lambda m: m.enc(x))
    assert [(a["module"], a["layer"]) for a in acts] == [("enc", 0), ("enc", 1)]
    out, _ = model.enc(x)
    np.testing.assert_allclose(acts[1]["values"]["h"], out[0].detach().numpy(), atol=1e-6)


def test_saturation_statistics():
    v = np.array([0.01, 0.02, 0.5, 0.97, 0.99, 0.999, 0.6, 0.3])
    s = saturation("f", v)
    assert s["frac_low"] == 0.25 and s["frac_high"] == 0.375 and s["mean"] == pytest.approx(v.mean())
    assert s["median_timescale"] == pytest.approx(1 / (1 - np.median(v)))  # median 0.55
    t = saturation("g", np.array([-0.99, 0.2, 0.96, -0.5]))
    assert t["frac_saturated"] == 0.5 and "frac_low" not in t


def test_heatmap_png(tmp_path):
    layer = build_layer("gru", 2, 3)
    (act,) = gate_activity(layer, lambda m: m(torch.randn(6, 1, 2)))
    path = plot_gate_heatmaps(act, tmp_path / "g.png", marks=[2])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_classifiers_backward_layers_are_labelled_reverse():
    """The text classifier runs its backward direction as one-way layers on reversed texts;
    gates and gradient flow call those the reverse direction, not "forward"."""
    from rnnkit.diagnostics import hidden_gradient_norms
    from rnnkit.models.classify import ClassifierConfig, TextClassifier

    torch.manual_seed(0)
    model = TextClassifier(ClassifierConfig(embedding_dim=8, hidden_size=6, bidirectional=True,
                                            num_layers=1), vocab_size=20, num_classes=3)
    ids, lengths = torch.randint(1, 20, (2, 7)), torch.tensor([7, 5])
    acts = gate_activity(model, lambda m: m(ids, lengths))
    got = {a["module"]: a["direction"] for a in acts}
    assert got == {"fwd.0": "forward", "bwd.0": "reverse"}
    flows = hidden_gradient_norms(model, lambda m: m(ids, lengths).sum())
    assert {f["module"]: f["direction"] for f in flows} == got


def test_rglru_gates_and_decay_equal_the_equations():
    torch.manual_seed(2)
    H, T = 3, 5
    layer = build_layer("rglru", 2, H, c=8.0).double()
    x = torch.randn(T, 1, 2, dtype=torch.float64)
    (act,) = gate_activity(layer, lambda m: m(x))
    p = layer._params(0, 0)
    with torch.no_grad():
        k = x[:, 0] @ p["weight_ih"].T + p["bias"]  # (T, 3H): gate_a, gate_x, value
        r, i = torch.sigmoid(k[:, :H]), torch.sigmoid(k[:, H:2 * H])
        a = torch.exp(-8.0 * r * torch.log1p(torch.exp(p["a_param"])))
    for name, want in (("r", r), ("i", i), ("a", a)):
        np.testing.assert_allclose(act["values"][name], want.numpy(), rtol=1e-12)
    assert act["stats"]["a"]["median_timescale"] == pytest.approx(
        1 / (1 - np.median(a.numpy())), rel=1e-9)


@pytest.mark.parametrize("cell", ["slstm", "mlstm"])
def test_xlstm_stabilised_gates_rebuild_the_recorded_state(cell):
    """c_t = f' c_{t-1} + i' g (sLSTM) and n_t = f' n_{t-1} + i' k (mLSTM): the gates the
    heatmaps show, with the states the taps recorded, give the next state exactly."""
    torch.manual_seed(3)
    H, T, heads = 4, 6, 2
    layer = build_layer(cell, 3, H, num_heads=heads).double()
    x = torch.randn(T, 1, 3, dtype=torch.float64)
    (act,) = gate_activity(layer, lambda m: m(x))
    v = act["values"]
    assert all(0 < v[g].min() and v[g].max() <= 1 for g in ("i_stab", "f_stab", "f"))
    if cell == "slstm":
        assert set(v) >= {"i_stab", "f_stab", "f", "o", "g", "h", "c", "n", "m"}
        for t in range(1, T):
            want = v["f_stab"][t] * v["c"][t - 1] + v["i_stab"][t] * v["g"][t]
            np.testing.assert_allclose(v["c"][t], want, rtol=1e-12)
    else:
        assert set(v) >= {"i_stab", "f_stab", "f", "o", "C", "n", "m"}
        assert v["i_stab"].shape == (T, heads)
        p, d = layer._params(0, 0), H // heads
        with torch.no_grad():
            k = (x[:, 0] @ p["weight_ih"].T + p["bias"])[:, H:2 * H] / d ** 0.5  # (T, H)
        f_rep, i_rep = np.repeat(v["f_stab"], d, axis=1), np.repeat(v["i_stab"], d, axis=1)
        for t in range(1, T):
            want = f_rep[t] * v["n"][t - 1] + i_rep[t] * k[t].numpy()
            np.testing.assert_allclose(v["n"][t], want, rtol=1e-12)


def test_xlstm_timescale_reads_the_forget_gate_not_the_stabilised_factor():
    """f = sigmoid(0) = 0.5 at every step: timescale 2, whatever the stabiliser does (its
    f_stab is exactly 1 at many steps)."""
    torch.manual_seed(4)
    layer = build_layer("slstm", 3, 4).double()
    with torch.no_grad():
        layer.weight_hh_l0.zero_()
        layer.bias_l0.zero_()
        layer.weight_ih_l0[8:12].zero_()  # the f block: f~ = 0
    (act,) = gate_activity(layer, lambda m: m(3 * torch.randn(40, 2, 3, dtype=torch.float64)))
    assert act["stats"]["f"]["median_timescale"] == pytest.approx(2.0)
    assert "median_timescale" not in act["stats"]["f_stab"]
    assert (act["values"]["f_stab"] == 1.0).mean() > 0.2  # why it is not a timescale
