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

#include "export.h"

/* Blocks handled per step of a request: bounds the stack arrays and the lock hold. */
#define KV_CHUNK 64

struct kv_req {
	struct kv_req *next;
	uint32_t op;            /* KV_COMP_STORE or KV_COMP_LOAD */
	uint32_t n;
	uint64_t user_data;
	void *fence;            /* backend fence (stores), consumed or dropped */
	kv_hash *h;             /* n hashes, stored after the struct */
	uint32_t *blocks;       /* n engine block ids */
};

struct kv {
	struct kv_config cfg;
	size_t block_bytes;

	/* lock: index, pool, stats. Never held across a copy or a wait. */
	pthread_mutex_t lock;
	struct kv_index ix;
	struct kv_pool pool;
	struct kv_stats st;

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

/* Free a host slot for a new block, evicting the LRU block if need be. Caller holds kv->lock. */
uint32_t kv_host_slot_get(struct kv *kv);

#endif /* KV_INTERNAL_H */
