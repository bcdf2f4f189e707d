"""The GEMMs of the fused scans: oneDNN's on CPU where torch ships it, else ``addmm``.

torch's dense CPU ``mm``/``addmm`` call MKL (or OpenBLAS); ``torch.nn.LSTM``
calls oneDNN, whose JIT kernels are much faster at the small row counts of a
recurrence (B rows) on some CPUs: on the 2-core AMD EPYC (AVX-512) we measure
on, a (32, 256) x (256, 1024) product takes 136 us with oneDNN and 218 us with
MKL, one thread each (docs/kernels.md). torch exposes oneDNN's inner product,
with a fused bias (and post-ops, of which the fused addition measured slower than adding
after), as ``torch.ops.mkldnn._linear_pointwise``; it ships in every CPU build with
oneDNN (no compiler needed). :func:`linear` uses it for float32/bfloat16 CPU
tensors of at least ``ONEDNN_MIN_WORK`` multiply-adds, after checking once, on
a small product, that it exists and agrees with ``addmm``; any other case
(small products, float64, GPU, a torch without it) uses ``addmm``.

Shapes: ``M`` rows, ``K`` inner, ``N`` output features.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["linear", "weight_grad", "onednn_available", "Linear"]

_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)
#: M * K * N below which addmm is used: oneDNN's ~15 us per call outweighs its faster
#: kernel there (measured: (1, 128) x (128, 384) 20 us oneDNN, 6 us addmm; equal at ~2^21).
ONEDNN_MIN_WORK = 2 ** 21
_onednn_ok: bool | None = None  # None: not checked yet


def onednn_available() -> bool:
    """Whether oneDNN's inner product is there and agrees with ``addmm`` (checked once)."""
    global _onednn_ok
    if _onednn_ok is None:
        _onednn_ok = _check_onednn()
    return _onednn_ok


def _check_onednn() -> bool:
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        op = torch.ops.mkldnn._linear_pointwise
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(s, generator=g) for s in ((5, 7), (3, 7), (3,)))
        y = op(x, w, b, "none", [], "")
        y2 = op(x.t().contiguous().t(), w.t().contiguous().t(), None, "none", [], "")  # transposed
        return bool(torch.allclose(y, torch.addmm(b, x, w.t()), atol=1e-5)
                    and torch.allclose(y2, x @ w.t(), atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


def _use_onednn(x: Tensor, w: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype in _ONEDNN_DTYPES
            and x.shape[0] * x.shape[1] * w.shape[0] >= ONEDNN_MIN_WORK
            and torch.backends.mkldnn.enabled and onednn_available())


def _plain(t: Tensor) -> Tensor:
    """``t`` if it is row-major or a transposed row-major matrix, else a contiguous copy.

    oneDNN reads other strides (e.g. a column slice of a wider gradient) through a
    path orders of magnitude slower (docs/kernels.md, "Small choices").
    """
    return t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous()


def linear(x: Tensor, w: Tensor, bias: Tensor | None = None,
           other: Tensor | None = None) -> Tensor:
    """``x @ w.T + bias + other``: (M, K) x (N, K) -> (M, N); ``bias`` (N,), ``other`` (M, N).

    Either operand may be a transposed view (no copy is made for it).
    """
    if _use_onednn(x, w):
        x, w = _plain(x), _plain(w)
        op = torch.ops.mkldnn._linear_pointwise
        y = op(x, w, bias, "none", [], "")
        # the sum as its own op: oneDNN's fused "add" post-op was slower
        # (docs/kernels.md, "Small choices"; benchmarks/bench_step_gemm.py)
        return y if other is None else y.add_(other)
    if other is None:
        return torch.mm(x, w.t()) if bias is None else torch.addmm(bias, x, w.t())
    y = torch.addmm(other, x, w.t())
    return y if bias is None else y.add_(bias)


def linear_nd(x: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
    """:func:`linear` over (..., K) inputs: (..., K) -> (..., N), no autograd."""
    y = linear(x.reshape(-1, x.shape[-1]), w, bias)  # (M, K) -> (M, N)
    return y.view(*x.shape[:-1], w.shape[0])


@functools.cache
def _intel_cpu() -> bool:
    """Whether this is an Intel CPU (``vendor_id`` in /proc/cpuinfo; False where unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(ln.startswith("vendor_id") and "GenuineIntel" in ln for ln in f)
    except OSError:
        return False


def weight_grad(dy: Tensor, x: Tensor) -> Tensor:
    """``dy^T x``: (M, N), (M, K) -> (N, K), the weight gradient of a product over M rows.

    The small (K, N) result transposed, ``(x^T dy)^T``: on an Intel CPU through torch's BLAS
    (MKL), elsewhere through oneDNN's inner product (:func:`linear`), the faster of the two
    where each was measured (docs/kernels.md, "Small choices";
    ``benchmarks/results/weight_grad_xeon2.json``).
    """
    if dy.device.type == "cpu" and not _intel_cpu():
        return linear(x.t(), dy.t()).t().contiguous()  # (oneDNN where it is faster)
    return torch.mm(x.t(), dy).t().contiguous()


class Linear(torch.autograd.Function):
    """``F.linear`` over (..., K) inputs with :func:`linear`'s GEMMs forward and backward.

    The input projection of the fused cells (one GEMM over all T):
    ``xp = x W_ih^T + b_ih``; backward ``dx = dxp W_ih``, ``dW_ih = dxp^T x``,
    ``db_ih = sum dxp``. A ``create_graph=True`` backward (grad mode on) computes the
    same products with ``torch.mm``, which autograd differentiates again.
    """

    # the old-style forward(ctx, ...): with a separate setup_context (which torch.func needs)
    # apply costs 20-28 us more per call here; under torch.func the layers use F.linear
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return linear_nd(x, w, b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        K, N = x.shape[-1], w.shape[0]
        x2, dy2 = x.reshape(-1, K), dy.reshape(-1, N)  # (..., *) -> (M, *)
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: differentiable products
            dx = (dy2 @ w).view(x.shape) if need[0] else None
            dw = dy2.t() @ x2 if need[1] else None
            db = dy2.sum(0) if need[2] and ctx.has_bias else None
            return dx, dw, db
        dx = linear(dy2, w.t()).view(x.shape) if need[0] else None
        dw = weight_grad(dy2, x2) if need[1] else None
        db = dy2.sum(0) if need[2] and ctx.has_bias else None
        return dx, dw, db
