#!/usr/bin/env bash
# JSB RNN-NADE, third order: screen a change to configs/jsb_gru_nade_aug.yaml on seed 0 (its
# seed 0: validation 5.3016, test 5.307), chosen by validation NLL, then run the winner as a
# recipe over 3 seeds. One training at a time, 1 thread, process-CPU budgets (jsb.py waits on
# /tmp/bench.lock before each run and skips finished seeds).
# Per-epoch CPU cost (3-epoch probes, 1 thread of the shared 2-core Xeon): the recipe 3.9 s,
# NADE 300 6.8 s, GRU 512 5.7 s, 2 layers 4.5 s, LSTM 4.1 s -- the NADE's (frames x 88 x N)
# pass dominates.
#   nohup bash experiments/music/sweep3.sh > experiments/logs/jsb_sweep3.log 2>&1 &
set -e
cd "$(dirname "$0")/../.."
# the screen: the NADE's capacity (64 -> 150 units had gained 0.13 nats in 449b0e4's screen);
# 300 units: validation 5.2129 (test 5.2246) at epoch 219
python experiments/music/jsb.py gru nade --recipe configs/jsb_gru_nade_aug.yaml --seeds 0 \
  --tag n300 --set model.nade_hidden=300 --set trainer.max_time_minutes=28
# the same settings as a recipe; the screen's run is its seed 0
[ -d runs/jsb_gru_nade_best_s0 ] || mv runs/jsb_gru_nade_n300_s0 runs/jsb_gru_nade_best_s0
rm -f experiments/results/jsb_gru_nade_n300.json  # a one-seed copy of the recipe's seed 0
python experiments/music/jsb.py gru nade --tag best --recipe configs/jsb_gru_nade_best.yaml
