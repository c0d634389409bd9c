#!/usr/bin/env bash
# False suspicions under load: a 3-node colony cluster (N = 2, synchronous) under
# redis-benchmark load for MINUTES (default 10), then the host_suspected / host_dead /
# host_undead events every node reported (from each node's /events?from=start). Nothing
# is killed, so every one of them is a false suspicion: the figure should be 0.
#
#   bench/suspicion.sh [MINUTES]
#
# The load is a loop of `redis-benchmark -t set,get -c 50 -P 16 -r 100000` against
# node 1's client port (random keys, so they spread over every colony).
# Every process started here is stopped here, by its pid (trap EXIT).
set -euo pipefail

MINUTES=${1:-10}
COLONIES=${COLONIES:-271}
BASE=${BASE:-17600}           # colony peer BASE+i, client BASE-1000+i, admin BASE+100+i
LOAD_PID=
extra_pids() { echo $LOAD_PID; }
source "$(dirname "$0")/lib.sh"
bench_init suspicion redis-benchmark curl jq
bench_ports_free $((BASE+1)) $((BASE+2)) $((BASE+3)) $((BASE-999)) $((BASE-998)) $((BASE-997)) \
  $((BASE+101)) $((BASE+102)) $((BASE+103))
start_cluster3 suspicion suspicion-box

wait_settled3
echo "settled; load for $MINUTES min (redis-benchmark -t set,get -c 50 -P 16 -r 100000, in a loop)" >&2

START=$(date +%s)
END=$((START + MINUTES * 60))
(
  trap 'exit 0' TERM
  while (( $(date +%s) < END )); do
    redis-benchmark -h 127.0.0.1 -p $((BASE-999)) -t set,get -c 50 -P 16 -n 200000 \
      -r 100000 -q 2>>"$DIR/bench.err" | tr '\r' '\n' | grep -E '^(SET|GET): [0-9]' >>"$DIR/bench.out" || true
  done
) &
LOAD_PID=$!
while kill -0 "$LOAD_PID" 2>/dev/null; do
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a colony node exited under load; see $DIR" >&2; exit 1; }; done
  sleep 5
done
wait "$LOAD_PID" || true
LOAD_PID=

echo
echo "colony, 3 nodes, N=2 sync, $COLONIES colonies, $MINUTES min of load from $(date -u -d "@$START" +%H:%M:%SZ)"
echo "benchmark rounds: $(grep -c '^SET' "$DIR/bench.out" || true);" \
  "median SET ops/s $(grep '^SET' "$DIR/bench.out" | awk '{print $2}' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}');" \
  "median GET ops/s $(grep '^GET' "$DIR/bench.out" | awk '{print $2}' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
total=0
printf '%-6s %15s %10s %12s %12s\n' node host_suspected host_dead host_undead "WARN/ERROR"
for i in 1 2 3; do
  # The event stream replays what the node keeps (the last 10,000) and then stays open:
  # read for 3 s.
  curl -s --max-time 3 "http://127.0.0.1:$((BASE+100+i))/events?from=start" >"$DIR/events-$i.sse" || true
  first=$(grep -m1 '^data: ' "$DIR/events-$i.sse" | sed 's/^data: //' | jq -r '.t' || echo "?")
  n_all=$(grep -c '^data: ' "$DIR/events-$i.sse" || true)
  s=$(grep '^data: ' "$DIR/events-$i.sse" | sed 's/^data: //' | jq -r 'select(.event == "host_suspected") | .event' | wc -l)
  d=$(grep '^data: ' "$DIR/events-$i.sse" | sed 's/^data: //' | jq -r 'select(.event == "host_dead") | .event' | wc -l)
  u=$(grep '^data: ' "$DIR/events-$i.sse" | sed 's/^data: //' | jq -r 'select(.event == "host_undead") | .event' | wc -l)
  w=$(grep -c -E ' (WARN|ERROR) ' "$DIR/colony-$i.log" || true)
  printf '%-6s %15s %10s %12s %12s\n' "$i" "$s" "$d" "$u" "$w"
  (( n_all >= 10000 )) && echo "  (node $i's ring is full: events before t=$first ms are not counted)"
  total=$((total + s + d + u))
done
echo "false suspicions / deaths / undead: $total (must be 0)"
[[ -s $DIR/bench.err ]] && { echo "redis-benchmark stderr (first lines):"; head -3 "$DIR/bench.err"; }
[[ $total == 0 ]]
