#!/bin/sh
# test_remote_host_first.sh - with a disk tier and a memory server configured,
# lookups and loads of blocks all in host memory send no request to the server
# and read nothing from disk; a block only the server has is still found.
# kv-test-timeout: 60
set -u
B=${KV_BUILD:-build}/tests/remote
[ -x "$B/kvr_test" ] && [ -x "$B/kvr_serve" ] || { echo "kvr_test/kvr_serve not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
TMPDIR=$tmp "$B/kvr_test" host_first "$B/kvr_serve"
