// SPDX-License-Identifier: MIT
/*
 * test_disk_concurrency.c - 4 threads store and load random batches of a shared
 * set of blocks through one struct kv with a disk tier (every eviction
 * written back) and a host pool holding a fraction of them,
 * for a few seconds (KV_TEST_SECONDS). Completions are reaped by whichever
 * thread waits and routed to their owner, so delivery-exactly-once is
 * checked too. Every loaded byte is checked against the block's content.
 */
#include "concurrency.h"
#include "test_disk.h"

#define UNIVERSE 600        /* distinct blocks */
#define POOL 48             /* blocks the host tier holds */

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	const char *secs = getenv("KV_TEST_SECONDS");
	static struct t_engine eng;
	static kv_hash names[UNIVERSE];
	struct t_conc_result r;
	struct kv *kv;
	struct kv_stats st;

	t_seed("test_disk_concurrency");
	t_hashes(names, UNIVERSE);
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_HND, T_CONC_THREADS * T_CONC_PER_THREAD);
	{
		char path[512];
		kv_hash ns = { 3, 4 };
		int ret;

		snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
		ret = td_open(&g, POOL, path, 64u << 20, KV_F_VERIFY_HOST, KV_ADMIT_ALL, ns, &kv);
		if (ret)
			FAILF("kv_open: %s", kv_strerror(ret));
	}
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	r = t_conc_run(kv, &eng, names, UNIVERSE, secs ? atof(secs) : 4.0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("stored %llu blocks, loaded %llu (verified), %llu partial loads, %llu evictions\n",
	       (unsigned long long)r.stored, (unsigned long long)r.loaded,
	       (unsigned long long)r.partial_loads,
	       (unsigned long long)st.tier[KV_TIER_HOST].evictions);
	printf("disk: %llu blocks, %llu hits, %llu failures, %llu verify failures\n",
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks,
	       (unsigned long long)st.tier[KV_TIER_DISK].hits,
	       (unsigned long long)st.tier[KV_TIER_DISK].failures,
	       (unsigned long long)st.tier[KV_TIER_DISK].verify_failures);
	CHECK(r.loaded > 100);
	CHECK(st.tier[KV_TIER_DISK].hits > 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].failures, 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 0);
	CHECK(st.tier[KV_TIER_HOST].evictions > 0);
	CHECK_EQ(st.tier[KV_TIER_HOST].verify_failures, 0);
	CHECK(st.tier[KV_TIER_HOST].blocks <= POOL);
	/* Loaded blocks come from host memory or were promoted from disk. */
	CHECK(st.tier[KV_TIER_HOST].hits + st.tier[KV_TIER_DISK].hits >= r.loaded);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
