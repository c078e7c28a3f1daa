#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Snapshot the workload VM (REFERENCE.md §3): boot it unless DIR already has
# a running one, answer a warm-up request, then stop; x-ignore-shared;
# migrate to exec:cat > VMSTATE; poll query-migrate; quit.  Leaves the memory
# image in RAMFILE (the RAM file itself) and the device state in VMSTATE.
#
# usage: emu/vm-snapshot.sh DIR [RAMFILE [VMSTATE]]
#        (defaults DIR/ram, DIR/vmstate)
# Prints "boot_ms N", "snapshot_ms N" (stop to completed) and sizes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 DIR [RAMFILE [VMSTATE]]" >&2; exit 2; }
d=$(mkdir -p "$1" && cd "$1" && pwd)
ram=${2:-$d/ram}
state=${3:-$d/vmstate}
case $state in /*) ;; *) state=$PWD/$state ;; esac

pid=$(cat "$d/qemu.pid" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
	"$emu_dir/vm-boot.sh" "$d" "$ram"
	pid=$(cat "$d/qemu.pid")
fi
warm=$("$emu_dir/serial.py" --timeout 60 "$d/serial.sock" ping) ||
	{ emu_dump_logs "$d"; exit 1; }
[ "$warm" = pong ] || { emu_log "warm-up answered '$warm'"; exit 1; }
# EMU_SNAPSHOT_SETTLE seconds: let the work the warm-up left behind (RCU,
# deferred kernel work) finish, so each restored run starts from quiet.
sleep "${EMU_SNAPSHOT_SETTLE:-0}"

rm -f "$state"
t0=$(emu_now)
"$emu_dir/qmp.py" --timeout 120 "$d/qmp.sock" stop + ignore-shared \
	+ migrate "uri=exec:cat > '$state'" + wait-migrate >/dev/null
t1=$(emu_now)
"$emu_dir/qmp.py" "$d/qmp.sock" quit >/dev/null || true
# The RAM file is complete only once QEMU is gone.
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then
	emu_log "QEMU $pid did not quit"
	kill "$pid"
	exit 1
fi
rm -f "$d/qemu.pid"
echo "snapshot_ms $(emu_ms "$t0" "$t1")"
echo "vmstate_bytes $(stat -c %s "$state")"
echo "ram_file $ram $(du -k "$ram" | cut -f1) KiB allocated"
