#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The workload VM through tier: snapshot into the store, record a workload,
# restore with a policy from an all-zero placeholder RAM file (so a correct
# answer proves every page came through tier). Used by the guest tests,
# examples/qemu-demo.sh and bench/qemu-bench.sh.
#
# usage:
#   emu/tier-vm.sh snapshot DIR SNAP...
#       boot the workload VM in DIR (emu/vm-snapshot.sh; EMU_SNAPSHOT_SETTLE
#       default 2 s of quiet before the snapshot), snapshot it, import
#       DIR/ram + DIR/vmstate as each SNAP (one image, several names: one
#       snapshot per workload keeps one plan per policy and workload), and
#       make DIR/placeholder, an all-zero sparse file of the RAM's size
#   emu/tier-vm.sh import DIR SNAP...       import DIR's snapshot again
#   emu/tier-vm.sh record DIR SNAP WORKLOAD [TRACE]
#       "tierctl record": restore SNAP from the placeholder in record mode,
#       send WORKLOAD (e.g. "kv 3 2000"), check the answer, save the trace
#       (default name "qemu") at the answer; prints "pages N"
#   emu/tier-vm.sh restore DIR SNAP POLICY WORKLOAD...
#       "tierctl restore --policy POLICY" from the placeholder, the
#       workloads sent in order, each answer checked against emu/expect.py;
#       prints one line of KEY=VALUE: first_ms (QEMU start to the first
#       answer), all_ms (to the last), faults zero/ro/rw/cold, lazy (their
#       sum), anon_kib (local anonymous memory of the guest RAM, smaps, at
#       the last answer), rss_kib (all its resident pages: + CXL-mapped and
#       page-cache pages), cxl_kib (bytes mapped from the CXL tier), ok=1|0
#   emu/tier-vm.sh expect WORKLOAD          the expected answer (cached)
#
# Each record/restore runs in a fresh directory DIR/run.XXXXXX (sockets,
# logs, stats.json), so several may run at once from one snapshot; it is
# removed afterwards unless TIER_VM_KEEP=1. Environment: TIERCTL (default
# "tierctl" on PATH), TIER_STORE (the store), TIER_VM_RESTORE_ARGS (extra
# "tierctl restore" options, word-split, e.g. "--pool pool=tcp://..."),
# TIER_VM_TIMEOUT (seconds per answer, default 120), EMU_* (emu/lib.sh).
# Exit status: 0 all answers right, 1 a wrong/missing answer or tier error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TIERCTL=${TIERCTL:-tierctl}

usage() { sed -n '/^# usage:/,/^# Exit/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

vm_dir() { d=$(cd "$1" && pwd) || { emu_log "no directory $1"; exit 1; }; }

# The expected answer of a workload, computed by emu/expect.py (host
# Python, independent of the guest's program) and cached: sha takes seconds.
expect() {
	local key cache=$EMU_CACHE/expect
	key=$(printf '%s' "$*" | tr -c 'a-zA-Z0-9' _)
	mkdir -p "$cache"
	if [ ! -s "$cache/$key" ]; then
		# shellcheck disable=SC2048,SC2086 # the workload's words are its arguments
		"$emu_dir/expect.py" $* >"$cache/$key.tmp.$$" && mv "$cache/$key.tmp.$$" "$cache/$key"
	fi
	cat "$cache/$key"
}

do_import() {
	local s
	for s in "$@"; do
		"$TIERCTL" rm "$s" >/dev/null 2>&1 || true
		"$TIERCTL" import "$s" "$d/ram" --state "$d/vmstate" >&2
	done
}

# VM_ARGS for a run in a fresh directory $run with the placeholder as RAM.
run_setup() {
	[ -s "$d/vmstate" ] && [ -f "$d/placeholder" ] ||
		{ emu_log "no snapshot in $d (emu/tier-vm.sh snapshot first)"; exit 1; }
	EMU_VMLINUZ=$(cat "$d/kernel.path")
	EMU_INITRD=$(cat "$d/initrd.path")
	run=$(mktemp -d "$d/run.XXXXXX")
	emu_vm_args "$run" "$d/placeholder"
}
run_done() {
	[ "${TIER_VM_KEEP:-}" = 1 ] || rm -rf "$run"
}

# Checks tierctl's answers (file $1) against the workloads $2...
check_answers() {
	local out=$1 i=1 w got ok=1
	shift
	for w in "$@"; do
		got=$(sed -n "${i}p" "$out")
		if [ "$got" != "$(expect "$w")" ]; then
			emu_log "'$w' answered '$got', expected '$(expect "$w")'"
			ok=0
		fi
		i=$((i + 1))
	done
	[ $ok = 1 ]
}

cmd=${1:-}
[ $# -ge 1 ] && shift
case $cmd in
snapshot)
	[ $# -ge 2 ] || usage
	mkdir -p "$1"
	vm_dir "$1"
	shift
	emu_need_qemu
	# Snapshot a quiet guest: each restored run then starts with no
	# leftover kernel work pending, and touches the same pages.
	EMU_SNAPSHOT_SETTLE=${EMU_SNAPSHOT_SETTLE:-2} "$emu_dir/vm-snapshot.sh" "$d" >&2
	rm -f "$d/placeholder"
	truncate -s "$(stat -c %s "$d/ram")" "$d/placeholder"
	do_import "$@"
	;;
import)
	[ $# -ge 2 ] || usage
	vm_dir "$1"
	shift
	do_import "$@"
	;;
record)
	[ $# -ge 3 ] && [ $# -le 4 ] || usage
	vm_dir "$1"
	snap=$2 wl=$3 trace=${4:-qemu}
	run_setup
	rc=0
	"$TIERCTL" record "$snap" --trace "$trace" --workload "$wl" \
		--timeout "${TIER_VM_TIMEOUT:-120}" --stats "$run/stats.json" \
		-- "$EMU_QEMU" "${VM_ARGS[@]}" >"$run/answers" 2>"$run/tierctl.err" || rc=$?
	if [ $rc != 0 ] || ! check_answers "$run/answers" "$wl"; then
		cat "$run/tierctl.err" >&2
		emu_dump_logs "$run"
		run_done
		exit 1
	fi
	"$TIERCTL" trace list "$snap" | awk -v t="$trace" '$1 == t { print "pages " $2 }'
	run_done
	;;
restore)
	[ $# -ge 4 ] || usage
	vm_dir "$1"
	snap=$2 policy=$3
	shift 3
	run_setup
	wargs=()
	for w in "$@"; do wargs+=(--workload "$w"); done
	# shellcheck disable=SC2206 # word splitting of the knob is the point
	extra=(${TIER_VM_RESTORE_ARGS:-})
	rc=0
	"$TIERCTL" restore "$snap" --policy "$policy" "${extra[@]}" "${wargs[@]}" \
		--timeout "${TIER_VM_TIMEOUT:-120}" --stats "$run/stats.json" \
		-- "$EMU_QEMU" "${VM_ARGS[@]}" >"$run/answers" 2>"$run/tierctl.err" || rc=$?
	ok=1
	if [ $rc != 0 ] || ! check_answers "$run/answers" "$@"; then
		ok=0
		cat "$run/tierctl.err" >&2
		emu_dump_logs "$run"
	fi
	first=$(awk '/: answer 1 after/ { print $(NF-3) }' "$run/tierctl.err")
	last=$(awk '/: answer [0-9]+ after/ { v = $(NF-3) } END { print v }' "$run/tierctl.err")
	python3 - "$run/stats.json" "$snap" "$policy" "${first:-0}" "${last:-0}" "$ok" <<'EOF'
import json, sys
path, snap, policy, first, last, ok = sys.argv[1:]
try:
    s = json.load(open(path))
except (OSError, ValueError):
    s = {"faults": {}, "anon_rss_bytes": 0, "rss_bytes": 0, "cxl_mapped_bytes": 0}
f = s["faults"]
z, ro, rw, cold = (f.get(k, 0) for k in ("zero", "ro", "rw", "cold"))
print("snap=%s policy=%s first_ms=%.0f all_ms=%.0f zero=%d ro=%d rw=%d cold=%d "
      "lazy=%d anon_kib=%d rss_kib=%d cxl_kib=%d ok=%s" % (
          snap, policy, float(first), float(last), z, ro, rw, cold,
          z + ro + rw + cold, s["anon_rss_bytes"] >> 10, s.get("rss_bytes", 0) >> 10,
          s["cxl_mapped_bytes"] >> 10, ok))
EOF
	run_done
	[ $ok = 1 ]
	;;
expect)
	[ $# -ge 1 ] || usage
	expect "$@"
	;;
*)
	usage
	;;
esac
