"""Magnitude pruning of the input and recurrent weights of rnnkit layers (``torch.nn.utils.prune``).

Unstructured L1 (magnitude) pruning zeroes the weights of smallest ``|w|``::

    per layer:  for each tensor W in S:   mask_W = |W| >= kth(|W|, k_W),   k_W = round(a * |W|)
    global:     one threshold over the union of S:   k = round(a * sum_W |W|)
    W' = W * mask_W                       (``W_orig`` trains on; ``W`` is recomputed each call)

``S`` holds every ``weight_ih_l{k}[_reverse]`` and ``weight_hh_l{k}[_reverse]`` of every
:class:`~rnnkit.layers.Recurrent` in the model (and, with ``linear=True``, the weights of
``nn.Linear`` modules). torch's pruning reparametrises ``W`` as ``W_orig * W_mask`` with a
forward pre-hook; rnnkit layers read their weights by name on every call, so every backend
(torch's kernel, the fused scan, the loop) sees the pruned weights. :func:`make_permanent`
folds the masks back into plain parameters so the model saves as an ordinary checkpoint.

Example::

    pruned = prune_model(model, 0.7, scope="global")  # [(layer, "weight_hh_l0"), ...]
    sparsity(pruned)  # {"rnn.weight_hh_l0": 0.64, ..., "total": 0.7}
    make_permanent(pruned)  # zeros stay; masks are gone
"""

from __future__ import annotations

import re
from typing import Literal

from torch import nn
from torch.nn.utils import prune

__all__ = ["RECURRENT_WEIGHT", "prunable_weights", "prune_model", "sparsity", "make_permanent"]

#: names of the input and recurrent weight matrices of a Recurrent layer
RECURRENT_WEIGHT = re.compile(r"^weight_(ih|hh)_l\d+(_reverse)?$")


def prunable_weights(model: nn.Module, *, linear: bool = False) -> list[tuple[str, nn.Module, str]]:
    """``(qualified name, module, parameter name)`` of the weights :func:`prune_model` prunes."""
    from rnnkit.layers import Recurrent

    out = []
    for mname, m in model.named_modules():
        if isinstance(m, Recurrent):
            names = [n for n, _ in m.named_parameters(recurse=False) if RECURRENT_WEIGHT.match(n)]
        elif linear and isinstance(m, nn.Linear):
            names = ["weight"]
        else:
            continue
        out += [(f"{mname}.{n}" if mname else n, m, n) for n in names]
    return out


def prune_model(model: nn.Module, amount: float, *, scope: Literal["global", "layer"] = "global",
                linear: bool = False) -> list[tuple[str, nn.Module, str]]:
    """Prune a fraction ``amount`` of the input/recurrent weights by magnitude, in place.

    Args:
        model: any model holding rnnkit recurrent layers.
        amount: fraction in [0, 1) of the selected weights to zero.
        scope: "global" (one magnitude threshold over all of them) or "layer" (the same
            fraction of each weight tensor).
        linear: also prune ``nn.Linear`` weights (heads, decoders).

    Returns:
        the pruned ``(name, module, parameter name)`` triples (for :func:`sparsity` and
        :func:`make_permanent`).
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount={amount}: expected a fraction in [0, 1)")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope={scope!r}: expected 'global' or 'layer'")
    targets = prunable_weights(model, linear=linear)
    if not targets:
        raise ValueError(f"{type(model).__name__}: no rnnkit recurrent layer weights to prune")
    if scope == "global":
        prune.global_unstructured(
            [(m, n) for _, m, n in targets],
            pruning_method=prune.L1Unstructured,
            amount=float(amount),
        )
    else:
        for _, m, n in targets:
            prune.l1_unstructured(m, n, amount=float(amount))
    return targets


def sparsity(targets: list[tuple[str, nn.Module, str]]) -> dict[str, float]:
    """Fraction of exact zeros in each pruned weight, and ``"total"`` over all of them."""
    out, zeros, total = {}, 0, 0
    for name, m, n in targets:
        w = getattr(m, n).detach()
        z = int((w == 0).sum())
        out[name] = z / w.numel()
        zeros, total = zeros + z, total + w.numel()
    out["total"] = zeros / max(total, 1)
    return out


def make_permanent(targets: list[tuple[str, nn.Module, str]]) -> None:
    """Fold each mask into its weight (``prune.remove``): plain parameters with the zeros kept."""
    for _, m, n in targets:
        if prune.is_pruned(m) and hasattr(m, f"{n}_mask"):
            prune.remove(m, n)

