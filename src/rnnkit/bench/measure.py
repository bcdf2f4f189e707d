"""Timing and peak-memory primitives shared by every benchmark suite.

A :class:`Task` is one thing to measure: ``setup()`` runs untimed before each
call (e.g. dropping last step's gradients), ``run()`` is timed. Contenders are
measured side by side in one process, after warm-up, *interleaved*::

    for r in range(repeats):          # A B C, B C A, C A B, ...: a slow spell on a
        for name in rotated(tasks, r):  # shared machine hits every contender alike
            samples[name].append(time of `number` calls of tasks[name], per call)

and each contender is summarised by the median of its samples. ``number``
(calls per sample) is calibrated per contender so that one sample lasts at
least ``min_sample_s``, which keeps timer and scheduler jitter small against
short calls.

Peak memory is the largest number of bytes allocated *during* a call above
what was allocated when it started (inputs and parameters excluded; outputs,
saved activations, gradients and temporaries included). On CUDA it comes from
``torch.cuda.max_memory_allocated``. On CPU torch keeps no allocator
statistics, so it is read from the profiler's memory events
(``profile_memory=True``): every allocation and free made through torch's CPU
allocator, oneDNN's buffers included, in time order; the peak is the maximum
of their running sum. The profiler slows the call down, so memory is measured
in a separate, untimed call.
"""
from __future__ import annotations

import gc
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass

import torch

__all__ = ["CLOCKS", "Task", "interleave", "calibrate", "peak_bytes", "peak_of", "summarize"]


@dataclass
class Task:
    """One measured call: ``setup()`` (untimed, optional) then ``run()`` (timed)."""

    run: Callable[[], object]
    setup: Callable[[], object] | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: "wall": elapsed time; "cpu": CPU time of this process (all its threads), which leaves
#: out the time the process waited for a core: steadier on a shared machine, and equal
#: to wall time on an idle one when torch runs one thread.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _time_calls(task: Task, number: int, device: torch.device, clock: str = "wall") -> float:
    """Seconds spent in ``number`` calls of ``task.run`` (setup excluded)."""
    now = CLOCKS[clock]
    total = 0.0
    for _ in range(number):
        if task.setup is not None:
            task.setup()
        _sync(device)
        t0 = now()
        task.run()
        _sync(device)
        total += now() - t0
    return total


def calibrate(task: Task, min_sample_s: float, device: torch.device, clock: str = "wall") -> int:
    """Calls per sample so that a sample lasts at least ``min_sample_s`` (at least 1)."""
    once = _time_calls(task, 1, device, clock)
    if once <= 0:
        return 1
    return max(1, math.ceil(min_sample_s / once))


def interleave(tasks: dict[str, Task], *, repeats: int, warmup: int = 2,
               min_sample_s: float = 0.05, device: torch.device | str = "cpu",
               clock: str = "wall",
               progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Time contenders side by side: warm up each, then ``repeats`` rounds A B C A B C ...

    Returns ``{name: {"samples_ms": [per-call ms of each round], "calls_per_sample": n}}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats: expected a positive int, got {repeats!r}")
    if clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {list(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and torch.device(device).type != "cpu":
        raise ValueError("clock: 'cpu' time does not include GPU work; use clock='wall' on "
                         f"{torch.device(device).type}")
    device = torch.device(device)
    for task in tasks.values():
        _time_calls(task, warmup, device, clock)
    number = {name: calibrate(task, min_sample_s, device, clock) for name, task in tasks.items()}
    samples: dict[str, list[float]] = {name: [] for name in tasks}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit: no collector pauses inside a sample
    try:
        names = list(tasks)
        for r in range(repeats):
            k = r % len(names)  # rotate the order (A B C, B C A, ...): no contender always first
            for name in names[k:] + names[:k]:
                seconds = _time_calls(tasks[name], number[name], device, clock)
                samples[name].append(1e3 * seconds / number[name])
            if progress is not None:
                progress(f"round {r + 1}/{repeats}")
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: {"samples_ms": samples[name], "calls_per_sample": number[name]}
            for name in tasks}


def summarize(samples_ms: list[float]) -> dict:
    """Median, quartiles and minimum of a list of per-call times (ms)."""
    if not samples_ms:
        raise ValueError("samples_ms: expected at least one sample, got none")
    s = sorted(samples_ms)
    if len(s) > 1:
        p25, _, p75 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        p25 = p75 = s[0]
    return {"median_ms": statistics.median(s), "p25_ms": p25, "p75_ms": p75, "min_ms": s[0],
            "samples_ms": list(samples_ms)}


# ------------------------------------------------------------------- memory
def peak_of(deltas: Iterable[int]) -> int:
    """Peak of the running sum of allocation deltas (+bytes allocated, -bytes freed), >= 0."""
    level = peak = 0
    for d in deltas:
        level += d
        peak = max(peak, level)
    return peak


@contextmanager
def _quiet_stderr():
    """Silence the profiler's C++ start/stop lines (printed on fd 2, not via Python)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, IDE)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(devnull)
        os.close(saved)


_MARK = "rnnkit.bench.call"


def _cpu_peak_bytes(run: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile, record_function

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with record_function(_MARK):
            run()
    events = prof.profiler.kineto_results.events()
    # The profiler allocates buffers of its own when it stops: count only what happens
    # inside the call's own range.
    marks = [e for e in events if e.name() == _MARK]
    if len(marks) != 1:
        raise RuntimeError(f"profiler: expected one {_MARK!r} range, found {len(marks)}")
    t0, t1 = marks[0].start_ns(), marks[0].end_ns()
    mem = sorted((e.start_ns(), e.nbytes()) for e in events
                 if e.name() == "[memory]" and t0 <= e.start_ns() <= t1)
    return peak_of(nbytes for _, nbytes in mem)


def _cuda_peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    run()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - base)


def peak_bytes(task: Task, device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated by one call of ``task.run`` above the level when it started."""
    device = torch.device(device)
    if task.setup is not None:
        task.setup()
    if device.type == "cuda":
        return _cuda_peak_bytes(task.run, device)
    if device.type == "cpu":
        return _cpu_peak_bytes(task.run)
    raise ValueError(f"device: peak memory is measured on 'cpu' or 'cuda', got {device.type!r}")
