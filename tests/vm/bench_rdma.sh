#!/bin/bash
# bench_rdma.sh - the remote tier's RDMA table for `make bench`: boots the VM
# suite with only the soft-RoCE cases (KV_VM_ONLY="rdma remote_rdma") and
# prints the table tests/remote/rdma_test.sh measured there: our RDMA WRITE
# and READ paths against ib_write_bw / ib_read_bw with the same message size
# on the same rxe device in the same VM run. Emulated speeds are tiny; only
# the ratio counts. KV_RDMA_SECONDS sets each run's length (default 5),
# KV_RDMA_ROUNDS how many interleaved rounds are summed (default 3).
set -u
src=${KV_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${KV_BUILD:-$src/build}

out=$(KV_VM_ONLY="rdma remote_rdma" KV_RDMA_SECONDS="${KV_RDMA_SECONDS:-5}" \
	KV_RDMA_ROUNDS="${KV_RDMA_ROUNDS:-3}" \
	"$src/tests/vm/test_kvmem_vm.sh" 2>&1)
rc=$?
echo "Remote tier: RDMA over soft-RoCE inside the VM (vs perftest, same run)"
if [ $rc -eq 77 ]; then
	echo "  skipped: $(echo "$out" | tail -n 1)"
	exit 0
fi
log=$build/vm/last/out/logs/remote_rdma.log
if [ $rc -ne 0 ] || ! grep -q '^# |' "$log" 2>/dev/null; then
	echo "  failed (VM suite exit $rc):"
	echo "$out" | tail -n 15 | sed 's/^/    /'
	exit 1
fi
grep -E '^# (\||round)' "$log" | sed 's/^# /  /'
