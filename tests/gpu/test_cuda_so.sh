#!/bin/bash
# test_cuda_so.sh - the CUDA backend's packaging: libkv.so must not depend on
# the CUDA runtime or driver (it dlopens libkv_cuda.so); libkv_cuda.so links
# cudart statically, exports exactly its versioned entry point, and its
# kernels were built without register spills (ptxas -v logs).
set -u
build=${KV_BUILD:-build}
so="$build/libkv_cuda.so.0"
fail=0

command -v readelf >/dev/null 2>&1 || { echo "SKIP: readelf (binutils) not installed"; exit 77; }
[ -f "$so" ] || { echo "SKIP: $so not built (no nvcc)"; exit 77; }

libkv=$(ls "$build"/libkv.so.* 2>/dev/null | head -n 1)
if [ -n "$libkv" ]; then
	if readelf -d "$libkv" | grep NEEDED | grep -Eq 'libcuda|libcudart'; then
		echo "FAIL: $libkv links CUDA:"; readelf -d "$libkv" | grep NEEDED; fail=1
	else
		echo "ok: $(basename "$libkv") has no CUDA dependency"
	fi
fi

if readelf -d "$so" | grep NEEDED | grep -q 'libcudart'; then
	echo "FAIL: $so needs libcudart dynamically"; fail=1
else
	echo "ok: libkv_cuda.so links cudart statically"
fi
soname=$(readelf -d "$so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libkv_cuda.so.0" ] || { echo "FAIL: soname '$soname'"; fail=1; }

exports=$(readelf --dyn-syms -W "$so" | awk '$5 == "GLOBAL" && $7 != "UND" { print $8 }' | sed 's/@.*//' | sort -u)
if [ "$exports" != "kv_cuda_backend_create_v1" ]; then
	echo "FAIL: exported symbols are not just the entry point:"; echo "$exports" | head -n 20; fail=1
else
	echo "ok: exports only kv_cuda_backend_create_v1"
fi

logs=$(ls "$build"/obj/kernels/*.ptxas.log 2>/dev/null)
if [ -z "$logs" ]; then
	echo "FAIL: no ptxas logs under $build/obj/kernels"; fail=1
elif grep -HE '[1-9][0-9]* bytes (spill|stack frame)' $logs; then
	echo "FAIL: register spills in the kernels"; fail=1
else
	n=$(grep -h "bytes spill" $logs | wc -l)
	echo "ok: $n kernel builds, no spills, no stack frames"
fi
exit $fail
