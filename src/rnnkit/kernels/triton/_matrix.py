"""LSTM and GRU scans on the GPU: per step one GEMM and one fused Triton kernel.

Why per step. The recurrent product ``h_{t-1} W_hh^T`` needs the whole previous
``h`` and layer norm needs statistics over the whole gate vector, so a
persistent kernel split over hidden units would need two grid-wide barriers per
step, which Triton cannot express safely (no cooperative launch; a spin barrier
deadlocks when programs are not co-resident, and always under the interpreter).
A persistent kernel split only over the batch keeps every SM but ``ceil(B/16)``
idle. So each step is the GEMM, ``torch.mm`` (cuBLAS, tensor cores, every SM),
then one kernel that does everything else in one pass over the row
(:mod:`._lstm`, :mod:`._gru`); the backward is the mirror image, and the weight
gradient is one GEMM over all T at the end: ``dW_hh = sum_t draw_t^T (m h_{t-1})``.
The cost is two launches per step, which dominate at these sizes; so each scan is
recorded once as a CUDA graph and replayed (:mod:`._graphs`, docs/triton.md).

Buffers: ``HS, CS`` (T+1, B, H) float32 states (row t = state before step t);
``HREC`` (T+1, B, H) in the input dtype, ``m * h``: the GEMM's input, kept for
``dW_hh``; the saved activations in float32. Without grad the saved buffers
hold one step (overwritten).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._higher import carrying, reference_scan, reference_vjp, take_reference, zones_of
from ..loop import length_mask
from ._common import row_block, row_warps
from ._graphs import replay
from ._gru import gru_bwd, gru_fwd
from ._lstm import lstm_bwd, lstm_fwd

__all__ = ["matrix_scan"]


def _zone_mode(z: Tensor | None, rate: float) -> int:
    """0: no zoneout; 1: the rate (evaluation); 2: (T, B, S) keep indicators (training)."""
    return 2 if z is not None else (1 if rate else 0)


def _forward(xp, h0, c0, W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, rates, flags):
    """The forward scan: [Y, h_n, c_n, HS, CS, HREC, A, XH, RS, CH] (absent ones empty)."""
    lstm, ln, full, need_grad = flags
    zh_rate, zc_rate, eps = rates
    T, B, GH = xp.shape
    H = h0.shape[1]
    dev, io = xp.device, xp.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    none = lambda: xp.new_empty(0)  # noqa: E731  (an absent output: fresh, never aliased)
    WT = W.to(io).t()  # (H, GH) view: cuBLAS reads it transposed
    HS = torch.empty(T + 1, B, H, **f32)  # row t: the state before step t
    HS[0] = h0
    CS = torch.empty(T + 1, B, H, **f32) if lstm else none()
    if lstm:
        CS[0] = c0
    Y = (torch.empty if full else torch.zeros)(T, B, H, dtype=io, device=dev)
    HREC = torch.empty(T + 1, B, H, dtype=io, device=dev)  # m * h: the GEMM's input
    HREC[0] = h0 if m is None else h0 * m
    Ts = T if need_grad else 1  # without grad the saved buffers hold one step
    A = torch.empty(Ts, B, 4 * H, **f32)
    XH = torch.empty(Ts, B, GH, **f32) if ln else none()
    RS = torch.empty(Ts, B, 2, **f32) if ln else none()
    CH = torch.empty(Ts, B, H, **f32) if ln and lstm else none()
    RAW = torch.empty(B, GH, dtype=io, device=dev)
    BLOCK = row_block(H)
    d = HS  # a pointer for absent tensors (never read: their flag is off)
    flags = dict(LN=ln, HAS_B=b_hh is not None, HAS_M=m is not None,
                 ZH_MODE=_zone_mode(zh, zh_rate), BLOCK=BLOCK,
                 num_warps=row_warps(BLOCK, 4 if lstm else 3))
    for t in range(T):
        torch.mm(HREC[t], WT, out=RAW)  # (B, H) x (H, GH)
        ts = t if need_grad else 0
        if lstm:
            lstm_fwd[(B,)](xp, RAW, _or(b_hh, d), _or(g_hh, d), _or(g_c, d), _or(b_c, d), HS, CS,
                           Y, HREC, _or(m, d), _or(zh, d), _or(zc, d), A, _or(XH, d),
                           _or(RS, d), _or(CH, d), lengths, t, ts, B, H, zh_rate, zc_rate, eps,
                           ZC_MODE=_zone_mode(zc, zc_rate), **flags)
        else:
            gru_fwd[(B,)](xp, RAW, _or(b_hh, d), _or(g_hh, d), HS, Y, HREC, _or(m, d),
                          _or(zh, d), A, _or(XH, d), _or(RS, d), lengths, t, ts, B, H, zh_rate,
                          eps, **flags)
    h_n = HS[T].to(io, copy=True)
    c_n = CS[T].to(io, copy=True) if lstm else none()
    return [Y, h_n, c_n, HS, CS, HREC, A, XH, RS, CH]


def _backward(W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, HS, CS, HREC, A, XH, RS, CH,
              dY, dh_n, dc_n, rates, flags):
    """The backward scan: [dxp, dh0, dc0, dW, db_hh, dg_hh, dg_c, db_c] (absent ones empty)."""
    lstm, ln, full, _ = flags
    zh_rate, zc_rate, _ = rates
    T, B, H = HS.shape[0] - 1, HS.shape[1], HS.shape[2]
    GH = W.shape[0]
    dev, io = HREC.device, HREC.dtype
    f32 = dict(dtype=torch.float32, device=dev)
    none = lambda: HREC.new_empty(0)  # noqa: E731
    Wc = W.to(io)
    DXP = (torch.empty if full else torch.zeros)(T, B, GH, dtype=io, device=dev)
    DRAW = torch.empty(T, B, GH, dtype=io, device=dev)  # d raw_t, kept for dW_hh
    DREC = torch.zeros(B, H, dtype=io, device=dev)  # d(m h_t) = draw_{t+1} W_hh
    DHC = dh_n.to(torch.float32, copy=True).contiguous()  # the rest of d h_t
    DC = dc_n.to(torch.float32, copy=True).contiguous() if lstm else DHC
    DBH = torch.zeros(B, GH, **f32)  # per-row float32 accumulators
    DGH = torch.zeros(B, GH, **f32) if ln else DBH
    DGC = torch.zeros(B, H, **f32) if ln and lstm else DBH
    DBC = torch.zeros(B, H, **f32) if ln and lstm else DBH
    BLOCK = row_block(H)
    d = DBH
    flags = dict(LN=ln, HAS_B=b_hh is not None, HAS_M=m is not None,
                 ZH_MODE=_zone_mode(zh, zh_rate), BLOCK=BLOCK,
                 num_warps=row_warps(BLOCK, 4 if lstm else 3))
    dY = dY.contiguous()
    for t in reversed(range(T)):
        if lstm:
            lstm_bwd[(B,)](dY, DREC, _or(m, d), DHC, DC, A, _or(XH, d), _or(RS, d), _or(CH, d),
                           CS, _or(g_hh, d), _or(g_c, d), _or(b_c, d), _or(zh, d), _or(zc, d),
                           lengths, DXP, DRAW, DBH, DGH, DGC, DBC, t, B, H, zh_rate, zc_rate,
                           ZC_MODE=_zone_mode(zc, zc_rate), **flags)
        else:
            gru_bwd[(B,)](dY, DREC, _or(m, d), DHC, A, _or(XH, d), _or(RS, d), HS, _or(g_hh, d),
                          _or(zh, d), lengths, DXP, DRAW, DBH, DGH, t, B, H, zh_rate, **flags)
        torch.mm(DRAW[t], Wc, out=DREC)  # (B, GH) x (GH, H)
    dh0 = (DHC + (DREC.float() if m is None else DREC.float() * m)).to(io)
    dc0 = DC.to(io) if lstm else none()
    dW = (DRAW.view(T * B, GH).t() @ HREC[:T].view(T * B, H)).to(W.dtype)  # one GEMM, all T
    grad = lambda acc, w: none() if w is None else acc.sum(0).to(w.dtype)  # noqa: E731
    return [DXP, dh0, dc0, dW, grad(DBH, b_hh), grad(DGH, g_hh), grad(DGC, g_c), grad(DBC, b_c)]


def _or(x: Tensor | None, dummy: Tensor) -> Tensor:
    """A pointer argument for an absent (None or empty) tensor."""
    return dummy if x is None or x.numel() == 0 else x


# The scan as a pair of torch.library ops (opaque to torch.compile/export, which use the
# fake kernels for shapes), the backward registered as the forward op's autograd formula.
@torch.library.custom_op("rnnkit_triton::matrix_scan", mutates_args=())
def _scan_op(xp: Tensor, h0: Tensor, c0: Tensor | None, W: Tensor, b_hh: Tensor | None,
             g_hh: Tensor | None, g_c: Tensor | None, b_c: Tensor | None, lengths: Tensor,
             m: Tensor | None, zh: Tensor | None, zc: Tensor | None, rates: list[float],
             flags: list[bool]) -> list[Tensor]:
    T, B, GH = xp.shape
    H = h0.shape[1]
    Ts = T if flags[3] else 1
    # input copies (xp, masks, weights), saved activations, states and outputs
    nbytes = (2 * _nbytes(xp) + _nbytes(h0, c0, W, lengths, m, zh, zc)
              + 4 * Ts * B * (4 * H + GH + H) + 16 * (T + 1) * B * H)
    return replay("matrix_scan", lambda *a: _forward(*a, rates, flags),
                  [xp, h0, c0, W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc],
                  (tuple(rates), tuple(flags)), nbytes)


def _nbytes(*tensors: Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@_scan_op.register_fake
def _(xp, h0, c0, W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, rates, flags):
    lstm, ln, _, need_grad = flags
    T, B, GH = xp.shape
    H = h0.shape[1]
    Ts = T if need_grad else 1
    f = lambda *s: xp.new_empty(s, dtype=torch.float32)  # noqa: E731
    none = lambda: xp.new_empty(0)  # noqa: E731
    return [xp.new_empty(T, B, H), xp.new_empty(B, H), xp.new_empty(B, H) if lstm else none(),
            f(T + 1, B, H), f(T + 1, B, H) if lstm else none(), xp.new_empty(T + 1, B, H),
            f(Ts, B, 4 * H), f(Ts, B, GH) if ln else none(), f(Ts, B, 2) if ln else none(),
            f(Ts, B, H) if ln and lstm else none()]


@torch.library.custom_op("rnnkit_triton::matrix_scan_backward", mutates_args=())
def _backward_op(W: Tensor, b_hh: Tensor | None, g_hh: Tensor | None, g_c: Tensor | None,
                 b_c: Tensor | None, lengths: Tensor, m: Tensor | None, zh: Tensor | None,
                 zc: Tensor | None, HS: Tensor, CS: Tensor, HREC: Tensor, A: Tensor, XH: Tensor,
                 RS: Tensor, CH: Tensor, dY: Tensor, dh_n: Tensor, dc_n: Tensor,
                 rates: list[float], flags: list[bool]) -> list[Tensor]:
    tensors = [W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, HS, CS, HREC, A, XH, RS, CH,
               dY, dh_n, dc_n]
    nbytes = _nbytes(*tensors) + 2 * _nbytes(HREC[:-1]) * W.shape[0] // max(1, HS.shape[2])
    return replay("matrix_scan_backward", lambda *a: _backward(*a, rates, flags), tensors,
                  (tuple(rates), tuple(flags)), nbytes)


@_backward_op.register_fake
def _(W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, HS, CS, HREC, A, XH, RS, CH, dY, dh_n, dc_n,
      rates, flags):
    lstm = flags[0]
    T, B, H = HS.shape[0] - 1, HS.shape[1], HS.shape[2]
    like = lambda w: HREC.new_empty(0) if w is None else w.new_empty(w.shape)  # noqa: E731
    return [HREC.new_empty(T, B, W.shape[0]), HREC.new_empty(B, H),
            HREC.new_empty(B, H) if lstm else HREC.new_empty(0), like(W), like(b_hh), like(g_hh),
            like(g_c), like(b_c)]


def _setup(ctx, inputs, output):
    xp, h0, c0, W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, rates, flags = inputs
    ctx.save_for_backward(W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, *output[1:3], *output[3:],
                          xp, h0, c0)
    ctx.rates, ctx.flags, ctx.has_c0 = list(rates), list(flags), c0 is not None
    ctx.reference = take_reference()


def _grad(ctx, grads):
    *saved, xp, h0, c0 = ctx.saved_tensors
    W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, h_n, c_n, *bufs = saved
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        # create_graph=True: differentiate the call's reference (kernels._higher)
        ts = [xp, h0, c0 if ctx.has_c0 else None, W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc]
        needs = [bool(n) for n in ctx.needs_input_grad[:12]]
        g = reference_vjp("rnnkit_triton::matrix_scan", ctx.reference, ts, needs, grads[:3])
        return (*g[:8], None, None, None, None, None, None)
    dY, dh_n, dc_n = (torch.zeros_like(o) if g is None else g
                      for g, o in zip(grads[:3], (bufs[2][1:], h_n, c_n)))
    g = _backward_op(W, b_hh, g_hh, g_c, b_c, lengths, m, zh, zc, *bufs, dY, dh_n, dc_n,
                     ctx.rates, ctx.flags)
    dxp, dh0, dc0, dW, *rest = g
    db, dg, dgc, dbc = (None if w is None else r for r, w in zip(rest, (b_hh, g_hh, g_c, b_c)))
    return (dxp, dh0, dc0 if ctx.has_c0 else None, dW, db, dg, dgc, dbc,
            None, None, None, None, None, None)


_scan_op.register_autograd(_grad, setup_context=_setup)


def matrix_scan(cell, p, xp: Tensor, state, lengths: Tensor, full: bool,
                rec_mask: Tensor | None, zoneout) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run an LSTM/GRU (or LayerNorm) cell over ``xp`` (T, B, G*H); see :func:`triton_scan`."""
    lstm = cell.kernel_kind in ("lstm", "ln_lstm")
    ln = cell.kernel_kind in ("ln_lstm", "ln_gru")
    xp = xp.contiguous()
    h0 = state[0].to(xp.dtype).contiguous()
    c0 = state[1].to(xp.dtype).contiguous() if lstm else None
    zoneout = tuple(zoneout) if zoneout is not None else (None,) * len(state)
    if len(zoneout) != len(state):
        raise ValueError(f"zoneout: expected one entry per state tensor ({len(state)}), "
                         f"got {len(zoneout)}")
    keeps, rates = [None, None], [0.0, 0.0]
    for i, z in enumerate(zoneout):
        if isinstance(z, Tensor):
            if z.shape != (xp.shape[0], *state[i].shape):
                raise ValueError(f"zoneout[{i}]: expected a (T, B, S) = "
                                 f"{(xp.shape[0], *state[i].shape)} tensor, got {tuple(z.shape)}")
            keeps[i] = z.to(torch.float32).contiguous()
        elif z is not None:
            rates[i] = float(z)
    m = None if rec_mask is None else rec_mask.to(torch.float32).contiguous()
    weights = (p["weight_hh"], p.get("bias_hh"), p.get("ln_hh_weight"), p.get("ln_c_weight"),
               p.get("ln_c_bias"))
    need = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (xp, h0, c0, *weights))
    names = ("weight_hh", "bias_hh", "ln_hh_weight", "ln_c_weight", "ln_c_bias")

    def reference(ts):  # ts = the op's tensors [xp, h0, c0, *weights, lengths, m, zh, zc]
        x, h, c, *ws, lens, m_, zh, zc = ts
        q = {n: w for n, w in zip(names, ws) if w is not None}
        zones = tuple(None if z is None else z.to(x.dtype) if isinstance(z, Tensor) else z
                      for z in zones_of([zh, zc][:len(state)], rates))
        ys, last = reference_scan(cell, q, x, (h, c) if lstm else (h,),
                                  length_mask(lens, x.shape[0]),
                                  None if m_ is None else m_.to(x.dtype), zones)
        return [ys, *last]

    with carrying(reference if need else None):
        out = _scan_op(xp, h0, c0, *weights, lengths, m, *keeps,
                       [*rates, getattr(cell, "eps", 1e-5)], [lstm, ln, full, need])
    return out[0], ((out[1], out[2]) if lstm else (out[1],))
