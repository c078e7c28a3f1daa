# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash disable=SC2034 # variables for the sourcing scripts
# Shared by the emu/ scripts (sourced).  Environment knobs:
#   EMU_CACHE          kernel + initramfs cache (default emu/cache)
#   EMU_QEMU           the QEMU binary (default qemu-system-x86_64)
#   EMU_RAM_MB         workload VM RAM (default 512)
#   EMU_TIMEOUT        seconds before a guest is killed
#   EMU_KERNEL_FORMAT  bzimage: boot vmlinuz instead of the PVH vmlinux
#   TIER_QEMU_PRELOAD  LD_PRELOAD for QEMU (the tier adapter) on restore
#   TIER_QEMU_EXTRA    extra QEMU arguments (word-split) on restore
#   TIER_QEMU_ENV      extra NAME=VALUE words for QEMU's environment on restore
emu_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EMU_CACHE=${EMU_CACHE:-$emu_dir/cache}
EMU_QEMU=${EMU_QEMU:-qemu-system-x86_64}
EMU_RAM_MB=${EMU_RAM_MB:-512}

emu_now() { date +%s%N; }
# Milliseconds between two emu_now stamps.
emu_ms() { echo $(( ($2 - $1) / 1000000 )); }
emu_log() { echo "emu: $*" >&2; }

# Exit 77 (skip) with a reason unless QEMU and the kernel can be had.
emu_need_qemu() {
	command -v "$EMU_QEMU" >/dev/null ||
		{ echo "SKIP: $EMU_QEMU not installed (apt-get install qemu-system-x86)"; exit 77; }
}
emu_need_kernel() {
	EMU_VMLINUZ=$("$emu_dir/fetch-kernel.sh" "$EMU_CACHE") ||
		{ echo "SKIP: the Debian kernel package is not available (apt-get update?)"; exit 77; }
	EMU_KVER=$(cat "$EMU_CACHE/kernel/KVER")
	# PVH boot of the uncompressed kernel saves the guest's xz decompression.
	if [ "${EMU_KERNEL_FORMAT:-}" != bzimage ] && [ -f "$EMU_CACHE/kernel/vmlinux" ]; then
		EMU_VMLINUZ=$EMU_CACHE/kernel/vmlinux
	fi
}

# The workload VM's command line into the array VM_ARGS, for state dir $1 and
# RAM file $2.  Snapshot and restore must use the same one (plus -incoming).
emu_vm_args() {
	local d=$1 ram=$2
	VM_ARGS=(-accel tcg -nodefaults -display none -nic none -no-user-config
		-smp 1 -m "${EMU_RAM_MB}M"
		-object "memory-backend-file,id=mem,size=${EMU_RAM_MB}M,mem-path=$ram,share=on"
		-machine pc,memory-backend=mem
		-kernel "$EMU_VMLINUZ" -initrd "$EMU_INITRD"
		-append "console=ttyS1 quiet panic=-1 mitigations=off"
		-chardev "socket,id=req,path=$d/serial.sock,server=on,wait=off,logfile=$d/serial.log"
		-serial chardev:req
		-chardev "file,id=con,path=$d/console.log"
		-serial chardev:con
		-qmp "unix:$d/qmp.sock,server=on,wait=off"
		-no-reboot)
}

# Wait until the guest wrote "@ready" on its request console.
emu_wait_ready() {
	local d=$1 pid=$2 t=${3:-120} i=0
	while ! grep -qa '^@ready' "$d/serial.log" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || { emu_log "QEMU exited during boot"; return 1; }
		i=$((i + 1))
		[ $i -le $((t * 100)) ] || { emu_log "no @ready in ${t}s"; return 1; }
		sleep 0.01
	done
}

emu_dump_logs() {
	local d=$1 f
	for f in "$d/console.log" "$d/qemu.err"; do
		[ -s "$f" ] && { echo "--- $f (tail)"; tail -n 30 "$f"; }
	done >&2
	return 0
}
