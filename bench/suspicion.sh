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
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXE=${COLONY_EXE:-$ROOT/target/release/colony}
[[ -x $EXE ]] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in redis-benchmark curl jq; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y redis-tools curl jq)" >&2; exit 1; }
done
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for i in 1 2 3; do
  for p in $((BASE+i)) $((BASE-1000+i)) $((BASE+100+i)); do
    port_free "$p" || { echo "port $p is in use; set BASE" >&2; exit 1; }
  done
done

DIR=$(mktemp -d /tmp/colony-bench-suspicion.XXXXXX)
PIDS=()
LOAD_PID=
cleanup() {
  local rc=$?
  [[ -n $LOAD_PID ]] && { kill -TERM "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; }
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [[ $rc != 0 ]]; then echo "failed (exit $rc); logs kept in $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export COLONY_SECRET=${COLONY_SECRET:-$(head -c 32 /dev/urandom | base64)}
for i in 1 2 3; do
  args=(node --id "$i" --listen "127.0.0.1:$((BASE+i))" --client "127.0.0.1:$((BASE-1000+i))"
        --admin "127.0.0.1:$((BASE+100+i))" --box "suspicion-box-$i" --replicas 2
        --colonies "$COLONIES" --cluster suspicion)
  [[ $i != 1 ]] && args+=(--join "127.0.0.1:$((BASE+1))")
  RUST_LOG=${RUST_LOG:-info} "$EXE" "${args[@]}" >/dev/null 2>"$DIR/colony-$i.log" &
  PIDS+=($!)
  [[ $i == 1 ]] && sleep 0.5
done

settled() {
  local i s
  for i in 1 2 3; do
    s=$(curl -s --max-time 2 "http://127.0.0.1:$((BASE+100+i))/status") || return 1
    echo "$s" | jq -e --argjson c "$COLONIES" '
      ([.members[] | select(.state == "alive")] | length) == 3
      and (.directory | length) == $c
      and all(.directory[]; (.secondaries | length) == 1)' >/dev/null || return 1
  done
}
for t in $(seq 600); do
  settled && break
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a colony node exited; see $DIR" >&2; exit 1; }; done
  [[ $t == 600 ]] && { echo "colony cluster did not settle in 120 s" >&2; exit 1; }
  sleep 0.2
done
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
