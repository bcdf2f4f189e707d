"""rnnkit: recurrent neural networks on PyTorch.

The public names are imported lazily, so ``import rnnkit.reference`` (NumPy
only) does not import torch.
"""
from __future__ import annotations

import importlib

from rnnkit.runtime import __version__

_EXPORTS = {
    "Recurrent": "rnnkit.layers",
    "RNN": "rnnkit.layers",
    "LSTM": "rnnkit.layers",
    "GRU": "rnnkit.layers",
    "build_layer": "rnnkit.layers",
    "InputError": "rnnkit.layers",
    "IndRNN": "rnnkit.layers",
    "QRNN": "rnnkit.layers",
    "SRU": "rnnkit.layers",
    "MinGRU": "rnnkit.layers",
    "MinLSTM": "rnnkit.layers",
    "LayerNormLSTM": "rnnkit.layers",
    "LayerNormGRU": "rnnkit.layers",
    "LRU": "rnnkit.layers",
    "RGLRU": "rnnkit.layers",
    "SLSTM": "rnnkit.layers",
    "MLSTM": "rnnkit.layers",
    "S6": "rnnkit.layers",
    "LanguageModel": "rnnkit.models",
    "LMConfig": "rnnkit.models",
    "Trainer": "rnnkit.train",
    "load_recipe": "rnnkit.train",
    "run_training": "rnnkit.train",
    "generate": "rnnkit.generate",
    "Cell": "rnnkit.cells",
    "RNNCell": "rnnkit.cells",
    "LSTMCell": "rnnkit.cells",
    "GRUCell": "rnnkit.cells",
    "IndRNNCell": "rnnkit.cells",
    "QRNNCell": "rnnkit.cells",
    "SRUCell": "rnnkit.cells",
    "MinGRUCell": "rnnkit.cells",
    "MinLSTMCell": "rnnkit.cells",
    "LayerNormLSTMCell": "rnnkit.cells",
    "LayerNormGRUCell": "rnnkit.cells",
    "LRUCell": "rnnkit.cells",
    "RGLRUCell": "rnnkit.cells",
    "SLSTMCell": "rnnkit.cells",
    "MLSTMCell": "rnnkit.cells",
    "S6Cell": "rnnkit.cells",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
