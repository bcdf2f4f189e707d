"""The compiled step library of the fused CPU scans (``kernels/fused/_csteps.c``).

The LSTM, LayerNorm-LSTM, GRU and LayerNorm-GRU scans call it for their float32 step math
when it builds;
its results must be the pure-torch scan's to float32 rounding. Both are checked against
the torch scan in float64 (same weights, inputs and masks), so that neither float32 path
is merely compared with the other.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.kernels.fused import _csteps

pytestmark = pytest.mark.skipif(_csteps._compiler() is None, reason="needs a C compiler (cc)")

CONFIGS = [
    dict(),
    dict(zoneout=0.3),
    dict(zoneout=(0.2, 0.4), train=False),
    dict(recurrent_dropout=0.25),
    dict(zoneout=0.2, recurrent_dropout=0.1, lengths=[7, 7, 5, 3, 1]),
    dict(state=True),
    dict(zoneout=0.2, hidden=13),  # not a multiple of the vector width: the loops' tails
]


@pytest.fixture
def csteps(monkeypatch):
    """``use(on)``: run the scans with (on) or without (off) the library. The whole-loop
    compiled scans (kernels/compiled) are turned off meanwhile, so these runs go through the
    Python loop and its C steps, which they test (the compiled loops have their own tests)."""
    from rnnkit.kernels import compiled

    real = _csteps.lib

    def use(on: bool):
        monkeypatch.setattr(_csteps, "lib", real if on else (lambda: None))

    with compiled.disabled():
        yield use
    monkeypatch.setattr(_csteps, "lib", real)


def _run(cls, dtype, zoneout=0.0, recurrent_dropout=0.0, train=True, lengths=None,
         state=False, hidden=16):
    if cls in (rnnkit.GRU, rnnkit.LayerNormGRU) and isinstance(zoneout, tuple):
        zoneout = zoneout[0]  # one state tensor
    torch.manual_seed(1)
    m = cls(8, hidden, num_layers=2, bidirectional=True, zoneout=zoneout,
            recurrent_dropout=recurrent_dropout, backend="fused").to(dtype).train(train)
    torch.manual_seed(2)
    x = torch.randn(7, 5, 8).to(dtype).requires_grad_()
    kw = {} if lengths is None else {"lengths": torch.tensor(lengths)}
    gru = cls in (rnnkit.GRU, rnnkit.LayerNormGRU)
    if state:
        hx = tuple(torch.randn(4, 5, hidden).to(dtype) for _ in range(2))
        kw["hx"] = hx[0] if gru else hx
    torch.manual_seed(3)
    y, state_n = m(x, **kw)
    outs = [y, state_n] if gru else [y, *state_n]
    torch.manual_seed(4)
    loss = sum((v * torch.randn(v.shape).to(dtype)).sum() for v in outs)
    loss.backward()
    return outs + [x.grad] + [p.grad for p in m.parameters()]


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LayerNormLSTM, rnnkit.GRU,
                                 rnnkit.LayerNormGRU], ids=["lstm", "ln_lstm", "gru", "ln_gru"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(map(str, c)) or "plain")
def test_compiled_steps_match_the_torch_scan(csteps, cls, cfg):
    assert _csteps.lib() is not None, "the library did not build"
    assert _csteps.usable(torch.zeros(1))
    ref = _run(cls, torch.float64, **cfg)  # float64: the pure-torch scan
    csteps(True)
    ours = _run(cls, torch.float32, **cfg)
    csteps(False)
    plain = _run(cls, torch.float32, **cfg)

    def err(got):
        return max(((g.double() - r).abs().max() / (1 + r.abs().max())).item()
                   for g, r in zip(got, ref))

    assert err(plain) < 1e-4  # the float32 torch scan: the bar for float32 rounding
    assert err(ours) < 1e-4
    assert err(ours) < 5 * err(plain) + 1e-6


def test_gate_activations_over_the_whole_float_range():
    """sigmoid and tanh from the library's own exp, against torch, extremes included."""
    lib = _csteps.lib()
    H = 256
    pre = torch.cat([torch.linspace(-120, 120, 4 * H - 6),
                     torch.tensor([0.0, -0.0, 1e-30, -1e-30, 88.5, -87.5])]).view(1, 4 * H)
    A, C, TC, Y = torch.zeros(1, 1, 4 * H), *(torch.zeros(1, 1, H) for _ in range(3))
    h0, c0 = torch.zeros(1, H), torch.randn(1, H)
    P = _csteps.LSTM(B=1, H=H, **_csteps.ptrs(h0=h0, c0=c0, A=A, C=C, TC=TC, Y=Y))
    lib.lstm_fwd(P, pre.data_ptr(), 0, 1)
    i, f, g, o = pre.view(4, H)
    want = torch.cat([i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()])
    torch.testing.assert_close(A.view(-1), want, atol=3e-7, rtol=1e-6)
    c = f.sigmoid() * c0[0] + i.sigmoid() * g.tanh()
    torch.testing.assert_close(C.view(-1), c, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(Y.view(-1), o.sigmoid() * c.tanh(), atol=1e-6, rtol=1e-6)


def test_without_a_compiler_the_scans_fall_back_with_one_warning(monkeypatch, tmp_path,
                                                                 caplog):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _csteps.lib.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="no C compiler"):
            _csteps.build()
        with caplog.at_level(logging.WARNING, logger=_csteps.__name__):
            assert _csteps.lib() is None
            assert _csteps.lib() is None
        assert len([r for r in caplog.records if "unavailable" in r.message]) == 1
        assert not _csteps.usable(torch.zeros(1))
        m = rnnkit.LSTM(4, 8, zoneout=0.1, backend="fused")
        y, _ = m(torch.randn(3, 2, 4))  # the torch steps
        assert y.shape == (3, 2, 8)
    finally:
        monkeypatch.undo()
        _csteps.lib.cache_clear()


def test_a_failing_compiler_names_the_command_and_its_output(monkeypatch, tmp_path):
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\necho 'cc: fatal error: broken' >&2\nexit 3\n")
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"exited 3:\ncc: fatal error: broken"):
        _csteps.build()
    assert not list((tmp_path / "rnnkit" / "c-steps").iterdir())  # no half-written library


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("RNNKIT_C_STEPS", "0")
    _csteps.lib.cache_clear()
    try:
        assert _csteps.lib() is None
    finally:
        monkeypatch.undo()
        _csteps.lib.cache_clear()


def test_float64_and_non_contiguous_inputs_take_the_torch_steps():
    assert not _csteps.usable(torch.zeros(2, dtype=torch.float64))
    assert not _csteps.usable(torch.zeros(2), torch.zeros(4, 4).t())
    assert _csteps.usable(torch.zeros(2), None, torch.zeros(3))


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LayerNormLSTM, rnnkit.GRU,
                                 rnnkit.LayerNormGRU], ids=["lstm", "ln_lstm", "gru", "ln_gru"])
def test_zoned_out_units_keep_their_previous_value_exactly(csteps, cls):
    """A keep mask of 1 gives exactly h_{t-1} (torch.lerp's form), as in the torch steps."""
    def run():
        torch.manual_seed(0)
        m = cls(8, 32, zoneout=0.3, backend="fused")
        torch.manual_seed(1)
        return m(torch.randn(20, 4, 8))[0].detach()

    csteps(False)
    plain = run()
    csteps(True)
    ours = run()
    kept = plain[1:] == plain[:-1]
    assert 0.25 < kept.float().mean() < 0.35
    assert torch.equal(ours[1:][kept], ours[:-1][kept])


def test_auto_infers_a_small_gru_with_the_compiled_steps(csteps):
    """Without gradients, torch's GRU loop beat the pure-torch fused steps below B*H = 8192;
    the compiled steps are faster at every size (bench_gru_inference_s6.json), so auto takes
    them whenever they are there, and keeps torch's kernel where they are not."""
    from rnnkit.kernels.dispatch import choose_backend

    gru = rnnkit.GRU(8, 16).eval()
    x = torch.randn(5, 2, 8)
    with torch.no_grad():
        assert choose_backend(gru, x) == "fused"
        assert choose_backend(gru, x.double()) == "torch"
        csteps(False)
        assert choose_backend(gru, x) == "torch"


def test_build_steps_command_prints_the_library(capsys):
    from rnnkit.commands import main

    assert main(["build-steps"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith((".so", ".dylib")) and _csteps.build() == Path(path)


def test_build_steps_command_without_a_compiler_fails_clearly(monkeypatch, capsys):
    from rnnkit.commands import main

    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert main(["build-steps"]) == 2
    err = capsys.readouterr().err
    assert "no C compiler found" in err and "pure-torch steps" in err


def test_an_unwritable_cache_builds_in_the_temp_dir(monkeypatch, tmp_path):
    blocked = tmp_path / "not-a-dir"  # a file where the cache directory would go: mkdir fails
    blocked.write_text("")          # (a chmod'ed directory would not stop root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = _csteps.build()
    assert path.parent == tmp_path / "tmp" / "rnnkit-c-steps" and path.exists()


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LayerNormLSTM, rnnkit.GRU,
                                 rnnkit.LayerNormGRU], ids=["lstm", "ln_lstm", "gru", "ln_gru"])
def test_transposed_state_gradients_and_states(csteps, cls):
    """Gradients of h_n/c_n arrive with any strides (here transposed), and a given state may be
    a transposed view: the library reads rows, so such tensors must be made row-major first."""
    gru = cls in (rnnkit.GRU, rnnkit.LayerNormGRU)

    def run():
        torch.manual_seed(0)
        m = cls(6, 8, zoneout=0.2, backend="fused")
        torch.manual_seed(1)
        x = torch.randn(5, 3, 6, requires_grad=True)
        hx = tuple(torch.randn(1, 8, 3).transpose(1, 2) for _ in range(1 if gru else 2))
        y, state = m(x, hx[0] if gru else hx)
        states = [state] if gru else list(state)
        w = [torch.randn(1, 8, 3) for _ in states]
        loss = y.square().sum() + sum((s.transpose(1, 2) * wi).sum() for s, wi in zip(states, w))
        loss.backward()
        return [y, *states, x.grad] + [p.grad for p in m.parameters()]

    csteps(False)
    plain = run()
    csteps(True)
    ours = run()
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("cell_cls", ["LSTMCell", "LayerNormLSTMCell", "GRUCell",
                                      "LayerNormGRUCell"])
def test_scan_takes_last_state_gradients_with_any_strides(csteps, cell_cls):
    """Autograd hands the scan op its final states' gradients as they come, transposed
    views included; the compiled steps read them by rows, so they get row-major copies."""
    from rnnkit.kernels.fused import fused_scan

    cell = getattr(rnnkit.cells, cell_cls)(6, 8)
    torch.manual_seed(0)
    p = {k: torch.randn(s) * 0.3 for k, s in cell.param_shapes().items()}
    x = torch.randn(5, 3, 6)
    state = tuple(torch.randn(3, s) for s in cell.state_sizes)
    xp0 = cell.project(x, p).detach()

    def run():
        xp = xp0.clone().requires_grad_()
        ys, s = fused_scan(cell, p, xp, state)
        gs = [torch.randn(si.shape[::-1]).t() for si in s]  # (H, B) storage, (B, H) view
        assert not gs[0].is_contiguous()
        return torch.autograd.grad([ys, *s], [xp], [torch.ones_like(ys), *gs])[0]

    torch.manual_seed(1)
    csteps(False)
    plain = run()
    torch.manual_seed(1)
    csteps(True)
    torch.testing.assert_close(run(), plain, atol=1e-5, rtol=1e-4)
