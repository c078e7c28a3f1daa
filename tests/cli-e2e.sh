#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: root -- the CLI end to end in a temporary store: import, traces,
# place every policy, show and its map, replay every policy verifying every
# page, a TCP pool, failing closed when the pool dies, corrupt snapshots.
set -uo pipefail

T=${TIERCTL:?set TIERCTL to the tierctl binary}
[ "$(id -u)" = 0 ] || { echo "skip: needs root (userfaultfd, the root suite)"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }

tmp=$(mktemp -d)
pool_pid=
cleanup() {
	[ -n "$pool_pid" ] && kill -KILL "$pool_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
export TIER_STORE=$tmp/store
CXL=cxl=dir:$tmp/cxl
fail=0

bad() {
	echo "FAIL: $*" >&2
	fail=1
}

# run RC CMD...: runs tierctl, keeps stdout/stderr in $tmp/out, $tmp/err
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
}

# one_line PATTERN WHAT: stderr is exactly one line, matching PATTERN
one_line() {
	[ "$(wc -l <"$tmp/err")" = 1 ] || bad "$2: stderr is not one line: $(cat "$tmp/err")"
	grep -q -- "$1" "$tmp/err" || bad "$2: stderr does not match '$1': $(cat "$tmp/err")"
}

# check_replay VERIFIED WHAT: the replay JSON on stdout verified exactly
# VERIFIED pages with no mismatch
check_replay() {
	python3 - "$tmp/out" "$1" "$2" <<'EOF' || fail=1
import json, sys
out, want, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    d = json.load(open(out))
except Exception as e:
    sys.exit(f"FAIL: {what}: no JSON object on stdout: {e}")
for k in ("policy", "instances", "verified_pages", "mismatches", "setup_ms",
          "replay_ms", "faults", "pool_bytes", "anon_rss_bytes", "cxl_mapped_bytes"):
    if k not in d:
        sys.exit(f"FAIL: {what}: no '{k}' in {d}")
for k in ("zero", "ro", "rw", "cold"):
    if k not in d["faults"]:
        sys.exit(f"FAIL: {what}: no faults.{k}")
if d["verified_pages"] != want or d["mismatches"] != 0:
    sys.exit(f"FAIL: {what}: verified {d['verified_pages']} (want {want}), "
             f"mismatches {d['mismatches']}")
EOF
}

# A 4 MiB image: page p is zero when p % 4 == 0 or 300 <= p < 400, else
# a pattern unique to the page.
python3 - "$tmp/img" <<'EOF'
import sys
with open(sys.argv[1], "wb") as f:
    for p in range(1024):
        if p % 4 == 0 or 300 <= p < 400:
            f.write(bytes(4096))
        else:
            f.write(p.to_bytes(8, "little") + bytes((p * 31 + i) & 0xff for i in range(4088)))
EOF
# hot.trace: pages 1..40 (r, w, rw; zero pages among them) and 500..519 read;
# every write is on a low page, so rw data leads the pool segment.
python3 - "$tmp/hot.trace" "$tmp/cold.txt" <<'EOF'
import sys
kinds = ["rw", "r", "w"]
with open(sys.argv[1], "w") as f:
    f.write("# hot pages\n")
    for p in range(1, 41):
        f.write(f"{hex(p * 4096)} {kinds[p % 3]}\n")
    for p in range(500, 520):
        f.write(f"{p * 4096}\n")
# cold.txt: pages no stored trace touches (cold, and one zero run page)
with open(sys.argv[2], "w") as f:
    for p in list(range(601, 1024, 7)) + [350]:
        f.write(f"{hex(p * 4096)} {'rw' if p % 2 else 'r'}\n")
EOF
nhot=60
ncold=$(grep -c . "$tmp/cold.txt")

# import
run 0 import vm "$tmp/img"
grep -q "^imported vm: 1024 pages" "$tmp/out" || bad "import summary: $(cat "$tmp/out")"
grep -q "zero" "$tmp/out" || bad "import summary has no zero share"
run 1 import vm "$tmp/img"
one_line "^tierctl import: .*vm" "import over an existing snapshot"
run 0 import --replace --quiet vm "$tmp/img"
[ -s "$tmp/out" ] && bad "import --quiet printed: $(cat "$tmp/out")"

# traces
run 0 trace import vm "$tmp/hot.trace"
run 0 trace list vm
grep -Eq "^hot +60 +" "$tmp/out" || bad "trace list: $(cat "$tmp/out")"
run 0 trace export vm hot
[ "$(grep -vc '^#' "$tmp/out")" = "$nhot" ] || bad "trace export: $(cat "$tmp/out")"
run 0 trace export -o "$tmp/hot2.txt" vm hot
[ "$(grep -vc '^#' "$tmp/hot2.txt")" = "$nhot" ] || bad "trace export -o"
run 1 trace import vm "$tmp/cold.txt" --name 'bad name'
run 1 trace export vm no-such-trace
one_line "no-such-trace" "export of a missing trace"

# place
run 0 place --cxl "$CXL" vm
grep -q "^vm tiered: .* mappings" "$tmp/out" || bad "place summary: $(cat "$tmp/out")"
run 0 place --cxl "$CXL" --policy all vm
[ "$(wc -l <"$tmp/out")" = 6 ] || bad "place --policy all: $(cat "$tmp/out")"
run 0 list
grep -q "^vm .*tiered,vanilla,reap,faasnap,aquifer,eager" "$tmp/out" || bad "list: $(cat "$tmp/out")"

# show
run 0 show vm
grep -q "^plan tiered" "$tmp/out" || bad "show: no tiered plan: $(cat "$tmp/out")"
grep -q "mappings" "$tmp/out" || bad "show: no mappings"
run 0 show --policy tiered --map "$tmp/map.svg" vm
grep -q "<svg" "$tmp/map.svg" || bad "show --map: no svg in $tmp/map.svg"
grep -q "read-only on CXL" "$tmp/map.svg" || bad "show --map: no legend"
run 0 show --json vm
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["pages"] == 1024, d
assert len(d["plans"]) == 6, d["plans"]
t = d["plans"][0]
assert t["policy"] == "tiered" and sum(t["pages"].values()) == 1024, t
' "$tmp/out" || bad "show --json"
run 1 show --map "$tmp/map.txt" vm

# replay every policy, hot and cold pages, every page verified
for p in tiered vanilla reap faasnap aquifer eager; do
	run 0 replay --json --policy "$p" --trace hot vm
	check_replay "$nhot" "replay $p hot"
	run 0 replay --json --policy "$p" --trace-file "$tmp/cold.txt" vm
	check_replay "$ncold" "replay $p cold"
done
run 0 replay --json --instances 3 --trace-file "$tmp/cold.txt" vm
check_replay $((3 * ncold)) "replay --instances 3"
run 0 replay vm
grep -q "verified *$nhot pages, 0 mismatches" "$tmp/out" || bad "replay table: $(cat "$tmp/out")"

# a TCP pool, with a key as the README sets it up
run 0 pool key new e2e --keys "$tmp/pool.keys" --role write --snapshots 'vm*' --store "$TIER_STORE"
"$T" pool serve --listen tcp://127.0.0.1:0 --keys "$tmp/pool.keys" --dir "$tmp/pooldir" >"$tmp/pool.out" 2>"$tmp/pool.err" &
pool_pid=$!
for _ in $(seq 100); do
	[ -s "$tmp/pool.out" ] && break
	sleep 0.1
done
port=$(sed -n 's|^listening on tcp://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$tmp/pool.out")
if [ -z "$port" ]; then
	bad "pool serve: no 'listening on' line: $(cat "$tmp/pool.out" "$tmp/pool.err")"
else
	run 0 place --cxl "$CXL" --pool "pool=tcp://127.0.0.1:$port" vm
	run 0 replay --json --trace-file "$tmp/cold.txt" vm
	check_replay "$ncold" "replay over TCP"
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["pool_bytes"] > 0 and d["faults"]["cold"] > 0, d
' "$tmp/out" || bad "replay over TCP read nothing from the pool"

	# the pool dies: fail closed, one line naming the pool, no mismatch
	kill -KILL "$pool_pid"
	wait "$pool_pid" 2>/dev/null
	pool_pid=
	run '!0' replay --json --trace-file "$tmp/cold.txt" vm
	one_line "^tierctl replay: .*127\.0\.0\.1:$port" "replay with a dead pool"
	grep -qi mismatch "$tmp/err" && bad "replay with a dead pool reported a mismatch"
	[ -s "$tmp/out" ] && bad "replay with a dead pool printed a report: $(cat "$tmp/out")"
	run '!0' replay --instances 2 --trace-file "$tmp/cold.txt" vm
	grep -qi mismatch "$tmp/err" && bad "replay --instances 2 with a dead pool: mismatch"
	grep -q "127\.0\.0\.1:$port" "$tmp/err" || bad "replay --instances 2, dead pool: $(cat "$tmp/err")"
fi

# a lazy fetch that fails (the file pool's segment cut short) fails closed
# in the fault handler: one line, no mismatch
run 0 place --cxl "$CXL" --pool "pool=file:$tmp/fpool" vm
seg=$(find "$tmp/fpool" -type f -path '*tiered*')
if [ "$(echo "$seg" | grep -c .)" != 1 ]; then
	bad "no single tiered segment in the file pool: $seg"
else
	truncate -s $(( $(stat -c %s "$seg") / 4 / 4096 * 4096 )) "$seg"
	run '!0' replay --trace-file "$tmp/cold.txt" vm
	one_line "^tierctl replay: .*$tmp/fpool" "replay of a cut segment"
	grep -qi mismatch "$tmp/err" && bad "replay of a cut segment reported a mismatch"
fi

# a corrupt manifest: one line naming the snapshot
run 0 import vm2 "$tmp/img"
python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100); b = f.read(1); f.seek(100); f.write(bytes([b[0] ^ 0xff]))
' "$TIER_STORE/snapshots/vm2/manifest"
run 1 show vm2
one_line "^tierctl show: .*vm2" "show of a corrupt snapshot"
run 1 replay --trace-file "$tmp/cold.txt" vm2
one_line "^tierctl replay: .*vm2" "replay of a corrupt snapshot"
run 1 list
grep -q "^vm " "$tmp/out" || bad "list hides good snapshots behind a corrupt one"
run 0 rm vm2

# truncated images: the input, and the store's copy
head -c 5000 "$tmp/img" >"$tmp/short.img"
run 1 import short "$tmp/short.img"
one_line "^tierctl import: .*short.img" "import of a truncated image"
run 0 import vm3 "$tmp/img"
truncate -s 8192 "$TIER_STORE/snapshots/vm3/image"
run 1 replay --policy vanilla --trace-file "$tmp/cold.txt" vm3
one_line "^tierctl replay: .*vm3" "replay of a truncated image"

# A flipped byte, wherever it lands, is caught and never served as the page:
# in the store's image (place refuses to spread it; vanilla, which maps the
# image, reports a mismatch), in the CXL object (the replay's verification
# reports it), in the pool segment (the restorer checks every fetched page).
flip() {	# flip FILE OFFSET
	python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x5a]))
' "$1" "$2"
}
run 0 import vm4 "$tmp/img"
run 0 trace import vm4 "$tmp/hot.trace"
flip "$TIER_STORE/snapshots/vm4/image" $((501 * 4096 + 100))	# page 501: hot, read only
run 1 place --cxl "$CXL" --policy tiered vm4
one_line "^tierctl place: .*501" "place of an image with a flipped byte"
run 1 replay --policy vanilla --trace hot --json vm4
grep -q '"mismatches": *1,' "$tmp/out" || bad "vanilla replay of a flipped page: $(cat "$tmp/out")"
grep -qi "mismatch.*501\|501.*mismatch\|page 501" "$tmp/err" || bad "vanilla replay did not name page 501: $(cat "$tmp/err")"
run 0 rm vm4

run 0 import vm5 "$tmp/img"
run 0 trace import vm5 "$tmp/hot.trace"
run 0 place --cxl "$CXL" --policy tiered --pool "pool=file:$tmp/fpool5" vm5
obj=$(find "$tmp/cxl" -type f -path '*vm5*tiered*' | head -1)
[ -n "$obj" ] || bad "no tiered CXL object for vm5"
# page 505 is read only and hot: its bytes are the object's, somewhere in it;
# find them by content (the first 8 bytes are the page number)
off=$(python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
i = d.find((505).to_bytes(8, "little") + bytes((505 * 31 + j) & 0xff for j in range(8)))
print(i + 200 if i >= 0 and i % 4096 == 0 else -1)' "$obj")
if [ "$off" -lt 0 ]; then
	bad "page 505 not found in the CXL object"
else
	flip "$obj" "$off"
	run 1 replay --policy tiered --trace hot --json vm5
	grep -q '"mismatches": *1,' "$tmp/out" || bad "tiered replay of a flipped CXL page: $(cat "$tmp/out")"
	flip "$obj" "$off"
fi
seg=$(find "$tmp/fpool5" -type f -path '*tiered*' | head -1)
[ -n "$seg" ] || bad "no tiered pool segment for vm5"
# the segment starts with the rw pages: flip its first page
flip "$seg" 10
run 1 replay --policy tiered --trace hot vm5
one_line "^tierctl replay: .*checksum" "tiered replay of a flipped pool page"
[ -s "$tmp/out" ] && bad "a flipped pool page: the replay ran and reported: $(cat "$tmp/out")"
run 0 rm vm5

# rm
run 0 rm vm3
run 0 list
grep -q "^vm3 " "$tmp/out" && bad "rm: vm3 still listed"
run 1 rm vm3

exit $fail
