#!/bin/bash
# test_remote_noverbs.sh - a host without libibverbs: libkv opens it with
# dlopen on first use, and here KV_VERBS_LIB points that dlopen at nothing
# (or at a library that is not libibverbs). The remote tier must then work
# over TCP: quietly, with one warning line when an RDMA device was named;
# `kvctl serve --rdma-dev` must refuse with one clear line. kvctl itself must
# not need libibverbs (or libcrypto) to start.
# Exit: 0 pass, 1 fail, 77 skip (no python3).
# kv-test-timeout: 180
set -u
kvctl=${KV_BUILD:-build}/kvctl
[ -x "$kvctl" ] || { echo "FAIL: $kvctl is not built"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read --json output"; exit 77; }
tmp=$(mktemp -d) || exit 1
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
missing=$tmp/none/libibverbs.so.1
export KV_VERBS_LIB=$missing

# kvctl's own dependencies: none of the optional libraries.
if command -v readelf >/dev/null; then
	need=$(readelf -d "$kvctl" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
	case " $need" in
	*" libibverbs"* | *" libcrypto"*) echo "FAIL: kvctl needs: $need"; fail=1 ;;
	*) echo "ok: kvctl needs only: $need" ;;
	esac
fi

# 1. The server refuses --rdma-dev with one line naming the library.
"$kvctl" serve --listen 127.0.0.1:0 --pool 16M --rdma-dev rxe0 -q >"$tmp/s1.out" 2>"$tmp/s1.err"
rc=$?
if [ $rc -ne 1 ] || [ "$(wc -l <"$tmp/s1.err")" -ne 1 ] || ! grep -q "libibverbs" "$tmp/s1.err"; then
	echo "FAIL: kvctl serve --rdma-dev without libibverbs: exit $rc, stderr:"; cat "$tmp/s1.err"; fail=1
else
	echo "ok: serve --rdma-dev refused: $(cat "$tmp/s1.err")"
fi

# 2. A TCP server, and replays against it.
rm -f "$tmp/port"
"$kvctl" serve --listen 127.0.0.1:0 --pool 256M --port-file "$tmp/port" -q >"$tmp/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; kill -0 $server 2>/dev/null || break; sleep 0.1; done
[ -s "$tmp/port" ] || { cat "$tmp/serve.log"; echo "FAIL: kvctl serve did not start"; exit 1; }
peer=127.0.0.1:$(cat "$tmp/port")

# replay NAME SEED [kvctl replay options]: byte-exact loads, blocks stored on
# and served by the peer, nothing over RDMA.
replay() {
	local name=$1 seed=$2
	shift 2
	"$kvctl" replay --json -n 200 --seed "$seed" --peers "$peer" "$@" >"$tmp/$name.json" 2>"$tmp/$name.err" || {
		cat "$tmp/$name.err"; echo "FAIL: $name: replay exited $?"; fail=1; return; }
	python3 - "$tmp/$name.json" "$name" <<'PY' || fail=1
import json, sys
d, name, bad = json.load(open(sys.argv[1])), sys.argv[2], []
r = d["tiers"]["remote"]
if d["verify_failures"] or d["load_errors"]: bad.append("%d verification failures, %d load errors" % (d["verify_failures"], d["load_errors"]))
if r["bytes_in"] <= 0: bad.append("nothing was stored on the peer")
if r["hits"] <= 0: bad.append("nothing was served by the peer")
print(("FAIL: %s: " % name + "; ".join(bad)) if bad else
      "ok: %s: over TCP, %d remote hits, 0 verification failures" % (name, r["hits"]))
sys.exit(1 if bad else 0)
PY
}

# 2a. No device named: not a word.
replay quiet 21
if [ -s "$tmp/quiet.err" ]; then echo "FAIL: quiet: it printed:"; cat "$tmp/quiet.err"; fail=1; fi
# 2b. A device named: exactly one warning, naming the library.
replay named 22 --rdma-dev rxe0
if [ "$(wc -l <"$tmp/named.err")" -ne 1 ] || ! grep -q "libibverbs.*remote tier uses TCP" "$tmp/named.err"; then
	echo "FAIL: named: expected one warning naming libibverbs, got:"; cat "$tmp/named.err"; fail=1
else
	echo "ok: named: $(cat "$tmp/named.err")"
fi
# 2c. A library that is not libibverbs (no ibv_* symbols): the same, and says which symbol.
xx=$(ldd "$kvctl" | sed -n 's/.*libxxhash[^ ]* => \([^ ]*\).*/\1/p')
if [ -n "$xx" ]; then
	KV_VERBS_LIB=$xx replay foreign 23 --rdma-dev rxe0
	if ! grep -q "has no ibv_" "$tmp/foreign.err"; then
		echo "FAIL: foreign: expected 'has no ibv_...', got:"; cat "$tmp/foreign.err"; fail=1
	else
		echo "ok: foreign: $(cat "$tmp/foreign.err")"
	fi
fi
# 2d. The real libibverbs, where installed: loaded and asked for its devices
# through the table (none here is named kvnodev0).
if ldconfig -p 2>/dev/null | grep -q "libibverbs.so.1 "; then
	KV_VERBS_LIB= replay loaded 24 --rdma-dev kvnodev0
	if ! grep -q "RDMA device kvnodev0 not usable: No such device; remote tier uses TCP" "$tmp/loaded.err"; then
		echo "FAIL: loaded: expected 'No such device', got:"; cat "$tmp/loaded.err"; fail=1
	else
		echo "ok: loaded: $(cat "$tmp/loaded.err")"
	fi
else
	echo "ok: loaded: skipped, libibverbs.so.1 is not installed here"
fi
[ $fail -eq 0 ] && echo "PASS"
exit $fail
