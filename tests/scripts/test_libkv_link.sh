#!/bin/bash
# test_libkv_link.sh - what libkv needs, and how programs link it:
#  1. libkv.so's NEEDED list holds only what libkv/libkv.mk declares (no
#     libibverbs or CUDA, which are dlopen()ed, no libcrypto);
#  2. the memory server is in libkvserver.a, not in libkv.a or libkv.so;
#  3. a program links against libkv.a with `pkg-config --static --libs libkv`
#     (Libs.private; also with -static) and against libkv.so with `pkg-config --libs libkv`,
#     from an installed-like prefix, and both run kv_open with a peer on a
#     host without libibverbs (KV_VERBS_LIB points at nothing).
# Exit: 0 pass, 1 fail, 77 skip (no readelf or pkg-config).
# kv-test-timeout: 120
set -u
B=${KV_BUILD:-build}
src=${KV_SRC:-.}
CC=${CC:-cc}
command -v readelf >/dev/null || { echo "SKIP: readelf (binutils) is not installed"; exit 77; }
command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; exit 77; }
# The library the soname link points at (an older version may lie beside it).
so=$(readlink -f "$B/libkv.so.0" 2>/dev/null)
[ -n "$so" ] && [ -r "$so" ] && [ -r "$B/libkv.a" ] && [ -r "$B/libkvserver.a" ] && [ -r "$B/libkv.pc" ] ||
	{ echo "FAIL: libkv.so, libkv.a, libkvserver.a or libkv.pc is not built in $B"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

# 1. NEEDED: libc's own parts, what libkv.mk declares, and the sanitizer
# runtimes of a SANITIZE=1 build.
need=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "libkv.so NEEDED: $need"
san=
for n in $need; do
	case $n in
	libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | libxxhash.so.* | liburing.so.* | libnettle.so.*) ;;
	libasan.so.* | libubsan.so.*) san=1 ;;
	*) echo "FAIL: libkv.so needs $n"; fail=1 ;;
	esac
done

# 2. The server lives in libkvserver.a only.
if nm "$B/libkv.a" 2>/dev/null | grep -q " T kvs_create$" || nm -D "$so" | grep -q "kvs_"; then
	echo "FAIL: the memory server (kvs_*) is in libkv"; fail=1
elif ! nm "$B/libkvserver.a" | grep -q " T kvs_create$"; then
	echo "FAIL: libkvserver.a has no kvs_create"; fail=1
else
	echo "ok: kvs_* in libkvserver.a only"
fi

# 3. Links from a prefix laid out as `make install` does.
cat >"$tmp/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <kv.h>

int main(void)
{
	static const char ns[] = "test_libkv_link";
	struct kv_config cfg;
	struct kv *kv;
	int err;

	memset(&cfg, 0, sizeof(cfg));
	cfg.geometry = (struct kv_geometry){ 2, 2, 16, 2, 64, KV_DTYPE_FP16 };
	cfg.host_bytes = 1 << 20;
	cfg.peers = "127.0.0.1:1";         /* down: not an error */
	cfg.ns_root = kv_hash_root(ns, sizeof(ns) - 1);
	cfg.flags = KV_F_NO_KVMEM | KV_F_QUIET;
	err = kv_open(&cfg, &kv);
	if (err) {
		fprintf(stderr, "kv_open: %s\n", kv_strerror(err));
		return 1;
	}
	kv_close(kv);
	printf("kv_open with a peer: ok\n");
	return 0;
}
C
sanflags=
[ -n "$san" ] && sanflags="-fsanitize=address,undefined"
# link KIND FILES...: a prefix whose lib/ holds only FILES, then build and run.
link() {
	local kind=$1 p=$tmp/$1 static= ldstatic=
	shift
	mkdir -p "$p/lib/pkgconfig" "$p/include"
	cp "$src/libkv/include/kv.h" "$p/include/"
	cp -P "$@" "$p/lib/"
	cp "$B/libkv.pc" "$p/lib/pkgconfig/"
	case $kind in static*) static=--static ;; esac
	[ "$kind" = static-all ] && ldstatic=-static
	local flags
	flags=$(PKG_CONFIG_PATH=$p/lib/pkgconfig pkg-config --define-variable=prefix="$p" \
		$static --cflags --libs libkv) || { echo "FAIL: $kind: pkg-config"; fail=1; return; }
	# shellcheck disable=SC2086
	if ! $CC $sanflags $ldstatic -o "$p/prog" "$tmp/prog.c" $flags 2>"$p/cc.err"; then
		echo "FAIL: $kind: cc $ldstatic prog.c $flags:"; cat "$p/cc.err"; fail=1; return
	fi
	if ! KV_VERBS_LIB=$tmp/none/libibverbs.so.1 LD_LIBRARY_PATH=$p/lib "$p/prog" >"$p/run.out" 2>&1; then
		echo "FAIL: $kind: the program failed:"; cat "$p/run.out"; fail=1; return
	fi
	echo "ok: $kind: cc $ldstatic prog.c $flags; $(cat "$p/run.out")"
}
link static "$B/libkv.a"
# Everything static (glibc warns about dlopen and getaddrinfo; the sanitizer
# runtimes do not link statically).
[ -z "$san" ] && link static-all "$B/libkv.a"
link shared "$so" "$B/libkv.so.0" "$B/libkv.so"
if [ -x "$tmp/shared/prog" ] && LD_LIBRARY_PATH=$tmp/shared/lib ldd "$tmp/shared/prog" | grep -E "libibverbs|libcrypto"; then
	echo "FAIL: the program linked with libkv.so loads libibverbs or libcrypto"; fail=1
fi
[ $fail -eq 0 ] && echo "PASS"
exit $fail
