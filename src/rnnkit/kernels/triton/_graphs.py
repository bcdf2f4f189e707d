"""CUDA-graph replay of the matrix scans' step loops.

The LSTM/GRU scans (:mod:`._matrix`) launch two kernels per time step, a cuBLAS GEMM
and a Triton kernel, each costing 20-40 us of Python and driver time on the host
while the GPU work per step is a few microseconds, so an eager scan at small shapes is
mostly launch overhead (measured: docs/triton.md, "CUDA graphs"). :func:`replay` records
a whole forward (or backward) scan once as a CUDA graph and from then on replays it with
one launch.

A graph is tied to fixed addresses, so every call copies its tensor arguments into
the graph's own input buffers, replays, and returns clones of the graph's outputs
(two layers of the same shape share one graph, and an output handed out must not
be overwritten by the next replay). The copies are a few device-to-device memcpys.
One graph serves one call at a time: a lock covers the host side, and a call on
another stream first waits for the previous call's clones.

When it applies: CUDA tensors, not already inside a stream capture (e.g. a caller's
own CUDA graph or ``torch.compile(mode="reduce-overhead")``, which then records the
eager launches itself), the same signature (shapes, dtypes, strides, device, scalars,
inference mode, TF32 setting) seen once before: a shape met once runs eagerly, and
one that recurs (a fixed BPTT length, a fixed batch) is recorded on its second call.
The graphs kept hold at most ``RNNKIT_CUDA_GRAPH_MB`` MiB of buffers together
(default: an eighth of the GPU's memory, 10 GiB on an 80 GB H100; ``0`` turns graphs
off) and number at most :data:`MAX_GRAPHS`; the least recently used is dropped first.
A signature recorded :data:`MAX_RECORDINGS` times (dropped and met again: more shapes
in turn than the cache holds) runs eagerly from then on, so a cycle of shapes never
records at every call. A recording that fails (out of memory, a capture error, anything)
drops the graphs, warns once per signature and leaves that signature eager.
"""
from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["replay", "MAX_GRAPHS", "clear"]

#: graphs kept at once (each holds its own input, output and scratch buffers)
MAX_GRAPHS = 32
#: recordings of one signature before it runs eagerly for good
MAX_RECORDINGS = 2
_graphs: OrderedDict = OrderedDict()  # signature -> _Graph
_sizes: dict = {}  # signature -> bytes of its buffers (estimate)
_seen: OrderedDict = OrderedDict()  # signatures met once (eager), waiting for a second call
_recorded: dict = {}  # signature -> times recorded
_lock = threading.RLock()  # the cache and every graph's buffers: one caller at a time


def clear() -> None:
    """Drop every recorded graph and its buffers (and forget which shapes were met)."""
    with _lock:
        _drop_graphs()
        _seen.clear()
        _recorded.clear()


def _drop_graphs() -> None:
    _graphs.clear()
    _sizes.clear()


def _limit_bytes(device: torch.device) -> int:
    mb = os.environ.get("RNNKIT_CUDA_GRAPH_MB")
    if mb is not None:
        return int(float(mb) * 2**20)
    return torch.cuda.get_device_properties(device).total_memory // 8


def _on_cuda(t: Tensor) -> bool:
    """A CUDA tensor, outside any stream capture (a caller's graph records our launches)."""
    return t.device.type == "cuda" and not torch.cuda.is_current_stream_capturing()


def _signature(name: str, tensors: Sequence[Tensor | None], static) -> tuple:
    parts = tuple(None if t is None else (tuple(t.shape), t.dtype, t.stride(), t.device)
                  for t in tensors)
    # buffers made in inference mode cannot be written outside it, and the GEMMs'
    # precision is fixed when they are recorded
    modes = (torch.is_inference_mode_enabled(), torch.backends.cuda.matmul.allow_tf32,
             torch.get_float32_matmul_precision())
    return (name, parts, static, modes)


class _Graph:
    """One recorded call: its input buffers, the graph, its outputs."""

    def __init__(self, fn: Callable[..., list[Tensor]], tensors: Sequence[Tensor | None],
                 device: torch.device):
        self.inputs = [None if t is None else t.clone() for t in tensors]
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            fn(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream, capture_error_mode="thread_local"):
            self.outputs = fn(*self.inputs)
        self.done: torch.cuda.Event | None = None  # after the last call's clones

    def __call__(self, tensors: Sequence[Tensor | None]) -> list[Tensor]:
        stream = torch.cuda.current_stream()
        if self.done is not None:  # a call on another stream may still read the buffers
            stream.wait_event(self.done)
        for buf, t in zip(self.inputs, tensors):
            if buf is not None:
                buf.copy_(t)
        self.graph.replay()
        out = [o.clone() for o in self.outputs]
        self.done = torch.cuda.Event()
        self.done.record(stream)
        return out


def replay(name: str, fn: Callable[..., list[Tensor]], tensors: Sequence[Tensor | None],
           static, nbytes: int) -> list[Tensor]:
    """``fn(*tensors)``, through a recorded CUDA graph where that applies (module docstring).

    ``static``: everything else ``fn`` depends on (hashable); ``nbytes``: an estimate of
    the buffers the call allocates, checked against ``RNNKIT_CUDA_GRAPH_MB``.
    """
    first = next((t for t in tensors if t is not None), None)
    if first is None or not _on_cuda(first):
        return fn(*tensors)
    limit = _limit_bytes(first.device)
    if nbytes > limit:
        return fn(*tensors)
    key = _signature(name, tensors, static)
    on_device = (torch.cuda.device(first.device) if first.device.type == "cuda"
                 else contextlib.nullcontext())  # (the tests' stand-in graphs run on CPU)
    with _lock, on_device:
        graph = _graphs.get(key)
        eager = graph is None and (key not in _seen or _recorded.get(key, 0) >= MAX_RECORDINGS)
        if eager:
            _seen[key] = True
            while len(_seen) > 4 * MAX_GRAPHS:
                _seen.popitem(last=False)
        elif graph is None:
            del _seen[key]
            while _graphs and (len(_graphs) >= MAX_GRAPHS
                               or sum(_sizes.values()) + nbytes > limit):
                old, _ = _graphs.popitem(last=False)
                del _sizes[old]
            _recorded[key] = _recorded.get(key, 0) + 1
            try:
                graph = _Graph(fn, tensors, first.device)
            except Exception as e:  # out of memory, a capture error: run eagerly instead
                warnings.warn(f"rnnkit: recording a CUDA graph of {name} failed "
                              f"({type(e).__name__}: {e}); this shape runs eagerly",
                              RuntimeWarning, stacklevel=2)
                _drop_graphs()  # free their memory; other shapes may record again
                _recorded[key] = MAX_RECORDINGS  # this one stays eager
                if first.device.type == "cuda":
                    torch.cuda.empty_cache()
                eager = True
            else:
                _graphs[key] = graph
                _sizes[key] = nbytes
        if not eager:
            _graphs.move_to_end(key)
            return graph(tensors)  # under the lock: the graph's buffers are shared
    return fn(*tensors)  # eager calls run outside the lock
