"""Fused GRU scans (torch's reset-after form and Cho et al.'s reset-before form).

Reset after (torch.nn.GRU), per step, with ``xp = W_ih x + b_ih`` precomputed
for all T and ``m`` the recurrent-dropout mask (or 1)::

    gh = (m * h_{t-1}) W_hh^T + b_hh                        one GEMM, (B, 3H)
    r, z = sigmoid(xp_r + gh_r, xp_z + gh_z)
    n = tanh(xp_n + r * gh_n)
    h~ = lerp(n, h_{t-1}, z) = (1 - z) n + z h_{t-1};   h_t = lerp(h~, h_{t-1}, zh_t)

Reset before (``reset_after=False``): ``r, z`` from ``(m * h) W_rz^T``, then
``n = tanh(xp_n + b_hn + (r * m * h) W_hn^T)``, two GEMMs per step.

Backward, per step (``dh`` the gradient of ``h_t``, ``dh~ = (1 - zh) dh``)::

    dn = dh~ (1 - z)(1 - n^2)     dz = dh~ (h_{t-1} - n) z (1 - z)
    reset after:  dgh_n = dn * r;  dr = dn * gh_n * r (1 - r);  dgh = [dr, dz, dgh_n]
                  dh_{t-1} = zh dh + dh~ z + m * (dgh W_hh) + dy_{t-1}
    reset before: d(rh) = dn W_hn;  dr = d(rh) * m h_{t-1} * r (1 - r)
                  dh_{t-1} = zh dh + dh~ z + m * (d(rh) * r + [dr, dz] W_rz) + dy_{t-1}

with the products of saved activations computed a few steps at a time; weight
and bias gradients are one GEMM/sum each over all T after the loop.

Shapes: ``T`` time, ``B`` batch, ``H`` hidden.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import compiled
from .._higher import cell_reference
from . import _csteps
from ._gemm import linear, weight_grad
from ._op import register, run
from ._steps import Steps, buffers, last_state, tanh_, time_chunks, zone_at
from .lstm import _add_recur, _d_sig, _grad_buf, _recur_grad, _split_zone, _sum_outer, zone_args

__all__ = ["gru_scan"]


def _direct(dht: Tensor, z: Tensor, keep: Tensor | None, dY: Tensor, t: int) -> Tensor:
    """The part of ``dh_{t-1}`` that skips the recurrent product: ``dh~ z + keep + dy_{t-1}``."""
    n = dht.shape[0]
    d = dht * z
    if keep is not None:
        d.add_(keep)
    if t > 0:
        d.add_(dY[t - 1, :n])
    return d


def _prev(h0: Tensor, Y: Tensor, t0: int, t1: int) -> Tensor:
    """(t1 - t0, B, H): h_{t-1} for steps t0..t1-1 (h0, then the outputs)."""
    return Y[t0 - 1:t1 - 1] if t0 > 0 else torch.cat((h0.unsqueeze(0), Y[: t1 - 1]))


# ------------------------------------------------ torch.nn.GRU's form (reset after)
def _fake(ts, cfg):
    xp = ts[0]
    T, B, G = xp.shape
    H = G // 3
    e = xp.new_empty
    return [e(T, B, H), e(B, H)], [e(T, B, H), e(T, B, 2 * H), e(T, B, H)]


def _gru_forward(ts, cfg):
    xp, h0, W_hh, b_hh, m, zh = ts
    zh = cfg.zone(zh, 0)
    T, B, G = xp.shape
    H = G // 3
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, xp)  # zeros with lengths: padded rows stay 0
    # the activations the backward reads, one row per step; without gradients one scratch
    # row (at T=5000, B=1000, H=128 the three would hold 10 GB)
    S = T if cfg.need_grad else 1
    Ghn, RZ, N = new(S, B, H), new(S, B, 2 * H), new(S, B, H)  # gh_n; r, z; n
    Y = new(T, B, H)
    if compiled.usable("gru", xp, h0, W_hh, b_hh, m, _csteps.masks(zh)):  # the whole loop
        compiled.ext().gru_forward(xp, h0, W_hh, b_hh, None, m, _csteps.masks(zh),
                                   _csteps.rate(zh), 0.0, sizes or [], cfg.need_grad, Ghn, RZ,
                                   N, Y, None, None, None)
        return [Y, last_state(Y, h0, cfg.steps)], [Ghn, RZ, N]
    if _csteps.usable(xp, h0, W_hh, b_hh, m, _csteps.masks(zh)):  # the compiled steps
        P = _csteps.GRU(B=B, H=H, zh_rate=_csteps.rate(zh),
                        **_csteps.ptrs(XP=xp, h0=h0, ZH=_csteps.masks(zh), Ghn=Ghn, RZ=RZ, N=N,
                                       Y=Y))
        step, h = _csteps.lib().gru_fwd, h0
        for t in range(T):
            n = B if sizes is None else sizes[t]
            gh = linear(h[:n] if m is None else h[:n] * m[:n], W_hh, b_hh)  # (n, 3H), held
            step(P, gh.data_ptr(), t, t if cfg.need_grad else 0, n)  # -> RZ, Ghn, N, Y[t]
            h = Y[t]
        return [Y, last_state(Y, h0, cfg.steps)], [Ghn, RZ, N]
    h = h0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        s = t if cfg.need_grad else 0
        hp, rz, nt, y, x = h[:n], RZ[s, :n], N[s, :n], Y[t, :n], xp[t, :n]
        gh = linear(hp if m is None else hp * m[:n], W_hh, b_hh)  # (n, 3H)
        torch.add(x[:, : 2 * H], gh[:, : 2 * H], out=rz)
        rz.sigmoid_()
        gh_n = Ghn[s, :n].copy_(gh[:, 2 * H:])
        torch.addcmul(x[:, 2 * H:], rz[:, :H], gh_n, out=nt)
        tanh_(nt)
        torch.lerp(nt, hp, rz[:, H:], out=y)
        if zh is not None:
            y.lerp_(hp, zone_at(zh, t, n))
        h = Y[t]
    h_n = last_state(Y, h0, cfg.steps)
    return [Y, h_n], [Ghn, RZ, N]


def bptt(h0, Y, dY, dh, RZ, N, Ghn, zh, m, W_hh, sizes, dGh, dXn, recur=None) -> None:
    """Backward through time of the reset-after GRU step (shared with LayerNorm-GRU).

    Fills ``dGh`` (T, B, 3H) with the gradient of ``gh = [r, z, gh_n]``'s
    pre-activations and ``dXn`` (T, B, H) with that of ``xp_n``, and leaves in ``dh``
    (B, H) that of ``h0``. ``recur(t, n, dg)`` maps a step's ``dg`` to the gradient
    entering the recurrent product (LayerNorm-GRU: back through its norm); default ``dg``.
    """
    T, B, H = N.shape
    r, z = RZ[..., :H], RZ[..., H:]
    W_hhT = W_hh.t().contiguous()  # so that linear(dg, W_hhT) = dg W_hh
    live = 0
    for t0, t1 in time_chunks(T, B * H):
        z_, n_ = z[t0:t1], N[t0:t1]
        D_n = (1 - z_) * (1 - n_ * n_)  # dn_pre / dh~
        D_z = (_prev(h0, Y, t0, t1) - n_) * _d_sig(z_)  # dz_pre / dh~
        D_r = Ghn[t0:t1] * _d_sig(r[t0:t1])  # dr_pre / dn_pre
        for t in reversed(range(t0, t1)):
            n, j = (B if sizes is None else sizes[t]), t - t0
            dhv, dg = dh[:n], dGh[t, :n]
            if n > live:
                dhv[live:].add_(dY[t, live:n])
                live = n
            dht, keep_h = _split_zone(dhv, zh, t, n)
            dn = torch.mul(dht, D_n[j, :n], out=dXn[t, :n])
            torch.mul(dht, D_z[j, :n], out=dg[:, H: 2 * H])
            torch.mul(dn, D_r[j, :n], out=dg[:, :H])
            torch.mul(dn, r[t, :n], out=dg[:, 2 * H:])
            _recur_grad(dhv, dg if recur is None else recur(t, n, dg), W_hhT, m,
                        _direct(dht, z[t, :n], keep_h, dY, t), None)


def _bptt_csteps(P, step, dG: Tensor, dh: Tensor, dY: Tensor, W_hh: Tensor, m, sizes) -> None:
    """:func:`bptt` with each step's elementwise work in one library call ``step(P, t, n)``.

    The call fills the step's gradients and leaves in ``dh`` the part of ``h_{t-1}``'s
    gradient that skips the recurrent product; this adds ``m * (dG[t] W_hh)``, ``dG`` the
    gradient entering the product (GRU: ``dGh``; LayerNorm-GRU: ``dV``, back through its norm).
    """
    T, B = dY.shape[:2]
    W_hhT = W_hh.t().contiguous()  # so that linear(dg, W_hhT) = dg W_hh
    live = 0
    for t in reversed(range(T)):
        n = B if sizes is None else sizes[t]
        if n > live:  # rows whose last step is t: their output gradient joins here
            dh[live:n].add_(dY[t, live:n])
            live = n
        step(P, t, n)  # dGh[t], dXn[t] (, dV[t]); dh <- dh~ z + zoneout's kept part + dY[t-1]
        _add_recur(dh[:n], linear(dG[t, :n], W_hhT), m)


def _gru_backward(ts, res, grads, cfg, need):
    xp, h0, W_hh, b_hh, m, zh = ts
    zh = cfg.zone(zh, 0)
    Y, _, Ghn, RZ, N = res
    dY, dh_n = grads
    sizes = cfg.steps.sizes
    T, B, H = N.shape
    dY = torch.zeros_like(Y) if dY is None else dY.contiguous()
    new = buffers(cfg.steps, N)  # zeros with lengths: padded rows stay 0
    dh = _grad_buf(h0, dh_n)
    if compiled.usable("gru", dY, h0, W_hh, m, _csteps.masks(zh)):  # the whole loop
        # writes dxp = [dr, dz, dxn] and dgh_n in place and sums db_hh as it goes: no cat
        # or sum after it (docs/kernels.md, "GRU at B=128, H=512")
        dxp, dGn, db_hh = new(T, B, 3 * H), new(T, B, H), N.new_empty(3 * H)
        compiled.ext().gru_backward_dxp(h0, W_hh, m, _csteps.masks(zh), _csteps.rate(zh),
                                        sizes or [], Ghn, RZ, N, Y, dY, dxp, dGn, dh, db_hh)
        dW_hh = _recur_weight_grad(dxp, dGn, h0, Y, m) if need[2] else None
        return [dxp if need[0] else None, dh, dW_hh, db_hh if need[3] else None, None, None]
    dGh = new(T, B, 3 * H)  # gradient of gh = [dr, dz, dgh_n]
    dXn = new(T, B, H)  # gradient of xp_n
    if _csteps.usable(dY, h0, W_hh, m, _csteps.masks(zh)):  # the compiled steps
        keep_h = torch.empty_like(h0)  # held while P has its address
        P = _csteps.GRU(B=B, H=H, zh_rate=_csteps.rate(zh),
                        **_csteps.ptrs(h0=h0, ZH=_csteps.masks(zh), Ghn=Ghn, RZ=RZ, N=N, Y=Y,
                                       dY=dY, dGh=dGh, dXn=dXn, dh=dh, keep_h=keep_h))
        _bptt_csteps(P, _csteps.lib().gru_bwd, dGh, dh, dY, W_hh, m, sizes)
    else:
        bptt(h0, Y, dY, dh, RZ, N, Ghn, zh, m, W_hh, sizes, dGh, dXn)

    dxp = torch.cat((dGh[..., : 2 * H], dXn), dim=-1) if need[0] else None  # (T, B, 3H)
    dW_hh = _sum_outer(dGh, h0, Y, m) if need[2] else None
    db_hh = dGh.sum((0, 1)) if need[3] else None
    return [dxp, dh, dW_hh, db_hh, None, None]


def _recur_weight_grad(dxp: Tensor, dGn: Tensor, h0: Tensor, Y: Tensor, m) -> Tensor:
    """``dW_hh = sum_t [dr, dz, dgh_n]_t^T (m * h_{t-1})`` (3H, H) from ``dxp``'s first 2H
    columns (``dr, dz``) and ``dGn`` (T, B, H), without stacking ``h_{t-1}``: step 0 against
    ``h0``, the rest against ``Y[:-1]`` as it lies (a copy only with a mask ``m``).

    Each block as :func:`~._gemm.weight_grad` computes it on an Intel CPU: the small
    ``(x^T dy)`` product, transposed into place.
    """
    T, B, G = dxp.shape
    H = G // 3
    h0m = h0 if m is None else h0 * m
    Yp = Y[: T - 1] if m is None else Y[: T - 1] * m  # (T-1, B, H) h_{t-1} for t >= 1
    dW = dxp.new_empty(G, H)
    for d, rows in ((dxp[..., : 2 * H], dW[: 2 * H]), (dGn, dW[2 * H:])):
        w = torch.mm(h0m.t(), d[0])  # (H, k)
        if T > 1:  # (T-1, B, k) -> ((T-1) B, k), a view: dxp's rows are 3H apart
            w.addmm_(Yp.reshape(-1, H).t(), d[1:].reshape(-1, d.shape[-1]))
        rows.copy_(w.t())
    return dW


# ------------------------------------------------ Cho et al.'s form (reset before)
def _cho_fake(ts, cfg):
    xp = ts[0]
    T, B, G = xp.shape
    H = G // 3
    e = xp.new_empty
    return [e(T, B, H), e(B, H)], [e(T, B, 3 * H), e(T, B, H)]


def _cho_forward(ts, cfg):
    xp, h0, W_hh, b_hh, m, zh = ts
    zh = cfg.zone(zh, 0)
    T, B, G = xp.shape
    H = G // 3
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, xp)  # zeros with lengths: padded rows stay 0
    A = new(T, B, 3 * H)  # activations r, z, n
    RH, Y = new(T, B, H), new(T, B, H)
    W_rz, W_n = W_hh[: 2 * H], W_hh[2 * H:]
    b_rz, b_n = (None, None) if b_hh is None else (b_hh[: 2 * H], b_hh[2 * H:])
    h = h0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        hp, a, rh, y, x = h[:n], A[t, :n], RH[t, :n], Y[t, :n], xp[t, :n]
        hr = hp if m is None else hp * m[:n]
        rz, nt = a[:, : 2 * H], a[:, 2 * H:]
        torch.sigmoid(linear(hr, W_rz, b_rz, x[:, : 2 * H]), out=rz)
        torch.mul(rz[:, :H], hr, out=rh)
        tanh_(linear(rh, W_n, b_n, x[:, 2 * H:]), out=nt)
        torch.lerp(nt, hp, rz[:, H:], out=y)
        if zh is not None:
            y.lerp_(hp, zone_at(zh, t, n))
        h = Y[t]
    h_n = last_state(Y, h0, cfg.steps)
    return [Y, h_n], [A, RH]


def _cho_backward(ts, res, grads, cfg, need):
    xp, h0, W_hh, b_hh, m, zh = ts
    zh = cfg.zone(zh, 0)
    Y, _, A, RH = res
    dY, dh_n = grads
    sizes = cfg.steps.sizes
    T, B, H = RH.shape
    dY = torch.zeros_like(Y) if dY is None else dY.contiguous()
    new = buffers(cfg.steps, A)  # zeros with lengths: padded rows stay 0
    r, z, N = A[..., :H], A[..., H: 2 * H], A[..., 2 * H:]
    W_rzT, W_nT = W_hh[: 2 * H].t().contiguous(), W_hh[2 * H:].t().contiguous()

    dA = new(T, B, 3 * H)  # gradient of the pre-activations = dxp
    dh = _grad_buf(h0, dh_n)
    live = 0
    for t0, t1 in time_chunks(T, B * H):
        z_, n_, hp = z[t0:t1], N[t0:t1], _prev(h0, Y, t0, t1)
        D_n = (1 - z_) * (1 - n_ * n_)
        D_z = (hp - n_) * _d_sig(z_)
        D_r = (hp if m is None else hp * m) * _d_sig(r[t0:t1])  # dr_pre / d(rh)
        for t in reversed(range(t0, t1)):
            n, j = (B if sizes is None else sizes[t]), t - t0
            dhv, da = dh[:n], dA[t, :n]
            if n > live:
                dhv[live:].add_(dY[t, live:n])
                live = n
            dht, keep_h = _split_zone(dhv, zh, t, n)
            dn = torch.mul(dht, D_n[j, :n], out=da[:, 2 * H:])
            torch.mul(dht, D_z[j, :n], out=da[:, H: 2 * H])
            drh = linear(dn, W_nT)  # (n, H) gradient of r * m h
            torch.mul(drh, D_r[j, :n], out=da[:, :H])
            g = linear(da[:, : 2 * H], W_rzT, None, drh.mul_(r[t, :n]))
            direct = _direct(dht, z[t, :n], keep_h, dY, t)
            if m is None:
                torch.add(direct, g, out=dhv)
            else:
                torch.addcmul(direct, g, m[:n], out=dhv)

    dW_hh = None
    if need[2]:
        G = 3 * H
        dW_hh = W_hh.new_empty(G, H)
        dA2 = dA.view(T * B, G)  # (T, B, 3H) -> (T*B, 3H)
        HR = _prev(h0, Y, 0, T)  # (T, B, H) what entered the recurrence
        if m is not None:
            HR.mul_(m)
        dW_hh[: 2 * H] = weight_grad(dA2[:, : 2 * H], HR.view(T * B, H))
        dW_hh[2 * H:] = weight_grad(dA2[:, 2 * H:], RH.view(T * B, H))
    db_hh = dA.sum((0, 1)) if need[3] else None
    return [dA, dh, dW_hh, db_hh, None, None]


register("gru", _gru_forward, _gru_backward, _fake, n_out=2)
register("gru_cho", _cho_forward, _cho_backward, _cho_fake, n_out=2)


def gru_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """Run a :class:`~rnnkit.cells.GRUCell` (either form) over ``xp`` (T, B, 3H).

    Returns ``ys (T, B, H), (h_n,)``; arguments as :func:`~.lstm.lstm_scan`.
    """
    (h0,) = state
    zt, rates = zone_args(zones)
    ts = [xp, h0, p["weight_hh"], p.get("bias_hh"), rec_mask, *zt]
    ref = cell_reference(cell, ("weight_hh", "bias_hh"), 1, steps.sizes, rates)
    ys, h_n = run("gru" if cell.reset_after else "gru_cho", ts, steps, rates, ref)
    return ys, (h_n,)
