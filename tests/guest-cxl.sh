#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The emulated CXL type-3 memory device in the guest: mem0 appears, a pmem
# region on it takes an fsdax namespace with ext4 mounted -o dax, data
# written there reads back from the device (with one root port QEMU would
# lose it), and a MAP_PRIVATE write leaves the file unchanged.
set -uo pipefail
src=${TIER_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "${1:-}" != inside ]; then
	command -v qemu-system-x86_64 >/dev/null ||
		{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
	for t in cxl ndctl mkfs.ext4 python3; do
		command -v $t >/dev/null ||
			{ echo "SKIP: $t missing (apt-get install ndctl e2fsprogs python3)"; exit 77; }
	done
	"$src/emu/fetch-kernel.sh" >/dev/null ||
		{ echo "SKIP: the Debian kernel package is not available"; exit 77; }
	exec "$src/emu/run-in-guest.sh" --cxl -- "$self" inside
fi

fail() { echo "FAIL: $*"; exit 1; }
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

mems=$(cxl list -M | tr -d ' \n') || fail "cxl list"
grep -q '"memdev":"mem0"' <<<"$mems" || fail "no CXL mem0"
size=$(sed -n 's/.*"pmem_size":\([0-9]*\).*/\1/p' <<<"$mems")
[ "$size" = $((256 << 20)) ] || fail "mem0 pmem_size $size, expected 256 MiB"
echo "ok: CXL mem0, 256 MiB persistent"

region=$("$src/emu/guest-setup.sh" cxl-region) || fail "cxl create-region"
[ -n "$region" ] || fail "no region name"
echo "ok: $region"
mnt=$(REGION=$region "$src/emu/guest-setup.sh" fsdax /mnt/cxl) || fail "fsdax on $region"
opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/mounts)
[[ ",$opts," == *,dax* ]] || fail "$mnt is not mounted with dax ($opts)"
echo "ok: fsdax ext4 on $region at $mnt ($opts)"

$py - "$mnt/image" <<'PY' || fail "data or MAP_PRIVATE copy-on-write on CXL fsdax"
import mmap, os, sys
path = sys.argv[1]
orig = os.urandom(1 << 20)
with open(path, 'wb') as f:
    f.write(orig)
    os.fsync(f.fileno())
os.system('sync; echo 3 > /proc/sys/vm/drop_caches')
with open(path, 'rb') as f:
    assert f.read() == orig, 'data written to the CXL device did not read back'
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, len(orig), flags=mmap.MAP_PRIVATE,
              prot=mmap.PROT_READ | mmap.PROT_WRITE)
assert m[:] == orig
m[8192:12288] = b'\x5a' * 4096
assert m[8192:12288] == b'\x5a' * 4096
m.close()
os.close(fd)
os.system('echo 3 > /proc/sys/vm/drop_caches')
with open(path, 'rb') as f:
    assert f.read() == orig, 'the file changed under a MAP_PRIVATE write'
PY
echo "ok: 1 MiB reads back from the device; MAP_PRIVATE write is copy-on-write"
umount "$mnt"
echo PASS
