"""The sLSTM's whole-sequence scan (hand-written backward through time) against stepping the
cell through autograd: outputs, final states and every gradient, with lengths, both forget
gates, a tie in the stabiliser's max; every order of derivative; half precision."""
import pytest
import torch

from rnnkit.cells.slstm_scan import _block_diagonal, _dense, _SLSTMScan, slstm_scan, stepped
from rnnkit.cells.xlstm import SLSTMCell
from rnnkit.kernels.loop import length_mask
from rnnkit.kernels.loop import scan as step_scan
from rnnkit.layers import SLSTM

D64 = dict(dtype=torch.float64)


def _state(B, H, seed=1):
    g = torch.Generator().manual_seed(seed)
    h, c = (0.5 * torch.randn(B, H, generator=g, **D64) for _ in range(2))
    n = torch.rand(B, H, generator=g, **D64) + 0.5  # a normaliser is positive
    m = torch.randn(B, H, generator=g, **D64)
    return tuple(t.requires_grad_() for t in (h, c, n, m))


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("heads", [1, 2])
def test_scan_equals_stepping_the_cell(forget, heads):
    torch.manual_seed(0)
    T, B, I, H = 23, 4, 3, 6
    cell = SLSTMCell(I, H, num_heads=heads, forget=forget)
    p = {n: torch.randn(s, **D64).mul_(0.5).requires_grad_() for n, s in cell.param_shapes().items()}
    x = torch.randn(T, B, I, **D64, requires_grad=True)
    h0 = _state(B, H)
    mask = length_mask(torch.tensor([T, 2, T - 5, 1]), T)
    w_y = torch.randn(T, B, H, **D64)
    w_s = [torch.randn(B, H, **D64) for _ in range(4)]
    results = []
    for run in (lambda xp: step_scan(cell, p, xp, h0, mask), lambda xp: cell.scan(xp, h0, p, mask)):
        y, last = run(cell.project(x, p))
        loss = (y * w_y).sum() + sum((s * w).sum() for s, w in zip(last, w_s))
        results.append((y, last, torch.autograd.grad(loss, [x, *h0, *p.values()])))
    (y1, s1, g1), (y2, s2, g2) = results
    torch.testing.assert_close(y2, y1, atol=1e-12, rtol=1e-10)
    for a, b in zip(s2, s1):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9)
        assert a.abs().sum() > 0
    assert (y2[2:, 1] == 0).all() and (y2[1:, 3] == 0).all()  # padding emits zeros


def test_dense_recurrent_matrix_is_the_per_head_product():
    cell = SLSTMCell(2, 6, num_heads=3)
    R, h = torch.randn(4, 3, 2, 2, **D64), torch.randn(5, 6, **D64)
    torch.testing.assert_close(h @ _dense(R), cell.recurrent(h, R), atol=1e-14, rtol=0)
    dW = torch.randn(6, 24, **D64)  # the gradient of R is the block diagonal of dW's
    Rg = R.clone().requires_grad_()
    (_dense(Rg) * dW).sum().backward()
    torch.testing.assert_close(_block_diagonal(dW, 3), Rg.grad, atol=0, rtol=0)


def test_a_tie_in_the_stabilisers_max_splits_the_gradient_as_torch_maximum():
    """At step 0 with h0 = 0 (no recurrent term) and forget="exp", i~ = g_f + m0 exactly."""
    T, B, H = 3, 2, 4
    xp = torch.randn(T, B, 4 * H, **D64)
    m0 = torch.randn(B, H, **D64)
    xp[0, :, H:2 * H] = xp[0, :, 2 * H:3 * H] + m0  # i~ == log f + m_{-1}
    xp.requires_grad_()
    h0, c0, n0 = torch.zeros(B, H, **D64), torch.randn(B, H, **D64), torch.rand(B, H, **D64) + 1
    args = (xp, h0, c0, n0, m0.requires_grad_(), torch.randn(4, 1, H, H, **D64).requires_grad_())
    a = _SLSTMScan.apply(*args, None, False)
    b = stepped(*args, None, False)
    ws = [torch.randn_like(t) for t in a]
    ga = torch.autograd.grad(a, [args[0], args[4], args[5]], ws)
    gb = torch.autograd.grad(b, [args[0], args[4], args[5]], ws)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-12, rtol=1e-10)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch's batched check
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_of_every_order(masked):
    """gradcheck of the hand-written backward; gradgradcheck through the create_graph path
    (the stepped form); forward mode and vmap (slstm_scan runs the stepped form there)."""
    torch.manual_seed(2)
    T, B, H = 4, 3, 4
    mask = length_mask(torch.tensor([4, 1, 3]), T) if masked else None
    args = (torch.randn(T, B, 4 * H, **D64, requires_grad=True), *_state(B, H),
            (0.3 * torch.randn(4, 2, 2, 2, **D64)).requires_grad_())
    f = lambda *a: _SLSTMScan.apply(*a, mask, True)  # noqa: E731
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)
    g = lambda xp, h, c, n, m, R: (lambda o: (o[0], *o[1]))(  # noqa: E731
        slstm_scan(xp, (h, c, n, m), R, mask, True))
    assert torch.autograd.gradcheck(g, args, check_forward_ad=True, check_batched_grad=True,
                                    check_batched_forward_grad=True)


def test_bfloat16_scan_computes_in_float32():
    """Against float32 with the same rounded weights and inputs, over 200 steps: computing the
    scan in bfloat16 instead (float32_at_least patched out) misses these bounds by 2.5x."""
    torch.manual_seed(3)
    layer = SLSTM(8, 16, num_heads=2)
    x = torch.randn(200, 3, 8)
    ref = SLSTM(8, 16, num_heads=2)
    ref.load_state_dict({k: v.bfloat16().float() for k, v in layer.state_dict().items()})
    out, state = layer.bfloat16()(x.bfloat16())
    want, want_state = ref(x.bfloat16().float())
    assert out.dtype == torch.bfloat16 and all(s.dtype == torch.bfloat16 for s in state)
    assert (out.float() - want).abs().max() < 4e-3
    assert max((s.float() - w).abs().max() for s, w in zip(state, want_state)) < 1e-2


def test_without_gradients_nothing_is_kept_and_the_result_is_the_same():
    torch.manual_seed(4)
    layer, x = SLSTM(5, 8, num_heads=2).double(), torch.randn(30, 3, 5, **D64)
    lengths = torch.tensor([30, 7, 19])
    with torch.no_grad():
        y0, s0 = layer(x, lengths=lengths)  # the stepped form, no graph
    y1, s1 = layer(x, lengths=lengths)  # the scan, which saves for its backward
    assert y1.grad_fn is not None and y0.grad_fn is None
    torch.testing.assert_close(y0, y1.detach(), atol=1e-13, rtol=1e-11)
    for a, b in zip(s0, s1):
        torch.testing.assert_close(a, b.detach(), atol=1e-13, rtol=1e-11)
