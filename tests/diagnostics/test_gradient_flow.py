"""Gradient flow through time against hand-computed values; clipping records; taps restore."""
import math

import numpy as np
import pytest
import torch

from rnnkit.cells.base import Cell
from rnnkit.diagnostics import ClipRecord, flow_summary, hidden_gradient_norms
from rnnkit.diagnostics._taps import find_recurrent_layers
from rnnkit.layers import Recurrent, build_layer


class LinearCell(Cell):
    """h_t = w_ih x_t + w_hh h_{t-1}: with one unit, dh_T/dh_t = w_hh^(T-t) exactly."""

    def param_shapes(self):
        return {"weight_ih": (self.hidden_size, self.input_size),
                "weight_hh": (self.hidden_size, self.hidden_size)}

    def project(self, x, p):
        return x @ p["weight_ih"].T

    def step(self, x_t, state, p):
        (h,) = state
        h = x_t + h @ p["weight_hh"].T
        return h, (h,)


def linear_rnn(w, bidirectional=False):
    layer = Recurrent(LinearCell, 1, 1, bidirectional=bidirectional).double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.fill_(1.0 if "ih" in name else w)
    return layer


@pytest.mark.parametrize("w", [0.5, 0.9, 1.3])
def test_one_unit_linear_rnn_gradient_is_w_to_the_distance(w):
    T = 8
    layer = linear_rnn(w)
    x = torch.randn(T, 1, 1, dtype=torch.float64)
    flows = hidden_gradient_norms(layer, lambda m: m(x)[1].sum())  # L = h_T
    assert len(flows) == 1 and flows[0]["direction"] == "forward"
    expected = w ** (T - 1 - np.arange(T))  # dL/dh_t = w^(T-t), t = 1..T
    np.testing.assert_allclose(flows[0]["norms"]["h"], expected, rtol=1e-12)
    s = flow_summary(flows[0]["norms"]["h"])
    assert s["per_step_factor"] == pytest.approx(w)
    assert s["log10_first_over_last"] == pytest.approx((T - 1) * math.log10(w))


def test_padded_batch_and_reverse_direction_are_time_aligned():
    w, T = 0.8, 6
    layer = linear_rnn(w, bidirectional=True)
    x = torch.randn(T, 2, 1, dtype=torch.float64)
    lengths = torch.tensor([6, 4])
    # L = sum of the final states: forward at each sequence's last step, reverse at t = 0
    flows = hidden_gradient_norms(layer, lambda m: m(x, lengths=lengths)[1].sum())
    fwd, rev = flows
    t = np.arange(T)
    # forward: sequence 0 contributes w^(5-t), sequence 1 w^(3-t) for t < 4 and nothing after
    expected = np.sqrt(w ** (2 * (5 - t)) + np.where(t < 4, w ** (2 * (3 - t)), 0.0))
    np.testing.assert_allclose(fwd["norms"]["h"], expected, rtol=1e-12)
    # reverse: its final state is at t = 0, so dL/dh_t = w^t inside each sequence
    expected = np.sqrt(w ** (2 * t) + np.where(t < 4, w ** (2 * t), 0.0))
    np.testing.assert_allclose(rev["norms"]["h"], expected, rtol=1e-12)
    assert rev["direction"] == "reverse" and fwd["lengths"] == [6, 4]


def test_tanh_rnn_matches_the_backward_recursion_by_hand():
    torch.manual_seed(0)
    T, H = 7, 3
    layer = build_layer("rnn_tanh", 2, H).double()
    x = torch.randn(T, 1, 2, dtype=torch.float64)
    v = torch.randn(H, dtype=torch.float64)
    flows = hidden_gradient_norms(layer, lambda m: (m(x)[0][-1, 0] * v).sum())  # L = v . h_T
    out, _ = layer(x)
    h = out[:, 0].detach().numpy()  # (T, H)
    W = layer.weight_hh_l0.detach().numpy()
    g = v.numpy()
    expected = [np.linalg.norm(g)]
    for k in range(T - 1, 0, -1):  # dL/dh_{k-1} = W^T diag(1 - h_k^2) dL/dh_k
        g = W.T @ ((1 - h[k] ** 2) * g)
        expected.append(np.linalg.norm(g))
    np.testing.assert_allclose(flows[0]["norms"]["h"], expected[::-1], rtol=1e-10)


def test_lstm_h_and_c_norms_equal_a_hand_stepped_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("rnn", build_layer("lstm", 3, 4, num_layers=2).double())
    assert [n for n, _ in find_recurrent_layers(model)] == ["rnn"]
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    flows = hidden_gradient_norms(model, lambda m: m(x)[0][-1].pow(2).sum())
    assert [(f["layer"], f["direction"]) for f in flows] == [(0, "forward"), (1, "forward")]
    # the same network stepped by hand, states kept for autograd
    layer, inp, states = model.rnn, x, []
    for l, cell in enumerate(layer.cells):
        p = layer._params(l, 0)
        h, c = torch.zeros(2, 4, dtype=x.dtype), torch.zeros(2, 4, dtype=x.dtype)
        ys = []
        for t in range(5):
            h, (h, c) = cell.step(cell.project(inp[t], p), (h, c), p)
            states.append((l, h, c))
            ys.append(h)
        inp = torch.stack(ys)
    loss = inp[-1].pow(2).sum()
    grads = torch.autograd.grad(loss, [s for _, h, c in states for s in (h, c)])
    for l in range(2):
        gh = [grads[2 * k].norm().item() for k in range(len(states)) if states[k][0] == l]
        gc = [grads[2 * k + 1].norm().item() for k in range(len(states)) if states[k][0] == l]
        np.testing.assert_allclose(flows[l]["norms"]["h"], gh, rtol=1e-10)
        np.testing.assert_allclose(flows[l]["norms"]["c"], gc, rtol=1e-10)


def test_taps_leave_the_layer_as_it_was():
    torch.manual_seed(0)
    layer = build_layer("mingru", 3, 4)
    cell, backend = layer.cells[0], layer.backend
    x = torch.randn(5, 2, 3)
    before = layer(x)[0]
    flows = hidden_gradient_norms(layer, lambda m: m(x)[0].sum())
    assert flows[0]["norms"]["h"].shape == (5,)
    assert layer.cells[0] is cell and layer.backend == backend
    torch.testing.assert_close(layer(x)[0], before)
    with pytest.raises(ValueError, match="no rnnkit recurrent layer"):
        hidden_gradient_norms(torch.nn.Linear(2, 2), lambda m: m(torch.ones(2)).sum())


def test_clip_record_before_and_after():
    p = torch.nn.Parameter(torch.zeros(3))
    rec = ClipRecord(max_norm=1.0)
    p.grad = torch.tensor([3.0, 4.0, 0.0])  # norm 5 -> clipped to 1
    assert rec.clip([p]) == pytest.approx(5.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8, 0.0]), rtol=1e-5, atol=1e-6)
    p.grad = torch.tensor([0.3, 0.4, 0.0])  # norm 0.5: untouched
    rec.clip([p])
    assert rec.before == pytest.approx([5.0, 0.5]) and rec.after == pytest.approx([1.0, 0.5])
    assert rec.summary()["fraction_clipped"] == 0.5 and rec.steps == [1, 2]
