// SPDX-License-Identifier: MIT
/* geometry.c - validation and size of the canonical block. */
#include <errno.h>

#include "export.h"
#include "kv.h"

#define KV_BLOCK_BYTES_MAX (1ull << 30)

KV_EXPORT size_t kv_dtype_size(uint32_t dtype)
{
	switch (dtype) {
	case KV_DTYPE_FP16:
	case KV_DTYPE_BF16:
		return 2;
	case KV_DTYPE_FP32:
		return 4;
	case KV_DTYPE_FP8_E4M3:
	case KV_DTYPE_FP8_E5M2:
	case KV_DTYPE_INT8:
		return 1;
	default:
		return 0;
	}
}

KV_EXPORT int kv_geometry_check(const struct kv_geometry *g)
{
	uint64_t bytes;

	if (!g || !g->layers || !g->block_tokens || !g->kv_heads || !g->head_dim)
		return -EINVAL;
	if (g->planes != 1 && g->planes != 2)
		return -EINVAL;
	bytes = kv_dtype_size(g->dtype);
	if (!bytes)
		return -EINVAL;
	/* Every factor is < 2^32 and the cap is 2^30: overflow is caught stepwise. */
	if (__builtin_mul_overflow(bytes, (uint64_t)g->head_dim, &bytes) ||
	    __builtin_mul_overflow(bytes, (uint64_t)g->kv_heads, &bytes) ||
	    __builtin_mul_overflow(bytes, (uint64_t)g->block_tokens, &bytes) ||
	    __builtin_mul_overflow(bytes, (uint64_t)g->planes, &bytes) ||
	    __builtin_mul_overflow(bytes, (uint64_t)g->layers, &bytes) ||
	    bytes > KV_BLOCK_BYTES_MAX)
		return -EINVAL;
	return 0;
}

KV_EXPORT size_t kv_geometry_block_bytes(const struct kv_geometry *g)
{
	if (kv_geometry_check(g))
		return 0;
	return kv_dtype_size(g->dtype) * g->head_dim * g->kv_heads *
	       g->block_tokens * g->planes * g->layers;
}
