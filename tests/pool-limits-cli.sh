#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: unit -- a client over "tierctl pool serve --max-connections" is
# told why in one line: "tierctl place" against a server whose only
# connection another client holds exits 1 with the server's reason, and
# succeeds once that client has gone.
set -uo pipefail
T=${TIERCTL:?set TIERCTL to the tierctl binary}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
export TIER_STORE=$tmp/store
fail=0
bad() {
	echo "FAIL: $*" >&2
	fail=1
}

python3 -c "
with open('$tmp/img', 'wb') as f:
    for p in range(64):
        f.write(bytes([p + 1]) * 4096)"
"$T" import --quiet s "$tmp/img" || exit 1
"$T" pool serve --listen tcp://127.0.0.1:0 --no-auth --max-connections 1 >"$tmp/serve.out" &
pid=$!
for _ in $(seq 100); do
	grep -q "^listening on" "$tmp/serve.out" && break
	sleep 0.1
done
uri=$(sed -n 's/^listening on //p' "$tmp/serve.out")
[ -n "$uri" ] || { echo "FAIL: pool serve did not listen"; exit 1; }

# The holder: HELLO answered, then it keeps the connection until told.
python3 - "${uri##*:}" "$tmp/held" "$tmp/release" <<'EOF' &
import os, socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
hello = struct.pack("<IIII64s", 1, 0, 0, 0, b"holder")
s.sendall(struct.pack("<IHHQiIQ", 0x4c4f4f50, 1, 1, 1, 0, len(hello), 0) + hello)
hdr = s.recv(32, socket.MSG_WAITALL)
assert struct.unpack("<IHHQiIQ", hdr)[4] == 0, hdr
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
EOF
holder=$!
while [ ! -e "$tmp/held" ]; do
	kill -0 "$holder" 2>/dev/null || { echo "FAIL: the holder was not served"; exit 1; }
	sleep 0.05
done

"$T" place --cxl "cxl=dir:$tmp/cxl" --pool "pool=$uri" s >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" = 1 ] || bad "place over the limit exited $rc: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/err")" = 1 ] || bad "place over the limit: not one line: $(cat "$tmp/err")"
grep -q "^tierctl place: .*pool server: serving its limit of 1 connections (--max-connections); try again later$" "$tmp/err" ||
	bad "place over the limit: $(cat "$tmp/err")"

touch "$tmp/release"
wait "$holder"
ok=
for _ in $(seq 50); do	# the holder's thread ends a moment after it left
	if "$T" place --cxl "cxl=dir:$tmp/cxl" --pool "pool=$uri" s >"$tmp/out" 2>"$tmp/err"; then
		ok=1
		break
	fi
	sleep 0.1
done
[ -n "$ok" ] || bad "place after the holder left: $(cat "$tmp/err")"
grep -q "^s tiered: .*pool 256 KiB" "$tmp/out" || bad "place summary: $(cat "$tmp/out")"

kill -TERM "$pid"
wait "$pid" || bad "pool serve exited $? after SIGTERM"
pid=
exit $fail
