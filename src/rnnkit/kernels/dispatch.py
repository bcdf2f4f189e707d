"""Backend choice: the fastest backend that can run a layer's configuration.

``backend="auto"`` tries torch's fused kernel first, then rnnkit's fused scan
(:mod:`rnnkit.kernels.fused`: LSTM, GRU and RNN cells with any regulariser,
lengths or residual), and falls back to the loop quietly; a backend named explicitly that cannot run the configuration raises a
``ValueError`` saying why. Regularisers that act in training only
(``input_dropout``, ``recurrent_dropout``, ``weight_drop``) keep the native
kernel out of training but not out of evaluation, where they are the identity;
``zoneout`` and ``max_norm`` change evaluation too, so they always need the loop.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["choose_backend", "native_unsupported"]

_NATIVE_CPU_DTYPES = (torch.float32, torch.float64)


def native_unsupported(layer, x: Tensor) -> str | None:
    """Why torch's fused kernel cannot run ``layer`` on ``x``, or None if it can."""
    from ..cells import GRUCell, LSTMCell, RNNCell

    cell = layer.cells[0]
    if type(cell) not in (RNNCell, LSTMCell, GRUCell) or cell.native_mode is None:
        return f"torch has no fused kernel for {cell!r}"
    if layer.residual:
        return "residual connections are not part of torch's kernel"
    reg = getattr(layer, "regularizers", None)
    reason = None if reg is None else reg.native_unsupported(layer.training)
    if reason:
        return reason
    if x.device.type == "cpu" and x.dtype not in _NATIVE_CPU_DTYPES:
        return f"torch's CPU kernel does not support {x.dtype}"
    return None


def choose_backend(layer, x: Tensor) -> str:
    from .fused import fused_unsupported

    if layer.backend == "loop":
        return "loop"
    if layer.backend == "fused":
        reason = fused_unsupported(layer.cells[0], x)
        if reason:
            raise ValueError(f"backend='fused' cannot run this layer: {reason}; "
                             "use backend='auto' or 'loop'")
        return "fused"
    reason = native_unsupported(layer, x)
    if layer.backend == "native":
        if reason:
            raise ValueError(f"backend='native' cannot run this layer: {reason}; "
                             "use backend='auto' or 'loop'")
        return "native"
    if reason is None:
        return "native"
    # The fused scan is faster than the loop wherever it applies (docs/kernels.md).
    return "fused" if fused_unsupported(layer.cells[0], x) is None else "loop"
