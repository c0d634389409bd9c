#!/usr/bin/env bash
# Logging node: what attaching one costs a 3-node colony cluster (N = 2, synchronous,
# 271 colonies) in SET throughput, and how fast the logger writes, on one machine.
#
#   bench/logger.sh                     # 100,000 SETs per measurement, 3 repeats
#   REQUESTS=200000 REPEATS=5 bench/logger.sh
#
# Load: `redis-benchmark -t set -c 50 -n REQUESTS -r 100000 -d 100 -P {1,16}` against
# node 1's client port (random keys: writes spread over every colony, most forwarded).
#
# Method (the fairest comparison on a noisy shared 2-core machine): ONE cluster process
# set throughout, so both configurations see the same processes, the same placement and
# the same store, and machine noise hits both alike. A warm-up (not measured) first
# writes WARMUP SETs (default 1.1 x 4096 x COLONIES): it fills the keyspace and every
# primary's tail of recent mutations (at most 4,096 entries and 64 KiB per colony:
# ColonyConfig::log_tail, log_tail_bytes), so each measurement sees the
# steady state of a cluster that has run a while, not a history that grows from one
# measurement to the next. Then, REPEATS times, in alternation:
#   without: no logger attached                          -> measure P = 1, 16
#   with:    start `colony node --role logger --data-dir $DIR/log --join node1`, wait
#            until node 1-3 and the logger itself list it alive and it has caught up
#            (position in every colony, buffer empty, counters still)  -> measure P = 1, 16
#            then SIGTERM it (graceful leave), wait for it to exit and for nodes 1-3 to
#            see it gone.
# Every logger start reuses $DIR/log, so it first catches up on what it missed while
# stopped (outside the measurement) and every stop finishes a segment. The logger runs
# on the same 2 cores as the cluster and redis-benchmark, so its own CPU is part of the
# slowdown (its CPU use is reported). Nodes 1-3's CPU time per 1000 SETs is reported
# too: on a noisy machine it shows what the logger costs the primaries more steadily
# than ops/s do.
# Logger figures per measurement come from its /status deltas over redis-benchmark's
# wall time (writer.entries, writer.bytes), plus what it still wrote after the
# benchmark ended (drain). At the end: log size on disk, then `colony log compact` on
# the stopped logger's directory (input vs output bytes, time).
# Every process started here is stopped here, by its pid (trap EXIT).
set -euo pipefail

REQUESTS=${REQUESTS:-100000}
REPEATS=${REPEATS:-3}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-100000}
VALUE=${VALUE:-100}            # -d: value size in bytes
COLONIES=${COLONIES:-271}
WARMUP=${WARMUP:-$((4096 * COLONIES * 11 / 10))} # SETs before measuring (-P 16)
PIPELINES=${PIPELINES:-"1 16"}
BASE=${BASE:-17300}            # colony peer BASE+i, client BASE-1000+i, admin BASE+100+i; logger i = 4

LOGGER_PID=    # the logger while it runs (cleared once it has been waited for)
BENCH_PID=
extra_pids() { echo $LOGGER_PID $BENCH_PID; }
source "$(dirname "$0")/lib.sh"
bench_init logger redis-benchmark curl jq
bench_ports_free $((BASE+1)) $((BASE+2)) $((BASE+3)) $((BASE+4)) $((BASE-999)) $((BASE-998)) \
  $((BASE-997)) $((BASE+101)) $((BASE+102)) $((BASE+103)) $((BASE+104))

now() { date +%s.%N; }

# --- colony: 3 nodes, N = 2, default sync (all in-sync secondaries) ---
start_cluster3 bench bench-box
COLONY_CLIENT=$((BASE-999))
LOGGER_ID=4
LOGGER_ADMIN=$((BASE+104))

echo "waiting for the colony cluster to settle (3 hosts, $COLONIES colonies, N = 2)..." >&2
wait_settled3

# --- the logger ---
# Does node $1's /status (1-3 or 4 = the logger itself) list the logger as alive?
lists_logger() {
  curl -s --max-time 2 "http://127.0.0.1:$((BASE+100+$1))/status" |
    jq -e --argjson id "$LOGGER_ID" 'any(.members[]; .id == $id and .state == "alive")' >/dev/null 2>&1
}
# Logger counters, tab separated: entries bytes snapshots dropped overflows write_errors
# buffered gaps sink_dropped duplicates colonies segment
logger_stats() {
  curl -s --max-time 2 "http://127.0.0.1:$LOGGER_ADMIN/status" | jq -r '.logger |
    [.writer.entries, .writer.bytes, .writer.snapshots, .writer.dropped, .writer.overflows,
     .writer.write_errors, .writer.buffered_bytes, .sink.gaps, .sink.dropped, .sink.duplicates,
     .colonies, .writer.segment] | @tsv'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cluster_ticks() { local pid s=0; for pid in "${PIDS[@]}"; do s=$(( s + $(cpu_ticks "$pid") )); done; echo "$s"; }
TICK=$(getconf CLK_TCK)
# Waits until the logger's counters have stood still for $1 seconds with an empty buffer
# (and, with $2 = start, it has written something since it started and holds a
# position in every colony). Prints the seconds waited, less the quiet window.
# After a start the window must outlast the sink's probe period (2 s): a restarted
# logger learns what it missed while stopped from its probes of quiet colonies (or
# from the gap the next write shows), not at once.
logger_quiet() {
  local window=$1 t0 since cur prev="" buf cols written
  t0=$(now); since=$t0
  for t in $(seq 1200); do
    cur=$(logger_stats) || cur=""
    buf=$(cut -f7 <<<"$cur"); cols=$(cut -f11 <<<"$cur")
    written=$(awk -F'\t' '{print $1 + $3}' <<<"$cur")
    if [[ -z $cur || $cur != "$prev" || $buf != 0 ]] ||
       [[ ${2:-} == start && ( $cols != "$COLONIES" || ${written:-0} == 0 ) ]]; then
      since=$(now)
    elif awk -v a="$since" -v b="$(now)" -v w="$window" 'BEGIN {exit !(b - a >= w)}'; then
      awk -v a="$t0" -v b="$since" 'BEGIN {printf "%.1f", b - a}'; return 0
    fi
    prev=$cur
    [[ $t == 1200 ]] && { echo "the logger did not settle in 10 minutes" >&2; exit 1; }
    sleep 0.5
  done
}
LOGGER_STARTS=0
start_logger() {
  LOGGER_STARTS=$((LOGGER_STARTS+1))
  RUST_LOG=${RUST_LOG:-info} "$EXE" node --id "$LOGGER_ID" --role logger --data-dir "$DIR/log" \
    --listen "127.0.0.1:$((BASE+4))" --admin "127.0.0.1:$LOGGER_ADMIN" --box bench-box-log \
    --cluster bench --join "127.0.0.1:$((BASE+1))" >/dev/null 2>"$DIR/logger-$LOGGER_STARTS.log" &
  LOGGER_PID=$!
  local t0 i ok
  t0=$(now)
  for t in $(seq 300); do
    kill -0 "$LOGGER_PID" 2>/dev/null || { echo "the logger exited; see $DIR/logger-$LOGGER_STARTS.log" >&2; exit 1; }
    nodes_alive
    ok=1
    for i in 1 2 3 4; do lists_logger "$i" || { ok=0; break; }; done
    [[ $ok == 1 ]] && break
    [[ $t == 300 ]] && { echo "the logger was not listed alive by every node in 60 s" >&2; exit 1; }
    sleep 0.2
  done
  local joined catchup
  joined=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
  catchup=$(logger_quiet 4 start)
  local st
  st=$(logger_stats)
  echo "  logger started (#$LOGGER_STARTS): alive everywhere after ${joined} s, caught up ${catchup} s later" \
       "($(cut -f1 <<<"$st") entries, $(cut -f3 <<<"$st") snapshots, $(cut -f8 <<<"$st") gaps)" >&2
}
stop_logger() {
  local t0 t
  t0=$(now)
  kill -TERM "$LOGGER_PID"
  for t in $(seq 600); do
    kill -0 "$LOGGER_PID" 2>/dev/null || break
    if [[ $t == 600 ]]; then
      echo "  the logger did not exit within 60 s of SIGTERM: killing it" >&2
      kill -KILL "$LOGGER_PID" 2>/dev/null || true
    fi
    sleep 0.1
  done
  local rc=0
  wait "$LOGGER_PID" || rc=$?
  LOGGER_PID=
  [[ $rc != 0 ]] && echo "  the logger exited with status $rc" >&2
  # Measure "without" only once nodes 1-3 no longer count the logger.
  for t in $(seq 300); do
    local ok=1 i
    for i in 1 2 3; do lists_logger "$i" && { ok=0; break; }; done
    [[ $ok == 1 ]] && break
    [[ $t == 300 ]] && { echo "nodes still list the stopped logger alive after 60 s" >&2; exit 1; }
    sleep 0.2
  done
  echo "  logger stopped (SIGTERM -> exit, gone from every node) in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') s" >&2
}

# --- measurements ---
RAW=$DIR/raw.csv   # config,pipeline,repeat,rps,p50,p99,seconds,cluster_cpu_s
LOG=$DIR/logger.csv # pipeline,repeat,seconds,entries,bytes,drain_entries,drain_bytes,drain_s,dropped,overflows,gaps,sink_dropped,write_errors,cpu_s,snapshots,duplicates
: >"$RAW"; : >"$LOG"
bench() { # config pipeline repeat [requests] -> sets OUT, SECS
  local err=$DIR/bench-$1-P$2-$3.err t0 t1
  t0=$(now)
  redis-benchmark -h 127.0.0.1 -p "$COLONY_CLIENT" -t set -c "$CLIENTS" -n "${4:-$REQUESTS}" \
    -r "$KEYSPACE" -d "$VALUE" -P "$2" --csv >"$DIR/bench.out" 2>"$err" &
  BENCH_PID=$!
  wait "$BENCH_PID"
  BENCH_PID=
  t1=$(now)
  OUT=$(tail -n +2 "$DIR/bench.out" | tr -d '"')
  SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  local n
  n=$(grep -c -i 'error' "$err" || true)
  [[ $n != 0 ]] && echo "  $1 -P $2 #$3: $n error lines (see $err)" >&2
  return 0
}
run() { # config pipeline repeat
  local s0 s1 s2 c0 c1 k0 k1 drain
  if [[ $1 == with ]]; then s0=$(logger_stats); c0=$(cpu_ticks "$LOGGER_PID"); fi
  k0=$(cluster_ticks)
  bench "$@"
  k1=$(cluster_ticks)
  local rps p50 p99 kcpu
  IFS=, read -r _test rps _avg _min p50 _p95 p99 _max <<<"$OUT"
  kcpu=$(awk -v k="$(( k1 - k0 ))" -v tick="$TICK" 'BEGIN {printf "%.2f", k / tick}')
  echo "$1,$2,$3,$rps,$p50,$p99,$SECS,$kcpu" >>"$RAW"
  local msg="  $1 -P $2 #$3: SET $rps ops/s (p50 $p50 ms, p99 $p99 ms), nodes 1-3 cpu $kcpu s"
  if [[ $1 == with ]]; then
    s1=$(logger_stats); c1=$(cpu_ticks "$LOGGER_PID")
    drain=$(logger_quiet 1)
    s2=$(logger_stats)
    # pipeline,repeat,seconds,entries,bytes,drain_entries,drain_bytes,drain_s,dropped,
    # overflows,gaps,sink_dropped,write_errors,cpu_s,snapshots,duplicates (all deltas)
    paste <(tr '\t' '\n' <<<"$s0") <(tr '\t' '\n' <<<"$s1") <(tr '\t' '\n' <<<"$s2") |
      awk -v p="$2" -v r="$3" -v secs="$SECS" -v drain="$drain" -v cpu="$(( c1 - c0 ))" -v tick="$TICK" '
        {a[NR] = $1; b[NR] = $2; c[NR] = $3}
        END {printf "%s,%s,%s,%d,%d,%d,%d,%s,%d,%d,%d,%d,%d,%.2f,%d,%d\n", p, r, secs,
               b[1]-a[1], b[2]-a[2], c[1]-b[1], c[2]-b[2], drain, c[4]-a[4], c[5]-a[5],
               c[8]-a[8], c[9]-a[9], c[6]-a[6], cpu/tick, c[3]-a[3], c[10]-a[10]}' >>"$LOG"
    msg+=$(tail -n 1 "$LOG" | awk -F, '{printf "; logger %d entries (%.0f/s, %.1f MB/s), +%d after (%s s), cpu %.0f%%, dropped %d, gaps %d",
      $4, $4/$3, $5/$3/1e6, $6, $8, 100*$14/$3, $9, $11}')
  fi
  echo "$msg" >&2
}

echo "warm-up: $WARMUP SETs (-P 16, not measured) to fill the keyspace and the primaries' mutation tails..." >&2
bench warmup 16 0 "$WARMUP"
echo "  warm-up: $(cut -d, -f2 <<<"$OUT") ops/s" >&2
echo "redis-benchmark -t set -c $CLIENTS -n $REQUESTS -r $KEYSPACE -d $VALUE -P {${PIPELINES// /,}}, $REPEATS repeats, without/with a logger alternately" >&2
for r in $(seq "$REPEATS"); do
  for config in without with; do
    if [[ $config == with ]]; then start_logger; fi
    for p in $PIPELINES; do run "$config" "$p" "$r"; done
    if [[ $config == with ]]; then stop_logger; fi
  done
done
nodes_alive

# --- the log on disk, then compaction (the logger is stopped: every segment is finished) ---
LOG_FILES=$(find "$DIR/log" -maxdepth 1 -type f -name '*.colonylog' | wc -l)
LOG_BYTES=$(find "$DIR/log" -maxdepth 1 -type f -name '*.colonylog' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
LOG_DU=$(du -sb "$DIR/log" | cut -f1)
t0=$(now)
COMPACT_OUT=$("$EXE" log compact "$DIR/log" 2>&1) || { echo "colony log compact failed: $COMPACT_OUT" >&2; exit 1; }
COMPACT_S=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
echo "  colony log compact: $COMPACT_OUT" >&2
COMPACT_IN=$(sed -nE 's/.*compacted [0-9]+ files \(([0-9]+) bytes\).*/\1/p' <<<"$COMPACT_OUT" | tail -n 1)
COMPACT_OUTB=$(sed -nE 's/.* \(([0-9]+) bytes, [0-9.]+% of the input\).*/\1/p' <<<"$COMPACT_OUT" | tail -n 1)
COMPACT_CELLS=$(sed -nE 's/.*: ([0-9]+) cells kept.*/\1/p' <<<"$COMPACT_OUT" | tail -n 1)
AFTER_BYTES=$(find "$DIR/log" -maxdepth 1 -type f -name '*.colonylog' -printf '%s\n' | awk '{s += $1} END {print s + 0}')

# --- tables of medians ---
median() { sort -g | awk 'NF {a[++n]=$1} END {if (n == 0) print 0; else if (n%2) print a[(n+1)/2]; else printf "%.3f\n", (a[n/2]+a[n/2+1])/2}'; }
col() { awk -F, -v c="$1" -v p="$2" -v f="$3" '$1==c && $2==p {print $f}' "$RAW" | median; }
lcol() { awk -F, -v p="$1" -v f="$2" '$1==p {print $f}' "$LOG" | median; }
lsum() { awk -F, -v f="$1" '{s += $f} END {print s + 0}' "$LOG"; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }

echo
echo "colony: 3 nodes, N=2 sync, $COLONIES colonies, client port of node 1; one cluster, logger attached/detached alternately"
echo "redis-benchmark -t set -c $CLIENTS -n $REQUESTS -r $KEYSPACE -d $VALUE (random keys), median of $REPEATS, after $WARMUP warm-up SETs"
echo
echo "| pipeline | without: SET ops/s | with logger: SET ops/s | with/without | p50 ms without / with | p99 ms without / with | nodes 1-3 cpu us per SET without / with |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for p in $PIPELINES; do
  a=$(col without "$p" 4); b=$(col with "$p" 4)
  printf '| %s | %.0f | %.0f | %s | %s / %s | %s / %s | %s |\n' "$p" "$a" "$b" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f (%+.1f%%)", b/a, 100*(b/a-1)}')" \
    "$(col without "$p" 5)" "$(col with "$p" 5)" "$(col without "$p" 6)" "$(col with "$p" 6)" \
    "$(awk -v c="$(col without "$p" 8)" 'BEGIN {printf "%.1f", 1e6 * c / '"$REQUESTS"'}') / $(awk -v c="$(col with "$p" 8)" 'BEGIN {printf "%.1f", 1e6 * c / '"$REQUESTS"'}')"
done
echo
echo "cpu cost of the logger (less sensitive to machine noise than ops/s): nodes 1-3 and the logger, cpu us per SET, medians"
echo
echo "| pipeline | nodes without | nodes with | logger | added cpu: (nodes with - without + logger) / without |"
echo "|---:|---:|---:|---:|---:|"
for p in $PIPELINES; do
  a=$(awk -v c="$(col without "$p" 8)" 'BEGIN {printf "%.2f", 1e6 * c / '"$REQUESTS"'}')
  b=$(awk -v c="$(col with "$p" 8)" 'BEGIN {printf "%.2f", 1e6 * c / '"$REQUESTS"'}')
  l=$(awk -F, -v p="$p" '$1==p {print 1e6 * $14 / '"$REQUESTS"'}' "$LOG" | median)
  printf '| %s | %.1f | %.1f | %.1f | %s |\n' "$p" "$a" "$b" "$l" \
    "$(awk -v a="$a" -v b="$b" -v l="$l" 'BEGIN {printf "%+.1f%%", 100 * (b - a + l) / a}')"
done
echo
echo "logger, during each measurement (median of $REPEATS; /status writer deltas over redis-benchmark's wall time):"
echo
echo "| pipeline | entries/s | MB/s | entries per SET (incl. drain) | drain after bench s | logger cpu % | dropped | overflows | gaps |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in $PIPELINES; do
  awk -F, -v p="$p" '$1==p {print $4/$3, $5/$3/1e6, ($4+$6)/'"$REQUESTS"', $8, 100*$14/$3}' "$LOG" >"$DIR/l.tmp"
  m() { awk -v f="$1" '{print $f}' "$DIR/l.tmp" | median; }
  dropped=$(awk -F, -v p="$p" '$1==p {s += $9} END {print s + 0}' "$LOG")
  overflows=$(awk -F, -v p="$p" '$1==p {s += $10} END {print s + 0}' "$LOG")
  gaps=$(awk -F, -v p="$p" '$1==p {s += $11} END {print s + 0}' "$LOG")
  printf '| %s | %.0f | %.1f | %.3f | %s | %.0f | %s | %s | %s |\n' "$p" "$(m 1)" "$(m 2)" "$(m 3)" "$(m 4)" "$(m 5)" \
    "$dropped" "$overflows" "$gaps"
done
echo
echo "(dropped, overflows, gaps: totals over all measurements, drain included; write errors: $(lsum 13); sink drops: $(lsum 12); duplicates: $(lsum 16); snapshots written: $(lsum 15))"
echo
echo "| log on disk | files | bytes | compact: input bytes | output bytes | output/input | cells kept | time s | input MB/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '| %s MB | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(mb "$LOG_DU")" "$LOG_FILES" "$LOG_BYTES" \
  "${COMPACT_IN:-0}" "${COMPACT_OUTB:-0}" \
  "$(awk -v a="${COMPACT_IN:-0}" -v b="${COMPACT_OUTB:-0}" 'BEGIN {if (a > 0) printf "%.1f%%", 100*b/a; else print "-"}')" \
  "${COMPACT_CELLS:-?}" "$COMPACT_S" "$(awk -v b="${COMPACT_IN:-0}" -v t="$COMPACT_S" 'BEGIN {if (t > 0) printf "%.0f", b / t / 1e6; else print "-"}')"
echo
echo "(log files after compaction: $AFTER_BYTES bytes)"
echo
echo "command: REQUESTS=$REQUESTS REPEATS=$REPEATS WARMUP=$WARMUP CLIENTS=$CLIENTS KEYSPACE=$KEYSPACE VALUE=$VALUE COLONIES=$COLONIES PIPELINES=\"$PIPELINES\" bench/logger.sh"

# What the nodes logged at WARN or above during the run.
warn=$(cat "$DIR"/colony-*.log "$DIR"/logger-*.log | grep -c -E ' (WARN|ERROR) ' || true)
echo
echo "node log lines at WARN/ERROR during the run (nodes 1-3 and the logger): $warn"
if [[ $warn != 0 ]]; then
  cat "$DIR"/colony-*.log "$DIR"/logger-*.log | grep -E ' (WARN|ERROR) ' | sed -E 's/^[^ ]+ +//' | cut -c1-160 | sort | uniq -c | sort -rn | head -8
fi
for i in 1 2 3; do
  curl -s --max-time 2 "http://127.0.0.1:$((BASE+100+i))/metrics" | grep -E '^colony_(client_errors|frames_dropped|writes)_total' | tr '\n' ' '
  echo
done
