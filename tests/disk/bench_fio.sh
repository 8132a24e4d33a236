#!/bin/bash
# bench_fio.sh - libkv's disk tier and fio side by side: same directory, same
# file size, same block sizes (the kvctl replay geometry's 256 KiB block and
# 1 MiB), queue depth 32, O_DIRECT, io_uring (fio: fixedbufs, registerfiles);
# write then read (fio: rw=write then rw=randread; libkv: its log order, then
# reopened -- index rebuilt from the slot headers -- every block in random
# order, checksum-verified). Each pair runs
# KV_BENCH_REPS times interleaved (the host is shared: numbers are noisy);
# the table shows the best run and the spread.
# usage: bench_fio.sh BENCH_DISK_BINARY
# env: KV_BENCH_DIR (default $KV_BUILD/bench-disk), KV_BENCH_BYTES (1G),
#      KV_BENCH_REPS (3), KV_BENCH_BATCH (blocks per tier call, 256),
#      KV_BENCH_BS ("256K 1M"), KV_BENCH_SETTLE (seconds between write and read, 2)
set -u
bin=${1:?usage: bench_fio.sh BENCH_DISK_BINARY}
dir=${KV_BENCH_DIR:-${KV_BUILD:-build}/bench-disk}
bytes=${KV_BENCH_BYTES:-1G}
reps=${KV_BENCH_REPS:-3}
batch=${KV_BENCH_BATCH:-256}
sizes=${KV_BENCH_BS:-256K 1M}
qd=32
settle=${KV_BENCH_SETTLE:-2}

echo "== disk tier vs fio: $bytes file in $dir, qd $qd, O_DIRECT, io_uring, best of $reps =="
if ! command -v fio >/dev/null; then
	echo "fio is not installed (apt-get install fio): disk benchmark skipped"
	exit 0
fi
mkdir -p "$dir" || exit 1
trap 'rm -f "$dir/fio.dat" "$dir/kv.dat"' EXIT

fio_bw() { # rw bs [file [offset size]] -> MB/s
	fio --name=kvbench --filename="${3:-$dir/fio.dat}" --offset="${4:-0}" \
		--size="${5:-$bytes}" --bs="$2" --rw="$1" \
		--direct=1 --ioengine=io_uring --iodepth=$qd --fixedbufs=1 --registerfiles=1 \
		--output-format=json 2>/dev/null |
		python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print("%.1f" % ((j["write"]["bw_bytes"] + j["read"]["bw_bytes"]) / 1e6))'
}

best() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -n 1; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | sed -n '1p;$p' | paste -sd- ; }

printf "%-6s %-5s %10s %10s %6s   %-32s %s\n" bs dir libkv_MB/s fio_MB/s ratio \
	"spread (libkv | fio)" "fio on libkv's file (ratio)"
status=0
for bs in $sizes; do
	kw="" kr="" fw="" fr="" sr=""
	for ((i = 0; i < reps; i++)); do
		rm -f "$dir/fio.dat" "$dir/kv.dat"
		# Each reads its own file the same time after writing it (a read
		# right after a write is slower on virtual disks: the host is still
		# flushing); who goes first alternates.
		for who in $( ((i % 2)) && echo "kv fio" || echo "fio kv"); do
			if [ $who = fio ]; then
				fw+=" $(fio_bw write "$bs")"
				sync; sleep $settle
				fr+=" $(fio_bw randread "$bs")"
				rm -f "$dir/fio.dat"
			else
				out=$("$bin" write "$dir/kv.dat" "$bytes" "$bs" $qd "$batch" 2>&1) ||
					{ echo "bench_disk failed: $out"; exit 1; }
				kw+=" $(echo "$out" | awk '/^write/ {print $2}')"
				sync; sleep $settle
				read -r off len <<<"$(echo "$out" | awk '/^layout/ {print $2, $3}')"
				out=$("$bin" read "$dir/kv.dat" "$bytes" "$bs" $qd "$batch" 2>&1) ||
					{ echo "bench_disk failed: $out"; exit 1; }
				kr+=" $(echo "$out" | awk '/^read/ {print $2}')"
				# fio reading libkv's own file (its data area): same file, other engine.
				sr+=" $(fio_bw randread "$bs" "$dir/kv.dat" "$off" "$len")"
				rm -f "$dir/kv.dat"
			fi
		done
	done
	for d in write read; do
		if [ $d = write ]; then k=$kw f=$fw; else k=$kr f=$fr; fi
		kb=$(echo "$k" | best) fb=$(echo "$f" | best)
		ratio=$(echo "scale=2; $kb / $fb" | bc)
		same=""
		if [ $d = read ]; then
			sb=$(echo "$sr" | best)
			same="$sb ($(echo "scale=2; $kb / $sb" | bc))"
		fi
		printf "%-6s %-5s %10s %10s %6s   %-32s %s\n" "$bs" $d "$kb" "$fb" "$ratio" \
			"$(echo "$k" | spread) | $(echo "$f" | spread)" "$same"
	done
done
exit $status
