#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The workload VM survives a QEMU snapshot/restore with its RAM in a file
# (REFERENCE.md §3): snapshot after boot, restore from a plain copy of the
# RAM file, and every workload answers what the host computed independently
# (emu/expect.py).  Negative control: the same restore from an all-zero RAM
# file must not answer, so a passing restore really used the RAM file.
set -uo pipefail
src=${TIER_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
emu=$src/emu
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
"$emu/fetch-kernel.sh" >/dev/null ||
	{ echo "SKIP: the Debian kernel package is not available"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIP: busybox-static missing"; exit 77; }

d=$(mktemp -d /tmp/tier-vm.XXXXXX)
cleanup() {
	local pid
	pid=$(cat "$d/qemu.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
	rm -rf "$d"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
now() { date +%s%N; }

t=$(now)
"$emu/vm-snapshot.sh" "$d" || fail "snapshot"
echo "snapshot total $(( ($(now) - t) / 1000000 )) ms"
[ -s "$d/vmstate" ] || fail "no VMSTATE"
[ "$(stat -c %s "$d/ram")" = $((512 << 20)) ] || fail "RAM file is not 512 MiB"

# Expected answers: host Python, not the guest's program.
declare -A want=(
	[ping]=$("$emu/expect.py" ping)
	[sha]=$("$emu/expect.py" sha)
	["touch 32"]=$("$emu/expect.py" touch 32)
	["kv 3 2000"]=$("$emu/expect.py" kv 3 2000)
	["kv 99 1"]=$("$emu/expect.py" kv 99 1)
)

cp --sparse=always "$d/ram" "$d/ram.copy"
"$emu/vm-restore.sh" --keep "$d" "$d/ram.copy" || fail "restore from the RAM file copy"
for req in ping sha "touch 32" "kv 3 2000" "kv 99 1" ping; do
	got=$("$emu/serial.py" --timeout 120 "$d/serial.sock" "$req") || fail "no answer to '$req'"
	[ "$got" = "${want[$req]}" ] || fail "'$req' answered '$got', expected '${want[$req]}'"
	echo "ok: $req -> $got"
done
"$emu/qmp.py" "$d/qmp.sock" quit >/dev/null
for _ in $(seq 100); do kill -0 "$(cat "$d/qemu.pid")" 2>/dev/null || break; sleep 0.05; done

# A second restore of the same snapshot answers again (the image is intact).
cp --sparse=always "$d/ram" "$d/ram.copy2"
"$emu/vm-restore.sh" "$d" "$d/ram.copy2" || fail "second restore"

# Negative control: all-zero RAM must not produce a pong.
truncate -s 512M "$d/ram.zero"
if EMU_ANSWER_TIMEOUT=10 "$emu/vm-restore.sh" "$d" "$d/ram.zero" >/dev/null 2>&1; then
	fail "restore from an all-zero RAM file answered"
fi
echo "ok: all-zero RAM file does not answer"
echo "PASS"
