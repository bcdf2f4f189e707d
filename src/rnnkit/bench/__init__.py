"""Benchmarks: the timing and peak-memory harness and the suite behind ``rnnkit bench``.

``run_grid(GridSettings(...))`` measures every rnnkit cell x backend x shape x thread count
against torch.nn.LSTM/GRU side by side in one process and returns a JSON-able result
document; :mod:`rnnkit.bench.report` checks, saves, loads and prints such documents. The
command line is ``rnnkit bench`` (:mod:`rnnkit.commands.bench`).
"""
from .machine import machine_info
from .measure import Task, interleave, peak_bytes, summarize
from .zoo import GridSettings, Shape, parse_shape, parse_threads, run_grid

__all__ = ["GridSettings", "Shape", "parse_shape", "parse_threads", "run_grid", "machine_info",
           "Task", "interleave", "peak_bytes", "summarize"]
