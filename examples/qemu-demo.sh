#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A real VM restored through tier, end to end: fetch the Debian kernel (emu/),
# build, boot the workload VM in QEMU (TCG) with its RAM in a file, snapshot
# it over QMP (device state with x-ignore-shared) into the store, record each
# workload through the LD_PRELOAD adapter, place every policy, restore with
# each policy from an all-zero placeholder RAM file (a right answer proves
# every page came through tier) and print one table row per policy and
# workload:
#   start->answer  QEMU start to the workload's answer (ms)
#   faults         userfaultfd faults served after start, by class
#   anon MiB       local anonymous memory of the guest RAM at the answer
#                  (smaps "Anonymous:" over the RAM range)
#   CXL MiB        bytes of guest RAM mapped from the CXL tier
#   RSS MiB        all resident pages of the guest RAM: anon + CXL-mapped +
#                  page cache of an image mapped from local storage
#                  (vanilla, faasnap: shared between guests, but local DRAM)
#   ok             the answer equals emu/expect.py's (computed on the host)
#
#   examples/qemu-demo.sh [BUILDDIR]        (default: build; needs root)
# Environment: QEMU_DEMO_DIR (work directory, default /tmp/tier-qemu-demo,
# kept for inspection), QEMU_DEMO_WORKLOADS (";"-separated, default
# "ping;sha;kv 3 2000;touch 32"), QEMU_DEMO_POLICIES.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
emu=$src/emu
work=${QEMU_DEMO_DIR:-/tmp/tier-qemu-demo}
read -r -a policies <<<"${QEMU_DEMO_POLICIES:-tiered vanilla reap faasnap aquifer eager}"
IFS=';' read -r -a workloads <<<"${QEMU_DEMO_WORKLOADS:-ping;sha;kv 3 2000;touch 32}"

[ "$(id -u)" = 0 ] || { echo "qemu-demo: needs root (userfaultfd)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "qemu-demo: qemu-system-x86_64 missing (.ci/install-deps)" >&2; exit 1; }

echo "== fetch the Debian kernel (emu/fetch-kernel.sh)"
"$emu/fetch-kernel.sh" >/dev/null
echo "== build ($build)"
[ -f "$build/build.ninja" ] || meson setup "$build" "$src" >/dev/null
ninja -C "$build" >/dev/null
export TIERCTL=$build/tierctl/tierctl
rm -rf "$work"
mkdir -p "$work"
export TIER_STORE=$work/store
# The CXL tier: a tmpfs directory (byte-addressable, mapped MAP_PRIVATE).
cxl="cxl=dir:/dev/shm/tier-qemu-demo-cxl"
rm -rf /dev/shm/tier-qemu-demo-cxl

# One snapshot name per workload: each gets its own plans (import is a
# sparse copy, ~0.3 s).
slug() { tr -c 'a-zA-Z0-9\n' - <<<"$1"; }
snaps=()
for w in "${workloads[@]}"; do snaps+=("vm-$(slug "$w")"); done

echo "== boot the workload VM, snapshot over QMP, tierctl import"
"$emu/tier-vm.sh" snapshot "$work" "${snaps[@]}" 2>&1 | grep -E "boot_ms|snapshot_ms|vmstate|imported" | head -4
echo "== tierctl record (adapter in record mode), tierctl place --policy all"
for w in "${workloads[@]}"; do
	s=vm-$(slug "$w")
	echo "   $w: $("$emu/tier-vm.sh" record "$work" "$s" "$w")"
	"$TIERCTL" place "$s" --policy all --cxl "$cxl" >/dev/null
done
"$TIERCTL" show "vm-$(slug "${workloads[0]}")" --policy tiered | head -12

echo "== tierctl restore, every policy, every workload (placeholder RAM file)"
: >"$work/results"
fail=0
for p in "${policies[@]}"; do
	for w in "${workloads[@]}"; do
		s=vm-$(slug "$w")
		line=$("$emu/tier-vm.sh" restore "$work" "$s" "$p" "$w") || fail=1
		echo "workload=$(slug "$w") $line" >>"$work/results"
	done
done
python3 - "$work/results" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    rows.append(dict(kv.split("=", 1) for kv in line.split()))
hdr = ("policy", "workload", "start->answer ms", "faults zero/ro/rw/cold",
       "anon MiB", "CXL MiB", "RSS MiB", "ok")
out = [hdr]
for r in rows:
    out.append((r["policy"], r["workload"], r["first_ms"],
                "%s/%s/%s/%s" % (r["zero"], r["ro"], r["rw"], r["cold"]),
                "%.1f" % (int(r["anon_kib"]) / 1024),
                "%.1f" % (int(r["cxl_kib"]) / 1024),
                "%.1f" % (int(r["rss_kib"]) / 1024),
                "yes" if r["ok"] == "1" else "NO"))
w = [max(len(str(c[i])) for c in out) for i in range(len(hdr))]
for i, c in enumerate(out):
    print("  ".join(str(x).rjust(w[j]) if j >= 2 else str(x).ljust(w[j])
                    for j, x in enumerate(c)))
    if i == 0:
        print("  ".join("-" * x for x in w))
PY
echo "(work directory: $work; store: $TIER_STORE)"
[ $fail = 0 ] || { echo "qemu-demo: some answers were wrong (see above)" >&2; exit 1; }
