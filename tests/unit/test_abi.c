/* SPDX-License-Identifier: MIT */
/*
 * test_abi.c - libkv.so's versioned kv_open. A program built against an
 * older kv.h passes a shorter struct kv_config: kv_open@KV_0.1 and
 * kv_open@KV_0.2 must read only the fields their version had. Each config
 * is placed so that its last byte is the last byte before a PROT_NONE
 * page: reading one byte past it would crash the test. Also checks the
 * 0.3 remote fields' validation through the default kv_open. Likewise the
 * output structs: kv_poll, kv_wait and kv_stats@KV_0.1 write only the 0.1
 * layouts of struct kv_completion and struct kv_stats.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

typedef int (*open_fn)(const void *cfg, struct kv **out);
typedef void (*close_fn)(struct kv *kv);
typedef int (*stats_fn)(struct kv *kv, struct kv_stats *st);

/* A copy of the first size bytes of cfg, ending right at a guard page. */
static void *at_guard(const struct kv_config *cfg, size_t size, uint8_t **map, size_t *maplen)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	*maplen = 2 * pg;
	*map = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(*map != MAP_FAILED);
	CHECK(mprotect(*map + pg, pg, PROT_NONE) == 0);
	uint8_t *p = *map + pg - size;
	memcpy(p, cfg, size);
	return p;
}

static void open_old(void *lib, const char *ver, size_t size)
{
	open_fn op = (open_fn)dlvsym(lib, "kv_open", ver);
	close_fn cl = (close_fn)dlsym(lib, "kv_close");
	stats_fn stf = (stats_fn)dlsym(lib, "kv_stats");
	if (!op)
		FAILF("libkv.so has no kv_open@%s: %s", ver, dlerror());
	CHECK(cl && stf);

	struct kv_config cfg = {
		.geometry = { .layers = 2, .planes = 2, .block_tokens = 16, .kv_heads = 2,
			      .head_dim = 64, .dtype = KV_DTYPE_FP16 },
		.host_bytes = 4u << 20,
		.flags = KV_F_NO_KVMEM | KV_F_QUIET,
		.workers = 1,
	};
	uint8_t *map;
	size_t maplen;
	void *old = at_guard(&cfg, size, &map, &maplen);
	struct kv *kv = NULL;
	int ret = op(old, &kv);
	if (ret)
		FAILF("kv_open@%s: %s", ver, kv_strerror(ret));
	struct kv_stats st;
	CHECK_EQ(stf(kv, &st), 0);
	CHECK(st.tier[KV_TIER_HOST].capacity > 0);
	cl(kv);
	CHECK_EQ(op(NULL, &kv), -EINVAL);
	munmap(map, maplen);
	printf("kv_open@%s: opened with a %zu-byte config ending at a guard page\n", ver, size);
}

/* The 0.1 completion as a 0.1 program sees it. */
struct comp_v0_1 {
	uint64_t user_data;
	int32_t res, err;
	uint32_t n, flags;
};

typedef int (*poll_fn)(struct kv *kv, void *c, unsigned max);
typedef int (*wait_fn)(struct kv *kv, void *c, unsigned max, int timeout_ms);
typedef int (*attach_fn)(struct kv *kv, const struct kv_engine_cache *ec);
typedef int (*store_fn)(struct kv *kv, const kv_hash *h, const uint32_t *b, size_t n,
			uint64_t user_data);
typedef int (*raw_stats_fn)(struct kv *kv, void *st);

/* size bytes of zeroes ending right at a guard page. */
static void *zero_at_guard(size_t size, uint8_t **map, size_t *maplen)
{
	static const uint8_t zero[4096];

	CHECK(size <= sizeof(zero));
	return at_guard((const struct kv_config *)zero, size, map, maplen);
}

/*
 * kv_poll, kv_wait and kv_stats of each version write only their layout:
 * completions and stats placed against a guard page, every field checked.
 */
static void outputs(void *lib)
{
	open_fn op = (open_fn)dlsym(lib, "kv_open");
	close_fn cl = (close_fn)dlsym(lib, "kv_close");
	attach_fn at = (attach_fn)dlsym(lib, "kv_attach");
	store_fn sto = (store_fn)dlsym(lib, "kv_store");
	poll_fn p1 = (poll_fn)dlvsym(lib, "kv_poll", "KV_0.1");
	wait_fn w1 = (wait_fn)dlvsym(lib, "kv_wait", "KV_0.1");
	raw_stats_fn s1 = (raw_stats_fn)dlvsym(lib, "kv_stats", "KV_0.1");
	poll_fn p4 = (poll_fn)dlvsym(lib, "kv_poll", "KV_0.4");
	wait_fn w4 = (wait_fn)dlvsym(lib, "kv_wait", "KV_0.4");
	raw_stats_fn s4 = (raw_stats_fn)dlvsym(lib, "kv_stats", "KV_0.4");

	CHECK(op && cl && at && sto);
	if (!p1 || !w1 || !s1 || !p4 || !w4 || !s4)
		FAILF("libkv.so lacks a kv_poll/kv_wait/kv_stats version: %s", dlerror());
	CHECK((poll_fn)dlsym(lib, "kv_poll") == p4);
	CHECK((wait_fn)dlsym(lib, "kv_wait") == w4);
	CHECK((raw_stats_fn)dlsym(lib, "kv_stats") == s4);
	CHECK_EQ(sizeof(struct comp_v0_1), 24);
	CHECK_EQ(offsetof(struct kv_completion, reserved), sizeof(struct comp_v0_1));
	CHECK_EQ(sizeof(struct kv_completion), 32);

	struct kv_geometry g = { .layers = 2, .planes = 2, .block_tokens = 16, .kv_heads = 2,
				 .head_dim = 64, .dtype = KV_DTYPE_FP16 };
	struct kv_config cfg = { .geometry = g, .host_bytes = 4u << 20,
				 .flags = KV_F_NO_KVMEM | KV_F_QUIET, .workers = 1 };
	struct t_engine e;
	struct kv *kv = NULL;
	kv_hash h[6];
	uint32_t b[6] = { 0, 1, 2, 3, 4, 5 };
	uint8_t *map;
	size_t maplen;

	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 6);
	CHECK_EQ(op(&cfg, &kv), 0);
	CHECK_EQ(at(kv, &e.ec), 0);
	t_hashes(h, 6);
	for (uint32_t i = 0; i < 6; i++)
		CHECK_EQ(sto(kv, h + i, b + i, 1, 100 + i), 0);

	/* 0.1: one by kv_wait, two by kv_poll, each array ending at the guard. */
	uint64_t seen = 0;
	struct comp_v0_1 *c1 = zero_at_guard(sizeof(*c1), &map, &maplen);
	CHECK_EQ(w1(kv, c1, 1, 5000), 1);
	CHECK(c1->user_data >= 100 && c1->user_data < 106 && c1->res == 1 && c1->err == 0 &&
	      c1->n == 1 && c1->flags == KV_COMP_STORE);
	seen |= 1ull << (c1->user_data - 100);
	munmap(map, maplen);
	c1 = zero_at_guard(2 * sizeof(*c1), &map, &maplen);
	for (int got = 0; got < 2;) {
		int r = p1(kv, c1 + got, 2 - got);
		CHECK(r >= 0);
		got += r;
		if (!r)
			usleep(1000);
	}
	for (int i = 0; i < 2; i++) {
		CHECK(c1[i].user_data >= 100 && c1[i].user_data < 106 && c1[i].res == 1 &&
		      c1[i].n == 1 && c1[i].flags == KV_COMP_STORE);
		seen |= 1ull << (c1[i].user_data - 100);
	}
	munmap(map, maplen);
	/* 0.4: 32 bytes each, reserved zero (the guard page is after the last). */
	struct kv_completion *c4 = zero_at_guard(3 * sizeof(*c4), &map, &maplen);
	memset(c4, 0xa5, 3 * sizeof(*c4));
	CHECK_EQ(w4(kv, c4, 1, 5000), 1);
	for (int got = 1; got < 3;) {
		int r = p4(kv, c4 + got, 3 - got);
		CHECK(r >= 0);
		got += r;
		if (!r)
			usleep(1000);
	}
	for (int i = 0; i < 3; i++) {
		CHECK(c4[i].user_data >= 100 && c4[i].user_data < 106 && c4[i].res == 1 &&
		      c4[i].n == 1 && c4[i].flags == KV_COMP_STORE);
		CHECK(c4[i].reserved[0] == 0 && c4[i].reserved[1] == 0);
		seen |= 1ull << (c4[i].user_data - 100);
	}
	munmap(map, maplen);
	CHECK_EQ(seen, 0x3f); /* each completion once */

	/* kv_stats: 0.1 writes up to host_huge_bytes, 0.4 the whole struct. */
	size_t old = offsetof(struct kv_stats, host_dirty);
	struct kv_stats *st = zero_at_guard(old, &map, &maplen);
	CHECK_EQ(s1(kv, st), 0);
	CHECK(st->tier[KV_TIER_HOST].capacity > 0);
	CHECK_EQ(st->tier[KV_TIER_HOST].blocks, 6);
	CHECK_EQ(st->stores, 6);
	munmap(map, maplen);
	st = zero_at_guard(sizeof(*st), &map, &maplen);
	memset(st, 0xa5, sizeof(*st));
	CHECK_EQ(s4(kv, st), 0);
	CHECK_EQ(st->stores, 6);
	for (size_t i = 0; i < sizeof(st->reserved) / sizeof(st->reserved[0]); i++)
		CHECK_EQ(st->reserved[i], 0);
	munmap(map, maplen);
	CHECK_EQ(s1(kv, NULL), -EINVAL);
	CHECK_EQ(p1(kv, NULL, 1), -EINVAL);
	cl(kv);
	t_engine_free(&e);
	printf("kv_poll/kv_wait/kv_stats@KV_0.1 write %zu/%zu-byte layouts, @@KV_0.4 %zu/%zu\n",
	       sizeof(struct comp_v0_1), old, sizeof(struct kv_completion), sizeof(struct kv_stats));
}

int main(void)
{
	const char *b = getenv("KV_BUILD");
	char path[4096];
	snprintf(path, sizeof(path), "%s/libkv.so.0", b && *b ? b : "build");
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		SKIP("cannot dlopen %s (%s): the shared library is not built", path, dlerror());

	open_old(lib, "KV_0.1", offsetof(struct kv_config, disk_queue_depth));
	open_old(lib, "KV_0.2", offsetof(struct kv_config, remote_replicas));
	open_old(lib, "KV_0.3", sizeof(struct kv_config));
	CHECK((open_fn)dlsym(lib, "kv_open") == (open_fn)dlvsym(lib, "kv_open", "KV_0.3"));
	t_seed("test_abi");
	outputs(lib);

	/* The 0.3 remote fields are validated before anything is opened. */
	struct kv_config cfg = {
		.geometry = { .layers = 1, .planes = 2, .block_tokens = 16, .kv_heads = 1,
			      .head_dim = 64, .dtype = KV_DTYPE_FP16 },
		.host_bytes = 4u << 20,
		.flags = KV_F_NO_KVMEM | KV_F_QUIET,
		.peers = "127.0.0.1:9",
		.ns_root = { 1, 2 },
	};
	struct kv *kv = (struct kv *)1;
	cfg.remote_replicas = 9;
	CHECK_EQ(kv_open(&cfg, &kv), -EINVAL);
	CHECK(kv == NULL);
	cfg.remote_replicas = 2;
	cfg.remote_timeout_ms = -1;
	CHECK_EQ(kv_open(&cfg, &kv), -EINVAL);
	cfg.remote_timeout_ms = 600001;
	CHECK_EQ(kv_open(&cfg, &kv), -EINVAL);
	cfg.remote_timeout_ms = 100;
	cfg.remote_auth_file = "/nonexistent/kv-secret";
	CHECK_EQ(kv_open(&cfg, &kv), -ENOENT);
	cfg.remote_auth_file = NULL;
	cfg.flags |= 1u << 30;
	CHECK_EQ(kv_open(&cfg, &kv), -EINVAL);
	cfg.flags &= ~(1u << 30);
	cfg.flags |= KV_F_REMOTE_NO_RDMA;
	/* Peers that are down are not an error: they are connected lazily. */
	CHECK_EQ(kv_open(&cfg, &kv), 0);
	kv_close(kv);
	dlclose(lib);
	printf("remote config fields: out-of-range values refused, a down peer accepted\n");
	return 0;
}
