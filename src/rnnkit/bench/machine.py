"""What a benchmark ran on: CPU model, cores, threads, load, library versions, GPU.

Timings mean little without the machine, so every result file carries
``machine_info()``. The load average is recorded at the start and the end of a
run: on a shared machine it is the first thing to look at when two runs differ.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from rnnkit.runtime import malloc_tuned

__all__ = ["machine_info", "cpu_model", "loadavg_now", "write_suite"]


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit() -> str | None:
    """The commit of the rnnkit checkout, when it runs from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, timeout=5,
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(device: str | torch.device = "cpu") -> dict:
    """A JSON-able description of the machine, the libraries and the threads."""
    from rnnkit.runtime import __version__

    device = torch.device(device)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        usable = os.cpu_count()
    info = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        # whether rnnkit.runtime.tune_malloc() keeps freed memory in this process (the rnnkit
        # command and the benchmarks call it): without it buffers are refaulted every call
        "malloc_tuned": malloc_tuned(),
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "loadavg_start": _loadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "rnnkit": __version__,
        "git_commit": _git_commit(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def loadavg_now() -> list[float] | None:
    """The 1, 5 and 15 minute load averages now (for ``loadavg_end``)."""
    return _loadavg()


def write_suite(path: str | Path | None, suite: str, script: str, argv: list[str] | None,
                clock: str, results: list, **extra) -> dict:
    """A standalone benchmark's result file: its suite name, :func:`machine_info`, ``extra``
    keys, the command that made it (``python benchmarks/<script>`` and its arguments: ``argv``,
    or the process's), the clock and the rows; written to ``path`` as JSON unless None."""
    args = sys.argv[1:] if argv is None else argv
    doc = {"suite": suite, "machine": machine_info(), **extra,
           "command": " ".join(["python", f"benchmarks/{script}", *args]), "clock": clock,
           "results": results}
    if path is not None:
        Path(path).write_text(json.dumps(doc, indent=1) + "\n")
    return doc
