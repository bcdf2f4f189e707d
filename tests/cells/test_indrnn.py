"""IndRNN: conformance, steps by hand, gradients, and the bound on the recurrent weights."""
import pytest
import torch

from rnnkit.layers import IndRNN
from rnnkit.testing import check_gradients, check_layer


@pytest.mark.parametrize("kw", [{}, dict(time_horizon=5)], ids=["free", "bounded"])
def test_conformance(kw):
    check_layer(lambda **k: IndRNN(3, 4, **kw, **k), 3, 4, (4,))


def test_gradients():
    check_gradients(lambda **k: IndRNN(2, 3, **k), 2)


def _set(layer, W, u, b):
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(W, dtype=torch.float64))
        layer.weight_hh_l0.copy_(torch.tensor(u, dtype=torch.float64))
        layer.bias_l0.copy_(torch.tensor(b, dtype=torch.float64))


@pytest.mark.parametrize("recurrent_max,expected", [
    # h_t = relu(W x_t + b + u * h_{t-1}), W = [1, -2], b = [0.1, 0.2], u = [0.5, 0.8], h_0 = [0.2, 4]
    # t=0, x=1:    [1 + .1 + .5*.2, -2 + .2 + .8*4]         = [1.2, 1.4]
    # t=1, x=-0.5: [-.5 + .1 + .5*1.2, 1 + .2 + .8*1.4]     = [0.2, 2.32]
    # t=2, x=2:    [2 + .1 + .5*.2, -4 + .2 + .8*2.32 < 0]  = [2.2, 0]
    (None, [[1.2, 1.4], [0.2, 2.32], [2.2, 0.0]]),
    # |u| <= 0.6 clamps u_2 = 0.8 to 0.6:
    # t=0: [1.2, -1.8 + .6*4] = [1.2, 0.6];  t=1: [0.2, 1.2 + .6*.6] = [0.2, 1.56];  t=2: [2.2, 0]
    (0.6, [[1.2, 0.6], [0.2, 1.56], [2.2, 0.0]]),
])
def test_steps_by_hand(recurrent_max, expected):
    layer = IndRNN(1, 2, recurrent_max=recurrent_max).double()
    _set(layer, [[1.0], [-2.0]], [0.5, 0.8], [0.1, 0.2])
    x = torch.tensor([[[1.0]], [[-0.5]], [[2.0]]], dtype=torch.float64)  # (T=3, B=1, I=1)
    out, h_n = layer(x, torch.tensor([[[0.2, 4.0]]], dtype=torch.float64))
    want = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(out[:, 0], want, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_n[0, 0], want[-1], atol=1e-12, rtol=0)


def test_time_horizon_bound_init_clamp_and_constrain():
    torch.manual_seed(0)
    layer = IndRNN(3, 64, num_layers=2, bidirectional=True, time_horizon=100)
    m = 2.0 ** (1 / 100)
    assert layer.recurrent_max == pytest.approx(m, rel=1e-15)
    for name in ("weight_hh_l0", "weight_hh_l1_reverse"):
        u = layer.get_parameter(name)
        assert 0 <= u.min() and u.max() <= m and u.max() > 0.9 * m  # the authors' U(0, m)

    # past the bound the forward pass uses +-m, and the weight gets no gradient
    with torch.no_grad():
        layer.weight_hh_l0[:2] = torch.tensor([3.0, -3.0])
    clamped = IndRNN(3, 64, num_layers=2, bidirectional=True, time_horizon=100)
    clamped.load_state_dict(layer.state_dict())
    with torch.no_grad():
        clamped.weight_hh_l0[:2] = torch.tensor([m, -m])
    x = torch.randn(6, 2, 3)
    out = layer(x)[0]
    torch.testing.assert_close(out, clamped(x)[0], atol=0, rtol=0)
    out.sum().backward()
    assert torch.all(layer.weight_hh_l0.grad[:2] == 0) and layer.weight_hh_l0.grad[2:].abs().sum() > 0

    inside = layer.weight_hh_l0[2:].detach().clone()
    layer.constrain_()
    torch.testing.assert_close(layer.weight_hh_l0[:2].detach(), torch.tensor([m, -m]))
    assert torch.equal(layer.weight_hh_l0[2:].detach(), inside)


def test_unbounded_init_and_bad_arguments():
    torch.manual_seed(0)
    u = IndRNN(2, 200).weight_hh_l0
    assert 0 <= u.min() < 0.05 and 0.95 < u.max() <= 1  # U(0, 1)
    with pytest.raises(ValueError, match="recurrent_max, time_horizon: give at most one"):
        IndRNN(2, 3, recurrent_max=1.1, time_horizon=10)
    with pytest.raises(ValueError, match="time_horizon: expected a positive int, got 0"):
        IndRNN(2, 3, time_horizon=0)
    with pytest.raises(ValueError, match="recurrent_max: expected a positive finite number"):
        IndRNN(2, 3, recurrent_max=-1.0)
    with pytest.raises(ValueError, match=r"init_hh: IndRNNCell has no recurrent weight matrix"):
        IndRNN(2, 3, init_hh="identity")
    with pytest.raises(ValueError, match="forget_bias: IndRNNCell has no forget gate"):
        IndRNN(2, 3, forget_bias=1.0)
