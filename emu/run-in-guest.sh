#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run a command inside a QEMU (TCG) guest that has the emulated hardware tier
# needs, with the host's root filesystem (read-only, over 9p) as its root, so
# host-built binaries run unchanged.  The cwd and the environment pass
# through; the command's output is printed and its exit code returned.
#
# usage: emu/run-in-guest.sh [--rxe] [--pmem] [--numa] [--cxl] [--mem MB]
#                            [--timeout S] [--keep] -- CMD [ARGS...]
#   --rxe    soft-RoCE: veth0 10.9.0.1/rxe0 <-> veth1 10.9.0.2/rxe1, routed
#            across the veth (emu/guest-setup.sh)
#   --pmem   memmap=256M!1G legacy pmem: /dev/pmem0 (then, inside,
#            emu/guest-setup.sh devdax | fsdax MNT)
#   --numa   node 1: 512 MiB, no CPUs
#   --cxl    q35 + CXL type-3 persistent device mem0 behind two root ports
#            (inside: emu/guest-setup.sh cxl-region)
#   --keep   keep the work directory (console log, results) and print it
# Inside, EMU_GUEST=1 and EMU_RESULTS=/run/results (a writable host
# directory).  The root is the host's, writable in the guest only (overlay
# on a tmpfs); /tmp is the guest's own tmpfs unless the cwd or TIER_SRCDIR is
# under /tmp, then the host's /tmp shows through (writes stay in the guest).
# EMU_GUEST_APPEND adds kernel arguments (e.g. "loglevel=7" to see the boot).
# Exit: CMD's exit code; 124 if the guest timed out; 125 if setup failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

flags=()
mem=''
tmo=${EMU_GUEST_TIMEOUT:-600}
keep=''
while [ $# -gt 0 ]; do
	case $1 in
	--rxe | --pmem | --numa | --cxl) flags+=("${1#--}") ;;
	--mem) mem=$2; shift ;;
	--timeout) tmo=$2; shift ;;
	--keep) keep=1 ;;
	--) shift; break ;;
	*) echo "usage: $0 [--rxe] [--pmem] [--numa] [--cxl] [--mem MB] [--timeout S] [--keep] -- CMD..." >&2
	   exit 2 ;;
	esac
	shift
done
[ $# -gt 0 ] || { echo "$0: no command" >&2; exit 2; }
has() { [[ " ${flags[*]} " == *" $1 "* ]]; }

emu_need_qemu
emu_need_kernel
initrd=$("$emu_dir/initramfs.sh" hw "$EMU_CACHE") || { emu_log "cannot build the initramfs"; exit 1; }

w=$(mktemp -d "${TMPDIR:-/tmp}/emu-guest.XXXXXX")
mkdir -p "$w/results"
cleanup() { [ -n "$keep" ] && { emu_log "work dir kept: $w"; return; }; rm -rf "$w"; }
trap cleanup EXIT

# The job: runs in the guest, chrooted into the host root, with host bash.
host_tmp=
case $PWD/ in /tmp/*) host_tmp=1 ;; esac
case ${TIER_SRCDIR:-}/ in /tmp/*) host_tmp=1 ;; esac
{
	echo "EMU_FLAGS=\"${flags[*]}\""
	echo "EMU_HOST_TMP=$host_tmp"
} >"$w/results/flags"
{
	echo '#!/bin/bash'
	# The environment, minus what names this shell or this host's session.
	export -p | grep -Ev '^declare -x (PWD|OLDPWD|SHLVL|_|HOSTNAME|SSH_[A-Z_]*|DISPLAY|XAUTHORITY|DBUS_SESSION_BUS_ADDRESS|XDG_RUNTIME_DIR)(=|$)'
	echo 'export EMU_GUEST=1 EMU_RESULTS=/run/results'
	echo '[ -n "${TMPDIR:-}" ] && mkdir -p "$TMPDIR"'
	printf 'cd %q || { echo "emu: no %q in the guest"; echo 126 >/run/results/rc; exit; }\n' "$PWD" "$PWD"
	[ ${#flags[@]} = 0 ] ||
		printf '%q setup %s >/run/results/setup.log 2>&1 || { echo 125 >/run/results/rc; exit; }\n' \
			"$emu_dir/guest-setup.sh" "${flags[*]}"
	printf '%q ' "$@"
	echo '</dev/null >/run/results/output 2>&1'
	echo 'echo $? >/run/results/rc'
} >"$w/results/job.sh"

machine=pc
append="console=ttyS0 quiet panic=-1 mitigations=off ${EMU_GUEST_APPEND:-}"
[ -n "$mem" ] || { mem=1024; { has pmem || has numa; } && mem=2048; }
# The 9p devices come first: a device without bus= lands on the last PCI
# bus created, which must not be the CXL host bridge.
args=(-accel tcg -nodefaults -display none -nic none -no-user-config -smp 2 -m "${mem}M"
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$w/results,mount_tag=results,security_model=none,multidevs=remap")
if has pmem; then
	[ "$mem" -ge 1280 ] || { emu_log "--pmem needs --mem >= 1280"; exit 2; }
	append+=" memmap=256M!1G"
fi
if has numa; then
	[ "$mem" -gt 512 ] || { emu_log "--numa needs --mem > 512"; exit 2; }
	args+=(-object "memory-backend-ram,id=m0,size=$((mem - 512))M"
		-object memory-backend-ram,id=m1,size=512M
		-numa node,nodeid=0,cpus=0-1,memdev=m0
		-numa node,nodeid=1,memdev=m1)
fi
if has cxl; then
	machine=q35,cxl=on
	truncate -s 256M "$w/cxl-mem0" "$w/cxl-lsa0"
	# Two root ports: with one, QEMU 7.2 silently loses the writes.
	args+=(-object "memory-backend-file,id=cxl-mem0,share=on,mem-path=$w/cxl-mem0,size=256M"
		-object "memory-backend-file,id=cxl-lsa0,share=on,mem-path=$w/cxl-lsa0,size=256M"
		-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
		-device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2
		-device cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3
		-device cxl-type3,bus=root_port13,memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-pmem0
		-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G)
fi
args+=(-machine "$machine"
	-kernel "$EMU_VMLINUZ" -initrd "$initrd" -append "$append"
	-serial "file:$w/console.log"
	-no-reboot)

t0=$(emu_now)
timeout "$tmo" "$EMU_QEMU" "${args[@]}" </dev/null >"$w/qemu.out" 2>"$w/qemu.err"
qrc=$?
ms=$(emu_ms "$t0" "$(emu_now)")

[ -f "$w/results/output" ] && cat "$w/results/output"
rc=$(cat "$w/results/rc" 2>/dev/null || true)
if [ -z "$rc" ]; then
	if [ $qrc = 124 ]; then
		emu_log "guest timed out after ${tmo}s"
		rc=124
	else
		emu_log "guest ended without a result (qemu exit $qrc)"
		rc=1
	fi
	emu_dump_logs "$w"
elif [ "$rc" = 125 ]; then
	emu_log "guest setup (${flags[*]}) failed:"
	cat "$w/results/setup.log" >&2
	emu_dump_logs "$w"
fi
emu_log "guest run ${flags[*]:-plain}: ${ms} ms, exit $rc"
exit "$rc"
