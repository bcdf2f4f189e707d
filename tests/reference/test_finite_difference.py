"""Finite-difference check of the reference BPTT: an oracle that needs no torch.

For the loss ``L = sum(output * d_output) + sum(h_n * d_h_n) (+ sum(c_n * d_c_n))`` the
gradient ``backward(d_output, d_h_n)`` returns must match the central difference
``(L(w + eps) - L(w - eps)) / (2 eps)``, eps = 1e-6, for sampled parameter entries, inputs and
initial states. Central differences are exact to O(eps^2 f''') + O(1e-16 |L| / eps) ~ 1e-10
here, so a tolerance of 1e-7 leaves room while any wrong term in a backward shows at >= 1e-4.
"""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit import reference
from rnnkit.reference.gradcheck import central_difference

EPS = 1e-6
T, B, I, H = 4, 3, 2, 3
LENGTHS = [4, 1, 3]

MODES = {  # tiny 2-layer bidirectional nets
    "rnn_tanh": lambda: reference.RNN(I, H, 2, bidirectional=True, seed=1),
    "rnn_relu": lambda: reference.RNN(I, H, 2, nonlinearity="relu", bidirectional=True, seed=1),
    "lstm": lambda: reference.LSTM(I, H, 2, bidirectional=True, seed=1),
    "lstm_proj": lambda: reference.LSTM(I, H, 2, bidirectional=True, proj_size=2, seed=1),
    "gru": lambda: reference.GRU(I, H, 2, bidirectional=True, seed=1),
    "gru_reset_before": lambda: reference.GRU(I, H, 2, bidirectional=True, reset_after=False,
                                              seed=1),
    "lstm_no_bias": lambda: reference.LSTM(I, H, 2, bidirectional=True, bias=False, seed=1),
}


def _loss(model, x, h0, lengths, d_out, d_hn) -> float:
    out, h_n = model.forward(x, h0 if len(h0) == 2 else h0[0], lengths)
    h_n = h_n if isinstance(h_n, tuple) else (h_n,)
    return float(np.sum(out * d_out) + sum(np.sum(h * d) for h, d in zip(h_n, d_hn, strict=True)))


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("mode", list(MODES))
def test_backward_matches_finite_differences(mode, use_lengths):
    model = MODES[mode]()
    rng = np.random.default_rng(0)
    lstm = isinstance(model, reference.LSTM)
    DL, H_out = 2 * 2, model.output_size
    x = rng.normal(size=(T, B, I))
    h0 = (rng.normal(size=(DL, B, H_out)),) + ((rng.normal(size=(DL, B, H)),) if lstm else ())
    lengths = LENGTHS if use_lengths else None
    d_out = rng.normal(size=(T, B, 2 * H_out))
    d_hn = tuple(rng.normal(size=h.shape) for h in h0)

    model.forward(x, h0 if lstm else h0[0], lengths)
    grads = model.backward(d_out, d_hn if lstm else d_hn[0])

    def loss():
        return _loss(model, x, h0, lengths, d_out, d_hn)

    arrays = dict(model.params) | {"input": x, "h0": h0[0]} | ({"c0": h0[1]} if lstm else {})
    checked = 0.0
    for name, array in arrays.items():
        picks = 3 if name in ("input", "h0", "c0") else 2
        for flat in rng.choice(array.size, size=picks, replace=False):
            index = np.unravel_index(flat, array.shape)
            numeric = central_difference(loss, array, index, EPS)
            analytic = grads[name][index]
            error = abs(numeric - analytic)
            assert error <= 1e-7 + 1e-6 * abs(analytic), (name, index, numeric, analytic)
            checked += abs(analytic)
    assert checked > 1.0  # the sampled gradients are not all (trivially) zero

    if use_lengths:  # inputs at padded steps do not affect the loss at all
        t, b = 3, 1
        assert np.all(grads["input"][t, b] == 0)
        assert central_difference(loss, x, (t, b, 0), EPS) == 0.0


def test_lengths_change_the_gradient():
    """Guards the check above against lengths being ignored: padded vs full gradients differ."""
    model = MODES["lstm"]()
    x = np.random.default_rng(0).normal(size=(T, B, I))
    out, _ = model.forward(x)
    full = model.backward(np.ones_like(out))["weight_hh_l0_reverse"]
    model.forward(x, lengths=LENGTHS)
    padded = model.backward(np.ones_like(out))["weight_hh_l0_reverse"]
    assert np.max(np.abs(full - padded)) > 1e-3


def test_central_difference_docstring_and_restores_the_array():
    import doctest

    from rnnkit.reference import gradcheck

    result = doctest.testmod(gradcheck)
    assert result.attempted > 0 and result.failed == 0
    w = np.array([0.5, -1.5])
    assert central_difference(lambda: float(np.sin(w).sum()), w, (1,)) == \
        pytest.approx(np.cos(-1.5), abs=1e-9)
    assert w.tolist() == [0.5, -1.5]  # perturbed and put back
