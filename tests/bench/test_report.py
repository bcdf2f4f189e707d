"""The thread sweep's arithmetic and its tables, on a fake clock where every value is known.

Each fake layer "takes" a fixed time per thread count (read from ``torch.get_num_threads()``
inside the timed call, so the sweep must have set the threads), the clock moves only when a
fake layer runs, and every ratio and scaling is checked against the value worked out by hand.
"""
import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from rnnkit.bench import measure, report, zoo
from rnnkit.bench.measure import Task

ROOT = Path(__file__).resolve().parents[2]
U = 1 / 1024  # durations in exact binary fractions of a second
#: seconds per forward call at 1 and 2 threads; forward+backward takes twice as long
TIMES = {"LSTM": {1: 8 * U, 2: 4 * U},   # torch.nn.LSTM: x2.00 from 1 to 2 threads
         "GRU": {1: 6 * U, 2: 6 * U},    # torch.nn.GRU: x1.00
         "ours": {1: 12 * U, 2: 8 * U}}  # rnnkit's GRU: x1.50, 75% of LSTM's scaling


class _Clock:
    now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def doc():
    clock = _Clock()
    mp = pytest.MonkeyPatch()
    mp.setitem(measure.CLOCKS, "wall", clock)

    def fake_tasks(module, x, g):
        kind = {torch.nn.LSTM: "LSTM", torch.nn.GRU: "GRU"}.get(type(module), "ours")

        def step(factor):
            def run():
                clock.now += factor * TIMES[kind][torch.get_num_threads()]
            return run

        return {"forward": Task(step(1)), "forward_backward": Task(step(2))}

    mp.setattr(zoo, "layer_tasks", fake_tasks)
    try:
        s = zoo.GridSettings(cells=("gru",), backends=("fused",), shapes=(zoo.Shape(2, 3, 4, 5),),
                             threads=(2, 1), repeats=3, warmup=1, min_sample_s=0.0, memory=False)
        d = zoo.run_grid(s)
    finally:
        mp.undo()
    d["command"] = "rnnkit bench --threads 1,2"
    return report.validate(d)


def _rows(doc):
    return {(r["cell"], r["threads"]): r for r in doc["results"]}


def test_sweep_values_by_hand(doc):
    rows = _rows(doc)
    assert [(r["cell"], r["threads"]) for r in doc["results"]] == [
        (c, n) for c in ("torch.nn.LSTM", "torch.nn.GRU", "gru") for n in (1, 2)]
    fb = "forward_backward"
    assert rows[("gru", 1)][fb]["median_ms"] == pytest.approx(2e3 * 12 * U, rel=1e-12)
    assert rows[("gru", 2)]["forward"]["median_ms"] == pytest.approx(1e3 * 8 * U, rel=1e-12)
    for m in ("forward", fb):
        assert rows[("gru", 2)]["scaling"][m] == pytest.approx(12 / 8)
        assert rows[("gru", 2)]["scaling_lstm"][m] == pytest.approx(8 / 4)
        assert rows[("gru", 1)]["scaling"][m] == 1.0
        assert rows[("torch.nn.GRU", 2)]["scaling"][m] == pytest.approx(1.0)
        assert rows[("gru", 1)]["ratio_lstm"][m] == pytest.approx(12 / 8)
        assert rows[("gru", 2)]["ratio_lstm"][m] == pytest.approx(8 / 4)
        assert rows[("gru", 2)]["ratio_gru"][m] == pytest.approx(8 / 6)
    assert doc["settings"]["threads"] == [1, 2]


def test_tables_show_the_clock_threads_and_scaling(doc):
    text = report.format_table(doc)
    assert text.startswith("Clock: wall clock (elapsed time: what users see). Torch threads: 1, 2.")
    gru2 = next(line for line in text.splitlines() if " gru " in line and " 2 " in line)
    assert gru2.split() == ["B=2", "T=3", "I=4", "H=5", "gru", "fused", "fused", "2",
                            f"{8e3 * U:.2f}", "2.00", "1.33", f"{16e3 * U:.2f}", "2.00", "1.33",
                            "-"]
    scaling = report.format_scaling(doc).splitlines()
    assert scaling[0].startswith("Thread scaling. Clock: wall clock (elapsed time: what users "
                                 "see). xN = time at 1 thread / time at N threads")
    assert scaling[1].split("  ")[0] == "shape"
    ours = next(line for line in scaling if " gru " in line)
    # f+b ms at 1 and 2 threads, then fwd x2, LSTM's fwd x2, f+b x2, LSTM's f+b x2, share
    assert ours.split()[-7:] == [f"{24e3 * U:.2f}", f"{16e3 * U:.2f}", "1.50", "2.00", "1.50",
                                 "2.00", "75%"]
    md = report.markdown_scaling(doc).splitlines()
    assert md[0] == ("| shape | cell | backend | f+b ms @1 | f+b ms @2 | fwd x2 | LSTM fwd x2 | "
                     "f+b x2 | LSTM f+b x2 | share x2 |")
    assert md[-1].endswith("| 1.50 | 2.00 | 1.50 | 2.00 | 75% |")


def test_cpu_clock_is_labelled(doc):
    d = copy.deepcopy(doc)
    d["settings"]["clock"] = "cpu"
    del d["settings"]["clock_label"]  # as in files written before the label
    assert "Clock: CPU clock (this process's CPU time" in report.format_table(d)
    assert "for noisy machines" in report.format_scaling(d)
    one = copy.deepcopy(doc)
    one["results"] = [r for r in one["results"] if r["threads"] == 1]
    assert report.format_scaling(one) == "" and report.markdown_scaling(one) == ""


def test_validate_and_load_name_the_field(doc, tmp_path):
    bad = copy.deepcopy(doc)
    bad["results"][3]["forward_backward"]["median_ms"] = 0
    with pytest.raises(ValueError, match=r"results\[3\]\.forward_backward\.median_ms"):
        report.validate(bad)
    bad = copy.deepcopy(doc)
    del bad["results"][1]["threads"]
    with pytest.raises(ValueError, match=r"results\[1\]\.threads"):
        report.validate(bad)
    with pytest.raises(ValueError, match="schema"):
        report.validate({**doc, "schema": "rnnkit-bench/1"})
    path = report.save(doc, tmp_path / "r.json")
    assert report.load(path) == json.loads(json.dumps(doc))
    (tmp_path / "broken.json").write_text('{"schema":\n oops}')
    with pytest.raises(ValueError, match=r"broken\.json:2:2: not JSON"):
        report.load(tmp_path / "broken.json")


def test_compare_matches_rows_on_threads(doc):
    other = copy.deepcopy(doc)
    _rows(other)[("gru", 2)]["ratio_lstm"]["forward_backward"] = 2.25
    text = report.compare_table(doc, other)
    line = next(x for x in text.splitlines() if " gru " in x and " 2 " in x)
    assert line.split()[-3:] == ["2.000", "2.250", "+0.250"]
    old = copy.deepcopy(doc)  # schema 1: no threads per row, the machine's count
    old["schema"] = "rnnkit-bench-grid/1"
    old["results"] = [{k: v for k, v in r.items() if k != "threads"}
                      for r in old["results"] if r["threads"] == 1]
    old["machine"]["torch_threads"] = 1
    assert report.thread_counts(old) == [1]
    assert len(report.compare_table(old, doc).splitlines()) == 3 + 1 + 3  # title, A, B; head, rows


# ------------------------------------------------------------------ the docs' tables
def _docs_tables():
    spec = importlib.util.spec_from_file_location("_docs_tables",
                                                  ROOT / "scripts" / "docs" / "docs_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_speed_table_reads_wall_clock_sweeps(doc, tmp_path):
    dt = _docs_tables()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "src" / "rnnkit" / "bench").mkdir(parents=True)
    (tmp_path / "src" / "rnnkit" / "bench" / "report.py").write_text(
        (ROOT / "src" / "rnnkit" / "bench" / "report.py").read_text())
    assert "Not measured yet" in dt.snippet("speed-table", tmp_path)
    cpu = copy.deepcopy(doc)
    cpu["settings"]["clock"] = "cpu"  # CPU-clock runs are no headline
    (tmp_path / "benchmarks" / "results" / "cpu_clock.json").write_text(json.dumps(cpu))
    assert "Not measured yet" in dt.snippet("speed-table", tmp_path)
    d = copy.deepcopy(doc)
    d["machine"]["usable_cores"] = 2
    for r in d["results"]:  # the headline shows what users get: auto (and the GRU baseline)
        r["backend"] = "auto" if r["cell"] == "gru" else r["backend"]
    (tmp_path / "benchmarks" / "results" / "threads.json").write_text(json.dumps(d))
    text = dt.snippet("speed-table", tmp_path)
    assert "`threads.json`" in text and "Command: `rnnkit bench --threads 1,2`" in text
    assert ("| shape | cell | ran | f+b / LSTM, 1 thread | f+b / LSTM, 2 threads (all) "
            "| speed-up 1->2 threads | torch.nn.LSTM's | share |") in text
    # gru: 24/16 = 1.50 of LSTM's time at 1 thread, 16/8 = 2.00 at 2; x1.50 beside LSTM's x2.00
    assert "| B=2 T=3 I=4 H=5 | gru | fused | 1.50 | 2.00 | 1.50x | 2.00x | 75% |" in text
    assert "| B=2 T=3 I=4 H=5 | torch.nn.GRU | torch.nn | 0.75 | 1.50 | 1.00x | 2.00x | 50% |" \
        in text
    assert "| torch.nn.LSTM |" not in text
    page = dt.benchmarks_page(tmp_path)
    assert "## threads" in page and "**Wall clock, 1 and 2 threads.** Clock: wall clock" in page
    assert "**CPU clock, for noisy machines, 1 and 2 threads.**" in page
    assert f"| B=2 T=3 I=4 H=5 | gru | fused | {24e3 * U:.2f} | {16e3 * U:.2f} | 1.50 |" in page
