#!/usr/bin/env bash
# The JSB sweep's second order (after the GRU RNN-NADE seeds of sweep.sh overfit by epoch ~30):
# the GRU with Bernoulli outputs, the GRU RNN-NADE with transposition augmentation (+-6
# semitones, tag tr6), the LSTM and tanh RNN baselines, then the augmented Bernoulli GRU.
# jsb.py waits on /tmp/bench.lock before each seed and skips finished ones (re-running resumes).
#   nohup bash experiments/music/sweep2.sh > experiments/logs/jsb_sweep2.log 2>&1 &
set -e
cd "$(dirname "$0")/../.."
if [ -n "$AFTER_PID" ]; then  # wait for a training that is still running to end
  while kill -0 "$AFTER_PID" 2>/dev/null; do sleep 10; done
fi
run() { python experiments/music/jsb.py "$@"; }
run gru bernoulli --set trainer.max_time_minutes=3
run gru nade --tag tr6 --set data.transpose=6 --set trainer.max_time_minutes=6
run lstm bernoulli --set trainer.max_time_minutes=3
run lstm nade --set trainer.max_time_minutes=6
run rnn_tanh bernoulli --set trainer.max_time_minutes=3
run rnn_tanh nade --set trainer.max_time_minutes=6
run gru bernoulli --tag tr6 --set data.transpose=6 --set trainer.max_time_minutes=3
