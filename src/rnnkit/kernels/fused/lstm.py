"""Fused LSTM scan: in-place gate math forward, hand-written backward through time.

Forward, per step (``a`` = the (B, 4H) gate buffer, ``xp`` = ``W_ih x + b_ih``
from one GEMM over all T, done by the cell before the scan)::

    a = xp_t + b_hh + (m * h_{t-1}) W_hh^T        one GEMM, the additions fused into it
    i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)    into the preallocated (T, B, 4H) buffer
    c~ = f * c_{t-1} + i * g;  h~ = o * tanh(c~)   (h~ = (o * tanh(c~)) W_hr^T with proj_size)
    c_t = lerp(c~, c_{t-1}, zc_t);  h_t = lerp(h~, h_{t-1}, zh_t)    (zoneout, if any)

``m`` is the recurrent-dropout mask (or 1) and ``zh, zc`` the zoneout weights
(0/1 keep masks in training, the rate in evaluation, or 0). Saved for the
backward: the gate activations, ``c_t``, ``tanh(c~_t)``, ``h_t`` (the output)
and, with a projection, ``o * tanh(c~_t)``.

Backward, per step from the last (``dh``, ``dc``: gradients of ``h_t``, ``c_t``)::

    dh~ = (1 - zh) dh                       dr = dh~ W_hr   (or dh~ without projection)
    dc~ = (1 - zc) dc + dr * o * (1 - tanh(c~)^2)
    da = [dc~ g i(1-i), dc~ c_{t-1} f(1-f), dc~ i (1-g^2), dr tanh(c~) o(1-o)]
    dc_{t-1} = zc dc + dc~ f;   dh_{t-1} = zh dh + m * (da W_hh) + dy_{t-1}

The factors that multiply ``dr`` and ``dc~`` are computed a few steps at a time
(:func:`~._steps.time_chunks`); the loop itself is one GEMM and five elementwise
ops per step.
After it, ``dW_hh = sum_t da_t^T (m * h_{t-1})`` and ``dW_hr = sum_t dh~_t^T r_t``
are one GEMM each over all T, ``db_hh = sum da`` and ``dxp = da`` as it is.

Shapes: ``T`` time, ``B`` batch, ``H`` hidden, ``O`` output (P or H).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import compiled
from .._higher import cell_reference
from . import _csteps
from ._gemm import linear, weight_grad
from ._op import register, run
from ._steps import Steps, buffers, last_state, lstm_gates_, tanh_, time_chunks, zone_at

__all__ = ["lstm_scan"]


def _forward(ts, cfg):
    xp, h0, c0, W_hh, b_hh, W_hr, m, zh, zc = ts
    zh, zc = cfg.zone(zh, 0), cfg.zone(zc, 1)
    T, B, _ = xp.shape
    H, O = c0.shape[1], h0.shape[1]
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, xp)  # zeros with lengths: padded rows stay 0
    A = new(T, B, 4 * H)  # gate activations i, f, g, o
    C, TC, Y = new(T, B, H), new(T, B, H), new(T, B, O)
    R = new(T, B, H) if W_hr is not None else None
    if R is None and compiled.usable("lstm", xp, h0, c0, W_hh, b_hh, m, _csteps.masks(zh),
                                     _csteps.masks(zc)):  # the whole loop compiled
        compiled.ext().lstm_forward(xp, h0, c0, W_hh, b_hh, m, _csteps.masks(zh),
                                    _csteps.masks(zc), _csteps.rate(zh), _csteps.rate(zc),
                                    sizes or [], not cfg.need_grad, A, C, TC, Y)
        h_n, c_n = last_state(Y, h0, cfg.steps), last_state(C, c0, cfg.steps)
        return [Y, h_n, c_n], [A, C, TC, R]
    if R is not None and compiled.usable("lstm", xp, h0, c0, W_hh, b_hh, W_hr, m,
                                         _csteps.masks(zh), _csteps.masks(zc)):  # with W_hr
        compiled.ext().lstmp_forward(xp, h0, c0, W_hh, b_hh, W_hr, m, _csteps.masks(zh),
                                     _csteps.masks(zc), _csteps.rate(zh), _csteps.rate(zc),
                                     sizes or [], not cfg.need_grad, A, C, TC, R, Y)
        h_n, c_n = last_state(Y, h0, cfg.steps), last_state(C, c0, cfg.steps)
        return [Y, h_n, c_n], [A, C, TC, R]
    if R is None and _csteps.usable(xp, h0, c0, W_hh, b_hh, m, _csteps.masks(zh),
                                    _csteps.masks(zc)):  # the compiled steps (_csteps.c)
        P = _csteps.LSTM(B=B, H=H, zh_rate=_csteps.rate(zh), zc_rate=_csteps.rate(zc),
                         **_csteps.ptrs(h0=h0, c0=c0, ZH=_csteps.masks(zh),
                                        ZC=_csteps.masks(zc), A=A, C=C, TC=TC, Y=Y))
        step, h = _csteps.lib().lstm_fwd, h0
        for t in range(T):
            n = B if sizes is None else sizes[t]
            pre = linear(h[:n] if m is None else h[:n] * m[:n], W_hh, b_hh, xp[t, :n])
            step(P, pre.data_ptr(), t, n)  # (n, 4H) pre-activations -> A[t], C[t], TC[t], Y[t]
            h = Y[t]
        h_n, c_n = last_state(Y, h0, cfg.steps), last_state(C, c0, cfg.steps)
        return [Y, h_n, c_n], [A, C, TC, R]
    h, c = h0, c0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        hp, cp, a = h[:n], c[:n], A[t, :n]
        pre = linear(hp if m is None else hp * m[:n], W_hh, b_hh, xp[t, :n])  # (n, 4H)
        i, f, g, o = a.view(n, 4, H).unbind(1)  # (n, 4H) -> 4 x (n, H)
        lstm_gates_(pre, a, H)
        ct, tc, y = C[t, :n], TC[t, :n], Y[t, :n]
        torch.mul(f, cp, out=ct)
        ct.addcmul_(i, g)
        tanh_(ct, out=tc)
        if zc is not None:
            ct.lerp_(cp, zone_at(zc, t, n))
        if R is None:
            torch.mul(o, tc, out=y)
        else:
            y.copy_(linear(torch.mul(o, tc, out=R[t, :n]), W_hr))
        if zh is not None:
            y.lerp_(hp, zone_at(zh, t, n))
        h, c = Y[t], C[t]
    h_n, c_n = last_state(Y, h0, cfg.steps), last_state(C, c0, cfg.steps)
    return [Y, h_n, c_n], [A, C, TC, R]


def _fake(ts, cfg):
    xp, h0, c0, W_hh, b_hh, W_hr = ts[:6]
    T, B, _ = xp.shape
    H, O = c0.shape[1], h0.shape[1]
    e = xp.new_empty
    return ([e(T, B, O), e(B, O), e(B, H)],
            [e(T, B, 4 * H), e(T, B, H), e(T, B, H), e(T, B, H) if W_hr is not None else None])


def _backward(ts, res, grads, cfg, need):
    xp, h0, c0, W_hh, b_hh, W_hr, m, zh, zc = ts
    zh, zc = cfg.zone(zh, 0), cfg.zone(zc, 1)
    Y, _, _, A, C, TC, R = res
    dY, dh_n, dc_n = grads
    sizes = cfg.steps.sizes
    T, B, H = C.shape
    O = h0.shape[1]
    dY = torch.zeros_like(Y) if dY is None else dY.contiguous()
    new = buffers(cfg.steps, A)  # zeros with lengths: padded rows stay 0
    f_all = A.view(T, B, 4, H)[:, :, 1]  # (T, B, 4H) -> (T, B, H) forget gates

    dA = new(T, B, 4 * H)  # gradient of the gate pre-activations = dxp
    dA4 = dA.view(T, B, 4, H)  # (T, B, 4H) -> (T, B, 4, H)
    dHt = new(T, B, O) if R is not None else None  # gradient of h~ (pre-zoneout)
    dh = _grad_buf(h0, dh_n)  # gradients of h_t, c_t
    dc = _grad_buf(c0, dc_n)  # (live rows)
    live = 0
    if R is None and compiled.usable("lstm", A, dY, h0, c0, W_hh, m, _csteps.masks(zh),
                                     _csteps.masks(zc)):  # the whole loop compiled
        compiled.ext().lstm_backward(h0, c0, W_hh, m, _csteps.masks(zh), _csteps.masks(zc),
                                     _csteps.rate(zh), _csteps.rate(zc), sizes or [], A, C, TC,
                                     dY, dA, dh, dc)
    elif R is not None and compiled.usable("lstm", A, dY, h0, c0, W_hh, W_hr, m,
                                           _csteps.masks(zh), _csteps.masks(zc)):  # with W_hr
        compiled.ext().lstmp_backward(h0, c0, W_hh, W_hr, m, _csteps.masks(zh),
                                      _csteps.masks(zc), _csteps.rate(zh), _csteps.rate(zc),
                                      sizes or [], A, C, TC, dY, dA, dHt, dh, dc)
    elif R is None and _csteps.usable(A, dY, c0, W_hh, m, _csteps.masks(zh), _csteps.masks(zc)):
        # the compiled steps (_csteps.c): one call per step, then the GEMM for d h_{t-1}
        keep_h, keep_c = torch.empty_like(h0), torch.empty_like(c0)  # held: P has their addresses
        P = _csteps.LSTM(B=B, H=H, zh_rate=_csteps.rate(zh), zc_rate=_csteps.rate(zc),
                         **_csteps.ptrs(h0=h0, c0=c0, ZH=_csteps.masks(zh),
                                        ZC=_csteps.masks(zc), A=A, C=C, TC=TC, Y=Y, dY=dY,
                                        dA=dA, dh=dh, dc=dc, keep_h=keep_h, keep_c=keep_c))
        step = _csteps.lib().lstm_bwd
        W_hhT = W_hh.t().contiguous()  # so that linear(da, W_hhT) = da W_hh
        for t in reversed(range(T)):
            n = B if sizes is None else sizes[t]
            if n > live:
                dh[live:n].add_(dY[t, live:n])
                live = n
            step(P, t, n)  # dA[t], dc; dh <- zoneout's kept part + dY[t-1]
            _add_recur(dh[:n], linear(dA[t, :n], W_hhT), m)
    else:
        W_hhT = W_hh.t().contiguous()  # so that linear(da, W_hhT) = da W_hh
        for t0, t1 in time_chunks(T, B * H):
            D_o, D_c, K = _factors(A, C, TC, c0, t0, t1)
            for t in reversed(range(t0, t1)):
                n, j = (B if sizes is None else sizes[t]), t - t0
                dhv, dcv = dh[:n], dc[:n]
                if n > live:  # rows whose last step is t: their output gradient joins here
                    dhv[live:].add_(dY[t, live:n])
                    live = n
                dht, keep_h = _split_zone(dhv, zh, t, n)
                if R is None:
                    dr = dht
                else:
                    dHt[t, :n] = dht
                    dr = linear(dht, W_hr.t())
                torch.mul(dr, D_o[j, :n], out=dA4[t, :n, 3])
                dct, keep_c = _split_zone(dcv, zc, t, n)
                dct.addcmul_(dr, D_c[j, :n])  # dc~ (dct is dcv itself without zoneout)
                torch.mul(dct.unsqueeze(1), K[j, :n], out=dA4[t, :n, :3])
                if keep_c is None:
                    dcv.mul_(f_all[t, :n])
                else:
                    torch.addcmul(keep_c, dct, f_all[t, :n], out=dcv)
                dy = dY[t - 1, :n] if t > 0 else None
                _recur_grad(dhv, dA[t, :n], W_hhT, m, keep_h, dy)

    dW_hh = _sum_outer(dA, h0, Y, m) if need[3] else None
    db_hh = dA.sum((0, 1)) if need[4] else None
    dW_hr = None
    if need[5]:
        dW_hr = weight_grad(dHt.reshape(T * B, O), R.reshape(T * B, H))  # -> (T*B, *)
    return [dA, dh, dc, dW_hh, db_hh, dW_hr, None, None, None]


register("lstm", _forward, _backward, _fake, n_out=3)


def _factors(A: Tensor, C: Tensor, TC: Tensor, c0: Tensor, t0: int, t1: int):
    """For steps t0..t1-1: the factors that turn ``dr`` and ``dc~`` into gate gradients.

    ``D_o = tanh(c~) o(1-o)``, ``D_c = o (1 - tanh(c~)^2)`` (c, B, H) and
    ``K = [g i(1-i), c_{t-1} f(1-f), i (1-g^2)]`` (c, B, 3, H), c = t1 - t0; computed a
    few steps at a time so that they stay in cache.
    """
    i, f, g, o = A[t0:t1].unflatten(-1, (4, -1)).unbind(2)  # (c, B, 4H) -> 4 x (c, B, H)
    tc = TC[t0:t1]
    c_prev = C[t0 - 1:t1 - 1] if t0 > 0 else torch.cat((c0.unsqueeze(0), C[: t1 - 1]))
    D_o = tc * _d_sig(o)
    D_c = o - o * tc * tc
    K = torch.stack((g * _d_sig(i), c_prev * _d_sig(f), i - i * g * g), dim=2)
    return D_o, D_c, K


def _d_sig(s: Tensor) -> Tensor:
    """sigmoid' from the sigmoid's value: s (1 - s)."""
    return s - s * s


def _split_zone(d: Tensor, z, t: int, n: int):
    """Split the gradient ``d`` of a zoned state into (fresh part, kept part); no zoneout:
    (d, None)."""
    if z is None:
        return d, None
    keep = d * zone_at(z, t, n)
    return d - keep, keep


def _grad_buf(s0: Tensor, d: Tensor | None) -> Tensor:
    """A fresh row-major buffer for a state's gradient, from ``d`` (the incoming gradient of
    the last state, which autograd may hand over with any strides) or zeros.

    The compiled steps index it by rows, and the torch steps write it in place.
    """
    if d is None:
        return torch.zeros_like(s0, memory_format=torch.contiguous_format)
    return d.clone(memory_format=torch.contiguous_format)


def _add_recur(dh: Tensor, g: Tensor, m: Tensor | None) -> None:
    """``dh += m * g``: the recurrent part ``g = da W_hh`` of ``h_{t-1}``'s gradient (live rows)."""
    if m is None:
        dh.add_(g)
    else:
        dh.addcmul_(g, m[: dh.shape[0]])


def _recur_grad(dh: Tensor, da: Tensor, W_hhT: Tensor, m: Tensor | None,
                keep: Tensor | None, dy: Tensor | None) -> None:
    """``dh <- m * (da W_hh) + keep + dy``: the gradient of ``h_{t-1}``, written into ``dh``."""
    n = dh.shape[0]
    extra = keep if dy is None else (dy if keep is None else keep.add_(dy))
    if m is None:
        dh.copy_(linear(da, W_hhT, None, extra))
    elif extra is None:
        torch.mul(linear(da, W_hhT), m[:n], out=dh)
    else:
        torch.addcmul(extra, linear(da, W_hhT), m[:n], out=dh)


def _sum_outer(dA: Tensor, h0: Tensor, Y: Tensor, m: Tensor | None, t0: int = 0) -> Tensor:
    """``sum_t dA_t^T (m * h_{t-1})`` with ``h_{-1} = h0``: (G, O), one GEMM.

    ``dA`` (k, B, G) holds steps ``t0 .. t0+k-1`` (default: all T from 0).
    """
    T, B, G = dA.shape
    O = h0.shape[1]
    if t0 > 0:
        Hp = Y[t0 - 1:t0 - 1 + T]  # (k, B, O) h_{t-1}, a view
        Hp = Hp if m is None else Hp * m
    else:
        Hp = torch.cat((h0.unsqueeze(0), Y[:T - 1]))  # (k, B, O) h_{t-1}
        if m is not None:
            Hp.mul_(m)
    return weight_grad(dA.reshape(T * B, G), Hp.reshape(T * B, O))  # (T, B, *) -> (T*B, *)


def zone_args(zones) -> tuple[list, list[float]]:
    """Zoneout settings as op arguments: (T, B, S) masks as tensors, rates as floats."""
    tensors = [z if isinstance(z, Tensor) else None for z in zones]
    rates = [float(z) if isinstance(z, float) else 0.0 for z in zones]
    return tensors, rates


def lstm_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None, None)):
    """Run an :class:`~rnnkit.cells.LSTMCell` over ``xp`` (T, B, 4H) from ``state = (h0, c0)``.

    ``steps`` gives the live rows of a length-sorted batch; ``rec_mask`` (B, O)
    and ``zones`` are the regulariser inputs (see :mod:`._steps`).
    Returns ``ys (T, B, O), (h_n, c_n)``.
    """
    h0, c0 = state
    zt, rates = zone_args(zones)
    ts = [xp, h0, c0, p["weight_hh"], p.get("bias_hh"), p.get("weight_hr"), rec_mask, *zt]
    ref = cell_reference(cell, ("weight_hh", "bias_hh", "weight_hr"), 2, steps.sizes, rates)
    ys, h_n, c_n = run("lstm", ts, steps, rates, ref)
    return ys, (h_n, c_n)
