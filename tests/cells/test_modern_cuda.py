"""The modern recurrences and their blocks on CUDA: the same numbers as on the CPU.

They run the same torch code on both (no fused or Triton kernel yet), so a CUDA run must
give the CPU's outputs, final states and gradients within float32 rounding; TF32 is off so
that float32 is float32. Skipped without a CUDA device; ``scripts/gpu_check.sh modern`` runs
it on a lent GPU.
"""
import copy

import pytest
import torch

import rnnkit
from rnnkit.models import GriffinBlock, MambaBlock
from rnnkit.testing import as_tuple

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

LAYERS = {
    "lru": lambda: rnnkit.LRU(6, 8, num_layers=2, bidirectional=True, r_min=0.9, r_max=0.999),
    "rglru": lambda: rnnkit.RGLRU(6, 8, num_layers=2, bidirectional=True),
    "s6": lambda: rnnkit.S6(6, 8, num_layers=2, bidirectional=True, state_size=4),
    "slstm": lambda: rnnkit.SLSTM(6, 8, num_layers=2, bidirectional=True, num_heads=2),
    "mlstm": lambda: rnnkit.MLSTM(6, 8, num_layers=2, bidirectional=True, num_heads=2),
    "mlstm_sequential": lambda: rnnkit.MLSTM(6, 8, num_heads=2, mode="sequential"),
}


def _run(module, x, lengths):
    x = x.clone().requires_grad_()
    out = module(x, lengths=lengths)
    outs = (out,) if isinstance(out, torch.Tensor) else (out[0], *as_tuple(out[1]))
    sum((o.float() * torch.linspace(-1, 1, o.numel(), device=o.device).view_as(o)).sum()
        for o in outs).backward()
    return [o.detach().cpu() for o in outs], x.grad.cpu(), \
        {n: p.grad.cpu() for n, p in module.named_parameters()}


@pytest.fixture(autouse=True)
def _no_tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("name", [*LAYERS, "griffin", "mamba"])
def test_cuda_equals_cpu(name):
    torch.manual_seed(0)
    make = LAYERS.get(name) or {"griffin": lambda: GriffinBlock(6, rnn_width=8),
                                "mamba": lambda: MambaBlock(6, state_size=4)}[name]
    cpu = make()
    gpu = copy.deepcopy(cpu).cuda()
    x, lengths = torch.randn(150, 3, 6), torch.tensor([150, 70, 1])  # T > one 64-step chunk
    want, want_dx, want_dp = _run(cpu, x, lengths)
    got, got_dx, got_dp = _run(gpu, x.cuda(), lengths)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_dx, want_dx, rtol=1e-4, atol=1e-5)
    for n in want_dp:
        torch.testing.assert_close(got_dp[n], want_dp[n], rtol=1e-3, atol=1e-5, msg=n)
