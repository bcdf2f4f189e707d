"""Recurrent cells: one step of the math each, parameters owned by the layer."""
from .base import Cell, Params, State
from .gru import GRUCell
from .indrnn import IndRNNCell
from .layernorm import LayerNormGRUCell, LayerNormLSTMCell
from .lru import LRUCell, RGLRUCell
from .lstm import LSTMCell
from .minrnn import MinGRUCell, MinLSTMCell
from .qrnn import QRNNCell
from .rnn import RNNCell
from .sru import SRUCell
from .ssm import S6Cell
from .xlstm import MLSTMCell, SLSTMCell

__all__ = ["Cell", "Params", "State", "RNNCell", "LSTMCell", "GRUCell",
           "IndRNNCell", "QRNNCell", "SRUCell", "MinGRUCell", "MinLSTMCell",
           "LayerNormLSTMCell", "LayerNormGRUCell", "LRUCell", "RGLRUCell",
           "SLSTMCell", "MLSTMCell", "S6Cell"]
