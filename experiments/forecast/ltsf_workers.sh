#!/bin/sh
# The LTSF table in the background on a 2-core machine: drivers at one thread each, sharing
# the table through per-run lock files (experiments/forecast/ltsf.py); a run killed with its
# session is resumed from its last checkpoint by whichever driver reaches it next, and a finished
# job is skipped. Logs: experiments/logs/ltsf_<worker>.log. Stop them with
#   kill -- -$(cat experiments/logs/ltsf_<worker>.pid)
cd "$(dirname "$0")/../.." || exit 1
P="python experiments/forecast/ltsf.py"
start() {  # name, shell loop
    setsid sh -c "$2" >> "experiments/logs/ltsf_$1.log" 2>&1 < /dev/null &
    echo $! > "experiments/logs/ltsf_$1.pid"
}
# the issue's order: targets (ETTh1, ETTm1 multivariate, 3 seeds) first, then the rest
start queue "$P --queue"
start worker2 "for H in 96 192 336 720; do $P ETTm1 multivariate --horizon \$H --seeds 1 2 3 || exit 1; done"
# ETTm2 at the learning rate chosen on validation in session 15: --force rewrites each job's
# file from its runs (cached runs are taken as they are; the 1e-4 ones were removed)
start worker5 "for H in 96 720 336 192; do $P ETTm2 multivariate --horizon \$H --seeds 1 --force || exit 1; done; \
for H in 96 192 336 720; do $P ETTm2 univariate --horizon \$H --seeds 1 --force || exit 1; done"
# lookback 96: SegRNN at the segment length chosen on ETTh1's validation split (24; `ltsf.py
# --select-segment`, session 18); rows made at the recipes' 48 are run again (ltsf.job_done)
start worker4 "for D in ETTh1 ETTh2 ETTm1 ETTm2; do for H in 96 192 336 720; do \
$P \$D multivariate --horizon \$H --lookback 96 --seeds 1 || exit 1; done; done"
# univariate (OT) at lookback 96, one seed: short runs (minutes for ETTh, under an hour for ETTm)
start worker7 "for D in ETTh1 ETTh2 ETTm1 ETTm2; do for H in 96 192 336 720; do \
$P \$D univariate --horizon \$H --lookback 96 --seeds 1 || exit 1; done; done"
# ETTm2 multivariate at lookback 96 from the other end (worker4 reaches it last), so that both
# cores train while worker4 is on ETTm1
start worker8 "for H in 720 336 192 96; do $P ETTm2 multivariate --horizon \$H --lookback 96 --seeds 1 || exit 1; done"
# one-seed rows closer to the line than one seed moves their margin, win or loss: three seeds
# (ltsf.py --close-calls, session 19); it looks again for rows other drivers land meanwhile
start close "$P --close-calls"
# the two costliest close calls in their own driver, so that both cores work on them
start close2 "$P ETTm2 multivariate --horizon 192 --lookback 512 --seeds 1 2 3; \
$P ETTh1 multivariate --horizon 720 --lookback 96 --seeds 1 2 3"
