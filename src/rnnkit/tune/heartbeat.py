"""Dead workers: a trial whose worker stopped beating is failed and its values run again.

Each worker records a heartbeat for the trial it trains every ``search.heartbeat`` seconds
(Optuna's heartbeat thread). A RUNNING trial whose last heartbeat is more than ``search.grace``
seconds old (default ``3 x heartbeat``) belongs to a dead worker: it is failed (state FAIL),
and a copy with the same values is queued (WAITING, ``system_attrs["failed_trial"]`` = the dead
trial's number); the next trial any worker starts is that copy. Every worker looks for such
trials

- when it starts, and after each of its trials (before it draws the next);
- every ``heartbeat`` seconds while it trains (:meth:`Reclaimer.watch`);
- before it leaves (:meth:`Reclaimer.settle`): it waits until every trial that was RUNNING when
  its own trials ended has finished or been failed as dead, and runs every queued copy, so a
  worker never leaves the study with a trial whose worker is dead or values nobody evaluated.

The bound: a dead worker's trial is failed and queued within ``heartbeat + grace + 1`` seconds
of its death while any worker is running: it reads as stale at the latest ``grace + 1`` s after
its last heartbeat (so after the death; the second is SQLite's, which keeps timestamps to the
second, so ``grace`` s can read as ``grace - 1``), and each worker checks every ``heartbeat`` s.
The copy starts when a worker next starts a trial (a busy worker finishes its own first), and
before the last worker leaves. A live trial is never failed before ``grace - 1`` s without a
heartbeat, and its last one can read as ``heartbeat + 1`` s old, so ``grace`` must be at least
``heartbeat + 2``; the default ``3 x heartbeat`` leaves a live worker ``2 x heartbeat - 1`` s
of delay (a loaded machine, a locked database) before it could be taken for dead.

Failing a trial is one conditional ``UPDATE ... WHERE state = 'RUNNING'``, so of several workers
that find the same dead trial exactly one fails it and queues its values. Optuna's own check
(``fail_stale_trials``, run before each trial) reads the state, then writes it, and on SQLite two
workers can both pass the read and queue the values twice; it is switched off (its grace
period set out of reach) and this module does all the checking.

A trial whose worker died before its first heartbeat (Optuna marks a trial RUNNING a moment
before its heartbeat thread records one) has no heartbeat to go stale; Optuna never fails it.
Here it counts as dead once it has been RUNNING ``grace + 1`` s without one (by its start time,
on the worker's clock).

Example::

    rc = Reclaimer(url, heartbeat=10, grace=30)       # rc.storage: the study's RDBStorage
    study = optuna.load_study(study_name=name, storage=rc.storage)
    with rc.watch(study):
        study.optimize(objective, n_trials=20)
        rc.settle(study, run_queued=lambda: study.optimize(objective, n_trials=1))
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

__all__ = ["Reclaimer"]

_NEVER = 100 * 365 * 24 * 3600


class Reclaimer:
    """The study's storage with heartbeats, and the three checks for dead workers' trials
    (see the module docstring). ``max_retry``: copies of one set of values, at most."""

    def __init__(self, url: str, *, heartbeat: int, grace: int, max_retry: int = 2, log=print):
        from optuna.storages import RDBStorage

        try:  # optuna >= 4.9
            from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

            kw = "heartbeat_stale_trial_callback"
        except ImportError:
            from optuna.storages import RetryFailedTrialCallback as Retry

            kw = "failed_trial_callback"
        self.retry = Retry(max_retry=max_retry)
        self.heartbeat, self.grace, self.log = heartbeat, grace, log
        # Optuna's heartbeat thread, without its stale-trial check (a grace of 100 years)
        self.storage = RDBStorage(
            url, heartbeat_interval=heartbeat, grace_period=_NEVER, **{kw: self.retry}
        )
        self._lock = threading.Lock()
        # the number of the trial this worker trains: never reclaimed here
        self.own: int | None = None

    def reclaim(self, study: Any) -> list[int]:
        """Fail the RUNNING trials of dead workers and queue their values; their numbers."""
        failed = []
        with self._lock:
            for trial_id, number in self._dead(study):
                if number == self.own or not self._fail(trial_id):
                    continue
                self.retry(study, self.storage.get_trial(trial_id))
                failed.append(number)
                self.log(f"trial {number}: no heartbeat for {self.grace} s, its worker is dead; "
                         "its values are queued to run again")
        return failed

    def _fail(self, trial_id: int) -> bool:
        """RUNNING -> FAIL in one statement; False if the trial was no longer RUNNING (it finished,
        or another worker failed it first)."""
        import sqlalchemy as sa
        from optuna.storages._rdb import models as m
        from optuna.trial import TrialState
        from sqlalchemy.orm import Session

        T = m.TrialModel
        with Session(self.storage.engine) as s, s.begin():
            n = s.execute(sa.update(T).where(T.trial_id == trial_id, T.state == TrialState.RUNNING)
                          .values(state=TrialState.FAIL).execution_options(synchronize_session=False)).rowcount
            if n == 1:  # the model's setter stores it as its Optuna version does (local or UTC)
                s.get(T, trial_id).datetime_complete = datetime.now()
        return n == 1

    def _dead(self, study: Any) -> list[tuple[int, int]]:
        """``(trial_id, number)`` of the RUNNING trials whose last heartbeat is over ``grace`` s
        old (the database's clock, as Optuna compares), or that have run ``grace + 1`` s without
        one (the worker's clock, as Optuna stamps ``datetime_start``)."""
        import sqlalchemy as sa
        from optuna.storages._rdb import models as m  # heartbeats are in no public API
        from optuna.trial import TrialState

        study_id = self.storage.get_study_id_from_name(study.study_name)
        q = (
            sa.select(m.TrialModel.trial_id, m.TrialModel.number, m.TrialHeartbeatModel.heartbeat)
            .outerjoin(
                m.TrialHeartbeatModel, m.TrialHeartbeatModel.trial_id == m.TrialModel.trial_id
            )
            .where(m.TrialModel.study_id == study_id, m.TrialModel.state == TrialState.RUNNING)
        )
        with self.storage.engine.connect() as con:
            db_now = con.execute(sa.select(sa.func.now())).scalar().replace(tzinfo=None)
            rows = con.execute(q).all()
        grace = timedelta(seconds=self.grace)
        dead = [
            (tid, n)
            for tid, n, beat in rows
            if beat is not None and db_now - beat.replace(tzinfo=None) > grace
        ]
        for tid, n, beat in rows:
            if beat is None:
                # local time, in every Optuna version
                start = self.storage.get_trial(tid).datetime_start
                if start is not None and datetime.now() - start > grace + timedelta(seconds=1):
                    dead.append((tid, n))
        return dead

    @contextlib.contextmanager
    def watch(self, study: Any) -> Iterator[None]:
        """Run :meth:`reclaim` every ``heartbeat`` s in a thread while the block runs."""
        stop = threading.Event()

        def loop() -> None:
            errors = 0
            while not stop.wait(self.heartbeat):
                try:
                    self.reclaim(study)
                    errors = 0
                except Exception as e:  # a locked or unreachable database: try again next beat
                    errors += 1
                    if errors == 3:
                        self.log(f"search: checking for dead workers' trials failed 3 times ({e})")

        t = threading.Thread(target=loop, name="rnnkit-tune-reclaim", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()

    def settle(
        self, study: Any, run_queued: Callable[[], Any], deadline: float | None = None
    ) -> None:
        """Before this worker leaves: wait for each trial RUNNING now (and each copy of a dead
        one) to finish or be failed as dead, and run every queued trial with ``run_queued``
        (one trial per call). ``deadline`` (``time.monotonic()``): stop there, saying what is
        left."""
        from optuna.trial import TrialState

        last = max((t.number for t in study.get_trials(deepcopy=False)), default=-1)
        told: set[int] = set()
        while True:
            self.reclaim(study)
            trials = study.get_trials(deepcopy=False)
            queued = [t.number for t in trials if t.state == TrialState.WAITING]
            running = [t.number for t in trials if t.state == TrialState.RUNNING
                       and (t.number <= last or "failed_trial" in t.system_attrs)]
            if not queued and not running:
                return
            if deadline is not None and time.monotonic() >= deadline:
                self.log(
                    f"search: timeout with trial(s) {queued + running} queued or running; run the "
                    "command again to finish them"
                )
                return
            if queued:
                run_queued()
                continue
            if set(running) - told:
                self.log(
                    f"waiting for trial(s) {running} of other workers: they finish there, or are "
                    f"run again here once {self.grace} s pass without a heartbeat"
                )
                told |= set(running)
            time.sleep(min(1.0, self.heartbeat))
