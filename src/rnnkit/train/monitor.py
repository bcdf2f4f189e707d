"""What a run shows and records: a rich progress bar, metric loggers, the curve PNG.

* On a terminal: a rich progress bar per epoch with loss, learning rate, throughput
  (tokens/s or samples/s) and ETA.  Elsewhere (a log file): one plain line every
  ``log_every_steps`` steps, so ``nohup ... > run.log`` stays readable.
* Metrics go to Lightning Fabric's ``CSVLogger`` (``logs/csv/version_N/metrics.csv``) and
  ``TensorBoardLogger`` (``logs/tensorboard/``), rank 0 only.
* :func:`plot_history` draws training/validation loss and the validation metrics against
  the step into ``curves.png`` (matplotlib, Agg backend: no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["Monitor", "plot_history"]


class Monitor:
    """Progress display and metric loggers of one run (a no-op on ranks other than 0).

    Args:
        log_dir: where the CSV and TensorBoard logs go.
        loggers: names among "csv", "tensorboard".
        item_name: "tokens" or "samples" (throughput unit).
        progress: show a progress bar when stdout is a terminal.
        log_every_steps: plain-line cadence when there is no terminal.
        enabled: False on ranks other than 0.
    """

    def __init__(self, log_dir: Path, loggers: list[str], item_name: str, *, progress: bool = True,
                 log_every_steps: int = 50, enabled: bool = True, console: Console | None = None):
        self.enabled = enabled
        self.item_name = item_name
        self.log_every = max(1, log_every_steps)
        self.console = console or Console(highlight=False)
        self.loggers: list[Any] = []
        self._bar: Progress | None = None
        self._task = None
        self.use_bar = enabled and progress and self.console.is_terminal
        if not enabled:
            return
        for name in loggers:
            if name == "csv":
                from lightning.fabric.loggers import CSVLogger

                self.loggers.append(CSVLogger(root_dir=str(log_dir), name="csv"))
            elif name == "tensorboard":
                from lightning.fabric.loggers import TensorBoardLogger

                self.loggers.append(TensorBoardLogger(root_dir=str(log_dir), name="tensorboard"))
            else:
                raise ValueError(
                    f"trainer.loggers: unknown logger {name!r}; expected 'csv' or 'tensorboard'"
                )

    # ------------------------------------------------------------------ text

    def print(self, *args: Any) -> None:
        if self.enabled:
            self.console.print(*args)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        for lg in self.loggers:
            lg.log_metrics(clean, step=step)

    # ------------------------------------------------------------------ progress

    def start_epoch(self, epoch: int, total: int, done: int) -> None:
        if not self.use_bar:
            return
        self._bar = Progress(*self.columns(self.console.width), console=self.console,
                             transient=False)
        self._bar.start()
        self._task = self._bar.add_task("train", total=total, completed=done, epoch=epoch + 1,
                                        loss="-", speed="")

    @staticmethod
    def columns(width: int) -> tuple:
        """The progress bar's columns: what matters first (batch count, ETA, loss), then the
        bar, sized to what is left of ``width``, so an 80-column terminal still shows them."""
        return (
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]}"),
            BarColumn(bar_width=max(8, min(40, width - 80))),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
        )

    def update(self, step: int, epoch: int, batch: int, total: int, loss: float, lr: float,
               items_per_s: float, extra: str = "") -> None:
        if not self.enabled:
            return
        speed = f"{items_per_s:,.0f} {self.item_name}/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=batch, loss=f"{loss:.4f}", speed=speed + extra)
        elif step % self.log_every == 0:
            self.console.print(
                f"epoch {epoch + 1} batch {batch}/{total} step {step} loss {loss:.4f} "
                f"lr {lr:.4g} {speed}{extra}", soft_wrap=True,
            )

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def close(self) -> None:
        self.end_epoch()
        for lg in self.loggers:
            lg.finalize("success")


def plot_history(history: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Draw loss (train, validation) and validation metrics against the step; write a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["train_loss"]) for r in history if "train_loss" in r]
    vals = [r for r in history if "val_loss" in r]
    metric_keys = sorted({k for r in vals for k in r if k.startswith("val_") and k != "val_loss"})
    ncols = 2 if metric_keys else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    if train:
        ax.plot(*zip(*train), label="train", alpha=0.8)
    if vals:
        ax.plot([r["step"] for r in vals], [r["val_loss"] for r in vals], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per item)")
    ax.grid(alpha=0.3)
    ax.legend()
    if metric_keys:
        ax2 = axes[0, 1]
        for k in metric_keys:
            pts = [(r["step"], r[k]) for r in vals if k in r and math.isfinite(r[k])]
            if pts:
                ax2.plot(*zip(*pts), "o-", label=k)
        ax2.set_xlabel("step")
        ax2.set_ylabel("validation metric")
        if any(k.endswith("ppl") for k in metric_keys):
            ax2.set_yscale("log")
        ax2.grid(alpha=0.3)
        ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
