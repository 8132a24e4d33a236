// SPDX-License-Identifier: MIT
/*
 * region_mmap.c - host pool from anonymous memory: explicit 2 MiB huge pages
 * when the system has them reserved, else transparent huge pages requested
 * with madvise; then mlock. Without the right to lock that much memory the
 * pool works unpinned (one warning per process) unless the caller required
 * pinning. Registration with io_uring/verbs pins pages again through GUP
 * either way; mlock only keeps the pool out of swap.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kv.h"
#include "region.h"

#define HUGE_2M (2ul << 20)

static atomic_flag warned_unpinned = ATOMIC_FLAG_INIT;

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void explain_memlock(size_t len, int err, uint32_t flags, int fatal)
{
	struct rlimit rl = { 0 };

	if (flags & KV_F_QUIET)
		return;
	if (!fatal && atomic_flag_test_and_set(&warned_unpinned))
		return;
	getrlimit(RLIMIT_MEMLOCK, &rl);
	fprintf(stderr,
		"libkv: %s: cannot pin the %zu-byte host pool: mlock: %s; "
		"RLIMIT_MEMLOCK is %s%llu bytes. Raise it (ulimit -l unlimited, systemd "
		"LimitMEMLOCK=infinity, docker --ulimit memlock=-1) or grant CAP_IPC_LOCK%s\n",
		fatal ? "error" : "warning", len, strerror(err),
		rl.rlim_cur == RLIM_INFINITY ? "unlimited, " : "",
		rl.rlim_cur == RLIM_INFINITY ? 0ull : (unsigned long long)rl.rlim_cur,
		fatal ? "" : "; continuing unpinned");
}

int kv_region_mmap_alloc(size_t len, uint32_t flags, struct kv_region *r)
{
	size_t maplen = round_up(len, HUGE_2M);
	void *p;

	if (!r || !len || maplen < len)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->provider = KV_PROVIDER_MMAP;

	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	if (p != MAP_FAILED) {
		r->huge_bytes = maplen;
	} else {
		p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		madvise(p, maplen, MADV_HUGEPAGE); /* best effort: THP may be off */
	}
	/* The raw syscall: sanitizer runtimes turn mlock() into a silent no-op. */
	if (syscall(SYS_mlock, p, maplen) == 0) {
		r->pinned = true;
	} else {
		int err = errno;

		if (flags & KV_F_REQUIRE_PINNED) {
			explain_memlock(maplen, err, flags, 1);
			munmap(p, maplen);
			return -EPERM;
		}
		explain_memlock(maplen, err, flags, 0);
		/* Fault the pool in now so first use does not pay for it. */
		madvise(p, maplen, MADV_POPULATE_WRITE);
	}
	r->addr = p;
	r->len = maplen;
	return 0;
}

void kv_region_mmap_free(struct kv_region *r)
{
	munmap(r->addr, r->len);
}
