#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: root -- faults under running restores and writers (doc/faults.md):
# the pool server killed, stopped and restarted in the middle of a
# restore's prefetch and of its lazy faults, a CXL object cut short or a
# byte flipped under a running restore, a full disk under import, place
# and a pool server's CREATE. Each either completes with every page
# verified or fails with one line naming what failed, within a bound (a
# timeout: a hang is a failure); never a mismatch, and what was stored
# before still restores byte for byte, with no temporary left that
# "tierctl gc" does not remove.
#
# A fault lands at a chosen byte of the pool's answers, not a chosen time:
# tests/faults-relay.py relays the client to the real server and runs the
# fault's command once exactly AT bytes have gone through.
set -uo pipefail

T=${TIERCTL:?set TIERCTL to the tierctl binary}
SRC=${TIER_SRCDIR:?set TIER_SRCDIR to the source tree}
[ "$(id -u)" = 0 ] || { echo "skip: needs root (userfaultfd, tmpfs mounts)"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }
RELAY=$SRC/tests/faults-relay.py

tmp=$(mktemp -d)
pool_pid=
main_pid=
relay_pid=
mnts=()
cleanup() {
	[ -n "$relay_pid" ] && kill -KILL "$relay_pid" 2>/dev/null
	if [ -n "$pool_pid" ]; then
		kill -CONT "$pool_pid" 2>/dev/null
		kill -KILL "$pool_pid" 2>/dev/null
	fi
	[ -s "$tmp/pool.pid" ] && kill -KILL "$(cat "$tmp/pool.pid")" 2>/dev/null
	[ -n "$main_pid" ] && kill -KILL "$main_pid" 2>/dev/null
	for m in "${mnts[@]}"; do umount "$m" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
export TIER_STORE=$tmp/store
CXL=cxl=dir:$tmp/cxl
BOUND=60		# seconds a failing command may take before it is a hang
# the stopped server's cases only, TIER_POOL_TIMEOUT_MS=1500; else 10 s
unset TIER_POOL_TIMEOUT_MS
fail=0

bad() {
	echo "FAIL: $*" >&2
	fail=1
}
ok() { echo "ok: $*"; }

# run RC CMD...: tierctl CMD under the bound, stdout/stderr in $tmp/out, err
run() {
	local want=$1 rc
	shift
	timeout -s KILL $BOUND "$T" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc = 137 ] && bad "tierctl $*: still running after $BOUND s (a hang)"
	if [ "$want" = '!0' ]; then
		[ "$rc" != 0 ] || bad "tierctl $* exited 0, want a failure"
	elif [ "$rc" != "$want" ]; then
		bad "tierctl $* exited $rc, want $want; stderr: $(cat "$tmp/err")"
	fi
	return $rc
}

# one_line PATTERN WHAT: stderr is exactly one line, matching PATTERN
one_line() {
	[ "$(wc -l <"$tmp/err")" = 1 ] || bad "$2: stderr is not one line: $(cat "$tmp/err")"
	grep -q -- "$1" "$tmp/err" || bad "$2: stderr does not match '$1': $(cat "$tmp/err")"
	# the restorer's own check names where a page came from; a mismatch
	# without it is the replay's: a wrong byte reached the "guest"
	grep -i "mismatch" "$tmp/err" | grep -qv " from the " &&
		bad "$2: a wrong page was read: $(cat "$tmp/err")"
}

# verified N WHAT: the replay JSON on stdout verified N pages, no mismatch
verified() {
	python3 - "$tmp/out" "$1" "$2" <<'EOF' || fail=1
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"FAIL: {sys.argv[3]}: no JSON report: {e}")
if d["verified_pages"] != int(sys.argv[2]) or d["mismatches"] != 0:
    sys.exit(f"FAIL: {sys.argv[3]}: verified {d['verified_pages']} of "
             f"{sys.argv[2]}, mismatches {d['mismatches']}")
EOF
}

# find_page FILE PAGE: the offset of the image's page PAGE inside FILE
find_page() {
	python3 - "$tmp/img" "$1" "$2" <<'EOF'
import sys
img, f, p = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(img, "rb") as i:
    i.seek(p * 4096)
    want = i.read(4096)
d = open(f, "rb").read()
k = d.find(want)
while k >= 0 and k % 4096:
    k = d.find(want, k + 1)
print(k)
EOF
}

flip() {	# flip FILE OFFSET
	python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x5a]))
' "$1" "$2"
}

# pool_start [PORT]: a pool server on 127.0.0.1 (PORT, else any) with
# --dir $tmp/pooldir; $pool_pid, $port
pool_start() {
	: >"$tmp/pool.out"
	"$T" pool serve --keys $tmp/pool.keys --listen "tcp://127.0.0.1:${1:-0}" --dir "$tmp/pooldir" \
		>"$tmp/pool.out" 2>"$tmp/pool.err" &
	pool_pid=$!
	for _ in $(seq 200); do
		port=$(sed -n 's|^listening on tcp://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$tmp/pool.out")
		[ -n "$port" ] && return 0
		kill -0 "$pool_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "FAIL: pool serve: $(cat "$tmp/pool.out" "$tmp/pool.err")" >&2
	exit 1
}

pool_kill() {
	[ -n "$pool_pid" ] || return 0
	kill -CONT "$pool_pid" 2>/dev/null
	kill -KILL "$pool_pid" 2>/dev/null
	wait "$pool_pid" 2>/dev/null
	pool_pid=
}

# relay_start AT HOOK [hold]: the gate in front of the server; $rport
relay_start() {
	# emptied here, not by the child's redirection: else the loop below
	# may read the previous relay's port before the child truncates it
	: >"$tmp/relay.out"
	python3 "$RELAY" "$port" "$@" >>"$tmp/relay.out" 2>"$tmp/relay.err" &
	relay_pid=$!
	for _ in $(seq 200); do
		rport=$(sed -n 's|^relay \([0-9][0-9]*\)$|\1|p' "$tmp/relay.out")
		[ -n "$rport" ] && return 0
		sleep 0.05
	done
	echo "FAIL: relay: $(cat "$tmp/relay.err")" >&2
	exit 1
}

relay_stop() {
	kill -KILL "$relay_pid" 2>/dev/null
	wait "$relay_pid" 2>/dev/null
	relay_pid=
}

# fired WHAT: the relay ran its hook (the fault happened where meant)
fired() {
	grep -q '^fired ' "$tmp/relay.out" || bad "$1: the fault never happened (the relay passed $(cat "$tmp/relay.out"))"
}

# A 16 MiB image, every page distinct and non-zero. The trained trace:
# pages 0..599 read (read-only hot: the CXL object), 1000..2999 written
# (read-write hot: 8 MiB the start prefetches from the pool); every
# other page is cold, in the pool, fetched on first touch.
python3 - "$tmp" <<'EOF'
import sys
d = sys.argv[1]
with open(d + "/img", "wb") as f:
    for p in range(4096):
        f.write(p.to_bytes(8, "little") + bytes((p * 7 + i * 13) & 0xff or 1 for i in range(4088)))
with open(d + "/hot.trace", "w") as f:
    f.writelines(f"{p * 4096} r\n" for p in range(600))
    f.writelines(f"{p * 4096} w\n" for p in range(1000, 3000))
# the replays: cold pages only (1,000: ~125 lazy faults of 8 pages), and
# 500 cold pages then every read-only hot one
with open(d + "/cold.txt", "w") as f:
    f.writelines(f"{p * 4096} r\n" for p in range(3000, 4000))
with open(d + "/mixed.txt", "w") as f:
    f.writelines(f"{p * 4096} r\n" for p in range(3000, 3500))
    f.writelines(f"{p * 4096} r\n" for p in range(600))
EOF
run 0 import vm "$tmp/img" || exit 1
run 0 trace import vm "$tmp/hot.trace" || exit 1
# the pool as deployed: every client proves the store's key
run 0 pool key new faults --keys "$tmp/pool.keys" --role write --snapshots '*' --store "$TIER_STORE" || exit 1
pool_start
POOL=pool=tcp://127.0.0.1:$port
run 0 place --policy tiered --cxl "$CXL" --pool "$POOL" vm || exit 1
run 0 show --json --policy tiered vm
rw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["plans"][0]["pages"]["rw"])' "$tmp/out")
[ "$rw" -ge 1900 ] || bad "the plan prefetches $rw pages, want about 2000"
pf_bytes=$((rw * 4096))
run 0 replay --json --trace-file "$tmp/cold.txt" vm && verified 1000 "replay before any fault"

# replay_fault AT HOOK PATTERN WHAT [REPLAY ARGS]: a replay through the
# relay, the fault HOOK at byte AT; fails with one line matching PATTERN.
# $hold=hold: the server's stream ends at AT (its death or stop).
replay_fault() {
	local at=$1 hook=$2 pat=$3 what=$4
	shift 4
	relay_start "$at" "$hook" ${hold:-}
	run '!0' replay --json --pool "pool=tcp://127.0.0.1:$rport" "$@" vm
	one_line "$pat" "$what"
	[ -s "$tmp/out" ] && bad "$what: the replay reported: $(cat "$tmp/out")"
	fired "$what"
	relay_stop
	grep -q . "$tmp/err" && ok "$what: $(cat "$tmp/err")"
}

# intact WHAT: with the server back, the same plan restores every page
intact() {
	[ -n "$pool_pid" ] && kill -0 "$pool_pid" 2>/dev/null || pool_start "$port"
	run 0 replay --json --trace-file "$tmp/mixed.txt" vm && verified 1100 "$1: afterwards"
}

# 1. The pool server killed (SIGKILL) halfway through the prefetch and
# halfway through the lazy faults.
hold=hold replay_fault $((pf_bytes / 2)) "kill -KILL $pool_pid" \
	"^tierctl replay: prefetch: pool tcp://127\.0\.0\.1:[0-9]*: segment .vm/tiered\.[0-9a-f]*.: READ: connection closed by the server; reconnecting: .*connection closed by the server" \
	"server killed mid-prefetch" --trace-file "$tmp/cold.txt"
pool_kill; intact "killed mid-prefetch"
hold=hold replay_fault $((pf_bytes + 2 * 1024 * 1024)) "kill -KILL $pool_pid" \
	"^tierctl replay: page 3[0-9]*: pool tcp://127\.0\.0\.1:[0-9]*: segment .vm/tiered\.[0-9a-f]*.: READ: connection closed by the server; reconnecting: .*connection closed by the server" \
	"server killed mid-fault" --trace-file "$tmp/cold.txt"
pool_kill; intact "killed mid-fault"

# 2. The pool server stopped (SIGSTOP): no answer within the pool's
# timeout (TIER_POOL_TIMEOUT_MS, 1.5 s here) is the end of the restore.
hold=hold TIER_POOL_TIMEOUT_MS=1500 replay_fault $((pf_bytes / 2)) "kill -STOP $pool_pid" \
	"^tierctl replay: prefetch: pool tcp://127\.0\.0\.1:[0-9]*: segment .vm/tiered\.[0-9a-f]*.: READ: no answer from the server within 1500 ms" \
	"server stopped mid-prefetch" --trace-file "$tmp/cold.txt"
pool_kill; intact "stopped mid-prefetch"
hold=hold TIER_POOL_TIMEOUT_MS=1500 replay_fault $((pf_bytes + 2 * 1024 * 1024)) "kill -STOP $pool_pid" \
	"^tierctl replay: page 3[0-9]*: pool tcp://127\.0\.0\.1:[0-9]*: segment .vm/tiered\.[0-9a-f]*.: READ: no answer from the server within 1500 ms" \
	"server stopped mid-fault" --trace-file "$tmp/cold.txt"
pool_kill; intact "stopped mid-fault"

# 3. The pool server restarted (killed, started again on its port and
# --dir) under two connected restores in their lazy faults, before they
# see the old one's end: each connects again, proves its key again, opens
# its segment again by its name (which carries the plan's generation) and
# goes on; every page verified. (Killed and not restarted, as in 1, the reconnect is refused
# and the restore fails as before.)
rm -f "$tmp/pool.pid"
restart="kill -KILL $pool_pid
	for i in \$(seq 200); do
		$T pool serve --keys $tmp/pool.keys --listen tcp://127.0.0.1:$port --dir $tmp/pooldir >$tmp/pool2.out 2>&1 </dev/null &
		echo \$! >$tmp/pool.pid
		for j in \$(seq 100); do
			grep -q listening $tmp/pool2.out && exit 0
			kill -0 \$(cat $tmp/pool.pid) 2>/dev/null || break
			sleep 0.02
		done
	done"
relay_start $((2 * pf_bytes + 2 * 1024 * 1024)) "$restart"
run 0 replay --json --instances 2 --pool "pool=tcp://127.0.0.1:$rport" --trace-file "$tmp/cold.txt" vm &&
	verified 2000 "2 restores across a server restart"
fired "server restarted under 2 restores"
grep -q listening "$tmp/pool2.out" || bad "the restarted server: $(cat "$tmp/pool2.out")"
[ -s "$tmp/err" ] && bad "server restarted: $(cat "$tmp/err")" ||
	ok "server restarted under 2 restores: both reconnected, every page verified"
run 0 replay --json --pool "pool=tcp://127.0.0.1:$rport" --trace-file "$tmp/mixed.txt" vm &&
	verified 1100 "a restore after the restart, through the same address"
relay_stop
wait "$pool_pid" 2>/dev/null
pool_pid=$(cat "$tmp/pool.pid")
rm -f "$tmp/pool.pid"

# 4. The CXL object cut short under a running restore: its read-only pages
# are mapped from it, so the next touch of one past its new end is
# SIGBUS; the replay reports it as the restore's failure, naming the
# object and the page. A later restore of that plan fails at its start.
obj=$(find "$tmp/cxl" -type f -path '*vm*tiered*' | head -1)
[ -n "$obj" ] || bad "no tiered CXL object"
osize=$(stat -c %s "$obj")
replay_fault $((pf_bytes + 1024 * 1024)) "truncate -s $((osize / 2 / 4096 * 4096)) $obj" \
	"^tierctl replay: snapshot vm: page [0-9]*: mapped from the CXL object vm/tiered\..* cut to $((osize / 2 / 4096 * 4096)) bytes .*SIGBUS" \
	"CXL object truncated under the restore" --trace-file "$tmp/mixed.txt"
run '!0' replay --json --trace-file "$tmp/mixed.txt" vm
one_line "^tierctl replay: .*vm/tiered" "a restore of the truncated object"
run 0 place --policy tiered --cxl "$CXL" --pool "$POOL" vm
intact "re-placed after the truncation"

# 5. A byte flipped under a running restore. In a page the restore will
# still read from its source (a cold page in the pool segment; a hot page
# aquifer copies from the CXL object): caught by the checksum, the restore
# fails naming the page. In a page tiered maps zero-copy from the CXL
# object: the guest reads the object's bytes, so it sees the change (the
# checksum protects what tier reads, not later changes of an object:
# doc/faults.md); the replay's own verification reports it.
seg=$(find "$tmp/pooldir" -type f -path '*vm*tiered*' ! -name '.*' | head -1)
soff=$(find_page "$seg" 3700)
[ "$soff" -ge 0 ] || bad "page 3700 not in the pool segment"
replay_fault $((pf_bytes + 1024 * 1024)) "python3 -c 'import sys
f = open(\"$seg\", \"r+b\"); f.seek($soff + 9); b = f.read(1); f.seek($soff + 9); f.write(bytes([b[0] ^ 1]))'" \
	"^tierctl replay: .*page 3700 from the pool: checksum mismatch" \
	"a cold page flipped in the pool under the restore" --trace-file "$tmp/cold.txt"
python3 -c '
import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))' "$seg" $((soff + 9))
intact "the pool page flipped back"

run 0 place --policy aquifer --cxl "$CXL" --pool "$POOL" vm
aobj=$(find "$tmp/cxl" -type f -path '*vm*aquifer*' | head -1)
aoff=$(find_page "$aobj" 300)
[ "$aoff" -ge 0 ] || bad "page 300 not in the aquifer CXL object"
# byte 1 of the answers: after the start opened the object, before it
# read any of it (the pool's HELLO is answered first)
replay_fault 1 "python3 -c 'f = open(\"$aobj\", \"r+b\"); f.seek($aoff + 77); b = f.read(1); f.seek($aoff + 77); f.write(bytes([b[0] ^ 1]))'" \
	"^tierctl replay: snapshot vm: page 300 from the cxl: checksum mismatch" \
	"an aquifer page flipped in the CXL object under the start" \
	--policy aquifer --trace-file "$tmp/cold.txt"

obj=$(find "$tmp/cxl" -type f -path '*vm*tiered*' | head -1)
toff=$(find_page "$obj" 450)
[ "$toff" -ge 0 ] || bad "page 450 not in the tiered CXL object"
relay_start $((pf_bytes + 1024 * 1024)) "python3 -c 'f = open(\"$obj\", \"r+b\"); f.seek($toff + 5); b = f.read(1); f.seek($toff + 5); f.write(bytes([b[0] ^ 1]))'"
run 1 replay --json --pool "pool=tcp://127.0.0.1:$rport" --trace-file "$tmp/mixed.txt" vm
fired "a mapped page flipped"
relay_stop
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["mismatches"] == 1 and d["verified_pages"] == 1099, d
' "$tmp/out" || bad "a mapped page flipped under the restore: $(cat "$tmp/out" "$tmp/err")"
grep -q "page 450" "$tmp/err" || bad "a mapped page flipped: page 450 not named: $(cat "$tmp/err")"
ok "a mapped page flipped under the restore: seen, reported: $(head -1 "$tmp/err")"
run 0 place --policy tiered --cxl "$CXL" --pool "$POOL" vm
intact "re-placed after the flip"
# (the server stays: a place removes the generation it replaces from it)
main_pid=$pool_pid

# 6. A full disk. Each a small tmpfs: the store (import, and the local
# files reap writes), a CXL tier directory (place), a pool server's
# --dir (its CREATE). The command fails with one line naming what did not
# fit; what was stored before restores every page; nothing is left that
# gc does not remove.
small() {	# small DIR SIZE: a tmpfs of SIZE at DIR
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2,mode=0755" tier-faults "$1" ||
		{ echo "skip: cannot mount a tmpfs"; exit 77; }
	mnts+=("$1")
}
# a: 4 MiB, its trace reads every page (reap's local file: 4 MiB)
head -c $((4 << 20)) "$tmp/img" >"$tmp/small.img"
seq 0 1023 | awk '{ print $1 * 4096, "r" }' >"$tmp/small.txt"

# no_tmp DIR WHAT: nothing of a failed writer left in DIR once gc ran:
# no temporary (their names start with '.'), and no intent but the one
# of each plan's own generation
no_tmp() {
	local left f
	left=$(find "$1" -name '.*' ! -name . 2>/dev/null)
	for f in $(find "$1" -name '*.intent'); do
		[ -e "${f%.*.intent}.plan" ] || left+=" $f"
	done
	left+=$(find "$1" -name '*.intent' | sed 's/\.[0-9a-f]*\.intent$//' | sort | uniq -d)
	[ -z "$left" ] || bad "$2: left behind: $left"
}
store_files() { find "$1" ! -name '*.lock' | sort; }

S=$tmp/full-store
small "$S" 6m
export TIER_STORE=$S
run 0 import a "$tmp/small.img"
run 0 trace import a "$tmp/small.txt"
run 0 place --policy tiered --cxl "cxl=dir:$tmp/cxl-a" --pool "pool=file:$tmp/fpool-a" a
before=$(store_files "$S")
run 1 import b "$tmp/img"
one_line "^tierctl import: .*\bb\b.*\(No space left on device\|do not fit\|space\)" "import into a full store"
run 0 gc
no_tmp "$S" "import into a full store"
[ "$(store_files "$S")" = "$before" ] || bad "import into a full store: the store changed: $(diff <(echo "$before") <(store_files "$S"))"
run 0 list
grep -q "^b " "$tmp/out" && bad "a snapshot that did not fit is listed: $(cat "$tmp/out")"
run 0 replay --json --trace-file "$tmp/small.txt" a && verified 1024 "the store's snapshot after the full import"
# reap's compact local file goes into the store, which is full
run 1 place --policy reap --cxl "cxl=dir:$tmp/cxl-a" --pool "pool=file:$tmp/fpool-a" a
one_line "^tierctl place: place a --policy reap: $S/snapshots/a/local: [0-9]* bytes to write, [0-9]* free" "reap into a full store"
run 0 gc
no_tmp "$S" "reap into a full store"
run 0 replay --json --trace-file "$tmp/small.txt" a && verified 1024 "tiered after reap did not fit"
export TIER_STORE=$tmp/store

# a CXL tier directory with room for one plan's read-only pages (2.4 MB):
# neither another snapshot's plan nor a new generation of the same one
# (the old one stays until the new plan is in) fits
small "$tmp/cxl-small" 3m
run 0 place --policy tiered --cxl "cxl=dir:$tmp/cxl-small" --pool "pool=file:$tmp/fpool" vm
run 0 import vm2 "$tmp/img"
run 0 trace import vm2 "$tmp/hot.trace"
run 1 place --policy tiered --cxl "cxl=dir:$tmp/cxl-small" --pool "pool=file:$tmp/fpool" vm2
one_line "^tierctl place: place vm2 --policy tiered: cxl=dir:$tmp/cxl-small: [0-9]* bytes to write, [0-9]* free" "another plan into a full CXL tier"
run 1 place --policy tiered --cxl "cxl=dir:$tmp/cxl-small" --pool "pool=file:$tmp/fpool" vm
one_line "^tierctl place: place vm --policy tiered: cxl=dir:$tmp/cxl-small: [0-9]* bytes to write, [0-9]* free" "a new generation into a full CXL tier"
run 0 replay --json --trace-file "$tmp/mixed.txt" vm && verified 1100 "the plan in the full CXL tier"
run 0 gc
no_tmp "$tmp/cxl-small" "place into a full CXL tier"
no_tmp "$TIER_STORE" "place into a full CXL tier (the store)"

# a pool server whose --dir is full: the CREATE fails, the old plan stays
small "$tmp/pool-small" 4m
: >"$tmp/pool.out"
"$T" pool serve --keys $tmp/pool.keys --listen tcp://127.0.0.1:0 --dir "$tmp/pool-small" >"$tmp/pool.out" 2>"$tmp/pool.err" &
pool_pid=$!
for _ in $(seq 200); do
	port=$(sed -n 's|^listening on tcp://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$tmp/pool.out")
	[ -n "$port" ] && break
	sleep 0.05
done
run 1 place --policy tiered --cxl "$CXL" --pool "pool=tcp://127.0.0.1:$port" vm
one_line "^tierctl place: .*segment 'vm/tiered\.[0-9a-f]*'.*\(No space left on device\|do not fit\)" "place into a full pool server"
run 0 replay --json --trace-file "$tmp/mixed.txt" vm && verified 1100 "the plan before the full pool"
run 0 gc
no_tmp "$tmp/pool-small" "place into a full pool server"
no_tmp "$TIER_STORE" "place into a full pool server (the store)"
pool_kill
pool_pid=$main_pid
pool_kill

[ $fail = 0 ] && echo PASS
exit $fail
