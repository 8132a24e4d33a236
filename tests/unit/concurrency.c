// SPDX-License-Identifier: MIT
/* concurrency.c - the multi-threaded store/load driver (see concurrency.h). */
#include <pthread.h>
#include <time.h>

#include "concurrency.h"

static struct kv *kv;
static struct t_engine *eng;
static const kv_hash *names;
static uint32_t universe;
static double deadline;

static pthread_mutex_t mbox_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mbox_cond = PTHREAD_COND_INITIALIZER;
static struct kv_completion mbox[T_CONC_THREADS];
static int mbox_full[T_CONC_THREADS];
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

			CHECK(owner >= 0 && owner < T_CONC_THREADS);
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
	uint32_t base = tid * T_CONC_PER_THREAD;

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
			idx[i] = (uint32_t)(rng % universe);
			h[i] = names[idx[i]];
			blocks[i] = base + i;
			if (store)
				t_engine_fill_block(eng, blocks[i], h[i].lo);
			else
				t_engine_fill_block(eng, blocks[i], 0xdead);
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
			if (!t_engine_check_block(eng, blocks[i], h[i].lo))
				FAILF("thread %d: block %u (name %u) loaded wrong", tid, i, idx[i]);
		for (uint32_t i = c.res; i < n; i++)
			if (!t_engine_check_block(eng, blocks[i], 0xdead))
				FAILF("thread %d: block %u past the miss was written", tid, i);
		__atomic_add_fetch(&loaded_blocks, c.res, __ATOMIC_RELAXED);
		if (c.res < (int)n)
			__atomic_add_fetch(&misses, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

struct t_conc_result t_conc_run(struct kv *k, struct t_engine *e,
				const kv_hash *n, uint32_t u, double seconds)
{
	pthread_t th[T_CONC_THREADS];
	struct t_conc_result r;

	kv = k;
	eng = e;
	names = n;
	universe = u;
	loaded_blocks = stored_blocks = misses = 0;
	deadline = now() + seconds;
	for (int i = 0; i < T_CONC_THREADS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
	for (int i = 0; i < T_CONC_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(kv_inflight(kv), 0);
	r.stored = stored_blocks;
	r.loaded = loaded_blocks;
	r.partial_loads = misses;
	return r;
}
