"""Fused Elman RNN scan (tanh or relu), hand-written backward through time.

Forward, per step, with ``xp = W_ih x + b_ih`` precomputed for all T::

    h~ = act(xp_t + b_hh + (m * h_{t-1}) W_hh^T)      one GEMM (additions fused) and one activation
    h_t = lerp(h~, h_{t-1}, zh_t)                       (zoneout, if any)

Backward, per step (``dh`` the gradient of ``h_t``)::

    da = (1 - zh) dh * act'(h~)          act' = 1 - h~^2 (tanh) or [h~ > 0] (relu)
    dh_{t-1} = zh dh + m * (da W_hh) + dy_{t-1}

then ``dW_hh = sum_t da_t^T (m * h_{t-1})`` in one GEMM, ``db_hh = sum da``, ``dxp = da``.

Shapes: ``T`` time, ``B`` batch, ``H`` hidden.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._gemm import linear
from ._steps import Steps, last_state, time_chunks, zone_at
from .lstm import _Config, _recur_grad, _sum_outer

__all__ = ["rnn_scan"]


class _RNNScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, W_hh, b_hh, cfg):
        T, B, H = xp.shape
        sizes, m, zh = cfg.steps.sizes, cfg.rec_mask, cfg.zh
        new = torch.zeros if sizes is not None else torch.empty
        kw = dict(dtype=xp.dtype, device=xp.device)
        A = new(T, B, H, **kw)  # h~
        # With zoneout h~ and h_t differ, and the backward needs h~; else A is the output.
        Y = A if zh is None else new(T, B, H, **kw)
        h = h0
        for t in range(T):
            n = B if sizes is None else sizes[t]
            hp, a = h[:n], A[t, :n]
            pre = linear(hp if m is None else hp * m[:n], W_hh, b_hh, xp[t, :n])  # (n, H)
            if cfg.relu:
                torch.clamp(pre, min=0, out=a)
            else:
                torch.tanh(pre, out=a)
            if zh is not None:
                torch.lerp(a, hp, zone_at(zh, t, n), out=Y[t, :n])
            h = Y[t]
        h_n = last_state(Y, h0, cfg.steps)
        if cfg.need_grad:
            ctx.save_for_backward(h0, W_hh, Y)
            ctx.A, ctx.cfg, ctx.has_bias = (None if A is Y else A), cfg, b_hh is not None
        return Y, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dY, dh_n):
        h0, W_hh, Y = ctx.saved_tensors
        cfg = ctx.cfg
        A = Y if ctx.A is None else ctx.A  # h~
        sizes, m, zh = cfg.steps.sizes, cfg.rec_mask, cfg.zh
        T, B, H = A.shape
        dY = dY.contiguous()
        new = torch.zeros if sizes is not None else torch.empty
        dA = new(T, B, H, dtype=A.dtype, device=A.device)
        W_hhT = W_hh.t().contiguous()  # so that linear(da, W_hhT) = da W_hh
        dh = dh_n.clone()
        live = 0
        for t0, t1 in time_chunks(T, B * H):
            a = A[t0:t1]
            D = (a > 0).to(a.dtype) if cfg.relu else 1 - a * a  # act'(h~), (c, B, H)
            if zh is not None:
                D.mul_(1 - (zh if not isinstance(zh, Tensor) else zh[t0:t1]))
            for t in reversed(range(t0, t1)):
                n = B if sizes is None else sizes[t]
                dhv = dh[:n]
                if n > live:
                    dhv[live:].add_(dY[t, live:n])
                    live = n
                da = torch.mul(dhv, D[t - t0, :n], out=dA[t, :n])
                keep_h = None if zh is None else dhv * zone_at(zh, t, n)
                _recur_grad(dhv, da, W_hhT, m, keep_h, dY[t - 1, :n] if t > 0 else None)

        need = ctx.needs_input_grad
        dW_hh = _sum_outer(dA, h0, Y, m) if need[2] else None
        db_hh = dA.sum((0, 1)) if need[3] and ctx.has_bias else None
        return dA, dh, dW_hh, db_hh, None


def rnn_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """Run an :class:`~rnnkit.cells.RNNCell` over ``xp`` (T, B, H).

    Returns ``ys (T, B, H), (h_n,)``; arguments as :func:`~.lstm.lstm_scan`.
    """
    (h0,) = state
    W_hh, b_hh = p["weight_hh"], p.get("bias_hh")
    tensors = (xp, h0, W_hh, b_hh)
    need = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)
    cfg = _Config(steps, rec_mask, zones[0], None, need)
    cfg.relu = cell.nonlinearity == "relu"
    ys, h_n = _RNNScan.apply(*tensors, cfg)
    return ys, (h_n,)
