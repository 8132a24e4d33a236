// SPDX-License-Identifier: MIT
/*
 * test_disk_enospc.c - a disk tier file larger than the file system under it
 * (a 4 MiB tmpfs, mounted here; SKIP where mounting is not permitted): the
 * writes that hit ENOSPC make those blocks not stored, are counted, and the
 * library keeps serving: every block kv_lookup reports loads byte-exact,
 * the others are misses, and stores and loads go on working.
 */
#include "test_disk.h"

#define NAMES 600           /* 9.4 MiB of blocks */
#define POOL 16
#define ENGINE 32
#define DISK (32u << 20)    /* sparse file: the 4 MiB file system fills up */

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	static kv_hash h[NAMES];
	static uint8_t tier[NAMES];
	struct t_engine eng;
	struct kv_stats st;
	struct kv *kv;
	char path[512], why[256];
	const char *mnt;
	kv_hash ns = { 9, 10 };
	int exact = 0, missed = 0, listed = 0, ret;

	t_seed("test_disk_enospc");
	t_hashes(h, NAMES);
	mnt = td_mount(td_dir(), "tmpfs", "size=4m", why, sizeof(why));
	if (!mnt)
		SKIP("%s (needs root / CAP_SYS_ADMIN)", why);
	snprintf(path, sizeof(path), "%s/kv.disk", mnt);
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_NHD, ENGINE);
	ret = td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv);
	if (ret)
		FAILF("kv_open on a 4 MiB tmpfs: %s", kv_strerror(ret));
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);

	td_store_all(kv, &eng, h, NAMES, 8); /* every store completes (host tier) */
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("disk: %llu blocks stored, %llu failures (ENOSPC)\n",
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks,
	       (unsigned long long)st.tier[KV_TIER_DISK].failures);
	CHECK(st.tier[KV_TIER_DISK].failures > 0);
	CHECK(st.tier[KV_TIER_DISK].blocks > 0);
	CHECK(st.tier[KV_TIER_DISK].blocks < NAMES - POOL);

	/* Whatever lookup reports loads exactly; the rest are misses. */
	for (int i = 0; i < NAMES; i++) {
		struct kv_completion c;

		CHECK(kv_lookup(kv, h + i, 1, tier) >= 0);
		c = td_load_check(kv, &eng, h + i, 1);
		if (tier[0] != KV_TIER_NONE) {
			listed++;
			if (c.res != 1)
				FAILF("block %d listed in tier %d but its load failed: %s", i,
				      tier[0], kv_strerror(c.err));
		}
		if (c.res == 1) {
			exact++;
		} else {
			CHECK_EQ(c.err, -ENOENT);
			missed++;
		}
	}
	printf("loads: %d exact (%d listed by lookup), %d misses\n", exact, listed, missed);
	CHECK(exact > 100);
	CHECK(missed > 0);

	/* Still serving: new blocks store and load. */
	td_store_all(kv, &eng, h, 32, 8);
	{
		struct kv_completion c = td_load_check(kv, &eng, h, 32);

		CHECK_EQ(c.res, 32);
	}
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 0);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
