// SPDX-License-Identifier: MIT
/*
 * test_index.c - the index and LRU by themselves, then inside a struct kv: a
 * block held by a reader is never evicted, and a host copy that fails its
 * checksum (KV_F_VERIFY_HOST) is reported as -EBADMSG, counted, and gone.
 */
#include "harness.h"
#include "internal.h"

static void index_alone(void)
{
	struct kv_index ix;
	kv_hash h[1000];
	struct kv_entry *e;

	CHECK_EQ(kv_index_init(&ix, 0), -EINVAL);
	CHECK_EQ(kv_index_init(&ix, 1000), 0);
	t_hashes(h, 1000);
	for (int i = 0; i < 1000; i++) {
		CHECK(!kv_index_find(&ix, h[i]));
		e = kv_index_insert(&ix, h[i]);
		CHECK(e);
		e->state[KV_TIER_HOST] = KV_COPY_READY;
		kv_lru_touch(&ix, KV_TIER_HOST, e);
	}
	CHECK(!kv_index_insert(&ix, (kv_hash){ 1, 2 })); /* full */
	CHECK_EQ(ix.lru[KV_TIER_HOST].count, 1000);
	for (int i = 0; i < 1000; i++)
		CHECK(kv_index_find(&ix, h[i]) && kv_hash_eq(kv_index_find(&ix, h[i])->h, h[i]));
	/* LRU: oldest first; touched moves to the head; referenced and pending are skipped. */
	CHECK(kv_lru_victim(&ix, KV_TIER_HOST) == kv_index_find(&ix, h[0]));
	kv_lru_touch(&ix, KV_TIER_HOST, kv_index_find(&ix, h[0]));
	CHECK(kv_lru_victim(&ix, KV_TIER_HOST) == kv_index_find(&ix, h[1]));
	kv_index_find(&ix, h[1])->refs = 1;
	kv_index_find(&ix, h[2])->state[KV_TIER_HOST] = KV_COPY_PENDING;
	CHECK(kv_lru_victim(&ix, KV_TIER_HOST) == kv_index_find(&ix, h[3]));
	CHECK_EQ(kv_entry_best_tier(kv_index_find(&ix, h[3])), KV_TIER_HOST);
	CHECK_EQ(kv_entry_best_tier(kv_index_find(&ix, h[2])), KV_TIER_NONE);
	/* Removal: gone from the map, slot reusable. */
	for (int i = 500; i < 1000; i++) {
		e = kv_index_find(&ix, h[i]);
		kv_lru_remove(&ix, KV_TIER_HOST, e);
		kv_lru_remove(&ix, KV_TIER_HOST, e); /* idempotent */
		e->state[KV_TIER_HOST] = KV_COPY_EMPTY;
		CHECK(kv_entry_empty(e));
		kv_index_remove(&ix, e);
	}
	CHECK_EQ(ix.used, 500);
	CHECK_EQ(ix.lru[KV_TIER_HOST].count, 500);
	for (int i = 0; i < 1000; i++)
		CHECK((kv_index_find(&ix, h[i]) != NULL) == (i < 500));
	kv_index_destroy(&ix);
}

static void readers_block_eviction(void)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine e;
	struct kv_completion c;
	struct kv_entry *held;
	struct kv *kv;
	kv_hash h[8];
	uint32_t b[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };

	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 8);
	kv = t_open(&g, 4, 0);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	t_hashes(h, 8);
	for (int i = 0; i < 8; i++)
		t_engine_fill_block(&e, i, h[i].lo);
	CHECK_EQ(kv_store(kv, h, b, 4, 0), 0);
	CHECK_EQ(t_wait1(kv).res, 4);
	/* A reader holds h[0] (the LRU victim-to-be) as a load would. */
	pthread_mutex_lock(&kv->lock);
	held = kv_index_find(&kv->ix, h[0]);
	CHECK(held);
	held->refs++;
	pthread_mutex_unlock(&kv->lock);
	CHECK_EQ(kv_store(kv, h + 4, b + 4, 4, 0), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 3); /* only three slots could be freed */
	CHECK_EQ(c.err, -ENOSPC);
	CHECK_EQ(kv_lookup(kv, h, 1, NULL), 1);
	pthread_mutex_lock(&kv->lock);
	held->refs--;
	pthread_mutex_unlock(&kv->lock);
	/* Still byte-exact after the pressure. */
	t_engine_fill_block(&e, 7, 0);
	CHECK_EQ(kv_load(kv, h, b + 7, 1, 0), 0);
	CHECK_EQ(t_wait1(kv).res, 1);
	CHECK(t_engine_check_block(&e, 7, h[0].lo));
	kv_close(kv);
	t_engine_free(&e);
}

static void corrupt_host_copy(void)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine e;
	struct kv_completion c;
	struct kv_stats st;
	struct kv *kv;
	kv_hash h[2];
	uint32_t b[2] = { 0, 1 }, d[2] = { 2, 3 };
	unsigned char *slot;

	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 4);
	kv = t_open(&g, 4, KV_F_VERIFY_HOST);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	t_hashes(h, 2);
	t_engine_fill_block(&e, 0, h[0].lo);
	t_engine_fill_block(&e, 1, h[1].lo);
	CHECK_EQ(kv_store(kv, h, b, 2, 0), 0);
	CHECK_EQ(t_wait1(kv).res, 2);
	pthread_mutex_lock(&kv->lock);
	slot = kv_pool_addr(&kv->pool, kv_index_find(&kv->ix, h[1])->slot[KV_TIER_HOST]);
	slot[kv->block_bytes / 2] ^= 0x40;
	pthread_mutex_unlock(&kv->lock);
	t_engine_fill_block(&e, 2, 5);
	t_engine_fill_block(&e, 3, 5);
	CHECK_EQ(kv_load(kv, h, d, 2, 0), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 1);
	CHECK_EQ(c.err, -EBADMSG);
	CHECK(t_engine_check_block(&e, 2, h[0].lo));
	CHECK(t_engine_check_block(&e, 3, 5)); /* wrong bytes never reach the engine */
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_HOST].verify_failures, 1);
	CHECK_EQ(st.tier[KV_TIER_HOST].blocks, 1);
	CHECK_EQ(kv_lookup(kv, h, 2, NULL), 1); /* the bad copy is gone: a miss */
	/* Storing it again heals it. */
	CHECK_EQ(kv_store(kv, h + 1, b + 1, 1, 0), 0);
	CHECK_EQ(t_wait1(kv).res, 1);
	CHECK_EQ(kv_load(kv, h + 1, d + 1, 1, 0), 0);
	CHECK_EQ(t_wait1(kv).res, 1);
	CHECK(t_engine_check_block(&e, 3, h[1].lo));
	kv_close(kv);
	t_engine_free(&e);
}

int main(void)
{
	t_seed("test_index");
	index_alone();
	readers_block_eviction();
	corrupt_host_copy();
	printf("ok\n");
	return 0;
}
