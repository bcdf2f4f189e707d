"""Mamba's selective scan without the (T, B, H, N) state: chunks, recomputed in the backward.

S6 (:mod:`rnnkit.cells.ssm`) runs, per channel ``d`` and state unit ``n``,

    h_t[d, n] = exp(delta_t[d] A[d, n]) h_{t-1}[d, n] + delta_t[d] B_t[n] u_t[d]
    y_t[d]    = sum_n C_t[n] h_t[d, n]

Written as a linear recurrence (:func:`rnnkit.cells.scan.linear_recurrence`) it materialises
the coefficients, the states and their gradients, each (T, B, H, N): N = 16 times the
layer's output, several times over. Mamba's kernel keeps the state in fast memory and
recomputes it in the backward. :class:`_SelectiveScan` does the same in torch ops, a chunk at
a time: the forward keeps only each chunk's first state; the backward recomputes one chunk's
states from it, runs the adjoint recurrence back through the chunk
(``g_t = a_{t+1} g_{t+1} + C_t dy_t``) and contracts it into the gradients at once,

    d(delta_t A)[d, n] = g_t h_{t-1} a_t,      dB_t[n]  = sum_d g_t[d, n] delta_t[d] u_t[d],
    dC_t[n] = sum_d dy_t[d] h_t[d, n],        du_t[d] = delta_t[d] sum_n g_t[d, n] B_t[n],

so the largest live tensors are a few of (chunk, B, H, N). Each chunk's recurrence runs as
:func:`rnnkit.cells.scan.linear_scan` chooses (a loop on the CPU, a doubling scan on a GPU).

The hand-written backward is not itself differentiable. As the fused kernels do
(:mod:`rnnkit.kernels._higher`), a ``create_graph=True`` backward recomputes the outputs with
:func:`composed_scan` (differentiable ops) and differentiates that; under ``torch.func``
transforms and forward-mode AD :func:`selective_scan` runs :func:`composed_scan` itself.

Shapes: ``T`` time, ``B`` batch, ``H`` channels, ``N`` state size per channel.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import forward_ad_active, functorch_active
from .scan import adjoint_scan, linear_recurrence, linear_scan

__all__ = ["selective_scan", "composed_scan"]

#: The most elements of one (chunk, B, H, N) tensor: a chunk is 64 steps, fewer when a step
#: holds more than 2**16 (16 MiB of float32 per tensor).
CHUNK_ELEMENTS = 1 << 22


def _chunk(B: int, H: int, N: int) -> int:
    return max(1, min(64, CHUNK_ELEMENTS // (B * H * N)))


def _coefficients(u, delta, A, Bt):
    """``a = exp(delta A)``, ``b = delta u B``: (k, B, H, N) each, from (k, B, H), (k, B, H),
    (H, N), (k, B, N)."""
    a = torch.exp(delta.unsqueeze(-1) * A)
    b = (delta * u).unsqueeze(-1) * Bt.unsqueeze(2)  # (k, B, H, 1) * (k, B, 1, N)
    return a, b


def _readout(h: Tensor, Ct: Tensor) -> Tensor:
    """``y[d] = sum_n C[n] h[d, n]``: (k, B, H, N), (k, B, N) -> (k, B, H)."""
    return (h @ Ct.unsqueeze(-1)).squeeze(-1)


def composed_scan(u, delta, A, Bt, Ct, h0):
    """The selective scan in differentiable ops through :func:`linear_recurrence`: every
    order of derivative, forward mode and ``torch.func``; keeps (T, B, H, N) tensors."""
    T, B, H = u.shape
    N = A.shape[-1]
    a, b = _coefficients(u, delta, A, Bt)
    h = linear_recurrence(a.view(T, B, H * N), b.view(T, B, H * N), h0.reshape(B, H * N))
    h = h.view(T, B, H, N)
    return _readout(h, Ct), h[-1]


def _states(u, delta, A, Bt, h):
    """One chunk's coefficients ``a``, ``b`` and states ``h_t`` (k, B, H, N) from its first
    state."""
    a, b = _coefficients(u, delta, A, Bt)
    k, B, H, N = a.shape
    hs = linear_scan(a.view(k, B, H * N), b.view(k, B, H * N), h.reshape(B, H * N))
    return a, b, hs.view(k, B, H, N)


class _SelectiveScan(torch.autograd.Function):
    """``(y, h_T) = selective scan(u, delta, A, B_t, C_t, h0)``, keeping one state per chunk."""

    @staticmethod
    def forward(ctx, u, delta, A, Bt, Ct, h0):
        T, B, H = u.shape
        K = _chunk(B, H, A.shape[-1])
        ys, starts, h = [], [], h0
        for s in range(0, T, K):
            starts.append(h)
            *_, hs = _states(u[s:s + K], delta[s:s + K], A, Bt[s:s + K], h)
            ys.append(_readout(hs, Ct[s:s + K]))
            h = hs[-1]
        ctx.K = K
        ctx.save_for_backward(u, delta, A, Bt, Ct, h0, torch.stack(starts))
        return torch.cat(ys), h

    @staticmethod
    def backward(ctx, dy, dh_last):
        u, delta, A, Bt, Ct, h0, starts = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiate the composed scan
            with torch.enable_grad():
                outs = composed_scan(u, delta, A, Bt, Ct, h0)
            pairs = [(o, g) for o, g in zip(outs, (dy, dh_last)) if g is not None]
            wrt = [t for t, need in zip((u, delta, A, Bt, Ct, h0), ctx.needs_input_grad) if need]
            got = iter(torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs],
                                           create_graph=True, materialize_grads=True))
            return tuple(next(got) if need else None for need in ctx.needs_input_grad)
        K = ctx.K
        if dy is None:
            dy = torch.zeros_like(u)
        parts = []  # per chunk, last first: du, ddelta, dB, dC
        dA = torch.zeros_like(A)
        carry = torch.zeros_like(h0) if dh_last is None else dh_last  # dL/dh at a chunk's end
        for i in reversed(range(len(starts))):
            s = i * K
            sl = slice(s, s + K)
            u_, d_, B_, C_, dy_ = u[sl], delta[sl], Bt[sl], Ct[sl], dy[sl]
            a, _, hs = _states(u_, d_, A, B_, starts[i])
            k, B, H, N = a.shape
            drive = dy_.unsqueeze(-1) * C_.unsqueeze(2)  # dL/dh_t from y_t: (k, B, H, N)
            g = adjoint_scan(a.view(k, B, H * N), drive.view(k, B, H * N),
                             carry.reshape(B, H * N)).view(k, B, H, N)
            carry = a[0] * g[0]
            h_prev = torch.cat([starts[i].unsqueeze(0), hs[:-1]])  # (not hs - b: it cancels)
            dlog = g * a * h_prev  # dL/d(delta_t A) = g_t a_t h_{t-1}: (k, B, H, N)
            gB = (g @ B_.unsqueeze(-1)).squeeze(-1)  # sum_n g B: (k, B, H)
            parts.append((d_ * gB, (dlog * A).sum(-1) + u_ * gB,
                          ((d_ * u_).unsqueeze(2) @ g).squeeze(2),  # sum_d delta u g: (k, B, N)
                          (dy_.unsqueeze(2) @ hs).squeeze(2)))  # sum_d dy h: (k, B, N)
            dA = dA + (dlog * d_.unsqueeze(-1)).sum((0, 1))
        du, ddelta, dB, dC = (torch.cat(p[::-1]) for p in zip(*parts))
        return du, ddelta, dA, dB, dC, carry


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, Bt: Tensor, Ct: Tensor,
                   h0: Tensor) -> tuple[Tensor, Tensor]:
    """All T steps of the selective scan: ``y`` (T, B, H) and the last state (B, H, N).

    u, delta: (T, B, H); A: (H, N) (the decay ``-exp(A_log)``); Bt, Ct: (T, B, N); h0:
    (B, H, N). A step with ``delta = 0`` and ``u = 0`` keeps the state (how S6 skips padding).
    """
    if functorch_active() or forward_ad_active():
        return composed_scan(u, delta, A, Bt, Ct, h0)
    return _SelectiveScan.apply(u, delta, A, Bt, Ct, h0)
