#!/usr/bin/env bash
# Pruning and int8 quantisation of the char-LSTM language model (2x384, tinyshakespeare,
# runs/exp_shakespeare_char/best: validation loss 1.4349 nats/char), 1 thread, CPU.
# Queue each line (each takes > 2 min):
#   /work/queue/submit prod_prune_global 'bash experiments/prod/compress_lm.sh global'
#   /work/queue/submit prod_prune_layer  'bash experiments/prod/compress_lm.sh layer'
#   bash experiments/prod/compress_lm.sh quantize     (about 1 CPU-minute: run directly)
# then: python experiments/prod/record.py   (experiments/results/*.json and experiments/prod/*.md)
set -euo pipefail
CKPT=${CKPT:-runs/exp_shakespeare_char/best}
export OMP_NUM_THREADS=1
case "$1" in
  global|layer)
    rnnkit prune "$CKPT" --amounts 0.5,0.7,0.8,0.9 --scope "$1" --finetune-steps 40 \
      --set trainer.threads=1 --out "runs/prod_prune_$1" ;;
  quantize)
    rnnkit quantize "$CKPT" --repeats 3 --threads 1 --out runs/prod_quantize ;;
  *) echo "usage: $0 global|layer|quantize" >&2; exit 2 ;;
esac
