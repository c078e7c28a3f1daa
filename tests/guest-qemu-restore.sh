#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: guest -- a real QEMU VM (TCG, on the host) restored through tier:
# snapshot once (one snapshot name per workload, so each has its own plans),
# record each workload, place every policy, then restore with every policy
# from an all-zero placeholder RAM file: each workload must answer exactly
# what emu/expect.py computed on the host, so every page the guest used
# came through tier. Each policy also runs all workloads in one guest from
# the ping plan (pages outside the plan come lazily or from the image).
set -uo pipefail
src=${TIER_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
emu=$src/emu
export TIERCTL=${TIERCTL:?set TIERCTL to the tierctl binary}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (userfaultfd)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIP: busybox-static missing"; exit 77; }
"$emu/fetch-kernel.sh" >/dev/null ||
	{ echo "SKIP: the Debian kernel package is not available"; exit 77; }

d=$(mktemp -d /tmp/tq-restore.XXXXXX)
trap 'rm -rf "$d"' EXIT
export TIER_STORE=$d/store
fail=0
bad() { echo "FAIL: $*"; fail=1; }

declare -A wl=([ping]=ping [sha]=sha [touch]="touch 32" [kv]="kv 3 2000")
names=(ping sha touch kv)
snaps=()
for n in "${names[@]}"; do snaps+=("vm-$n"); done
"$emu/tier-vm.sh" snapshot "$d" "${snaps[@]}" || { echo "FAIL: snapshot"; exit 1; }
for n in "${names[@]}"; do
	out=$("$emu/tier-vm.sh" record "$d" "vm-$n" "${wl[$n]}") || { bad "record ${wl[$n]}"; continue; }
	echo "record ${wl[$n]}: $out"
	"$TIERCTL" place "vm-$n" --policy all --cxl "cxl=dir:$d/cxl" >/dev/null ||
		bad "place vm-$n"
done
[ $fail = 0 ] || exit 1

for p in tiered vanilla reap faasnap aquifer eager; do
	for n in "${names[@]}"; do
		out=$("$emu/tier-vm.sh" restore "$d" "vm-$n" "$p" "${wl[$n]}") ||
			bad "$p: ${wl[$n]}"
		echo "$out"
		case $out in *" ok=1") ;; *) bad "$p: ${wl[$n]} not ok" ;; esac
	done
	out=$("$emu/tier-vm.sh" restore "$d" vm-ping "$p" ping sha "touch 32" \
		"kv 3 2000" "kv 99 1" ping) || bad "$p: all workloads in one guest"
	echo "$out"
done
# A policy that was never placed fails with a message, not a guest.
"$TIERCTL" rm vm-kv >/dev/null
if "$emu/tier-vm.sh" restore "$d" vm-kv tiered ping 2>"$d/err"; then
	bad "restore of a removed snapshot succeeded"
fi
grep -q "vm-kv" "$d/err" || bad "no error naming the snapshot: $(cat "$d/err")"
[ $fail = 0 ] && echo "PASS"
exit $fail
