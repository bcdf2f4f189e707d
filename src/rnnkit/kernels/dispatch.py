"""Backend choice: the fastest backend that can run a layer's configuration.

``backend="auto"`` tries torch's fused kernel first (cuDNN on GPU, oneDNN/ATen on CPU),
then on CUDA tensors the Triton kernels (:mod:`rnnkit.kernels.triton`, when triton is
installed), then rnnkit's fused CPU scan (:mod:`rnnkit.kernels.fused`: every cell family
with any regulariser, lengths or residual), and falls back to the loop quietly; a backend named explicitly that cannot run the configuration raises a
``ValueError`` saying why. Regularisers that act in training only
(``input_dropout``, ``recurrent_dropout``, ``weight_drop``) keep the native
kernel out of training but not out of evaluation, where they are the identity;
``zoneout`` and ``max_norm`` change evaluation too, so they always need the loop.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["choose_backend", "native_unsupported", "register_scan_backend", "SCAN_BACKENDS",
           "backend_names"]


@dataclass(frozen=True)
class ScanBackend:
    """A backend that runs one layer-direction as ``scan(cell, p, project(cell, x, p), ...)``.

    ``unsupported(layer, x) -> reason | None``; ``project(cell, x, p) -> xp``;
    ``scan(cell, p, xp, state, mask, rec_mask=, zoneout=) -> (ys, state)`` as
    :func:`rnnkit.kernels.fused.fused_scan`. ``auto`` tries it (in registration
    order, before the fused CPU scan) when ``auto`` is True.
    """

    unsupported: Callable
    project: Callable
    scan: Callable
    auto: bool = True


#: name -> backend; "fused" is registered on first use, others with register_scan_backend.
SCAN_BACKENDS: dict[str, ScanBackend] = {}


def register_scan_backend(name: str, unsupported: Callable, project: Callable, scan: Callable,
                          auto: bool = True) -> None:
    """Add a scan backend (e.g. ``"triton"``): layers then accept ``backend=name``."""
    if name in ("auto", "native", "loop"):
        raise ValueError(f"register_scan_backend: {name!r} is a built-in backend name")
    SCAN_BACKENDS[name] = ScanBackend(unsupported, project, scan, auto)


def _fused() -> ScanBackend:
    if "fused" not in SCAN_BACKENDS:
        from .fused import fused_project, fused_scan, fused_unsupported

        SCAN_BACKENDS["fused"] = ScanBackend(
            lambda layer, x: fused_unsupported(layer.cells[0], x), fused_project, fused_scan)
        from .triton import register_backend  # never imports triton itself

        register_backend()
    return SCAN_BACKENDS["fused"]


def backend_names() -> tuple[str, ...]:
    """Every name ``backend=`` accepts."""
    _fused()
    return ("auto", "native", *SCAN_BACKENDS, "loop")

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


def _prefers_fused_on_cpu(layer, varlen: bool = False) -> bool:
    """Where rnnkit's fused scan beats torch's native kernel on CPU.

    - GRU, always: torch has no fused CPU GRU (ATen runs it step by step), and the fused
      scan is never slower (B=32 T=100 I=128 H=256, 1 thread, CPU time: forward 0.75x
      torch.nn.GRU's time; forward+backward 0.65-0.73x when the input needs no gradient,
      0.94x when it does), at about twice the activation memory.
    - LSTM and RNN with variable lengths (``varlen``): torch runs a packed sequence step by
      step on CPU, and its backward is slow; the fused scan handles lengths by shrinking
      the batch (measured, training with lengths in [T/2, T]: B=32 T=100 I=128 H=256
      one direction 92 vs 160 ms, bidirectional 145 vs 348 ms; B=64 T=256 I=128 H=128
      bidirectional 374 vs 1580 ms; tanh RNN 26 vs 51, 53 vs 87, 113 vs 488 ms).
    ``rnnkit bench --cells gru --backends native,fused`` measures the first.
    """
    from rnnkit.cells.gru import GRUCell

    return type(layer.cells[0]) is GRUCell or varlen


def choose_backend(layer, x: Tensor, lengths: Tensor | None = None) -> str:
    """The backend ``layer`` runs on ``x``: its own choice, or for ``auto`` the fastest that can.

    ``lengths`` (B,), when the sequences differ in length (None when all span T).
    """
    _fused()
    if layer.backend == "loop":
        return "loop"
    if layer.backend in SCAN_BACKENDS:
        reason = SCAN_BACKENDS[layer.backend].unsupported(layer, x)
        if reason:
            raise ValueError(f"backend={layer.backend!r} cannot run this layer: {reason}; "
                             "use backend='auto' or 'loop'")
        return layer.backend
    reason = native_unsupported(layer, x)
    if layer.backend == "native":
        if reason:
            raise ValueError(f"backend='native' cannot run this layer: {reason}; "
                             "use backend='auto' or 'loop'")
        return "native"
    if reason is None:
        if x.device.type == "cpu" and _prefers_fused_on_cpu(layer, lengths is not None) \
                and _fused().unsupported(layer, x) is None:
            return "fused"
        return "native"
    # Registered backends (e.g. triton on GPU), then the fused scan, which is faster than
    # the loop wherever it applies (docs/kernels.md).
    order = [n for n in SCAN_BACKENDS if n != "fused" and SCAN_BACKENDS[n].auto] + ["fused"]
    for name in order:
        if SCAN_BACKENDS[name].unsupported(layer, x) is None:
            return name
    return "loop"
