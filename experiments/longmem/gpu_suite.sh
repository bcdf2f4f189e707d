#!/usr/bin/env bash
# The part of issue 4's long-term dependency experiments that needs a GPU (not run on the
# 2-core CPU of the session that wrote it). The scripts pick CUDA by themselves.
#
#   experiments/longmem/gpu_suite.sh            # everything below, one run at a time
#
# Budgets (batch 50 for the synthetic tasks, 128 for MNIST; evaluations every 100/500 steps;
# the synthetic runs stop at their first solved evaluation):
#   adding problem T=100, 500, 1000, 5000: 20000 steps;  copy memory T=100, 500: 20000 steps;
#   sequential MNIST row (28 steps) and pixel (784 steps): 40000 steps (~117 epochs).
set -u
cd "$(dirname "$0")/../.."
CELLS=(rnn_tanh irnn lstm gru indrnn mingru)
run() { echo "== $(date -u +%H:%M:%S) $*"; python "$@" > /dev/null || echo "!! failed ($?): $*"; }
for T in 100 500 1000 5000; do
    for c in "${CELLS[@]}"; do
        extra=(); [ "$c" = indrnn ] && extra=(--layers 2 --lr 2e-4 --paper-init)
        run experiments/longmem/adding.py --cell "$c" --T "$T" --steps 20000 "${extra[@]}" \
            --name "adding_${c}_T${T}_gpu"
    done
done
for T in 100 500; do
    for c in "${CELLS[@]}"; do
        extra=(); [ "$c" = indrnn ] && extra=(--layers 2 --lr 2e-4 --paper-init)
        run experiments/longmem/copy_memory.py --cell "$c" --T "$T" --steps 20000 "${extra[@]}" \
            --name "copy_${c}_T${T}_gpu"
    done
done
for mode in row pixel; do
    run experiments/longmem/smnist.py --cell lstm --mode "$mode" --steps 40000 --layer-kw forget_bias=1.0
    # Li et al. 2018 use 6 layers of 128 with batch norm between them (Adam 2e-4); rnnkit has
    # no batch norm between layers and 6 plain relu layers blow up at 784 steps (a CPU smoke
    # started at loss ~1e3), so this run uses 2 layers
    run experiments/longmem/smnist.py --cell indrnn --mode "$mode" --layers 2 --lr 2e-4 --steps 40000
done
echo "== $(date -u +%H:%M:%S) done"
