"""The fused CPU backend: whole-sequence scans with a hand-written backward.

:func:`fused_scan` is a drop-in for :func:`rnnkit.kernels.loop.scan` (with the
layer's regularised step) for the cells whose recurrence is a matrix product:
:class:`~rnnkit.cells.LSTMCell` (with ``proj_size``),
:class:`~rnnkit.cells.GRUCell` (both ``reset_after`` forms) and
:class:`~rnnkit.cells.RNNCell` (tanh, relu). Each direction-scan is one
``torch.autograd.Function`` in plain PyTorch: in-place gate math on
preallocated buffers in the forward, saving only the activations the backward
needs, and a backward through time with one GEMM per step, the weight
gradients as one GEMM over all T at the end. It needs nothing beyond torch
(no compiler), runs on any device torch does, and is written for the CPU,
where torch.nn has no fused GRU and no fused anything with regularisers.
``docs/kernels.md`` has the design choice and its measurements.

Example (what the layer does per layer and direction)::

    xp = fused_project(cell, x, p)                          # (T, B, G), one GEMM
    ys, state = fused_scan(cell, p, xp, state, mask,
                           **step_inputs(layer.regularizers, state, T, layer.training))

Shapes: ``T`` time, ``B`` batch, ``G`` gate features, ``O`` output, ``S`` state size.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ...cells import GRUCell, LSTMCell, RNNCell
from ._gemm import Linear
from ._steps import Zone, permute_batch, plan_steps, step_inputs
from .gru import gru_scan
from .lstm import lstm_scan
from .rnn import rnn_scan

__all__ = ["fused_scan", "fused_project", "fused_unsupported", "step_inputs", "FUSED_CELLS"]

#: the cells with a fused scan, and the scan of each.
FUSED_CELLS = {LSTMCell: lstm_scan, GRUCell: gru_scan, RNNCell: rnn_scan}


def fused_unsupported(cell, x: Tensor | None = None) -> str | None:
    """Why :func:`fused_scan` cannot run ``cell`` (on inputs like ``x``), or None if it can.

    Every regulariser is supported: ``recurrent_dropout`` and ``zoneout`` through
    :func:`fused_scan`'s inputs, the others act outside the scan. Under
    torch.compile/export/jit.trace it returns a reason, so that ``auto`` keeps
    such graphs on the traceable loop or native kernels.
    """
    if type(cell) not in FUSED_CELLS:
        names = ", ".join(c.__name__ for c in FUSED_CELLS)
        return f"the fused backend has scans for {names}, not {cell!r}"
    if _tracing():
        return ("torch.compile, torch.export and torch.jit.trace cannot trace the fused scan "
                "(its GEMMs are oneDNN calls with out= buffers, not registered ops)")
    if x is not None and not x.is_floating_point():
        return f"the fused backend needs floating-point inputs, got {x.dtype}"
    return None


def fused_project(cell, x: Tensor, p: dict[str, Tensor]) -> Tensor:
    """``cell.project(x, p)``, ``x W_ih^T + b_ih`` (T, B, I) -> (T, B, G), with oneDNN's GEMM.

    The same one GEMM over all T (forward and backward) through
    :class:`~._gemm.Linear`; on the CPUs where torch's default BLAS is slow at
    these shapes it is up to 2x faster than ``F.linear`` (docs/kernels.md).
    """
    reason = fused_unsupported(cell, x)
    if reason:
        raise ValueError(f"fused_project: {reason}")
    return Linear.apply(x, p["weight_ih"], p.get("bias_ih"))


def _tracing() -> bool:
    """Whether Dynamo/export (torch >= 2.3's ``torch.compiler.is_compiling``) or jit.trace is on."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling and is_compiling()) or torch.jit.is_tracing()


def fused_scan(cell, p: dict[str, Tensor], xp: Tensor, state: tuple[Tensor, ...],
               mask: Tensor | None = None, *, rec_mask: Tensor | None = None,
               zoneout: tuple[Zone, ...] | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``cell`` over time: equal to ``loop.scan(cell, p, xp, state, mask, step)``.

    Args:
        cell: an LSTMCell, GRUCell or RNNCell (see :func:`fused_unsupported`).
        p: the cell's weights for this layer/direction (after max_norm/weight_drop).
        xp: (T, B, G) ``cell.project(x, p)``.
        state: initial state, a tuple of (B, S_i) tensors.
        mask: (T, B, 1) bool length mask (``loop.length_mask``) or None: at a
            padded step a sequence keeps its state and outputs zeros.
        rec_mask: (B, O) recurrent-dropout mask multiplying ``h_{t-1}`` where it
            enters the recurrent product (the carried state is not dropped), or None.
        zoneout: one entry per state tensor: None, a rate ``p`` (evaluation:
            ``s_t = p s_{t-1} + (1 - p) s~_t``) or a (T, B, S_i) tensor of 0/1 keep
            indicators (training). :func:`step_inputs` draws both regulariser
            inputs exactly as the layer's loop does.
    Returns:
        ys (T, B, O) and the final state (each sequence's state at its last step).
    """
    reason = fused_unsupported(cell, xp)
    if reason:
        raise ValueError(f"fused_scan: {reason}")
    if xp.dim() != 3:
        raise ValueError(f"xp: expected a (T, B, G) tensor, got shape {tuple(xp.shape)}")
    T, B, _ = xp.shape
    state = tuple(state)
    if len(state) != len(cell.state_sizes):
        raise ValueError(f"state: {cell!r} has {len(cell.state_sizes)} state tensors, "
                         f"got {len(state)}")
    zones = _check_zones(zoneout, state, T)
    if rec_mask is not None and rec_mask.shape != state[0].shape:
        raise ValueError(f"rec_mask: expected shape {tuple(state[0].shape)} like h, got "
                         f"{tuple(rec_mask.shape)}")

    order, steps = plan_steps(mask, T, B)
    xp = permute_batch(xp, order, 1)
    state = tuple(permute_batch(s, order, 0) for s in state)
    rec_mask = permute_batch(rec_mask, order, 0)
    zones = tuple(permute_batch(z, order, 1) for z in zones)
    ys, state = FUSED_CELLS[type(cell)](cell, p, xp, state, steps, rec_mask, zones)
    if order is not None:
        inverse = torch.argsort(order)
        ys = ys.index_select(1, inverse)
        state = tuple(s.index_select(0, inverse) for s in state)
    return ys, state


def _check_zones(zoneout, state, T: int) -> tuple[Zone, ...]:
    """One zoneout weight per state tensor: None (off), a float rate, or (T, B, S) keeps."""
    if zoneout is None:
        return (None,) * len(state)
    if len(zoneout) != len(state):
        raise ValueError(f"zoneout: expected one entry per state tensor ({len(state)}), "
                         f"got {len(zoneout)}")
    zones = []
    for i, (z, s) in enumerate(zip(zoneout, state)):
        if isinstance(z, Tensor):
            if z.shape != (T, *s.shape):
                raise ValueError(f"zoneout[{i}]: expected a (T, B, S) = {(T, *s.shape)} "
                                 f"tensor of keep indicators, got {tuple(z.shape)}")
            z = z.to(s.dtype)
        elif z is not None:
            if isinstance(z, bool) or not isinstance(z, (int, float)) or not 0 <= z < 1:
                raise ValueError(f"zoneout[{i}]: expected a rate in [0, 1), a tensor or "
                                 f"None, got {z!r}")
            z = float(z) or None
        zones.append(z)
    return tuple(zones)
