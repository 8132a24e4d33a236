// SPDX-License-Identifier: MIT
/*
 * test_disk_roundtrip.c - many random blocks through host -> disk -> host ->
 * engine with a host pool far smaller than the set, so most blocks live only
 * on disk; every byte checked. Also kv_lookup's tiers, kv_prefetch, the
 * admission policy (KV_ADMIT_REUSED keeps once-stored blocks off the disk)
 * and the stats rows. test_disk_threads.c runs the same on the thread pool.
 */
#include "test_disk.h"

#ifndef RT_FLAGS
#define RT_FLAGS 0
#define RT_NAME "test_disk_roundtrip"
#endif

#define NAMES 600
#define POOL 24
#define ENGINE 64

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	static kv_hash h[NAMES];
	static uint8_t tier[NAMES];
	struct t_engine eng;
	struct kv_stats st;
	struct kv_completion c;
	char path[512];
	struct kv *kv;
	kv_hash ns = { 1, 2 };
	int ret, ondisk = 0, onhost = 0;

	t_seed(RT_NAME);
	t_hashes(h, NAMES);
	snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_NHD, ENGINE);
	ret = td_open(&g, POOL, path, 64u << 20, RT_FLAGS, KV_ADMIT_ALL, ns, &kv);
	if (ret)
		FAILF("kv_open with a disk tier: %s", kv_strerror(ret));
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);

	td_store_all(kv, &eng, h, NAMES, 8);
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("after stores: host %llu blocks (%llu evictions), disk %llu blocks of %llu, "
	       "%llu bytes in\n",
	       (unsigned long long)st.tier[KV_TIER_HOST].blocks,
	       (unsigned long long)st.tier[KV_TIER_HOST].evictions,
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks,
	       (unsigned long long)st.tier[KV_TIER_DISK].capacity,
	       (unsigned long long)st.tier[KV_TIER_DISK].bytes_in);
	CHECK(st.tier[KV_TIER_DISK].capacity > NAMES);
	CHECK(st.tier[KV_TIER_DISK].blocks >= NAMES - POOL);
	CHECK(st.tier[KV_TIER_HOST].blocks <= POOL);

	/* Every name is present; most only on disk. */
	CHECK_EQ(kv_lookup(kv, h, NAMES, tier), NAMES);
	for (int i = 0; i < NAMES; i++) {
		ondisk += tier[i] == KV_TIER_DISK;
		onhost += tier[i] == KV_TIER_HOST;
	}
	printf("lookup: %d in host memory, %d only on disk\n", onhost, ondisk);
	CHECK(ondisk >= NAMES - POOL);
	CHECK_EQ(ondisk + onhost, NAMES);

	/* Random runs back into the engine, every byte checked. */
	for (int it = 0; it < 400; it++) {
		uint32_t n = t_range(1, 16), at = t_range(0, NAMES - n);

		c = td_load_check(kv, &eng, h + at, n);
		if (c.res != (int)n)
			FAILF("load of %u at %u: res %d err %d (%s)", n, at, c.res, c.err,
			      kv_strerror(c.err));
	}
	/* One long load (several chunks) of disk-resident blocks. */
	{
		uint32_t blocks[ENGINE];

		for (uint32_t j = 0; j < ENGINE; j++) {
			blocks[j] = j;
			t_engine_fill_block(&eng, j, 0xdeadbeefull);
		}
		CHECK_EQ(kv_lookup(kv, h, NAMES, tier), NAMES);
		CHECK_EQ(kv_load(kv, h + 100, blocks, ENGINE, 9), 0);
		c = t_wait1(kv);
		CHECK_EQ(c.res, ENGINE);
		for (uint32_t j = 0; j < ENGINE; j++)
			if (!t_engine_check_block(&eng, j, h[100 + j].lo))
				FAILF("long load: block %u wrong", j);
	}

	/* Prefetch: disk-only blocks end up in host memory. */
	CHECK_EQ(kv_lookup(kv, h, NAMES, tier), NAMES);
	{
		kv_hash pf[8];
		int k = 0;

		for (int i = 0; i < NAMES && k < 8; i++)
			if (tier[i] == KV_TIER_DISK)
				pf[k++] = h[i];
		CHECK_EQ(k, 8);
		CHECK_EQ(kv_prefetch(kv, pf, 8, 77), 0);
		c = t_wait1(kv);
		CHECK_EQ(c.user_data, 77);
		CHECK_EQ(c.flags, KV_COMP_PREFETCH);
		CHECK_EQ(c.res, 8);
		CHECK_EQ(kv_lookup(kv, pf, 8, tier), 8);
		for (int i = 0; i < 8; i++)
			CHECK_EQ(tier[i], KV_TIER_HOST);
		c = td_load_check(kv, &eng, pf, 8);
		CHECK_EQ(c.res, 8);
	}
	/* A name nowhere: prefetch and load stop with -ENOENT. */
	{
		kv_hash none[2] = { h[5], { 12345, 67891 } };

		CHECK_EQ(kv_prefetch(kv, none, 2, 78), 0);
		c = t_wait1(kv);
		CHECK_EQ(c.res, 1);
		CHECK_EQ(c.err, -ENOENT);
		c = td_load_check(kv, &eng, none, 2);
		CHECK_EQ(c.res, 1);
		CHECK_EQ(c.err, -ENOENT);
	}
	CHECK_EQ(kv_prefetch(kv, NULL, 1, 0), -EINVAL);

	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("disk: %llu hits, %llu misses, %llu failures, %llu verify failures; "
	       "host: %llu hits\n",
	       (unsigned long long)st.tier[KV_TIER_DISK].hits,
	       (unsigned long long)st.tier[KV_TIER_DISK].misses,
	       (unsigned long long)st.tier[KV_TIER_DISK].failures,
	       (unsigned long long)st.tier[KV_TIER_DISK].verify_failures,
	       (unsigned long long)st.tier[KV_TIER_HOST].hits);
	CHECK(st.tier[KV_TIER_DISK].hits > 500);
	CHECK(st.tier[KV_TIER_DISK].bytes_out > 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].failures, 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 0);
	kv_close(kv);

	/* KV_ADMIT_REUSED: blocks stored once and never hit stay off the disk. */
	unlink(path);
	ret = td_open(&g, POOL, path, 64u << 20, RT_FLAGS, KV_ADMIT_REUSED, ns, &kv);
	CHECK_EQ(ret, 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, 8, 8);
	td_store_all(kv, &eng, h, 8, 8); /* stored twice: admitted */
	td_store_all(kv, &eng, h + 8, 200, 8);
	/* Write-back is the flusher's, in the background: wait until nothing is dirty. */
	for (int i = 0; i < 500; i++) {
		CHECK_EQ(kv_stats(kv, &st), 0);
		if (!st.host_dirty)
			break;
		usleep(10000);
	}
	CHECK_EQ(st.host_dirty, 0);
	printf("admit reused: disk holds %llu blocks\n",
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, 8);
	CHECK_EQ(kv_lookup(kv, h, 8, tier), 8);
	c = td_load_check(kv, &eng, h, 8);
	CHECK_EQ(c.res, 8);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
