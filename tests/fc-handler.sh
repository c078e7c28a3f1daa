#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: root -- "tierctl fc-handler" serving tests/fc-harness, a program
# that does to it what Firecracker does (see fc-harness.c for the source
# it follows), on a snapshot imported into a temporary store. Every page
# a harness thread reads is compared with the image. One group per run:
#   serve    each release's JSON, a gap and descending addresses, 4 vCPU
#            threads, MADV_DONTNEED while faults are in flight, three VMMs
#            at once, record mode, --once, SIGTERM
#   refuse   bad JSON, wrong sizes, two fds, no fd, not a uffd: one line
#            each, the connection closed, the others still served
#   hugetlb  2 MiB hugetlb regions (77 without enough huge pages)
#   fail     a killed handler (the harness's watchdog), stale and live
#            sockets, the fail policies on a corrupt page, the second stop,
#            a TCP pool killed under a VMM (fails closed; with
#            --pool-fallback, served from the durable copy)
#   usage    (suite unit) --help, usage errors exit 2, failures 1
set -uo pipefail

group=${1:?usage: fc-handler.sh serve|refuse|hugetlb|fail|usage}
T=${TIERCTL:?set TIERCTL to the tierctl binary}
H=${FC_HARNESS:?set FC_HARNESS to the fc-harness binary}

if [ "$group" = usage ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	export TIER_STORE=$tmp/store
	fail=0
	# usage RC PATTERN ARGS...: exit RC, and (for 1 and 2) stderr's first
	# line matches PATTERN and stdout is empty
	usage() {
		local want=$1 pat=$2 rc
		shift 2
		"$T" "$@" >"$tmp/out" 2>"$tmp/err"
		rc=$?
		if [ "$rc" != "$want" ]; then
			echo "FAIL: tierctl $* exited $rc, want $want: $(cat "$tmp/err")" >&2
			fail=1
		elif [ "$want" != 0 ] && { [ -s "$tmp/out" ] || ! head -1 "$tmp/err" | grep -Eq -- "$pat"; }; then
			echo "FAIL: tierctl $*: stderr '$(head -1 "$tmp/err")' does not match '$pat' (stdout: $(cat "$tmp/out"))" >&2
			fail=1
		fi
	}
	usage 0 '' fc-handler --help
	grep -q '^usage: tierctl fc-handler' "$tmp/out" || { echo "FAIL: --help: $(cat "$tmp/out")"; fail=1; }
	usage 0 '' help fc-handler
	grep -q -- '--on-fail ACTION' "$tmp/out" || { echo "FAIL: help fc-handler"; fail=1; }
	usage 0 '' help
	grep -q '^   fc-handler ' "$tmp/out" || { echo "FAIL: tierctl help does not list fc-handler"; fail=1; }
	usage 2 '^usage: tierctl fc-handler' fc-handler
	usage 2 '^tierctl fc-handler: --socket PATH is required$' fc-handler vm
	usage 2 '^usage:' fc-handler vm other --socket "$tmp/s"
	usage 2 "^tierctl fc-handler: unrecognized option '--bogus'" fc-handler --bogus vm --socket "$tmp/s"
	usage 2 '^tierctl fc-handler: .*"maim".*kill, stop or none' fc-handler vm --socket "$tmp/s" --on-fail maim
	usage 2 '^tierctl fc-handler: .*nonsense' fc-handler vm --socket "$tmp/s" --policy nonsense
	usage 2 "^tierctl fc-handler: bad prefetch '0': want 1..512 pages" fc-handler vm --socket "$tmp/s" --prefetch 0
	usage 2 "^tierctl fc-handler: bad prefetch '513'" fc-handler vm --socket "$tmp/s" --prefetch 513
	usage 2 '^tierctl fc-handler: .*nope' fc-handler vm --socket "$tmp/s" --cxl nope:x
	usage 2 '^tierctl fc-handler: .*cxl=dir' fc-handler vm --socket "$tmp/s" --pool cxl=dir:/x
	usage 1 '^tierctl fc-handler: .*no-such' fc-handler no-such --socket "$tmp/s"
	[ "$(wc -l <"$tmp/err")" = 1 ] || { echo "FAIL: unknown snapshot: not one line: $(cat "$tmp/err")"; fail=1; }
	[ -e "$tmp/s" ] && { echo "FAIL: a failed start left a socket"; fail=1; }
	# no plan for the policy: said at the start, not at a VM's first fault
	head -c 65536 /dev/urandom >"$tmp/img"
	"$T" import --quiet np "$tmp/img" || { echo "FAIL: import np"; fail=1; }
	usage 1 '^tierctl fc-handler: snapshot np: no plan for policy reap' fc-handler np --socket "$tmp/s" --policy reap
	[ -e "$tmp/s" ] && { echo "FAIL: a start with no plan left a socket"; fail=1; }
	exit $fail
fi

[ "$(id -u)" = 0 ] || { echo "skip: needs root (userfaultfd, the root suite)"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }

tmp=$(mktemp -d)
kids=()
huge_add=
cleanup() {
	local p
	for p in "${kids[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	if [ -n "$huge_add" ]; then
		n=$(($(cat /proc/sys/vm/nr_hugepages) - huge_add))
		echo $((n < 0 ? 0 : n)) >/proc/sys/vm/nr_hugepages
	fi
	# FC_KEEP=1: leave the handlers' logs for a look
	if [ -n "${FC_KEEP:-}" ]; then
		echo "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
export TIER_STORE=$tmp/store
fail=0

bad() {
	echo "FAIL: $*" >&2
	fail=1
}

# A 16 MiB image: page p is zero when p % 7 == 0 or 1000 <= p < 1100,
# else random bytes.
python3 - "$tmp/img" <<'EOF'
import random, sys
r = random.Random(10)
with open(sys.argv[1], "wb") as f:
    for p in range(4096):
        f.write(bytes(4096) if p % 7 == 0 or 1000 <= p < 1100 else r.randbytes(4096))
EOF
# every page in a shuffled order, each read, written or read then written
python3 - "$tmp/shuffled.trace" "$tmp/rec.trace" <<'EOF'
import random, sys
r = random.Random(11)
pages = list(range(4096))
r.shuffle(pages)
with open(sys.argv[1], "w") as f:
    for p in pages:
        f.write(f"{hex(p * 4096)} {r.choice(['r', 'w', 'rw'])}\n")
# for record mode: 30 pages, first touched by a write (w) or a read (r, rw)
with open(sys.argv[2], "w") as f:
    for p in range(100, 130):
        f.write(f"{hex(p * 4096)} {['r', 'w', 'rw'][p % 3]}\n")
EOF
"$T" import --quiet vm "$tmp/img" || { echo "error: import failed"; exit 99; }
# the trained run: every fifth page, read, written or read then written;
# a plan of every policy from it (the CXL tier a tmpfs directory, the
# pool the store's file pool)
python3 - "$tmp/hot.trace" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for p in range(1, 4096, 5):
        f.write(f"{hex(p * 4096)} {['r', 'r', 'w', 'rw'][p % 4]}\n")
EOF
"$T" trace import --name trained vm "$tmp/hot.trace" >/dev/null || { echo "error: trace import failed"; exit 99; }
POLICIES="tiered vanilla reap faasnap aquifer eager"
NONZERO=$(python3 -c 'print(sum(1 for p in range(4096) if not (p % 7 == 0 or 1000 <= p < 1100)))')
HOT=$(python3 -c 'print(sum(1 for p in range(1, 4096, 5) if not (p % 7 == 0 or 1000 <= p < 1100)))')
for p in $POLICIES; do
	"$T" place vm --policy "$p" --trace trained --cxl "cxl=dir:$tmp/cxl" >/dev/null ||
		{ echo "error: place $p failed"; exit 99; }
done

hpid=
hsnap=vm
# start_handler NAME ARGS...: a handler of snapshot $hsnap on $tmp/NAME.sock,
# its output in $tmp/NAME.out and .err; waits for "listening on"
start_handler() {
	local name=$1 i
	shift
	# an earlier handler's "listening on" must not answer for this one
	# (the background shell may not have truncated the file yet)
	rm -f "$tmp/$name.out" "$tmp/$name.err"
	"$T" fc-handler "$hsnap" --socket "$tmp/$name.sock" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	hpid=$!
	kids+=("$hpid")
	# bounded generously: a loaded 2-core machine took over 5 s
	for i in $(seq 600); do
		grep -q "^listening on $tmp/$name.sock\$" "$tmp/$name.out" 2>/dev/null && return 0
		kill -0 "$hpid" 2>/dev/null || break
		sleep 0.05
	done
	bad "fc-handler $name did not start: $(cat "$tmp/$name.out" "$tmp/$name.err")"
	return 1
}

# harness WANT_RC WHAT SOCK ARGS...: runs fc-harness, output in $tmp/h.*
harness() {
	local want=$1 what=$2 sock=$3 rc
	shift 3
	"$H" --socket "$tmp/$sock.sock" --image "$tmp/img" --timeout 20 "$@" \
		>"$tmp/h.out" 2>"$tmp/h.err"
	rc=$?
	[ "$rc" = "$want" ] || bad "$what: harness exited $rc, want $want: $(cat "$tmp/h.out" "$tmp/h.err")"
	return 0
}

# wait_for FILE PATTERN [SECS]: until a line of FILE matches
wait_for() {
	local i
	for i in $(seq $((${3:-20} * 20))); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# prefetched FILE: the pages the last hang-up line says were prefetched
prefetched() {
	grep 'hung up after' "$1" | tail -1 | sed -n 's/.*(\([0-9]*\) pages prefetched.*/\1/p'
}

# stop_handler: SIGTERM, and it must exit 0 with its socket gone
stop_handler() {
	local name=$1 rc
	kill -TERM "$hpid"
	wait "$hpid"
	rc=$?
	[ "$rc" = 0 ] || bad "fc-handler $name: SIGTERM: exit $rc, want 0: $(cat "$tmp/$name.err")"
	[ -e "$tmp/$name.sock" ] && bad "fc-handler $name: socket left after SIGTERM"
	return 0
}

serve() {
	local v p1 p2 p3 r1 r2 r3 ha n zmap a_copy a_zc

	start_handler a || return
	for v in 1.1 1.7 1.12; do
		harness 0 "v$v" a --version "$v" --threads 4
		grep -q "4096 pages touched, 4096 compared" "$tmp/h.out" || bad "v$v: $(cat "$tmp/h.out")"
	done
	grep -Eq '^pid [0-9]+ \(uid 0\): 1 region, 16 MiB, 4 KiB pages, Firecracker v1\.1-v1\.6' "$tmp/a.out" ||
		bad "no v1.1 connection line: $(cat "$tmp/a.out")"
	grep -q 'Firecracker v1.7-v1.11 (page_size_kib)' "$tmp/a.out" || bad "no v1.7 connection line"
	grep -q 'Firecracker v1.12+ (page_size, page_size_kib)' "$tmp/a.out" || bad "no v1.12 connection line"
	[ "$(grep -c 'hung up after' "$tmp/a.out")" = 3 ] || bad "not 3 hang-ups: $(cat "$tmp/a.out")"
	# tiered: the trained run's non-zero pages were in before the first
	# fault, the rest came on demand
	n=$(prefetched "$tmp/a.out")
	[ "${n:-0}" -ge "$HOT" ] ||
		bad "tiered: not the $HOT hot pages prefetched: $(grep 'hung up' "$tmp/a.out")"

	# the zero-copy extension: the VMM maps the hot read-only runs from
	# the CXL object itself; it writes them too (the shuffled trace's w
	# and rw), copy-on-write, so the next VMM still reads the image
	harness 0 "copy, for the anon figure" a --threads 2
	a_copy=$(sed -n 's/^fc-harness: anon \([0-9]*\) KiB$/\1/p' "$tmp/h.out")
	harness 0 "zero-copy" a --zero-copy --threads 4 --trace "$tmp/shuffled.trace"
	zmap=$(sed -n 's/^fc-harness: zero-copy: [0-9]* runs, \([0-9]*\) pages mapped$/\1/p' "$tmp/h.out")
	[ "${zmap:-0}" -gt 0 ] && grep -q "4096 pages touched, .* 0 wrong" "$tmp/h.out" ||
		bad "zero-copy: $(cat "$tmp/h.out" "$tmp/h.err")"
	wait_for "$tmp/a.out" "hung up after .* $zmap mapped zero-copy" ||
		bad "zero-copy: the handler did not count $zmap mapped: $(grep 'hung up' "$tmp/a.out" | tail -1)"
	harness 0 "zero-copy, reads only" a --zero-copy --threads 2
	a_zc=$(sed -n 's/^fc-harness: anon \([0-9]*\) KiB$/\1/p' "$tmp/h.out")
	[ "${a_zc:-0}" -gt 0 ] && [ $((a_copy - a_zc)) -ge $((zmap * 4 * 9 / 10)) ] ||
		bad "zero-copy: anon $a_zc KiB, copying $a_copy KiB: not ~$((zmap * 4)) KiB less"
	harness 0 "after zero-copy writers" a --threads 2
	grep -q "4096 pages touched, 4096 compared, .* 0 wrong" "$tmp/h.out" || bad "after zero-copy: $(cat "$tmp/h.out")"

	# every policy through the same handler, each byte compared
	ha=$hpid
	for p in $POLICIES; do
		[ "$p" = tiered ] && continue
		start_handler "p-$p" --policy "$p" || continue
		harness 0 "policy $p" "p-$p" --threads 4 --trace "$tmp/shuffled.trace"
		grep -q "4096 pages touched, .* 0 wrong" "$tmp/h.out" || bad "policy $p: $(cat "$tmp/h.out")"
		stop_handler "p-$p"
		[ -s "$tmp/p-$p.err" ] && bad "policy $p: $(cat "$tmp/p-$p.err")"
	done
	hpid=$ha
	start_handler zv --policy vanilla || return
	harness 0 "zero-copy, nothing to map" zv --zero-copy
	grep -q "zero-copy: 0 runs, 0 pages mapped" "$tmp/h.out" && grep -q " 0 wrong" "$tmp/h.out" ||
		bad "zero-copy on vanilla: $(cat "$tmp/h.out" "$tmp/h.err")"
	stop_handler zv
	hpid=$ha
	grep -Eq "hung up after [0-9]+ faults \(0 pages prefetched, 4096 lazy" "$tmp/p-vanilla.out" ||
		bad "vanilla (all on demand): $(grep 'hung up' "$tmp/p-vanilla.out")"
	n=$(prefetched "$tmp/p-eager.out")
	[ "${n:-0}" -ge "$NONZERO" ] ||
		bad "eager: not every non-zero page prefetched: $(grep 'hung up' "$tmp/p-eager.out")"
	# eager: every non-zero page was prefetched, so every fault was a
	# zero page's; and the time the prefetch took
	grep -Eq "hung up after ([0-9]+) faults .*\), \1 zero-page faults, prefetch [0-9]+\.[0-9] us, faults served in [0-9.]+ us$" "$tmp/p-eager.out" ||
		bad "eager: not every fault a zero page's, or no prefetch time: $(grep 'hung up' "$tmp/p-eager.out")"
	# --prefetch 1: a fault installs its own page only (vanilla, every
	# page read in order: a window of 8 would take 512 faults)
	start_handler w1 --policy vanilla --prefetch 1 && {
		harness 0 "--prefetch 1" w1
		wait_for "$tmp/w1.out" "hung up after 4096 faults \(0 pages prefetched, 4096 lazy, .*\), 671 zero-page faults," ||
			bad "--prefetch 1: $(grep 'hung up' "$tmp/w1.out")"
		stop_handler w1
		hpid=$ha
	}

	# Firecracker's layout with an MMIO gap: two regions, contiguous in
	# the file, the first at the higher address; and three, no gap
	harness 0 "gap, descending" a --region 6M@0 --region 10M@6M --gap 2M --descending --threads 4
	grep -q "2 regions descending with a gap, 4 threads, 4096 pages touched" "$tmp/h.out" ||
		bad "gap: $(cat "$tmp/h.out")"
	harness 0 "three regions" a --version 1.1 --region 4M@0 --region 4M@4M --region 8M@8M --descending --trace "$tmp/shuffled.trace" --threads 3
	grep -q '3 regions, 16 MiB' "$tmp/a.out" || bad "no 3-region connection line"

	# the balloon discards 1 MiB while 4 threads fault in shuffled order;
	# then, across the two regions' boundary
	harness 0 "dontneed" a --trace "$tmp/shuffled.trace" --threads 4 --dontneed 0x800000+0x100000
	grep -q "4096 pages touched" "$tmp/h.out" || bad "dontneed: $(cat "$tmp/h.out")"
	wait_for "$tmp/a.out" "hung up after .*; removed ranges: 1\)" ||
		bad "dontneed: no removed range in the hang-up line: $(tail -1 "$tmp/a.out")"
	harness 0 "dontneed across regions" a --region 8M@0 --region 8M@8M --descending --threads 4 --dontneed 0x780000+0x100000
	wait_for "$tmp/a.out" "hung up after .*; removed ranges: 2\)" ||
		bad "dontneed across regions: $(tail -1 "$tmp/a.out")"

	# three VMMs at once, each with 4 vCPUs
	"$H" --socket "$tmp/a.sock" --image "$tmp/img" --timeout 30 --version 1.1 --threads 4 --trace "$tmp/shuffled.trace" >"$tmp/h1" 2>&1 &
	p1=$!
	"$H" --socket "$tmp/a.sock" --image "$tmp/img" --timeout 30 --version 1.7 --threads 4 --region 8M@0 --region 8M@8M --descending >"$tmp/h2" 2>&1 &
	p2=$!
	"$H" --socket "$tmp/a.sock" --image "$tmp/img" --timeout 30 --version 1.12 --threads 4 --dontneed 0x100000+0x80000 >"$tmp/h3" 2>&1 &
	p3=$!
	kids+=("$p1" "$p2" "$p3")
	wait "$p1"; r1=$?
	wait "$p2"; r2=$?
	wait "$p3"; r3=$?
	[ "$r1$r2$r3" = 000 ] || bad "three at once: exits $r1 $r2 $r3: $(cat "$tmp/h1" "$tmp/h2" "$tmp/h3")"
	stop_handler a
	[ -s "$tmp/a.err" ] && bad "errors while serving: $(cat "$tmp/a.err")"

	# record: the first VMM's touches become trace "rec", with kinds
	start_handler r --record rec --once || return
	harness 0 "record" r --trace "$tmp/rec.trace" --threads 2
	wait "$hpid" || bad "--once after a good run: exit $?: $(cat "$tmp/r.err")"
	grep -q "saved trace rec (30 pages)" "$tmp/r.out" || bad "record: $(cat "$tmp/r.out" "$tmp/r.err")"
	[ -e "$tmp/r.sock" ] && bad "--once left its socket"
	"$T" trace export vm rec >"$tmp/rec.out" || bad "trace export rec"
	# how close the recorded kinds come to what the vCPUs did: every
	# page of the image, each read, written or read then written, by 4
	# threads at once
	start_handler ra --record recall --once || return
	harness 0 "record all" ra --trace "$tmp/shuffled.trace" --threads 4
	wait "$hpid" || bad "record all: exit $?: $(cat "$tmp/ra.err")"
	"$T" trace export vm recall >"$tmp/recall.out" || bad "trace export recall"
	python3 - "$tmp/shuffled.trace" "$tmp/recall.out" <<'EOF' || fail=1
import sys
want = dict((int(o, 16), k) for o, k in (l.split() for l in open(sys.argv[1])))
got = {}
for l in open(sys.argv[2]):
    if l.strip() and not l.startswith("#"):
        o, k = l.split()[:2]
        got[int(o, 0)] = k
exact = sum(got.get(o) == k for o, k in want.items())
print(f"record: {exact} of {len(want)} pages with the exact kind "
      f"({sum(k == 'rw' for k in want.values())} read then written)")
if exact != len(want) or len(got) != len(want):
    sys.exit(f"FAIL: record all: {exact} of {len(want)} exact, {len(got)} recorded")
EOF
	# the Nth VM's trace is NAME-N
	start_handler m --record multi || return
	harness 0 "record 1" m --trace "$tmp/rec.trace"
	harness 0 "record 2" m --trace "$tmp/rec.trace" --version 1.1
	wait_for "$tmp/m.out" "saved trace multi-2 \(30 pages\)" || bad "record multi: $(cat "$tmp/m.out" "$tmp/m.err")"
	stop_handler m
	"$T" trace list vm >"$tmp/list.out"
	grep -q "^multi " "$tmp/list.out" && grep -q "^multi-2 " "$tmp/list.out" ||
		bad "trace list: no multi and multi-2: $(cat "$tmp/list.out")"
	python3 - "$tmp/rec.trace" "$tmp/rec.out" <<'EOF' || fail=1
import sys
want = {}
for l in open(sys.argv[1]):
    off, kind = l.split()
    want[int(off, 16)] = kind	# exact: write-protect was added
got = {}
for l in open(sys.argv[2]):
    if l.startswith("#") or not l.strip():
        continue
    off, kind = l.split()[:2]
    got[int(off, 0)] = kind
if got != want:
    sys.exit(f"FAIL: record: got {sorted(got.items())[:8]}..., want {sorted(want.items())[:8]}...")
EOF
}

# refused HOW PATTERN ARGS...: the harness's handshake is refused with one
# line on the handler's stderr matching PATTERN, and the connection closed
refused() {
	local what=$1 pat=$2 n0 n1
	shift 2
	n0=$(wc -l <"$tmp/b.err")
	harness 0 "$what" b --expect-refused "$@"
	grep -q "refused (the handler closed the connection)" "$tmp/h.out" ||
		bad "$what: $(cat "$tmp/h.out" "$tmp/h.err")"
	wait_for "$tmp/b.err" "$pat" 2
	n1=$(wc -l <"$tmp/b.err")
	if [ "$n1" != $((n0 + 1)) ]; then
		bad "$what: $((n1 - n0)) new lines on stderr, want 1: $(tail -n +$((n0 + 1)) "$tmp/b.err")"
	elif ! tail -1 "$tmp/b.err" | grep -Eq -- "^tierctl fc-handler: pid [0-9]+ \(uid 0\): refused: .*$pat"; then
		bad "$what: stderr '$(tail -1 "$tmp/b.err")' does not match '$pat'"
	fi
}

refuse() {
	local slow

	start_handler b || return
	# a handshake that never completes holds its own connection only
	"$H" --socket "$tmp/b.sock" --image "$tmp/img" --timeout 20 --expect-refused \
		--json '[{"base_host_virt_addr":4096,"size":' >"$tmp/slow" 2>&1 &
	slow=$!
	kids+=("$slow")
	harness 0 "served beside a pending handshake" b --threads 2
	wait "$slow" || bad "unfinished handshake: $(cat "$tmp/slow")"
	grep -q 'refused: no whole handshake within 5000 ms (36 bytes and the fd)' "$tmp/b.err" ||
		bad "unfinished handshake: $(cat "$tmp/b.err")"

	refused "not JSON" "regions JSON: expected '\[' \(an array of regions\), found 'n' \(byte 0\)" --json 'not json'
	refused "empty array" "regions JSON: no regions" --json '[]'
	refused "negative size" 'regions JSON: region 0: "size": negative' \
		--json '[{"base_host_virt_addr":4096,"size":-16777216,"offset":0}]'
	refused "duplicate field" 'region 1: "offset" given twice' \
		--json '[{"base_host_virt_addr":4096,"size":8388608,"offset":0},{"base_host_virt_addr":8392704,"offset":8388608,"size":8388608,"offset":0}]'
	refused "number too large" 'region 0: "base_host_virt_addr": larger than 2\^64 - 1' \
		--json '[{"base_host_virt_addr":18446744073709551616,"size":16777216,"offset":0}]'
	refused "trailing bytes" "regions JSON: 'x' after the array" \
		--json '[{"base_host_virt_addr":4096,"size":16777216,"offset":0}]x'
	refused "page_size_kib in KiB" "region 0: page size 4: want 4096 or 2097152 bytes \(page_size_kib is in bytes despite its name\)" \
		--json '[{"base_host_virt_addr":4096,"size":16777216,"offset":0,"page_size_kib":4}]'
	refused "page sizes disagree" "region 0: page_size 4096 and page_size_kib 2097152 disagree" \
		--json '[{"base_host_virt_addr":4096,"size":16777216,"offset":0,"page_size":4096,"page_size_kib":2097152}]'
	refused "too small" "regions total 0x800000 bytes, snapshot vm has 0x1000000" --region 8M@0
	refused "too large" "region 1: offset 0x800000 \+ size 0xc00000 runs past the end of snapshot vm" \
		--region 8M@0 --region 12M@8M
	refused "overlap" "regions 0 and 1 overlap in the memory file" --region 8M@0 --region 8M@4M
	refused "misaligned" "region 0: offset 0x64 is not a multiple of its page size \(4 KiB\)" \
		--json '[{"base_host_virt_addr":4096,"size":16777216,"offset":100}]'
	refused "two fds" "2 fds with the handshake, want one \(the uffd\)" --fds 2
	refused "no fd" "no uffd with the handshake \([0-9]+ bytes of JSON, no SCM_RIGHTS fd\)" --fds 0
	refused "not a uffd" 'the fd sent is not a userfaultfd but "pipe:\[' --bad-fd

	# and it still serves
	harness 0 "after the refusals" b --threads 4 --version 1.7
	stop_handler b
}

hugetlb() {
	local need=24 free p1 p2 p3 r1 r2 r3

	free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
	if [ "${free:-0}" -lt "$need" ]; then
		# add what is missing, and take only that back at the end:
		# other tests may change the pool at the same time
		huge_add=$((need - ${free:-0}))
		echo $(($(cat /proc/sys/vm/nr_hugepages) + huge_add)) >/proc/sys/vm/nr_hugepages 2>/dev/null
		free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
		if [ "${free:-0}" -lt "$need" ]; then
			echo "skip: $free free 2 MiB huge pages, $need needed (vm.nr_hugepages)"
			exit 77
		fi
	fi

	start_handler c || return
	harness 0 "hugetlb v1.12" c --page-size 2m --threads 4
	grep -q "4096 pages touched, 4096 compared" "$tmp/h.out" || bad "hugetlb: $(cat "$tmp/h.out")"
	grep -q '1 region, 16 MiB, 2 MiB pages, Firecracker v1.12+' "$tmp/c.out" || bad "hugetlb: $(cat "$tmp/c.out")"
	harness 0 "hugetlb v1.7, gap, descending" c --version 1.7 --page-size 2m --region 6M@0 --region 10M@6M --gap 4M --descending --threads 4 --trace "$tmp/shuffled.trace"
	harness 0 "hugetlb dontneed" c --page-size 2m --threads 4 --trace "$tmp/shuffled.trace" --dontneed 0x800000+0x400000
	wait_for "$tmp/c.out" "hung up after .*; removed ranges: 1\)" || bad "hugetlb dontneed: $(tail -1 "$tmp/c.out")"
	# a huge page is served whole: 8 copies for 4096 touched 4 KiB pages
	# tiered: the huge pages holding hot pages were in before the first
	# fault (here all 8: the trained run touches every fifth page)
	n=$(prefetched "$tmp/c.out")
	[ "${n:-0}" = 4096 ] || bad "hugetlb tiered: $(grep 'hung up' "$tmp/c.out" | tail -1)"
	# all on demand, a huge page served whole: 8 faults for 4096 pages
	local hc=$hpid
	start_handler cv --policy vanilla || return
	harness 0 "hugetlb, copies" cv --page-size 2m --threads 1
	wait_for "$tmp/cv.out" "hung up after 8 faults \(0 pages prefetched, 4096 lazy" ||
		bad "hugetlb: not 8 whole huge pages: $(tail -1 "$tmp/cv.out")"
	stop_handler cv
	hpid=$hc
	# three VMMs at once
	"$H" --socket "$tmp/c.sock" --image "$tmp/img" --timeout 30 --page-size 2m --threads 4 >"$tmp/h1" 2>&1 &
	p1=$!
	"$H" --socket "$tmp/c.sock" --image "$tmp/img" --timeout 30 --page-size 2m --version 1.7 --region 8M@0 --region 8M@8M --descending >"$tmp/h2" 2>&1 &
	p2=$!
	"$H" --socket "$tmp/c.sock" --image "$tmp/img" --timeout 30 --page-size 2m --threads 2 --dontneed 0x200000+0x200000 >"$tmp/h3" 2>&1 &
	p3=$!
	kids+=("$p1" "$p2" "$p3")
	wait "$p1"; r1=$?
	wait "$p2"; r2=$?
	wait "$p3"; r3=$?
	[ "$r1$r2$r3" = 000 ] || bad "hugetlb, three at once: exits $r1 $r2 $r3: $(cat "$tmp/h1" "$tmp/h2" "$tmp/h3")"
	stop_handler c
	[ -s "$tmp/c.err" ] && bad "hugetlb: errors while serving: $(cat "$tmp/c.err")"
}

# policy ACTION: the harness on the corrupt snapshot "bad"
policy_case() {
	local action=$1 hp state i
	hsnap=bad start_handler "p$action" --on-fail "$action" --policy vanilla || return
	"$H" --socket "$tmp/p$action.sock" --image "$tmp/img" --timeout 5 >"$tmp/h.out" 2>"$tmp/h.err" &
	hp=$!
	kids+=("$hp")
	wait_for "$tmp/p$action.err" "snapshot bad: pid $hp: page 5 \(offset 0x5000, region 0\): (snapshot bad: )?page 5 from the image: checksum mismatch; " ||
		bad "$action: no fail line naming the snapshot, pid, page and reason: $(cat "$tmp/p$action.err")"
	[ "$(wc -l <"$tmp/p$action.err")" = 1 ] || bad "$action: not one line: $(cat "$tmp/p$action.err")"
	case $action in
	kill)
		wait "$hp" 2>/dev/null
		i=$?
		[ "$i" = 137 ] || bad "kill: harness exit $i, want 137 (SIGKILL)"
		grep -q "killed it (SIGKILL)$" "$tmp/p$action.err" || bad "kill: $(cat "$tmp/p$action.err")"
		;;
	stop)
		for i in $(seq 50); do
			state=$(awk '{print $3}' "/proc/$hp/stat" 2>/dev/null)
			[ "$state" = T ] && break
			sleep 0.05
		done
		[ "$state" = T ] || bad "stop: harness state '$state', want T (stopped)"
		grep -q "stopped it (SIGSTOP)$" "$tmp/p$action.err" || bad "stop: $(cat "$tmp/p$action.err")"
		kill -KILL "$hp"
		wait "$hp" 2>/dev/null
		;;
	none)
		wait "$hp"
		i=$?
		[ "$i" = 3 ] || bad "none: harness exit $i, want 3 (its watchdog: the page never came)"
		grep -q "left running (fail policy none)" "$tmp/p$action.err" || bad "none: $(cat "$tmp/p$action.err")"
		;;
	esac
	# the harness never saw a wrong page: it was stopped first
	grep -q "wrong bytes\|byte +0x" "$tmp/h.err" && bad "$action: the harness read a wrong page: $(cat "$tmp/h.err")"
	kill -TERM "$hpid"
	wait "$hpid"
}

fail_group() {
	local hp rc

	# the handler dies (SIGKILL) with a VMM connected: Firecracker keeps
	# its uffd, so the vCPUs block for good; the harness's watchdog says so
	start_handler d || return
	kill -STOP "$hpid"
	"$H" --socket "$tmp/d.sock" --image "$tmp/img" --timeout 3 --threads 4 >"$tmp/h.out" 2>"$tmp/h.err" &
	hp=$!
	kids+=("$hp")
	sleep 0.3
	kill -KILL "$hpid"
	wait "$hpid" 2>/dev/null
	wait "$hp"
	rc=$?
	[ "$rc" = 3 ] || bad "killed handler: harness exit $rc, want 3 (watchdog)"
	grep -q "timeout: handler dead?" "$tmp/h.err" || bad "killed handler: $(cat "$tmp/h.err")"
	[ -S "$tmp/d.sock" ] || bad "the killed handler's socket is gone"

	# its stale socket is replaced; a live one is refused
	start_handler d || return
	harness 0 "on the replaced socket" d --threads 2
	"$T" fc-handler vm --socket "$tmp/d.sock" >"$tmp/d2.out" 2>"$tmp/d2.err"
	rc=$?
	[ "$rc" = 1 ] || bad "second handler on a live socket: exit $rc, want 1"
	grep -q "^tierctl fc-handler: $tmp/d.sock: a handler is already listening on it$" "$tmp/d2.err" &&
		[ "$(wc -l <"$tmp/d2.err")" = 1 ] || bad "live socket: $(cat "$tmp/d2.err")"
	harness 0 "after the live check" d
	: >"$tmp/file"
	"$T" fc-handler vm --socket "$tmp/file" >/dev/null 2>"$tmp/d2.err"
	[ $? = 1 ] && grep -q "$tmp/file exists and is not a socket" "$tmp/d2.err" ||
		bad "a file at the socket path: $(cat "$tmp/d2.err")"
	[ -f "$tmp/file" ] || bad "the file at the socket path was removed"

	# SIGTERM: the socket goes at once, the connected VMM is served until
	# it hangs up; a second SIGTERM applies the fail policy to it
	"$H" --socket "$tmp/d.sock" --image "$tmp/img" --timeout 20 --trace "$tmp/rec.trace" --hold 2 >"$tmp/h.out" 2>&1 &
	hp=$!
	kids+=("$hp")
	wait_for "$tmp/h.out" "pages touched" || bad "hold: $(cat "$tmp/h.out")"
	kill -TERM "$hpid"
	wait_for "$tmp/d.out" "socket removed; serving the 1 connected VMM until it hangs up" ||
		bad "first SIGTERM: $(cat "$tmp/d.out")"
	[ -e "$tmp/d.sock" ] && bad "first SIGTERM left the socket"
	kill -0 "$hpid" 2>/dev/null || bad "the handler exited with a VMM connected"
	wait "$hp" || bad "the held harness: exit $?"
	wait "$hpid"
	rc=$?
	[ "$rc" = 0 ] || bad "exit after the VMM hung up: $rc, want 0"

	start_handler d || return
	"$H" --socket "$tmp/d.sock" --image "$tmp/img" --timeout 20 --trace "$tmp/rec.trace" --hold 60 >"$tmp/h.out" 2>&1 &
	hp=$!
	kids+=("$hp")
	wait_for "$tmp/h.out" "pages touched" || bad "hold: $(cat "$tmp/h.out")"
	kill -TERM "$hpid"
	wait_for "$tmp/d.out" "socket removed" || bad "first SIGTERM: $(cat "$tmp/d.out")"
	kill -TERM "$hpid"
	wait "$hpid"
	rc=$?
	[ "$rc" = 0 ] || bad "second SIGTERM: exit $rc, want 0"
	wait "$hp" 2>/dev/null
	rc=$?
	[ "$rc" = 137 ] || bad "second SIGTERM: the VMM exited $rc, want 137 (killed)"
	grep -Eq "^tierctl fc-handler: snapshot vm: pid $hp: the handler was stopped; killed it \(SIGKILL\)$" "$tmp/d.err" ||
		bad "second SIGTERM: $(cat "$tmp/d.err")"

	# --once: exits with the connection's result
	start_handler o --once || return
	harness 0 "--once refused" o --expect-refused --fds 0
	wait "$hpid"
	rc=$?
	[ "$rc" = 1 ] || bad "--once after a refusal: exit $rc, want 1"
	[ "$(wc -l <"$tmp/o.err")" = 1 ] && grep -q "refused: no uffd" "$tmp/o.err" ||
		bad "--once after a refusal: $(cat "$tmp/o.err")"

	# the fail policies, on a snapshot whose stored image has page 5 corrupt
	"$T" import --quiet bad "$tmp/img" || { bad "import bad"; return; }
	# vanilla: every page from the image on demand (checked there too)
	"$T" place bad --policy vanilla >/dev/null || { bad "place bad"; return; }
	python3 - "$TIER_STORE/snapshots/bad/image" <<'EOF' || { bad "corrupt bad"; return; }
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(5 * 4096 + 17)
    b = f.read(1)
    f.seek(5 * 4096 + 17)
    f.write(bytes([b[0] ^ 0x40]))
EOF
	policy_case kill
	policy_case stop
	policy_case none

	# a VMM whose table is 4 KiB off: its first page faults outside every
	# region, and it is killed rather than served something
	start_handler s || return
	"$H" --socket "$tmp/s.sock" --image "$tmp/img" --timeout 5 --shift 4096 >"$tmp/h.out" 2>"$tmp/h.err" &
	hp=$!
	kids+=("$hp")
	wait "$hp" 2>/dev/null
	rc=$?
	[ "$rc" = 137 ] || bad "outside every region: harness exit $rc, want 137"
	wait_for "$tmp/s.err" "^tierctl fc-handler: snapshot vm: pid $hp: address 0x[0-9a-f]+ \(in no region\): fault at 0x[0-9a-f]+ outside (every region|the restored range); killed it \(SIGKILL\)$" ||
		bad "outside every region: $(cat "$tmp/s.err")"
	stop_handler s

	pool_killed
}

# tcp_snap SNAP DIR PLACE_ARGS...: SNAP imported with the trained trace,
# a pool server over TCP on $tmp/DIR (its pid $pp, URI $uri), SNAP placed
# tiered on it with PLACE_ARGS
tcp_snap() {
	local snap=$1 dir=$2
	shift 2

	"$T" import --quiet "$snap" "$tmp/img" &&
		"$T" trace import --name trained "$snap" "$tmp/hot.trace" >/dev/null ||
		{ bad "import $snap"; return 1; }
	mkdir -p "$tmp/$dir"
	"$T" pool serve --no-auth --listen tcp://127.0.0.1:0 --dir "$tmp/$dir" >"$tmp/$dir.out" 2>"$tmp/$dir.err" &
	pp=$!
	kids+=("$pp")
	wait_for "$tmp/$dir.out" "listening on tcp://" || { bad "pool serve: $(cat "$tmp/$dir.err")"; return 1; }
	uri=$(sed -n 's/.*listening on \(tcp:\/\/[0-9.:]*\).*/\1/p' "$tmp/$dir.out" | head -1)
	"$T" place "$snap" --policy tiered --trace trained --cxl "cxl=dir:$tmp/cxl" --pool "$uri" "$@" \
		>/dev/null 2>"$tmp/err" || { bad "place $snap on $uri $*: $(cat "$tmp/err")"; return 1; }
}

# kill_pool_midway WHAT SOCK: a harness VMM on SOCK (4 threads, the
# shuffled trace) paused halfway, the pool server $pp killed, the VMM let
# go; its pid in $hp, its exit status in $rc
kill_pool_midway() {
	local what=$1 sock=$2

	rm -f "$tmp/go"
	"$H" --socket "$sock" --image "$tmp/img" --timeout 20 --threads 4 \
		--trace "$tmp/shuffled.trace" --pause "$tmp/go" >"$tmp/h.out" 2>"$tmp/h.err" &
	hp=$!
	kids+=("$hp")
	wait_for "$tmp/h.out" "paused" 10 || bad "$what: the harness did not pause: $(cat "$tmp/h.out" "$tmp/h.err")"
	kill -KILL "$pp"
	wait "$pp" 2>/dev/null
	: >"$tmp/go"
	wait "$hp" 2>/dev/null
	rc=$?
}

# A pool over TCP: served, then killed while a VMM is halfway through:
# its next cold page cannot be had, so the fail policy kills the VMM,
# which never read a wrong page.
pool_killed() {
	local pp uri hp rc

	tcp_snap vmt tpool || return
	hsnap=vmt start_handler t || return
	harness 0 "tcp pool" t --threads 4 --trace "$tmp/shuffled.trace"
	grep -q "4096 pages touched, .* 0 wrong" "$tmp/h.out" || bad "tcp pool: $(cat "$tmp/h.out")"

	kill_pool_midway "pool killed" "$tmp/t.sock"
	[ "$rc" = 137 ] || bad "pool killed: harness exit $rc, want 137 (killed by the fail policy): $(cat "$tmp/h.err")"
	grep -q "wrong bytes\|byte +0x\|word +0x" "$tmp/h.err" && bad "pool killed: a wrong page: $(cat "$tmp/h.err")"
	wait_for "$tmp/t.err" "snapshot vmt: pid $hp: page [0-9]+ .*pool $uri.*; killed it \(SIGKILL\)$" ||
		bad "pool killed: no fail line naming the page and the pool: $(cat "$tmp/t.err")"
	kill -TERM "$hpid"
	wait "$hpid"

	pool_fallback
}

# The same with a durable copy (place --backing file:) and fc-handler
# --pool-fallback: the pool killed halfway, the VMM's remaining cold pages
# come from the copy, each checked, and it finishes with every page right.
pool_fallback() {
	local pp uri hp rc

	tcp_snap vmb bpool --backing "file:$tmp/back" || return
	hsnap=vmb start_handler b --pool-fallback || return
	kill_pool_midway "pool fallback" "$tmp/b.sock"
	[ "$rc" = 0 ] || bad "pool fallback: harness exit $rc, want 0: $(cat "$tmp/h.err" "$tmp/b.err")"
	grep -q "4096 pages touched, .* 0 wrong" "$tmp/h.out" ||
		bad "pool fallback: not every page right: $(cat "$tmp/h.out")"
	grep -q "killed it\|stopped it" "$tmp/b.err" && bad "pool fallback: the handler failed the VMM: $(cat "$tmp/b.err")"
	# the copy really was read: a VMM started with the pool gone is served
	harness 0 "pool fallback, pool down from the start" b --threads 2 --trace "$tmp/shuffled.trace"
	grep -q "4096 pages touched, .* 0 wrong" "$tmp/h.out" ||
		bad "pool fallback, pool down: $(cat "$tmp/h.out")"
	kill -TERM "$hpid"
	wait "$hpid"
}

case $group in
serve) serve ;;
refuse) refuse ;;
hugetlb) hugetlb ;;
fail) fail_group ;;
*) echo "unknown group $group"; exit 99 ;;
esac
exit $fail
