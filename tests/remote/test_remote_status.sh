#!/bin/bash
# test_remote_status.sh - `kvctl serve` logs one line per connection event
# and `kvctl status --server HOST:PORT` shows pool, blocks, clients and
# counters, as text and as JSON.
# kv-test-timeout: 60
set -u
B=${KV_BUILD:-build}/tests/remote
K=${KV_BUILD:-build}/kvctl
[ -x "$B/kvr_serve" ] || { echo "kvr_serve not built"; exit 1; }
[ -x "$K" ] || { echo "kvctl not built"; exit 1; }
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
"$B/kvr_serve" --listen 127.0.0.1:0 --pool 8M --block-bytes 4096 --no-kvmem \
	--port-file "$tmp/port" >"$tmp/log" 2>&1 &
srv=$!
for i in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port" 2>/dev/null) || { echo "FAIL: server did not start"; cat "$tmp/log"; exit 1; }
fail=0
out=$("$K" status --server "127.0.0.1:$port") || { echo "FAIL: status exit $?"; fail=1; }
echo "$out"
echo "$out" | grep -q "pool .*2048 blocks of 4 KiB" || { echo "FAIL: pool line"; fail=1; }
echo "$out" | grep -q "clients .*1 connected" || { echo "FAIL: clients line"; fail=1; }
json=$("$K" status --server "127.0.0.1:$port" --json) || { echo "FAIL: status --json"; fail=1; }
echo "$json"
echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["capacity"] == 2048 and d["block_bytes"] == 4096 and d["connections_total"] == 2, d' ||
	{ echo "FAIL: json fields"; fail=1; }
"$K" status --server "127.0.0.1:1" 2>"$tmp/err" && { echo "FAIL: status of a closed port succeeded"; fail=1; }
grep -q "cannot get status" "$tmp/err" || { echo "FAIL: no error line: $(cat "$tmp/err")"; fail=1; }
kill $srv; wait $srv 2>/dev/null; srv=
cat "$tmp/log"
grep -q "serve: listening on 127.0.0.1:$port" "$tmp/log" || { echo "FAIL: no listening line"; fail=1; }
[ "$(grep -c ': connected$' "$tmp/log")" = 2 ] || { echo "FAIL: expected 2 connect lines"; fail=1; }
[ "$(grep -c ': closed (' "$tmp/log")" = 2 ] || { echo "FAIL: expected 2 close lines"; fail=1; }
exit $fail
