"""torch's own RNN kernels: the whole layer (cuDNN on GPU, oneDNN/ATen on CPU) and one step.

These are the kernels ``torch.nn.RNN/LSTM/GRU`` and ``torch.nn.LSTMCell`` etc. call;
rnnkit calls them with the same weights, so results match torch.nn exactly. Variable
lengths go through a ``PackedSequence`` as in torch. The backend name is ``"torch"``
(``"native"`` before; still accepted, with a warning).
"""
from __future__ import annotations

from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

__all__ = ["torch_forward", "torch_cell_step", "TORCH_KINDS"]

_FUNCS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}
_CELL_FNS = {"LSTM": _VF.lstm_cell, "GRU": _VF.gru_cell,
             "RNN_TANH": _VF.rnn_tanh_cell, "RNN_RELU": _VF.rnn_relu_cell}
#: the cell kinds (``Cell.kernel_kind``) torch has kernels for, given a ``native_mode``.
TORCH_KINDS = ("lstm", "gru", "rnn")


def torch_forward(mode: str, x: Tensor, hx: Tensor | tuple[Tensor, Tensor],
                   flat_weights: list[Tensor], has_bias: bool, num_layers: int, dropout: float,
                   training: bool, bidirectional: bool, lengths: Tensor | None):
    """Run a whole stacked (bi)RNN with torch's kernel.

    Args:
        x: (T, B, I) time-major input; ``lengths`` (B,) or None.
        hx: (D*L, B, H) or, for LSTM, ``(h0 (D*L, B, P or H), c0 (D*L, B, H))``.
    Returns:
        output (T, B, D*O) with zeros past each length, and h_n like ``hx``.
    """
    fn = _FUNCS[mode]
    if lengths is None:
        out, *h_n = fn(x, hx, flat_weights, has_bias, num_layers, dropout, training,
                       bidirectional, False)
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        order = packed.sorted_indices
        hx = tuple(h.index_select(1, order) for h in hx) if mode == "LSTM" \
            else hx.index_select(1, order)
        out, *h_n = fn(packed.data, packed.batch_sizes, hx, flat_weights, has_bias,
                       num_layers, dropout, training, bidirectional)
        out, _ = pad_packed_sequence(  # (T, B, D*O), original order; built anew (not
            PackedSequence(out, packed.batch_sizes, packed.sorted_indices,  # _replace) so
                           packed.unsorted_indices),  # torch.compile can trace it
            total_length=x.shape[0])
        h_n = [h.index_select(1, packed.unsorted_indices) for h in h_n]
    return out, (tuple(h_n) if mode == "LSTM" else h_n[0])


def torch_cell_step(cell, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor]):
    """One step with torch's fused cell function (one C++ op), or (None, None) where none applies.

    Args:
        x: (B, I) input; ``state`` the cell's state tuple of (B, S_i); ``p`` its weights.
    Returns:
        ``(y_t, new_state)`` as ``cell.step(cell.project(x), state, p)``, or (None, None).
    """
    mode = cell.native_mode if getattr(cell, "kernel_kind", None) in TORCH_KINDS else None
    fn = _CELL_FNS.get(mode)
    if fn is None or "weight_hr" in p or (mode == "GRU" and not cell.reset_after):
        return None, None
    args = (p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
    if mode == "LSTM":
        h, c = fn(x, state, *args)
        return h, (h, c)
    h = fn(x, state[0], *args)
    return h, (h,)
