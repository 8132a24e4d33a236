// SPDX-License-Identifier: MIT
/*
 * host.c - tier 1, the host pool: slot life cycle, eviction, the dirty
 * accounting, and the flusher that writes dirty blocks down off the request
 * path (see internal.h's "Host tier" section for the contract).
 *
 * Dirty: a READY host copy that the first lower tier lacks (no
 * KV_SLOT_CLEAN) and that the admission policy (kv_config.admit) wants
 * written down. kv->ndirty counts them; KV_SLOT_DIRTY marks the counted
 * slots, so every change of state, flags or use count goes through
 * dirty_sync() and the count never drifts.
 *
 * The flusher thread sleeps on flush_cv. It wakes when ndirty passes the
 * high watermark (half the pool), when eviction met a dirty block, or when
 * a store stalls; it then writes the oldest dirty blocks (LRU tail first,
 * KV_CHUNK at a time, each held by a reference, kv->lock dropped for the
 * I/O) until ndirty is at the low watermark (a quarter) and no store waits.
 * Eviction takes the least recently used block that is not dirty; only
 * when the oldest EVICT_SCAN blocks are all dirty does a store wait, on
 * clean_cv, for the flusher (counted in store_stalls).
 */
#include <errno.h>
#include <time.h>

#include "internal.h"

/* Blocks eviction looks at from the LRU tail before it calls the pool full of dirty ones. */
#define EVICT_SCAN (4 * KV_CHUNK)
#define STALL_WAIT_NS (30 * 1000000000ll) /* a stalled store gives up (-ENOSPC) after this */

/* Caller holds kv->lock. Should this host block go down when evicted? */
static bool admit(const struct kv *kv, uint32_t slot)
{
	if (!kv->nlower)
		return false;
	switch (kv->cfg.admit) {
	case KV_ADMIT_ALL:
		return true;
	case KV_ADMIT_NONE:
		return false;
	default:
		return kv->slot_uses[slot] >= 2;
	}
}

/* Caller holds kv->lock. Bring e's KV_SLOT_DIRTY bit and kv->ndirty up to date. */
static void dirty_sync(struct kv *kv, struct kv_entry *e)
{
	uint32_t slot = e->slot[KV_TIER_HOST];
	uint8_t *f;
	bool dirty;

	if (slot == KV_SLOT_NONE)
		return;
	f = &kv->slot_flags[slot];
	dirty = e->state[KV_TIER_HOST] == KV_COPY_READY && !(*f & KV_SLOT_CLEAN) && admit(kv, slot);
	if (dirty == !!(*f & KV_SLOT_DIRTY))
		return;
	if (dirty) {
		*f |= KV_SLOT_DIRTY;
		kv->ndirty++;
		if (kv->ndirty > kv->dirty_hi)
			pthread_cond_signal(&kv->flush_cv);
	} else {
		*f &= (uint8_t)~KV_SLOT_DIRTY;
		kv->ndirty--;
	}
}

void kv_host_drop(struct kv *kv, struct kv_entry *e)
{
	uint8_t *f = &kv->slot_flags[e->slot[KV_TIER_HOST]];

	if (*f & KV_SLOT_WT) {
		*f &= (uint8_t)~KV_SLOT_WT;
		kv->nwt--;
	}
	if (e->state[KV_TIER_HOST] == KV_COPY_PENDING)
		pthread_cond_broadcast(&kv->pend_cv);
	e->state[KV_TIER_HOST] = KV_COPY_EMPTY;
	dirty_sync(kv, e);
	kv_lru_remove(&kv->ix, KV_TIER_HOST, e);
	kv_pool_put(&kv->pool, e->slot[KV_TIER_HOST]);
	e->slot[KV_TIER_HOST] = KV_SLOT_NONE;
	if (kv_entry_empty(e) && !e->refs)
		kv_index_remove(&kv->ix, e);
}

void kv_host_unref(struct kv *kv, struct kv_entry *e)
{
	e->refs--;
	if (e->refs)
		return;
	if (e->state[KV_TIER_HOST] == KV_COPY_BAD)
		kv_host_drop(kv, e);
	else if (kv_entry_empty(e))
		kv_index_remove(&kv->ix, e);
}

void kv_host_used(struct kv *kv, struct kv_entry *e)
{
	uint32_t slot = e->slot[KV_TIER_HOST];

	if (kv->slot_uses[slot] < UINT8_MAX)
		kv->slot_uses[slot]++;
	dirty_sync(kv, e);
}

void kv_host_ready(struct kv *kv, struct kv_entry *e, bool clean)
{
	e->state[KV_TIER_HOST] = KV_COPY_READY;
	if (clean) {
		kv->slot_flags[e->slot[KV_TIER_HOST]] |= KV_SLOT_CLEAN;
	} else if (kv->wt_tier >= 0) {
		/* Write-through: the flusher sends it to the remote tier soon. */
		kv->slot_flags[e->slot[KV_TIER_HOST]] |= KV_SLOT_WT;
		kv->nwt++;
		pthread_cond_signal(&kv->flush_cv);
	}
	kv_lru_touch(&kv->ix, KV_TIER_HOST, e);
	dirty_sync(kv, e);
}

void kv_host_bad(struct kv *kv, struct kv_entry *e)
{
	kv_lru_remove(&kv->ix, KV_TIER_HOST, e);
	e->state[KV_TIER_HOST] = KV_COPY_BAD;
	dirty_sync(kv, e);
}

uint32_t kv_host_slot_get(struct kv *kv, bool *dirty_full)
{
	uint32_t slot = kv_pool_get(&kv->pool), seen = 0;
	struct kv_entry *v = NULL;

	*dirty_full = false;
	if (slot == KV_SLOT_NONE) {
		/* The least recently used block no one holds and nothing below is missing. */
		for (struct kv_entry *e = kv->ix.lru[KV_TIER_HOST].tail; e && seen < EVICT_SCAN;
		     e = e->lru[KV_TIER_HOST].prev) {
			if (e->refs || e->state[KV_TIER_HOST] != KV_COPY_READY)
				continue;
			seen++;
			if (!(kv->slot_flags[e->slot[KV_TIER_HOST]] & KV_SLOT_DIRTY)) {
				v = e;
				break;
			}
		}
		if (seen > 1 || (!v && seen))
			pthread_cond_signal(&kv->flush_cv); /* dirty blocks reached the tail */
		if (!v) {
			/* Dirty ones, or ones the flusher holds while it writes them. */
			*dirty_full = seen > 0 || kv->flushing > 0;
			return KV_SLOT_NONE;
		}
		kv->st.tier[KV_TIER_HOST].evictions++;
		kv->st.tier[KV_TIER_HOST].blocks--;
		kv_host_drop(kv, v);
		slot = kv_pool_get(&kv->pool);
	}
	if (slot != KV_SLOT_NONE) {
		kv->slot_uses[slot] = 0;
		kv->slot_flags[slot] = 0;
	}
	return slot;
}

int kv_host_stall(struct kv *kv)
{
	struct timespec until = kv_deadline_after(STALL_WAIT_NS);
	uint64_t gen = kv->clean_gen;
	int rc = 0;

	kv->store_stalls++;
	kv->nstalled++;
	pthread_cond_signal(&kv->flush_cv);
	while (kv->clean_gen == gen && rc != ETIMEDOUT && !kv->flush_stop)
		rc = pthread_cond_timedwait(&kv->clean_cv, &kv->lock, &until);
	kv->nstalled--;
	return kv->clean_gen != gen ? 0 : -ENOSPC;
}

/*
 * Caller holds kv->lock. Take up to max (<= KV_CHUNK) dirty blocks no one holds,
 * oldest first, each with a reference; fill io for lower[0]. Returns how many.
 */
static uint32_t dirty_take(struct kv *kv, struct kv_entry **ents, struct kv_tier_io *io,
			   uint32_t max)
{
	uint32_t k = 0;

	for (struct kv_entry *e = kv->ix.lru[KV_TIER_HOST].tail; e && k < max;
	     e = e->lru[KV_TIER_HOST].prev) {
		uint32_t slot = e->slot[KV_TIER_HOST];

		if (e->refs || e->state[KV_TIER_HOST] != KV_COPY_READY ||
		    !(kv->slot_flags[slot] & KV_SLOT_DIRTY))
			continue;
		e->refs++;
		ents[k] = e;
		io[k].h = e->h;
		io[k].check = kv_slot_check(kv, slot);
		io[k].buf = kv_pool_addr(&kv->pool, slot);
		io[k].res = 0;
		k++;
	}
	return k;
}

/*
 * Write the taken blocks to lower[0] with kv->lock dropped (from their
 * slots: no copy; they stay loadable meanwhile), then mark them clean and
 * release them. Called and returns with kv->lock held.
 */
static void dirty_write(struct kv *kv, struct kv_entry **ents, struct kv_tier_io *io, uint32_t k)
{
	kv->flushing += k;
	pthread_mutex_unlock(&kv->lock);
	kv->lower[0].write(kv->lower[0].ctx, io, k); /* failures: counted by the tier */
	pthread_mutex_lock(&kv->lock);
	kv->flushing -= k;
	for (uint32_t j = 0; j < k; j++) {
		/* Written or refused: either way, evicting it now loses nothing more. */
		kv->slot_flags[ents[j]->slot[KV_TIER_HOST]] |= KV_SLOT_CLEAN;
		dirty_sync(kv, ents[j]);
		kv_host_unref(kv, ents[j]);
	}
	kv->flusher_writes += k;
	kv->clean_gen++;
	pthread_cond_broadcast(&kv->clean_cv);
}

/*
 * Caller holds kv->lock. Write-through: send up to KV_CHUNK blocks marked
 * KV_SLOT_WT to the remote tier (kv->lock dropped for the I/O, each block
 * held by a reference), then clear the mark; where the remote tier is also
 * lower[0] the block is clean too. Returns how many were taken.
 */
static uint32_t wt_flush(struct kv *kv)
{
	struct kv_entry *ents[KV_CHUNK];
	struct kv_tier_io io[KV_CHUNK];
	struct kv_tier_ops *t = &kv->lower[kv->wt_tier];
	uint32_t k = 0;

	/* From the MRU end: write-through blocks are the newly stored ones. */
	for (struct kv_entry *e = kv->ix.lru[KV_TIER_HOST].head; e && k < KV_CHUNK;
	     e = e->lru[KV_TIER_HOST].next) {
		uint32_t slot = e->slot[KV_TIER_HOST];

		if (e->state[KV_TIER_HOST] != KV_COPY_READY || !(kv->slot_flags[slot] & KV_SLOT_WT))
			continue;
		e->refs++;
		ents[k] = e;
		io[k] = (struct kv_tier_io){ .h = e->h, .check = kv_slot_check(kv, slot),
					     .buf = kv_pool_addr(&kv->pool, slot) };
		k++;
	}
	if (!k)
		return 0;
	kv->flushing += k;
	pthread_mutex_unlock(&kv->lock);
	t->write(t->ctx, io, k); /* failures: counted by the tier */
	pthread_mutex_lock(&kv->lock);
	kv->flushing -= k;
	for (uint32_t j = 0; j < k; j++) {
		uint8_t *f = &kv->slot_flags[ents[j]->slot[KV_TIER_HOST]];

		if (*f & KV_SLOT_WT) {
			*f &= (uint8_t)~KV_SLOT_WT;
			kv->nwt--;
		}
		if (kv->wt_tier == 0 && !io[j].res) {
			*f |= KV_SLOT_CLEAN;
			dirty_sync(kv, ents[j]);
		}
		kv_host_unref(kv, ents[j]);
	}
	kv->flusher_writes += k;
	kv->clean_gen++;
	pthread_cond_broadcast(&kv->clean_cv);
	return k;
}

static void *flusher_main(void *arg)
{
	struct kv *kv = arg;
	struct kv_entry *ents[KV_CHUNK];
	struct kv_tier_io io[KV_CHUNK];

	pthread_mutex_lock(&kv->lock);
	while (!kv->flush_stop) {
		struct timespec tick = kv_deadline_after(100 * 1000000ll);
		uint32_t k;

		/* Sleep until there is work: above the high watermark, a stalled store, a dirty tail. */
		pthread_cond_timedwait(&kv->flush_cv, &kv->lock, &tick);
		while (kv->nwt && !kv->flush_stop && wt_flush(kv))
			;
		if (kv->ndirty <= kv->dirty_hi && !kv->nstalled && !kv_host_tail_dirty(kv))
			continue;
		/* Then down to the low watermark (and while a store waits or the tail is dirty). */
		while (!kv->flush_stop && (kv->ndirty > kv->dirty_lo || kv->nstalled ||
					   kv_host_tail_dirty(kv))) {
			uint32_t max = KV_CHUNK;

			/* Above the low watermark only: write what brings it there. */
			if (!kv->nstalled && !kv_host_tail_dirty(kv) && kv->ndirty - kv->dirty_lo < max)
				max = (uint32_t)(kv->ndirty - kv->dirty_lo);
			k = dirty_take(kv, ents, io, max);
			if (!k)
				break; /* every dirty block is held by a reader: wait a tick */
			dirty_write(kv, ents, io, k);
		}
		if (kv->nstalled) {
			/* Nothing left to write for it: let the stalled store look again. */
			kv->clean_gen++;
			pthread_cond_broadcast(&kv->clean_cv);
		}
	}
	pthread_mutex_unlock(&kv->lock);
	return NULL;
}

bool kv_host_tail_dirty(const struct kv *kv)
{
	uint32_t seen = 0;

	for (struct kv_entry *e = kv->ix.lru[KV_TIER_HOST].tail; e && seen < KV_CHUNK;
	     e = e->lru[KV_TIER_HOST].prev) {
		if (e->state[KV_TIER_HOST] != KV_COPY_READY)
			continue;
		if (kv->slot_flags[e->slot[KV_TIER_HOST]] & KV_SLOT_DIRTY)
			return kv->pool.nfree < kv->evict_soon;
		seen++;
	}
	return false;
}

int kv_host_flusher_start(struct kv *kv)
{
	int ret;

	kv->dirty_hi = kv->pool.nslots / 2;
	kv->dirty_lo = kv->pool.nslots / 4;
	/* Eviction is near when fewer slots than this are free: an eighth, at most a chunk. */
	kv->evict_soon = kv->pool.nslots / 8 < KV_CHUNK ? kv->pool.nslots / 8 : KV_CHUNK;
	kv->flusher_on = false;
	if (!kv->nlower || (kv->cfg.admit == KV_ADMIT_NONE && kv->wt_tier < 0))
		return 0; /* nothing is ever dirty or written through */
	ret = -pthread_create(&kv->flusher, NULL, flusher_main, kv);
	kv->flusher_on = !ret;
	return ret;
}

void kv_host_flusher_stop(struct kv *kv)
{
	pthread_mutex_lock(&kv->lock);
	kv->flush_stop = true;
	pthread_cond_broadcast(&kv->flush_cv);
	pthread_cond_broadcast(&kv->clean_cv);
	pthread_mutex_unlock(&kv->lock);
	if (kv->flusher_on)
		pthread_join(kv->flusher, NULL);
	kv->flusher_on = false;
}

void kv_host_flush(struct kv *kv)
{
	struct kv_entry *ents[KV_CHUNK];
	struct kv_tier_io io[KV_CHUNK];
	uint32_t k;

	if (!kv->nlower)
		return;
	pthread_mutex_lock(&kv->lock);
	while (kv->wt_tier >= 0 && kv->nwt && wt_flush(kv))
		;
	while ((k = dirty_take(kv, ents, io, KV_CHUNK)))
		dirty_write(kv, ents, io, k);
	pthread_mutex_unlock(&kv->lock);
}
