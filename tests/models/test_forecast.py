"""Forecaster strategies and heads: shapes, overfitting a sine, attention masks, losses, baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit.layers import LAYERS
from rnnkit.models.forecast import (
    Forecaster,
    ForecastModelConfig,
    LinearAR,
    NLinear,
    forecast_loss,
    naive_forecast,
    point_forecast,
    quantile_forecast,
    seasonal_naive_forecast,
)

STRATEGIES = ["single", "recursive", "direct", "seq2seq"]


def _model(strategy="direct", head="point", H=4, C=2, P=0, F=3, **kw):
    H = 1 if strategy == "single" else H
    cfg = ForecastModelConfig(cell=kw.pop("cell", "gru"), hidden_size=kw.pop("hidden_size", 8), strategy=strategy,
                              head=head, **kw)
    return Forecaster(cfg, n_targets=C, n_past=P, n_future=F, horizon=H), H


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("head, K", [("point", 1), ("quantile", 3), ("gaussian", 2)])
def test_output_shapes(strategy, head, K):
    torch.manual_seed(0)
    m, H = _model(strategy, head, attention="additive" if strategy == "seq2seq" else "none")
    x, xf, y = torch.randn(5, 7, 5), torch.randn(5, H, 3), torch.randn(5, H, 2)
    assert m(x, xf, y_teacher=y).shape == (5, H, 2, K)  # training (teacher forcing where used)
    assert m.eval()(x, xf).shape == (5, H, 2, K)  # free running


@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_any_rnnkit_cell_runs_seq2seq(cell):
    torch.manual_seed(0)
    m, H = _model("seq2seq", cell=cell, attention="dot", decoder_feedback=True)
    out = m.eval()(torch.randn(3, 6, 5), torch.randn(3, H, 3))
    assert out.shape == (3, H, 2, 1) and torch.isfinite(out).all()


def _sine_batches(B=32, L=16, H=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(B, 1, generator=g) * 2 * math.pi
    t = torch.arange(L + H)[None].float()
    y = torch.sin(2 * math.pi * t / 12 + phase)[..., None]  # (B, L+H, 1)
    return y[:, :L], torch.zeros(B, H, 0), y[:, L:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_overfits_a_sine(strategy):
    torch.manual_seed(0)
    H = 1 if strategy == "single" else 4
    cfg = ForecastModelConfig(cell="gru", hidden_size=16, strategy=strategy,
                              attention="dot" if strategy == "seq2seq" else "none")
    m = Forecaster(cfg, n_targets=1, n_future=0, horizon=H)
    x, xf, y = _sine_batches(H=H)
    opt = torch.optim.Adam(m.parameters(), lr=0.03)
    first = None
    for _ in range(60):
        loss = forecast_loss(m(x, xf, y_teacher=y), y, cfg)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        final = float(forecast_loss(m(x, xf), y, cfg))  # free-running (recursive feeds itself)
    assert first > 0.2 and final < 0.01, (first, final)


def test_seq2seq_attention_ignores_padding():
    torch.manual_seed(0)
    m, H = _model("seq2seq", attention="general")
    m.eval()
    x, xf = torch.randn(3, 6, 5), torch.randn(3, H, 3)
    lengths = torch.tensor([6, 4, 2])
    x_pad = x.clone()
    x_pad[1, 4:] = 99.0  # garbage beyond each length must not matter
    x_pad[2, 2:] = -99.0
    out = m(x_pad, xf, lengths=lengths)
    a = m.last_attention  # (B, H, L)
    assert torch.all(a[1, :, 4:] == 0) and torch.all(a[2, :, 2:] == 0)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, H))
    for b, n in enumerate(lengths.tolist()):  # each padded row equals the sequence alone
        alone = m(x[b:b + 1, :n], xf[b:b + 1])
        torch.testing.assert_close(out[b:b + 1], alone, atol=1e-5, rtol=1e-5)


def test_recursive_teacher_forcing_matches_free_running_on_its_own_forecasts():
    torch.manual_seed(0)
    m, H = _model("recursive", H=5)
    x, xf = torch.randn(4, 7, 5), torch.randn(4, H, 3)
    free = m.eval()(x, xf)
    forced = m.train()(x, xf, y_teacher=point_forecast(free, m.config))
    torch.testing.assert_close(forced, free, atol=1e-5, rtol=1e-5)


def test_last_value_norm_makes_forecasts_shift_with_the_level():
    torch.manual_seed(0)
    m, H = _model("direct", head="gaussian", norm="last", C=1, F=0)
    m.eval()
    x = torch.randn(2, 6, 1)
    p0, p1 = m(x), m(x + 7.0)
    torch.testing.assert_close(p1[..., 0], p0[..., 0] + 7.0)  # mean shifts
    torch.testing.assert_close(p1[..., 1], p0[..., 1])  # spread does not


def test_highway_is_a_linear_autoregression_added_to_the_rnn():
    torch.manual_seed(0)
    m, H = _model("direct", head="quantile", C=2, F=0, H=3, highway=4)
    m.eval()
    x = torch.randn(5, 6, 2)
    with torch.no_grad():
        base = m(x)
        m.highway.weight.zero_()
        m.highway.bias.zero_()
        rnn_only = m(x)
        m.highway.weight[:, -1] = 1.0  # each horizon repeats the last value...
        m.highway.weight[2, -2] = 0.5  # ...and step 3 adds half of the one before
        m.highway.bias[1] = 0.25
        out = m(x)
    ar = x[:, -1:, :].expand(5, 3, 2).clone()  # (B, H, C)
    ar[:, 2] += 0.5 * x[:, -2]
    ar[:, 1] += 0.25
    torch.testing.assert_close(out, rnn_only + ar[..., None])  # every quantile shifts
    assert not torch.allclose(base, rnn_only)
    with pytest.raises(ValueError, match="highway=4 needs unpadded input windows of at least 4 steps"):
        m(x[:, :3])


def test_bad_configurations_are_errors():
    with pytest.raises(ValueError, match="'single' predicts one step"):
        Forecaster(ForecastModelConfig(strategy="single"), n_targets=1, horizon=3)
    with pytest.raises(ValueError, match="past covariates are unknown beyond the origin"):
        Forecaster(ForecastModelConfig(strategy="recursive"), n_targets=1, n_past=2, horizon=3)
    with pytest.raises(ValueError, match="needs model.strategy='seq2seq'"):
        Forecaster(ForecastModelConfig(attention="dot"), n_targets=1, horizon=3)
    with pytest.raises(ValueError, match="increasing levels"):
        Forecaster(ForecastModelConfig(head="quantile", quantiles=[0.9, 0.1]), n_targets=1, horizon=3)


def test_losses_by_hand():
    y = torch.tensor([[1.0, 2.0]])  # (..., C)
    q = ForecastModelConfig(head="quantile", quantiles=[0.1, 0.9])
    p = torch.tensor([[[0.0, 3.0], [2.0, 2.0]]])  # (..., C, Q)
    # errors e = y - q: channel 0: (1, -2) -> 0.1*1, (0.9-1)*(-2)=0.2 ; channel 1: (0, 0)
    assert float(forecast_loss(p, y, q)) == pytest.approx((0.1 + 0.2 + 0 + 0) / 4)
    g = ForecastModelConfig(head="gaussian")
    pg = torch.tensor([[[0.5, 0.3], [2.5, -1.0]]])
    sigma = torch.nn.functional.softplus(pg[..., 1]) + 1e-3
    ref = -torch.distributions.Normal(pg[..., 0], sigma).log_prob(y).mean()
    assert float(forecast_loss(pg, y, g)) == pytest.approx(float(ref), rel=1e-6)
    pt = ForecastModelConfig(head="point", loss="mae")
    assert float(forecast_loss(torch.tensor([[[0.0], [4.0]]]), y, pt)) == pytest.approx(1.5)


def test_quantile_forecasts():
    cfg = ForecastModelConfig(head="quantile", quantiles=[0.1, 0.5, 0.9])
    p = torch.tensor([[3.0, 1.0, 2.0]])  # crossing quantiles are sorted: 1, 2, 3
    out = quantile_forecast(p, cfg, [0.05, 0.1, 0.3, 0.5, 0.7, 0.95])
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0, 1.5, 2.0, 2.5, 3.0]]))
    assert float(point_forecast(p, cfg)) == 2.0
    g = ForecastModelConfig(head="gaussian")
    pg = torch.tensor([[1.0, 0.2]])
    sigma = torch.nn.functional.softplus(torch.tensor(0.2)) + 1e-3
    ref = torch.distributions.Normal(1.0, sigma).icdf(torch.tensor([0.1, 0.9]))
    torch.testing.assert_close(quantile_forecast(pg, g, [0.1, 0.9])[0], ref)


def test_naive_and_seasonal_naive_exact():
    hist = np.arange(10.0).reshape(1, 10, 1)
    np.testing.assert_array_equal(naive_forecast(hist, 3)[0, :, 0], [9, 9, 9])
    np.testing.assert_array_equal(seasonal_naive_forecast(hist, 5, 4)[0, :, 0], [6, 7, 8, 9, 6])
    with pytest.raises(ValueError, match="season_length=12"):
        seasonal_naive_forecast(hist, 2, 12)


def test_linear_ar_recovers_an_ar2_process():
    rng = np.random.default_rng(0)
    a1, a2, b = 0.6, -0.3, 0.5
    y = np.zeros(3000)
    for t in range(2, len(y)):
        y[t] = b + a1 * y[t - 1] + a2 * y[t - 2] + 0.1 * rng.normal()
    ar = LinearAR(2).fit([y[:, None]])
    np.testing.assert_allclose(ar.coef[0], [a2, a1, b], atol=0.03)  # lags t-2, t-1, intercept
    hist = y[None, -5:, None]
    f = ar.forecast(hist, 2)[0, :, 0]
    c = ar.coef[0]
    one = c[0] * y[-2] + c[1] * y[-1] + c[2]
    np.testing.assert_allclose(f, [one, c[0] * y[-1] + c[1] * one + c[2]])


def test_nlinear_recovers_its_map_and_is_level_free():
    """NLinear in closed form: windows whose targets are exactly ``last + W (x - last) + a``
    give ``W`` and ``a`` back (ridge 0); the channels are pooled; its affine map is its
    forecast; a window shifted by ``c`` gets the forecast shifted by ``c``."""
    rng = np.random.default_rng(0)
    L, H, C = 6, 4, 3
    W, a = rng.normal(0, 0.3, (H, L)), rng.normal(0, 0.5, H)
    W[:, -1] = 0.0  # x_L - x_L is 0: that weight is not identifiable, and NLinear sets it to 0
    x = rng.normal(size=(200, L, C)) + rng.normal(0, 3, (200, 1, C))  # levels vary by window
    last = x[:, -1:]
    y = last + np.einsum("hl,nlc->nhc", W, x - last) + a[None, :, None]
    m = NLinear(ridge=0.0).fit([(x[:120], y[:120]), (x[120:], y[120:])])
    np.testing.assert_allclose(m.W, W, atol=1e-9)
    np.testing.assert_allclose(m.a, a, atol=1e-9)
    np.testing.assert_allclose(m.forecast(x), y, atol=1e-9)
    A, b = m.affine()
    np.testing.assert_allclose(np.einsum("hl,nlc->nhc", A, x) + b[None, :, None], y, atol=1e-9)
    np.testing.assert_allclose(m.forecast(x + 7.5), y + 7.5, atol=1e-9)
    # the ridge shrinks W, not the intercept: a constant target offset is still fitted exactly
    flat = np.repeat(x[:, -1:], L, 1)  # x - last == 0: only the intercept can explain y
    r = NLinear(ridge=1.0).fit([(flat, flat[:, :H] + 2.0)])
    np.testing.assert_allclose(r.forecast(flat), flat[:, :H] + 2.0, atol=1e-9)
    with pytest.raises(ValueError, match="no training windows"):
        NLinear().fit([])
    with pytest.raises(ValueError, match="expected x"):
        NLinear().fit([(x[:, :, :2], y)])
    with pytest.raises(ValueError, match="fitted on windows of 6 steps"):
        m.forecast(x[:, 1:])
    with pytest.raises(ValueError, match="fit it first"):
        NLinear().forecast(x)
