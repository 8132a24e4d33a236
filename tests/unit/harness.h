/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what every unit test shares: CHECK macros that print the file,
 * line and values and exit 1, SKIP (exit 77 with a reason), a seeded PRNG
 * (KV_TEST_SEED overrides; the seed is printed so a failure can be replayed),
 * and an engine cache in host memory for any layout.
 */
#ifndef KV_TEST_HARNESS_H
#define KV_TEST_HARNESS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define FAILF(...) do { \
	fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define CHECK(c) do { if (!(c)) FAILF("%s", #c); } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) FAILF("%s == %lld, expected %s == %lld", #a, _a, #b, _b); } while (0)
#define SKIP(...) do { printf("SKIP: "); printf(__VA_ARGS__); putchar('\n'); exit(77); } while (0)

/* xorshift64*: fast, seeded, reproducible. */
extern uint64_t t_rng_state;
uint64_t t_rand(void);
/* Seed from KV_TEST_SEED or the clock; prints "seed: N". */
void t_seed(const char *test);
static inline uint32_t t_range(uint32_t lo, uint32_t hi) /* [lo, hi] */
{
	return lo + (uint32_t)(t_rand() % ((uint64_t)hi - lo + 1));
}
void t_fill(void *p, size_t n);

/* An engine cache in host memory: layer tensors sized for layout and geometry. */
struct t_engine {
	struct kv_geometry g;
	struct kv_engine_cache ec;
	void **layers;
	size_t layer_bytes;
	size_t plane_bytes;   /* one plane of one block */
};

/* Allocate (and randomly fill) an engine cache; exits on failure. */
void t_engine_init(struct t_engine *e, const struct kv_geometry *g, uint32_t layout,
		   uint32_t num_blocks);
/* The same with pad bytes after every plane of every block (explicit strides). */
void t_engine_init_padded(struct t_engine *e, const struct kv_geometry *g, uint32_t layout,
			  uint32_t num_blocks, size_t pad);
void t_engine_free(struct t_engine *e);

/* Canonical bytes of engine block b computed element by element (independent of kv_pack_cpu). */
void t_engine_expect(const struct t_engine *e, uint32_t b, void *canon);

/* Fill engine block b with bytes derived from (tag); t_engine_check compares. */
void t_engine_fill_block(struct t_engine *e, uint32_t b, uint64_t tag);
int t_engine_check_block(const struct t_engine *e, uint32_t b, uint64_t tag);

/* A small default geometry (fp16, 2 layers, 2 planes, 16 tokens, 2 heads, 64 dims). */
struct kv_geometry t_geometry_small(void);

/* Open a kv with host memory pool of nblocks blocks; exits on failure. */
struct kv *t_open(const struct kv_geometry *g, size_t nblocks, uint32_t flags);

/* Wait for exactly one completion (up to 10 s); exits on timeout. */
struct kv_completion t_wait1(struct kv *kv);

/* n distinct random hashes. */
void t_hashes(kv_hash *h, size_t n);

#endif /* KV_TEST_HARNESS_H */
