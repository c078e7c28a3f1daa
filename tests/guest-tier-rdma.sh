#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tier's RDMA pool on soft-RoCE in the emulated guest: test-pool-rdma, then
# end to end a pool server on rxe0 (10.9.0.1), tierctl placing and replaying
# from rxe1 (10.9.0.2) with the tiered and aquifer policies (every page
# verified, bytes really read from the pool across the veth), the prefetch
# pipeline with every page verified and a page corrupted in the pool
# failing it closed, and failing closed with one line naming the pool
# once the server is killed.
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/../emu/guest-tier-lib.sh"

if [ "${1:-}" != inside ]; then
	tg_host_check rdma ip ss
	exec "$tg_src/emu/run-in-guest.sh" --rxe -- "$self" inside
fi

tg_guest_init
pool_pid=
cleanup() { [ -n "$pool_pid" ] && kill -KILL "$pool_pid" 2>/dev/null; }
trap cleanup EXIT
export TIER_POOL_RDMA_SRC=10.9.0.2
pkts() { cat /sys/class/net/$1/statistics/tx_packets; }

# 1. The transport's own test (stolen rkeys and the key exchange included).
TIER_TEST_RDMA_ADDR=10.9.0.1 "$B/tests/test-pool-rdma" >"$tmp/t.log" 2>&1
rc=$?
cat "$tmp/t.log"
[ $rc = 0 ] || die "test-pool-rdma exited $rc"
echo "ok: test-pool-rdma"

# 2. End to end.
tg_image vm 16M 11
run 0 import vm "$tmp/vm.img" || die "import"
run 0 trace import vm "$tmp/vm.t1" || die "trace import"
np=$(pages "$tmp/vm.t2")

# The secure setup the README gives: a key for the placing and restoring
# host (the same store here), the server holding it.
run 0 pool key new guest --keys "$tmp/pool.keys" --role write --snapshots 'vm*' --store "$TIER_STORE" ||
	die "pool key new"
"$T" pool serve --listen rdma://10.9.0.1:0 --keys "$tmp/pool.keys" --dir "$tmp/pooldir" >"$tmp/pool.out" 2>"$tmp/pool.err" &
pool_pid=$!
port=
for _ in $(seq 600); do
	port=$(sed -n 's|^listening on rdma://10\.9\.0\.1:\([0-9][0-9]*\)$|\1|p' "$tmp/pool.out")
	[ -n "$port" ] && break
	kill -0 "$pool_pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$port" ] || die "pool serve: no 'listening on' line: $(cat "$tmp/pool.out" "$tmp/pool.err")"
POOL=pool=rdma://10.9.0.1:$port
echo "ok: pool server on rdma://10.9.0.1:$port"

for p in tiered aquifer; do
	run 0 place --policy $p --cxl "cxl=dir:$tmp/cxl" --pool "$POOL" vm || continue
	tx=$(pkts veth0)
	run 0 replay --json --policy $p --trace-file "$tmp/vm.t2" vm || continue
	check_replay "$np" "replay $p over RDMA"
	pb=$(jnum pool_bytes)
	[ "${pb:-0}" -gt 0 ] || bad "replay $p: pool_bytes ${pb:-none}"
	# RDMA READ responses leave the server through veth0.
	[ "$(pkts veth0)" -gt "$tx" ] || bad "replay $p: no traffic left rxe0 (veth0)"
done
# Two restores at once, each with its own connection.
run 0 replay --json --policy tiered --instances 2 --trace-file "$tmp/vm.t2" vm &&
	check_replay $((2 * np)) "replay tiered over RDMA, 2 instances"
# The segments live on the server, in --dir.
[ -n "$(find "$tmp/pooldir" -type f -size +0)" ] || bad "no segment in the pool server's --dir"

# 3. The prefetch pipeline (posted READs, the next batch in flight while
# one is verified and installed): 8 MiB all read-write hot, so tiered
# prefetches every page from the pool in several batches. Every page
# verified; then one byte flipped in the server's copy of a page in a
# later batch: the restore fails closed naming it (the batches before it
# were installed, the one after it in flight), never a wrong or zero page.
"$GEN" --size 8M --zero 0 --ro 0 --rw 100 --rw-read 100 --seed 5 \
	--image "$tmp/pp.img" --trace "$tmp/pp.t1" >/dev/null || die "tier-gen pp"
run 0 import vmpp "$tmp/pp.img" && run 0 trace import vmpp "$tmp/pp.t1" &&
	run 0 place --policy tiered --cxl "cxl=dir:$tmp/cxl" --pool "$POOL" vmpp ||
	die "place vmpp"
run 0 replay --json --policy tiered --trace-file "$tmp/pp.t1" vmpp &&
	check_replay 2048 "replay of 2048 prefetched pages over RDMA"
[ "$(jnum pool_bytes)" = $((2048 * 4096)) ] || bad "prefetch pipeline: pool_bytes $(jnum pool_bytes), want $((2048 * 4096))"
seg=$(find "$tmp/pooldir" -type f -path '*vmpp*tiered*' ! -name '.*' | head -1)
soff=$(python3 -c '
import sys
with open(sys.argv[1], "rb") as i:
    i.seek(1500 * 4096); want = i.read(4096)
d = open(sys.argv[2], "rb").read()
k = d.find(want)
while k >= 0 and k % 4096:
    k = d.find(want, k + 1)
print(k)' "$tmp/pp.img" "$seg")
flipb() {
	python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x5a]))' "$1" "$2"
}
if [ -z "$seg" ] || [ "${soff:--1}" -lt 0 ]; then
	bad "prefetch pipeline: page 1500 not found in the pool segment ${seg:-(none)}"
else
	flipb "$seg" $((soff + 123))
	run '!0' replay --json --policy tiered --trace-file "$tmp/pp.t1" vmpp
	one_line "^tierctl replay: .*page 1500 from the pool: checksum mismatch" "a page flipped in the pool, mid-pipeline"
	[ -s "$tmp/out" ] && bad "a page flipped mid-pipeline: a report was printed: $(cat "$tmp/out")"
	echo "ok: a page flipped mid-pipeline: $(cat "$tmp/err")"
	flipb "$seg" $((soff + 123))
	run 0 replay --json --policy tiered --trace-file "$tmp/pp.t1" vmpp &&
		check_replay 2048 "replay after the page was flipped back"
fi

# The pool dies: fail closed, one line naming the pool, no mismatch.
kill -KILL "$pool_pid"
wait "$pool_pid" 2>/dev/null
pool_pid=
for p in tiered aquifer; do
	run '!0' replay --json --policy $p --trace-file "$tmp/vm.t2" vm
	one_line "^tierctl replay: .*10\.9\.0\.1:$port" "replay $p with a dead pool"
	grep -qi mismatch "$tmp/err" && bad "replay $p with a dead pool reported a mismatch"
	[ -s "$tmp/out" ] && bad "replay $p with a dead pool printed a report: $(cat "$tmp/out")"
	echo "ok: replay $p with a dead pool: $(cat "$tmp/err")"
done

[ $fail = 0 ] && echo PASS
exit $fail
