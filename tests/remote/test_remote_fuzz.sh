#!/bin/sh
# test_remote_fuzz.sh - libFuzzer over the memory server's message handling
# (tests/remote/fuzz_server.c) for a bounded time, seeded with the committed
# regression corpus tests/remote/corpus/. KV_FUZZ_SECONDS (default 20).
# A crash leaves its input in the log directory: add it to the corpus.
# kv-test-timeout: 120
set -u
B=${KV_BUILD:-build}/tests/remote
S=${KV_SRC:-.}
if [ ! -x "$B/kvr_fuzz" ]; then
	echo "SKIP: kvr_fuzz not built (needs clang with -fsanitize=fuzzer)"
	exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work" "$work.log"' EXIT
secs=${KV_FUZZ_SECONDS:-20}
# First every committed input on its own (the regression part), then fuzzing.
"$B/kvr_fuzz" -runs=0 "$S/tests/remote/corpus" >"$work.log" 2>&1 || { cat "$work.log"; exit 1; }
cd "$work" || exit 1
"$B/kvr_fuzz" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
	-print_final_stats=1 -artifact_prefix="${KV_BUILD:-$S/build}/test-logs/fuzz-" \
	"$work" "$S/tests/remote/corpus" >"$work.log" 2>&1
rc=$?
tail -n 25 "$work.log"
rm -f "$work.log"
exit $rc
