"""Synthetic long-memory tasks: the adding problem and copy memory.

Adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015):
each step carries a value ~ U(0, 1) and a marker; exactly two steps are
marked, one in each half of the sequence, and the target is the sum of the
two marked values. Always predicting 1 scores MSE = Var(u1 + u2) = 1/6 ~ 0.167;
"solved" means test MSE < 0.01.

Copy memory (Arjovsky et al. 2016): 10 symbols from {1..8}, then T-1 blanks
(0), a delimiter (9) and 10 more blanks; the target is blank everywhere except
the last 10 steps, which repeat the 10 symbols. Sequence length T + 20. The
memoryless baseline's cross-entropy is 10 log 8 / (T + 20).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["adding_problem", "copy_memory", "ADDING_BASELINE_MSE", "copy_memory_baseline"]

ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(
    n: int, T: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` sequences of length ``T``: x (T, n, 2) [value, marker], y (n,)."""
    if T < 2:
        raise ValueError(f"T: the adding problem needs T >= 2, got {T}")
    values = torch.rand(T, n, generator=generator)
    half = T // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, T, (n,), generator=generator)
    markers = torch.zeros(T, n)
    cols = torch.arange(n)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    y = values[first, cols] + values[second, cols]
    return torch.stack([values, markers], dim=-1), y  # (T, n, 2), (n,)


def copy_memory(n: int, T: int, n_symbols: int = 8, length: int = 10,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` sequences: x (T + 2*length, n) int64 inputs, y (T + 2*length, n) int64 targets.

    Symbols are 1..n_symbols, 0 is blank and n_symbols + 1 the delimiter.
    """
    if T < 1:
        raise ValueError(f"T: copy memory needs T >= 1, got {T}")
    total = T + 2 * length
    seq = torch.randint(1, n_symbols + 1, (length, n), generator=generator)
    x = torch.zeros(total, n, dtype=torch.long)
    y = torch.zeros(total, n, dtype=torch.long)
    x[:length] = seq
    x[length + T - 1] = n_symbols + 1  # delimiter: "now recall"
    y[-length:] = seq
    return x, y


def copy_memory_baseline(T: int, n_symbols: int = 8, length: int = 10) -> float:
    """Cross-entropy per step of predicting blanks, then uniform symbols at the end."""
    return length * math.log(n_symbols) / (T + 2 * length)
