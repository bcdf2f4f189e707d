"""The NumPy S6 reference: BPTT against finite differences, and rnnkit's S6 layer against it.

For ``L = sum(output * d_output) + sum(h_n * d_h_n)`` the gradient ``backward`` returns must
match the central difference, eps = 1e-6, for EVERY entry of every parameter, the input and
the initial state (1e-7 absolute + 1e-6 relative, as ``test_finite_difference.py``); a
deliberately broken backward shows the check can fail. Then ``rnnkit.Recurrent(S6Cell, ...)``
(autograd through the parallel scan) and the reference (explicit BPTT) agree in float64 within
1e-8 relative: outputs, h_n, and the gradients of every parameter, the input and h0.
"""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from rnnkit import Recurrent
from rnnkit.cells.ssm import S6Cell
from rnnkit.layers import S6
from rnnkit.reference import ssm
from rnnkit.reference.gradcheck import gradient_mismatches

EPS, TOL = 1e-6, 1e-8
T, B, I, H, N = 6, 4, 3, 4, 3
LENGTHS = [6, 2, 5, 1]  # unsorted, includes 1 and T


def _perturbed(model: ssm.S6, seed: int = 5) -> ssm.S6:
    """Parameters off their initial values (bias 0, D 1, A_log the same in every channel)."""
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v += 0.3 * rng.normal(size=v.shape)
    return model


CASES = {  # 2-layer bidirectional: layer 1 reads 2H
    "s6": lambda: _perturbed(ssm.S6(I, H, 2, True, state_size=N, seed=1)),
    "s6_nobias": lambda: _perturbed(ssm.S6(I, H, 2, True, False, state_size=N, seed=1)),
    # value="identity", u = x: I == H in every layer (stacked one way, or one layer both ways)
    "s6_identity": lambda: _perturbed(ssm.S6(H, H, 2, state_size=N, value="identity", seed=1)),
    "s6_identity_bi_nobias": lambda: _perturbed(ssm.S6(H, H, 1, True, False, state_size=N,
                                                       value="identity", seed=1)),
}


def _fd_check(model, lengths=LENGTHS, seed=0):
    """Every entry against finite differences: ``(mismatches, sum |analytic|, grads)``."""
    rng = np.random.default_rng(seed)
    DL, (S,) = model.num_directions * model.num_layers, model._state_sizes()
    x, h0 = rng.normal(size=(T, B, model.input_size)), rng.normal(size=(DL, B, S))
    d_out = rng.normal(size=(T, B, model.num_directions * H))
    d_hn = rng.normal(size=(DL, B, S))

    def loss():
        out, h_n = model.forward(x, h0, lengths)
        return float(np.sum(out * d_out) + np.sum(h_n * d_hn))

    loss()
    grads = model.backward(d_out, d_hn)
    arrays = dict(model.params) | {"input": x, "h0": h0}
    assert set(arrays) == set(grads)
    mismatches, checked = gradient_mismatches(loss, arrays, grads, EPS)
    return mismatches, checked, grads


@pytest.mark.parametrize("name", CASES)
def test_backward_matches_finite_differences(name):
    mismatches, checked, grads = _fd_check(CASES[name]())
    assert not mismatches, mismatches[:5]
    assert checked > 1.0
    for n, g in grads.items():  # every parameter and the state get some gradient
        assert np.any(g != 0), n
    for b, length in enumerate(LENGTHS):  # padded inputs do not reach the loss
        assert np.all(grads["input"][length:, b] == 0)


class _S6NoDecayGrad(ssm.S6):
    """Drops the path through ``a = exp(delta A)`` into delta: only the ``dt`` gradients err."""

    def _step_backward(self, dy, dstate, cache, p):
        dx, d_prev, grads = super()._step_backward(dy, dstate, cache, p)
        u, delta, Bt, Ct, A, h_prev, a, h = cache
        g = dstate[0].reshape(h.shape) + dy[:, :, None] * Ct[:, None, :]
        dx = dx.copy()
        dx[:, H:2 * H] -= np.einsum("bhn,hn->bh", g * h_prev * a, A)
        return dx, d_prev, grads


def test_check_catches_a_wrong_backward():
    mismatches, *_ = _fd_check(_perturbed(_S6NoDecayGrad(I, H, 2, True, state_size=N, seed=1)))
    names = {name for name, *_ in mismatches}
    assert "dt_bias_l0" in names and "dt_bias_l1_reverse" in names, names
    # the top layer's A_log and D do not depend on the dropped path (the layer below does)
    assert not names & {"A_log_l1", "D_l1", "A_log_l1_reverse", "D_l1_reverse"}, names


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("use_lengths", [True, False], ids=["lengths", "full"])
def test_layer_matches_reference(use_lengths, bias):
    torch.manual_seed(0)
    ours = Recurrent(S6Cell, I, H, 2, bias=bias, bidirectional=True, state_size=N).double()
    with torch.no_grad():
        for p in ours.parameters():  # off the initial values (bias 0, D 1, A_log shared)
            p.add_(0.2 * torch.randn_like(p))
    ref = ssm.S6(I, H, 2, True, bias, state_size=N)
    ref.load_state_dict(ours.state_dict())
    DL, S = 4, H * N
    rng = np.random.default_rng(1)
    x, h0 = rng.normal(size=(T, B, I)), rng.normal(size=(DL, B, S))
    d_out, d_hn = rng.normal(size=(T, B, 2 * H)), rng.normal(size=(DL, B, S))
    lengths = LENGTHS if use_lengths else None

    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, h_n = ours(x_t, h0_t, lengths=None if lengths is None else torch.tensor(lengths))
    ((out * torch.tensor(d_out)).sum() + (h_n * torch.tensor(d_hn)).sum()).backward()
    ref_out, ref_hn = ref.forward(x, h0, lengths)
    grads = ref.backward(d_out, d_hn)

    assert rel_err(out.detach(), ref_out) < TOL
    assert rel_err(h_n.detach(), ref_hn) < TOL
    assert rel_err(h0_t.grad, grads["h0"]) < TOL
    assert rel_err(x_t.grad, grads["input"]) < TOL
    assert list(grads)[:-2] == [n for n, _ in ours.named_parameters()]  # names, order
    for n, p in ours.named_parameters():
        assert rel_err(p.grad, grads[n]) < TOL, n
    if use_lengths:  # padded steps: zero output, no gradient into the input there
        assert np.all(ref_out[2:, 1] == 0) and np.all(grads["input"][2:, 1] == 0)


@pytest.mark.parametrize("L, bi, bias", [(2, False, True), (1, True, False)],
                         ids=["stacked", "bidirectional_nobias"])
def test_identity_layer_matches_reference(L, bi, bias):
    """``rnnkit.S6(H, H, value="identity")`` (u = x) against the reference, with lengths."""
    torch.manual_seed(0)
    ours = S6(H, H, L, bias=bias, bidirectional=bi, state_size=N, value="identity").double()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ref = ssm.S6(H, H, L, bi, bias, state_size=N, value="identity")
    ref.load_state_dict(ours.state_dict())
    D = 2 if bi else 1
    rng = np.random.default_rng(1)
    x, h0 = rng.normal(size=(T, B, H)), rng.normal(size=(D * L, B, H * N))
    d_out, d_hn = rng.normal(size=(T, B, D * H)), rng.normal(size=(D * L, B, H * N))
    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, h_n = ours(x_t, h0_t, lengths=torch.tensor(LENGTHS))
    ((out * torch.tensor(d_out)).sum() + (h_n * torch.tensor(d_hn)).sum()).backward()
    ref_out, ref_hn = ref.forward(x, h0, LENGTHS)
    grads = ref.backward(d_out, d_hn)
    assert rel_err(out.detach(), ref_out) < TOL and rel_err(h_n.detach(), ref_hn) < TOL
    assert rel_err(h0_t.grad, grads["h0"]) < TOL and rel_err(x_t.grad, grads["input"]) < TOL
    assert list(grads)[:-2] == [n for n, _ in ours.named_parameters()]
    for n, p in ours.named_parameters():
        assert rel_err(p.grad, grads[n]) < TOL, n


def test_reference_initialisation_and_shapes():
    model = ssm.S6(I, H, 2, True, state_size=N, dt_min=0.01, dt_max=0.05, seed=0)
    assert model.params["weight_ih_l1_reverse"].shape == (2 * H + 2 * N, 2 * H)
    assert list(ssm.S6(I, H, bias=False, seed=0).params) == [
        "weight_ih_l0", "dt_bias_l0", "A_log_l0", "D_l0"]
    np.testing.assert_allclose(model.params["A_log_l0"], np.log([[1, 2, 3]] * H))
    assert np.all(model.params["D_l1"] == 1) and np.all(model.params["bias_l0"] == 0)
    dt = np.logaddexp(0, model.params["dt_bias_l0"])
    assert np.all((dt >= 0.01 - 1e-12) & (dt <= 0.05 + 1e-12))
    assert np.abs(model.params["weight_ih_l0"]).max() <= 1 / np.sqrt(I)


@pytest.mark.parametrize("kw, pattern", [
    (dict(state_size=0), "state_size"), (dict(dt_min=0.1, dt_max=0.01), "0 < dt_min < dt_max"),
    (dict(dt_max=float("inf")), "dt_max: expected a finite number"),
    (dict(value="identity"), "input_size=3, hidden_size=4"),
    (dict(value="gate"), "value: expected 'project' or 'identity'")])
def test_bad_arguments(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        ssm.S6(I, H, **kw)


def test_docstring_example():
    result = doctest.testmod(ssm)
    assert result.attempted > 0 and result.failed == 0
