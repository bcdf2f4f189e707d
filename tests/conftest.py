"""Test-wide settings: one intra-op thread.

The tests use tiny shapes, where extra threads only add synchronisation, and on a
loaded 2-core machine OpenMP oversubscription made small GRU steps 30x slower.
Subprocesses started by tests inherit OMP_NUM_THREADS.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
