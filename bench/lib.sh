# bench/lib.sh: what the bench scripts share; sourced, not run.
#
#   source "$(dirname "$0")/lib.sh"
#   bench_init NAME TOOL...        # checks the binary and the tools, makes $DIR, traps
#   bench_ports_free PORT...       # refuses to start on a port in use
#   start_cluster3 CLUSTER BOXES   # nodes 1-3: peer BASE+i, client BASE-1000+i,
#                                  # admin BASE+100+i; N = 2; $COLONIES colonies
#   wait_settled3                  # until every node sees 3 data hosts and every colony
#                                  # on 2 distinct hosts (120 s at most)
#
# Every process a script starts goes into PIDS (or is printed by an `extra_pids`
# function the script defines); the EXIT trap stops them all by their own pid: TERM,
# up to 3 s to go, then KILL. Logs stay in $DIR when the script fails.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXE=${COLONY_EXE:-$ROOT/target/release/colony}
PIDS=()

bench_init() {
  local name=$1 tool
  shift
  [[ -x $EXE ]] || { echo "build first: cargo build --release" >&2; exit 1; }
  for tool in "$@"; do
    command -v "$tool" >/dev/null ||
      { echo "missing $tool (apt-get install -y redis-server redis-tools curl jq)" >&2; exit 1; }
  done
  DIR=$(mktemp -d "/tmp/colony-bench-$name.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  export COLONY_SECRET=${COLONY_SECRET:-$(head -c 32 /dev/urandom | base64)}
}

bench_cleanup() {
  local rc=$? pid all=("${PIDS[@]}")
  if declare -F extra_pids >/dev/null; then
    for pid in $(extra_pids); do all+=("$pid"); done
  fi
  for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 30); do
    local alive=0
    for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    if [[ $alive == 0 ]]; then break; fi
    sleep 0.1
  done
  for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [[ $rc != 0 ]]; then echo "failed (exit $rc); logs kept in $DIR" >&2; else rm -rf "$DIR"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bench_ports_free() {
  local p
  for p in "$@"; do
    port_free "$p" || { echo "port $p is in use; set BASE" >&2; exit 1; }
  done
}

start_cluster3() {
  local cluster=$1 boxes=$2 i args
  for i in 1 2 3; do
    args=(node --id "$i" --listen "127.0.0.1:$((BASE+i))" --client "127.0.0.1:$((BASE-1000+i))"
          --admin "127.0.0.1:$((BASE+100+i))" --box "$boxes-$i" --replicas 2
          --colonies "$COLONIES" --cluster "$cluster")
    if [[ $i != 1 ]]; then args+=(--join "127.0.0.1:$((BASE+1))"); fi
    RUST_LOG=${RUST_LOG:-info} "$EXE" "${args[@]}" >/dev/null 2>"$DIR/colony-$i.log" &
    PIDS+=($!)
    if [[ $i == 1 ]]; then sleep 0.5; fi
  done
}

nodes_alive() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a colony node exited; see $DIR" >&2; exit 1; }
  done
}

settled3() {
  local i s
  for i in 1 2 3; do
    s=$(curl -s --max-time 2 "http://127.0.0.1:$((BASE+100+i))/status") || return 1
    echo "$s" | jq -e --argjson c "$COLONIES" '
      ([.members[] | select(.state == "alive" and .role != "logger")] | length) == 3
      and (.directory | length) == $c
      and all(.directory[]; (.secondaries | length) == 1 and (.secondaries[0] != .primary))' \
      >/dev/null || return 1
  done
}

wait_settled3() {
  local t
  for t in $(seq 600); do
    settled3 && return 0
    nodes_alive
    if [[ $t == 600 ]]; then echo "colony cluster did not settle in 120 s" >&2; exit 1; fi
    sleep 0.2
  done
}
