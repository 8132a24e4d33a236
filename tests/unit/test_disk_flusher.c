// SPDX-License-Identifier: MIT
/*
 * test_disk_flusher.c - write-back runs on the background flusher, not in
 * the store that needs a slot:
 *  1. past the high watermark (half the pool dirty) the flusher writes the
 *     oldest dirty blocks down to the low one (a quarter) while nobody
 *     stores, and no store stalls while the pool has clean blocks;
 *  2. with a slow disk (KV_DISK_FAULT_DELAY_MS) and a stream of stores, the
 *     pool fills with dirty blocks: stores wait for the flusher, the waits
 *     are counted, every store completes and every block reads back exact
 *     from disk (nothing admitted is dropped);
 *  3. kv_stats@@KV_0.4 reports host_dirty, flusher_writes, store_stalls.
 */
#include <time.h>

#include "test_disk.h"

#define POOL 32
#define ENGINE 16
#define DISK (64u << 20)
#define NAMES 160

static struct kv_stats wait_dirty_at_most(struct kv *kv, uint64_t n)
{
	struct kv_stats st;

	for (int i = 0; i < 500; i++) {
		CHECK_EQ(kv_stats(kv, &st), 0);
		if (st.host_dirty <= n)
			break;
		usleep(10000);
	}
	return st;
}

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	static kv_hash h[NAMES];
	struct t_engine eng;
	struct kv_stats st;
	struct kv *kv;
	char path[512];
	kv_hash ns = { 11, 12 };

	t_seed("test_disk_flusher");
	t_hashes(h, NAMES);
	snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_NHD, ENGINE);

	/* 1. Watermarks, on a quiet cache. */
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, POOL / 2, 8); /* at the high watermark: nothing to do */
	usleep(300000);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.host_dirty, POOL / 2);
	CHECK_EQ(st.flusher_writes, 0);
	td_store_all(kv, &eng, h + POOL / 2, POOL / 4, 8); /* past it */
	st = wait_dirty_at_most(kv, POOL / 4);
	printf("watermarks: %llu dirty, %llu written by the flusher, %llu stalls\n",
	       (unsigned long long)st.host_dirty, (unsigned long long)st.flusher_writes,
	       (unsigned long long)st.store_stalls);
	CHECK(st.host_dirty <= POOL / 4);
	CHECK(st.flusher_writes >= POOL / 2);
	CHECK_EQ(st.store_stalls, 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, st.flusher_writes);
	kv_close(kv);
	unlink(path);

	/* 2. A slow disk under a stream of stores: stalls, counted; nothing lost. */
	setenv("KV_DISK_FAULT_DELAY_MS", "40", 1);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	unsetenv("KV_DISK_FAULT_DELAY_MS");
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, NAMES, 8);
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("slow disk: %d blocks stored through a %d-slot pool: %llu stalls, %llu flusher "
	       "writes, %llu dirty, %llu evictions\n", NAMES, POOL,
	       (unsigned long long)st.store_stalls, (unsigned long long)st.flusher_writes,
	       (unsigned long long)st.host_dirty,
	       (unsigned long long)st.tier[KV_TIER_HOST].evictions);
	CHECK(st.store_stalls > 0);
	CHECK(st.host_dirty <= POOL);
	CHECK(st.flusher_writes >= NAMES - POOL);
	kv_close(kv); /* the rest goes down at close */

	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, NAMES);
	for (int i = 0; i < NAMES; i += 8)
		CHECK_EQ(td_load_check(kv, &eng, h + i, 8).res, 8);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
