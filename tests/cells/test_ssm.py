"""S6 (Mamba's selective SSM): conformance, a step by hand, the parallel scan == stepping,
float32 accuracy over long sequences, initialisation, option checks."""
import math

import pytest
import torch

from rnnkit import Recurrent
from rnnkit.cells.scan import _Scan
from rnnkit.cells.ssm import S6Cell
from rnnkit.kernels.loop import length_mask
from rnnkit.kernels.loop import scan as step_scan
from rnnkit.layers import S6
from rnnkit.testing import (
    check_gradients,
    check_layer,
    check_square_layer,
)

D64 = dict(dtype=torch.float64)


def _s6(I, H, **kw):
    return lambda **k: Recurrent(S6Cell, I, H, **kw, **k)


@pytest.mark.parametrize("kw", [dict(state_size=3), dict(state_size=2, bias=False),
                                dict(state_size=3, zoneout=0.2)],
                         ids=["scan", "nobias", "zoneout_loop"])
def test_conformance(kw):
    """Lengths, hx, bidirection, packing, batch_first, stacking with and without residual."""
    check_layer(_s6(3, 4, **kw), 3, 4, (4 * kw["state_size"],))


def test_identity_value_conformance():
    """``value="identity"`` needs I == H in every layer: stacked one way, or one layer both ways."""
    check_square_layer(lambda **k: S6(4, 4, state_size=2, value="identity", **k), 4, bias=False)


def test_residual_stack_adds_the_input():
    torch.manual_seed(0)
    plain, res = _s6(4, 4, state_size=2)(num_layers=2), _s6(4, 4, state_size=2)(
        num_layers=2, residual=True)
    res.load_state_dict(plain.state_dict())  # I == H: no projection, the same parameters
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        y1 = plain.cells[0].scan(plain.cells[0].project(x, plain._params(0, 0)),
                                 (torch.zeros(3, 8),), plain._params(0, 0))[0] + x
        y2 = plain.cells[1].scan(plain.cells[1].project(y1, plain._params(1, 0)),
                                 (torch.zeros(3, 8),), plain._params(1, 0))[0] + y1
        torch.testing.assert_close(res(x)[0], y2)


@pytest.mark.parametrize("kw", [dict(state_size=2), dict(state_size=2, bias=False),
                                dict(state_size=2, zoneout=0.3)])
def test_gradients(kw):
    check_gradients(_s6(2, 3, **kw), 2)


def _scan_vs_step(cell, T=70, B=4, seed=0):
    """Outputs, final states and every gradient of the scan and of stepping, float64."""
    torch.manual_seed(seed)
    p = {n: torch.randn(s, **D64).mul_(0.5).requires_grad_() for n, s in cell.param_shapes().items()}
    x = torch.randn(T, B, cell.input_size, **D64, requires_grad=True)
    h0 = (torch.randn(B, *cell.state_sizes, **D64, requires_grad=True),)
    mask = length_mask(torch.tensor([T, 2, T - 5, 1][:B]), T)
    w_y, w_s = torch.randn(T, B, cell.output_size, **D64), torch.randn_like(h0[0])
    results = []
    for run in (lambda xp: step_scan(cell, p, xp, h0, mask),
                lambda xp: cell.scan(xp, h0, p, mask)):
        y, (h,) = run(cell.project(x, p))
        loss = (y * w_y).sum() + (h * w_s).sum()
        grads = torch.autograd.grad(loss, [x, *h0, *p.values()])
        results.append((y, h, grads))
    return results


@pytest.mark.parametrize("cell", [S6Cell(3, 4, state_size=5), S6Cell(3, 4, bias=False,
                                                                     state_size=1),
                                  S6Cell(4, 4, state_size=3, value="identity"),
                                  S6Cell(4, 4, bias=False, state_size=2, value="identity")],
                         ids=["bias", "nobias_N1", "identity", "identity_nobias"])
def test_parallel_scan_equals_stepping_forward_and_gradients(cell, scan_path):
    (y1, h1, g1), (y2, h2, g2) = _scan_vs_step(cell)
    torch.testing.assert_close(y2, y1, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(h2, h1, atol=1e-12, rtol=1e-10)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9)
    assert all(g.abs().sum() > 0 for g in g1)
    assert (y2[2:, 1] == 0).all() and (y2[1:, 3] == 0).all()  # padding emits zeros


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch's batched check
def test_scan_derivatives_of_every_order(scan_path):
    """The scan's hand-written backward and jvp: reverse mode, forward mode, vmap, twice."""
    torch.manual_seed(0)
    a = torch.rand(5, 2, 3, **D64).requires_grad_()
    b, h0 = torch.randn(5, 2, 3, **D64, requires_grad=True), torch.randn(2, 3, **D64,
                                                                          requires_grad=True)
    assert torch.autograd.gradcheck(_Scan.apply, (a, b, h0), check_forward_ad=True,
                                    check_batched_grad=True, check_batched_forward_grad=True)
    assert torch.autograd.gradgradcheck(_Scan.apply, (a, b, h0), check_fwd_over_rev=True)


def test_steps_by_hand():
    """I = 1, H = 1, N = 2: every product written out in plain Python."""
    W = [0.5, -0.7, 0.9, -0.4, 1.2, 0.3]  # rows: u, delta, B0, B1, C0, C1
    b_u, b_d, dt_bias, A_log, D = 0.1, -0.2, 0.4, [0.2, -0.5], 0.8
    layer = Recurrent(S6Cell, 1, 1, state_size=2).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, **D64).view(6, 1))
        layer.bias_l0.copy_(torch.tensor([b_u, b_d], **D64))
        layer.dt_bias_l0.fill_(dt_bias)
        layer.A_log_l0.copy_(torch.tensor([A_log], **D64))
        layer.D_l0.fill_(D)
    _check_by_hand(layer, lambda x: (W[0] * x + b_u, W[1] * x + b_d + dt_bias, W[2:4], W[4:6]),
                   A_log, D)


def _check_by_hand(layer, parts, A_log, D):
    """Three steps of a 1-unit, N = 2 layer in plain Python against its scan and its step;
    ``parts(x)`` gives ``(u, delta's pre-activation, B's rows, C's rows)``."""
    X, h = [1.0, -0.5, 2.0], [0.3, -0.6]
    h0 = torch.tensor([[h]], **D64)  # (1, 1, H*N)
    want = []
    for x in X:
        u, pre, B_rows, C_rows = parts(x)
        delta = math.log1p(math.exp(pre))
        Bt, Ct = [w * x for w in B_rows], [w * x for w in C_rows]
        h = [math.exp(-delta * math.exp(A_log[n])) * h[n] + delta * Bt[n] * u for n in range(2)]
        want.append(Ct[0] * h[0] + Ct[1] * h[1] + D * u)
    out, h_n = layer(torch.tensor(X, **D64).view(3, 1, 1), h0)  # the scan
    assert out.flatten().tolist() == pytest.approx(want, rel=1e-12)
    assert h_n.flatten().tolist() == pytest.approx(h, rel=1e-12)
    state, got = h0, []
    for x in X:  # streaming: the layer's step
        y, state = layer.step(torch.tensor([[x]], **D64), state)
        got.append(y.item())
    assert got == pytest.approx(want, rel=1e-12)


def test_identity_value_steps_by_hand():
    """``value="identity"``: u = x, weight_ih rows [delta, B0, B1, C0, C1], bias for delta."""
    W = [-0.7, 0.9, -0.4, 1.2, 0.3]
    b_d, dt_bias, A_log, D = -0.2, 0.4, [0.2, -0.5], 0.8
    layer = S6(1, 1, state_size=2, value="identity").double()
    assert layer.weight_ih_l0.shape == (5, 1) and layer.bias_l0.shape == (1,)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, **D64).view(5, 1))
        layer.bias_l0.fill_(b_d)
        layer.dt_bias_l0.fill_(dt_bias)
        layer.A_log_l0.copy_(torch.tensor([A_log], **D64))
        layer.D_l0.fill_(D)
    _check_by_hand(layer, lambda x: (x, W[0] * x + b_d + dt_bias, W[1:3], W[3:5]), A_log, D)


def test_identity_value_parameters():
    layer = S6(6, 6, num_layers=2, state_size=3, value="identity")
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {"weight_ih_l0": (12, 6), "bias_l0": (6,), "dt_bias_l0": (6,),
                      "A_log_l0": (6, 3), "D_l0": (6,), "weight_ih_l1": (12, 6),
                      "bias_l1": (6,), "dt_bias_l1": (6,), "A_log_l1": (6, 3), "D_l1": (6,)}
    assert (layer.bias_l0 == 0).all() and (layer.D_l0 == 1).all()
    assert list(dict(S6(6, 6, bias=False, value="identity").named_parameters())) == [
        "weight_ih_l0", "dt_bias_l0", "A_log_l0", "D_l0"]
    assert repr(S6Cell(2, 2, state_size=5, value="identity")) == \
        "S6Cell(2, 2, state_size=5, value='identity')"
    assert S6Cell(3, 4, state_size=2).param_shapes()["weight_ih"] == (12, 3)  # default unchanged


def test_float32_scan_stays_accurate_over_long_sequences(scan_path):
    """T = 2000: the float32 scan against the float64 loop (slow decays: a near 1)."""
    torch.manual_seed(0)
    layer = Recurrent(S6Cell, 8, 16, state_size=16)
    x = torch.randn(2000, 2, 8)
    ref = Recurrent(S6Cell, 8, 16, state_size=16).double()
    ref.load_state_dict(layer.state_dict())
    c, p = ref.cells[0], ref._params(0, 0)
    want, (h_want,) = step_scan(c, p, c.project(x.double(), p), (torch.zeros(2, 256, **D64),))
    got, h = layer(x)
    err = ((got.double() - want).abs().max() / want.abs().max()).item()
    assert err < 1e-4, err
    err = ((h[0].double() - h_want).abs().max() / h_want.abs().max()).item()
    assert err < 1e-4, err


def test_bfloat16_runs_the_scan_in_float32():
    torch.manual_seed(0)
    layer = Recurrent(S6Cell, 4, 8, state_size=4)
    x = torch.randn(300, 2, 4)
    want, _ = layer(x)
    got, h = layer.to(torch.bfloat16)(x.bfloat16())
    assert got.dtype == h.dtype == torch.bfloat16
    err = ((got.float() - want).abs().max() / want.abs().max()).item()
    assert err < 0.03, err


def test_initialisation_is_mambas():
    torch.manual_seed(0)
    layer = Recurrent(S6Cell, 5, 4000, state_size=6, dt_min=0.002, dt_max=0.2)
    assert layer.weight_ih_l0.shape == (2 * 4000 + 12, 5) and layer.bias_l0.shape == (8000,)
    want = torch.log(torch.arange(1.0, 7.0)).expand(4000, 6)
    torch.testing.assert_close(layer.A_log_l0, want)  # S4D-real: A[d, n] = -(n + 1)
    assert (layer.D_l0 == 1).all() and (layer.bias_l0 == 0).all()
    k = 1 / math.sqrt(5)
    w = layer.weight_ih_l0
    assert w.abs().max() <= k and w.abs().max() > 0.99 * k  # nn.Linear's U(-1/sqrt(I), ..)
    dt = torch.nn.functional.softplus(layer.dt_bias_l0.double())
    assert dt.min() >= 0.002 * (1 - 1e-5) and dt.max() <= 0.2 * (1 + 1e-5)
    mid = (math.log(0.002) + math.log(0.2)) / 2  # log-uniform: the mean log is the middle
    assert dt.log().mean().item() == pytest.approx(mid, abs=0.05)
    floored = Recurrent(S6Cell, 2, 1000, state_size=1, dt_min=1e-5, dt_max=2e-4)
    dt = torch.nn.functional.softplus(floored.dt_bias_l0.double())
    assert dt.min().item() == pytest.approx(1e-4, rel=1e-4)  # Mamba's floor, dt_init_floor
    assert (dt > 1.01e-4).any()
    assert list(dict(Recurrent(S6Cell, 2, 3, bias=False).named_parameters())) == [
        "weight_ih_l0", "dt_bias_l0", "A_log_l0", "D_l0"]
    assert repr(S6Cell(2, 3, state_size=5)) == "S6Cell(2, 3, state_size=5)"


def test_xavier_init_ih_treats_weight_ih_as_one_block():
    """``num_gates`` is 1: xavier over all of weight_ih (2H + 2N, I); the rest is Mamba's."""
    torch.manual_seed(0)
    layer = Recurrent(S6Cell, 6, 10, state_size=3, init_ih="xavier_uniform")
    w = layer.weight_ih_l0
    bound = math.sqrt(6 / (6 + 26))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert (layer.D_l0 == 1).all()
    torch.testing.assert_close(layer.A_log_l0[0], torch.log(torch.tensor([1.0, 2.0, 3.0])))
    assert torch.isfinite(layer(torch.randn(4, 2, 6))[0]).all()


@pytest.mark.parametrize("kw, pattern", [
    (dict(state_size=0), r"state_size: expected a positive int, got 0"),
    (dict(dt_min=0.0), r"dt_min, dt_max: expected 0 < dt_min < dt_max"),
    (dict(dt_min=0.2, dt_max=0.1), r"dt_min, dt_max: expected 0 < dt_min < dt_max"),
    (dict(dt_max=float("nan")), r"dt_max: expected a finite number"),
    (dict(dt_min=True), r"dt_min: expected a finite number"),
    (dict(recurrent_dropout=0.2), r"recurrent_dropout: S6Cell has no recurrent weights"),
    (dict(weight_drop=0.2), r"weight_drop: S6Cell has no recurrent weights"),
    (dict(forget_bias=1.0), r"forget_bias: S6Cell has no forget gate"),
    (dict(init_hh="orthogonal"), r"init_hh: S6Cell has no recurrent weight matrix"),
    (dict(value="identity"), r"value='identity' reads x as the value, so it needs input_size "
                             r"== hidden_size, got input_size=3, hidden_size=4"),
    (dict(value=None), r"value: expected 'project' or 'identity', got None"),
])
def test_bad_options_are_one_line_errors(kw, pattern):
    with pytest.raises(ValueError, match=pattern) as e:
        Recurrent(S6Cell, 3, 4, **kw)
    assert "\n" not in str(e.value)
    with pytest.raises(TypeError, match="state_size should be of type int"):
        S6Cell(3, 4, state_size=2.5)
