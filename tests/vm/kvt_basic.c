// SPDX-License-Identifier: MIT
/* kvt_basic.c - success path of every kvmem ioctl, data checked byte for
 * byte through two mappings and through the dma-buf's mapping. */
#include <sys/syscall.h>

#include "kvt.h"

#define MiB (1ul << 20)

static int fd;

static void case_info(void)
{
	struct kvmem_info in = { .size = sizeof(in) };

	kvt_begin("info");
	CHECK(kvt_ioctl(fd, KVMEM_IOC_INFO, &in) == 0, "INFO failed");
	CHECK(in.abi_version == KVMEM_ABI_VERSION, "abi %u", in.abi_version);
	CHECK((in.features & (KVMEM_FEAT_HOST | KVMEM_FEAT_PIN_USER |
			      KVMEM_FEAT_DMABUF)) ==
	      (KVMEM_FEAT_HOST | KVMEM_FEAT_PIN_USER | KVMEM_FEAT_DMABUF),
	      "features 0x%llx", (unsigned long long)in.features);
	CHECK((in.features & KVMEM_FEAT_GPU) && (in.features & KVMEM_FEAT_GPU_MOCK),
	      "VM build should have the mock GPU provider: 0x%llx",
	      (unsigned long long)in.features);
	CHECK(in.page_size == 4096 && in.huge_page_size == 2 * MiB &&
	      in.gpu_page_size == 65536, "sizes %llu %llu %llu",
	      (unsigned long long)in.page_size,
	      (unsigned long long)in.huge_page_size,
	      (unsigned long long)in.gpu_page_size);
	CHECK(in.cap_bytes > 0 && in.max_region_bytes >= 1024 * MiB &&
	      in.max_regions > 0, "limits");
	CHECK(in.size == sizeof(in), "size written back %u", in.size);
	kvt_end();
}

static int has_region_line(uint64_t handle, const char *kind)
{
	FILE *f = fopen("/proc/driver/kvmem/regions", "r");
	char line[256], k[16];
	int pid, found = 0;
	unsigned h;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%d %u %15s", &pid, &h, k) == 3 &&
		    pid == getpid() && h == handle && !strcmp(k, kind))
			found = 1;
	fclose(f);
	return found;
}

static void case_host_two_maps(void)
{
	size_t len = 8 * MiB;
	struct kvmem_query q;
	uint64_t h = 0, seed = kvt_seed();
	long long maps0 = kvt_stat("mappings"), pin0 = kvt_stat("pinned_bytes");
	uint8_t *a, *b;
	long bad;

	kvt_begin("host_alloc_two_mappings");
	CHECK(kvt_alloc(fd, len, KVMEM_ALLOC_HUGE_PREFERRED | KVMEM_ALLOC_ZERO,
			KVMEM_NUMA_ANY, &h) == 0, "ALLOC 8 MiB");
	CHECK(kvt_stat("pinned_bytes") == pin0 + (long long)len, "pinned_bytes");
	CHECK(kvt_query(fd, h, &q) == 0, "QUERY");
	CHECK(q.length == len && q.kind == KVMEM_KIND_HOST && q.pages == len / 4096,
	      "query length %llu kind %u pages %llu",
	      (unsigned long long)q.length, q.kind, (unsigned long long)q.pages);
	CHECK(q.huge_pages * 512 <= q.pages, "huge %llu", (unsigned long long)q.huge_pages);
	CHECK(q.state == (KVMEM_STATE_VALID | KVMEM_STATE_MAPPABLE), "state %u", q.state);
	CHECK(q.numa_node >= -1 && q.numa_node < 64, "node %d", q.numa_node);
	CHECK(q.mapped == 0 && q.dmabufs == 0, "mapped %u", q.mapped);
	CHECK(q.mmap_offset == h << 12, "offset");
	CHECK(has_region_line(h, "host"), "no line in /proc/driver/kvmem/regions");

	a = kvt_map(fd, h, len);
	b = kvt_map(fd, h, len);
	CHECK(a && b, "mmap: %s", strerror(errno));
	if (a && b) {
		size_t i;
		for (i = 0; i < len && !a[i]; i++)
			;
		CHECK(i == len, "fresh region not zeroed at %zu", i);
		kvt_fill(a, len, seed);
		bad = kvt_verify(b, len, seed);
		CHECK(bad < 0, "second mapping differs at byte %ld", bad);
		kvt_query(fd, h, &q);
		CHECK(q.mapped == 2, "mapped %u, want 2", q.mapped);
		CHECK(kvt_stat("mappings") == maps0 + 2, "stats mappings");
		/* a partial mapping (prefix) sees the same bytes */
		uint8_t *c = kvt_map(fd, h, 4096);
		CHECK(c && kvt_verify(c, 4096, seed) < 0, "prefix mapping");
		if (c)
			munmap(c, 4096);
	}
	if (a)
		munmap(a, len);
	if (b)
		munmap(b, len);
	CHECK(kvt_stat("mappings") == maps0, "mappings not back");
	CHECK(kvt_free(fd, h) == 0, "FREE");
	CHECK(kvt_stat("pinned_bytes") == pin0, "pinned_bytes not back");
	CHECK(!has_region_line(h, "host"), "line still in regions");
	kvt_end();
}

static void case_huge_flags(void)
{
	struct kvmem_query q;
	uint64_t h;

	kvt_begin("host_huge_required");
	int r = kvt_alloc(fd, 4 * MiB, KVMEM_ALLOC_HUGE_REQUIRED, 0, &h);
	CHECK(r == 0, "ALLOC HUGE_REQUIRED on node 0: %d", r);
	if (!r) {
		kvt_query(fd, h, &q);
		CHECK(q.huge_pages == 2 && q.pages == 1024 && q.numa_node == 0,
		      "huge %llu pages %llu node %d",
		      (unsigned long long)q.huge_pages,
		      (unsigned long long)q.pages, q.numa_node);
		CHECK(kvt_free(fd, h) == 0, "FREE");
	}
	kvt_end();

	kvt_begin("host_no_huge");
	r = kvt_alloc(fd, 2 * MiB + 4096, KVMEM_ALLOC_NO_HUGE, KVMEM_NUMA_ANY, &h);
	CHECK(r == 0, "ALLOC NO_HUGE: %d", r);
	if (!r) {
		kvt_query(fd, h, &q);
		CHECK(q.huge_pages == 0 && q.pages == 513, "huge %llu pages %llu",
		      (unsigned long long)q.huge_pages, (unsigned long long)q.pages);
		CHECK(kvt_free(fd, h) == 0, "FREE");
	}
	kvt_end();
}

/* Every online node: a region placed there reports it, huge pages too. */
static void case_numa(void)
{
	struct kvmem_query q;
	int nodes = 0;
	uint64_t h;

	kvt_begin("numa_placement");
	for (int n = 0; n < 64; n++) {
		char path[64];
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (access(path, F_OK))
			continue;
		nodes++;
		int r = kvt_alloc(fd, 4 * MiB, KVMEM_ALLOC_HUGE_PREFERRED, n, &h);
		CHECK(r == 0, "ALLOC on node %d: %d", n, r);
		if (r)
			continue;
		kvt_query(fd, h, &q);
		CHECK(q.numa_node == n && q.huge_pages == 2, "node %d: got node %d, %llu huge",
		      n, q.numa_node, (unsigned long long)q.huge_pages);
		uint8_t *m = kvt_map(fd, h, 4 * MiB);
		CHECK(m != NULL, "map");
		if (m) {
			kvt_fill(m, 4 * MiB, n + 1);
			CHECK(kvt_verify(m, 4 * MiB, n + 1) < 0, "data on node %d", n);
			munmap(m, 4 * MiB);
		}
		CHECK(kvt_free(fd, h) == 0, "FREE");
	}
	CHECK(nodes >= 1, "no NUMA node in sysfs");
	if (nodes < 2)
		printf("  (only %d NUMA node)\n", nodes);
	kvt_end();
}

static void case_dmabuf(void)
{
	size_t len = 2 * MiB + 8192;
	uint64_t h, seed = kvt_seed(), seed2 = kvt_seed() ^ 0xabcdef;
	struct kvmem_export e = { .size = sizeof(e) };
	struct kvmem_query q;
	long long regions0 = kvt_stat("regions"), bufs0 = kvt_stat("dmabufs");
	uint8_t *a = NULL, *d = NULL;

	kvt_begin("dmabuf_export_mmap");
	CHECK(kvt_alloc(fd, len, 0, KVMEM_NUMA_ANY, &h) == 0, "ALLOC");
	a = kvt_map(fd, h, len);
	CHECK(a, "mmap");
	if (!a)
		goto out;
	kvt_fill(a, len, seed);
	e.handle = h;
	CHECK(kvt_ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e) == 0, "EXPORT");
	CHECK(e.fd >= 0, "fd %d", e.fd);
	CHECK(fcntl(e.fd, F_GETFD) & FD_CLOEXEC, "dma-buf fd not O_CLOEXEC");
	CHECK(kvt_stat("dmabufs") == bufs0 + 1, "dmabufs gauge");
	kvt_query(fd, h, &q);
	CHECK(q.dmabufs == 1, "query dmabufs %u", q.dmabufs);
	CHECK(lseek(e.fd, 0, SEEK_END) == (off_t)len, "dma-buf size");
	d = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
	CHECK(d != MAP_FAILED, "mmap dma-buf: %s", strerror(errno));
	if (d == MAP_FAILED) {
		d = NULL;
		goto out;
	}
	long bad = kvt_verify(d, len, seed);
	CHECK(bad < 0, "dma-buf mapping differs at %ld", bad);
	kvt_fill(d, len, seed2);
	bad = kvt_verify(a, len, seed2);
	CHECK(bad < 0, "write through dma-buf not seen at %ld", bad);
	/* offset mapping of the dma-buf */
	uint8_t *d2 = mmap(NULL, 8192, PROT_READ, MAP_SHARED, e.fd, 2 * MiB);
	CHECK(d2 != MAP_FAILED && !memcmp(d2, a + 2 * MiB, 8192), "dma-buf offset map");
	if (d2 != MAP_FAILED)
		munmap(d2, 8192);

	/* Free the handle and close everything but the dma-buf mapping:
	 * the pages stay until it goes. */
	munmap(a, len);
	a = NULL;
	CHECK(kvt_free(fd, h) == 0, "FREE");
	close(e.fd);
	CHECK(kvt_stat("regions") == regions0 + 1, "region gone while dma-buf mapped");
	bad = kvt_verify(d, len, seed2);
	CHECK(bad < 0, "data lost after free at %ld", bad);
	munmap(d, len);
	d = NULL;
	CHECK(kvt_stat("regions") == regions0, "region not released: %lld",
	      kvt_stat("regions"));
	CHECK(kvt_stat("dmabufs") == bufs0, "dmabufs not back");
out:
	if (a)
		munmap(a, len);
	if (d)
		munmap(d, len);
	kvt_end();
}

static void case_pin_user(void)
{
	size_t len = 1 * MiB;
	uint64_t seed = kvt_seed();
	long long pin0 = kvt_stat("pinned_bytes");
	struct kvmem_pin_user p = { .size = sizeof(p), .flags = KVMEM_PIN_WRITE };
	struct kvmem_export e = { .size = sizeof(e) };
	struct kvmem_query q;
	uint8_t *buf;

	kvt_begin("pin_user");
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	kvt_fill(buf, len, seed);
	p.addr = (uintptr_t)buf;
	p.length = len;
	CHECK(kvt_ioctl(fd, KVMEM_IOC_PIN_USER, &p) == 0, "PIN_USER: %s", strerror(errno));
	CHECK(kvt_stat("pinned_bytes") == pin0 + (long long)len, "pinned_bytes");
	CHECK(kvt_query(fd, p.handle, &q) == 0, "QUERY");
	CHECK(q.kind == KVMEM_KIND_USER && q.pages == 256 &&
	      q.state == KVMEM_STATE_VALID && q.mmap_offset == 0,
	      "query kind %u pages %llu state %u", q.kind,
	      (unsigned long long)q.pages, q.state);
	CHECK(kvt_map(fd, p.handle, len) == NULL && errno == ENODEV,
	      "mmap of a user pin should be ENODEV: %s", strerror(errno));
	/* The dma-buf carries the same pages (checked via its sg list by
	 * importers); exporting must work and take a reference. */
	e.handle = p.handle;
	CHECK(kvt_ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e) == 0, "EXPORT user pin");
	CHECK(kvt_free(fd, p.handle) == 0, "FREE");
	CHECK(kvt_stat("pinned_bytes") == pin0 + (long long)len,
	      "released while the dma-buf holds it");
	close(e.fd);
	CHECK(kvt_stat("pinned_bytes") == pin0, "pinned_bytes not back");
	CHECK(kvt_verify(buf, len, seed) < 0, "user buffer changed");
	munmap(buf, len);
	kvt_end();
}

static void case_close_frees(void)
{
	struct kvt_snap s;
	uint64_t h = 0;
	int fd2;

	kvt_begin("close_frees_everything");
	kvt_snap(&s);
	fd2 = kvt_open();
	CHECK(fd2 >= 0, "open");
	for (int i = 0; i < 5; i++)
		CHECK(kvt_alloc(fd2, (i + 1) * 65536, 0, KVMEM_NUMA_ANY, &h) == 0, "ALLOC %d", i);
	CHECK(kvt_stat("regions") == s.v[1] + 5, "regions");
	uint8_t *m = kvt_map(fd2, h, 65536);
	CHECK(m != NULL, "map");
	close(fd2);
	/* Unmapped regions go with the file; the mapped one stays. (On
	 * kernels >= 6.5 the mapping keeps the file open: all 5 stay.) */
	long long left = kvt_stat("regions") - s.v[1];
	CHECK(left == 1 || left == 5, "%lld regions left after close", left);
	if (m)
		munmap(m, 65536);
	CHECK_SNAP_SAME(&s, "open/alloc/close");
	kvt_end();
}

/* MADV_DONTNEED zaps the ptes; the pages come back on the next access. */
static void case_refault(void)
{
	size_t len = 4 * MiB;
	uint64_t h = 0, seed = kvt_seed();
	uint8_t *m;

	kvt_begin("refault_after_madv_dontneed");
	CHECK(kvt_alloc(fd, len, 0, -1, &h) == 0, "ALLOC");
	m = kvt_map(fd, h, len);
	CHECK(m != NULL, "map");
	if (m) {
		kvt_fill(m, len, seed);
		CHECK(madvise(m, len, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
		CHECK(kvt_verify(m, len, seed) < 0, "data lost after MADV_DONTNEED (read)");
		CHECK(madvise(m, len, MADV_DONTNEED) == 0, "madvise 2");
		kvt_fill(m, len, seed ^ 77);	/* write faults first */
		CHECK(madvise(m, len, MADV_DONTNEED) == 0, "madvise 3");
		CHECK(kvt_verify(m, len, seed ^ 77) < 0, "data lost after write refault");
		munmap(m, len);
	}
	CHECK(kvt_free(fd, h) == 0, "FREE");
	kvt_end();
}

/* A mapping that outlives its fd keeps the module loaded. */
static void case_rmmod_busy(void)
{
	size_t len = 2 * MiB;
	uint64_t h = 0, seed = kvt_seed();
	uint8_t *m;
	int fd2 = kvt_open(), st;

	kvt_begin("rmmod_refused_while_mapped");
	CHECK(fd2 >= 0 && kvt_alloc(fd2, len, 0, -1, &h) == 0, "ALLOC");
	m = kvt_map(fd2, h, len);
	CHECK(m != NULL, "map");
	close(fd2);
	if (m) {
		kvt_fill(m, len, seed);
		st = system("rmmod kvmem 2>/dev/null");
		CHECK(st != 0 && access("/dev/kvmem", F_OK) == 0,
		      "rmmod succeeded while a region was mapped");
		CHECK(kvt_verify(m, len, seed) < 0, "data changed");
		munmap(m, len);
	}
	CHECK(kvt_stat("regions") == 0 || kvt_stat("regions") > 0, "stats readable");
	kvt_end();
}

/*
 * QUERY's numa_node of a user pin is the node of every page, -1 when they
 * differ (it used to be the first page's): one page bound to each node.
 */
static void case_pin_user_numa(void)
{
	struct kvmem_pin_user p = { .size = sizeof(p), .length = 8192 };
	struct kvmem_query q;
	unsigned long mask;
	uint8_t *buf;
	int nfd;

	if (access("/sys/devices/system/node/node1", F_OK)) {
		kvt_skip("pin_user_numa_mixed", "only one NUMA node");
		return;
	}
	kvt_begin("pin_user_numa_mixed");
	nfd = kvt_open();
	buf = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int n = 0; n < 2; n++) {
		mask = 1ul << n;
		/* MPOL_BIND = 2 */
		CHECK(syscall(SYS_mbind, buf + n * 4096, 4096, 2, &mask, 8 * sizeof(mask), 0) == 0,
		      "mbind node %d: %s", n, strerror(errno));
		buf[n * 4096] = 1;
	}
	p.addr = (uintptr_t)buf;
	CHECK(ioctl(nfd, KVMEM_IOC_PIN_USER, &p) == 0, "PIN_USER: %s", strerror(errno));
	CHECK(kvt_query(nfd, p.handle, &q) == 0 && q.numa_node == -1,
	      "numa_node %d for pages on nodes 0 and 1, want -1", q.numa_node);
	CHECK(kvt_free(nfd, p.handle) == 0, "FREE");
	p.length = 4096;
	p.addr = (uintptr_t)buf + 4096;
	CHECK(ioctl(nfd, KVMEM_IOC_PIN_USER, &p) == 0, "PIN_USER");
	CHECK(kvt_query(nfd, p.handle, &q) == 0 && q.numa_node == 1,
	      "numa_node %d for a page on node 1", q.numa_node);
	kvt_free(nfd, p.handle);
	munmap(buf, 8192);
	close(nfd);
	kvt_end();
}

int main(void)
{
	fd = kvt_open();
	if (fd < 0) {
		printf("not ok open: %s\n", strerror(errno));
		return 1;
	}
	case_info();
	case_host_two_maps();
	case_huge_flags();
	case_numa();
	case_dmabuf();
	case_pin_user();
	case_pin_user_numa();
	case_close_frees();
	case_refault();
	case_rmmod_busy();
	close(fd);
	return kvt_exit();
}
