#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# long-run.sh BUILD WORK [TARGET...]: the long run of doc/fuzzing.md, one
# target at a time (-jobs=1, nice 19), RUNS executions each (default 10 M),
# its corpus grown in WORK/corpus-TARGET from the committed seeds (which
# are only read), artifacts in WORK/artifacts, libFuzzer's log in
# WORK/TARGET.log. Prints one row of the doc's table per target:
# target, executions, seconds, exec/s, cov, ft, corpus, crashes/leaks/timeouts.
set -u

build=$(realpath "${1:?usage: long-run.sh BUILD WORK [TARGET...]}")
work=$(mkdir -p "${2:?}" && realpath "$2")
shift 2
here=$(cd "$(dirname "$0")" && pwd)
runs=${RUNS:-10000000}
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

echo "| target | executions | seconds | exec/s | cov | ft | corpus | crashes / leaks / timeouts |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for t in "${targets[@]}"; do
	seeds=$here/corpus/${t%-reseal}
	corpus=$work/corpus-$t
	art=$work/artifacts/$t
	mkdir -p "$corpus" "$art"
	rm -f "$work/fuzz-0.log"
	(cd "$work" && nice -n 19 "$build/tests/fuzz/fuzz-$t" -jobs=1 \
		-runs="$runs" -timeout=10 -rss_limit_mb=2048 \
		-max_len="$(max_len "$t")" -print_final_stats=1 \
		-artifact_prefix="$art/" "$corpus" "$seeds" >/dev/null 2>&1)
	mv "$work/fuzz-0.log" "$work/$t.log"
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | tail -1)
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/$t.log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
	corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$done_line")
	nc=$(find "$art" -name 'crash-*' | wc -l)
	nl=$(find "$art" -name 'leak-*' | wc -l)
	nt=$(find "$art" -name 'timeout-*' | wc -l)
	no=$(find "$art" -name 'oom-*' | wc -l)
	rate=$([ -n "$secs" ] && [ "$secs" -gt 0 ] && echo $(( ${n:-0} / secs )) || echo "?")
	extra=$([ "$no" -gt 0 ] && echo " / $no OOM")
	echo "| $t | ${n:-?} | ${secs:-?} | $rate | ${cov:-?} | ${ft:-?} | ${corp:-?} | $nc / $nl / $nt$extra |"
done
