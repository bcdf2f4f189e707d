"""One training per run directory (issue 19, item 3).

A run holds an exclusive lock on its directory (``<run_dir>/.rnnkit-run.lock``, an flock held
for the life of the training, with the holder's pid, host and start time in the file). A
second training into the same directory stops with one line naming the directory and the
holder; the lock of a killed run is taken over by the next start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from rnnkit.commands import main as cli
from rnnkit.train import load_recipe, run_training


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _holder(run_dir):
    """A process that takes the run lock of ``run_dir``, says so, and sleeps until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from rnnkit.train.run import lock_run_dir
        lock = lock_run_dir({str(run_dir)!r})
        print("locked", flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _kill(p):
    p.kill()
    p.wait(timeout=60)


def test_two_trainings_into_the_same_out(tmp_path, corpus, lm_helpers, capsys):
    """The issue's case: two ``rnnkit train --out X`` started together; the second is refused."""
    corpus.write_text(corpus.read_text() * 300)  # an epoch long enough to still be running
    recipe = lm_helpers[0](tmp_path, corpus, trainer={"max_epochs": 1, "checkpoint_every_steps": None,
                                                      "max_time_minutes": 1.0, "log_every_steps": 1})
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "rnnkit", "train", str(recipe), "--out", str(out)],
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = threading.Event()

    def watch():
        for line in first.stdout:
            if " step " in line:
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert started.wait(300), "the first training did not start"
        assert not (out / "last").exists()  # the old check (last/ exists) cannot see it yet
        rc = cli(["train", str(recipe), "--out", str(out), "--set", "trainer.max_steps=3"])
    finally:
        _kill(first)
    assert rc == 2


def test_second_run_error_names_directory_and_holder(tmp_path, corpus, lm_helpers, capsys):
    recipe = lm_helpers[0](tmp_path, corpus, trainer={"max_steps": 1})
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        assert cli(["train", str(recipe), "--out", str(out)]) == 2
    finally:
        _kill(holder)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(out) in err[0] and f"pid {holder.pid}" in err[0] and socket.gethostname() in err[0], err
    assert not (out / "last").exists()


def test_resume_into_a_running_directory_is_refused(trained, tmp_path):
    import shutil

    from rnnkit.train.lock import LockError

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    holder = _holder(run)
    try:
        with pytest.raises(LockError, match="another training is running"):
            run_training(load_recipe(trained.parent / "recipe.yaml"), resume=run, test_split=None)
    finally:
        _kill(holder)


def test_killed_run_lock_is_taken_over(tmp_path, corpus, lm_helpers):
    recipe = lm_helpers[0](tmp_path, corpus, trainer={"max_steps": 2})
    out = tmp_path / "run"
    holder = _holder(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    lock_file = out / ".rnnkit-run.lock"
    assert json.loads(lock_file.read_text())["pid"] == holder.pid  # left behind by the dead run
    summary = run_training(load_recipe(recipe), out=out, test_split=None)
    assert summary["step"] == 2
    assert not lock_file.exists()  # released at the end


def test_auto_named_run_dir_skips_a_running_one(tmp_path, corpus, lm_helpers):
    """Without --out, a directory whose run is still starting (no last/ yet) is not reused."""
    from rnnkit.train.run import lock_run_dir

    recipe = lm_helpers[0](tmp_path, corpus, trainer={"max_steps": 1})
    base = tmp_path / "runs" / "recipe"
    lock = lock_run_dir(base)  # another run of this recipe, this process holds its lock
    try:
        summary = run_training(load_recipe(recipe), recipe_name="recipe", test_split=None)
    finally:
        lock.release()
    assert summary["run_dir"] == str(tmp_path / "runs" / "recipe-2")
