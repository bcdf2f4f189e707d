#!/usr/bin/env bash
# Every forecasting result in experiments/results/forecast_*.json, one run after another
# (2 shared CPU cores: one thread each).  Usage: bash experiments/forecast/run_all.sh [names...]
set -u
cd "$(dirname "$0")/../.."
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(etth1_s_h24 etth1_s_h48 etth1_s_h168 etth1_s_h336 etth1_s_h720 etth1_m_h24 etth1_m_h168 airline)
fi
mkdir -p experiments/logs
for n in "${names[@]}"; do
  echo "== $n $(date -u +%H:%M:%S)"
  OMP_NUM_THREADS=1 python experiments/forecast/run.py "$n" --set trainer.threads=1 \
    > "experiments/logs/forecast_$n.log" 2>&1 || echo "$n failed (see experiments/logs/forecast_$n.log)"
  tail -1 "experiments/logs/forecast_$n.log"
done
