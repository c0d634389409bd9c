#!/usr/bin/env bash
# The scale benchmark of the simulator: `colony-sim run scale` (1,000 hosts on 200
# boxes in 10 zones, 10,000 colonies, N = 3, one simulated hour, a host killed about
# every minute). Target: at least 60 simulated s per wall s on one core, under 2 GiB.
#
#   bench/scale.sh [RUNS] [SEED]          # RUNS runs (default 3) of seed SEED (default 1),
#                                         # one at a time, each pinned to one core
#   bench/scale.sh --against OTHER [ROUNDS] [SEED]
#                                         # this build beside OTHER (another colony-sim
#                                         # binary), one per core, then swapped: ROUNDS
#                                         # rounds (default 1) of both placements
#
# Build first: cargo build --release -p colony-sim. Prints, per run, the simulated
# seconds per wall second, the user time and the peak RSS, then the median (alone) or
# the ratio of each pair and their geometric mean (--against). On a shared machine one
# binary run alone moves by tens of percent from one minute to the next, and the core
# a run lands on by up to 9%: two builds are compared by pairs run at once on the two
# cores, both ways round, not by runs taken at different times.
#
# Every process started here is waited for here; an interrupted script stops them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIM=${COLONY_SIM:-$ROOT/target/release/colony-sim}
[[ -x $SIM ]] || { echo "build first: cargo build --release -p colony-sim" >&2; exit 1; }
for tool in taskset /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
DIR=$(mktemp -d /tmp/colony-bench-scale.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

# run NAME BINARY CORE SEED: one run in the background; its pid goes to PIDS.
run() {
  local name=$1 bin=$2 core=$3 seed=$4
  (cd "$ROOT/simulations" && /usr/bin/time -f "%U %M" -o "$DIR/$name.time" \
    taskset -c "$core" "$bin" run scale --seed "$seed" --quiet >"$DIR/$name.out" 2>&1) &
  PIDS+=($!)
}

# figures NAME: "speed user_s peak_kB" of a finished run (fails if the run failed).
figures() {
  local name=$1 speed
  speed=$(awk -F'|' '/simulated s per wall s/ {gsub(/ /, "", $3); print $3}' "$DIR/$name.out")
  if [[ -z $speed ]] || grep -q "failed seeds *| *[0-9]" "$DIR/$name.out"; then
    echo "the run $name failed:" >&2
    cat "$DIR/$name.out" >&2
    exit 1
  fi
  echo "$speed $(cat "$DIR/$name.time")"
}

wait_all() {
  local pid
  for pid in "${PIDS[@]}"; do wait "$pid" || true; done
  PIDS=()
}

if [[ ${1:-} == --against ]]; then
  OTHER=${2:?"--against needs a colony-sim binary"}
  [[ -x $OTHER ]] || { echo "not an executable: $OTHER" >&2; exit 1; }
  ROUNDS=${3:-1}
  SEED=${4:-1}
  ratios=()
  for r in $(seq 1 "$ROUNDS"); do
    for place in 0 1; do
      run this "$SIM" "$place" "$SEED"
      run other "$OTHER" $((1 - place)) "$SEED"
      wait_all
      read -r ts tu tm <<<"$(figures this)"
      read -r os ou om <<<"$(figures other)"
      ratio=$(python3 -c "print(round($ts / $os, 3))")
      ratios+=("$ratio")
      echo "round $r, this build on core $place: $ts vs $os sim s per wall s (user $tu vs $ou s, peak $tm vs $om kB): ratio $ratio"
    done
  done
  python3 -c "import math,sys; r=[float(x) for x in sys.argv[1:]]; print(f'geometric mean of the ratios: {math.exp(sum(map(math.log, r)) / len(r)):.3f}')" "${ratios[@]}"
else
  RUNS=${1:-3}
  SEED=${2:-1}
  speeds=()
  for i in $(seq 1 "$RUNS"); do
    core=$((i % 2))
    run "run$i" "$SIM" "$core" "$SEED"
    wait_all
    read -r s u m <<<"$(figures "run$i")"
    speeds+=("$s")
    echo "run $i (core $core): $s sim s per wall s, user $u s, peak $m kB ($(python3 -c "print(round($m / 1048576, 2))") GiB)"
  done
  python3 -c "import statistics,sys; print(f'median of {len(sys.argv) - 1}: {statistics.median(map(float, sys.argv[1:])):.1f} simulated s per wall s')" "${speeds[@]}"
fi
