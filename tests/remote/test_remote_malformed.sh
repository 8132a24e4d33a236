#!/bin/sh
# test_remote_malformed.sh - remote tier against memory servers on loopback: malformed
# (see tests/remote/kvr_test.c).
# kv-test-timeout: 120
set -u
B=${KV_BUILD:-build}/tests/remote
[ -x "$B/kvr_test" ] && [ -x "$B/kvr_serve" ] || { echo "kvr_test/kvr_serve not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
TMPDIR=$tmp "$B/kvr_test" malformed "$B/kvr_serve"
