#!/bin/bash
# The univariate ETTm2 lookback-96 recipe screen's runs (family_screen.py reads them): SegRNN at
# seed 1 over the four horizons, the table's recipe and driver overrides plus one candidate's
# --set(s), one thread, into runs/screen_ltsf/ettm2_s_l96/<name>_h<H>_seed1.  A finished run is
# skipped.  The full log goes beside the run (<run>.log); only the wall time is printed here, so
# that no test score is shown before the decision (session 23's runner printed the report's
# tail, test scores included).  From the repository root, two at a time on two cores:
#   experiments/forecast/family_screen_runs.sh stride1 --set=data.train_stride=1 > a.log 2>&1 &
set -euo pipefail
name=$1; shift
for H in 96 192 336 720; do
  out=runs/screen_ltsf/ettm2_s_l96/${name}_h${H}_seed1
  [ -f "$out/summary.json" ] && continue
  echo "== $(date -u +%H:%M:%S) $name H=$H"
  start=$(date +%s)
  OMP_NUM_THREADS=1 rnnkit forecast train configs/ltsf_ettm1_segrnn.yaml \
    --set=data.path=ett/ETTm2.csv.gz --set=data.horizon=$H --set=data.input_length=96 \
    --set=data.season_length=96 --set=trainer.seed=1 --set=trainer.threads=1 \
    '--set=data.targets=[OT]' --set=optim.lr=0.001 --set=model.extras.backend=torch \
    --set=model.segment_length=24 "$@" --out "$out" > "$out.log" 2>&1
  echo "   done in $(( $(date +%s) - start )) s"
done
echo "== $(date -u +%H:%M:%S) $name done"
