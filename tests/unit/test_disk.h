/* SPDX-License-Identifier: MIT */
/*
 * test_disk.h - what the disk tier tests share: a scratch directory (removed
 * at exit), kv_open with a disk tier, batched store/load helpers that check
 * every byte, and tmpfs/ramfs mounts for the file system tests.
 */
#ifndef KV_TEST_DISK_H
#define KV_TEST_DISK_H

#include <fcntl.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char td_dirname[256];
static char td_mnt[320];

static void td_cleanup(void)
{
	char cmd[600];

	if (td_mnt[0]) {
		umount2(td_mnt, MNT_DETACH);
		td_mnt[0] = 0;
	}
	if (td_dirname[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", td_dirname);
		if (system(cmd)) {
			/* best effort */
		}
	}
}

/* A fresh directory under $KV_TEST_DIR or /tmp, removed at exit. */
static inline const char *td_dir(void)
{
	const char *base = getenv("KV_TEST_DIR");

	snprintf(td_dirname, sizeof(td_dirname), "%s/kvdisk.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(td_dirname))
		FAILF("mkdtemp %s: %s", td_dirname, strerror(errno));
	atexit(td_cleanup);
	return td_dirname;
}

/* Mount fstype (tmpfs, ramfs) with opts on dir/mnt; NULL with the reason in why. */
static inline const char *td_mount(const char *dir, const char *fstype, const char *opts,
			    char *why, size_t whylen)
{
	snprintf(td_mnt, sizeof(td_mnt), "%s/mnt", dir);
	if (mkdir(td_mnt, 0700))
		FAILF("mkdir %s: %s", td_mnt, strerror(errno));
	if (mount(fstype, td_mnt, fstype, 0, opts)) {
		snprintf(why, whylen, "cannot mount %s (%s): %s", fstype, opts ? opts : "",
			 strerror(errno));
		td_mnt[0] = 0;
		return NULL;
	}
	return td_mnt;
}

static inline int td_open(const struct kv_geometry *g, size_t host_blocks, const char *path,
		   size_t disk_bytes, uint32_t flags, uint32_t admit, kv_hash ns, struct kv **kv)
{
	size_t slot = (kv_geometry_block_bytes(g) + 4095) & ~(size_t)4095;
	struct kv_config cfg = { .geometry = *g, .host_bytes = slot * host_blocks,
				 .disk_path = path, .disk_bytes = disk_bytes,
				 .flags = flags, .ns_root = ns, .admit = admit };

	if (!getenv("KV_TEST_VERBOSE"))
		cfg.flags |= KV_F_QUIET;
	*kv = NULL;
	return kv_open(&cfg, kv);
}

/* Store names h[0..n) (block i filled from tag h[i].lo) in batches; CHECKs each completes. */
static inline void td_store_all(struct kv *kv, struct t_engine *e, const kv_hash *h, size_t n,
			 uint32_t batch)
{
	uint32_t blocks[64];

	if (batch > 64 || batch > e->ec.num_blocks)
		batch = e->ec.num_blocks < 64 ? e->ec.num_blocks : 64;
	for (size_t i = 0; i < n; i += batch) {
		uint32_t m = n - i < batch ? (uint32_t)(n - i) : batch;
		struct kv_completion c;

		for (uint32_t j = 0; j < m; j++) {
			blocks[j] = j;
			t_engine_fill_block(e, j, h[i + j].lo);
		}
		CHECK_EQ(kv_store(kv, h + i, blocks, m, i), 0);
		c = t_wait1(kv);
		CHECK_EQ(c.user_data, i);
		if (c.res != (int)m)
			FAILF("store of %u blocks at %zu: res %d err %d (%s)", m, i, c.res, c.err,
			      kv_strerror(c.err));
	}
}

/*
 * Load h[0..n) into engine blocks 0..n-1 (n <= engine blocks); every block
 * loaded must hold exactly its bytes and every one past the stop must be
 * untouched. Returns the completion.
 */
static inline struct kv_completion td_load_check(struct kv *kv, struct t_engine *e, const kv_hash *h,
					  uint32_t n)
{
	uint32_t blocks[64];
	struct kv_completion c;

	CHECK(n <= 64 && n <= e->ec.num_blocks);
	for (uint32_t j = 0; j < n; j++) {
		blocks[j] = j;
		t_engine_fill_block(e, j, 0xdeadbeefull);
	}
	CHECK_EQ(kv_load(kv, h, blocks, n, 7), 0);
	c = t_wait1(kv);
	CHECK(c.flags == KV_COMP_LOAD);
	CHECK(c.res >= 0 && (uint32_t)c.res <= n);
	for (int j = 0; j < c.res; j++)
		if (!t_engine_check_block(e, j, h[j].lo))
			FAILF("block %d of %u loaded WRONG bytes (res %d err %d)", j, n, c.res, c.err);
	for (uint32_t j = (uint32_t)c.res; j < n; j++)
		if (!t_engine_check_block(e, j, 0xdeadbeefull))
			FAILF("engine block %u past the stop (res %d) was written", j, c.res);
	return c;
}

#endif /* KV_TEST_DISK_H */
