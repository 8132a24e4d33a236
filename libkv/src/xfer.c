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
 * lower tier has it), then unpacked. Slots come from the host tier (host.c),
 * whose flusher writes dirty blocks down off the request path; a store or a
 * promotion waits for it only when the pool is full of dirty blocks.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define PENDING_WAIT_NS (5 * 1000000000ll) /* a block another worker fills: then a miss */

static void run_store(struct kv *kv, struct kv_req *r, struct kv_completion *c)
{
	struct kv_tier_stats *ts = &kv->st.tier[KV_TIER_HOST];
	struct kv_entry *ents[KV_CHUNK];
	uint32_t eblocks[KV_CHUNK];
	kv_hash names[KV_CHUNK];
	uint64_t *check[KV_CHUNK];
	void *dst[KV_CHUNK];
	uint32_t done = 0;
	int err = 0;

	for (uint32_t start = 0; start < r->n && !err; start += KV_CHUNK) {
		uint32_t m = r->n - start < KV_CHUNK ? r->n - start : KV_CHUNK;
		uint32_t k = 0, ok = m, dedup = 0;
		bool dirty_full;
		int rc = 0;

		pthread_mutex_lock(&kv->lock);
		for (uint32_t i = 0; i < m; i++) {
			struct kv_entry *e = kv_index_find(&kv->ix, r->h[start + i]);
			uint32_t slot;

			if (e && (e->state[KV_TIER_HOST] == KV_COPY_READY ||
				  e->state[KV_TIER_HOST] == KV_COPY_PENDING)) {
				if (e->state[KV_TIER_HOST] == KV_COPY_READY)
					kv_host_used(kv, e);
				dedup++;
				continue;
			}
			if (e && e->state[KV_TIER_HOST] == KV_COPY_BAD) {
				err = -EAGAIN; /* a rejected copy is still being read */
				ok = i;
				break;
			}
			slot = kv_host_slot_get(kv, &dirty_full);
			if (slot == KV_SLOT_NONE && dirty_full && !kv_host_stall(kv)) {
				i--; /* the flusher cleaned a block: look at this one again */
				continue;
			}
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
			kv_host_used(kv, e);
			ents[k] = e;
			eblocks[k] = r->blocks[start + i];
			names[k] = e->h;
			check[k] = kv_slot_check(kv, slot);
			dst[k] = kv_pool_addr(&kv->pool, slot);
			k++;
		}
		kv->st.store_dedup += dedup;
		pthread_mutex_unlock(&kv->lock);

		/* The check values are made here, once, and travel with every copy. */
		if (k && kv->be.pack_check) {
			rc = kv->be.pack_check(kv->be.ctx, r->fence, eblocks, dst, names, check, k);
			r->fence = NULL;
		} else if (k) {
			rc = kv->be.pack(kv->be.ctx, r->fence, eblocks, dst, k);
			r->fence = NULL;
			for (uint32_t j = 0; j < k && !rc; j++)
				kv_check_block(&kv->shape, names[j], dst[j], check[j]);
		}

		pthread_mutex_lock(&kv->lock);
		for (uint32_t j = 0; j < k; j++) {
			struct kv_entry *e = ents[j];

			if (rc) {
				kv_host_drop(kv, e);
			} else {
				kv_host_ready(kv, e, false);
				ts->blocks++;
				ts->bytes_in += kv->block_bytes;
			}
			kv_host_unref(kv, e);
		}
		if (k)
			pthread_cond_broadcast(&kv->pend_cv);
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
			 const uint8_t *which, void *const *dst, uint64_t *const *check, int *res,
			 uint32_t k)
{
	for (unsigned t = 0; t < kv->nlower; t++) {
		struct kv_tier_io io[KV_CHUNK];
		uint32_t map[KV_CHUNK], m = 0;

		for (uint32_t j = 0; j < k; j++)
			if (kind[j] && which[j] == t) {
				io[m].h = ents[j]->h;
				io[m].check = check[j];
				io[m].buf = dst[j];
				io[m].res = -EIO;
				map[m++] = j;
			}
		if (!m)
			continue;
		{
			struct timespec t0, t1;
			uint64_t per, old;
			uint32_t got = 0;

			clock_gettime(CLOCK_MONOTONIC, &t0);
			kv->lower[t].read(kv->lower[t].ctx, io, m);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			for (uint32_t i = 0; i < m; i++)
				got += !io[i].res;
			/* Per block read, an average over the last ~8 batches (kv_lower_locate's order). */
			per = ((uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
			       (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec) / (got ? got : 1);
			old = atomic_load_explicit(&kv->lower_ns[t], memory_order_relaxed);
			atomic_store_explicit(&kv->lower_ns[t], old ? old - old / 8 + per / 8 : per,
					      memory_order_relaxed);
		}
		for (uint32_t i = 0; i < m; i++)
			res[map[i]] = io[i].res;
	}
}

/* kv->lower indexes, fastest first by measured read time. */
static void lower_order(struct kv *kv, unsigned *order)
{
	uint64_t ns[KV_MAX_LOWER];

	for (unsigned t = 0; t < kv->nlower; t++) {
		order[t] = t;
		ns[t] = atomic_load_explicit(&kv->lower_ns[t], memory_order_relaxed);
	}
	/* Stable insertion sort; a tier not measured yet (0) goes first, so each gets tried. */
	for (unsigned i = 1; i < kv->nlower; i++)
		for (unsigned j = i; j > 0 && ns[order[j]] < ns[order[j - 1]]; j--) {
			unsigned x = order[j];

			order[j] = order[j - 1];
			order[j - 1] = x;
		}
}

void kv_lower_locate(struct kv *kv, const kv_hash *h, uint32_t m, uint8_t *tier,
		     uint8_t *which)
{
	uint32_t first = 0;
	unsigned order[KV_MAX_LOWER];

	while (first < m && tier[first] != KV_TIER_NONE)
		first++;
	lower_order(kv, order);
	for (unsigned o = 0; o < kv->nlower && first < m; o++) {
		unsigned t = order[o];
		kv_hash ask[KV_CHUNK];
		uint32_t map[KV_CHUNK], q = 0;
		uint8_t present[KV_CHUNK];

		for (uint32_t i = first; i < m; i++)
			if (tier[i] == KV_TIER_NONE) {
				ask[q] = h[i];
				map[q++] = i;
			}
		if (!q)
			break;
		if (kv->lower[t].lookup(kv->lower[t].ctx, ask, q, present))
			continue; /* a tier that cannot answer holds nothing for now */
		for (uint32_t j = 0; j < q; j++)
			if (present[j]) {
				tier[map[j]] = (uint8_t)kv->lower[t].level;
				if (which)
					which[map[j]] = (uint8_t)t;
			}
	}
}

/*
 * A load (unpack into the engine) or a prefetch (stop in host memory). Each
 * chunk: see which blocks host memory holds, ask the lower tiers (no
 * kv->lock) only about the others, then under kv->lock reference host
 * copies and reserve slots for promotions; without it read the promotions, verify host
 * copies if asked, unpack; publish under the lock.
 */
static void run_load(struct kv *kv, struct kv_req *r, struct kv_completion *c, bool unpack)
{
	struct kv_tier_stats *ts = &kv->st.tier[KV_TIER_HOST];
	bool verify = kv->cfg.flags & KV_F_VERIFY_HOST;
	struct kv_entry *ents[KV_CHUNK];
	void *src[KV_CHUNK];
	uint64_t *check[KV_CHUNK];
	int res[KV_CHUNK];
	uint8_t kind[KV_CHUNK], which[KV_CHUNK], below[KV_CHUNK], where[KV_CHUNK];
	uint32_t done = 0, reprobe = 0;
	bool waited = false;
	struct timespec wait_until = { 0, 0 };
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
		bool wait = false, dirty_full;
		int rc = 0;

		/*
		 * Host memory first (PENDING copies count: they are waited for);
		 * the lower tiers are asked only about the rest, best first. A
		 * block evicted between here and the lock below is a miss.
		 */
		{
			uint8_t *tier = where; /* each block's tier when the chunk began */

			pthread_mutex_lock(&kv->lock);
			for (uint32_t i = 0; i < m; i++) {
				struct kv_entry *e = kv_index_find(&kv->ix, r->h[start + i]);
				uint8_t st = e ? e->state[KV_TIER_HOST] : KV_COPY_EMPTY;

				tier[i] = st == KV_COPY_READY || st == KV_COPY_PENDING ? KV_TIER_HOST
										 : KV_TIER_NONE;
			}
			pthread_mutex_unlock(&kv->lock);
			memset(below, 0xff, m);
			kv_lower_locate(kv, r->h + start, m, tier, below);
		}
		for (uint32_t i = 0; i < m; i++)
			npromote += below[i] != 0xff;

		pthread_mutex_lock(&kv->lock);
		for (uint32_t i = 0; i < m; i++) {
			struct kv_entry *e = kv_index_find(&kv->ix, r->h[start + i]);
			uint8_t st = e ? e->state[KV_TIER_HOST] : KV_COPY_EMPTY;
			uint32_t slot;

			if (st == KV_COPY_READY) {
				e->refs++;
				kv_lru_touch(&kv->ix, KV_TIER_HOST, e);
				kv_host_used(kv, e);
				ents[k] = e;
				kind[k] = 0;
				src[k] = kv_pool_addr(&kv->pool, e->slot[KV_TIER_HOST]);
				check[k] = kv_slot_check(kv, e->slot[KV_TIER_HOST]);
				k++;
				continue;
			}
			if (st == KV_COPY_PENDING && !k) {
				/* Another worker is filling it: sleep until it is published, bounded. */
				if (!waited) {
					waited = true;
					wait_until = kv_deadline_after(PENDING_WAIT_NS);
				}
				if (pthread_cond_timedwait(&kv->pend_cv, &kv->lock, &wait_until) ==
				    ETIMEDOUT) {
					ts->misses++;
					err = -ENOENT;
				} else {
					wait = true; /* look at the chunk again */
				}
				break;
			}
			if (st == KV_COPY_PENDING)
				break; /* ends the chunk; the next one starts here */
			if (st == KV_COPY_EMPTY && where[i] == KV_TIER_HOST && reprobe < 3) {
				/*
				 * In host memory when the chunk began, so the tiers below
				 * were not asked: gone since (evicted by another request,
				 * or for this chunk's own promotions). End the chunk here;
				 * the next one asks them.
				 */
				if (!k)
					reprobe++;
				wait = !k;
				break;
			}
			ts->misses++;
			if (st == KV_COPY_BAD || below[i] == 0xff) {
				err = -ENOENT;
				break;
			}
			slot = kv_host_slot_get(kv, &dirty_full);
			if (slot == KV_SLOT_NONE && dirty_full && !kv_host_stall(kv)) {
				i--; /* the flusher cleaned a block: look at this one again */
				continue;
			}
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
			check[k] = kv_slot_check(kv, slot);
			k++;
		}
		pthread_mutex_unlock(&kv->lock);
		if (wait)
			continue;
		waited = false;
		reprobe = 0;

		/* Promotions: read and verified by their tier. */
		for (uint32_t j = 0; j < k; j++)
			res[j] = 0;
		promote_read(kv, ents, kind, which, src, check, res, k);
		good = k;
		for (uint32_t j = 0; j < k; j++)
			if (res[j]) {
				good = j;
				err = res[j]; /* -ENOENT, -EBADMSG, -EIO, ... */
				break;
			}
		for (uint32_t j = 0; verify && j < good; j++)
			if (!kind[j] &&
			    kv_check_verify(&kv->shape, ents[j]->h, src[j], check[j], NULL)) {
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
			kv_host_ready(kv, e, true); /* a lower tier has it: clean */
			kv_host_used(kv, e);
			ts->blocks++;
			ts->bytes_in += kv->block_bytes;
		}
		if (npromote)
			pthread_cond_broadcast(&kv->pend_cv);
		if (good < k && !kind[good]) {
			/* Rejected host copy: invisible from now on, freed with its last reader. */
			ts->verify_failures++;
			ts->blocks--;
			kv_host_bad(kv, ents[good]);
		}
		pthread_mutex_unlock(&kv->lock);

		if (good && unpack)
			rc = kv->be.unpack(kv->be.ctx, src, r->blocks + start, good);

		pthread_mutex_lock(&kv->lock);
		for (uint32_t j = 0; j < k; j++) {
			if (held && j < good)
				held[r->nheld++] = ents[j]; /* released once posted */
			else
				kv_host_unref(kv, ents[j]);
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

/* Caller holds kv->lock. */
void kv_xfer_release(struct kv *kv, struct kv_req *r)
{
	if (!r->held)
		return;
	for (uint32_t j = 0; j < r->nheld; j++)
		kv_host_unref(kv, r->held[j]);
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
