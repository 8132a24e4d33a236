// SPDX-License-Identifier: MIT
/*
 * xfer.c - how a store or a load runs on a worker: in chunks of KV_CHUNK
 * blocks, each chunk decided under kv->lock (reserve slots / take references),
 * copied without it (pack + checksum / verify + unpack), and published under
 * it again. References keep a block from being evicted while it is read.
 */
#include <errno.h>
#include "checksum.h"
#include "internal.h"

static void host_copy_drop(struct kv *kv, struct kv_entry *e)
{
	kv_lru_remove(&kv->ix, KV_TIER_HOST, e);
	kv_pool_put(&kv->pool, e->slot[KV_TIER_HOST]);
	e->slot[KV_TIER_HOST] = KV_SLOT_NONE;
	e->state[KV_TIER_HOST] = KV_COPY_EMPTY;
	if (kv_entry_empty(e) && !e->refs)
		kv_index_remove(&kv->ix, e);
}

uint32_t kv_host_slot_get(struct kv *kv)
{
	uint32_t slot = kv_pool_get(&kv->pool);
	struct kv_entry *v;

	if (slot != KV_SLOT_NONE)
		return slot;
	v = kv_lru_victim(&kv->ix, KV_TIER_HOST);
	if (!v)
		return KV_SLOT_NONE;
	kv->st.tier[KV_TIER_HOST].evictions++;
	kv->st.tier[KV_TIER_HOST].blocks--;
	host_copy_drop(kv, v);
	return kv_pool_get(&kv->pool);
}

/* Drop one reference; a copy marked bad while referenced goes with the last one. */
static void entry_unref(struct kv *kv, struct kv_entry *e)
{
	e->refs--;
	if (e->refs)
		return;
	if (e->state[KV_TIER_HOST] == KV_COPY_BAD)
		host_copy_drop(kv, e);
	else if (kv_entry_empty(e))
		kv_index_remove(&kv->ix, e);
}

static void run_store(struct kv *kv, struct kv_req *r, struct kv_completion *c)
{
	struct kv_tier_stats *ts = &kv->st.tier[KV_TIER_HOST];
	struct kv_entry *ents[KV_CHUNK];
	uint32_t eblocks[KV_CHUNK];
	uint64_t csum[KV_CHUNK];
	void *dst[KV_CHUNK];
	uint32_t done = 0;
	int err = 0;

	for (uint32_t start = 0; start < r->n && !err; start += KV_CHUNK) {
		uint32_t m = r->n - start < KV_CHUNK ? r->n - start : KV_CHUNK;
		uint32_t k = 0, ok = m, dedup = 0;
		int rc = 0;

		pthread_mutex_lock(&kv->lock);
		for (uint32_t i = 0; i < m; i++) {
			struct kv_entry *e = kv_index_find(&kv->ix, r->h[start + i]);
			uint32_t slot;

			if (e && (e->state[KV_TIER_HOST] == KV_COPY_READY ||
				  e->state[KV_TIER_HOST] == KV_COPY_PENDING)) {
				dedup++;
				continue;
			}
			if (e && e->state[KV_TIER_HOST] == KV_COPY_BAD) {
				err = -EAGAIN; /* a rejected copy is still being read */
				ok = i;
				break;
			}
			slot = kv_host_slot_get(kv);
			if (slot == KV_SLOT_NONE ||
			    (!e && !(e = kv_index_insert(&kv->ix, r->h[start + i])))) {
				if (slot != KV_SLOT_NONE)
					kv_pool_put(&kv->pool, slot);
				err = -ENOSPC;
				ts->failures++;
				ok = i;
				break;
			}
			e->slot[KV_TIER_HOST] = slot;
			e->state[KV_TIER_HOST] = KV_COPY_PENDING;
			e->refs++;
			ents[k] = e;
			eblocks[k] = r->blocks[start + i];
			dst[k] = kv_pool_addr(&kv->pool, slot);
			k++;
		}
		kv->st.store_dedup += dedup;
		pthread_mutex_unlock(&kv->lock);

		if (k && kv->be.pack_csum) {
			rc = kv->be.pack_csum(kv->be.ctx, r->fence, eblocks, dst, csum, k);
			r->fence = NULL;
		} else if (k) {
			rc = kv->be.pack(kv->be.ctx, r->fence, eblocks, dst, k);
			r->fence = NULL;
			for (uint32_t j = 0; j < k && !rc; j++)
				csum[j] = kv_csum64(dst[j], kv->block_bytes);
		}

		pthread_mutex_lock(&kv->lock);
		for (uint32_t j = 0; j < k; j++) {
			struct kv_entry *e = ents[j];

			if (rc) {
				host_copy_drop(kv, e);
			} else {
				e->csum = csum[j];
				e->state[KV_TIER_HOST] = KV_COPY_READY;
				kv_lru_touch(&kv->ix, KV_TIER_HOST, e);
				ts->blocks++;
				ts->bytes_in += kv->block_bytes;
			}
			entry_unref(kv, e);
		}
		if (rc)
			ts->failures++;
		pthread_mutex_unlock(&kv->lock);

		if (rc) {
			err = rc;
			break;
		}
		done += ok;
	}
	c->res = (int32_t)done;
	c->err = err;
}

static void run_load(struct kv *kv, struct kv_req *r, struct kv_completion *c)
{
	struct kv_tier_stats *ts = &kv->st.tier[KV_TIER_HOST];
	bool verify = kv->cfg.flags & KV_F_VERIFY_HOST;
	struct kv_entry *ents[KV_CHUNK];
	void *src[KV_CHUNK];
	uint32_t done = 0;
	int err = 0;

	for (uint32_t start = 0; start < r->n && !err; start += KV_CHUNK) {
		uint32_t m = r->n - start < KV_CHUNK ? r->n - start : KV_CHUNK;
		uint32_t k = 0, good;
		int rc = 0;

		pthread_mutex_lock(&kv->lock);
		for (uint32_t i = 0; i < m; i++) {
			struct kv_entry *e = kv_index_find(&kv->ix, r->h[start + i]);

			if (!e || e->state[KV_TIER_HOST] != KV_COPY_READY) {
				ts->misses++;
				err = -ENOENT;
				break;
			}
			e->refs++;
			kv_lru_touch(&kv->ix, KV_TIER_HOST, e);
			ents[k] = e;
			src[k] = kv_pool_addr(&kv->pool, e->slot[KV_TIER_HOST]);
			k++;
		}
		pthread_mutex_unlock(&kv->lock);

		good = k;
		for (uint32_t j = 0; verify && j < k; j++)
			if (kv_csum64(src[j], kv->block_bytes) != ents[j]->csum) {
				good = j;
				err = -EBADMSG;
				break;
			}
		if (good)
			rc = kv->be.unpack(kv->be.ctx, src, r->blocks + start, good);

		pthread_mutex_lock(&kv->lock);
		if (good < k) {
			/* Rejected copy: invisible from now on, freed with its last reader. */
			ts->verify_failures++;
			ts->blocks--;
			kv_lru_remove(&kv->ix, KV_TIER_HOST, ents[good]);
			ents[good]->state[KV_TIER_HOST] = KV_COPY_BAD;
		}
		for (uint32_t j = 0; j < k; j++)
			entry_unref(kv, ents[j]);
		if (rc) {
			ts->failures++;
		} else {
			ts->hits += good;
			ts->bytes_out += (uint64_t)good * kv->block_bytes;
		}
		pthread_mutex_unlock(&kv->lock);

		if (rc) {
			err = rc;
			break;
		}
		done += good;
	}
	c->res = (int32_t)done;
	c->err = err;
}

void kv_xfer_run(struct kv *kv, struct kv_req *r, struct kv_completion *c)
{
	c->user_data = r->user_data;
	c->n = r->n;
	c->flags = r->op;
	if (r->op == KV_COMP_STORE)
		run_store(kv, r, c);
	else
		run_load(kv, r, c);
	if (r->fence) {
		kv->be.fence_drop(kv->be.ctx, r->fence);
		r->fence = NULL;
	}
	/* A request that did nothing because of an error reports the error itself. */
	if (c->res == 0 && c->err && c->err != -ENOENT && c->err != -EBADMSG)
		c->res = c->err;
}
