/* SPDX-License-Identifier: MIT */
/*
 * test_abi.c - libkv.so's versioned kv_open. A program built against an
 * older kv.h passes a shorter struct kv_config: kv_open@KV_0.1 and
 * kv_open@KV_0.2 must read only the fields their version had. Each config
 * is placed so that its last byte is the last byte before a PROT_NONE
 * page: reading one byte past it would crash the test. Also checks the
 * 0.3 remote fields' validation through the default kv_open.
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
