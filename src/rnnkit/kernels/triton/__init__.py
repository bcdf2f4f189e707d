"""The Triton GPU backend: whole-sequence scans with hand-written backward kernels.

:func:`triton_scan` is a drop-in for :func:`rnnkit.kernels.fused.fused_scan`
(same arguments, same results) for two families of cells:

- the elementwise recurrences, :class:`~rnnkit.cells.IndRNNCell`,
  :class:`~rnnkit.cells.QRNNCell` (f, fo, ifo pooling), :class:`~rnnkit.cells.SRUCell`,
  :class:`~rnnkit.cells.MinGRUCell` and :class:`~rnnkit.cells.MinLSTMCell`: one
  kernel runs the whole time loop, one program per (batch row, block of hidden
  units), the state in registers (:mod:`._elementwise`);
- the matrix recurrences, :class:`~rnnkit.cells.LSTMCell` (no ``proj_size``),
  :class:`~rnnkit.cells.GRUCell` (torch's reset-after form) and their layer-normalised
  versions :class:`~rnnkit.cells.LayerNormLSTMCell`, :class:`~rnnkit.cells.LayerNormGRUCell`,
  with recurrent dropout and zoneout (DropConnect and max-norm act on ``W_hh``
  before the scan): per step one cuBLAS GEMM and one fused Triton kernel for
  everything else (:mod:`._matrix`).

Every kernel computes in float32 and reads/writes float32, bfloat16 or float16.
Each scan is a ``torch.library`` custom op (``rnnkit_triton::elementwise_scan``,
``rnnkit_triton::matrix_scan`` and their ``_backward`` ops) with a fake kernel and a
registered backward, so ``torch.compile(fullgraph=True)`` and ``torch.export`` keep
it as one opaque node.
``import rnnkit`` never imports Triton: this module only looks it up, and the
kernels are compiled by Triton's JIT on first use (per dtype and block size,
cached on disk), so nothing is compiled at install or import time. On a CPU
tensor the kernels run only under Triton's interpreter (``TRITON_INTERPRET=1``,
set before the first call): slow, for tests. See ``docs/triton.md``.

Example (what a layer does per layer and direction)::

    xp = cell.project(x, p)                                  # (T, B, G), one GEMM
    ys, state = triton_scan(cell, p, xp, state, mask,
                            **layer.regularizers.step_inputs(state, T, layer.training))

Shapes: ``T`` time, ``B`` batch, ``G`` gate features, ``H`` hidden, ``S`` state size.
"""
from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from .._higher import functorch_active, reference_scan
from ..loop import length_mask

__all__ = ["triton_scan", "triton_run", "triton_unsupported", "triton_available",
           "ELEMENTWISE_KINDS", "MATRIX_KINDS"]

#: cell kinds (``Cell.kernel_kind``) whose recurrence is elementwise (one fused time-loop
#: kernel each): IndRNNCell, QRNNCell, SRUCell, MinGRUCell, MinLSTMCell.
ELEMENTWISE_KINDS = ("indrnn", "qrnn", "sru", "mingru", "minlstm")
#: cell kinds whose recurrence is a matrix product (per-step GEMM + fused gate kernel):
#: LSTMCell, GRUCell, LayerNormLSTMCell, LayerNormGRUCell.
MATRIX_KINDS = ("lstm", "gru", "ln_lstm", "ln_gru")
_NAMES = ("IndRNNCell, QRNNCell, SRUCell, MinGRUCell, MinLSTMCell, LSTMCell, GRUCell, "
          "LayerNormLSTMCell, LayerNormGRUCell")
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MAX_ROW = 2048  # matrix cells: one program holds a whole (G*H) row for layer norm
_QRNN_KIND = {"f": 1, "fo": 2, "ifo": 3}


def _find_triton() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["triton"] = None
        return False


_AVAILABLE = _find_triton()  # looked up once (not imported), so torch.compile can read it


def triton_available() -> bool:
    """Whether the ``triton`` package is installed (looked up at import, never imported)."""
    return _AVAILABLE


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


_KERNEL_MODULES = ("_common", "_lstm", "_gru", "_matrix", "_elementwise")  # import order


def _sync_kernel_mode() -> None:
    """Re-import the kernel modules if ``TRITON_INTERPRET`` changed since their import.

    Triton picks interpreted or compiled functions when a function is decorated, i.e. when
    the module is imported; a process that imported the kernels in the other mode (e.g.
    before a test set the variable) would mix the two and fail.
    """
    import importlib
    import sys

    names = [f"{__name__}.{m}" for m in _KERNEL_MODULES]
    loaded = [sys.modules[n] for n in names if n in sys.modules]
    want = "InterpretedFunction" if _interpreting() else "JITFunction"
    kinds = {type(v).__name__ for mod in loaded for v in vars(mod).values()} & {
        "InterpretedFunction", "JITFunction"}
    if kinds - {want}:
        for mod in loaded:
            importlib.reload(mod)


def _compiling() -> bool:
    """Whether Dynamo/export is tracing (torch >= 2.3's ``torch.compiler.is_compiling``)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling and is_compiling())


def triton_unsupported(cell, x: Tensor | None = None, reg=None,
                       training: bool = False) -> str | None:
    """Why :func:`triton_scan` cannot run ``cell`` on inputs like ``x``, or None if it can.

    Args:
        cell: the layer's cell.
        x: an input or projected input (device and dtype are checked), or None.
        reg: the layer's :class:`~rnnkit.layers.regularizers.Regularizers`, or None.
        training: whether the layer is in training mode (for ``reg``).
    """
    if not triton_available():
        return "Triton is not installed (pip install 'rnnkit[gpu]')"
    kind = getattr(cell, "kernel_kind", None)
    if kind not in ELEMENTWISE_KINDS + MATRIX_KINDS:
        return f"the Triton backend has scans for {_NAMES}, not {cell!r}"
    name = type(cell).__name__
    if kind == "lstm" and cell.proj_size:
        return "the Triton LSTM scan has no projection (proj_size); use backend='fused'"
    if kind == "gru" and not cell.reset_after:
        return "the Triton GRU scan runs torch's reset-after form only (reset_after=True)"
    if kind in MATRIX_KINDS and cell.num_gates * cell.hidden_size > 4 * _MAX_ROW:
        return (f"the Triton {name} scan holds a row of {cell.num_gates} x H units "
                f"in one program: hidden_size <= {_MAX_ROW}, got {cell.hidden_size}")
    if reg is not None and kind in ELEMENTWISE_KINDS and any(reg.zoneout):
        return f"the Triton {name} scan has no zoneout"
    if torch.jit.is_tracing():
        return "torch.jit.trace cannot trace the Triton scans (use torch.compile or torch.export)"
    if x is not None:
        if x.dtype not in _DTYPES:
            return f"the Triton kernels run float32, bfloat16 and float16, not {x.dtype}"
        if x.device.type != "cuda" and not (x.device.type == "cpu" and _interpreting()):
            return (f"the Triton kernels run on CUDA tensors (or on CPU under "
                    f"TRITON_INTERPRET=1), not on {x.device.type}")
    return None


def _lengths(mask: Tensor | None, T: int, B: int, device) -> tuple[Tensor, bool]:
    """(T, B, 1) length mask -> (B,) int32 lengths and whether every length is T.

    Under torch.compile the mask is not checked and ``full`` is False (outputs are
    then zero-initialised), so that nothing depends on the data at trace time.
    """
    if mask is None:
        return torch.full((B,), T, dtype=torch.int32, device=device), True
    if mask.shape != (T, B, 1) or mask.dtype != torch.bool:
        raise ValueError(f"mask: expected a (T, B, 1) = ({T}, {B}, 1) bool tensor, got "
                         f"{tuple(mask.shape)} {mask.dtype}")
    m = mask.view(T, B)
    lengths = m.sum(0)
    if _compiling():
        return lengths.to(device=device, dtype=torch.int32), False
    t = torch.arange(T, device=mask.device).unsqueeze(1)  # (T, 1)
    if not torch.equal(m, t < lengths.unsqueeze(0)):
        raise ValueError("mask: the Triton scans need a length mask (True for t < lengths[b], "
                         "then False), as kernels.loop.length_mask makes")
    return lengths.to(device=device, dtype=torch.int32), bool((lengths == T).all())


def triton_scan(cell, p: dict[str, Tensor], xp: Tensor, state: tuple[Tensor, ...],
                mask: Tensor | None = None, *, rec_mask: Tensor | None = None,
                zoneout=None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``cell`` over time: equal to ``loop.scan(cell, p, xp, state, mask, step)``.

    Args:
        cell: a cell of a kind in :data:`ELEMENTWISE_KINDS` or :data:`MATRIX_KINDS`.
        p: the cell's weights for this layer/direction (after max_norm/weight_drop).
        xp: (T, B, G) ``cell.project(x, p)``, float32/bfloat16/float16 on CUDA.
        state: the initial state, a tuple of (B, S_i) tensors.
        mask: (T, B, 1) bool length mask (``loop.length_mask``) or None.
        rec_mask: (B, O) recurrent-dropout mask on ``h_{t-1}`` where it enters the
            recurrence (matrix cells and IndRNN), or None.
        zoneout: matrix cells only; one entry per state tensor: None, a rate (evaluation)
            or (T, B, S_i) 0/1 keep indicators (training), as
            the layer's ``Regularizers.step_inputs`` draws them.
    Returns:
        ys (T, B, O) (zero past each length) and the final state tuple.
    """
    reason = triton_unsupported(cell, xp)
    if reason:
        raise ValueError(f"triton_scan: {reason}")
    return _scan(cell, p, xp, state, mask, rec_mask, zoneout)


def triton_run(cell, p: dict[str, Tensor], x: Tensor, state: tuple[Tensor, ...],
               mask: Tensor | None = None, *, rec_mask: Tensor | None = None,
               zoneout=None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer-direction from its input x (T, B, I): ``cell.project``, then
    :func:`triton_scan`, for a cell and input the dispatcher has checked (not again here)."""
    return _scan(cell, p, cell.project(x, p), state, mask, rec_mask, zoneout)


def _scan(cell, p, xp, state, mask, rec_mask, zoneout):
    """:func:`triton_scan` for a cell :func:`triton_unsupported` accepted."""
    if xp.dim() != 3:
        raise ValueError(f"xp: expected a (T, B, G) tensor, got shape {tuple(xp.shape)}")
    T, B, _ = xp.shape
    state = tuple(state)
    if len(state) != len(cell.state_sizes):
        raise ValueError(f"state: {cell!r} has {len(cell.state_sizes)} state tensors, "
                         f"got {len(state)}")
    if rec_mask is not None and rec_mask.shape != state[0].shape:
        raise ValueError(f"rec_mask: expected shape {tuple(state[0].shape)} like h, got "
                         f"{tuple(rec_mask.shape)}")
    lengths, full = _lengths(mask, T, B, xp.device)
    matrix = cell.kernel_kind in MATRIX_KINDS
    if not matrix:
        if zoneout is not None and any(z is not None for z in zoneout):
            raise ValueError(f"zoneout: the Triton {type(cell).__name__} scan has no zoneout")
        if rec_mask is not None and cell.kernel_kind != "indrnn":
            raise ValueError(f"rec_mask: {type(cell).__name__} has no recurrent weights to drop")
    if functorch_active():  # torch.func: the same math in autograd's ops (kernels._higher)
        zones = tuple(zoneout) if zoneout is not None else ()
        return reference_scan(cell, p, xp, state, mask, rec_mask, zones)
    if not _compiling():
        _sync_kernel_mode()
    if matrix:
        from ._matrix import matrix_scan  # imports triton

        return matrix_scan(cell, p, xp, state, lengths, full, rec_mask, zoneout)
    from ._elementwise import elementwise_scan  # imports triton

    kind, w = _elementwise_kind(cell, p)
    names = {0: "weight_hh", 4: "weight_c"}  # the cell's name for the op's w

    def reference(ts):  # ts = the op's tensors [xp, s0, w, m, lengths]
        x, s0, w_, m, lens = ts
        q = {} if w_ is None else {names[kind]: w_}
        m = None if m is None else m.to(x.dtype)
        ys, (s_n,) = reference_scan(cell, q, x, (s0,), length_mask(lens, T), m)
        return [ys, s_n]

    y, s_n = elementwise_scan(kind, xp, state[0], w, rec_mask, lengths, full, reference)
    return y, (s_n,)


def _elementwise_kind(cell, p):
    """The kernel's kind number and recurrent weight vector (None if the cell has none)."""
    kind = cell.kernel_kind
    if kind == "indrnn":
        return 0, cell.recurrent_weight(p)  # u, clamped to the bound (autograd sees it)
    if kind == "qrnn":
        return _QRNN_KIND[cell.pooling], None
    if kind == "sru":
        return 4, p["weight_c"]
    return (5 if kind == "mingru" else 6), None

