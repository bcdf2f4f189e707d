"""Dynamic int8 quantisation of recurrent and linear layers for CPU inference.

Dynamic quantisation stores each weight matrix as int8 with one scale per tensor and
quantises the activations on the fly, per call::

    W_q = round(W / s_W),  s_W = max|W| / 127          (offline, once)
    y   = s_W s_x (W_q x_q) + b,  x_q = round(x / s_x)  (int8 GEMM, int32 accumulation)

torch's dynamic kernels exist for ``torch.nn.LSTM``, ``torch.nn.GRU`` and ``torch.nn.Linear``,
not for rnnkit's layers, so :func:`to_torch_recurrent` first swaps each rnnkit ``LSTM``/``GRU``
(the configurations torch's own kernel can run: no residual, no regulariser active in
evaluation, no projection) for a :class:`TorchRecurrent` holding the equivalent
``torch.nn`` module; the parameter names are identical, so the weights load unchanged,
and the wrapper keeps rnnkit's forward contract (``lengths=``, zeros past each length,
``h_n`` at each sequence's own last step). :func:`quantize_dynamic` then calls
``torch.ao.quantization.quantize_dynamic`` on the result. Embeddings and convolutions stay
float; other cells (IndRNN, SRU, ...) stay float and are reported as skipped.

Example::

    qmodel, report = quantize_dynamic(model)        # a copy; model is untouched
    report["converted"], report["skipped"]          # ["rnn"], []
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

__all__ = ["TorchRecurrent", "convertible", "to_torch_recurrent", "quantize_dynamic", "model_bytes"]


class TorchRecurrent(nn.Module):
    """A ``torch.nn.RNN/LSTM/GRU`` behind rnnkit's forward ``(input, hx=None, lengths=None)``.

    With ``lengths`` the padded input is packed (unsorted), run and padded back to its ``T``,
    so padded steps give zeros and ``h_n`` is each sequence's state at its own last step,
    as with rnnkit's layers.
    """

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn
        self.batch_first = rnn.batch_first

    def forward(self, input: Tensor | PackedSequence, hx: Any = None, lengths: Any = None):
        if lengths is None or isinstance(input, PackedSequence):
            return self.rnn(input, hx)
        T = input.shape[1 if self.batch_first else 0]
        lengths = torch.as_tensor(lengths).cpu()
        packed = pack_padded_sequence(
            input, lengths, batch_first=self.batch_first, enforce_sorted=False
        )
        out, h_n = self.rnn(packed, hx)
        # (T, B, D*H)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=T)
        return out, h_n


def convertible(layer: nn.Module) -> str | None:
    """Why ``layer`` cannot become a ``torch.nn`` RNN, or None if it can."""
    from rnnkit.kernels.dispatch import torch_unsupported
    from rnnkit.layers import Recurrent

    if not isinstance(layer, Recurrent):
        return f"{type(layer).__name__} is not an rnnkit Recurrent layer"
    if getattr(layer.cells[0], "proj_size", 0):
        return "LSTM projection (proj_size) has no dynamic int8 kernel"
    was = layer.training
    layer.eval()
    try:
        w = layer._flat_weights[0]
        return torch_unsupported(layer, torch.zeros(1, 1, layer.input_size, dtype=w.dtype))
    finally:
        layer.train(was)


def _torch_module(layer: nn.Module) -> nn.RNNBase:
    mode = layer.cells[0].native_mode
    kw = dict(num_layers=layer.num_layers, bias=layer.bias, batch_first=layer.batch_first,
              dropout=layer.dropout, bidirectional=layer.bidirectional)
    if mode == "LSTM":
        m = nn.LSTM(layer.input_size, layer.hidden_size, **kw)
    elif mode == "GRU":
        m = nn.GRU(layer.input_size, layer.hidden_size, **kw)
    else:
        m = nn.RNN(
            layer.input_size,
            layer.hidden_size,
            nonlinearity="tanh" if mode == "RNN_TANH" else "relu",
            **kw,
        )
    state = {k: v.detach() for k, v in layer.named_parameters(recurse=False)}
    if any(k.endswith("_orig") for k in state):
        raise ValueError("to_torch_recurrent: the layer is still pruned (masks attached); call "
                         "rnnkit.compress.make_permanent first")
    m.load_state_dict(state)  # identical names: weight_ih_l0, bias_hh_l1_reverse, ...
    return m.to(layer._flat_weights[0].dtype)


def to_torch_recurrent(model: nn.Module) -> tuple[nn.Module, list[str], dict[str, str]]:
    """Swap every convertible rnnkit layer of ``model`` (in place) for :class:`TorchRecurrent`.

    Returns ``(model, converted names, {skipped name: reason})``.
    """
    from rnnkit.layers import Recurrent

    converted, skipped = [], {}
    for name, m in list(model.named_modules()):
        if not isinstance(m, Recurrent):
            continue
        reason = convertible(m)
        if reason is not None:
            skipped[name] = reason
            continue
        parent = model
        *path, leaf = name.split(".") if name else [""]
        for p in path:
            parent = getattr(parent, p)
        new = TorchRecurrent(_torch_module(m))
        if name:
            setattr(parent, leaf, new)
        else:
            model = new
        converted.append(name)
    return model, converted, skipped


def quantize_dynamic(model: nn.Module, *, linear: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """An int8 dynamically quantised copy of ``model`` (eval mode, CPU) and a report.

    Args:
        model: a float model holding rnnkit layers (left unchanged).
        linear: also quantise ``nn.Linear`` layers (heads, decoders).

    Returns:
        ``(qmodel, {"converted": [...], "skipped": {name: reason}, "float_bytes", "int8_bytes"})``.
    """
    m = copy.deepcopy(model).cpu().eval()
    m, converted, skipped = to_torch_recurrent(m)
    types = {nn.LSTM, nn.GRU} | ({nn.Linear} if linear else set())
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(m, types, dtype=torch.qint8)
    if next(q.parameters(), None) is None:  # pipelines look up the device from a parameter
        q.register_parameter("_device_anchor", nn.Parameter(torch.zeros(0), requires_grad=False))
    return q, {"converted": converted, "skipped": skipped, "float_bytes": model_bytes(model),
               "int8_bytes": model_bytes(q)}


def model_bytes(model: nn.Module) -> int:
    """Size in bytes of ``model.state_dict()`` serialised with ``torch.save`` (int8 weights
    are stored packed, so this is the size a quantised model takes on disk and in memory)."""
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes
