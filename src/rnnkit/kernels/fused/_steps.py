"""Plumbing shared by the fused scans: lengths as shrinking batch prefixes, regulariser inputs.

Variable lengths. :func:`rnnkit.kernels.loop.scan` masks: at step t a sequence
with ``lengths[b] <= t`` keeps its state and emits zeros. The fused scans get
the same result without masking. The batch is sorted by length, longest
first (a no-op when it already is), so that at step t the live sequences are
the first ``n_t`` rows; each step then computes ``rows[:n_t]`` only and leaves
the other rows alone, which is exactly "keeps its state" (the PackedSequence
idea, on a padded tensor). In the backward pass a row's gradient likewise
passes through its padded steps untouched.

Regularisers. The layer draws every random mask
(:meth:`rnnkit.layers.regularizers.Regularizers.step_inputs`: the very masks its loop
draws, in the same order) and passes them down, so a fused layer and a loop layer
give the same result under the same seed; the kernels never draw.

Shapes: ``T`` time, ``B`` batch, ``S`` a state tensor's size, ``O`` output size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Steps", "Zone", "plan_steps", "permute_batch", "zone_at",
           "last_state", "time_chunks", "tanh_"]

#: A zoneout setting of one state tensor: None (off), a float ``p`` (evaluation:
#: ``s_t = p * s_{t-1} + (1 - p) * s~_t``) or a (T, B, S) tensor of 0/1 keep
#: indicators drawn in training (``s_t = s_{t-1}`` where 1, ``s~_t`` where 0).
Zone = float | Tensor | None


@dataclass
class Steps:
    """Which rows of the (sorted) batch are live at each step.

    ``sizes[t]`` is ``n_t``, the number of sequences with ``length > t``
    (non-increasing in t); None when every sequence spans all T steps.
    ``last[b]`` is sequence b's last step, ``length - 1`` (-1 for an empty one).
    """

    sizes: list[int] | None = None
    last: Tensor | None = None


def lasts(steps: Steps) -> list[int]:
    """Each row's last step as a list, as the compiled loops take it ([]: every row has all T)."""
    return [] if steps.last is None else steps.last.tolist()


def plan_steps(mask: Tensor | None, T: int, B: int) -> tuple[Tensor | None, Steps]:
    """From a (T, B, 1) length mask: the batch order (None: keep it) and the live rows.

    Raises ValueError for a mask that is not a length mask (True then False along time).
    """
    if mask is None:
        return None, Steps()
    if mask.shape != (T, B, 1) or mask.dtype != torch.bool:
        raise ValueError(f"mask: expected a (T, B, 1) = ({T}, {B}, 1) bool tensor, got "
                         f"{tuple(mask.shape)} {mask.dtype}")
    m = mask.view(T, B)
    lengths = m.sum(0)  # (B,)
    t = torch.arange(T, device=mask.device).unsqueeze(1)  # (T, 1)
    if not torch.equal(m, t < lengths.unsqueeze(0)):
        raise ValueError("mask: the fused scans need a length mask (True for t < lengths[b], "
                         "then False), as kernels.loop.length_mask makes")
    if bool((lengths == T).all()):
        return None, Steps()
    order = None
    if B > 1 and not bool((lengths[:-1] >= lengths[1:]).all()):
        order = torch.argsort(lengths, descending=True, stable=True)
        lengths = lengths[order]
    sizes = (t < lengths.unsqueeze(0)).sum(1).tolist()  # (T,) live rows per step
    return order, Steps([int(n) for n in sizes], lengths - 1)


def permute_batch(x, order: Tensor | None, dim: int):
    """``x`` (a tensor, a float or None) with its batch dimension ``dim`` put in ``order``."""
    if order is None or not isinstance(x, Tensor):
        return x
    return x.index_select(dim, order)


def zone_at(z: Zone, t: int, n: int):
    """The zoneout weight of step t for the live rows ``[:n]`` (a float or an (n, S) view)."""
    return z if not isinstance(z, Tensor) else z[t, :n]


def buffers(steps: Steps, like: Tensor):
    """``new(*shape)``: a fresh tensor in ``like``'s dtype and device for a scan's buffers.

    Zero-filled when the sequences differ in length (rows past their end are never
    written and must read 0), else uninitialised.
    """
    fill = torch.zeros if steps.sizes is not None else torch.empty
    return lambda *shape: fill(*shape, dtype=like.dtype, device=like.device)


_MINUS_ONE = torch.tensor(-1.0, device="cpu")  # 0-dim: takes the other operand's dtype, device
_SIGMOID_FORM = (torch.float32, torch.float64)  # bf16/fp16: 2 sigmoid(2x) - 1 loses x near 0


def tanh_(x: Tensor, out: Tensor | None = None) -> Tensor:
    """``tanh(x)`` into ``out`` (default: in place) as ``2 sigmoid(2x) - 1``.

    torch's float32 CPU ``tanh`` is several times slower than its ``sigmoid`` on the
    CPUs we measure, and this form in three ops is faster than ``tanh`` (figures:
    docs/kernels.md, "Small choices"); it is within 2e-7 of ``tanh`` in float32 and
    4e-16 in float64.
    """
    out = x if out is None else out
    if x.dtype not in _SIGMOID_FORM:  # 8 bits of mantissa: sigmoid(2x) ~ 1/2 rounds x away
        return torch.tanh(x, out=out)
    torch.mul(x, 2, out=out).sigmoid_()
    return torch.add(_MINUS_ONE, out, alpha=2, out=out)


def lstm_gates_(pre: Tensor, a: Tensor, H: int) -> None:
    """``a = [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)]`` of the (n, 4H) pre-activations.

    ``pre`` is scratch: its g block is doubled in place so that the one sigmoid over all
    4H gives ``sigmoid(2 g)``, and ``tanh(g) = 2 sigmoid(2 g) - 1`` is one more op.
    """
    if pre.dtype not in _SIGMOID_FORM:
        torch.sigmoid(pre, out=a)
        torch.tanh(pre[:, 2 * H: 3 * H], out=a[:, 2 * H: 3 * H])
        return
    pre[:, 2 * H: 3 * H].mul_(2)
    torch.sigmoid(pre, out=a)
    g = a[:, 2 * H: 3 * H]
    torch.add(_MINUS_ONE, g, alpha=2, out=g)


def time_chunks(T: int, per_step: int, target: int = 32768) -> list[tuple[int, int]]:
    """``[(t0, t1), ...]`` covering 0..T-1 from the end, ``target // per_step`` steps each.

    The backward passes compute their per-step factors one chunk at a time, so
    that a chunk's arrays (about ``target`` elements each) stay in cache, with
    one op per chunk instead of one per step.
    """
    c = max(1, min(T, target // max(1, per_step)))
    return [(max(0, t1 - c), t1) for t1 in range(T, 0, -c)]


def last_state(S: Tensor, s0: Tensor, steps: Steps) -> Tensor:
    """Each row's state at its own last step: ``S[last[b], b]``, or ``s0[b]`` if empty.

    ``S`` (T, B, S) holds the states of the live rows at every step.
    """
    if steps.last is None:
        return S[-1].clone()
    B = S.shape[1]
    last = steps.last
    s = S[last.clamp(min=0), torch.arange(B, device=S.device)]  # (B, S)
    return torch.where((last >= 0).unsqueeze(1), s, s0)
