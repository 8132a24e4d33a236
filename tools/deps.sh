#!/bin/sh
# deps.sh - make sure the Debian packages the build and the tests use are
# installed. Usage: deps.sh REQUIRED... [-- OPTIONAL...]
# As root, missing packages are installed with noninteractive apt-get. As
# another user, a missing REQUIRED package is an error naming the apt-get
# command to run; a missing OPTIONAL one is a warning (its tests SKIP).
set -u

required=""
optional=""
mode=req
for p in "$@"; do
	if [ "$p" = "--" ]; then mode=opt; continue; fi
	if [ $mode = req ]; then required="$required $p"; else optional="$optional $p"; fi
done

missing() {
	out=""
	for p in "$@"; do
		st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
		[ "$st" = "installed" ] || out="$out $p"
	done
	echo "$out"
}

command -v dpkg-query >/dev/null 2>&1 || {
	echo "deps: not a Debian system; install the equivalents of:$required$optional" >&2
	exit 0
}

miss_req=$(missing $required)
miss_opt=$(missing $optional)
all="$miss_req $miss_opt"
[ -z "$(echo $all)" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "deps: installing:$all"
	export DEBIAN_FRONTEND=noninteractive
	log=$(mktemp)
	if ! { apt-get update -q && apt-get install -y -q --no-install-recommends $all; } >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		echo "deps: apt-get failed (log above); retrying each package alone" >&2
		for p in $all; do
			apt-get install -y -q --no-install-recommends "$p" >>"$log" 2>&1 ||
				echo "deps: could not install $p" >&2
		done
	fi
	rm -f "$log"
	miss_req=$(missing $required)
	if [ -n "$(echo $miss_req)" ]; then
		echo "deps: still missing required packages:$miss_req" >&2
		exit 1
	fi
	exit 0
fi

if [ -n "$(echo $miss_req)" ]; then
	echo "deps: missing packages needed to build:$miss_req" >&2
	echo "deps: run as root: apt-get install$miss_req$miss_opt" >&2
	exit 1
fi
echo "deps: optional packages missing (their tests will SKIP):$miss_opt" >&2
echo "deps: to install them: sudo apt-get install$miss_opt" >&2
exit 0
