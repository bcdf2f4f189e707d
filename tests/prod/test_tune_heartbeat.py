"""A dead worker's trial is found, failed and re-run with its values before the study ends.

A dead worker is simulated as what a SIGKILL leaves in the study: a RUNNING trial with sampled
values whose heartbeat stopped (``_dead_trial``); the last test kills a real ``rnnkit tune``
process.  Waits are on observable state (trial states in the study) with bounded timeouts.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from rnnkit.train.config import ConfigError
from rnnkit.tune import load_search_recipe, run_search, storage_url
from rnnkit.tune.heartbeat import Reclaimer

LR = {"optim.lr": {"type": "float", "low": 1e-3, "high": 3e-2}}
HB, GRACE = 1, 3  # the tests' heartbeat, and the grace period it gives by default (3 x heartbeat)


def _recipe(h, tmp: Path, search: dict, **trainer) -> Path:
    trainer = {"max_steps": 8, "val_every_steps": 4, **trainer}
    r = h.lm_recipe(h.make_text(tmp / "corpus.txt", 4000), **trainer)
    r["model"].update(hidden_size=16, embedding_size=8, num_layers=1)
    r["trainer"]["out_dir"] = str(tmp / "runs")
    r["search"] = {"sampler": "random", "pruner": "none", "seed": 1, "space": LR, **search}
    path = tmp / "tiny_search.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def _study(out: Path, rec: Path) -> tuple[RDBStorage, optuna.Study]:
    store = RDBStorage(storage_url(out / "study.db"))
    study = optuna.create_study(study_name=rec.stem, storage=store, direction="minimize", load_if_exists=True)
    return store, study


def _dead_trial(out: Path, rec: Path, heartbeat: bool = True) -> tuple[int, dict, float]:
    """A trial as a worker killed mid-trial leaves it: RUNNING, values sampled, heartbeat stopped
    now (or never recorded: killed between starting the trial and its first heartbeat).
    Returns its number, its values and the time of its last sign of life."""
    out.mkdir(parents=True, exist_ok=True)
    _, search = load_search_recipe(rec)
    store, study = _study(out, rec)
    t = study.ask()
    params = search.suggest(t)
    if heartbeat:
        store.record_heartbeat(t._trial_id)
    return t.number, params, time.time()


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "trials.json").read_text())["rows"]


def _reclaimed(rows: list[dict], number: int, params: dict) -> dict:
    """The dead trial is FAIL and its values were trained again to completion; nothing is left
    RUNNING or WAITING. Returns the retry's row."""
    states = {r["number"]: r["state"] for r in rows}
    assert "RUNNING" not in states.values() and "WAITING" not in states.values(), states
    assert states[number] == "FAIL", states
    retries = [r for r in rows if r["retry_of"] == number]
    assert len(retries) == 1 and retries[0]["state"] == "COMPLETE", rows
    assert retries[0]["params"] == params
    return retries[0]


def test_heartbeat_and_grace_are_configured_and_checked(helpers, tmp_path):
    assert load_search_recipe(_recipe(helpers, tmp_path, {}))[1].grace_period == 30  # 3 x 10 s
    assert load_search_recipe(_recipe(helpers, tmp_path, {"heartbeat": HB}))[1].grace_period == GRACE
    assert load_search_recipe(_recipe(helpers, tmp_path, {"heartbeat": 5, "grace": 7}))[1].grace_period == 7
    # a live trial's heartbeat can read as heartbeat + 1 s old (SQLite keeps whole seconds)
    with pytest.raises(ConfigError, match="search.grace: expected at least heartbeat \\+ 2 = 7 s"):
        load_search_recipe(_recipe(helpers, tmp_path, {"heartbeat": 5, "grace": 6}))
    with pytest.raises(ConfigError, match="search.heartbeat"):
        load_search_recipe(_recipe(helpers, tmp_path, {"heartbeat": 0}))


def test_rerun_evaluates_a_dead_workers_trial_before_it_ends(helpers, tmp_path):
    # the report: the rerun finished its own trials before the dead trial's heartbeat went
    # stale, and returned with the dead trial RUNNING forever, its values never evaluated
    rec, out = _recipe(helpers, tmp_path, {"heartbeat": HB}), tmp_path / "out"
    number, params, _ = _dead_trial(out, rec)
    s = run_search(rec, trials=1, out=out, log=lambda *a: None)
    _reclaimed(_rows(out), number, params)
    assert (s["complete"], s["failed"]) == (2, 1)


def test_a_finished_study_still_reclaims_a_dead_workers_trial(helpers, tmp_path):
    # the study already holds --trials finished trials: a rerun has nothing to start, but a dead
    # worker's trial is still RUNNING; the rerun must not leave it so
    rec, out = _recipe(helpers, tmp_path, {"heartbeat": HB}), tmp_path / "out"
    run_search(rec, trials=1, out=out, log=lambda *a: None)
    number, params, _ = _dead_trial(out, rec)
    run_search(rec, trials=1, out=out, log=lambda *a: None)
    _reclaimed(_rows(out), number, params)


def test_a_trial_killed_before_its_first_heartbeat_is_reclaimed(helpers, tmp_path):
    # Optuna never fails a RUNNING trial without a heartbeat row as stale
    rec, out = _recipe(helpers, tmp_path, {"heartbeat": HB}), tmp_path / "out"
    number, params, _ = _dead_trial(out, rec, heartbeat=False)
    run_search(rec, trials=1, out=out, log=lambda *a: None)
    _reclaimed(_rows(out), number, params)


def test_a_busy_worker_reclaims_a_dead_trial_within_heartbeat_plus_grace(helpers, tmp_path):
    # the worker is in the middle of its own trial (its log call at the trial's start blocks
    # until the dead trial is failed): only a check that runs during a trial can reclaim it
    rec, out = _recipe(helpers, tmp_path, {"heartbeat": HB}), tmp_path / "out"
    number, params, died = _dead_trial(out, rec)
    seen: dict[str, float] = {}

    def log(msg: str) -> None:
        if msg.startswith(f"trial {number + 1}:") and "trial" not in seen:
            seen["trial"] = time.time()
            _, study = _study(out, rec)
            deadline = time.time() + 60
            while study.get_trials(deepcopy=False)[number].state == TrialState.RUNNING:
                assert time.time() < deadline, "the dead trial was not reclaimed during a trial"
                time.sleep(0.1)
            seen["failed"] = time.time()

    run_search(rec, trials=1, out=out, log=log)
    _reclaimed(_rows(out), number, params)
    assert "failed" in seen, "the worker never started its own trial"
    # the bound: failed no later than heartbeat + grace (+1 s: SQLite stores heartbeats to the
    # second) after its last heartbeat; 5 s of slack for a loaded machine; and never before grace
    # (less the same second) had passed, or a live worker's trial could be taken from it
    assert GRACE - 1 <= seen["failed"] - died <= HB + GRACE + 1 + 5


def test_a_live_workers_trial_is_waited_for_not_failed(helpers, tmp_path):
    # another worker is alive and still training when this one finishes: its trial outlives the
    # grace period but keeps beating, so it is waited for and never failed
    rec, out = _recipe(helpers, tmp_path, {"heartbeat": HB}), tmp_path / "out"
    out.mkdir(parents=True)
    _, search = load_search_recipe(rec)
    store, study = _study(out, rec)
    peer = study.ask()
    search.suggest(peer)
    stop = threading.Event()

    def beat() -> None:  # the live worker: a heartbeat every 0.2 s, until told to finish
        while not stop.wait(0.2):
            store.record_heartbeat(peer._trial_id)

    def finish_later() -> None:  # once this worker's own trial is done, stay alive past grace
        deadline = time.time() + 60
        while not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            if time.time() > deadline:
                break
            time.sleep(0.1)
        time.sleep(GRACE + 2)
        stop.set()
        study.tell(peer, 1.0)

    store.record_heartbeat(peer._trial_id)
    threads = [threading.Thread(target=beat, daemon=True), threading.Thread(target=finish_later, daemon=True)]
    for t in threads:
        t.start()
    try:
        s = run_search(rec, trials=1, out=out, log=lambda *a: None)
    finally:
        for t in threads:
            t.join(timeout=90)
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"], rows  # waited; neither failed nor retried
    assert s["failed"] == 0


def test_a_worker_whose_trial_was_taken_for_dead_stops_it_and_goes_on(helpers, tmp_path):
    # its heartbeats were late (a stalled machine, a locked database) and another worker failed
    # its trial and queued the values: it must not die with Optuna's "Cannot tell a FAIL trial"
    rec, out = _recipe(helpers, tmp_path, {"heartbeat": HB}), tmp_path / "out"
    lines: list[str] = []

    def log(msg: str) -> None:
        lines.append(msg)
        if msg.startswith("trial 0: optim.lr"):  # the other worker, as Reclaimer.reclaim does it
            rc = Reclaimer(storage_url(out / "study.db"), heartbeat=HB, grace=GRACE, log=lambda *a: None)
            _, study = _study(out, rec)
            trial = study.get_trials(deepcopy=False)[0]
            assert rc._fail(trial._trial_id)
            rc.retry(study, rc.storage.get_trial(trial._trial_id))

    s = run_search(rec, trials=1, out=out, log=log)
    rows = _rows(out)
    assert [(r["state"], r["retry_of"]) for r in rows] == [("FAIL", None), ("COMPLETE", 0)]
    assert rows[1]["params"] == rows[0]["params"] and s["complete"] == 1
    assert any("trial 0 was failed by another worker" in m for m in lines), lines


def test_killed_worker_trial_is_failed_and_retried(helpers, tmp_path):
    # a real worker, SIGKILLed mid-trial, and the rerun started at once (no waiting for grace)
    rec = _recipe(helpers, tmp_path, {"heartbeat": HB},
                  max_steps=200000, max_epochs=100000,  # the first trial must outlive the kill
                  val_every_steps=100)  # (max_epochs is 1 by default: a 20-step trial could end first)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "rnnkit", "tune", str(rec), "--trials", "2", "--out", str(out)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = out / "study.db"
    deadline = time.time() + 180
    try:
        while time.time() < deadline:  # kill it in the middle of its first trial
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        if con.execute("select count(*) from trials where state='RUNNING'").fetchone()[0]:
                            break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.2)
        else:
            pytest.fail("the tune worker never started a trial")
        time.sleep(1.0)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    rec.write_text(rec.read_text().replace("max_steps: 200000", "max_steps: 8").replace(
        "val_every_steps: 100", "val_every_steps: 4"))
    s = run_search(rec, trials=2, out=out, log=lambda *a: None)
    rows = _rows(out)
    assert s["failed"] == 1 and s["complete"] == 3
    killed = next(r for r in rows if r["state"] == "FAIL")
    _reclaimed(rows, killed["number"], killed["params"])
