#!/bin/sh
# test_kvctl_replay_disk.sh - `kvctl replay --disk`: with a disk tier behind
# the small host pool every load still verifies; a second run on the same
# file is served from disk (persistence); bytes spoiled in the file are
# misses, never wrong data; kv_prefetch (--prefetch, --admit all) brings
# blocks up before their loads; another namespace needs --reformat.
# Skips (77) while the library has no disk tier.
# Exit: 0 pass, 1 fail, 77 skip.
# kv-test-timeout: 300
set -u

kvctl=${KV_BUILD:-build}/kvctl
[ -x "$kvctl" ] || { echo "FAIL: $kvctl is not built"; exit 1; }
if command -v python3 >/dev/null 2>&1; then :; else
	echo "SKIP: python3 is needed to parse kvctl's --json output"; exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/kvctl-disk.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
disk=$tmp/tier.kv
fail=0

# run NAME ARGS...: replay --json with the disk tier; JSON in $tmp/NAME.json
run() {
	name=$1
	shift
	"$kvctl" replay --json --disk "$disk" --disk-bytes 512M "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"
	rc=$?
	cat "$tmp/$name.err"
	return $rc
}

run first -n 300 --seed 5
rc=$?
if [ $rc -ne 0 ] && grep -qi "not supported" "$tmp/first.err"; then
	echo "SKIP: the library has no disk tier yet ($(tail -n 1 "$tmp/first.err"))"
	exit 77
fi
[ $rc -eq 0 ] || { echo "FAIL: replay --disk exited $rc"; exit 1; }

run second -n 300 --seed 5 || { echo "FAIL: second replay on the same file exited $?"; fail=1; }

# Spoil a byte every 256 KiB in the last three quarters of the file.
size=$(stat -c %s "$disk")
python3 - "$disk" "$size" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    off = size // 4
    while off < size:
        f.seek(off); b = f.read(1)
        if b:
            f.seek(off); f.write(bytes([b[0] ^ 0xff]))
        off += 256 << 10
PY
run spoiled -n 300 --seed 5 || { echo "FAIL: replay on a spoiled file exited $?"; fail=1; }
rm -f "$disk"
run prefetch -n 300 --seed 6 --admit all --prefetch || { echo "FAIL: replay --admit all --prefetch exited $?"; fail=1; }

python3 - "$tmp" <<'PY' || fail=1
import json, os, sys
t, bad = sys.argv[1], []
def load(n):
    p = os.path.join(t, n + ".json")
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
for n in ("first", "second", "spoiled", "prefetch"):
    d = load(n)
    if d is None:
        bad.append("%s: no report" % n); continue
    if d["verify_failures"]:
        bad.append("%s: %d verification failures" % (n, d["verify_failures"]))
    if d["tiers"]["disk"]["capacity"] <= 0:
        bad.append("%s: disk tier has no capacity" % n)
    print("%s: hit %.1f%% (host %d, disk %d tokens), disk %d blocks, %d bad checksums" %
          (n, 100 * d["hit_rate"], d["cached_tokens_by_tier"]["host"],
           d["cached_tokens_by_tier"]["disk"], d["tiers"]["disk"]["blocks"],
           d["tiers"]["disk"]["verify_failures"]))
d = load("second")
if d and d["cached_tokens_by_tier"]["disk"] <= 0:
    bad.append("second run on the same file served nothing from disk")
d = load("prefetch")
if d and (d["prefetches"] <= 0 or d["prefetched_blocks"] <= 0):
    bad.append("--prefetch: no kv_prefetch brought blocks up (%d calls)" % d["prefetches"])
for b in bad: print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

# Another namespace (layout) on the same file: refused, then reformatted.
if "$kvctl" replay -q -n 20 --layout hnd --disk "$disk" --disk-bytes 512M 2>"$tmp/ns.err"; then
	echo "FAIL: a file of another namespace was opened without --reformat"; fail=1
else
	echo "ok: another namespace refused: $(tail -n 1 "$tmp/ns.err")"
fi
"$kvctl" replay -q -n 20 --layout hnd --disk "$disk" --disk-bytes 512M --reformat ||
	{ echo "FAIL: --reformat of another namespace's file exited $?"; fail=1; }

[ $fail -eq 0 ] && echo "PASS"
exit $fail
