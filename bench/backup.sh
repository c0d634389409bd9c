#!/usr/bin/env bash
# Backup and restore throughput: CELLS cells of 100 bytes (default 1,000,000) in a
# 3-node colony cluster (N = 2, 271 colonies), `colony backup` to a file, then
# `colony restore` of that file into a fresh 3-node cluster. Prints what the two
# commands print (MB/s and cells/s) and the file's size.
#
#   bench/backup.sh [CELLS]          # build first: cargo build --release
#
# The source cluster's ports come from SRC_BASE, the fresh one's from DST_BASE (see
# bench/lib.sh for the layout). Every process started here is stopped here, by its pid.
set -euo pipefail

CELLS=${1:-1000000}
COLONIES=${COLONIES:-271}
SRC_BASE=${SRC_BASE:-18400}
DST_BASE=${DST_BASE:-18600}

source "$(dirname "$0")/lib.sh"
bench_init backup curl jq python3
for BASE in $SRC_BASE $DST_BASE; do
  bench_ports_free $((BASE+1)) $((BASE+2)) $((BASE+3)) $((BASE-999)) $((BASE-998)) $((BASE-997)) \
    $((BASE+101)) $((BASE+102)) $((BASE+103))
done

BASE=$SRC_BASE
start_cluster3 bench-backup src
wait_settled3
echo "loading $CELLS cells of 100 bytes (pipelined SETs of sequential keys through node 1)..."
python3 - "$CELLS" $((BASE-999)) <<'PY'
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

"$EXE" backup "127.0.0.1:$((BASE+101))" --to "$DIR/backup.colony"
echo "file size: $(stat -c %s "$DIR/backup.colony") bytes"

BASE=$DST_BASE
start_cluster3 bench-backup dst
wait_settled3
"$EXE" restore "127.0.0.1:$((BASE+101))" "$DIR/backup.colony"
