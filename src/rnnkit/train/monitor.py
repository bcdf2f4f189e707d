"""What a run shows and records: a rich progress bar, metric loggers, the curve PNG.

* On a terminal: a rich progress bar per epoch with loss, learning rate, throughput
  (tokens/s or samples/s) and ETA.  Elsewhere (a log file): one plain line every
  ``log_every_steps`` steps, so ``nohup ... > run.log`` stays readable.
* Metrics go to Lightning Fabric's ``CSVLogger`` (``logs/csv/version_N/metrics.csv``) and
  ``TensorBoardLogger`` (``logs/tensorboard/``), rank 0 only.
* :func:`plot_history` draws training/validation loss (labelled with the task's
  ``loss_name``), each validation metric on its own axis, and the learning rate with the
  pre-clip gradient norm against the step into ``curves.png`` (matplotlib, Agg backend);
  :func:`curve_panels` is the data it draws.
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

__all__ = ["Monitor", "plot_history", "curve_panels"]


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


def curve_panels(history: list[dict[str, Any]], loss_label: str = "loss") -> list[dict[str, Any]]:
    """What ``curves.png`` draws, panel by panel, from the Trainer's history records.

    Each panel is ``{"title", "ylabel", "log": bool, "series": {name: (steps, values)}}``:
    the loss (training and validation, labelled ``loss_label``), one panel per validation
    metric (each on its own axis; perplexities on a log axis), and the learning rate with the
    pre-clip gradient norm (the norm on a log axis of its own, ``"twin"``).
    """

    def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
        pts = [(r["step"], float(r[key])) for r in records
               if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        return ([p[0] for p in pts], [p[1] for p in pts])

    train = [r for r in history if "train_loss" in r]
    vals = [r for r in history if "val_loss" in r]
    panels = [{"title": "loss", "ylabel": loss_label, "log": False,
               "series": {k: v for k, v in (("train", series(train, "train_loss")),
                                             ("validation", series(vals, "val_loss"))) if v[0]}}]
    for k in sorted({k for r in vals for k in r if k.startswith("val_") and k != "val_loss"}):
        xs = series(vals, k)
        if xs[0]:
            panels.append({"title": k, "ylabel": k[4:], "log": k.endswith("ppl"),
                           "series": {k: xs}})
    lr, norm = series(train, "lr"), series(train, "grad_norm")
    if lr[0] or norm[0]:
        panels.append({"title": "learning rate and gradient norm", "ylabel": "learning rate",
                       "log": False, "series": {"lr": lr}, "twin": {"grad_norm": norm}})
    return panels


def plot_history(history: list[dict[str, Any]], path: Path, title: str = "",
                 loss_label: str = "loss") -> Path | None:
    """Draw :func:`curve_panels` of ``history`` side by side against the step; write a PNG."""
    panels = curve_panels(history, loss_label) if history else []
    if not panels or not any(p["series"] for p in panels):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name, (x, y) in panel["series"].items():
            ax.plot(x, y, "o-" if name.startswith(("val", "validation")) else "-", label=name,
                    alpha=0.85, markersize=3)
        ax.set(title=panel["title"], xlabel="step", ylabel=panel["ylabel"])
        if panel["log"]:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        handles = ax.get_legend_handles_labels()
        if "twin" in panel:
            tw = ax.twinx()
            for name, (x, y) in panel["twin"].items():
                tw.plot(x, y, color="tab:red", alpha=0.7, label=f"{name} (right, log)")
            tw.set_yscale("log")
            tw.set_ylabel("gradient norm (before clipping)")
            h2 = tw.get_legend_handles_labels()
            handles = (handles[0] + h2[0], handles[1] + h2[1])
        if handles[0]:
            ax.legend(*handles, fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
