"""SegRNN, DLinear and instance normalisation: shapes, every cell, gradients, values by hand."""

from __future__ import annotations

import pytest
import torch

from rnnkit.layers.registry import LAYERS
from rnnkit.models.forecast import Forecaster, ForecastModelConfig
from rnnkit.models.forecast_linear import DLinear, moving_average
from rnnkit.models.forecast_norm import InstanceNorm
from rnnkit.models.forecast_segrnn import SegRNN, repeat_state
from rnnkit.models.forecasters import build_forecaster


def _segrnn(**kw) -> ForecastModelConfig:
    base = {"arch": "segrnn", "cell": "gru", "hidden_size": 8, "segment_length": 4,
            "dropout": 0.0}
    return ForecastModelConfig(**{**base, **kw})


@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_segrnn_every_cell_shapes_and_gradients(cell):
    torch.manual_seed(0)
    m = SegRNN(_segrnn(cell=cell, norm="revin", revin_affine=True), n_targets=3, horizon=10)
    x = torch.randn(2, 12, 3)
    p = m(x)
    assert p.shape == (2, 10, 3, 1) and torch.isfinite(p).all()
    p.square().mean().backward()
    for name, w in m.named_parameters():
        assert w.grad is not None and torch.isfinite(w.grad).all(), name
    assert m.embed.weight.grad.abs().sum() > 0 and m.pos.grad.abs().sum() > 0


def test_segrnn_gradcheck_float64():
    """Input and embedding gradients against finite differences (norm none: the window
    statistics of last/mean/revin are taken without gradient, as RevIN does)."""
    torch.manual_seed(0)
    m = SegRNN(_segrnn(hidden_size=4, norm="none"), n_targets=2, horizon=6).double()
    x = torch.randn(2, 8, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: m(v), (x,), eps=1e-6, atol=1e-5)
    pos = m.pos.detach().clone().requires_grad_(True)
    call = torch.func.functional_call
    assert torch.autograd.gradcheck(lambda q: call(m, {"pos": q}, (x.detach(),)), (pos,),
                                    eps=1e-6, atol=1e-5)


def test_segrnn_decodes_by_hand():
    """One independent channel, norm none: the output equals the encoder stepped by hand."""
    torch.manual_seed(1)
    m = SegRNN(_segrnn(hidden_size=6, channel_embedding=False), n_targets=1, horizon=8).eval()
    x = torch.randn(1, 8, 1)
    e = torch.relu(m.embed(x[0, :, 0].reshape(2, 4)))[None]  # (1, n=2, d)
    _, h = m.encoder(e)
    outs = [m.encoder(m.pos[i].reshape(1, 1, -1), h)[0][0, 0] for i in range(2)]  # each (d,)
    want = torch.cat([m.head(o) for o in outs])  # (2 * w,)
    assert torch.allclose(m(x)[0, :, 0, 0], want, atol=1e-6)


def test_segrnn_channels_share_or_mix():
    torch.manual_seed(0)
    ind = SegRNN(_segrnn(channel_embedding=False), n_targets=3, horizon=4).eval()
    x = torch.randn(2, 8, 3)
    # independent channels, no channel embedding: channel k's forecast depends on channel k only
    x2 = x.clone()
    x2[..., 1] += 5.0
    a, b = ind(x), ind(x2)
    assert torch.allclose(a[..., 0, :], b[..., 0, :]) and not torch.allclose(a[..., 1, :], b[..., 1, :])
    mixed = SegRNN(_segrnn(channels="mixed"), n_targets=3, horizon=4).eval()
    a, b = mixed(x), mixed(x2)
    assert mixed.embed.in_features == 12 and not torch.allclose(a[..., 0, :], b[..., 0, :])


def test_segrnn_pads_a_lookback_the_segment_does_not_divide():
    torch.manual_seed(0)
    m = SegRNN(_segrnn(norm="last"), n_targets=2, horizon=5).eval()
    x = torch.randn(3, 10, 2)  # 10 = 2 * 4 + 2: two copies of the first step in front
    xp = torch.cat([x[:, :1], x[:, :1], x], 1)
    assert torch.allclose(m(x), m(xp), atol=1e-6)


def test_segrnn_norm_last_follows_the_level():
    torch.manual_seed(0)
    m = SegRNN(_segrnn(norm="last"), n_targets=2, horizon=6).eval()
    x = torch.randn(2, 8, 2)
    assert torch.allclose(m(x + 7.0), m(x) + 7.0, atol=1e-5)


def test_segrnn_quantile_head_and_errors():
    m = SegRNN(_segrnn(head="quantile", quantiles=[0.1, 0.5, 0.9], norm="revin"), n_targets=1,
               horizon=4)
    assert m(torch.randn(2, 8, 1)).shape == (2, 4, 1, 3)
    with pytest.raises(ValueError, match="targets only"):
        SegRNN(_segrnn(), n_targets=1, n_future=4, horizon=4)
    with pytest.raises(ValueError, match="gaussian"):
        SegRNN(_segrnn(head="gaussian", norm="revin"), n_targets=1, horizon=4)
    with pytest.raises(ValueError, match="padded"):
        SegRNN(_segrnn(), n_targets=1, horizon=4)(torch.randn(2, 8, 1), lengths=torch.tensor([8, 5]))
    with pytest.raises(ValueError, match="build_forecaster"):
        Forecaster(_segrnn(), n_targets=1, horizon=4)


def test_repeat_state_rows_follow_their_source():
    h = torch.arange(6.0).reshape(1, 3, 2)
    c = h + 100
    rh, rc = repeat_state((h, c), 2)
    assert rh.shape == (1, 6, 2) and torch.equal(rh[0, 2], h[0, 1]) and torch.equal(rh[0, 3], h[0, 1])
    assert torch.equal(rc[0, 5], c[0, 2])


def test_revin_is_invertible_and_normalises():
    torch.manual_seed(0)
    norm = InstanceNorm("revin", 3, affine=True)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, 0.5, -1.5]))
        norm.bias.copy_(torch.tensor([0.3, -1.0, 0.0]))
    y = 4.0 + 3.0 * torch.randn(5, 20, 3)
    z, st = norm(y)
    plain = (z - norm.bias) / norm.weight  # undo the affine by hand
    assert torch.allclose(plain.mean(1), torch.zeros(5, 3), atol=1e-5)
    assert torch.allclose(plain.std(1, unbiased=False), torch.ones(5, 3), atol=1e-3)
    back = norm.inverse(z[..., None], st)[..., 0]  # (B, L, C, 1) -> the input again
    assert torch.allclose(back, y, atol=1e-4)
    last = InstanceNorm("last", 3)
    z, st = last(y)
    assert torch.equal(z[:, -1], torch.zeros(5, 3)) and torch.allclose(last.inverse(z[..., None], st)[..., 0], y)


def test_moving_average_and_dlinear_by_hand():
    y = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0])[None, :, None]  # (1, 5, 1)
    # k = 3: ends repeated once: [1, 1, 2, 4, 8, 16, 16]
    want = torch.tensor([4 / 3, 7 / 3, 14 / 3, 28 / 3, 40 / 3])
    assert torch.allclose(moving_average(y, 3)[0, :, 0], want)
    with pytest.raises(ValueError, match="odd"):
        moving_average(y, 4)
    m = DLinear(ForecastModelConfig(arch="dlinear", decomposition_kernel=3), n_targets=2,
                horizon=2, input_length=5)
    with torch.no_grad():
        m.seasonal.weight.copy_(torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]]))
        m.trend.weight.copy_(torch.tensor([[0, 0, 0, 0, 2.0], [0, 0, 0, 0, 0]]))
        m.seasonal.bias.copy_(torch.tensor([0.5, 0.0]))
        m.trend.bias.zero_()
    x = torch.cat([y, 2 * y], -1)  # (1, 5, 2): channel 1 = 2 x channel 0, the maps are shared
    p = m(x)[0, :, :, 0]  # (H, C)
    s = y[0, :, 0] - want  # seasonal remainder
    h0 = s[0] + 0.5 + 2 * want[-1]
    h1 = s[-1]
    assert torch.allclose(p[:, 0], torch.stack([h0, h1]), atol=1e-5)
    assert torch.allclose(p[:, 1], torch.stack([2 * (h0 - 0.5) + 0.5, 2 * h1]), atol=1e-5)


def test_build_forecaster_picks_the_arch():
    kw = {"n_targets": 2, "horizon": 4, "input_length": 8}
    assert isinstance(build_forecaster(ForecastModelConfig(cell="gru", hidden_size=4), **kw),
                      Forecaster)
    assert isinstance(build_forecaster(_segrnn(), **kw), SegRNN)
    assert isinstance(build_forecaster(ForecastModelConfig(arch="dlinear"), **kw), DLinear)


def test_segrnn_highway_adds_a_shared_linear_map():
    torch.manual_seed(0)
    m = SegRNN(_segrnn(highway=8, norm="last"), n_targets=2, horizon=4).eval()
    x = torch.randn(3, 8, 2)
    with torch.no_grad():
        base = m(x)
        m.highway.weight.add_(1.0)  # y += sum of the normalised window, per channel
        z = x - x[:, -1:]
        assert torch.allclose(m(x)[..., 0], base[..., 0] + z.sum(1, keepdim=True), atol=1e-5)
    with pytest.raises(ValueError, match="highway"):
        SegRNN(_segrnn(highway=8, channels="mixed"), n_targets=2, horizon=4)


@pytest.mark.parametrize("norm", ["last", "revin"])
def test_segrnn_linear_ar_starts_at_the_linear_ar_forecast(norm):
    """model.linear_ar: with its head at zero (as built) the model IS the iterated linear AR
    baseline (forecast_baselines.LinearAR, fitted by least squares), window by window; the
    recurrent residual then adds its own level-free output."""
    import numpy as np

    from rnnkit.models.forecast_baselines import LinearAR

    rng = np.random.default_rng(0)
    t = np.arange(600)
    series = np.stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 12)], 1)
    series = series + 0.1 * rng.normal(size=series.shape)
    ar = LinearAR(6).fit([series[:400]])
    H, L = 10, 8
    m = SegRNN(_segrnn(norm=norm, linear_ar=True, head="quantile", quantiles=[0.1, 0.5, 0.9]),
               n_targets=2, horizon=H, input_length=L).eval()
    m.set_linear_ar(ar.coef)
    win = np.stack([series[s:s + L] for s in (400, 450, 512)])  # (3, L, 2)
    want = ar.forecast(win, H)  # (3, H, 2), iterated one step at a time
    with torch.no_grad():
        got = m(torch.tensor(win, dtype=torch.float32))  # (3, H, 2, 3 quantiles)
        assert torch.allclose(got, torch.tensor(want, dtype=torch.float32)[..., None]
                              .expand_as(got), atol=1e-4)
        m.head.bias.fill_(0.5)  # the residual: +0.5 in normalised units
        scale = 1.0 if norm == "last" else np.sqrt(win.var(1, keepdims=True) + 1e-5)
        assert np.allclose(m(torch.tensor(win, dtype=torch.float32))[..., 1].numpy(),
                           want + 0.5 * scale, atol=1e-4)
    with pytest.raises(ValueError, match="AR\\(9\\).*at most data.input_length"):
        m.set_linear_ar(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="needs input_length"):
        SegRNN(_segrnn(linear_ar=True), n_targets=2, horizon=H)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("channels, chan_emb", [("independent", True), ("independent", False),
                                                ("mixed", False)])
def test_segrnn_separable_decoder_equals_the_batched_step(cell, channels, chan_emb, monkeypatch):
    """The decoder's step from products taken once per distinct operand gives the batched
    step's forecast and every gradient (float64, training mode)."""
    import rnnkit.models.forecast_segrnn as seg

    torch.manual_seed(0)
    m = SegRNN(_segrnn(cell=cell, hidden_size=6, norm="revin", revin_affine=True,
                       channels=channels, channel_embedding=chan_emb),
               n_targets=3, horizon=10).double().train()
    assert seg.separable_mode(m.encoder) == {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}.get(
        cell, cell.upper())
    x = torch.randn(4, 12, 3, dtype=torch.float64)
    g = torch.randn(4, 10, 3, 1, dtype=torch.float64)

    def run():
        m.zero_grad(set_to_none=True)
        p = m(x)
        p.backward(g)
        return p.detach(), {n: w.grad.clone() for n, w in m.named_parameters()}

    fast = run()
    monkeypatch.setattr(seg, "separable_mode", lambda layer: None)  # the batched step
    slow = run()
    assert torch.allclose(fast[0], slow[0], rtol=1e-12, atol=1e-12)
    assert fast[1].keys() == slow[1].keys()
    for n in fast[1]:
        assert torch.allclose(fast[1][n], slow[1][n], rtol=1e-10, atol=1e-12), n


def test_segrnn_decoder_step_batched_never_takes_the_step_apart(monkeypatch):
    """``decoder_step: batched`` runs the layer on all decoder rows (the path of runs trained
    before the separable step), ``auto`` takes it apart; both give the same forecast and
    gradients in float64; any arch but segrnn refuses the key."""
    import rnnkit.models.forecast_segrnn as seg

    calls = []
    real = seg.separable_step
    monkeypatch.setattr(seg, "separable_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(4, 12, 3, dtype=torch.float64)
    out = {}
    for step in ("auto", "batched"):
        torch.manual_seed(0)
        m = SegRNN(_segrnn(hidden_size=6, decoder_step=step), n_targets=3,
                   horizon=10).double().train()
        calls.clear()
        p = m(x)
        p.square().sum().backward()
        out[step] = (p.detach(), {n: w.grad.clone() for n, w in m.named_parameters()})
        assert len(calls) == (step == "auto"), step
    assert torch.allclose(out["auto"][0], out["batched"][0], rtol=1e-12, atol=1e-12)
    for n, g in out["auto"][1].items():
        assert torch.allclose(g, out["batched"][1][n], rtol=1e-10, atol=1e-12), n
    with pytest.raises(ValueError, match="model.decoder_step='batched'.*needs model.arch 'segrnn'"):
        build_forecaster(ForecastModelConfig(arch="dlinear", decoder_step="batched"),
                         n_targets=1, horizon=4, input_length=8)


def test_segrnn_separable_decoder_only_for_a_plain_step():
    """Two layers, a regulariser that acts in the step, Cho's GRU (reset before the product),
    a cell with no torch.nn step: the batched step."""
    from rnnkit.models.forecast_segrnn import separable_mode

    def enc(**kw):
        return SegRNN(_segrnn(**kw), n_targets=2, horizon=8).encoder

    assert separable_mode(enc(cell="gru")) == "GRU"
    assert separable_mode(enc(cell="gru", num_layers=2)) is None
    assert separable_mode(enc(cell="lstm", extras={"zoneout": 0.1})) is None
    assert separable_mode(enc(cell="gru", extras={"reset_after": False})) is None
    assert separable_mode(enc(cell="layernorm_lstm")) is None
    rd = enc(cell="lstm", extras={"recurrent_dropout": 0.25})
    assert separable_mode(rd.train()) is None and separable_mode(rd.eval()) == "LSTM"
    # a cell whose step is not torch.nn's (a subclass that changes it), and projections
    from rnnkit.cells.gru import GRUCell
    from rnnkit.cells.lstm import LSTMCell
    from rnnkit.layers.recurrent import Recurrent

    class Squashed(GRUCell):
        def step(self, x_t, state, p):
            h, _ = super().step(x_t, state, p)
            h = torch.tanh(2 * h)
            return h, (h,)

    assert separable_mode(Recurrent(GRUCell, 6, 6)) == "GRU"
    assert separable_mode(Recurrent(Squashed, 6, 6)) is None
    assert separable_mode(Recurrent(LSTMCell, 6, 6, proj_size=3)) is None


BLOCKS = [("mamba", {"state_size": 3}), ("xlstm", {"num_heads": 2, "slstm_every": 2}),
          ("deep_lru", {"state_size": 4}), ("griffin", {"attention_every": 2})]


@pytest.mark.parametrize("cell, extras", BLOCKS)
@pytest.mark.parametrize("channels", ["independent", "mixed"])
def test_segrnn_on_a_block_stack_decodes_each_segment_as_one_step_from_its_encoding(
        cell, extras, channels):
    """``model.cell`` a block: the stack reads the segments, and each output segment is one
    :meth:`BlockStack.step` of its query from its own sequence's final state (every block's
    state, whatever dimension it keeps the batch in, repeated row by row)."""
    from rnnkit.models.blocks import BlockStack

    torch.manual_seed(0)
    m = SegRNN(_segrnn(cell=cell, num_layers=2, extras=extras, channels=channels), n_targets=2,
               horizon=10).double().eval()
    assert isinstance(m.encoder, BlockStack)
    x = torch.randn(3, 16, 2, dtype=torch.float64)
    z = x  # norm "none", the default
    u = z.transpose(1, 2).reshape(6, 4, 4) if channels == "independent" else z.reshape(3, 4, 8)
    e = torch.relu(m.embed(u))
    with torch.no_grad():
        _, h = m.encoder(e)
        got = m._decode(h, 3)  # (N*m, d), rows n*m + i
        q = m._queries(3)[:, 0]
        for n in range(e.shape[0]):
            _, s_n = m.encoder(e[n:n + 1])  # sequence n alone
            for i in range(m.m):
                want, _ = m.encoder.step(q[n * m.m + i][None], s_n)
                torch.testing.assert_close(got[n * m.m + i], want[0], atol=1e-12, rtol=1e-10)
        y = m(x)
    assert y.shape == (3, 10, 2, 1) and torch.isfinite(y).all()


@pytest.mark.parametrize("cell, extras", [("mamba", {"state_size": 3}),
                                          ("xlstm", {"num_heads": 2})])
def test_segrnn_on_a_block_stack_learns_a_sine_better_than_the_last_value(cell, extras):
    torch.manual_seed(0)
    m = SegRNN(_segrnn(cell=cell, hidden_size=16, extras=extras, norm="revin"), n_targets=1,
               horizon=12)
    t = torch.arange(400, dtype=torch.float32)
    series = torch.sin(2 * torch.pi * t / 24) + 0.05 * torch.randn(400)
    win = torch.stack([series[i:i + 60] for i in range(0, 340, 3)])[..., None]  # (B, 60, 1)
    x, y = win[:, :48], win[:, 48:]
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        loss = (m(x)[..., 0] - y).square().mean()
        loss.backward()
        opt.step()
    naive = (x[:, -1:] - y).square().mean()
    with torch.no_grad():
        mse = (m(x)[..., 0] - y).square().mean()
    assert mse < 0.1 * naive, (float(mse), float(naive))


def test_the_rnn_strategies_refuse_a_block_stack_by_name():
    with pytest.raises(ValueError, match=r"model.cell='mamba': a stack of blocks forecasts with "
                                         r"model.arch: segrnn"):
        Forecaster(ForecastModelConfig(cell="mamba", hidden_size=8), n_targets=1, horizon=4)
