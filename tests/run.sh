#!/bin/bash
# run.sh - run test programs, one concern each, and count them.
# Usage: tests/run.sh TEST...
# Exit status of a test: 0 pass, 77 skip (its last line says why), other fail.
# A test may report a suite of its own with a line
#   subtotal: N passed, N failed, N skipped
# which is counted instead of the test itself (the VM suite does this).
# Per-test timeout: KV_TEST_TIMEOUT (default 300 s), or a line
# "kv-test-timeout: N" in the first 20 lines of a script.
# Logs go to $KV_BUILD/test-logs/. Last line: N passed, N failed, N skipped.
set -u

build=${KV_BUILD:-build}
logs="$build/test-logs"
mkdir -p "$logs"
pass=0 fail=0 skip=0
failed=()

for t in "$@"; do
	name=$(basename "$t")
	name=${name%.sh}
	log="$logs/$name.log"
	limit=${KV_TEST_TIMEOUT:-300}
	if [ -f "$t" ] && [ "${t%.sh}" != "$t" ]; then
		l=$(head -n 20 "$t" | sed -n 's/.*kv-test-timeout: *\([0-9][0-9]*\).*/\1/p' | head -n 1)
		[ -n "$l" ] && limit=$l
	fi
	start=$(date +%s%N)
	timeout -k 10 "$limit" "$t" </dev/null >"$log" 2>&1
	rc=$?
	ds=$(( ($(date +%s%N) - start) / 100000000 ))
	secs="$((ds / 10)).$((ds % 10))"
	sub=$(grep -E '^subtotal: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n 1)
	if [ -n "$sub" ]; then
		read -r sp sf ss <<<"$(echo "$sub" | sed -E 's/^subtotal: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')"
		if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ "$sf" -eq 0 ]; then sf=1; fi
		pass=$((pass + sp)); fail=$((fail + sf)); skip=$((skip + ss))
		echo "SUITE $name: $sp passed, $sf failed, $ss skipped (${secs}s)"
		[ "$sf" -gt 0 ] && failed+=("$name") && grep -E '^(FAIL|not ok)' "$log" | head -n 20 | sed 's/^/    /'
		continue
	fi
	case $rc in
	0)
		pass=$((pass + 1))
		echo "PASS $name (${secs}s)"
		;;
	77)
		skip=$((skip + 1))
		echo "SKIP $name: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
		;;
	124|137)
		fail=$((fail + 1)); failed+=("$name")
		echo "FAIL $name: timed out after ${limit}s (log: $log)"
		tail -n 15 "$log" | sed 's/^/    /'
		;;
	*)
		fail=$((fail + 1)); failed+=("$name")
		echo "FAIL $name: exit $rc (${secs}s, log: $log)"
		tail -n 25 "$log" | sed 's/^/    /'
		;;
	esac
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "failed: ${failed[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
