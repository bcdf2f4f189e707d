#!/usr/bin/env bash
# The JSB comparison, one training at a time on the shared 2-core machine (experiments/music/jsb.py
# waits while /tmp/bench.lock exists before each seed and skips finished seeds, so re-running
# this resumes). Best-first: the GRU for both output models, then LSTM, then the tanh RNN.
#   nohup bash experiments/music/sweep.sh > experiments/logs/jsb_sweep.log 2>&1 &
set -e
cd "$(dirname "$0")/../.."
if [ -n "$START_AT" ]; then  # e.g. START_AT=01:45 (UTC): wait for the machine to be ours
  while [ "$(date -u +%s)" -lt "$(date -u -d "$START_AT" +%s)" ]; do sleep 20; done
fi
run() { python experiments/music/jsb.py "$1" "$2" --set "trainer.max_time_minutes=$3"; }
run gru nade 6
run gru bernoulli 3
run lstm nade 6
run lstm bernoulli 3
run rnn_tanh bernoulli 3
run rnn_tanh nade 6
