// SPDX-License-Identifier: MIT
/*
 * kvt_gpu.c - GPU path against kvmem_p2p_mock.ko: pin, map twice,
 * read/write, fire the free callback (as cudaFree would), the mappings
 * now fault with SIGBUS (in this process and, fatally, in a child), the
 * region reports itself invalid, and nothing leaks (mock page tables too).
 */
#include "kvt.h"

#define MOCK "/sys/module/kvmem_p2p_mock/parameters/"
#define VA1 (1ull << 40)
#define VA2 ((1ull << 40) + (1ull << 30))

static int fd;

static long mock_live(void)
{
	char b[32] = "";
	int f = open(MOCK "live", O_RDONLY);

	if (f < 0 || read(f, b, sizeof(b) - 1) <= 0)
		b[0] = 0;
	if (f >= 0)
		close(f);
	return b[0] ? atol(b) : -1;
}

static int mock_free(uint64_t va)
{
	char b[32];
	int f = open(MOCK "free_va", O_WRONLY), n;

	if (f < 0)
		return -1;
	n = snprintf(b, sizeof(b), "0x%llx", (unsigned long long)va);
	n = write(f, b, n) == n ? 0 : -1;
	close(f);
	return n;
}

static int pin(uint64_t va, uint64_t len, uint64_t *h)
{
	struct kvmem_pin_gpu g = { .size = sizeof(g), .addr = va, .length = len };
	int ret = kvt_ioctl(fd, KVMEM_IOC_PIN_GPU, &g);

	if (!ret) {
		*h = g.handle;
		if (g.mmap_offset != g.handle << 12)
			return -EPROTO;
	}
	return ret;
}

static void case_gpu(void)
{
	size_t len = 1 << 20;
	uint64_t h1 = 0, h2 = 0, seed = kvt_seed(), seed2 = seed * 3;
	struct kvt_snap s;
	struct kvmem_query q;
	struct kvmem_export e = { .size = sizeof(e) };
	long long inv0 = kvt_stat("gpu_invalidations");
	uint8_t *a, *b, *c;
	int st;

	kvt_begin("gpu_pin_map_free_callback");
	kvt_snap(&s);
	CHECK(mock_live() == 0, "mock holds %ld tables at start", mock_live());
	CHECK(pin(VA1, len, &h1) == 0, "PIN_GPU 1");
	CHECK(pin(VA2, len, &h2) == 0, "PIN_GPU 2");
	CHECK(mock_live() == 2, "mock live %ld", mock_live());
	CHECK(kvt_stat("gpu_regions") == s.v[4] + 2, "gpu_regions");
	CHECK(kvt_query(fd, h1, &q) == 0 && q.kind == KVMEM_KIND_GPU &&
	      q.state == (KVMEM_STATE_VALID | KVMEM_STATE_MAPPABLE) &&
	      q.pages == len / 4096 && q.length == len,
	      "query kind %u state %u pages %llu", q.kind, q.state,
	      (unsigned long long)q.pages);
	e.handle = h1;
	CHECK_ERR(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e), EOPNOTSUPP);

	a = kvt_map(fd, h1, len);
	b = kvt_map(fd, h1, len);
	c = kvt_map(fd, h2, len);
	CHECK(a && b && c, "mmap GPU regions: %s", strerror(errno));
	if (!a || !b || !c)
		goto out;
	kvt_fill(a, len, seed);
	CHECK(kvt_verify(b, len, seed) < 0, "second mapping differs");
	kvt_fill(c, len, seed2);
	CHECK(kvt_verify(a, len, seed) < 0, "regions alias");

	/* A child with its own pin and mapping dies of SIGBUS after cudaFree. */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int cfd = kvt_open();
		struct kvmem_pin_gpu g = { .size = sizeof(g), .addr = VA1 + (1ull << 32),
					   .length = 65536 };
		volatile uint8_t *m;
		if (cfd < 0 || ioctl(cfd, KVMEM_IOC_PIN_GPU, &g))
			_exit(2);
		m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, g.mmap_offset);
		if (m == MAP_FAILED)
			_exit(3);
		m[0] = 1;
		if (mock_free(g.addr))
			_exit(4);
		(void)m[100];	/* SIGBUS here */
		_exit(5);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
	      "child should die of SIGBUS: status 0x%x", st);

	/* cudaFree of VA1: both mappings of h1 fault, h2 is untouched. */
	CHECK(mock_free(VA1) == 0, "fire callback");
	CHECK(kvt_stat("gpu_invalidations") == inv0 + 2, "invalidations %lld",
	      kvt_stat("gpu_invalidations"));
	CHECK(mock_live() == 1, "mock live %ld after callback", mock_live());
	CHECK(kvt_touch(a, 0) == SIGBUS, "read after free: no SIGBUS");
	CHECK(kvt_touch(b + 4096 * 7, 1) == SIGBUS, "write after free: no SIGBUS");
	CHECK(kvt_query(fd, h1, &q) == 0 && !(q.state & KVMEM_STATE_VALID) &&
	      q.mapped == 2, "h1 state %u mapped %u", q.state, q.mapped);
	CHECK(kvt_verify(c, len, seed2) < 0, "other region damaged");
	CHECK(kvt_query(fd, h2, &q) == 0 && (q.state & KVMEM_STATE_VALID), "h2 invalid");
	CHECK_ERR(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, h1 << 12), ENXIO);
	/* regions file says valid 0 for h1 */
	FILE *f = fopen("/proc/driver/kvmem/regions", "r");
	char line[256];
	int seen = 0, pid2, valid, mapped;
	unsigned hh, node;
	unsigned long long size, huge;
	char kind[16];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%d %u %15s %llu %u %llu %d %d", &pid2, &hh, kind,
			   &size, &node, &huge, &mapped, &valid) == 8 &&
		    pid2 == getpid() && hh == h1)
			seen = !strcmp(kind, "gpu") && valid == 0 && mapped == 2;
	if (f)
		fclose(f);
	CHECK(seen, "regions line for h1 should say gpu, mapped 2, valid 0");
out:
	if (a)
		munmap(a, len);
	if (b)
		munmap(b, len);
	if (c)
		munmap(c, len);
	CHECK(kvt_free(fd, h1) == 0 && kvt_free(fd, h2) == 0, "FREE");
	CHECK(mock_live() == 0, "mock still holds %ld tables", mock_live());
	CHECK_SNAP_SAME(&s, "GPU case");
	kvt_end();
}

/* Free callback while the region is mapped and then the fd closed. */
static void case_gpu_close(void)
{
	struct kvt_snap s;
	uint64_t h;
	int fd2;

	kvt_begin("gpu_close_and_kill_release_pages");
	kvt_snap(&s);
	fd2 = kvt_open();
	struct kvmem_pin_gpu g = { .size = sizeof(g), .addr = VA2, .length = 4 << 16 };
	CHECK(ioctl(fd2, KVMEM_IOC_PIN_GPU, &g) == 0, "PIN_GPU");
	h = g.handle;
	void *m = mmap(NULL, 4 << 16, PROT_READ, MAP_SHARED, fd2, h << 12);
	CHECK(m != MAP_FAILED, "map");
	close(fd2);
	CHECK(mock_live() == 1, "pages released while mapped");
	if (m != MAP_FAILED)
		munmap(m, 4 << 16);
	CHECK(mock_live() == 0, "pages not released after close+munmap: %ld", mock_live());
	CHECK_SNAP_SAME(&s, "close");

	/* killed while holding a valid GPU pin */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int cfd = kvt_open();
		struct kvmem_pin_gpu g2 = { .size = sizeof(g2), .addr = VA1, .length = 1 << 20 };
		if (cfd < 0 || ioctl(cfd, KVMEM_IOC_PIN_GPU, &g2))
			_exit(2);
		mmap(NULL, 1 << 20, PROT_READ, MAP_SHARED, cfd, g2.mmap_offset);
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st), "child 0x%x", st);
	CHECK(mock_live() == 0, "killed child's pin still held: %ld", mock_live());
	CHECK_SNAP_SAME(&s, "kill");
	kvt_end();
}

#define VA3 ((1ull << 40) + (2ull << 30))

static int mock_set(const char *name, long v)
{
	char path[128], b[32];
	int f, n;

	snprintf(path, sizeof(path), MOCK "%s", name);
	f = open(path, O_WRONLY);
	if (f < 0)
		return -1;
	n = snprintf(b, sizeof(b), "%ld", v);
	n = write(f, b, n) == n ? 0 : -1;
	close(f);
	return n;
}

/* Child: pin VA3, optionally map it, and drop it (the release runs). */
static int put_fail_child(int mapped)
{
	struct kvmem_pin_gpu g = { .size = sizeof(g), .addr = VA3, .length = 4 << 16 };
	int cfd = kvt_open();
	uint8_t *m = NULL;

	if (cfd < 0 || ioctl(cfd, KVMEM_IOC_PIN_GPU, &g))
		return 2;
	if (mapped) {
		m = mmap(NULL, 4 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, cfd,
			 g.mmap_offset);
		if (m == MAP_FAILED)
			return 3;
		m[0] = 1;
	}
	if (mock_set("put_fail", 1))
		return 4;
	if (kvt_free(cfd, g.handle))
		return 5;
	if (m)
		munmap(m, 4 << 16);	/* the release runs in VMA close */
	close(cfd);
	return 0;
}

/*
 * nvidia_p2p_put_pages fails and no callback follows (defect 6): the
 * release must not wait for one (it did, forever, in D state under
 * mmap_lock). The table stays with the driver until a callback comes,
 * which then frees it and the region's remains.
 */
static void case_put_fail(int mapped)
{
	struct kvt_snap s;
	int st = 0, done = 0;
	pid_t pid;

	kvt_begin(mapped ? "gpu_put_pages_fails_mapped" : "gpu_put_pages_fails");
	kvt_snap(&s);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(put_fail_child(mapped));
	for (int i = 0; i < 100 && !done; i++) {
		done = waitpid(pid, &st, WNOHANG) == pid;
		if (!done)
			usleep(100000);
	}
	CHECK(done, "the release hung waiting for a free callback that never came");
	if (!done) {
		mock_free(VA3);		/* unblock it */
		waitpid(pid, &st, 0);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	CHECK_SNAP_SAME(&s, "failed put_pages");
	if (done)
		CHECK(mock_live() == 1, "the table should be left to the driver: live %ld",
		      mock_live());
	/* the late callback frees what was left */
	CHECK(mock_free(VA3) == 0, "free_va");
	CHECK(mock_live() == 0, "table still held after the late callback: %ld", mock_live());
	mock_set("put_fail", 0);
	kvt_end();
}

/* cudaFree races the pin: the callback fires inside get_pages. */
static void case_cb_in_get(void)
{
	struct kvmem_pin_gpu g = { .size = sizeof(g), .addr = VA3, .length = 4 << 16 };
	struct kvt_snap s;

	kvt_begin("gpu_callback_inside_get_pages");
	kvt_snap(&s);
	CHECK(mock_set("cb_in_get", 1) == 0, "cb_in_get");
	CHECK_ERR(ioctl(fd, KVMEM_IOC_PIN_GPU, &g), ENXIO);
	CHECK(mock_live() == 0, "table not given back: live %ld", mock_live());
	CHECK_SNAP_SAME(&s, "callback inside get_pages");
	/* and the next pin works normally */
	CHECK(ioctl(fd, KVMEM_IOC_PIN_GPU, &g) == 0, "PIN_GPU after: %s", strerror(errno));
	CHECK(kvt_free(fd, g.handle) == 0 && mock_live() == 0, "FREE");
	mock_set("cb_in_get", 0);
	kvt_end();
}

int main(void)
{
	struct kvmem_info in = { .size = sizeof(in) };

	fd = kvt_open();
	if (fd < 0 || ioctl(fd, KVMEM_IOC_INFO, &in)) {
		printf("not ok open: %s\n", strerror(errno));
		return 1;
	}
	if (!(in.features & KVMEM_FEAT_GPU) || access(MOCK "live", R_OK)) {
		kvt_skip("gpu", "kvmem built without KVMEM_GPU=mock or mock not loaded");
		return 77;
	}
	case_gpu();
	case_gpu_close();
	case_cb_in_get();
	case_put_fail(0);
	case_put_fail(1);
	close(fd);
	return kvt_exit();
}
