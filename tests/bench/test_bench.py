"""The benchmark harness's logic (rnnkit.bench): interleaving, statistics, ratios, memory, schema.

Timings themselves are not tested (they depend on the machine); the harness is driven by a
fake clock where its arithmetic must be exact, and by a tiny shape end to end.
"""
import copy
import json
import math
import statistics

import pytest
import torch

from rnnkit.bench import measure, report
from rnnkit.bench.layers import (
    BASELINE,
    MEASURES,
    Settings,
    Shape,
    add_ratios,
    build_contenders,
    quick_settings,
    run_suite,
)
from rnnkit.bench.machine import cpu_model
from rnnkit.commands.bench_layers import main

TINY = Shape(B=2, T=3, I=4, H=5)


# ------------------------------------------------------------------ statistics
def test_summarize_hand_computed():
    s = measure.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median_ms"], s["p25_ms"], s["p75_ms"], s["min_ms"]) == (3.0, 2.0, 4.0, 1.0)
    assert s["samples_ms"] == [5.0, 1.0, 3.0, 2.0, 4.0]  # kept in round order
    assert measure.summarize([7.0])["p25_ms"] == 7.0
    with pytest.raises(ValueError, match="samples_ms"):
        measure.summarize([])


def test_peak_of_running_sum():
    assert measure.peak_of([1, 4, -4, 2]) == 5
    assert measure.peak_of([3, -3, 2, 2, -4]) == 4
    assert measure.peak_of([-3, 2]) == 0  # frees of older tensors never make a negative peak
    assert measure.peak_of([]) == 0


# ------------------------------------------------------------------ interleave
class _FakeClock:
    """A clock that only moves when a fake task runs, by that task's duration."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_interleave_exact_with_fake_clock(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setitem(measure.CLOCKS, "wall", clock)
    log = []

    def task(name, seconds):
        def run():
            log.append(name)
            clock.now += seconds
        return measure.Task(run, setup=lambda: setattr(clock, "now", clock.now + 1.0))

    u = 1 / 512  # durations in exact binary fractions of a second
    tasks = {"A": task("A", u), "B": task("B", 3 * u), "C": task("C", 16 * u)}
    out = measure.interleave(tasks, repeats=3, warmup=1, min_sample_s=5 * u)
    # setup time (1 s per call) is excluded; calls per sample = ceil(min_sample_s / duration)
    assert {n: o["calls_per_sample"] for n, o in out.items()} == {"A": 5, "B": 2, "C": 1}
    for name, ms in (("A", 1e3 * u), ("B", 3e3 * u), ("C", 16e3 * u)):
        assert out[name]["samples_ms"] == pytest.approx([ms] * 3, rel=1e-12)
    # warm-up (1 each) and calibration (1 each) in order, then rounds rotated A B C, B C A, C A B
    timed = log[6:]
    rounds = [timed[0:8], timed[8:16], timed[16:24]]
    assert rounds[0] == ["A"] * 5 + ["B"] * 2 + ["C"]
    assert rounds[1] == ["B"] * 2 + ["C"] + ["A"] * 5
    assert rounds[2] == ["C"] + ["A"] * 5 + ["B"] * 2


def test_interleave_rejects_bad_arguments():
    t = {"A": measure.Task(lambda: None)}
    with pytest.raises(ValueError, match="repeats"):
        measure.interleave(t, repeats=0)
    with pytest.raises(ValueError, match="clock"):
        measure.interleave(t, repeats=1, clock="sundial")


# ---------------------------------------------------------------------- memory
def test_cpu_peak_bytes_counts_only_the_call():
    keep = []

    def setup():  # allocated before the call: not part of its peak
        keep.append(torch.empty(8 << 20, dtype=torch.uint8))

    def run():
        a = torch.empty(4 << 20, dtype=torch.uint8)  # 4 MiB, freed below
        del a
        b = torch.empty(1 << 20, dtype=torch.uint8)  # 1 MiB, kept by the caller
        c = torch.empty(2 << 20, dtype=torch.uint8)  # 2 MiB, freed on return
        c.fill_(1)
        return b

    assert measure.peak_bytes(measure.Task(run, setup), "cpu") == 4 << 20
    # 3 MiB of float32 ones and their exp live together
    assert measure.peak_bytes(measure.Task(lambda: torch.ones(3 << 18).exp()), "cpu") == 6 << 20


def test_peak_bytes_rejects_unknown_device():
    with pytest.raises(ValueError, match="device"):
        measure.peak_bytes(measure.Task(lambda: None), "meta")


# ---------------------------------------------------------------------- ratios
def _row(contender, fwd, fb, peak=(100, 200), cell="lstm", shape=TINY):
    return {"cell": cell, "shape": {"B": shape.B, "T": shape.T, "I": shape.I, "H": shape.H},
            "contender": contender,
            "forward": {"median_ms": fwd, "peak_bytes": peak[0]},
            "forward_backward": {"median_ms": fb, "peak_bytes": peak[1]}}


def test_add_ratios_hand_computed():
    rows = [_row("rnnkit-auto", 12.0, 30.0, (150, None)), _row(BASELINE, 10.0, 40.0),
            _row(BASELINE, 5.0, 5.0, cell="gru"), _row("rnnkit-loop", 15.0, 2.5, cell="gru")]
    add_ratios(rows)
    auto, base, gbase, gloop = rows
    assert auto["forward"]["ratio"] == pytest.approx(1.2)
    assert auto["forward_backward"]["ratio"] == pytest.approx(0.75)
    assert auto["forward"]["peak_ratio"] == pytest.approx(1.5)
    assert auto["forward_backward"]["peak_ratio"] is None
    assert base["forward"]["ratio"] == 1.0 and gbase["forward_backward"]["ratio"] == 1.0
    assert gloop["forward"]["ratio"] == pytest.approx(3.0)  # against GRU's baseline, not LSTM's
    assert gloop["forward_backward"]["ratio"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no 'torch.nn' row"):
        add_ratios([_row("rnnkit-auto", 1.0, 1.0)])


def test_settings_reject_unknown_names():
    with pytest.raises(ValueError, match="cells: unknown"):
        Settings(cells=("lstm", "transformer"))
    with pytest.raises(ValueError, match="baseline"):
        Settings(contenders=("rnnkit-auto",))
    with pytest.raises(ValueError, match="dtype"):
        Settings(dtype="float33")
    with pytest.raises(ValueError, match="T must be a positive int"):
        Shape(B=1, T=0, I=1, H=1)
    q = quick_settings()
    assert q.quick and q.repeats == 3 and [s.T for s in q.shapes] == [10, 100]


def test_contenders_share_weights_and_outputs():
    mods = build_contenders("gru", TINY, ("torch.nn", "torch.nn-copy", "rnnkit-auto",
                                          "rnnkit-loop"))
    x = torch.randn(TINY.T, TINY.B, TINY.I)
    ref = mods["torch.nn"](x)[0]
    for name in ("rnnkit-auto", "rnnkit-loop"):
        assert mods[name].backend == name.split("-")[1]
        torch.testing.assert_close(mods[name](x)[0], ref, atol=1e-6, rtol=0)
    # the A/A control: the same torch.nn computation on copies of the weights
    copy_ = mods["torch.nn-copy"]
    assert type(copy_) is torch.nn.GRU and copy_ is not mods["torch.nn"]
    for a, b in zip(copy_.parameters(), mods["torch.nn"].parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    assert torch.equal(copy_(x)[0], ref)


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tiny_doc():
    s = Settings(shapes=(TINY,), cells=("rnn_tanh", "lstm"), repeats=3, warmup=1, min_sample_s=0)
    return run_suite(s)


def test_run_suite_document(tiny_doc):
    doc = report.validate(tiny_doc)
    assert doc["settings"]["repeats"] == 3 and doc["settings"]["shapes"] == [
        {"B": 2, "T": 3, "I": 4, "H": 5}]
    assert doc["machine"]["torch"] == torch.__version__
    assert [(r["cell"], r["contender"]) for r in doc["results"]] == [
        (c, n) for c in ("rnn_tanh", "lstm")
        for n in ("torch.nn", "torch.nn-copy", "rnnkit-auto", "rnnkit-loop")]
    base = {r["cell"]: r for r in doc["results"] if r["contender"] == BASELINE}
    for r in doc["results"]:
        for m in MEASURES:
            e = r[m]
            assert len(e["samples_ms"]) == 3
            assert e["median_ms"] == statistics.median(e["samples_ms"])
            want = e["median_ms"] / statistics.median(base[r["cell"]][m]["samples_ms"])
            assert math.isclose(e["ratio"], want, rel_tol=1e-12)
            # the output (T, B, H) float32 alone is 120 bytes; every call allocates at least that
            assert e["peak_bytes"] >= TINY.T * TINY.B * TINY.H * 4
    # rnnkit's auto backend runs torch's own kernel: the same allocations, byte for byte
    for r in doc["results"]:
        if r["contender"] in ("rnnkit-auto", "torch.nn-copy"):
            assert r["forward"]["peak_bytes"] == base[r["cell"]]["forward"]["peak_bytes"]
    control = [r for r in doc["results"] if r["contender"] == "torch.nn-copy"]
    assert report.noise_floor(doc) == max(abs(r[m]["ratio"] - 1) for r in control
                                          for m in MEASURES)


def test_validate_names_the_broken_field(tiny_doc):
    bad = copy.deepcopy(tiny_doc)
    bad["schema"] = "other/0"
    with pytest.raises(ValueError, match="schema"):
        report.validate(bad)
    bad = copy.deepcopy(tiny_doc)
    bad["results"][6]["forward_backward"]["samples_ms"].pop()
    with pytest.raises(ValueError, match=r"results\[6\]\.forward_backward\.samples_ms"):
        report.validate(bad)
    bad = copy.deepcopy(tiny_doc)
    bad["results"][0]["forward"]["ratio"] = 0.9  # results[0] is the baseline
    with pytest.raises(ValueError, match=r"results\[0\]\.forward\.ratio: expected 1\.0"):
        report.validate(bad)
    bad = copy.deepcopy(tiny_doc)
    del bad["results"][2]["forward"]["peak_bytes"]
    with pytest.raises(ValueError, match=r"results\[2\]\.forward\.peak_bytes"):
        report.validate(bad)


def test_save_load_and_tables(tiny_doc, tmp_path):
    path = report.save(tiny_doc, tmp_path / "r.json")
    assert report.load(path) == json.loads(json.dumps(tiny_doc))
    md = report.markdown_table(tiny_doc).splitlines()
    assert md[0].count("|") == 10 and len(md) == 2 + len(tiny_doc["results"])
    loop = next(r for r in tiny_doc["results"] if r["contender"] == "rnnkit-loop")
    assert md[5].startswith("| B=2 T=3 I=4 H=5 | rnn_tanh | rnnkit-loop |")
    assert f"| {loop['forward']['ratio']:.2f} |" in md[5]
    (tmp_path / "broken.json").write_text('{"schema": "rnnkit-bench/1",\n  oops}')
    with pytest.raises(ValueError, match=r"broken\.json:2:3: not JSON"):
        report.load(tmp_path / "broken.json")


def test_target_check(tiny_doc):
    doc = copy.deepcopy(tiny_doc)
    for r in doc["results"]:
        for m in MEASURES:
            r[m]["ratio"] = {"rnnkit-auto": 1.01, "rnnkit-loop": 3.0}.get(r["contender"], 1.0)
    doc["results"][6]["forward_backward"]["ratio"] = 1.04  # lstm auto
    assert report.target_check(doc) == (True, (1.04, "lstm", "B=2 T=3 I=4 H=5",
                                               "forward_backward"))
    doc["results"][2]["forward"]["ratio"] = 1.2  # rnn_tanh auto
    met, worst = report.target_check(doc)
    assert not met and worst[:2] == (1.2, "rnn_tanh")


# ------------------------------------------------------------------------- cli
def test_cli_runs_and_saves(tmp_path, capsys):
    out = tmp_path / "res.json"
    rc = main(["--quick", "--cells", "gru", "--shape", "2,3,4,5", "--repeats", "2", "--warmup",
               "0", "--min-sample-ms", "0", "--no-memory", "--out", str(out)])
    assert rc == 0
    doc = report.load(out)
    assert [r["contender"] for r in doc["results"]] == ["torch.nn", "torch.nn-copy",
                                                         "rnnkit-auto", "rnnkit-loop"]
    assert all(r["forward"]["peak_bytes"] is None for r in doc["results"])
    assert doc["settings"]["quick"] and doc["settings"]["repeats"] == 2
    printed = capsys.readouterr().out
    assert "rnnkit-loop" in printed and "target rnnkit-auto <= 1.05" in printed
    assert "noise floor: the A/A control torch.nn-copy is off by up to" in printed
    assert main(["--compare", str(out), str(out)]) == 0
    assert "+0.000" in capsys.readouterr().out  # a run against itself differs by nothing


def test_cli_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--shape", "32,100"])
    assert e.value.code == 2
    assert "expected B,T,I,H as four positive integers, got '32,100'" in capsys.readouterr().err
    assert main(["--cells", "lstm,tcn", "--out", str(tmp_path / "x.json")]) == 2
    assert "cells: unknown ['tcn']" in capsys.readouterr().err


def test_cpu_model(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7R13 "
                 "Processor\nflags\t\t: fpu\n")
    assert cpu_model(f) == "AMD EPYC 7R13 Processor"
    assert cpu_model(tmp_path / "missing")  # falls back to platform, never empty
