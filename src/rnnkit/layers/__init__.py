"""Recurrent layers: the generic ``Recurrent`` and the torch.nn-compatible presets."""
from .presets import GRU, LSTM, RNN
from .recurrent import Recurrent
from .registry import LAYERS, build_layer, register_layer

__all__ = ["Recurrent", "RNN", "LSTM", "GRU", "LAYERS", "build_layer", "register_layer"]
