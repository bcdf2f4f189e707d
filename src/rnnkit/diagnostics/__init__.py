"""Diagnostics: gradient flow through time, clipping over training, gate activity.

- :func:`hidden_gradient_norms`: ``||dL/dh_t||`` for every step of every rnnkit recurrent layer;
- :class:`ClipRecord`: the gradient norm before and after clipping, per optimiser step;
- :func:`gate_activity`: LSTM/GRU (and LayerNorm, min-) gates and states over a sequence,
  with saturation statistics;
- :func:`explain_checkpoint`, :func:`explain_recipe`, :func:`explain_adding`: the
  ``rnnkit explain`` targets, writing PNGs and ``explain.json``.

Names are imported on first use, so ``rnnkit --help`` (which imports
:mod:`rnnkit.commands.explain`) does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "hidden_gradient_norms": "gradient_flow",
    "flow_summary": "gradient_flow",
    "ClipRecord": "gradient_flow",
    "plot_gradient_flow": "gradient_flow",
    "plot_clipping": "gradient_flow",
    "gate_activity": "gates",
    "cell_gates": "gates",
    "saturation": "gates",
    "plot_gate_heatmaps": "gates",
    "adding_study": "adding",
    "explain_model": "explain",
    "explain_checkpoint": "explain",
    "explain_recipe": "explain",
    "explain_adding": "explain",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
