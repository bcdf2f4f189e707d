"""minGRU and minLSTM: conformance, steps by hand, parallel == sequential, the log-space scan."""
import math

import pytest
import torch

from rnnkit.cells.minrnn import MinGRUCell, g, log_g, log_space_scan
from rnnkit.kernels.loop import scan as step_scan
from rnnkit.layers import MinGRU, MinLSTM
from rnnkit.testing import as_tuple, check_gradients, check_layer

LAYERS = {"mingru": MinGRU, "minlstm": MinLSTM}


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
@pytest.mark.parametrize("name", LAYERS)
def test_conformance(name, mode):
    check_layer(lambda **k: LAYERS[name](3, 4, mode=mode, **k), 3, 4, (4,))


@pytest.mark.parametrize("name", LAYERS)
def test_gradients(name):
    check_gradients(lambda **k: LAYERS[name](2, 3, **k), 2)


def _sigmoid(a):
    return 1 / (1 + math.exp(-a))


def _g(a):
    return a + 0.5 if a >= 0 else _sigmoid(a)


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_mingru_steps_by_hand(mode):
    W, b = [0.5, -1.0, 1.5, -0.8], [0.1, 0.2, -0.3, 0.4]  # rows z_1, z_2, h_1, h_2 (I = 1, H = 2)
    X, h = [1.0, -0.5, 2.0], [-0.2, 0.7]
    layer = MinGRU(1, 2, mode=mode).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, dtype=torch.float64).view(4, 1))
        layer.bias_l0.copy_(torch.tensor(b, dtype=torch.float64))
    out, h_n = layer(torch.tensor(X, dtype=torch.float64).view(3, 1, 1),
                     torch.tensor(h, dtype=torch.float64).view(1, 1, 2))
    want = []
    for x in X:
        k = [w * x + bias for w, bias in zip(W, b)]
        z = [_sigmoid(k[0]), _sigmoid(k[1])]
        h = [(1 - z[n]) * h[n] + z[n] * _g(k[2 + n]) for n in range(2)]
        want.append(h)
    want = torch.tensor(want, dtype=torch.float64)
    torch.testing.assert_close(out[:, 0], want, atol=1e-14, rtol=0)
    torch.testing.assert_close(h_n[0, 0], want[-1], atol=1e-14, rtol=0)


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_minlstm_steps_by_hand(mode):
    W, b = [0.5, -1.0, 0.8], [0.2, 0.1, -0.3]  # rows f, i, h (I = H = 1)
    X, h = [1.0, -2.0, 0.4], 0.6
    layer = MinLSTM(1, 1, mode=mode).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, dtype=torch.float64).view(3, 1))
        layer.bias_l0.copy_(torch.tensor(b, dtype=torch.float64))
    out, h_n = layer(torch.tensor(X, dtype=torch.float64).view(3, 1, 1),
                     torch.full((1, 1, 1), h, dtype=torch.float64))
    want = []
    for x in X:
        f, i = _sigmoid(W[0] * x + b[0]), _sigmoid(W[1] * x + b[1])
        h = f / (f + i) * h + i / (f + i) * _g(W[2] * x + b[2])
        want.append(h)
    torch.testing.assert_close(out.flatten(), torch.tensor(want, dtype=torch.float64),
                               atol=1e-14, rtol=0)
    assert h_n.item() == pytest.approx(want[-1], abs=1e-14)


@pytest.mark.parametrize("name", LAYERS)
def test_parallel_equals_sequential_outputs_and_gradients(name):
    torch.manual_seed(0)
    T, B, I, H = 9, 4, 3, 5
    kw = dict(num_layers=2, bidirectional=True, residual=True)
    par = LAYERS[name](I, H, mode="parallel", **kw).double()
    seq = LAYERS[name](I, H, mode="sequential", **kw).double()
    seq.load_state_dict(par.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.randn(4, B, H, dtype=torch.float64)  # of both signs
    lengths = torch.tensor([9, 3, 1, 6])
    results = []
    for layer in (par, seq):
        xi, hi = x.clone().requires_grad_(), h0.clone().requires_grad_()
        out, h_n = layer(xi, hi, lengths=lengths)
        ((out * torch.cos(out)).sum() + (h_n ** 2).sum()).backward()
        grads = [xi.grad, hi.grad] + [p.grad for p in layer.parameters()]
        results.append((out.detach(), h_n.detach(), grads))
    (o1, h1, g1), (o2, h2, g2) = results
    torch.testing.assert_close(o1, o2, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, h2, atol=1e-12, rtol=0)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_log_space_scan_with_any_mask_equals_stepping():
    torch.manual_seed(0)
    cell = MinGRUCell(3, 4)
    p = {"weight_ih": torch.randn(8, 3, dtype=torch.float64), "bias": torch.randn(8, dtype=torch.float64)}
    xp = cell.project(torch.randn(7, 5, 3, dtype=torch.float64), p)
    mask = torch.rand(7, 5, 1) > 0.4  # holes anywhere, the first step too
    mask[:, 0] = False  # one sequence with no valid step keeps h0
    h0 = (torch.randn(5, 4, dtype=torch.float64),)
    y1, (h1,) = cell.scan(xp, h0, p, mask)
    y2, (h2,) = step_scan(cell, p, xp, h0, mask)
    torch.testing.assert_close(y1, y2, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, h2, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1[0], h0[0][0], atol=0, rtol=0)
    # the direct call, h_t = a_t h_{t-1} + b_t, over several chunks (the last one padded)
    a, b = torch.rand(7, 2, 3, dtype=torch.float64), torch.rand(7, 2, 3, dtype=torch.float64)
    keep = torch.rand(7, 2, 1) > 0.3
    h, want = -torch.ones(2, 3, dtype=torch.float64), []
    for t in range(7):
        h = torch.where(keep[t], a[t] * h + b[t], h)
        want.append(h)
    got = log_space_scan(a.log(), b.log(), -torch.ones(2, 3, dtype=torch.float64), keep, chunk=3)
    torch.testing.assert_close(got, torch.stack(want), atol=1e-13, rtol=0)


def test_parallel_float32_stays_close_on_a_long_sequence():
    torch.manual_seed(0)
    layer = MinGRU(2, 8)
    x = torch.randn(1000, 2, 2)
    ref = MinGRU(2, 8, mode="sequential").double()
    ref.load_state_dict(layer.state_dict())
    out = layer(x)[0]
    want = ref(x.double())[0]
    assert torch.isfinite(out).all()
    assert ((out.double() - want).abs().max() / want.abs().max()).item() < 1e-5


def test_g_and_log_g():
    x = torch.tensor([-50.0, -2.0, 0.0, 1.5], dtype=torch.float64)
    torch.testing.assert_close(g(x), torch.tensor([_sigmoid(-50.0), _sigmoid(-2.0), 0.5, 2.0],
                                                  dtype=torch.float64), atol=1e-15, rtol=1e-14)
    torch.testing.assert_close(log_g(x), g(x).log(), atol=0, rtol=1e-13)


def test_bad_mode_and_forget_bias():
    with pytest.raises(ValueError, match="mode: expected 'parallel' or 'sequential', got 'fast'"):
        MinGRU(2, 3, mode="fast")
    with pytest.raises(ValueError, match="forget_bias: MinGRUCell has no forget gate"):
        MinGRU(2, 3, forget_bias=1.0)
    layer = MinLSTM(2, 3, bidirectional=True, forget_bias=1.5)
    for bias in (layer.bias_l0, layer.bias_l0_reverse):
        assert torch.all(bias[:3] == 1.5) and not torch.any(bias[3:] == 1.5)  # gate f
    assert as_tuple(layer(torch.randn(4, 2, 2))[1])[0].shape == (2, 2, 3)
