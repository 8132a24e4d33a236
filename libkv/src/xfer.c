// SPDX-License-Identifier: MIT
/*
 * xfer.c - how a store or a load runs on a worker: in chunks of KV_CHUNK
 * blocks, each chunk decided under kv->lock (reserve slots / take references),
 * copied without it (pack + checksum / verify + unpack), and published under
 * it again. References keep a block from being evicted while it is read.
 *
 * Lower tiers (disk, remote: tier.h) are called without kv->lock, with host
 * slots as the only buffers. A load falls through host -> lower[0] ->
 * lower[1]...: a block found below is read into a fresh host slot (its entry
 * PENDING meanwhile), verified by the tier, published READY and CLEAN (a
 * lower tier has it), then unpacked. Before a store or a promotion takes
 * slots, host_writeback() writes the admitted dirty blocks at the LRU tail to
 * lower[0], so eviction rarely has to drop a block nobody else holds.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "internal.h"

#define PENDING_WAIT_US 50       /* poll interval for a block another worker is filling */
#define PENDING_WAIT_MAX 100000  /* ~5 s, then it counts as a miss */

static void host_copy_drop(struct kv *kv, struct kv_entry *e)
{
	kv_lru_remove(&kv->ix, KV_TIER_HOST, e);
	kv_pool_put(&kv->pool, e->slot[KV_TIER_HOST]);
	e->slot[KV_TIER_HOST] = KV_SLOT_NONE;
	e->state[KV_TIER_HOST] = KV_COPY_EMPTY;
	if (kv_entry_empty(e) && !e->refs)
		kv_index_remove(&kv->ix, e);
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

uint32_t kv_host_slot_get(struct kv *kv)
{
	uint32_t slot = kv_pool_get(&kv->pool);
	struct kv_entry *v;

	if (slot == KV_SLOT_NONE) {
		v = kv_lru_victim(&kv->ix, KV_TIER_HOST);
		if (!v)
			return KV_SLOT_NONE;
		kv->st.tier[KV_TIER_HOST].evictions++;
		kv->st.tier[KV_TIER_HOST].blocks--;
		host_copy_drop(kv, v);
		slot = kv_pool_get(&kv->pool);
	}
	if (slot != KV_SLOT_NONE) {
		kv->slot_uses[slot] = 0;
		kv->slot_flags[slot] = 0;
	}
	return slot;
}

/* Caller holds kv->lock. */
static void slot_used(struct kv *kv, uint32_t slot)
{
	if (kv->slot_uses[slot] < UINT8_MAX)
		kv->slot_uses[slot]++;
}

/* Caller holds kv->lock. Should this dirty host block go down when evicted? */
static bool admit(const struct kv *kv, uint32_t slot)
{
	switch (kv->cfg.admit) {
	case KV_ADMIT_ALL:
		return true;
	case KV_ADMIT_NONE:
		return false;
	default:
		return kv->slot_uses[slot] >= 2;
	}
}

/*
 * Make room for `need` new host blocks without losing admitted ones: walk
 * the LRU tail as eviction would, and write the dirty admitted victims to
 * lower[0] (from their slots, no copy; they stay loadable meanwhile, held by
 * a reference). Called without kv->lock; sleeps only in the tier's I/O.
 */
static void host_writeback(struct kv *kv, uint32_t need)
{
	struct kv_entry *ents[KV_CHUNK];
	struct kv_tier_io io[KV_CHUNK];
	uint32_t k = 0, avail;

	if (!kv->nlower || kv->cfg.admit == KV_ADMIT_NONE)
		return;
	pthread_mutex_lock(&kv->lock);
	avail = kv->pool.nfree;
	for (struct kv_entry *e = kv->ix.lru[KV_TIER_HOST].tail; e && avail < need && k < KV_CHUNK;
	     e = e->lru[KV_TIER_HOST].prev) {
		uint32_t slot = e->slot[KV_TIER_HOST];

		if (e->refs || e->state[KV_TIER_HOST] != KV_COPY_READY)
			continue;
		avail++;
		if ((kv->slot_flags[slot] & KV_SLOT_CLEAN) || !admit(kv, slot))
			continue;
		e->refs++;
		ents[k] = e;
		io[k].h = e->h;
		io[k].csum = e->csum;
		io[k].buf = kv_pool_addr(&kv->pool, slot);
		io[k].res = 0;
		k++;
	}
	pthread_mutex_unlock(&kv->lock);
	if (!k)
		return;

	kv->lower[0].write(kv->lower[0].ctx, io, k); /* failures: counted by the tier */

	pthread_mutex_lock(&kv->lock);
	for (uint32_t j = 0; j < k; j++) {
		/* Written or refused: either way, evicting it now loses nothing more. */
		kv->slot_flags[ents[j]->slot[KV_TIER_HOST]] |= KV_SLOT_CLEAN;
		entry_unref(kv, ents[j]);
	}
	pthread_mutex_unlock(&kv->lock);
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

		host_writeback(kv, m);
		pthread_mutex_lock(&kv->lock);
		for (uint32_t i = 0; i < m; i++) {
			struct kv_entry *e = kv_index_find(&kv->ix, r->h[start + i]);
			uint32_t slot;

			if (e && (e->state[KV_TIER_HOST] == KV_COPY_READY ||
				  e->state[KV_TIER_HOST] == KV_COPY_PENDING)) {
				if (e->state[KV_TIER_HOST] == KV_COPY_READY)
					slot_used(kv, e->slot[KV_TIER_HOST]);
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
			slot_used(kv, slot);
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

/*
 * Read the blocks ents[0..k) marked PROMOTE from the lower tiers that hold
 * them (lower[which[j]]) into their host slots. Sets res[j]. Without kv->lock.
 */
static void promote_read(struct kv *kv, struct kv_entry *const *ents, const uint8_t *kind,
			 const uint8_t *which, void *const *dst, uint64_t *csum, int *res,
			 uint32_t k)
{
	for (unsigned t = 0; t < kv->nlower; t++) {
		struct kv_tier_io io[KV_CHUNK];
		uint32_t map[KV_CHUNK], m = 0;

		for (uint32_t j = 0; j < k; j++)
			if (kind[j] && which[j] == t) {
				io[m].h = ents[j]->h;
				io[m].csum = 0;
				io[m].buf = dst[j];
				io[m].res = -EIO;
				map[m++] = j;
			}
		if (!m)
			continue;
		kv->lower[t].read(kv->lower[t].ctx, io, m);
		for (uint32_t i = 0; i < m; i++) {
			res[map[i]] = io[i].res;
			csum[map[i]] = io[i].csum;
		}
	}
}

/*
 * A load (unpack into the engine) or a prefetch (stop in host memory). Each
 * chunk: find which blocks are below (lower tiers' lookup, no kv->lock),
 * write back room for them, then under kv->lock reference host copies and
 * reserve slots for promotions; without it read the promotions, verify host
 * copies if asked, unpack; publish under the lock.
 */
static void run_load(struct kv *kv, struct kv_req *r, struct kv_completion *c, bool unpack)
{
	struct kv_tier_stats *ts = &kv->st.tier[KV_TIER_HOST];
	bool verify = kv->cfg.flags & KV_F_VERIFY_HOST;
	struct kv_entry *ents[KV_CHUNK];
	void *src[KV_CHUNK];
	uint64_t csum[KV_CHUNK];
	int res[KV_CHUNK];
	uint8_t kind[KV_CHUNK], which[KV_CHUNK], below[KV_CHUNK];
	uint32_t done = 0, waits = 0;
	int err = 0;
	/*
	 * A prefetch keeps a reference on each block it delivered until its
	 * completion is posted (kv_xfer_release), so its later chunks never
	 * evict its own head: when the pool holds nothing else to evict, it
	 * stops with -ENOSPC instead.
	 */
	struct kv_entry **held = unpack ? NULL : malloc((size_t)r->n * sizeof(*held));

	if (!unpack && !held)
		err = -ENOMEM;
	r->held = held;
	r->nheld = 0;
	for (uint32_t start = 0; start < r->n && !err;) {
		uint32_t m = r->n - start < KV_CHUNK ? r->n - start : KV_CHUNK;
		uint32_t k = 0, good, npromote = 0;
		bool wait = false;
		int rc = 0;

		/* Which of the chunk the lower tiers hold (best first). */
		memset(below, 0xff, m);
		for (unsigned t = kv->nlower; t-- > 0;) {
			uint8_t present[KV_CHUNK];

			if (kv->lower[t].lookup(kv->lower[t].ctx, r->h + start, m, present))
				continue;
			for (uint32_t i = 0; i < m; i++)
				if (present[i])
					below[i] = (uint8_t)t;
		}
		for (uint32_t i = 0; i < m; i++)
			npromote += below[i] != 0xff;
		if (npromote)
			host_writeback(kv, npromote);

		pthread_mutex_lock(&kv->lock);
		for (uint32_t i = 0; i < m; i++) {
			struct kv_entry *e = kv_index_find(&kv->ix, r->h[start + i]);
			uint8_t st = e ? e->state[KV_TIER_HOST] : KV_COPY_EMPTY;
			uint32_t slot;

			if (st == KV_COPY_READY) {
				e->refs++;
				kv_lru_touch(&kv->ix, KV_TIER_HOST, e);
				slot_used(kv, e->slot[KV_TIER_HOST]);
				ents[k] = e;
				kind[k] = 0;
				src[k] = kv_pool_addr(&kv->pool, e->slot[KV_TIER_HOST]);
				k++;
				continue;
			}
			if (st == KV_COPY_PENDING && !k && waits < PENDING_WAIT_MAX) {
				wait = true; /* another worker is filling it: poll, lock dropped */
				break;
			}
			if (st == KV_COPY_PENDING) {
				if (waits >= PENDING_WAIT_MAX) {
					ts->misses++;
					err = -ENOENT;
				}
				break; /* ends the chunk; the next one starts here */
			}
			ts->misses++;
			if (st == KV_COPY_BAD || below[i] == 0xff) {
				err = -ENOENT;
				break;
			}
			slot = kv_host_slot_get(kv);
			if (slot == KV_SLOT_NONE) {
				if (!k) {
					err = -ENOSPC;
					ts->failures++;
				}
				break;
			}
			if (!e && !(e = kv_index_insert(&kv->ix, r->h[start + i]))) {
				kv_pool_put(&kv->pool, slot);
				if (!k) {
					err = -ENOSPC;
					ts->failures++;
				}
				break;
			}
			e->slot[KV_TIER_HOST] = slot;
			e->state[KV_TIER_HOST] = KV_COPY_PENDING;
			e->refs++;
			ents[k] = e;
			kind[k] = 1;
			which[k] = below[i];
			src[k] = kv_pool_addr(&kv->pool, slot);
			k++;
		}
		pthread_mutex_unlock(&kv->lock);
		if (wait) {
			waits++;
			usleep(PENDING_WAIT_US);
			continue;
		}
		waits = 0;

		/* Promotions: read and verified by their tier. */
		for (uint32_t j = 0; j < k; j++)
			res[j] = 0;
		promote_read(kv, ents, kind, which, src, csum, res, k);
		good = k;
		for (uint32_t j = 0; j < k; j++)
			if (res[j]) {
				good = j;
				err = res[j]; /* -ENOENT, -EBADMSG, -EIO, ... */
				break;
			}
		for (uint32_t j = 0; verify && j < good; j++)
			if (!kind[j] && kv_csum64(src[j], kv->block_bytes) != ents[j]->csum) {
				good = j;
				err = -EBADMSG;
				break;
			}

		/* Publish promotions before the unpack so other loads can share them. */
		pthread_mutex_lock(&kv->lock);
		for (uint32_t j = 0; j < k; j++) {
			struct kv_entry *e = ents[j];

			if (!kind[j])
				continue;
			if (res[j]) {
				kv_pool_put(&kv->pool, e->slot[KV_TIER_HOST]);
				e->slot[KV_TIER_HOST] = KV_SLOT_NONE;
				e->state[KV_TIER_HOST] = KV_COPY_EMPTY;
				continue;
			}
			e->csum = csum[j];
			e->state[KV_TIER_HOST] = KV_COPY_READY;
			kv_lru_touch(&kv->ix, KV_TIER_HOST, e);
			kv->slot_flags[e->slot[KV_TIER_HOST]] |= KV_SLOT_CLEAN;
			slot_used(kv, e->slot[KV_TIER_HOST]);
			ts->blocks++;
			ts->bytes_in += kv->block_bytes;
		}
		if (good < k && !kind[good]) {
			/* Rejected host copy: invisible from now on, freed with its last reader. */
			ts->verify_failures++;
			ts->blocks--;
			kv_lru_remove(&kv->ix, KV_TIER_HOST, ents[good]);
			ents[good]->state[KV_TIER_HOST] = KV_COPY_BAD;
		}
		pthread_mutex_unlock(&kv->lock);

		if (good && unpack)
			rc = kv->be.unpack(kv->be.ctx, src, r->blocks + start, good);

		pthread_mutex_lock(&kv->lock);
		for (uint32_t j = 0; j < k; j++) {
			if (held && j < good)
				held[r->nheld++] = ents[j]; /* released once posted */
			else
				entry_unref(kv, ents[j]);
		}
		if (rc) {
			ts->failures++;
		} else {
			uint32_t hits = 0;

			for (uint32_t j = 0; j < good; j++)
				hits += !kind[j];
			ts->hits += hits;
			if (unpack)
				ts->bytes_out += (uint64_t)good * kv->block_bytes;
		}
		pthread_mutex_unlock(&kv->lock);

		if (rc) {
			err = rc;
			break;
		}
		done += good;
		start += good;
		if (!k && !err)
			err = -ENOENT; /* nothing taken and no reason: never spin */
	}
	c->res = (int32_t)done;
	c->err = err;
}

void kv_host_flush(struct kv *kv)
{
	if (!kv->nlower || kv->cfg.admit == KV_ADMIT_NONE)
		return;
	for (;;) {
		struct kv_entry *ents[KV_CHUNK];
		struct kv_tier_io io[KV_CHUNK];
		uint32_t k = 0;

		pthread_mutex_lock(&kv->lock);
		for (struct kv_entry *e = kv->ix.lru[KV_TIER_HOST].tail; e && k < KV_CHUNK;
		     e = e->lru[KV_TIER_HOST].prev) {
			uint32_t slot = e->slot[KV_TIER_HOST];

			if (e->state[KV_TIER_HOST] != KV_COPY_READY ||
			    (kv->slot_flags[slot] & KV_SLOT_CLEAN) || !admit(kv, slot))
				continue;
			e->refs++;
			kv->slot_flags[slot] |= KV_SLOT_CLEAN;
			ents[k] = e;
			io[k].h = e->h;
			io[k].csum = e->csum;
			io[k].buf = kv_pool_addr(&kv->pool, slot);
			io[k].res = 0;
			k++;
		}
		pthread_mutex_unlock(&kv->lock);
		if (!k)
			return;
		kv->lower[0].write(kv->lower[0].ctx, io, k);
		pthread_mutex_lock(&kv->lock);
		for (uint32_t j = 0; j < k; j++)
			entry_unref(kv, ents[j]);
		pthread_mutex_unlock(&kv->lock);
	}
}

/* Caller holds kv->lock. */
void kv_xfer_release(struct kv *kv, struct kv_req *r)
{
	if (!r->held)
		return;
	for (uint32_t j = 0; j < r->nheld; j++)
		entry_unref(kv, r->held[j]);
	free(r->held);
	r->held = NULL;
	r->nheld = 0;
}

void kv_xfer_run(struct kv *kv, struct kv_req *r, struct kv_completion *c)
{
	c->user_data = r->user_data;
	c->n = r->n;
	c->flags = r->op;
	if (r->op == KV_COMP_STORE)
		run_store(kv, r, c);
	else
		run_load(kv, r, c, r->op == KV_COMP_LOAD);
	if (r->fence) {
		kv->be.fence_drop(kv->be.ctx, r->fence);
		r->fence = NULL;
	}
	/* A request that did nothing because of an error reports the error itself. */
	if (c->res == 0 && c->err && c->err != -ENOENT && c->err != -EBADMSG)
		c->res = c->err;
}
