"""Validation and normalisation of a layer's inputs: one clear error per mistake.

Everything a layer accepts (padded or packed, batched or not, batch-first or
time-major, with or without ``lengths`` and ``hx``) is brought to one internal
form: time-major ``x (T, B, I)``, ``lengths (B,)`` or None, and ``hx`` as a tuple
of ``(D*L, B, S_i)`` tensors, one per state tensor of the cell.

Every mistake raises :class:`~rnnkit.layers.errors.InputError` (a ValueError and a
RuntimeError, as torch.nn raises one or the other) whose message ends with torch's own
sentence in parentheses, so a match on torch's text still matches.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .errors import InputError

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

    ``state_shapes`` lists ``(D*L, S_i)`` for each state tensor. ``B = 0`` is accepted
    (torch.nn returns empty outputs for it); ``T = 0`` is not (nor by torch.nn).
    """
    packed = None
    unbatched = False
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise InputError("lengths: must be None when input is a PackedSequence "
                             "(the lengths are inside it)")
        packed = input
        x, lens = pad_packed_sequence(input)  # (T, B, I) in the caller's batch order
        lengths = lens
    elif isinstance(input, Tensor):
        if input.dim() not in (2, 3):
            raise InputError(
                f"input: expected a 3-D tensor ({'B, T, I' if batch_first else 'T, B, I'}) or an "
                f"unbatched 2-D tensor (T, I), got shape {_shape(input)} "
                f"(Expected input to be 2D or 3D, got {input.dim()}D instead)")
        unbatched = input.dim() == 2
        if unbatched:
            x = input.unsqueeze(1)  # (T, I) -> (T, 1, I)
        else:
            x = input.transpose(0, 1) if batch_first else input  # (B, T, I) -> (T, B, I)
    else:
        raise InputError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")

    T, B, In = x.shape
    # as torch.nn: under autocast an input of another precision is autocast's to cast
    if x.dtype != dtype and not torch._C._is_any_autocast_enabled():
        raise InputError(f"input: RNN input dtype ({x.dtype}) does not match weight dtype "
                         f"({dtype}). Convert input: input.to({dtype}), or convert model: "
                         f"model.to({x.dtype})")
    if In != input_size:
        raise InputError(f"input: expected {input_size} features in the last dimension, "
                         f"got shape {_shape(input.data if packed is not None else input)} "
                         f"(input.size(-1) must be equal to input_size. Expected {input_size}, "
                         f"got {In})")
    if x.device != device:
        raise InputError(f"input: on device {x.device} but the layer's parameters are on "
                         f"{device}; move one of them with .to(device) (Input and parameter "
                         "tensors are not at the same device)")

    if lengths is not None:
        lengths = _check_lengths(lengths, T, B)
        lengths = None if packed is None and bool((lengths == T).all()) else lengths.to(x.device)

    if hx is not None:
        hx = _check_hx(hx, unbatched, B, num_states, state_shapes, x.dtype, device)
    if T == 0:
        raise InputError(f"input: expected at least one time step, got shape {_shape(input)} "
                         "(Expected sequence length to be larger than 0 in RNN)")
    return Batch(x, lengths, hx, packed, unbatched)


def _check_lengths(lengths, T: int, B: int) -> Tensor:
    lens = torch.as_tensor(lengths)
    if lens.dim() != 1 or lens.numel() != B or lens.is_floating_point() or lens.is_complex():
        got = f"dtype {lens.dtype}" if lens.is_floating_point() else f"shape {_shape(lens)}"
        raise InputError(f"lengths: expected {B} integer lengths (one per sequence), got {got}")
    lens = lens.to("cpu", torch.int64)
    bad = (lens < 1) | (lens > T)
    if bool(bad.any()):
        b = int(bad.nonzero()[0])
        raise InputError(f"lengths: every length must be in [1, T={T}], "
                         f"got lengths[{b}] = {int(lens[b])}")
    return lens


def _check_hx(hx, unbatched: bool, B: int, num_states: int, state_shapes, dtype, device):
    states = (hx,) if isinstance(hx, Tensor) else tuple(hx)
    if len(states) != num_states or not all(isinstance(h, Tensor) for h in states):
        want = "a Tensor" if num_states == 1 else f"a tuple of {num_states} Tensors"
        torch_says = " (lstm expects two hidden states)" if num_states == 2 else ""
        raise InputError(f"hx: expected {want}, got {type(hx).__name__}"
                         + ("" if isinstance(hx, Tensor) else f" of length {len(states)}")
                         + torch_says)
    rank = 2 if unbatched else 3
    if any(h.dim() != rank for h in states):  # torch's words: LSTM's state is "hx and cx"
        what = "hx" if num_states == 1 else "hx and cx"
        got = ", ".join(f"{h.dim()}-D" for h in states)
        got = f"{got} tensor" if num_states == 1 else f"({got}) tensors"
        batched = "unbatched 2-D" if unbatched else "batched 3-D"
        i = next(i for i, h in enumerate(states) if h.dim() != rank)
        name = "hx" if num_states == 1 else f"hx[{i}]"
        n, s = state_shapes[i]
        raise InputError(f"{name}: expected shape {(n, s) if unbatched else (n, B, s)}, got "
                         f"{_shape(states[i])} (For {batched} input, {what} should also be "
                         f"{rank}-D but got {got})")
    out = []
    for i, (h, (n, s)) in enumerate(zip(states, state_shapes)):
        name = "hx" if num_states == 1 else f"hx[{i}]"
        want = (n, s) if unbatched else (n, B, s)
        if _shape(h) != want:
            torch_name = "hidden" if num_states == 1 else f"hidden[{i}]"
            got = list(h.unsqueeze(1).shape if unbatched else h.shape)  # torch's (D*L, B, S)
            hint = (f"; the input has {B} sequences" if not unbatched and h.shape[1] != B
                    else "")
            raise InputError(f"{name}: expected shape {want}, got {_shape(h)}{hint} "
                             f"(Expected {torch_name} size {(n, B, s)}, got {got})")
        if h.dtype != dtype:
            raise InputError(f"{name}: dtype {h.dtype} does not match the input's ({dtype})")
        if h.device != device:
            raise InputError(f"{name}: on device {h.device} but the input is on {device} "
                             "(Input and hidden tensors are not at the same device)")
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
