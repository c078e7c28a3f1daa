#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A one-host Ceph cluster from Debian's packages, for the rados:// tests:
#   emu/ceph-cluster.sh start DIR    one mon, one mgr, three OSDs (bluestore
#                                    on sparse files), pool "tier" size 3,
#                                    cephx on, client.tier's keyring
#   emu/ceph-cluster.sh stop DIR     kills every daemon start began
#   emu/ceph-cluster.sh status DIR   `ceph -s`
# Everything lives under DIR (conf, keyrings, data, logs, sockets); the
# daemons listen on 127.0.0.1 only. start prints the lines
#   conf=DIR/ceph.conf  keyring=DIR/client.tier.keyring  id=tier  pool=tier
# and exits 0 at HEALTH_OK, 1 if it is not reached within
# CEPH_START_TIMEOUT seconds of its start (default 300; then it stops what
# it started), 77 if Ceph is not installed.
# Knobs: CEPH_OSD_MB (each OSD's block file, default 1024), CEPH_MON_PORT
# (default: a free one from 20000 up).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
d=$(cd "$2" && pwd)
conf=$d/ceph.conf
pool=tier
nosd=3

log() { echo "ceph-cluster: $*" >&2; }
now() { date +%s; }
ceph_() { timeout 60 ceph -c "$conf" -n client.admin -k "$d/client.admin.keyring" "$@"; }

stop() {
	local f pid
	for f in "$d"/run/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
	done
	for f in "$d"/run/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
}

# A TCP port on 127.0.0.1 nobody listens on (ss from iproute2), in steps
# of a cluster's port range.
free_port() {
	local p=$1
	while ss -Hltn "sport = :$p" | grep -q .; do
		p=$((p + 200))	# past the last cluster's range
	done
	echo "$p"
}

start() {
	local t0 mport fsid uuid id deadline health
	for b in ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool; do
		command -v "$b" >/dev/null ||
			{ echo "SKIP: $b not installed (apt-get install ceph-mon ceph-mgr ceph-osd ceph-common)"; exit 77; }
	done
	[ ! -e "$conf" ] || { log "$d already holds a cluster (stop it and remove the directory)"; exit 1; }
	t0=$(now)
	mport=$(free_port "${CEPH_MON_PORT:-20000}")
	fsid=$(cat /proc/sys/kernel/random/uuid)
	mkdir -p "$d/run" "$d/log" "$d/crash" "$d/mon.a" "$d/mgr.x"
	# A private port range for the OSDs and the mgr, above the mon's, so
	# two clusters on one host (two test runs) do not meet.
	cat > "$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mport
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind msgr2 = true
ms bind ipv6 = false
ms bind port min = $((mport + 1))
ms bind port max = $((mport + 100))
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = $d/run
pid file = $d/run/\$name.pid
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
crash dir = $d/crash
keyring = $d/\$name.keyring
osd pool default size = 3
osd pool default min size = 2
osd pool default pg autoscale mode = off
# one host: replicas go to distinct OSDs, not distinct hosts
osd crush chooseleaf type = 0
mon allow pool delete = true
mon data avail warn = 2
mon data avail crit = 1
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# the machine is shared: small caches, few threads
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 67108864
osd op num shards = 1
osd op num threads per shard = 2
mgr initial modules = 

[mon]
mon data = $d/mon.\$id
keyring = $d/mon.\$id/keyring
mon cluster log file = $d/log/cluster.log

[mgr]
mgr data = $d/mgr.\$id
keyring = $d/mgr.\$id/keyring

[osd]
osd data = $d/osd.\$id
keyring = $d/osd.\$id/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $(( ${CEPH_OSD_MB:-1024} * 1024 * 1024 ))
bluestore fsck on mkfs = false
osd crush update on start = true
EOF
	ceph-authtool --create-keyring "$d/mon.keyring" --gen-key -n mon. \
		--cap mon 'allow *' >/dev/null
	ceph-authtool --create-keyring "$d/client.admin.keyring" --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' \
		--cap mds 'allow *' >/dev/null
	ceph-authtool "$d/mon.keyring" --import-keyring "$d/client.admin.keyring" >/dev/null
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mport]" \
		"$d/monmap" >/dev/null
	ceph-mon -c "$conf" --mkfs -i a --monmap "$d/monmap" \
		--keyring "$d/mon.keyring"
	ceph-mon -c "$conf" -i a
	ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' \
		mds 'allow *' -o "$d/mgr.x/keyring"
	ceph-mgr -c "$conf" -i x
	for _ in $(seq "$nosd"); do
		uuid=$(cat /proc/sys/kernel/random/uuid)
		id=$(ceph_ osd new "$uuid")
		mkdir -p "$d/osd.$id"
		ceph-osd -c "$conf" -i "$id" --mkfs --mkkey --osd-uuid "$uuid" --no-mon-config \
			2>>"$d/log/mkfs.log"
		ceph_ auth add "osd.$id" osd 'allow *' mon 'allow profile osd' \
			mgr 'allow profile osd' -i "$d/osd.$id/keyring"
		ceph-osd -c "$conf" -i "$id"
	done
	ceph_ osd pool create "$pool" 16 16 replicated >/dev/null
	ceph_ osd pool application enable "$pool" tier >/dev/null
	ceph_ auth get-or-create client.tier mon 'allow r' \
		osd "allow rwx pool=$pool" -o "$d/client.tier.keyring"
	deadline=$(( t0 + ${CEPH_START_TIMEOUT:-300} ))
	while :; do
		health=$(ceph_ health 2>/dev/null || true)
		[ "$health" != HEALTH_OK ] || break
		if [ "$(now)" -ge "$deadline" ]; then
			log "no HEALTH_OK within ${CEPH_START_TIMEOUT:-300} s: ${health:-no answer} (logs in $d/log)"
			ceph_ health detail >&2 || true
			exit 1
		fi
		sleep 1
	done
	log "HEALTH_OK after $(( $(now) - t0 )) s"
	echo "conf=$conf"
	echo "keyring=$d/client.tier.keyring"
	echo "id=tier"
	echo "pool=$pool"
}

on_exit() {
	local rc=$?

	[ $rc -eq 0 ] || [ $rc -eq 77 ] || stop
	exit $rc
}

case $cmd in
start)
	# a start that fails leaves nothing running
	trap 'log "failed at line $LINENO (logs in $d/log)"' ERR
	trap on_exit EXIT
	start
	;;
stop) stop ;;
status) ceph_ -s ;;
*) usage ;;
esac
