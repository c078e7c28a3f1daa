#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Emulated persistent memory in the guest (memmap=256M!1G): /dev/pmem0
# appears; its namespace turns into devdax (a mappable /dev/daxN.M that keeps
# what is written) and into fsdax (ext4 mounted -o dax), where a file mapped
# MAP_PRIVATE and written gets copy-on-write pages: the file stays unchanged.
set -uo pipefail
src=${TIER_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "${1:-}" != inside ]; then
	command -v qemu-system-x86_64 >/dev/null ||
		{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
	for t in ndctl mkfs.ext4 python3; do
		command -v $t >/dev/null ||
			{ echo "SKIP: $t missing (apt-get install ndctl e2fsprogs python3)"; exit 77; }
	done
	"$src/emu/fetch-kernel.sh" >/dev/null ||
		{ echo "SKIP: the Debian kernel package is not available"; exit 77; }
	exec "$src/emu/run-in-guest.sh" --pmem -- "$self" inside
fi

fail() { echo "FAIL: $*"; exit 1; }
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

[ -b /dev/pmem0 ] || fail "no /dev/pmem0"
size=$(cat /sys/block/pmem0/size)
[ "$size" = $((256 << 11)) ] || fail "/dev/pmem0 has $size sectors, expected 256 MiB"
echo "ok: /dev/pmem0, 256 MiB"

dax=$("$src/emu/guest-setup.sh" devdax) || fail "devdax namespace"
[ -c "$dax" ] || fail "$dax is not a character device"
$py - "$dax" <<'PY' || fail "devdax mapping"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 2 << 20, mmap.MAP_SHARED)
m[4096:4096 + 16] = b'tier-devdax-page'
m.close()
m = mmap.mmap(fd, 2 << 20, mmap.MAP_SHARED)
assert m[4096:4096 + 16] == b'tier-devdax-page', m[4096:4096 + 16]
PY
echo "ok: devdax $dax maps and keeps a write"

mnt=$("$src/emu/guest-setup.sh" fsdax /mnt/dax) || fail "fsdax namespace + ext4"
opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/mounts)
[[ ",$opts," == *,dax* ]] || fail "$mnt is not mounted with dax ($opts)"
echo "ok: fsdax ext4 at $mnt ($opts)"

$py - "$mnt/image" <<'PY' || fail "MAP_PRIVATE copy-on-write on fsdax"
import mmap, os, sys
path = sys.argv[1]
orig = bytes(range(256)) * 64            # 16 KiB, 4 pages
with open(path, 'wb') as f:
    f.write(orig)
    f.flush()
    os.fsync(f.fileno())
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, len(orig), flags=mmap.MAP_PRIVATE,
              prot=mmap.PROT_READ | mmap.PROT_WRITE)
assert m[:] == orig, 'mapping does not show the file'
m[4096:8192] = b'\xee' * 4096            # write one page of the private map
assert m[4096:8192] == b'\xee' * 4096, 'write not visible in the mapping'
assert m[0:4096] == orig[0:4096], 'untouched page changed'
m.close()
os.close(fd)
os.system('echo 3 > /proc/sys/vm/drop_caches')
with open(path, 'rb') as f:
    now = f.read()
assert now == orig, 'the file changed under a MAP_PRIVATE write'
PY
echo "ok: MAP_PRIVATE write on the dax file is copy-on-write, file unchanged"
umount "$mnt"
echo PASS
