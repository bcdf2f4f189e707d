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
from pathlib import Path

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


def _usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a container
    limited to 2 CPUs on a 16-core host has 16 in its affinity and ``200000 100000`` in
    ``cpu.max``)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return n


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per usable CPU (:func:`_usable_cpus`), at
    most 4; ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it, as in xdist itself.

    On CI's 2 cores that is 2: the docs walk (a third of the suite, one file) runs in one
    worker while the other takes the rest. Each worker keeps one torch thread (above), so two
    workers on two cores do not oversubscribe them. More than 4 gains little (the walk is one
    file) and multiplies torch's memory. ``-n 0`` runs everything in this process.
    """
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if env:
        return int(env)
    return max(1, min(4, _usable_cpus()))


#: test files that start first, relative to the root: the docs walk runs a third of the suite's
#: time in one file, so under ``--dist loadfile --no-loadscope-reorder`` (pyproject) it goes to a
#: worker at the start, not after everything else. (xdist's default reorder would queue files by
#: their number of tests, which put the walk's 24 tests 28th.)
FIRST = ("tests/docs/test_docs_walk.py",)


def pytest_collection_modifyitems(config, items):
    """Put :data:`FIRST` first (the same stable order in every worker, as xdist requires)."""
    first = [config.rootpath / f for f in FIRST]

    def rank(item):
        return first.index(item.path) if item.path in first else len(first)

    items.sort(key=rank)  # stable: everything else keeps its order
