"""``rnnkit bench``: the cell x backend x shape x threads grid (tiny settings: structure, ratios,
the command line and its errors). Performance itself is never asserted."""
import argparse
import json
import statistics

import pytest
import torch

from rnnkit.bench import report
from rnnkit.bench.zoo import GridSettings, parse_shape, parse_threads, run_grid
from rnnkit.commands import bench as bench_cli
from rnnkit.commands import main


def _args(*argv):
    p = argparse.ArgumentParser()
    bench_cli.add_arguments(p)
    return p.parse_args(list(argv))


def test_grid_rows_and_ratios(monkeypatch):
    from rnnkit.kernels.fused import _csteps

    monkeypatch.setattr(_csteps, "lib", lambda: None)  # the torch steps: auto's size rule applies
    s = GridSettings(cells=("gru", "sru"), backends=("auto", "fused", "torch"),
                     shapes=(parse_shape("2,5,3,4"),), repeats=1, warmup=0, min_sample_s=0.0,
                     memory=False, threads=(1,))
    doc = run_grid(s)
    rows = {(r["cell"], r["backend"]): r for r in doc["results"]}
    # torch cannot run SRU: that contender is left out, not an error
    assert set(rows) == {("torch.nn.LSTM", "torch.nn"), ("torch.nn.GRU", "torch.nn"),
                         ("gru", "auto"), ("gru", "fused"), ("gru", "torch"),
                         ("sru", "auto"), ("sru", "fused")}
    assert rows[("sru", "auto")]["ran"] == "fused" and rows[("gru", "auto")]["ran"] == "fused"
    # a tiny GRU: fused in training, torch's kernel without gradients (B*H = 8 < 8192; with
    # the compiled steps auto takes the fused scan there too: tests/kernels/test_csteps.py)
    assert rows[("gru", "auto")]["ran_forward"] == "torch"
    assert rows[("sru", "auto")]["ran_forward"] == "fused"
    base = rows[("torch.nn.LSTM", "torch.nn")]
    assert base["ratio_lstm"] == {"forward": 1.0, "forward_backward": 1.0}
    r = rows[("sru", "fused")]
    for m in ("forward", "forward_backward"):
        assert r["ratio_lstm"][m] == pytest.approx(r[m]["median_ms"] / base[m]["median_ms"])
    assert doc["shapes_done"] == 1 and doc["machine"]["torch"]
    table = report.format_table(doc)
    assert "sru" in table and "torch/fused" in table


def test_cli_saves_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    a = _args("--cells", "mingru", "--backends", "fused", "--shapes", "2,4,3,4", "--repeats", "1",
              "--no-memory", "--out", str(out))
    assert bench_cli.run(a) == 0
    doc = json.loads(out.read_text())
    assert [r["cell"] for r in doc["results"]] == ["torch.nn.LSTM", "torch.nn.GRU", "mingru"]
    printed = capsys.readouterr().out
    assert "torch 2" in printed and "Thread scaling" not in printed  # one thread count
    # defaults: wall clock at torch's default thread count; the file names machine, threads,
    # torch version, clock and command line
    assert doc["schema"] == "rnnkit-bench-grid/2"
    assert doc["settings"]["clock"] == "wall" and "what users see" in doc["settings"]["clock_label"]
    assert doc["settings"]["threads"] == [torch.get_num_threads()]
    assert {r["threads"] for r in doc["results"]} == {torch.get_num_threads()}
    assert doc["machine"]["torch"] == torch.__version__ and doc["machine"]["cpu"]
    assert doc["command"].startswith("rnnkit bench ") and "--cells mingru" in doc["command"]
    assert "Clock: wall clock" in printed


def test_cli_thread_sweep_and_cpu_clock(tmp_path, capsys):
    """--threads 1,2 times every contender at both counts; --clock cpu is labelled as such."""
    before = torch.get_num_threads()
    out = tmp_path / "s.json"
    a = _args("--cells", "gru", "--backends", "fused", "--shapes", "2,4,3,4", "--repeats", "3",
              "--warmup", "0", "--min-sample-ms", "0", "--no-memory", "--threads", "2,1",
              "--clock", "cpu", "--out", str(out), "--markdown")
    assert bench_cli.run(a) == 0
    assert torch.get_num_threads() == before  # the sweep leaves torch's threads as it found them
    doc = report.load(out)
    assert doc["settings"]["threads"] == [1, 2] and "--threads 2,1" in doc["command"]
    assert doc["settings"]["clock"] == "cpu"
    assert "for noisy machines" in doc["settings"]["clock_label"]
    rows = {(r["cell"], r["threads"]): r for r in doc["results"]}
    assert set(rows) == {(c, n) for c in ("torch.nn.LSTM", "torch.nn.GRU", "gru") for n in (1, 2)}
    for (cell, n), r in rows.items():
        fb = r["forward_backward"]
        assert len(fb["samples_ms"]) == 3 and fb["median_ms"] == statistics.median(fb["samples_ms"])
        # by hand: the scaling is t(1 thread) / t(N threads), LSTM's beside it; the ratio is
        # taken to torch.nn.LSTM at the same thread count
        t1 = rows[(cell, 1)]["forward_backward"]["median_ms"]
        lstm1 = rows[("torch.nn.LSTM", 1)]["forward_backward"]["median_ms"]
        lstm_n = rows[("torch.nn.LSTM", n)]["forward_backward"]["median_ms"]
        assert r["scaling"]["forward_backward"] == pytest.approx(t1 / fb["median_ms"], rel=1e-12)
        assert r["scaling_lstm"]["forward_backward"] == pytest.approx(lstm1 / lstm_n, rel=1e-12)
        assert r["ratio_lstm"]["forward_backward"] == pytest.approx(fb["median_ms"] / lstm_n,
                                                                    rel=1e-12)
    printed = capsys.readouterr().out
    assert "Clock: CPU clock (this process's CPU time" in printed
    assert "Thread scaling. Clock: CPU clock" in printed and "LSTM f+b x2" in printed
    assert f"{rows[('gru', 2)]['scaling']['forward_backward']:.2f}" in printed
    assert "| shape | cell | backend | f+b ms @1 | f+b ms @2 |" in printed  # --markdown


@pytest.mark.parametrize("bad", ["0", "1,1", "two", "1,,2", "", "-1,2"])
def test_threads_errors_are_one_line_naming_the_flag(bad, capsys):
    assert main(["bench", f"--threads={bad}", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: --threads: expected ")
    assert repr(bad) in err
    with pytest.raises(ValueError, match="^--threads: "):
        parse_threads(bad)
    assert parse_threads("4,1,2") == (1, 2, 4)


def test_compare_two_runs(tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["bench", "--cells", "gru", "--backends", "fused", "--shapes", "2,4,3,4",
                 "--repeats", "1", "--warmup", "0", "--no-memory", "--threads", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["bench", "--compare", str(out), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "run A vs run B" in printed and "+0.000" in printed and "-0.0" not in printed
    assert main(["bench", "--compare", str(out), str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err


def test_input_grad_times_the_input_gradient_too(monkeypatch):
    """--input-grad: the timed forward+backward also fills x.grad (and the setting is recorded)."""
    from rnnkit.bench import zoo

    seen = []
    real = zoo.layer_tasks

    def spy(module, x, g):
        tasks = real(module, x, g)
        fb = tasks["forward_backward"]
        seen.append((x, fb))
        return tasks

    monkeypatch.setattr("rnnkit.bench.zoo.layer_tasks", spy)
    a = _args("--cells", "gru", "--backends", "fused", "--shapes", "2,4,3,4", "--input-grad")
    s = bench_cli._settings(a)
    assert s.input_grad and s.to_json()["input_grad"] is True
    run_grid(GridSettings(cells=("gru",), backends=("fused",), shapes=s.shapes, repeats=1,
                          warmup=0, min_sample_s=0.0, memory=False, input_grad=True))
    x, fb = seen[-1]
    assert x.requires_grad
    fb.setup()
    fb.run()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="--cells: unknown"):
        GridSettings(cells=("nope",))
    with pytest.raises(ValueError, match="--shapes: expected B,T,H"):
        parse_shape("1,2")
    with pytest.raises(ValueError, match="--shapes: expected B,T,H"):
        parse_shape("1,0,3")
    with pytest.raises(ValueError, match="--dtype"):
        GridSettings(dtype="float33")


def test_block_stacks_run_once_as_auto_beside_the_baselines():
    """``--cells griffin,xlstm``: one-block stacks at d_model = H, only under "auto" (they have
    no backend to choose), each row with its parameter count; not in the default cells."""
    from rnnkit.bench.zoo import BLOCK_STACKS, DEFAULT_CELLS
    from rnnkit.models.blocks import BlockStack

    assert not set(BLOCK_STACKS) & set(DEFAULT_CELLS)
    s = GridSettings(cells=("gru", "griffin", "xlstm"), backends=("auto", "fused"),
                     shapes=(parse_shape("2,5,3,8"),), repeats=1, warmup=0, min_sample_s=0.0,
                     memory=False, threads=(1,))
    rows = {(r["cell"], r["backend"]): r for r in run_grid(s)["results"]}
    assert ("griffin", "fused") not in rows and ("xlstm", "fused") not in rows
    # counted by hand, I = 3, d = 8, one block: the map from I (32) and the final norm (8), and
    # Griffin's: norm 8, linear_y/x 72 + 72, conv 40, RG-LRU 128 + 16 + 8, linear_out 72, MLP
    # norm 8, gate/up 216 + 216, down 200; xLSTM's mLSTM (inner 16, 4 heads): norm 8, up 256,
    # conv 80, q/k/v 3 x 64, gates 196 + 196, out norm 16, skip 16, down 128
    for name, want in (("griffin", 1096), ("xlstm", 1128)):
        r = rows[(name, "auto")]
        assert r["ran"] == r["ran_forward"] == "blocks"
        assert r["parameters"] == want and r["forward_backward"]["median_ms"] > 0
        assert sum(p.numel() for p in BlockStack(name, 3, 8, 1).parameters()) == want
    assert rows[("torch.nn.LSTM", "torch.nn")]["parameters"] == 4 * 8 * (3 + 8 + 2)
    with pytest.raises(ValueError, match=r"--cells griffin: a block stack runs only under "
                                         r"--backends auto"):
        GridSettings(cells=("gru", "griffin"), backends=("fused",))
