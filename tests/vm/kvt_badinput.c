// SPDX-License-Identifier: MIT
/*
 * kvt_badinput.c - bad input for every kvmem ioctl and for mmap: each gets
 * its documented errno, bumps the matching error counter and changes no
 * gauge in /proc/driver/kvmem/stats. Also: a struct whose copy-out fails
 * (read-only page) leaves nothing behind.
 */
#include "kvt.h"

#define MiB (1ul << 20)

static int fd;

/* call must fail with errno e, bump counter by one, change no gauge. */
#define EXPECT(call, e, counter) do { \
	struct kvt_snap _s; long long _c0 = kvt_stat(counter); \
	kvt_snap(&_s); \
	CHECK_ERR(call, e); \
	CHECK(kvt_stat(counter) == _c0 + 1, "%s: counter %s %lld -> %lld", \
	      #call, counter, _c0, kvt_stat(counter)); \
	CHECK_SNAP_SAME(&_s, #call); \
	} while (0)

static void case_unknown_ioctl(void)
{
	struct kvmem_info in = { .size = sizeof(in) };

	kvt_begin("unknown_ioctl");
	EXPECT(ioctl(fd, _IO('x', 1), 0), ENOTTY, "err_inval");
	EXPECT(ioctl(fd, _IOWR(KVMEM_IOC_MAGIC, 0x7f, struct kvmem_info), &in),
	       ENOTTY, "err_inval");
	EXPECT(ioctl(fd, _IOWR(KVMEM_IOC_MAGIC, 0x07, struct kvmem_info), &in),
	       ENOTTY, "err_inval");
	EXPECT(ioctl(fd, KVMEM_IOC_INFO, NULL), EFAULT, "err_other");
	EXPECT(ioctl(fd, KVMEM_IOC_ALLOC, (void *)8), EFAULT, "err_other");
	kvt_end();
}

/* Every struct: too short, zero, and too long with a non-zero tail. */
static void case_sizes(void)
{
	static const struct { unsigned long cmd; unsigned v0, ks; const char *n; } t[] = {
		{ KVMEM_IOC_INFO, KVMEM_INFO_SIZE_VER0, sizeof(struct kvmem_info), "info" },
		{ KVMEM_IOC_ALLOC, KVMEM_ALLOC_SIZE_VER0, sizeof(struct kvmem_alloc), "alloc" },
		{ KVMEM_IOC_PIN_USER, KVMEM_PIN_USER_SIZE_VER0, sizeof(struct kvmem_pin_user), "pin_user" },
		{ KVMEM_IOC_PIN_GPU, KVMEM_PIN_GPU_SIZE_VER0, sizeof(struct kvmem_pin_gpu), "pin_gpu" },
		{ KVMEM_IOC_QUERY, KVMEM_QUERY_SIZE_VER0, sizeof(struct kvmem_query), "query" },
		{ KVMEM_IOC_EXPORT_DMABUF, KVMEM_EXPORT_SIZE_VER0, sizeof(struct kvmem_export), "export" },
		{ KVMEM_IOC_FREE, KVMEM_FREE_SIZE_VER0, sizeof(struct kvmem_free), "free" },
	};
	/* 256 bytes at the end of a page followed by an unmapped one */
	uint8_t *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *buf = (uint32_t *)(pg + 4096 - 256);

	munmap(pg + 4096, 4096);
	kvt_begin("struct_size");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK(t[i].v0 == t[i].ks, "%s: VER0 %u != sizeof %u", t[i].n, t[i].v0, t[i].ks);
		memset(buf, 0, 256);
		buf[0] = 0;
		EXPECT(ioctl(fd, t[i].cmd, buf), EINVAL, "err_inval");
		buf[0] = t[i].v0 - 4;
		EXPECT(ioctl(fd, t[i].cmd, buf), EINVAL, "err_inval");
		buf[0] = 4;
		EXPECT(ioctl(fd, t[i].cmd, buf), EINVAL, "err_inval");
		/* longer than the kernel knows, non-zero beyond: E2BIG */
		memset(buf, 0, 256);
		buf[0] = t[i].ks + 16;
		buf[t[i].ks / 4 + 2] = 0xdead;
		EXPECT(ioctl(fd, t[i].cmd, buf), E2BIG, "err_inval");
		/* up to a page is scanned for zeroes; unreadable: EFAULT */
		buf[0] = 4096;
		buf[t[i].ks / 4 + 2] = 0;
		EXPECT(ioctl(fd, t[i].cmd, buf), EFAULT, "err_other");
		/* above a page: E2BIG before reading any of it */
		buf[0] = 4097;
		EXPECT(ioctl(fd, t[i].cmd, buf), E2BIG, "err_inval");
		buf[0] = 1u << 30;
		EXPECT(ioctl(fd, t[i].cmd, buf), E2BIG, "err_inval");
		buf[0] = UINT32_MAX;
		EXPECT(ioctl(fd, t[i].cmd, buf), E2BIG, "err_inval");
	}
	/* longer with a zero tail is accepted, and only ks bytes written */
	memset(buf, 0, 256);
	buf[0] = sizeof(struct kvmem_info) + 16;
	buf[sizeof(struct kvmem_info) / 4 + 3] = 0;
	CHECK(ioctl(fd, KVMEM_IOC_INFO, buf) == 0, "INFO with zero tail: %s", strerror(errno));
	CHECK(((struct kvmem_info *)buf)->abi_version == KVMEM_ABI_VERSION, "abi");
	CHECK(buf[0] == sizeof(struct kvmem_info), "size written back %u", buf[0]);
	munmap(pg, 4096);
	kvt_end();
}

static int alloc_raw(uint32_t flags, uint64_t len, int node, uint32_t reserved)
{
	struct kvmem_alloc a = { .size = sizeof(a), .flags = flags, .length = len,
				 .numa_node = node, .reserved = reserved };

	return ioctl(fd, KVMEM_IOC_ALLOC, &a);
}

static void case_alloc(void)
{
	kvt_begin("alloc_bad_input");
	EXPECT(alloc_raw(1u << 8, MiB, -1, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(1u << 31, MiB, -1, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(KVMEM_ALLOC_NO_HUGE | KVMEM_ALLOC_HUGE_REQUIRED, 4 * MiB, -1, 0),
	       EINVAL, "err_inval");
	EXPECT(alloc_raw(0, MiB, -1, 1), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, 0, -1, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, 4097, -1, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, 100, -1, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, ~0ull, -1, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, ~0ull & ~4095ull, -1, 0), EOVERFLOW, "err_inval");
	EXPECT(alloc_raw(0, 1ull << 63, -1, 0), EOVERFLOW, "err_inval");
	EXPECT(alloc_raw(0, (64ull << 30) + 4096, -1, 0), EOVERFLOW, "err_inval");
	EXPECT(alloc_raw(KVMEM_ALLOC_HUGE_REQUIRED, 3 * MiB, -1, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, MiB, 2, 0), EINVAL, "err_inval");	/* 2-node VM */
	EXPECT(alloc_raw(0, MiB, 1023, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, MiB, -2, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, MiB, 1 << 20, 0), EINVAL, "err_inval");
	EXPECT(alloc_raw(0, MiB, (int)0x80000000, 0), EINVAL, "err_inval");
	/* more than the module cap (half the VM's RAM): ENOMEM, nothing held */
	EXPECT(alloc_raw(0, 8ull << 30, -1, 0), ENOMEM, "err_cap");
	kvt_end();
}

static int pin_raw(uint32_t flags, uint64_t addr, uint64_t len)
{
	struct kvmem_pin_user p = { .size = sizeof(p), .flags = flags, .addr = addr,
				    .length = len };

	return ioctl(fd, KVMEM_IOC_PIN_USER, &p);
}

static void case_pin_user(void)
{
	uint8_t *m = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t a = (uintptr_t)m;

	kvt_begin("pin_user_bad_input");
	EXPECT(pin_raw(2, a, 4096), EINVAL, "err_inval");
	EXPECT(pin_raw(0, 0, 4096), EINVAL, "err_inval");
	EXPECT(pin_raw(0, a + 1, 4096), EINVAL, "err_inval");
	EXPECT(pin_raw(0, a, 0), EINVAL, "err_inval");
	EXPECT(pin_raw(0, a, 100), EINVAL, "err_inval");
	EXPECT(pin_raw(0, ~0ull & ~4095ull, 8192), EOVERFLOW, "err_inval");
	EXPECT(pin_raw(0, 0xffff888000000000ull, 4096), EOVERFLOW, "err_inval");
	/* the last two pages are unmapped: partial pin undone, EFAULT */
	munmap(m + 2 * 4096, 2 * 4096);
	EXPECT(pin_raw(KVMEM_PIN_WRITE, a, 4 * 4096), EFAULT, "err_other");
	/* writable pin of a read-only mapping */
	EXPECT(pin_raw(KVMEM_PIN_WRITE, (uintptr_t)ro, 4096), EFAULT, "err_other");
	munmap(m, 2 * 4096);
	munmap(ro, 4096);
	kvt_end();
}

static int gpu_raw(uint32_t flags, uint64_t addr, uint64_t len, uint32_t res)
{
	struct kvmem_pin_gpu g = { .size = sizeof(g), .flags = flags, .addr = addr,
				   .length = len, .reserved = res };

	return ioctl(fd, KVMEM_IOC_PIN_GPU, &g);
}

static void case_pin_gpu(void)
{
	kvt_begin("pin_gpu_bad_input");
	EXPECT(gpu_raw(1, 1ull << 32, 65536, 0), EINVAL, "err_inval");
	EXPECT(gpu_raw(0, 1ull << 32, 65536, 7), EINVAL, "err_inval");
	EXPECT(gpu_raw(0, 0, 65536, 0), EINVAL, "err_inval");
	EXPECT(gpu_raw(0, (1ull << 32) + 4096, 65536, 0), EINVAL, "err_inval");
	EXPECT(gpu_raw(0, 1ull << 32, 4096, 0), EINVAL, "err_inval");
	EXPECT(gpu_raw(0, 1ull << 32, 0, 0), EINVAL, "err_inval");
	EXPECT(gpu_raw(0, ~0ull & ~0xffffull, 1ull << 20, 0), EOVERFLOW, "err_inval");
	kvt_end();
}

static void case_handles(void)
{
	struct kvmem_query q = { .size = sizeof(q) };
	struct kvmem_export e = { .size = sizeof(e) };
	struct kvmem_free f = { .size = sizeof(f) };
	static const uint64_t bad[] = { 0, 12345, 1ull << 20, 1ull << 32, ~0ull };
	uint64_t h;

	kvt_begin("bad_handles_double_free");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		q.handle = e.handle = f.handle = bad[i];
		EXPECT(ioctl(fd, KVMEM_IOC_QUERY, &q), ENOENT, "err_inval");
		EXPECT(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e), ENOENT, "err_inval");
		EXPECT(ioctl(fd, KVMEM_IOC_FREE, &f), ENOENT, "err_inval");
	}
	CHECK(kvt_alloc(fd, 65536, 0, -1, &h) == 0, "ALLOC");
	q.reserved = 1;
	q.handle = h;
	EXPECT(ioctl(fd, KVMEM_IOC_QUERY, &q), EINVAL, "err_inval");
	e.handle = h;
	e.flags = 1;
	EXPECT(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e), EINVAL, "err_inval");
	f.handle = h;
	f.flags = 1;
	EXPECT(ioctl(fd, KVMEM_IOC_FREE, &f), EINVAL, "err_inval");
	f.flags = 0;
	CHECK(ioctl(fd, KVMEM_IOC_FREE, &f) == 0, "first FREE");
	EXPECT(ioctl(fd, KVMEM_IOC_FREE, &f), ENOENT, "err_inval");
	EXPECT(ioctl(fd, KVMEM_IOC_QUERY, &(struct kvmem_query){ .size = sizeof(q), .handle = h }),
	       ENOENT, "err_inval");
	/* a freed handle is not handed out again (stale handles stay stale) */
	uint64_t h2 = 0;
	CHECK(kvt_alloc(fd, 65536, 0, -1, &h2) == 0 && h2 != h, "handle %llu reused",
	      (unsigned long long)h);
	CHECK(kvt_free(fd, h2) == 0, "FREE h2");
	kvt_end();
}

static void case_mmap(void)
{
	uint64_t h;
	size_t len = 4 * 65536;
	struct kvmem_pin_user p = { .size = sizeof(p) };
	uint8_t *u = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	kvt_begin("mmap_bad_input");
	CHECK(kvt_alloc(fd, len, 0, -1, &h) == 0, "ALLOC");
	EXPECT(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (h + 1000) << 12), EINVAL, "err_inval");
	EXPECT(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0), EINVAL, "err_inval");
	EXPECT(mmap(NULL, len + 4096, PROT_READ, MAP_SHARED, fd, h << 12), EINVAL, "err_inval");
	EXPECT(mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, h << 12), EINVAL, "err_inval");
	/* an offset inside the region is not a handle of its own */
	EXPECT(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (h << 12) + 4096), EINVAL, "err_inval");
	p.addr = (uintptr_t)u;
	p.length = 4096;
	CHECK(ioctl(fd, KVMEM_IOC_PIN_USER, &p) == 0, "PIN_USER");
	EXPECT(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, p.handle << 12), ENODEV, "err_other");
	CHECK(kvt_free(fd, p.handle) == 0, "FREE pin");
	CHECK(kvt_free(fd, h) == 0, "FREE");
	/* mremap cannot grow a mapping (VM_DONTEXPAND) */
	CHECK(kvt_alloc(fd, len, 0, -1, &h) == 0, "ALLOC 2");
	void *m = kvt_map(fd, h, len);
	CHECK(m != NULL, "map");
	if (m) {
		CHECK_ERR(mremap(m, len, 2 * len, MREMAP_MAYMOVE), EFAULT);
		munmap(m, len);
	}
	CHECK(kvt_free(fd, h) == 0, "FREE 2");
	munmap(u, 4096);
	kvt_end();
}

/* Copy-out into a read-only page fails: the act must be undone. */
static void case_copy_out_fails(void)
{
	uint8_t *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *u = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvmem_alloc *a = (void *)pg;
	struct kvmem_pin_user *p = (void *)(pg + 512);
	struct kvmem_export *e = (void *)(pg + 1024);
	int nfd0, nfd1;
	uint64_t h;

	kvt_begin("copy_out_failure_undone");
	CHECK(kvt_alloc(fd, 65536, 0, -1, &h) == 0, "ALLOC");
	*a = (struct kvmem_alloc){ .size = sizeof(*a), .length = MiB, .numa_node = -1 };
	*p = (struct kvmem_pin_user){ .size = sizeof(*p), .addr = (uintptr_t)u, .length = 4096 };
	*e = (struct kvmem_export){ .size = sizeof(*e), .handle = h };
	mprotect(pg, 4096, PROT_READ);
	nfd0 = dup(0);
	close(nfd0);
	EXPECT(ioctl(fd, KVMEM_IOC_ALLOC, a), EFAULT, "err_other");
	EXPECT(ioctl(fd, KVMEM_IOC_PIN_USER, p), EFAULT, "err_other");
	EXPECT(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, e), EFAULT, "err_other");
	nfd1 = dup(0);
	close(nfd1);
	CHECK(nfd0 == nfd1, "an fd leaked: next fd %d, was %d", nfd1, nfd0);
	/* the handle numbers of undone regions are reusable */
	CHECK(kvt_free(fd, h) == 0, "FREE");
	munmap(pg, 4096);
	munmap(u, 4096);
	kvt_end();
}

/*
 * An O_RDONLY fd maps MAP_SHARED read-only (the VFS clears VM_SHARED and
 * VM_MAYWRITE, leaving VM_MAYSHARE; it used to be EINVAL); writable or
 * private mappings of it are refused.
 */
static void case_rdonly(void)
{
	struct kvt_snap s;
	uint64_t h = 0;
	uint8_t *m;
	int rfd;

	kvt_begin("rdonly_fd_maps_read_only");
	kvt_snap(&s);
	rfd = open(KVMEM_DEV_PATH, O_RDONLY | O_CLOEXEC);
	CHECK(rfd >= 0 && kvt_alloc(rfd, 65536, 0, -1, &h) == 0, "ALLOC on an O_RDONLY fd");
	m = mmap(NULL, 65536, PROT_READ, MAP_SHARED, rfd, h << 12);
	CHECK(m != MAP_FAILED, "PROT_READ MAP_SHARED of an O_RDONLY fd: %s", strerror(errno));
	if (m != MAP_FAILED) {
		CHECK(m[0] == 0 && m[65535] == 0, "not zeroed");
		CHECK(kvt_touch(m, 1) == SIGSEGV, "read-only mapping was writable");
		CHECK_ERR(mprotect(m, 65536, PROT_READ | PROT_WRITE), EACCES);
		munmap(m, 65536);
	}
	CHECK_ERR(mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, h << 12), EACCES);
	CHECK_ERR(mmap(NULL, 65536, PROT_READ, MAP_PRIVATE, rfd, h << 12), EINVAL);
	if (rfd >= 0)
		close(rfd);
	CHECK_SNAP_SAME(&s, "O_RDONLY fd");
	kvt_end();
}

int main(void)
{
	fd = kvt_open();
	if (fd < 0) {
		printf("not ok open: %s\n", strerror(errno));
		return 1;
	}
	case_unknown_ioctl();
	case_sizes();
	case_alloc();
	case_pin_user();
	case_pin_gpu();
	case_handles();
	case_mmap();
	case_copy_out_fails();
	case_rdonly();
	close(fd);
	return kvt_exit();
}
