# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by tests/guest-tier-*.sh: the host-side checks before booting the
# hardware guest, and the in-guest helpers that run tierctl and check what
# it reports. The build directory is derived from $TIERCTL (meson test sets
# it to BUILD/tierctl/tierctl); the guest sees it at the same path.
#
# Host side:  tg_host_check TOOL...   exits 77 with the reason when QEMU, the
#                                     kernel package, a tool or the build is missing
# Guest side: tg_guest_init           $T, $B, $GEN, $tmp, $TIER_STORE
#             tg_image NAME SIZE SEED image NAME.img, traces NAME.t1 (trained),
#                                     NAME.t2 (second run: rw, cold, flipped pages),
#                                     NAME.wro (every read-only hot page written)
#             run WANT CMD...         tierctl CMD, stdout/stderr in $tmp/out, $tmp/err
#             one_line PATTERN WHAT   stderr is one line matching PATTERN
#             jnum KEY [FILE]         the first (top-level) numeric KEY of a JSON
#             check_replay N WHAT     the replay JSON verified N pages, 0 mismatches

tg_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

tg_build_dir() {
	[ -n "${TIERCTL:-}" ] || return 1
	# BUILD/tierctl/tierctl -> BUILD
	(cd "$(dirname "$TIERCTL")/.." && pwd)
}

tg_host_check() {
	local t b
	command -v qemu-system-x86_64 >/dev/null ||
		{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
	for t in "$@"; do
		command -v "$t" >/dev/null ||
			{ echo "SKIP: $t missing (see emu/README.md, Host packages)"; exit 77; }
	done
	[ -n "${TIERCTL:-}" ] && [ -x "$TIERCTL" ] ||
		{ echo "SKIP: TIERCTL does not name the built tierctl (run through meson test)"; exit 77; }
	b=$(tg_build_dir)
	[ -x "$b/bench/tier-gen" ] ||
		{ echo "FAIL: $b/bench/tier-gen is not built"; exit 1; }
	"$tg_src/emu/fetch-kernel.sh" >/dev/null ||
		{ echo "SKIP: the Debian kernel package is not available"; exit 77; }
}

fail=0
bad() {
	echo "FAIL: $*"
	fail=1
}
die() {
	echo "FAIL: $*"
	exit 1
}

tg_guest_init() {
	[ "${EMU_GUEST:-}" = 1 ] || die "not inside emu/run-in-guest.sh"
	[ "$(id -u)" = 0 ] || die "not root in the guest"
	T=$TIERCTL
	B=$(tg_build_dir) || die "no TIERCTL"
	GEN=$B/bench/tier-gen
	tmp=$(mktemp -d /tmp/tier-guest.XXXXXX) || die "mktemp"
	export TIER_STORE=$tmp/store
}

# tg_image NAME SIZE SEED: a generated image and its traces, in $tmp.
tg_image() {
	local n=$tmp/$1
	"$GEN" --size "$2" --seed "$3" --cold-touch 20 --flip 2 \
		--image "$n.img" --trace "$n.t1" --trace2 "$n.t2" >"$n.gen.json" ||
		die "tier-gen"
	# Every page the trained run only reads (the read-only hot pages on
	# CXL), now written: copy-on-write must keep the CXL object intact.
	awk '!/^#/ && $2 == "r" { print $1, "rw" }' "$n.t1" >"$n.wro"
	[ -s "$n.wro" ] || die "tier-gen: no read-only page in the trained trace"
}

# pages FILE: page lines of a text trace
pages() { grep -vc '^#' "$1"; }

run() {
	local want=$1 rc
	shift
	"$T" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$want" = '!0' ]; then
		[ "$rc" != 0 ] || bad "tierctl $* exited 0, want a failure"
	elif [ "$rc" != "$want" ]; then
		bad "tierctl $* exited $rc, want $want; stderr: $(cat "$tmp/err")"
	fi
	return $rc
}

one_line() {
	[ "$(wc -l <"$tmp/err")" = 1 ] || bad "$2: stderr is not one line: $(cat "$tmp/err")"
	grep -q -- "$1" "$tmp/err" || bad "$2: stderr does not match '$1': $(cat "$tmp/err")"
}

jnum() {
	grep -o "\"$1\":[0-9]*" "${2:-$tmp/out}" | head -n1 | cut -d: -f2
}

# check_replay VERIFIED WHAT: the replay JSON in $tmp/out
check_replay() {
	local v m
	v=$(jnum verified_pages)
	m=$(jnum mismatches)
	if [ -z "$v" ] || [ -z "$m" ]; then
		bad "$2: no replay JSON: $(cat "$tmp/out" "$tmp/err")"
		return 1
	fi
	if [ "$v" != "$1" ] || [ "$m" != 0 ]; then
		bad "$2: verified $v pages (want $1), $m mismatches"
		return 1
	fi
	echo "ok: $2: verified $v pages, 0 mismatches, pool_bytes $(jnum pool_bytes), cxl_mapped_bytes $(jnum cxl_mapped_bytes)"
}
