"""Multi30k De->En with the GRU+attention recipe: record a finished run as a result file.

The run itself is the recipe, unchanged (queued on the shared 2-core machine)::

    rnnkit train configs/multi30k_gru_attn.yaml --data-dir ../shared/datasets \\
        --out runs/multi30k_gru_attn --set trainer.threads=1

After training, ``run_training`` evaluates the best checkpoint (highest greedy validation
BLEU) on test_2016_flickr with beam search (``summary.json`` -> ``test_bleu``) and greedy
decoding (``test_bleu_greedy``). This script copies those numbers, the model size, the
validation-BLEU curve over wall time, and an attention heatmap of one test sentence::

    python experiments/nlp/translate_multi30k.py record runs/multi30k_gru_attn
    # -> experiments/results/multi30k_gru_attn.json, runs/multi30k_gru_attn/attention_test0.png
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
DATASET = "Multi30k task 1 raw (multi30k/dataset @ a3d2e0d), De->En, cased; 29,000 train pairs"
REFERENCE = {"value": 28.3, "source": "bentrevett/pytorch-seq2seq notebook 3 (GRU encoder-decoder "
             "with Bahdanau attention, greedy; BLEU on lowercased spaCy tokens, not sacreBLEU); "
             "issue 6 target: >= 30"}


def record(run_dir: Path, name: str, command: str, sentence: int) -> dict:
    from rnnkit.data.parallel import read_parallel, resolve_parallel
    from rnnkit.tasks.translate import load_translate_checkpoint, plot_attention, translate

    summary = json.loads((run_dir / "summary.json").read_text())
    if "test" not in summary:
        raise SystemExit(f"{run_dir}/summary.json has no test metrics (did the run finish?)")
    state = json.loads((run_dir / "last" / "trainer_state.json").read_text())["state"]
    curve = [{"epoch": h["epoch"], "elapsed_s": h["elapsed"], "val_bleu": round(h["val_bleu"], 2),
              "val_loss": round(h["val_loss"], 4)} for h in state["history"] if "val_bleu" in h]
    model, _, _, cfg = load_translate_checkpoint(run_dir / "best")
    unique = sum(p.numel() for p in model.parameters())
    files = resolve_parallel(cfg.data.source, cfg.data.src_lang, cfg.data.tgt_lang,
                             splits=cfg.data.splits or None, data_dir=cfg.data.data_dir)
    src, ref = read_parallel(*files["test"])[sentence]
    (r,) = translate(run_dir / "best", [src], beam_size=cfg.data.beam_size)
    png = plot_attention(r["attention"], r["tokens"], r["output_tokens"],
                         run_dir / f"attention_test{sentence}.png", title=f"{src}\n-> {r['translation']}")
    t = summary["test"]
    rec = {
        "task": "translation (seq2seq with attention)",
        "dataset": DATASET,
        "split": "test_2016_flickr (1,000 sentences)",
        "metric": f"sacreBLEU (13a, cased, detokenised) beam {cfg.data.beam_size}, best-val-BLEU checkpoint",
        "value": round(t["test_bleu"], 2),
        "reference": REFERENCE,
        "command": command,
        "wall_seconds": round(summary["wall_seconds"], 1),
        "device": summary["device"],
        "date": _dt.date.today().isoformat(),
        "notes": (f"{unique:,} parameters (output layer tied to the target embedding); BPE {cfg.data.src_vocab_size}/{cfg.data.tgt_vocab_size}; stopped by "
                  f"{summary['stopped']} after {summary['epoch']} epochs; greedy test BLEU "
                  f"{t['test_bleu_greedy']:.2f}; attention heatmap {png}"),
        "extra": {"test_chrf": round(t["test_chrf"], 2), "test_bleu_greedy": round(t["test_bleu_greedy"], 2),
                  "test_chrf_greedy": round(t["test_chrf_greedy"], 2), "test_loss": round(t["test_loss"], 4),
                  "best_val_bleu_greedy": summary["best"], "val_curve": curve,
                  "example": {"source": src, "reference": ref, "output": r["translation"]}},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}: test BLEU {rec['value']} (greedy {t['test_bleu_greedy']:.2f}), chrF {t['test_chrf']:.2f}")
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="write experiments/results/<name>.json from a finished run")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--name", default="multi30k_gru_attn")
    r.add_argument("--sentence", type=int, default=0, help="test sentence for the attention heatmap")
    r.add_argument("--command", default="rnnkit train configs/multi30k_gru_attn.yaml --data-dir "
                   "../shared/datasets --out runs/multi30k_gru_attn --set trainer.threads=1")
    a = ap.parse_args()
    record(a.run_dir, a.name, a.command, a.sentence)


if __name__ == "__main__":
    main()
