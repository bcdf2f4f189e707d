"""Validation and normalisation of a layer's inputs: one clear error per mistake.

Everything a layer accepts (padded or packed, batched or not, batch-first or
time-major, with or without ``lengths`` and ``hx``) is brought to one internal
form: time-major ``x (T, B, I)``, ``lengths (B,)`` or None, and ``hx`` as a tuple
of ``(D*L, B, S_i)`` tensors, one per state tensor of the cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

__all__ = ["Batch", "prepare", "finish"]


@dataclass
class Batch:
    x: Tensor                      # (T, B, I) time-major
    lengths: Tensor | None         # (B,) int64 on x's device, or None if all are T
    hx: tuple[Tensor, ...] | None  # each (D*L, B, S_i)
    packed: PackedSequence | None  # the original packed input, to re-pack the output
    unbatched: bool


def _shape(t) -> tuple[int, ...]:
    return tuple(t.shape)


def prepare(input, hx, lengths, *, input_size: int, batch_first: bool, num_states: int,
            state_shapes: list[tuple[int, int]], dtype: torch.dtype,
            device: torch.device) -> Batch:
    """Check the arguments of ``forward`` and bring them to the internal form.

    ``state_shapes`` lists ``(D*L, S_i)`` for each state tensor.
    """
    packed = None
    unbatched = False
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError("lengths: must be None when input is a PackedSequence "
                             "(the lengths are inside it)")
        packed = input
        x, lens = pad_packed_sequence(input)  # (T, B, I) in the caller's batch order
        lengths = lens
    elif isinstance(input, Tensor):
        if input.dim() not in (2, 3):
            raise ValueError(
                f"input: expected a 3-D tensor ({'B, T, I' if batch_first else 'T, B, I'}) or an "
                f"unbatched 2-D tensor (T, I), got shape {_shape(input)}")
        unbatched = input.dim() == 2
        if unbatched:
            x = input.unsqueeze(1)  # (T, I) -> (T, 1, I)
        else:
            x = input.transpose(0, 1) if batch_first else input  # (B, T, I) -> (T, B, I)
    else:
        raise ValueError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")

    T, B, In = x.shape
    if In != input_size:
        raise ValueError(f"input: expected {input_size} features in the last dimension, "
                         f"got shape {_shape(input.data if packed is not None else input)}")
    if T == 0 or B == 0:
        raise ValueError(f"input: expected at least one time step and one sequence, "
                         f"got shape {_shape(input)}")
    if x.dtype != dtype:
        raise ValueError(f"input: dtype {x.dtype} does not match the layer's parameters "
                         f"({dtype}); convert one of them with .to(dtype)")
    if x.device != device:
        raise ValueError(f"input: on device {x.device} but the layer's parameters are on "
                         f"{device}; move one of them with .to(device)")

    if lengths is not None:
        lengths = _check_lengths(lengths, T, B)
        lengths = None if packed is None and bool((lengths == T).all()) else lengths.to(x.device)

    if hx is not None:
        hx = _check_hx(hx, unbatched, B, num_states, state_shapes, dtype, device)
    return Batch(x, lengths, hx, packed, unbatched)


def _check_lengths(lengths, T: int, B: int) -> Tensor:
    lens = torch.as_tensor(lengths)
    if lens.dim() != 1 or lens.numel() != B or lens.is_floating_point() or lens.is_complex():
        raise ValueError(f"lengths: expected {B} integer lengths (one per sequence), got "
                         f"{'dtype ' + str(lens.dtype) if lens.is_floating_point() else 'shape ' + str(_shape(lens))}")
    lens = lens.to("cpu", torch.int64)
    bad = (lens < 1) | (lens > T)
    if bool(bad.any()):
        b = int(bad.nonzero()[0])
        raise ValueError(f"lengths: every length must be in [1, T={T}], "
                         f"got lengths[{b}] = {int(lens[b])}")
    return lens


def _check_hx(hx, unbatched: bool, B: int, num_states: int, state_shapes, dtype, device):
    states = (hx,) if isinstance(hx, Tensor) else tuple(hx)
    if len(states) != num_states or not all(isinstance(h, Tensor) for h in states):
        want = "a Tensor" if num_states == 1 else f"a tuple of {num_states} Tensors"
        raise ValueError(f"hx: expected {want}, got {type(hx).__name__}"
                         + ("" if isinstance(hx, Tensor) else f" of length {len(states)}"))
    out = []
    for i, (h, (n, s)) in enumerate(zip(states, state_shapes)):
        name = "hx" if num_states == 1 else f"hx[{i}]"
        want = (n, s) if unbatched else (n, B, s)
        if _shape(h) != want:
            raise ValueError(f"{name}: expected shape {want}, got {_shape(h)}")
        if h.dtype != dtype:
            raise ValueError(f"{name}: dtype {h.dtype} does not match the input's ({dtype})")
        if h.device != device:
            raise ValueError(f"{name}: on device {h.device} but the input is on {device}")
        out.append(h.unsqueeze(1) if unbatched else h)  # (D*L, S) -> (D*L, 1, S)
    return tuple(out)


def finish(out: Tensor, h_n: tuple[Tensor, ...], batch: Batch, batch_first: bool):
    """Bring (T, B, D*O) output and (D*L, B, S) states back to the caller's layout."""
    if batch.packed is not None:
        p = batch.packed
        order = p.sorted_indices
        if order is not None:
            out = out.index_select(1, order)  # (T, B, *) in packing order
        lens = batch.lengths.cpu() if order is None else batch.lengths.cpu()[order.cpu()]
        data = pack_padded_sequence(out, lens, enforce_sorted=True).data
        out = PackedSequence(data, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
    elif batch.unbatched:
        out = out.squeeze(1)  # (T, 1, *) -> (T, *)
        h_n = tuple(h.squeeze(1) for h in h_n)
    elif batch_first:
        out = out.transpose(0, 1)  # (T, B, *) -> (B, T, *)
    return out, h_n
