// SPDX-License-Identifier: MIT
/*
 * test_disk_corrupt.c - random bytes flipped in the data and the slot
 * headers of a closed disk tier file; reopened, every load is byte-exact or
 * a miss (never wrong bytes) and the stats count every reject.
 */
#include "disk.h"
#include "test_disk.h"

#define NAMES 400
#define POOL 16
#define ENGINE 16
#define DISK (32u << 20)
#define DATA_FLIPS 40
#define HDR_FLIPS 25

static void flip(int fd, uint64_t off)
{
	unsigned char b;

	CHECK_EQ(pread(fd, &b, 1, (off_t)off), 1);
	b ^= (unsigned char)t_range(1, 255);
	CHECK_EQ(pwrite(fd, &b, 1, (off_t)off), 1);
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
	kv_hash ns = { 5, 6 };
	uint64_t bad_slots[DATA_FLIPS + HDR_FLIPS];
	int fd, nbad = 0, exact = 0, missed = 0;
	size_t bb = kv_geometry_block_bytes(&g);

	t_seed("test_disk_corrupt");
	t_hashes(h, NAMES);
	snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_HND, ENGINE);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, NAMES, 16);
	kv_close(kv);

	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK_EQ(pread(fd, &sb, sizeof(sb), 0), sizeof(sb));
	CHECK(!memcmp(sb.magic, KV_DISK_MAGIC, 8));
	CHECK(sb.nslots > NAMES);
	/* The log fills slots 0..NAMES-1 in order. */
	for (int i = 0; i < DATA_FLIPS; i++) {
		uint64_t s = t_range(0, NAMES - 1);

		flip(fd, sb.data_off + s * sb.slot_bytes + t_range(0, (uint32_t)bb - 1));
		bad_slots[nbad++] = s;
	}
	for (int i = 0; i < HDR_FLIPS; i++) {
		uint64_t s = t_range(0, NAMES - 1);

		flip(fd, sb.table_off + s * sb.header_bytes + t_range(0, sb.header_bytes - 1));
		bad_slots[nbad++] = s;
	}
	close(fd);
	{
		int distinct = 0;

		for (int i = 0; i < nbad; i++) {
			int seen = 0;

			for (int j = 0; j < i; j++)
				seen |= bad_slots[j] == bad_slots[i];
			distinct += !seen;
		}
		printf("corrupted %d distinct slots (%d data flips, %d header flips)\n", distinct,
		       DATA_FLIPS, HDR_FLIPS);
		nbad = distinct;
	}

	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("reopened: %llu blocks indexed, %llu headers rejected\n",
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks,
	       (unsigned long long)st.tier[KV_TIER_DISK].verify_failures);
	CHECK(st.tier[KV_TIER_DISK].verify_failures > 0);
	for (int i = 0; i < NAMES; i++) {
		struct kv_completion c = td_load_check(kv, &eng, h + i, 1);

		if (c.res == 1) {
			exact++;
		} else {
			CHECK(c.err == -ENOENT || c.err == -EBADMSG);
			missed++;
		}
	}
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("loads: %d exact, %d misses; disk verify failures %llu, failures %llu\n", exact,
	       missed, (unsigned long long)st.tier[KV_TIER_DISK].verify_failures,
	       (unsigned long long)st.tier[KV_TIER_DISK].failures);
	/* Every corrupted slot is a miss, and each was counted once. */
	CHECK_EQ(missed, nbad);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, (uint64_t)nbad);
	/* Rejected blocks are gone: a second pass misses without new rejects. */
	for (int i = 0; i < NAMES; i++) {
		struct kv_completion c = td_load_check(kv, &eng, h + i, 1);

		CHECK(c.res == 1 || c.err == -ENOENT);
	}
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, (uint64_t)nbad);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
