// SPDX-License-Identifier: MIT
/*
 * region_kvmem.c - host pool regions from /dev/kvmem (kvmem.ko): pages
 * allocated and pinned by the module (2 MiB pages first), charged to
 * RLIMIT_MEMLOCK by the kernel, mapped MAP_SHARED with ordinary struct
 * pages so ibv_reg_mr() and io_uring fixed buffers accept them. One open
 * file per region: closing it (or the process dying) frees the region.
 * The ABI is kmod/uapi/kvmem.h, documented in docs/uapi.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kv.h"
#include "region.h"
#include "../../kmod/uapi/kvmem.h"

#define HUGE_2M (2ul << 20)

static void say(uint32_t flags, const char *fmt, const char *what, int err)
{
	if (!(flags & KV_F_QUIET))
		fprintf(stderr, fmt, what, strerror(err));
}

static void explain_limit(size_t len, int err, uint32_t flags)
{
	struct rlimit rl = { 0 };

	if (flags & KV_F_QUIET)
		return;
	getrlimit(RLIMIT_MEMLOCK, &rl);
	if (err == EPERM)
		fprintf(stderr,
			"libkv: kvmem: cannot pin the %zu-byte host pool: over RLIMIT_MEMLOCK "
			"(%s%llu bytes). Raise it (ulimit -l unlimited, systemd "
			"LimitMEMLOCK=infinity, docker --ulimit memlock=-1) or grant CAP_IPC_LOCK\n",
			len, rl.rlim_cur == RLIM_INFINITY ? "unlimited, " : "",
			rl.rlim_cur == RLIM_INFINITY ? 0ull : (unsigned long long)rl.rlim_cur);
	else
		fprintf(stderr,
			"libkv: kvmem: cannot allocate the %zu-byte host pool: %s (module cap: "
			"/sys/module/kvmem/parameters/max_pinned_mb; usage: kvctl status)\n",
			len, strerror(err));
}

int kv_region_kvmem_alloc(size_t len, uint32_t flags, struct kv_region *r)
{
	size_t maplen = len >= HUGE_2M ? (len + HUGE_2M - 1) & ~(HUGE_2M - 1)
				       : (len + 4095) & ~(size_t)4095;
	struct kvmem_info info = { .size = sizeof(info) };
	struct kvmem_alloc a = { .size = sizeof(a) };
	struct kvmem_query q = { .size = sizeof(q) };
	struct kvmem_free fr = { .size = sizeof(fr) };
	int fd, ret;
	void *p;

	if (!r || !len || maplen < len)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->fd = -1;

	fd = open(KVMEM_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (flags & KV_F_REQUIRE_KVMEM)
			say(flags, "libkv: cannot open %s: %s (is kvmem.ko loaded?)\n",
			    KVMEM_DEV_PATH, errno);
		return -ENODEV;
	}
	if (ioctl(fd, KVMEM_IOC_INFO, &info) || info.abi_version != KVMEM_ABI_VERSION) {
		if (!(flags & KV_F_QUIET))
			fprintf(stderr, "libkv: %s speaks ABI %u, this libkv ABI %d\n",
				KVMEM_DEV_PATH, info.abi_version, KVMEM_ABI_VERSION);
		ret = -ENODEV;
		goto err_close;
	}

	a.flags = KVMEM_ALLOC_HUGE_PREFERRED | KVMEM_ALLOC_ZERO;
	a.length = maplen;
	a.numa_node = KVMEM_NUMA_ANY;
	if (ioctl(fd, KVMEM_IOC_ALLOC, &a)) {
		ret = -errno;
		explain_limit(maplen, errno, flags);
		goto err_close;
	}
	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)a.mmap_offset);
	if (p == MAP_FAILED) {
		ret = -errno;
		say(flags, "libkv: %s: mmap: %s\n", KVMEM_DEV_PATH, errno);
		goto err_free;
	}
	q.handle = a.handle;
	if (ioctl(fd, KVMEM_IOC_QUERY, &q) == 0)
		r->huge_bytes = q.huge_pages * HUGE_2M;

	r->addr = p;
	r->len = maplen;
	r->provider = KV_PROVIDER_KVMEM;
	r->pinned = true;
	r->fd = fd;
	r->handle = a.handle;
	return 0;

err_free:
	fr.handle = a.handle;
	ioctl(fd, KVMEM_IOC_FREE, &fr);
err_close:
	close(fd);
	return ret;
}

void kv_region_kvmem_free(struct kv_region *r)
{
	struct kvmem_free fr = { .size = sizeof(fr), .handle = r->handle };

	if (!r || r->fd < 0)
		return;
	if (r->addr)
		munmap(r->addr, r->len);
	ioctl(r->fd, KVMEM_IOC_FREE, &fr);
	close(r->fd);	/* frees anything left, whatever happened above */
	r->fd = -1;
	r->addr = NULL;
}
