#!/bin/bash
# kv-test-timeout: 900
# test_kvmem_vm_612.sh - the same VM suite (test_kvmem_vm.sh) booting
# Debian bookworm-backports' 6.12 kernel instead of the host's 6.1, with a
# kvmem.ko built against its headers. make fetches and unpacks that kernel
# under $KV_BUILD/kernels (tests/vm/fetch_kernel.sh; see kmod/kmod.mk for
# the exact version); without it this suite skips.
set -u
src=${KV_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${KV_BUILD:-$src/build}
kver=$(sed -n 's/^VM_KVER2_BASE := //p' "$src/kmod/kmod.mk")-amd64
root=$build/kernels/root-$kver
if [ ! -e "$root/.ready" ] || [ ! -r "$build/vm/kmod-mock-$kver/kmod/kvmem.ko" ]; then
	echo "SKIP: no $kver kernel tree or module (make could not fetch bookworm-backports)"
	exit 77
fi
KV_VM_KVER=$kver KV_VM_ROOT=$root KV_VM_KMOD=$build/vm/kmod-mock-$kver/kmod \
	exec "$(dirname "$0")/test_kvmem_vm.sh"
