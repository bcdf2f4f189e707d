"""Backend choice: the fastest backend that can run a layer's configuration.

``backend="auto"`` tries torch's fused kernel first (cuDNN on GPU, oneDNN/ATen on CPU),
then on CUDA tensors the Triton kernels (:mod:`rnnkit.kernels.triton`, when triton is
installed), then rnnkit's fused CPU scan (:mod:`rnnkit.kernels.fused`: every cell family
with any regulariser, lengths or residual), and falls back to the loop quietly; a backend named explicitly that cannot run the configuration raises a
``ValueError`` saying why. Regularisers that act in training only
(``input_dropout``, ``recurrent_dropout``, ``weight_drop``) keep the native
kernel out of training but not out of evaluation, where they are the identity
(``weight_drop`` on CPU runs natively in training too, on the dropped weights);
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
    # DropConnect on CPU: torch's kernel with the dropped weights (the layer passes them).
    # Not on CUDA, where the Triton scan measured faster than cuDNN for it (docs/triton.md).
    reason = None if reg is None else reg.native_unsupported(layer.training, x.device.type == "cpu")
    if reason:
        return reason
    if x.device.type == "cpu" and x.dtype not in _NATIVE_CPU_DTYPES:
        return f"torch's CPU kernel does not support {x.dtype}"
    return None


def _native_steps(x: Tensor) -> bool:
    """Whether the fused scans run compiled steps on ``x`` (float32 CPU, library built)."""
    from rnnkit.kernels.fused import _csteps

    return x.device.type == "cpu" and x.dtype == torch.float32 and _csteps.lib() is not None


def _prefers_fused_on_cpu(layer, x: Tensor, varlen: bool = False) -> bool:
    """Where rnnkit's fused scan beats torch's native kernel on CPU (``x`` (T, B, I)).

    The rule, from measurements (figures in ``docs/kernels.md`` and the files it cites):

    - GRU: torch has no fused CPU GRU (ATen step by step, recording autograd per step),
      so in training the fused scan is faster at every size measured
      (``benchmarks/results/gru_native_vs_fused_cpu.json``, ``bench_cpu_grid_gru_s6.json``).
      Without gradients its per-step Python costs more than torch's loop at small sizes
      with its pure-torch steps, and less from B*H = 8192; with the compiled steps
      (float32, a C compiler; ``kernels/fused/_csteps.py``) it is faster at every size
      measured (``bench_gru_inference_s6.json``).
    - LSTM and RNN with varying lengths (``varlen``): torch trains a packed sequence
      step by step and its backward is slow, so in training with B >= 2 the fused scan
      wins; without gradients, or for one sequence, torch's kernel is faster
      (``fused_cpu_t1.json``).
    ``rnnkit bench --cells gru --backends native,fused`` measures the GRU case.
    """
    from rnnkit.cells.gru import GRUCell

    gru = type(layer.cells[0]) is GRUCell
    if not gru and not varlen:
        return False
    grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in layer.parameters()))
    B = x.shape[1]
    if gru:
        return grad or B * layer.hidden_size >= 8192 or _native_steps(x)
    return grad and B >= 2


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
        # under CPU autocast the vanilla layers run torch's kernel: exactly torch.nn's dtypes
        # (torch.nn.GRU stays float32 there, its LSTM and RNN compute in bfloat16)
        if x.device.type == "cpu" and not torch.is_autocast_enabled("cpu") \
                and _prefers_fused_on_cpu(layer, x, lengths is not None) \
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
