"""The hash of a task's data (rnnkit.train.fingerprint): values, dtypes, shapes and nesting."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from rnnkit.train.fingerprint import data_fingerprints, fingerprint


def test_a_tensors_hash_is_its_header_and_bytes():
    """By hand: the tag, dtype and shape, then the raw little-endian bytes."""
    t = torch.tensor([[1, 2], [3, 4]], dtype=torch.int64)
    h = hashlib.sha256(b"Ttorch.int64(2, 2)")
    h.update(np.array([1, 2, 3, 4], dtype="<i8").tobytes())
    assert fingerprint(t) == h.hexdigest()


@pytest.mark.parametrize("a, b", [
    (torch.zeros(3), torch.zeros(3, dtype=torch.float64)),  # dtype
    (torch.zeros(2, 3), torch.zeros(3, 2)),  # shape
    ([[1, 2], [3]], [[1], [2, 3]]),  # nesting: the same ids cut otherwise
    ([1, 2, 3], [1, 2, 3.0]),  # an int is not a float
    ({"a": 1, "b": 2}, {"a": 2, "b": 1}),
    (["ab", "c"], ["a", "bc"]),  # strings are length-prefixed
    (np.arange(3), torch.arange(3)),  # an array is not a tensor
    (torch.tensor([1.0, 2.0], dtype=torch.bfloat16), torch.tensor([1.0, 2.5], dtype=torch.bfloat16)),
])
def test_what_differs_hashes_otherwise(a, b):
    assert fingerprint(a) != fingerprint(b)


def test_what_is_the_same_hashes_alike():
    x = torch.arange(12.0).view(3, 4)
    assert fingerprint(x.t().contiguous()) == fingerprint(x.t())  # layout is not content
    assert fingerprint([1, 2, 3]) == fingerprint((1, 2, 3))
    assert fingerprint({"b": [1], "a": "x"}) == fingerprint({"a": "x", "b": [1]})
    a = np.arange(12.0).reshape(3, 4)
    assert fingerprint(a.T) == fingerprint(np.ascontiguousarray(a.T))  # a view, its values


def test_an_object_it_cannot_hash_is_refused_by_name():
    with pytest.raises(TypeError, match="cannot hash a object"):
        fingerprint([object()])


def test_data_fingerprints_per_split_and_none_without_data_splits():
    class Task:
        def data_splits(self):
            return {"train": torch.arange(5), "valid": [[1, 2]]}

    got = data_fingerprints(Task())
    assert got == {"train": fingerprint(torch.arange(5)), "valid": fingerprint([[1, 2]])}
    assert data_fingerprints(object()) is None
