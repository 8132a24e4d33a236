// SPDX-License-Identifier: MIT
/*
 * test_disk_eio.c - I/O errors from the disk (injected: KV_DISK_FAULT_EIO=N
 * fails every Nth block I/O with EIO after doing it), on io_uring and on the
 * thread pool: a failed write leaves the block unstored, a failed read is a
 * miss (err -EIO) and forgets the block; both are counted in the disk row's
 * failures, nothing wrong is ever loaded, and the library keeps serving.
 */
#include "test_disk.h"

#define NAMES 400
#define POOL 16
#define ENGINE 16

static void run(uint32_t flags, const char *dir, const char *name)
{
	struct kv_geometry g = t_geometry_small();
	static kv_hash h[NAMES];
	struct t_engine eng;
	struct kv_stats st;
	struct kv *kv;
	char path[512];
	kv_hash ns = { 13, 14 };
	int exact = 0, eio = 0, miss = 0;

	t_hashes(h, NAMES);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_NHD, ENGINE);
	CHECK_EQ(td_open(&g, POOL, path, 32u << 20, flags, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, NAMES, 8); /* host stores all succeed */
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("%s: disk %llu blocks stored, %llu write failures\n", name,
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks,
	       (unsigned long long)st.tier[KV_TIER_DISK].failures);
	CHECK(st.tier[KV_TIER_DISK].failures > 0);
	CHECK(st.tier[KV_TIER_DISK].blocks > NAMES / 2);

	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < NAMES; i++) {
			uint32_t b = 0;
			struct kv_completion c;

			t_engine_fill_block(&eng, 0, 0xdeadbeefull);
			CHECK_EQ(kv_load(kv, h + i, &b, 1, i), 0);
			c = t_wait1(kv);
			if (c.res == 1) {
				if (!t_engine_check_block(&eng, 0, h[i].lo))
					FAILF("block %d loaded WRONG bytes", i);
				exact += !pass;
				continue;
			}
			if (!t_engine_check_block(&eng, 0, 0xdeadbeefull))
				FAILF("block %d: failed load wrote the engine block", i);
			if (c.err == -EIO) {
				CHECK_EQ(c.res, -EIO);
				eio++;
			} else {
				CHECK_EQ(c.err, -ENOENT);
				miss += !pass;
			}
		}
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("%s: %d exact, %d misses, %d read errors; failures %llu, verify failures %llu\n",
	       name, exact, miss, eio, (unsigned long long)st.tier[KV_TIER_DISK].failures,
	       (unsigned long long)st.tier[KV_TIER_DISK].verify_failures);
	CHECK(exact > NAMES / 2);
	CHECK(eio > 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 0);
	/* Still serving. */
	td_store_all(kv, &eng, h, 8, 8);
	kv_close(kv);
	t_engine_free(&eng);
}

int main(void)
{
	const char *dir;

	t_seed("test_disk_eio");
	dir = td_dir();
	setenv("KV_DISK_FAULT_EIO", "7", 1);
	run(0, dir, "uring.disk");
	run(KV_F_DISK_NO_URING, dir, "threads.disk");
	printf("ok\n");
	return 0;
}
