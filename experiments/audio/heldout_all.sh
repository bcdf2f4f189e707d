#!/usr/bin/env bash
# FSDD held-out speaker, all six speakers one after the other, then the summary JSON.
#   OMP_NUM_THREADS=1 nohup experiments/audio/heldout_all.sh > experiments/logs/fsdd_heldout.log 2>&1 &
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
for s in george jackson lucas nicolas theo yweweler; do
    echo "== $(date -u +%H:%M:%S) held-out speaker $s"
    python experiments/audio/fsdd.py speaker "$s" || echo "!! failed: $s"
done
python experiments/audio/fsdd.py summary
echo "== $(date -u +%H:%M:%S) done"
