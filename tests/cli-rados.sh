#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: ceph -- tierctl with a rados:// pool on a real one-host cluster
# (emu/ceph-cluster.sh, or the one TIER_TEST_CEPH_DIR names): place every
# policy with RADOS as the pool, replay each verifying every page (tiered
# and aquifer read their cold pages from it), a wrong keyring's one-line
# error, and a segment whose objects are gone failing the replay closed.
set -uo pipefail

T=${TIERCTL:?set TIERCTL to the tierctl binary}
src=${TIER_SRCDIR:?set TIER_SRCDIR to the source tree}
[ "$(id -u)" = 0 ] || { echo "skip: needs root (userfaultfd)"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }

tmp=$(mktemp -d)
. "$src/tests/ceph-lib.sh"
cleanup() {
	ceph_down
	rm -rf "$tmp"
}
trap cleanup EXIT
ceph_up
export TIER_STORE=$tmp/store
ns=cli$$
POOL="pool=rados://tier/$ns?id=tier&conf=$cdir/ceph.conf&keyring=$cdir/client.tier.keyring"
fail=0

bad() {
	echo "FAIL: $*" >&2
	fail=1
}

run() {
	local want=$1 rc
	shift
	"$T" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" != "$want" ]; then
		bad "tierctl $* exited $rc, want $want; stderr: $(cat "$tmp/err")"
	fi
}

one_line() {
	[ "$(wc -l <"$tmp/err")" = 1 ] || bad "$2: stderr is not one line: $(cat "$tmp/err")"
	grep -q -- "$1" "$tmp/err" || bad "$2: stderr does not match '$1': $(cat "$tmp/err")"
}

# 24 MiB: page p zero when p % 4 == 0, else a pattern unique to the page;
# the pool segment spans two 16 MiB objects.
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

run 0 import vm "$tmp/img"
run 0 trace import vm "$tmp/hot.trace"
policies=(tiered vanilla reap faasnap aquifer eager)
for p in "${policies[@]}"; do
	run 0 place --cxl "cxl=dir:$tmp/cxl" --pool "$POOL" --policy "$p" vm
	run 0 replay --json --policy "$p" --trace-file "$tmp/cold.txt" vm
	python3 - "$tmp/out" "$ncold" "$p" <<'EOF' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
want, p = int(sys.argv[2]), sys.argv[3]
if p in ("tiered", "aquifer") and d["pool_bytes"] == 0:
    sys.exit(f"FAIL: replay {p}: read nothing from the pool")
if d["verified_pages"] != want or d["mismatches"] != 0:
    sys.exit(f"FAIL: replay {p}: verified {d['verified_pages']} of {want}, mismatches {d['mismatches']}")
print(f"ok: replay {p} from RADOS: {want} pages verified, {d['pool_bytes']} pool bytes")
EOF
done

# a wrong keyring: the place fails in one line naming the client
ceph-authtool --create-keyring "$tmp/wrong.keyring" --gen-key -n client.tier >/dev/null
run 1 place --cxl "cxl=dir:$tmp/cxl" --pool "pool=rados://tier/$ns?id=tier&conf=$cdir/ceph.conf&keyring=$tmp/wrong.keyring" vm
one_line "^tierctl place: .*pool rados://tier/$ns: connect as client.tier with keyring $tmp/wrong.keyring: Permission denied" "wrong keyring"

# the segment's objects removed behind its back: the replay fails closed
run 0 place --cxl "cxl=dir:$tmp/cxl" --pool "$POOL" --policy tiered vm
rados -c "$cdir/ceph.conf" --id tier -k "$cdir/client.tier.keyring" -p tier \
	-N "$ns" ls >"$tmp/objs" || bad "rados ls"
# every tiered segment's data objects (an older plan's may still be there)
segs=$(grep -v '\.[0-9a-f]\{16\}\.[0-9a-f]\{8\}$' "$tmp/objs" | grep '^vm/tiered\.')
[ -n "$segs" ] || bad "no tiered commit object among: $(cat "$tmp/objs")"
for seg in $segs; do
	for o in $(grep "^$seg\.[0-9a-f]\{16\}\." "$tmp/objs"); do
		rados -c "$cdir/ceph.conf" --id tier -k "$cdir/client.tier.keyring" \
			-p tier -N "$ns" rm "$o" || bad "rados rm $o"
	done
done
"$T" replay --policy tiered --trace-file "$tmp/cold.txt" vm >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc != 0 ] || bad "replay with the segment's objects gone exited 0"
grep -q "rados://tier/$ns" "$tmp/err" || bad "replay failure does not name the pool: $(cat "$tmp/err")"
[ $rc = 0 ] || echo "ok: objects gone: $(head -1 "$tmp/err")"

[ $fail = 0 ] && echo "cli-rados: all passed"
exit $fail
