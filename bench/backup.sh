#!/usr/bin/env bash
# Backup and restore throughput: CELLS cells of 100 bytes (default 1,000,000) in a
# 3-node colony cluster (N=2), `colony backup` to a file, then `colony restore` into a
# fresh 3-node cluster. Prints what the two commands print (MB/s and cells/s).
# Usage: bench/backup.sh [CELLS]
set -euo pipefail
cd "$(dirname "$0")/.."
CELLS=${1:-1000000}
B=target/release/colony
cargo build --release -q
DIR=$(mktemp -d /tmp/colony-bench-backup.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
export COLONY_SECRET=bench
start() { # name base
  local base=$2
  "$B" node --id 1 --listen 127.0.0.1:$((base+1)) --client 127.0.0.1:$((base+11)) --admin 127.0.0.1:$((base+21)) \
    --replicas 2 --colonies 271 --box a >"$DIR/$1-1.log" 2>&1 & PIDS+=($!)
  sleep 0.5
  for i in 2 3; do
    "$B" node --id $i --listen 127.0.0.1:$((base+i)) --client 127.0.0.1:$((base+10+i)) --admin 127.0.0.1:$((base+20+i)) \
      --replicas 2 --colonies 271 --box b$i --join 127.0.0.1:$((base+1)) >"$DIR/$1-$i.log" 2>&1 & PIDS+=($!)
  done
  for _ in $(seq 1 120); do
    if curl -sf "127.0.0.1:$((base+21))/status" | python3 -c '
import json,sys; s=json.load(sys.stdin)
ok = len(s["directory"]) == s["colonies"] and all(len(d["secondaries"]) >= 1 for d in s["directory"])
sys.exit(0 if ok else 1)' 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "cluster $1 did not settle"; exit 1
}
start src 18400
echo "loading $CELLS cells of 100 bytes..."
# Sequential keys (-r with __rand_int__ would collide); redis-benchmark numbers keys 0..n-1 with -r n and --sequential? Use a pipelined loader instead.
python3 - "$CELLS" 18411 <<'PY'
import socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
value = b"x" * 100
batch = 1000
f = s.makefile("rb")
for start in range(0, n, batch):
    buf = bytearray()
    for i in range(start, min(n, start + batch)):
        k = b"cell:%d" % i
        buf += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, value)
    s.sendall(buf)
    for _ in range(start, min(n, start + batch)):
        line = f.readline()
        if not line.startswith(b"+OK"):
            sys.exit("write failed: %r" % line)
PY
"$B" backup 127.0.0.1:18421 --to "$DIR/backup.colony"
ls -la "$DIR/backup.colony" | awk '{print "file size:", $5, "bytes"}'
start dst 18500
"$B" restore 127.0.0.1:18521 "$DIR/backup.colony"
