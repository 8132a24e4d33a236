#!/bin/bash
# test_kvctl_proc.sh - kvctl status/regions on the host, without the module:
# "not loaded" is exit 1 with a clear message; with a fake procfs directory
# (KVCTL_KVMEM_PROC) both formats are parsed and printed as documented.
set -u
kvctl=${KV_BUILD:-build}/kvctl
[ -x "$kvctl" ] || { echo "kvctl not built"; exit 1; }
fail=0
no() { echo "FAIL: $*"; fail=1; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

out=$(KVCTL_KVMEM_PROC=$d/none "$kvctl" status 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == *"kvmem module is not loaded"* ]] || no "status without module: rc $rc: $out"
out=$(KVCTL_KVMEM_PROC=$d/none "$kvctl" regions --json 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == *"not loaded"* ]] || no "regions without module: rc $rc: $out"
"$kvctl" regions --bogus >/dev/null 2>&1; [ $? -eq 2 ] || no "bad option is not exit 2"

printf 'abi_version: 1\ngpu_provider: none\nfiles: 2\nregions: 3\nhost_regions: 2\nuser_regions: 0\ngpu_regions: 1\npinned_bytes: 6291456\ncap_bytes: 1073741824\nhuge_pages: 2\nmappings: 1\ndmabufs: 0\nallocs: 9\nfrees: 6\ngpu_invalidations: 1\nerr_inval: 4\nerr_access: 0\nerr_nomem: 0\nerr_memlock: 1\nerr_cap: 0\nerr_other: 0\n' >"$d/stats"
printf 'pid handle kind size numa huge_pages mapped valid\n100 1 host 4194304 0 2 1 1\n100 2 host 65536 0 0 0 1\n200 1 gpu 2097152 -1 0 0 0\n' >"$d/regions"
out=$(KVCTL_KVMEM_PROC=$d "$kvctl" status) || no "status rc"
[[ $out == *"regions         3 (host 2, user pins 0, gpu 1)"* ]] || no "status text: $out"
[[ $out == *"pinned          6 MiB of 1 GiB cap (2 huge pages)"* ]] || no "status pinned: $out"
out=$(KVCTL_KVMEM_PROC=$d "$kvctl" status --json) || no "status --json rc"
[[ $out == *'"gpu_provider": "none"'* && $out == *'"err_memlock": 1'* ]] || no "status json: $out"
if command -v python3 >/dev/null; then
	echo "$out" | python3 -m json.tool >/dev/null || no "status --json is not JSON"
	KVCTL_KVMEM_PROC=$d "$kvctl" regions --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert len(r) == 3 and r[0] == {"pid": 100, "handle": 1, "kind": "host", "size": 4194304,
	"numa_node": 0, "huge_pages": 2, "mapped": 1, "valid": True}, r
assert r[2]["kind"] == "gpu" and r[2]["valid"] is False' || no "regions --json content"
fi
out=$(KVCTL_KVMEM_PROC=$d "$kvctl" regions --pid 200) || no "regions rc"
[[ $out == *"gpu"*"NO"* && $out == *"1 region, 2 MiB"* ]] || no "regions --pid: $out"
[ $fail -eq 0 ] && echo "kvctl status/regions: ok"
exit $fail
