"""The training progress bar keeps the batch count, ETA and loss in an 80-column terminal, and
curves.png draws what the pages say it draws (checked through its data, curve_panels)."""
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


def test_curves_draw_loss_each_metric_and_the_learning_rate_with_the_gradient_norm(tmp_path):
    from rnnkit.train.monitor import curve_panels, plot_history

    hist = [{"step": s, "epoch": 0, "train_loss": 1.0 / s, "lr": 0.01 * (1 - s / 10),
             "grad_norm": 5.0 / s} for s in range(1, 9)]
    hist += [{"step": 4, "epoch": 1, "val_loss": 0.4, "val_mse": 0.30, "val_mae": 0.5, "val_ppl": 9.0},
             {"step": 8, "epoch": 2, "val_loss": 0.3, "val_mse": 0.20, "val_mae": 0.4, "val_ppl": 7.0}]
    panels = curve_panels(hist, "MSE (scaled targets)")
    assert [p["title"] for p in panels] == ["loss", "val_mae", "val_mse", "val_ppl",
                                            "learning rate and gradient norm"]
    assert panels[0]["ylabel"] == "MSE (scaled targets)"
    assert panels[0]["series"]["validation"] == ([4, 8], [0.4, 0.3])
    assert panels[2]["series"] == {"val_mse": ([4, 8], [0.3, 0.2])}
    assert [p["log"] for p in panels[1:4]] == [False, False, True]  # mae and mse apart, ppl log
    last = panels[-1]
    assert last["series"]["lr"] == ([h["step"] for h in hist[:8]], [h["lr"] for h in hist[:8]])
    assert last["twin"]["grad_norm"][1] == [h["grad_norm"] for h in hist[:8]]
    png = plot_history(hist, tmp_path / "curves.png", "run")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
