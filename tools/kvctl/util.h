/* SPDX-License-Identifier: MIT */
/*
 * util.h - helpers shared by kvctl's replay and bench: option parsing, clocks,
 * an engine KV cache in host memory, and the verification pattern (engine
 * block bytes derived from the block's hash, independent of the layout).
 */
#ifndef KVCTL_UTIL_H
#define KVCTL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kv.h"

/* Monotonic clock in nanoseconds. */
uint64_t kvu_now_ns(void);

/*
 * Parse a byte count with an optional binary suffix (K, M, G, T; KiB, MiB...;
 * "k"/"kb" mean the same). Returns 0 and sets *out, or -EINVAL.
 */
int kvu_parse_size(const char *s, size_t *out);
/* Parse an unsigned integer in [min, max]. Returns 0 or -EINVAL. */
int kvu_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Format a byte count as "64 KiB", "1.5 GiB" into buf. Returns buf. */
const char *kvu_fmt_bytes(char *buf, size_t len, double bytes);

/* Layout names: nhd, hnd, flashinfer, mla. Returns the enum or 0. */
uint32_t kvu_layout_parse(const char *s);
const char *kvu_layout_name(uint32_t layout);
const char *kvu_dtype_name(uint32_t dtype);
uint32_t kvu_dtype_parse(const char *s);

/*
 * An engine KV cache in host memory: one mapping per layer, laid out with the
 * layout's default strides. The addressing mirrors kv.h's description so that
 * the tool checks the library instead of sharing its code.
 */
struct kvu_engine {
	struct kv_geometry g;
	struct kv_engine_cache ec;
	void **layers;
	size_t layer_bytes;   /* bytes mapped per layer */
	size_t esize;
	size_t plane_bytes;   /* P: one plane of one engine block */
	size_t row_bytes;     /* head_dim * esize */
	size_t block_stride;
	size_t plane_stride;
	int head_major;       /* HND */
};

/*
 * Map and prefault num_blocks engine blocks of geometry g in layout. Prints
 * what failed and returns -errno on failure.
 */
int kvu_engine_init(struct kvu_engine *e, const struct kv_geometry *g,
		    uint32_t layout, uint32_t num_blocks);
void kvu_engine_free(struct kvu_engine *e);

/* Address of plane p of engine block b in layer l. */
static inline uint8_t *kvu_engine_plane(const struct kvu_engine *e, uint32_t l,
					uint32_t p, uint32_t b)
{
	return (uint8_t *)e->layers[l] + (size_t)p * e->plane_stride +
	       (size_t)b * e->block_stride;
}

/*
 * Verification pattern. Every (layer, plane, token, head) row of a block
 * gets head_dim*esize bytes derived from (hash, row index in the canonical
 * order), so the expected bytes do not depend on the engine layout and a
 * misplaced row, a block from another hash or a flipped byte all show.
 */
void kvu_pattern_fill(const struct kvu_engine *e, uint32_t b, kv_hash h);
/* Returns 0 if engine block b holds exactly h's pattern, else -EBADMSG. */
int kvu_pattern_check(const struct kvu_engine *e, uint32_t b, kv_hash h);

/* A canary in the first row of (layer 0, plane 0) of an engine block. */
void kvu_canary_set(const struct kvu_engine *e, uint32_t b, uint64_t v);
int kvu_canary_check(const struct kvu_engine *e, uint32_t b, uint64_t v);

/* splitmix64 finaliser and a small PRNG state (xoshiro-like, seeded by it). */
static inline uint64_t kvu_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct kvu_rng {
	uint64_t s;
};

static inline uint64_t kvu_rng_next(struct kvu_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ull;
	return kvu_mix64(r->s);
}

/* Uniform in [0, n) (n > 0). */
static inline uint64_t kvu_rng_below(struct kvu_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)kvu_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t kvu_rng_range(struct kvu_rng *r, uint64_t lo, uint64_t hi)
{
	return lo + kvu_rng_below(r, hi - lo + 1);
}

/* Double in [0, 1). */
static inline double kvu_rng_unit(struct kvu_rng *r)
{
	return (kvu_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Write s as a JSON string (with quotes) to f. */
void kvu_json_str(FILE *f, const char *s);

#endif /* KVCTL_UTIL_H */
