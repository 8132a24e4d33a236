/* SPDX-License-Identifier: MIT */
/* internal.h - struct kv and what its parts share. Not installed. */
#ifndef KV_INTERNAL_H
#define KV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "backend.h"
#include "index.h"
#include "kv.h"
#include "pool.h"
#include "tier.h"

#include "export.h"

/* Blocks handled per step of a request: bounds the stack arrays and the lock hold. */
#define KV_CHUNK 64

/* Tiers below the host pool, best first (disk, then remote). */
#define KV_MAX_LOWER 4

/* Per host slot, beside the index (kv->lock): what eviction needs to know. */
#define KV_SLOT_CLEAN 0x1       /* the first lower tier has (or refused) a copy */

struct kv_req {
	struct kv_req *next;
	uint32_t op;            /* KV_COMP_STORE, KV_COMP_LOAD or KV_COMP_PREFETCH */
	uint32_t n;
	uint64_t user_data;
	void *fence;            /* backend fence (stores), consumed or dropped */
	kv_hash *h;             /* n hashes, stored after the struct */
	uint32_t *blocks;       /* n engine block ids (NULL for a prefetch) */
	struct kv_entry **held; /* prefetch: entries it delivered, referenced until posted */
	uint32_t nheld;
};

struct kv {
	struct kv_config cfg;
	size_t block_bytes;

	/* lock: index, pool, stats. Never held across a copy or a wait. */
	pthread_mutex_t lock;
	struct kv_index ix;
	struct kv_pool pool;
	struct kv_stats st;
	uint8_t *slot_uses;     /* per host slot: stores + loads while resident (saturating) */
	uint8_t *slot_flags;    /* per host slot: KV_SLOT_CLEAN */

	/*
	 * Lower tiers, called by workers without kv->lock (tier.h). Set at
	 * kv_open (kv_lower_add) and fixed afterwards; closed after the workers.
	 */
	struct kv_tier_ops lower[KV_MAX_LOWER];
	unsigned nlower;

	/* Engine cache; changed by kv_attach only while nothing is in flight. */
	bool attached;
	void **layers;
	struct kv_pack_layout pl;
	struct kv_backend be;

	/* Submission queue, drained by the workers. */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct kv_req *qhead, *qtail;
	bool stopping;
	pthread_t *workers;
	unsigned nworkers;
	atomic_uint inflight;   /* submitted and not yet reaped */

	/* Completion ring: queue_depth entries, never overflows (inflight bound). */
	pthread_mutex_t clock;
	pthread_cond_t ccond;
	struct kv_completion *ring;
	unsigned rhead, rcount, rsize;
	int efd;                /* readable while rcount > 0 */
};

/* Run one request to completion on a worker thread; fills c. */
void kv_xfer_run(struct kv *kv, struct kv_req *r, struct kv_completion *c);

/*
 * Drop what r still holds after kv_xfer_run (the blocks a prefetch reported
 * resident). Caller holds kv->lock and keeps it until r's completion is
 * posted, so they stay resident until it is visible.
 */
void kv_xfer_release(struct kv *kv, struct kv_req *r);

/*
 * Append a lower tier (kv_open only, before the workers start): loads fall
 * through to it in order, host evictions are written back to lower[0]. Takes
 * ownership (t->close at kv_close). Returns 0 or -ENOSPC (KV_MAX_LOWER).
 */
int kv_lower_add(struct kv *kv, const struct kv_tier_ops *t);

/*
 * Write every admitted host block that no lower tier has yet to lower[0]
 * (kv_close, after the workers stopped: a restart finds them on disk).
 */
void kv_host_flush(struct kv *kv);

/* Free a host slot for a new block, evicting the LRU block if need be. Caller holds kv->lock. */
uint32_t kv_host_slot_get(struct kv *kv);

#endif /* KV_INTERNAL_H */
