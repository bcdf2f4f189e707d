"""Fused scans of the elementwise recurrences: QRNN, minGRU, minLSTM, IndRNN, SRU.

Their state update is elementwise, so the Jacobian ``ds_t / ds_{t-1}`` is a
diagonal ``J_t`` (T, B, S), and every backward through time is the same reverse
*linear* scan, one fused multiply-add per step (:func:`reverse_diag_scan`)::

    ds_t = g_t + J_{t+1} * ds_{t+1}          (g: the gradient that reaches s_t directly)

Three kernels (custom ops, see :mod:`._op`), everything else is vectorised over
all T with autograd around them:

- ``"linear"``: ``h_t = a_t * h_{t-1} + b_t``, one ``addcmul`` per step; ``J = a``,
  ``da = dh * h_{t-1}``, ``db = dh``. QRNN pooling (``a = f``, ``b = (1-f) z`` or
  ``i z``), minGRU (``a = 1 - z``, ``b = z g(k_h)``) and minLSTM
  (``a = f'``, ``b = i' g(k_h)``) compute ``a, b`` from the gates over all T first.
  Zoneout keeps the recurrence linear: ``s_t = k s_{t-1} + (1-k)(a s_{t-1} + b)``
  is ``a' = a + k (1 - a)``, ``b' = (1 - k) b``.
- ``"indrnn"``: ``h~ = relu(xp_t + w * h_{t-1})``, ``h_t = lerp(h~, h_{t-1}, k_t)``
  (``w = u``, or ``u * m`` with recurrent dropout); ``J = k + (1-k) [h~ > 0] w``.
- ``"sru"``: ``f = sigmoid(a_f + v_f * c_{t-1})``, ``c~ = lerp(x~, c_{t-1}, f)``,
  ``c_t = lerp(c~, c_{t-1}, k_t)``; ``J~ = f + (c_{t-1} - x~) f(1-f) v_f`` and
  ``J = k + (1-k) J~``. The reset gate and the highway output
  ``h = lerp(x^, c~, sigmoid(a_r + v_r c_{t-1}))`` read the states only, so they
  run over all T after the scan.

Zoneout ``k`` is the (T, B, S) keep mask in training or the rate in evaluation.

Shapes: ``T`` time, ``B`` batch, ``H`` hidden (= the state size ``S``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ...cells.minrnn import g as min_g
from ._op import register, run
from ._steps import Steps, last_state
from .lstm import zone_args

__all__ = ["reverse_diag_scan", "linear_scan", "qrnn_scan", "min_scan", "indrnn_scan",
           "sru_scan", "live_mask"]


def live_mask(steps: Steps, T: int, like: Tensor) -> Tensor | None:
    """(T, B, 1) bool, True where step t is inside sequence b (None: every step is)."""
    if steps.last is None:
        return None
    t = torch.arange(T, device=like.device).view(T, 1, 1)
    return t <= steps.last.view(1, -1, 1)


def _prev(s0: Tensor, S: Tensor) -> Tensor:
    """(T, B, S): the state before each step, s0 then the states."""
    return torch.cat((s0.unsqueeze(0), S[:-1]))


def reverse_diag_scan(J: Tensor, G: Tensor | None, ds_n: Tensor | None, steps: Steps,
                      like: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of all states of ``s_t = f_t(s_{t-1})`` with diagonal Jacobians ``J``.

    Args:
        J: (T, B, S) ``ds_t / ds_{t-1}``.
        G: (T, B, S) gradient reaching each ``s_t`` directly (None: zeros).
        ds_n: (B, S) gradient of each row's final state (None: zeros).
    Returns:
        ``dS`` (T, B, S), the total gradient of every state (0 at padded steps),
        and ``ds_0`` (B, S), that of the initial state.
    """
    T, B = like.shape[0], like.shape[1]
    dS = torch.zeros_like(like) if G is None else G.clone(memory_format=torch.contiguous_format)
    sizes = steps.sizes
    if sizes is None:
        if ds_n is not None:
            dS[T - 1] += ds_n
        for t in range(T - 1, 0, -1):
            dS[t - 1].addcmul_(J[t], dS[t])
        return dS, J[0] * dS[0]
    dS.mul_(live_mask(steps, T, like))  # the gradient of a padded (zero) output goes nowhere
    last = steps.last
    rows = torch.arange(B, device=like.device)
    if ds_n is not None:
        dS[last.clamp(min=0), rows] += ds_n * (last >= 0).unsqueeze(1)
    for t in range(T - 1, 0, -1):
        n = sizes[t]
        if n:
            dS[t - 1, :n].addcmul_(J[t, :n], dS[t, :n])
    ds0 = J[0] * dS[0]
    if ds_n is not None:
        ds0 = torch.where((last >= 0).unsqueeze(1), ds0, ds_n)
    return dS, ds0


def _zone_factors(k, like: Tensor) -> tuple:
    """``(k, 1 - k)`` for a keep mask or rate ``k``; (None, None) without zoneout."""
    if k is None:
        return None, None
    return k, 1 - k


# ------------------------------------------------------------------ "linear"
def _linear_forward(ts, cfg):
    a, b, h0 = ts
    T, B, S = a.shape
    sizes = cfg.steps.sizes
    Hs = (torch.zeros if sizes is not None else torch.empty)(T, B, S, dtype=a.dtype,
                                                               device=a.device)
    h = h0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        torch.addcmul(b[t, :n], a[t, :n], h[:n], out=Hs[t, :n])
        h = Hs[t]
    return [Hs, last_state(Hs, h0, cfg.steps)], []


def _linear_fake(ts, cfg):
    a = ts[0]
    return [a.new_empty(a.shape), a.new_empty(a.shape[1:])], []


def _linear_backward(ts, res, grads, cfg, need):
    a, b, h0 = ts
    Hs = res[0]
    dS, dh0 = reverse_diag_scan(a, grads[0], grads[1], cfg.steps, Hs)
    da = dS * _prev(h0, Hs) if need[0] else None
    return [da, dS, dh0]


register("linear", _linear_forward, _linear_backward, _linear_fake, n_out=2)


def linear_scan(a: Tensor, b: Tensor, h0: Tensor, steps: Steps) -> tuple[Tensor, Tensor]:
    """``h_t = a_t h_{t-1} + b_t`` over (T, B, S) coefficients: all states and each row's last."""
    Hs, h_n = run("linear", [a, b, h0], steps, [])
    return Hs, h_n


def _zoned_linear(a: Tensor, b: Tensor, k) -> tuple[Tensor, Tensor]:
    """Fold zoneout into the coefficients: ``a + k (1 - a)``, ``(1 - k) b``."""
    if k is None:
        return a, b
    return a + k * (1 - a), (1 - k) * b


def _zone_value(zones, rates, i: int = 0):
    return zones[i] if zones[i] is not None else (rates[i] or None)


def qrnn_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """QRNN pooling over the activated gates ``xp`` (T, B, G*H) from ``cell.project``."""
    (c0,) = state
    z, f, *oi = xp.chunk(cell.num_gates, dim=-1)
    a, b = (f, oi[1] * z) if cell.pooling == "ifo" else (f, (1 - f) * z)
    k = _zone_value(*zone_args(zones))
    Cs, c_n = linear_scan(*_zoned_linear(a, b, k), c0, steps)
    if cell.pooling == "f":
        return Cs, (c_n,)
    c_new = Cs  # the output reads the new, un-zoned c
    if k is not None:
        c_new = a * _prev(c0, Cs) + b
        m = live_mask(steps, xp.shape[0], xp)
        if m is not None:
            c_new = c_new * m
    return oi[0] * c_new, (c_n,)


def min_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """minGRU / minLSTM as a linear scan over the logits ``xp`` (T, B, G*H)."""
    from ...cells import MinGRUCell

    (h0,) = state
    if isinstance(cell, MinGRUCell):
        k_z, k_h = xp.chunk(2, dim=-1)
        z = torch.sigmoid(k_z)
        a, b = 1 - z, z * min_g(k_h)
    else:
        k_f, k_i, k_h = xp.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        s = f + i
        a, b = f / s, i / s * min_g(k_h)
    k = _zone_value(*zone_args(zones))
    Hs, h_n = linear_scan(*_zoned_linear(a, b, k), h0, steps)
    return Hs, (h_n,)


# ------------------------------------------------------------------ "indrnn"
def _indrnn_forward(ts, cfg):
    xp, w, h0, zh = ts
    k = cfg.zone(zh, 0)
    T, B, H = xp.shape
    sizes = cfg.steps.sizes
    new = torch.zeros if sizes is not None else torch.empty
    kw = dict(dtype=xp.dtype, device=xp.device)
    A = new(T, B, H, **kw)  # h~
    Y = A if k is None else new(T, B, H, **kw)
    wb = w.expand(B, H)
    h = h0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        a = A[t, :n]
        torch.addcmul(xp[t, :n], wb[:n], h[:n], out=a)
        a.relu_()
        if k is not None:
            torch.lerp(a, h[:n], k if not isinstance(k, Tensor) else k[t, :n], out=Y[t, :n])
        h = Y[t]
    return [Y, last_state(Y, h0, cfg.steps)], [None if A is Y else A]


def _indrnn_fake(ts, cfg):
    xp, zh = ts[0], ts[3]
    zoned = zh is not None or bool(cfg.floats and cfg.floats[0])
    return [xp.new_empty(xp.shape), xp.new_empty(xp.shape[1:])], \
        [xp.new_empty(xp.shape) if zoned else None]


def _indrnn_backward(ts, res, grads, cfg, need):
    xp, w, h0, zh = ts
    k, one_k = _zone_factors(cfg.zone(zh, 0), xp)
    Y, _, A = res
    A = Y if A is None else A
    D = (A > 0).to(A.dtype) * w  # d h~ / d h_{t-1}
    if k is not None:
        D.mul_(one_k)  # (1 - k) [h~ > 0] w
    J = D if k is None else D + k
    dS, dh0 = reverse_diag_scan(J, grads[0], grads[1], cfg.steps, Y)
    dpre = dS * (A > 0).to(A.dtype)
    if k is not None:
        dpre.mul_(one_k)
    dw = None
    if need[1]:
        dw = (dpre * _prev(h0, Y)).sum(0)  # (B, H)
        if w.dim() == 1:
            dw = dw.sum(0)
    return [dpre, dw, dh0, None]


register("indrnn", _indrnn_forward, _indrnn_backward, _indrnn_fake, n_out=2)


def indrnn_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """IndRNN over ``xp = W x + b`` (T, B, H); ``rec_mask`` (B, H) scales ``u`` per row."""
    (h0,) = state
    u = cell.recurrent_weight(p)  # clamped to the bound, differentiably
    w = u if rec_mask is None else u * rec_mask  # (H,) or (B, H)
    zt, rates = zone_args(zones)
    Y, h_n = run("indrnn", [xp, w, h0, *zt], steps, rates)
    return Y, (h_n,)


# ------------------------------------------------------------------ "sru"
def _sru_forward(ts, cfg):
    xt, af, v, c0, zc = ts
    k = cfg.zone(zc, 0)
    T, B, H = xt.shape
    sizes = cfg.steps.sizes
    new = torch.zeros if sizes is not None else torch.empty
    kw = dict(dtype=xt.dtype, device=xt.device)
    F_, C = new(T, B, H, **kw), new(T, B, H, **kw)
    Ct = new(T, B, H, **kw) if k is not None else xt.new_empty(0)  # c~ (un-zoned)
    vb = v.expand(B, H)
    c = c0
    for t in range(T):
        n = B if sizes is None else sizes[t]
        f, cp = F_[t, :n], c[:n]
        torch.addcmul(af[t, :n], vb[:n], cp, out=f)
        f.sigmoid_()
        if k is None:
            torch.lerp(xt[t, :n], cp, f, out=C[t, :n])
        else:
            ct = torch.lerp(xt[t, :n], cp, f, out=Ct[t, :n])
            torch.lerp(ct, cp, k if not isinstance(k, Tensor) else k[t, :n], out=C[t, :n])
        c = C[t]
    return [C, last_state(C, c0, cfg.steps), Ct], [F_]


def _sru_fake(ts, cfg):
    xt, zc = ts[0], ts[4]
    zoned = zc is not None or bool(cfg.floats and cfg.floats[0])
    e = xt.new_empty
    return [e(xt.shape), e(xt.shape[1:]), e(xt.shape) if zoned else e(0)], [e(xt.shape)]


def _sru_backward(ts, res, grads, cfg, need):
    xt, af, v, c0, zc = ts
    k, one_k = _zone_factors(cfg.zone(zc, 0), xt)
    C, _, _, F_ = res
    dC_out, dc_n, dCt = grads
    T = xt.shape[0]
    Cp = _prev(c0, C)
    dfp = (Cp - xt) * (F_ - F_ * F_)  # d c~ / d pre-activation of f
    Jt = F_ + dfp * v  # d c~ / d c_{t-1}
    J = Jt if k is None else Jt * one_k + k
    G = dC_out
    Q0 = None
    if dCt is not None:  # c~ feeds the output: its gradient reaches c_{t-1} through Jt
        Q = dCt * Jt
        m = live_mask(cfg.steps, T, xt)
        if m is not None:
            Q.mul_(m)
        G = (torch.zeros_like(C) if G is None else G.clone())
        G[:-1] += Q[1:]
        Q0 = Q[0]
    dS, dc0 = reverse_diag_scan(J, G, dc_n, cfg.steps, C)
    if Q0 is not None:
        dc0 = dc0 + Q0 if cfg.steps.last is None else \
            torch.where((cfg.steps.last >= 0).unsqueeze(1), dc0 + Q0, dc0)
    dct = dS if k is None else dS * one_k  # gradient of c~
    if dCt is not None:
        dct = dct + dCt
    dxt = dct * (1 - F_)
    dpre = dct * dfp
    dv = (dpre * Cp).sum((0, 1)) if need[2] else None
    return [dxt, dpre, dv, dc0, None]


register("sru", _sru_forward, _sru_backward, _sru_fake, n_out=3)


def sru_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """SRU over ``xp = [x~, W_f x + b_f, W_r x + b_r, alpha x^]`` (T, B, 4H)."""
    (c0,) = state
    xt, a_f, a_r, x_hat = xp.chunk(4, dim=-1)
    v_f, v_r = p["weight_c"].chunk(2)
    zt, rates = zone_args(zones)
    C, c_n, Ct = run("sru", [xt, a_f, v_f, c0, *zt], steps, rates)
    c_new = C if Ct.numel() == 0 else Ct
    r = torch.sigmoid(torch.addcmul(a_r, v_r, _prev(c0, C)))  # (T, B, H)
    h = torch.lerp(x_hat, c_new, r)  # r c~ + (1 - r) alpha x^
    m = live_mask(steps, xp.shape[0], xp)
    return (h if m is None else h * m), (c_n,)
