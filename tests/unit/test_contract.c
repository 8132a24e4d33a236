// SPDX-License-Identifier: MIT
/*
 * test_contract.c - what kv.h promises beyond the happy path, one function
 * per promise: any int is valid input to kv_strerror; kv_open's config
 * limits, refused flags, peers lists and the namespace peers need; kv_poll
 * and kv_wait with max 0 and negative timeouts; the engine reading the
 * eventfd; kv_attach refusing overlapping K/V planes; repeated hashes and
 * engine blocks in one request; a prefetch larger than the pool; a load
 * hitting a disk read error part way (KV_DISK_FAULT_EIO).
 */
#include <limits.h>
#include <poll.h>
#include <unistd.h>

#include "test_disk.h"

static size_t slot_of(const struct kv_geometry *g)
{
	return (kv_geometry_block_bytes(g) + 4095) & ~(size_t)4095;
}

static struct kv_config base_cfg(void)
{
	struct kv_config cfg = { .geometry = t_geometry_small(), .flags = KV_F_QUIET | KV_F_NO_KVMEM };

	cfg.host_bytes = 4 * slot_of(&cfg.geometry);
	return cfg;
}

/* kv_open(cfg): 0 (and closed again) or the error. */
static int try_open(const struct kv_config *cfg)
{
	struct kv *kv = (struct kv *)1;
	int ret = kv_open(cfg, &kv);

	if (ret)
		CHECK(kv == NULL);
	kv_close(ret ? NULL : kv);
	return ret;
}

/* kv_open(cfg) with stderr captured into buf. */
static int open_stderr(const struct kv_config *cfg, char *buf, size_t len)
{
	FILE *f = tmpfile();
	int saved = dup(2), ret;
	size_t got;

	CHECK(f && saved >= 0);
	fflush(stderr);
	CHECK(dup2(fileno(f), 2) == 2);
	ret = try_open(cfg);
	fflush(stderr);
	CHECK(dup2(saved, 2) == 2);
	close(saved);
	rewind(f);
	got = fread(buf, 1, len - 1, f);
	buf[got] = 0;
	fclose(f);
	return ret;
}

/* Every int is valid input; what is not a negative errno is "unknown error". */
static void strerror_any_int(void)
{
	static const int odd[] = { INT_MIN, INT_MIN + 1, -4096, -100000, 1, 4096, INT_MAX };

	CHECK(!strcmp(kv_strerror(0), "success"));
	CHECK(kv_strerror(-ENOENT) && strstr(kv_strerror(-ENOENT), "miss"));
	CHECK(!strcmp(kv_strerror(-EINVAL), strerror(EINVAL)));
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		const char *s = kv_strerror(odd[i]);

		if (!s || strncmp(s, "unknown error", 13))
			FAILF("kv_strerror(%d) = \"%s\"", odd[i], s ? s : "(null)");
	}
	printf("kv_strerror: every int gives text\n");
}

/* The numeric limits of struct kv_config, at and past each edge. */
static void config_limits(const char *dir)
{
	struct kv_config cfg = base_cfg(), b;
	size_t slot = slot_of(&cfg.geometry);
	char path[512];

	b = cfg; b.workers = 8;
	CHECK_EQ(try_open(&b), 0);
	b.workers = 9;
	CHECK_EQ(try_open(&b), -EINVAL);
	b = cfg; b.queue_depth = 65536;
	CHECK_EQ(try_open(&b), 0);
	b.queue_depth = 65537;
	CHECK_EQ(try_open(&b), -EINVAL);
	b = cfg; b.host_bytes = slot; /* one slot is enough */
	CHECK_EQ(try_open(&b), 0);
	b.host_bytes = slot - 1;
	CHECK_EQ(try_open(&b), -EINVAL);
	b = cfg; b.disk_queue_depth = 4096;
	CHECK_EQ(try_open(&b), 0);
	b.disk_queue_depth = 4097;
	CHECK_EQ(try_open(&b), -EINVAL);
	b = cfg; b.admit = KV_ADMIT_NONE + 1;
	CHECK_EQ(try_open(&b), -EINVAL);

	/* The disk tier needs room for one slot (past its superblock and table). */
	snprintf(path, sizeof(path), "%s/small.disk", dir);
	b = cfg; b.disk_path = path; b.disk_bytes = slot;
	CHECK_EQ(try_open(&b), -EINVAL);
	CHECK(access(path, F_OK) != 0); /* refused before anything was created */
	b.disk_bytes = 0;
	CHECK_EQ(try_open(&b), -EINVAL);
	b.disk_bytes = 4u << 20;
	CHECK_EQ(try_open(&b), 0);
	b.disk_path = "";
	CHECK_EQ(try_open(&b), -EINVAL);
	printf("config limits: workers 8, queue_depth 65536, one host slot, one disk slot\n");
}

/* Flag bits: unknown ones and contradictory pairs are refused. */
static void config_flags(void)
{
	struct kv_config cfg = base_cfg(), b;

	for (unsigned bit = 11; bit < 32; bit++) {
		b = cfg; b.flags |= 1u << bit;
		if (try_open(&b) != -EINVAL)
			FAILF("unknown flag bit %u accepted", bit);
	}
	b = cfg; b.flags = KV_F_QUIET | KV_F_REQUIRE_KVMEM | KV_F_NO_KVMEM;
	CHECK_EQ(try_open(&b), -EINVAL);
	b = cfg; b.flags = KV_F_QUIET | KV_F_DEMOTE_ALL | KV_F_DEMOTE_NONE;
	CHECK_EQ(try_open(&b), -EINVAL);
	/* A tier's flags without that tier are accepted (and mean nothing). */
	b = cfg; b.flags |= KV_F_DISK_NO_URING | KV_F_DISK_REFORMAT | KV_F_REMOTE_NO_RDMA |
			    KV_F_DEMOTE_ALL;
	CHECK_EQ(try_open(&b), 0);
	printf("flags: unknown bits and REQUIRE_KVMEM|NO_KVMEM refused\n");
}

/* The peers list is checked at kv_open, and needs a namespace. */
static void config_peers(void)
{
	static const char *const bad[] = {
		"", ",", "a:1,,b:2", "a:1,", ",a:1", "a", "a:", ":1", "a:0", "a:65536",
		"a:-1", "a:1x", "a:1 ", "[::1]", "[::1]1", "[]:1", "a:99999999999999999999",
	};
	static const char *const good[] = {
		"127.0.0.1:9", " 127.0.0.1:9, localhost:65535", "[::1]:9,127.0.0.1:1",
	};
	struct kv_config cfg = base_cfg(), b;
	char msg[512];

	cfg.ns_root = kv_hash_root("test_contract", 13);
	cfg.remote_timeout_ms = 100;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = cfg; b.peers = bad[i];
		if (try_open(&b) != -EINVAL)
			FAILF("peers \"%s\" accepted", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		b = cfg; b.peers = good[i];
		if (try_open(&b) != 0)
			FAILF("peers \"%s\" refused", good[i]);
	}
	/* A bad list says so on stderr, unless KV_F_QUIET. */
	b = cfg; b.peers = "a:1,,b:2"; b.flags &= ~KV_F_QUIET;
	CHECK_EQ(open_stderr(&b, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "peers"));

	/* No namespace: every server would refuse the session. */
	b = cfg; b.peers = "127.0.0.1:9"; b.ns_root = (kv_hash){ 0, 0 };
	CHECK_EQ(open_stderr(&b, msg, sizeof(msg)), -EINVAL);
	CHECK_EQ(msg[0], 0);
	b.flags &= ~KV_F_QUIET;
	CHECK_EQ(open_stderr(&b, msg, sizeof(msg)), -EINVAL);
	if (!strstr(msg, "ns_root"))
		FAILF("no message naming ns_root: \"%s\"", msg);
	/* Without peers a zero namespace is still fine. */
	b = cfg; b.ns_root = (kv_hash){ 0, 0 };
	CHECK_EQ(try_open(&b), 0);
	printf("peers: %zu malformed lists and a zero ns_root refused\n", sizeof(bad) / sizeof(bad[0]));
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* Until n completions are waiting (kv_inflight counts unreaped ones too). */
static void settle(struct kv *kv, int fd)
{
	for (int i = 0; i < 5000 && !readable(fd); i++)
		usleep(1000);
	CHECK(readable(fd));
}

/* max == 0 is refused and consumes nothing; every negative timeout is forever. */
static void poll_wait_edges(void)
{
	struct kv_geometry g = t_geometry_small();
	struct kv_completion c[4];
	struct t_engine e;
	struct kv *kv;
	kv_hash h[8];
	uint32_t b[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	int fd;

	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 8);
	kv = t_open(&g, 16, KV_F_NO_KVMEM);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	fd = kv_event_fd(kv);
	t_hashes(h, 8);
	CHECK_EQ(kv_poll(kv, c, 0), -EINVAL);
	CHECK_EQ(kv_wait(kv, c, 0, 0), -EINVAL);
	CHECK_EQ(kv_poll(kv, NULL, 1), -EINVAL);
	CHECK_EQ(kv_wait(NULL, c, 1, 0), -EINVAL);
	CHECK_EQ(kv_event_fd(NULL), -EINVAL);
	CHECK_EQ(kv_wait(kv, c, 4, 0), 0); /* 0: does not wait */

	CHECK_EQ(kv_store(kv, h, b, 1, 7), 0);
	settle(kv, fd);
	CHECK_EQ(kv_poll(kv, c, 0), -EINVAL);
	CHECK_EQ(kv_wait(kv, c, 0, -1), -EINVAL);
	CHECK_EQ(kv_inflight(kv), 1); /* still there */
	CHECK(readable(fd));
	static const int neg[] = { -1, -2, -1000, INT_MIN };
	for (size_t i = 0; i < sizeof(neg) / sizeof(neg[0]); i++) {
		if (i)
			CHECK_EQ(kv_store(kv, h + i, b + i, 1, 7 + i), 0);
		int got = kv_wait(kv, c, 4, neg[i]);
		if (got != 1)
			FAILF("kv_wait(timeout %d) = %d", neg[i], got);
		CHECK_EQ(c[0].user_data, 7 + i);
	}
	CHECK_EQ(kv_inflight(kv), 0);
	kv_close(kv);
	t_engine_free(&e);
	printf("kv_poll/kv_wait: max 0 refused, negative timeouts wait\n");
}

/* The engine may read the eventfd to clear it; kv_poll re-arms it while some wait. */
static void eventfd_read_by_engine(void)
{
	struct kv_geometry g = t_geometry_small();
	struct kv_completion c[4];
	struct t_engine e;
	struct kv *kv;
	kv_hash h[3];
	uint32_t b[3] = { 0, 1, 2 };
	uint64_t v;
	int fd;

	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 3);
	kv = t_open(&g, 8, KV_F_NO_KVMEM);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	fd = kv_event_fd(kv);
	t_hashes(h, 3);
	for (uint32_t i = 0; i < 3; i++)
		CHECK_EQ(kv_store(kv, h + i, b + i, 1, i), 0);
	/* All three done (counted by the worker right before it posts each). */
	struct kv_stats st;
	for (int i = 0; i < 5000; i++) {
		CHECK_EQ(kv_stats(kv, &st), 0);
		if (st.stores == 3)
			break;
		usleep(1000);
	}
	CHECK_EQ(st.stores, 3);
	usleep(50000);
	CHECK(read(fd, &v, sizeof(v)) == sizeof(v)); /* the engine clears it */
	CHECK(!readable(fd));
	CHECK_EQ(kv_poll(kv, c, 1), 1);
	if (!readable(fd))
		FAILF("two completions wait but the eventfd is not readable after kv_poll");
	CHECK(read(fd, &v, sizeof(v)) == sizeof(v));
	CHECK_EQ(kv_wait(kv, c, 1, 1000), 1);
	CHECK(readable(fd));
	CHECK_EQ(kv_poll(kv, c, 4), 1);
	CHECK(!readable(fd));
	/* A read with nothing to clear fails with EAGAIN and changes nothing. */
	CHECK(read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN);
	CHECK_EQ(kv_store(kv, h, b, 1, 9), 0);
	settle(kv, fd);
	CHECK_EQ(kv_poll(kv, c, 4), 1);
	CHECK(!readable(fd));
	kv_close(kv);
	t_engine_free(&e);
	printf("eventfd: the engine may read it; kv_poll re-arms it\n");
}

/* kv_attach refuses strides that make a K and a V plane of one layer overlap. */
static void attach_overlap(void)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine e, one;
	struct kv_engine_cache ec;
	struct kv *kv;
	size_t P;
	struct { uint32_t layout; size_t bs2, ps2; int ret; } cases[] = {
		/* strides in half planes (P/2 units); 0: the layout's default */
		{ KV_LAYOUT_FLASHINFER_NHD, 4, 3, -EINVAL },  /* V(b) runs into K(b+1) */
		{ KV_LAYOUT_FLASHINFER_NHD, 4, 4, -EINVAL },  /* V(b) is K(b+1) */
		{ KV_LAYOUT_FLASHINFER_NHD, 6, 5, -EINVAL },
		{ KV_LAYOUT_FLASHINFER_NHD, 1, 2, -EINVAL },  /* block stride under a plane */
		{ KV_LAYOUT_FLASHINFER_NHD, 4, 1, -EINVAL },  /* plane stride under a plane */
		{ KV_LAYOUT_FLASHINFER_NHD, 6, 2, 0 },        /* padded, K V gap */
		{ KV_LAYOUT_FLASHINFER_NHD, 6, 4, 0 },        /* gap, then V flush to K(b+1) */
		{ KV_LAYOUT_FLASHINFER_NHD, 4, 2, 0 },        /* the default, spelled out */
		{ KV_LAYOUT_VLLM_NHD, 2, 2 * 7, -EINVAL },    /* V(0) is K(7) of 8 */
		{ KV_LAYOUT_VLLM_NHD, 2, 2 * 8 - 1, -EINVAL },
		{ KV_LAYOUT_VLLM_NHD, 2, 2 * 8, 0 },          /* the default */
		{ KV_LAYOUT_VLLM_HND, 2, 2 * 9, 0 },
	};

	kv = t_open(&g, 4, KV_F_NO_KVMEM);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t_engine_init(&e, &g, cases[i].layout, 8);
		P = e.plane_bytes;
		ec = e.ec;
		ec.block_stride = cases[i].bs2 * P / 2;
		ec.plane_stride = cases[i].ps2 * P / 2;
		int ret = kv_attach(kv, &ec);
		if (ret != cases[i].ret)
			FAILF("layout %u block_stride %zu/2 P plane_stride %zu/2 P: %d, expected %d",
			      cases[i].layout, cases[i].bs2, cases[i].ps2, ret, cases[i].ret);
		t_engine_free(&e);
	}
	/* One engine block: V right after K cannot run into another block. */
	t_engine_init(&one, &g, KV_LAYOUT_FLASHINFER_NHD, 1);
	ec = one.ec;
	ec.block_stride = one.plane_bytes;
	ec.plane_stride = one.plane_bytes;
	CHECK_EQ(kv_attach(kv, &ec), 0);
	t_engine_free(&one);
	kv_close(kv);
	printf("kv_attach: overlapping K/V planes refused (%zu cases)\n", sizeof(cases) / sizeof(cases[0]));
}

/* The same hash or the same engine block twice in one store or load. */
static void repeats_in_request(void)
{
	struct kv_geometry g = t_geometry_small();
	struct kv_completion c;
	struct kv_stats st;
	struct t_engine e;
	struct kv *kv;
	kv_hash h[4], s3[3], l3[3];
	uint32_t b3[3] = { 0, 1, 2 }, same[2] = { 3, 3 }, dst[3] = { 5, 6, 7 }, twice[2] = { 5, 5 };
	static uint32_t many[100];

	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 128);
	kv = t_open(&g, 16, KV_F_NO_KVMEM);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	t_hashes(h, 4);
	for (uint32_t i = 0; i < 4; i++)
		t_engine_fill_block(&e, i, h[i].lo);

	/* Store {A, B, A}: the repeat is a dedup; the first engine block is what is kept. */
	s3[0] = h[0]; s3[1] = h[1]; s3[2] = h[0];
	CHECK_EQ(kv_store(kv, s3, b3, 3, 1), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 3);
	CHECK_EQ(c.err, 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.store_dedup, 1);
	CHECK_EQ(st.tier[KV_TIER_HOST].blocks, 2);
	/* One engine block under two names: both stored, same bytes. */
	CHECK_EQ(kv_store(kv, h + 2, same, 2, 2), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 2);

	/* Load {A, B, A}: a hash may land in several engine blocks. */
	l3[0] = h[0]; l3[1] = h[1]; l3[2] = h[0];
	CHECK_EQ(kv_load(kv, l3, dst, 3, 3), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 3);
	CHECK_EQ(c.err, 0);
	CHECK(t_engine_check_block(&e, 5, h[0].lo));
	CHECK(t_engine_check_block(&e, 6, h[1].lo));
	CHECK(t_engine_check_block(&e, 7, h[0].lo));
	CHECK_EQ(kv_load(kv, h + 3, dst, 1, 4), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 1);
	CHECK(t_engine_check_block(&e, 5, h[3].lo)); /* h[3] is engine block 3's bytes */
	CHECK(!t_engine_check_block(&e, 5, h[2].lo));

	/* But a load may not name an engine block twice: refused, nothing touched. */
	t_engine_fill_block(&e, 5, 99);
	CHECK_EQ(kv_load(kv, h, twice, 2, 5), -EINVAL);
	for (uint32_t i = 0; i < 100; i++)
		many[i] = 10 + i;
	many[99] = 10; /* past the small-n path */
	kv_hash hm[100];
	for (uint32_t i = 0; i < 100; i++)
		hm[i] = h[i % 2];
	CHECK_EQ(kv_load(kv, hm, many, 100, 6), -EINVAL);
	many[99] = 127;
	CHECK_EQ(kv_load(kv, hm, many, 100, 6), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 100);
	CHECK(t_engine_check_block(&e, 127, h[1].lo));
	CHECK(t_engine_check_block(&e, 5, 99));
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.rejected, 2);
	CHECK_EQ(kv_inflight(kv), 0);
	kv_close(kv);
	t_engine_free(&e);
	printf("repeats: a hash twice is fine (store dedups, load copies), an engine block twice in a load is refused\n");
}

/*
 * A prefetch of more blocks than the pool holds stops with -ENOSPC where the
 * pool is full of its own blocks: res leading blocks are resident when the
 * completion is posted (its later chunks never evict its head).
 */
static void prefetch_past_capacity(const char *dir)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine e;
	struct kv_completion c;
	struct kv *kv;
	kv_hash h[32], ns = { 21, 22 };
	uint8_t tiers[32];
	char path[512];

	snprintf(path, sizeof(path), "%s/prefetch.disk", dir);
	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 8);
	CHECK_EQ(td_open(&g, 8, path, 8u << 20, KV_F_NO_KVMEM, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	t_hashes(h, 32);
	td_store_all(kv, &e, h, 32, 8); /* 24 go down to disk as the last 8 arrive */
	CHECK_EQ(kv_lookup(kv, h, 32, tiers), 32);
	CHECK_EQ(tiers[0], KV_TIER_DISK);
	CHECK_EQ(tiers[31], KV_TIER_HOST);

	CHECK_EQ(kv_prefetch(kv, h, 32, 5), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.flags, KV_COMP_PREFETCH);
	if (c.res != 8 || c.err != -ENOSPC)
		FAILF("prefetch of 32 into 8 slots: res %d err %d, expected 8 and -ENOSPC",
		      c.res, c.err);
	CHECK_EQ(kv_lookup(kv, h, 32, tiers), 32);
	for (int i = 0; i < c.res; i++)
		if (tiers[i] != KV_TIER_HOST)
			FAILF("prefetched block %d is in tier %u, not host", i, tiers[i]);
	/* What it promised is there: the load is all host hits. */
	struct kv_stats st0, st1;
	uint32_t b[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	CHECK_EQ(kv_stats(kv, &st0), 0);
	CHECK_EQ(kv_load(kv, h, b, 8, 6), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 8);
	CHECK_EQ(kv_stats(kv, &st1), 0);
	CHECK_EQ(st1.tier[KV_TIER_HOST].hits - st0.tier[KV_TIER_HOST].hits, 8);
	for (uint32_t i = 0; i < 8; i++)
		CHECK(t_engine_check_block(&e, i, h[i].lo));
	/* Within capacity it is all done. */
	CHECK_EQ(kv_prefetch(kv, h + 8, 8, 7), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 8);
	CHECK_EQ(c.err, 0);
	/*
	 * Once its completion is seen, a prefetch holds nothing: the next one,
	 * submitted at once, may evict all of it (two pool-fulls, alternating).
	 */
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(kv_prefetch(kv, h + 8 * (i % 2), 8, 8), 0);
		c = t_wait1(kv);
		if (c.res != 8)
			FAILF("back-to-back prefetch %d: res %d err %d", i, c.res, c.err);
	}
	kv_close(kv);
	t_engine_free(&e);
	printf("prefetch: 32 blocks into 8 slots give res 8, -ENOSPC, all 8 resident\n");
}

/*
 * A lower tier's read failing part way through a load: res is the count of
 * leading blocks loaded (or -EIO if none), err -EIO, the failed block is
 * forgotten and engine blocks from res on are untouched.
 */
static void load_eio(const char *dir, uint32_t flags, const char *name)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine e;
	struct kv_completion c;
	struct kv_stats st;
	struct kv *kv;
	kv_hash h[6], ns = { 31, 32 };
	uint32_t b[6] = { 0, 1, 2, 3, 4, 5 };
	uint8_t tiers[6];
	char path[512];
	int f = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 6);
	/* Write six blocks down (kv_close flushes them), then reopen with faults. */
	CHECK_EQ(td_open(&g, 8, path, 8u << 20, flags | KV_F_NO_KVMEM, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	t_hashes(h, 6);
	td_store_all(kv, &e, h, 6, 6);
	kv_close(kv);
	setenv("KV_DISK_FAULT_EIO", "3", 1);
	CHECK_EQ(td_open(&g, 8, path, 8u << 20, flags | KV_F_NO_KVMEM, KV_ADMIT_ALL, ns, &kv), 0);
	unsetenv("KV_DISK_FAULT_EIO");
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	CHECK_EQ(kv_lookup(kv, h, 6, tiers), 6);
	CHECK_EQ(tiers[0], KV_TIER_DISK);

	for (uint32_t i = 0; i < 6; i++)
		t_engine_fill_block(&e, i, 0xdeadbeefull);
	CHECK_EQ(kv_load(kv, h, b, 6, 1), 0); /* the 3rd and 6th disk reads fail */
	c = t_wait1(kv);
	for (uint32_t i = 0; i < 6 && f < 0; i++)
		if (kv_lookup(kv, h + i, 1, NULL) == 0)
			f = (int)i; /* the first failed block: forgotten */
	printf("%s: load res %d err %d, first failed block %d\n", name, c.res, c.err, f);
	CHECK(f >= 0);
	CHECK_EQ(c.err, -EIO);
	CHECK_EQ(c.res, f ? f : -EIO);
	for (int i = 0; i < f; i++)
		CHECK(t_engine_check_block(&e, (uint32_t)i, h[i].lo));
	for (uint32_t i = (uint32_t)f; i < 6; i++)
		if (!t_engine_check_block(&e, i, 0xdeadbeefull))
			FAILF("engine block %u past the failed read was written", i);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].failures, 2);
	kv_close(kv);
	t_engine_free(&e);
}

int main(void)
{
	const char *dir;

	t_seed("test_contract");
	dir = td_dir();
	strerror_any_int();
	config_limits(dir);
	config_flags();
	config_peers();
	poll_wait_edges();
	eventfd_read_by_engine();
	attach_overlap();
	repeats_in_request();
	prefetch_past_capacity(dir);
	load_eio(dir, 0, "eio-uring.disk");
	load_eio(dir, KV_F_DISK_NO_URING, "eio-threads.disk");
	printf("ok\n");
	return 0;
}
