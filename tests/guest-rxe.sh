#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Soft-RoCE in the emulated guest: rxe0 and rxe1 exist, and RDMA traffic
# between them (rping over rdma_cm, ib_read_lat over verbs) crosses the veth
# pair rather than loopback (which rxe drops).
set -uo pipefail
src=${TIER_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "${1:-}" != inside ]; then
	command -v qemu-system-x86_64 >/dev/null ||
		{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
	for t in ibv_devices ibv_devinfo rping ib_read_lat rdma ip; do
		command -v $t >/dev/null ||
			{ echo "SKIP: $t missing (apt-get install ibverbs-utils rdmacm-utils perftest iproute2)"; exit 77; }
	done
	"$src/emu/fetch-kernel.sh" >/dev/null ||
		{ echo "SKIP: the Debian kernel package is not available"; exit 77; }
	exec "$src/emu/run-in-guest.sh" --rxe -- "$self" inside
fi

fail() { echo "FAIL: $*"; exit 1; }
pkts() { cat /sys/class/net/$1/statistics/tx_packets; }

devs=$(ibv_devices) || fail "ibv_devices"
echo "$devs"
grep -qw rxe0 <<<"$devs" || fail "no rxe0"
grep -qw rxe1 <<<"$devs" || fail "no rxe1"
for d in rxe0 rxe1; do
	info=$(ibv_devinfo -d $d) || fail "ibv_devinfo -d $d"
	grep -q PORT_ACTIVE <<<"$info" || fail "$d port not active"
done

# Wait until something listens on a TCP port (a fixed sleep races).
wait_port() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ -n "$(ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.1
	done
	return 1
}

# rping: rdma_cm connection from 10.9.0.2 (rxe1) to 10.9.0.1 (rxe0).  rdma_cm
# listens without a TCP port, so retry the client until the server is up.
tx0=$(pkts veth1)
timeout 120 rping -s -a 10.9.0.1 -C 3 -v >/tmp/rping-s.log 2>&1 &
spid=$!
ok=
for i in $(seq 30); do
	if timeout 60 rping -c -a 10.9.0.1 -I 10.9.0.2 -C 3 -v >/tmp/rping-c.log 2>&1; then
		ok=1
		break
	fi
	sleep 0.2
done
wait $spid
src_rc=$?
cat /tmp/rping-c.log
[ -n "$ok" ] || { cat /tmp/rping-s.log; fail "rping client"; }
[ $src_rc = 0 ] || { cat /tmp/rping-s.log; fail "rping server exit $src_rc"; }
n=$(grep -c 'ping data: rdma-ping-' /tmp/rping-c.log)
[ "$n" = 3 ] || fail "rping: $n pings, expected 3"
[ "$(pkts veth1)" -gt "$tx0" ] || fail "rping traffic did not cross veth1"
echo "ok: rping rxe1 -> rxe0, 3 pings"

# ib_read_lat: verbs RDMA READ, GID index 1 (the IPv4 one).
tx0=$(pkts veth0)
timeout 120 ib_read_lat -d rxe0 -x 1 -n 200 -F >/tmp/lat-s.log 2>&1 &
spid=$!
wait_port 18515 || { cat /tmp/lat-s.log; fail "ib_read_lat server did not listen"; }
timeout 120 ib_read_lat -d rxe1 -x 1 -n 200 -F 10.9.0.1 >/tmp/lat-c.log 2>&1 ||
	{ cat /tmp/lat-c.log /tmp/lat-s.log; fail "ib_read_lat client"; }
wait $spid || { cat /tmp/lat-s.log; fail "ib_read_lat server"; }
cat /tmp/lat-c.log
# The result row: bytes iterations t_min t_max t_typical t_avg ...
row=$(awk '$1 == 2 && $2 == 200 { print }' /tmp/lat-c.log)
[ -n "$row" ] || fail "no ib_read_lat result row"
[ "$(pkts veth0)" -gt "$tx0" ] || fail "ib_read_lat traffic did not cross veth0"
echo "ok: ib_read_lat rxe1 -> rxe0: t_avg $(awk '{print $6}' <<<"$row") us"
echo PASS
