#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tier's cxl=numa: backend on the guest's CPU-less NUMA node 1: a tiered
# place and replay (every page verified, read-only pages mapped from the
# object), the object's pages all on node 1 (numa_maps of a process mapping
# it), and a node that does not exist refused with one line.
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/../emu/guest-tier-lib.sh"

if [ "${1:-}" != inside ]; then
	tg_host_check numactl python3
	exec "$tg_src/emu/run-in-guest.sh" --numa -- "$self" inside
fi

tg_guest_init
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
[ -d /sys/devices/system/node/node1 ] || die "no NUMA node 1"
tg_image vm 16M 31
run 0 import vm "$tmp/vm.img" || die "import"
run 0 trace import vm "$tmp/vm.t1" || die "trace import"
np=$(pages "$tmp/vm.t2")
nw=$(pages "$tmp/vm.wro")
numa_dir=/dev/shm/tier-numa-test

run 0 place --policy tiered --cxl cxl=numa:1:$numa_dir vm || die "place tiered on cxl=numa:1"
# the object carries the plan's generation in its name
obj=$(ls "$numa_dir"/vm/tiered.*.obj 2>/dev/null | head -n 1)
cat "$tmp/out"
[ -s "$obj" ] || die "no CXL object $obj: $(find "$numa_dir")"
run 0 replay --json --policy tiered --trace-file "$tmp/vm.t2" vm
check_replay "$np" "numa:1 tiered replay"
cm=$(jnum cxl_mapped_bytes)
[ "${cm:-0}" -gt 0 ] || bad "numa:1 tiered replay: cxl_mapped_bytes ${cm:-none}"
run 0 replay --json --policy tiered --trace-file "$tmp/vm.wro" vm
check_replay "$nw" "numa:1 tiered replay writing the read-only pages"

# Where the object's pages are: map it shared, touch every page, and read
# this process's numa_maps line for it (N<node>=<pages>).
$py - "$obj" <<'PY' || bad "the object's pages are not all on node 1"
import mmap, os, re, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
sum(m[i] for i in range(0, size, 4096))
line = next(l for l in open('/proc/self/numa_maps') if path in l)
print(line.strip())
nodes = {int(k): int(v) for k, v in re.findall(r'\bN(\d+)=(\d+)', line)}
pages = size // 4096
assert ' bind:1 ' in line, 'the file has no bind:1 policy'
assert nodes == {1: pages}, f'pages per node {nodes}, want all {pages} on node 1'
print(f'ok: all {pages} pages of the object on node 1')
PY

# And during a restore: this process restores the snapshot with libtier
# (tiered plan), reads every read-only hot page (checking its bytes against
# the image) and its numa_maps shows those pages mapped from the object,
# on node 1.
$py - "$B/libtier.so" "$TIER_STORE" "$tmp/vm.img" "$tmp/vm.t1" "$obj" <<'PY' ||
import ctypes, mmap, re, sys
lib, store, img, trace, obj = sys.argv[1:]
t = ctypes.CDLL(lib)
t.tier_errmsg.restype = ctypes.c_char_p
vp = ctypes.c_void_p
t.tier_store_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
t.tier_snap_open.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp)]
t.tier_snap_size.argtypes = [vp]
t.tier_snap_size.restype = ctypes.c_uint64
t.tier_restore_start.argtypes = [vp, vp, ctypes.c_size_t, vp, ctypes.POINTER(vp)]
t.tier_restore_stop.argtypes = [vp]
def ok(rc, what):
    assert rc == 0, f'{what}: {rc}: {t.tier_errmsg().decode()}'
st, sn, rs = vp(), vp(), vp()
ok(t.tier_store_open(store.encode(), ctypes.byref(st)), 'tier_store_open')
ok(t.tier_snap_open(st, b'vm', ctypes.byref(sn)), 'tier_snap_open')
size = t.tier_snap_size(sn)
mem = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                mmap.PROT_READ | mmap.PROT_WRITE)
addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
attr = ctypes.create_string_buffer(256)        # zero-filled: the defaults
ok(t.tier_restore_start(sn, addr, size, ctypes.addressof(attr), ctypes.byref(rs)),
   'tier_restore_start')
ro = [int(l.split()[0], 16) for l in open(trace)
      if not l.startswith('#') and l.split()[1] == 'r']
with open(img, 'rb') as f:
    for off in ro:
        f.seek(off)
        assert mem[off:off + 4096] == f.read(4096), f'page {off:#x} differs'
lines = [l for l in open('/proc/self/numa_maps') if obj in l]
assert lines, f'no mapping of {obj} in numa_maps'
nodes = {}
for l in lines:
    for k, v in re.findall(r'\bN(\d+)=(\d+)', l):
        nodes[int(k)] = nodes.get(int(k), 0) + int(v)
print(f'{len(lines)} mappings of the object, pages per node {nodes}')
assert set(nodes) == {1}, f'pages of the object mapped from nodes {nodes}'
assert nodes[1] >= len(ro), f'{nodes[1]} object pages mapped, {len(ro)} read'
print(f'ok: during a restore, the {len(ro)} read-only pages read are the object\'s, on node 1')
t.tier_restore_stop(rs)
PY
	bad "a restore does not map the read-only pages from node 1"

# A node that is not there: refused, one line naming it.
run 1 place --policy tiered --cxl cxl=numa:2 vm
one_line "^tierctl place: .*NUMA node 2" "place on cxl=numa:2"
echo "ok: cxl=numa:2: $(cat "$tmp/err")"
run '!0' replay --json --policy tiered --cxl cxl=numa:2 --trace-file "$tmp/vm.t2" vm
one_line "^tierctl replay: .*NUMA node 2" "replay with cxl=numa:2"
grep -qi mismatch "$tmp/err" && bad "replay with cxl=numa:2 reported a mismatch"

[ $fail = 0 ] && echo PASS
exit $fail
