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

from functools import partial

import torch
from torch import Tensor

from .. import compiled
from .._higher import cell_reference
from . import _csteps
from ._gemm import linear
from ._op import register, run
from ._steps import Steps, buffers, last_state, tanh_, time_chunks, zone_at
from .lstm import _grad_buf, _recur_grad, _sum_outer, zone_args

__all__ = ["rnn_scan"]


def _fake(ts, cfg):
    xp, zh = ts[0], ts[5]
    e = xp.new_empty
    T, B, H = xp.shape
    zoned = zh is not None or (cfg.floats and cfg.floats[0])
    return [e(T, B, H), e(B, H)], [e(T, B, H) if zoned else None]


def _forward(ts, cfg, relu: bool):
    xp, h0, W_hh, b_hh, m, zh = ts
    zh = cfg.zone(zh, 0)
    T, B, H = xp.shape
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, xp)  # zeros with lengths: padded rows stay 0
    A = new(T, B, H)  # h~
    # With zoneout h~ and h_t differ, and the backward needs h~; else A is the output.
    Y = A if zh is None else new(T, B, H)
    if compiled.usable("rnn", xp, h0, W_hh, b_hh, m, _csteps.masks(zh)):  # the whole loop
        compiled.ext().rnn_forward(xp, h0, W_hh, b_hh, m, _csteps.masks(zh), _csteps.rate(zh),
                                   relu, sizes or [], not cfg.need_grad, A, Y)
        return [Y, last_state(Y, h0, cfg.steps)], [None if A is Y else A]
    h = h0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        hp, a = h[:n], A[t, :n]
        pre = linear(hp if m is None else hp * m[:n], W_hh, b_hh, xp[t, :n])  # (n, H)
        if relu:
            torch.clamp(pre, min=0, out=a)
        else:
            tanh_(pre, out=a)
        if zh is not None:
            torch.lerp(a, hp, zone_at(zh, t, n), out=Y[t, :n])
        h = Y[t]
    h_n = last_state(Y, h0, cfg.steps)
    return [Y, h_n], [None if A is Y else A]


def _backward(ts, res, grads, cfg, need, relu: bool):
    xp, h0, W_hh, b_hh, m, zh = ts
    zh = cfg.zone(zh, 0)
    Y, _, A = res
    A = Y if A is None else A  # h~
    dY, dh_n = grads
    sizes = cfg.steps.sizes
    T, B, H = A.shape
    dY = torch.zeros_like(Y) if dY is None else dY.contiguous()
    new = buffers(cfg.steps, A)
    dA = new(T, B, H)
    W_hhT = W_hh.t().contiguous()  # so that linear(da, W_hhT) = da W_hh
    dh = _grad_buf(h0, dh_n)
    if compiled.usable("rnn", dY, h0, W_hh, A, m, _csteps.masks(zh)):  # the whole loop
        compiled.ext().rnn_backward(h0, W_hh, m, _csteps.masks(zh), _csteps.rate(zh), relu,
                                    sizes or [], A, dY, dA, dh)
        dW_hh = _sum_outer(dA, h0, Y, m) if need[2] else None
        db_hh = dA.sum((0, 1)) if need[3] else None
        return [dA, dh, dW_hh, db_hh, None, None]
    live = 0
    for t0, t1 in time_chunks(T, B * H):
        a = A[t0:t1]
        D = (a > 0).to(a.dtype) if relu else 1 - a * a  # act'(h~), (c, B, H)
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

    dW_hh = _sum_outer(dA, h0, Y, m) if need[2] else None
    db_hh = dA.sum((0, 1)) if need[3] else None
    return [dA, dh, dW_hh, db_hh, None, None]


for _relu in (False, True):
    register("rnn_relu" if _relu else "rnn_tanh",
             partial(_forward, relu=_relu), partial(_backward, relu=_relu), _fake, n_out=2)


def rnn_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """Run an :class:`~rnnkit.cells.RNNCell` over ``xp`` (T, B, H).

    Returns ``ys (T, B, H), (h_n,)``; arguments as :func:`~.lstm.lstm_scan`.
    """
    (h0,) = state
    zt, rates = zone_args(zones)
    ts = [xp, h0, p["weight_hh"], p.get("bias_hh"), rec_mask, *zt]
    kind = "rnn_relu" if cell.nonlinearity == "relu" else "rnn_tanh"
    ref = cell_reference(cell, ("weight_hh", "bias_hh"), 1, steps.sizes, rates)
    ys, h_n = run(kind, ts, steps, rates, ref)
    return ys, (h_n,)
