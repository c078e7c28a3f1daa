#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The RDMA link cut under a running restore (doc/faults.md): in the
# soft-RoCE guest, a replay faults its cold pages one at a time from
# rdma://10.9.0.1 (pool server on rxe0/veth0); once its lazy faults are
# under way it is stopped, the server's netdev is taken down, and it is
# let go. It must fail within a bound with one line naming the pool,
# never read a wrong page; with the link back up the same plan restores
# every page.
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/../emu/guest-tier-lib.sh"

if [ "${1:-}" != inside ]; then
	tg_host_check rdma ip
	exec "$tg_src/emu/run-in-guest.sh" --rxe -- "$self" inside
fi

tg_guest_init
pool_pid=
rp=
cleanup() {
	[ -n "$rp" ] && kill -KILL "$rp" 2>/dev/null
	[ -n "$pool_pid" ] && kill -KILL "$pool_pid" 2>/dev/null
	ip link set veth0 up 2>/dev/null
}
trap cleanup EXIT
export TIER_POOL_RDMA_SRC=10.9.0.2
export TIER_POOL_TIMEOUT_MS=3000
BOUND=120
pkts() { cat /sys/class/net/$1/statistics/tx_packets; }

# 10 % zero pages: ~1,800 cold ones, each its own fault below
"$GEN" --size 8M --seed 5 --zero 10 --image "$tmp/vm.img" --trace "$tmp/vm.t1" \
	--trace2 "$tmp/vm.t2" >"$tmp/vm.gen.json" || die "tier-gen"
run 0 import vm "$tmp/vm.img" || die "import"
run 0 trace import vm "$tmp/vm.t1" || die "trace import"
# every page in order: mostly cold, a lazy fault each (--prefetch 1)
npages=$((8 * 256))
seq 0 $((npages - 1)) | awk '{ printf "%#x r\n", $1 * 4096 }' >"$tmp/all.txt"

"$T" pool serve --no-auth --listen rdma://10.9.0.1:0 --dir "$tmp/pooldir" >"$tmp/pool.out" 2>"$tmp/pool.err" &
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
run 0 place --policy tiered --cxl "cxl=dir:$tmp/cxl" --pool "$POOL" vm || die "place"

# The replay in the background; once the server's side has sent a few
# hundred packets past the start's (lazy faults under way), the replay is
# stopped, the link cut, the replay let go.
tx0=$(pkts veth0)
timeout -s KILL $BOUND "$T" replay --json --prefetch 1 --trace-file "$tmp/all.txt" vm \
	>"$tmp/out" 2>"$tmp/err" &
rp=$!
cut=
for _ in $(seq 6000); do
	kill -0 "$rp" 2>/dev/null || break
	if [ $(($(pkts veth0) - tx0)) -gt 600 ]; then
		kill -STOP "$rp" && ip link set veth0 down && cut=1
		kill -CONT "$rp"
		break
	fi
	sleep 0.01
done
wait "$rp"
rc=$?
rp=
[ -n "$cut" ] || die "the replay ended before the link was cut (rc $rc): $(cat "$tmp/err")"
[ $rc = 137 ] && bad "replay with the link cut: still running after $BOUND s (a hang)"
[ $rc != 0 ] || bad "replay with the link cut exited 0: $(cat "$tmp/out")"
one_line "^tierctl replay: .*10\.9\.0\.1:$port" "replay with the RDMA link cut"
grep -i mismatch "$tmp/err" | grep -qv " from the " && bad "link cut: a wrong page was read: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && bad "link cut: the replay reported: $(cat "$tmp/out")"
echo "ok: replay with the RDMA link cut: $(cat "$tmp/err")"

# The link back: the plan restores every page.
ip link set veth0 up
ok=
for _ in $(seq 30); do
	if "$T" replay --json --trace-file "$tmp/vm.t2" vm >"$tmp/out" 2>"$tmp/err"; then
		ok=1
		break
	fi
	sleep 1		# rxe's port comes back with its netdev
done
[ -n "$ok" ] || bad "with the link back up: $(cat "$tmp/err")"
[ -n "$ok" ] && check_replay "$(pages "$tmp/vm.t2")" "replay with the link back up"

[ $fail = 0 ] && echo PASS
exit $fail
