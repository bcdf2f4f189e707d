"""Real processes: SIGKILL mid-epoch then --resume, and 2-process DDP (gloo) vs one process.

Each test starts two ``python -m rnnkit train`` processes (the reference run is in
process); on an idle 2-core machine each takes a few seconds, mostly importing torch and
Lightning.  The time limits are generous because shared test machines can be loaded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch


def _cmd(*args):
    return [sys.executable, "-m", "rnnkit", "train", *map(str, args)]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(args, timeout=600):
    p = subprocess.run(_cmd(*args), env=_env(), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _in_process(recipe, out, overrides=()):
    """The reference run in this process (1 thread, as in the subprocesses)."""
    from rnnkit.train import load_recipe, run_training

    try:
        return run_training(load_recipe(recipe, list(overrides)), out=out)
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path, corpus, lm_helpers):
    tiny_recipe, weights = lm_helpers
    from rnnkit.train.checkpoint import read_trainer_state

    recipe = tiny_recipe(tmp_path, corpus, data={"bptt": 10},
                         model={"hidden_size": 48, "embedding_size": 16},
                         trainer={"max_epochs": 2, "checkpoint_every_steps": 4, "deterministic": True,
                                  "threads": 1})
    victim = subprocess.Popen(_cmd(recipe, "--out", tmp_path / "victim"), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "victim" / "last" / "trainer_state.json"
    deadline = time.time() + 600
    while not state.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(60) == -signal.SIGKILL  # killed, not finished
    meta, _ = read_trainer_state(tmp_path / "victim" / "last")  # a complete, loadable checkpoint
    s = meta["state"]
    assert s["stopped"] is None and s["batch_in_epoch"] > 0 and s["epoch"] == 0  # mid-epoch
    _run(["--resume", tmp_path / "victim"])  # no recipe: the run's saved config
    _in_process(recipe, tmp_path / "ref")  # the uninterrupted run (same thread count and mode)
    a, b = weights(tmp_path / "victim"), weights(tmp_path / "ref")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ra = json.loads((tmp_path / "victim" / "summary.json").read_text())
    rb = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert ra["step"] == rb["step"] and ra["val"] == rb["val"]
    assert not list((tmp_path / "victim").glob(".last.*"))


def test_ddp_two_cpu_processes_match_single_process(tmp_path, corpus, lm_helpers):
    """Each of 2 gloo ranks trains on half of the global batch; averaged gradients = one process."""
    tiny_recipe, weights = lm_helpers
    recipe = tiny_recipe(tmp_path, corpus, model={"dropout": 0.0, "embedding_dropout": 0.0},
                         optim={"name": "sgd", "lr": 0.5, "momentum": 0.9},
                         trainer={"max_steps": 8, "checkpoint_every_steps": 3, "grad_clip": 1.0})
    ddp_args = ["--set", "trainer.devices=2", "--set", "trainer.strategy=ddp", "--set", "trainer.accelerator=cpu"]
    _run([recipe, "--out", tmp_path / "ddp", *ddp_args])
    _in_process(recipe, tmp_path / "single", ["trainer.accelerator=cpu"])
    sd, ss = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("ddp", "single"))
    assert sd["world_size"] == 2 and ss["world_size"] == 1 and sd["step"] == ss["step"] == 8
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4)
    assert sd["val"]["val_loss"] == pytest.approx(ss["val"]["val_loss"], abs=1e-4)
