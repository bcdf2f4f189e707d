"""The timing harness (rnnkit.bench.measure, .machine): interleaving, statistics, memory.

Timings themselves are not tested (they depend on the machine); the harness is driven by a
fake clock where its arithmetic must be exact. The suite and its tables: test_bench_cli.py
and test_report.py.
"""
import pytest
import torch

from rnnkit.bench import measure
from rnnkit.bench.machine import cpu_model


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


# --------------------------------------------------------------------- machine
def test_cpu_model(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7R13 "
                 "Processor\nflags\t\t: fpu\n")
    assert cpu_model(f) == "AMD EPYC 7R13 Processor"
    assert cpu_model(tmp_path / "missing")  # falls back to platform, never empty
