"""benchmarks/check_vectorised.py: gcc's report is attributed to the right function (the
compile itself is a developer check, minutes long, not run here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _mod():
    spec = importlib.util.spec_from_file_location("_vec", ROOT / "benchmarks/check_vectorised.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loops_are_counted_under_their_function(tmp_path, monkeypatch):
    mod = _mod()
    src = tmp_path / "k.cpp"
    src.write_text(
        "template <typename T>\n"                      # 1
        "static inline void row(const T* x, int n) {\n"  # 2
        "  for (int j = 0; j < n; j++) {}\n"           # 3
        "}\n"                                          # 4
        "void run(const Tensor& a,\n"                  # 5
        "         int b) {\n"                          # 6
        "  if (b) return;\n"                           # 7
        "  for (int t = 0; t < b; t++) {}\n"           # 8
        "}\n")
    assert mod.functions(src) == [(2, "row"), (5, "run")]
    report = (f"{src}:3:21: optimized: loop vectorized using 64 byte vectors\n"
              f"{src}:3:21: optimized: loop vectorized using 32 byte vectors\n"
              f"{src}:8:3: optimized: loop vectorized using 64 byte vectors\n"
              f"/usr/include/c10/x.h:9:1: optimized: loop vectorized using 64 byte vectors\n"
              f"{src}:8:3: missed: couldn't vectorize loop\n")

    class Done:
        returncode, stderr = 0, report

    monkeypatch.setattr(mod.subprocess, "run", lambda *a, **k: Done())
    assert mod.vectorised(src, ["-O3"], []) == {"row": 2, "run": 1}
