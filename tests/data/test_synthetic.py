import math

import pytest
import torch

from rnnkit.data.synthetic import (
    ADDING_BASELINE_MSE,
    adding_problem,
    copy_memory,
    copy_memory_baseline,
)


def test_adding_problem_structure_and_targets():
    g = torch.Generator().manual_seed(0)
    x, y = adding_problem(500, 20, generator=g)
    assert x.shape == (20, 500, 2) and y.shape == (500,)
    markers = x[..., 1]
    assert torch.equal(markers.sum(0), torch.full((500,), 2.0))
    assert torch.equal(markers[:10].sum(0), torch.ones(500))  # one marker in each half
    torch.testing.assert_close((x[..., 0] * markers).sum(0), y)
    # always answering 1 scores Var(u1 + u2) = 1/6
    assert abs(((y - 1) ** 2).mean().item() - ADDING_BASELINE_MSE) < 0.02


def test_copy_memory_layout():
    x, y = copy_memory(3, 5, generator=torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (25, 3)
    assert torch.equal(y[-10:], x[:10]) and bool((x[:10] >= 1).all() and (x[:10] <= 8).all())
    assert torch.equal(x[14], torch.full((3,), 9))          # delimiter at step 10 + T - 1
    assert int(x[10:].ne(0).sum()) == 3 and int(y[:-10].ne(0).sum()) == 0
    assert copy_memory_baseline(100) == pytest.approx(10 * math.log(8) / 120)


def test_bad_lengths():
    with pytest.raises(ValueError, match="T: the adding problem needs T >= 2, got 1"):
        adding_problem(4, 1)
