/* SPDX-License-Identifier: MIT */
/* internal.h - struct kv and what its parts share. Not installed. */
#ifndef KV_INTERNAL_H
#define KV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "backend.h"
#include "check.h"
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
#define KV_SLOT_DIRTY 0x2       /* counted in kv->ndirty (host.c's dirty_sync) */
#define KV_SLOT_WT 0x4          /* write-through: the remote tier still has to get it */

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
	/* Broadcast (under lock) whenever a PENDING host copy becomes READY or goes. */
	pthread_cond_t pend_cv;
	struct kv_index ix;
	struct kv_pool pool;
	struct kv_stats st;
	uint8_t *slot_uses;     /* per host slot: stores + loads while resident (saturating) */
	uint8_t *slot_flags;    /* per host slot: KV_SLOT_CLEAN, KV_SLOT_DIRTY */
	/*
	 * Per host slot: the block's check values (check.h), shape.layers of
	 * them, written by the worker that fills the slot (PENDING) and read
	 * by whoever holds a reference to the READY block.
	 */
	uint64_t *slot_check;
	struct kv_check_shape shape;

	/*
	 * Lower tiers, called by workers without kv->lock (tier.h). Set at
	 * kv_open (kv_lower_add) and fixed afterwards; closed after the workers.
	 */
	struct kv_tier_ops lower[KV_MAX_LOWER];
	unsigned nlower;
	/* Per lower tier: measured ns per block read (promote_read); orders the lookups. */
	_Atomic uint64_t lower_ns[KV_MAX_LOWER];

	/* The flusher (host.c); its counters and conditions are under kv->lock. */
	pthread_t flusher;
	bool flusher_on, flush_stop;
	pthread_cond_t flush_cv;   /* wakes the flusher */
	pthread_cond_t clean_cv;   /* wakes stalled stores: clean_gen moved */
	uint64_t clean_gen;        /* bumped after each flusher batch */
	uint64_t ndirty;           /* dirty host blocks (see host.c) */
	uint64_t dirty_hi, dirty_lo; /* watermarks: half and a quarter of the pool */
	uint64_t evict_soon;       /* free slots below which a dirty LRU tail is written early */
	uint64_t flusher_writes;   /* blocks the flusher wrote to lower[0] */
	uint64_t store_stalls;     /* stores or promotions that waited for the flusher */
	unsigned nstalled;         /* waiting now */
	uint32_t flushing;         /* blocks the flusher holds while it writes them */
	int wt_tier;               /* KV_F_WRITE_THROUGH: kv->lower index of the remote tier; -1 */
	uint64_t nwt;              /* blocks with KV_SLOT_WT */

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

/* CLOCK_MONOTONIC now + ns: the deadline of a timed wait on kv's condition variables. */
static inline struct timespec kv_deadline_after(long long ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns += ts.tv_nsec;
	ts.tv_sec += ns / 1000000000ll;
	ts.tv_nsec = ns % 1000000000ll;
	return ts;
}

/* The check values of host slot slot. */
static inline uint64_t *kv_slot_check(const struct kv *kv, uint32_t slot)
{
	return kv->slot_check + (size_t)slot * kv->shape.layers;
}

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
 * Where the blocks of h[0..m) that host memory lacks are: from the first
 * entry of tier[] that is KV_TIER_NONE on, ask the lower tiers fastest
 * first (by measured read time per block; a tier not read yet comes first,
 * so each is tried; ties in kv->lower order: disk, remote), each only about
 * the blocks no faster tier holds, and set tier[i] to the
 * level found (which[i], if which is not NULL, to that tier's index in
 * kv->lower). Entries already set are left alone: a host hit costs no
 * message and no disk read. Called without kv->lock.
 */
void kv_lower_locate(struct kv *kv, const kv_hash *h, uint32_t m, uint8_t *tier,
		     uint8_t *which);

/*
 * For kvctl (linked statically; not exported from libkv.so): how many of
 * the configured peers (*npeers) refused this client for good.
 */
unsigned kv_peers_refused(struct kv *kv, unsigned *npeers);

/* ---------------------------------------------------------------- host tier (host.c) */
/* Every function below expects kv->lock held unless it says otherwise. */

/*
 * A free host slot for a new block: a free one, else the least recently used
 * READY block no one holds that is not dirty is evicted. KV_SLOT_NONE when
 * there is none; *dirty_full then says whether that is because the oldest
 * blocks are all dirty (the caller may kv_host_stall() and try again).
 */
uint32_t kv_host_slot_get(struct kv *kv, bool *dirty_full);

/* Wait (kv->lock released meanwhile) until the flusher has cleaned something:
 * counted in store_stalls. Returns 0, or -ENOSPC after 30 s or at close. */
int kv_host_stall(struct kv *kv);

/* e's host copy: counted use (admission), published READY (clean: a lower
 * tier has it), marked BAD (invisible, freed with its last reader), dropped. */
void kv_host_used(struct kv *kv, struct kv_entry *e);
void kv_host_ready(struct kv *kv, struct kv_entry *e, bool clean);
void kv_host_bad(struct kv *kv, struct kv_entry *e);
void kv_host_drop(struct kv *kv, struct kv_entry *e);

/* Drop one reference; a copy marked bad while referenced goes with the last one. */
void kv_host_unref(struct kv *kv, struct kv_entry *e);

/* Whether dirty blocks sit at the LRU tail while free slots run short. */
bool kv_host_tail_dirty(const struct kv *kv);

/* The flusher thread (kv_open, once the lower tiers are added; kv_close).
 * Without kv->lock. start returns 0 or -errno. */
int kv_host_flusher_start(struct kv *kv);
void kv_host_flusher_stop(struct kv *kv);

/*
 * Write every dirty host block to lower[0] (kv_close, after the workers and
 * the flusher stopped: a restart finds them on disk). Without kv->lock.
 */
void kv_host_flush(struct kv *kv);

#endif /* KV_INTERNAL_H */
