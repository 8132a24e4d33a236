#!/bin/bash
# rdma_test.sh DEV - the remote tier over RDMA verbs through device DEV
# (soft-RoCE rxe in the VM; needs a port that is ACTIVE and an IPv4 address
# on its netdev). Not run on the host (no RDMA device there): the VM suite
# calls it after its rdma_setup, e.g.
#     run_case remote_rdma 600 "$src/tests/remote/rdma_test.sh" rxe0
# Prints ok / not ok / skip lines, then the throughput table against
# ib_write_bw / ib_read_bw with the same message size. Exit 0 pass, 1 fail,
# 77 skip. Env: KV_RDMA_SECONDS (throughput, default 5; 0 skips it),
# KV_RDMA_ROUNDS (interleaved rounds, default 1), KV_RDMA_BATCH (default 64).
set -u
dev=${1:?usage: rdma_test.sh DEV}
src=${KV_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${KV_BUILD:-$src/build}/tests/remote
secs=${KV_RDMA_SECONDS:-5}
batch=${KV_RDMA_BATCH:-64}   # 1 MiB blocks per batch in the throughput runs
rounds=${KV_RDMA_ROUNDS:-1}  # interleaved perftest/ours rounds
[ -x "$B/kvr_test" ] && [ -x "$B/kvr_hostile" ] || { echo "not ok build: $B/kvr_test or kvr_hostile not built"; exit 1; }
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
	echo "ok small_blocks: rdma round trip, 300 x 64 KiB blocks in batches of 256, byte-exact;" \
		"$(grep '^rdma: .* verbs calls' "$tmp/small.log")"
else
	echo "not ok small_blocks: rdma round trip with 64 KiB blocks"; sed 's/^/#   /' "$tmp/small.log" | tail -n 20; fail=1
fi
# 3. Leases expire one by one: a raw client's unreleased LEASE closes its
# connection after --lease-ms, while a client loading the whole time is kept.
if TMPDIR=$tmp timeout 120 "$B/kvr_test" rdma_lease "$B/kvr_serve" "$dev" >"$tmp/lease.log" 2>&1; then
	echo "ok lease_expiry: $(grep '^rdma lease' "$tmp/lease.log")"
else
	echo "not ok lease_expiry: per-lease expiry"; sed 's/^/#   /' "$tmp/lease.log" | tail -n 20; fail=1
fi
# 3b. A server that leases the wrong slot (another block's bytes and check
# values; the right values with another block's bytes; another namespace's
# block): every RDMA READ it points to fails verification, none is accepted.
for mode in 0 1 2 3; do
	if TMPDIR=$tmp timeout 120 "$B/kvr_test" hostile "$B/kvr_hostile" $mode "$dev" >"$tmp/hostile$mode.log" 2>&1; then
		echo "ok wrong_slot_$mode: $(grep '^hostile mode' "$tmp/hostile$mode.log")"
	else
		echo "not ok wrong_slot_$mode: hostile RDMA server, mode $mode"
		sed 's/^/#   /' "$tmp/hostile$mode.log" | tail -n 20; fail=1
	fi
done

# 4. Throughput against perftest with the same message size (1 MiB), runs of
# about the same length. Emulated rxe speed drifts by 20-30% within a VM run, so the
# runs are interleaved (perftest write, perftest read, ours) for $rounds
# rounds and each ratio is of the sums: drift hits both sides alike.
if [ "$secs" != 0 ] && [ $fail = 0 ]; then
	# perftest's iteration mode (-n) is its usual one; about 60 MiB/s per
	# second of run under TCG keeps its length near ours.
	iters=$((secs * 60 < 100 ? 100 : secs * 60))
	perf() {   # perf ib_write_bw|ib_read_bw -> GB/s (perftest's MB is 2^20 bytes)
		timeout 180 "$1" -d "$dev" -x "$gidx" -s 1048576 -n "$iters" -F >"$tmp/$1.s" 2>&1 &
		ps=$!
		for try in 1 2 3 4 5 6; do
			sleep 1
			timeout 120 "$1" -d "$dev" -x "$gidx" -s 1048576 -n "$iters" -F "$ip" >"$tmp/$1.c" 2>&1 && break
		done
		kill $ps 2>/dev/null
		wait $ps 2>/dev/null
		ps=
		awk '$1 == 1048576 { printf "%.4f\n", $4 * 1048576 / 1e9 }' "$tmp/$1.c" | tail -n 1
	}
	add() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { printf "%.4f", a + b }'; }
	ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "?" }'; }
	W=0 R=0 OW=0 OR=0 ok=1
	for round in $(seq "$rounds"); do
		w=$(perf ib_write_bw) r=$(perf ib_read_bw)
		out=$(TMPDIR=$tmp timeout 300 "$B/kvr_test" rdma "$B/kvr_serve" "$dev" 1048576 "$batch" "$secs" 2>/dev/null |
			grep rdma_write_GBps)
		ow=$(echo "$out" | awk '{print $2}') or=$(echo "$out" | awk '{print $4}')
		[ -n "$w" ] && [ -n "$r" ] && [ -n "$ow" ] && [ -n "$or" ] || ok=0
		echo "# round $round: ib_write_bw $w, ours $ow ($(ratio "$ow" "$w")); ib_read_bw $r, ours $or ($(ratio "$or" "$r"))"
		W=$(add $W "$w") R=$(add $R "$r") OW=$(add $OW "$ow") OR=$(add $OR "$or")
	done
	avg() { awk -v a="$1" -v n="$rounds" 'BEGIN { printf "%.4f", a / n }'; }
	echo "# | what ($rounds interleaved runs of ${secs} s, mean) | GB/s | vs perftest | target |"
	echo "# |---|---|---|---|"
	echo "# | ib_write_bw -s 1M | $(avg $W) | 1.00 | |"
	echo "# | remote store (RDMA WRITE + commit, $batch x 1 MiB) | $(avg $OW) | $(ratio $OW $W) | >= 0.9 |"
	echo "# | ib_read_bw -s 1M | $(avg $R) | 1.00 | |"
	echo "# | remote load (lease + RDMA READ + verify, $batch x 1 MiB) | $(avg $OR) | $(ratio $OR $R) | >= 0.9 |"
	[ $ok = 1 ] && echo "ok throughput: measured against ib_write_bw/ib_read_bw" || { echo "not ok throughput: a run failed"; fail=1; }
fi
exit $fail
