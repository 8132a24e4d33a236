// SPDX-License-Identifier: MIT
/*
 * kv.c - the struct kv lifecycle, submission and completion delivery.
 *
 * Requests are copied into a bounded FIFO (queue_depth in flight, counting
 * those whose completion has not been reaped, so the completion ring can
 * never overflow) and run by a small pool of worker threads (xfer.c). Each
 * posts exactly one completion into the ring; an eventfd is readable while
 * the ring is non-empty.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "disk.h"
#include "remote.h"
#include "internal.h"

#define KV_DEFAULT_DEPTH 256
#define KV_MAX_DEPTH 65536
#define KV_MAX_WORKERS 8
#define KV_MAX_REPLICAS 8
#define KV_MAX_REMOTE_TIMEOUT_MS 600000

static void *worker_main(void *arg)
{
	struct kv *kv = arg;

	for (;;) {
		struct kv_completion c = { 0 };
		struct kv_req *r;
		uint64_t one = 1;
		bool held;

		pthread_mutex_lock(&kv->qlock);
		while (!kv->qhead && !kv->stopping)
			pthread_cond_wait(&kv->qcond, &kv->qlock);
		r = kv->qhead;
		if (r) {
			kv->qhead = r->next;
			if (!kv->qhead)
				kv->qtail = NULL;
		}
		pthread_mutex_unlock(&kv->qlock);
		if (!r)
			break; /* stopping and drained */

		kv_xfer_run(kv, r, &c);
		held = r->held != NULL;

		pthread_mutex_lock(&kv->lock);
		if (r->op == KV_COMP_STORE)
			kv->st.stores++;
		else if (r->op == KV_COMP_LOAD)
			kv->st.loads++;
		/*
		 * A prefetch's blocks are let go and its completion posted under
		 * kv->lock (lock order: kv->lock, then kv->clock): nothing can
		 * evict them before the completion is visible, and nothing the
		 * engine submits after seeing it finds them still held.
		 */
		kv_xfer_release(kv, r);
		if (!held)
			pthread_mutex_unlock(&kv->lock);

		pthread_mutex_lock(&kv->clock);
		kv->ring[(kv->rhead + kv->rcount) % kv->rsize] = c;
		kv->rcount++;
		if (write(kv->efd, &one, sizeof(one)) < 0) {
			/* Counter saturation is impossible at these depths. */
		}
		pthread_cond_broadcast(&kv->ccond);
		pthread_mutex_unlock(&kv->clock);
		if (held)
			pthread_mutex_unlock(&kv->lock);
		free(r);
	}
	return NULL;
}

static unsigned default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > KV_MAX_WORKERS ? KV_MAX_WORKERS : (unsigned)n;
}

/* A refused config: one line on stderr (unless KV_F_QUIET) says why. */
static int config_refuse(const struct kv_config *cfg, const char *why)
{
	if (!(cfg->flags & KV_F_QUIET))
		fprintf(stderr, "libkv: kv_open: %s\n", why);
	return -EINVAL;
}

static int config_check(const struct kv_config *cfg)
{
	const uint32_t known = KV_F_REQUIRE_PINNED | KV_F_REQUIRE_KVMEM | KV_F_NO_KVMEM |
			       KV_F_VERIFY_HOST | KV_F_DISK_NO_URING | KV_F_DISK_REFORMAT |
			       KV_F_QUIET | KV_F_REMOTE_NO_RDMA | KV_F_DEMOTE_ALL | KV_F_DEMOTE_NONE |
			       KV_F_WRITE_THROUGH;

	if (!cfg || kv_geometry_check(&cfg->geometry) || !cfg->host_bytes)
		return -EINVAL;
	if (cfg->flags & ~known)
		return -EINVAL;
	if ((cfg->flags & KV_F_REQUIRE_KVMEM) && (cfg->flags & KV_F_NO_KVMEM))
		return -EINVAL;
	if ((cfg->flags & KV_F_DEMOTE_ALL) && (cfg->flags & KV_F_DEMOTE_NONE))
		return -EINVAL;
	if (cfg->queue_depth > KV_MAX_DEPTH || cfg->workers > KV_MAX_WORKERS)
		return -EINVAL;
	if (cfg->disk_path && (!cfg->disk_path[0] || !cfg->disk_bytes))
		return -EINVAL;
	if (cfg->disk_queue_depth > 4096 || cfg->admit > KV_ADMIT_NONE)
		return -EINVAL;
	if (cfg->remote_replicas > KV_MAX_REPLICAS || cfg->remote_timeout_ms < 0 ||
	    cfg->remote_timeout_ms > KV_MAX_REMOTE_TIMEOUT_MS)
		return -EINVAL;
	if (cfg->peers && kv_remote_peers_check(cfg->peers))
		return config_refuse(cfg, "bad peers list (want host:port[,host:port...], "
				     "ports 1-65535, no empty entry)");
	/* Every server refuses a session without a namespace: catch it here, not as "down". */
	if (cfg->peers && !cfg->ns_root.lo && !cfg->ns_root.hi)
		return config_refuse(cfg, "peers need a namespace: set ns_root (kv_hash_root)");
	return 0;
}

int kv_lower_add(struct kv *kv, const struct kv_tier_ops *t)
{
	if (kv->nlower >= KV_MAX_LOWER)
		return -ENOSPC;
	kv->lower[kv->nlower++] = *t;
	return 0;
}

/* Best first: a tier may still hand what it evicts to the next one (the cascade). */
static void lower_close(struct kv *kv)
{
	for (unsigned i = 0; i < kv->nlower; i++)
		kv->lower[i].close(kv->lower[i].ctx);
	kv->nlower = 0;
}

static int disk_open(struct kv *kv, const struct kv_config *cfg)
{
	struct kv_disk_config dc = {
		.path = cfg->disk_path,
		.bytes = cfg->disk_bytes,
		.geometry = cfg->geometry,
		.ns_root = cfg->ns_root,
		.flags = cfg->flags,
		.queue_depth = cfg->disk_queue_depth,
		.batch = cfg->disk_batch,
	};
	struct kv_tier_pool tp = {
		.addr = kv->pool.region.addr,
		.len = (size_t)kv->pool.nslots * kv->pool.slot_bytes,
		.slot_bytes = kv->pool.slot_bytes,
		.block_bytes = kv->block_bytes,
	};
	struct kv_tier_ops t;
	int ret = kv_disk_tier_open(&dc, &tp, &t);

	if (ret)
		return ret;
	ret = kv_lower_add(kv, &t);
	if (ret)
		t.close(t.ctx);
	return ret;
}

static int remote_open(struct kv *kv, const struct kv_config *cfg)
{
	struct kv_tier_pool tp = {
		.addr = kv->pool.region.addr,
		.len = (size_t)kv->pool.nslots * kv->pool.slot_bytes,
		.slot_bytes = kv->pool.slot_bytes,
		.block_bytes = kv->block_bytes,
	};
	struct kv_remote_opts o = {
		.peers = cfg->peers,
		.geom = cfg->geometry,
		.ns_root = cfg->ns_root,
		.pool = &tp,
		.flags = ((cfg->flags & KV_F_QUIET) ? KV_REMOTE_QUIET : 0) |
			 ((cfg->flags & KV_F_REMOTE_NO_RDMA) ? KV_REMOTE_NO_RDMA : 0),
		.timeout_ms = cfg->remote_timeout_ms,
		.replicas = cfg->remote_replicas,
		.auth_file = cfg->remote_auth_file,
		.rdma_dev = cfg->remote_rdma_dev,
	};
	struct kv_tier_ops t;
	int ret = kv_remote_tier_open_opts(&o, &t);
	if (ret)
		return ret;
	ret = kv_lower_add(kv, &t);
	if (ret)
		t.close(t.ctx);
	return ret;
}

static int open_current(const struct kv_config *cfg, struct kv **out)
{
	pthread_condattr_t ca;
	struct kv *kv;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	ret = config_check(cfg);
	if (ret)
		return ret;
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;
	kv->cfg = *cfg;
	kv->cfg.disk_path = NULL; /* not owned; tiers that use them copy them */
	kv->cfg.peers = NULL;
	kv->cfg.queue_depth = cfg->queue_depth ? cfg->queue_depth : KV_DEFAULT_DEPTH;
	kv->cfg.workers = cfg->workers ? cfg->workers : default_workers();
	kv->block_bytes = kv_geometry_block_bytes(&cfg->geometry);
	kv->efd = -1;
	pthread_mutex_init(&kv->lock, NULL);
	pthread_mutex_init(&kv->qlock, NULL);
	pthread_mutex_init(&kv->clock, NULL);
	pthread_cond_init(&kv->qcond, NULL);
	/* kv_wait's timeout must not jump with the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&kv->ccond, &ca);
	pthread_cond_init(&kv->pend_cv, &ca);
	pthread_cond_init(&kv->flush_cv, &ca);
	pthread_cond_init(&kv->clean_cv, &ca);
	pthread_condattr_destroy(&ca);

	ret = kv_pool_init(&kv->pool, cfg->host_bytes, kv->block_bytes, cfg->flags);
	if (ret)
		goto err_free;
	/* Entries: one per slot, plus blocks whose copy is being dropped under readers. */
	ret = kv_index_init(&kv->ix, (size_t)kv->pool.nslots + KV_CHUNK * kv->cfg.workers);
	if (ret)
		goto err_pool;
	kv->slot_uses = calloc(kv->pool.nslots, 1);
	kv->slot_flags = calloc(kv->pool.nslots, 1);
	kv->shape = kv_check_shape_of(&cfg->geometry);
	kv->slot_check = calloc((size_t)kv->pool.nslots * kv->shape.layers, sizeof(uint64_t));
	if (!kv->slot_uses || !kv->slot_flags || !kv->slot_check) {
		ret = -ENOMEM;
		goto err_index;
	}
	if (cfg->disk_path) {
		ret = disk_open(kv, cfg);
		if (ret)
			goto err_index;
	}
	if (cfg->peers) {
		ret = remote_open(kv, cfg);
		if (ret)
			goto err_index;
	}
	/* The cascade: what the disk tier evicts goes on to the remote tier. */
	if (cfg->disk_path && cfg->peers && kv->lower[0].chain) {
		uint32_t admit = (cfg->flags & KV_F_DEMOTE_ALL) ? KV_ADMIT_ALL :
				 (cfg->flags & KV_F_DEMOTE_NONE) ? KV_ADMIT_NONE : KV_ADMIT_REUSED;

		ret = kv->lower[0].chain(kv->lower[0].ctx, &kv->lower[1], admit);
		if (ret)
			goto err_index;
	}
	kv->wt_tier = -1;
	for (unsigned t = 0; (cfg->flags & KV_F_WRITE_THROUGH) && t < kv->nlower; t++)
		if (kv->lower[t].level == KV_TIER_REMOTE)
			kv->wt_tier = (int)t;
	ret = kv_host_flusher_start(kv);
	if (ret)
		goto err_index;
	kv->st.tier[KV_TIER_HOST].capacity = kv->pool.nslots;
	kv->st.host_provider = kv->pool.region.provider;
	kv->st.host_pinned = kv->pool.region.pinned;
	kv->st.host_huge_bytes = kv->pool.region.huge_bytes;

	kv->rsize = kv->cfg.queue_depth;
	kv->ring = calloc(kv->rsize, sizeof(*kv->ring));
	kv->workers = calloc(kv->cfg.workers, sizeof(*kv->workers));
	if (!kv->ring || !kv->workers) {
		ret = -ENOMEM;
		goto err_index;
	}
	kv->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (kv->efd < 0) {
		ret = -errno;
		goto err_index;
	}
	for (kv->nworkers = 0; kv->nworkers < kv->cfg.workers; kv->nworkers++) {
		ret = -pthread_create(&kv->workers[kv->nworkers], NULL, worker_main, kv);
		if (ret)
			goto err_threads;
	}
	*out = kv;
	return 0;

err_threads:
	kv_close(kv);
	return ret;
err_index:
	kv_host_flusher_stop(kv);
	lower_close(kv);
	free(kv->slot_uses);
	free(kv->slot_flags);
	free(kv->slot_check);
	if (kv->efd >= 0)
		close(kv->efd);
	free(kv->ring);
	free(kv->workers);
	kv_index_destroy(&kv->ix);
err_pool:
	kv_pool_destroy(&kv->pool);
err_free:
	free(kv);
	return ret;
}

/*
 * kv_open by ABI version (see kv.h): each reads the prefix of struct
 * kv_config its version defined and zero-fills the rest, so a program
 * built against an older kv.h never has bytes past its struct read.
 */
static int open_prefix(const void *cfg, size_t size, struct kv **out)
{
	struct kv_config c;

	if (!cfg) {
		if (out)
			*out = NULL;
		return -EINVAL;
	}
	memset(&c, 0, sizeof(c));
	memcpy(&c, cfg, size);
	return open_current(&c, out);
}

KV_EXPORT int kv_open_v0_1(const void *cfg, struct kv **out);
KV_EXPORT int kv_open_v0_2(const void *cfg, struct kv **out);

KV_EXPORT int kv_open_v0_1(const void *cfg, struct kv **out)
{
	return open_prefix(cfg, offsetof(struct kv_config, disk_queue_depth), out);
}

KV_EXPORT int kv_open_v0_2(const void *cfg, struct kv **out)
{
	return open_prefix(cfg, offsetof(struct kv_config, remote_replicas), out);
}

KV_EXPORT int kv_open(const struct kv_config *cfg, struct kv **out)
{
	return open_current(cfg, out);
}

/*
 * libkv.so exports the two above as kv_open@KV_0.1 and kv_open@KV_0.2 and
 * kv_open itself as the default, kv_open@@KV_0.3 (libkv.map). A static
 * link of libkv.a simply takes kv_open.
 */
__asm__(".symver kv_open_v0_1, kv_open@KV_0.1");
__asm__(".symver kv_open_v0_2, kv_open@KV_0.2");

KV_EXPORT void kv_close(struct kv *kv)
{
	if (!kv)
		return;
	pthread_mutex_lock(&kv->qlock);
	kv->stopping = true;
	pthread_cond_broadcast(&kv->qcond);
	pthread_mutex_unlock(&kv->qlock);
	for (unsigned i = 0; i < kv->nworkers; i++)
		pthread_join(kv->workers[i], NULL);
	/* Host blocks down first; tiers go before the pool (their rings have it registered). */
	kv_host_flusher_stop(kv);
	kv_host_flush(kv);
	lower_close(kv);
	free(kv->slot_uses);
	free(kv->slot_flags);
	free(kv->slot_check);
	if (kv->attached)
		kv->be.destroy(kv->be.ctx);
	free(kv->layers);
	close(kv->efd);
	free(kv->ring);
	free(kv->workers);
	kv_index_destroy(&kv->ix);
	kv_pool_destroy(&kv->pool);
	pthread_mutex_destroy(&kv->lock);
	pthread_mutex_destroy(&kv->qlock);
	pthread_mutex_destroy(&kv->clock);
	pthread_cond_destroy(&kv->qcond);
	pthread_cond_destroy(&kv->ccond);
	pthread_cond_destroy(&kv->pend_cv);
	pthread_cond_destroy(&kv->flush_cv);
	pthread_cond_destroy(&kv->clean_cv);
	free(kv);
}

KV_EXPORT int kv_attach(struct kv *kv, const struct kv_engine_cache *ec)
{
	struct kv_engine_cache copy;
	struct kv_pack_layout pl;
	struct kv_backend be;
	void **layers;
	uint32_t nl;
	int ret;

	if (!kv || !ec || !ec->layers)
		return -EINVAL;
	if (ec->mem != KV_MEM_HOST && ec->mem != KV_MEM_CUDA)
		return -EINVAL;
	if (atomic_load(&kv->inflight))
		return -EBUSY;
	nl = kv->cfg.geometry.layers;
	layers = malloc(nl * sizeof(*layers));
	if (!layers)
		return -ENOMEM;
	memcpy(layers, ec->layers, nl * sizeof(*layers));
	copy = *ec;
	copy.layers = layers;
	ret = kv_pack_layout_init(&pl, &kv->cfg.geometry, &copy);
	if (ret)
		goto err_free;
	if (ec->mem == KV_MEM_HOST)
		ret = kv_backend_cpu_create(&pl, &be);
	else
		ret = kv_backend_cuda_create(&pl, &copy, kv->pool.region.addr,
					     kv->pool.region.len, &be);
	if (ret)
		goto err_free;
	if (kv->attached)
		kv->be.destroy(kv->be.ctx);
	free(kv->layers);
	kv->layers = layers;
	kv->pl = pl;
	kv->be = be;
	kv->attached = true;
	return 0;

err_free:
	free(layers);
	return ret;
}

KV_EXPORT int kv_lookup(struct kv *kv, const kv_hash *h, size_t n, uint8_t *tier_out)
{
	uint8_t tiers[KV_CHUNK];
	size_t found = 0;

	if (!kv || !h || n > INT32_MAX)
		return -EINVAL;
	while (found < n) {
		size_t m = n - found < KV_CHUNK ? n - found : KV_CHUNK, k = 0;

		/* Host memory first, under the lock; the tiers below only about what it lacks. */
		pthread_mutex_lock(&kv->lock);
		for (; k < m; k++) {
			struct kv_entry *e = kv_index_find(&kv->ix, h[found + k]);

			tiers[k] = (uint8_t)(e ? kv_entry_best_tier(e) : KV_TIER_NONE);
		}
		pthread_mutex_unlock(&kv->lock);
		kv_lower_locate(kv, h + found, (uint32_t)m, tiers, NULL);
		for (k = 0; k < m && tiers[k] != KV_TIER_NONE; k++)
			if (tier_out)
				tier_out[found + k] = tiers[k];
		found += k;
		if (k < m)
			break;
	}
	if (tier_out)
		memset(tier_out + found, KV_TIER_NONE, n - found);
	return (int)found;
}

unsigned kv_peers_refused(struct kv *kv, unsigned *npeers)
{
	if (npeers)
		*npeers = 0;
	for (unsigned t = 0; kv && t < kv->nlower; t++)
		if (kv->lower[t].level == KV_TIER_REMOTE)
			return kv_remote_refused(&kv->lower[t], npeers);
	return 0;
}

static void count_rejected(struct kv *kv)
{
	pthread_mutex_lock(&kv->lock);
	kv->st.rejected++;
	pthread_mutex_unlock(&kv->lock);
}

/*
 * A load must not name an engine block twice: which copy would land there is
 * unordered on a device. 0, -EINVAL (a repeat) or -ENOMEM. Ids are < nb.
 */
static int blocks_distinct(const uint32_t *b, size_t n, uint32_t nb)
{
	uint64_t *seen;
	int ret = 0;

	if (n <= 32) {
		for (size_t i = 1; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (b[i] == b[j])
					return -EINVAL;
		return 0;
	}
	seen = calloc(((size_t)nb + 63) / 64, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < n && !ret; i++) {
		uint64_t bit = 1ull << (b[i] % 64);

		if (seen[b[i] / 64] & bit)
			ret = -EINVAL;
		seen[b[i] / 64] |= bit;
	}
	free(seen);
	return ret;
}

static int submit(struct kv *kv, uint32_t op, const kv_hash *h,
		  const uint32_t *blocks, size_t n, uint64_t user_data)
{
	struct kv_req *r;
	unsigned cur;
	int ret;

	if (!kv)
		return -EINVAL;
	if (!h || !n || n > INT32_MAX ||
	    (op != KV_COMP_PREFETCH && (!blocks || !kv->attached))) {
		count_rejected(kv);
		return -EINVAL;
	}
	for (size_t i = 0; blocks && i < n; i++)
		if (blocks[i] >= kv->pl.num_blocks) {
			count_rejected(kv);
			return -EINVAL;
		}
	if (op == KV_COMP_LOAD) {
		ret = blocks_distinct(blocks, n, kv->pl.num_blocks);
		if (ret) {
			if (ret == -EINVAL)
				count_rejected(kv);
			return ret;
		}
	}
	/* Reserve a place in flight (and so in the completion ring). */
	cur = atomic_load(&kv->inflight);
	do {
		if (cur >= kv->cfg.queue_depth) {
			count_rejected(kv);
			return -EAGAIN;
		}
	} while (!atomic_compare_exchange_weak(&kv->inflight, &cur, cur + 1));

	r = malloc(sizeof(*r) + n * (sizeof(kv_hash) + (blocks ? sizeof(uint32_t) : 0)));
	if (!r) {
		atomic_fetch_sub(&kv->inflight, 1);
		return -ENOMEM;
	}
	r->next = NULL;
	r->op = op;
	r->n = (uint32_t)n;
	r->user_data = user_data;
	r->fence = NULL;
	r->held = NULL;
	r->nheld = 0;
	r->h = (kv_hash *)(r + 1);
	r->blocks = blocks ? (uint32_t *)(r->h + n) : NULL;
	memcpy(r->h, h, n * sizeof(kv_hash));
	if (blocks)
		memcpy(r->blocks, blocks, n * sizeof(uint32_t));
	if (op == KV_COMP_STORE) {
		ret = kv->be.fence(kv->be.ctx, &r->fence);
		if (ret) {
			free(r);
			atomic_fetch_sub(&kv->inflight, 1);
			return ret;
		}
	}

	pthread_mutex_lock(&kv->qlock);
	if (kv->qtail)
		kv->qtail->next = r;
	else
		kv->qhead = r;
	kv->qtail = r;
	pthread_cond_signal(&kv->qcond);
	pthread_mutex_unlock(&kv->qlock);
	return 0;
}

KV_EXPORT int kv_store(struct kv *kv, const kv_hash *h, const uint32_t *engine_blocks,
		       size_t n, uint64_t user_data)
{
	return submit(kv, KV_COMP_STORE, h, engine_blocks, n, user_data);
}

KV_EXPORT int kv_load(struct kv *kv, const kv_hash *h, const uint32_t *engine_blocks,
		      size_t n, uint64_t user_data)
{
	return submit(kv, KV_COMP_LOAD, h, engine_blocks, n, user_data);
}

KV_EXPORT int kv_prefetch(struct kv *kv, const kv_hash *h, size_t n, uint64_t user_data)
{
	return submit(kv, KV_COMP_PREFETCH, h, NULL, n, user_data);
}

/*
 * Completions by ABI version (see kv.h): kv_poll/kv_wait@KV_0.1 write the
 * 24-byte 0.1 layout, the default ones (KV_0.4) the current one. The old
 * layout is a prefix of the new, so each entry copies esize bytes.
 */
struct kv_completion_v0_1 {
	uint64_t user_data;
	int32_t res;
	int32_t err;
	uint32_t n;
	uint32_t flags;
};
_Static_assert(sizeof(struct kv_completion_v0_1) == 24, "the 0.1 completion is 24 bytes");
_Static_assert(sizeof(struct kv_completion) == 32, "the 0.4 completion is 32 bytes");
_Static_assert(offsetof(struct kv_completion, reserved) == sizeof(struct kv_completion_v0_1),
	       "0.4 only adds to the 0.1 completion");

/* Caller holds kv->clock. */
static unsigned take(struct kv *kv, void *c, size_t esize, unsigned max)
{
	unsigned got = 0;
	uint64_t v, one = 1;

	while (got < max && kv->rcount) {
		memcpy((char *)c + (size_t)got * esize, &kv->ring[kv->rhead], esize);
		got++;
		kv->rhead = (kv->rhead + 1) % kv->rsize;
		kv->rcount--;
	}
	/*
	 * Readable exactly while completions wait. The engine may have read
	 * the counter to zero itself (kv.h allows it): re-arm if some are left.
	 */
	if (!kv->rcount && read(kv->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: already zero. */
	} else if (kv->rcount && write(kv->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is far from saturated, so it is non-zero. */
	}
	if (got)
		atomic_fetch_sub(&kv->inflight, got);
	return got;
}

static int poll_sized(struct kv *kv, void *c, size_t esize, unsigned max)
{
	unsigned got;

	if (!kv || !c || !max)
		return -EINVAL;
	pthread_mutex_lock(&kv->clock);
	got = take(kv, c, esize, max);
	pthread_mutex_unlock(&kv->clock);
	return (int)(got > INT32_MAX ? INT32_MAX : got);
}

static int wait_sized(struct kv *kv, void *c, size_t esize, unsigned max, int timeout_ms)
{
	struct timespec dl;
	unsigned got;

	if (!kv || !c || !max)
		return -EINVAL;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&kv->clock);
	while (!kv->rcount) {
		int rc = timeout_ms < 0 ? pthread_cond_wait(&kv->ccond, &kv->clock)
					: pthread_cond_timedwait(&kv->ccond, &kv->clock, &dl);
		if (rc == ETIMEDOUT)
			break;
	}
	got = take(kv, c, esize, max);
	pthread_mutex_unlock(&kv->clock);
	return (int)(got > INT32_MAX ? INT32_MAX : got);
}

KV_EXPORT int kv_poll_v0_1(struct kv *kv, void *c, unsigned max);
KV_EXPORT int kv_wait_v0_1(struct kv *kv, void *c, unsigned max, int timeout_ms);

KV_EXPORT int kv_poll_v0_1(struct kv *kv, void *c, unsigned max)
{
	return poll_sized(kv, c, sizeof(struct kv_completion_v0_1), max);
}

KV_EXPORT int kv_wait_v0_1(struct kv *kv, void *c, unsigned max, int timeout_ms)
{
	return wait_sized(kv, c, sizeof(struct kv_completion_v0_1), max, timeout_ms);
}

KV_EXPORT int kv_poll(struct kv *kv, struct kv_completion *c, unsigned max)
{
	return poll_sized(kv, c, sizeof(*c), max);
}

KV_EXPORT int kv_wait(struct kv *kv, struct kv_completion *c, unsigned max, int timeout_ms)
{
	return wait_sized(kv, c, sizeof(*c), max, timeout_ms);
}

KV_EXPORT int kv_event_fd(struct kv *kv)
{
	return kv ? kv->efd : -EINVAL;
}

KV_EXPORT unsigned kv_inflight(struct kv *kv)
{
	return kv ? atomic_load(&kv->inflight) : 0;
}

static int stats_current(struct kv *kv, struct kv_stats *st)
{
	if (!kv || !st)
		return -EINVAL;
	pthread_mutex_lock(&kv->lock);
	*st = kv->st;
	st->host_dirty = kv->ndirty;
	st->flusher_writes = kv->flusher_writes;
	st->store_stalls = kv->store_stalls;
	pthread_mutex_unlock(&kv->lock);
	/* Lower tiers keep their own counters (rows of the same level add up). */
	for (unsigned t = 0; t < kv->nlower; t++)
		memset(&st->tier[kv->lower[t].level], 0, sizeof(st->tier[0]));
	for (unsigned t = 0; t < kv->nlower; t++)
		kv->lower[t].stats(kv->lower[t].ctx, &st->tier[kv->lower[t].level]);
	return 0;
}

/* kv_stats@KV_0.1 writes the 0.1 layout: the current one up to host_dirty. */
KV_EXPORT int kv_stats_v0_1(struct kv *kv, void *st);

KV_EXPORT int kv_stats_v0_1(struct kv *kv, void *st)
{
	struct kv_stats cur;
	int ret;

	if (!st)
		return -EINVAL;
	ret = stats_current(kv, &cur);
	if (!ret)
		memcpy(st, &cur, offsetof(struct kv_stats, host_dirty));
	return ret;
}

KV_EXPORT int kv_stats(struct kv *kv, struct kv_stats *st)
{
	return stats_current(kv, st);
}

/*
 * libkv.so exports the 0.1 layouts' entries as kv_poll@KV_0.1,
 * kv_wait@KV_0.1 and kv_stats@KV_0.1, the current ones as the defaults
 * @@KV_0.4 (libkv.map).
 */
__asm__(".symver kv_poll_v0_1, kv_poll@KV_0.1");
__asm__(".symver kv_wait_v0_1, kv_wait@KV_0.1");
__asm__(".symver kv_stats_v0_1, kv_stats@KV_0.1");
