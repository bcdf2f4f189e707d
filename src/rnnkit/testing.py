"""Conformance checks any recurrent layer must pass, for short, strict tests.

``check_layer(make)`` builds layers with ``make(**kwargs)`` (kwargs among
``num_layers``, ``bidirectional``, ``batch_first``) and checks, in float64:

- length invariance: in a padded batch, each sequence's outputs and final
  state equal what that sequence gives alone; padded steps output zeros;
- initial state: the same with a given ``hx``, which must change the result;
- bidirectional correctness: the reverse direction equals a forward-only
  layer (same weights) run on each sequence reversed within its length;
- packed input equals padded input with ``lengths``;
- ``batch_first`` equals time-major;
- stacking: output and state shapes for 1-3 layers, with and without residual.

``check_gradients(make, input_size)`` runs ``torch.autograd.gradcheck`` on a tiny
float64 layer (2 layers, bidirectional, lengths, ``hx``) with respect to the
input, ``hx`` and every parameter.

``check_block(make, d_model)`` checks a residual block of the kind
:class:`rnnkit.models.blocks.BlockStack` stacks (Griffin's, Mamba's, xLSTM's, the deep
LRU's, your own): causality, padded batches against each sequence alone, ``batch_first``,
streaming and running in pieces.
"""
from __future__ import annotations

import os

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["check_layer", "check_square_layer", "check_gradients", "check_block", "as_tuple",
           "fuzz_examples", "off_initial_values"]


def fuzz_examples(n: int) -> int:
    """A property test's ``max_examples``: ``n`` in CI, ``20 n`` with HYPOTHESIS_PROFILE=long."""
    return n * 20 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else n


def off_initial_values(module: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """``module`` with every parameter moved by ``scale`` times a standard normal draw (from
    torch's RNG), in place: a test then meets no parameter at a special initial value (a norm's
    1, a zero gate weight) that could hide a wrong formula."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def as_tuple(h):
    return h if isinstance(h, tuple) else (h,)


def _close(a, b, what, atol=1e-10):
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shape {tuple(a.shape)} != {tuple(b.shape)}")
    err = (a - b).abs().max().item() if a.numel() else 0.0
    if not err <= atol:
        raise AssertionError(f"{what}: max abs difference {err:.3g} > {atol:g}")


def _seq_state(h_n, b):
    return tuple(h[:, b] for h in as_tuple(h_n))


def check_length_invariance(make, I, T=6, lengths=(6, 3, 1, 5), atol=1e-10, **kw):
    layer = make(**kw).double().eval()
    B = len(lengths)
    x = torch.randn(T, B, I, dtype=torch.float64)
    L = torch.tensor(lengths)
    out, h_n = layer(x, lengths=L)
    for b, n in enumerate(lengths):
        o_b, h_b = layer(x[:n, b:b + 1])
        _close(
            out[:n, b], o_b[:, 0], f"output of sequence {b} (length {n}) in a batch vs alone", atol
        )
        _close(out[n:, b], torch.zeros_like(out[n:, b]), f"padded output of sequence {b}", 0)
        for i, (s, s_alone) in enumerate(zip(_seq_state(h_n, b), as_tuple(h_b))):
            _close(s, s_alone[:, 0], f"h_n[{i}] of sequence {b}", atol)


def check_initial_state(make, I, T=6, lengths=(6, 3, 1, 5), atol=1e-10, **kw):
    """Length invariance with a random ``hx``; ``hx`` must matter (not be dropped)."""
    layer = make(**kw).double().eval()
    B = len(lengths)
    x = torch.randn(T, B, I, dtype=torch.float64)
    L = torch.tensor(lengths)
    out0, h_n0 = layer(x, lengths=L)
    hx = tuple(torch.randn_like(h) for h in as_tuple(h_n0))  # each (D*L, B, S)
    out, h_n = layer(x, hx if len(hx) > 1 else hx[0], lengths=L)
    if (out - out0).abs().max() < 1e-6:
        raise AssertionError("the initial state hx does not change the output")
    for b, n in enumerate(lengths):
        hx_b = tuple(h[:, b:b + 1] for h in hx)
        o_b, h_b = layer(x[:n, b:b + 1], hx_b if len(hx_b) > 1 else hx_b[0])
        _close(out[:n, b], o_b[:, 0], f"output of sequence {b} with hx, in a batch vs alone", atol)
        for i, (s, s_alone) in enumerate(zip(_seq_state(h_n, b), as_tuple(h_b))):
            _close(s, s_alone[:, 0], f"h_n[{i}] of sequence {b} with hx", atol)


def check_bidirectional(make, I, T=6, lengths=(6, 3, 1, 5), atol=1e-10):
    """Layer 1 of a bidirectional layer: reverse half == forward layer on reversed input."""
    bi = make(num_layers=1, bidirectional=True).double().eval()
    uni = make(num_layers=1, bidirectional=False).double().eval()
    state = {k[: -len("_reverse")]: v for k, v in bi.state_dict().items() if k.endswith("_reverse")}
    uni.load_state_dict(state)
    B = len(lengths)
    x = torch.randn(T, B, I, dtype=torch.float64)
    out, h_n = bi(x, lengths=torch.tensor(lengths))
    H = out.shape[-1] // 2
    for b, n in enumerate(lengths):
        o_r, h_r = uni(x[:n, b:b + 1].flip(0))
        _close(out[:n, b, H:], o_r[:, 0].flip(0), f"reverse direction output of sequence {b}", atol)
        for i, (s, s_r) in enumerate(zip(as_tuple(h_n), as_tuple(h_r))):
            _close(s[1, b], s_r[0, 0], f"reverse h_n[{i}] of sequence {b}", atol)


def check_packed_and_batch_first(make, I, T=6, lengths=(6, 3, 1, 5), atol=1e-10, **kw):
    layer = make(**kw).double().eval()
    B = len(lengths)
    x = torch.randn(T, B, I, dtype=torch.float64)
    L = torch.tensor(lengths)
    out, h_n = layer(x, lengths=L)
    p_out, p_h = layer(pack_padded_sequence(x, L, enforce_sorted=False))
    p_out, p_len = pad_packed_sequence(p_out, total_length=T)
    _close(p_out, out, "packed output vs padded output", atol)
    assert p_len.tolist() == list(lengths)
    for a, b in zip(as_tuple(p_h), as_tuple(h_n)):
        _close(a, b, "packed h_n vs padded h_n", atol)
    bf = make(batch_first=True, **kw).double().eval()
    bf.load_state_dict(layer.state_dict())
    bf_out, bf_h = bf(x.transpose(0, 1), lengths=L)
    _close(bf_out.transpose(0, 1), out, "batch_first output vs time-major", atol)
    for a, b in zip(as_tuple(bf_h), as_tuple(h_n)):
        _close(a, b, "batch_first h_n vs time-major", atol)


def check_shapes(make, I, out_size, state_sizes, T=4, B=3):
    x = torch.randn(T, B, I, dtype=torch.float64)
    for L in (1, 2, 3):
        for D in (1, 2):
            for residual in (False, True):
                layer = make(num_layers=L, bidirectional=D == 2, residual=residual).double()
                out, h_n = layer(x)
                assert out.shape == (T, B, D * out_size), (L, D, residual, out.shape)
                for h, s in zip(as_tuple(h_n), state_sizes):
                    assert h.shape == (D * L, B, s), (L, D, residual, h.shape)


def check_layer(make, input_size: int, out_size: int, state_sizes, atol: float = 1e-10):
    """Run every check above; ``make(**kw)`` must build a fresh float layer."""
    torch.manual_seed(0)
    for kw in (dict(num_layers=1), dict(num_layers=2, bidirectional=True),
               dict(num_layers=2, residual=True)):
        check_length_invariance(make, input_size, atol=atol, **kw)
        check_initial_state(make, input_size, atol=atol, **kw)
        check_packed_and_batch_first(make, input_size, atol=atol, **kw)
    check_bidirectional(make, input_size, atol=atol)
    check_shapes(make, input_size, out_size, state_sizes)


def check_square_layer(make, size: int, **grad_kw) -> None:
    """:func:`check_layer`'s checks for a layer that needs ``I == H`` in every layer (a cell
    with ``value="identity"``): stacked one way (plain or residual), or one layer both ways
    (a second bidirectional layer would read 2H); then gradients both ways (``grad_kw``:
    more options for the stacked gradcheck)."""
    torch.manual_seed(0)
    for kw in (dict(num_layers=1), dict(num_layers=2), dict(num_layers=2, residual=True)):
        check_length_invariance(make, size, **kw)
        check_initial_state(make, size, **kw)
        check_packed_and_batch_first(make, size, **kw)
    check_bidirectional(make, size)
    check_gradients(make, size, num_layers=1, bidirectional=True)
    check_gradients(make, size, num_layers=2, bidirectional=False, **grad_kw)


def check_gradients(make, input_size: int, T: int = 3, lengths=(3, 1), **kw) -> None:
    """``gradcheck`` of ``make(num_layers=2, bidirectional=True, **kw)`` in float64.

    Checks d(output, h_n) / d(input, hx, every parameter), with ``lengths``.
    """
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True) | kw
    layer = make(**kw).double().eval()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    L = torch.tensor(lengths)
    x = torch.randn(T, len(lengths), input_size, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        hx = [torch.randn_like(h).requires_grad_() for h in as_tuple(layer(x, lengths=L)[1])]
    n = len(hx)

    def f(x, *rest):
        hs, ps = rest[:n], rest[n:]
        out, h_n = torch.func.functional_call(
            layer, dict(zip(names, ps)), (x, hs if n > 1 else hs[0]), {"lengths": L})
        return (out, *as_tuple(h_n))

    torch.autograd.gradcheck(f, (x, *hx, *params), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def _tree_close(a, b, what: str, atol: float) -> None:
    if isinstance(a, torch.Tensor):
        _close(a.to(b.dtype), b, what, atol)
        return
    if len(a) != len(b):
        raise AssertionError(f"{what}: {len(a)} state parts != {len(b)}")
    for i, (u, v) in enumerate(zip(a, b)):
        _tree_close(u, v, f"{what}[{i}]", atol)


def _tree_row(s, i: int, like):
    """Sequence ``i`` of every state tensor, its batch dimension found against ``like`` (the
    same state for a batch of another size)."""
    if isinstance(s, torch.Tensor):
        dim = next(k for k, (a, b) in enumerate(zip(s.shape, like.shape)) if a != b)
        return s.narrow(dim, i, 1)
    return tuple(_tree_row(u, i, v) for u, v in zip(s, like))


def check_block(make, d_model: int, T: int = 9, lengths=(9, 4, 1, 7), atol: float = 1e-10
                ) -> None:
    """A residual block's contract, in float64. ``make(**kw)`` builds the block (``kw``:
    ``batch_first``), the same one for the same seed; it answers ``forward(x, lengths)``,
    ``scan(x, state, lengths) -> (y, state)``, ``step(x_t, state) -> (y_t, state)`` and
    ``init_state(B)``. Checked:

    - causality: changing step ``t`` leaves every earlier output as it was, and changes ``t``'s;
    - a padded batch with NaN in the padding: each sequence's outputs equal its own run, zeros
      past its length; no gradient reaches the padding, every parameter's is finite and some
      non-zero;
    - ``batch_first=True`` equals time-major;
    - streaming (evaluation mode): stepping gives forward's outputs and final state, and a
      zero :meth:`init_state` gives what ``None`` gives;
    - truncated BPTT: a sequence scanned in two pieces gives the whole; with ``lengths`` the
      state is each sequence's at its last valid step (its own run's);
    - bad input (a wrong width, wrong or out-of-range lengths, a sequence given to ``step``) is
      refused with a one-line ValueError.
    """
    def build(**kw):
        torch.manual_seed(0)
        return make(**kw).double()

    block, B = build(), len(lengths)
    g = torch.Generator().manual_seed(1)
    rand = lambda *shape: torch.randn(*shape, dtype=torch.float64, generator=g)  # noqa: E731
    x = rand(T, B, d_model)
    with torch.no_grad():  # causality (a block in training mode has dropout: eval)
        block.eval()
        y = block(x)
        for t in sorted({0, T // 2, T - 1}):
            x2 = x.clone()
            x2[t] += rand(B, d_model)
            y2 = block(x2)
            _close(y2[:t], y[:t], f"causality: outputs before step {t}", atol)
            if torch.allclose(y2[t], y[t]):
                raise AssertionError(f"causality: changing step {t} left its output unchanged")
    xp = x.clone()
    for b, n in enumerate(lengths):
        xp[n:, b] = float("nan")
    xp.requires_grad_()
    yp = block(xp, lengths=torch.tensor(lengths))
    for b, n in enumerate(lengths):
        with torch.no_grad():
            _close(yp[:n, b:b + 1], block(x[:n, b:b + 1]), f"padded batch: sequence {b}", atol)
        if not (yp[n:, b] == 0).all():
            raise AssertionError(f"padded batch: sequence {b} is not zero past its length {n}")
    (yp * rand(*yp.shape)).sum().backward()
    for b, n in enumerate(lengths):
        if not ((xp.grad[n:, b] == 0).all() and torch.isfinite(xp.grad[:n, b]).all()):
            raise AssertionError(f"padded batch: gradient in sequence {b}'s padding or not finite")
    for name, p in block.named_parameters():
        if p.grad is None or not torch.isfinite(p.grad).all():
            raise AssertionError(f"padded batch: parameter {name} has no finite gradient")
    if not any(p.grad.abs().sum() > 0 for p in block.parameters()):
        raise AssertionError("padded batch: every parameter's gradient is zero")
    with torch.no_grad():
        bf = build(batch_first=True).eval()
        _close(bf(x.transpose(0, 1), lengths=list(lengths)).transpose(0, 1),
               block(x, lengths=list(lengths)), "batch_first", atol)
        want, state = block.scan(x)
        s, got = None, []
        for t in range(T):
            out, s = block.step(x[t], s)
            got.append(out)
        _close(torch.stack(got), want, "streaming: stepped outputs", atol)
        _tree_close(s, state, "streaming: final state", atol)
        _close(block.scan(x, block.init_state(B))[0], want, "a zero init_state", 0.0)
        k = T // 2
        first, s = block.scan(x[:k])
        rest, s = block.scan(x[k:], s)
        _close(torch.cat([first, rest]), want, "pieces: outputs", atol)
        _tree_close(s, state, "pieces: final state", atol)
        _, s = block.scan(x, lengths=list(lengths))
        like = block.init_state(B + 1)
        for b, n in enumerate(lengths):
            _tree_close(_tree_row(s, b, like), block.scan(x[:n, b:b + 1])[1],
                        f"lengths: sequence {b}'s final state", atol)
    for what, call in [
        ("a wrong width", lambda: block(rand(T, B, d_model + 1))),
        ("too few lengths", lambda: block(x, lengths=list(lengths)[:-1])),
        ("float lengths", lambda: block(x, lengths=[float(n) for n in lengths])),
        ("a length past T", lambda: block(x, lengths=[T + 1] + list(lengths)[1:])),
        ("a zero length", lambda: block(x, lengths=[0] + list(lengths)[1:])),
        ("a sequence given to step", lambda: block.step(x)),
    ]:
        try:
            call()
        except ValueError as e:
            if "\n" in str(e):
                raise AssertionError(f"bad input, {what}: the error is not one line: {e}") from e
        else:
            raise AssertionError(f"bad input, {what}: accepted")
