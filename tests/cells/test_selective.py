"""The selective scan that keeps one state per chunk (S6's): its hand-written backward
against autograd through the composed scan, across chunk boundaries and on both scan paths;
every order of derivative, forward mode and vmap; and the memory it saves."""
import pytest
import torch

from rnnkit.cells import selective
from rnnkit.cells.selective import _SelectiveScan, composed_scan, selective_scan

D64 = dict(dtype=torch.float64)


def _inputs(T=7, B=2, H=3, N=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, **D64)  # noqa: E731
    u, delta = r(T, B, H), torch.nn.functional.softplus(r(T, B, H))
    A = -torch.exp(r(H, N) * 0.5)
    return [t.requires_grad_() for t in (u, delta, A, r(T, B, N), r(T, B, N), r(B, H, N))]


@pytest.mark.parametrize("chunk_elements", [1 << 22, 36, 24, 12],
                         ids=["one_chunk", "chunks_of_3", "chunks_of_2", "steps"])
def test_backward_equals_autograd_through_the_composed_scan(chunk_elements, scan_path,
                                                             monkeypatch):
    monkeypatch.setattr(selective, "CHUNK_ELEMENTS", chunk_elements)  # B*H*N = 12 per step
    assert selective._chunk(2, 3, 2) == max(1, min(64, chunk_elements // 12))  # T=7: 3+3+1
    xs = _inputs()
    y1, h1 = _SelectiveScan.apply(*xs)
    dy, dh = torch.randn_like(y1), torch.randn_like(h1)
    g1 = torch.autograd.grad((y1, h1), xs, (dy, dh))
    y2, h2 = composed_scan(*xs)
    g2 = torch.autograd.grad((y2, h2), xs, (dy, dh), retain_graph=True)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h1, h2, rtol=1e-12, atol=1e-12)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        assert a.abs().sum() > 0
    # only y, or only the last state, reaching the loss
    gy = torch.autograd.grad(_SelectiveScan.apply(*xs)[0], xs, dy)
    torch.testing.assert_close(gy, torch.autograd.grad(y2, xs, dy, retain_graph=True))
    gh = torch.autograd.grad(_SelectiveScan.apply(*xs)[1], xs, dh)
    torch.testing.assert_close(gh, torch.autograd.grad(h2, xs, dh, allow_unused=True,
                                                       materialize_grads=True))


def test_one_step_by_hand():
    u, delta = torch.tensor([[[2.0]]], **D64), torch.tensor([[[0.5]]], **D64)
    A = torch.tensor([[-1.0, -2.0]], **D64)
    Bt, Ct = torch.tensor([[[1.0, 3.0]]], **D64), torch.tensor([[[0.5, -1.0]]], **D64)
    h0 = torch.tensor([[[4.0, -1.0]]], **D64)
    y, h = selective_scan(u, delta, A, Bt, Ct, h0)
    e = torch.exp(torch.tensor([-0.5, -1.0], **D64))
    want_h = e * torch.tensor([4.0, -1.0], **D64) + 0.5 * 2.0 * torch.tensor([1.0, 3.0], **D64)
    torch.testing.assert_close(h.flatten(), want_h)
    assert y.item() == pytest.approx(0.5 * want_h[0].item() - want_h[1].item())


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch's batched check
def test_gradients_of_every_order(monkeypatch):
    """gradcheck (hand-written backward), gradgradcheck (the create_graph backward through the
    composed scan), forward mode and vmap (selective_scan runs the composed scan there)."""
    monkeypatch.setattr(selective, "CHUNK_ELEMENTS", 12)
    xs = _inputs(T=5, B=2, H=3, N=2)
    assert torch.autograd.gradcheck(_SelectiveScan.apply, xs)
    assert torch.autograd.gradgradcheck(_SelectiveScan.apply, xs)
    assert torch.autograd.gradcheck(selective_scan, xs, check_forward_ad=True,
                                    check_batched_grad=True, check_batched_forward_grad=True)


def test_a_state_kept_by_zero_steps():
    """delta = 0 and u = 0 (S6's padding) carry the state through unchanged."""
    u, delta, A, Bt, Ct, h0 = (t.detach() for t in _inputs(T=4))
    delta[1:3], u[1:3] = 0.0, 0.0
    _, h_two = selective_scan(u[:2], delta[:2], A, Bt[:2], Ct[:2], h0)
    _, h_all = selective_scan(u[:3], delta[:3], A, Bt[:3], Ct[:3], h0)
    _, h_one = selective_scan(u[:1], delta[:1], A, Bt[:1], Ct[:1], h0)
    torch.testing.assert_close(h_two, h_one, rtol=0, atol=0)
    torch.testing.assert_close(h_all, h_one, rtol=0, atol=0)


def test_the_forward_keeps_one_state_per_chunk_not_per_step():
    """What the backward keeps: the inputs and T/chunk states, never (T, B, H, N)."""
    T, B, H, N = 256, 2, 8, 16
    xs = [t.float() for t in _inputs(T, B, H, N)]
    y, _ = _SelectiveScan.apply(*xs)
    saved = [t.numel() for t in y.grad_fn.saved_tensors]
    # u, delta, A, B_t, C_t, h0 and the 4 chunks' first states
    assert saved == [T * B * H, T * B * H, H * N, T * B * N, T * B * N, B * H * N,
                     T // 64 * B * H * N]
