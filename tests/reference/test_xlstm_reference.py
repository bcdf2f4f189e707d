"""The NumPy sLSTM/mLSTM references: BPTT against finite differences (every entry), and
rnnkit's layers (autograd) against them in float64.

For ``L = sum(output * d_output) + sum over states of sum(h_n * d_h_n)`` the reference's
gradient must match the central difference, eps = 1e-6, for EVERY entry of every parameter,
the input and each initial state (tolerance 1e-7 absolute + 1e-6 relative, as
``test_finite_difference.py``), on a 2-layer bidirectional layer with 2 heads and unsorted
lengths. The torch layer must match the reference within 1e-8 relative: outputs, every h_n
tensor, and the gradients of every parameter, the input and every initial state.
"""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from rnnkit import Recurrent
from rnnkit.cells.xlstm import MLSTMCell, SLSTMCell
from rnnkit.reference import xlstm
from rnnkit.reference.gradcheck import gradient_mismatches

EPS, TOL = 1e-6, 1e-8
T, B, I, H = 6, 4, 3, 4
LENGTHS = [6, 2, 5, 1]  # unsorted, includes 1 and T

CASES = {  # name -> (cell, reference class, options); all 2-layer bidirectional
    "slstm": (SLSTMCell, xlstm.SLSTM, dict(num_heads=2)),
    "slstm_exp_nobias": (SLSTMCell, xlstm.SLSTM, dict(num_heads=2, forget="exp", bias=False)),
    "mlstm": (MLSTMCell, xlstm.MLSTM, dict(num_heads=2)),
    "mlstm_exp_nobias_1head": (MLSTMCell, xlstm.MLSTM, dict(forget="exp", bias=False)),
}


def _reference(name, seed=1):
    _, cls, kw = CASES[name]
    return cls(I, H, 2, True, seed=seed, **kw)


def _states(model, rng, B=B):
    """Plausible initial states: sLSTM's n > 0 (as every reachable n), the rest N(0, 1)."""
    DL = model.num_directions * model.num_layers
    out = [rng.normal(size=(DL, B, s)) for s in model._state_sizes()]
    if model.state_names == ("h", "c", "n", "m"):
        out[2] = rng.uniform(0.5, 2.0, size=out[2].shape)
    return out


def _fd_check(model, seed=0, only=None, sample=None, h_only=False):
    """Every entry (of the arrays named in ``only``; ``sample`` random entries of each)
    against central differences: ``(mismatches, sum |analytic|, grads)``. ``h_only``: the
    loss reads the outputs and ``h_n`` only, not the other final states."""
    rng = np.random.default_rng(seed)
    x, h0 = rng.normal(size=(T, B, model.input_size)), _states(model, rng)
    d_out = rng.normal(size=(T, B, model.num_directions * H))
    d_hn = [rng.normal(size=h.shape) * (i == 0 or not h_only) for i, h in enumerate(h0)]

    def loss():
        out, h_n = model.forward(x, tuple(h0), LENGTHS)
        return float(np.sum(out * d_out) + sum(np.sum(h * d) for h, d in zip(h_n, d_hn)))

    loss()
    grads = model.backward(d_out, tuple(d_hn))
    arrays = dict(model.params) | {"input": x} | {n + "0": h for n, h in
                                                  zip(model.state_names, h0)}
    assert list(grads) == list(arrays)  # every gradient, nothing else
    chosen = {n: a for n, a in arrays.items() if only is None or n in only}
    mismatches, checked = gradient_mismatches(loss, chosen, grads, EPS, sample=sample, rng=rng)
    return mismatches, checked, grads


@pytest.mark.parametrize("name", CASES)
def test_backward_matches_finite_differences(name):
    """Every entry for the 2-head cases; 8 entries of each array for the other options."""
    sample = None if CASES[name][2].get("num_heads") == 2 and len(CASES[name][2]) == 1 else 8
    mismatches, checked, grads = _fd_check(_reference(name), sample=sample)
    assert not mismatches, mismatches[:5]
    assert checked > 1.0
    for n, g in grads.items():  # every parameter and state gets some gradient
        assert np.any(g != 0), n
    for b, length in enumerate(LENGTHS):  # padded inputs do not reach the loss
        assert np.all(grads["input"][length:, b] == 0)


class _SLSTMNoGradThroughM(xlstm.SLSTM):
    """m treated as a constant (the official CUDA kernel's backward): right for h, not m_0."""

    def _gates_backward(self, dip, dfp, dm, ip, fp, a, i_, f_):
        da = dfp * fp  # no path through m_t, nor from f' to m_{t-1}
        return dip * ip, da / (1.0 + np.exp(f_)), 0.0 * da  # df~ = da sigmoid(-f~)


class _MLSTMNormOff(xlstm.MLSTM):
    def _step_backward(self, dy, dstate, cache, p):
        dx, d_prev, grads = super()._step_backward(dy, dstate, cache, p)
        return dx, (d_prev[0], d_prev[1] * (1 + 1e-4), d_prev[2]), grads


@pytest.mark.parametrize("broken, culprit", [
    (lambda: _SLSTMNoGradThroughM(I, H, 2, True, num_heads=2, seed=1), "m0"),
    (lambda: _MLSTMNormOff(I, H, 2, True, num_heads=2, seed=1), "n0"),
], ids=["slstm_m_constant", "mlstm_dn_off_1e-4"])
def test_check_catches_a_wrong_backward(broken, culprit):
    mismatches, *_ = _fd_check(broken(), only=(culprit,))
    assert any(name == culprit for name, *_ in mismatches), mismatches[:5]


def test_m_held_constant_still_gives_the_gradient_of_h():
    """The module docstring's claim: with every m_t treated as a constant in the backward,
    the gradient of a loss on h alone is still exact, except at m_0 (zero instead)."""
    model = _SLSTMNoGradThroughM(I, H, 2, True, num_heads=2, seed=1)
    names = ("weight_hh_l0", "bias_l1_reverse", "input", "h0", "c0", "n0", "m0")
    mismatches, _, grads = _fd_check(model, only=names, h_only=True)
    assert {name for name, *_ in mismatches} == {"m0"} and not grads["m0"].any()


def _torch_layer(name, mode=None):
    """The rnnkit layer of case ``name``; an mLSTM in ``mode`` (parallel: chunks of 4 steps,
    so T = 6 runs a whole chunk and a padded one)."""
    cell, _, kw = CASES[name]
    kw = dict(kw) | ({} if mode is None else dict(mode=mode))
    layer = Recurrent(cell, I, H, 2, bias=kw.pop("bias", True), bidirectional=True, **kw).double()
    if mode == "parallel":
        for c in layer.cells:
            c.chunk_size = 4
    return layer


#: (case, mode): the mLSTM in both modes
LAYER_CASES = [(n, None) if n.startswith("slstm") else (n, m) for n in CASES
               for m in ("parallel", "sequential") if n.startswith("mlstm") or m == "parallel"]


def _compare(ours, ref, x, h0, d_out, d_hn, lengths):
    """Run both; assert outputs, h_n, and every gradient agree within TOL (relative)."""
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = [torch.tensor(h, requires_grad=True) for h in h0]
    out, h_n = ours(x_t, tuple(h0_t), lengths=None if lengths is None else torch.tensor(lengths))
    loss = (out * torch.tensor(d_out)).sum() + sum((h * torch.tensor(d)).sum()
                                                    for h, d in zip(h_n, d_hn))
    loss.backward()
    ref_out, ref_hn = ref.forward(x, tuple(h0), lengths)
    grads = ref.backward(d_out, tuple(d_hn))
    assert _rel(out, ref_out) < TOL
    for i, n in enumerate(ref.state_names):
        assert _rel(h_n[i], ref_hn[i]) < TOL, n
        assert _rel(h0_t[i].grad, grads[n + "0"]) < TOL, n
    assert _rel(x_t.grad, grads["input"]) < TOL
    assert list(grads)[:len(ref.params)] == [n for n, _ in ours.named_parameters()]
    for n, p in ours.named_parameters():
        assert _rel(p.grad, grads[n]) < TOL, n
    return ref_out, grads


def _rel(a, b) -> float:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


@pytest.mark.parametrize("use_lengths", [True, False], ids=["lengths", "full"])
@pytest.mark.parametrize("name, mode", LAYER_CASES, ids=[f"{n}-{m}" if m else n
                                                         for n, m in LAYER_CASES])
def test_layer_matches_reference(name, mode, use_lengths):
    torch.manual_seed(0)
    ours = _torch_layer(name, mode)
    ref = _reference(name)
    ref.load_state_dict(ours.state_dict())
    rng = np.random.default_rng(1)
    x, h0 = rng.normal(size=(T, B, I)), _states(ref, rng)
    d_out = rng.normal(size=(T, B, 2 * H))
    d_hn = [rng.normal(size=h.shape) for h in h0]
    lengths = LENGTHS if use_lengths else None
    ref_out, grads = _compare(ours, ref, x, h0, d_out, d_hn, lengths)
    if use_lengths:  # padded steps: zero output, no gradient into the input there
        assert np.all(ref_out[2:, 1] == 0) and np.all(grads["input"][2:, 1] == 0)


@pytest.mark.parametrize("name, mode", [("slstm_exp_nobias", None),
                                        ("mlstm_exp_nobias_1head", "parallel"),
                                        ("mlstm_exp_nobias_1head", "sequential")],
                         ids=["slstm", "mlstm-parallel", "mlstm-sequential"])
def test_ties_of_the_max_agree_with_torch(name, mode, monkeypatch):
    """``log f + m_prev == i~`` exactly at layer 0's first step (``forget="exp"``, ``m_0 = 0``,
    no bias, the f rows a copy of the i rows): torch.maximum sends half the gradient each way
    and so does the reference; a loss on ``m_n`` sees the split (a one-sided rule fails). The
    mLSTM's chunkwise form meets it as ``max(m_0, i~ - log f) = max(0, 0)``: halves too."""
    torch.manual_seed(0)
    ours = _torch_layer(name, mode)
    nh, slstm = ours.cells[0].num_heads, name.startswith("slstm")
    i_rows = slice(H, 2 * H) if slstm else slice(3 * H, 3 * H + nh)
    f_rows = slice(2 * H, 3 * H) if slstm else slice(3 * H + nh, 3 * H + 2 * nh)
    with torch.no_grad():
        for d in ("", "_reverse"):
            ours.get_parameter("weight_ih_l0" + d)[f_rows] = ours.get_parameter(
                "weight_ih_l0" + d)[i_rows]
            if slstm:
                ours.get_parameter("weight_hh_l0" + d)[2] = ours.get_parameter(
                    "weight_hh_l0" + d)[1]
    ref = _reference(name)
    ref.load_state_dict(ours.state_dict())
    rng = np.random.default_rng(2)
    x = rng.normal(size=(T, B, I))
    h0 = [np.zeros((4, B, s)) for s in ref._state_sizes()]
    d_out = rng.normal(size=(T, B, 2 * H))
    d_hn = [rng.normal(size=h.shape) for h in h0]
    xp = ours.cells[0].project(torch.tensor(x), ours._params(0, 0))
    assert torch.equal(xp[0, :, i_rows], xp[0, :, f_rows])  # torch: a tie at t = 0
    ref.forward(x, tuple(h0))
    cache = ref._tape["caches"][0][1][0]  # layer 0 forward, t = 0
    a, i_ = (cache[9], cache[5]) if slstm else (cache[8], cache[3])
    assert np.array_equal(a, i_)  # the reference: the same tie
    _, grads = _compare(ours, ref, x, h0, d_out, d_hn, None)
    monkeypatch.setattr(xlstm, "_max_weight", lambda a, b: (a >= b).astype(float))
    ref.forward(x, tuple(h0))
    one_sided = ref.backward(d_out, tuple(d_hn))
    assert max(_rel(one_sided[n], grads[n]) for n in grads) > 1e-3


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_heads: expected a divisor of hidden_size=4"):
        xlstm.SLSTM(I, H, num_heads=3)
    with pytest.raises(ValueError, match="forget: expected one of"):
        xlstm.MLSTM(I, H, forget="tanh")
    with pytest.raises(ValueError, match=r"h0: expected a tuple \(h, c, n, m\)"):
        xlstm.SLSTM(I, H).forward(np.zeros((T, B, I)), np.zeros((1, B, H)))
    with pytest.raises(ValueError, match=r"h0\[2\] \(m\): expected shape \(1, 4, 2\)"):
        xlstm.MLSTM(I, H, num_heads=2).forward(
            np.zeros((T, B, I)), (np.zeros((1, B, 8)), np.zeros((1, B, H)), np.zeros((1, B, 1))))


def test_docstring_example():
    result = doctest.testmod(xlstm)
    assert result.attempted > 0 and result.failed == 0
