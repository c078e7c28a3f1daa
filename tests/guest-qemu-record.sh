#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: guest -- recording a real QEMU VM through tier, and failing closed:
#  1. recording ping twice gives page counts within +-2 % of each other;
#  2. after recording ping, a tiered restore runs ping with <= 5 lazy faults
#     (zero+ro+rw+cold from the adapter's statistics; median of three);
#  3. a pool that is unreachable at restore start: "tierctl restore" exits
#     non-zero with one line naming the pool, QEMU is gone, no answer;
#  4. a pool that dies while the guest runs: the first fault it cannot
#     serve stops QEMU (no answer), the error names the pool.
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

d=$(mktemp -d /tmp/tq-record.XXXXXX)
pool_pid=
vm_pid=
cleanup() {
	[ -n "$pool_pid" ] && kill "$pool_pid" 2>/dev/null
	[ -n "$vm_pid" ] && kill "$vm_pid" 2>/dev/null
	rm -rf "$d"
}
trap cleanup EXIT
export TIER_STORE=$d/store
fail=0
bad() { echo "FAIL: $*"; fail=1; }
T=$TIERCTL

"$emu/tier-vm.sh" snapshot "$d" vm vm-pool || { echo "FAIL: snapshot"; exit 1; }

# 1. Two recordings of ping.
a=$("$emu/tier-vm.sh" record "$d" vm ping a) || bad "record ping (a)"
b=$("$emu/tier-vm.sh" record "$d" vm ping b) || bad "record ping (b)"
a=${a#pages } b=${b#pages }
echo "ping recorded twice: $a and $b pages"
[ "${a:-0}" -gt 100 ] && [ "${b:-0}" -gt 100 ] || bad "implausible page counts '$a' '$b'"
python3 -c "import sys; a, b = $a, $b; sys.exit(abs(a - b) > 0.02 * max(a, b))" ||
	bad "page counts $a and $b differ by more than 2 %"

# 2. Tiered restore of ping after recording ping (both recordings: with two
# traces the default confidence makes every page either touched hot), at
# the default placement: touched zero pages bridged into registered runs
# are installed before resume, so they cost no fault. Pages that no
# recording touched but a restore does come from kernel timers firing at
# another point of a faster or slower run: usually 0-2, a few more on a
# loaded machine; so the median of three restores is what must be <= 5.
"$T" place vm --policy tiered --cxl "cxl=dir:$d/cxl" >/dev/null || bad "place"
all=()
for _ in 1 2 3; do
	out=$("$emu/tier-vm.sh" restore "$d" vm tiered ping) || bad "tiered restore of ping"
	echo "$out"
	all+=("$(sed -n 's/.* lazy=\([0-9]*\) .*/\1/p' <<<"$out")")
done
median=$(printf '%s\n' "${all[@]}" | sort -n | sed -n 2p)
echo "lazy faults of three tiered restores of ping: ${all[*]} (median $median)"
[ -n "$median" ] && [ "$median" -le 5 ] || bad "tiered ping: median '${median}' lazy faults (> 5)"

# A pool server for vm-pool's plan.
"$emu/tier-vm.sh" record "$d" vm-pool ping >/dev/null || bad "record vm-pool"
start_pool() {
	# emptied here, not by the background job's redirection: that runs
	# after the fork, so the loop below could read the last server's line
	: >"$d/pool.out"
	"$T" pool serve --no-auth --listen tcp://127.0.0.1:0 >>"$d/pool.out" 2>&1 &
	pool_pid=$!
	for _ in $(seq 100); do grep -q "listening on" "$d/pool.out" && break; sleep 0.05; done
	url=$(awk '/listening on/ { print $3 }' "$d/pool.out")
	[ -n "$url" ] || { bad "pool server did not start"; exit 1; }
	"$T" place vm-pool --policy tiered --cxl "cxl=dir:$d/cxl" --pool "pool=$url" >/dev/null ||
		bad "place with pool $url"
}
stop_pool() { kill "$pool_pid"; wait "$pool_pid" 2>/dev/null; pool_pid=; }
# Is a QEMU of run directory $1 (its sockets are there) still alive?
qemu_alive() { pgrep -f "qemu-system.*$1/" >/dev/null; }

# 3. Unreachable at restore start.
start_pool
stop_pool
if TIER_VM_KEEP=1 "$emu/tier-vm.sh" restore "$d" vm-pool tiered ping >"$d/out3" 2>"$d/err3"; then
	bad "restore with a dead pool succeeded"
fi
cat "$d/err3"
run=$(ls -d "$d"/run.* | tail -n1)
grep -q "ok=0" "$d/out3" || bad "result line is not ok=0: $(cat "$d/out3")"
[ ! -s "$run/answers" ] || bad "an answer was produced: $(cat "$run/answers")"
grep "^tierctl restore: " "$run/tierctl.err" | grep -q "$url" ||
	bad "tierctl's error does not name the pool $url"
qemu_alive "$run" && bad "QEMU still runs"
rm -rf "$run"

# 4. The pool dies while the guest runs: ping (its pages are prefetched or
# mapped) answers, then the pool goes, then sha needs cold pages.
start_pool
. "$emu/lib.sh"
EMU_VMLINUZ=$(cat "$d/kernel.path") EMU_INITRD=$(cat "$d/initrd.path")
mkdir -p "$d/r4"
emu_vm_args "$d/r4" "$d/placeholder"
"$T" restore vm-pool --policy tiered -- qemu-system-x86_64 "${VM_ARGS[@]}" \
	>"$d/out4" 2>"$d/err4" &
vm_pid=$!
got=$("$emu/serial.py" --timeout 60 "$d/r4/serial.sock" ping) || bad "no ping before the pool died"
[ "$got" = pong ] || bad "ping answered '$got'"
stop_pool
if got=$("$emu/serial.py" --timeout 60 "$d/r4/serial.sock" sha 2>/dev/null); then
	bad "sha answered '$got' with the pool dead"
fi
rc=0
wait "$vm_pid" || rc=$?
vm_pid=
cat "$d/err4"
[ $rc != 0 ] || bad "tierctl restore exited 0 after the pool died"
grep "^tierctl restore: " "$d/err4" | grep -q "$url" ||
	bad "tierctl's error does not name the pool $url"
qemu_alive "$d/r4" && bad "QEMU still runs"

[ $fail = 0 ] && echo "PASS"
exit $fail
