"""Fused scans of the elementwise recurrences: QRNN, minGRU, minLSTM, IndRNN, SRU.

Their state update is elementwise, so the Jacobian ``ds_t / ds_{t-1}`` is a
diagonal ``J_t`` (T, B, S), and every backward through time is the same reverse
*linear* scan, one fused multiply-add per step (:func:`reverse_diag_scan`)::

    ds_t = g_t + J_{t+1} * ds_{t+1}          (g: the gradient that reaches s_t directly)

IndRNN is one kernel here (a custom op, see :mod:`._op`), with the input
projection vectorised over all T outside it:

- ``"indrnn"``: ``h~ = relu(xp_t + w * h_{t-1})``, ``h_t = lerp(h~, h_{t-1}, k_t)``
  (``w = u``, or ``u * m`` with recurrent dropout); ``J = k + (1-k) [h~ > 0] w``.

QRNN, minGRU, minLSTM and SRU run through the time-chunked kernels of
:mod:`.gated`, which compute their gates a few steps at a time inside the op
(whole-sequence gate temporaries cost more than the GEMMs at T=1000); this
module keeps their entry points (:func:`qrnn_scan`, :func:`min_scan`,
:func:`sru_scan`).

Zoneout ``k`` is the (T, B, S) keep mask in training or the rate in evaluation.

Shapes: ``T`` time, ``B`` batch, ``H`` hidden (= the state size ``S``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import compiled
from .._higher import reference_scan, sizes_mask, zones_of
from . import _csteps
from ._op import register, run
from ._steps import Steps, buffers, last_state, lasts
from .gated import gated_scan, sru_chunked_scan
from .lstm import _grad_buf, zone_args

__all__ = ["reverse_diag_scan", "qrnn_scan", "min_scan", "indrnn_scan", "sru_scan",
           "live_mask"]


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


def qrnn_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """QRNN pooling over the gates' pre-activations ``xp`` (T, B, G*H) from
    :func:`~rnnkit.kernels.fused.fused_project` (tanh/sigmoid are applied inside the
    time-chunked kernel, :mod:`.gated`)."""
    (c0,) = state
    zt, rates = zone_args(zones)
    H = cell.hidden_size
    # the reference activates the gates as QRNNCell.project does after its GEMM
    act = lambda u: torch.cat([torch.tanh(u[..., :H]), torch.sigmoid(u[..., H:])], dim=-1)  # noqa: E731
    return _gated(f"qrnn_{cell.pooling}", xp, c0, steps, zt, rates, cell, act)


def min_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """minGRU / minLSTM as a time-chunked linear scan over the logits ``xp`` (T, B, G*H)."""
    (h0,) = state
    zt, rates = zone_args(zones)
    return _gated(cell.kernel_kind, xp, h0, steps, zt, rates, cell, lambda u: u)


def _gated(kind, xp, s0, steps, zt, rates, cell, act):
    def reference(ts):  # ts = [u, s0, zone]: the cell stepped over the activated gates
        u, s, z = ts
        ys, (s_n,) = reference_scan(cell, {}, act(u), (s,), _mask(steps, u),
                                    zones=zones_of([z], rates[:1]))
        return [ys, s_n]

    Y, s_n = gated_scan(kind, xp, s0, steps, zt[0], rates[0], reference)
    return Y, (s_n,)


# ------------------------------------------------------------------ "indrnn"
def _indrnn_forward(ts, cfg):
    xp, w, h0, zh = ts
    k = cfg.zone(zh, 0)
    T, B, H = xp.shape
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, xp)  # zeros with lengths: padded rows stay 0
    A = new(T, B, H)  # h~
    Y = A if k is None else new(T, B, H)
    if compiled.usable("indrnn", xp, w, h0, _csteps.masks(k)):  # the whole loop compiled
        compiled.ext().indrnn_forward(xp, w, h0, _csteps.masks(k), _csteps.rate(k),
                                      lasts(cfg.steps), A, Y)
        return [Y, last_state(Y, h0, cfg.steps)], [None if A is Y else A]
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
    gY = None if grads[0] is None else grads[0].contiguous()
    if compiled.usable("indrnn", A, w, h0, Y, gY, _csteps.masks(k)):  # the whole loop compiled
        dxp, dh0 = torch.empty_like(A), _grad_buf(h0, grads[1])
        dw = A.new_zeros(A.shape[1:], dtype=torch.float64)  # (B, H), summed below for (H,)
        compiled.ext().indrnn_backward(w, h0, _csteps.masks(k), _csteps.rate(k),
                                       lasts(cfg.steps), A, Y, gY, dxp, dh0, dw)
        dw = (dw if w.dim() == 2 else dw.sum(0)).to(w.dtype)
        return [dxp if need[0] else None, dw if need[1] else None, dh0 if need[2] else None,
                None]
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
    Y, h_n = run("indrnn", [xp, w, h0, *zt], steps, rates, _indrnn_reference(steps, rates))
    return Y, (h_n,)


def _mask(steps: Steps, like: Tensor) -> Tensor | None:
    return sizes_mask(steps.sizes, like.shape[1], like.device)


class _IndRNNStep:
    """IndRNN's step on the op's inputs: ``w`` (H,) or, with recurrent dropout, (B, H)."""

    @staticmethod
    def step(x_t, state, p):
        h = torch.relu(x_t + p["w"] * state[0])
        return h, (h,)


def _indrnn_reference(steps: Steps, rates):
    def reference(ts):
        xp, w, h0, z = ts
        ys, (h_n,) = reference_scan(_IndRNNStep, {"w": w}, xp, (h0,), _mask(steps, xp),
                                    zones=zones_of([z], rates))
        return [ys, h_n]

    return reference


# ------------------------------------------------------------------ SRU
def sru_scan(cell, p, xp: Tensor, state, steps: Steps, rec_mask=None, zones=(None,)):
    """SRU over ``xp = [x~, W_f x + b_f, W_r x + b_r, alpha x^]`` (T, B, 4H), time-chunked
    with the highway inside the kernel (:func:`.gated.sru_chunked_scan`)."""
    (c0,) = state
    zt, rates = zone_args(zones)
    def reference(ts):  # ts = [xp, v, c0, zone]
        x, v, c, z = ts
        ys, (c_n,) = reference_scan(cell, {"weight_c": v}, x, (c,), _mask(steps, x),
                                    zones=zones_of([z], rates[:1]))
        return [ys, c_n]

    Y, c_n = sru_chunked_scan(xp, p["weight_c"], c0, steps, zt[0], rates[0], reference)
    return Y, (c_n,)
