#!/bin/bash
# suite.sh - the kvmem suite, run as root inside the VM (chroot on the
# host's / shared read-only). Writes PASS/FAIL/SKIP lines and a final END
# line to $KV_VM_OUT/results.txt, logs to $KV_VM_OUT/logs/.
set -u
out=${KV_VM_OUT:?}
src=${KV_SRC:?}
build=${KV_BUILD:?}
res=$out/results.txt
logs=$out/logs
bin=$build/vm/bin
kmod=${KV_VM_KMOD:-$build/vm/kmod-mock/kmod}
mkdir -p "$logs"
: >"$res"
cd /tmp || exit 1
ulimit -c 0

record() { echo "$1" >>"$res"; echo "$1"; }
want() { [ -z "${KV_VM_ONLY:-}" ] || [[ " $KV_VM_ONLY " == *" $1 "* ]] || [[ " $KV_VM_ONLY " == *" ${1%%_*} "* ]]; }

# run_case NAME TIMEOUT CMD...: a program printing ok/not ok/skip lines is
# counted per line as NAME.case; otherwise by its exit status.
run_case() {
	local name=$1 t=$2 rc n
	shift 2
	want "$name" || return 0
	local log=$logs/$name.log
	local t0
	t0=$(date +%s)
	timeout -k 5 "$t" "$@" >"$log" 2>&1
	rc=$?
	n=0
	while IFS= read -r l; do
		case $l in
		"ok "*) record "PASS $name.${l#ok }"; n=$((n + 1)) ;;
		"not ok "*) record "FAIL $name.${l#not ok }"; n=$((n + 1)) ;;
		"skip "*) record "SKIP $name.${l#skip }"; n=$((n + 1)) ;;
		esac
	done <"$log"
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		record "FAIL $name: timed out after ${t}s"
	elif [ $n -eq 0 ]; then
		case $rc in
		0) record "PASS $name" ;;
		77) record "SKIP $name: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)" ;;
		*) record "FAIL $name: exit $rc" ;;
		esac
	elif [ $rc -ne 0 ] && [ $rc -ne 77 ] && ! grep -q '^not ok' "$log"; then
		record "FAIL $name: exit $rc after its cases"
	fi
	echo "[$name: rc $rc, $(( $(date +%s) - t0 )) s]" >>"$log"
}

# soft-RoCE on a veth pair (see /work/shared/notes/vm-recipe.md)
rdma_setup() {
	command -v rdma >/dev/null || { echo "no rdma tool (iproute2)"; return 77; }
	for m in veth crc32_generic rdma_rxe ib_uverbs; do
		modprobe $m || { echo "modprobe $m failed"; return 1; }
	done
	ip link set lo up
	ip link add kva type veth peer name kvb &&
		ip addr add 10.77.0.1/24 dev kva && ip link set kva up &&
		ip link set kvb up && rdma link add rxe0 type rxe netdev kva ||
		{ echo "rxe0 setup failed"; return 1; }
	ulimit -l unlimited
}

rdma_teardown() {
	rdma link delete rxe0 2>/dev/null
	ip link delete kva 2>/dev/null
	modprobe -r rdma_rxe 2>/dev/null
}

# stats_zero: every gauge of /proc/driver/kvmem/stats back to zero.
stats_zero() {
	awk -F': ' '$1 ~ /^(files|regions|host_regions|user_regions|gpu_regions|pinned_bytes|huge_pages|mappings|dmabufs)$/ && $2 != 0 { bad = 1; print "nonzero " $1 ": " $2 } END { exit bad }' /proc/driver/kvmem/stats
}

dmesg -C 2>/dev/null
uname -r >"$logs/uname.txt"

# --- the default build (no GPU provider), when it was built ---
if want nogpu && [ -r "$src/kmod/kvmem.ko" ]; then
	if [ "$(modinfo -F vermagic "$src/kmod/kvmem.ko" 2>/dev/null | cut -d' ' -f1)" != "$(uname -r)" ]; then
		record "SKIP nogpu: kmod/kvmem.ko was built for another kernel than $(uname -r)"
	elif [ -n "$(modinfo -F depends "$src/kmod/kvmem.ko" 2>/dev/null)" ]; then
		record "SKIP nogpu: kmod/kvmem.ko was built with a GPU provider"
	elif insmod "$src/kmod/kvmem.ko" >"$logs/nogpu_load.log" 2>&1; then
		run_case nogpu 60 "$bin/kvt_nogpu"
		rmmod kvmem || record "FAIL nogpu.rmmod"
	else
		record "FAIL nogpu: insmod kmod/kvmem.ko: $(tail -n 1 "$logs/nogpu_load.log")"
	fi
fi

# --- load ---
# /dev/kvmem is root:$kvgid 0660 (kvt_perm checks who may open it); a
# world-accessible mode is refused at load.
kvgid=4242
if insmod "$kmod/mock/kvmem_p2p_mock.ko" >"$logs/load.log" 2>&1 &&
	if want load_mode; then
		if insmod "$kmod/kvmem.ko" mode=0666 >>"$logs/load.log" 2>&1; then
			rmmod kvmem
			record "FAIL load_mode: mode=0666 was accepted"
		else
			record "PASS load_mode: mode=0666 (world-accessible) refused"
		fi
	fi &&
	insmod "$kmod/kvmem.ko" group=$kvgid >>"$logs/load.log" 2>&1 &&
	[ -c /dev/kvmem ] && [ -r /proc/driver/kvmem/stats ]; then
	record "PASS load: kvmem.ko and kvmem_p2p_mock.ko loaded, /dev/kvmem present"
	loaded=1
else
	record "FAIL load: $(tail -n 1 "$logs/load.log")"
	loaded=0
fi

if [ $loaded -eq 1 ]; then
	modprobe loop 2>/dev/null
	modprobe ext4 2>/dev/null
	modprobe vgem 2>/dev/null
	for t in basic badinput copyout perm node memlock memcg kill share gpu race import uring rdma kvctl fuzz; do
		[ -x "$bin/kvt_$t" ] || continue
		if [ $t = rdma ] && want rdma; then
			rdma_setup >"$logs/rdma_setup.log" 2>&1
			rc=$?
			if [ $rc -eq 77 ]; then
				record "SKIP rdma: $(tail -n 1 "$logs/rdma_setup.log")"
				continue
			elif [ $rc -ne 0 ]; then
				record "FAIL rdma: $(tail -n 1 "$logs/rdma_setup.log")"
				continue
			fi
		fi
		run_case "$t" 240 "$bin/kvt_$t"
		if [ $t = rdma ]; then
			# The remote tier over verbs on the same rxe device: byte-exact
			# round trips (blocks above rxe's 8 MiB max message) and a short
			# throughput table against ib_write_bw/ib_read_bw in its log.
			run_case remote_rdma 600 env KV_RDMA_SECONDS="${KV_RDMA_SECONDS:-2}" \
				KV_RDMA_ROUNDS="${KV_RDMA_ROUNDS:-1}" \
				"$src/tests/remote/rdma_test.sh" rxe0
			rdma_teardown
		fi
		stats_zero >"$logs/$t.stats" || record "FAIL $t.leak: $(head -n 3 "$logs/$t.stats" | tr '\n' ' ')"
	done

	# libkv's own host-tier unit tests, with the host pool forced onto
	# /dev/kvmem (disk and remote tiers have nothing kvmem-specific and
	# run on the host already).
	if want libkv; then
		a0=$(awk -F': ' '$1 == "allocs" { print $2 }' /proc/driver/kvmem/stats)
		for t in "$build"/tests/test_*; do
			[ -x "$t" ] || continue
			n=$(basename "$t")
			case $n in *disk* | *remote* | *cuda* | *gpu*) continue ;; esac
			run_case "libkv_$n" 120 env KV_FORCE_KVMEM=1 "$t"
		done
		a1=$(awk -F': ' '$1 == "allocs" { print $2 }' /proc/driver/kvmem/stats)
		if [ "$a1" -gt "$a0" ]; then
			record "PASS libkv_on_kvmem: the unit tests made $((a1 - a0)) kvmem regions"
		else
			record "FAIL libkv_on_kvmem: the unit tests never allocated from /dev/kvmem"
		fi
	fi

	# --- teardown ---
	if stats_zero >"$logs/final.stats"; then
		record "PASS stats_zero: every gauge is zero with nothing open"
	else
		record "FAIL stats_zero: $(tr '\n' ' ' <"$logs/final.stats")"
	fi
	cp /proc/driver/kvmem/stats "$logs/stats.final" 2>/dev/null
	if rmmod kvmem >"$logs/rmmod.log" 2>&1 && rmmod kvmem_p2p_mock >>"$logs/rmmod.log" 2>&1; then
		record "PASS rmmod"
		if [ -x "$build/kvctl" ]; then
			out=$("$build/kvctl" status 2>&1)
			if [ $? -eq 1 ] && [[ $out == *"not loaded"* ]]; then
				record "PASS kvctl_unloaded: kvctl status says the module is not loaded"
			else
				record "FAIL kvctl_unloaded: $out"
			fi
		fi
	else
		record "FAIL rmmod: $(tail -n 1 "$logs/rmmod.log")"
	fi
fi

dmesg >"$logs/dmesg.txt" 2>&1
if grep -E 'BUG|WARNING|Oops|general protection|leak|kfence|KASAN|UBSAN|refcount_t|bad page' "$logs/dmesg.txt" >"$logs/dmesg.bad"; then
	record "FAIL dmesg: $(head -n 2 "$logs/dmesg.bad" | tr '\n' ' ')"
else
	record "PASS dmesg: no BUG, WARNING, Oops or leak report"
fi
record "END"
sync
