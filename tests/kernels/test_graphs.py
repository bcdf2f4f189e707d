"""The CUDA-graph cache of the matrix scans (kernels/triton/_graphs.py): when it records.

The policy runs on any machine: a fake graph class stands in for torch.cuda.CUDAGraph,
and the CUDA check is patched; tests/kernels/test_triton.py checks real replays on a GPU.
"""
import pytest
import torch

from rnnkit.kernels.triton import _graphs


@pytest.fixture
def fake(monkeypatch):
    """Records every 'recording' (signature) and every replay."""
    log = {"recorded": [], "replayed": 0}

    class FakeGraph:
        def __init__(self, fn, tensors, device):
            self.fn = fn
            log["recorded"].append(tuple(tuple(t.shape) for t in tensors))

        def __call__(self, tensors):
            log["replayed"] += 1
            return self.fn(*tensors)

    monkeypatch.setattr(_graphs, "_Graph", FakeGraph)
    monkeypatch.setattr(_graphs, "_on_cuda", lambda t: True)
    monkeypatch.setenv("RNNKIT_CUDA_GRAPH_MB", "1")
    _graphs.clear()
    yield log
    _graphs.clear()


def _call(n, nbytes=1000):
    x = torch.full((n,), 2.0)
    return _graphs.replay("f", lambda t: [t * 3], [x], ("static",), nbytes)[0]


def test_records_on_the_second_call_then_replays(fake):
    assert _call(2).tolist() == [6.0, 6.0]  # first call: eager
    assert fake["recorded"] == [] and fake["replayed"] == 0
    _call(2)
    _call(2)
    assert fake["recorded"] == [((2,),)] and fake["replayed"] == 2


def test_too_large_never_records(fake):
    for _ in range(3):
        assert _call(2, nbytes=2 * 2**20).tolist() == [6.0, 6.0]  # limit is 1 MiB
    assert fake["recorded"] == [] and fake["replayed"] == 0


def test_total_size_evicts_least_recently_used(fake):
    big = 600 * 2**10  # two of these exceed the 1 MiB budget
    for n in (1, 1, 2, 2):
        _call(n, nbytes=big)
    assert len(_graphs._graphs) == 1  # shape 1 dropped when shape 2 was recorded
    assert fake["recorded"] == [((1,),), ((2,),)]


def test_a_cycle_of_shapes_stops_recording(fake, monkeypatch):
    monkeypatch.setattr(_graphs, "MAX_GRAPHS", 2)
    for _ in range(10):  # three shapes in turn, two graphs kept: would record every call
        for n in (1, 2, 3):
            _call(n)
    assert len(fake["recorded"]) <= 3 * _graphs.MAX_RECORDINGS


def test_disabled_with_zero(fake, monkeypatch):
    monkeypatch.setenv("RNNKIT_CUDA_GRAPH_MB", "0")
    for _ in range(3):
        _call(2)
    assert fake["recorded"] == []


def test_out_of_memory_while_recording_runs_eagerly(fake, monkeypatch):
    class NoMemory:
        def __init__(self, fn, tensors, device):
            raise torch.cuda.OutOfMemoryError("no memory for the graph")

    _call(2)
    _call(3)
    monkeypatch.setattr(_graphs, "_Graph", NoMemory)
    with pytest.warns(RuntimeWarning, match="runs eagerly"):
        assert _call(2).tolist() == [6.0, 6.0]  # recording failed: eager result
    assert _call(2).tolist() == [6.0, 6.0]  # and it is not tried again
    assert _graphs._graphs == {}


def test_a_failed_capture_leaves_that_shape_eager_and_others_recordable(fake, monkeypatch):
    real = _graphs._Graph

    class Fails:
        def __init__(self, fn, tensors, device):
            if tensors[0].shape == (2,):
                raise RuntimeError("operation not permitted when stream is capturing")
            self.inner = real(fn, tensors, device)

        def __call__(self, tensors):
            return self.inner(tensors)

    monkeypatch.setattr(_graphs, "_Graph", Fails)
    with pytest.warns(RuntimeWarning, match="CUDA graph of f failed"):
        for _ in range(3):
            assert _call(2).tolist() == [6.0, 6.0]
    for _ in range(3):
        _call(3)
    assert list(_graphs._recorded.values()) == [_graphs.MAX_RECORDINGS, 1]


def test_inference_mode_records_its_own_graph(fake):
    """Buffers made under inference_mode cannot be written outside it: separate signatures."""
    with torch.inference_mode():
        _call(2)
        _call(2)
    _call(2)
    _call(2)
    assert fake["recorded"] == [((2,),), ((2,),)]
