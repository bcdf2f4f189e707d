"""Gradients of every order for the hand-written scan ops: recompute, then differentiate.

The fused CPU scans and the Triton scans are ``torch.library`` custom ops whose
backward is hand-written (in-place buffers, compiled C, Triton kernels), so it is
not itself differentiable. torch.nn's kernels differentiate twice, and a gradient
penalty, a Jacobian regulariser or a meta-learning inner loop needs that. So every
op call carries a *reference*: a function of the op's tensor inputs, in plain
differentiable torch ops, that computes the same outputs (the cell stepped as the
layer's loop steps it, with the same masks and zoneout). Then

- an ordinary backward (``create_graph=False``: grad mode is off inside it) runs the
  op's own hand-written backward; the reference is only stored, never run;
- a ``create_graph=True`` backward (grad mode on) recomputes the outputs with the
  reference from the saved inputs and returns ``torch.autograd.grad`` of that with
  ``create_graph=True``, so every further derivative is autograd's.

An op called without a reference raises on a ``create_graph`` backward rather than
returning ``None`` or zeros. Under ``torch.func`` transforms (``grad``, ``vmap``,
``jacrev``), which torch's custom ops do not support, a call runs its reference in
place of the op (:func:`functorch_active`): same results, autograd's speed. Example (what
the scan modules do)::

    ys, h_n = run("gru", ts, steps, rates, reference=lambda ts: gru_reference(cell, ts))

Shapes: ``T`` time, ``B`` batch, ``G`` gate features, ``S`` a state tensor's size.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from ..cells.base import forward_ad_active, functorch_active

__all__ = ["carrying", "take_reference", "forward_ad_active", "reference_vjp", "reference_scan",
           "Reference", "functorch_active", "cell_reference", "zones_of", "sizes_mask"]

#: ``reference(ts) -> outs``: the op's caller-visible outputs from its tensor inputs.
Reference = Callable[[list], list]

_slot = threading.local()


@contextmanager
def carrying(reference: Reference | None):
    """Make ``reference`` the one the next op call's ``setup_context`` takes."""
    prev = getattr(_slot, "fn", None)
    _slot.fn = reference
    try:
        yield
    finally:
        _slot.fn = prev


def take_reference() -> Reference | None:
    """The reference of the op call being set up (see :func:`carrying`)."""
    fn = getattr(_slot, "fn", None)
    _slot.fn = None
    return fn


def reference_vjp(op: str, reference: Reference | None, ts: Sequence[Tensor | None],
                  needs: Sequence[bool], grads: Sequence[Tensor | None]) -> list[Tensor | None]:
    """``d(outs)/d(ts)^T grads`` through ``reference``, differentiable (``create_graph``).

    ``ts`` are the op's saved inputs (still attached to the graph), ``needs`` which of
    them need a gradient, ``grads`` one per output (None: no gradient reached it).
    Returns one entry per ``ts``: a tensor where needed (zeros where the output does
    not depend on it), else None.
    """
    if reference is None:
        raise RuntimeError(
            f"{op}: a create_graph=True backward needs this call's differentiable reference, "
            "and it has none (the op was called directly, not through a layer); run the "
            "layer with backend='loop' for higher-order gradients")
    wrt = [t for t, need in zip(ts, needs) if need]
    if not wrt:
        return [None] * len(ts)
    with torch.enable_grad():
        outs = reference(list(ts))
    pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
    if not pairs:
        got = [torch.zeros_like(t) for t in wrt]
    else:
        got = torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs],
                                  create_graph=True, allow_unused=True, materialize_grads=True)
    it = iter(got)
    return [next(it) if need else None for need in needs]


def sizes_mask(sizes: Sequence[int] | None, B: int, device) -> Tensor | None:
    """Live rows per step of a length-sorted batch -> the (T, B, 1) bool length mask."""
    if sizes is None:
        return None
    n = torch.tensor(list(sizes), device=device).view(-1, 1)  # (T, 1)
    return (torch.arange(B, device=device).view(1, -1) < n).unsqueeze(-1)


def reference_scan(cell, p: dict, xp: Tensor, state: tuple[Tensor, ...],
                   mask: Tensor | None = None, rec_mask: Tensor | None = None,
                   zones: Sequence = ()) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The layer's regularised loop over ``xp`` (T, B, G), with its masks given.

    Exactly :func:`rnnkit.kernels.loop.scan` with the step of
    :meth:`rnnkit.layers.regularizers.Regularizers.step`, but with the random inputs
    passed in as the fused scans get them: ``rec_mask`` (B, O) multiplies ``h_{t-1}``
    where it enters the recurrence (``cell.step_recurrent_dropout``); ``zones`` one
    entry per state tensor, None, a rate (evaluation) or (T, B, S) 0/1 keeps;
    ``mask`` (T, B, 1) bool, False where a sequence has ended (it keeps its state and
    outputs zeros). ``cell`` needs only ``step`` (and ``step_recurrent_dropout`` with
    ``rec_mask``). Returns ys (T, B, O) and the last state.
    """
    T = xp.shape[0]
    zoned = any(z is not None for z in zones)
    ys = []
    for t in range(T):
        if rec_mask is not None:
            y, new = cell.step_recurrent_dropout(xp[t], state, state[0] * rec_mask, p)
        else:
            y, new = cell.step(xp[t], state, p)
        if zoned:
            emits_state = y is new[0]
            new = tuple(n if z is None else torch.lerp(n, s, z[t] if isinstance(z, Tensor) else z)
                        for n, s, z in zip(new, state, zones))
            if emits_state:
                y = new[0]
        if mask is not None:
            live = mask[t]  # (B, 1)
            new = tuple(torch.where(live, n, s) for n, s in zip(new, state))
            y = torch.where(live, y, torch.zeros((), dtype=y.dtype, device=y.device))
        state = tuple(new)
        ys.append(y)
    return torch.stack(ys), state


def zones_of(tensors: Sequence[Tensor | None], rates: Sequence[float]) -> tuple:
    """The zoneout entries of a scan: its (T, B, S) keep masks where given, else its rates."""
    return tuple(z if z is not None else (float(r) or None) for z, r in zip(tensors, rates))


def cell_reference(cell, names: Sequence[str], n_state: int, sizes: Sequence[int] | None,
                   rates: Sequence[float]) -> Reference:
    """The reference of a matrix scan whose op inputs are laid out as

    ``ts = [xp, *state (n_state), *weights (named names, None when absent), rec_mask,
    *zoneout keep masks]`` and whose outputs are ``[ys, *last state]``.
    """
    def reference(ts):
        xp, state = ts[0], tuple(ts[1:1 + n_state])
        k = 1 + n_state + len(names)
        p = {n: w for n, w in zip(names, ts[1 + n_state:k]) if w is not None}
        mask = sizes_mask(sizes, xp.shape[1], xp.device)
        ys, last = reference_scan(cell, p, xp, state, mask, ts[k], zones_of(ts[k + 1:], rates))
        return [ys, *last]

    return reference
