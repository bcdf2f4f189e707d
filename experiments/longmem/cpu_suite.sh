#!/usr/bin/env bash
# The CPU-budget run of issue 4's long-term dependency experiments, one process at a time.
#
#   experiments/longmem/cpu_suite.sh [TASK:CELL[@LR] ...]
#   (default: adding100 and adding500 for rnn_tanh irnn lstm gru indrnn mingru, then copy100)
#
# Step budgets (fixed, the same for every cell; batch 50; each run stops at its first
# solved evaluation, evaluations every 100 steps):
#   adding100 = adding problem T=100, 3000 steps;  adding500 = adding problem T=500, 1000 steps;
#   copy100   = copy memory T=100, 2000 steps.
# STOP_AT=<unix time> (optional): launch nothing after that moment.
# WAIT_PID=<pid> (optional): start once that process has ended.
# T=1000/5000, copy T=500 and sequential MNIST need a GPU: see experiments/longmem/gpu_suite.sh.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
CELLS=(rnn_tanh irnn lstm gru indrnn mingru)
JOBS=("$@")
if [ ${#JOBS[@]} -eq 0 ]; then
    for c in "${CELLS[@]}"; do JOBS+=("adding100:$c"); done
    for c in "${CELLS[@]}"; do JOBS+=("adding500:$c"); done
    for c in "${CELLS[@]}"; do JOBS+=("copy100:$c"); done
fi
if [ -n "${WAIT_PID:-}" ]; then
    while kill -0 "$WAIT_PID" 2> /dev/null; do sleep 10; done
fi
for job in "${JOBS[@]}"; do
    task=${job%%:*} cell=${job#*:} lr=
    if [[ $cell == *@* ]]; then lr=${cell#*@} cell=${cell%@*}; fi
    case $task in
        adding100) cmd=(experiments/longmem/adding.py --cell "$cell" --T 100 --steps 3000) ;;
        adding500) cmd=(experiments/longmem/adding.py --cell "$cell" --T 500 --steps 1000) ;;
        copy100) cmd=(experiments/longmem/copy_memory.py --cell "$cell" --T 100 --steps 2000) ;;
        *) echo "!! unknown task in $job (expected adding100, adding500 or copy100)"; continue ;;
    esac
    if [ -n "$lr" ]; then  # TASK:CELL@LR: another learning rate, recorded under its own name
        cmd+=(--lr "$lr" --name "$(basename "${cmd[0]}" .py | sed 's/_memory//')_${cell}_T${cmd[4]}_lr${lr}")
    fi
    if [ -n "${STOP_AT:-}" ] && [ "$(date +%s)" -ge "$STOP_AT" ]; then
        echo "== $(date -u +%H:%M:%S) past STOP_AT, not launching: ${cmd[*]}"; continue
    fi
    echo "== $(date -u +%H:%M:%S) ${cmd[*]}"
    python "${cmd[@]}" > /dev/null || echo "!! failed ($?): ${cmd[*]}"
done
echo "== $(date -u +%H:%M:%S) done"
