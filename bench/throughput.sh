#!/usr/bin/env bash
# Throughput: a 3-node colony cluster (N = 2, synchronous: every write waits for the
# in-sync secondary) against a redis-server primary with one replica, on one machine,
# in one run, driven by redis-benchmark.
#
#   bench/throughput.sh                 # 100,000 requests per measurement, 3 repeats
#   REQUESTS=200000 REPEATS=5 bench/throughput.sh
#
# Keys are random (-r 100000: `key:__rand_int__`), so colony writes spread over every
# colony. Two ways to reach colony: `colony` connects every client to node 1, which
# forwards most requests to the colony's primary; `colony-cl` is `redis-benchmark
# --cluster`, a Redis Cluster client: it reads CLUSTER NODES and sends each key straight
# to its primary (keys `key:{tag}:__rand_int__`, tags spread over each node's slots).
# Every process started here is stopped here, by its pid (trap EXIT).
set -euo pipefail

REQUESTS=${REQUESTS:-100000}
REPEATS=${REPEATS:-3}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-100000}
COLONIES=${COLONIES:-271}
PIPELINES=${PIPELINES:-"1 16"}
BASE=${BASE:-17100}           # colony peer BASE+i, client BASE-1000+i, admin BASE+100+i
REDIS_PORT=${REDIS_PORT:-16351} # redis primary; replica on REDIS_PORT+1

source "$(dirname "$0")/lib.sh"
bench_init throughput redis-server redis-cli redis-benchmark curl jq
bench_ports_free $((BASE+1)) $((BASE+2)) $((BASE+3)) $((BASE-999)) $((BASE-998)) $((BASE-997)) \
  $((BASE+101)) $((BASE+102)) $((BASE+103)) "$REDIS_PORT" $((REDIS_PORT+1))

# --- colony: 3 nodes, N = 2, default sync (all in-sync secondaries) ---
start_cluster3 bench bench-box
COLONY_CLIENT=$((BASE-999))

echo "waiting for the colony cluster to settle (3 hosts, $COLONIES colonies, N = 2)..." >&2
wait_settled3

# --- redis: primary + one replica, no persistence ---
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$DIR" --logfile "$DIR/redis-primary.log" >/dev/null &
PIDS+=($!)
redis-server --port "$((REDIS_PORT+1))" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$DIR" --logfile "$DIR/redis-replica.log" --replicaof 127.0.0.1 "$REDIS_PORT" >/dev/null &
PIDS+=($!)
echo "waiting for the redis replica to sync..." >&2
for t in $(seq 150); do
  if redis-cli -p "$((REDIS_PORT+1))" info replication 2>/dev/null | grep -q 'master_link_status:up' &&
     redis-cli -p "$REDIS_PORT" info replication 2>/dev/null | grep -q 'connected_slaves:1'; then break; fi
  [[ $t == 150 ]] && { echo "redis replica did not sync" >&2; exit 1; }
  sleep 0.2
done

# --- measurements: interleaved (colony, redis) per repeat and pipeline depth ---
RAW=$DIR/raw.csv   # target,pipeline,repeat,test,rps,p50,p99
: >"$RAW"
run() { # target port pipeline repeat
  local out err mode=()
  if [[ $1 == colony-cl ]]; then mode=(--cluster); fi
  out=$(redis-benchmark "${mode[@]}" -h 127.0.0.1 -p "$2" -t set,get -c "$CLIENTS" -n "$REQUESTS" \
        -r "$KEYSPACE" -P "$3" --csv 2>"$DIR/bench-$1-P$3-$4.err" | grep -E '^"(SET|GET)"')
  err=$(grep -c -i 'error' "$DIR/bench-$1-P$3-$4.err" || true)
  [[ $err != 0 ]] && echo "  $1 -P $3 #$4: $err error lines (see $DIR/bench-$1-P$3-$4.err)" >&2
  echo "$out" | tr -d '"' | while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
    echo "$1,$3,$4,$test,$rps,$p50,$p99" >>"$RAW"
  done
  echo "  $1 -P $3 #$4: $(echo "$out" | tr -d '"' | cut -d, -f1,2 | tr '\n' ' ')" >&2
}
echo "redis-benchmark -t set,get -c $CLIENTS -n $REQUESTS -r $KEYSPACE -P {${PIPELINES// /,}}, $REPEATS repeats" >&2
for r in $(seq "$REPEATS"); do
  for p in $PIPELINES; do
    run colony "$COLONY_CLIENT" "$p" "$r"
    run colony-cl "$COLONY_CLIENT" "$p" "$r"
    run redis "$REDIS_PORT" "$p" "$r"
  done
done

# --- table of medians ---
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { # target pipeline test field(5=rps,6=p50,7=p99)
  awk -F, -v t="$1" -v p="$2" -v x="$3" -v f="$4" '$1==t && $2==p && $4==x {print $f}' "$RAW" | median
}
echo
echo "colony: 3 nodes, N=2 sync, $COLONIES colonies; colony: every client on node 1; colony-cl: redis-benchmark --cluster"
echo "redis: primary + 1 replica (async)"
echo "redis-benchmark -c $CLIENTS -n $REQUESTS -r $KEYSPACE (random keys), median of $REPEATS"
printf '%-9s %-4s %-8s %12s %8s %8s %14s\n' target test pipeline "ops/s" "p50 ms" "p99 ms" "colony/redis"
for p in $PIPELINES; do
  for test in SET GET; do
    rr=$(col redis "$p" "$test" 5)
    for t in colony colony-cl; do
      rc=$(col "$t" "$p" "$test" 5)
      ratio=$(awk -v a="$rc" -v b="$rr" 'BEGIN {printf "%.2f", a/b}')
      printf '%-9s %-4s %-8s %12.0f %8.3f %8.3f %14s\n' "$t" "$test" "$p" "$rc" "$(col "$t" "$p" "$test" 6)" "$(col "$t" "$p" "$test" 7)" "$ratio"
    done
    printf '%-9s %-4s %-8s %12.0f %8.3f %8.3f %14s\n' redis "$test" "$p" "$rr" "$(col redis "$p" "$test" 6)" "$(col redis "$p" "$test" 7)" ""
  done
done

# What the colony nodes logged at WARN or above during the run.
warn=$(cat "$DIR"/colony-*.log | grep -c -E ' (WARN|ERROR) ' || true)
echo
echo "colony node log lines at WARN/ERROR during the run: $warn"
if [[ $warn != 0 ]]; then
  cat "$DIR"/colony-*.log | grep -E ' (WARN|ERROR) ' | sed -E 's/^[^ ]+ +//' | cut -c1-160 | sort | uniq -c | sort -rn | head -5
fi
for i in 1 2 3; do
  curl -s --max-time 2 "http://127.0.0.1:$((BASE+100+i))/metrics" | grep -E '^colony_(client_errors|frames_dropped|writes)_total' | tr '\n' ' '
  echo
done
