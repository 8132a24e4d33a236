#!/bin/sh
# test_kvctl_usage.sh - kvctl's command line: usage lists every command,
# bad commands and options exit 2 with one clear line naming the problem,
# --help documents every option, unimplemented commands say so.
# Exit: 0 pass, 1 fail.
# kv-test-timeout: 60
set -u

kvctl=${KV_BUILD:-build}/kvctl
[ -x "$kvctl" ] || { echo "FAIL: $kvctl is not built"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

# expect RC PATTERN ARGS...: kvctl ARGS exits RC and its output matches PATTERN
expect() {
	want=$1 pat=$2
	shift 2
	"$kvctl" "$@" >"$tmp/out" 2>&1 </dev/null
	rc=$?
	if [ $rc -ne "$want" ]; then
		echo "FAIL: kvctl $*: exit $rc, expected $want"; sed 's/^/    /' "$tmp/out"; fail=1
	elif ! grep -q -e "$pat" "$tmp/out"; then
		echo "FAIL: kvctl $*: output lacks '$pat'"; sed 's/^/    /' "$tmp/out"; fail=1
	else
		echo "ok: kvctl $* -> $rc"
	fi
}

expect 2 "Usage: kvctl"
for c in replay bench status regions blocks evict serve; do
	expect 0 "^  $c " --help
done
expect 0 "^kvctl [0-9]" --version
# A disk tier in a directory that does not exist: named as such, non-zero exit.
expect 1 "directory must exist" replay -n 5 --disk /nonexistent-kvctl-dir/kv.disk -q
# kvctl and the library it runs have one version, the Makefile's and kv.h's.
v=$(sed -n 's/^KV_VERSION := //p' "${KV_SRC:-.}/Makefile")
expect 0 "^kvctl $v (libkv $v," --version
expect 2 "kvctl: unknown command 'frobnicate'" frobnicate
expect 2 "kvctl: unknown option '--frob'" --frob
# Commands not in the tree yet say so; present ones reject a bad option.
"$kvctl" --help >"$tmp/help" 2>&1
for c in serve blocks evict; do
	if grep -q "^  $c .*(not implemented yet)" "$tmp/help"; then
		expect 2 "kvctl: $c: not implemented yet" $c
	else
		expect 2 "$c" $c --no-such-option
	fi
done

expect 2 "kvctl: replay: unknown option '--bogus'" replay --bogus
expect 2 "kvctl: replay: invalid value 'foo' for --layout" replay --layout foo
expect 2 "kvctl: replay: invalid value '0' for --requests" replay --requests 0
expect 2 "kvctl: replay: invalid value 'x' for --requests" replay -n x
expect 2 "kvctl: replay: invalid value '12Q' for --host-bytes" replay --host-bytes 12Q
expect 2 "kvctl: replay: invalid value '-1' for --seed" replay --seed -1
expect 2 "kvctl: replay: invalid value '0' for --block-tokens" replay --block-tokens 0
expect 2 "kvctl: replay: invalid value '' for --disk" replay --disk ""
expect 2 "kvctl: replay: option '--layers' needs a value" replay --layers
expect 2 "kvctl: replay: unexpected argument 'extra'" replay extra
expect 2 "kvctl: replay: --layout mla needs --kv-heads 1" replay --layout mla --kv-heads 8
expect 2 "kvctl: bench: unknown option '--bogus'" bench --bogus
expect 2 "kvctl: bench: invalid value 'gpu' for --sections" bench --sections gpu
expect 2 "kvctl: bench: invalid value '1000' for --sizes" bench --sizes 1000
expect 2 "kvctl: bench: invalid value '0' for --rounds" bench --rounds 0
expect 2 "kvctl: bench: invalid value 'abc' for --seconds" bench --seconds abc

# --help documents every option with its default.
"$kvctl" replay --help >"$tmp/replay.txt" 2>&1 || { echo "FAIL: replay --help exited $?"; fail=1; }
for o in --requests --seed --host-bytes --layout --block-tokens --layers --disk \
	--disk-bytes --peers --json --quiet --inflight --queue-depth; do
	grep -q -e "$o" "$tmp/replay.txt" || { echo "FAIL: replay --help lacks $o"; fail=1; }
done
grep -q "default 1000" "$tmp/replay.txt" || { echo "FAIL: replay --help lacks the default request count"; fail=1; }
"$kvctl" bench --help >"$tmp/bench.txt" 2>&1 || { echo "FAIL: bench --help exited $?"; fail=1; }
for o in --sections --sizes --working-set --rounds --batch --index-blocks --seconds --quick --json; do
	grep -q -e "$o" "$tmp/bench.txt" || { echo "FAIL: bench --help lacks $o"; fail=1; }
done

# The checker is not a rubber stamp: spoiled blocks are caught, exit 1.
"$kvctl" replay -n 60 --corrupt-every 25 --json >"$tmp/c.json" 2>"$tmp/c.err"
rc=$?
if [ $rc -ne 1 ]; then
	echo "FAIL: replay --corrupt-every 25 exited $rc, expected 1"; fail=1
elif ! grep -q "verification failures" "$tmp/c.err"; then
	echo "FAIL: replay --corrupt-every: no message on stderr"; fail=1
elif command -v python3 >/dev/null 2>&1 &&
	! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["corrupted_on_purpose"] > 0 and d["verify_failures"] == d["corrupted_on_purpose"] else 1)' "$tmp/c.json"; then
	echo "FAIL: replay --corrupt-every: failures do not match the spoiled blocks"; cat "$tmp/c.json"; fail=1
else
	echo "ok: spoiled blocks are counted as verification failures (exit 1)"
fi

[ $fail -eq 0 ] && echo "PASS"
exit $fail
