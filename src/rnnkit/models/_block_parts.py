"""What the published blocks share: argument checks, time-major input and lengths, and
Griffin's gated MLP half (its recurrent and local-attention blocks both end with it)."""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def _time_major(x: Tensor, d_model: int, batch_first: bool, name: str = "d_model") -> Tensor:
    """``x`` checked, as (T, B, d); ``name`` is the size's (``d_model``, ``input_size``)."""
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != d_model:
        what = f"(B, T, {name})" if batch_first else f"(T, B, {name})"
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x: expected shape {what} with {name}={d_model}, got {got}")
    return x.transpose(0, 1) if batch_first else x  # (B, T, d) -> (T, B, d)


def _lengths(lengths, T: int, B: int, device) -> tuple[Tensor | None, Tensor | None]:
    """``lengths`` as an int64 (B,) tensor and the (T, B, 1) mask of valid steps (or Nones)."""
    if lengths is None:
        return None, None
    lens = torch.as_tensor(lengths)
    if lens.dim() != 1 or lens.shape[0] != B or lens.dtype.is_floating_point \
            or lens.dtype == torch.bool or lens.is_complex():
        raise ValueError(f"lengths: expected {B} integer lengths (one per sequence), got "
                         f"{tuple(lens.shape)} of {lens.dtype}")
    if B and (int(lens.min()) < 1 or int(lens.max()) > T):
        raise ValueError(f"lengths: every length must be in [1, T={T}], got {lens.tolist()}")
    lens = lens.to(torch.int64)
    mask = torch.arange(T, device=device)[:, None] < lens.to(device)[None, :]  # (T, B)
    return lens, mask.unsqueeze(-1)


def _probability(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v < 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {v!r}")
    return float(v)


def _gated_mlp(block: nn.Module, d: int, E: int, eps: float, factory: dict) -> None:
    """Give ``block`` Griffin's MLP half: ``mlp_norm`` and ``mlp_gate``, ``mlp_up`` (E, d),
    ``mlp_down`` (d, E), every Linear with a bias."""
    block.mlp_norm = nn.RMSNorm(d, eps=eps, **factory)
    block.mlp_gate = nn.Linear(d, E, **factory)
    block.mlp_up = nn.Linear(d, E, **factory)
    block.mlp_down = nn.Linear(E, d, **factory)


def _add_gated_mlp(block: nn.Module, x: Tensor) -> Tensor:
    """``x + drop(W_down (GeLU(W_g n + b_g) * (W_u n + b_u)) + b_down)``, ``n = RMSNorm(x)``."""
    n = block.mlp_norm(x)
    return x + block.drop(block.mlp_down(F.gelu(block.mlp_gate(n), approximate="tanh")
                                         * block.mlp_up(n)))
