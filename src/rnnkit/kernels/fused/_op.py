"""The fused scans as ``torch.library`` custom ops, with fake kernels and a registered backward.

Every fused scan is a *kernel*: a pair of plain functions

    forward(ts, cfg)                       -> (outs, saved)   outs: what the caller gets
    backward(ts, res, grads, cfg, needs)   -> [grad per ts entry]  (None where not needed)

(``res`` is ``outs + saved``; ``grads`` one per entry of ``outs``)

plus ``fake(ts, cfg) -> (outs, saved)``, empty tensors of the right shapes. All
kernels run through two ops, ``rnnkit::fused_scan`` and ``rnnkit::fused_scan_backward``,
named by ``kind`` (``"lstm"``, ``"gru"``, ``"indrnn"``, ...):

- in eager mode the op calls the kernel's forward, and autograd (registered with
  ``register_autograd``) calls the backward op with the saved tensors;
- a ``create_graph=True`` backward (a gradient penalty, ``gradgradcheck``) does not call
  the backward op: it differentiates the call's *reference* instead, the same outputs
  in plain torch ops (:mod:`rnnkit.kernels._higher`), so gradients of every order are
  autograd's and the ordinary backward is unchanged;
- under ``torch.compile``/``torch.export`` both ops are opaque nodes whose
  output shapes come from the fake kernels, so a layer on the fused backend
  traces into one graph (``fullgraph=True``) with no graph break.

The non-tensor configuration travels as ``sizes`` (live rows per step, ``[]``
when every sequence spans all T steps), ``last`` (each row's last step) and
``floats`` (zoneout rates in evaluation); see :class:`Cfg`.

Example::

    outs = run("indrnn", [xp, w, h0, None], steps, [0.0], reference)   # -> [ys, h_n]
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .._higher import (
    Reference,
    carrying,
    forward_ad_active,
    functorch_active,
    reference_vjp,
    take_reference,
)
from ._steps import Steps

__all__ = ["Cfg", "Kernel", "KERNELS", "register", "run"]


@dataclass
class Cfg:
    """The non-differentiable configuration of one scan call."""

    steps: Steps
    floats: list[float]
    need_grad: bool = True

    def zone(self, z: Tensor | None, i: int):
        """Zoneout weight ``i``: the (T, B, S) keep mask if given, else the rate (None if 0)."""
        if z is not None:
            return z
        r = self.floats[i] if i < len(self.floats) else 0.0
        return r or None


@dataclass
class Kernel:
    forward: Callable
    backward: Callable
    fake: Callable
    n_out: int  # how many of the forward op's outputs the caller gets (the rest are saved)


#: kind -> kernel; filled by the scan modules at import.
KERNELS: dict[str, Kernel] = {}


def register(kind: str, forward: Callable, backward: Callable, fake: Callable,
             n_out: int) -> None:
    """Add kernel ``kind`` (see the module docstring for the three functions)."""
    KERNELS[kind] = Kernel(forward, backward, fake, n_out)


def _cfg(sizes: list[int], last: Tensor | None, floats: list[float], need_grad: bool) -> Cfg:
    steps = Steps([int(n) for n in sizes], last) if sizes else Steps()
    return Cfg(steps, list(floats), need_grad)


def _enc(ts: list[Tensor | None], like: Tensor) -> list[Tensor]:
    """None entries as 0-element placeholders (autograd drops a ``Tensor?[]`` with Nones)."""
    return [like.new_empty(0) if t is None else t for t in ts]


def _dec(ts) -> list[Tensor | None]:
    return [None if t.dim() == 1 and t.numel() == 0 else t for t in ts]


def _pack(kind: str, outs, saved, ts) -> list[Tensor]:
    """outs + saved as one list of tensors, with placeholders for None."""
    return list(outs) + _enc(saved, ts[0])


@torch.library.custom_op("rnnkit::fused_scan", mutates_args=())
def _scan_op(kind: str, ts: list[Tensor], sizes: list[int],
             last: Tensor | None, floats: list[float], need_grad: bool) -> list[Tensor]:
    ts = _dec(ts)
    cfg = _cfg(sizes, last, floats, need_grad)
    outs, saved = KERNELS[kind].forward(list(ts), cfg)
    outs = [o.clone() if any(o is t for t in ts if t is not None) else o for o in outs]
    return _pack(kind, outs, saved if need_grad else [], ts)


@_scan_op.register_fake
def _(kind, ts, sizes, last, floats, need_grad):
    ts = _dec(ts)
    outs, saved = KERNELS[kind].fake(list(ts), _cfg([], None, floats, need_grad))
    return _pack(kind, outs, saved if need_grad else [], ts)


@torch.library.custom_op("rnnkit::fused_scan_backward", mutates_args=())
def _backward_op(kind: str, saved: list[Tensor], grads: list[Tensor],
                 sizes: list[int], last: Tensor | None, floats: list[float],
                 needs: list[bool]) -> list[Tensor]:
    cfg = _cfg(sizes, last, floats, True)
    n = len(needs)
    saved, grads = _dec(saved), _dec(grads)
    out = KERNELS[kind].backward(saved[:n], saved[n:], grads, cfg, list(needs))
    return [g.contiguous() for g, need in zip(out, needs) if need]


@_backward_op.register_fake
def _(kind, saved, grads, sizes, last, floats, needs):
    return [t.new_empty(t.shape) for t, need in zip(saved, needs) if need]


def _setup(ctx, inputs, output):
    kind, ts, sizes, last, floats, need_grad = inputs
    n_out = KERNELS[kind].n_out
    ctx.kind, ctx.sizes, ctx.floats, ctx.n_ts, ctx.n_out = kind, list(sizes), list(floats), \
        len(ts), n_out
    ctx.save_for_backward(*ts, *output, last)  # outputs too: Y is often needed
    ctx.reference = take_reference()
    # the saved activations are outputs of the op too, and never get a gradient: without
    # this, autograd would fill a zero tensor for each of them on every backward (for a
    # LayerNorm-LSTM at T=100, B=32, H=256 two (T, B, 4H) fills, ~10% of its backward)
    ctx.set_materialize_grads(False)


def _backward(ctx, grads):
    *rest, last = ctx.saved_tensors
    needs = [bool(x) for x in ctx.needs_input_grad[1]]
    out = [None] * ctx.n_ts
    if any(needs) and torch.is_grad_enabled() and not torch.compiler.is_compiling():
        # create_graph=True: differentiate the reference, whose backward is autograd's
        out = reference_vjp(f"rnnkit::fused_scan({ctx.kind!r})", ctx.reference,
                            _dec(rest[:ctx.n_ts]), needs, list(grads[:ctx.n_out]))
    elif any(needs):
        g = _backward_op(ctx.kind, rest, _enc(list(grads[:ctx.n_out]), rest[0]), ctx.sizes,
                         last, ctx.floats, needs)
        it = iter(g)
        out = [next(it) if need else None for need in needs]
    # (pytree: a non-empty list of ints is one leaf, an empty list a node without leaves)
    return None, out, (None if ctx.sizes else []), None, (None if ctx.floats else []), None


_scan_op.register_autograd(_backward, setup_context=_setup)


def _plain_eager(ts: list[Tensor | None]) -> bool:
    """Whether nothing records or traces this call: plain tensors (no fake, functional or
    other subclass), no dispatch mode (make_fx, FlopCounterMode, ...), no forward-mode AD
    level, no torch.compile, torch.export or torch.jit trace. Only then may the op's
    dispatch be skipped."""
    return (all(t is None or type(t) is Tensor or type(t) is torch.nn.Parameter for t in ts)
            and _get_current_dispatch_mode() is None
            and not forward_ad_active()
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())


def run(kind: str, ts: list[Tensor | None], steps: Steps, floats: list[float],
        reference: Reference | None = None) -> list[Tensor]:
    """Run kernel ``kind`` on ``ts`` through the custom op; returns its outputs (not the saved).

    ``reference(ts) -> outputs``, the same outputs in differentiable torch ops, serves
    ``create_graph=True`` backwards (:mod:`rnnkit.kernels._higher`); without one they raise.
    Under ``torch.func`` transforms and forward-mode AD the reference runs instead of the op.
    """
    if functorch_active() or forward_ad_active():
        # torch.func transforms and forward-mode AD (dual tensors): the op has no batching
        # rule and no jvp, so the reference, in differentiable torch ops, runs instead
        if reference is None:
            raise RuntimeError(f"rnnkit::fused_scan({kind!r}) cannot run under torch.func "
                               "transforms or forward-mode AD without its reference; use "
                               "backend='loop'")
        return list(reference(list(ts)))[:KERNELS[kind].n_out]
    need = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)
    sizes = [] if steps.sizes is None else [int(n) for n in steps.sizes]
    if not need and _plain_eager(ts):
        # inference in plain eager mode: the kernel itself, without the custom op's dispatch
        # (docs/kernels.md, "Inference at B=1")
        cfg = _cfg(sizes, steps.last, [float(f) for f in floats], False)
        outs, _ = KERNELS[kind].forward(list(ts), cfg)
        n = KERNELS[kind].n_out
        return [o.clone() if any(o is t for t in ts if t is not None) else o for o in outs[:n]]
    with carrying(reference if need else None):
        res = _scan_op(kind, _enc(list(ts), ts[0]), sizes, steps.last,
                       [float(f) for f in floats], need)
    return list(res[:KERNELS[kind].n_out])
