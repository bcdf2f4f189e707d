"""NumPy reference RNN, LSTM and GRU with explicit backpropagation through time (BPTT).

The oracle that rnnkit's fast paths are tested against, and a readable account of BPTT.
Float64, NumPy only (importing it does not import torch), torch.nn's parameter names, shapes,
gate order and ``h_n`` layout, so a torch ``state_dict`` loads as is.

Backpropagation through time
----------------------------
A recurrent layer applies one cell with shared weights W at every step,

    h_t = cell(x_t, h_{t-1}; W),    y_t = h_t,    t = 1 .. T,

and a loss L reads the outputs y_1 .. y_T and the final state h_T. Unrolled over time this is
a T-layer feed-forward network whose layers all share W; BPTT is ordinary backpropagation
through that unrolled network. Writing ``dv`` for dL/dv, walk the steps in reverse carrying
the gradient of the state:

    dh_T        = dL/dh_T                                    (``d_h_n``; zero if not given)
    dh_t       += dL/dy_t                                    (``d_output[t]``)
    dx_t, dh_{t-1}, dW_t = cell_backward(dh_t, cache_t)      (the chain rule through one step)
    dW          = sum_t dW_t                                 (W is shared, so gradients add)

``cache_t`` is what the forward step kept (its inputs, gates, activations). For the tanh RNN,
``h_t = tanh(a_t)``, ``a_t = x_t W_ih^T + h_{t-1} W_hh^T + b``, one step back is

    da_t = dh_t * (1 - h_t**2),    dh_{t-1} = da_t W_hh,    dW_hh += da_t^T h_{t-1},

so dh_{t-k} carries k factors ``diag(1 - h**2) W_hh``: gradients shrink or blow up
geometrically with k (vanishing/exploding gradients; see ``clip_grad_norm`` for the usual cure
of the second). The LSTM adds a cell state with an additive path,

    c_t = f_t * c_{t-1} + i_t * g_t      =>      dc_{t-1} = dc_t * f_t (+ the path through h),

which lets gradients survive many steps while the forget gate f stays near 1. Each cell's
step and its backward, written from its equations, are in ``rnnkit.reference.cells``; the time
loop, lengths, bidirection and stacking in ``rnnkit.reference.layers``; the later cells
(IndRNN, QRNN, SRU, minGRU, minLSTM, LayerNorm-LSTM/GRU), on the same driver, in
``rnnkit.reference.zoo``; the modern recurrences in ``rnnkit.reference.lru`` (LRU, RG-LRU),
``rnnkit.reference.xlstm`` (sLSTM, mLSTM) and ``rnnkit.reference.ssm`` (Mamba's S6).

Example
-------
>>> import numpy as np
>>> from rnnkit import reference
>>> lstm = reference.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)
>>> x = np.random.default_rng(0).normal(size=(5, 2, 3))          # (T, B, I)
>>> out, (h_n, c_n) = lstm.forward(x, lengths=[5, 3])
>>> out.shape, h_n.shape, c_n.shape                                # (T, B, D*H), (D*L, B, H)
((5, 2, 8), (4, 2, 4), (4, 2, 4))
>>> bool(np.all(out[3:, 1] == 0))                                  # padding gives zeros
True
>>> grads = lstm.backward(np.ones_like(out))
>>> grads["weight_hh_l1_reverse"].shape, grads["input"].shape, grads["c0"].shape
((16, 4), (5, 2, 3), (4, 2, 4))
>>> clipped, norm = reference.clip_grad_norm(grads, max_norm=1.0)
"""
from __future__ import annotations

from .cells import (
    gru_step,
    gru_step_backward,
    lstm_step,
    lstm_step_backward,
    rnn_step,
    rnn_step_backward,
)
from .clip import clip_grad_norm
from .layers import GRU, LSTM, RNN
from .lru import LRU, RGLRU
from .ssm import S6
from .xlstm import MLSTM, SLSTM
from .zoo import QRNN, SRU, IndRNN, LayerNormGRU, LayerNormLSTM, MinGRU, MinLSTM

__all__ = [
    "RNN", "LSTM", "GRU", "clip_grad_norm",
    "IndRNN", "QRNN", "SRU", "MinGRU", "MinLSTM", "LayerNormLSTM", "LayerNormGRU",
    "LRU", "RGLRU", "SLSTM", "MLSTM", "S6",
    "rnn_step", "rnn_step_backward",
    "lstm_step", "lstm_step_backward",
    "gru_step", "gru_step_backward",
]
