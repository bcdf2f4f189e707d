"""The training progress bar keeps the batch count, ETA and loss in an 80-column terminal."""
import io

import pytest
from rich.console import Console
from rich.progress import Progress

from rnnkit.train.monitor import Monitor


@pytest.mark.parametrize("width", [80, 100, 160])
def test_progress_line_fits_and_keeps_what_matters(width):
    c = Console(width=width, record=True, file=io.StringIO())
    bar = Progress(*Monitor.columns(width), console=c)
    bar.add_task("train", total=45678, completed=12345, epoch=10, loss="1.2345",
                 speed="123,456 tokens/s")
    c.print(bar.make_tasks_table(bar.tasks))
    line = c.export_text().rstrip("\n")
    assert "\n" not in line and len(line) <= width, line
    for part in ("epoch 10", "12345/45678", "ETA", "loss 1.2345", "123,456 tokens/s"):
        assert part in line, (part, line)
