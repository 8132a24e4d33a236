#!/bin/sh
# test_kvctl_replay.sh - `kvctl replay` with its defaults (what `make run`
# runs): it finishes, every loaded block is checked byte for byte and none
# is wrong, the cache serves hits and the small default pool evicts.
# Exit: 0 pass, 1 fail, 77 skip.
# kv-test-timeout: 180
set -u

kvctl=${KV_BUILD:-build}/kvctl
[ -x "$kvctl" ] || { echo "FAIL: $kvctl is not built"; exit 1; }
if command -v python3 >/dev/null 2>&1; then :; else
	echo "SKIP: python3 is needed to parse kvctl's --json output"; exit 77
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

"$kvctl" replay --json >"$tmp/out.json" 2>"$tmp/err"
rc=$?
cat "$tmp/out.json"
cat "$tmp/err" >&2
[ $rc -eq 0 ] || { echo "FAIL: kvctl replay exited $rc"; exit 1; }

python3 - "$tmp/out.json" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
check(d["command"] == "replay", "command is replay")
check(d["requests"] == 1000, "1000 requests by default")
check(d["layout"] == "nhd", "default layout nhd")
g = d["geometry"]
check((g["layers"], g["planes"], g["block_tokens"], g["dtype"]) == (8, 2, 16, "fp16"),
      "default geometry 8 layers, K+V, 16 tokens, fp16")
check(d["verify_failures"] == 0, "0 verification failures (got %s)" % d["verify_failures"])
check(d["verified_blocks"] > 0, "loaded blocks were verified")
check(d["verified_blocks"] * g["block_tokens"] >= d["cached_tokens"], "every served block verified")
check(d["cached_tokens"] > 0, "some tokens served from cache")
check(0 < d["hit_rate"] < 1, "hit rate in (0, 1)")
t = d["cached_tokens_by_tier"]
check(t["host"] + t["disk"] + t["remote"] == d["cached_tokens"], "per-tier tokens add up")
check(d["tiers"]["host"]["evictions"] > 0, "the default host pool is small enough to evict")
check(d["load_errors"] == 0 and d["store_errors"] == 0, "no load/store errors")
check(d["prompt_tokens"] >= d["full_blocks"] * g["block_tokens"], "prompt tokens cover full blocks")
check(d["computed_blocks"] + d["verified_blocks"] - d["verify_failures"] >= d["full_blocks"] - 0,
      "every full block was loaded or computed")
check(d["seconds"] > 0 and d["requests_per_s"] > 0, "timings present")
for b in bad:
    print("FAIL:", b)
print("hit rate %.1f%%, %d blocks verified, %.2f s, %d -EAGAIN" %
      (100 * d["hit_rate"], d["verified_blocks"], d["seconds"], d["eagain"]))
sys.exit(1 if bad else 0)
PY

# The text report names the verification result; -q prints nothing.
"$kvctl" replay -n 50 >"$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; echo "FAIL: replay -n 50"; exit 1; }
grep -q "verification 0 failures" "$tmp/out.txt" || { cat "$tmp/out.txt"; echo "FAIL: no verification line"; exit 1; }
"$kvctl" replay -n 20 -q >"$tmp/q.txt" 2>&1 || { echo "FAIL: replay -q exited $?"; exit 1; }
[ ! -s "$tmp/q.txt" ] || { cat "$tmp/q.txt"; echo "FAIL: replay -q printed something"; exit 1; }
echo "PASS"
