"""Fused LayerNorm-LSTM and LayerNorm-GRU scans (cells in :mod:`rnnkit.cells.layernorm`).

The input half ``xp = LN(W_ih x; gamma_ih, b_ih)`` is one GEMM and one layer norm
over all T, before the scan; for the LayerNorm-LSTM the scan takes ``u = W_ih x`` and
applies that layer norm itself: the compiled loop normalises each row where it uses it
(aten's layer norm over all T, forward and backward, was 8% of a B=32, T=100, H=256
training step at 1 thread; docs/kernels.md, session 10), the Python loops with aten
before the loop. Per step, LayerNorm-LSTM::

    v = (m * h_{t-1}) W_hh^T                   one GEMM                           (B, 4H)
    v^, mu, rstd = layer_norm(v)               one op, no affine
    a = xp_t + b_hh + gamma_hh * v^            i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g)
    c~ = f * c_{t-1} + i * g;   h~ = o * tanh(LN(c~; gamma_c, beta_c))
    c_t = lerp(c~, c_{t-1}, zc_t);   h_t = lerp(h~, h_{t-1}, zh_t)

and LayerNorm-GRU (torch's reset-after form) with ``gh = b_hh + gamma_hh * LN(v)``
in place of ``W_hh h + b_hh``. Saved for the backward: the gate activations,
``v``, ``mu``, ``rstd`` (and for the LSTM ``c~`` with its own ``mu``, ``rstd``).

The backward is the fused LSTM's/GRU's with one more op per normalisation:
aten's ``native_layer_norm_backward`` turns ``d v^`` into ``d v`` in one call
(input gradient only); the gains' gradients ``sum_t da * v^`` are one pass over
all T at the end, like ``dW_hh = sum_t dv_t^T (m * h_{t-1})`` (one GEMM).

Shapes: ``T`` time, ``B`` batch, ``H`` hidden.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import compiled
from .._higher import cell_reference
from . import _csteps
from ._gemm import linear
from ._op import register, run
from ._steps import Steps, buffers, last_state, lstm_gates_, tanh_, time_chunks, zone_at
from .gru import _bptt_csteps
from .gru import bptt as gru_bptt
from .lstm import _add_recur, _factors, _grad_buf, _recur_grad, _split_zone, _sum_outer, zone_args

__all__ = ["ln_lstm_scan", "ln_gru_scan"]

_ln_backward = torch.ops.aten.native_layer_norm_backward.default

#: Numbers (float32: 4 bytes each) in the backward's per-block buffers of the LayerNorm-LSTM:
#: 16 MB, below the 32 MB up to which :func:`~rnnkit.runtime.tune_malloc` keeps freed
#: memory in the heap. At B=32, H=256 a block is 128 steps (the issue's T=100: one block).
WEIGHT_BLOCK = 2 ** 22


def _ln_grad(dy: Tensor, x: Tensor, mu: Tensor, rstd: Tensor, gain: Tensor | None) -> Tensor:
    """Input gradient of ``layer_norm(x) * gain`` over the last dim, from saved ``mu, rstd``."""
    return _ln_backward(dy, x, [x.shape[-1]], mu, rstd, gain, None, [True, False, False])[0]


def _xhat_sum(dA: Tensor, V: Tensor, MU: Tensor, RS: Tensor) -> Tensor:
    """``sum_{t,b} dA * (V - MU) * RS``: a gain's gradient, (G,).

    A few steps at a time: over all T its three temporaries are fresh (T, B, G)
    tensors, which cost a quarter of a LayerNorm-LSTM's backward at T=100, B=32, H=256.
    """
    T, B, G = dA.shape
    out = dA.new_zeros(G)
    for t0, t1 in time_chunks(T, B * G):
        xh = torch.sub(V[t0:t1], MU[t0:t1]).mul_(RS[t0:t1]).mul_(dA[t0:t1])
        out += xh.sum((0, 1))
    return out


def _or_zeros(b: Tensor | None, n: int) -> Tensor:
    """An optional float32 bias, or zeros of its size (the library takes no NULL bias)."""
    return b if b is not None else torch.zeros(n, dtype=torch.float32)


# ------------------------------------------------------------------ LayerNorm-LSTM
def _lstm_forward(ts, cfg):
    u, h0, c0, W_hh, b_hh, g_hh, g_c, b_c, m, zh, zc, g_ih, b_ih = ts
    zh, zc, eps = cfg.zone(zh, 0), cfg.zone(zc, 1), cfg.floats[2]
    T, B, G = u.shape
    H = G // 4
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, u)  # zeros with lengths: padded rows stay 0
    # Without gradients the activations are scratch, one row reused by every step: fresh
    # (T, B, 4H) buffers would be filled page by page (first-touch page faults made a
    # B=32, T=100, H=256 inference 40% slower) and nobody reads them.
    S = T if cfg.need_grad else 1
    A, V = new(S, B, G), new(S, B, G)  # gate activations; W_hh h
    MU, RS, MUC, RSC = (new(S, B, 1) for _ in range(4))
    CT, TC = new(S, B, H), new(S, B, H)
    C, Y = new(T, B, H), new(T, B, H)
    # c_t differs from c~ only with zoneout; without gradients C keeps every c_t (the
    # lengths' last states), CT one row
    C = CT if zc is None and cfg.need_grad else C
    if compiled.usable("ln_lstm", u, h0, c0, W_hh, b_hh, g_hh, g_c, b_c, m, g_ih, b_ih,
                       _csteps.masks(zh), _csteps.masks(zc)):  # the whole loop compiled
        MUX, RSX = new(S, B, 1), new(S, B, 1)  # the input layer norm's statistics
        b = (b_ih if b_ih is not None else u.new_zeros(G)) if b_hh is None else (
            b_hh if b_ih is None else b_ih + b_hh)
        compiled.ext().ln_lstm_forward(
            u, h0, c0, W_hh, g_ih, b, g_hh, g_c, b_c if b_c is not None else u.new_zeros(H), m,
            *_zone_args(zh, zc), eps, sizes or [], cfg.need_grad, V, A, MU, RS, MUX, RSX, CT,
            MUC, RSC, TC, C, Y)
        h_n, c_n = last_state(Y, h0, cfg.steps), last_state(C, c0, cfg.steps)
        return [Y, h_n, c_n], [A, V, MU, RS, CT, MUC, RSC, TC, None if C is CT else C, MUX,
                               RSX]
    xp, MUX, RSX = torch.native_layer_norm(u, [G], g_ih, b_ih, eps)  # the input layer norm
    if _csteps.usable(xp, h0, c0, W_hh, b_hh, g_hh, g_c, b_c, m, _csteps.masks(zh),
                      _csteps.masks(zc)):  # the compiled steps (_csteps.c)
        b_hh, b_c = _or_zeros(b_hh, G), _or_zeros(b_c, H)  # held: P keeps their addresses
        P = _csteps.LNLSTM(B=B, H=H, eps=eps, zh_rate=_csteps.rate(zh),
                           zc_rate=_csteps.rate(zc),
                           **_csteps.ptrs(XP=xp, h0=h0, c0=c0, g_hh=g_hh, b_hh=b_hh, g_c=g_c,
                                          b_c=b_c, ZH=_csteps.masks(zh), ZC=_csteps.masks(zc),
                                          V=V, A=A, MU=MU, RS=RS, CT=CT, MUC=MUC, RSC=RSC,
                                          TC=TC, C=C, Y=Y))
        step, h = _csteps.lib().ln_lstm_fwd, h0
        for t in range(T):
            n = B if sizes is None else sizes[t]
            v = linear(h[:n] if m is None else h[:n] * m[:n], W_hh)  # (n, 4H), held for the call
            step(P, v.data_ptr(), t, t if cfg.need_grad else 0, n)  # -> V, A, ..., C[t], Y[t]
            h = Y[t]
        h_n, c_n = last_state(Y, h0, cfg.steps), last_state(C, c0, cfg.steps)
        return [Y, h_n, c_n], [A, V, MU, RS, CT, MUC, RSC, TC, None if C is CT else C, MUX,
                               RSX]
    h, c = h0, c0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        s = t if cfg.need_grad else 0
        hp, cp, a = h[:n], c[:n], A[s, :n]
        v = V[s, :n]
        v.copy_(linear(hp if m is None else hp * m[:n], W_hh))
        # gamma_hh LN(v) + b_hh in one op (per step: xp + b_hh over all T would be a
        # whole-sequence temporary)
        pre, MU[s, :n], RS[s, :n] = torch.native_layer_norm(v, [G], g_hh, b_hh, eps)
        pre.add_(xp[t, :n])  # (n, 4H)
        i, f, g, o = a.view(n, 4, H).unbind(1)  # (n, 4H) -> 4 x (n, H)
        lstm_gates_(pre, a, H)
        ct = CT[s, :n]
        torch.mul(f, cp, out=ct)
        ct.addcmul_(i, g)
        lc, MUC[s, :n], RSC[s, :n] = torch.native_layer_norm(ct, [H], g_c, b_c, eps)
        tc = tanh_(lc, out=TC[s, :n])
        if zc is not None:
            torch.lerp(ct, cp, zone_at(zc, t, n), out=C[t, :n])
        elif C is not CT:
            C[t, :n] = ct
        y = torch.mul(o, tc, out=Y[t, :n])
        if zh is not None:
            y.lerp_(hp, zone_at(zh, t, n))
        h, c = Y[t], C[t]
    h_n, c_n = last_state(Y, h0, cfg.steps), last_state(C, c0, cfg.steps)
    return [Y, h_n, c_n], [A, V, MU, RS, CT, MUC, RSC, TC, None if C is CT else C, MUX, RSX]


def _lstm_fake(ts, cfg):
    xp, zc = ts[0], ts[10]
    T, B, G = xp.shape
    H = G // 4
    e = xp.new_empty
    zoned = zc is not None or bool(cfg.floats[1])
    return ([e(T, B, H), e(B, H), e(B, H)],
            [e(T, B, G), e(T, B, G), e(T, B, 1), e(T, B, 1), e(T, B, H), e(T, B, 1),
             e(T, B, 1), e(T, B, H), e(T, B, H) if zoned else None, e(T, B, 1), e(T, B, 1)])


def _lstm_backward(ts, res, grads, cfg, need):
    """Gradients for ``ts = [u, ..., g_ih, b_ih]``: the compiled loop's, or the Python loops'
    for ``xp = LN(u)`` (:func:`_lstm_backward_xp`) taken through the input layer norm."""
    u, h0, c0, W_hh, g_hh, g_c, m, zh, zc, g_ih = (ts[i] for i in (0, 1, 2, 3, 5, 6, 8, 9, 10,
                                                                   11))
    zh, zc = cfg.zone(zh, 0), cfg.zone(zc, 1)
    A, dY = res[3], grads[0]
    dY = torch.zeros_like(res[0]) if dY is None else dY.contiguous()
    if compiled.usable("ln_lstm", A, dY, u, h0, c0, W_hh, g_hh, g_c, g_ih, m,
                       _csteps.masks(zh), _csteps.masks(zc)):
        return _lstm_backward_compiled(ts, res, dY, grads[1], grads[2], cfg, need)
    MUX, RSX = res[-2:]
    out = _lstm_backward_xp(ts[:11], res[:-2], [dY, *grads[1:]], cfg, need[:11])
    dA = out[0]  # d xp
    du = _ln_grad(dA, u, MUX, RSX, g_ih) if need[0] else None
    dg_ih = _xhat_sum(dA, u, MUX, RSX) if need[11] else None
    db_ih = dA.sum((0, 1)) if need[12] else None
    return [du, *out[1:], dg_ih, db_ih]


def _lstm_backward_xp(ts, res, grads, cfg, need):
    """The Python loops' gradients for ``ts = [xp, ...]`` (the gates' input after the input
    layer norm; ``dxp`` always)."""
    xp, h0, c0, W_hh, b_hh, g_hh, g_c, b_c, m, zh, zc = ts
    zh, zc = cfg.zone(zh, 0), cfg.zone(zc, 1)
    Y, _, _, A, V, MU, RS, CT, MUC, RSC, TC, C = res
    C = CT if C is None else C
    dY, dh_n, dc_n = grads
    sizes = cfg.steps.sizes
    T, B, H = CT.shape
    if _csteps.usable(A, dY, c0, W_hh, g_hh, g_c, m, _csteps.masks(zh), _csteps.masks(zc)):
        return _lstm_backward_csteps(ts, res, dY, dh_n, dc_n, cfg, need)
    new = buffers(cfg.steps, A)  # zeros with lengths: padded rows stay 0
    f_all = A.view(T, B, 4, H)[:, :, 1]  # (T, B, 4H) -> (T, B, H) forget gates

    dA = new(T, B, 4 * H)  # d pre-activations = dxp
    dA4 = dA.view(T, B, 4, H)  # (T, B, 4H) -> (T, B, 4, H)
    # dv and the gradient of LN(c~) only feed sums over time (dW_hh, the c-norm's gain
    # and bias): kept for a block of steps at a time (<= WEIGHT_BLOCK numbers), summed,
    # and the buffers reused. Whole (T, B, 4H) buffers would be fresh memory on every
    # backward (1 GB each at B=128, T=1000, H=512), filled page by page.
    span = max(1, min(T, WEIGHT_BLOCK // (B * 4 * H)))
    dV, dLC = new(span, B, 4 * H), new(span, B, H)
    dW_hh = torch.zeros_like(W_hh) if need[3] else None
    dg_c = torch.zeros_like(g_c) if need[6] else None
    db_c = torch.zeros_like(b_c) if need[7] else None
    W_hhT = W_hh.t().contiguous()  # so that linear(dv, W_hhT) = dv W_hh

    dh = _grad_buf(h0, dh_n)
    dc = _grad_buf(c0, dc_n)
    live = 0
    for b0, b1 in time_chunks(T, B * 4 * H, WEIGHT_BLOCK):
        # rows past a step's n stay 0 in the reused dV, dLC: n only grows going back
        for t0, t1 in time_chunks(b1 - b0, B * H):
            t0, t1 = t0 + b0, t1 + b0
            D_o, D_c, K = _factors(A, C, TC, c0, t0, t1)  # K reads c_{t-1}: the zoned C
            for t in reversed(range(t0, t1)):
                n, j, k = (B if sizes is None else sizes[t]), t - t0, t - b0
                dhv, dcv = dh[:n], dc[:n]
                if n > live:
                    dhv[live:].add_(dY[t, live:n])
                    live = n
                dht, keep_h = _split_zone(dhv, zh, t, n)
                torch.mul(dht, D_o[j, :n], out=dA4[t, :n, 3])
                dlc = torch.mul(dht, D_c[j, :n], out=dLC[k, :n])
                dct, keep_c = _split_zone(dcv, zc, t, n)
                dct.add_(_ln_grad(dlc, CT[t, :n], MUC[t, :n], RSC[t, :n], g_c))  # dc~
                torch.mul(dct.unsqueeze(1), K[j, :n], out=dA4[t, :n, :3])
                if keep_c is None:
                    dcv.mul_(f_all[t, :n])
                else:
                    torch.addcmul(keep_c, dct, f_all[t, :n], out=dcv)
                dv = dV[k, :n]
                dv.copy_(_ln_grad(dA[t, :n], V[t, :n], MU[t, :n], RS[t, :n], g_hh))
                _recur_grad(dhv, dv, W_hhT, m, keep_h, dY[t - 1, :n] if t > 0 else None)
        w = b1 - b0
        if dW_hh is not None:
            dW_hh += _sum_outer(dV[:w], h0, Y, m, b0)
        if dg_c is not None:
            dg_c += _xhat_sum(dLC[:w], CT[b0:b1], MUC[b0:b1], RSC[b0:b1])
        if db_c is not None:
            db_c += dLC[:w].sum((0, 1))

    db_hh = dA.sum((0, 1)) if need[4] else None
    dg_hh = _xhat_sum(dA, V, MU, RS) if need[5] else None
    return [dA, dh, dc, dW_hh, db_hh, dg_hh, dg_c, db_c, None, None, None]


def _lstm_backward_csteps(ts, res, dY, dh_n, dc_n, cfg, need):
    """:func:`_lstm_backward` with each step's elementwise work in one library call.

    The library also sums the gains' and biases' gradients step by step, so only
    ``dW_hh`` is left for after the loop (one GEMM per block of steps).
    """
    xp, h0, c0, W_hh, b_hh, g_hh, g_c, b_c, m, zh, zc = ts
    zh, zc = cfg.zone(zh, 0), cfg.zone(zc, 1)
    Y, _, _, A, V, MU, RS, CT, MUC, RSC, TC, C = res
    C = CT if C is None else C
    sizes = cfg.steps.sizes
    T, B, H = CT.shape
    G = 4 * H
    new = buffers(cfg.steps, A)  # zeros with lengths: padded rows stay 0
    dA = new(T, B, G)  # d pre-activations = dxp
    span = max(1, min(T, WEIGHT_BLOCK // (B * G)))  # dv for a block of steps (see above)
    dV = new(span, B, G)
    dW_hh = torch.zeros_like(W_hh) if need[3] else None
    W_hhT = W_hh.t().contiguous()  # so that linear(dv, W_hhT) = dv W_hh
    dh = _grad_buf(h0, dh_n)
    dc = _grad_buf(c0, dc_n)
    # scratch and the sums' accumulators, held while P has their addresses
    keep_h, keep_c, dLC = torch.empty_like(h0), torch.empty_like(c0), torch.empty_like(c0)
    dct = torch.empty(H, dtype=torch.float32)
    part = torch.empty(2 * G + 2 * H, dtype=torch.float32)
    acc = torch.zeros(2 * G + 2 * H, dtype=torch.float64)
    P = _csteps.LNLSTM(B=B, H=H, zh_rate=_csteps.rate(zh), zc_rate=_csteps.rate(zc),
                       **_csteps.ptrs(c0=c0, g_hh=g_hh, g_c=g_c, ZH=_csteps.masks(zh),
                                      ZC=_csteps.masks(zc), V=V, A=A, MU=MU, RS=RS, CT=CT,
                                      MUC=MUC, RSC=RSC, TC=TC, C=C, dY=dY, dA=dA, dV=dV,
                                      dLC=dLC, dh=dh, dc=dc, keep_h=keep_h, keep_c=keep_c,
                                      part=part, acc=acc, dct=dct))
    step, live = _csteps.lib().ln_lstm_bwd, 0
    for b0, b1 in time_chunks(T, B * G, WEIGHT_BLOCK):
        # rows past a step's n stay 0 in the reused dV: n only grows going back
        for t in reversed(range(b0, b1)):
            n = B if sizes is None else sizes[t]
            if n > live:  # rows whose last step is t: their output gradient joins here
                dh[live:n].add_(dY[t, live:n])
                live = n
            step(P, t, t - b0, n)  # dA[t], dV[t - b0], dc; dh <- kept part + dY[t-1]
            _add_recur(dh[:n], linear(dV[t - b0, :n], W_hhT), m)
        if dW_hh is not None:
            dW_hh += _sum_outer(dV[: b1 - b0], h0, Y, m, b0)
    dg_hh, db_hh, dg_c, db_c = (v.to(A.dtype) for v in acc.split([G, G, H, H]))
    return [dA, dh, dc, dW_hh, db_hh if need[4] else None, dg_hh if need[5] else None,
            dg_c if need[6] else None, db_c if need[7] else None, None, None, None]


def _zone_args(zh, zc) -> tuple:
    """Zoneout as the compiled loops take it: masks (or None), then rates."""
    return _csteps.masks(zh), _csteps.masks(zc), _csteps.rate(zh), _csteps.rate(zc)


def _lstm_backward_compiled(ts, res, dY, dh_n, dc_n, cfg, need):
    """:func:`_lstm_backward_csteps` with each block's time loop in compiled code
    (:mod:`rnnkit.kernels.compiled`), the input layer norm's backward in it too; ``dW_hh``
    stays one GEMM per block of steps."""
    u, h0, c0, W_hh, b_hh, g_hh, g_c, b_c, m, zh, zc, g_ih, b_ih = ts
    zh, zc = cfg.zone(zh, 0), cfg.zone(zc, 1)
    Y, _, _, A, V, MU, RS, CT, MUC, RSC, TC, C, MUX, RSX = res
    C = CT if C is None else C
    T, B, H = CT.shape
    G = 4 * H
    new = buffers(cfg.steps, A)  # zeros with lengths: padded rows stay 0
    dU = new(T, B, G)  # d (W_ih x)
    dV = new(max(1, min(T, WEIGHT_BLOCK // (B * G))), B, G)  # dv for a block of steps
    dW_hh = torch.zeros_like(W_hh) if need[3] else None
    dh, dc = _grad_buf(h0, dh_n), _grad_buf(c0, dc_n)
    # the gains' and biases' gradients [g_hh, b_hh, g_c, b_c, g_ih, b_ih]
    acc = torch.zeros(4 * G + 2 * H, dtype=torch.float64)
    live = 0
    for b0, b1 in time_chunks(T, B * G, WEIGHT_BLOCK):
        live = compiled.ext().ln_lstm_backward(
            c0, W_hh, g_ih, g_hh, g_c, m, *_zone_args(zh, zc), cfg.steps.sizes or [], b0, b1,
            live, u, MUX, RSX, A, V, MU, RS, CT, MUC, RSC, TC, C, dY, dU, dV, dh, dc, acc)
        if dW_hh is not None:
            dW_hh += _sum_outer(dV[: b1 - b0], h0, Y, m, b0)
    # (copies: in float64, views of acc would alias one another, which an op may not return)
    dg_hh, db_hh, dg_c, db_c, dg_ih, db_ih = (v.to(A.dtype, copy=True)
                                              for v in acc.split([G, G, H, H, G, G]))
    return [dU, dh, dc, dW_hh, db_hh if need[4] else None, dg_hh if need[5] else None,
            dg_c if need[6] else None, db_c if need[7] else None, None, None, None,
            dg_ih if need[11] else None, db_ih if need[12] else None]


register("ln_lstm", _lstm_forward, _lstm_backward, _lstm_fake, n_out=3)


def ln_lstm_scan(cell, p, u: Tensor, state, steps: Steps, rec_mask=None, zones=(None, None)):
    """Run a :class:`~rnnkit.cells.LayerNormLSTMCell` over ``u = W_ih x`` (T, B, 4H): the
    input layer norm (``ln_ih_weight``, ``bias_ih``) is the scan's."""
    h0, c0 = state
    zt, rates = zone_args(zones)
    ts = [u, h0, c0, p["weight_hh"], p.get("bias_hh"), p["ln_hh_weight"], p["ln_c_weight"],
          p.get("ln_c_bias"), rec_mask, *zt, p["ln_ih_weight"], p.get("bias_ih")]
    names = ("weight_hh", "bias_hh", "ln_hh_weight", "ln_c_weight", "ln_c_bias")
    base = cell_reference(cell, names, 2, steps.sizes, rates)

    def ref(ts):  # the cell's own input layer norm, then its steps
        return base([cell._ln(ts[0], ts[11], ts[12]), *ts[1:11]])

    ys, h_n, c_n = run("ln_lstm", ts, steps, [*rates, cell.eps], ref)
    return ys, (h_n, c_n)


# ------------------------------------------------------------------ LayerNorm-GRU
def _gru_forward(ts, cfg):
    xp, h0, W_hh, b_hh, g_hh, m, zh = ts
    zh, eps = cfg.zone(zh, 0), cfg.floats[1]
    T, B, G = xp.shape
    H = G // 3
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, xp)  # zeros with lengths: padded rows stay 0
    S = T if cfg.need_grad else 1  # without gradients: one scratch row (see the LSTM)
    V = new(S, B, G)
    MU, RS = new(S, B, 1), new(S, B, 1)
    Ghn, RZ = new(S, B, H), new(S, B, 2 * H)  # gh_n; r, z
    N, Y = new(S, B, H), new(T, B, H)
    if compiled.usable("ln_gru", xp, h0, W_hh, b_hh, g_hh, m, _csteps.masks(zh)):
        compiled.ext().gru_forward(xp, h0, W_hh, b_hh, g_hh, m, _csteps.masks(zh),
                                   _csteps.rate(zh), eps, sizes or [], cfg.need_grad, Ghn, RZ, N,
                                   Y, V, MU, RS)  # the whole loop compiled
        return [Y, last_state(Y, h0, cfg.steps)], [V, MU, RS, Ghn, RZ, N]
    if _csteps.usable(xp, h0, W_hh, b_hh, g_hh, m, _csteps.masks(zh)):  # the compiled steps
        b_hh, gh = _or_zeros(b_hh, G), xp.new_empty(G)  # held: P keeps their addresses
        P = _csteps.GRU(B=B, H=H, zh_rate=_csteps.rate(zh), eps=eps,
                        **_csteps.ptrs(XP=xp, h0=h0, ZH=_csteps.masks(zh), Ghn=Ghn, RZ=RZ, N=N,
                                       Y=Y, g_hh=g_hh, b_hh=b_hh, V=V, MU=MU, RS=RS, gh=gh))
        step, h = _csteps.lib().ln_gru_fwd, h0
        for t in range(T):
            n = B if sizes is None else sizes[t]
            v = linear(h[:n] if m is None else h[:n] * m[:n], W_hh)  # (n, 3H), held for the call
            step(P, v.data_ptr(), t, t if cfg.need_grad else 0, n)  # -> V, MU, RS, RZ, ..., Y[t]
            h = Y[t]
        return [Y, last_state(Y, h0, cfg.steps)], [V, MU, RS, Ghn, RZ, N]
    h = h0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        s = t if cfg.need_grad else 0
        hp, rz, nt, y, x = h[:n], RZ[s, :n], N[s, :n], Y[t, :n], xp[t, :n]
        v = V[s, :n]
        v.copy_(linear(hp if m is None else hp * m[:n], W_hh))
        gh, MU[s, :n], RS[s, :n] = torch.native_layer_norm(v, [G], g_hh, b_hh, eps)  # (n, 3H)
        torch.add(x[:, : 2 * H], gh[:, : 2 * H], out=rz)
        rz.sigmoid_()
        gh_n = Ghn[s, :n].copy_(gh[:, 2 * H:])
        torch.addcmul(x[:, 2 * H:], rz[:, :H], gh_n, out=nt)
        tanh_(nt)
        torch.lerp(nt, hp, rz[:, H:], out=y)
        if zh is not None:
            y.lerp_(hp, zone_at(zh, t, n))
        h = Y[t]
    return [Y, last_state(Y, h0, cfg.steps)], [V, MU, RS, Ghn, RZ, N]


def _gru_fake(ts, cfg):
    xp = ts[0]
    T, B, G = xp.shape
    H = G // 3
    e = xp.new_empty
    return ([e(T, B, H), e(B, H)],
            [e(T, B, G), e(T, B, 1), e(T, B, 1), e(T, B, H), e(T, B, 2 * H), e(T, B, H)])


def _gru_backward(ts, res, grads, cfg, need):
    xp, h0, W_hh, b_hh, g_hh, m, zh = ts
    zh = cfg.zone(zh, 0)
    Y, _, V, MU, RS, Ghn, RZ, N = res
    dY, dh_n = grads
    sizes = cfg.steps.sizes
    T, B, H = N.shape
    dY = torch.zeros_like(Y) if dY is None else dY.contiguous()
    new = buffers(cfg.steps, N)  # zeros with lengths: padded rows stay 0
    dGh, dV = new(T, B, 3 * H), new(T, B, 3 * H)  # d gh = [dr, dz, dgh_n]; dv
    dXn = new(T, B, H)  # gradient of xp_n
    dh = _grad_buf(h0, dh_n)

    if compiled.usable("ln_gru", dY, h0, W_hh, g_hh, m, _csteps.masks(zh)):  # the whole loop
        acc = torch.zeros(6 * H, dtype=torch.float64)  # the gain's and bias's gradients
        compiled.ext().gru_backward(h0, W_hh, g_hh, m, _csteps.masks(zh), _csteps.rate(zh),
                                    sizes or [], Ghn, RZ, N, Y, dY, dGh, dXn, dh, V, MU, RS, dV,
                                    acc)
        dg, db = (v.to(N.dtype, copy=True) for v in acc.split(3 * H))  # copies: no aliases
        db_hh, dg_hh = (db if need[3] else None), (dg if need[4] else None)
    elif _csteps.usable(dY, h0, W_hh, g_hh, m, _csteps.masks(zh)):  # the compiled steps
        acc = torch.zeros(6 * H, dtype=torch.float64)  # the gain's and bias's gradients
        part, keep_h = torch.empty(6 * H, dtype=torch.float32), torch.empty_like(h0)  # held
        P = _csteps.GRU(B=B, H=H, zh_rate=_csteps.rate(zh),
                        **_csteps.ptrs(h0=h0, ZH=_csteps.masks(zh), Ghn=Ghn, RZ=RZ, N=N, Y=Y,
                                       dY=dY, dGh=dGh, dXn=dXn, dh=dh, keep_h=keep_h, g_hh=g_hh,
                                       V=V, MU=MU, RS=RS, dV=dV, part=part, acc=acc))
        _bptt_csteps(P, _csteps.lib().gru_bwd, dV, dh, dY, W_hh, m, sizes)  # P.V: with LN
        dg, db = (v.to(N.dtype) for v in acc.split(3 * H))
        db_hh, dg_hh = (db if need[3] else None), (dg if need[4] else None)
    else:
        def through_norm(t, n, dg):
            return dV[t, :n].copy_(_ln_grad(dg, V[t, :n], MU[t, :n], RS[t, :n], g_hh))

        gru_bptt(h0, Y, dY, dh, RZ, N, Ghn, zh, m, W_hh, sizes, dGh, dXn, through_norm)
        db_hh = dGh.sum((0, 1)) if need[3] else None
        dg_hh = _xhat_sum(dGh, V, MU, RS) if need[4] else None

    dxp = torch.cat((dGh[..., : 2 * H], dXn), dim=-1) if need[0] else None  # (T, B, 3H)
    dW_hh = _sum_outer(dV, h0, Y, m) if need[2] else None
    return [dxp, dh, dW_hh, db_hh, dg_hh, None, None]


register("ln_gru", _gru_forward, _gru_backward, _gru_fake, n_out=2)


def ln_gru_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """Run a :class:`~rnnkit.cells.LayerNormGRUCell` over ``xp`` (T, B, 3H)."""
    (h0,) = state
    zt, rates = zone_args(zones)
    ts = [xp, h0, p["weight_hh"], p.get("bias_hh"), p["ln_hh_weight"], rec_mask, *zt]
    ref = cell_reference(cell, ("weight_hh", "bias_hh", "ln_hh_weight"), 1, steps.sizes, rates)
    ys, h_n = run("ln_gru", ts, steps, [*rates, cell.eps], ref)
    return ys, (h_n,)
