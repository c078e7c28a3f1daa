#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: root -- a memory pool with a durable copy behind it, the copy a
# file: pool here (tests/ceph-tier.sh does the same on RADOS): place
# --backing writes both, a pool server restarted empty with --backing
# (and --warm) serves every page, a restore with --pool-fallback reads
# the copy while the server is down, without it or with both down it
# fails closed. Every replay verifies every page it touched.
set -uo pipefail

T=${TIERCTL:?set TIERCTL to the tierctl binary}
[ "$(id -u)" = 0 ] || { echo "skip: needs root (userfaultfd)"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }

tmp=$(mktemp -d)
srv_pid=
cleanup() {
	[ -z "$srv_pid" ] || kill "$srv_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
export TIER_STORE=$tmp/store
BACK=file:$tmp/back
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
one_line() {	# PATTERN FILE WHAT
	[ "$(wc -l <"$2")" = 1 ] || bad "$3: stderr is not one line: $(cat "$2")"
	grep -q -- "$1" "$2" || bad "$3: stderr does not match '$1': $(cat "$2")"
}

python3 - "$tmp/img" "$tmp/hot.trace" "$tmp/cold.txt" <<'EOF'
import sys
n = 2048
with open(sys.argv[1], "wb") as f:
    for p in range(n):
        f.write(bytes(4096) if p % 4 == 0 else
                p.to_bytes(8, "little") + bytes((p * 31 + i) & 0xff for i in range(4088)))
with open(sys.argv[2], "w") as f:
    for p in range(1, 100):
        f.write(f"{hex(p * 4096)} {['r', 'w', 'rw'][p % 3]}\n")
with open(sys.argv[3], "w") as f:
    for p in range(101, n, 3):
        f.write(f"{hex(p * 4096)} r\n")
EOF
ncold=$(grep -c . "$tmp/cold.txt")

port=0
start_server() {
	"$T" pool serve --listen "tcp://127.0.0.1:$port" --no-auth \
		--backing "$BACK" "$@" >"$tmp/srv.out" 2>"$tmp/srv.err" &
	srv_pid=$!
	for _ in $(seq 300); do
		grep -q listening "$tmp/srv.out" && break
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q listening "$tmp/srv.out" || { bad "pool serve: $(cat "$tmp/srv.err")"; return 1; }
	port=$(sed -n 's/^listening on tcp:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/srv.out")
}
kill_server() { kill -9 "$srv_pid"; wait "$srv_pid" 2>/dev/null; srv_pid=; }

replay() {	# OUT WHAT ARGS...: verified, every page
	local out=$1 what=$2
	shift 2
	"$T" replay --json --policy tiered --trace-file "$tmp/cold.txt" "$@" vm \
		>"$out" 2>"$out.err" || { bad "$what: replay failed: $(cat "$out.err")"; return; }
	python3 - "$out" "$ncold" "$what" <<'EOF' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
want, what = int(sys.argv[2]), sys.argv[3]
if d["verified_pages"] != want or d["mismatches"] != 0 or d["pool_bytes"] == 0:
    sys.exit(f"FAIL: {what}: verified {d['verified_pages']} of {want}, mismatches {d['mismatches']}, pool bytes {d['pool_bytes']}")
print(f"ok: {what}: {want} pages verified, {d['pool_bytes']} pool bytes")
EOF
}

start_server || exit 1
"$T" import vm "$tmp/img" >/dev/null && "$T" trace import vm "$tmp/hot.trace" >/dev/null || bad import
"$T" place --cxl "cxl=dir:$tmp/cxl" --pool "tcp://127.0.0.1:$port" --backing "$BACK" vm >/dev/null 2>"$tmp/err" ||
	bad "place --backing: $(cat "$tmp/err")"
seg=$(cd "$tmp/back" && ls vm/*.seg 2>/dev/null)
seg=${seg%.seg}
[ -n "$seg" ] || bad "place --backing wrote nothing to $BACK"
"$T" show vm | grep -q "backing pool=$BACK" || bad "show names no backing: $("$T" show vm)"
replay "$tmp/r1" "through the pool"

kill_server
start_server --warm vm || exit 1
grep -q "loaded '$seg' ([0-9]* bytes) from $BACK" "$tmp/srv.err" || bad "--warm: $(cat "$tmp/srv.err")"
replay "$tmp/r2" "restarted empty, --warm"
kill_server
start_server || exit 1
replay "$tmp/r3" "restarted empty, loaded on the first OPEN"
grep -q "loaded '$seg'" "$tmp/srv.err" || bad "first OPEN loaded nothing: $(cat "$tmp/srv.err")"
"$T" pool serve --listen tcp://127.0.0.1:0 --no-auth --warm vm >/dev/null 2>"$tmp/e" &&
	bad "--warm without --backing exited 0"
one_line "^tierctl pool serve: pool server: --warm needs a --backing pool" "$tmp/e" "--warm alone"
"$T" pool serve --listen tcp://127.0.0.1:0 --no-auth --backing "$BACK" --warm nosuch >/dev/null 2>"$tmp/e" &&
	bad "--warm of a snapshot the backing lacks exited 0"
one_line "^tierctl pool serve: pool server: --warm 'nosuch': $BACK holds no segment of that snapshot" "$tmp/e" "--warm nosuch"

kill_server
"$T" replay --policy tiered --trace-file "$tmp/cold.txt" vm >/dev/null 2>"$tmp/e" && bad "pool down: exited 0"
one_line "^tierctl replay: pool tcp://127.0.0.1:$port: " "$tmp/e" "pool down"
replay "$tmp/r4" "pool down, --pool-fallback" --pool-fallback
mv "$tmp/back" "$tmp/back.gone"
"$T" replay --policy tiered --trace-file "$tmp/cold.txt" --pool-fallback vm >/dev/null 2>"$tmp/e" &&
	bad "both down: exited 0"
one_line "^tierctl replay: pool tcp://127.0.0.1:$port: .*; and from the backing pool: " "$tmp/e" "both down"
rmdir "$tmp/back" 2>/dev/null	# the file pool makes its directory
mv "$tmp/back.gone" "$tmp/back"
"$T" place --cxl "cxl=dir:$tmp/cxl" --pool "tcp://127.0.0.1:$port" --backing "tcp://127.0.0.1:1" vm >/dev/null 2>"$tmp/e" &&
	bad "a pool server as the backing: exited 0"
one_line "a durable copy is rados:// or file:, not a pool server" "$tmp/e" "backing tcp://"

[ $fail = 0 ] && echo "cli-backing: all passed"
exit $fail
