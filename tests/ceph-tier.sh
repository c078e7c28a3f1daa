#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: ceph -- RADOS as the durable tier behind a memory pool, and its
# faults, on one real one-host cluster (emu/ceph-cluster.sh, or the one
# TIER_TEST_CEPH_DIR names; this script kills its OSDs, so give it a
# cluster of its own). Every replay verifies every page it touched.
#   1. place --pool tcp:// --backing rados://: both written; restores
#      through the pool
#   2. the pool server restarted empty with --backing (and --warm): the
#      segment loaded from RADOS, restores verify
#   3. the server killed and restarted empty under running restores
#      (stopped meanwhile): they continue, the server loading from RADOS
#   4. the server killed under running restores with --pool-fallback:
#      they continue from RADOS directly
#   5. the pool down: without the fallback the restore fails closed; with
#      it, it reads RADOS; with RADOS unreachable too, it fails closed
#   6. a wrong keyring: pool serve --backing and a fallback fail in one
#      line naming the client and the keyring
#   7. one OSD killed during a restore from RADOS: it completes
#   8. every replica of the placement groups down during a restore: one
#      line naming the object, fail closed, nothing verified wrong
set -uo pipefail

T=${TIERCTL:?set TIERCTL to the tierctl binary}
src=${TIER_SRCDIR:?set TIER_SRCDIR to the source tree}
[ "$(id -u)" = 0 ] || { echo "skip: needs root (userfaultfd)"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }

tmp=$(mktemp -d)
. "$src/tests/ceph-lib.sh"
srv_pid=
t_start=$(date +%s)
cleanup() {
	[ -z "$srv_pid" ] || kill "$srv_pid" 2>/dev/null
	ceph_down
	rm -rf "$tmp"
}
trap cleanup EXIT
ceph_up
export TIER_STORE=$tmp/store
ns=tier$$
creds="id=tier&conf=$cdir/ceph.conf&keyring=$cdir/client.tier.keyring"
RADOS="rados://tier/$ns?$creds"
fail=0

bad() {
	echo "FAIL: $*" >&2
	fail=1
}

one_line() {	# PATTERN FILE WHAT
	[ "$(wc -l <"$2")" = 1 ] || bad "$3: stderr is not one line: $(cat "$2")"
	grep -q -- "$1" "$2" || bad "$3: stderr does not match '$1': $(cat "$2")"
}

elapsed() { echo "$(( $(date +%s) - t_start )) s"; }

# 24 MiB: page p zero when p % 4 == 0, else a pattern unique to the page;
# the segment spans several objects. The cold trace faults 1,189 pages.
python3 - "$tmp/img" "$tmp/hot.trace" "$tmp/cold.txt" <<'EOF'
import sys
n = 6144
with open(sys.argv[1], "wb") as f:
    for p in range(n):
        if p % 4 == 0:
            f.write(bytes(4096))
        else:
            f.write(p.to_bytes(8, "little") + bytes((p * 31 + i) & 0xff for i in range(4088)))
with open(sys.argv[2], "w") as f:
    for p in range(1, 200):
        f.write(f"{hex(p * 4096)} {['r', 'w', 'rw'][p % 3]}\n")
with open(sys.argv[3], "w") as f:
    for p in range(201, n, 5):
        f.write(f"{hex(p * 4096)} r\n")
EOF
ncold=$(grep -c . "$tmp/cold.txt")

# start_server [ARGS...]: pool serve on $port (0 the first time) with
# RADOS behind it, in its own process group; waits for its "listening".
port=0
start_server() {
	setsid "$T" pool serve --listen "tcp://127.0.0.1:$port" --no-auth \
		--backing "$RADOS" "$@" >"$tmp/srv.out" 2>"$tmp/srv.err" &
	srv_pid=$!
	for _ in $(seq 600); do
		grep -q listening "$tmp/srv.out" && break
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q listening "$tmp/srv.out"; then
		wait "$srv_pid"
		bad "pool serve did not start (exit status $?): $(cat "$tmp/srv.err")"
		srv_pid=
		return 1
	fi
	port=$(sed -n 's/^listening on tcp:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/srv.out")
}
kill_server() {
	kill -9 "$srv_pid"
	wait "$srv_pid" 2>/dev/null
	srv_pid=
}

# check OUT WHAT [want_pool_bytes]: every touched page verified, in every
# instance of the replay's JSON
check() {
	python3 - "$1" "$ncold" "$2" "${3:-1}" <<'EOF' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
want, what, pool = int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
inst = d.get("instances_detail") or [d]
if d["verified_pages"] != want * d.get("instances", 1) or d["mismatches"] != 0:
    sys.exit(f"FAIL: {what}: verified {d['verified_pages']} of {want} x {d.get('instances', 1)}, mismatches {d['mismatches']}")
if pool and d["pool_bytes"] == 0:
    sys.exit(f"FAIL: {what}: read nothing from the pool")
print(f"ok: {what}: {d['verified_pages']} pages verified, {d['pool_bytes']} pool bytes")
EOF
}

replay() {	# OUT ARGS...: a replay of the cold trace, JSON in OUT
	local out=$1
	shift
	"$T" replay --json --policy tiered --trace-file "$tmp/cold.txt" "$@" vm \
		>"$out" 2>"$out.err"
}

# ---- 1. write-through
start_server || exit 1
"$T" import vm "$tmp/img" >/dev/null || bad import
"$T" trace import vm "$tmp/hot.trace" >/dev/null || bad "trace import"
"$T" place --cxl "cxl=dir:$tmp/cxl" --pool "tcp://127.0.0.1:$port" \
	--backing "$RADOS" --policy tiered vm >/dev/null 2>"$tmp/err" ||
	bad "place --backing: $(cat "$tmp/err")"
"$T" show --json vm >"$tmp/show" || bad show
seg=$(python3 -c 'import json,sys; p=[x for x in json.load(open(sys.argv[1]))["plans"] if x["policy"]=="tiered"][0]; assert p["backing"].startswith("pool=rados://"), p; print(p["pool"])' "$tmp/show") ||
	bad "show: the plan names no rados backing: $(cat "$tmp/show")"
rados -c "$cdir/ceph.conf" --id tier -k "$cdir/client.tier.keyring" -p tier \
	-N "$ns" ls >"$tmp/objs" || bad "rados ls"
segname=$(grep -v '\.[0-9a-f]\{16\}\.[0-9a-f]\{8\}$' "$tmp/objs" | grep '^vm/tiered\.')
[ -n "$segname" ] || bad "no commit object in RADOS: $(cat "$tmp/objs")"
replay "$tmp/r1"; check "$tmp/r1" "1. restore through the pool ($seg)"

# ---- 2. restarted empty
kill_server
start_server --warm vm || exit 1
grep -q "loaded '$segname' (18669568 bytes) from rados://tier/$ns" "$tmp/srv.err" ||
	bad "--warm vm did not load $segname: $(cat "$tmp/srv.err")"
replay "$tmp/r2"; check "$tmp/r2" "2. restarted empty, --warm vm"
kill_server
start_server || exit 1
replay "$tmp/r2b"; check "$tmp/r2b" "2. restarted empty, loaded on the first OPEN"
grep -q "loaded '$segname'" "$tmp/srv.err" || bad "the first OPEN did not load: $(cat "$tmp/srv.err")"

# ---- 3. killed and restarted empty under 3 running restores
setsid "$T" replay --json --policy tiered --trace-file "$tmp/cold.txt" \
	--instances 3 --touch-gap-us 2000 vm >"$tmp/r3" 2>"$tmp/r3.err" &
rp=$!
sleep 1
kill -STOP -- "-$rp"
kill_server
start_server || exit 1
kill -CONT -- "-$rp"
wait $rp || bad "3. replays under a restarted server exited $?: $(cat "$tmp/r3.err")"
check "$tmp/r3" "3. 3 restores, the server killed and restarted empty under them"
grep -q "loaded '$segname'" "$tmp/srv.err" || bad "3. the restarted server loaded nothing: $(cat "$tmp/srv.err")"
echo "   ($(elapsed) so far)"

# ---- 4. killed for good under running restores, --pool-fallback
TIER_LOG=info setsid "$T" replay --json --policy tiered --trace-file "$tmp/cold.txt" \
	--instances 3 --touch-gap-us 2000 --pool-fallback vm >"$tmp/r4" 2>"$tmp/r4.err" &
rp=$!
sleep 1
kill_server
wait $rp || bad "4. replays with --pool-fallback exited $?: $(cat "$tmp/r4.err")"
check "$tmp/r4" "4. 3 restores, the server killed under them, --pool-fallback"
n=$(grep -c "^libtier: segment '$segname': reading rados://tier/$ns: " "$tmp/r4.err")
[ "$n" -ge 3 ] || bad "4. $n of 3 restores said they read RADOS: $(cat "$tmp/r4.err")"
echo "   ($(elapsed) so far)"

# ---- 5. the pool down
replay "$tmp/r5" && bad "5. a replay with its pool down exited 0"
one_line "^tierctl replay: pool tcp://127.0.0.1:$port: " "$tmp/r5.err" "5. pool down"
replay "$tmp/r5b" --pool-fallback; check "$tmp/r5b" "5. pool down, --pool-fallback"
sed 's/^mon host = .*/mon host = 127.0.0.1:1/' "$cdir/ceph.conf" >"$tmp/dead.conf"
grep -q "^mon host = 127.0.0.1:1" "$tmp/dead.conf" || bad "no mon host line in $cdir/ceph.conf"
CEPH_ARGS="--client_mount_timeout=3 --rados_mon_op_timeout=3" replay "$tmp/r5c" --pool-fallback \
	--backing "rados://tier/$ns?id=tier&conf=$tmp/dead.conf&keyring=$cdir/client.tier.keyring" &&
	bad "5. a replay with both down exited 0"
one_line "^tierctl replay: pool tcp://127.0.0.1:$port: .*; and the backing pool: pool rados://tier/$ns: connect as client.tier" \
	"$tmp/r5c.err" "5. both down"
echo "ok: 5. pool down: fails closed, reads RADOS with --pool-fallback, fails closed with both down"
echo "   ($(elapsed) so far)"

# ---- 6. a wrong keyring
ceph-authtool --create-keyring "$tmp/wrong.keyring" --gen-key -n client.tier >/dev/null
wrong="rados://tier/$ns?id=tier&conf=$cdir/ceph.conf&keyring=$tmp/wrong.keyring"
"$T" pool serve --listen tcp://127.0.0.1:0 --no-auth --backing "$wrong" \
	>/dev/null 2>"$tmp/e6" && bad "6. pool serve with a wrong keyring exited 0"
one_line "^tierctl pool serve: pool server: --backing: pool rados://tier/$ns: connect as client.tier with keyring $tmp/wrong.keyring: Permission denied" \
	"$tmp/e6" "6. pool serve, wrong keyring"
replay "$tmp/r6" --pool-fallback --backing "$wrong" && bad "6. a fallback with a wrong keyring exited 0"
one_line "and the backing pool: pool rados://tier/$ns: connect as client.tier with keyring $tmp/wrong.keyring: Permission denied" \
	"$tmp/r6.err" "6. fallback, wrong keyring"
echo "ok: 6. a wrong keyring: one line naming client.tier and the keyring"
echo "   ($(elapsed) so far)"

osd_pid() { cat "$cdir/run/osd.$1.pid"; }

# ---- 7. one OSD killed during a restore read from RADOS directly
setsid "$T" replay --json --policy tiered --trace-file "$tmp/cold.txt" \
	--touch-gap-us 2000 --pool-fallback vm >"$tmp/r7" 2>"$tmp/r7.err" &
rp=$!
sleep 1
kill -9 "$(osd_pid 0)"
wait $rp || bad "7. the replay with osd.0 killed exited $?: $(cat "$tmp/r7.err")"
check "$tmp/r7" "7. osd.0 killed during a restore from RADOS (size 3)"

# ---- 8. every replica down during a restore
CEPH_ARGS="--rados_osd_op_timeout=8" setsid "$T" replay --json --policy tiered \
	--trace-file "$tmp/cold.txt" --touch-gap-us 2000 --pool-fallback vm \
	>"$tmp/r8" 2>"$tmp/r8.err" &
rp=$!
sleep 1
kill -9 "$(osd_pid 1)" "$(osd_pid 2)"
wait $rp && bad "8. a replay with every OSD down exited 0"
cp "$tmp/r8.err" "$tmp/r8.one"
one_line "rados://tier/$ns: segment '$segname': object '$segname\.[0-9a-f]\{16\}\.[0-9a-f]\{8\}': read: Connection timed out" \
	"$tmp/r8.one" "8. every replica down"
grep -q '"mismatches":[1-9]' "$tmp/r8" && bad "8. a page verified wrong: $(cat "$tmp/r8")"
echo "ok: 8. every replica down: $(cat "$tmp/r8.one")"
echo "ceph-tier: $(elapsed) in all"

[ $fail = 0 ] && echo "ceph-tier: all passed"
exit $fail
