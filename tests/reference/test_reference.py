"""rnnkit.reference against torch autograd in float64: outputs, final states and every gradient.

torch.nn.RNN/LSTM/GRU are the oracle for the modes they have (padded input is run through
torch as a PackedSequence); Cho et al.'s GRU (``reset_after=False``) is checked against a small
torch autograd loop written here, itself first checked against torch.nn.GRU.
"""
from __future__ import annotations

import doctest
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit import reference
from rnnkit.reference import clip as reference_clip

TOL = 1e-8
T, B, I, H, P = 6, 4, 3, 4, 2          # time, batch, input, hidden, LSTM proj_size
LENGTHS = [6, 2, 5, 1]                 # unsorted, includes 1 and T

MODES = {  # name -> (torch class, reference class, extra constructor kwargs)
    "rnn_tanh": (torch.nn.RNN, reference.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, reference.RNN, {"nonlinearity": "relu"}),
    "lstm": (torch.nn.LSTM, reference.LSTM, {}),
    "lstm_proj": (torch.nn.LSTM, reference.LSTM, {"proj_size": P}),
    "gru": (torch.nn.GRU, reference.GRU, {}),
}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def _as_tuple(h):
    return tuple(h) if isinstance(h, (tuple, list)) else (h,)


def _state_sizes(mode: str) -> tuple[int, ...]:
    if mode.startswith("lstm"):
        return (P if mode == "lstm_proj" else H, H)
    return (H,)


def _torch_run(module, x, h0, lengths, d_out, d_hn):
    """Forward + backward of ``sum(out * d_out) + sum(h_n * d_hn)`` in torch; numpy results."""
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = None if h0 is None else tuple(torch.tensor(h, requires_grad=True) for h in h0)
    hx = None if h0_t is None else (h0_t if len(h0_t) == 2 else h0_t[0])
    if lengths is None:
        out, h_n = module(x_t, hx)
    else:
        packed = pack_padded_sequence(x_t, torch.tensor(lengths), enforce_sorted=False)
        out, h_n = module(packed, hx)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
    h_n = _as_tuple(h_n)
    loss = (out * torch.tensor(d_out)).sum()
    for h, d in zip(h_n, d_hn, strict=True):
        if d is not None:
            loss = loss + (h * torch.tensor(d)).sum()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    grads["input"] = x_t.grad.numpy()
    if h0_t is not None:
        for key, h in zip(("h0", "c0")[: len(h0_t)], h0_t, strict=True):
            grads[key] = h.grad.numpy()
    return out.detach().numpy(), tuple(h.detach().numpy() for h in h_n), grads


def _make_pair(mode, num_layers, bidirectional, bias=True, seed=0):
    torch_cls, ref_cls, kwargs = MODES[mode]
    torch.manual_seed(seed)
    module = torch_cls(I, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
                       **kwargs).double()
    ref = ref_cls(I, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
                  seed=seed + 1, **kwargs)
    ref.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
    return module, ref


def _check_against_torch(mode, num_layers, bidirectional, use_lengths, use_h0, bias=True,
                         d_hn_none=()):
    module, ref = _make_pair(mode, num_layers, bidirectional, bias)
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(num_layers * 10 + bidirectional)
    x = rng.normal(size=(T, B, I))
    sizes = _state_sizes(mode)
    h0 = tuple(rng.normal(size=(D * num_layers, B, s)) for s in sizes) if use_h0 else None
    lengths = LENGTHS if use_lengths else None
    d_out = rng.normal(size=(T, B, D * sizes[0]))
    d_hn = tuple(None if j in d_hn_none else rng.normal(size=(D * num_layers, B, s))
                 for j, s in enumerate(sizes))

    out_t, hn_t, grads_t = _torch_run(module, x, h0, lengths, d_out, d_hn)
    ref_h0 = None if h0 is None else (h0 if len(h0) == 2 else h0[0])
    out_r, hn_r = ref.forward(x, ref_h0, lengths=lengths)
    grads_r = ref.backward(d_out, d_hn if len(d_hn) == 2 else d_hn[0])

    assert rel_err(out_r, out_t) < TOL
    for a, b in zip(_as_tuple(hn_r), hn_t, strict=True):
        assert rel_err(a, b) < TOL
    expected_keys = set(grads_t) | {"h0"} | ({"c0"} if len(sizes) == 2 else set())
    assert set(grads_r) == expected_keys
    for name, g in grads_t.items():
        assert rel_err(grads_r[name], g) < TOL, name
    if use_lengths:  # padded steps: zero output, zero input gradient
        pad = np.arange(T)[:, None] >= np.array(LENGTHS)[None, :]  # (T, B)
        assert np.all(out_r[pad] == 0) and np.all(grads_r["input"][pad] == 0)


@pytest.mark.parametrize("use_h0", [False, True], ids=["no_h0", "h0"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("mode", list(MODES))
def test_matches_torch(mode, num_layers, bidirectional, use_lengths, use_h0):
    _check_against_torch(mode, num_layers, bidirectional, use_lengths, use_h0)


@pytest.mark.parametrize("mode", list(MODES))
def test_matches_torch_without_bias(mode):
    _check_against_torch(mode, 2, True, use_lengths=True, use_h0=True, bias=False)


@pytest.mark.parametrize("d_hn_none", [(0,), (1,), (0, 1)])
def test_lstm_partial_d_h_n(d_hn_none):
    _check_against_torch("lstm_proj", 2, True, use_lengths=True, use_h0=True, d_hn_none=d_hn_none)


def test_rnn_d_h_n_none():
    _check_against_torch("gru", 2, True, use_lengths=True, use_h0=False, d_hn_none=(0,))


@pytest.mark.parametrize("mode", list(MODES))
def test_state_dict_names_and_shapes_match_torch(mode):
    module, ref = _make_pair(mode, 2, True)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert {k: v.shape for k, v in ref.state_dict().items()} == expected
    assert list(ref.state_dict()) == list(expected)  # torch's order
    assert list(reference.GRU(I, H, 2, bias=False).state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]


def test_init_like_torch_and_seeded():
    lstm = reference.LSTM(5, 64, num_layers=2, seed=3)
    k = 1 / np.sqrt(64)
    values = np.concatenate([v.ravel() for v in lstm.params.values()])
    assert np.all(np.abs(values) <= k) and np.abs(values).max() > 0.99 * k
    assert abs(values.mean()) < 0.01 and abs(values.var() - k**2 / 3) < 0.05 * k**2 / 3
    again = reference.LSTM(5, 64, num_layers=2, seed=np.random.default_rng(3))
    other = reference.LSTM(5, 64, num_layers=2, seed=4)
    for name, value in lstm.params.items():
        np.testing.assert_array_equal(again.params[name], value)
        assert not np.array_equal(other.params[name], value)


def test_batch_with_lengths_equals_each_sequence_alone():
    gru = reference.GRU(I, H, num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(1).normal(size=(T, B, I))
    out, h_n = gru.forward(x, lengths=LENGTHS)
    for b, n in enumerate(LENGTHS):
        out_b, h_n_b = gru.forward(x[:n, b:b + 1])
        np.testing.assert_allclose(out[:n, b:b + 1], out_b, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(h_n[:, b:b + 1], h_n_b, rtol=1e-13, atol=1e-14)


# -- Cho et al. GRU (reset_after=False): a hand-written torch autograd loop ----------------------

def _torch_gru_loop(p, x, h0, lengths, num_layers, D, reset_after):
    """A plain torch GRU over time, layers and directions; masking as torch's packed sequences."""
    steps = x.shape[0]
    keep = torch.arange(steps)[:, None] < torch.tensor(lengths)[None, :]  # (T, B)
    keep = keep.unsqueeze(-1)  # (T, B) -> (T, B, 1)
    inp, h_n = x, []
    for layer in range(num_layers):
        outs = []
        for direction in range(D):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            W_ir, W_iz, W_in = p[f"weight_ih{sfx}"].chunk(3, 0)
            W_hr, W_hz, W_hn = p[f"weight_hh{sfx}"].chunk(3, 0)
            b_ir, b_iz, b_in = p[f"bias_ih{sfx}"].chunk(3)
            b_hr, b_hz, b_hn = p[f"bias_hh{sfx}"].chunk(3)
            h, ys = h0[layer * D + direction], [None] * steps
            for t in (reversed(range(steps)) if direction else range(steps)):
                r = torch.sigmoid(inp[t] @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
                z = torch.sigmoid(inp[t] @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
                if reset_after:
                    n = torch.tanh(inp[t] @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
                else:
                    n = torch.tanh(inp[t] @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
                h_new = (1 - z) * n + z * h
                ys[t] = torch.where(keep[t], h_new, torch.zeros_like(h_new))
                h = torch.where(keep[t], h_new, h)
            h_n.append(h)
            outs.append(torch.stack(ys))
        inp = torch.cat(outs, dim=-1)  # D x (T, B, H) -> (T, B, D*H)
    return inp, torch.stack(h_n)


def _gru_loop_case(num_layers, bidirectional, use_lengths, use_h0, reset_after):
    D = 2 if bidirectional else 1
    ref = reference.GRU(I, H, num_layers, bidirectional, reset_after=reset_after, seed=5)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in ref.state_dict().items()}
    rng = np.random.default_rng(7)
    x = rng.normal(size=(T, B, I))
    h0 = rng.normal(size=(D * num_layers, B, H)) if use_h0 else np.zeros((D * num_layers, B, H))
    lengths = LENGTHS if use_lengths else [T] * B
    d_out, d_hn = rng.normal(size=(T, B, D * H)), rng.normal(size=(D * num_layers, B, H))
    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out_t, hn_t = _torch_gru_loop(p, x_t, h0_t, lengths, num_layers, D, reset_after)
    ((out_t * torch.tensor(d_out)).sum() + (hn_t * torch.tensor(d_hn)).sum()).backward()
    grads_t = {k: v.grad.numpy() for k, v in p.items()} | {"input": x_t.grad.numpy(),
                                                            "h0": h0_t.grad.numpy()}
    out_r, hn_r = ref.forward(x, h0 if use_h0 else None, lengths if use_lengths else None)
    grads_r = ref.backward(d_out, d_hn)
    return ref, (x, h0, lengths, d_out, d_hn), (out_t, hn_t, grads_t), (out_r, hn_r, grads_r)


LOOP_CASES = list(itertools.product([1, 2], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("num_layers,bidirectional,use_lengths,use_h0", LOOP_CASES)
def test_torch_gru_loop_matches_torch_nn(num_layers, bidirectional, use_lengths, use_h0):
    """Validates the hand-written loop (reset_after=True) against torch.nn.GRU itself."""
    ref, (x, h0, lengths, d_out, d_hn), (out_t, hn_t, grads_t), _ = _gru_loop_case(
        num_layers, bidirectional, use_lengths, use_h0, reset_after=True)
    module = torch.nn.GRU(I, H, num_layers, bidirectional=bidirectional).double()
    module.load_state_dict({k: torch.tensor(v) for k, v in ref.state_dict().items()})
    out_n, hn_n, grads_n = _torch_run(module, x, (h0,), lengths, d_out, (d_hn,))
    assert rel_err(out_t.detach().numpy(), out_n) < TOL
    assert rel_err(hn_t.detach().numpy(), hn_n[0]) < TOL
    for name, g in grads_n.items():
        assert rel_err(grads_t[name], g) < TOL, name


@pytest.mark.parametrize("num_layers,bidirectional,use_lengths,use_h0", LOOP_CASES)
def test_gru_reset_before_matches_torch_loop(num_layers, bidirectional, use_lengths, use_h0):
    _, _, (out_t, hn_t, grads_t), (out_r, hn_r, grads_r) = _gru_loop_case(
        num_layers, bidirectional, use_lengths, use_h0, reset_after=False)
    assert rel_err(out_r, out_t.detach().numpy()) < TOL
    assert rel_err(hn_r, hn_t.detach().numpy()) < TOL
    for name, g in grads_t.items():
        assert rel_err(grads_r[name], g) < TOL, name


def test_gru_reset_before_differs_from_reset_after():
    """Guards against the option being ignored: same weights, different function."""
    a = reference.GRU(I, H, seed=0)
    b = reference.GRU(I, H, reset_after=False, seed=0)
    x = np.random.default_rng(0).normal(size=(T, B, I))
    assert np.max(np.abs(a.forward(x)[0] - b.forward(x)[0])) > 1e-3


# -- gradient clipping -------------------------------------------------------------------------

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf"), "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    lstm = reference.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, seed=0)
    rng = np.random.default_rng(0)
    out, _ = lstm.forward(rng.normal(size=(T, B, I)), lengths=LENGTHS)
    grads = {k: v for k, v in lstm.backward(rng.normal(size=out.shape)).items() if k in lstm.params}
    before = {k: v.copy() for k, v in grads.items()}
    clipped, total = reference.clip_grad_norm(grads, max_norm, norm_type)
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads.values()]
    for prm, g in zip(params, grads.values(), strict=True):
        prm.grad = torch.tensor(g)
    total_t = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    assert abs(total - total_t.item()) <= 1e-12 * total_t.item()
    assert (total > max_norm) == (max_norm == 0.5)  # clipping happens in one case only
    for prm, (name, g) in zip(params, clipped.items(), strict=True):
        assert rel_err(g, prm.grad.numpy()) < 1e-12, name
        np.testing.assert_array_equal(grads[name], before[name])  # input left untouched


def test_clip_grad_norm_values_and_errors():
    clipped, total = reference.clip_grad_norm({"a": [3.0], "b": [[4.0]]}, max_norm=1.0)
    assert total == 5.0
    np.testing.assert_allclose(clipped["a"], [3.0 / (5.0 + 1e-6)], rtol=1e-15)
    np.testing.assert_allclose(clipped["b"], [[4.0 / (5.0 + 1e-6)]], rtol=1e-15)
    assert reference.clip_grad_norm({}, 1.0) == ({}, 0.0)
    with pytest.raises(ValueError, match="norm_type"):
        reference.clip_grad_norm({"a": [1.0]}, 1.0, norm_type=0)
    with pytest.raises(ValueError, match="total"):
        reference.clip_grad_norm({"a": [np.inf]}, 1.0, error_if_nonfinite=True)


# -- errors ------------------------------------------------------------------------------------

def test_input_errors():
    lstm = reference.LSTM(I, H, num_layers=2, bidirectional=True, seed=0)
    x = np.zeros((T, B, I))
    with pytest.raises(ValueError, match=r"x: expected shape \(T, B, I=3\), got \(6, 4\)"):
        lstm.forward(x[:, :, 0])
    with pytest.raises(ValueError, match=r"x: expected shape \(T, B, I=3\), got \(6, 4, 2\)"):
        lstm.forward(x[:, :, :2])
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, T=6\], got \[6, 0,"):
        lstm.forward(x, lengths=[6, 0, 5, 1])
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, T=6\], got \[7, 2,"):
        lstm.forward(x, lengths=[7, 2, 5, 1])
    with pytest.raises(ValueError, match=r"lengths: expected shape \(4,\)"):
        lstm.forward(x, lengths=[6, 2])
    with pytest.raises(ValueError, match="lengths: expected integers"):
        lstm.forward(x, lengths=[6.0, 2.0, 5.0, 1.0])
    with pytest.raises(ValueError, match="h0: expected a pair"):
        lstm.forward(x, np.zeros((4, B, H)))
    with pytest.raises(ValueError, match=r"h0\[1\]: expected shape \(4, 4, 4\).*got \(2, 4, 4\)"):
        lstm.forward(x, (np.zeros((4, B, H)), np.zeros((2, B, H))))
    with pytest.raises(ValueError, match=r"h0: expected shape \(1, 4, 4\).*got \(1, 3, 4\)"):
        reference.RNN(I, H).forward(x, np.zeros((1, 3, H)))


def test_backward_errors():
    gru = reference.GRU(I, H, seed=0)
    with pytest.raises(ValueError, match="backward: call forward"):
        gru.backward(np.zeros((T, B, H)))
    gru.forward(np.zeros((T, B, I)))
    with pytest.raises(ValueError, match=r"d_output: expected shape \(6, 4, 4\)"):
        gru.backward(np.zeros((T, B, 2 * H)))
    with pytest.raises(ValueError, match=r"d_h_n: expected shape \(1, 4, 4\)"):
        gru.backward(np.zeros((T, B, H)), np.zeros((2, B, H)))


def test_constructor_and_state_dict_errors():
    with pytest.raises(ValueError, match="nonlinearity: expected 'tanh' or 'relu', got 'sigmoid'"):
        reference.RNN(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size: expected 0 or < hidden_size=4, got 4"):
        reference.LSTM(I, H, proj_size=H)
    with pytest.raises(ValueError, match="hidden_size: expected an integer >= 1, got 0"):
        reference.GRU(I, 0)
    rnn = reference.RNN(I, H, num_layers=2)
    sd = rnn.state_dict()
    with pytest.raises(ValueError, match="unexpected key 'weight_ih_l2'"):
        rnn.load_state_dict(sd | {"weight_ih_l2": np.zeros((H, H))})
    with pytest.raises(ValueError, match=r"missing key 'bias_hh_l1' \(expected shape \(4,\)\)"):
        rnn.load_state_dict({k: v for k, v in sd.items() if k != "bias_hh_l1"})
    with pytest.raises(ValueError, match=r"'weight_ih_l1' has shape \(4, 3\), expected \(4, 4\)"):
        rnn.load_state_dict(sd | {"weight_ih_l1": np.zeros((H, I))})


def test_load_state_dict_accepts_torch_tensors_and_copies():
    module = torch.nn.GRU(I, H).double()
    gru = reference.GRU(I, H)
    gru.load_state_dict(dict(module.named_parameters()))  # requires_grad tensors
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(gru.params[name], value.numpy())
    gru.params["weight_ih_l0"][0, 0] += 1.0
    assert gru.params["weight_ih_l0"][0, 0] != module.weight_ih_l0[0, 0].item()


# -- packaging -------------------------------------------------------------------------------

def _imports_torch(module: str) -> bool:
    """Whether ``import <module>`` in a fresh interpreter (on this checkout's src) imports torch."""
    src = Path(__file__).resolve().parents[2] / "src"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip() == "True"


def test_import_does_not_import_torch():
    if _imports_torch("rnnkit.reference"):
        culprit = "rnnkit/__init__.py" if _imports_torch("rnnkit") else "rnnkit.reference itself"
        pytest.fail(f"import rnnkit.reference imported torch (via {culprit})")


def test_docstring_examples():
    for module in (reference, reference_clip):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
