"""LayerNorm-LSTM and LayerNorm-GRU: conformance, steps by hand, gradients, parameters."""
import math

import pytest
import torch

from rnnkit.layers import LayerNormGRU, LayerNormLSTM
from rnnkit.testing import as_tuple, check_gradients, check_layer

LAYERS = {"lstm": (LayerNormLSTM, torch.nn.LSTM, 4), "gru": (LayerNormGRU, torch.nn.GRU, 3)}


@pytest.mark.parametrize("name", LAYERS)
def test_conformance(name):
    cls, _, _ = LAYERS[name]
    states = (4, 4) if name == "lstm" else (4,)
    check_layer(lambda **k: cls(3, 4, **k), 3, 4, states)


@pytest.mark.parametrize("name", LAYERS)
def test_gradients(name):
    check_gradients(lambda **k: LAYERS[name][0](2, 3, **k), 2)


# --- plain-Python equations (lists of floats) --------------------------------------------------

def _sigmoid(a):
    return 1 / (1 + math.exp(-a))


def _ln(v, gain, bias, eps=1e-5):
    mean = sum(v) / len(v)
    var = sum((x - mean) ** 2 for x in v) / len(v)
    return [g * (x - mean) / math.sqrt(var + eps) + b for x, g, b in zip(v, gain, bias)]


def _matvec(W, v):
    return [sum(w * x for w, x in zip(row, v)) for row in W]


def _fill(layer):
    """Distinct, deterministic values for every parameter; returns them as nested lists."""
    values = {}
    with torch.no_grad():
        for i, (name, p) in enumerate(layer.named_parameters()):
            v = torch.arange(p.numel(), dtype=torch.float64).view(p.shape)
            p.copy_(0.3 * torch.sin(1.7 * v + i) + (1.0 if "ln_" in name and "weight" in name else 0))
            values[name[:-len("_l0")]] = p.tolist()
    return values


def test_lstm_steps_by_hand():
    layer = LayerNormLSTM(2, 2).double()
    p = _fill(layer)
    X, h, c = [[1.0, -0.5], [0.3, 2.0]], [0.4, -0.3], [0.2, 0.5]
    out, (h_n, c_n) = layer(torch.tensor(X, dtype=torch.float64).view(2, 1, 2),
                            (torch.tensor([[h]], dtype=torch.float64),
                             torch.tensor([[c]], dtype=torch.float64)))
    hs = []
    for x in X:
        a = [u + v for u, v in zip(_ln(_matvec(p["weight_ih"], x), p["ln_ih_weight"], p["bias_ih"]),
                                   _ln(_matvec(p["weight_hh"], h), p["ln_hh_weight"], p["bias_hh"]))]
        i, f, g, o = a[0:2], a[2:4], a[4:6], a[6:8]
        c = [_sigmoid(f[n]) * c[n] + _sigmoid(i[n]) * math.tanh(g[n]) for n in range(2)]
        c_hat = _ln(c, p["ln_c_weight"], p["ln_c_bias"])
        h = [_sigmoid(o[n]) * math.tanh(c_hat[n]) for n in range(2)]
        hs.append(h)
    torch.testing.assert_close(out[:, 0], torch.tensor(hs, dtype=torch.float64), atol=1e-14, rtol=0)
    torch.testing.assert_close(c_n[0, 0], torch.tensor(c, dtype=torch.float64), atol=1e-14, rtol=0)


def test_gru_steps_by_hand():
    layer = LayerNormGRU(2, 2).double()
    p = _fill(layer)
    X, h = [[1.0, -0.5], [0.3, 2.0]], [0.4, -0.3]
    out, h_n = layer(torch.tensor(X, dtype=torch.float64).view(2, 1, 2),
                     torch.tensor([[h]], dtype=torch.float64))
    hs = []
    for x in X:
        gi = _ln(_matvec(p["weight_ih"], x), p["ln_ih_weight"], p["bias_ih"])
        gh = _ln(_matvec(p["weight_hh"], h), p["ln_hh_weight"], p["bias_hh"])
        r = [_sigmoid(gi[n] + gh[n]) for n in range(2)]
        z = [_sigmoid(gi[2 + n] + gh[2 + n]) for n in range(2)]
        nn_ = [math.tanh(gi[4 + n] + r[n] * gh[4 + n]) for n in range(2)]
        h = [(1 - z[n]) * nn_[n] + z[n] * h[n] for n in range(2)]
        hs.append(h)
    torch.testing.assert_close(out[:, 0], torch.tensor(hs, dtype=torch.float64), atol=1e-14, rtol=0)
    torch.testing.assert_close(h_n[0, 0], torch.tensor(h, dtype=torch.float64), atol=1e-14, rtol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_invariant_to_rescaling_the_weights(name):
    """The point of the normalisation: scaling W_ih or W_hh does not change the output."""
    cls, _, _ = LAYERS[name]
    torch.manual_seed(0)
    layer = cls(3, 5, eps=1e-12).double()
    scaled = cls(3, 5, eps=1e-12).double()
    scaled.load_state_dict({k: v * (7.0 if k.startswith("weight_ih") else 0.2 if
                                    k.startswith("weight_hh") else 1.0)
                            for k, v in layer.state_dict().items()})
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(scaled(x)[0], layer(x)[0], atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_parameters_and_init(name):
    cls, torch_cls, G = LAYERS[name]
    layer = cls(3, 4, num_layers=2, bidirectional=True, init_hh="orthogonal")
    ours, theirs = layer.state_dict(), torch_cls(3, 4, 2, bidirectional=True).state_dict()
    for k, v in theirs.items():  # torch.nn's parameters, same names and shapes, plus the gains
        assert ours[k].shape == v.shape, k
    extra = {k for k in ours if k not in theirs}
    assert all(k.startswith("ln_") for k in extra) and len(extra) == 4 * (4 if name == "lstm" else 2)
    assert torch.all(layer.ln_hh_weight_l1_reverse == 1) and layer.ln_ih_weight_l0.shape == (G * 4,)
    for block in layer.weight_hh_l1.detach().chunk(G):
        torch.testing.assert_close(block @ block.T, torch.eye(4), atol=1e-5, rtol=0)
    if name == "lstm":
        assert torch.all(layer.ln_c_bias_l0 == 0) and layer.ln_c_weight_l0.shape == (4,)
        fb = LayerNormLSTM(3, 4, forget_bias=1.0)
        assert torch.all(fb.bias_ih_l0[4:8] == 1) and torch.all(fb.bias_hh_l0[4:8] == 0)
    out, h_n = cls(3, 4, bias=False)(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 4) and as_tuple(h_n)[0].shape == (1, 2, 4)
    with pytest.raises(ValueError, match="eps: expected a positive number, got 0"):
        cls(3, 4, eps=0)
