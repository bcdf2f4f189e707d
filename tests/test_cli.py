"""The rnnkit command line: complete --help, train -> evaluate -> generate, demo, bad input."""

from __future__ import annotations

import argparse
import gzip
import importlib.resources
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnkit.commands import COMMANDS, build_parser, main


def _corpus(d: Path, n: int = 2000) -> Path:
    res = importlib.resources.files("rnnkit").joinpath("resources", "tinyshakespeare.txt.gz")
    p = d / "tiny.txt"
    p.write_text(gzip.decompress(res.read_bytes()).decode("utf-8")[:n])
    return p


def _recipe(d: Path, corpus: Path) -> Path:
    raw = {"task": "lm",
           "data": {"corpus": str(corpus), "batch_size": 4, "bptt": 25, "eval_batch_size": 2},
           "model": {"embedding_size": 8, "hidden_size": 16, "num_layers": 1},
           "optim": {"name": "adam", "lr": 0.01},
           "trainer": {"max_epochs": 1, "progress": False, "loggers": ["csv"], "plot": False,
                       "out_dir": str(d / "runs")}}
    p = d / "r.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    corpus = _corpus(d)
    assert main(["train", str(_recipe(d, corpus)), "--out", str(d / "run")]) == 0
    return d, corpus


def _subparsers(parser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices
    raise AssertionError("no subcommands")


def test_every_option_has_help():
    subs = _subparsers(build_parser())
    assert set(subs) >= {"train", "evaluate", "generate", "demo"} == set(COMMANDS)
    for name, p in ((n, subs[n]) for n in COMMANDS):
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            assert a.help and len(a.help) > 10, f"{name} {a.option_strings or a.dest} lacks help"
        text = p.format_help()
        assert "usage: rnnkit " + name in text
    gen = subs["generate"].format_help()
    for opt in ("--prompt", "--length", "--temperature", "--top-k", "--top-p", "--seed"):
        assert opt in gen


def test_python_dash_m_rnnkit_help():
    p = subprocess.run([sys.executable, "-m", "rnnkit", "train", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "--resume RUN_DIR" in p.stdout and "--set KEY=VALUE" in p.stdout


def test_train_evaluate_generate(trained, capsys):
    d, _ = trained
    run = d / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert (run / "best" / "model.safetensors").is_file() and (run / "last" / "vocab.json").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(run / "best"), "--split", "valid"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == "valid" and metrics["tokens"] == 200
    assert metrics["loss"] == pytest.approx(summary["best"], rel=1e-6)  # same numbers as in training
    outs = []
    for seed in (3, 3, 4):
        assert main(["generate", str(run / "best"), "--prompt", "First", "--length", "40",
                     "--temperature", "0.9", "--top-k", "10", "--top-p", "0.95", "--seed", str(seed)]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] != outs[2]
    assert outs[0].startswith("First") and len(outs[0]) == len("First") + 40 + 1


def _bad(argv, capsys, *needles):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def test_bad_recipe_inputs(tmp_path, capsys):
    corpus = _corpus(tmp_path)
    recipe = _recipe(tmp_path, corpus)
    _bad(["train", str(tmp_path / "none.yaml")], capsys, "none.yaml: recipe file not found")
    _bad(["train", str(recipe), "--set", "optim.lr=fast"], capsys,
         "config key 'optim.lr': expected float, got 'fast'")
    _bad(["train", str(recipe), "--set", "model.hiden_size=3"], capsys,
         "unknown config key 'model.hiden_size'; allowed keys in 'model': cell, embedding_size")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _bad(["train", str(recipe), "--set", f"data.corpus={empty}", "--out", str(tmp_path / "e")], capsys,
         "empty.txt: file is empty")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"hello\nwor\xffld\n")
    _bad(["train", str(recipe), "--set", f"data.corpus={binary}", "--out", str(tmp_path / "b")], capsys,
         "bin.txt:2:4: invalid UTF-8 byte 0xff")
    _bad(["train", str(recipe), "--set", f"data.corpus={tmp_path / 'missing.txt'}"], capsys, "missing.txt")
    assert not any(tmp_path.glob("*/last")) and not any(tmp_path.glob("runs/*/last"))  # nothing half-written
    _bad(["train"], capsys, "give a RECIPE.yaml, or --resume RUN_DIR")
    _bad(["train", "--resume", str(tmp_path / "nowhere")], capsys, "checkpoint directory not found")


def test_bad_checkpoints_and_prompts(trained, tmp_path, capsys):
    import shutil

    d, _ = trained
    _bad(["generate", str(d / "run" / "best"), "--prompt", "First\u00e9"], capsys,
         "--prompt: '\u00e9' at position 5 is not in the checkpoint's vocabulary")
    _bad(["evaluate", str(tmp_path / "nope")], capsys, "nope: checkpoint directory not found")

    def copy(name):
        c = tmp_path / name
        shutil.copytree(d / "run" / "best", c)
        return c

    c = copy("other_task")
    meta = json.loads((c / "config.json").read_text())
    meta["task"] = "classify"
    (c / "config.json").write_text(json.dumps(meta))
    _bad(["generate", str(c), "--prompt", "a"], capsys, "checkpoint is from task 'classify'; expected a 'lm'")
    c = copy("truncated")
    f = c / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    _bad(["evaluate", str(c)], capsys, "model.safetensors: truncated or corrupted safetensors file")
    c = copy("badjson")
    (c / "config.json").write_text("{not json")
    _bad(["generate", str(c)], capsys, "config.json:1:2: corrupted JSON")
    c = copy("noconfig")
    (c / "config.json").unlink()
    _bad(["generate", str(c)], capsys, "not a checkpoint (config.json is missing)")
    c = copy("novocab")
    (c / "vocab.json").unlink()
    _bad(["generate", str(c)], capsys, "vocab.json is missing")


def test_demo_shakespeare_tiny_budget(tmp_path, capsys):
    assert main(["demo", "--minutes", "0.02", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "validation loss" in out and "bits/char" in out and "ROMEO:" in out
    r = tmp_path / "demo"
    assert (r / "best" / "model.safetensors").is_file() and (r / "curves.png").is_file()
    sample = out.split("ROMEO:", 1)[1]
    assert len(sample.strip()) > 100  # a 500-character passage was printed


def test_demo_runs_a_fixed_number_of_steps(tmp_path, capsys):
    """The demo's result depends on the work done, not on the clock: --steps N trains N steps."""
    capsys.readouterr()
    assert main(["demo", "--steps", "12", "--threads", "1", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["step"] == 12 and summary["stopped"] == "max_steps"
    assert "for 12 steps" in out
    _bad(["demo", "--steps", "0"], capsys, "--steps: expected a positive integer")


def test_demo_adding_is_dispatched(monkeypatch):
    import rnnkit.demos.adding as adding

    seen = {}

    def fake_demo(*args, **kw):
        seen["args"], seen["kw"] = args, kw
        return []

    monkeypatch.setattr(adding, "adding_demo", fake_demo)
    assert main(["demo", "adding", "--steps", "3", "--T", "7"]) == 0
    assert seen["args"] == (7, 3, 64, 1e-2, 0)  # T, steps, hidden, lr, seed
    assert seen["kw"] == {"out": "runs/demo-adding"}


def test_a_flag_the_pipeline_does_not_take_is_named(trained, capsys):
    """evaluate/predict pass options on by name through the TaskSpec; one the pipeline's
    function does not take is an error naming it, never silently ignored."""
    run = trained[0] / "run" / "best"
    _bad(["evaluate", str(run), "--beam-size", "3"], capsys, "--beam-size", "does not apply to lm")
    _bad(["evaluate", str(run), "--plot", "x.png"], capsys, "--plot", "does not apply to lm")
    _bad(["predict", str(run), "hello"], capsys, "'lm' checkpoint", "predict supports",
         "classify")


def test_every_subcommand_module_is_listed():
    """commands/__init__.py lists every subcommand module (a new one cannot be forgotten)."""
    import pkgutil

    import rnnkit.commands as commands
    from rnnkit.commands import MODULES

    found = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    assert found == set(MODULES)


def test_train_prints_a_header_and_a_short_summary(tmp_path, capsys):
    """Before the first step: task, parameters, data sizes, device, run directory; at the end a
    few lines (the whole summary stays in summary.json), naming the step best/ came from."""
    from safetensors.torch import load_file

    corpus = _corpus(tmp_path)
    capsys.readouterr()
    assert main(["train", str(_recipe(tmp_path, corpus)), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    n = sum(t.numel() for t in load_file(str(tmp_path / "r" / "best" / "model.safetensors")).values())
    assert f"training lm (lstm): {n:,} parameters" in out
    assert "tokens: train 1,800, valid 200" in out and "vocabulary: " in out
    assert "device: cpu" in out and f"run directory: {tmp_path / 'r'}" in out
    assert f"best val_loss {summary['best']:.4f} at step {summary['best_step']}" in out
    assert f"stopped (max_epochs) at step {summary['step']} after 1 full epoch(s)" in out
    assert not out.rstrip().endswith("}")  # no raw JSON dump


def test_commands_drop_to_one_thread_on_a_busy_machine(monkeypatch):
    import os

    import torch

    import rnnkit.runtime as runtime
    from rnnkit.commands import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1), 0.0, 0.0))
        assert runtime.busy()
        set_threads(None)
        assert torch.get_num_threads() == 1
        set_threads(2)
        assert torch.get_num_threads() == 2  # an explicit --threads wins
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert not runtime.busy()
        torch.set_num_threads(before)
        set_threads(None)
        assert torch.get_num_threads() == before  # idle: torch's own choice stays
    finally:
        torch.set_num_threads(before)
