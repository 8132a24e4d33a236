#!/bin/sh
# test_remote_hostile.sh - a memory server that answers a GET for block A with
# another block (its bytes and check values; A's check values with B's bytes;
# a block of another namespace) never gets the client to accept it: every such
# load is a miss counted in verify_failures. Mode 0 is the same server, honest.
# kv-test-timeout: 120
set -u
B=${KV_BUILD:-build}/tests/remote
[ -x "$B/kvr_test" ] && [ -x "$B/kvr_hostile" ] || { echo "kvr_test/kvr_hostile not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
for mode in 0 1 2 3; do
	TMPDIR=$tmp "$B/kvr_test" hostile "$B/kvr_hostile" $mode || rc=1
done
exit $rc
