"""Triton scans of the elementwise recurrences: IndRNN, QRNN and SRU pooling, minGRU, minLSTM.

Each cell's recurrence acts on each hidden unit alone once ``cell.project``
has run the input GEMM over all T, so one program owns one batch row ``b``
and a block of ``BLOCK`` hidden units and runs the whole time loop in
registers (``s`` = the state, float32)::

    IndRNN      s = relu(xp + u * m * s)                      y = s
    QRNN f      s = f * s + (1 - f) * z                       y = s
    QRNN fo     s = f * s + (1 - f) * z                       y = o * s
    QRNN ifo    s = f * s + i * z                             y = o * s
    SRU         f = sigmoid(a_f + v_f s); r = sigmoid(a_r + v_r s)
                s = f * s + (1 - f) * x~                      y = r * s + (1 - r) * x^
    minGRU      z = sigmoid(k_z); s = (1 - z) * s + z * g(k_h)                 y = s
    minLSTM     f' = sigmoid(-d), i' = sigmoid(d), d = softplus(-k_f) - softplus(-k_i)
                s = f' * s + i' * g(k_h)                      y = s

(the gate columns of ``xp`` as each cell's ``project`` lays them out; ``m`` the
recurrent-dropout mask, IndRNN only). A sequence of length ``L`` runs steps
``0..L-1`` only: its outputs past ``L`` stay zero and its final state is the
state after step ``L - 1``, exactly :func:`rnnkit.kernels.loop.scan`'s masking.

Saved for the backward: the outputs ``Y`` and, where the state is not the
output (QRNN fo/ifo, SRU), the states ``C``, both in the input dtype. The
backward kernel runs the same programs from step ``L - 1`` down to 0, recomputes
the gates from ``xp`` and the previous state, and carries ``ds = dLoss/ds_t``
in float32 registers; the elementwise recurrent weights (IndRNN's ``u``, SRU's
``v_f, v_r``) get a float32 partial sum per (batch row, unit), summed over the
batch afterwards (deterministic: no atomics).

Shapes: ``T`` time, ``B`` batch, ``H`` hidden, ``G`` gate blocks of ``xp``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .._higher import carrying, reference_vjp, take_reference
from ._common import scan_block, sigmoid, softplus

__all__ = ["elementwise_scan", "KINDS"]

IND = tl.constexpr(0)
QRNN_F = tl.constexpr(1)
QRNN_FO = tl.constexpr(2)
QRNN_IFO = tl.constexpr(3)
SRU = tl.constexpr(4)
MINGRU = tl.constexpr(5)
MINLSTM = tl.constexpr(6)

#: kind -> (gate blocks G of xp, recurrent weight vectors, whether the state differs from y)
KINDS = {0: (1, 1, False), 1: (2, 0, False), 2: (3, 0, True), 3: (4, 0, True),
         4: (4, 2, True), 5: (2, 0, False), 6: (3, 0, False)}


@triton.jit
def _g(x):
    """minGRU/minLSTM's positive activation: x + 1/2 for x >= 0, sigmoid(x) below."""
    return tl.where(x >= 0, x + 0.5, sigmoid(x))


@triton.jit
def _dg(x):
    s = sigmoid(x)
    return tl.where(x >= 0, 1.0, s * (1.0 - s))


@triton.jit
def _scan_fwd(XP, S0, W, M, LEN, Y, C, SN, B, H,
              KIND: tl.constexpr, G: tl.constexpr, HAS_M: tl.constexpr,
              SAVE_C: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = j < H
    L = tl.load(LEN + b)
    s = tl.load(S0 + b * H + j, mask=live, other=0.0).to(tl.float32)
    if KIND == IND:
        u = tl.load(W + j, mask=live, other=0.0).to(tl.float32)
        if HAS_M:
            u = u * tl.load(M + b * H + j, mask=live, other=0.0).to(tl.float32)
    if KIND == SRU:
        v_f = tl.load(W + j, mask=live, other=0.0).to(tl.float32)
        v_r = tl.load(W + H + j, mask=live, other=0.0).to(tl.float32)
    for t in range(0, L):
        x = XP + (t * B + b) * (G * H) + j  # gate k of step t at x + k * H
        o = (t * B + b) * H + j
        if KIND == IND:
            s = tl.maximum(tl.load(x, mask=live, other=0.0).to(tl.float32) + u * s, 0.0)
            y = s
        elif KIND == SRU:
            x_t = tl.load(x, mask=live, other=0.0).to(tl.float32)
            f = sigmoid(tl.load(x + H, mask=live, other=0.0).to(tl.float32) + v_f * s)
            r = sigmoid(tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32) + v_r * s)
            s = f * s + (1.0 - f) * x_t
            y = r * s + (1.0 - r) * tl.load(x + 3 * H, mask=live, other=0.0).to(tl.float32)
        elif KIND == MINGRU:
            z = sigmoid(tl.load(x, mask=live, other=0.0).to(tl.float32))
            s = (1.0 - z) * s + z * _g(tl.load(x + H, mask=live, other=0.0).to(tl.float32))
            y = s
        elif KIND == MINLSTM:
            k_f = tl.load(x, mask=live, other=0.0).to(tl.float32)
            k_i = tl.load(x + H, mask=live, other=0.0).to(tl.float32)
            d = softplus(-k_f) - softplus(-k_i)  # log(i / f)
            h_t = _g(tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32))
            s = sigmoid(-d) * s + sigmoid(d) * h_t
            y = s
        else:  # QRNN: z, f[, o[, i]]
            z = tl.load(x, mask=live, other=0.0).to(tl.float32)
            f = tl.load(x + H, mask=live, other=0.0).to(tl.float32)
            if KIND == QRNN_IFO:
                s = f * s + tl.load(x + 3 * H, mask=live, other=0.0).to(tl.float32) * z
            else:
                s = f * s + (1.0 - f) * z
            if KIND == QRNN_F:
                y = s
            else:
                y = tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32) * s
        tl.store(Y + o, y.to(Y.dtype.element_ty), mask=live)
        if SAVE_C:
            tl.store(C + o, s.to(C.dtype.element_ty), mask=live)
    tl.store(SN + b * H + j, s.to(SN.dtype.element_ty), mask=live)


@triton.jit
def _scan_bwd(XP, S0, W, M, LEN, S, C, DY, DSN, DXP, DS0, DW, B, H,
              KIND: tl.constexpr, G: tl.constexpr, HAS_M: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = j < H
    L = tl.load(LEN + b)
    ds = tl.load(DSN + b * H + j, mask=live, other=0.0).to(tl.float32)  # dLoss/ds_t
    acc_1 = tl.zeros([BLOCK], dtype=tl.float32)  # u (IndRNN) or v_f (SRU)
    acc_2 = tl.zeros([BLOCK], dtype=tl.float32)  # v_r (SRU)
    if KIND == IND:
        u = tl.load(W + j, mask=live, other=0.0).to(tl.float32)
        m = tl.full([BLOCK], 1.0, tl.float32)
        if HAS_M:
            m = tl.load(M + b * H + j, mask=live, other=0.0).to(tl.float32)
    if KIND == SRU:
        v_f = tl.load(W + j, mask=live, other=0.0).to(tl.float32)
        v_r = tl.load(W + H + j, mask=live, other=0.0).to(tl.float32)
    for k in range(0, L):
        t = L - 1 - k
        x = XP + (t * B + b) * (G * H) + j
        dx = DXP + (t * B + b) * (G * H) + j
        o = (t * B + b) * H + j
        dy = tl.load(DY + o, mask=live, other=0.0).to(tl.float32)
        if t > 0:  # the previous state s_{t-1}
            sp = tl.load(S + o - B * H, mask=live, other=0.0).to(tl.float32)
        else:
            sp = tl.load(S0 + b * H + j, mask=live, other=0.0).to(tl.float32)
        if KIND == IND:
            s_t = tl.load(S + o, mask=live, other=0.0).to(tl.float32)
            da = tl.where(s_t > 0, ds + dy, 0.0)
            tl.store(dx, da.to(DXP.dtype.element_ty), mask=live)
            acc_1 += da * m * sp
            ds = da * u * m
        elif KIND == SRU:
            x_t = tl.load(x, mask=live, other=0.0).to(tl.float32)
            f = sigmoid(tl.load(x + H, mask=live, other=0.0).to(tl.float32) + v_f * sp)
            r = sigmoid(tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32) + v_r * sp)
            x_h = tl.load(x + 3 * H, mask=live, other=0.0).to(tl.float32)
            s_t = tl.load(C + o, mask=live, other=0.0).to(tl.float32)
            gc = ds + dy * r
            da_f = gc * (sp - x_t) * f * (1.0 - f)
            da_r = dy * (s_t - x_h) * r * (1.0 - r)
            tl.store(dx, (gc * (1.0 - f)).to(DXP.dtype.element_ty), mask=live)
            tl.store(dx + H, da_f.to(DXP.dtype.element_ty), mask=live)
            tl.store(dx + 2 * H, da_r.to(DXP.dtype.element_ty), mask=live)
            tl.store(dx + 3 * H, (dy * (1.0 - r)).to(DXP.dtype.element_ty), mask=live)
            acc_1 += da_f * sp
            acc_2 += da_r * sp
            ds = gc * f + da_f * v_f + da_r * v_r
        elif KIND == MINGRU:
            k_z = tl.load(x, mask=live, other=0.0).to(tl.float32)
            k_h = tl.load(x + H, mask=live, other=0.0).to(tl.float32)
            z = sigmoid(k_z)
            gs = ds + dy
            tl.store(dx, (gs * (_g(k_h) - sp) * z * (1.0 - z)).to(DXP.dtype.element_ty),
                     mask=live)
            tl.store(dx + H, (gs * z * _dg(k_h)).to(DXP.dtype.element_ty), mask=live)
            ds = gs * (1.0 - z)
        elif KIND == MINLSTM:
            k_f = tl.load(x, mask=live, other=0.0).to(tl.float32)
            k_i = tl.load(x + H, mask=live, other=0.0).to(tl.float32)
            k_h = tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32)
            d = softplus(-k_f) - softplus(-k_i)
            f_n, i_n = sigmoid(-d), sigmoid(d)  # f / (f + i), i / (f + i)
            gs = ds + dy
            q = gs * (sp - _g(k_h)) * f_n * i_n  # dLoss/d(-d)
            tl.store(dx, (q * (1.0 - sigmoid(k_f))).to(DXP.dtype.element_ty), mask=live)
            tl.store(dx + H, (-q * (1.0 - sigmoid(k_i))).to(DXP.dtype.element_ty), mask=live)
            tl.store(dx + 2 * H, (gs * i_n * _dg(k_h)).to(DXP.dtype.element_ty), mask=live)
            ds = gs * f_n
        else:  # QRNN
            z = tl.load(x, mask=live, other=0.0).to(tl.float32)
            f = tl.load(x + H, mask=live, other=0.0).to(tl.float32)
            if KIND == QRNN_F:
                gc = ds + dy
            else:
                o_g = tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32)
                s_t = tl.load(C + o, mask=live, other=0.0).to(tl.float32)
                tl.store(dx + 2 * H, (dy * s_t).to(DXP.dtype.element_ty), mask=live)
                gc = ds + dy * o_g
            if KIND == QRNN_IFO:
                i = tl.load(x + 3 * H, mask=live, other=0.0).to(tl.float32)
                tl.store(dx, (gc * i).to(DXP.dtype.element_ty), mask=live)
                tl.store(dx + H, (gc * sp).to(DXP.dtype.element_ty), mask=live)
                tl.store(dx + 3 * H, (gc * z).to(DXP.dtype.element_ty), mask=live)
            else:
                tl.store(dx, (gc * (1.0 - f)).to(DXP.dtype.element_ty), mask=live)
                tl.store(dx + H, (gc * (sp - z)).to(DXP.dtype.element_ty), mask=live)
            ds = gc * f
    tl.store(DS0 + b * H + j, ds.to(DS0.dtype.element_ty), mask=live)
    if KIND == IND:
        tl.store(DW + b * H + j, acc_1, mask=live)
    if KIND == SRU:
        tl.store(DW + b * 2 * H + j, acc_1, mask=live)
        tl.store(DW + b * 2 * H + H + j, acc_2, mask=live)


def _forward(xp: Tensor, s0: Tensor, w: Tensor | None, m: Tensor | None, lengths: Tensor,
             kind: int, full: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Y (T, B, H), s_n (B, H) and the states C (T, B, H) where they are not Y (else empty)."""
    T, B, GH = xp.shape
    G, _, save_c = KINDS[kind]
    H = GH // G
    new = torch.empty if full else torch.zeros  # outputs past a length stay 0
    Y = new(T, B, H, dtype=xp.dtype, device=xp.device)
    C = new(T, B, H, dtype=xp.dtype, device=xp.device) if save_c else xp.new_empty(0)
    s_n = torch.empty_like(s0)
    BLOCK = scan_block(B, H)
    _scan_fwd[(B, triton.cdiv(H, BLOCK))](
        xp, s0, s0 if w is None else w, s0 if m is None else m, lengths, Y, C if save_c else Y,
        s_n, B, H, KIND=kind, G=G, HAS_M=m is not None, SAVE_C=save_c, BLOCK=BLOCK,
        num_warps=max(1, BLOCK // 64))
    return Y, s_n, C


def _backward(xp, s0, w, m, lengths, Y, C, dY, ds_n, kind: int, full: bool):
    """(dxp, ds0, dw): dw (n_w * H,) in w's dtype, or empty when the cell has no such weight."""
    T, B, GH = xp.shape
    G, n_w, save_c = KINDS[kind]
    H = GH // G
    dxp = (torch.empty_like if full else torch.zeros_like)(xp)
    ds0 = torch.empty_like(s0)
    dW = torch.empty(B, max(n_w, 1) * H, dtype=torch.float32, device=xp.device)
    BLOCK = scan_block(B, H)
    S = C if save_c else Y  # the states s_t
    _scan_bwd[(B, triton.cdiv(H, BLOCK))](
        xp, s0, s0 if w is None else w, s0 if m is None else m, lengths, S, S,
        dY.contiguous(), ds_n.contiguous(), dxp, ds0, dW, B, H, KIND=kind, G=G,
        HAS_M=m is not None, BLOCK=BLOCK, num_warps=max(1, BLOCK // 64))
    dw = xp.new_empty(0) if w is None else dW.sum(0).to(w.dtype)  # (B, n_w*H) -> (n_w*H,)
    return dxp, ds0, dw


# The scan as a pair of torch.library ops (opaque to torch.compile/export, which use the
# fake kernels for shapes), the backward registered as the forward op's autograd formula.
@torch.library.custom_op("rnnkit_triton::elementwise_scan", mutates_args=())
def _scan_op(xp: Tensor, s0: Tensor, w: Tensor | None, m: Tensor | None, lengths: Tensor,
             kind: int, full: bool) -> tuple[Tensor, Tensor, Tensor]:
    return _forward(xp, s0, w, m, lengths, kind, full)


@_scan_op.register_fake
def _(xp, s0, w, m, lengths, kind, full):
    T, B, GH = xp.shape
    G, _, save_c = KINDS[kind]
    C = xp.new_empty(T, B, GH // G) if save_c else xp.new_empty(0)
    return xp.new_empty(T, B, GH // G), s0.new_empty(s0.shape), C


@torch.library.custom_op("rnnkit_triton::elementwise_scan_backward", mutates_args=())
def _backward_op(xp: Tensor, s0: Tensor, w: Tensor | None, m: Tensor | None, lengths: Tensor,
                 Y: Tensor, C: Tensor, dY: Tensor, ds_n: Tensor, kind: int,
                 full: bool) -> tuple[Tensor, Tensor, Tensor]:
    return _backward(xp, s0, w, m, lengths, Y, C, dY, ds_n, kind, full)


@_backward_op.register_fake
def _(xp, s0, w, m, lengths, Y, C, dY, ds_n, kind, full):
    dw = xp.new_empty(0) if w is None else w.new_empty(w.shape)
    return xp.new_empty(xp.shape), s0.new_empty(s0.shape), dw


def _setup(ctx, inputs, output):
    xp, s0, w, m, lengths, kind, full = inputs
    Y, _, C = output
    ctx.save_for_backward(xp, s0, w, m, lengths, Y, C)
    ctx.kind, ctx.full = kind, full
    ctx.reference = take_reference()


def _grad(ctx, dY, ds_n, _dC):
    xp, s0, w, m, lengths, Y, C = ctx.saved_tensors
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        # create_graph=True: differentiate the call's reference (kernels._higher)
        needs = [bool(n) for n in ctx.needs_input_grad[:5]]
        g = reference_vjp("rnnkit_triton::elementwise_scan", ctx.reference,
                          [xp, s0, w, m, lengths], needs, [dY, ds_n])
        return (*g[:3], None, None, None, None)
    dY = torch.zeros_like(Y) if dY is None else dY
    ds_n = torch.zeros_like(s0) if ds_n is None else ds_n
    dxp, ds0, dw = _backward_op(xp, s0, w, m, lengths, Y, C, dY, ds_n, ctx.kind, ctx.full)
    return dxp, ds0, (None if w is None else dw), None, None, None, None


_scan_op.register_autograd(_grad, setup_context=_setup)


def elementwise_scan(kind: int, xp: Tensor, s0: Tensor, w: Tensor | None,
                     m: Tensor | None, lengths: Tensor, full: bool,
                     reference=None) -> tuple[Tensor, Tensor]:
    """Run one elementwise recurrence over ``xp`` (T, B, G*H) from ``s0`` (B, H).

    Args:
        kind: a key of :data:`KINDS` (see the module docstring).
        w: IndRNN's ``u`` (H,) or SRU's ``weight_c`` (2H,); None for the others.
        m: IndRNN's (B, H) recurrent-dropout mask or None.
        lengths: (B,) int32 on the device; ``full``: every length is T.
        reference: ``[Y, s_n]`` from the op's tensors ``[xp, s0, w, m, lengths]`` in
            differentiable ops, for ``create_graph=True`` backwards (:mod:`.._higher`).
    Returns:
        Y (T, B, H) (zero past each length) and the final state (B, H).
    """
    xp = xp.contiguous()
    s0 = s0.to(xp.dtype).contiguous()
    if m is not None:
        m = m.to(xp.dtype).contiguous()
    if w is not None:
        w = w.contiguous()
    with carrying(reference):
        Y, s_n, _ = _scan_op(xp, s0, w, m, lengths, kind, full)
    return Y, s_n
