"""Test-wide settings: one intra-op thread.

The tests use tiny shapes, where extra threads only add synchronisation, and on a
loaded 2-core machine OpenMP oversubscription made small GRU steps 30x slower.
Subprocesses started by tests inherit OMP_NUM_THREADS.

The allocator tuning (rnnkit.runtime.tune_malloc, which keeps freed memory in the
process) is off, because tests that call the CLI or Trainer.fit in-process would otherwise
keep the pytest process at its peak memory; tests/kernels/test_malloc.py turns it on in
subprocesses.

Hypothesis: the ``ci`` profile (default) is derandomised, so CI runs the same examples every
time, with no deadline (a loaded 2-core machine); each property states its own
``max_examples`` through ``rnnkit.testing.fuzz_examples(n)``, which multiplies it by 20 under
``HYPOTHESIS_PROFILE=long`` (fresh examples, for local fuzzing runs).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RNNKIT_MALLOC_TUNE", "0")

import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

torch.set_num_threads(1)

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per CPU this process may use, at most 4.

    On CI's 2 cores that is 2: the docs walk (a third of the suite, one file) runs in one
    worker while the other takes the rest. Each worker keeps one torch thread (above), so two
    workers on two cores do not oversubscribe them. More than 4 gains little (the walk is one
    file) and multiplies torch's memory. ``-n 0`` runs everything in this process.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return max(1, min(4, usable))


#: test files that start first: the docs walk runs a third of the suite's time in one file, so
#: under ``--dist loadfile`` it goes to a worker at the start, not after everything else
FIRST = ("tests/docs/test_docs_walk.py",)


def pytest_collection_modifyitems(config, items):
    """Put :data:`FIRST` first (the same stable order in every worker, as xdist requires)."""
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        return FIRST.index(path) if path in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: everything else keeps its order


_prebuild = None


def pytest_sessionstart(session):
    """On a full run (no paths given), build the compiled time loops in the background from the
    start: the first tests that need them (in any worker, or a docs-walk command) then wait on
    the build's lock for the rest of it instead of starting it, which cost a worker about a
    minute on CI's cold cache. Partial runs build on first use, as users' processes do."""
    global _prebuild
    import subprocess
    import sys

    from _pytest.config import Config

    config = session.config
    if (hasattr(config, "workerinput") or config.args_source != Config.ArgsSource.TESTPATHS
            or os.environ.get("RNNKIT_COMPILED_SCANS") == "0"):
        return
    code = "from rnnkit.kernels import compiled\nif not compiled.built():\n    compiled.build()\n"
    _prebuild = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)


def pytest_sessionfinish(session):
    """A build still running when the run ends (everything failed early, or was interrupted) is
    stopped with SIGINT, so it removes its temporary build directory."""
    import signal

    if _prebuild is not None and _prebuild.poll() is None:
        os.killpg(_prebuild.pid, signal.SIGINT)
        try:
            _prebuild.wait(30)
        except Exception:  # noqa: BLE001 - it is only a cache warm-up
            os.killpg(_prebuild.pid, signal.SIGKILL)
