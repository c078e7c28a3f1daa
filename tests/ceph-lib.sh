# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the ceph suite's scripts (needs $src and $tmp): ceph_up
# brings a one-host cluster up in $tmp/ceph (emu/ceph-cluster.sh), or
# takes the one TIER_TEST_CEPH_DIR names; $cdir is its directory, $own
# set when the script started it and ceph_down must stop it. A machine
# that cannot run one makes the script skip (77).
own=
ceph_up() {
	local rc

	if [ -n "${TIER_TEST_CEPH_DIR:-}" ]; then
		cdir=$TIER_TEST_CEPH_DIR
		return 0
	fi
	cdir=$tmp/ceph
	own=$cdir
	"$src/emu/ceph-cluster.sh" start "$cdir" >"$tmp/start.out" 2>"$tmp/start.err"
	rc=$?
	if [ $rc = 77 ]; then
		own=
		echo "skip: $(cat "$tmp/start.out")"
		exit 77
	fi
	[ $rc = 0 ] || { cat "$tmp/start.err" >&2; echo "FAIL: emu/ceph-cluster.sh start" >&2; exit 1; }
	grep -h "HEALTH_OK after" "$tmp/start.err"
}
ceph_down() {
	[ -z "$own" ] || "$src/emu/ceph-cluster.sh" stop "$own"
}
