#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: unit -- the CLI's usage contract: --help everywhere (stdout, exit
# 0), usage errors exit 2, failures exit 1 with one "tierctl CMD: ..." line.
set -uo pipefail

T=${TIERCTL:?set TIERCTL to the tierctl binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TIER_STORE=$tmp/store
fail=0

bad() {
	echo "FAIL: $*" >&2
	fail=1
}

# expect RC CMD...: runs CMD, keeps stdout/stderr in $tmp/out, $tmp/err
expect() {
	local want=$1 rc
	shift
	"$T" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ "$rc" = "$want" ] || bad "tierctl $* exited $rc, want $want; stderr: $(cat "$tmp/err")"
	if [ "$want" = 2 ]; then
		[ -s "$tmp/out" ] && bad "tierctl $*: a usage error wrote to stdout"
		[ -s "$tmp/err" ] || bad "tierctl $*: a usage error said nothing"
	fi
}

# every command and group answers --help on stdout with exit 0
for cmd in "" import list rm gc place show replay fc-handler version help \
	   trace "trace import" "trace export" "trace list" \
	   pool "pool serve" "pool key" "pool key new" "pool key list" \
	   "pool key revoke"; do
	# shellcheck disable=SC2086
	expect 0 $cmd --help
	grep -q "^usage:" "$tmp/out" || bad "tierctl $cmd --help: no usage on stdout"
	[ -s "$tmp/err" ] && bad "tierctl $cmd --help wrote to stderr"
done
expect 0 help
grep -q "^usage:" "$tmp/out" || bad "tierctl help: no usage"
for cmd in import list rm gc trace place show replay fc-handler pool version; do
	grep -q "^   $cmd " "$tmp/out" || bad "tierctl help does not list $cmd"
done
expect 0 help replay
grep -q "^usage: tierctl replay" "$tmp/out" || bad "tierctl help replay: not replay's usage"
expect 0 help trace import
grep -q "^usage: tierctl trace import" "$tmp/out" || bad "tierctl help trace import"

expect 0 version
grep -q "^tierctl [0-9]" "$tmp/out" || bad "tierctl version: $(cat "$tmp/out")"

# unknown commands and options, missing arguments: exit 2, nothing on stdout
expect 2 frobnicate
grep -q "unknown command 'frobnicate'" "$tmp/err" || bad "unknown command message: $(cat "$tmp/err")"
expect 2 fc-handler
expect 2 trace frobnicate
expect 2 pool frobnicate
expect 2
expect 2 trace
expect 2 import
expect 2 import only-one
expect 2 import a b c
expect 2 import --bogus a b
expect 2 import --region 12 a b
expect 2 rm
expect 2 list extra
expect 2 trace import snap
expect 2 trace export snap
expect 2 trace list
expect 2 place
expect 2 place --policy nonsense snap
grep -q "nonsense" "$tmp/err" || bad "place --policy nonsense: message does not quote it"
expect 2 place --confidence 2 snap
expect 2 place --gap x snap
expect 2 place --layout sideways snap
expect 2 place --cluster-gap none snap
expect 2 place --map-ns 0 snap
expect 2 place --cxl-capacity 12Q snap
expect 2 show
expect 2 show --policy nonsense snap
expect 2 replay
expect 2 replay --instances 0 snap
expect 2 replay --trace a --trace-file b snap
expect 2 pool serve
expect 2 version extra

# a bad URI is a failure (1) with one line naming the URI
for uri in "cxl=bogus:/x" "cxl=devdax:" "pool=tcp://nohost"; do
	opt=--cxl
	case $uri in pool=*) opt=--pool ;; esac
	expect 1 place "$opt" "$uri" snap
	[ "$(wc -l <"$tmp/err")" = 1 ] || bad "place $opt $uri: not one line: $(cat "$tmp/err")"
	grep -q "^tierctl place: .*$uri" "$tmp/err" || bad "place $opt $uri: $(cat "$tmp/err")"
done
expect 1 place --cxl pool=file:/x snap
grep -q "^tierctl place: " "$tmp/err" || bad "a pool URI given as --cxl: $(cat "$tmp/err")"
expect 1 pool serve --no-auth --listen file:/x
grep -q "^tierctl pool serve: .*file:/x" "$tmp/err" || bad "pool serve on a file URI: $(cat "$tmp/err")"
expect 2 pool serve --listen tcp://127.0.0.1:0
grep -q "^tierctl pool serve: give --keys PATH" "$tmp/err" || bad "pool serve without --keys or --no-auth: $(cat "$tmp/err")"
expect 2 pool serve --listen tcp://127.0.0.1:0 --keys /x --no-auth
grep -q "exclude each other" "$tmp/err" || bad "pool serve --keys --no-auth: $(cat "$tmp/err")"
expect 2 pool key
expect 2 pool key new k1 --keys "$tmp/keys"
expect 2 pool key new k1 --keys "$tmp/keys" --role read
grep -q "one of --store DIR and --out FILE" "$tmp/err" || bad "pool key new without --store/--out: $(cat "$tmp/err")"
expect 2 pool key new k1 --keys "$tmp/keys" --role boss --out "$tmp/c"
grep -q "role 'boss'" "$tmp/err" || bad "pool key new --role boss: $(cat "$tmp/err")"
expect 2 pool key new k1 --keys "$tmp/keys" --role read --snapshots 'a/b' --out "$tmp/c"
expect 1 pool key new .k --keys "$tmp/keys" --role read --out "$tmp/c"
grep -q "^tierctl pool key new: key ID '.k'" "$tmp/err" || bad "pool key new .k: $(cat "$tmp/err")"
[ -e "$tmp/keys" ] && bad "a refused pool key new wrote the key file"
expect 1 pool key list --keys "$tmp/no-such-keys"
grep -q "^tierctl pool key list: .*no-such-keys" "$tmp/err" || bad "pool key list of a missing file: $(cat "$tmp/err")"
expect 2 pool key revoke --keys "$tmp/keys"
expect 2 pool serve --no-auth --listen tcp://127.0.0.1:0 --max-bytes 12Q
grep -q "^tierctl pool serve: --max-bytes \"12Q\": not a size above 0" "$tmp/err" ||
	bad "pool serve --max-bytes 12Q: $(cat "$tmp/err")"

# a missing snapshot: one line naming it
expect 1 show no-such-snap
[ "$(wc -l <"$tmp/err")" = 1 ] || bad "show no-such-snap: not one line: $(cat "$tmp/err")"
grep -q "^tierctl show: .*no-such-snap" "$tmp/err" || bad "show no-such-snap: $(cat "$tmp/err")"

# stdout errors are caught: a full disk must not exit 0
if [ -w /dev/full ]; then
	"$T" --help >/dev/full 2>/dev/null && bad "tierctl --help >/dev/full exited 0"
fi

exit $fail
