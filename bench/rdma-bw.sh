#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# RDMA READ throughput in the emulated guest, in one boot on one soft-RoCE
# pair (rxe0 10.9.0.1 serves, rxe1 10.9.0.2 reads): perftest's ib_read_bw,
# then tier's pool client (build/bench/pool-bw against "tierctl pool serve
# --listen rdma://10.9.0.1:0") reading the same bytes in the prefetcher's
# batch shapes. Prints every repetition, the medians and tier / ib_read_bw.
#
# usage: bench/rdma-bw.sh [BUILD]        (default: build)
# knobs: RDMA_BW_SIZE (bytes per run, default 32M), RDMA_BW_REPS (default 5),
#        RDMA_BW_RANGES (pool-bw --range list, default 2M,64K,8K),
#        RDMA_BW_CLIENTS (NAME=BIN pool-bw binaries, default tier=BUILD/bench/pool-bw)
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
src=$(dirname "$(dirname "$self")")
size=${RDMA_BW_SIZE:-32M}
reps=${RDMA_BW_REPS:-5}
ranges=${RDMA_BW_RANGES:-2M,64K,8K}

if [ "${1:-}" != inside ]; then
	b=$(cd "${1:-$src/build}" 2>/dev/null && pwd) || { echo "rdma-bw: no build directory ${1:-$src/build}" >&2; exit 2; }
	for t in "$b/tierctl/tierctl" "$b/bench/pool-bw"; do
		[ -x "$t" ] || { echo "rdma-bw: $t is not built (ninja -C $b)" >&2; exit 2; }
	done
	command -v ib_read_bw >/dev/null || { echo "rdma-bw: ib_read_bw missing (apt-get install perftest)" >&2; exit 2; }
	export RDMA_BW_BUILD=$b RDMA_BW_SIZE=$size RDMA_BW_REPS=$reps RDMA_BW_RANGES=$ranges
	export RDMA_BW_CLIENTS=${RDMA_BW_CLIENTS:-tier=$b/bench/pool-bw}
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

# ib_read_bw MSG DEPTH [EXTRA...]: the average MiB/s of one run moving
# $bytes, server on rxe0, client on rxe1 (GID index 1: the IPv4 one).
ib_rep() {
	local msg=$1 depth=$2 n row
	shift 2
	n=$((bytes / msg))
	timeout 300 ib_read_bw -d rxe0 -x 1 -F -s "$msg" -t "$depth" -n "$n" "$@" >"$tmp/ib-s.log" 2>&1 &
	local spid=$!
	wait_port 18515 || { cat "$tmp/ib-s.log" >&2; die "ib_read_bw server did not listen"; }
	timeout 300 ib_read_bw -d rxe1 -x 1 -F -s "$msg" -t "$depth" -n "$n" "$@" 10.9.0.1 >"$tmp/ib-c.log" 2>&1 ||
		{ cat "$tmp/ib-c.log" "$tmp/ib-s.log" >&2; die "ib_read_bw client failed"; }
	wait "$spid" || { cat "$tmp/ib-s.log" >&2; die "ib_read_bw server failed"; }
	# bytes iterations BW-peak BW-average MsgRate
	row=$(awk -v m="$msg" -v n="$n" '$1 == m && $2 == n { print $4 }' "$tmp/ib-c.log")
	[ -n "$row" ] || { cat "$tmp/ib-c.log" >&2; die "no ib_read_bw result row"; }
	echo "$row"
}

echo "kernel $(uname -r), $(nproc) vCPUs (TCG), $bytes bytes per run, $reps repetitions"
ibv_devinfo -v -d rxe1 | grep -E 'max_qp_(init_)?rd_atom|active_mtu' | sed 's/^[[:space:]]*/rxe1 /'

"$b/tierctl/tierctl" pool serve --listen rdma://10.9.0.1:0 >"$tmp/pool.out" 2>"$tmp/pool.err" &
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

# Clients: NAME=BIN words (a binary kept from before a change runs in the
# same boot as the change); the first writes the segment, each checks it.
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

# Repetitions interleaved, so drift on the shared host hits all alike.
ib_cases=("262144 64" "262144 64 -e" "65536 128" "65536 128 -e")
for ((r = 0; r < reps; r++)); do
	for i in "${!ib_cases[@]}"; do
		# shellcheck disable=SC2086 # the case is words
		ib_rep ${ib_cases[$i]} >>"$tmp/ib.$i"
	done
	for c in $clients; do
		pool_rep "${c%%=*}" "${c#*=}" --reuse --no-check
	done
done

echo "MiB/s per repetition, then the median (ib_read_bw: -s MSG -t DEPTH, busy polling unless -e)"
for i in "${!ib_cases[@]}"; do
	read -r m d e <<<"${ib_cases[$i]}"
	med=$(median <"$tmp/ib.$i")
	echo "ib_read_bw -s $m -t $d ${e:-   }: $(paste -sd' ' "$tmp/ib.$i"), median $med"
	echo "$med" >"$tmp/ibmed.$i"
done
poll=$(cat "$tmp/ibmed.0")
best=$(cat "$tmp/ibmed."* | sort -g | tail -n1)
for c in $clients; do
	n=${c%%=*}
	for f in "$tmp/$n".[0-9]*; do
		rb=${f##*.}
		read -r _ per <"$tmp/$n.shape.$rb"
		med=$(tail -n +2 "$f" | median)
		printf '%s pool_readv %d x %d KiB per 2 MiB batch: %s, median %s; ratio %s to ib_read_bw -s 262144 -t 64, %s to the best ib_read_bw\n' \
			"$n" "$per" $((rb / 1024)) "$(tail -n +2 "$f" | paste -sd' ')" "$med" \
			"$(awk -v a="$med" -v b="$poll" 'BEGIN { printf "%.2f", a / b }')" \
			"$(awk -v a="$med" -v b="$best" 'BEGIN { printf "%.2f", a / b }')"
	done
done
