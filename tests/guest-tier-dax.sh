#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tier's CXL tier on emulated persistent memory in the guest.
# fs-dax: cxl=dir: on ext4 -o dax; a tiered replay maps read-only pages
# from the dax file (every page verified), and a replay writing every
# read-only page leaves the object file unchanged (copy-on-write).
# device-dax: test-cxl-devdax on the real /dev/daxX.Y; aquifer (which copies
# its hot set out of CXL) places and replays there, verified; placing
# tiered, which must map CXL MAP_PRIVATE, fails at once with a one-line
# reason naming the device (device-dax cannot be mapped copy-on-write).
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/../emu/guest-tier-lib.sh"

if [ "${1:-}" != inside ]; then
	tg_host_check ndctl daxctl mkfs.ext4 sha256sum
	exec "$tg_src/emu/run-in-guest.sh" --pmem -- "$self" inside
fi

tg_guest_init
tg_image vm 16M 21
run 0 import vm "$tmp/vm.img" || die "import"
run 0 trace import vm "$tmp/vm.t1" || die "trace import"
np=$(pages "$tmp/vm.t2")
nw=$(pages "$tmp/vm.wro")

# fs-dax
mnt=$("$tg_src/emu/guest-setup.sh" fsdax /mnt/dax) || die "fsdax namespace + ext4"
opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/mounts)
[[ ",$opts," == *,dax* ]] || die "$mnt is not mounted with dax ($opts)"
echo "ok: fsdax ext4 at $mnt ($opts)"
CXL=cxl=dir:$mnt/tier

run 0 place --policy tiered --cxl "$CXL" vm || die "place tiered on fs-dax"
# the object carries the plan's generation in its name
obj=$(ls "$mnt/tier"/vm/tiered.*.obj 2>/dev/null | head -n 1)
[ -s "$obj" ] || die "no CXL object $obj: $(find "$mnt/tier")"
run 0 replay --json --policy tiered --trace-file "$tmp/vm.t2" vm
check_replay "$np" "fs-dax tiered replay"
cm=$(jnum cxl_mapped_bytes)
[ "${cm:-0}" -gt 0 ] || bad "fs-dax tiered replay: cxl_mapped_bytes ${cm:-none}"

sum0=$(sha256sum <"$obj")
run 0 replay --json --policy tiered --trace-file "$tmp/vm.wro" vm
check_replay "$nw" "fs-dax tiered replay writing $nw read-only pages"
sync
echo 3 >/proc/sys/vm/drop_caches
sum1=$(sha256sum <"$obj")
[ "$sum0" = "$sum1" ] || bad "the CXL object on fs-dax changed under writes to read-only pages"
echo "ok: $obj unchanged after writes to its pages (copy-on-write)"
# and the next restore still sees the image's bytes
run 0 replay --json --policy tiered --trace-file "$tmp/vm.wro" vm
check_replay "$nw" "fs-dax tiered replay after the writes"
umount "$mnt" || die "umount $mnt"

# device-dax
dax=$("$tg_src/emu/guest-setup.sh" devdax) || die "devdax namespace"
[ -c "$dax" ] || die "$dax is not a character device"
echo "ok: devdax $dax"
TIER_TEST_DAX=$dax "$B/tests/test-cxl-devdax" >"$tmp/t.log" 2>&1
rc=$?
cat "$tmp/t.log"
[ $rc = 0 ] || bad "test-cxl-devdax exited $rc"

DAX=cxl=devdax:$dax
run 0 place --policy aquifer --cxl "$DAX" vm && cat "$tmp/out"
grep -q "cxl 0 B" "$tmp/out" && bad "aquifer placed nothing on $dax: $(cat "$tmp/out")"
run 0 replay --json --policy aquifer --trace-file "$tmp/vm.t2" vm
check_replay "$np" "devdax aquifer replay"

# tiered maps CXL MAP_PRIVATE: impossible on device-dax (cxl/devdax.c);
# place says so at once, before writing anything, and keeps the old plan.
"$T" show vm >"$tmp/show0" 2>&1 || bad "show vm"
"$T" place --policy tiered --cxl "$DAX" vm >"$tmp/out" 2>"$tmp/err" &&
	bad "place tiered on devdax succeeded"
one_line "cannot be mapped copy-on-write" "place tiered on devdax"
grep -q "$dax" "$tmp/err" || bad "the error does not name $dax: $(cat "$tmp/err")"
"$T" show vm >"$tmp/show1" 2>&1 || bad "show vm"
cmp -s "$tmp/show0" "$tmp/show1" || bad "the refused place changed the plans: $(diff "$tmp/show0" "$tmp/show1")"
echo "ok: place tiered on devdax fails: $(cat "$tmp/err")"

[ $fail = 0 ] && echo PASS
exit $fail
