#!/bin/sh
# test_kvctl_replay_layouts.sh - `kvctl replay` through every engine layout,
# another seed and odd geometries (rows that are not a multiple of 8 bytes,
# one-token blocks): 0 verification failures each; the workload depends on
# the seed alone (same seed, same prompts, whatever the concurrency).
# Exit: 0 pass, 1 fail, 77 skip.
# kv-test-timeout: 240
set -u

kvctl=${KV_BUILD:-build}/kvctl
[ -x "$kvctl" ] || { echo "FAIL: $kvctl is not built"; exit 1; }
if command -v python3 >/dev/null 2>&1; then :; else
	echo "SKIP: python3 is needed to parse kvctl's --json output"; exit 77
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

# run NAME EXPECT_LAYOUT ARGS...: replay --json, check it, keep the JSON in $tmp/NAME.json
run() {
	name=$1 layout=$2
	shift 2
	"$kvctl" replay --json "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"
	rc=$?
	if [ $rc -ne 0 ]; then
		cat "$tmp/$name.err"
		echo "FAIL: $name: kvctl replay $* exited $rc"
		fail=1
		return
	fi
	python3 - "$tmp/$name.json" "$layout" "$name" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
name, bad = sys.argv[3], []
if d["layout"] != sys.argv[2]: bad.append("layout %s" % d["layout"])
if d["verify_failures"] != 0: bad.append("%d verification failures" % d["verify_failures"])
if d["verified_blocks"] <= 0: bad.append("no block was loaded and verified")
if d["load_errors"] or d["store_errors"]:
    bad.append("%d load errors, %d short stores" % (d["load_errors"], d["store_errors"]))
for b in bad: print("FAIL: %s: %s" % (name, b))
print("%s: %s, hit rate %.1f%%, %d blocks verified, %.2f s" %
      (name, d["layout"], 100 * d["hit_rate"], d["verified_blocks"], d["seconds"]))
sys.exit(1 if bad else 0)
PY
}

run hnd hnd --layout hnd --seed 7 -n 200
run flashinfer flashinfer --layout flashinfer --seed 7 -n 200
run mla mla --layout mla --seed 11 -n 200
run odd nhd --seed 3 -n 150 --layers 3 --kv-heads 2 --head-dim 10 --dtype fp8 \
	--block-tokens 7 --host-bytes 1M --max-tokens 1000 --workers 1
run tok1 hnd --layout hnd --seed 5 -n 60 --block-tokens 1 --layers 2 --kv-heads 2 \
	--head-dim 4 --max-tokens 600 --host-bytes 4M
run serial nhd --seed 7 -n 200 --inflight 1 --queue-depth 1
run wide nhd --seed 7 -n 200 --inflight 16 --queue-depth 2 --verify-host

python3 - "$tmp" <<'PY' || fail=1
import json, sys, os
t = sys.argv[1]
def load(n):
    p = os.path.join(t, n + ".json")
    return json.load(open(p)) if os.path.getsize(p) else None
a, b, c, h = load("serial"), load("wide"), load("mla"), load("hnd")
bad = []
if a and b and a["prompt_tokens"] != b["prompt_tokens"]:
    bad.append("seed 7: %d vs %d prompt tokens with other concurrency" % (a["prompt_tokens"], b["prompt_tokens"]))
if a and h and a["prompt_tokens"] != h["prompt_tokens"]:
    bad.append("seed 7: prompts differ between layouts")
if a and c and a["prompt_tokens"] == c["prompt_tokens"]:
    bad.append("seeds 7 and 11 gave the same workload")
if c and (c["geometry"]["planes"], c["geometry"]["kv_heads"]) != (1, 1):
    bad.append("mla geometry is not 1 plane x 1 head")
for x in bad: print("FAIL:", x)
sys.exit(1 if bad else 0)
PY
[ $fail -eq 0 ] && echo "PASS"
exit $fail
