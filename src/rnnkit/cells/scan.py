"""Linear recurrences ``h_t = a_t * h_{t-1} + b_t`` over all steps at once, and their adjoints.

The LRU, the RG-LRU and S6 (:mod:`rnnkit.cells.lru`, :mod:`rnnkit.cells.ssm`) reduce to this
recurrence, real or complex, with coefficients that read only the input. :func:`linear_scan`
runs it as a loop of one multiply-add per step on the CPU (:func:`use_sequential`), else as a
doubling (Hillis-Steele) scan within chunks and a short loop across them;
:func:`linear_recurrence` (real) and :func:`complex_recurrence` (complex, as real pairs) add
its derivatives, which are linear recurrences too: the adjoint runs the same scan backwards,

    g_t = conj(a_{t+1}) g_{t+1} + dL/dh_t,    dL/db_t = g_t,    dL/da_t = g_t conj(h_{t-1}),

and the tangent forwards, ``dh_t = a_t dh_{t-1} + da_t h_{t-1} + db_t``. Autograd through the
doubling steps keeps a graph of every level and spent most of its backward filling zeros for
the slices' gradients. Both are written in differentiable ops (these Functions included), so
every order of derivative, forward-mode AD and ``torch.func.vmap`` work.

Shapes: ``T`` time, ``B`` batch, ``S`` units.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import forward_ad_active, functorch_active

__all__ = ["linear_scan", "linear_recurrence", "complex_recurrence", "adjoint_scan",
           "use_sequential"]

Pair = tuple[Tensor, Tensor]  # a complex tensor as (real part, imaginary part)
Z = Tensor | Pair  # a real tensor, or a complex one as a pair

# Inside the scan every value is a tuple of parts: (x,) when real, (re, im) when complex.


def _mul(x: tuple, y: tuple) -> tuple:
    if len(x) == 1:
        return (x[0] * y[0],)
    return x[0] * y[0] - x[1] * y[1], x[0] * y[1] + x[1] * y[0]


def _add(x: tuple, y: tuple) -> tuple:
    return tuple(p + q for p, q in zip(x, y))


def _at(x: tuple, index) -> tuple:
    return tuple(v[index] for v in x)


def _cat(x: tuple, y: tuple, dim: int) -> tuple:
    return tuple(torch.cat([p, q], dim) for p, q in zip(x, y))


def _scan_within(a: tuple, b: tuple) -> tuple[tuple, tuple]:
    """Inclusive scan along dim 1 of ``(a_t, b_t)`` under ``(a1, b1), (a2, b2) -> (a2 a1,
    a2 b1 + b2)``, in log2(C) doubling steps (Hillis and Steele): returns the products of
    ``a`` up to each step, and each ``h_t`` from a zero state."""
    C, d = a[0].shape[1], 1
    while d < C:  # each step adds the partial result from d steps back
        head, late, early = (slice(None), slice(None, d)), (slice(None), slice(d, None)), \
            (slice(None), slice(None, -d))
        b = _cat(_at(b, head), _add(_mul(_at(a, late), _at(b, early)), _at(b, late)), 1)
        a = _cat(_at(a, head), _mul(_at(a, late), _at(a, early)), 1)
        d *= 2
    return a, b


#: On the CPU a loop of one fused multiply-add per step beats the doubling scan once a step
#: holds this many elements (B * S): the doubling's log2(chunk) passes over the whole (T, B, S)
#: tensor leave the cache. Forward, T=1000: loop/doubling time 0.81 (1 thread) and 1.20 (2) at
#: 256 elements, 0.44 and 0.66 at 512, 0.25 and 0.38 at 1024; at T=1000, B=8, S=1024 the
#: forward+backward is 7.1x (1 thread) and 5.8x (2) faster (2-core Xeon, torch 2.13, ``python
#: benchmarks/bench_scans.py``, ``bench_scans_xeon2_s33.json``). Below it the loop's per-step
#: call costs more; at 2 threads it wins only from 512.
SEQUENTIAL_MIN_ELEMENTS = 256


def _into_buffer(*ts: Tensor) -> bool:
    """Whether a step loop may write its steps into one buffer (``out=``) rather than stack
    them: plain tensors (no vmap's batched ones, old or new, no tensor subclass), no graph to
    record, no forward-mode AD, no torch.compile trace. It saves one copy of the (T, B, S)
    result."""
    if torch.compiler.is_compiling():
        return False
    return not (functorch_active() or forward_ad_active()
                or any(torch._C._dispatch_isTensorSubclassLike(t) for t in ts)
                or (torch.is_grad_enabled() and any(t.requires_grad for t in ts)))


def _steps(like: Tensor, step, order, buffer: bool) -> Tensor:
    """``h = step(t, h, out)`` for t in ``order`` (``h`` None at the first), every ``h``
    kept in a tensor shaped as ``like``: with ``buffer``, each step writes into its row of one
    ``out`` (see :func:`_into_buffer`), else the steps are stacked."""
    if buffer:
        out = torch.empty_like(like)
        h = None
        for t in order:
            h = step(t, h, out[t])
        return out
    hs = [None] * like.shape[0]
    h = None
    for t in order:
        h = hs[t] = step(t, h, None)
    return torch.stack(hs)


def _sequential(a: tuple, b: tuple, h0: tuple) -> tuple:
    """``h_t = a_t h_{t-1} + b_t`` one step at a time: one ``addcmul`` per step (complex
    values as a complex tensor), each step's operands small enough to stay in cache."""
    dt = torch.promote_types(torch.promote_types(a[0].dtype, b[0].dtype), h0[0].dtype)
    a, b, h0 = (tuple(p.to(dt) for p in v) for v in (a, b, h0))  # as the doubling scan promotes
    if len(b) == 2:  # (re, im) -> complex, and back at the end
        a, b, h0 = (torch.complex(*v) for v in (a, b, h0))
    else:
        a, b, h0 = a[0], b[0], h0[0]
    out = _steps(b, lambda t, h, o: torch.addcmul(b[t], a[t], h0 if h is None else h, out=o),
                 range(b.shape[0]), _into_buffer(a, b, h0))
    return (out.real, out.imag) if out.is_complex() else (out,)


def use_sequential(b: Tensor) -> bool:
    """Whether :func:`linear_scan` loops over the steps of ``b`` (T, B, S): on the CPU, in
    float32 or float64, once a step holds :data:`SEQUENTIAL_MIN_ELEMENTS`; else (a GPU, half
    precision, small steps) it scans by doubling."""
    return (b.device.type == "cpu" and b.dtype in (torch.float32, torch.float64)
            and b[0].numel() >= SEQUENTIAL_MIN_ELEMENTS)


def linear_scan(a: Z, b: Z, h0: Z, mask: Tensor | None = None, chunk: int = 64) -> Z:
    """All ``h_t = a_t * h_{t-1} + b_t`` at once, real or complex (as (re, im) pairs).

    On the CPU (:func:`use_sequential`) a loop of one multiply-add per step. Otherwise,
    within chunks of ``chunk`` steps a doubling scan runs all chunks at once; a loop over the
    T/chunk chunks carries the state across (products of at most ``chunk`` factors, so a
    ``|a| <= 1`` never underflows a state that matters). Any signs; no logarithms.

    Args:
        a: (T, B, S), or broadcastable to ``b`` (the LRU's constant (S,)); b: (T, B, S);
        h0: (B, S); each a tensor, or a pair of them for complex values.
        mask: (T, B, 1) bool or None; where False the step is skipped (a = 1, b = 0), so the
            state is carried past padding.
    Returns:
        h (T, B, S) (a pair for complex input), the skipped steps repeating the state.
    """
    complex_ = isinstance(h0, tuple)
    a, b, h = (a, b, h0) if complex_ else ((a,), (b,), (h0,))
    a = tuple(v.expand_as(w) for v, w in zip(a, b))
    one = (1.0, 0.0)  # a's identity, per part
    if mask is not None:
        a = tuple(v.masked_fill(~mask, one[i]) for i, v in enumerate(a))
        b = tuple(v.masked_fill(~mask, 0.0) for v in b)
    if use_sequential(b[0]):
        out = _sequential(a, b, h)
        return out if complex_ else out[0]
    T = b[0].shape[0]
    C = min(chunk, 1 << max(T - 1, 0).bit_length())  # a power of two, no longer than needed
    n = -(-T // C)
    if n * C > T:  # pad with skipped steps to whole chunks
        pad = (n * C - T, *b[0].shape[1:])
        a = tuple(torch.cat([v, v.new_full(pad, one[i])]) for i, v in enumerate(a))
        b = tuple(torch.cat([v, v.new_zeros(pad)]) for v in b)
    A, Bs = _scan_within(tuple(v.reshape(n, C, *v.shape[1:]) for v in a),  # (n, C, B, S)
                         tuple(v.reshape(n, C, *v.shape[1:]) for v in b))
    hs = []
    for k in range(n):  # carry the state from chunk to chunk
        hs.append(_add(_mul(_at(A, k), _at(h, None)), _at(Bs, k)))  # (C, B, S)
        h = _at(hs[-1], -1)
    out = tuple(torch.cat(parts)[:T] for parts in zip(*hs))
    return out if complex_ else out[0]


def adjoint_scan(a: Tensor, d: Tensor, g_end: Tensor) -> Tensor:
    """The adjoint of ``h_t = a_t h_{t-1} + b_t``: all ``g_t = a_{t+1} g_{t+1} + d_t``, run
    from the last step back, with ``g_{T-1} = d_{T-1} + g_end`` (``g_end``: what reaches
    ``h_{T-1}`` from beyond the T steps). Real; a, d: (T, B, S), g_end: (B, S); no autograd
    of its own (the hand-written backwards call it)."""
    if use_sequential(d):
        T = d.shape[0]

        def step(t, g, out):
            if g is None:
                return torch.add(d[t], g_end, out=out)
            return torch.addcmul(d[t], a[t + 1], g, out=out)

        return _steps(d, step, range(T - 1, -1, -1), _into_buffer(a, d, g_end))
    a_next = torch.cat([a[1:], torch.ones_like(a[:1])])  # a_{t+1}; 1 after the end
    return linear_scan(a_next.flip(0), d.flip(0), g_end).flip(0)


class _Scan(torch.autograd.Function):
    """``linear_scan(a, b, h0)`` with its derivatives as linear scans too.

    Autograd through the doubling steps keeps a graph of every level and spent most of its
    backward filling zeros for the slices' gradients: 3.4x the time of this, both on the
    doubling scan, at T=1000, B=8, S=1024, float32, one thread on the 2-core Xeon (``python
    benchmarks/bench_scans.py``, ``bench_scans_xeon2_s33.json``). The adjoint of
    ``h_t = a_t h_{t-1} + b_t`` is the reverse recurrence ``g_t = a_{t+1} g_{t+1} + dh_t``, so

        db_t = g_t,   da_t = g_t h_{t-1},   dh0 = a_0 g_0;

    the tangent is ``dh_t = a_t dh_{t-1} + (da_t h_{t-1} + db_t)``. Both are written in
    differentiable ops (this Function included), so every order of derivative, forward-mode
    AD and ``torch.func.vmap`` work.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(a, b, h0):  # (T, B, S), (T, B, S), (B, S)
        return linear_scan(a, b, h0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, _, h0 = inputs
        ctx.save_for_backward(a, h0, output)
        ctx.save_for_forward(a, h0, output)

    @staticmethod
    def backward(ctx, dh):
        a, h0, h = ctx.saved_tensors
        a_next = torch.cat([a[1:], torch.ones_like(a[:1])])  # a_{t+1}; none after the end
        g = _Scan.apply(a_next.flip(0), dh.flip(0), torch.zeros_like(h0)).flip(0)
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])  # (T, B, S)
        return g * h_prev, g, a[0] * g[0]

    @staticmethod
    def jvp(ctx, da, db, dh0):
        a, h0, h = ctx.saved_tensors
        drive = torch.zeros_like(h) if db is None else db
        if da is not None:
            drive = drive + da * torch.cat([h0.unsqueeze(0), h[:-1]])
        return _Scan.apply(a, drive, torch.zeros_like(h0) if dh0 is None else dh0)


def linear_recurrence(a: Tensor, b: Tensor, h0: Tensor, mask: Tensor | None = None) -> Tensor:
    """Real ``h_t = a_t * h_{t-1} + b_t`` for all t: :func:`linear_scan` with its derivatives
    computed as scans too (:class:`_Scan`), not by autograd through the doubling steps.

    a, b: (T, B, S); h0: (B, S); mask: (T, B, 1) bool or None (False: the step is skipped,
    a = 1 and b = 0). Returns h (T, B, S).
    """
    if mask is not None:
        a, b = a.masked_fill(~mask, 1.0), b.masked_fill(~mask, 0.0)
    return _Scan.apply(a.expand_as(b).contiguous(), b, h0)


def _conj(z: Pair) -> Pair:
    return z[0], -z[1]


def _shift_left(a: Pair) -> Pair:
    """``a_{t+1}`` for each t, the identity (1, 0) after the last step."""
    return (torch.cat([a[0][1:], torch.ones_like(a[0][:1])]),
            torch.cat([a[1][1:], torch.zeros_like(a[1][:1])]))


class _ComplexScan(torch.autograd.Function):
    """:class:`_Scan` for complex values carried as (re, im) pairs: inputs ``a_re, a_im, b_re,
    b_im, h0_re, h0_im``, outputs ``h_re, h_im``; the adjoint multiplies by ``conj(a)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a_re, a_im, b_re, b_im, h0_re, h0_im):
        return linear_scan((a_re, a_im), (b_re, b_im), (h0_re, h0_im))

    @staticmethod
    def setup_context(ctx, inputs, output):
        a_re, a_im, _, _, h0_re, h0_im = inputs
        ctx.save_for_backward(a_re, a_im, h0_re, h0_im, *output)
        ctx.save_for_forward(a_re, a_im, h0_re, h0_im, *output)

    @staticmethod
    def backward(ctx, dh_re, dh_im):
        a_re, a_im, h0_re, h0_im, h_re, h_im = ctx.saved_tensors
        n_re, n_im = _conj(_shift_left((a_re, a_im)))  # conj(a_{t+1})
        flip = lambda v: v.flip(0)  # noqa: E731  (time reversed)
        g_re, g_im = (flip(v) for v in _ComplexScan.apply(
            flip(n_re), flip(n_im), flip(dh_re), flip(dh_im),
            torch.zeros_like(h0_re), torch.zeros_like(h0_im)))
        p_re = torch.cat([h0_re.unsqueeze(0), h_re[:-1]])  # h_{t-1}
        p_im = torch.cat([h0_im.unsqueeze(0), h_im[:-1]])
        da_re, da_im = _mul((g_re, g_im), (p_re, -p_im))  # g conj(h_{t-1})
        dh0_re, dh0_im = _mul((g_re[0], g_im[0]), (a_re[0], -a_im[0]))  # conj(a_0) g_0
        return da_re, da_im, g_re, g_im, dh0_re, dh0_im

    @staticmethod
    def jvp(ctx, da_re, da_im, db_re, db_im, dh0_re, dh0_im):
        a_re, a_im, h0_re, h0_im, h_re, h_im = ctx.saved_tensors
        zero = lambda v, like: torch.zeros_like(like) if v is None else v  # noqa: E731
        drive = (zero(db_re, h_re), zero(db_im, h_im))
        if da_re is not None or da_im is not None:
            p = (torch.cat([h0_re.unsqueeze(0), h_re[:-1]]),
                 torch.cat([h0_im.unsqueeze(0), h_im[:-1]]))
            drive = _add(drive, _mul((zero(da_re, h_re), zero(da_im, h_im)), p))
        return _ComplexScan.apply(a_re, a_im, *drive, zero(dh0_re, h0_re), zero(dh0_im, h0_im))


def complex_recurrence(a: Pair, b: Pair, h0: Pair, mask: Tensor | None = None) -> Pair:
    """Complex ``h_t = a_t * h_{t-1} + b_t`` as (re, im) pairs, with its derivatives as scans.

    a: pair of tensors broadcastable to b's (the LRU's constant (S,)); b: pair of (T, B, S);
    h0: pair of (B, S); mask as :func:`linear_recurrence`. Returns the pair h (T, B, S).
    """
    a = tuple(v.expand_as(w) for v, w in zip(a, b))
    if mask is not None:
        a = (a[0].masked_fill(~mask, 1.0), a[1].masked_fill(~mask, 0.0))
        b = tuple(v.masked_fill(~mask, 0.0) for v in b)
    return _ComplexScan.apply(a[0].contiguous(), a[1].contiguous(), *b, *h0)
