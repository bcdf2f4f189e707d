"""Initialisation schemes for recurrent layers, applied per gate block.

torch.nn's default (every weight ~ U(-1/sqrt(H), 1/sqrt(H))) is kept unless a
scheme is asked for:

- ``init_ih``: ``"xavier_uniform"`` or ``"xavier_normal"`` (Glorot & Bengio 2010)
  or ``"orthogonal"`` for the input weights ``weight_ih``;
- ``init_hh``: ``"orthogonal"`` (Saxe et al. 2014), ``"identity"`` (IRNN, Le et
  al. 2015) or the xavier schemes for the recurrent weights ``weight_hh``;
- ``forget_bias``: the forget gate's total bias, e.g. 1.0 (Jozefowicz et al.
  2015), for any cell that declares a ``forget_gate`` block: with two biases
  (LSTM's ``b_if + b_hf``) ``bias_ih`` takes the value and ``bias_hh`` zero; with
  one (QRNN, SRU, minLSTM) block ``forget_gate`` of ``bias`` takes it.

Each gate's (H, I) or (H, H) block is initialised on its own, so an orthogonal
recurrent matrix is orthogonal for every gate.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["INIT_SCHEMES", "init_block_rows", "apply_init", "check_init_args"]

INIT_SCHEMES = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "orthogonal": nn.init.orthogonal_,
    "identity": lambda w: nn.init.eye_(w),
}


def init_block_rows(w: Tensor, num_blocks: int, scheme: str) -> None:
    """Initialise each of the ``num_blocks`` row blocks of ``w`` with ``scheme``."""
    fn = INIT_SCHEMES[scheme]
    with torch.no_grad():
        for block in w.chunk(num_blocks, dim=0):
            fn(block)


def apply_init(cell, p: dict[str, Tensor], init_ih: str | None, init_hh: str | None,
               forget_bias: float | None) -> None:
    """Apply the chosen schemes to one layer/direction's parameters ``p``."""
    if init_ih is not None and "weight_ih" in p:
        init_block_rows(p["weight_ih"], cell.num_gates, init_ih)
    if init_hh is not None and "weight_hh" in p:
        init_block_rows(p["weight_hh"], cell.num_gates, init_hh)
    if forget_bias is not None:
        k, H = cell.forget_gate, cell.hidden_size
        block = slice(k * H, (k + 1) * H)
        with torch.no_grad():
            if "bias_ih" in p:
                p["bias_ih"][block].fill_(forget_bias)
                p["bias_hh"][block].zero_()
            else:
                p["bias"][block].fill_(forget_bias)


def check_init_args(cell, init_ih, init_hh, forget_bias) -> None:
    for name, value in (("init_ih", init_ih), ("init_hh", init_hh)):
        if value is not None and value not in INIT_SCHEMES:
            raise ValueError(f"{name}: expected one of {sorted(INIT_SCHEMES)} or None, "
                             f"got {value!r}")
    if init_ih == "identity":
        raise ValueError("init_ih: 'identity' is for recurrent weights only (init_hh)")
    if init_hh is not None and len(cell.param_shapes().get("weight_hh", ())) != 2:
        raise ValueError(f"init_hh: {type(cell).__name__} has no recurrent weight matrix "
                         f"(weight_hh of shape (G*H, H)), so init_hh={init_hh!r} does not apply; "
                         "leave init_hh=None")
    if forget_bias is not None:
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)) \
                or not math.isfinite(forget_bias):
            raise ValueError(f"forget_bias: expected a finite number or None, got "
                             f"{forget_bias!r}")
        if cell.forget_gate is None:
            raise ValueError(f"forget_bias: {type(cell).__name__} has no forget gate")
        if not cell.bias:
            raise ValueError("forget_bias: needs bias=True")
