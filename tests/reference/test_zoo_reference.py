"""rnnkit's zoo layers (autograd) against the NumPy reference (explicit BPTT) in float64.

The LRU and RG-LRU run their parallel scan here (no per-step regulariser); their stepped form
is checked against the scan in tests/cells/test_lru.py.

Outputs, final states and the gradients of every parameter, the input and h0 agree within
1e-8 relative, on a 2-layer bidirectional layer with unsorted lengths and an initial state;
the reference's backward is itself checked against finite differences.
"""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from rnnkit.layers import (
    LRU,
    QRNN,
    RGLRU,
    SRU,
    IndRNN,
    LayerNormGRU,
    LayerNormLSTM,
    MinGRU,
    MinLSTM,
)
from rnnkit.reference import lru, zoo
from rnnkit.reference.gradcheck import central_difference

TOL = 1e-8
T, B, I, H = 6, 4, 3, 4
LENGTHS = [6, 2, 5, 1]  # unsorted, includes 1 and T

CASES = {  # name -> (rnnkit layer, reference layer); all 2-layer bidirectional unless noted
    "indrnn": (lambda: IndRNN(I, H, 2, bidirectional=True, recurrent_max=1.2),
               lambda: zoo.IndRNN(I, H, 2, True, recurrent_max=1.2)),
    "qrnn_f_w1": (lambda: QRNN(I, H, 2, bidirectional=True, pooling="f"),
                  lambda: zoo.QRNN(I, H, 2, True, pooling="f")),
    "qrnn_fo_w2": (lambda: QRNN(I, H, 2, bidirectional=True, window=2),
                   lambda: zoo.QRNN(I, H, 2, True, window=2)),
    "qrnn_ifo_w2_nobias": (lambda: QRNN(I, H, 2, bias=False, bidirectional=True, window=2,
                                        pooling="ifo"),
                           lambda: zoo.QRNN(I, H, 2, True, False, window=2, pooling="ifo")),
    "sru_projected": (lambda: SRU(I, H, 2, bidirectional=True, rescale=True),
                      lambda: zoo.SRU(I, H, 2, True, rescale=True)),
    "sru_identity": (lambda: SRU(H, H, 2), lambda: zoo.SRU(H, H, 2)),  # one direction, I = H
    "mingru": (lambda: MinGRU(I, H, 2, bidirectional=True),
               lambda: zoo.MinGRU(I, H, 2, True)),
    "minlstm": (lambda: MinLSTM(I, H, 2, bidirectional=True),
                lambda: zoo.MinLSTM(I, H, 2, True)),
    "layernorm_lstm": (lambda: LayerNormLSTM(I, H, 2, bidirectional=True),
                       lambda: zoo.LayerNormLSTM(I, H, 2, True)),
    "layernorm_lstm_nobias": (lambda: LayerNormLSTM(I, H, 2, bias=False, bidirectional=True),
                              lambda: zoo.LayerNormLSTM(I, H, 2, True, False)),
    "layernorm_gru": (lambda: LayerNormGRU(I, H, 2, bidirectional=True),
                      lambda: zoo.LayerNormGRU(I, H, 2, True)),
    "lru": (lambda: LRU(I, H, 2, bidirectional=True), lambda: lru.LRU(I, H, 2, True)),
    "lru_diagonal_skip": (lambda: LRU(H, H, 2), lambda: lru.LRU(H, H, 2)),  # one direction
    "rglru": (lambda: RGLRU(I, H, 2, bidirectional=True, c=4.0),
              lambda: lru.RGLRU(I, H, 2, True, c=4.0)),
    "rglru_nobias": (lambda: RGLRU(I, H, 2, bias=False, bidirectional=True),
                     lambda: lru.RGLRU(I, H, 2, True, False)),
    # value="identity" (v = x) needs I == H in every layer: stacked one way, or one layer both
    "rglru_identity": (lambda: RGLRU(H, H, 2, value="identity"),
                       lambda: lru.RGLRU(H, H, 2, value="identity")),
    "rglru_identity_bi_nobias": (
        lambda: RGLRU(H, H, 1, bias=False, bidirectional=True, value="identity"),
        lambda: lru.RGLRU(H, H, 1, True, False, value="identity")),
}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


@pytest.mark.parametrize("use_lengths", [True, False], ids=["lengths", "full"])
@pytest.mark.parametrize("name", CASES)
def test_layer_matches_reference(name, use_lengths):
    torch.manual_seed(0)
    ours = CASES[name][0]().double()
    with torch.no_grad():
        for p in ours.parameters():  # off the initial values (LayerNorm gains 1, SRU biases 0)
            p.add_(0.2 * torch.randn_like(p))
        if name == "indrnn":  # two recurrent weights past the bound: clamped, and no gradient
            ours.weight_hh_l0[:2] = torch.tensor([2.0, -1.5])
    ref = CASES[name][1]()
    ref.load_state_dict(ours.state_dict())
    In, DL = ours.input_size, ours.num_directions * ours.num_layers
    S = len(ours.cells[0].state_sizes)  # 2 for LayerNorm-LSTM: (h, c)
    rng = np.random.default_rng(1)
    x, h0 = rng.normal(size=(T, B, In)), [rng.normal(size=(DL, B, H)) for _ in range(S)]
    d_out = rng.normal(size=(T, B, ours.num_directions * H))
    d_hn = [rng.normal(size=(DL, B, H)) for _ in range(S)]
    lengths = LENGTHS if use_lengths else None
    pack = tuple if S == 2 else (lambda h: h[0])  # a pair for the LSTM, else one array

    x_t = torch.tensor(x, requires_grad=True)
    h0_t = [torch.tensor(h, requires_grad=True) for h in h0]
    out, h_n = ours(x_t, pack(h0_t), lengths=None if lengths is None else torch.tensor(lengths))
    h_n = h_n if S == 2 else (h_n,)
    loss = (out * torch.tensor(d_out)).sum()
    (loss + sum((h * torch.tensor(d)).sum() for h, d in zip(h_n, d_hn))).backward()
    ref_out, ref_hn = ref.forward(x, pack(h0), lengths)
    grads = ref.backward(d_out, pack(d_hn))
    ref_hn = ref_hn if S == 2 else (ref_hn,)

    assert rel_err(out.detach(), ref_out) < TOL
    for i in range(S):
        assert rel_err(h_n[i].detach(), ref_hn[i]) < TOL
        assert rel_err(h0_t[i].grad, grads[("h0", "c0")[i]]) < TOL
    assert rel_err(x_t.grad, grads["input"]) < TOL
    assert list(grads)[:-1 - S] == [n for n, _ in ours.named_parameters()]  # names, order
    for n, p in ours.named_parameters():
        assert rel_err(p.grad, grads[n]) < TOL, n
    if name == "indrnn":
        assert np.all(grads["weight_hh_l0"][:2] == 0) and np.any(grads["weight_hh_l0"][2:] != 0)
    if use_lengths:  # padded steps: zero output, no gradient into the input there
        assert np.all(ref_out[2:, 1] == 0) and np.all(grads["input"][2:, 1] == 0)


@pytest.mark.parametrize("name", CASES)
def test_reference_backward_matches_finite_differences(name):
    eps, rng = 1e-6, np.random.default_rng(2)
    model = CASES[name][1]()
    In, DL, D = model.input_size, model.num_directions * model.num_layers, model.num_directions
    S = model.num_states
    x, h0 = rng.normal(size=(3, 3, In)), [rng.normal(size=(DL, 3, H)) for _ in range(S)]
    d_out, d_hn = rng.normal(size=(3, 3, D * H)), [rng.normal(size=(DL, 3, H)) for _ in range(S)]
    pack = tuple if S == 2 else (lambda h: h[0])

    def loss():
        out, h_n = model.forward(x, pack(h0), [3, 1, 2])
        h_n = h_n if S == 2 else (h_n,)
        return float(np.sum(out * d_out) + sum(np.sum(h * d) for h, d in zip(h_n, d_hn)))

    loss()
    grads = model.backward(d_out, pack(d_hn))
    checked = 0.0
    states = {"h0": h0[0]} | ({"c0": h0[1]} if S == 2 else {})
    for name_, array in (dict(model.params) | {"input": x} | states).items():
        for flat in rng.choice(array.size, size=min(3, array.size), replace=False):
            index = np.unravel_index(flat, array.shape)
            numeric, analytic = central_difference(loss, array, index, eps), grads[name_][index]
            assert abs(numeric - analytic) <= 1e-7 + 1e-6 * abs(analytic), (name_, index)
            checked += abs(analytic)
    assert checked > 1.0


def test_docstring_example():
    result = doctest.testmod(zoo)
    assert result.attempted > 0 and result.failed == 0
