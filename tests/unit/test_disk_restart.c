// SPDX-License-Identifier: MIT
/*
 * test_disk_restart.c - store, close, reopen: every block loads byte-exact
 * from the rebuilt index. Then the clear errors: another geometry, size or
 * namespace (-EEXIST), a foreign file (-EMEDIUMTYPE), a truncated file
 * (-EUCLEAN), a file open in another kv (-EBUSY), too small (-EINVAL), and
 * KV_F_DISK_REFORMAT turning the first kinds into an empty tier.
 */
#include "test_disk.h"

#define NAMES 300
#define POOL 16
#define ENGINE 64
#define DISK (32u << 20)

int main(void)
{
	struct kv_geometry g = t_geometry_small(), g2;
	static kv_hash h[NAMES];
	static uint8_t tier[NAMES];
	struct t_engine eng;
	struct kv_stats st;
	struct kv *kv, *kv2;
	char path[512], other[512];
	kv_hash ns = { 11, 22 }, ns2 = { 33, 44 };
	int fd, ondisk = 0;

	t_seed("test_disk_restart");
	t_hashes(h, NAMES);
	snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
	snprintf(other, sizeof(other), "%s/foreign", td_dirname);
	t_engine_init(&eng, &g, KV_LAYOUT_FLASHINFER_NHD, ENGINE);

	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, NAMES, 16);
	kv_close(kv); /* host blocks are written down too */

	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("reopened: %llu blocks on disk\n", (unsigned long long)st.tier[KV_TIER_DISK].blocks);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, NAMES);
	CHECK_EQ(st.tier[KV_TIER_HOST].blocks, 0);
	CHECK_EQ(kv_lookup(kv, h, NAMES, tier), NAMES);
	for (int i = 0; i < NAMES; i++)
		ondisk += tier[i] == KV_TIER_DISK;
	CHECK_EQ(ondisk, NAMES);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	for (int i = 0; i < NAMES; i += 50) {
		struct kv_completion c = td_load_check(kv, &eng, h + i, 50);

		CHECK_EQ(c.res, 50);
	}
	/* Open twice at once: the second one is refused. */
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, 0, ns, &kv2), -EBUSY);
	kv_close(kv);

	/* A second restart still has everything (the first one rewrote nothing). */
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_lookup(kv, h, NAMES, NULL), NAMES);
	kv_close(kv);

	/* Mismatches are clear errors and leave the file alone. */
	g2 = g;
	g2.head_dim = 32;
	CHECK_EQ(td_open(&g2, POOL, path, DISK, 0, 0, ns, &kv), -EEXIST);
	CHECK_EQ(td_open(&g, POOL, path, DISK / 2, 0, 0, ns, &kv), -EEXIST);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, 0, ns2, &kv), -EEXIST);
	CHECK_EQ(td_open(&g, POOL, path, 4096, 0, 0, ns, &kv), -EINVAL);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_lookup(kv, h, NAMES, NULL), NAMES);
	kv_close(kv);

	/* Foreign files. */
	fd = open(other, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(fd >= 0);
	{
		static char junk[1 << 20];

		t_fill(junk, sizeof(junk));
		CHECK_EQ(write(fd, junk, sizeof(junk)), sizeof(junk));
		CHECK_EQ(ftruncate(fd, DISK), 0);
	}
	close(fd);
	CHECK_EQ(td_open(&g, POOL, other, DISK, 0, 0, ns, &kv), -EMEDIUMTYPE);
	CHECK_EQ(truncate(other, 100), 0);
	CHECK_EQ(td_open(&g, POOL, other, DISK, 0, 0, ns, &kv), -EMEDIUMTYPE);
	CHECK_EQ(td_open(&g, POOL, other, DISK, KV_F_DISK_REFORMAT, 0, ns, &kv), 0);
	CHECK_EQ(kv_lookup(kv, h, 1, NULL), 0);
	kv_close(kv);
	CHECK_EQ(td_open(&g, POOL, other, DISK, 0, 0, ns, &kv), 0); /* now ours */
	kv_close(kv);

	/* Truncated: the format needs more than the file has. */
	CHECK_EQ(truncate(path, DISK / 2), 0);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, 0, ns, &kv), -EUCLEAN);
	/* Corrupt superblock. */
	fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	CHECK_EQ(pwrite(fd, "X", 1, 40), 1);
	close(fd);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, 0, ns, &kv), -EUCLEAN);

	/* Reformat: another geometry takes the file over, empty. */
	CHECK_EQ(td_open(&g2, POOL, path, DISK, KV_F_DISK_REFORMAT, 0, ns2, &kv), 0);
	CHECK_EQ(kv_lookup(kv, h, NAMES, NULL), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, 0);
	kv_close(kv);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, 0, ns, &kv), -EEXIST);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
