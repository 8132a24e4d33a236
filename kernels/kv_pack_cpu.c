// SPDX-License-Identifier: MIT
/*
 * kv_pack_cpu.c - CPU reference of pack/unpack (see kv_pack.h for the exact
 * element mapping). Token-major layouts copy one contiguous plane per
 * (layer, plane); head-major layouts copy one head_dim row per (token, head).
 */
#include <errno.h>
#include <string.h>

#include "kv_pack.h"

/*
 * Does the V plane of some block b overlap the K plane of some block c of
 * the same layer? K(c) = [c*bs, +P), V(b) = [ps + b*bs, +P): they overlap
 * iff |ps + (b - c)*bs| < P for some b - c = d in (-nb, nb). Planes of one
 * kind never overlap each other once bs >= P, so only the d closest to
 * -ps/bs matter: d = -q (distance r) and d = -q - 1 (distance bs - r).
 */
static int kv_planes_overlap(size_t ps, size_t bs, size_t plane, uint32_t nb)
{
	size_t q = ps / bs, r = ps % bs;

	if (q < nb && r < plane)
		return 1;
	return q + 1 < nb && bs - r < plane;
}

int kv_pack_layout_init(struct kv_pack_layout *pl, const struct kv_geometry *g,
			const struct kv_engine_cache *ec)
{
	size_t esize, plane;

	if (!pl || !g || !ec || kv_geometry_check(g) || !ec->layers || !ec->num_blocks)
		return -EINVAL;
	for (uint32_t l = 0; l < g->layers; l++)
		if (!ec->layers[l])
			return -EINVAL;
	esize = kv_dtype_size(g->dtype);
	plane = (size_t)g->block_tokens * g->kv_heads * g->head_dim * esize;

	memset(pl, 0, sizeof(*pl));
	pl->layers = g->layers;
	pl->planes = g->planes;
	pl->block_tokens = g->block_tokens;
	pl->kv_heads = g->kv_heads;
	pl->head_dim = g->head_dim;
	pl->esize = (uint32_t)esize;
	pl->num_blocks = ec->num_blocks;
	pl->plane_bytes = plane;
	pl->block_bytes = plane * g->planes * g->layers;
	pl->layer_base = ec->layers;

	switch (ec->layout) {
	case KV_LAYOUT_VLLM_NHD:
	case KV_LAYOUT_VLLM_HND:
		if (g->planes != 2)
			return -EINVAL;
		pl->head_major = ec->layout == KV_LAYOUT_VLLM_HND;
		pl->block_stride = plane;
		if (__builtin_mul_overflow(plane, (size_t)ec->num_blocks, &pl->plane_stride))
			return -EINVAL;
		break;
	case KV_LAYOUT_FLASHINFER_NHD:
		if (g->planes != 2)
			return -EINVAL;
		pl->block_stride = 2 * plane;
		pl->plane_stride = plane;
		break;
	case KV_LAYOUT_MLA:
		if (g->planes != 1 || g->kv_heads != 1)
			return -EINVAL;
		pl->block_stride = plane;
		pl->plane_stride = 0;
		break;
	default:
		return -EINVAL;
	}
	if (ec->block_stride)
		pl->block_stride = ec->block_stride;
	if (ec->plane_stride && g->planes > 1)
		pl->plane_stride = ec->plane_stride;
	/* A plane of a block must fit between neighbours, or blocks overlap. */
	if (pl->block_stride < plane || (g->planes > 1 && pl->plane_stride < plane))
		return -EINVAL;
	if (g->planes > 1 && kv_planes_overlap(pl->plane_stride, pl->block_stride, plane,
					       ec->num_blocks))
		return -EINVAL;
	return 0;
}

/* Address of plane p of engine block b in layer l. */
static inline unsigned char *engine_plane(const struct kv_pack_layout *pl,
					  uint32_t l, uint32_t p, uint32_t b)
{
	return (unsigned char *)pl->layer_base[l] + (size_t)p * pl->plane_stride +
	       (size_t)b * pl->block_stride;
}

/* One (layer, plane) of one block: canonical is always token-major. */
static void copy_plane(const struct kv_pack_layout *pl, unsigned char *eng,
		       unsigned char *canon, int to_canon)
{
	size_t row = (size_t)pl->head_dim * pl->esize;
	uint32_t T = pl->block_tokens, H = pl->kv_heads;

	if (!pl->head_major) {
		if (to_canon)
			memcpy(canon, eng, pl->plane_bytes);
		else
			memcpy(eng, canon, pl->plane_bytes);
		return;
	}
	for (uint32_t t = 0; t < T; t++)
		for (uint32_t h = 0; h < H; h++) {
			unsigned char *c = canon + ((size_t)t * H + h) * row;
			unsigned char *e = eng + ((size_t)h * T + t) * row;

			if (to_canon)
				memcpy(c, e, row);
			else
				memcpy(e, c, row);
		}
}

void kv_pack_cpu_plane(const struct kv_pack_layout *pl, uint32_t b, uint32_t l,
		       uint32_t p, void *dst)
{
	copy_plane(pl, engine_plane(pl, l, p, b), dst, 1);
}

void kv_pack_cpu(const struct kv_pack_layout *pl, uint32_t b, void *dst)
{
	unsigned char *out = dst;

	for (uint32_t l = 0; l < pl->layers; l++)
		for (uint32_t p = 0; p < pl->planes; p++, out += pl->plane_bytes)
			copy_plane(pl, engine_plane(pl, l, p, b), out, 1);
}

void kv_unpack_cpu(const struct kv_pack_layout *pl, const void *src, uint32_t b)
{
	unsigned char *in = (unsigned char *)src;

	for (uint32_t l = 0; l < pl->layers; l++)
		for (uint32_t p = 0; p < pl->planes; p++, in += pl->plane_bytes)
			copy_plane(pl, engine_plane(pl, l, p, b), in, 0);
}
