// SPDX-License-Identifier: MIT
/*
 * test_disk_concurrency.c - 4 threads store and load random batches of a shared
 * set of blocks through one struct kv with a disk tier (every eviction
 * written back) and a host pool holding a fraction of them,
 * for a few seconds (KV_TEST_SECONDS). Completions are reaped by whichever
 * thread waits and routed to their owner, so delivery-exactly-once is
 * checked too. Every loaded byte is checked against the block's content.
 */
#include <pthread.h>
#include <time.h>

#include "test_disk.h"

#define THREADS 4
#define PER_THREAD 16       /* engine blocks each thread owns */
#define UNIVERSE 600        /* distinct blocks */
#define POOL 48             /* blocks the host tier holds */

static struct kv *kv;
static struct t_engine eng;
static kv_hash names[UNIVERSE];
static double deadline;

static pthread_mutex_t mbox_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mbox_cond = PTHREAD_COND_INITIALIZER;
static struct kv_completion mbox[THREADS];
static int mbox_full[THREADS];
static uint64_t loaded_blocks, stored_blocks, misses;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait for this thread's completion, reaping (and routing) others' on the way. */
static struct kv_completion wait_mine(int tid, uint64_t seq)
{
	for (;;) {
		struct kv_completion c[8];
		int n;

		pthread_mutex_lock(&mbox_lock);
		if (mbox_full[tid]) {
			struct kv_completion mine = mbox[tid];

			mbox_full[tid] = 0;
			pthread_mutex_unlock(&mbox_lock);
			if (mine.user_data != ((uint64_t)tid << 32 | seq))
				FAILF("thread %d got completion %llx", tid,
				      (unsigned long long)mine.user_data);
			return mine;
		}
		pthread_mutex_unlock(&mbox_lock);
		n = kv_wait(kv, c, 8, 20);
		CHECK(n >= 0);
		pthread_mutex_lock(&mbox_lock);
		for (int i = 0; i < n; i++) {
			int owner = (int)(c[i].user_data >> 32);

			CHECK(owner >= 0 && owner < THREADS);
			if (mbox_full[owner])
				FAILF("two completions for thread %d", owner);
			mbox[owner] = c[i];
			mbox_full[owner] = 1;
		}
		pthread_cond_broadcast(&mbox_cond);
		pthread_mutex_unlock(&mbox_lock);
	}
}

static void *worker(void *arg)
{
	int tid = (int)(intptr_t)arg;
	uint64_t seq = 0, rng = 0x1234567ull * (tid + 1);
	uint32_t base = tid * PER_THREAD;

	while (now() < deadline) {
		uint32_t n, idx[8], blocks[8];
		kv_hash h[8];
		struct kv_completion c;
		int store, ret;

		rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
		n = 1 + rng % 8;
		store = (rng >> 8) & 1;
		for (uint32_t i = 0; i < n; i++) {
			rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
			idx[i] = (uint32_t)(rng % UNIVERSE);
			h[i] = names[idx[i]];
			blocks[i] = base + i;
			if (store)
				t_engine_fill_block(&eng, blocks[i], h[i].lo);
			else
				t_engine_fill_block(&eng, blocks[i], 0xdead);
		}
		seq++;
		do {
			ret = store ? kv_store(kv, h, blocks, n, (uint64_t)tid << 32 | seq)
				    : kv_load(kv, h, blocks, n, (uint64_t)tid << 32 | seq);
		} while (ret == -EAGAIN);
		CHECK_EQ(ret, 0);
		c = wait_mine(tid, seq);
		CHECK(c.res >= 0 && (uint32_t)c.res <= n);
		if (store) {
			/* A batch may outrun a pool whose slots other threads hold. */
			CHECK(c.res == (int)n || c.err == -ENOSPC);
			__atomic_add_fetch(&stored_blocks, c.res, __ATOMIC_RELAXED);
			continue;
		}
		CHECK(c.res == (int)n || c.err == -ENOENT);
		for (int i = 0; i < c.res; i++)
			if (!t_engine_check_block(&eng, blocks[i], h[i].lo))
				FAILF("thread %d: block %u (name %u) loaded wrong", tid, i, idx[i]);
		for (uint32_t i = c.res; i < n; i++)
			if (!t_engine_check_block(&eng, blocks[i], 0xdead))
				FAILF("thread %d: block %u past the miss was written", tid, i);
		__atomic_add_fetch(&loaded_blocks, c.res, __ATOMIC_RELAXED);
		if (c.res < (int)n)
			__atomic_add_fetch(&misses, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	const char *secs = getenv("KV_TEST_SECONDS");
	pthread_t th[THREADS];
	struct kv_stats st;

	t_seed("test_disk_concurrency");
	t_hashes(names, UNIVERSE);
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_HND, THREADS * PER_THREAD);
	{
		char path[512];
		kv_hash ns = { 3, 4 };
		int ret;

		snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
		ret = td_open(&g, POOL, path, 64u << 20, KV_F_VERIFY_HOST, KV_ADMIT_ALL, ns, &kv);
		if (ret)
			FAILF("kv_open: %s", kv_strerror(ret));
	}
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	deadline = now() + (secs ? atof(secs) : 4.0);
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(kv_inflight(kv), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("stored %llu blocks, loaded %llu (verified), %llu partial loads, %llu evictions\n",
	       (unsigned long long)stored_blocks, (unsigned long long)loaded_blocks,
	       (unsigned long long)misses,
	       (unsigned long long)st.tier[KV_TIER_HOST].evictions);
	printf("disk: %llu blocks, %llu hits, %llu failures, %llu verify failures\n",
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks,
	       (unsigned long long)st.tier[KV_TIER_DISK].hits,
	       (unsigned long long)st.tier[KV_TIER_DISK].failures,
	       (unsigned long long)st.tier[KV_TIER_DISK].verify_failures);
	CHECK(loaded_blocks > 100);
	CHECK(st.tier[KV_TIER_DISK].hits > 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].failures, 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].verify_failures, 0);
	CHECK(st.tier[KV_TIER_HOST].evictions > 0);
	CHECK_EQ(st.tier[KV_TIER_HOST].verify_failures, 0);
	CHECK(st.tier[KV_TIER_HOST].blocks <= POOL);
	/* Loaded blocks come from host memory or were promoted from disk. */
	CHECK(st.tier[KV_TIER_HOST].hits + st.tier[KV_TIER_DISK].hits >= loaded_blocks);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
