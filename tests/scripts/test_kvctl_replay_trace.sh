#!/bin/sh
# test_kvctl_replay_trace.sh - `kvctl replay --trace` on a Mooncake-format
# trace generated here (shared system prompts, multi-turn chats with growing
# prefixes, partial last blocks, ids reused under other prefixes, lines out
# of timestamp order). With pure LRU at --capacity-blocks N, --inflight 1 and
# one worker, the host token hits must equal, exactly, an independent LRU
# simulation of the touch order docs/kvctl.md states; the unbounded rate must
# equal Python's; --realtime honours arrivals; a malformed trace is one clear
# line and exit status 2. Needs no ../shared (uses its synthetic trace for an
# extra check when it is there).
# Exit: 0 pass, 1 fail, 77 skip.
# kv-test-timeout: 240
set -u

kvctl=${KV_BUILD:-build}/kvctl
src=${KV_SRC:-.}
[ -x "$kvctl" ] || { echo "FAIL: $kvctl is not built"; exit 1; }
if command -v python3 >/dev/null 2>&1; then :; else
	echo "SKIP: python3 is needed to generate the trace and simulate LRU"; exit 77
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
# Small blocks (2 KiB at 512 tokens): bytes per block do not change hit rates.
geom="--layers 1 --kv-heads 1 --head-dim 1"

# The independent model: an LRU over names (id prefixes), touched the way a
# request touches the library's host tier.
cat >"$tmp/sim.py" <<'PY'
import json, sys
from collections import OrderedDict

def read(path):
    reqs = [json.loads(l) for l in open(path) if l.strip()]
    return sorted(reqs, key=lambda r: r["timestamp"])      # stable: file order on ties

def names(r, bt):
    # Only full blocks are named: block i when (i+1)*bt <= input_length.
    n = min(len(r["hash_ids"]), r["input_length"] // bt)
    return [tuple(r["hash_ids"][:i + 1]) for i in range(n)]   # chained: the id prefix

# Prefill FLOPs of prompt positions [0, n) for Llama-3-8B, from its
# config: 2 x (active - embedding - LM head) per token + attention's
# 2 x layers x heads x (d_qk + d_v) per (query, key) pair, causal.
P8B = 8.03e9 - 2 * 128256 * 4096
A8B = 2 * 32 * 32 * (128 + 128)
def flops(n):
    return 2 * P8B * n + A8B * n * (n + 1) / 2

FLOPS = {}
def lru(reqs, cap, bt=512, load_order=1, restore_touch=False):
    c, hit, fl = OrderedDict(), 0, 0.0             # first = least recently used
    for r in reqs:
        n = names(r, bt)
        k = 0
        while k < len(n) and n[k] in c:            # lookup: leading hits, no touch
            k += 1
        for x in n[:k][::load_order]:              # load: hits touched in request order
            c.move_to_end(x)
        hit += min(k * bt, r["input_length"])
        fl += flops(min(k * bt, r["input_length"]))
        for x in n[k:]:                            # store: the rest, in order
            if x in c:                             # still present: not stored again
                if restore_touch:
                    c.move_to_end(x)
                continue
            c[x] = True                            # enters at the MRU end
            while len(c) > cap:
                c.popitem(last=False)              # evict from the LRU end
    FLOPS[cap] = fl
    return hit

def unbounded(reqs, bt=512):
    seen, hit = set(), 0
    for r in reqs:
        n = names(r, bt)
        k = 0
        while k < len(n) and n[k] in seen:
            k += 1
        hit += min(k * bt, r["input_length"])
        seen.update(n)
    return hit

if __name__ == "__main__":
    reqs = read(sys.argv[1])
    out = {"input_tokens": sum(r["input_length"] for r in reqs),
           "unbounded": unbounded(reqs), "max_blocks": max(len(names(r, 512)) for r in reqs)}
    for cap in sys.argv[2:]:
        cap = int(cap)
        out[cap] = {"lru": lru(reqs, cap), "flops": FLOPS[cap],
                    "reverse_load": lru(reqs, cap, load_order=-1),
                    "restore_touch": lru(reqs, cap, restore_touch=True)}
    json.dump(out, sys.stdout)
PY

# A trace of the Mooncake format with the shapes that matter.
python3 - "$tmp/trace.jsonl" <<'PY' || { echo "FAIL: cannot generate the trace"; exit 1; }
import json, random, sys
rng = random.Random(13)
nid = [1000]
def new_id():
    nid[0] += 1
    return nid[0]
systems = [[new_id() for _ in range(rng.randint(2, 6))] for _ in range(4)]
pool = [1, 2, 3, 4, 5]            # ids reused after different prefixes
convs, lines, ts = [], [], 0
for i in range(360):
    ts += rng.choice([0, 0, 3, 7, 15, 40])      # ties too
    if not convs or (len(convs) < 24 and rng.random() < 0.15):
        convs.append({"ids": list(rng.choice(systems)), "turns": rng.randint(2, 9)})
    kind = rng.random()
    if kind < 0.15:
        # one-shot: a system prompt then a few ids from a shared pool
        ids = list(rng.choice(systems)) + rng.sample(pool, rng.randint(1, 3))
        full = len(ids)
    else:
        c = rng.choice(convs)
        c["ids"] += [new_id() for _ in range(rng.randint(1, 4))]
        ids, full = list(c["ids"]), len(c["ids"])
        c["turns"] -= 1
        if c["turns"] == 0 or len(c["ids"]) > 30:
            convs.remove(c)
    part = rng.choice([0, 0, 1, 100, 311, 511])   # tokens of a partial last block
    if part:
        ids.append(new_id())                      # its id: content not seen again
    lines.append({"timestamp": ts, "input_length": full * 512 + part,
                  "output_length": rng.randint(1, 300), "hash_ids": ids})
# a few lines out of timestamp order, a blank line, an unknown key
for k in range(5, len(lines) - 5, 50):
    lines[k], lines[k + 3] = lines[k + 3], lines[k]
lines[7]["session"] = {"note": "ignored", "tags": [1, "two", None, True]}
with open(sys.argv[1], "w") as f:
    for k, r in enumerate(lines):
        f.write(json.dumps(r) + "\n")
        if k == 100:
            f.write("\n")
PY
caps="40 120 400"
python3 "$tmp/sim.py" "$tmp/trace.jsonl" $caps >"$tmp/sim.json" || { echo "FAIL: simulation"; exit 1; }
echo "simulation: $(cat "$tmp/sim.json")"

for cap in $caps; do
	"$kvctl" replay --trace "$tmp/trace.jsonl" $geom --capacity-blocks "$cap" \
		--inflight 1 --workers 1 --json >"$tmp/r$cap.json" 2>"$tmp/r$cap.err"
	rc=$?
	cat "$tmp/r$cap.err" >&2
	[ $rc -eq 0 ] || { echo "FAIL: replay --capacity-blocks $cap exited $rc"; fail=1; continue; }
	python3 - "$tmp/r$cap.json" "$tmp/sim.json" "$cap" <<'PY' || fail=1
import json, sys
d, s, cap = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
sim = s[cap]
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
host = d["cached_tokens_by_tier"]["host"]
print("capacity %s: kvctl host hit tokens %d, LRU simulation %d (reverse load order %d, "
      "touch on re-store %d); unbounded %d / %d; rate %.4f" %
      (cap, host, sim["lru"], sim["reverse_load"], sim["restore_touch"],
       d["reusable_tokens"], s["unbounded"], d["hit_rate"]))
check(host == sim["lru"], "host hit tokens equal the LRU simulation exactly")
check(d["cached_tokens"] == host, "all hits from the host tier")
check(d["prompt_tokens"] == s["input_tokens"], "prompt tokens = sum of input_length")
check(d["reusable_tokens"] == s["unbounded"], "unbounded tokens equal Python's")
check(abs(d["hit_rate"] - host / s["input_tokens"]) < 1e-6, "hit rate = hit tokens / input tokens")
check(abs(d["hit_rate_by_tier"]["host"] - d["hit_rate"]) < 1e-9, "per-tier rate")
check(d["tiers"]["host"]["capacity"] == int(cap), "--capacity-blocks %s gives %s slots" % (cap, cap))
check(d["verify_failures"] == 0 and d["verified_blocks"] * 512 == host, "every hit verified, none wrong")
check(d["load_misses"] == 0 and d["store_errors"] == 0, "no misses between lookup and load, no short stores")
check(d["trace"]["requests"] == 360 and d["trace"]["partial_last_blocks"] > 0, "trace figures")
check(int(cap) > s["max_blocks"], "capacity above the longest request (%d blocks)" % s["max_blocks"])
w = d["worth"]
h = w["by_tier"]["host"]
print("  worth (llama-3-8b): %.6g FLOPs (Python %.6g), %.3f GPU-s at %g TFLOPS; load %.3f s at %.3g B/s" %
      (h["flops"], sim["flops"], h["recompute_seconds"], w["gpu_tflops"], h["load_seconds"] or -1,
       h["measured_bytes_per_s"] or -1))
check(w["model"] == "llama-3-8b" and w["gpu_tflops"] == 989, "default model and TFLOPS")
check(abs(h["flops"] - sim["flops"]) <= 1e-6 * sim["flops"], "saved FLOPs equal Python's")
check(abs(w["saved_flops"] - h["flops"]) <= 1e-6 * h["flops"], "all saved FLOPs in the host tier")
check(abs(h["recompute_seconds"] - h["flops"] / 989e12) <= 1e-6 * h["recompute_seconds"] + 1e-9,
      "GPU-seconds = FLOPs / throughput")
check(h["kv_bytes"] == host * 32 * 2 * 8 * 128 * 2, "the model's KV bytes of the hits")
check(h["measured_bytes_per_s"] > 0 and
      abs(h["load_seconds"] - h["kv_bytes"] / h["measured_bytes_per_s"]) <= 1e-6 * h["load_seconds"],
      "load time = model KV bytes / measured bandwidth")
check(h["load_costs_more"] == (h["load_seconds"] > h["recompute_seconds"]), "the verdict")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
done

# The simulation can tell touch orders apart on this trace (else the exact
# match above would prove less than it claims).
python3 - "$tmp/sim.json" $caps <<'PY' || fail=1
import json, sys
s = json.load(open(sys.argv[1]))
if all(s[c]["lru"] == s[c]["reverse_load"] for c in sys.argv[2:]):
    print("FAIL: the trace does not tell the load touch orders apart"); sys.exit(1)
if not 0 < s[sys.argv[2]]["lru"] < s["unbounded"]:
    print("FAIL: the smallest capacity should hit, and less than unbounded"); sys.exit(1)
PY

# --realtime: arrivals honoured (the run lasts at least the scaled trace),
# hits unchanged with one request in flight.
"$kvctl" replay --trace "$tmp/trace.jsonl" $geom --capacity-blocks 120 --inflight 1 \
	--workers 1 --realtime --speed 20 --json >"$tmp/rt.json" 2>"$tmp/rt.err"
rc=$?
cat "$tmp/rt.err" >&2
if [ $rc -ne 0 ]; then
	echo "FAIL: --realtime --speed 20 exited $rc"; fail=1
else
	python3 - "$tmp/rt.json" "$tmp/r120.json" <<'PY' || fail=1
import json, sys
d, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
t = d["trace"]
span = t["last_arrival_ms"] / 20 / 1e3
print("realtime x20: %.3f s for a %.3f s scaled trace, late by %.2f ms at most" %
      (d["seconds"], span, t["late_max_ms"]))
bad = []
if not (t["realtime"] and t["speed"] == 20): bad.append("realtime x20 in the report")
if d["seconds"] < span * 0.99: bad.append("ran faster than the arrivals allow")
if d["cached_tokens"] != ref["cached_tokens"]: bad.append("hits changed with --realtime")
if d["verify_failures"]: bad.append("verification failures")
for b in bad: print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
fi
# Default concurrency and text report: finishes, 0 failures.
"$kvctl" replay --trace "$tmp/trace.jsonl" $geom --capacity-blocks 120 >"$tmp/t.txt" 2>&1 ||
	{ cat "$tmp/t.txt"; echo "FAIL: --inflight 8 replay"; fail=1; }
grep -q "verification 0 failures" "$tmp/t.txt" || { cat "$tmp/t.txt"; echo "FAIL: text report"; fail=1; }

# Another model and throughput: the text report says what loading a tier
# costs against recomputing it; --gpu-tflops scales the recompute time.
"$kvctl" replay --trace "$tmp/trace.jsonl" $geom --capacity-blocks 120 --inflight 1 --workers 1 \
	--model deepseek-v3 --gpu-tflops 100 >"$tmp/m.txt" 2>&1 || { cat "$tmp/m.txt"; echo "FAIL: --model deepseek-v3"; fail=1; }
grep -q "as DeepSeek-V3 (KV bf16 68.6 KiB/token" "$tmp/m.txt" &&
	grep -Eq "^  host hits +[0-9]+ tokens: recompute [0-9.]+ GPU-s; load .* = [0-9.]+ s: (LOADING COSTS|loading is)" "$tmp/m.txt" ||
	{ cat "$tmp/m.txt"; echo "FAIL: the worth lines for deepseek-v3"; fail=1; }
grep -E "worth|hits " "$tmp/m.txt"
"$kvctl" replay --trace "$tmp/trace.jsonl" --model gpt-5 >/dev/null 2>"$tmp/m.err"
[ $? -eq 2 ] && grep -q "invalid value 'gpt-5' for --model" "$tmp/m.err" ||
	{ cat "$tmp/m.err"; echo "FAIL: an unknown model is not a usage error"; fail=1; }
"$kvctl" replay --model list | grep -q "^  llama-3-70b " || { echo "FAIL: --model list"; fail=1; }

# Malformed traces: one line naming file:line, exit status 2, no crash.
bad_trace() {   # name, content
	printf '%s\n' "$2" >"$tmp/$1.jsonl"
	"$kvctl" replay --trace "$tmp/$1.jsonl" $geom >"$tmp/$1.out" 2>"$tmp/$1.err"
	rc=$?
	if [ $rc -ne 2 ] || [ "$(wc -l <"$tmp/$1.err")" -ne 1 ] ||
	   ! grep -q "^kvctl: replay: $tmp/$1.jsonl:2:" "$tmp/$1.err"; then
		echo "FAIL: malformed trace '$1': exit $rc (want 2), stderr:"; cat "$tmp/$1.err"; fail=1
	else
		echo "malformed '$1': $(cat "$tmp/$1.err")"
	fi
}
ok='{"timestamp": 0, "input_length": 1024, "output_length": 1, "hash_ids": [1, 2]}'
bad_trace truncated "$ok
{\"timestamp\": 5, \"input_length\": 100, \"hash_ids\": [1, 2"
bad_trace negative_id "$ok
{\"timestamp\": 5, \"input_length\": 100, \"hash_ids\": [1, -2]}"
bad_trace no_hash_ids "$ok
{\"timestamp\": 5, \"input_length\": 100}"
bad_trace not_json "$ok
timestamp=5 input_length=100"
bad_trace fraction "$ok
{\"timestamp\": 5, \"input_length\": 10.5, \"hash_ids\": []}"
"$kvctl" replay --trace "$tmp/absent.jsonl" >/dev/null 2>"$tmp/absent.err"
rc=$?
{ [ $rc -eq 2 ] && grep -q "cannot open trace" "$tmp/absent.err"; } ||
	{ echo "FAIL: a missing trace: exit $rc"; cat "$tmp/absent.err"; fail=1; }
"$kvctl" replay --realtime >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: --realtime without --trace is not a usage error"; fail=1; }
"$kvctl" replay --trace "$tmp/trace.jsonl" --capacity-blocks 10 --host-bytes 1M >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: --capacity-blocks with --host-bytes is not a usage error"; fail=1; }

# The release's synthetic trace, when this checkout sits beside ../shared.
real="$src/../shared/traces/synthetic_trace.jsonl"
if [ -r "$real" ]; then
	python3 "$tmp/sim.py" "$real" 2000 >"$tmp/real_sim.json" &&
	"$kvctl" replay --trace "$real" $geom --capacity-blocks 2000 --inflight 1 --workers 1 \
		--json >"$tmp/real.json" 2>/dev/null &&
	python3 - "$tmp/real.json" "$tmp/real_sim.json" <<'PY' || fail=1
import json, sys
d, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print("synthetic trace, LRU 2000 blocks: kvctl %d, simulation %d tokens (%.4f); unbounded %.4f" %
      (d["cached_tokens"], s["2000"]["lru"], d["hit_rate"], d["reusable_rate"]))
ok = d["cached_tokens"] == s["2000"]["lru"] and d["reusable_tokens"] == s["unbounded"]
if not ok: print("FAIL: the synthetic trace disagrees with the simulation")
sys.exit(0 if ok else 1)
PY
else
	echo "(no $real here: the extra check on the release's trace is not run)"
fi

[ $fail -eq 0 ] || exit 1
echo "PASS"
