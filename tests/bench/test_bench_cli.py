"""``rnnkit bench``: the cell x backend x shape grid (tiny settings: structure and ratios)."""
import argparse
import json

import pytest

from rnnkit.bench.zoo import GridSettings, parse_shape, run_grid
from rnnkit.commands import bench as bench_cli


def test_grid_rows_and_ratios(monkeypatch):
    from rnnkit.kernels.fused import _csteps

    monkeypatch.setattr(_csteps, "lib", lambda: None)  # the torch steps: auto's size rule applies
    s = GridSettings(cells=("gru", "sru"), backends=("auto", "fused", "torch"),
                     shapes=(parse_shape("2,5,3,4"),), repeats=1, warmup=0, min_sample_s=0.0,
                     memory=False)
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
    table = bench_cli.format_table(doc)
    assert "sru" in table and "torch/fused" in table


def test_cli_saves_json(tmp_path, capsys):
    p = argparse.ArgumentParser()
    bench_cli.add_arguments(p)
    out = tmp_path / "b.json"
    a = p.parse_args(["--cells", "mingru", "--backends", "fused", "--shapes", "2,4,3,4",
                      "--repeats", "1", "--no-memory", "--out", str(out)])
    assert bench_cli.run(a) == 0
    doc = json.loads(out.read_text())
    assert [r["cell"] for r in doc["results"]] == ["torch.nn.LSTM", "torch.nn.GRU", "mingru"]
    assert "torch 2" in capsys.readouterr().out


def test_input_grad_times_the_input_gradient_too(monkeypatch):
    """--input-grad: the timed forward+backward also fills x.grad (and the setting is recorded)."""
    from rnnkit.bench import layers

    seen = []
    real = layers.layer_tasks

    def spy(module, x, g):
        tasks = real(module, x, g)
        fb = tasks["forward_backward"]
        seen.append((x, fb))
        return tasks

    monkeypatch.setattr("rnnkit.bench.zoo.layer_tasks", spy)
    p = argparse.ArgumentParser()
    bench_cli.add_arguments(p)
    a = p.parse_args(["--cells", "gru", "--backends", "fused", "--shapes", "2,4,3,4", "--input-grad"])
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
