#!/bin/sh
# test_remote_cascade.sh - host -> disk -> remote: a working set larger than
# host memory plus the disk tier still hits, the oldest blocks from the memory
# server the disk tier demoted them to; every block comes back byte-exact.
# Write-through: what one node stores, another loads from the server at once.
# Tier order: the faster lower tier (by measured read time) is asked first.
# kv-test-timeout: 120
set -u
B=${KV_BUILD:-build}/tests/remote
[ -x "$B/kvr_test" ] && [ -x "$B/kvr_serve" ] || { echo "kvr_test/kvr_serve not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
TMPDIR=$tmp "$B/kvr_test" cascade "$B/kvr_serve" || rc=1
TMPDIR=$tmp "$B/kvr_test" write_through "$B/kvr_serve" || rc=1
# Loads try the tiers fastest first (measured): a slow disk loses to the server.
TMPDIR=$tmp "$B/kvr_test" tier_order "$B/kvr_serve" || rc=1
exit $rc
