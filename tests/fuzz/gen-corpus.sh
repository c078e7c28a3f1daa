#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# gen-corpus.sh BUILD: regenerates the seed corpora in tests/fuzz/corpus/
# from real files, made by the real tools of the (ordinary) build BUILD:
# tierctl import, trace import, place and replay into a temporary store
# (manifests, plans, binary and text traces), the URIs of doc/, a pool
# server's exchanges with the client of place and replay recorded by
# pool-tap.py (requests: pool-server; replies: pool-client), and the
# handshake of each Firecracker release as fc-harness sends it. Needs root
# (replay and fc-harness use userfaultfd) and python3. See doc/fuzzing.md.
set -euo pipefail

build=$(realpath "${1:?usage: gen-corpus.sh BUILD}")
T=$build/tierctl/tierctl
FCH=$build/tests/fc-harness
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=$here/corpus
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
export TIER_STORE=$tmp/store

# serve VAR: starts a pool server; VAR gets its port
serve() {
	"$T" pool serve --no-auth --listen tcp://127.0.0.1:0 >"$tmp/$1.out" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do
		grep -q listening "$tmp/$1.out" && break
		sleep 0.1
	done
	printf -v "$1" '%s' "$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$tmp/$1.out")"
}

# tap VAR SERVER_PORT DIR: a recording proxy in front of it
tap() {
	local port
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	python3 "$here/pool-tap.py" "$port" "$2" "$3" >"$tmp/tap-$1.out" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do
		grep -q ready "$tmp/tap-$1.out" && break
		sleep 0.1
	done
	printf -v "$1" '%s' "$port"
}

rm -rf "$out"
mkdir -p "$out"/{manifest,plan,trace-bin,trace-text,uri,pool-server,pool-client,fc-json}

# Two images: a of 16 pages (zero when p % 4 == 0; pages 1-3, 5 touched,
# 6 and 7 cold data, the rest zero) and b of 48 pages in two regions.
python3 - "$tmp" <<'EOF'
import sys
d = sys.argv[1]
def page(p, data):
    return bytes(((p * 31 + i) & 0xff) for i in range(4096)) if data else bytes(4096)
with open(d + "/a.img", "wb") as f:
    for p in range(16):
        f.write(page(p, p in (1, 2, 3, 5, 6, 7)))
with open(d + "/b.img", "wb") as f:
    for p in range(48):
        f.write(page(p, p % 3 == 1))
EOF
cat >"$tmp/t1.txt" <<'EOF'
# tier trace: page offsets and first-access kind
0x1000 r
0x2000 w
0x3000 rw
0x5000 r
EOF
# the forms tier-trace(5) accepts: decimal, no kind, CRLF, comments, repeats
printf '4096\n8192 R  # comment\n\t12288\tRW\r\n# only a comment\n\n0x1000 w\n0XFFFF r\n' >"$tmp/t2.txt"
printf '0x0 r\n0x10000 w\n0x1f000 rw\n0x2f000 r\n' >"$tmp/t3.txt"

"$T" import --quiet a "$tmp/a.img"
"$T" import --quiet b "$tmp/b.img" --region 0:65536 --region 131072:65536
"$T" trace import a "$tmp/t1.txt"
"$T" trace import --name t2 a "$tmp/t2.txt"
"$T" trace import --name t3 b "$tmp/t3.txt"

serve srv
tap tsrv "$srv" "$tmp/tap"
"$T" place a --policy tiered --cxl "cxl=dir:$tmp/cxl" \
	--pool "pool=tcp://127.0.0.1:$tsrv" >/dev/null
"$T" place a --policy reap --cxl "cxl=dir:$tmp/cxl" >/dev/null
"$T" place b --policy all --cxl "cxl=dir:$tmp/cxl" >/dev/null
"$T" replay a --policy tiered >/dev/null
# a server that has no such segment: the OPEN fails
serve empty
tap tempty "$empty" "$tmp/tap-empty"
"$T" replay a --policy tiered --pool "pool=tcp://127.0.0.1:$tempty" \
	>/dev/null 2>&1 && { echo "gen-corpus: replay from an empty pool worked" >&2; exit 1; }
sleep 0.5	# the tap's last writes

s=$TIER_STORE/snapshots
cp "$s/a/manifest" "$out/manifest/a"
cp "$s/b/manifest" "$out/manifest/b-two-regions"
cp "$s/a/plans/tiered.plan" "$out/plan/a-tiered"
cp "$s/a/plans/reap.plan" "$out/plan/a-reap"
for p in vanilla faasnap aquifer eager; do
	cp "$s/b/plans/$p.plan" "$out/plan/b-$p"
done
cp "$s/a/traces/t1.trace" "$out/trace-bin/a-t1"
cp "$s/a/traces/t2.trace" "$out/trace-bin/a-t2"
cp "$s/b/traces/t3.trace" "$out/trace-bin/b-t3"
cp "$tmp/t2.txt" "$out/trace-text/forms"
cp "$tmp/t3.txt" "$out/trace-text/plain"
"$T" trace export a t1 >"$out/trace-text/export-t1"
sed -n '/^```/,/^```/p' "$src/doc/tier-trace.5.scd" | sed '/^```/d' >"$out/trace-text/tier-trace.5"

# every URI doc/ and README.md write out, and the placeholders filled in
{
	grep -rhoE "((cxl|pool)=)?(dir|devdax|numa|file):[^] *\`'\"),;]*|((cxl|pool)=)?(tcp|rdma)://[^ *\`'\"),;]*" \
		"$src/doc" "$src/README.md" | sed 's/[.:]$//' |
		grep -vE '[A-Z]{3}|_[a-z]+_|=$' || true
	printf '%s\n' cxl=devdax:/dev/dax0.0 cxl=numa:1 numa:0 \
		pool=file:/var/lib/tier/pool file:pool pool=rdma://10.0.0.2:7800 \
		'pool=tcp://[fe80::1]:7800' 'tcp://[::1]:0'
} | sort -u | while read -r u; do
	printf '%s' "$u" >"$out/uri/$(printf '%s' "$u" | sha1sum | cut -c1-12)"
done

# The pool exchanges: 1 place (CREATE, WRITE, COMMIT), 2 replay (OPEN,
# READ, CLOSE); the empty server's refusal.
cp "$tmp/tap/1.c2s" "$out/pool-server/place"
cp "$tmp/tap/1.s2c" "$out/pool-client/place"
cp "$tmp/tap/2.c2s" "$out/pool-server/replay"
cp "$tmp/tap/2.s2c" "$out/pool-client/replay"
cp "$tmp/tap-empty/1.c2s" "$out/pool-server/open-missing"
cp "$tmp/tap-empty/1.s2c" "$out/pool-client/open-missing"

# The Firecracker handshakes: each release's field set, one and two
# regions, the zero-copy extension; received by a listener that hangs up.
cat >"$tmp/fc-listen.py" <<'EOF'
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
msg, _, _, _ = c.recvmsg(65536, socket.CMSG_SPACE(64))
open(out, "wb").write(msg)
c.close()
EOF
fc() {
	local name=$1
	shift
	rm -f "$tmp/fc.sock"
	python3 "$tmp/fc-listen.py" "$tmp/fc.sock" "$out/fc-json/$name" >"$tmp/fcl.out" &
	for _ in $(seq 50); do
		grep -q ready "$tmp/fcl.out" && break
		sleep 0.1
	done
	"$FCH" --socket "$tmp/fc.sock" --image "$tmp/a.img" --expect-refused \
		--timeout 5 "$@" >/dev/null
	wait $!
}
fc v1.1 --version 1.1
fc v1.7 --version 1.7
fc v1.12 --version 1.12
fc v1.12-two-regions --version 1.12 --region 32768@0 --region 32768@32768 --gap 1048576
fc v1.1-descending --version 1.1 --region 16384@0 --region 49152@16384 --descending
fc v1.12-zero-copy --version 1.12 --zero-copy

du -sh "$out"/*
