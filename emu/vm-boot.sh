#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot the workload VM with its RAM in a file and wait for "@ready".
# QEMU keeps running (pid in DIR/qemu.pid); talk to it with
#   emu/serial.py DIR/serial.sock ping        emu/qmp.py DIR/qmp.sock ...
#
# usage: emu/vm-boot.sh DIR [RAMFILE]     (RAMFILE default DIR/ram)
# Prints "boot_ms N" (QEMU start to @ready) on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 DIR [RAMFILE]" >&2; exit 2; }
d=$(mkdir -p "$1" && cd "$1" && pwd)
ram=${2:-$d/ram}
emu_need_qemu
emu_need_kernel
EMU_INITRD=$("$emu_dir/initramfs.sh" workload "$EMU_CACHE")
echo "$EMU_INITRD" >"$d/initrd.path"
echo "$EMU_VMLINUZ" >"$d/kernel.path"

rm -f "$d/serial.sock" "$d/qmp.sock" "$d/serial.log" "$d/console.log" "$ram"
# The file's size is the guest RAM size; sparse, QEMU fills it.
truncate -s "${EMU_RAM_MB}M" "$ram"
emu_vm_args "$d" "$ram"
t0=$(emu_now)
# setsid + timeout: a hung guest dies on its own even if nobody cleans up.
setsid timeout "${EMU_TIMEOUT:-1800}" "$EMU_QEMU" "${VM_ARGS[@]}" \
	</dev/null >"$d/qemu.out" 2>"$d/qemu.err" &
pid=$!
echo $pid >"$d/qemu.pid"
if ! emu_wait_ready "$d" $pid "${EMU_BOOT_TIMEOUT:-120}"; then
	emu_dump_logs "$d"
	kill $pid 2>/dev/null || true
	exit 1
fi
echo "boot_ms $(emu_ms "$t0" "$(emu_now)")"
