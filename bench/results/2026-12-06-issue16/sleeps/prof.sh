#!/bin/bash
# usage: prof.sh TAG RUNS REPO PROFILE(0/1)
TAG=$1; RUNS=$2; REPO=${3:-/work/wt/sleeps}; PROF=${4:-1}; D=/tmp/sleeps/$TAG; mkdir -p $D
cd $REPO
uptime > $D/uptime.txt
nice -n 1 .venv/bin/python -m bench.run concurrency --runs $RUNS --sleep 30 --out $D > $D/bench.log 2>&1 &
BP=$!
EX=""
for i in $(seq 1 600); do
  EX=$(pgrep -P $BP -f 'executor -c' | head -1)
  [ -n "$EX" ] && break; sleep 0.1
done
echo "bench $BP executor $EX" >> $D/uptime.txt
[ "$PROF" = 1 ] && .venv/bin/py-spy record -p $EX -r 100 -f raw -o $D/executor.raw -d 25 --nonblocking $PYSPY_EXTRA > $D/pyspy.log 2>&1 &
( while kill -0 $EX 2>/dev/null; do echo "$(date +%s.%N) $(cut -d' ' -f14-17 /proc/$EX/stat 2>/dev/null) $(ls /proc/$EX/fd 2>/dev/null | wc -l)" >> $D/stat.txt; sleep 0.5; done ) &
( sleep 8; uptime >> $D/uptime.txt ) &
wait $BP
uptime >> $D/uptime.txt
