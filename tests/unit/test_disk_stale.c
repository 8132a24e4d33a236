// SPDX-License-Identifier: MIT
/*
 * test_disk_stale.c - a slot whose header names block A while its bytes and
 * check values are block B's (what a stale in-memory index or a torn
 * rewrite leaves: a header that is itself intact and says A) loads as a
 * miss counted in verify_failures, never as B's bytes under A's name. The
 * check values bind the name, so B's values do not verify for A. Also: the
 * slot count follows docs/disk-format.md's rule over a sweep of sizes.
 */
#include "check.h"
#include "disk.h"
#include "test_disk.h"

#define NAMES 8
#define POOL 16
#define ENGINE 16
#define DISK (16u << 20)

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* The rule, written out: the largest n whose header table and data fit. */
static int fits(uint64_t n, uint64_t disk, uint64_t sb, uint64_t hb)
{
	return round_up(KV_DISK_SB_BYTES + n * hb, KV_DISK_DATA_ALIGN) + n * sb <= disk;
}

static void t_layout_rule(void)
{
	uint64_t n, off, sb;

	/* The case that once gave 956: 16 MiB, 15360-byte blocks, 64-byte headers. */
	CHECK_EQ(kv_disk_layout(16u << 20, 15360, 64, &n, &off, &sb), 0);
	CHECK_EQ(n, 960);
	CHECK_EQ(sb, 16384);
	for (int i = 0; i < 400; i++) {
		uint64_t disk = t_range(1, 64) << 20 | t_range(0, 1u << 20);
		uint64_t bb = t_range(1, 3) == 1 ? t_range(1, 8192) : t_range(4096, 4u << 20);
		uint64_t hb = kv_disk_header_bytes((uint32_t)t_range(1, 200));
		int ret = kv_disk_layout(disk, bb, hb, &n, &off, &sb);

		if (ret) {
			CHECK(!fits(1, disk, round_up(bb, 4096), hb));
			continue;
		}
		CHECK_EQ(sb, round_up(bb, 4096));
		CHECK(fits(n, disk, sb, hb));
		CHECK(!fits(n + 1, disk, sb, hb));
		CHECK_EQ(off, round_up(KV_DISK_SB_BYTES + n * hb, KV_DISK_DATA_ALIGN));
	}
}

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	static kv_hash h[NAMES];
	struct kv_disk_super sb;
	struct t_engine eng;
	struct kv_stats st;
	struct kv *kv;
	char path[512];
	kv_hash ns = { 7, 8 };
	int fd, sa = -1, sbl = -1;

	t_seed("test_disk_stale");
	t_layout_rule();
	t_hashes(h, NAMES);
	snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_NHD, ENGINE);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, NAMES, NAMES);
	kv_close(kv); /* every block goes down to the disk tier */

	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK_EQ(pread(fd, &sb, sizeof(sb), 0), sizeof(sb));
	CHECK_EQ(sb.version, 2);
	CHECK_EQ(sb.header_bytes, kv_disk_header_bytes(g.layers));
	{
		uint32_t hbytes = sb.header_bytes;
		unsigned char *table = calloc(NAMES * 2, hbytes), *bytes = malloc(sb.slot_bytes);
		struct kv_disk_header *ha, *hbk;
		struct kv_csum c;

		CHECK_EQ(pread(fd, table, (size_t)NAMES * 2 * hbytes, (off_t)sb.table_off),
			 (ssize_t)NAMES * 2 * hbytes);
		for (int s = 0; s < NAMES * 2; s++) {
			struct kv_disk_header *x = (void *)(table + (size_t)s * hbytes);

			if (x->h_lo == h[0].lo && x->h_hi == h[0].hi)
				sa = s;
			if (x->h_lo == h[1].lo && x->h_hi == h[1].hi)
				sbl = s;
		}
		CHECK(sa >= 0 && sbl >= 0);
		ha = (void *)(table + (size_t)sa * hbytes);
		hbk = (void *)(table + (size_t)sbl * hbytes);
		CHECK_EQ(ha->nchecks, g.layers);
		/* Slot A: B's bytes and B's check values; A's name; a valid header. */
		CHECK_EQ(pread(fd, bytes, sb.slot_bytes, (off_t)(sb.data_off + sbl * sb.slot_bytes)),
			 (ssize_t)sb.slot_bytes);
		CHECK_EQ(pwrite(fd, bytes, sb.slot_bytes, (off_t)(sb.data_off + sa * sb.slot_bytes)),
			 (ssize_t)sb.slot_bytes);
		memcpy(ha + 1, hbk + 1, g.layers * sizeof(uint64_t));
		kv_csum_reset(&c);
		kv_csum_update(&c, ha, offsetof(struct kv_disk_header, hcsum));
		kv_csum_update(&c, ha + 1, hbytes - sizeof(*ha));
		ha->hcsum = kv_csum_digest(&c);
		CHECK_EQ(pwrite(fd, ha, hbytes, (off_t)(sb.table_off + (uint64_t)sa * hbytes)),
			 (ssize_t)hbytes);
		free(table);
		free(bytes);
	}
	close(fd);

	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, NAMES); /* the header is intact: indexed */
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 0);
	{
		struct kv_completion c = td_load_check(kv, &eng, h, 1);

		CHECK_EQ(c.res, 0);
		CHECK_EQ(c.err, -EBADMSG);
	}
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 1);
	/* B itself, and the rest, are untouched and exact. */
	for (int i = 1; i < NAMES; i++)
		CHECK_EQ(td_load_check(kv, &eng, h + i, 1).res, 1);
	/* A is forgotten: a miss now, without a second reject. */
	CHECK_EQ(td_load_check(kv, &eng, h, 1).err, -ENOENT);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 1);
	kv_close(kv);

	/* A version-1 file (check values without names) is refused, or reformatted on request. */
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	sb.version = 1;
	sb.csum = kv_csum64(&sb, offsetof(struct kv_disk_super, csum));
	CHECK_EQ(pwrite(fd, &sb, sizeof(sb), 0), sizeof(sb));
	close(fd);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), -EMEDIUMTYPE);
	CHECK_EQ(td_open(&g, POOL, path, DISK, KV_F_DISK_REFORMAT, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, 0);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
