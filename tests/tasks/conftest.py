"""Shared fixtures for the task tests."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ltsf_screen_script(tmp_path, monkeypatch):
    """``load(name)``: ``experiments/forecast/<name>.py`` loaded as a module, with the table
    driver's (``ltsf``) results, logs, runs, family and segment files under ``tmp_path`` (the
    segment file says lookback 96 chose 24; the logs and results folders exist), its device
    named ``cpu: test``, and the module's ``ROOT`` at ``tmp_path``: nothing real is read or
    written."""
    monkeypatch.syspath_prepend(str(ROOT / "experiments" / "forecast"))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(
            f"_{name}", ROOT / "experiments" / "forecast" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ltsf = mod.ltsf
        for attr, path in (("RESULTS", "results"), ("LOGS", "logs"), ("RUNS", "runs/ltsf"),
                           ("FAMILY_FILE", "family.json"), ("SEGMENT_FILE", "segment.json")):
            monkeypatch.setattr(ltsf, attr, tmp_path / path)
        monkeypatch.setattr(ltsf, "_device", lambda: "cpu: test")
        monkeypatch.setattr(mod, "ROOT", tmp_path)
        ltsf.SEGMENT_FILE.write_text(json.dumps({"lookback": 96, "chosen": 24}))
        ltsf.LOGS.mkdir(parents=True)
        ltsf.RESULTS.mkdir(parents=True)
        return mod

    yield load
    sys.modules.pop("ltsf", None)
