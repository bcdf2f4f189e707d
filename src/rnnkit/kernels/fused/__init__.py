"""The fused CPU backend: whole-sequence scans with a hand-written backward.

:func:`fused_scan` is a drop-in for :func:`rnnkit.kernels.loop.scan` (with the
layer's regularised step) for every built-in cell:

- the matrix recurrences (:mod:`.lstm`, :mod:`.gru`, :mod:`.rnn`,
  :mod:`.layernorm`): :class:`~rnnkit.cells.LSTMCell` (with ``proj_size``),
  :class:`~rnnkit.cells.GRUCell` (both ``reset_after`` forms),
  :class:`~rnnkit.cells.RNNCell` (tanh, relu), LayerNorm-LSTM and -GRU: in-place
  gate math on preallocated buffers, one GEMM per step forward and backward, the
  weight gradients as one GEMM over all T at the end;
- the elementwise recurrences (:mod:`.elementwise`): QRNN, minGRU, minLSTM
  (one ``addcmul`` per step), IndRNN, SRU; their backward is one reverse
  linear scan with diagonal Jacobians.

Each direction-scan is a ``torch.library`` custom op (:mod:`._op`) with a fake
kernel and a registered backward, saving only the activations the backward
needs; so ``torch.compile(fullgraph=True)`` and ``torch.export`` trace a fused
layer as one graph. It needs nothing beyond torch (no compiler), runs on any
device torch does, and is written for the CPU, where torch.nn has no fused GRU
and no fused anything with regularisers. ``docs/kernels.md`` has the design
choice and its measurements.

Example (what the layer does per layer and direction)::

    xp = fused_project(cell, x, p)                          # (T, B, G), one GEMM
    ys, state = fused_scan(cell, p, xp, state, mask,
                           **layer.regularizers.step_inputs(state, T, layer.training))

Shapes: ``T`` time, ``B`` batch, ``G`` gate features, ``O`` output, ``S`` state size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._higher import forward_ad_active, functorch_active
from ._gemm import Linear, linear_nd
from ._steps import Zone, permute_batch, plan_steps
from .elementwise import indrnn_scan, min_scan, qrnn_scan, sru_scan
from .gru import gru_scan
from .layernorm import ln_gru_scan, ln_lstm_scan
from .lstm import lstm_scan
from .rnn import rnn_scan

__all__ = ["fused_scan", "fused_project", "fused_unsupported", "fused_run", "FUSED_SCANS"]

#: the scan of each cell kind (``Cell.kernel_kind``) that has one.
FUSED_SCANS = {"lstm": lstm_scan, "gru": gru_scan, "rnn": rnn_scan,
               "ln_lstm": ln_lstm_scan, "ln_gru": ln_gru_scan, "indrnn": indrnn_scan,
               "qrnn": qrnn_scan, "sru": sru_scan, "mingru": min_scan, "minlstm": min_scan}
_NAMES = ("LSTMCell, GRUCell, RNNCell, LayerNormLSTMCell, LayerNormGRUCell, IndRNNCell, "
          "QRNNCell, SRUCell, MinGRUCell, MinLSTMCell")


def fused_unsupported(cell, x: Tensor | None = None) -> str | None:
    """Why :func:`fused_scan` cannot run ``cell`` (on inputs like ``x``), or None if it can.

    Every regulariser is supported: ``recurrent_dropout`` and ``zoneout`` through
    :func:`fused_scan`'s inputs, the others act outside the scan. The scans are
    registered ops, so torch.compile and torch.export trace them; ``jit.trace``
    does not (it would record the op with this call's lengths and shapes baked
    in), so under it this returns a reason and ``auto`` keeps the loop.
    """
    if getattr(cell, "kernel_kind", None) not in FUSED_SCANS:
        return f"the fused backend has scans for {_NAMES}, not {cell!r}"
    if torch.jit.is_tracing():
        return "torch.jit.trace cannot trace the fused scan (use torch.export)"
    if x is not None and not x.is_floating_point():
        return f"the fused backend needs floating-point inputs, got {x.dtype}"
    return None


def fused_project(cell, x: Tensor, p: dict[str, Tensor]) -> Tensor:
    """``cell.project(x, p)`` (T, B, I) -> (T, B, G), its GEMM through oneDNN.

    The same one GEMM over all T (forward and backward) through
    :class:`~._gemm.Linear`; on the CPUs where torch's default BLAS is slow at
    these shapes it is faster than ``F.linear`` (docs/kernels.md, "Small choices"). The
    cell-specific rest (QRNN's window and activations, SRU's highway, the input
    layer norm) is the cell's own code, vectorised over all T.
    """
    reason = fused_unsupported(cell, x)
    if reason:
        raise ValueError(f"fused_project: {reason}")
    return _project(cell, x, p)


def _project(cell, x: Tensor, p: dict[str, Tensor]) -> Tensor:
    """:func:`fused_project` for a cell :func:`fused_unsupported` accepted."""
    W, kind = p["weight_ih"], cell.kernel_kind
    if kind in ("lstm", "gru", "rnn"):
        return _linear(x, W, p.get("bias_ih"))
    if kind in ("indrnn", "mingru", "minlstm"):
        return _linear(x, W, p.get("bias"))
    if kind == "ln_lstm":  # u = W_ih x: the scan applies the input layer norm
        return _linear(x, W, None)
    if kind == "ln_gru":
        return cell._ln(_linear(x, W, None), p["ln_ih_weight"], p.get("bias_ih"))
    if kind == "qrnn":
        if cell.window == 2:
            x_prev = torch.cat([torch.zeros_like(x[:1]), x[:-1]])  # x_{t-1}, zero at t = 0
            x = torch.cat([x, x_prev], dim=-1)  # (T, B, 2I)
        # (T, B, G*H) before the activations: the scan applies them chunk by chunk
        return _linear(x, W, p.get("bias"))
    # SRU: [x~, W_f x + b_f, W_r x + b_r, alpha x^] as one GEMM, the biases and alpha folded
    # into it (b padded with zeros, alpha scaling W_hw's rows) instead of whole-sequence
    # temporaries and a concatenation
    H = cell.hidden_size
    proj = cell.projected_highway
    if proj and cell.alpha != 1.0:
        W = torch.cat([W[:3 * H], W[3 * H:] * cell.alpha])
    b = p.get("bias")
    if b is not None:
        zero = b.new_zeros(H)
        b = torch.cat([zero, b, zero] if proj else [zero, b])
    u = _linear(x, W, b)  # (T, B, 4H), or 3H when the highway carries x itself
    return u if proj else torch.cat([u, x * cell.alpha if cell.alpha != 1.0 else x], dim=-1)


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``F.linear`` with oneDNN's GEMM (its own backward) outside tracing; ``F.linear`` inside,
    under ``torch.func`` transforms and under forward-mode AD (the Function has no jvp). With
    grad mode off (inference), the same GEMM without the autograd Function's call (about 10 us
    a call; a B=1 layer pays it per sequence)."""
    if torch.compiler.is_compiling() or functorch_active() or forward_ad_active():
        return F.linear(x, w, b)
    if not torch.is_grad_enabled():
        return linear_nd(x, w, b)
    return Linear.apply(x, w, b)


def fused_scan(cell, p: dict[str, Tensor], xp: Tensor, state: tuple[Tensor, ...],
               mask: Tensor | None = None, *, rec_mask: Tensor | None = None,
               zoneout: tuple[Zone, ...] | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``cell`` over time: equal to ``loop.scan(cell, p, xp, state, mask, step)``.

    Args:
        cell: a cell with a fused scan (see :func:`fused_unsupported`).
        p: the cell's weights for this layer/direction (after max_norm/weight_drop).
        xp: (T, B, G) :func:`fused_project`'s output: ``cell.project(x, p)``, except for
            QRNN, whose gates come before their tanh/sigmoid, and LayerNorm-LSTM, whose
            ``W_ih x`` comes before its layer norm (the scan applies them).
        state: initial state, a tuple of (B, S_i) tensors.
        mask: (T, B, 1) bool length mask (``loop.length_mask``) or None: at a
            padded step a sequence keeps its state and outputs zeros.
        rec_mask: (B, O) recurrent-dropout mask multiplying ``h_{t-1}`` where it
            enters the recurrent product (the carried state is not dropped), or None.
        zoneout: one entry per state tensor: None, a rate ``p`` (evaluation:
            ``s_t = p s_{t-1} + (1 - p) s~_t``) or a (T, B, S_i) tensor of 0/1 keep
            indicators (training). The layer's ``Regularizers.step_inputs`` draws both
            inputs exactly as the layer's loop does.
    Returns:
        ys (T, B, O) and the final state (each sequence's state at its last step).
    """
    reason = fused_unsupported(cell, xp)
    if reason:
        raise ValueError(f"fused_scan: {reason}")
    return _scan(cell, p, xp, state, mask, rec_mask, zoneout)


def fused_run(cell, p: dict[str, Tensor], x: Tensor, state: tuple[Tensor, ...],
              mask: Tensor | None = None, *, rec_mask: Tensor | None = None,
              zoneout: tuple[Zone, ...] | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer-direction from its input x (T, B, I): :func:`fused_project`, then
    :func:`fused_scan`, for a cell and input the dispatcher has checked (not again here)."""
    return _scan(cell, p, _project(cell, x, p), state, mask, rec_mask, zoneout)


def _scan(cell, p, xp, state, mask, rec_mask, zoneout):
    """:func:`fused_scan` for a cell :func:`fused_unsupported` accepted."""
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
    ys, state = FUSED_SCANS[cell.kernel_kind](cell, p, xp, state, steps, rec_mask, zones)
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
