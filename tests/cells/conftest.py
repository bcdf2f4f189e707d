"""Fixtures for the cell tests."""
import pytest

from rnnkit.cells import scan


@pytest.fixture(params=["sequential", "doubling"])
def scan_path(request, monkeypatch):
    """Run :func:`rnnkit.cells.scan.linear_scan` one way: the step loop (the CPU's choice once
    a step holds SEQUENTIAL_MIN_ELEMENTS) or the chunked doubling scan (a GPU's), whatever
    the test's sizes."""
    monkeypatch.setattr(scan, "SEQUENTIAL_MIN_ELEMENTS", 0 if request.param == "sequential"
                        else 1 << 62)
    return request.param
