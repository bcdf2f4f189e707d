"""Gradient clipping by global norm (Pascanu et al. 2013), as ``torch.nn.utils.clip_grad_norm_``.

All gradients are treated as one long vector ``g``:

    total_norm = ||g||_p = || (||g_1||_p, ||g_2||_p, ...) ||_p        (p = inf: max |g|)
    scale      = max_norm / (total_norm + 1e-6)
    g         <- g * min(scale, 1)

so the direction of the update is kept and only its length is capped at about ``max_norm``.
This is the standard remedy for exploding gradients in BPTT.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["clip_grad_norm"]


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float, norm_type: float = 2.0,
                   *, error_if_nonfinite: bool = False) -> tuple[dict[str, np.ndarray], float]:
    """Scale ``grads`` so that their global ``norm_type``-norm is at most ``max_norm``.

    Args:
        grads: name -> gradient array (e.g. the dict from a reference layer's ``backward``).
        max_norm: the largest total norm allowed.
        norm_type: p of the p-norm, a positive number or ``inf`` (or the string ``"inf"``).
        error_if_nonfinite: raise if the total norm is nan or inf (as torch's argument).

    Returns:
        ``(clipped, total_norm)``: a new dict of scaled arrays (the inputs are not modified) and
        the total norm before clipping, as a float.

    Example:
        >>> clipped, norm = clip_grad_norm({"w": np.array([3.0, 4.0])}, max_norm=1.0)
        >>> float(norm), np.round(clipped["w"], 6).tolist()
        (5.0, [0.6, 0.8])
    """
    p = float(norm_type)
    if not p > 0:
        raise ValueError(f"norm_type: expected a positive number or inf, got {norm_type!r}")
    max_norm = float(max_norm)
    arrays = {name: np.asarray(g, dtype=np.float64) for name, g in grads.items()}
    if not arrays:
        return {}, 0.0
    norms = np.array([_vector_norm(g, p) for g in arrays.values()])
    total_norm = _vector_norm(norms, p)
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise ValueError(f"clip_grad_norm: the total {p}-norm of the gradients is {total_norm}")
    scale = float(np.minimum(max_norm / (total_norm + 1e-6), 1.0))  # nan stays nan, as in torch
    return {name: g * scale for name, g in arrays.items()}, total_norm


def _vector_norm(v: np.ndarray, p: float) -> float:
    v = np.abs(np.ravel(v))
    if v.size == 0:
        return 0.0
    if math.isinf(p):
        return float(v.max())
    return float(np.sum(v**p) ** (1.0 / p))
