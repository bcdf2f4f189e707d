"""Test-wide settings: one intra-op thread.

The tests use tiny shapes, where extra threads only add synchronisation, and on a
loaded 2-core machine OpenMP oversubscription made small GRU steps 30x slower.
Subprocesses started by tests inherit OMP_NUM_THREADS.

The allocator tuning (rnnkit.kernels.fused.tune_malloc, which keeps freed memory in the
process) is off, because tests that call the CLI or Trainer.fit in-process would otherwise
keep the pytest process at its peak memory; tests/kernels/test_malloc.py turns it on in
subprocesses.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RNNKIT_MALLOC_TUNE", "0")

import torch  # noqa: E402

torch.set_num_threads(1)
