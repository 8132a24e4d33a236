#!/bin/bash
# rdma_test.sh DEV - the remote tier over RDMA verbs through device DEV
# (soft-RoCE rxe in the VM; needs a port that is ACTIVE and an IPv4 address
# on its netdev). Not run on the host (no RDMA device there): the VM suite
# calls it after its rdma_setup, e.g.
#     run_case remote_rdma 600 "$src/tests/remote/rdma_test.sh" rxe0
# Prints ok / not ok / skip lines, then the throughput table against
# ib_write_bw / ib_read_bw with the same message size. Exit 0 pass, 1 fail,
# 77 skip. Env: KV_RDMA_SECONDS (throughput, default 5; 0 skips it).
set -u
dev=${1:?usage: rdma_test.sh DEV}
src=${KV_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${KV_BUILD:-$src/build}/tests/remote
secs=${KV_RDMA_SECONDS:-5}
batch=${KV_RDMA_BATCH:-64}   # 1 MiB blocks per batch in the throughput runs
[ -x "$B/kvr_test" ] || { echo "not ok build: $B/kvr_test not built"; exit 1; }
[ -d "/sys/class/infiniband/$dev" ] || { echo "skip device: no RDMA device $dev"; exit 77; }
ulimit -l unlimited 2>/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${ps:-}" ] && kill $ps 2>/dev/null' EXIT
fail=0

# The IPv4-mapped RoCEv2 GID (rxe loopback needs the device's own GID) and its address.
gidx= ip=
for g in /sys/class/infiniband/$dev/ports/1/gids/*; do
	v=$(cat "$g" 2>/dev/null) || continue
	case $v in 0000:0000:0000:0000:0000:ffff:*)
		gidx=${g##*/}
		h=${v#0000:0000:0000:0000:0000:ffff:}; h=${h/:/}
		ip=$((16#${h:0:2})).$((16#${h:2:2})).$((16#${h:4:2})).$((16#${h:6:2}))
		break ;;
	esac
done
[ -n "$gidx" ] || { echo "skip gid: $dev has no IPv4-mapped GID (give its netdev an address)"; exit 77; }
export KV_RDMA_GID_INDEX=$gidx
echo "# device $dev, GID index $gidx ($ip)"

# 1. Byte-exact round trip with blocks larger than rxe's 8 MiB max message.
if TMPDIR=$tmp timeout 300 "$B/kvr_test" rdma "$B/kvr_serve" "$dev" $((12 << 20)) 4 0 >"$tmp/big.log" 2>&1; then
	echo "ok big_blocks: rdma round trip, 4 x 12 MiB blocks (split at the device's max message), byte-exact"
else
	echo "not ok big_blocks: rdma round trip with 12 MiB blocks"; sed 's/^/#   /' "$tmp/big.log" | tail -n 20; fail=1
fi
# 2. Many small blocks in one batch.
if TMPDIR=$tmp timeout 300 "$B/kvr_test" rdma "$B/kvr_serve" "$dev" 65536 300 0 >"$tmp/small.log" 2>&1; then
	echo "ok small_blocks: rdma round trip, 300 x 64 KiB blocks in batches of 256, byte-exact"
else
	echo "not ok small_blocks: rdma round trip with 64 KiB blocks"; sed 's/^/#   /' "$tmp/small.log" | tail -n 20; fail=1
fi

# 3. Throughput against perftest with the same message size (1 MiB).
if [ "$secs" != 0 ] && [ $fail = 0 ]; then
	perf() {   # perf ib_write_bw|ib_read_bw -> GB/s (perftest's MB is 2^20 bytes)
		timeout 180 "$1" -d "$dev" -x "$gidx" -s 1048576 -n 300 -F >"$tmp/$1.s" 2>&1 &
		ps=$!
		for try in 1 2 3 4 5 6; do
			sleep 2
			timeout 120 "$1" -d "$dev" -x "$gidx" -s 1048576 -n 300 -F "$ip" >"$tmp/$1.c" 2>&1 && break
		done
		kill $ps 2>/dev/null
		wait $ps 2>/dev/null
		ps=
		awk '$1 == 1048576 { printf "%.4f\n", $4 * 1048576 / 1e9 }' "$tmp/$1.c" | tail -n 1
	}
	w=$(perf ib_write_bw) r=$(perf ib_read_bw)
	out=$(TMPDIR=$tmp timeout 300 "$B/kvr_test" rdma "$B/kvr_serve" "$dev" 1048576 "$batch" "$secs" 2>/dev/null |
		grep rdma_write_GBps)
	ow=$(echo "$out" | awk '{print $2}') or=$(echo "$out" | awk '{print $4}')
	echo "# | what | GB/s | vs perftest | target |"
	echo "# |---|---|---|---|"
	echo "# | ib_write_bw -s 1M | ${w:-?} | 1.00 | |"
	echo "# | remote store (RDMA WRITE + commit, $batch x 1 MiB) | ${ow:-?} | $(awk -v a="${ow:-0}" -v b="${w:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }') | >= 0.9 |"
	echo "# | ib_read_bw -s 1M | ${r:-?} | 1.00 | |"
	echo "# | remote load (lease + RDMA READ + verify, $batch x 1 MiB) | ${or:-?} | $(awk -v a="${or:-0}" -v b="${r:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }') | >= 0.9 |"
	[ -n "$ow" ] && echo "ok throughput: measured against ib_write_bw/ib_read_bw" || { echo "not ok throughput: the run failed"; fail=1; }
fi
exit $fail
