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

__all__ = ["Batch", "prepare", "prepare_step", "finish"]


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
        if not isinstance(input.data, Tensor) or input.data.dim() != 2:
            got = (f"shape {_shape(input.data)}" if isinstance(input.data, Tensor)
                   else type(input.data).__name__)
            raise InputError(f"input: expected a PackedSequence whose data is 2-D (sum of "
                             f"lengths, {input_size}), got {got} (input must have 2 "
                             f"dimensions, got {getattr(input.data, 'ndim', 0)})")
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
    # as torch.nn: under autocast an input of another precision is autocast's to cast; an
    # integer or bool input is not a precision (autocast casts floating-point tensors only)
    autocast = torch._C._is_any_autocast_enabled()
    if x.dtype != dtype and autocast and not x.is_floating_point():
        raise InputError(f"input: expected a floating-point tensor under autocast, got dtype "
                         f"{x.dtype} (autocast casts only floating-point inputs); convert it: "
                         f"input.to({dtype})")
    if x.dtype != dtype and not autocast:
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
    if isinstance(lengths, (list, tuple)) and len(lengths) == 0:
        lengths = torch.zeros(0, dtype=torch.int64)  # as_tensor([]) is float32
    lens = torch.as_tensor(lengths)
    bad_dtype = lens.is_floating_point() or lens.is_complex() or lens.dtype == torch.bool
    if lens.dim() != 1 or lens.numel() != B or bad_dtype:
        got = f"dtype {lens.dtype}" if bad_dtype else f"shape {_shape(lens)}"
        raise InputError(f"lengths: expected {B} integer lengths (one per sequence), got {got}")
    lens = lens.to("cpu", torch.int64)
    bad = (lens < 1) | (lens > T)
    if bool(bad.any()):
        b = int(bad.nonzero()[0])
        raise InputError(f"lengths: every length must be in [1, T={T}], "
                         f"got lengths[{b}] = {int(lens[b])}")
    return lens


def _check_hx(hx, unbatched: bool, B: int, num_states: int, state_shapes, dtype, device, *,
              step: bool = False):
    """``hx`` of ``forward`` (or, with ``step``, the ``state`` of ``step``): its type, each
    tensor's rank, shape, dtype and device; returns each as (D*L, B, S_i)."""
    arg = "state" if step else "hx"
    states = (hx,) if isinstance(hx, Tensor) else tuple(hx) if isinstance(hx, (tuple, list)) \
        else None
    if states is None or len(states) != num_states or not all(isinstance(h, Tensor)
                                                              for h in states):
        want = "a Tensor" if num_states == 1 else f"a tuple of {num_states} Tensors"
        torch_says = " (lstm expects two hidden states)" if num_states == 2 and not step else ""
        got = type(hx).__name__
        if states is not None and not isinstance(hx, Tensor):
            kinds = ", ".join(type(h).__name__ for h in states)
            got += f" of length {len(states)} ({kinds})"
        raise InputError(f"{arg}: expected {want}, got {got}{torch_says}")

    def name(i):
        return f"state[{i}]" if step else "hx" if num_states == 1 else f"hx[{i}]"

    rank = 2 if unbatched else 3
    if any(h.dim() != rank for h in states):  # torch's words: LSTM's state is "hx and cx"
        what = "hx" if num_states == 1 else "hx and cx"
        got = ", ".join(f"{h.dim()}-D" for h in states)
        got = f"{got} tensor" if num_states == 1 else f"({got}) tensors"
        batched = "unbatched 2-D" if unbatched else "batched 3-D"
        i = next(i for i, h in enumerate(states) if h.dim() != rank)
        n, s = state_shapes[i]
        torch_says = "" if step else (f" (For {batched} input, {what} should also be "
                                      f"{rank}-D but got {got})")
        raise InputError(f"{name(i)}: expected shape {(n, s) if unbatched else (n, B, s)}, got "
                         f"{_shape(states[i])}{torch_says}")
    out = []
    x_name = "x_t" if step else "the input"
    for i, (h, (n, s)) in enumerate(zip(states, state_shapes)):
        want = (n, s) if unbatched else (n, B, s)
        if _shape(h) != want:
            torch_name = "hidden" if num_states == 1 else f"hidden[{i}]"
            got = list(h.unsqueeze(1).shape if unbatched else h.shape)  # torch's (D*L, B, S)
            hint = (f"; {x_name} has {B} sequences" if not unbatched and h.shape[1] != B
                    else "")
            torch_says = "" if step else f" (Expected {torch_name} size {(n, B, s)}, got {got})"
            raise InputError(f"{name(i)}: expected shape {want}, got {_shape(h)}{hint}"
                             f"{torch_says}")
        if h.dtype != dtype:
            if not (h.is_floating_point() and dtype.is_floating_point
                    and torch._C._is_any_autocast_enabled()):
                raise InputError(f"{name(i)}: dtype {h.dtype} does not match {x_name}'s "
                                 f"({dtype})")
            # under autocast another float precision is a cast, as torch.nn takes it (the
            # state a step returns there, bf16, goes back into the next step)
            h = h.to(dtype)
        if h.device != device:
            raise InputError(f"{name(i)}: on device {h.device} but {x_name} is on {device} "
                             "(Input and hidden tensors are not at the same device)")
        out.append(h.unsqueeze(1) if unbatched else h)  # (D*L, S) -> (D*L, 1, S)
    return tuple(out)


def prepare_step(x_t, state, *, input_size: int, state_shapes: list[tuple[int, int]],
                 dtype: torch.dtype, device: torch.device):
    """Check the arguments of ``Recurrent.step`` as :func:`prepare` checks ``forward``'s.

    ``x_t`` is (B, I) or unbatched (I,); ``state`` None or like ``hx`` with ``state_shapes``
    ``(L, S_i)``. Returns ``x`` (B, I), the states as (L, B, S_i) or None, and whether
    ``x_t`` was unbatched.
    """
    if not isinstance(x_t, Tensor) or x_t.dim() not in (1, 2) or x_t.shape[-1] != input_size:
        raise InputError(f"x_t: expected a (B, {input_size}) or ({input_size},) tensor, got "
                         f"{_shape(x_t) if isinstance(x_t, Tensor) else type(x_t).__name__}")
    autocast = torch._C._is_any_autocast_enabled()
    if x_t.dtype != dtype and not (autocast and x_t.is_floating_point()):
        raise InputError(f"x_t: dtype {x_t.dtype} does not match the layer's weights ({dtype}); "
                         f"convert it: x_t.to({dtype})")
    if x_t.device != device:
        raise InputError(f"x_t: on device {x_t.device} but the layer's parameters are on "
                         f"{device}; move one of them with .to(device)")
    unbatched = x_t.dim() == 1
    x = x_t.unsqueeze(0) if unbatched else x_t  # (I,) -> (1, I)
    states = None if state is None else _check_hx(
        state, unbatched, x.shape[0], len(state_shapes), state_shapes, x.dtype, x.device,
        step=True)
    return x, states, unbatched


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
