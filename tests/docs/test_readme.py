"""README is the front door: small, its commands real, its links alive; examples it moved to the
docs stay verbatim where tests hold them."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_custom_cell_example_is_the_tested_one():
    """tests/layers/test_custom_cell.py runs the tutorial's MGU example between its markers."""
    test = (ROOT / "tests" / "layers" / "test_custom_cell.py").read_text(encoding="utf-8")
    m = re.search(r"^# --- docs/tutorials/custom-cell\.md example: begin -+\n(.*?)"
                  r"^# --- docs/tutorials/custom-cell\.md example: end -+$", test, flags=re.S | re.M)
    assert m, "tests/layers/test_custom_cell.py: the example markers are gone"
    page = (ROOT / "docs" / "tutorials" / "custom-cell.md").read_text(encoding="utf-8")
    assert any(m.group(1) in block for block in _python_blocks(page)), (
        "docs/tutorials/custom-cell.md no longer shows tests/layers/test_custom_cell.py's example "
        "verbatim: change both together")
