"""Recurrent layers: the generic ``Recurrent``, the torch.nn-compatible presets and the cell zoo."""
from .errors import InputError
from .presets import GRU, LSTM, RNN
from .recurrent import Recurrent
from .registry import LAYERS, build_layer, register_layer
from .regularizers import embedding_dropout, max_norm_
from .zoo import (
    LRU,
    MLSTM,
    QRNN,
    RGLRU,
    S6,
    SLSTM,
    SRU,
    IndRNN,
    LayerNormGRU,
    LayerNormLSTM,
    MinGRU,
    MinLSTM,
)

__all__ = ["Recurrent", "InputError", "RNN", "LSTM", "GRU", "IndRNN", "QRNN", "SRU", "MinGRU",
           "MinLSTM", "LayerNormLSTM", "LayerNormGRU", "LRU", "RGLRU", "SLSTM", "MLSTM", "S6",
           "LAYERS",
           "build_layer", "register_layer", "embedding_dropout", "max_norm_"]
