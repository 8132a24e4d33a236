#!/bin/bash
# test_kvctl_replay_peers.sh - `kvctl replay --peers` against a `kvctl serve`
# memory server on loopback: every load verifies and blocks evicted from the
# small host pool come back from the remote tier; then the server is killed
# in the middle of a replay, which must still finish with every load right
# (a dead peer is a miss, never wrong data, never a hang). Last, two servers
# with --auth-file and --replicas 2: both hold every block; a wrong secret
# stores nothing.
# Skips (77) while kvctl has no serve or the library no remote tier.
# Exit: 0 pass, 1 fail, 77 skip.
# kv-test-timeout: 300
set -u

kvctl=${KV_BUILD:-build}/kvctl
[ -x "$kvctl" ] || { echo "FAIL: $kvctl is not built"; exit 1; }
if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 is needed to parse kvctl's --json output"; exit 77
fi
if "$kvctl" --help | grep -q "^  serve .*(not implemented yet)"; then
	echo "SKIP: kvctl serve is not implemented yet"; exit 77
fi
tmp=$(mktemp -d) || exit 1
server= replay=
stop_server() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null
		wait "$server" 2>/dev/null
		server=
	fi
}
trap '[ -n "$replay" ] && kill "$replay" 2>/dev/null; stop_server; rm -rf "$tmp"' EXIT

# start_server: a 512 MiB server on a free loopback port; sets $server, $port
start_server() {
	rm -f "$tmp/port"
	"$kvctl" serve --listen 127.0.0.1:0 --pool 512M --port-file "$tmp/port" -q \
		>"$tmp/serve.log" 2>&1 &
	server=$!
	for _ in $(seq 100); do
		[ -s "$tmp/port" ] && break
		kill -0 "$server" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -s "$tmp/port" ]; then
		cat "$tmp/serve.log"
		echo "FAIL: kvctl serve did not start"
		exit 1
	fi
	port=$(cat "$tmp/port")
}

start_server
"$kvctl" replay --json -n 300 --seed 9 --peers "127.0.0.1:$port" >"$tmp/a.json" 2>"$tmp/a.err"
rc=$?
cat "$tmp/a.err"
if [ $rc -ne 0 ] && grep -qi "not supported" "$tmp/a.err"; then
	echo "SKIP: the library has no remote tier yet ($(tail -n 1 "$tmp/a.err"))"
	exit 77
fi
[ $rc -eq 0 ] || { echo "FAIL: replay --peers exited $rc"; exit 1; }
fail=0
python3 - "$tmp/a.json" <<'PY' || fail=1
import json, sys
d, bad = json.load(open(sys.argv[1])), []
if d["verify_failures"]: bad.append("%d verification failures" % d["verify_failures"])
if d["tiers"]["remote"]["bytes_in"] <= 0: bad.append("nothing was stored on the peer")
if d["cached_tokens_by_tier"]["remote"] <= 0 and d["tiers"]["remote"]["hits"] <= 0:
    bad.append("nothing was served from the peer")
print("peers: hit %.1f%% (host %d, remote %d tokens), remote hits %d" %
      (100 * d["hit_rate"], d["cached_tokens_by_tier"]["host"],
       d["cached_tokens_by_tier"]["remote"], d["tiers"]["remote"]["hits"]))
for b in bad: print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

# Kill the server while a replay uses it.
stop_server
start_server
"$kvctl" replay --json -n 600 --seed 10 --peers "127.0.0.1:$port" >"$tmp/b.json" 2>"$tmp/b.err" &
replay=$!
sleep 2
stop_server
wait $replay
rc=$?
replay=
cat "$tmp/b.err"
if [ $rc -ne 0 ]; then
	echo "FAIL: replay exited $rc after its peer was killed"; fail=1
else
	python3 - "$tmp/b.json" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
print("peer killed: %d requests, %d verification failures, %d remote failures, %d load errors" %
      (d["requests"], d["verify_failures"], d["tiers"]["remote"]["failures"], d["load_errors"]))
sys.exit(1 if d["verify_failures"] or d["requests"] != 600 else 0)
PY
fi
# Two servers that require a secret, every block on both (--replicas 2),
# configured through kvctl's options (kv_config's remote fields).
head -c 32 /dev/urandom >"$tmp/secret"
head -c 32 /dev/urandom >"$tmp/wrong"
auth_servers=
for i in 1 2; do
	rm -f "$tmp/port$i"
	"$kvctl" serve --listen 127.0.0.1:0 --pool 256M --auth-file "$tmp/secret" \
		--port-file "$tmp/port$i" -q >"$tmp/serve$i.log" 2>&1 &
	auth_servers="$auth_servers $!"
done
trap '[ -n "$replay" ] && kill "$replay" 2>/dev/null; stop_server; kill $auth_servers 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/port1" ] && [ -s "$tmp/port2" ] && break; sleep 0.1; done
p1=$(cat "$tmp/port1") p2=$(cat "$tmp/port2")
peers="127.0.0.1:$p1,127.0.0.1:$p2"
"$kvctl" replay --json -n 200 --seed 11 --peers "$peers" --replicas 2 --auth-file "$tmp/secret" \
	--remote-timeout 3000 --no-rdma >"$tmp/c.json" 2>"$tmp/c.err" || { cat "$tmp/c.err"; echo "FAIL: replay with --replicas 2"; fail=1; }
for p in $p1 $p2; do
	"$kvctl" status --server "127.0.0.1:$p" --auth-file "$tmp/secret" --json >"$tmp/st$p.json" ||
		{ echo "FAIL: status --auth-file of 127.0.0.1:$p"; fail=1; }
done
python3 - "$tmp/c.json" "$tmp/st$p1.json" "$tmp/st$p2.json" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
a, b = (json.load(open(f)) for f in sys.argv[2:4])
print("replicas 2: %d verification failures; servers hold %d and %d blocks" %
      (d["verify_failures"], a["blocks"], b["blocks"]))
bad = d["verify_failures"] or a["blocks"] == 0 or a["blocks"] != b["blocks"]
sys.exit(1 if bad else 0)
PY
"$kvctl" status --server "127.0.0.1:$p1" >/dev/null 2>"$tmp/noauth.err" &&
	{ echo "FAIL: status without the secret succeeded"; fail=1; }
"$kvctl" status --server "127.0.0.1:$p1" --auth-file "$tmp/wrong" >/dev/null 2>>"$tmp/noauth.err" &&
	{ echo "FAIL: status with a wrong secret succeeded"; fail=1; }
cat "$tmp/noauth.err"
# A wrong secret is a configuration error: one line naming it, exit 1, never retried.
"$kvctl" replay --json -n 50 --seed 12 --peers "$peers" --auth-file "$tmp/wrong" --no-rdma \
	>"$tmp/d.json" 2>"$tmp/d.err"
rc=$?
[ $rc -eq 1 ] || { echo "FAIL: replay with a wrong secret exited $rc, want 1"; fail=1; }
grep -q "refused this client: authentication failed; not retried" "$tmp/d.err" ||
	{ echo "FAIL: no refusal line"; cat "$tmp/d.err"; fail=1; }
[ "$(grep -c "refused this client:" "$tmp/d.err")" -eq 2 ] ||
	{ echo "FAIL: each refusing peer is named once"; cat "$tmp/d.err"; fail=1; }
grep -q "2 of 2 peers refused" "$tmp/d.err" || { echo "FAIL: replay does not say so"; fail=1; }
python3 - "$tmp/d.json" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
print("wrong secret: remote bytes in %d, verification failures %d" %
      (d["tiers"]["remote"]["bytes_in"], d["verify_failures"]))
sys.exit(1 if d["tiers"]["remote"]["bytes_in"] or d["verify_failures"] else 0)
PY
[ $fail -eq 0 ] && echo "PASS"
exit $fail
