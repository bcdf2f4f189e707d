"""Layers by name, for recipes and the CLI: ``build_layer("lstm", 32, 64, num_layers=2)``."""
from __future__ import annotations

from torch import nn

from .presets import GRU, LSTM, RNN
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

__all__ = ["LAYERS", "build_layer", "register_layer"]

LAYERS: dict[str, callable] = {
    "rnn_tanh": lambda *a, **k: RNN(*a, nonlinearity="tanh", **k),
    "rnn_relu": lambda *a, **k: RNN(*a, nonlinearity="relu", **k),
    "lstm": LSTM,
    "gru": GRU,
    "indrnn": IndRNN,
    "qrnn": QRNN,
    "sru": SRU,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
    "layernorm_lstm": LayerNormLSTM,
    "layernorm_gru": LayerNormGRU,
    "lru": LRU,
    "rglru": RGLRU,
    "slstm": SLSTM,
    "mlstm": MLSTM,
    "s6": S6,
}


def register_layer(name: str, factory) -> None:
    """Register ``factory(input_size, hidden_size, **kwargs)`` as ``build_layer(name, ...)``."""
    LAYERS[name] = factory


def build_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                dropout: float = 0.0, bidirectional: bool = False, batch_first: bool = False,
                **extras) -> nn.Module:
    """Build a recurrent layer by cell name (see ``LAYERS`` for the names)."""
    if cell not in LAYERS:
        raise ValueError(f"cell: unknown cell {cell!r}; expected one of {sorted(LAYERS)}")
    return LAYERS[cell](input_size, hidden_size, num_layers=num_layers, dropout=dropout,
                        bidirectional=bidirectional, batch_first=batch_first, **extras)
