#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Inside the hardware guest (emu/run-in-guest.sh), with the host's tools:
#   guest-setup.sh setup [rxe] [pmem] [numa] [cxl]   what the flags ask (run
#                                                   by the job before CMD)
#   guest-setup.sh devdax           pmem namespace0.0 -> devdax, prints /dev/daxN.M
#   guest-setup.sh fsdax [MNT]      namespace0.0 -> fsdax, ext4, mount -o dax
#                                   (default /mnt/dax), prints MNT
#   guest-setup.sh cxl-region       CXL mem0 -> pmem region, prints its name
#                                   (then REGION=regionN guest-setup.sh devdax|fsdax)
set -euo pipefail
[ "${EMU_GUEST:-}" = 1 ] || { echo "guest-setup: only inside emu/run-in-guest.sh" >&2; exit 2; }

wait_for() {	# PATH SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	echo "guest-setup: $1 did not appear in $2 s" >&2
	return 1
}

# Soft-RoCE across a veth pair (REFERENCE.md §4).  rxe drops loopback, so
# traffic between the two local addresses must leave through the veth: fixed
# neighbours, per-address routes in tables 100/101 picked by rules for
# locally generated packets (iif lo), the local table consulted after them,
# and local source addresses accepted on input.
setup_rxe() {
	ip link set lo up
	ip link add veth0 type veth peer name veth1
	ip addr add 10.9.0.1/24 dev veth0
	ip addr add 10.9.0.2/24 dev veth1
	ip link set veth0 up
	ip link set veth1 up
	local m0 m1 k
	m0=$(cat /sys/class/net/veth0/address)
	m1=$(cat /sys/class/net/veth1/address)
	for k in all default veth0 veth1; do
		sysctl -qw "net.ipv4.conf.$k.rp_filter=0" "net.ipv4.conf.$k.accept_local=1"
	done
	ip neigh replace 10.9.0.2 lladdr "$m1" dev veth0 nud permanent
	ip neigh replace 10.9.0.1 lladdr "$m0" dev veth1 nud permanent
	ip route add 10.9.0.2 dev veth0 src 10.9.0.1 table 100
	ip route add 10.9.0.1 dev veth1 src 10.9.0.2 table 101
	ip rule add pref 100 iif lo from 10.9.0.1 to 10.9.0.2 lookup 100
	ip rule add pref 101 iif lo from 10.9.0.2 to 10.9.0.1 lookup 101
	ip rule add pref 1000 lookup local
	ip rule del pref 0 lookup local
	rdma link add rxe0 type rxe netdev veth0
	rdma link add rxe1 type rxe netdev veth1
	wait_for /sys/class/infiniband/rxe0 10
	wait_for /sys/class/infiniband/rxe1 10
}

setup_numa() {
	[ -d /sys/devices/system/node/node1 ]
}

setup_pmem() {
	wait_for /dev/pmem0 20
}

setup_cxl() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -e /sys/bus/cxl/devices/mem0 ] && [ -e /sys/bus/cxl/devices/decoder0.0 ] && return 0
		sleep 0.1
	done
	echo "guest-setup: no CXL mem0/decoder0.0" >&2
	return 1
}

# Which namespace to reconfigure: $NS, or a new one in $REGION (a CXL
# region has labels, so it starts without one), or legacy pmem's namespace0.0.
ns=${NS:-namespace0.0}
if [ -n "${REGION:-}" ] && [ -z "${NS:-}" ]; then
	target=(-r "$REGION")
else
	target=(-f -e "$ns")
fi
# The namespace ndctl just made or changed: "dev" of its JSON.
ns_of() { sed -n 's/.*"dev":"\(namespace[^"]*\)".*/\1/p' | head -n1; }
case ${1:-} in
setup)
	shift
	for f in "$@"; do
		"setup_$f" 2>&1 || { echo "guest-setup: $f failed" >&2; exit 1; }
	done
	;;
devdax)
	ns=$(ndctl create-namespace "${target[@]}" -m devdax -a 4096 | tr -d ' \n' | ns_of)
	dev=$(ndctl list -N -n "$ns" | tr -d ' \n' | sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p' | head -n1)
	wait_for "/dev/${dev:-dax0.0}" 10
	echo "/dev/${dev:-dax0.0}"
	;;
fsdax)
	mnt=${2:-/mnt/dax}
	ns=$(ndctl create-namespace "${target[@]}" -m fsdax | tr -d ' \n' | ns_of)
	dev=$(ndctl list -N -n "$ns" | tr -d ' \n' | sed -n 's/.*"blockdev":"\([^"]*\)".*/\1/p' | head -n1)
	wait_for "/dev/${dev:-pmem0}" 10
	mkfs.ext4 -q -F -b 4096 "/dev/${dev:-pmem0}"
	mkdir -p "$mnt"
	mount -o dax "/dev/${dev:-pmem0}" "$mnt"
	echo "$mnt"
	;;
cxl-region)
	cxl create-region -m -d decoder0.0 -t pmem -w 1 -g 256 mem0 | tr -d ' \n' |
		sed -n 's/.*"region":"\([^"]*\)".*/\1/p' | head -n1
	;;
*)
	sed -n '3,12p' "$0" >&2
	exit 2
	;;
esac
