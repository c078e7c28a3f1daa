#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# long-run.sh BUILD WORK [TARGET...]: the long run of doc/fuzzing.md, one
# target at a time (-jobs=1, nice 19), RUNS executions each (default 10 M)
# or, when MAX_TIME is set, at most that many seconds (-max_total_time),
# its corpus grown in WORK/corpus-TARGET from a copy of the committed
# seeds in WORK/seeds-TARGET (the tree is never written), artifacts in
# WORK/artifacts, libFuzzer's log in WORK/TARGET.log. Prints one row of
# the doc's table per target:
# target, executions, wall time, exec/s, peak RSS, cov, ft, corpus,
# crashes/leaks/timeouts (the row also goes to WORK/TARGET.row).
set -u

build=$(realpath "${1:?usage: long-run.sh BUILD WORK [TARGET...]}")
work=$(mkdir -p "${2:?}" && realpath "$2")
shift 2
here=$(cd "$(dirname "$0")" && pwd)
runs=${RUNS:-10000000}
max_time=${MAX_TIME:-0}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest manifest-reseal plan plan-reseal
	trace-bin trace-bin-reseal trace-text uri pool-server pool-client fc-json)

# as in tests/fuzz/meson.build
max_len() {
	case $1 in
	manifest*) echo 65536 ;;
	plan* | trace-bin*) echo 16384 ;;
	trace-text) echo 8192 ;;
	uri) echo 4608 ;;
	pool-*) echo 32768 ;;
	fc-json) echo 65536 ;;
	esac
}

echo "| target | executions | wall time | exec/s | peak RSS | cov | ft | corpus | crashes / leaks / timeouts |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for t in "${targets[@]}"; do
	seeds=$work/seeds-$t
	corpus=$work/corpus-$t
	art=$work/artifacts/$t
	mkdir -p "$corpus" "$art"
	rm -rf "$seeds"
	# a variant fuzzes from its target's seeds (tests/fuzz/meson.build)
	seed=${t%-reseal}
	seed=${seed%-auth}
	cp -r "$here/corpus/$seed" "$seeds"
	rm -f "$work/fuzz-0.log"
	t0=$(date +%s)
	(cd "$work" && nice -n 19 "$build/tests/fuzz/fuzz-$t" -jobs=1 \
		-runs="$runs" -max_total_time="$max_time" -timeout=10 \
		-rss_limit_mb=2048 -max_len="$(max_len "$t")" -print_final_stats=1 \
		-artifact_prefix="$art/" "$corpus" "$seeds" >/dev/null 2>&1)
	t1=$(date +%s)
	mv "$work/fuzz-0.log" "$work/$t.log"
	# the DONE line, or the last status line of a run stopped early
	done_line=$(grep -E '^#[0-9]+[[:space:]]+[A-Za-z]+ .*cov: ' "$work/$t.log" | tail -1)
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
	wall=$(( t1 - t0 ))
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$t.log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
	corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$done_line")
	nc=$(find "$art" -name 'crash-*' | wc -l)
	nl=$(find "$art" -name 'leak-*' | wc -l)
	nt=$(find "$art" -name 'timeout-*' | wc -l)
	no=$(find "$art" -name 'oom-*' | wc -l)
	extra=$([ "$no" -gt 0 ] && echo " / $no OOM")
	echo "| $t | ${n:-?} | $(( wall / 60 )) min $(( wall % 60 )) s | ${rate:-?} |" \
		"${rss:-?} MB | ${cov:-?} | ${ft:-?} | ${corp:-?} | $nc / $nl / $nt$extra |" |
		tee "$work/$t.row"
done
