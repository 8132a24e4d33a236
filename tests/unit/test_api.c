// SPDX-License-Identifier: MIT
/*
 * test_api.c - the public API end to end on the CPU path: bad input is
 * refused and changes nothing, stores and loads round-trip every byte for
 * every layout, dedup, misses, eviction, eventfd, the queue bound.
 */
#include <poll.h>
#include <unistd.h>

#include "harness.h"

#define NB 64

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void bad_open(void)
{
	struct kv_config cfg = { .geometry = t_geometry_small(), .host_bytes = 1 << 20,
				 .flags = KV_F_QUIET };
	struct kv_config b;
	struct kv *kv = (struct kv *)1;

	CHECK_EQ(kv_open(NULL, &kv), -EINVAL);
	CHECK(kv == NULL);
	CHECK_EQ(kv_open(&cfg, NULL), -EINVAL);
	b = cfg; b.geometry.head_dim = 0;
	CHECK_EQ(kv_open(&b, &kv), -EINVAL);
	b = cfg; b.host_bytes = 0;
	CHECK_EQ(kv_open(&b, &kv), -EINVAL);
	b = cfg; b.host_bytes = 4096; /* less than one block */
	CHECK_EQ(kv_open(&b, &kv), -EINVAL);
	b = cfg; b.flags |= 1u << 30;
	CHECK_EQ(kv_open(&b, &kv), -EINVAL);
	b = cfg; b.flags |= KV_F_REQUIRE_KVMEM | KV_F_NO_KVMEM;
	CHECK_EQ(kv_open(&b, &kv), -EINVAL);
	b = cfg; b.queue_depth = 1u << 20;
	CHECK_EQ(kv_open(&b, &kv), -EINVAL);
	CHECK(kv == NULL);
	kv_close(NULL);
}

static void round_trip(uint32_t layout)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine e;
	struct kv *kv;
	struct kv_stats st;
	struct kv_completion c;
	kv_hash h[NB];
	uint32_t src[NB / 2], dst[NB / 2];
	uint8_t tiers[NB];
	size_t bb;

	if (layout == KV_LAYOUT_MLA) {
		g.planes = 1;
		g.kv_heads = 1;
		g.head_dim = 576;
	}
	bb = kv_geometry_block_bytes(&g);
	t_engine_init(&e, &g, layout, NB);
	kv = t_open(&g, NB, 0);

	/* Not attached yet. */
	t_hashes(h, NB);
	for (uint32_t i = 0; i < NB / 2; i++) {
		src[i] = i;
		dst[i] = NB / 2 + i;
		t_engine_fill_block(&e, i, h[i].lo);
	}
	CHECK_EQ(kv_store(kv, h, src, NB / 2, 1), -EINVAL);
	CHECK_EQ(kv_attach(kv, NULL), -EINVAL);
	struct kv_engine_cache bad = e.ec;
	bad.mem = 7;
	CHECK_EQ(kv_attach(kv, &bad), -EINVAL);
	bad = e.ec;
	bad.layout = layout == KV_LAYOUT_MLA ? KV_LAYOUT_VLLM_NHD : KV_LAYOUT_MLA;
	CHECK_EQ(kv_attach(kv, &bad), -EINVAL);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);

	/* Bad submissions: refused, counted, nothing stored. */
	uint32_t oob[2] = { 0, NB };
	CHECK_EQ(kv_store(kv, NULL, src, 1, 0), -EINVAL);
	CHECK_EQ(kv_store(kv, h, NULL, 1, 0), -EINVAL);
	CHECK_EQ(kv_store(kv, h, src, 0, 0), -EINVAL);
	CHECK_EQ(kv_store(kv, h, oob, 2, 0), -EINVAL);
	CHECK_EQ(kv_load(kv, h, oob, 2, 0), -EINVAL);
	CHECK_EQ(kv_store(NULL, h, src, 1, 0), -EINVAL);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.rejected, 6); /* with the store before attach */
	CHECK_EQ(st.tier[KV_TIER_HOST].blocks, 0);
	CHECK_EQ(kv_inflight(kv), 0);
	CHECK_EQ(kv_lookup(kv, h, NB, tiers), 0);
	CHECK_EQ(tiers[0], KV_TIER_NONE);

	/* Store, then everything is present in the host tier. */
	CHECK_EQ(kv_store(kv, h, src, NB / 2, 42), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.user_data, 42);
	CHECK_EQ(c.res, NB / 2);
	CHECK_EQ(c.err, 0);
	CHECK_EQ(c.n, NB / 2);
	CHECK_EQ(c.flags, KV_COMP_STORE);
	CHECK_EQ(kv_lookup(kv, h, NB, tiers), NB / 2);
	CHECK_EQ(tiers[0], KV_TIER_HOST);
	CHECK_EQ(tiers[NB / 2 - 1], KV_TIER_HOST);
	CHECK_EQ(tiers[NB / 2], KV_TIER_NONE);

	/* Storing again copies nothing. */
	CHECK_EQ(kv_store(kv, h, src, NB / 2, 43), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, NB / 2);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.store_dedup, NB / 2);
	CHECK_EQ(st.tier[KV_TIER_HOST].bytes_in, (uint64_t)bb * NB / 2);
	CHECK_EQ(st.tier[KV_TIER_HOST].blocks, NB / 2);

	/* Load into other engine blocks: every byte as stored. */
	CHECK_EQ(kv_load(kv, h, dst, NB / 2, 44), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, NB / 2);
	CHECK_EQ(c.err, 0);
	CHECK_EQ(c.flags, KV_COMP_LOAD);
	for (uint32_t i = 0; i < NB / 2; i++)
		if (!t_engine_check_block(&e, dst[i], h[i].lo))
			FAILF("layout %u: block %u loaded wrong", layout, i);

	/* A miss in the middle: the prefix loads, the rest is untouched. */
	kv_hash mix[6] = { h[0], h[1], h[2], h[NB - 1], h[3], h[4] };
	for (uint32_t i = 0; i < 6; i++)
		t_engine_fill_block(&e, dst[i], 777);
	CHECK_EQ(kv_load(kv, mix, dst, 6, 45), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 3);
	CHECK_EQ(c.err, -ENOENT);
	for (uint32_t i = 0; i < 3; i++)
		CHECK(t_engine_check_block(&e, dst[i], h[i].lo));
	for (uint32_t i = 3; i < 6; i++)
		CHECK(t_engine_check_block(&e, dst[i], 777));
	/* Absent first block: res 0, err -ENOENT. */
	CHECK_EQ(kv_load(kv, h + NB / 2, dst, 1, 46), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 0);
	CHECK_EQ(c.err, -ENOENT);

	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_HOST].hits, NB / 2 + 3);
	CHECK_EQ(st.tier[KV_TIER_HOST].misses, 2);
	CHECK_EQ(st.stores, 2);
	CHECK_EQ(st.loads, 3);
	CHECK(st.host_provider == KV_PROVIDER_MMAP || st.host_provider == KV_PROVIDER_KVMEM);
	kv_close(kv);
	t_engine_free(&e);
}

static void events_and_bounds(void)
{
	struct kv_geometry g = t_geometry_small();
	struct kv_config cfg = { .geometry = g, .host_bytes = 16 * 65536,
				 .flags = KV_F_QUIET, .queue_depth = 2 };
	struct kv_completion c[4];
	struct t_engine e;
	struct kv *kv;
	kv_hash h[4];
	uint32_t b[4] = { 0, 1, 2, 3 };
	int fd;

	t_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, 4);
	CHECK_EQ(kv_open(&cfg, &kv), 0);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	fd = kv_event_fd(kv);
	CHECK(fd >= 0);
	CHECK(!readable(fd));
	CHECK_EQ(kv_poll(kv, c, 4), 0);
	CHECK_EQ(kv_poll(kv, c, 0), -EINVAL);
	CHECK_EQ(kv_wait(kv, c, 4, 10), 0); /* timeout, nothing in flight */

	t_hashes(h, 4);
	CHECK_EQ(kv_store(kv, h, b, 2, 1), 0);
	CHECK_EQ(kv_store(kv, h + 2, b + 2, 2, 2), 0);
	/* Depth 2: a third request is refused until a completion is reaped. */
	CHECK_EQ(kv_store(kv, h, b, 1, 3), -EAGAIN);
	CHECK_EQ(kv_inflight(kv), 2);
	/* Both finish; the eventfd says so. */
	int got = 0;
	for (int i = 0; i < 1000 && !readable(fd); i++)
		usleep(1000);
	CHECK(readable(fd));
	while (got < 2) {
		int n = kv_wait(kv, c + got, 4, 5000);
		CHECK(n > 0);
		got += n;
	}
	CHECK_EQ(got, 2);
	CHECK(c[0].user_data + c[1].user_data == 3);
	CHECK(!readable(fd));
	CHECK_EQ(kv_inflight(kv), 0);

	/* Re-attach is refused while a request is in flight, allowed after. */
	CHECK_EQ(kv_load(kv, h, b, 4, 9), 0);
	CHECK_EQ(kv_attach(kv, &e.ec), -EBUSY);
	c[0] = t_wait1(kv);
	CHECK_EQ(c[0].res, 4);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);

	/* Close with completions never reaped: nothing leaks (ASan checks). */
	CHECK_EQ(kv_load(kv, h, b, 4, 10), 0);
	CHECK_EQ(kv_store(kv, h, b, 4, 11), 0);
	kv_close(kv);
	t_engine_free(&e);
}

static void eviction(void)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine e;
	struct kv_stats st;
	struct kv *kv;
	kv_hash h[40];
	uint32_t b[40];
	struct kv_completion c;

	t_engine_init(&e, &g, KV_LAYOUT_FLASHINFER_NHD, 40);
	kv = t_open(&g, 8, 0);
	CHECK_EQ(kv_attach(kv, &e.ec), 0);
	t_hashes(h, 40);
	for (uint32_t i = 0; i < 40; i++) {
		b[i] = i;
		t_engine_fill_block(&e, i, h[i].hi);
	}
	for (uint32_t i = 0; i < 40; i += 5) {
		CHECK_EQ(kv_store(kv, h + i, b + i, 5, i), 0);
		c = t_wait1(kv);
		CHECK_EQ(c.res, 5);
	}
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_HOST].capacity, 8);
	CHECK_EQ(st.tier[KV_TIER_HOST].blocks, 8);
	CHECK_EQ(st.tier[KV_TIER_HOST].evictions, 32);
	CHECK_EQ(kv_lookup(kv, h, 40, NULL), 0);
	CHECK_EQ(kv_lookup(kv, h + 32, 8, NULL), 8); /* the most recent survive */
	/* More blocks in one request than the pool holds: the tail is refused. */
	kv_hash fresh[12];
	t_hashes(fresh, 12);
	CHECK_EQ(kv_store(kv, fresh, b, 12, 0), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 8); /* the 9th finds every slot held by this request */
	CHECK_EQ(c.err, -ENOSPC);
	CHECK_EQ(kv_lookup(kv, fresh, 12, NULL), 8);
	/* They load exactly into other blocks. */
	CHECK_EQ(kv_load(kv, fresh, b + 20, 8, 0), 0);
	c = t_wait1(kv);
	CHECK_EQ(c.res, 8);
	for (uint32_t i = 0; i < 8; i++)
		CHECK(t_engine_check_block(&e, 20 + i, h[i].hi));
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_HOST].failures, 1);
	kv_close(kv);
	t_engine_free(&e);
}

int main(void)
{
	t_seed("test_api");
	bad_open();
	round_trip(KV_LAYOUT_VLLM_NHD);
	round_trip(KV_LAYOUT_VLLM_HND);
	round_trip(KV_LAYOUT_FLASHINFER_NHD);
	round_trip(KV_LAYOUT_MLA);
	events_and_bounds();
	eviction();
	printf("ok\n");
	return 0;
}
