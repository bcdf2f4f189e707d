"""rnnkit.RNN/LSTM/GRU against torch.nn over the whole configuration grid."""
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.testing import as_tuple

MODES = {
    "rnn_tanh": (rnnkit.RNN, torch.nn.RNN, dict(nonlinearity="tanh")),
    "rnn_relu": (rnnkit.RNN, torch.nn.RNN, dict(nonlinearity="relu")),
    "lstm": (rnnkit.LSTM, torch.nn.LSTM, {}),
    "lstm_proj": (rnnkit.LSTM, torch.nn.LSTM, dict(proj_size=3)),
    "gru": (rnnkit.GRU, torch.nn.GRU, {}),
}
T, B, I, H = 5, 3, 4, 5
LENGTHS = torch.tensor([5, 2, 4])


def _run(module, x, hx, form, batch_first):
    """Forward in the given input form; returns padded time-major output and h_n."""
    xin = x.transpose(0, 1) if batch_first else x
    if form == "full":
        out, h_n = module(xin, hx)
    elif form == "packed":
        p = pack_padded_sequence(xin, LENGTHS, batch_first=batch_first, enforce_sorted=False)
        out, h_n = module(p, hx)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:  # padded + lengths (rnnkit only)
        out, h_n = module(xin, hx, lengths=LENGTHS)
    return (out.transpose(0, 1) if batch_first else out), as_tuple(h_n)


def _grads(tensors):
    return [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("mode,num_layers,bidirectional",
                         list(itertools.product(MODES, [1, 2, 3], [False, True])))
def test_matches_torch_nn(mode, num_layers, bidirectional):
    ours_cls, torch_cls, kw = MODES[mode]
    torch.manual_seed(num_layers * 10 + bidirectional)
    D = 2 if bidirectional else 1
    ref = torch_cls(I, H, num_layers, bidirectional=bidirectional, **kw)
    sizes = [kw.get("proj_size") or H] + ([H] if "lstm" in mode else [])
    for batch_first, form, with_hx, backend in itertools.product(
            [False, True], ["full", "padded", "packed"], [False, True], ["auto", "loop"]):
        ours = ours_cls(I, H, num_layers, bidirectional=bidirectional, batch_first=batch_first,
                        backend=backend, **kw)
        ours.load_state_dict(ref.state_dict())
        ref.batch_first = batch_first
        x = torch.randn(T, B, I)
        hx = [torch.randn(D * num_layers, B, s) for s in sizes] if with_hx else None
        case = f"{mode} L={num_layers} D={D} bf={batch_first} {form} hx={with_hx} {backend}"

        xs, hs = [x.clone().requires_grad_() for _ in range(2)], []
        for _ in range(2):
            hs.append([h.clone().requires_grad_() for h in hx] if hx else [])
        pack = lambda h: None if not h else (tuple(h) if len(h) == 2 else h[0])  # noqa: E731
        o_ref, h_ref = _run(ref, xs[0], pack(hs[0]), "packed" if form == "padded" else form,
                            batch_first)
        o_our, h_our = _run(ours, xs[1], pack(hs[1]), form, batch_first)
        torch.testing.assert_close(o_our, o_ref, atol=1e-5, rtol=0, msg=lambda m: f"{case}: output {m}")
        for a, b in zip(h_our, h_ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=lambda m: f"{case}: h_n {m}")

        g_out = torch.randn_like(o_ref)
        g_h = [torch.randn_like(h) for h in h_ref]
        for o, hn, mod in ((o_ref, h_ref, ref), (o_our, h_our, ours)):
            mod.zero_grad()
            loss = (o * g_out).sum() + sum((h * g).sum() for h, g in zip(hn, g_h))
            loss.backward()
        for (name, p_ref), p_our in zip(ref.named_parameters(), ours.parameters()):
            torch.testing.assert_close(p_our.grad, p_ref.grad, atol=1e-4, rtol=0,
                                       msg=lambda m: f"{case}: grad {name} {m}")
        torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-4, rtol=0,
                                   msg=lambda m: f"{case}: grad input {m}")
        for a, b in zip(hs[1], hs[0]):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=0,
                                       msg=lambda m: f"{case}: grad hx {m}")


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_matches_torch(mode):
    ours_cls, torch_cls, kw = MODES[mode]
    ref = torch_cls(I, H, 2, bidirectional=True, **kw)
    for backend in ("auto", "loop"):
        ours = ours_cls(I, H, 2, bidirectional=True, backend=backend, **kw)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, I)
        sizes = [kw.get("proj_size") or H] + ([H] if "lstm" in mode else [])
        hx = [torch.randn(4, s) for s in sizes]
        hx = tuple(hx) if len(hx) == 2 else hx[0]
        (o1, h1), (o2, h2) = ours(x, hx), ref(x, hx)
        assert o1.shape == o2.shape == (T, 2 * (kw.get("proj_size") or H))
        torch.testing.assert_close(o1, o2, atol=1e-5, rtol=0)
        for a, b in zip(as_tuple(h1), as_tuple(h2)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_round_trips_both_ways(mode):
    ours_cls, torch_cls, kw = MODES[mode]
    ours = ours_cls(I, H, 2, bidirectional=True, **kw)
    ref = torch_cls(I, H, 2, bidirectional=True, **kw)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ours.state_dict().items():
        assert v.shape == ref.state_dict()[k].shape, k
    ref.load_state_dict(ours.state_dict())
    back = ours_cls(I, H, 2, bidirectional=True, **kw)
    back.load_state_dict(ref.state_dict())
    for k, v in back.state_dict().items():
        assert torch.equal(v, ours.state_dict()[k]), k
    x = torch.randn(T, B, I)
    torch.testing.assert_close(back(x)[0], ref(x)[0], atol=1e-6, rtol=0)


def test_positional_arguments_follow_torch_order():
    rnn = rnnkit.RNN(4, 5, 2, "relu", False, True, 0.0, True)
    assert (rnn.nonlinearity, rnn.bias, rnn.batch_first, rnn.bidirectional) == ("relu", False, True, True)
    assert list(rnn.state_dict()) == list(torch.nn.RNN(4, 5, 2, "relu", False, True, 0.0, True).state_dict())
    lstm = rnnkit.LSTM(4, 5, 1, True, False, 0.0, False, 2)
    assert lstm.proj_size == 2 and lstm.weight_hr_l0.shape == (2, 5)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    for backend in ("auto", "loop"):
        lstm = rnnkit.LSTM(I, H, 3, dropout=0.5, backend=backend)
        x = torch.randn(T, B, I)
        lstm.train()
        a, b = lstm(x)[0], lstm(x)[0]
        assert not torch.allclose(a, b), backend  # different masks
        lstm.eval()
        torch.testing.assert_close(lstm(x)[0], lstm(x)[0], atol=0, rtol=0)
        no_drop = rnnkit.LSTM(I, H, 3, backend=backend)
        no_drop.load_state_dict(lstm.state_dict())
        torch.testing.assert_close(lstm(x)[0], no_drop(x)[0], atol=1e-6, rtol=0)
