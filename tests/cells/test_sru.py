"""SRU: conformance (identity and projected highway), steps by hand, gradients, init."""
import math

import pytest
import torch

from rnnkit.layers import SRU
from rnnkit.testing import check_gradients, check_layer


@pytest.mark.parametrize("I,kw", [(3, {}), (4, {}), (4, dict(rescale=True))],
                         ids=["projected", "identity", "rescaled"])
def test_conformance(I, kw):
    check_layer(lambda **k: SRU(I, 4, **kw, **k), I, 4, (4,))


def test_gradients():
    check_gradients(lambda **k: SRU(2, 3, **k), 2)  # layer 0 projects, layer 1 (I = 2H) too
    check_gradients(lambda **k: SRU(3, 3, rescale=True, **k), 3, num_layers=1)


def _sigmoid(a):
    return 1 / (1 + math.exp(-a))


@pytest.mark.parametrize("projected,rescale", [(False, False), (False, True), (True, False)])
def test_steps_by_hand(projected, rescale):
    # weight_ih rows W, W_f, W_r (, W_hw); weight_c = (v_f, v_r); bias = (b_f, b_r); H = 1
    W = [[0.7, 0.2], [0.3, -0.1], [-0.4, 0.5], [0.6, 0.9]]
    v, b, X, c0 = (0.5, -0.25), (0.1, 0.2), [[1.0, 0.3], [-1.0, 2.0]], 0.3
    I = 2 if projected else 1
    alpha = math.sqrt(3) if rescale else 1.0
    layer = SRU(I, 1, rescale=rescale).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, dtype=torch.float64)[:4 if projected else 3, :I])
        layer.weight_c_l0.copy_(torch.tensor(v, dtype=torch.float64))
        layer.bias_l0.copy_(torch.tensor(b, dtype=torch.float64))
    x = torch.tensor(X, dtype=torch.float64)[:, :I].reshape(2, 1, I)
    out, c_n = layer(x, torch.full((1, 1, 1), c0, dtype=torch.float64))

    c, hs = c0, []
    for x_t in X:
        x_t = x_t[:I]
        u = [sum(w * xi for w, xi in zip(W[g], x_t)) for g in range(4)]
        f = _sigmoid(u[1] + v[0] * c + b[0])
        r = _sigmoid(u[2] + v[1] * c + b[1])
        c = f * c + (1 - f) * u[0]
        hs.append(r * c + (1 - r) * alpha * (u[3] if projected else x_t[0]))
    torch.testing.assert_close(out.flatten(), torch.tensor(hs, dtype=torch.float64),
                               atol=1e-14, rtol=0)
    assert c_n.item() == pytest.approx(c, abs=1e-14)


def test_parameters_and_authors_init():
    torch.manual_seed(0)
    sru = SRU(16, 32, num_layers=2, bidirectional=True, forget_bias=-1.0)
    shapes = {k: tuple(v.shape) for k, v in sru.state_dict().items()}
    assert shapes["weight_ih_l0"] == (128, 16) and shapes["weight_ih_l1"] == (128, 64)  # 4 blocks
    assert shapes["weight_c_l0"] == (64,) and shapes["bias_l1_reverse"] == (64,)
    assert SRU(8, 8).weight_ih_l0.shape == (24, 8)  # identity highway: 3 blocks
    w = sru.weight_ih_l0.detach()
    k = math.sqrt(3 / 16)  # variance 1/I; the f and r blocks scaled by sqrt(1/2)
    assert k * 0.95 < w[:32].abs().max() <= k and w[96:].abs().max() > k * 0.95
    assert k * 0.95 * math.sqrt(0.5) < w[32:96].abs().max() <= k * math.sqrt(0.5)
    assert torch.all(sru.bias_l0[:32] == -1.0) and torch.all(sru.bias_l0[32:] == 0)
    with pytest.raises(ValueError, match=r"init_hh: SRUCell has no recurrent weight matrix"):
        SRU(2, 3, init_hh="orthogonal")
