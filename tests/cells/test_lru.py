"""LRU and RG-LRU: conformance, steps by hand, the parallel scan == stepping, initialisation."""
import cmath
import copy
import math

import pytest
import torch

from rnnkit.cells.lru import SQRT_FLOOR, LRUCell, RGLRUCell
from rnnkit.cells.scan import _ComplexScan, linear_scan
from rnnkit.kernels.loop import length_mask
from rnnkit.kernels.loop import scan as step_scan
from rnnkit.layers import LRU, RGLRU
from rnnkit.testing import (
    check_gradients,
    check_layer,
    check_square_layer,
)

D64 = dict(dtype=torch.float64)


@pytest.mark.parametrize("kw", [{}, dict(state_size=3)], ids=["N=H", "N!=H"])
def test_lru_conformance(kw):
    N = kw.get("state_size", 4)
    check_layer(lambda **k: LRU(3, 4, **kw, **k), 3, 4, (N, N))


def test_rglru_conformance():
    check_layer(lambda **k: RGLRU(3, 4, **k), 3, 4, (4,))


def test_rglru_identity_value_conformance():
    """``value="identity"`` needs I == H in every layer: stacked one way, or one layer both ways."""
    check_square_layer(lambda **k: RGLRU(4, 4, value="identity", **k), 4)


@pytest.mark.parametrize("cls", [LRU, RGLRU])
def test_gradients(cls):
    check_gradients(lambda **k: cls(2, 3, **k), 2)


def _scan_vs_step(cell, T=70, B=4, seed=0):
    """Outputs, final states and every gradient of the scan and of stepping, float64."""
    torch.manual_seed(seed)
    p = {n: torch.randn(s, **D64).mul_(0.5).requires_grad_() for n, s in cell.param_shapes().items()}
    if "nu_log" in p:  # |lambda| in about (0.5, 0.99): long memory, still inside the circle
        with torch.no_grad():
            p["nu_log"].copy_(torch.empty(cell.state_size, **D64).uniform_(-4.5, -0.4))
    x = torch.randn(T, B, cell.input_size, **D64, requires_grad=True)
    h0 = tuple(torch.randn(B, s, **D64, requires_grad=True) for s in cell.state_sizes)
    mask = length_mask(torch.tensor([T, 2, T - 5, 1][:B]), T)
    w_y, w_s = torch.randn(T, B, cell.output_size, **D64), [torch.randn_like(h) for h in h0]
    results = []
    for run in (lambda xp: step_scan(cell, p, xp, h0, mask),
                lambda xp: cell.scan(xp, h0, p, mask)):
        y, s = run(cell.project(x, p))
        loss = (y * w_y).sum() + sum((a * w).sum() for a, w in zip(s, w_s))
        grads = torch.autograd.grad(loss, [x, *h0, *p.values()])
        results.append((y, s, grads))
    return results


@pytest.mark.parametrize("cell", [
    LRUCell(3, 4), LRUCell(4, 4, state_size=6), LRUCell(3, 4, bias=False, state_size=2),
    RGLRUCell(3, 4), RGLRUCell(3, 5, bias=False), RGLRUCell(4, 4, value="identity"),
    RGLRUCell(5, 5, bias=False, value="identity")],
    ids=["lru", "lru_diag_skip", "lru_nobias", "rglru", "rglru_nobias", "rglru_identity",
         "rglru_identity_nobias"])
def test_parallel_scan_equals_stepping_forward_and_gradients(cell, scan_path):
    (y1, s1, g1), (y2, s2, g2) = _scan_vs_step(cell)
    torch.testing.assert_close(y2, y1, atol=1e-12, rtol=1e-10)
    for a, b in zip(s2, s1):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9)
    assert (y2[2:, 1] == 0).all() and (y2[1:, 3] == 0).all()  # padding emits zeros


def test_linear_scan_by_hand_real_and_complex(scan_path):
    a, b = torch.tensor([0.5, -2.0, 1.0]), torch.tensor([1.0, 3.0, -1.0])
    h, want = 2.0, []
    for t in range(3):
        h = a[t].item() * h + b[t].item()
        want.append(h)
    got = linear_scan(a.view(3, 1, 1), b.view(3, 1, 1), torch.tensor([[2.0]]), chunk=2)
    assert got.flatten().tolist() == pytest.approx(want)  # 3 steps over 2 chunks of 2
    lam, u, z = 0.9 * cmath.exp(0.7j), [1 - 1j, 0.5j, -2.0], 0.3 + 0.2j
    want = []
    for t in range(3):
        z = lam * z + u[t]
        want.append(z)
    re, im = linear_scan((torch.tensor([lam.real]), torch.tensor([lam.imag])),
                         (torch.tensor([c.real for c in u]).view(3, 1, 1),
                          torch.tensor([c.imag for c in u]).view(3, 1, 1)),
                         (torch.tensor([[0.3]]), torch.tensor([[0.2]])))
    assert re.flatten().tolist() == pytest.approx([c.real for c in want])
    assert im.flatten().tolist() == pytest.approx([c.imag for c in want])


def test_lru_steps_by_hand():
    """One unit, I = H = 1 (the paper's diagonal D), complex arithmetic in Python."""
    nu_log, theta_log, gamma_log = -1.0, 0.3, -0.2
    b_re, b_im, w_re, w_im, d, bias = 0.7, -0.4, 1.1, 0.6, 0.5, 0.1
    layer = LRU(1, 1, state_size=1).double()
    vals = dict(weight_ih_l0=[[b_re], [b_im]], nu_log_l0=[nu_log], theta_log_l0=[theta_log],
                gamma_log_l0=[gamma_log], weight_out_l0=[[w_re, w_im]], weight_skip_l0=[d],
                bias_l0=[bias])
    with torch.no_grad():
        for n, v in vals.items():
            getattr(layer, n).copy_(torch.tensor(v, **D64))
    X, s = [1.0, -0.5, 2.0], 0.2 - 0.3j
    out, (s_re, s_im) = layer(torch.tensor(X, **D64).view(3, 1, 1),
                              (torch.tensor([[[s.real]]], **D64), torch.tensor([[[s.imag]]], **D64)))
    lam = cmath.exp(-math.exp(nu_log) + 1j * math.exp(theta_log))
    want = []
    for x in X:
        s = lam * s + math.exp(gamma_log) * complex(b_re, b_im) * x
        want.append(w_re * s.real + w_im * s.imag + d * x + bias)
    assert out.flatten().tolist() == pytest.approx(want, rel=1e-12)
    assert (s_re.item(), s_im.item()) == pytest.approx((s.real, s.imag), rel=1e-12)


def test_rglru_steps_by_hand():
    W, b, a_param, c = [0.5, -1.0, 1.5], [0.1, 0.2, -0.3], 0.4, 8.0  # I = H = 1: gate_a, gate_x, v
    layer = RGLRU(1, 1, c=c).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, **D64).view(3, 1))
        layer.bias_l0.copy_(torch.tensor(b, **D64))
        layer.a_param_l0.fill_(a_param)
    X, h = [1.0, -0.5, 2.0], 0.3
    out, h_n = layer(torch.tensor(X, **D64).view(3, 1, 1), torch.tensor([[[h]]], **D64))
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    want = []
    for x in X:
        k = [w * x + bias for w, bias in zip(W, b)]
        a = math.exp(-c * sig(k[0]) * math.log1p(math.exp(a_param)))
        h = a * h + math.sqrt(1 - a * a) * sig(k[1]) * k[2]
        want.append(h)
    assert out.flatten().tolist() == pytest.approx(want, rel=1e-12)
    assert h_n.item() == pytest.approx(h, rel=1e-12)


def test_rglru_identity_steps_by_hand():
    """``value="identity"``: the value is x itself, weight_ih holds only the two gates."""
    W, b, a_param, c = [0.5, -1.0], [0.1, 0.2], 0.4, 8.0  # I = H = 1: gate_a, gate_x
    layer = RGLRU(1, 1, c=c, value="identity").double()
    assert layer.weight_ih_l0.shape == (2, 1) and layer.bias_l0.shape == (2,)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, **D64).view(2, 1))
        layer.bias_l0.copy_(torch.tensor(b, **D64))
        layer.a_param_l0.fill_(a_param)
    X, h = [1.0, -0.5, 2.0], 0.3
    h0 = torch.tensor([[[h]]], **D64)
    out, h_n = layer(torch.tensor(X, **D64).view(3, 1, 1), h0)  # the scan
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    want = []
    for x in X:
        a = math.exp(-c * sig(W[0] * x + b[0]) * math.log1p(math.exp(a_param)))
        h = a * h + math.sqrt(1 - a * a) * sig(W[1] * x + b[1]) * x
        want.append(h)
    assert out.flatten().tolist() == pytest.approx(want, rel=1e-12)
    assert h_n.item() == pytest.approx(h, rel=1e-12)
    state, got = h0, []
    for x in X:  # streaming: the layer's step
        y, state = layer.step(torch.tensor([[x]], **D64), state)
        got.append(y.item())
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("make", [lambda: LRU(8, 16, state_size=32, r_min=0.9, r_max=0.999),
                                  lambda: RGLRU(8, 16)], ids=["lru", "rglru"])
def test_float32_scan_stays_accurate_over_long_sequences(make, scan_path):
    """T = 3000 with |a| near 1: the float32 scan against the float64 loop."""
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(3000, 2, 8)
    ref = make().double()
    ref.load_state_dict(layer.state_dict())
    c, p = ref.cells[0], ref._params(0, 0)
    want, _ = step_scan(c, p, c.project(x.double(), p),
                        tuple(torch.zeros(2, s, **D64) for s in c.state_sizes))
    got, _ = layer(x)
    err = ((got.double() - want).abs().max() / want.abs().max()).item()
    assert err < 1e-4, err


def test_bfloat16_runs_the_scan_in_float32():
    torch.manual_seed(0)
    layer = RGLRU(4, 8)
    x = torch.randn(300, 2, 4)
    want, _ = layer(x)
    got, h = layer.to(torch.bfloat16)(x.bfloat16())
    assert got.dtype == h.dtype == torch.bfloat16
    err = ((got.float() - want).abs().max() / want.abs().max()).item()
    assert err < 0.03, err  # bf16 weights and inputs; the scan itself in float32


def test_lru_initialisation_is_the_papers_ring():
    torch.manual_seed(0)
    layer = LRU(5, 6, state_size=4000, r_min=0.4, r_max=0.9, max_phase=math.pi)
    mod = torch.exp(-torch.exp(layer.nu_log_l0))
    phase = torch.exp(layer.theta_log_l0)
    assert mod.min() >= 0.4 - 1e-6 and mod.max() <= 0.9 + 1e-6
    assert 0 <= phase.min() and phase.max() <= math.pi + 1e-6
    # uniform on the ring: |lambda|^2 uniform in [r_min^2, r_max^2], so its mean is the middle
    assert (mod ** 2).mean().item() == pytest.approx((0.16 + 0.81) / 2, abs=0.01)
    torch.testing.assert_close(torch.exp(layer.gamma_log_l0), torch.sqrt(1 - mod ** 2))
    assert layer.weight_skip_l0.shape == (6, 5) and layer.bias_l0.abs().max() == 0
    assert LRU(6, 6).weight_skip_l0.shape == (6,)  # the paper's diagonal D when I == H
    assert LRU(6, 6, bidirectional=True, num_layers=2).weight_skip_l1.shape == (6, 12)


def test_rglru_identity_value_parameters():
    layer = RGLRU(6, 6, num_layers=2, value="identity", init_ih="orthogonal")
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {"weight_ih_l0": (12, 6), "bias_l0": (12,), "a_param_l0": (6,),
                      "weight_ih_l1": (12, 6), "bias_l1": (12,), "a_param_l1": (6,)}
    for block in layer.weight_ih_l0.detach().chunk(2):  # init_ih per gate block: 2 blocks
        torch.testing.assert_close(block @ block.T, torch.eye(6))
    assert "value='identity'" in repr(layer)
    assert RGLRUCell(3, 4).param_shapes()["weight_ih"] == (12, 3)  # the default is unchanged


def test_rglru_initialisation_is_griffins_code():
    """recurrentgemma's rnn_param_init: the base decay exp(-softplus(a_param)) has a^2
    uniform on [0.9^2, 0.999^2]; a fully open gate decays by a^8."""
    torch.manual_seed(0)
    layer = RGLRU(5, 4000)
    a = torch.exp(-torch.nn.functional.softplus(layer.a_param_l0))
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    assert (a ** 2).mean().item() == pytest.approx((0.81 + 0.998001) / 2, abs=0.01)
    assert (a ** 8).min() >= 0.9 ** 8 - 1e-6  # the open gate's decay: down to 0.43


def test_half_precision_steps_run_in_float32():
    """bfloat16 streaming: lambda and a in float32 (in bfloat16 |lambda| rounded past 1 and
    6% of the RG-LRU's a_t to exactly 1); the state is stored in bfloat16 between steps."""
    torch.manual_seed(0)
    for layer in (LRU(8, 16, r_min=0.9, r_max=0.999), RGLRU(8, 16)):
        x = torch.randn(200, 2, 8).bfloat16()
        rounded = {k: v.bfloat16().float() for k, v in layer.state_dict().items()}
        layer.load_state_dict(rounded)  # the bfloat16 weights, in float32 math: the target
        want, _ = layer(x.float())
        half = copy.deepcopy(layer).to(torch.bfloat16).eval()
        state, ys = None, []
        for t in range(200):
            y, state = half.step(x[t], state)
            ys.append(y)
        got = torch.stack(ys)
        assert got.dtype == torch.bfloat16
        err = ((got.float() - want).abs().max() / want.abs().max()).item()
        assert err < 0.02, (type(layer).__name__, err)  # the state rounded at each step
    nu_log = LRU(8, 4000, r_min=0.99, r_max=0.999).nu_log_l0.detach().bfloat16()
    l_re, l_im = LRUCell.lam(dict(nu_log=nu_log, theta_log=torch.zeros_like(nu_log)))
    assert l_re.dtype == torch.float32 and (l_re ** 2 + l_im ** 2).max() < 1


def test_the_lru_refuses_zoneout():
    with pytest.raises(ValueError, match=r"zoneout: LRUCell does not take it: the state is one "
                                         r"complex number per unit"):
        LRU(3, 4, zoneout=0.1)
    assert LRU(3, 4, zoneout=0.0).zoneout == (0.0, 0.0)


def test_rglru_gradient_is_finite_where_the_gate_shuts_the_decay():
    """r = 0 gives a = 1 and 1 - a^2 = 0: the floor keeps d sqrt / dq at 1000, not inf."""
    cell = RGLRUCell(1, 1)
    p = {"weight_ih": torch.tensor([[0.0], [0.0], [1.0]], requires_grad=True),
         "bias": torch.tensor([-200.0, 0.0, 0.0], requires_grad=True),
         "a_param": torch.tensor([0.0], requires_grad=True)}
    xp = cell.project(torch.ones(5, 1, 1), p)
    y, _ = cell.scan(xp, (torch.zeros(1, 1),), p)
    y.sum().backward()
    assert all(torch.isfinite(v.grad).all() for v in p.values())
    assert y.max().item() == pytest.approx(5 * math.sqrt(SQRT_FLOOR) * 0.5, rel=1e-5)


@pytest.mark.parametrize("make,pattern", [
    (lambda: LRU(3, 4, r_min=0.9, r_max=0.5), r"r_min, r_max: expected 0 <= r_min < r_max <= 1"),
    (lambda: LRU(3, 4, r_max=float("nan")), r"r_max: expected a finite number"),
    (lambda: LRU(3, 4, state_size=0), r"state_size: expected a positive int"),
    (lambda: LRU(3, 4, max_phase=0), r"max_phase: expected a positive finite number"),
    (lambda: RGLRU(3, 4, r_max=1.0), r"expected 0 < r_min < r_max < 1"),
    (lambda: RGLRU(3, 4, c=-1), r"c: expected a positive finite number"),
    (lambda: RGLRU(3, 4, c=True), r"c: expected a positive finite number"),
    (lambda: RGLRU(3, 4, value="identity"),
     r"needs input_size == hidden_size, got input_size=3, hidden_size=4"),
    (lambda: RGLRU(4, 4, value="gated"), r"value: expected 'project' or 'identity'"),
])
def test_bad_options_are_errors(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()
    with pytest.raises(TypeError, match="state_size should be of type int"):
        LRU(3, 4, state_size=2.5)


def test_linear_scan_promotes_dtypes_on_both_paths(scan_path):
    """float32 coefficients with a float64 state give float64 on the loop as on the doubling
    scan (the loop's buffer must not round to float32)."""
    a, b = torch.rand(5, 2, 3), torch.randn(5, 2, 3)
    h0 = torch.randn(2, 3, **D64) * 1e-9 + 1.0
    got = linear_scan(a, b, h0)
    want = linear_scan(a.double(), b.double(), h0)
    assert got.dtype == torch.float64  # the doubling scan multiplies float32 a's in float32
    torch.testing.assert_close(got, want, atol=0 if scan_path == "sequential" else 1e-6,
                               rtol=0 if scan_path == "sequential" else 1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch's batched check
def test_complex_scan_derivatives_of_every_order(scan_path):
    """The complex scan's hand-written adjoint (by conj(a)) and jvp: reverse and forward mode,
    vmap, twice; a = |a| e^(i phi) with |a| < 1, any b and h0."""
    torch.manual_seed(0)
    mod, phi = torch.rand(5, 2, 3, **D64) * 0.9, torch.rand(5, 2, 3, **D64) * 6
    a_re, a_im = (mod * torch.cos(phi)).requires_grad_(), (mod * torch.sin(phi)).requires_grad_()
    rest = [torch.randn(*s, **D64, requires_grad=True) for s in ((5, 2, 3),) * 2 + ((2, 3),) * 2]
    args = (a_re, a_im, *rest)
    assert torch.autograd.gradcheck(_ComplexScan.apply, args, check_forward_ad=True,
                                    check_batched_grad=True, check_batched_forward_grad=True)
    assert torch.autograd.gradgradcheck(_ComplexScan.apply, args, check_fwd_over_rev=True)
