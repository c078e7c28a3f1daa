#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: fuzz -- smoke.sh FUZZER CORPUS ARTIFACTS [libFuzzer options]: a
# bounded run of one fuzz target over its committed seed corpus (which it
# only reads: new inputs go to a temporary directory). Fails on any crash,
# leak, timeout or out-of-memory, whose input is kept in ARTIFACTS and
# printed in base64. FUZZ_RUNS and FUZZ_TIME (seconds) bound the run
# (default 20000 runs, 20 s). doc/fuzzing.md has the long runs.
set -u

fuzzer=${1:?usage: smoke.sh FUZZER CORPUS ARTIFACTS [options]}
corpus=${2:?}
art=${3:?}
shift 3
name=${fuzzer##*/}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/new" "$art"

# libFuzzer exits 77 on a crash by default, which meson reads as a skip.
"$fuzzer" -runs="${FUZZ_RUNS:-20000}" -max_total_time="${FUZZ_TIME:-20}" \
	-timeout=10 -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 \
	-artifact_prefix="$tmp/" -print_final_stats=1 "$@" "$tmp/new" "$corpus"
rc=$?

found=0
for a in "$tmp"/crash-* "$tmp"/leak-* "$tmp"/timeout-* "$tmp"/oom-*; do
	[ -e "$a" ] || continue
	found=1
	cp "$a" "$art/$name-${a##*/}"
	echo "$name: $(basename "$a") kept as $art/$name-${a##*/}:"
	base64 -w 76 "$a"
done
if [ "$rc" != 0 ] || [ "$found" != 0 ]; then
	echo "$name: FAILED (exit $rc)"
	exit 1
fi
exit 0
