#!/bin/bash
# bench_tiers.sh - make bench's latency rows (bench_latency: host-hit loads
# without and with a peer, stores into a pool full of dirty blocks over a
# disk tier) and a replay through host, disk and a memory server showing the
# hits of each tier. Servers run on loopback and stop with the script.
# usage: bench_tiers.sh BENCH_LATENCY_BINARY
set -u
bin=${1:?usage: bench_tiers.sh BENCH_LATENCY_BINARY}
kvctl=${KV_BUILD:-build}/kvctl
tmp=$(mktemp -d "${KV_BUILD:-build}/bench-tiers.XXXXXX") || exit 1
pids=
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# serve BLOCK_BYTES POOL: start a memory server, echo its host:port.
serve() {
	local pf=$tmp/port.$1
	"$kvctl" serve --listen 127.0.0.1:0 --pool "$2" --block-bytes "$1" --no-kvmem \
		--port-file "$pf" -q >"$tmp/serve.$1.log" 2>&1 &
	pids="$pids $!"
	for _ in $(seq 1 200); do
		[ -s "$pf" ] && { echo "127.0.0.1:$(cat "$pf")"; return 0; }
		sleep 0.05
	done
	echo "bench_tiers: the memory server did not start" >&2
	return 1
}

peer=$(serve 524288 256M) || exit 1
"$bin" "$tmp" "$peer" || exit 1

echo
echo "Replay through host, disk and a memory server (kvctl replay, 1000 requests)"
peer=$(serve 262144 2G) || exit 1
"$kvctl" replay --host-bytes 64M --disk "$tmp/replay.disk" --disk-bytes 128M --peers "$peer" \
	--admit all 2>&1 | sed -n '/tier\|host\|disk\|remote\|hit/p' | sed 's/^/  /'
