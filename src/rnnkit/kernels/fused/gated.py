"""Time-chunked fused scans: the gated linear recurrences (QRNN pooling, minGRU, minLSTM) and SRU.

The first three are ``s_t = a_t * s_{t-1} + b_t`` with ``a, b`` elementwise functions of
the layer's pre-activations ``u`` (T, B, G*H) (one GEMM over all T, outside):

    minGRU   u = [k_z, k_h]          a = 1 - sigmoid(k_z),   b = sigmoid(k_z) g(k_h)
    minLSTM  u = [k_f, k_i, k_h]     f, i = sigmoid(k_f), sigmoid(k_i)
                                     a = f / (f + i),        b = i / (f + i) g(k_h)
    QRNN     u = [u_z, u_f, u_o, u_i]  z = tanh(u_z), f, o, i = sigmoid(u_f, u_o, u_i)
                                     a = f,  b = (1 - f) z  (f-, fo-pooling) or i z (ifo)
                                     output o * c_t (fo, ifo) or c_t (f)

Zoneout keeps the recurrence linear, ``a' = a + k (1 - a)``, ``b' = (1 - k) b``;
QRNN's output then reads the new, un-zoned ``c~_t = a_t c_{t-1} + b_t``.

Why chunks. Computed over all T at once, every gate, coefficient and their
gradients is a (T, B, H) temporary: at T=1000, B=32, H=512 each is 64 MB, freshly
mapped (page faults) and streamed through memory, and a dozen of them cost more
than the GEMMs. Here the forward computes the gates of ``tc`` steps at a time
(a chunk of about :data:`CHUNK_ELEMS` numbers, cache-sized), runs the scan over
them, and keeps only the states; the backward walks the chunks in reverse,
recomputes the chunk's gates from ``u`` and writes the chunk's ``du`` into one
(T, B, G*H) tensor. The only whole-sequence tensors are ``u``, the states, the
output and ``du``.

Backward through time: ``dS_t = G_t + a'_{t+1} dS_{t+1} + Q_{t+1}`` where ``G`` is
the gradient reaching ``s_t`` from the output, ``Q_t = a_t dc~_t`` that reaching
``s_{t-1}`` through a zoned QRNN's output, then ``da' = dS s_{t-1}``, ``db' = dS``.

SRU (:func:`sru_chunked_scan`) is chunked the same way; its forget gate reads
``c_{t-1}``, so its Jacobian is not just ``a`` (see the comment above its kernel).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import compiled
from .._higher import Reference
from . import _csteps
from ._op import register, run
from ._steps import Steps, buffers, last_state, lasts, tanh_
from .lstm import _grad_buf

__all__ = ["CHUNK_ELEMS", "gated_scan", "sru_chunked_scan", "GATED_KINDS"]

#: about how many numbers of ``u`` one chunk holds (1 MB of float32)
CHUNK_ELEMS = 1 << 18

#: kind -> (gates in u, has an output gate o)
GATED_KINDS = {"mingru": (2, False), "minlstm": (3, False), "qrnn_f": (2, False),
               "qrnn_fo": (3, True), "qrnn_ifo": (4, True)}
#: kind -> its number in the compiled loops (kernels/compiled/elementwise.cpp) and its family
_COMPILED = {"mingru": (0, "mingru"), "minlstm": (1, "minlstm"), "qrnn_f": (2, "qrnn"),
             "qrnn_fo": (3, "qrnn"), "qrnn_ifo": (4, "qrnn")}


def _chunk(T: int, B: int, width: int) -> int:
    return max(1, min(T, CHUNK_ELEMS // max(1, B * width)))


def _min_g(x: Tensor) -> tuple[Tensor, Tensor]:
    """minGRU/minLSTM's ``g`` (``x + 1/2`` for ``x >= 0``, ``sigmoid(x)`` below) as
    ``relu(x) + sigmoid(min(x, 0))``, bit for bit the same, and ``m = min(x, 0)``.

    (``torch.where`` and comparisons are not vectorised on CPU and are much slower than
    ``relu``/``sigmoid`` per element: docs/kernels.md, "Small choices".)
    """
    m = torch.clamp(x, max=0)
    return torch.relu(x).add_(torch.sigmoid(m)), m


def _min_g_grad(m: Tensor, g: Tensor) -> Tensor:
    """``g'(x)`` from ``m = min(x, 0)`` and ``g``: 1 for ``x >= 0``, ``s (1 - s)`` below.

    With ``s = sigmoid(m)`` (0.5 for ``x >= 0``): ``s (1 - s) + 0.75 [x >= 0]``, and
    ``[x >= 0] = 1 + sign(m)`` (m is 0 or negative).
    """
    s = torch.sigmoid(m)
    return _sig_grad(s).add_(torch.sign(m).add_(1), alpha=0.75)


def _gates(kind: str, u: Tensor):
    """(tc, B, G*H) pre-activations -> ``a``, ``b`` and what the backward reuses."""
    G = GATED_KINDS[kind][0]
    parts = u.chunk(G, dim=-1)
    if kind == "mingru":
        z = torch.sigmoid(parts[0])
        g, m = _min_g(parts[1])
        return torch.rsub(z, 1), z * g, (z, g, m)
    if kind == "minlstm":
        f, i = torch.sigmoid(parts[0]), torch.sigmoid(parts[1])
        g, m = _min_g(parts[2])
        s = f + i
        return f / s, (i / s).mul_(g), (f, i, s, g, m)
    z, f = tanh_(parts[0], out=torch.empty_like(parts[0])), torch.sigmoid(parts[1])
    o = torch.sigmoid(parts[2]) if G > 2 else None
    if kind == "qrnn_ifo":
        i = torch.sigmoid(parts[3])
        return f, i * z, (z, f, o, i)
    return f, torch.rsub(f, 1).mul_(z), (z, f, o, None)


def _sig_grad(y: Tensor) -> Tensor:
    """``y (1 - y)``: the sigmoid's derivative from its output."""
    return torch.rsub(y, 1).mul_(y)


def _gates_backward(kind: str, u: Tensor, aux, da: Tensor, db: Tensor, do: Tensor | None,
                    out: Tensor) -> None:
    """Write ``du`` of the chunk into ``out`` (tc, B, G*H) from ``da``, ``db`` (and ``do``)."""
    G = GATED_KINDS[kind][0]
    du = out.chunk(G, dim=-1)
    if kind == "mingru":
        z, g, m = aux
        dz = torch.mul(db, g).sub_(da)
        torch.mul(dz, _sig_grad(z), out=du[0])
        torch.mul(db.mul(z), _min_g_grad(m, g), out=du[1])
        return
    if kind == "minlstm":
        f, i, s, g, m = aux
        t = torch.mul(db, g).sub_(da).div_(s * s)  # df = -t i, di = t f
        torch.mul(t * i, _sig_grad(f), out=du[0]).neg_()
        torch.mul(t * f, _sig_grad(i), out=du[1])
        torch.mul(db * i / s, _min_g_grad(m, g), out=du[2])
        return
    z, f, o, i = aux
    if kind == "qrnn_ifo":
        df, dz, di = da, db * i, db * z
        torch.mul(di, _sig_grad(i), out=du[3])
    else:
        df, dz = torch.mul(db, z).neg_().add_(da), torch.rsub(f, 1).mul_(db)
    torch.mul(dz, torch.mul(z, z).neg_().add_(1), out=du[0])
    torch.mul(df, _sig_grad(f), out=du[1])
    if o is not None:
        torch.mul(do, _sig_grad(o), out=du[2])


def _prev(S: Tensor, s0: Tensor, t0: int, t1: int) -> Tensor:
    """(t1 - t0, B, S): the state before each step of the chunk (a view unless t0 = 0)."""
    if t0 > 0:
        return S[t0 - 1:t1 - 1]
    return torch.cat((s0.unsqueeze(0), S[:t1 - 1]))


def _live(steps: Steps, t0: int, t1: int, like: Tensor) -> Tensor | None:
    """(tc, B, 1) 0/1 of the chunk's live steps (None: all live)."""
    if steps.last is None:
        return None
    t = torch.arange(t0, t1, device=like.device).view(-1, 1, 1)
    return (t <= steps.last.view(1, -1, 1)).to(like.dtype)


def _zoned(a: Tensor, b: Tensor, k, t0: int, t1: int):
    if k is None:
        return a, b, None
    kc = k[t0:t1] if isinstance(k, Tensor) else k
    return a + kc * (1 - a), (1 - kc) * b, kc


def _reverse_chunk(dS: Tensor, J: Tensor, Q: Tensor | None, gn: Tensor | None, last: Tensor,
                   carry: Tensor | None, t0: int, t1: int, sizes) -> Tensor:
    """Backward through time over one chunk, in place: ``dS`` (tc, B, S) holds the direct
    gradients of the chunk's states and leaves with their totals.

    Adds each row's final-state gradient ``gn`` at its last step and ``carry`` (what
    reaches the chunk's last state from the next chunk) at the end, runs
    ``dS_{t-1} += J_t dS_t + Q_t`` over the live rows, and returns the carry for the
    chunk before: ``J_{t0} dS_{t0} + Q_{t0}``.
    """
    if gn is not None:
        sel = (last >= t0) & (last < t1)
        if bool(sel.any()):
            rows = sel.nonzero().squeeze(1)
            dS[last[rows] - t0, rows] += gn[rows]
    if carry is not None:
        dS[-1] += carry
    B = dS.shape[1]
    for t in range(t1 - 1, t0, -1):
        j = t - t0
        n = B if sizes is None else sizes[t]
        if n:
            dS[j - 1, :n].addcmul_(J[j, :n], dS[j, :n])
            if Q is not None:
                dS[j - 1, :n] += Q[j, :n]
    out = J[0] * dS[0]
    return out if Q is None else out.add_(Q[0])


def _forward(ts, cfg, kind):
    u, s0, zk = ts
    k = cfg.zone(zk, 0)
    T, B, GH = u.shape
    S = s0.shape[1]
    has_o = GATED_KINDS[kind][1]
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, u)  # zeros with lengths: padded rows stay 0
    Hs = new(T, B, S)
    Y = new(T, B, S) if has_o else Hs
    num, family = _COMPILED[kind]
    if compiled.usable(family, u, s0, _csteps.masks(k)):  # the whole loop compiled
        compiled.ext().gated_forward(num, u, s0, _csteps.masks(k), _csteps.rate(k),
                                     lasts(cfg.steps), Hs, Y)
        return [Y, last_state(Hs, s0, cfg.steps)], [Hs if has_o else None]
    tc = _chunk(T, B, GH)
    s = s0
    for t0 in range(0, T, tc):
        t1 = min(T, t0 + tc)
        a, b, aux = _gates(kind, u[t0:t1])
        a2, b2, _ = _zoned(a, b, k, t0, t1)
        for t in range(t0, t1):
            n = B if sizes is None else sizes[t]
            if n == B:
                torch.addcmul(b2[t - t0], a2[t - t0], s, out=Hs[t])
            elif n:
                torch.addcmul(b2[t - t0, :n], a2[t - t0, :n], s[:n], out=Hs[t, :n])
            s = Hs[t]
        if has_o:
            c_new = Hs[t0:t1] if k is None else torch.addcmul(b, a, _prev(Hs, s0, t0, t1))
            y = torch.mul(aux[2], c_new, out=Y[t0:t1])
            m = _live(cfg.steps, t0, t1, u)
            if m is not None:
                y.mul_(m)
    return [Y, last_state(Hs, s0, cfg.steps)], [Hs if has_o else None]


def _fake(ts, cfg, kind):
    u, s0 = ts[0], ts[1]
    shape = (*u.shape[:2], s0.shape[1])
    has_o = GATED_KINDS[kind][1]
    return [u.new_empty(shape), s0.new_empty(s0.shape)], [u.new_empty(shape) if has_o else None]


def _backward(ts, res, grads, cfg, need, kind):
    u, s0, zk = ts
    Y, _, Hs = res
    Hs = Y if Hs is None else Hs
    gY, gn = grads
    k = cfg.zone(zk, 0)
    steps = cfg.steps
    T, B, GH = u.shape
    has_o = GATED_KINDS[kind][1]
    sizes = steps.sizes
    num, family = _COMPILED[kind]
    gYc = None if gY is None else gY.contiguous()
    if compiled.usable(family, u, s0, Hs, gYc, _csteps.masks(k)):  # the whole loop compiled
        dU, ds0 = torch.empty_like(u), _grad_buf(s0, gn)
        compiled.ext().gated_backward(num, u, s0, _csteps.masks(k), _csteps.rate(k),
                                      lasts(steps), Hs, gYc, dU, ds0)
        return [dU if need[0] else None, ds0 if need[1] else None, None]
    dU = torch.empty_like(u) if need[0] else None
    last = steps.last if steps.last is not None else \
        torch.full((B,), T - 1, dtype=torch.long, device=u.device)
    carry = None  # gradient reaching the state before the chunk just done
    tc = _chunk(T, B, GH)
    for t0 in reversed(range(0, T, tc)):
        t1 = min(T, t0 + tc)
        uc = u[t0:t1]
        a, b, aux = _gates(kind, uc)
        a2, _, kc = _zoned(a, b, k, t0, t1)
        prev = _prev(Hs, s0, t0, t1)
        m = _live(steps, t0, t1, u)
        dS = torch.zeros_like(prev)
        Q = da_x = db_x = do = None
        if gY is not None:
            g = gY[t0:t1] if m is None else gY[t0:t1] * m
            if has_o:
                o = aux[2]
                c_new = Hs[t0:t1] if kc is None else torch.addcmul(b, a, prev)
                do = g * c_new
                dc_new = g * o
                if kc is None:
                    dS += dc_new
                else:  # c~_t = a_t s_{t-1} + b_t feeds the output
                    Q, da_x, db_x = a * dc_new, dc_new * prev, dc_new
            else:
                dS += g
        elif has_o:
            do = torch.zeros_like(prev)
        carry = _reverse_chunk(dS, a2, Q, gn, last, carry, t0, t1, sizes)
        if dU is not None:
            da, db = dS * prev, dS
            if kc is not None:
                one_k = 1 - kc
                da, db = da * one_k, db * one_k
            if da_x is not None:
                da, db = da + da_x, db + db_x
            _gates_backward(kind, uc, aux, da, db, do, dU[t0:t1])
    ds0 = None
    if need[1]:
        ds0 = carry
        if gn is not None:
            ds0 = torch.where((last >= 0).unsqueeze(1), ds0, gn)
    return [dU, ds0, None]


for _kind in GATED_KINDS:
    register(_kind, lambda ts, cfg, _k=_kind: _forward(ts, cfg, _k),
             lambda ts, res, grads, cfg, need, _k=_kind: _backward(ts, res, grads, cfg, need, _k),
             lambda ts, cfg, _k=_kind: _fake(ts, cfg, _k), n_out=2)


def gated_scan(kind: str, u: Tensor, s0: Tensor, steps: Steps, zone, rate: float = 0.0,
               reference: Reference | None = None):
    """Run ``kind`` over pre-activations ``u`` (T, B, G*H): outputs (T, B, H) and last state.

    ``zone`` is the (T, B, H) zoneout keep mask (training) or None, ``rate`` the
    zoneout rate used when there is no mask (evaluation; 0: no zoneout); ``reference``
    the outputs from ``[u, s0, zone]`` in differentiable ops (:mod:`rnnkit.kernels._higher`).
    """
    if kind not in GATED_KINDS:
        raise ValueError(f"gated_scan: kind must be one of {sorted(GATED_KINDS)}, got {kind!r}")
    Y, s_n = run(kind, [u, s0, zone], steps, [rate], reference)
    return Y, s_n


# ------------------------------------------------------------------ SRU
# xp = [x~, a_f, a_r, x^] (T, B, 4H) (a_f, a_r with their biases, x^ already times alpha):
#   f_t  = sigmoid(a_f + v_f c_{t-1}),  c~_t = lerp(x~_t, c_{t-1}, f_t),
#   c_t  = lerp(c~_t, c_{t-1}, k_t)
#   r_t  = sigmoid(a_r + v_r c_{t-1}),  h_t  = lerp(x^_t, c~_t, r_t)
# The loop runs f and c step by step; r and h run over each chunk after it. Backward:
#   J~_t = d c~_t / d c_{t-1} = f + (c_{t-1} - x~) f (1 - f) v_f,   J_t = k + (1 - k) J~_t
#   Q_t  = gradient reaching c_{t-1} beside the state path: through r (d a_r v_r) and, when
#          zoned, through the output's c~ (dc~_out J~_t).

def _sru_forward(ts, cfg):
    xp, v, c0, zk = ts
    k = cfg.zone(zk, 0)
    T, B, H4 = xp.shape
    H = H4 // 4
    sizes = cfg.steps.sizes
    new = buffers(cfg.steps, xp)  # zeros with lengths: padded rows stay 0
    C, Y = new(T, B, H), new(T, B, H)
    if compiled.usable("sru", xp, v, c0, _csteps.masks(k)):  # the whole loop compiled
        compiled.ext().sru_forward(xp, v, c0, _csteps.masks(k), _csteps.rate(k),
                                   lasts(cfg.steps), C, Y)
        return [Y, last_state(C, c0, cfg.steps)], [C]
    v_f, v_r = v.chunk(2)
    vf = v_f.expand(B, H)
    tc = _chunk(T, B, H4)
    Fc = new(tc, B, H)  # zeros with lengths: rows past their end are never written
    ct = xp.new_empty(B, H) if k is not None else None
    c = c0
    for t0 in range(0, T, tc):
        t1 = min(T, t0 + tc)
        xt, af, ar, xh = xp[t0:t1].chunk(4, dim=-1)
        for t in range(t0, t1):
            j, n = t - t0, B if sizes is None else sizes[t]
            if not n:
                continue
            f = torch.addcmul(af[j, :n], vf[:n], c[:n], out=Fc[j, :n]).sigmoid_()
            if k is None:
                torch.lerp(xt[j, :n], c[:n], f, out=C[t, :n])
            else:
                torch.lerp(xt[j, :n], c[:n], f, out=ct[:n])
                torch.lerp(ct[:n], c[:n], k if not isinstance(k, Tensor) else k[t, :n],
                           out=C[t, :n])
            c = C[t]
        tn = t1 - t0
        prev = _prev(C, c0, t0, t1)
        c_new = C[t0:t1] if k is None else torch.lerp(xt, prev, Fc[:tn])
        r = torch.addcmul(ar, v_r, prev).sigmoid_()
        y = torch.lerp(xh, c_new, r, out=Y[t0:t1])
        m = _live(cfg.steps, t0, t1, xp)
        if m is not None:
            y.mul_(m)
    return [Y, last_state(C, c0, cfg.steps)], [C]


def _sru_fake(ts, cfg):
    xp, c0 = ts[0], ts[2]
    shape = (*xp.shape[:2], c0.shape[1])
    return [xp.new_empty(shape), c0.new_empty(c0.shape)], [xp.new_empty(shape)]


def _sru_backward(ts, res, grads, cfg, need):
    xp, v, c0, zk = ts
    _, _, C = res
    gY, gn = grads
    k = cfg.zone(zk, 0)
    steps = cfg.steps
    T, B, H4 = xp.shape
    sizes = steps.sizes
    gYc = None if gY is None else gY.contiguous()
    if compiled.usable("sru", xp, v, c0, C, gYc, _csteps.masks(k)):  # the whole loop compiled
        dXP, dc0 = torch.empty_like(xp), _grad_buf(c0, gn)
        dv = xp.new_zeros((B, v.shape[0]), dtype=torch.float64)  # per row, summed below
        compiled.ext().sru_backward(xp, v, c0, _csteps.masks(k), _csteps.rate(k), lasts(steps),
                                    C, gYc, dXP, dc0, dv)
        return [dXP if need[0] else None, dv.sum(0).to(v.dtype) if need[1] else None,
                dc0 if need[2] else None, None]
    v_f, v_r = v.chunk(2)
    dXP = torch.empty_like(xp) if need[0] else None
    dv = torch.zeros_like(v) if need[1] else None
    last = steps.last if steps.last is not None else \
        torch.full((B,), T - 1, dtype=torch.long, device=xp.device)
    carry = None
    tc = _chunk(T, B, H4)
    for t0 in reversed(range(0, T, tc)):
        t1 = min(T, t0 + tc)
        xt, af, ar, xh = xp[t0:t1].chunk(4, dim=-1)
        prev = _prev(C, c0, t0, t1)
        f = torch.addcmul(af, v_f, prev).sigmoid_()
        r = torch.addcmul(ar, v_r, prev).sigmoid_()
        c_new = C[t0:t1] if k is None else torch.lerp(xt, prev, f)
        dfp = (prev - xt).mul_(_sig_grad(f))  # d c~ / d (pre-activation of f)
        Jt = torch.addcmul(f, dfp, v_f)  # d c~ / d c_{t-1}
        kc = None
        if k is not None:
            kc = k[t0:t1] if isinstance(k, Tensor) else k
            J = (1 - kc) * Jt + kc
        else:
            J = Jt
        m = _live(steps, t0, t1, xp)
        if gY is not None:
            dh = gY[t0:t1] if m is None else gY[t0:t1] * m
        else:
            dh = torch.zeros_like(prev)
        dc_out = dh * r  # gradient of c~ through the output
        dar = (c_new - xh).mul_(dh).mul_(_sig_grad(r))
        Q = dar * v_r
        if k is None:
            dS = dc_out.clone()
        else:
            Q.addcmul_(dc_out, Jt)
            dS = torch.zeros_like(prev)
        carry = _reverse_chunk(dS, J, Q, gn, last, carry, t0, t1, sizes)
        dct = dS if k is None else dS * (1 - kc) + dc_out  # gradient of c~
        if dXP is not None:
            dxt, daf, dar_out, dxh = dXP[t0:t1].chunk(4, dim=-1)
            torch.mul(dct, torch.rsub(f, 1), out=dxt)
            dpre = torch.mul(dct, dfp, out=daf)
            dar_out.copy_(dar)
            torch.mul(dh, torch.rsub(r, 1), out=dxh)
        else:
            dpre = dct * dfp
        if dv is not None:
            dv[:dv.shape[0] // 2] += (dpre * prev).sum((0, 1))
            dv[dv.shape[0] // 2:] += (dar * prev).sum((0, 1))
    ds0 = None
    if need[2]:
        ds0 = carry
        if gn is not None:
            ds0 = torch.where((last >= 0).unsqueeze(1), ds0, gn)
    return [dXP, dv, ds0, None]


register("sru_chunked", _sru_forward, _sru_backward, _sru_fake, n_out=2)


def sru_chunked_scan(xp: Tensor, v: Tensor, c0: Tensor, steps: Steps, zone, rate: float = 0.0,
                     reference: Reference | None = None):
    """SRU over ``xp = [x~, a_f, a_r, alpha x^]`` (T, B, 4H): outputs ``h`` and the last ``c``."""
    Y, c_n = run("sru_chunked", [xp, v, c0, zone], steps, [rate], reference)
    return Y, c_n
