#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tier's CXL tier on the emulated CXL type-3 device in the guest: a pmem
# region on mem0 with an fs-dax ext4 on it holds cxl=dir:; a tiered replay
# maps the read-only pages from the device (every page verified against the
# image), a replay writing all of them leaves the object unchanged
# (copy-on-write), and aquifer, copying its hot set out, verifies too.
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/../emu/guest-tier-lib.sh"

if [ "${1:-}" != inside ]; then
	tg_host_check cxl ndctl mkfs.ext4 sha256sum
	exec "$tg_src/emu/run-in-guest.sh" --cxl -- "$self" inside
fi

tg_guest_init
tg_image vm 16M 41
run 0 import vm "$tmp/vm.img" || die "import"
run 0 trace import vm "$tmp/vm.t1" || die "trace import"
np=$(pages "$tmp/vm.t2")
nw=$(pages "$tmp/vm.wro")

region=$("$tg_src/emu/guest-setup.sh" cxl-region) || die "cxl create-region"
[ -n "$region" ] || die "no region name"
mnt=$(REGION=$region "$tg_src/emu/guest-setup.sh" fsdax /mnt/cxl) || die "fsdax on $region"
opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/mounts)
[[ ",$opts," == *,dax* ]] || die "$mnt is not mounted with dax ($opts)"
dev=$(awk -v m="$mnt" '$2 == m { print $1 }' /proc/mounts)
echo "ok: fsdax ext4 on $region ($dev) at $mnt ($opts)"
CXL=cxl=dir:$mnt/tier

run 0 place --policy tiered --cxl "$CXL" vm || die "place tiered on CXL fs-dax"
# the object carries the plan's generation in its name
obj=$(ls "$mnt/tier"/vm/tiered.*.obj 2>/dev/null | head -n 1)
cat "$tmp/out"
[ -s "$obj" ] || die "no CXL object $obj"
sync
echo 3 >/proc/sys/vm/drop_caches
run 0 replay --json --policy tiered --trace-file "$tmp/vm.t2" vm
check_replay "$np" "CXL tiered replay"
cm=$(jnum cxl_mapped_bytes)
[ "${cm:-0}" -gt 0 ] || bad "CXL tiered replay: cxl_mapped_bytes ${cm:-none}"

sum0=$(sha256sum <"$obj")
run 0 replay --json --policy tiered --trace-file "$tmp/vm.wro" vm
check_replay "$nw" "CXL tiered replay writing $nw read-only pages"
sync
echo 3 >/proc/sys/vm/drop_caches
[ "$sum0" = "$(sha256sum <"$obj")" ] ||
	bad "the CXL object changed under writes to read-only pages"
echo "ok: $obj unchanged after writes to its pages (copy-on-write)"

run 0 place --policy aquifer --cxl "$CXL" vm
run 0 replay --json --policy aquifer --trace-file "$tmp/vm.t2" vm
check_replay "$np" "CXL aquifer replay"
umount "$mnt" || bad "umount $mnt"

[ $fail = 0 ] && echo PASS
exit $fail
