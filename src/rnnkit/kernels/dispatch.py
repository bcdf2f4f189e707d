"""Backends: one protocol, one ordered table, one choice per forward call.

A backend is a name, ``unsupported(cfg) -> reason | None`` and ``run(...)``. The layer
builds one :class:`Config` per forward call and :func:`choose` asks the backends of
:data:`BACKENDS` in order; ``backend="auto"`` takes the first whose ``unsupported``
returns None, and a backend named explicitly that cannot run the configuration raises
a one-line ``ValueError`` with its reason. Each backend's reason is computed at most
once per call (:meth:`Config.reason`).

The table, in the order ``auto`` tries it:

========  ==========================================================  ================
name      what runs                                                   ``run`` takes
========  ==========================================================  ================
torch     torch's kernels (cuDNN on GPU, oneDNN/ATen on CPU),         the whole layer
          :mod:`.torch_kernels`; ``"native"`` is its old name
triton    rnnkit's Triton GPU scans (:mod:`.triton`; triton           a layer-direction
          itself is imported on first run, never here)
fused     rnnkit's fused scans with a hand-written backward           a layer-direction
          (:mod:`.fused`): every built-in cell, every regulariser
loop      the reference time loop over ``cell.step`` (:mod:`.loop`)   a layer-direction
========  ==========================================================  ================

``run`` by :attr:`~Backend.scope`:

- ``"layer"``: ``run(mode, x, hx, weights, has_bias, num_layers, dropout, training,
  bidirectional, lengths) -> (output, h_n)`` (:func:`.torch_kernels.torch_forward`).
- ``"scan"``: ``run(cell, p, x, state, mask, rec_mask=, zoneout=) -> (ys, state)``, the
  regularisers' random inputs drawn by the layer up front (``Regularizers.step_inputs``).
- ``"step"``: ``run(cell, p, x, state, mask, step) -> (ys, state)``, ``step`` the
  layer's regularised step (``Regularizers.step``) or None.

Regularisers that act in training only (``input_dropout``, ``recurrent_dropout``,
``weight_drop``) keep torch's kernels out of training but not out of evaluation, where
they are the identity (``weight_drop`` on CPU runs there in training too, on the dropped
weights); ``zoneout`` and ``max_norm`` change evaluation too. ``auto`` also passes over
torch's CPU kernels where rnnkit's fused scan measured faster (:func:`_prefers_fused`).
"""
from __future__ import annotations

import warnings
from typing import Protocol

import torch
from torch import Tensor

from .torch_kernels import TORCH_KINDS, torch_forward

__all__ = ["Backend", "Config", "BACKENDS", "ALIASES", "choose", "choose_backend",
           "backend_names", "canonical_name", "torch_unsupported", "native_unsupported"]


class Backend(Protocol):
    """What the dispatcher and the layer need of a backend (see the module docstring)."""

    name: str
    scope: str  # "layer", "scan" or "step": what run() takes

    def unsupported(self, cfg: Config) -> str | None: ...

    def run(self, *args, **kwargs): ...


class Config:
    """One forward call as the backends see it: the layer, its input and lengths.

    Args:
        layer: a :class:`~rnnkit.Recurrent` (read: ``cells``, ``residual``,
            ``regularizers``, ``training``, ``hidden_size``, ``parameters()``).
        x: (T, B, I) time-major input; ``lengths`` (B,) or None when all span T.
        auto: whether the backend is being chosen (``backend="auto"``) rather than named.
    """

    __slots__ = ("layer", "x", "lengths", "auto", "_reasons")

    def __init__(self, layer, x: Tensor, lengths: Tensor | None = None, auto: bool = True):
        self.layer, self.x, self.lengths, self.auto = layer, x, lengths, auto
        self._reasons: dict[str, str | None] = {}

    @property
    def cell(self):
        return self.layer.cells[0]

    def reason(self, backend: Backend) -> str | None:
        """``backend.unsupported(self)``, asked once per call."""
        if backend.name not in self._reasons:
            self._reasons[backend.name] = backend.unsupported(self)
        return self._reasons[backend.name]


# ------------------------------------------------------------------ torch's kernels
_TORCH_CPU_DTYPES = (torch.float32, torch.float64)


def torch_unsupported(layer, x: Tensor) -> str | None:
    """Why torch's kernels cannot run ``layer`` on ``x`` (T, B, I), or None if they can."""
    cell = layer.cells[0]
    if getattr(cell, "kernel_kind", None) not in TORCH_KINDS or cell.native_mode is None:
        return f"torch has no fused kernel for {cell!r}"
    if layer.residual:
        return "residual connections are not part of torch's kernel"
    reg = getattr(layer, "regularizers", None)
    # DropConnect on CPU: torch's kernel with the dropped weights (the layer passes them).
    # Not on CUDA, where the Triton scan measured faster than cuDNN for it (docs/triton.md).
    reason = None if reg is None else reg.torch_unsupported(layer.training,
                                                            x.device.type == "cpu")
    if reason:
        return reason
    if x.device.type == "cpu" and x.dtype not in _TORCH_CPU_DTYPES:
        return f"torch's CPU kernel does not support {x.dtype}"
    return None


native_unsupported = torch_unsupported  # the old name (backend "native")


def _compiled_steps(x: Tensor) -> bool:
    """Whether the fused scans run compiled steps on ``x`` (float32 CPU, library built)."""
    from .fused import _csteps

    return x.device.type == "cpu" and x.dtype == torch.float32 and _csteps.lib() is not None


def _tracing() -> bool:
    """Whether Dynamo/export or the TorchScript tracer is recording this call."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _compiled_loop(kind: str, x: Tensor) -> bool:
    """Whether the fused scan ``kind`` runs its time loop compiled for ``x``'s dtype and device
    (the extension built, :func:`rnnkit.kernels.compiled.available`)."""
    from . import compiled

    return compiled.available(kind, x)


def _compiled_slices(x: Tensor) -> bool:
    """Whether the compiled loops' products are brgemm slices here (not an Intel CPU), the
    extension already built (:func:`rnnkit.kernels.compiled.built`: no build for this rule)."""
    from . import compiled

    return (compiled.built() and compiled.available("lstm", x)
            and bool(compiled.ext().prefer_slices()))


def _prefers_fused(cfg: Config) -> bool:
    """Where rnnkit's fused scan beats torch's kernel on CPU (``cfg.x`` (T, B, I)).

    The rule, from measurements (``docs/kernels.md`` and the files it cites):

    - GRU: torch has no fused CPU GRU (ATen step by step, recording autograd per step),
      so in training the fused scan is faster at every size measured
      (``benchmarks/results/gru_native_vs_fused_cpu.json``, ``bench_cpu_grid_gru_s6.json``;
      with the compiled time loop, at 1 and 2 threads: ``bench_gru_torch_vs_fused_xeon2.json``,
      where torch's kernel is ahead only at B >= 64, H = 512 on one thread, by at most 6%).
      Without gradients its per-step Python costs more than torch's loop at small sizes
      with its pure-torch steps, and less from B*H = 8192; with the compiled steps
      (float32, a C compiler; ``kernels/fused/_csteps.py``) it is faster at every size
      measured (``bench_gru_inference_s6.json``).
    - LSTM and RNN with varying lengths: torch trains a packed sequence step by step and
      its backward is slow, so in training with B >= 2 the fused scan wins; without
      gradients, or for one sequence, torch's kernel is faster (``fused_cpu_t1.json``).
    - LSTM with projections (``proj_size``), float32: torch has no oneDNN kernel for it and
      runs ATen's step-by-step loop, which the compiled loop beats in training and inference,
      with and without lengths, at every batch measured (``lstm_auto_amd2_s17.json``).
    - LSTM inference (no gradients), float32, all sequences full length, where the compiled
      loop's products are brgemm slices on a kept W^T (a CPU that is not Intel's,
      ``compiled.ext().prefer_slices()``): faster than torch's oneDNN kernel at B <= 2 on one
      thread and at B <= 4 on two (where the loop runs on a team of threads), slower beyond
      (``lstm_auto_amd2_s17.json``, ``inference_rules_amd2_s17.json``). Not measured above two
      threads (no such machine yet; ``scripts/gpu_check.sh cpu16`` has the run) nor on Intel,
      where the products are MKL's packed weights: torch's kernel stays there. Only where
      the extension is built already: a gain of 10-25% is not worth a minute's build on a
      first inference call (``rnnkit generate`` after a demo that trained on torch's kernel).
      (Both LSTM rules in eager mode only: under ``torch.compile``, ``torch.export`` and
      ``torch.jit.trace`` the LSTM keeps torch's kernel, as the graphs were tested with.)

    ``rnnkit bench --cells gru --backends torch,fused`` measures the GRU case and
    ``benchmarks/bench_lstm_auto.py`` the LSTM ones.
    """
    layer, x = cfg.layer, cfg.x
    if x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        # under CPU autocast the vanilla layers run torch's kernel: exactly torch.nn's dtypes
        # (torch.nn.GRU stays float32 there, its LSTM and RNN compute in bfloat16)
        return False
    kind = cfg.cell.kernel_kind
    grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in layer.parameters()))
    if kind == "gru":
        return grad or x.shape[1] * layer.hidden_size >= 8192 or _compiled_steps(x)
    if kind == "lstm" and x.dtype == torch.float32 and not _tracing() and (
            getattr(layer, "proj_size", 0) or not grad and cfg.lengths is None
            and torch.get_num_threads() <= 2
            and x.shape[1] <= (4 if torch.get_num_threads() == 2 else 2)
            and _compiled_slices(x)) and _compiled_loop("lstm", x):
        return True
    return grad and cfg.lengths is not None and x.shape[1] >= 2


class _Torch:
    name, scope = "torch", "layer"

    def unsupported(self, cfg: Config) -> str | None:
        reason = torch_unsupported(cfg.layer, cfg.x)
        if reason is None and cfg.auto and _prefers_fused(cfg) and cfg.reason(FUSED) is None:
            return "auto: rnnkit's fused CPU scan is faster here (docs/kernels.md)"
        return reason

    run = staticmethod(torch_forward)


# ------------------------------------------------------------------ rnnkit's scans
class _Triton:
    name, scope = "triton", "scan"

    def unsupported(self, cfg: Config) -> str | None:
        if cfg.auto and cfg.x.device.type != "cuda":  # never the interpreter (checked first:
            return "backend='auto' runs the Triton kernels on CUDA only"  # auto on CPU skips)
        from .triton import triton_unsupported  # looks triton up, never imports it

        layer = cfg.layer
        return triton_unsupported(cfg.cell, cfg.x, layer.regularizers, layer.training)

    @staticmethod
    def run(cell, p, x, state, mask=None, *, rec_mask=None, zoneout=None):
        from .triton import triton_run

        return triton_run(cell, p, x, state, mask, rec_mask=rec_mask, zoneout=zoneout)


class _Fused:
    name, scope = "fused", "scan"

    def unsupported(self, cfg: Config) -> str | None:
        from .fused import fused_unsupported

        return fused_unsupported(cfg.cell, cfg.x)

    @staticmethod
    def run(cell, p, x, state, mask=None, *, rec_mask=None, zoneout=None):
        from .fused import fused_run

        return fused_run(cell, p, x, state, mask, rec_mask=rec_mask, zoneout=zoneout)


class _Loop:
    name, scope = "loop", "step"

    def unsupported(self, cfg: Config) -> str | None:
        return None  # any cell, any configuration

    @staticmethod
    def run(cell, p, x, state, mask=None, step=None):
        from .loop import scan

        xp = cell.project(x, p)  # (T, B, G)
        if step is None and getattr(cell, "scan", None) is not None:  # whole-sequence form
            return cell.scan(xp, state, p, mask)
        return scan(cell, p, xp, state, mask, step)


TORCH, TRITON, FUSED, LOOP = _Torch(), _Triton(), _Fused(), _Loop()
#: every backend, in the order ``auto`` tries them.
BACKENDS: tuple[Backend, ...] = (TORCH, TRITON, FUSED, LOOP)
_BY_NAME = {b.name: b for b in BACKENDS}
#: old backend names -> today's (each warns once per process).
ALIASES = {"native": "torch"}
_warned: set[str] = set()


def backend_names() -> tuple[str, ...]:
    """Every name ``backend=`` takes (besides the deprecated :data:`ALIASES`)."""
    return ("auto", *_BY_NAME)


def canonical_name(name: str, stacklevel: int = 2) -> str:
    """``name`` as :data:`BACKENDS` spells it; an old alias warns (once per process).

    Raises ValueError for a name that is neither.
    """
    if name in ALIASES:
        new = ALIASES[name]
        if name not in _warned:
            _warned.add(name)
            warnings.warn(f"backend={name!r} is deprecated; use backend={new!r} (the same "
                          "backend: torch's own kernels)", DeprecationWarning,
                          stacklevel=stacklevel + 1)
        return new
    if name == "auto" or name in _BY_NAME:
        return name
    names = backend_names()
    raise ValueError(f"backend: expected {', '.join(map(repr, names[:-1]))} or "
                     f"{names[-1]!r}, got {name!r}")


def choose(layer, x: Tensor, lengths: Tensor | None = None) -> Backend:
    """The backend ``layer`` runs on ``x`` (T, B, I): its own, or for ``auto`` the first
    of :data:`BACKENDS` that can. ``lengths`` (B,), or None when all sequences span T.
    """
    name = layer.backend
    if name not in _BY_NAME:
        name = canonical_name(name)
    if name == "auto":
        cfg = Config(layer, x, lengths, auto=True)
        for b in BACKENDS:
            if cfg.reason(b) is None:
                return b
    b = _BY_NAME[name]
    reason = Config(layer, x, lengths, auto=False).reason(b)
    if reason:
        raise ValueError(f"backend={name!r} cannot run this layer: {reason}; "
                         "use backend='auto' or 'loop'")
    return b


def choose_backend(layer, x: Tensor, lengths: Tensor | None = None) -> str:
    """The name of the backend :func:`choose` picks."""
    return choose(layer, x, lengths).name
