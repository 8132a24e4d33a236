/* SPDX-License-Identifier: MIT */
/*
 * kvr_test.c - host tests and benchmark of the remote tier against real
 * memory servers (kvr_serve, i.e. `kvctl serve`) on loopback.
 *
 *   kvr_test loopback  SERVE   two servers: spread, byte-exact loads, a
 *                              killed / stopped server, restart + reconnect
 *   kvr_test security  SERVE   auth, namespace isolation, geometry refusal
 *   kvr_test malformed SERVE   garbage frames to a live server that keeps serving
 *   kvr_test bench     SERVE [SECONDS]  TCP store/load throughput (prints GB/s)
 *   kvr_test rdma      SERVE DEV [BLOCK_BYTES [NBLOCKS [SECONDS]]]  RDMA round trip
 *                              (+ throughput) through verbs device DEV
 *
 * Exit 0 pass, 1 fail, 77 skip.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "proto.h"
#include "remote.h"
#include "remote_rdma.h"

static const char *serve_bin;
static char tmpdir[256];
static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fprintf(stderr, "\n"); \
		failures++; \
	} \
} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rng_state = 0x1234567;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_rand(void *p, size_t len)
{
	uint64_t *q = p;
	for (size_t i = 0; i < len / 8; i++)
		q[i] = rnd();
}

struct server {
	pid_t pid;
	int port;
	char pfile[300];
};

/* Start a server; extra args NULL-terminated. port 0: any. Returns 0 or -1. */
static int server_start(struct server *s, int port, const char *pool, const char *bb, ...)
{
	static int seq;
	char listen_at[64];
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", port);
	snprintf(s->pfile, sizeof(s->pfile), "%s/port.%d.%d", tmpdir, getpid(), seq++);
	unlink(s->pfile);
	const char *argv[32];
	int n = 0;
	argv[n++] = serve_bin;
	argv[n++] = "--listen";
	argv[n++] = listen_at;
	argv[n++] = "--pool";
	argv[n++] = pool;
	argv[n++] = "--block-bytes";
	argv[n++] = bb;
	argv[n++] = "--no-kvmem";
	argv[n++] = "--port-file";
	argv[n++] = s->pfile;
	va_list ap;
	va_start(ap, bb);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 30)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		/* A crashed test must not leave servers behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(serve_bin, (char **)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(s->pfile, "r");
		if (f) {
			int ok = fscanf(f, "%d", &s->port) == 1;
			fclose(f);
			if (ok)
				return 0;
		}
		int st;
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

static void server_kill(struct server *s, int sig)
{
	if (s->pid > 0) {
		kill(s->pid, sig);
		if (sig == SIGKILL || sig == SIGTERM) {
			waitpid(s->pid, NULL, 0);
			s->pid = 0;
		}
	}
}

static bool server_alive(struct server *s)
{
	int st;
	return s->pid > 0 && waitpid(s->pid, &st, WNOHANG) == 0;
}

/* Geometry with the given block bytes: 1 layer, 2 planes, 4 tokens, 2 heads, fp16. */
static struct kv_geometry geom_for(size_t block_bytes)
{
	struct kv_geometry g = { 1, 2, 4, 2, (uint32_t)(block_bytes / 32), KV_DTYPE_FP16 };
	return g;
}

static void *slots(size_t n, size_t bb)
{
	void *p = mmap(NULL, n * bb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int open_tier(const char *peers, size_t bb, kv_hash root, const char *auth, int timeout_ms,
		     struct kv_tier_ops *t)
{
	struct kv_remote_opts o = {
		.peers = peers, .geom = geom_for(bb), .ns_root = root, .timeout_ms = timeout_ms,
		.auth_file = auth, .name = "kvr_test", .flags = KV_REMOTE_NO_RDMA,
	};
	return kv_remote_tier_open_opts(&o, t);
}

/* The one check value of a geom_for(bb) block (1 layer) stored under h. */
static uint64_t check1(kv_hash h, const void *p, size_t bb)
{
	struct kv_check_shape sh = { 1, bb };
	return kv_check_layer(&sh, h, 0, p);
}

/* Write blocks [0..n) of data (bb each) under h[]; returns how many stored. */
static int store_all(struct kv_tier_ops *t, const kv_hash *h, uint8_t *data, size_t n, size_t bb)
{
	struct kv_tier_io io[256];
	uint64_t chk[256];
	int stored = 0;
	for (size_t off = 0; off < n; off += 256) {
		size_t c = n - off < 256 ? n - off : 256;
		for (size_t k = 0; k < c; k++) {
			io[k].h = h[off + k];
			io[k].buf = data + (off + k) * bb;
			chk[k] = check1(io[k].h, io[k].buf, bb);
			io[k].check = &chk[k];
			io[k].res = 1;
		}
		int r = t->write(t->ctx, io, c);
		if (r > 0)
			stored += r;
	}
	return stored;
}

/* Read blocks into out; res[i] per block. Returns how many read. */
static int load_all(struct kv_tier_ops *t, const kv_hash *h, uint8_t *out, size_t n, size_t bb, int32_t *res)
{
	struct kv_tier_io io[256];
	uint64_t chk[256];
	int got = 0;
	for (size_t off = 0; off < n; off += 256) {
		size_t c = n - off < 256 ? n - off : 256;
		for (size_t k = 0; k < c; k++) {
			io[k].h = h[off + k];
			io[k].buf = out + (off + k) * bb;
			io[k].check = &chk[k];
			io[k].res = 1;
		}
		int r = t->read(t->ctx, io, c);
		if (r > 0)
			got += r;
		for (size_t k = 0; k < c; k++)
			res[off + k] = io[k].res;
	}
	return got;
}

/* ------------------------------------------------------------------ loopback */

static int t_loopback(void)
{
	const size_t bb = 4096, n = 3000;
	const int timeout_ms = 1000;
	struct server a, b;
	if (server_start(&a, 0, "32M", "4096", "-q", NULL) || server_start(&b, 0, "32M", "4096", "-q", NULL)) {
		fprintf(stderr, "FAIL cannot start servers\n");
		return 1;
	}
	char peers[128];
	snprintf(peers, sizeof(peers), "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
	struct kv_tier_ops t;
	kv_hash root = { rnd(), rnd() };
	CHECK(open_tier(peers, bb, root, NULL, timeout_ms, &t) == 0, "open");
	kv_hash *h = calloc(n, sizeof(*h));
	uint8_t *data = slots(n, bb), *out = slots(n, bb);
	int32_t *res = calloc(n, sizeof(*res));
	int *home = calloc(n, sizeof(*home));
	for (size_t i = 0; i < n; i++) {
		h[i].lo = rnd();
		h[i].hi = rnd();
	}
	fill_rand(data, n * bb);
	size_t on_a = 0;
	for (size_t i = 0; i < n; i++) {
		home[i] = kv_remote_placement(&t, h[i]);
		on_a += home[i] == 0;
	}
	printf("placement: %zu blocks on server A, %zu on B\n", on_a, n - on_a);
	CHECK(on_a > n / 3 && n - on_a > n / 3, "placement does not spread: %zu/%zu", on_a, n);

	int st = store_all(&t, h, data, n, bb);
	CHECK(st == (int)n, "stored %d of %zu", st, n);
	uint64_t sa[KVP_ST_COUNT], sb[KVP_ST_COUNT];
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", a.port);
	CHECK(kv_remote_server_stats(hp, NULL, 1000, sa, KVP_ST_COUNT, NULL, 0) > 0, "stats A");
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", b.port);
	CHECK(kv_remote_server_stats(hp, NULL, 1000, sb, KVP_ST_COUNT, NULL, 0) > 0, "stats B");
	printf("servers hold %llu + %llu blocks\n", (unsigned long long)sa[KVP_ST_BLOCKS],
	       (unsigned long long)sb[KVP_ST_BLOCKS]);
	CHECK(sa[KVP_ST_BLOCKS] == on_a && sb[KVP_ST_BLOCKS] == n - on_a, "servers' block counts");

	uint8_t *present = calloc(n, 1);
	CHECK(t.lookup(t.ctx, h, n, present) == 0, "lookup");
	size_t np = 0;
	for (size_t i = 0; i < n; i++)
		np += present[i];
	CHECK(np == n, "lookup found %zu of %zu", np, n);

	memset(out, 0, n * bb);
	int got = load_all(&t, h, out, n, bb, res);
	CHECK(got == (int)n, "loaded %d of %zu", got, n);
	CHECK(memcmp(out, data, n * bb) == 0, "loaded bytes differ");

	/* Unknown blocks are misses. */
	kv_hash unk[4] = { { 1, 2 }, { 3, 4 }, { 5, 6 }, { 7, 8 } };
	CHECK(load_all(&t, unk, out, 4, bb, res) == 0 && res[0] == -ENOENT, "unknown block: %d", res[0]);

	/* Kill A: its blocks become misses within the timeout, B's still load. */
	server_kill(&a, SIGKILL);
	memset(out, 0, n * bb);
	uint64_t t0 = now_ms();
	got = load_all(&t, h, out, n, bb, res);
	uint64_t dt = now_ms() - t0;
	size_t okb = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		if (home[i] == 1) {
			okb += res[i] == 0 && memcmp(out + i * bb, data + i * bb, bb) == 0;
		} else {
			bad += res[i] == 0;
		}
	}
	printf("A killed: loaded %d in %llu ms; B's %zu/%zu byte-exact, A's returned %zu\n", got,
	       (unsigned long long)dt, okb, n - on_a, bad);
	CHECK(okb == n - on_a, "B's blocks after A died: %zu of %zu", okb, n - on_a);
	CHECK(bad == 0, "A's blocks returned after A died");
	CHECK(dt < (uint64_t)timeout_ms + 1000, "took %llu ms", (unsigned long long)dt);
	CHECK(kv_remote_peer_up(&t, 0) == 0, "peer A still up");

	/* B stops answering (SIGSTOP): bounded by the timeout, nothing returned. */
	server_kill(&b, SIGSTOP);
	t0 = now_ms();
	got = load_all(&t, h, out, 256, bb, res);
	dt = now_ms() - t0;
	printf("B stopped: %d loaded in %llu ms\n", got, (unsigned long long)dt);
	CHECK(got == 0, "loaded %d from stopped/dead servers", got);
	CHECK(dt < (uint64_t)timeout_ms * 2 + 1000, "stopped server took %llu ms", (unsigned long long)dt);
	server_kill(&b, SIGCONT);

	/* A restarts on its port; the client reconnects (backoff <= 2 s) and stores again. */
	int port_a = a.port, started = -1;
	for (int i = 0; i < 50 && started; i++) {
		started = server_start(&a, port_a, "32M", "4096", "-q", NULL);
		if (started)
			usleep(100000);
	}
	CHECK(started == 0, "restart A on port %d", port_a);
	t0 = now_ms();
	size_t ia = 0;
	while (ia < n && home[ia] != 0)
		ia++;
	bool back = false;
	while (!back && now_ms() - t0 < 8000) {
		st = store_all(&t, &h[ia], data + ia * bb, 1, bb);
		back = st == 1 && kv_remote_peer_up(&t, 0) == 1 && kv_remote_placement(&t, h[ia]) == 0;
		if (!back)
			usleep(50000);
	}
	printf("A restarted: reconnected after %llu ms\n", (unsigned long long)(now_ms() - t0));
	CHECK(back, "client did not reconnect to A");
	/* Wait for B (SIGCONT) to be retried too, then store A's blocks again and load all. */
	for (int i = 0; i < 100 && kv_remote_peer_up(&t, 1) != 1; i++) {
		store_all(&t, h, data, 1, bb);
		load_all(&t, h, out, 1, bb, res);
		usleep(50000);
	}
	st = store_all(&t, h, data, n, bb);
	CHECK(st == (int)n, "re-stored %d of %zu", st, n);
	memset(out, 0, n * bb);
	got = load_all(&t, h, out, n, bb, res);
	CHECK(got == (int)n && memcmp(out, data, n * bb) == 0, "after restart: loaded %d of %zu", got, n);

	struct kv_tier_stats ts = { 0 };
	t.stats(t.ctx, &ts);
	printf("tier stats: hits %llu misses %llu failures %llu verify_failures %llu\n",
	       (unsigned long long)ts.hits, (unsigned long long)ts.misses,
	       (unsigned long long)ts.failures, (unsigned long long)ts.verify_failures);
	CHECK(ts.verify_failures == 0, "verify failures");
	t.close(t.ctx);

	/* Two replicas: every block on both servers; with either one dead all still load. */
	struct kv_remote_opts o2 = { .peers = peers, .geom = geom_for(bb), .ns_root = { rnd(), rnd() },
				     .timeout_ms = timeout_ms, .replicas = 2, .name = "kvr_test_r2",
				     .flags = KV_REMOTE_NO_RDMA | KV_REMOTE_QUIET };
	struct kv_tier_ops t2;
	const size_t n2 = 500;
	CHECK(kv_remote_tier_open_opts(&o2, &t2) == 0, "open with 2 replicas");
	st = store_all(&t2, h, data, n2, bb);
	CHECK(st == (int)n2, "2 replicas: stored %d of %zu", st, n2);
	server_kill(&b, SIGKILL);
	memset(out, 0, n2 * bb);
	got = load_all(&t2, h, out, n2, bb, res);
	CHECK(got == (int)n2 && memcmp(out, data, n2 * bb) == 0,
	      "2 replicas, B dead: loaded %d of %zu", got, n2);
	printf("2 replicas: %d of %zu blocks loaded with B dead\n", got, n2);
	t2.close(t2.ctx);
	server_kill(&a, SIGTERM);
	free(h);
	free(res);
	free(home);
	free(present);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ security */

static int write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(s, f);
	fclose(f);
	chmod(path, 0600);
	return 0;
}

static int t_security(void)
{
	const size_t bb = 4096;
	char good[300], bad[300];
	snprintf(good, sizeof(good), "%s/secret.good.%d", tmpdir, getpid());
	snprintf(bad, sizeof(bad), "%s/secret.bad.%d", tmpdir, getpid());
	write_file(good, "correct horse battery staple\n");
	write_file(bad, "correct horse battery stapler\n");
	struct server s, g;
	if (server_start(&s, 0, "4M", "4096", "--auth-file", good, NULL)) {
		fprintf(stderr, "FAIL cannot start server\n");
		return 1;
	}
	char peers[64];
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", s.port);
	uint8_t *buf = slots(4, bb);
	int32_t res[4];
	kv_hash h = { rnd(), rnd() };
	kv_hash ra = { rnd(), rnd() }, rb = { rnd(), rnd() };
	fill_rand(buf, bb);

	/* Wrong secret and no secret: refused, nothing stored. */
	struct kv_tier_ops t;
	CHECK(open_tier(peers, bb, ra, bad, 500, &t) == 0, "open");
	CHECK(store_all(&t, &h, buf, 1, bb) == 0, "stored with a wrong secret");
	t.close(t.ctx);
	CHECK(open_tier(peers, bb, ra, NULL, 500, &t) == 0, "open");
	CHECK(store_all(&t, &h, buf, 1, bb) == 0, "stored without a secret");
	t.close(t.ctx);

	/* Right secret, namespace A stores h. */
	struct kv_tier_ops ta, tb;
	CHECK(open_tier(peers, bb, ra, good, 1000, &ta) == 0, "open A");
	CHECK(store_all(&ta, &h, buf, 1, bb) == 1, "store with the right secret");
	CHECK(load_all(&ta, &h, buf + bb, 1, bb, res) == 1 && memcmp(buf, buf + bb, bb) == 0,
	      "namespace A reads its block");

	/* Namespace B cannot see or fetch it by its hash. */
	CHECK(open_tier(peers, bb, rb, good, 1000, &tb) == 0, "open B");
	uint8_t present = 9;
	CHECK(tb.lookup(tb.ctx, &h, 1, &present) == 0 && present == 0, "B sees A's block");
	memset(buf + 2 * bb, 0, bb);
	CHECK(load_all(&tb, &h, buf + 2 * bb, 1, bb, res) == 0 && res[0] == -ENOENT,
	      "B fetched A's block (res %d)", res[0]);
	ta.close(ta.ctx);
	tb.close(tb.ctx);

	uint64_t st[KVP_ST_COUNT];
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", s.port);
	CHECK(kv_remote_server_stats(hp, good, 1000, st, KVP_ST_COUNT, NULL, 0) > 0, "status with secret");
	CHECK(st[KVP_ST_AUTH_FAILURES] >= 1, "auth failures not counted: %llu",
	      (unsigned long long)st[KVP_ST_AUTH_FAILURES]);
	CHECK(kv_remote_server_stats(hp, bad, 1000, st, KVP_ST_COUNT, NULL, 0) == -EACCES,
	      "status with a wrong secret");
	CHECK(kv_remote_server_stats(hp, NULL, 1000, st, KVP_ST_COUNT, NULL, 0) == -EACCES,
	      "status without a secret");
	server_kill(&s, SIGTERM);

	/* Geometry: another block size is refused; a pinned geometry refuses another shape. */
	if (server_start(&g, 0, "4M", "4096", "--layers", "1", "--planes", "2", "--block-tokens", "4",
			 "--kv-heads", "2", "--head-dim", "128", "--dtype", "fp16", NULL)) {
		fprintf(stderr, "FAIL cannot start server\n");
		return 1;
	}
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", g.port);
	CHECK(open_tier(peers, 8192, ra, NULL, 500, &t) == 0, "open");
	CHECK(store_all(&t, &h, buf, 1, 8192) == 0, "stored with a different block size");
	t.close(t.ctx);
	struct kv_remote_opts o = { .peers = peers, .ns_root = ra, .timeout_ms = 500,
				    .flags = KV_REMOTE_NO_RDMA };
	o.geom = (struct kv_geometry){ 2, 2, 4, 1, 128, KV_DTYPE_FP16 };   /* same 4096 bytes */
	CHECK(kv_remote_tier_open_opts(&o, &t) == 0, "open");
	CHECK(store_all(&t, &h, buf, 1, 4096) == 0, "stored with a different geometry");
	t.close(t.ctx);
	CHECK(open_tier(peers, 4096, ra, NULL, 1000, &t) == 0, "open");
	CHECK(store_all(&t, &h, buf, 1, 4096) == 1, "matching geometry refused");
	t.close(t.ctx);
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", g.port);
	CHECK(kv_remote_server_stats(hp, NULL, 1000, st, KVP_ST_COUNT, NULL, 0) > 0, "status");
	CHECK(st[KVP_ST_REFUSED] >= 2, "refused hellos: %llu", (unsigned long long)st[KVP_ST_REFUSED]);
	server_kill(&g, SIGTERM);

	/* Quota: namespace A may hold 4 blocks; storing 4 more evicts its own
	 * oldest (a single batch over the quota gets -ENOSPC for the excess),
	 * and B's blocks are untouched. */
	struct server q;
	if (server_start(&q, 0, "1M", "4096", "--ns-quota", "4", "-q", NULL)) {
		fprintf(stderr, "FAIL cannot start server\n");
		return 1;
	}
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", q.port);
	uint8_t *qb = slots(16, bb);
	kv_hash qh[8];
	int32_t qr[8];
	for (int i = 0; i < 8; i++)
		qh[i] = (kv_hash){ rnd(), rnd() };
	fill_rand(qb, 8 * bb);
	CHECK(open_tier(peers, bb, rb, NULL, 1000, &tb) == 0, "open B");
	CHECK(store_all(&tb, qh, qb, 2, bb) == 2, "B stores 2");
	CHECK(open_tier(peers, bb, ra, NULL, 1000, &ta) == 0, "open A");
	CHECK(store_all(&ta, qh, qb, 4, bb) == 4, "A stores 4 under a quota of 4");
	CHECK(store_all(&ta, qh + 4, qb + 4 * bb, 4, bb) == 4, "A stores 4 more, evicting its own");
	int a_held = load_all(&ta, qh, qb + 8 * bb, 8, bb, qr);
	CHECK(a_held == 4 && qr[7] == 0 && qr[0] == -ENOENT, "A holds %d blocks (quota 4)", a_held);
	CHECK(load_all(&tb, qh, qb + 8 * bb, 2, bb, qr) == 2 && memcmp(qb, qb + 8 * bb, 2 * bb) == 0,
	      "B's blocks were evicted by A's quota");
	ta.close(ta.ctx);
	tb.close(tb.ctx);
	server_kill(&q, SIGTERM);
	unlink(good);
	unlink(bad);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ malformed */

static int raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Send bytes, then expect the server to close the connection (EOF) within 2 s. */
static bool sent_and_closed(int port, const void *p, size_t len, bool half)
{
	int fd = raw_connect(port);
	if (fd < 0)
		return false;
	if (len)
		send(fd, p, len, MSG_NOSIGNAL);
	if (half)
		shutdown(fd, SHUT_WR);
	uint8_t b[4096];
	bool closed = false;
	for (int i = 0; i < 64; i++) {
		ssize_t r = recv(fd, b, sizeof(b), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			closed = true;
			break;
		}
		if (r < 0)
			break;   /* timeout: still open */
	}
	close(fd);
	return closed;
}

static size_t hello_frame(uint8_t *b, size_t bb, kv_hash root)
{
	struct kvp_hello h = { .ver_min = KVP_VERSION, .ver_max = KVP_VERSION, .geom = geom_for(bb), .ns_root = root,
			       .block_bytes = (uint32_t)bb };
	strcpy(h.name, "raw");
	size_t n = kvp_hello_encode(b + KVP_HDR_BYTES, &h);
	kvp_hdr_encode(b, KVP_OP_HELLO, 0, (uint32_t)n, 0, 1);
	return KVP_HDR_BYTES + n;
}

static int t_malformed(void)
{
	const size_t bb = 4096;
	struct server s;
	if (server_start(&s, 0, "4M", "4096", NULL)) {
		fprintf(stderr, "FAIL cannot start server\n");
		return 1;
	}
	char peers[64];
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", s.port);
	kv_hash root = { rnd(), rnd() };
	struct kv_tier_ops t;
	CHECK(open_tier(peers, bb, root, NULL, 1000, &t) == 0, "open");
	uint8_t *buf = slots(8, bb);
	kv_hash h[4];
	int32_t res[4];
	for (int i = 0; i < 4; i++)
		h[i] = (kv_hash){ rnd(), rnd() };
	fill_rand(buf, 4 * bb);
	CHECK(store_all(&t, h, buf, 4, bb) == 4, "store before");

	uint8_t f[8192];
	size_t n;
	struct { const char *what; bool ok; } cases[16];
	int nc = 0;
	/* 1. random bytes */
	fill_rand(f, sizeof(f));
	cases[nc].what = "random bytes";
	cases[nc++].ok = sent_and_closed(s.port, f, sizeof(f), false);
	/* 2. huge length */
	kvp_hdr_encode(f, KVP_OP_HELLO, 0, 0xffffffffu, 0, 1);
	cases[nc].what = "huge length";
	cases[nc++].ok = sent_and_closed(s.port, f, KVP_HDR_BYTES, false);
	/* 3. truncated frame, then the client half-closes */
	n = hello_frame(f, bb, root);
	cases[nc].what = "truncated hello";
	cases[nc++].ok = sent_and_closed(s.port, f, n - 10, true);
	/* 4. unknown op */
	kvp_hdr_encode(f, 99, 0, 0, 0, 1);
	cases[nc].what = "unknown op";
	cases[nc++].ok = sent_and_closed(s.port, f, KVP_HDR_BYTES, false);
	/* 5. out of order: GET before HELLO */
	kvp_batch_encode(f + KVP_HDR_BYTES, 1);
	kvp_put_hash(f + KVP_HDR_BYTES + 8, h[0]);
	kvp_hdr_encode(f, KVP_OP_GET, 0, 24, 0, 1);
	cases[nc].what = "get before hello";
	cases[nc++].ok = sent_and_closed(s.port, f, KVP_HDR_BYTES + 24, false);
	/* 6. PUT whose length disagrees with its count */
	n = hello_frame(f, bb, root);
	uint8_t *q = f + n;
	kvp_hdr_encode(q, KVP_OP_PUT, 0, 8 + 24 * 2 + (uint32_t)bb, 0, 2);
	kvp_batch_encode(q + KVP_HDR_BYTES, 2);
	cases[nc].what = "put count/length mismatch";
	cases[nc++].ok = sent_and_closed(s.port, f, n + KVP_HDR_BYTES + 8, false);
	/* 7. batch of 0 / over the maximum */
	n = hello_frame(f, bb, root);
	q = f + n;
	kvp_hdr_encode(q, KVP_OP_LOOKUP, 0, 8, 0, 2);
	kvp_batch_encode(q + KVP_HDR_BYTES, 0);
	cases[nc].what = "empty batch";
	cases[nc++].ok = sent_and_closed(s.port, f, n + KVP_HDR_BYTES + 8, false);
	kvp_hdr_encode(q, KVP_OP_LOOKUP, 0, 8 + 16 * (KVP_MAX_BATCH + 1), 0, 2);
	kvp_batch_encode(q + KVP_HDR_BYTES, KVP_MAX_BATCH + 1);
	cases[nc].what = "oversized batch";
	cases[nc++].ok = sent_and_closed(s.port, f, n + KVP_HDR_BYTES + 8, false);
	/* 8. response flag on a request, non-zero status on a request */
	n = hello_frame(f, bb, root);
	kvp_hdr_encode(f, KVP_OP_HELLO, KVP_F_RESP, (uint32_t)(n - KVP_HDR_BYTES), 0, 1);
	cases[nc].what = "response flag on a request";
	cases[nc++].ok = sent_and_closed(s.port, f, n, false);
	kvp_hdr_encode(f, KVP_OP_HELLO, 0, (uint32_t)(n - KVP_HDR_BYTES), -5, 1);
	cases[nc].what = "status on a request";
	cases[nc++].ok = sent_and_closed(s.port, f, n, false);
	/* 9. second hello */
	n = hello_frame(f, bb, root);
	memcpy(f + n, f, n);
	cases[nc].what = "second hello";
	cases[nc++].ok = sent_and_closed(s.port, f, 2 * n, false);
	/* 10. hello with a bad name byte */
	n = hello_frame(f, bb, root);
	f[KVP_HDR_BYTES + 52] = 0x01;
	cases[nc].what = "hello with a control char in the name";
	cases[nc++].ok = sent_and_closed(s.port, f, n, false);

	for (int i = 0; i < nc; i++) {
		printf("%-40s %s\n", cases[i].what, cases[i].ok ? "closed" : "NOT CLOSED");
		CHECK(cases[i].ok, "%s: connection not closed", cases[i].what);
	}
	/* A connection stuck mid-frame must not block others: leave one open. */
	int stuck = raw_connect(s.port);
	n = hello_frame(f, bb, root);
	send(stuck, f, n - 5, MSG_NOSIGNAL);

	CHECK(server_alive(&s), "server died");
	memset(buf + 4 * bb, 0, 4 * bb);
	CHECK(load_all(&t, h, buf + 4 * bb, 4, bb, res) == 4 && memcmp(buf, buf + 4 * bb, 4 * bb) == 0,
	      "the good client cannot load after the garbage");
	kv_hash h2 = { rnd(), rnd() };
	CHECK(store_all(&t, &h2, buf, 1, bb) == 1, "the good client cannot store after the garbage");
	close(stuck);
	uint64_t st[KVP_ST_COUNT];
	CHECK(kv_remote_server_stats(peers, NULL, 1000, st, KVP_ST_COUNT, NULL, 0) > 0, "status");
	printf("server: %llu protocol errors, %llu connections\n",
	       (unsigned long long)st[KVP_ST_PROTO_ERRORS], (unsigned long long)st[KVP_ST_CONNS_TOTAL]);
	CHECK(st[KVP_ST_PROTO_ERRORS] >= 10, "protocol errors counted: %llu",
	      (unsigned long long)st[KVP_ST_PROTO_ERRORS]);
	t.close(t.ctx);
	server_kill(&s, SIGTERM);

	/* A client that never reads its GET answer keeps blocks pinned: the
	 * server closes it after --lease-ms, and the blocks can go again. */
	struct server l;
	if (server_start(&l, 0, "8M", "4096", "--lease-ms", "300", NULL)) {
		fprintf(stderr, "FAIL cannot start server\n");
		return 1;
	}
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", l.port);
	const size_t nl = 1500;
	uint8_t *lb = slots(nl, bb);
	kv_hash *lh = calloc(nl, sizeof(*lh));
	for (size_t i = 0; i < nl; i++)
		lh[i] = (kv_hash){ rnd(), rnd() };
	fill_rand(lb, nl * bb);
	CHECK(open_tier(peers, bb, root, NULL, 2000, &t) == 0, "open");
	CHECK(store_all(&t, lh, lb, nl, bb) == (int)nl, "store for the pin test");
	t.close(t.ctx);
	int lazy = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	setsockopt(lazy, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons((uint16_t)l.port) };
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(connect(lazy, (struct sockaddr *)&la, sizeof(la)) == 0, "connect");
	static uint8_t req[KVP_HDR_BYTES + 8 + 16 * 1500 + 512];
	n = hello_frame(req, bb, root);
	kvp_hdr_encode(req + n, KVP_OP_GET, 0, 8 + 16 * (uint32_t)nl, 0, 2);
	kvp_batch_encode(req + n + KVP_HDR_BYTES, (uint32_t)nl);
	for (size_t i = 0; i < nl; i++)
		kvp_put_hash(req + n + KVP_HDR_BYTES + 8 + 16 * i, lh[i]);
	send(lazy, req, n + KVP_HDR_BYTES + 8 + 16 * nl, MSG_NOSIGNAL);
	usleep(150000);
	uint64_t before[KVP_ST_COUNT], after[KVP_ST_COUNT];
	CHECK(kv_remote_server_stats(peers, NULL, 1000, before, KVP_ST_COUNT, NULL, 0) > 0, "status");
	usleep(900000);
	CHECK(kv_remote_server_stats(peers, NULL, 1000, after, KVP_ST_COUNT, NULL, 0) > 0, "status");
	printf("lazy reader: %llu leases/pins after 150 ms, %llu after 1 s\n",
	       (unsigned long long)before[KVP_ST_LEASES], (unsigned long long)after[KVP_ST_LEASES]);
	CHECK(before[KVP_ST_LEASES] > 0, "the unread answer pinned nothing");
	CHECK(after[KVP_ST_LEASES] == 0, "pins still held after the lease time");
	CHECK(server_alive(&l), "server died");
	close(lazy);
	server_kill(&l, SIGTERM);
	free(lh);
	return failures ? 1 : 0;
}

/*
 * Leases expire one by one. A raw client leases one block for an RDMA READ
 * it never does and never releases: the server must close that connection
 * after --lease-ms (QP first) and unpin the block. A libkv client that
 * loads the same blocks for longer than --lease-ms, batch after batch,
 * holds only short leases and must never be cut off.
 */
static int t_rdma_lease(const char *dev)
{
	const size_t bb = 65536, nb = 32;
	struct server s;
	if (server_start(&s, 0, "8M", "65536", "--rdma-dev", dev, "--lease-ms", "400", NULL)) {
		fprintf(stderr, "FAIL cannot start a server on %s\n", dev);
		return 1;
	}
	char peers[64];
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", s.port);
	uint8_t *cp = slots(2 * nb, bb);
	struct kv_tier_pool tp = { .addr = cp, .len = 2 * nb * bb, .slot_bytes = bb, .block_bytes = bb };
	kv_hash root = { rnd(), rnd() };
	struct kv_remote_opts o = { .peers = peers, .geom = geom_for(bb), .ns_root = root, .pool = &tp,
				    .timeout_ms = 5000, .rdma_dev = dev, .name = "kvr_lease" };
	struct kv_tier_ops t;
	kv_hash h[32];
	int32_t res[32];
	CHECK(kv_remote_tier_open_opts(&o, &t) == 0, "open");
	for (size_t i = 0; i < nb; i++)
		h[i] = (kv_hash){ rnd(), rnd() };
	fill_rand(cp, nb * bb);
	CHECK(store_all(&t, h, cp, nb, bb) == (int)nb, "store");

	/* The raw client: HELLO, RDMA_CONNECT with a real QP, LEASE h[0]. */
	struct kvr_dev d;
	struct kvr_qp q;
	CHECK(kvr_dev_open(dev, &d) == 0, "open %s", dev);
	CHECK(kvr_qp_create(&d, 4, &q) == 0, "qp");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s.port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect");
	uint8_t req[1024];
	size_t n = hello_frame(req, bb, root);
	struct kvp_rdma loc;
	kvr_qp_local(&d, &q, NULL, NULL, &loc);
	kvp_hdr_encode(req + n, KVP_OP_RDMA_CONNECT, 0, KVP_RDMA_BYTES, 0, 2);
	n += KVP_HDR_BYTES + kvp_rdma_encode(req + n + KVP_HDR_BYTES, &loc);
	kvp_hdr_encode(req + n, KVP_OP_LEASE, 0, KVP_BATCH_HDR + 16, 0, 3);
	kvp_batch_encode(req + n + KVP_HDR_BYTES, 1);
	kvp_put_hash(req + n + KVP_HDR_BYTES + KVP_BATCH_HDR, h[0]);
	n += KVP_HDR_BYTES + KVP_BATCH_HDR + 16;
	CHECK(send(fd, req, n, MSG_NOSIGNAL) == (ssize_t)n, "send");

	/* Meanwhile the libkv client loads for 3x the lease time. */
	uint64_t t0 = now_ms(), held = 0, loads = 0;
	int got_all = 1;
	while (now_ms() - t0 < 1200) {
		uint64_t st[KVP_ST_COUNT];
		if (!held && now_ms() - t0 > 100 && kv_remote_server_stats(peers, NULL, 1000, st, KVP_ST_COUNT, NULL, 0) > 0)
			held = st[KVP_ST_LEASES];
		if (load_all(&t, h, cp + nb * bb, nb, bb, res) != (int)nb)
			got_all = 0;
		loads++;
	}
	CHECK(got_all, "a load failed while the lazy lease expired");
	CHECK(memcmp(cp, cp + nb * bb, nb * bb) == 0, "loaded bytes differ");
	uint64_t st[KVP_ST_COUNT];
	CHECK(kv_remote_server_stats(peers, NULL, 1000, st, KVP_ST_COUNT, NULL, 0) > 0, "status");
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* Drain the HELLO/RDMA_CONNECT/LEASE answers; then the server's close. */
	ssize_t r;
	while ((r = recv(fd, req, sizeof(req), 0)) > 0)
		;
	printf("rdma lease: %llu held at 100 ms, %llu after 1.2 s; %llu loads by a good client; "
	       "raw connection %s\n", (unsigned long long)held, (unsigned long long)st[KVP_ST_LEASES],
	       (unsigned long long)loads, r == 0 ? "closed by the server" : "still open");
	CHECK(held > 0, "the raw LEASE held nothing");
	CHECK(st[KVP_ST_LEASES] == 0, "a lease is still held after the lease time");
	CHECK(r == 0, "the lazy client's connection was not closed");
	CHECK(kv_remote_peer_up(&t, 0) == 1, "the good client lost its peer");
	close(fd);
	kvr_qp_destroy(&q);
	kvr_dev_close(&d);
	t.close(t.ctx);
	CHECK(server_alive(&s), "server died");
	server_kill(&s, SIGTERM);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ host first */

/*
 * Through kv.h with a disk tier and a peer configured: loads and lookups of
 * blocks that are all in host memory send no request to the server and
 * read nothing from disk. Then a block only the server has (stored by
 * another client) is found and loaded: the tiers are still asked for what
 * host memory lacks.
 */
static int t_host_first(void)
{
	const uint32_t nb = 64;
	struct kv_geometry g = { 2, 2, 16, 2, 64, KV_DTYPE_FP16 };
	size_t bb = kv_geometry_block_bytes(&g), slot = (bb + 4095) & ~(size_t)4095;
	char bbs[32], peers[64], disk[300];
	struct server s;
	snprintf(bbs, sizeof(bbs), "%zu", bb);
	if (server_start(&s, 0, "16M", bbs, "-q", NULL)) {
		fprintf(stderr, "FAIL cannot start a server\n");
		return 1;
	}
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", s.port);
	snprintf(disk, sizeof(disk), "%s/hostfirst.%d.disk", tmpdir, getpid());
	unlink(disk);
	kv_hash root = { rnd(), rnd() };
	struct kv_config cfg = { .geometry = g, .host_bytes = slot * 4 * nb, .disk_path = disk,
				 .disk_bytes = 32u << 20, .peers = peers, .ns_root = root,
				 .flags = KV_F_QUIET | KV_F_REMOTE_NO_RDMA, .workers = 2 };
	struct kv *kv;
	CHECK(kv_open(&cfg, &kv) == 0, "kv_open");
	/* The engine cache: 2 layers of nb blocks, vLLM NHD. */
	size_t layer_bytes = 2 * (size_t)nb * (bb / 2 / g.layers);
	uint8_t *eng = calloc(g.layers, layer_bytes);
	void *layers[2] = { eng, eng + layer_bytes };
	struct kv_engine_cache ec = { .mem = KV_MEM_HOST, .layout = KV_LAYOUT_VLLM_NHD,
				      .num_blocks = nb, .layers = layers };
	CHECK(kv_attach(kv, &ec) == 0, "kv_attach");
	kv_hash h[64];
	uint32_t blk[64];
	for (uint32_t i = 0; i < nb; i++) {
		h[i] = (kv_hash){ rnd(), rnd() };
		blk[i] = i;
	}
	fill_rand(eng, g.layers * layer_bytes);
	struct kv_completion c;
	CHECK(kv_store(kv, h, blk, nb, 1) == 0 && kv_wait(kv, &c, 1, 10000) == 1 && c.res == (int)nb,
	      "store");
	uint64_t before[KVP_ST_COUNT], after[KVP_ST_COUNT];
	struct kv_stats st0, st1;
	/* One lookup first so the connection (HELLO) is not what is counted. */
	kv_hash absent = { rnd(), rnd() };
	CHECK(kv_lookup(kv, &absent, 1, NULL) == 0, "absent block found");
	CHECK(kv_remote_server_stats(peers, NULL, 2000, before, KVP_ST_COUNT, NULL, 0) > KVP_ST_REQUESTS,
	      "server stats");
	kv_stats(kv, &st0);
	uint8_t tiers[64];
	int looked = 0, loaded = 0;
	for (int round = 0; round < 100; round++) {
		looked += kv_lookup(kv, h, nb, tiers) == (int)nb && tiers[nb - 1] == KV_TIER_HOST;
		if (kv_load(kv, h, blk, nb, 2) == 0 && kv_wait(kv, &c, 1, 10000) == 1 && c.res == (int)nb)
			loaded++;
	}
	kv_stats(kv, &st1);
	CHECK(kv_remote_server_stats(peers, NULL, 2000, after, KVP_ST_COUNT, NULL, 0) > KVP_ST_REQUESTS,
	      "server stats");
	CHECK(looked == 100 && loaded == 100, "host hits: %d lookups, %d loads of 100", looked, loaded);
	CHECK(after[KVP_ST_REQUESTS] == before[KVP_ST_REQUESTS],
	      "%llu requests reached the server for host hits",
	      (unsigned long long)(after[KVP_ST_REQUESTS] - before[KVP_ST_REQUESTS]));
	struct kv_tier_stats *d0 = &st0.tier[KV_TIER_DISK], *d1 = &st1.tier[KV_TIER_DISK];
	CHECK(d1->hits == d0->hits && d1->misses == d0->misses && d1->bytes_out == d0->bytes_out &&
	      d1->failures == d0->failures, "the disk tier was read for host hits");
	printf("host first: 100 lookups + 100 loads of %u host blocks: %llu server requests, "
	       "%llu disk reads\n", nb,
	       (unsigned long long)(after[KVP_ST_REQUESTS] - before[KVP_ST_REQUESTS]),
	       (unsigned long long)(d1->hits + d1->misses - d0->hits - d0->misses));

	/* What host memory lacks is still asked for: a block only the server holds. */
	struct kv_tier_ops t;
	struct kv_remote_opts o = { .peers = peers, .geom = g, .ns_root = root, .timeout_ms = 2000,
				    .name = "kvr_test", .flags = KV_REMOTE_NO_RDMA };
	CHECK(kv_remote_tier_open_opts(&o, &t) == 0, "second client");
	uint8_t *buf = slots(1, slot);
	fill_rand(buf, bb);
	kv_hash only = { rnd(), rnd() };
	struct kv_tier_io io = { .h = only, .buf = buf };
	uint64_t chk[2];
	struct kv_check_shape sh = kv_check_shape_of(&g);
	kv_check_block(&sh, only, buf, chk);
	io.check = chk;
	CHECK(t.write(t.ctx, &io, 1) == 1, "remote store");
	t.close(t.ctx);
	kv_hash two[2] = { h[0], only };
	CHECK(kv_lookup(kv, two, 2, tiers) == 2 && tiers[0] == KV_TIER_HOST && tiers[1] == KV_TIER_REMOTE,
	      "lookup of host + remote: tiers %u %u", tiers[0], tiers[1]);
	uint32_t b2[2] = { 0, 1 };
	CHECK(kv_load(kv, two, b2, 2, 3) == 0 && kv_wait(kv, &c, 1, 10000) == 1 && c.res == 2,
	      "load of host + remote: res %d err %d", c.res, c.err);
	/* Engine block 1 now holds the remote block: its K and V planes of both layers. */
	size_t P = bb / 2 / g.layers;
	for (uint32_t l = 0; l < g.layers; l++)
		for (uint32_t p = 0; p < 2; p++)
			CHECK(!memcmp((uint8_t *)layers[l] + p * nb * P + P, buf + (2 * l + p) * P, P),
			      "remote block's layer %u plane %u differs in the engine", l, p);
	munmap(buf, slot);
	kv_close(kv);
	free(eng);
	unlink(disk);
	server_kill(&s, SIGTERM);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ cascade */

/*
 * The fixture of the kv.h-level tier tests below: a 2-layer geometry, a
 * memory server for its blocks, and an engine cache of nb blocks (vLLM NHD,
 * host memory). It must not be copied (ec points into it).
 */
struct tfix {
	struct kv_geometry g;
	size_t bb, slot, P;     /* block, host slot, one plane of one block */
	uint8_t *eng;
	void *layers[2];
	struct kv_engine_cache ec;
	struct server s;
	char peers[64];
};

static int tfix_open(struct tfix *f, uint32_t nb, const char *pool)
{
	char bbs[32];

	memset(f, 0, sizeof(*f));
	f->g = (struct kv_geometry){ 2, 2, 16, 2, 64, KV_DTYPE_FP16 };
	f->bb = kv_geometry_block_bytes(&f->g);
	f->slot = (f->bb + 4095) & ~(size_t)4095;
	f->P = f->bb / 4;
	snprintf(bbs, sizeof(bbs), "%zu", f->bb);
	if (server_start(&f->s, 0, pool, bbs, "-q", NULL)) {
		fprintf(stderr, "FAIL cannot start a server\n");
		return -1;
	}
	snprintf(f->peers, sizeof(f->peers), "127.0.0.1:%d", f->s.port);
	f->eng = calloc(2, 2 * nb * f->P);
	f->layers[0] = f->eng;
	f->layers[1] = f->eng + 2 * nb * f->P;
	f->ec = (struct kv_engine_cache){ .mem = KV_MEM_HOST, .layout = KV_LAYOUT_VLLM_NHD,
					  .num_blocks = nb, .layers = f->layers };
	return 0;
}

static void tfix_close(struct tfix *f)
{
	free(f->eng);
	server_kill(&f->s, SIGTERM);
}

/* Engine block b of a 2-layer NHD cache (nb blocks, plane P bytes) filled from seed. */
static void eng_block(void *const *layers, uint32_t nb, size_t P, uint32_t b, uint64_t seed,
		      bool check, int *bad)
{
	for (uint32_t l = 0; l < 2; l++)
		for (uint32_t p = 0; p < 2; p++) {
			uint64_t *q = (uint64_t *)((uint8_t *)layers[l] + p * nb * P + b * P);
			uint64_t x = seed * 0x9e3779b97f4a7c15ull + l * 2 + p + 1;
			for (size_t i = 0; i < P / 8; i++) {
				x ^= x << 13; x ^= x >> 7; x ^= x << 17;
				if (!check)
					q[i] = x;
				else if (q[i] != x)
					(*bad)++;
			}
		}
}

/*
 * The cascade through kv.h: host pool 8 blocks, a disk tier of a few dozen,
 * a memory server. 300 blocks stored: the host's evictions go to disk (the
 * flusher), the disk's evictions on to the server (KV_F_DEMOTE_ALL). Every
 * block then loads byte-exact, the oldest from the remote tier: the working
 * set exceeds host plus disk and still hits.
 */
static int t_cascade(void)
{
	const uint32_t nb = 8, N = 300;
	struct tfix F;
	char disk[300];
	if (tfix_open(&F, nb, "64M"))
		return 1;
	void *const *layers = F.layers;
	size_t P = F.P;
	snprintf(disk, sizeof(disk), "%s/cascade.%d.disk", tmpdir, getpid());
	unlink(disk);
	struct kv_config cfg = { .geometry = F.g, .host_bytes = F.slot * nb, .disk_path = disk,
				 .disk_bytes = 2u << 20, .peers = F.peers, .ns_root = { rnd(), rnd() },
				 .flags = KV_F_QUIET | KV_F_REMOTE_NO_RDMA | KV_F_DEMOTE_ALL,
				 .admit = KV_ADMIT_ALL };
	struct kv *kv;
	CHECK(kv_open(&cfg, &kv) == 0, "kv_open");
	CHECK(kv_attach(kv, &F.ec) == 0, "kv_attach");
	kv_hash *h = calloc(N, sizeof(*h));
	for (uint32_t i = 0; i < N; i++)
		h[i] = (kv_hash){ rnd(), rnd() };
	struct kv_completion c;
	for (uint32_t i = 0; i < N; i += 4) {
		uint32_t blk[4] = { 0, 1, 2, 3 };
		for (uint32_t j = 0; j < 4; j++)
			eng_block(layers, nb, P, j, h[i + j].lo, false, NULL);
		CHECK(kv_store(kv, h + i, blk, 4, i) == 0 && kv_wait(kv, &c, 1, 20000) == 1 &&
		      c.res == 4, "store at %u: res %d err %d", i, c.res, c.err);
	}
	struct kv_stats st;
	kv_stats(kv, &st);
	uint64_t disk_cap = st.tier[KV_TIER_DISK].capacity;
	int bad = 0, loaded = 0;
	for (uint32_t i = 0; i < N; i++) {
		uint32_t b0 = 0;
		eng_block(layers, nb, P, 0, 0xdead, false, NULL);
		if (kv_load(kv, h + i, &b0, 1, i) == 0 && kv_wait(kv, &c, 1, 20000) == 1 && c.res == 1) {
			loaded++;
			eng_block(layers, nb, P, 0, h[i].lo, true, &bad);
		}
	}
	kv_stats(kv, &st);
	printf("cascade: %u blocks through host %u + disk %llu: %d loaded (%llu host, %llu disk, "
	       "%llu remote hits), %d wrong words, %llu disk evictions\n", N, nb,
	       (unsigned long long)disk_cap, loaded,
	       (unsigned long long)st.tier[KV_TIER_HOST].hits,
	       (unsigned long long)st.tier[KV_TIER_DISK].hits,
	       (unsigned long long)st.tier[KV_TIER_REMOTE].hits, bad,
	       (unsigned long long)st.tier[KV_TIER_DISK].evictions);
	CHECK(disk_cap + nb < N, "host plus disk hold the whole working set");
	CHECK(bad == 0, "%d wrong words loaded", bad);
	CHECK(loaded == (int)N, "loaded %d of %u", loaded, N);
	CHECK(st.tier[KV_TIER_REMOTE].hits > 0, "no remote hits");
	CHECK(st.tier[KV_TIER_DISK].hits > 0, "no disk hits");
	kv_close(kv);
	free(h);
	unlink(disk);
	tfix_close(&F);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ write-through */

/*
 * Two nodes sharing a memory server: A stores 32 blocks with
 * KV_F_WRITE_THROUGH and keeps them in host memory (nothing is evicted); B,
 * another struct kv of the same namespace, loads all 32 byte-exact from the
 * server. Without the flag (A stores 8 more), B finds none of those.
 */
static int t_write_through(void)
{
	const uint32_t nb = 8, N = 32;
	struct tfix F;
	if (tfix_open(&F, nb, "16M"))
		return 1;
	void *const *layers = F.layers;
	size_t P = F.P, bb = F.bb;
	kv_hash root = { rnd(), rnd() };
	struct kv_config ca = { .geometry = F.g, .host_bytes = F.slot * 4 * N, .peers = F.peers,
				.ns_root = root, .flags = KV_F_QUIET | KV_F_REMOTE_NO_RDMA |
				KV_F_WRITE_THROUGH }, cb = ca;
	cb.flags &= ~KV_F_WRITE_THROUGH;
	struct kv *a, *b, *a2;
	CHECK(kv_open(&ca, &a) == 0 && kv_open(&cb, &b) == 0 && kv_open(&cb, &a2) == 0, "kv_open");
	CHECK(kv_attach(a, &F.ec) == 0 && kv_attach(b, &F.ec) == 0 && kv_attach(a2, &F.ec) == 0,
	      "attach");
	kv_hash h[40];
	for (uint32_t i = 0; i < 40; i++)
		h[i] = (kv_hash){ rnd(), rnd() };
	struct kv_completion c;
	for (uint32_t i = 0; i < 40; i += 8) {
		uint32_t blk[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
		struct kv *w = i < N ? a : a2;
		for (uint32_t j = 0; j < 8; j++)
			eng_block(layers, nb, P, j, h[i + j].lo, false, NULL);
		CHECK(kv_store(w, h + i, blk, 8, i) == 0 && kv_wait(w, &c, 1, 10000) == 1 && c.res == 8,
		      "store at %u", i);
	}
	struct kv_stats st;
	for (int t = 0; t < 500; t++) {
		kv_stats(a, &st);
		if (st.tier[KV_TIER_REMOTE].bytes_in >= N * bb)
			break;
		usleep(10000);
	}
	CHECK(st.tier[KV_TIER_HOST].evictions == 0, "A evicted %llu blocks",
	      (unsigned long long)st.tier[KV_TIER_HOST].evictions);
	CHECK(st.tier[KV_TIER_REMOTE].bytes_in >= N * bb, "A wrote %llu bytes through, want %zu",
	      (unsigned long long)st.tier[KV_TIER_REMOTE].bytes_in, N * bb);
	int bad = 0, loaded = 0;
	for (uint32_t i = 0; i < N; i++) {
		uint32_t b0 = 0;
		eng_block(layers, nb, P, 0, 0xdead, false, NULL);
		if (kv_load(b, h + i, &b0, 1, i) == 0 && kv_wait(b, &c, 1, 10000) == 1 && c.res == 1) {
			loaded++;
			eng_block(layers, nb, P, 0, h[i].lo, true, &bad);
		}
	}
	kv_stats(b, &st);
	CHECK(loaded == (int)N && bad == 0, "B loaded %d of %u (%d wrong words)", loaded, N, bad);
	CHECK(st.tier[KV_TIER_REMOTE].hits == N, "B's remote hits %llu",
	      (unsigned long long)st.tier[KV_TIER_REMOTE].hits);
	CHECK(kv_lookup(b, h + N, 8, NULL) == 0, "blocks stored without write-through reached B");
	printf("write-through: B loaded %d of %u blocks A stored (A evicted none); "
	       "without it B found 0 of 8\n", loaded, N);
	kv_close(a);
	kv_close(a2);
	kv_close(b);
	tfix_close(&F);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ tier order */

/*
 * Loads try the lower tiers fastest first, by measured read time. Blocks
 * on both the disk tier and a memory server; the disk made slow
 * (KV_DISK_FAULT_DELAY_MS, 60 ms a call): after each tier was read once,
 * lookups name the remote tier for blocks both hold and loads come from it.
 */
static int t_tier_order(void)
{
	const uint32_t nb = 8, N = 48;
	struct tfix F;
	char disk[300];
	if (tfix_open(&F, nb, "16M"))
		return 1;
	void *const *layers = F.layers;
	size_t P = F.P;
	snprintf(disk, sizeof(disk), "%s/order.%d.disk", tmpdir, getpid());
	unlink(disk);
	struct kv_config cfg = { .geometry = F.g, .host_bytes = F.slot * 2 * N, .disk_path = disk,
				 .disk_bytes = 8u << 20, .peers = F.peers, .ns_root = { rnd(), rnd() },
				 .admit = KV_ADMIT_ALL,
				 .flags = KV_F_QUIET | KV_F_REMOTE_NO_RDMA | KV_F_WRITE_THROUGH };
	struct kv *kv;
	CHECK(kv_open(&cfg, &kv) == 0, "kv_open");
	CHECK(kv_attach(kv, &F.ec) == 0, "kv_attach");
	kv_hash h[48];
	struct kv_completion c;
	for (uint32_t i = 0; i < N; i++)
		h[i] = (kv_hash){ rnd(), rnd() };
	for (uint32_t i = 0; i < N; i += 8) {
		uint32_t blk[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
		for (uint32_t j = 0; j < 8; j++)
			eng_block(layers, nb, P, j, h[i + j].lo, false, NULL);
		CHECK(kv_store(kv, h + i, blk, 8, i) == 0 && kv_wait(kv, &c, 1, 10000) == 1 && c.res == 8,
		      "store");
	}
	kv_close(kv); /* write-through sent them to the server; close writes them to disk */
	setenv("KV_DISK_FAULT_DELAY_MS", "60", 1);
	cfg.flags &= ~KV_F_WRITE_THROUGH;
	CHECK(kv_open(&cfg, &kv) == 0, "reopen");
	unsetenv("KV_DISK_FAULT_DELAY_MS");
	CHECK(kv_attach(kv, &F.ec) == 0, "kv_attach");
	uint8_t tiers[48];
	CHECK(kv_lookup(kv, h, N, tiers) == (int)N, "all present");
	int bad = 0;
	uint32_t blk[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	/* Three loads of 8: one from each tier as it gets measured, then the fastest. */
	for (uint32_t i = 0; i < 24; i += 8) {
		CHECK(kv_load(kv, h + i, blk, 8, i) == 0 && kv_wait(kv, &c, 1, 10000) == 1 && c.res == 8,
		      "load at %u: res %d err %d", i, c.res, c.err);
		for (uint32_t j = 0; j < 8; j++)
			eng_block(layers, nb, P, j, h[i + j].lo, true, &bad);
	}
	struct kv_stats st0, st1;
	kv_stats(kv, &st0);
	CHECK(kv_lookup(kv, h + 24, 24, tiers) == 24, "lookup");
	int remote = 0;
	for (int i = 0; i < 24; i++)
		remote += tiers[i] == KV_TIER_REMOTE;
	for (uint32_t i = 24; i < N; i += 8) {
		CHECK(kv_load(kv, h + i, blk, 8, i) == 0 && kv_wait(kv, &c, 1, 10000) == 1 && c.res == 8,
		      "load at %u", i);
		for (uint32_t j = 0; j < 8; j++)
			eng_block(layers, nb, P, j, h[i + j].lo, true, &bad);
	}
	kv_stats(kv, &st1);
	printf("tier order: with a slow disk, lookups name the remote tier for %d of 24 blocks on "
	       "both; the next 24 loads: %llu from remote, %llu from disk\n", remote,
	       (unsigned long long)(st1.tier[KV_TIER_REMOTE].hits - st0.tier[KV_TIER_REMOTE].hits),
	       (unsigned long long)(st1.tier[KV_TIER_DISK].hits - st0.tier[KV_TIER_DISK].hits));
	CHECK(bad == 0, "%d wrong words", bad);
	CHECK(remote == 24, "lookups named remote for %d of 24", remote);
	CHECK(st1.tier[KV_TIER_REMOTE].hits - st0.tier[KV_TIER_REMOTE].hits == 24 &&
	      st1.tier[KV_TIER_DISK].hits == st0.tier[KV_TIER_DISK].hits, "loads did not use the faster tier");
	kv_close(kv);
	unlink(disk);
	tfix_close(&F);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ hostile */

/*
 * A server that answers for the wrong block (kvr_hostile --fault MODE) must
 * never get a client to accept those bytes: each load is a miss, counted in
 * verify_failures, and the client's buffer is never reported loaded. Mode 0
 * (the same binary, honest) shows that the loads themselves work. With dev,
 * over RDMA (LEASE answers, one-sided READs); else over TCP (GET answers).
 */
static int t_hostile(int mode, const char *dev)
{
	const size_t bb = 65536, n = 48;
	struct server s;
	char mstr[8], pool[32], bbs[32];
	snprintf(mstr, sizeof(mstr), "%d", mode);
	snprintf(pool, sizeof(pool), "%zu", bb * 4 * n);
	snprintf(bbs, sizeof(bbs), "%zu", bb);
	if (server_start(&s, 0, pool, bbs, "-q", "--fault", mstr, dev ? "--rdma-dev" : NULL, dev, NULL)) {
		fprintf(stderr, "FAIL cannot start kvr_hostile --fault %d\n", mode);
		return 1;
	}
	char peers[64];
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", s.port);
	uint8_t *cp = slots(3 * n, bb);
	if (!cp)
		return 1;
	struct kv_tier_pool tp = { .addr = cp, .len = 3 * n * bb, .slot_bytes = bb, .block_bytes = bb };
	struct kv_remote_opts o = { .peers = peers, .geom = geom_for(bb), .pool = &tp,
				    .timeout_ms = 20000, .rdma_dev = dev, .name = "kvr_hostile",
				    .flags = dev ? 0 : KV_REMOTE_NO_RDMA };
	struct kv_tier_ops a, b;
	kv_hash *h = calloc(n, sizeof(*h)), *hb = calloc(n, sizeof(*hb));
	int32_t *res = calloc(n, sizeof(*res));
	o.ns_root = (kv_hash){ rnd(), rnd() };
	CHECK(kv_remote_tier_open_opts(&o, &a) == 0, "open");
	for (size_t i = 0; i < n; i++) {
		h[i] = (kv_hash){ rnd(), rnd() };
		hb[i] = (kv_hash){ rnd(), rnd() };
	}
	/* Mode 3 needs blocks of another namespace on the server: same geometry, another root. */
	o.ns_root = (kv_hash){ rnd(), rnd() };
	CHECK(kv_remote_tier_open_opts(&o, &b) == 0, "open the other namespace");
	fill_rand(cp, 2 * n * bb);
	CHECK(store_all(&b, hb, cp + n * bb, n, bb) == (int)n, "store (other namespace)");
	CHECK(store_all(&a, h, cp, n, bb) == (int)n, "store");
	uint8_t *out = cp + 2 * n * bb;
	memset(out, 0xee, n * bb);
	int got = load_all(&a, h, out, n, bb, res);
	struct kv_tier_stats ts = { 0 };
	a.stats(a.ctx, &ts);
	if (mode == 0) {
		CHECK(got == (int)n && !memcmp(out, cp, n * bb), "honest: loaded %d of %zu", got, n);
		CHECK(ts.verify_failures == 0, "honest: %llu verify failures",
		      (unsigned long long)ts.verify_failures);
	} else {
		CHECK(got == 0, "mode %d: %d wrong blocks accepted", mode, got);
		for (size_t i = 0; i < n; i++)
			CHECK(res[i] == -EBADMSG, "mode %d: block %zu res %d, want -EBADMSG", mode, i, res[i]);
		CHECK(ts.verify_failures == n, "mode %d: verify_failures %llu of %zu", mode,
		      (unsigned long long)ts.verify_failures, n);
		CHECK(ts.hits == 0, "mode %d: %llu hits", mode, (unsigned long long)ts.hits);
	}
	if (dev)
		CHECK(kv_remote_rdma_blocks(&a) >= n, "over RDMA: %llu blocks",
		      (unsigned long long)kv_remote_rdma_blocks(&a));
	printf("hostile mode %d%s: %d of %zu loads accepted, %llu verify failures\n", mode,
	       dev ? " (rdma)" : "", got, n, (unsigned long long)ts.verify_failures);
	a.close(a.ctx);
	b.close(b.ctx);
	CHECK(server_alive(&s), "server died");
	server_kill(&s, SIGTERM);
	free(h);
	free(hb);
	free(res);
	munmap(cp, 3 * n * bb);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ bench */

static int t_bench(double secs, size_t bb, size_t batch)
{
	struct server s;
	if (server_start(&s, 0, "512M", "1048576", "-q", NULL)) {
		/* retry with a smaller pool */
		if (server_start(&s, 0, "256M", "1048576", "-q", NULL)) {
			fprintf(stderr, "cannot start server\n");
			return 1;
		}
	}
	(void)bb;
	bb = 1u << 20;
	char peers[64];
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", s.port);
	struct kv_tier_ops t;
	kv_hash root = { rnd(), rnd() };
	struct kv_remote_opts o = { .peers = peers, .ns_root = root, .timeout_ms = 10000,
				    .flags = KV_REMOTE_NO_RDMA };
	o.geom = (struct kv_geometry){ 16, 2, 16, 8, 128, KV_DTYPE_FP16 };   /* 1 MiB */
	if (kv_remote_tier_open_opts(&o, &t))
		return 1;
	uint8_t *buf = slots(batch, bb);
	fill_rand(buf, batch * bb);
	struct kv_tier_io *io = calloc(batch, sizeof(*io));
	/*
	 * The tier is handed each block's check values (libkv makes them when
	 * it packs the block, a cost the host table measures) and the server
	 * stores them as sent: the timed stores send placeholders, and the
	 * batch loaded afterwards is stored, untimed, with its real values.
	 */
	struct kv_check_shape sh = kv_check_shape_of(&o.geom);
	uint64_t *chk = calloc(batch * sh.layers, sizeof(*chk));
	/* Store: fresh names each batch (the server evicts LRU when full). */
	uint64_t t0 = now_ms(), bytes = 0, seq = 1;
	while (now_ms() - t0 < secs * 1000) {
		for (size_t k = 0; k < batch; k++) {
			io[k].h = (kv_hash){ seq++, root.lo };
			io[k].buf = buf + k * bb;
			io[k].check = chk + k * sh.layers;
		}
		int r = t.write(t.ctx, io, batch);
		if (r != (int)batch) {
			fprintf(stderr, "store failed: %d\n", r);
			return 1;
		}
		bytes += batch * bb;
	}
	double store = bytes / ((now_ms() - t0) / 1000.0) / 1e9;
	uint64_t last = seq;
	for (size_t k = 0; k < batch; k++) {
		io[k].h = (kv_hash){ seq++, root.lo };
		io[k].buf = buf + k * bb;
		io[k].check = chk + k * sh.layers;
		kv_check_block(&sh, io[k].h, io[k].buf, io[k].check);
	}
	if (t.write(t.ctx, io, batch) != (int)batch) {
		fprintf(stderr, "store failed\n");
		return 1;
	}
	/* Load: that batch, over and over (check values verified each time). */
	t0 = now_ms();
	bytes = 0;
	while (now_ms() - t0 < secs * 1000) {
		for (size_t k = 0; k < batch; k++) {
			io[k].h = (kv_hash){ last + k, root.lo };
			io[k].buf = buf + k * bb;
		}
		int r = t.read(t.ctx, io, batch);
		if (r != (int)batch) {
			fprintf(stderr, "load failed: %d (res %d)\n", r, io[0].res);
			return 1;
		}
		bytes += batch * bb;
	}
	double load = bytes / ((now_ms() - t0) / 1000.0) / 1e9;
	printf("store_GBps %.3f load_GBps %.3f\n", store, load);
	free(io);
	free(chk);
	t.close(t.ctx);
	server_kill(&s, SIGTERM);
	return 0;
}

/* ------------------------------------------------------------------ rdma */

/*
 * Round trip over RDMA verbs through device dev: nblk blocks of bb bytes
 * (larger than the device's max message when bb > 8 MiB on rxe), stored and
 * loaded byte for byte through a registered client pool; then secs seconds
 * of WRITE (store) and READ (load) throughput. Prints
 * "rdma_write_GBps X rdma_read_GBps Y".
 */
static int t_rdma(const char *dev, size_t bb, size_t nblk, double secs)
{
	struct server s;
	char pool[32], bbs[32];
	snprintf(pool, sizeof(pool), "%zu", bb * (nblk + 2));
	snprintf(bbs, sizeof(bbs), "%zu", bb);
	/* Correctness runs (secs 0) also have the server verify each commit. */
	if (server_start(&s, 0, pool, bbs, "--rdma-dev", dev, secs > 0 ? NULL : "--verify-commit", NULL)) {
		fprintf(stderr, "FAIL cannot start a server on %s\n", dev);
		return 1;
	}
	char peers[64];
	snprintf(peers, sizeof(peers), "127.0.0.1:%d", s.port);
	uint8_t *cp = slots(2 * nblk, bb);
	CHECK(cp != NULL, "client pool");
	if (!cp)
		return 1;
	struct kv_tier_pool tp = { .addr = cp, .len = 2 * nblk * bb, .slot_bytes = bb, .block_bytes = bb };
	struct kv_remote_opts o = { .peers = peers, .geom = geom_for(bb), .ns_root = { rnd(), rnd() },
				    .pool = &tp, .timeout_ms = 60000, .rdma_dev = dev, .name = "kvr_rdma" };
	struct kv_tier_ops t;
	CHECK(kv_remote_tier_open_opts(&o, &t) == 0, "open");
	kv_hash *h = calloc(nblk, sizeof(*h));
	int32_t *res = calloc(nblk, sizeof(*res));
	for (size_t i = 0; i < nblk; i++)
		h[i] = (kv_hash){ rnd(), rnd() };
	fill_rand(cp, nblk * bb);
	int st = store_all(&t, h, cp, nblk, bb);
	CHECK(st == (int)nblk, "stored %d of %zu", st, nblk);
	uint64_t put_calls, put_waits = kv_remote_ctl_waits(&t, &put_calls);
	uint64_t rb = kv_remote_rdma_blocks(&t);
	printf("rdma: %zu blocks of %zu bytes stored, %llu by RDMA WRITE\n", nblk, bb, (unsigned long long)rb);
	CHECK(rb == nblk, "blocks written over RDMA: %llu of %zu", (unsigned long long)rb, nblk);
	memset(cp + nblk * bb, 0, nblk * bb);
	int got = load_all(&t, h, cp + nblk * bb, nblk, bb, res);
	CHECK(got == (int)nblk, "loaded %d of %zu (res %d)", got, nblk, res[0]);
	CHECK(memcmp(cp, cp + nblk * bb, nblk * bb) == 0, "RDMA-loaded bytes differ");
	CHECK(kv_remote_rdma_blocks(&t) == 2 * nblk, "blocks read over RDMA: %llu",
	      (unsigned long long)(kv_remote_rdma_blocks(&t) - rb));
	struct kv_tier_stats ts = { 0 };
	t.stats(t.ctx, &ts);
	CHECK(ts.verify_failures == 0, "verify failures %llu", (unsigned long long)ts.verify_failures);
	/* One control round trip per verbs get: RELEASE answers ride on the next request. */
	uint64_t calls, waits = kv_remote_ctl_waits(&t, &calls);
	uint64_t gcalls = calls - put_calls, gwaits = waits - put_waits;
	printf("rdma: %llu verbs puts, %llu control answers waited for (GRANT, COMMIT); %llu gets, "
	       "%llu waited for (LEASE)\n", (unsigned long long)put_calls,
	       (unsigned long long)put_waits, (unsigned long long)gcalls, (unsigned long long)gwaits);
	CHECK(gcalls >= 1 && gwaits == gcalls, "%llu control waits for %llu get calls",
	      (unsigned long long)gwaits, (unsigned long long)gcalls);
	CHECK(put_waits == 2 * put_calls, "%llu control waits for %llu put calls",
	      (unsigned long long)put_waits, (unsigned long long)put_calls);
	/* The last RELEASE's answer is read by the next request on that connection. */
	{
		uint8_t present[1];
		CHECK(t.lookup(t.ctx, h, 1, present) == 0 && present[0], "lookup after the loads");
	}
	uint64_t sv[KVP_ST_COUNT];
	CHECK(kv_remote_server_stats(peers, NULL, 2000, sv, KVP_ST_COUNT, NULL, 0) > 0 && sv[KVP_ST_RDMA] == 1 &&
	      sv[KVP_ST_LEASES] == 0, "server: rdma %llu, leases left %llu",
	      (unsigned long long)sv[KVP_ST_RDMA], (unsigned long long)sv[KVP_ST_LEASES]);
	if (secs > 0 && !failures) {
		uint64_t t0 = now_ms(), bytes = 0, seq = 1;
		while (now_ms() - t0 < secs * 1000) {
			for (size_t i = 0; i < nblk; i++)
				h[i] = (kv_hash){ seq++, 77 };
			if (store_all(&t, h, cp, nblk, bb) != (int)nblk)
				break;
			bytes += nblk * bb;
		}
		double w = bytes / ((now_ms() - t0) / 1000.0) / 1e9;
		t0 = now_ms();
		bytes = 0;
		while (now_ms() - t0 < secs * 1000) {
			if (load_all(&t, h, cp + nblk * bb, nblk, bb, res) != (int)nblk)
				break;
			bytes += nblk * bb;
		}
		double rd = bytes / ((now_ms() - t0) / 1000.0) / 1e9;
		printf("rdma_write_GBps %.4f rdma_read_GBps %.4f\n", w, rd);
	}
	t.close(t.ctx);
	server_kill(&s, SIGTERM);
	free(h);
	free(res);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ corpus */

static size_t frame(uint8_t *b, uint16_t op, uint64_t id, const void *p, size_t len)
{
	kvp_hdr_encode(b, op, 0, (uint32_t)len, 0, id);
	memcpy(b + KVP_HDR_BYTES, p, len);
	return KVP_HDR_BYTES + len;
}

static size_t batch(uint8_t *b, uint16_t op, uint64_t id, const kv_hash *h, size_t n, bool csum,
		    const uint8_t *data, size_t bb)
{
	uint8_t m[8 + 24 * 8 + 4096 * 8];
	size_t e = csum ? 24 : 16, len = 8 + n * e;
	kvp_batch_encode(m, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		kvp_put_hash(m + 8 + i * e, h[i]);
		if (csum)
			kvp_put64(m + 8 + i * e + 16, data ? check1(h[i], data + i * bb, bb) : 42);
	}
	if (data) {
		memcpy(m + len, data, n * bb);
		len += n * bb;
	}
	return frame(b, op, id, m, len);
}

static void put_file(const char *dir, const char *name, const uint8_t *b, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, len, f) != len || fclose(f))
		fprintf(stderr, "cannot write %s\n", path);
}

/* Seed inputs for fuzz_server: first byte selects the server (1: auth). */
static int t_corpus(const char *dir)
{
	static uint8_t b[65536];
	uint8_t data[3 * 4096];
	const size_t bb = 4096;
	kv_hash root = { 0x1111, 0x2222 }, h[3] = { { 1, 1 }, { 2, 2 }, { 3, 3 } };
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	size_t n;

	b[0] = 0;
	n = 1 + hello_frame(b + 1, bb, root);
	n += batch(b + n, KVP_OP_LOOKUP, 2, h, 2, false, NULL, bb);
	n += batch(b + n, KVP_OP_PUT, 3, h, 2, true, data, bb);
	n += batch(b + n, KVP_OP_GET, 4, h, 3, false, NULL, bb);
	n += batch(b + n, KVP_OP_LOOKUP, 5, h, 3, false, NULL, bb);
	put_file(dir, "hello-lookup-put-get", b, n);

	struct kvp_hello hl = { .ver_min = KVP_VERSION, .ver_max = KVP_VERSION, .flags = KVP_HELLO_ADMIN };
	strcpy(hl.name, "status");
	uint8_t m[128];
	size_t ml = kvp_hello_encode(m, &hl);
	n = 1 + frame(b + 1, KVP_OP_HELLO, 1, m, ml);
	n += frame(b + n, KVP_OP_STATS, 2, NULL, 0);
	put_file(dir, "admin-stats", b, n);

	b[0] = 1;
	n = 1 + hello_frame(b + 1, bb, root);
	memset(m, 0xab, KVP_MAC_BYTES);
	n += frame(b + n, KVP_OP_AUTH, 2, m, KVP_MAC_BYTES);
	put_file(dir, "auth-wrong-mac", b, n);

	b[0] = 0;
	n = 1 + hello_frame(b + 1, bb, root);
	n += batch(b + n, KVP_OP_PUT, 2, h, 1, true, data, bb);
	n += batch(b + n, KVP_OP_PUT, 3, h, 3, true, data, bb);
	n += batch(b + n, KVP_OP_GET, 4, h + 1, 2, false, NULL, bb);
	put_file(dir, "put-dedup-get", b, n);

	struct kvp_rdma rd = { .qpn = 17, .psn = 5, .mtu = 3, .max_msg = 1 << 20 };
	n = 1 + hello_frame(b + 1, bb, root);
	ml = kvp_rdma_encode(m, &rd);
	n += frame(b + n, KVP_OP_RDMA_CONNECT, 2, m, ml);
	n += batch(b + n, KVP_OP_GRANT, 3, h, 2, true, NULL, bb);
	n += batch(b + n, KVP_OP_LEASE, 4, h, 2, false, NULL, bb);
	n += batch(b + n, KVP_OP_RELEASE, 5, h, 2, false, NULL, bb);
	put_file(dir, "rdma-ops", b, n);

	n = 1 + hello_frame(b + 1, bb, root);
	kvp_hdr_encode(b + n, KVP_OP_PUT, 0, 8 + 24 + 4096, 0, 2);
	n += KVP_HDR_BYTES;
	kvp_batch_encode(b + n, 1);
	n += 8 + 10;
	put_file(dir, "truncated-put", b, n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "corpus"))
		return t_corpus(argv[2]);
	if (argc < 3) {
		fprintf(stderr, "usage: kvr_test loopback|security|malformed|rdma|rdma_lease|hostile|bench SERVE_BIN [ARGS]\n");
		return 2;
	}
	serve_bin = argv[2];
	const char *td = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s", td && *td ? td : "/tmp");
	rng_state ^= (uint64_t)getpid() << 20 ^ (uint64_t)time(NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[1], "loopback"))
		return t_loopback();
	if (!strcmp(argv[1], "security"))
		return t_security();
	if (!strcmp(argv[1], "malformed"))
		return t_malformed();
	if (!strcmp(argv[1], "rdma") && argc > 3)
		return t_rdma(argv[3], argc > 4 ? strtoul(argv[4], NULL, 0) : 12u << 20,
			      argc > 5 ? strtoul(argv[5], NULL, 0) : 4, argc > 6 ? atof(argv[6]) : 0);
	if (!strcmp(argv[1], "rdma_lease") && argc > 3)
		return t_rdma_lease(argv[3]);
	if (!strcmp(argv[1], "tier_order"))
		return t_tier_order();
	if (!strcmp(argv[1], "write_through"))
		return t_write_through();
	if (!strcmp(argv[1], "cascade"))
		return t_cascade();
	if (!strcmp(argv[1], "host_first"))
		return t_host_first();
	if (!strcmp(argv[1], "hostile") && argc > 3)
		return t_hostile(atoi(argv[3]), argc > 4 ? argv[4] : NULL);
	if (!strcmp(argv[1], "bench"))
		return t_bench(argc > 3 ? atof(argv[3]) : 3.0, 1u << 20, argc > 4 ? (size_t)atoi(argv[4]) : 32);
	fprintf(stderr, "unknown test %s\n", argv[1]);
	return 2;
}
