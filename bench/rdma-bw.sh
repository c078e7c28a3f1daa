#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# RDMA READ throughput in the emulated guest, in one boot on one soft-RoCE
# pair (rxe0 10.9.0.1 serves, rxe1 10.9.0.2 reads), repetitions interleaved:
#   - perftest's ib_read_bw, 256 KiB x 64 busy polling (its default) and
#     sleeping on completion events (-e), and its defaults (64 KiB x 128);
#   - tier's pool client, build/bench/pool-bw against "tierctl pool serve
#     --listen rdma://10.9.0.1:0", the same bytes in the prefetcher's batch
#     shapes (2 MiB pool_readv calls of 1 x 2 MiB or 256 x 8 KiB ranges);
#   - a restore's own prefetch: tierctl replay of an image whose every page
#     the tiered plan prefetches from that pool (pool_bytes / prefetch_ms).
# Prints every repetition, the medians and the ratios to ib_read_bw.
#
# usage: bench/rdma-bw.sh [BUILD]        (default: build)
# knobs: RDMA_BW_SIZE (bytes per run, default 32M), RDMA_BW_REPS (default 5),
#        RDMA_BW_RANGES (pool-bw --range list, default 2M,8K),
#        RDMA_BW_CLIENTS (NAME=BIN pool-bw binaries; default tier=BUILD/bench/pool-bw),
#        RDMA_BW_TIERCTLS (NAME=BIN tierctl binaries to replay with; default
#        tier=BUILD/tierctl/tierctl): a binary kept from before a change runs
#        in the same boot as the change
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
src=$(dirname "$(dirname "$self")")
size=${RDMA_BW_SIZE:-32M}
reps=${RDMA_BW_REPS:-5}
ranges=${RDMA_BW_RANGES:-2M,8K}

if [ "${1:-}" != inside ]; then
	b=$(cd "${1:-$src/build}" 2>/dev/null && pwd) || { echo "rdma-bw: no build directory ${1:-$src/build}" >&2; exit 2; }
	for t in "$b/tierctl/tierctl" "$b/bench/pool-bw"; do
		[ -x "$t" ] || { echo "rdma-bw: $t is not built (ninja -C $b)" >&2; exit 2; }
	done
	command -v ib_read_bw >/dev/null || { echo "rdma-bw: ib_read_bw missing (apt-get install perftest)" >&2; exit 2; }
	export RDMA_BW_BUILD=$b RDMA_BW_SIZE=$size RDMA_BW_REPS=$reps RDMA_BW_RANGES=$ranges
	export RDMA_BW_CLIENTS=${RDMA_BW_CLIENTS:-tier=$b/bench/pool-bw}
	export RDMA_BW_TIERCTLS=${RDMA_BW_TIERCTLS:-tier=$b/tierctl/tierctl}
	exec "$src/emu/run-in-guest.sh" --rxe --timeout "${RDMA_BW_TIMEOUT:-1500}" -- "$self" inside
fi

b=$RDMA_BW_BUILD
tmp=$(mktemp -d /tmp/rdma-bw.XXXXXX)
pool_pid=
cleanup() { [ -n "$pool_pid" ] && kill "$pool_pid" 2>/dev/null; }
trap cleanup EXIT
die() { echo "rdma-bw: $*" >&2; exit 1; }
median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bytes=$(numfmt --from=iec "$size")

wait_port() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ -n "$(ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.1
	done
	return 1
}

# ib_once MSG DEPTH [EXTRA...]: the average MiB/s of one ib_read_bw run
# moving $bytes, server on rxe0, client on rxe1 (GID index 1: the IPv4 one).
ib_once() {
	local msg=$1 depth=$2 n row spid
	shift 2
	n=$((bytes / msg))
	timeout 300 ib_read_bw -d rxe0 -x 1 -F -s "$msg" -t "$depth" -n "$n" "$@" >"$tmp/ib-s.log" 2>&1 &
	spid=$!
	wait_port 18515 || { kill "$spid" 2>/dev/null; wait "$spid"; return 1; }
	timeout 300 ib_read_bw -d rxe1 -x 1 -F -s "$msg" -t "$depth" -n "$n" "$@" 10.9.0.1 >"$tmp/ib-c.log" 2>&1
	wait "$spid" || return 1
	# bytes iterations BW-peak BW-average MsgRate
	# (now and then it reports 0.00 for a run that moved the bytes: no rate)
	row=$(awk -v m="$msg" -v n="$n" '$1 == m && $2 == n && $4 > 0 { print $4 }' "$tmp/ib-c.log")
	[ -n "$row" ] || return 1
	echo "$row"
}

# ib_rep: ib_once, again after a failed run (soft-RoCE under a loaded
# host now and then ends one with an error completion); failures counted.
ib_rep() {
	local try
	for try in 1 2 3; do
		ib_once "$@" && return 0
		echo "$*" >>"$tmp/ib.failed"
		echo "rdma-bw: ib_read_bw $* failed (try $try):" >&2
		grep -E 'Failed|error|Couldn' "$tmp/ib-c.log" "$tmp/ib-s.log" | head -n 4 >&2
		sleep 1
	done
	die "ib_read_bw $* failed 3 times"
}

echo "kernel $(uname -r), $(nproc) vCPUs (TCG), $bytes bytes per run, $reps repetitions"
ibv_devinfo -v -d rxe1 | grep -E 'max_qp_(init_)?rd_atom|active_mtu' | sed 's/^[[:space:]]*/rxe1 /'

T=$b/tierctl/tierctl
"$T" pool serve --listen rdma://10.9.0.1:0 --no-auth >"$tmp/pool.out" 2>"$tmp/pool.err" &
pool_pid=$!
port=
for _ in $(seq 600); do
	port=$(sed -n 's|^listening on rdma://10\.9\.0\.1:\([0-9][0-9]*\)$|\1|p' "$tmp/pool.out")
	[ -n "$port" ] && break
	kill -0 "$pool_pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$port" ] || die "pool serve: $(cat "$tmp/pool.out" "$tmp/pool.err")"
uri=pool=rdma://10.9.0.1:$port
export TIER_POOL_RDMA_SRC=10.9.0.2

# pool_rep NAME BIN FLAGS...: one pass per shape, median_mibs per range
# appended to $tmp/NAME.RANGE.
pool_rep() {
	local name=$1 bin=$2 line rb
	shift 2
	"$bin" --uri "$uri" --size "$size" --range "$ranges" --reps 1 --keep "$@" >"$tmp/pb.json" ||
		die "$name: pool-bw failed"
	while read -r line; do
		rb=$(grep -o '"range_bytes":[0-9]*' <<<"$line" | cut -d: -f2)
		grep -o '"median_mibs":[0-9.]*' <<<"$line" | cut -d: -f2 >>"$tmp/$name.$rb"
		echo "$rb $(grep -o '"ranges_per_batch":[0-9]*' <<<"$line" | cut -d: -f2)" >"$tmp/$name.shape.$rb"
	done <"$tmp/pb.json"
}

# replay_rep NAME TIERCTL: one restore, every page verified; its prefetch
# MiB/s appended to $tmp/replay.NAME.
replay_rep() {
	local v m pb ms
	"$2" replay --json --policy tiered --trace-file "$tmp/vm.t1" vm >"$tmp/rp.json" 2>"$tmp/rp.err" ||
		die "$1: replay: $(cat "$tmp/rp.err")"
	v=$(grep -o '"verified_pages":[0-9]*' "$tmp/rp.json" | head -n1 | cut -d: -f2)
	m=$(grep -o '"mismatches":[0-9]*' "$tmp/rp.json" | head -n1 | cut -d: -f2)
	pb=$(grep -o '"pool_bytes":[0-9]*' "$tmp/rp.json" | head -n1 | cut -d: -f2)
	ms=$(grep -o '"prefetch_ms":[0-9.]*' "$tmp/rp.json" | head -n1 | cut -d: -f2)
	[ "$v" = $((bytes / 4096)) ] && [ "$m" = 0 ] && [ "$pb" = "$bytes" ] ||
		die "$1: replay verified ${v:-?} pages, ${m:-?} mismatches, pool_bytes ${pb:-?}"
	awk -v b="$pb" -v t="$ms" 'BEGIN { printf "%.1f\n", b / 1048576 / (t / 1000) }' >>"$tmp/replay.$1"
}

# Every page read-write hot: the tiered plan puts them all in the pool and
# the restore prefetches them, 2 MiB batches of contiguous pages.
export TIER_STORE=$tmp/store
"$b/bench/tier-gen" --size "$size" --zero 0 --ro 0 --rw 100 --rw-read 100 --seed 1 \
	--image "$tmp/vm.img" --trace "$tmp/vm.t1" >/dev/null || die "tier-gen"
"$T" import vm "$tmp/vm.img" >/dev/null && "$T" trace import vm "$tmp/vm.t1" >/dev/null &&
	"$T" place --policy tiered --cxl "cxl=dir:$tmp/cxl" --pool "$uri" vm >"$tmp/place.out" ||
	die "import and place failed"
cat "$tmp/place.out"
tierctls=${RDMA_BW_TIERCTLS:-tier=$T}

clients=${RDMA_BW_CLIENTS:-tier=$b/bench/pool-bw}
first=1
for c in $clients; do
	if [ -n "$first" ]; then
		pool_rep "${c%%=*}" "${c#*=}"
		first=
	else
		pool_rep "${c%%=*}" "${c#*=}" --reuse
	fi
done

# Repetitions interleaved, so drift on the shared host hits all alike;
# each rep's line is printed as it ends (visible in the results directory).
ib_cases=("262144 64" "262144 64 -e" "65536 128")
for ((r = 0; r < reps; r++)); do
	line="rep $((r + 1)):"
	for i in "${!ib_cases[@]}"; do
		# shellcheck disable=SC2086 # the case is words
		v=$(ib_rep ${ib_cases[$i]}) || exit 1
		echo "$v" >>"$tmp/ib.$i"
		line+=" ib[$i] $v"
	done
	for c in $clients; do
		pool_rep "${c%%=*}" "${c#*=}" --reuse --no-check
		for f in "$tmp/${c%%=*}".[0-9]*; do
			line+=" ${c%%=*}.${f##*.} $(tail -n1 "$f")"
		done
	done
	for c in $tierctls; do
		replay_rep "${c%%=*}" "${c#*=}"
		line+=" ${c%%=*}.replay $(tail -n1 "$tmp/replay.${c%%=*}")"
	done
	echo "$line"
done

# ratios FILE: the median of FILE's values over the same rep's ib_read_bw
# -s 262144 -t 64 and -e (paired: a rep's noise cancels), as "P E".
ratios() {
	local k
	for k in 0 1; do
		paste "$1" "$tmp/ib.$k" | awk '{ printf "%.3f\n", $1 / $2 }' | median
	done | paste -sd' '
}

echo "MiB/s per repetition, then the median (ib_read_bw: -s MSG -t DEPTH, busy polling unless -e; $(cat "$tmp/ib.failed" 2>/dev/null | wc -l) failed runs repeated)"
for i in "${!ib_cases[@]}"; do
	read -r m d e <<<"${ib_cases[$i]}"
	echo "ib_read_bw -s $m -t $d ${e:-  }: $(paste -sd' ' "$tmp/ib.$i"), median $(median <"$tmp/ib.$i")"
done
echo "ratio: the median of the per-rep ratios to ib_read_bw -s 262144 -t 64 (polling), then to the same with -e (events)"
for c in $clients; do
	n=${c%%=*}
	for f in "$tmp/$n".[0-9]*; do
		rb=${f##*.}
		read -r _ per <"$tmp/$n.shape.$rb"
		tail -n +2 "$f" >"$f.timed"	# the first pass came with the check
		read -r rp re <<<"$(ratios "$f.timed")"
		printf '%s pool_readv %d x %d KiB per 2 MiB batch: %s, median %s; ratio %s to ib_read_bw -s 262144 -t 64, %s to -e\n' \
			"$n" "$per" $((rb / 1024)) "$(paste -sd' ' "$f.timed")" "$(median <"$f.timed")" "$rp" "$re"
	done
done
for c in $tierctls; do
	n=${c%%=*}
	read -r rp re <<<"$(ratios "$tmp/replay.$n")"
	printf '%s replay prefetch (tiered, %d pages all from the pool): %s, median %s; ratio %s to ib_read_bw -s 262144 -t 64, %s to -e\n' \
		"$n" $((bytes / 4096)) "$(paste -sd' ' "$tmp/replay.$n")" "$(median <"$tmp/replay.$n")" "$rp" "$re"
done
