"""Sequential MNIST: classify a digit read row by row (28 steps) or pixel by pixel (784 steps).

Images (MNIST IDX files, read from ``--data-dir``, default ``../shared/datasets``
relative to the repository root) are scaled to [0, 1]; rows give (T=28, I=28)
sequences, pixels (T=784, I=1) in raster order. The last 5000 training images are
held out for validation (evaluated every ``--eval-every`` steps); the recorded
number is the accuracy on the 10,000 test images after the last step. Model:
recurrent layer (``--layers`` deep) -> linear classifier of the last step.

    python experiments/longmem/smnist.py --cell lstm --mode pixel --steps 60000 --batch 128
    python experiments/longmem/smnist.py --cell indrnn --mode pixel --layers 2 --lr 2e-4 \\
        --steps 60000 --batch 128         (IndRNN gets time_horizon=784 by default)

Writes ``experiments/results/smnist_<mode>_<cell>.json`` and the log
``experiments/logs/longmem_smnist_<mode>_<cell>.log``.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    REPO,
    Run,
    base_parser,
    command_line,
    device_string,
    make_layer,
    pick_device,
    train,
    write_result,
)
from torch import nn

VAL_SIZE = 5000
#: published test accuracies, pixel by pixel (row-by-row has no number in the cited papers)
_REFERENCE = {
    ("pixel", "lstm"): (0.982, "Le et al. 2015 (Table 1) report 65% for their LSTM; later "
                        "tuned LSTMs reach 98.2-98.9% (Arjovsky et al. 2016: 98.2%; "
                        "Cooijmans et al. 2017: 98.9%)"),
    ("pixel", "indrnn"): (0.990, "Li et al. 2018 (Table 2): 6-layer IndRNN with batch "
                          "normalisation between layers, 99.0% (rnnkit's run has no batch norm)"),
    ("pixel", "irnn"): (0.97, "Le et al. 2015 (Table 1): IRNN 97%"),
    ("pixel", "rnn_tanh"): (0.35, "Le et al. 2015 (Table 1): tanh RNN 35%"),
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (``.gz`` or plain) as a uint8 array; one clear error if it is not one."""
    if not path.exists() and Path(str(path) + ".gz").exists():
        path = Path(str(path) + ".gz")
    if not path.exists():
        raise SystemExit(f"--data-dir: {path} not found (expected the MNIST IDX files there)")
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file (bad magic {raw[:4]!r})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise SystemExit(f"{path}: header says {dims} ({int(np.prod(dims))} bytes) but the file "
                         f"holds {data.size}; is it truncated?")
    return data.reshape(dims)


def load_mnist(data_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 28, 28) float images in [0, 1] and (N,) int64 labels of ``split`` ("train", "t10k")."""
    x = read_idx(data_dir / "mnist" / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(data_dir / "mnist" / f"{split}-labels-idx1-ubyte.gz")
    if len(x) != len(y):
        raise SystemExit(f"{data_dir / 'mnist'}: {len(x)} {split} images but {len(y)} labels")
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def as_sequences(images: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, 28, 28) -> time-major (28, N, 28) rows or (784, N, 1) pixels."""
    if mode == "row":
        return images.transpose(0, 1)  # (N, 28, 28) -> (28, N, 28)
    return images.reshape(len(images), 784, 1).transpose(0, 1)  # (N, 784, 1) -> (784, N, 1)


class Classifier(nn.Module):
    """recurrent layer -> linear classifier of the last step: (T, B, I) -> (B, 10)."""

    def __init__(self, layer: nn.Module, out_features: int):
        super().__init__()
        self.rnn = layer
        self.head = nn.Linear(out_features, 10)

    def forward(self, x):
        out, _ = self.rnn(x)  # (T, B, O)
        return self.head(out[-1])


def _accuracy(model, x, y, batch: int) -> float:
    right = 0
    for i in range(0, x.shape[1], batch):
        right += (model(x[:, i:i + batch]).argmax(-1) == y[i:i + batch]).sum().item()
    return right / x.shape[1]


def main(argv=None) -> int:
    ap = base_parser(__doc__.split("\n\n")[0], hidden=128, steps=20000, batch=128, lr=1e-3,
                     eval_every=500)
    ap.add_argument("--mode", choices=("row", "pixel"), required=True)
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "datasets"))
    ap.add_argument("--eval-batch", type=int, default=1000)
    ap.add_argument("--eval-limit", type=int, default=0,
                    help="evaluate on the first N validation and test images only (smoke runs)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    torch.manual_seed(args.seed)
    data_dir = Path(args.data_dir)
    x_train, y_train = load_mnist(data_dir, "train")
    x_test, y_test = load_mnist(data_dir, "t10k")
    x_val, y_val = x_train[-VAL_SIZE:], y_train[-VAL_SIZE:]
    x_train, y_train = x_train[:-VAL_SIZE], y_train[:-VAL_SIZE]
    if args.eval_limit:
        x_val, y_val = x_val[:args.eval_limit], y_val[:args.eval_limit]
        x_test, y_test = x_test[:args.eval_limit], y_test[:args.eval_limit]
    seq = {k: as_sequences(v, args.mode).to(dev) for k, v in
           (("train", x_train), ("val", x_val), ("test", x_test))}
    y_train, y_val, y_test = y_train.to(dev), y_val.to(dev), y_test.to(dev)

    layer = make_layer(args, seq["train"].shape[-1], seq["train"].shape[0])
    out_features = 2 * args.hidden if getattr(layer, "bidirectional", False) else args.hidden
    model = Classifier(layer, out_features).to(dev)
    g = torch.Generator().manual_seed(args.seed + 1)
    order, pos = torch.randperm(len(y_train), generator=g), 0

    def sample(step):  # shuffled epochs of the training split
        nonlocal order, pos
        if pos + args.batch > len(order):
            order, pos = torch.randperm(len(y_train), generator=g), 0
        idx = order[pos:pos + args.batch].to(dev)
        pos += args.batch
        return seq["train"][:, idx], y_train[idx]

    def evaluate(m):
        acc = _accuracy(m, seq["val"], y_val, args.eval_batch)
        return {"metric": acc, "solved": False}

    run = Run(model, sample, lambda m, x, y: F.cross_entropy(m(x), y), evaluate, "val_accuracy")
    name = args.name or f"smnist_{args.mode}_{args.cell}"
    r = train(run, args, name)
    model.eval()
    with torch.no_grad():
        test_acc = _accuracy(model, seq["test"], y_test, args.eval_batch)
    print(f"test accuracy {test_acc:.4f} after {r['steps_run']} steps")
    ref_value, source = _REFERENCE.get((args.mode, args.cell), (None, "no published number "
                                       "for this cell and mode in the cited papers"))
    record = {
        "task": f"sequential_mnist_{args.mode}", "dataset": "MNIST (LeCun et al. 1998)",
        "split": f"test ({len(y_test):,} images)", "metric": "test_accuracy",
        "value": round(test_acc, 4),
        "reference": {"value": ref_value, "source": source},
        "command": command_line(), "wall_seconds": r["wall_seconds"],
        "device": device_string(dev),
        "cell": args.cell, "T": 28 if args.mode == "row" else 784, "hidden": args.hidden,
        "layers": args.layers, "layer_kwargs": args.layer_kwargs, "batch": args.batch,
        "lr": args.lr, "optimizer": args.optimizer, "clip": args.clip, "seed": args.seed,
        "steps": args.steps, "steps_run": r["steps_run"],
        "epochs": round(r["steps_run"] * args.batch / len(y_train), 2),
        "val_accuracy": round(r["metric"], 4), "history": run.history,
    }
    if not args.no_record:
        print("wrote", write_result(name, args.out_dir, record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
