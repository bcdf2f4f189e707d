#!/usr/bin/env bash
# Every NAB result in experiments/results/nab_*.json, one run at a time (2 CPU cores, 1 thread each).
# Run from the repository root:  bash experiments/anomaly/run_all.sh
# Set NAB_DEADLINE (epoch seconds) to skip the runs that would start after it.
set -u
export OMP_NUM_THREADS=1
run() {  # run NAME ARGS...: log to experiments/logs/nab_NAME.log
  local name=$1; shift
  if [ -n "${NAB_DEADLINE:-}" ] && [ "$(date +%s)" -gt "$NAB_DEADLINE" ]; then
    echo "skipped $name (past NAB_DEADLINE)"; return
  fi
  echo "$(date -u +%H:%M:%S) start $name"
  python experiments/anomaly/run_nab.py "$@" > "experiments/logs/nab_$name.log" 2>&1
  echo "$(date -u +%H:%M:%S) done $name (status $?)"
}
run windowed_gaussian windowed_gaussian
run random random
run lstm_prediction configs/anomaly_nab_prediction.yaml
run lstm_prediction_rolling6400 configs/anomaly_nab_prediction_rolling.yaml
run lstm_prediction_rolling2000 configs/anomaly_nab_prediction.yaml --set model.error_model=rolling
run gru_prediction_rolling6400 configs/anomaly_nab_prediction_rolling.yaml --set model.cell=gru
run lstm_reconstruction configs/anomaly_nab_reconstruction.yaml
run lstm_reconstruction_rolling6400 configs/anomaly_nab_reconstruction.yaml --set model.error_model=rolling --set model.rolling_window=6400
run lstm_reconstruction_rolling2000 configs/anomaly_nab_reconstruction.yaml --set model.error_model=rolling
