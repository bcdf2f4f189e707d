"""New music from a music checkpoint: ancestral sampling, written as MIDI and a piano-roll PNG.

Each step is drawn from the model given everything before it, the RNN state carried::

    u_1      = RNN(silence)          or, after a prompt x_1..x_P, RNN over [silence, x_1..x_P]
    v_t      ~ P(v | u_t)             Bernoulli keys, or the NADE key by key (temperature tau
                                      divides every logit: tau < 1 is more conservative)
    u_{t+1}  = RNN(v_t, u_t)

``rnnkit generate runs/jsb_gru_nade/best --out chorale.mid --length 64 --seed 0`` calls
:func:`rnnkit.tasks.music.generate_piece`, which loads the checkpoint and uses these::

    roll = sample_roll(model, 64, prompt=head, temperature=1.0, seed=0)    # (64, 88) uint8
    plot_roll(roll, "chorale.png")
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.music import LOWEST_NOTE

__all__ = ["sample_roll", "plot_roll", "DEFAULT_LENGTH"]

#: steps generated when no length is given (64 quarter notes: a short chorale)
DEFAULT_LENGTH = 64


@torch.no_grad()
def sample_roll(model, length: int, *, prompt: np.ndarray | None = None,
                temperature: float = 1.0, seed: int | None = None) -> np.ndarray:
    """``length`` new steps (length, K) uint8 after ``prompt`` (P, K) (module docstring)."""
    if length < 1:
        raise ValueError(f"--length {length}: expected a positive number of steps")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"--temperature {temperature}: expected a finite value > 0")
    model.eval()
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev)
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    K = model.num_keys
    inp = torch.zeros(1, 1, K, device=dev)
    if prompt is not None and len(prompt):
        p = torch.as_tensor(np.asarray(prompt, dtype=np.float32), device=dev)[None]  # (1, P, K)
        inp = torch.cat([inp, p], dim=1)
    u, state = model.advance(inp)  # (1, P + 1, H)
    out = np.zeros((length, K), dtype=np.uint8)
    for t in range(length):
        v = model.sample_step(u[:, -1], temperature=temperature, generator=gen)  # (1, K)
        out[t] = v[0].cpu().numpy().astype(np.uint8)
        u, state = model.advance(v[:, None], state)  # (1, 1, H)
    return out


def plot_roll(roll: np.ndarray, path: str | Path, *, prompt_steps: int = 0,
              title: str = "") -> Path:
    """A piano-roll PNG: time across, MIDI notes up (the used range, padded by a few keys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = np.asarray(roll)
    keys = np.flatnonzero(roll.any(axis=0))
    lo, hi = (max(0, keys.min() - 3), min(roll.shape[1], keys.max() + 4)) if keys.size else (
        0, roll.shape[1])
    fig, ax = plt.subplots(figsize=(max(6.0, roll.shape[0] / 10), 4))
    ax.imshow(roll[:, lo:hi].T, origin="lower", aspect="auto", cmap="Greys", interpolation="none",
              extent=(0, roll.shape[0], LOWEST_NOTE + lo - 0.5, LOWEST_NOTE + hi - 0.5))
    if prompt_steps:
        ax.axvline(prompt_steps, color="tab:red", lw=1, label="end of the prompt")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("MIDI note")
    ax.set_title(title or f"{roll.shape[0]} steps, {int(roll.sum())} note-steps")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
