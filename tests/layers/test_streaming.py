"""``layer.step``: one time step through every layer equals the full forward, step by step."""
import pytest
import torch

import rnnkit
from rnnkit.testing import as_tuple

I, H = 3, 5
LAYERS = {
    "RNN": (rnnkit.RNN, {}), "LSTM": (rnnkit.LSTM, {}), "LSTM_proj": (rnnkit.LSTM, dict(proj_size=2)),
    "GRU": (rnnkit.GRU, {}), "GRU_cho": (rnnkit.GRU, dict(reset_after=False)),
    "IndRNN": (rnnkit.IndRNN, {}), "QRNN": (rnnkit.QRNN, dict(pooling="ifo")),
    "SRU": (rnnkit.SRU, {}), "MinGRU": (rnnkit.MinGRU, {}), "MinLSTM": (rnnkit.MinLSTM, {}),
    "LayerNormLSTM": (rnnkit.LayerNormLSTM, {}), "LayerNormGRU": (rnnkit.LayerNormGRU, {}),
    "LRU": (rnnkit.LRU, dict(state_size=4)), "RGLRU": (rnnkit.RGLRU, {}),
    "SLSTM": (rnnkit.SLSTM, {}), "MLSTM": (rnnkit.MLSTM, {}), "S6": (rnnkit.S6, dict(state_size=3)),
}


@pytest.mark.parametrize("extra", [{}, dict(zoneout=0.2), dict(residual=True)],
                         ids=["plain", "zoneout", "residual"])
@pytest.mark.parametrize("name", LAYERS)
def test_step_equals_forward(name, extra):
    cls, kw = LAYERS[name]
    if name == "LRU" and "zoneout" in extra:
        pytest.skip("the LRU refuses zoneout (its Re and Im parts belong together)")
    torch.manual_seed(0)
    layer = cls(I, H, num_layers=2, dtype=torch.float64, **kw, **extra).eval()
    T, B = 6, 3
    x = torch.randn(T, B, I, dtype=torch.float64)
    hx = tuple(torch.randn_like(h) for h in as_tuple(layer.init_state(B)))
    hx = hx[0] if len(hx) == 1 else hx
    out, h_n = layer(x, hx)
    state, ys = hx, []
    for t in range(T):
        y, state = layer.step(x[t], state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys), out, atol=1e-10, rtol=0)
    for a, b in zip(as_tuple(state), as_tuple(h_n)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_unbatched_and_default_state():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, num_layers=2, dtype=torch.float64).eval()
    x = torch.randn(4, I, dtype=torch.float64)
    out, (h, c) = layer(x)
    state, ys = None, []
    for t in range(4):
        y, state = layer.step(x[t], state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys), out, atol=1e-10, rtol=0)
    torch.testing.assert_close(state[0], h, atol=1e-10, rtol=0)
    assert layer.init_state().shape if isinstance(layer.init_state(), torch.Tensor) else \
        tuple(s.shape for s in layer.init_state()) == ((2, H), (2, H))


def test_step_errors():
    with pytest.raises(ValueError, match="bidirectional layer cannot stream"):
        rnnkit.GRU(I, H, bidirectional=True).step(torch.randn(2, I))
    with pytest.raises(ValueError, match="window=2"):
        rnnkit.QRNN(I, H, window=2).step(torch.randn(2, I))
    with pytest.raises(ValueError, match=r"x_t: expected a \(B, 3\)"):
        rnnkit.GRU(I, H).step(torch.randn(2, I + 1))
    with pytest.raises(ValueError, match=r"state\[0\]: expected shape \(1, 2, 5\)"):
        rnnkit.GRU(I, H).step(torch.randn(2, I), torch.zeros(1, 3, H))
