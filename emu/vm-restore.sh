#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Restore the workload VM from a snapshot of emu/vm-snapshot.sh: the same
# command line plus -incoming defer; x-ignore-shared; migrate-incoming
# exec:cat VMSTATE; poll; cont; then a ping must answer "pong".
#
# usage: emu/vm-restore.sh [--keep] DIR [RAMFILE [VMSTATE]]
#   RAMFILE  guest RAM for the restored VM (QEMU writes to it: share=on).
#            Default: a fresh sparse copy of DIR/ram in DIR/ram.restore.
#   --keep   leave the VM running (pid in DIR/qemu.pid) for more requests.
# Hooks for the tier adapter (see emu/lib.sh): TIER_QEMU_PRELOAD (LD_PRELOAD
# of QEMU, e.g. with an all-zero placeholder RAMFILE), TIER_QEMU_ENV
# (NAME=VALUE words), TIER_QEMU_EXTRA (extra QEMU arguments).
# Prints "restore_ms N" (QEMU start to the first answer), "state_ms N" (QEMU
# start to the device state loaded) and "answer_ms N" (cont done to the answer).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
keep=
[ "${1:-}" = --keep ] && { keep=1; shift; }
[ $# -ge 1 ] || { echo "usage: $0 [--keep] DIR [RAMFILE [VMSTATE]]" >&2; exit 2; }
d=$(cd "$1" && pwd)
ram=${2:-}
state=${3:-$d/vmstate}
case $state in /*) ;; *) state=$PWD/$state ;; esac
emu_need_qemu
[ -s "$state" ] && [ -f "$d/kernel.path" ] ||
	{ emu_log "no snapshot in $d (run emu/vm-snapshot.sh first)"; exit 1; }
EMU_VMLINUZ=$(cat "$d/kernel.path")
EMU_INITRD=$(cat "$d/initrd.path")
if [ -z "$ram" ]; then
	ram=$d/ram.restore
	rm -f "$ram"
	cp --sparse=always "$d/ram" "$ram"
fi

old=$(cat "$d/qemu.pid" 2>/dev/null || true)
if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
	emu_log "a VM still runs in $d (pid $old)"
	exit 1
fi
rm -f "$d/serial.sock" "$d/qmp.sock"
emu_vm_args "$d" "$ram"
# shellcheck disable=SC2206 # word splitting of the hook is the point
extra=(${TIER_QEMU_EXTRA:-})
# shellcheck disable=SC2206
envs=(${TIER_QEMU_ENV:-})
[ -n "${TIER_QEMU_PRELOAD:-}" ] && envs+=("LD_PRELOAD=$TIER_QEMU_PRELOAD")

t0=$(emu_now)
setsid timeout "${EMU_TIMEOUT:-1800}" env "${envs[@]}" "$EMU_QEMU" "${VM_ARGS[@]}" \
	"${extra[@]}" -incoming defer </dev/null >"$d/qemu.out" 2>"$d/qemu.err" &
pid=$!
echo $pid >"$d/qemu.pid"
fail() {
	emu_log "$*"
	emu_dump_logs "$d"
	kill "$pid" 2>/dev/null || true
	rm -f "$d/qemu.pid"
	exit 1
}
# One Python process from the connection to the answer: its start-up is
# paid once, while QEMU itself starts.
rm -f "$d/restore.stamps"
out=$("$emu_dir/qmp.py" --wait 30 --timeout "${EMU_ANSWER_TIMEOUT:-60}" \
	--stamps "$d/restore.stamps" "$d/qmp.sock" ignore-shared \
	+ migrate-incoming "uri=exec:cat '$state'" + wait-migrate + cont \
	+ ask "$d/serial.sock" ping) || fail "restore or first request failed"
ans=$(tail -n1 <<<"$out")
[ "$ans" = '"pong"' ] || fail "ping answered $ans"
st() { awk -v c="$1" '$1 == c { print $2 }' "$d/restore.stamps"; }
echo "restore_ms $(emu_ms "$t0" "$(st ask)")"
echo "state_ms $(emu_ms "$t0" "$(st wait-migrate)")"
echo "answer_ms $(emu_ms "$(st cont)" "$(st ask)")"
if [ -z "$keep" ]; then
	"$emu_dir/qmp.py" "$d/qmp.sock" quit >/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	rm -f "$d/qemu.pid"
fi
