"""QRNN: conformance for every pooling and window, steps by hand, gradients."""
import itertools
import math

import pytest
import torch

from rnnkit.layers import QRNN
from rnnkit.testing import check_gradients, check_layer

CONFIGS = list(itertools.product(["f", "fo", "ifo"], [1, 2]))


@pytest.mark.parametrize("pooling,window", CONFIGS)
def test_conformance(pooling, window):
    check_layer(lambda **k: QRNN(3, 4, pooling=pooling, window=window, **k), 3, 4, (4,))


def test_gradients():
    check_gradients(lambda **k: QRNN(2, 3, window=2, pooling="ifo", **k), 2)


def _sigmoid(a):
    return 1 / (1 + math.exp(-a))


# weight_ih rows z, f, o, i; columns act on [x_t, x_{t-1}]
W = [[0.5, -0.3], [0.2, 0.4], [-0.1, 0.6], [0.3, 0.3]]
b = [0.1, -0.2, 0.0, 0.05]
X, C0 = [1.0, -2.0, 0.5], 0.5


def _by_hand(pooling, window):
    """The paper's equations on scalars (I = H = 1): returns outputs h_t and the last c."""
    c, x_prev, hs = C0, 0.0, []
    for x in X:
        a = [W[g][0] * x + (W[g][1] * x_prev if window == 2 else 0.0) + b[g] for g in range(4)]
        z, f, o, i = math.tanh(a[0]), _sigmoid(a[1]), _sigmoid(a[2]), _sigmoid(a[3])
        c = f * c + (i if pooling == "ifo" else 1 - f) * z
        hs.append(c if pooling == "f" else o * c)
        x_prev = x
    return hs, c


@pytest.mark.parametrize("pooling,window", CONFIGS)
def test_steps_by_hand(pooling, window):
    layer = QRNN(1, 1, pooling=pooling, window=window).double()
    G = layer.cells[0].num_gates
    Wt = torch.tensor(W, dtype=torch.float64)[:G, :window]  # (G*H, window*I)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(Wt)
        layer.bias_l0.copy_(torch.tensor(b[:G], dtype=torch.float64))
    x = torch.tensor(X, dtype=torch.float64).view(3, 1, 1)
    out, c_n = layer(x, torch.full((1, 1, 1), C0, dtype=torch.float64))
    hs, c = _by_hand(pooling, window)
    torch.testing.assert_close(out.flatten(), torch.tensor(hs, dtype=torch.float64),
                               atol=1e-14, rtol=0)
    assert c_n.item() == pytest.approx(c, abs=1e-14)  # h_n is the cell state


def test_window_two_is_causal():
    torch.manual_seed(0)
    layer = QRNN(2, 3, window=2).double()
    x = torch.randn(5, 1, 2, dtype=torch.float64, requires_grad=True)
    layer(x)[0][3].sum().backward()  # output at t = 3 reads x_0 .. x_3 (x_2, x_3 via the window)
    assert torch.all(x.grad[4] == 0) and torch.all(x.grad[:4].abs().sum(-1) > 0)


def test_forget_bias_and_bad_arguments():
    layer = QRNN(2, 3, num_layers=2, bidirectional=True, pooling="ifo", forget_bias=2.0)
    for name in ("bias_l0", "bias_l1_reverse"):
        bias = layer.get_parameter(name).detach()
        assert torch.all(bias[3:6] == 2.0) and not torch.any(bias[:3] == 2.0)  # block f only
    with pytest.raises(ValueError, match="window: expected 1 or 2, got 3"):
        QRNN(2, 3, window=3)
    with pytest.raises(ValueError, match="pooling: expected 'f', 'fo' or 'ifo', got 'io'"):
        QRNN(2, 3, pooling="io")
    with pytest.raises(ValueError, match="forget_bias: needs bias=True"):
        QRNN(2, 3, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match="init_hh: QRNNCell has no recurrent weight matrix"):
        QRNN(2, 3, init_hh="orthogonal")
