"""The NumPy LRU and RG-LRU references: BPTT against finite differences, forward against the
equations written independently (complex numbers; ``a = sigmoid(-a_param)^(c r)``).

For ``L = sum(output * d_output) + sum(h_n * d_h_n)`` (each part of the LRU's pair state) the
gradient ``backward`` returns must match the central difference, eps = 1e-6, for EVERY entry of
every parameter, the input and the initial state, with the tolerance of
``test_finite_difference.py`` (1e-7 absolute + 1e-6 relative). Two deliberately broken
backwards show the check can fail.
"""
from __future__ import annotations

import doctest

import numpy as np
import pytest

from rnnkit.reference import lru
from rnnkit.reference.gradcheck import gradient_mismatches

EPS = 1e-6
T, B, I, H = 6, 4, 3, 4
LENGTHS = [6, 2, 5, 1]  # unsorted, includes 1 and T


def _rglru_floor():
    """Two channels of layer 0 with a ~ 1 - 1e-8: 1 - a^2 is below the floor 2.5e-7."""
    model = lru.RGLRU(I, H, 2, True, seed=1)
    model.params["a_param_l0"][:2] = -20.0  # softplus ~ 2e-9, so 1 - a^2 <= 2 c softplus ~ 3e-8
    return model


CASES = {  # 2-layer bidirectional (layer 1 reads 2H) unless noted
    "lru": lambda: lru.LRU(I, H, 2, True, seed=1),
    "lru_state_size": lambda: lru.LRU(I, H, 2, True, state_size=6, seed=1),  # N != H
    "lru_nobias_small_state": lambda: lru.LRU(I, H, 2, True, False, state_size=3, seed=1),
    "lru_diagonal_skip": lambda: lru.LRU(H, H, 2, seed=1),  # one direction, I == H: D (H,)
    "rglru": lambda: lru.RGLRU(I, H, 2, True, seed=1),
    "rglru_nobias_c4": lambda: lru.RGLRU(I, H, 2, True, False, c=4.0, seed=1),
    "rglru_floor": _rglru_floor,
    "rglru_identity": lambda: lru.RGLRU(H, H, 2, value="identity", seed=1),  # v = x, I == H
    "rglru_identity_bi_nobias": lambda: lru.RGLRU(H, H, 1, True, False, value="identity",
                                                  seed=1),
}


def _fd_check(model, lengths=LENGTHS, seed=0):
    """Every entry against finite differences: ``(mismatches, sum |analytic|, grads, x)``."""
    rng = np.random.default_rng(seed)
    S, DL = model.num_states, model.num_directions * model.num_layers
    sizes = model._state_sizes()
    x = rng.normal(size=(T, B, model.input_size))
    h0 = [rng.normal(size=(DL, B, n)) for n in sizes]
    d_out = rng.normal(size=(T, B, model.num_directions * model.output_size))
    d_hn = [rng.normal(size=(DL, B, n)) for n in sizes]
    pack = tuple if S == 2 else (lambda h: h[0])

    def loss():
        out, h_n = model.forward(x, pack(h0), lengths)
        h_n = h_n if S == 2 else (h_n,)
        return float(np.sum(out * d_out) + sum(np.sum(h * d) for h, d in zip(h_n, d_hn)))

    loss()
    grads = model.backward(d_out, pack(d_hn))
    arrays = dict(model.params) | {"input": x} | dict(zip(("h0", "c0"), h0))
    assert set(arrays) == set(grads)
    mismatches, checked = gradient_mismatches(loss, arrays, grads, EPS)
    return mismatches, checked, grads, x


@pytest.mark.parametrize("name", CASES)
def test_backward_matches_finite_differences(name):
    model = CASES[name]()
    mismatches, checked, grads, _ = _fd_check(model)
    assert not mismatches, mismatches[:5]
    assert checked > 1.0  # not all (trivially) zero
    for n, g in grads.items():  # every parameter and state gets some gradient
        assert np.any(g != 0), n
    for b, length in enumerate(LENGTHS):  # padded inputs do not reach the loss
        assert np.all(grads["input"][length:, b] == 0)


def test_diagonal_skip_and_state_size_shapes():
    diag, wide = lru.LRU(H, H, 2, seed=0), lru.LRU(I, H, 2, True, state_size=6, seed=0)
    assert diag.params["weight_skip_l0"].shape == diag.params["weight_skip_l1"].shape == (H,)
    assert wide.params["weight_skip_l0"].shape == (H, I)
    assert wide.params["weight_skip_l1_reverse"].shape == (H, 2 * H)
    assert wide.params["weight_ih_l1"].shape == (12, 2 * H)
    assert wide.params["weight_out_l0"].shape == (H, 12)
    assert list(lru.LRU(I, H, bias=False, seed=0).params) == [
        "weight_ih_l0", "nu_log_l0", "theta_log_l0", "gamma_log_l0", "weight_out_l0",
        "weight_skip_l0"]
    assert list(lru.RGLRU(I, H, seed=0).params) == ["weight_ih_l0", "bias_l0", "a_param_l0"]


def test_lru_forward_matches_complex_recurrence():
    model = lru.LRU(I, H, state_size=5, seed=3)
    p = {k[:-3]: v for k, v in model.params.items()}  # drop "_l0"
    rng = np.random.default_rng(4)
    x, s0 = rng.normal(size=(T, B, I)), rng.normal(size=(2, 1, B, 5))
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    Bc = p["weight_ih"][:5] + 1j * p["weight_ih"][5:]
    C = p["weight_out"][:, :5] - 1j * p["weight_out"][:, 5:]
    out, (s_re, s_im) = model.forward(x, (s0[0], s0[1]), LENGTHS)
    for b, length in enumerate(LENGTHS):
        s = s0[0, 0, b] + 1j * s0[1, 0, b]
        for t in range(length):
            s = lam * s + np.exp(p["gamma_log"]) * (Bc @ x[t, b])
            y = (C @ s).real + p["weight_skip"] @ x[t, b] + p["bias"]
            np.testing.assert_allclose(out[t, b], y, rtol=1e-12, atol=1e-12)
        assert np.all(out[length:, b] == 0)
        np.testing.assert_allclose(s_re[0, b] + 1j * s_im[0, b], s, rtol=1e-12, atol=1e-12)
    modulus = np.abs(lam)  # the initialisation's ring
    assert np.all((modulus > 0.5) & (modulus < 0.99))
    np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - modulus ** 2))


@pytest.mark.parametrize("c", [8.0, 2.0])
def test_rglru_forward_matches_equations(c):
    model = lru.RGLRU(I, H, 1, True, c=c, seed=3)  # the forward direction is out[..., :H]
    if c == 8.0:
        model.params["a_param_l0"][:2] = -20.0  # 1 - a^2 below the floor, as _rglru_floor
    Wx, bias, a_param = (model.params[k + "_l0"] for k in ("weight_ih", "bias", "a_param"))
    rng = np.random.default_rng(4)
    x, h0 = rng.normal(size=(T, B, I)), rng.normal(size=(2, B, H))
    out, h_n = model.forward(x, h0, LENGTHS)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for b, length in enumerate(LENGTHS):
        h = h0[0, b]
        for t in range(length):
            k_a, k_x, v = np.split(Wx @ x[t, b] + bias, 3)
            a = sig(-a_param) ** (c * sig(k_a))  # exp(-c r softplus(z)) = sigmoid(-z)^(c r)
            h = a * h + np.sqrt(np.maximum(1 - a ** 2, 2.5e-7)) * sig(k_x) * v
            np.testing.assert_allclose(out[t, b, :H], h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[0, b], h, rtol=1e-12, atol=1e-14)
    a_base = np.exp(-np.logaddexp(0, lru.RGLRU(I, H, c=c, seed=0).params["a_param_l0"]))
    assert np.all((a_base > 0.9) & (a_base < 0.999))  # Griffin's code: the base decay


class _LRUNoPhaseGrad(lru.LRU):
    def _step_backward(self, dy, dstate, cache, p):
        dx, d_prev, grads = super()._step_backward(dy, dstate, cache, p)
        return dx, d_prev, grads | {"theta_log": 0.0 * grads["theta_log"]}


class _RGLRUSlightlyOff(lru.RGLRU):
    def _step_backward(self, dy, dstate, cache, p):
        dx, (dh_prev,), grads = super()._step_backward(dy, dstate, cache, p)
        return dx, (dh_prev * (1 + 1e-4),), grads


@pytest.mark.parametrize("broken, culprit", [
    (lambda: _LRUNoPhaseGrad(I, H, 2, True, seed=1), "theta_log"),
    (lambda: _RGLRUSlightlyOff(I, H, 2, True, seed=1), "h0"),
], ids=["lru_no_phase_grad", "rglru_dh_off_1e-4"])
def test_check_catches_a_wrong_backward(broken, culprit):
    mismatches, *_ = _fd_check(broken())
    assert any(name.startswith(culprit) for name, *_ in mismatches), mismatches[:5]


def test_rglru_identity_forward_matches_equations():
    model = lru.RGLRU(H, H, c=8.0, value="identity", seed=3)
    Wx, bias, a_param = (model.params[k + "_l0"] for k in ("weight_ih", "bias", "a_param"))
    assert Wx.shape == (2 * H, H) and bias.shape == (2 * H,)
    rng = np.random.default_rng(4)
    x, h0 = rng.normal(size=(T, B, H)), rng.normal(size=(1, B, H))
    out, h_n = model.forward(x, h0, LENGTHS)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for b, length in enumerate(LENGTHS):
        h = h0[0, b]
        for t in range(length):
            k_a, k_x = np.split(Wx @ x[t, b] + bias, 2)
            a = sig(-a_param) ** (8.0 * sig(k_a))
            h = a * h + np.sqrt(np.maximum(1 - a ** 2, 2.5e-7)) * sig(k_x) * x[t, b]
            np.testing.assert_allclose(out[t, b], h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[0, b], h, rtol=1e-12, atol=1e-14)


def test_bad_arguments():
    with pytest.raises(ValueError, match="state_size"):
        lru.LRU(I, H, state_size=0)
    with pytest.raises(ValueError, match="c: expected"):
        lru.RGLRU(I, H, c=0.0)
    with pytest.raises(ValueError, match="input_size=3, hidden_size=4"):
        lru.RGLRU(I, H, value="identity")
    with pytest.raises(ValueError, match="input_size=8, hidden_size=4"):  # layer 1 reads 2H
        lru.RGLRU(H, H, 2, True, value="identity")
    with pytest.raises(ValueError, match="value: expected"):
        lru.RGLRU(H, H, value="Identity")
    with pytest.raises(ValueError, match="pair"):
        lru.LRU(I, H).forward(np.zeros((T, B, I)), np.zeros((1, B, H)))


def test_docstring_example():
    result = doctest.testmod(lru)
    assert result.attempted > 0 and result.failed == 0
