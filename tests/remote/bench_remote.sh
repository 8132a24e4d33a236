#!/bin/bash
# bench_remote.sh - remote tier over TCP on loopback against iperf3 on
# loopback, in the same run, same message size (1 MiB blocks; iperf3 -l 1M),
# interleaved rounds so both see the same machine load. Prints a table with
# the median and the spread (min..max) of each and the ratio of medians.
#   KV_BENCH_ROUNDS (default 3), KV_BENCH_SECONDS per measurement (default 3)
set -u
B=${KV_BUILD:-build}/tests/remote
rounds=${KV_BENCH_ROUNDS:-3}
secs=${KV_BENCH_SECONDS:-3}

echo
echo "Remote tier: TCP on loopback vs iperf3 (1 MiB messages, $rounds rounds x ${secs}s)"
if ! command -v iperf3 >/dev/null 2>&1; then
	echo "  iperf3 not installed: skipped"
	exit 0
fi
[ -x "$B/kvr_test" ] || { echo "  $B/kvr_test not built"; exit 1; }

tmp=$(mktemp -d)
srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# iperf3 server on a free port: pick from a range, retry if taken.
port=
for try in $(seq 1 20); do
	p=$((20000 + (RANDOM * 7 + $$ + try * 131) % 40000))
	iperf3 -s -p "$p" >"$tmp/iperf-s.log" 2>&1 &
	srv=$!
	sleep 0.3
	if kill -0 "$srv" 2>/dev/null && timeout 10 iperf3 -c 127.0.0.1 -p "$p" -t 1 -l 1M >/dev/null 2>&1; then
		port=$p
		break
	fi
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	srv=
done
[ -n "$port" ] || { echo "  cannot start an iperf3 server"; exit 1; }

ip=() st=() ld=()
for r in $(seq 1 "$rounds"); do
	g=$(timeout $((secs + 20)) iperf3 -c 127.0.0.1 -p "$port" -l 1M -t "$secs" -J 2>/dev/null |
		python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e9))' 2>/dev/null)
	ip+=("${g:-0}")
	out=$(TMPDIR=$tmp timeout $((2 * secs + 30)) "$B/kvr_test" bench "$B/kvr_serve" "$secs" 32 2>/dev/null)
	st+=("$(echo "$out" | sed -n 's/.*store_GBps \([0-9.]*\).*/\1/p')")
	ld+=("$(echo "$out" | sed -n 's/.*load_GBps \([0-9.]*\).*/\1/p')")
done

python3 - "${ip[*]}" "${st[*]}" "${ld[*]}" <<'PY'
import sys, statistics as s
ip, st, ld = ([float(x or 0) for x in a.split()] for a in sys.argv[1:4])
m = s.median(ip) or 1e-9
print("  | what | median GB/s | min..max | vs iperf3 | target |")
print("  |---|---|---|---|---|")
print("  | iperf3 loopback (-l 1M) | %.2f | %.2f..%.2f | 1.00 | |" % (m, min(ip), max(ip)))
for name, v in (("remote store (PUT, 32 x 1 MiB per batch)", st), ("remote load (GET + verify, 32 x 1 MiB)", ld)):
    r = s.median(v) / m
    print("  | %s | %.2f | %.2f..%.2f | %.2f | >= 0.70 %s |" % (name, s.median(v), min(v), max(v), r, "met" if r >= 0.7 else "NOT met"))
PY
