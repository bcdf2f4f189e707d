"""The generic layer: errors, initialisation, residual, variable lengths, and the NumPy oracle."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit import reference
from rnnkit.cells import LSTMCell
from rnnkit.testing import as_tuple, check_layer

# ----------------------------------------------------------------- errors


@pytest.fixture
def lstm():
    return rnnkit.LSTM(4, 5, 2, bidirectional=True)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(input=torch.randn(3)), r"input: expected a 3-D tensor \(T, B, I\).*got shape \(3,\)"),
    (dict(input=torch.randn(2, 3, 4, 5)), r"input: expected a 3-D.*got shape \(2, 3, 4, 5\)"),
    (dict(input=torch.randn(6, 3, 7)), r"input: expected 4 features.*got shape \(6, 3, 7\)"),
    (dict(input=torch.randn(6, 3, 4).double()), r"input: RNN input dtype \(torch.float64\) does not match weight dtype \(torch.float32\)"),
    (dict(input=torch.randn(6, 3, 4), lengths=[6, 0, 2]), r"lengths: every length must be in \[1, T=6\], got lengths\[1\] = 0"),
    (dict(input=torch.randn(6, 3, 4), lengths=[6, 7, 2]), r"lengths\[1\] = 7"),
    (dict(input=torch.randn(6, 3, 4), lengths=[6, 2]), r"lengths: expected 3 integer lengths"),
    (dict(input=torch.randn(6, 3, 4), lengths=torch.tensor([6.0, 2.0, 1.0])), r"lengths: expected 3 integer lengths.*float32"),
    (dict(input=torch.randn(6, 3, 4), hx=torch.zeros(4, 3, 5)), r"hx: expected a tuple of 2 Tensors"),
    (dict(input=torch.randn(6, 3, 4), hx=(torch.zeros(2, 3, 5), torch.zeros(4, 3, 5))), r"hx\[0\]: expected shape \(4, 3, 5\), got \(2, 3, 5\)"),
    (dict(input=torch.randn(6, 3, 4), hx=(torch.zeros(4, 3, 5), torch.zeros(4, 3, 5).double())), r"hx\[1\]: dtype torch.float64"),
    (dict(input=torch.randn(6, 4), hx=(torch.zeros(4, 1, 5), torch.zeros(4, 1, 5))), r"hx\[0\]: expected shape \(4, 5\)"),
    (dict(input=torch.randn(6, 3, 4, device="meta")), r"input: on device meta but the layer's parameters are on cpu"),
])
def test_bad_input_names_the_argument(lstm, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        lstm(**kwargs)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="backend: expected 'auto', 'torch', 'triton', 'fused' or 'loop', got 'cuda'"):
        rnnkit.LSTM(4, 5, backend="cuda")
    with pytest.raises(ValueError, match="num_layers must be greater than zero, got 0"):
        rnnkit.GRU(4, 5, 0)
    with pytest.raises(ValueError, match=r"dropout should be a number in range \[0, 1\].*got 1.5"):
        rnnkit.GRU(4, 5, 2, dropout=1.5)
    with pytest.raises(ValueError, match=r"proj_size has to be smaller than hidden_size \(5\), got 5"):
        rnnkit.LSTM(4, 5, proj_size=5)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'."):
        rnnkit.RNN(4, 5, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="forget_bias: GRUCell has no forget gate"):
        rnnkit.GRU(4, 5, forget_bias=1.0)
    with pytest.raises(ValueError, match="init_hh: expected one of"):
        rnnkit.LSTM(4, 5, init_hh="glorot")
    with pytest.raises(ValueError, match="cell: unknown cell 'lstn'"):
        rnnkit.build_layer("lstn", 4, 5)
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        rnnkit.LSTM(4, 5, dropout=0.2)


def test_forced_torch_backend_refuses_what_it_cannot_run():
    x = torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match="backend='torch' cannot run this layer: torch has no fused kernel for GRUCell.*reset_after=False"):
        rnnkit.GRU(4, 5, reset_after=False, backend="torch")(x)
    with pytest.raises(ValueError, match="residual connections"):
        rnnkit.LSTM(4, 5, 2, residual=True, backend="torch")(x)
    with pytest.raises(ValueError, match="does not support torch.bfloat16"):
        rnnkit.LSTM(4, 5, backend="torch", dtype=torch.bfloat16)(x.bfloat16())
    # auto falls back quietly and still computes
    out, _ = rnnkit.LSTM(4, 5, dtype=torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == (3, 2, 5)


# --------------------------------------------------------- initialisation


def test_orthogonal_and_identity_recurrent_init_per_gate():
    lstm = rnnkit.LSTM(6, 8, 2, init_hh="orthogonal", init_ih="xavier_uniform")
    for l in range(2):
        for block in lstm.get_parameter(f"weight_hh_l{l}").detach().chunk(4):
            torch.testing.assert_close(block @ block.T, torch.eye(8), atol=1e-5, rtol=0)
        w = lstm.get_parameter(f"weight_ih_l{l}").detach()
        bound = (6.0 / (w.shape[1] + 8)) ** 0.5  # xavier on each (H, I) block
        assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound
    irnn = rnnkit.RNN(3, 7, nonlinearity="relu", init_hh="identity")
    assert torch.equal(irnn.weight_hh_l0.detach(), torch.eye(7))


def test_forget_bias_sets_the_sum_of_both_biases():
    lstm = rnnkit.LSTM(3, 4, 2, bidirectional=True, forget_bias=1.0)
    for name in ("l0", "l1", "l0_reverse", "l1_reverse"):
        b = lstm.get_parameter(f"bias_ih_{name}") + lstm.get_parameter(f"bias_hh_{name}")
        torch.testing.assert_close(b[4:8], torch.ones(4))
        assert not torch.allclose(b[:4], torch.ones(4))  # other gates keep torch's init


def test_default_init_matches_torch_bounds():
    torch.manual_seed(0)
    gru = rnnkit.GRU(10, 16)
    for p in gru.parameters():
        assert p.abs().max() <= 0.25 and p.abs().max() > 0.2  # U(-1/sqrt(16), 1/sqrt(16))


# ---------------------------------------------------------- layer features


def test_residual_equals_manual_composition():
    torch.manual_seed(0)
    res = rnnkit.GRU(3, 4, 2, residual=True).double()
    l0, l1 = rnnkit.GRU(3, 4).double(), rnnkit.GRU(4, 4).double()
    sd = res.state_dict()
    l0.load_state_dict({k.replace("_l0", "_l0"): v for k, v in sd.items() if k.endswith("_l0") and "res" not in k})
    l1.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if k.endswith("_l1")})
    assert set(sd) - set(torch.nn.GRU(3, 4, 2).state_dict()) == {"weight_res_l0"}  # projection only where sizes differ
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    y0 = l0(x)[0] + x @ res.weight_res_l0.T
    y1 = l1(y0)[0] + y0
    torch.testing.assert_close(res(x)[0], y1, atol=1e-12, rtol=0)


def test_presets_pass_the_shared_conformance_checks():
    for make, out, states in [
        (lambda **k: rnnkit.LSTM(3, 4, proj_size=2, **k), 2, (2, 4)),
        (lambda **k: rnnkit.GRU(3, 4, reset_after=False, **k), 4, (4,)),
        (lambda **k: rnnkit.RNN(3, 4, nonlinearity="relu", **k), 4, (4,)),
    ]:
        check_layer(make, 3, out, states)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["lstm", "gru", "rnn_tanh"]),
       backend=st.sampled_from(["auto", "loop"]), bidirectional=st.booleans(),
       num_layers=st.integers(1, 2), batch_first=st.booleans())
def test_each_sequence_in_a_padded_batch_equals_it_alone(data, mode, backend, bidirectional,
                                                         num_layers, batch_first):
    T = data.draw(st.integers(1, 7), label="T")
    lengths = data.draw(st.lists(st.integers(1, T), min_size=1, max_size=4), label="lengths")
    torch.manual_seed(len(lengths) * 7 + T)
    layer = rnnkit.build_layer(mode, 3, 4, num_layers=num_layers, bidirectional=bidirectional,
                               batch_first=batch_first, backend=backend).double()
    B = len(lengths)
    x = torch.randn(B, T, 3, dtype=torch.float64) if batch_first else torch.randn(T, B, 3, dtype=torch.float64)
    out, h_n = layer(x, lengths=torch.tensor(lengths))
    for b, n in enumerate(lengths):
        xb = x[b:b + 1, :n] if batch_first else x[:n, b:b + 1]
        ob, hb = layer(xb)
        got = out[b, :n] if batch_first else out[:n, b]
        torch.testing.assert_close(got, ob[0] if batch_first else ob[:, 0], atol=1e-10, rtol=0)
        pad = out[b, n:] if batch_first else out[n:, b]
        assert torch.count_nonzero(pad) == 0
        for h, h_alone in zip(as_tuple(h_n), as_tuple(hb)):
            torch.testing.assert_close(h[:, b], h_alone[:, 0], atol=1e-10, rtol=0)


# ------------------------------------------------------ the NumPy oracle


@pytest.mark.parametrize("mode,kw", [("gru", dict(reset_after=False)), ("gru", {}),
                                     ("lstm", dict(proj_size=2)), ("rnn", dict(nonlinearity="relu"))])
@pytest.mark.parametrize("backend", ["auto", "loop"])
def test_float64_outputs_and_gradients_equal_the_numpy_reference(mode, kw, backend):
    ours_cls = {"gru": rnnkit.GRU, "lstm": rnnkit.LSTM, "rnn": rnnkit.RNN}[mode]
    ref_cls = {"gru": reference.GRU, "lstm": reference.LSTM, "rnn": reference.RNN}[mode]
    T, B, I, H, L = 6, 3, 3, 4, 2
    ours = ours_cls(I, H, L, bidirectional=True, backend=backend, **kw).double()
    ref = ref_cls(I, H, L, bidirectional=True, **kw)
    ref.load_state_dict({k: v.detach().numpy() for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    lengths = np.array([6, 2, 4])
    x = rng.standard_normal((T, B, I))
    sizes = [kw.get("proj_size") or H] + ([H] if mode == "lstm" else [])
    h0 = [rng.standard_normal((2 * L, B, s)) for s in sizes]
    out_ref, hn_ref = ref.forward(x, tuple(h0) if mode == "lstm" else h0[0], lengths=lengths)

    xt = torch.tensor(x, requires_grad=True)
    h0t = [torch.tensor(h, requires_grad=True) for h in h0]
    out, h_n = ours(xt, tuple(h0t) if mode == "lstm" else h0t[0], lengths=torch.tensor(lengths))
    np.testing.assert_allclose(out.detach().numpy(), out_ref, rtol=1e-9, atol=1e-12)
    for a, b in zip(as_tuple(h_n), as_tuple(hn_ref)):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-9, atol=1e-12)

    d_out = rng.standard_normal(out_ref.shape)
    d_hn = [rng.standard_normal(h.shape) for h in as_tuple(hn_ref)]
    grads = ref.backward(d_out, tuple(d_hn) if mode == "lstm" else d_hn[0])
    loss = (out * torch.tensor(d_out)).sum() + sum((h * torch.tensor(g)).sum()
                                                  for h, g in zip(as_tuple(h_n), d_hn))
    loss.backward()
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[name], rtol=1e-8, atol=1e-11, err_msg=name)
    np.testing.assert_allclose(xt.grad.numpy(), grads["input"], rtol=1e-8, atol=1e-11)
    for name, h in zip(["h0", "c0"], h0t):
        np.testing.assert_allclose(h.grad.numpy(), grads[name], rtol=1e-8, atol=1e-11, err_msg=name)


def test_custom_cell_class_through_recurrent():
    layer = rnnkit.Recurrent(LSTMCell, 3, 4, 2, bidirectional=True, proj_size=2)
    assert list(layer.state_dict()) == list(torch.nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2).state_dict())
