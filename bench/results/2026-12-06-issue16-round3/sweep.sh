#!/bin/bash
# issue 16 round 3 sweep: every target, one sitting, quiet machine
cd "$(dirname "$0")/../../.."  # the repository
R=bench/results/2026-12-06-issue16-round3
mkdir -p $R
B=".venv/bin/python -m bench.run"
log() { echo "=== $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg): $*" | tee -a $R/sweep.log; }
run() { log "$*"; "$@" 2>&1 | tail -3 | tee -a $R/sweep.log; }
run $B burst --mode embedded --jobs 10000 --executors 2 --out $R/burst-1
run $B burst --mode embedded --jobs 10000 --executors 2 --no-peers --out $R/burst-2
run $B burst --mode embedded --jobs 10000 --executors 2 --no-peers --out $R/burst-3
run $B burst --mode embedded --jobs 10000 --executors 2 --no-peers --profile $R/burst-4/profile --out $R/burst-4
run $B burst --mode distributed --jobs 10000 --executors 2 --no-peers --out $R/dist-1
run $B burst --mode distributed --jobs 10000 --executors 2 --no-peers --out $R/dist-2
run $B burst --mode distributed --jobs 10000 --executors 2 --no-peers --out $R/dist-3
run $B burst --mode distributed --dispatchers 2 --kill-dispatcher --jobs 10000 --executors 2 --no-peers --out $R/failover-1
run $B burst --mode distributed --dispatchers 2 --kill-dispatcher --jobs 10000 --executors 2 --no-peers --out $R/failover-2
run $B burst --mode distributed --dispatchers 2 --kill-dispatcher --jobs 10000 --executors 2 --no-peers --out $R/failover-3
run $B fire_lag --variant http --jobs 1000 --seconds 60 --out $R/steady-1
run .venv/bin/python -m bench.peers --only apscheduler-memory --jobs 1000 --seconds 60 --out $R/steady-1
run $B fire_lag --variant http --jobs 1000 --seconds 60 --out $R/steady-2
run $B schedule_scale --jobs 100000 --out $R/startup-1
run $B schedule_scale --jobs 100000 --out $R/startup-2
run $B concurrency --runs 5000 --sleep 30 --out $R/sleeps
run $B burst --mode embedded --jobs 100000 --executors 4 --no-peers --out $R/burst-100k
log done
