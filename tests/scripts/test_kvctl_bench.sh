#!/bin/sh
# test_kvctl_bench.sh - `kvctl bench --quick --json` is one JSON object with
# every row of the tables (host tier at 64 KiB, 1 MiB and 4 MiB: store, load,
# store+load against memcpy; hashing at 16 and 256 tokens; index lookups),
# every number positive; section and size selection work.
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

"$kvctl" bench --quick --json >"$tmp/all.json" 2>"$tmp/err"
rc=$?
cat "$tmp/all.json"
cat "$tmp/err" >&2
[ $rc -eq 0 ] || { echo "FAIL: kvctl bench --quick --json exited $rc"; exit 1; }

python3 - "$tmp/all.json" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
def pos(obj, path, positive=True):
    for k in path.split("."):
        if not isinstance(obj, dict) or k not in obj:
            bad.append("missing key " + path)
            return None
        obj = obj[k]
    if positive and isinstance(obj, (int, float)) and not isinstance(obj, bool) and not obj > 0:
        bad.append("%s is %s, not > 0" % (path, obj))
    return obj
if d.get("command") != "bench":
    bad.append("command is not bench")
for size, nbytes in (("64KiB", 65536), ("1MiB", 1 << 20), ("4MiB", 4 << 20)):
    if pos(d, "host.%s.block_bytes" % size) not in (None, nbytes):
        bad.append("host.%s.block_bytes is not %d" % (size, nbytes))
    pos(d, "host.%s.blocks" % size)
    if pos(d, "host.%s.short" % size, False) not in (None, 0):
        bad.append("host.%s: short stores/loads" % size)
    for op in ("store", "load", "store_load"):
        for k in ("libkv_gbps", "memcpy_gbps", "ratio"):
            pos(d, "host.%s.%s.%s" % (size, op, k))
for n in ("16_tokens", "256_tokens"):
    for k in ("tokens_per_s", "ns_per_token"):
        pos(d, "hash.%s.%s" % (n, k))
for k in ("blocks", "resident", "block_bytes", "pool_bytes", "lookup_batch_per_s",
          "lookup_single_per_s", "lookup_miss_per_s", "insert_per_s"):
    pos(d, "index." + k)
if d.get("index", {}).get("wrong", 1) != 0:
    bad.append("index lookups gave wrong answers")
if d.get("index", {}).get("resident") != d.get("index", {}).get("blocks"):
    bad.append("not every index block stayed resident")
for b in bad:
    print("FAIL:", b)
h = d.get("host", {}).get("1MiB", {}).get("store_load", {})
print("1 MiB store+load: libkv %.2f GB/s, memcpy %.2f GB/s, ratio %.2f" %
      (h.get("libkv_gbps", 0), h.get("memcpy_gbps", 0), h.get("ratio", 0)))
sys.exit(1 if bad else 0)
PY

# Selecting a section and a size: only those keys appear.
"$kvctl" bench --sections hash,host --sizes 128K --quick --json >"$tmp/sel.json" ||
	{ echo "FAIL: bench --sections hash,host --sizes 128K exited $?"; exit 1; }
python3 - "$tmp/sel.json" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
ok = "index" not in d and "hash" in d and "128KiB" in d["host"] and "1MiB" not in d["host"]
print("section selection", "ok" if ok else "FAIL: wrong keys: %s" % sorted(d))
sys.exit(0 if ok else 1)
PY

# The text table has its rows.
"$kvctl" bench --quick --sections host --sizes 64K >"$tmp/table.txt" ||
	{ echo "FAIL: bench text exited $?"; exit 1; }
cat "$tmp/table.txt"
for row in "store " "load " "store+load" "libkv GB/s" "memcpy GB/s" "ratio"; do
	grep -q -- "$row" "$tmp/table.txt" || { echo "FAIL: table lacks '$row'"; exit 1; }
done
echo "PASS"
