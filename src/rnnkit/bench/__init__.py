"""Benchmarks: timing and peak-memory harness, and the core-layer suite.

``run_suite(Settings(...))`` measures rnnkit.RNN/LSTM/GRU (backends ``auto`` and
``loop``) against torch.nn side by side and returns a JSON-able result document;
``report`` checks, saves and prints such documents. The command line is
``python benchmarks/bench_layers.py`` (see :mod:`rnnkit.commands.bench_layers`).
"""
from .layers import SCHEMA, Settings, Shape, quick_settings, run_suite
from .machine import machine_info
from .measure import Task, interleave, peak_bytes, summarize

__all__ = ["SCHEMA", "Settings", "Shape", "quick_settings", "run_suite", "machine_info", "Task",
           "interleave", "peak_bytes", "summarize"]
