"""Recurrent cells: one step of the math each, parameters owned by the layer."""
from .base import Cell, Params, State
from .gru import GRUCell
from .lstm import LSTMCell
from .rnn import RNNCell

__all__ = ["Cell", "Params", "State", "RNNCell", "LSTMCell", "GRUCell"]
