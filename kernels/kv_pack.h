/* SPDX-License-Identifier: MIT */
/*
 * kv_pack.h - the specification of pack/unpack between an engine's paged KV
 * cache and the canonical block, shared by the CPU reference (kv_pack_cpu.c)
 * and the CUDA kernels (kv_pack_cuda.cu), which must match it byte for byte.
 *
 * Canonical block: [layers][planes][block_tokens][kv_heads][head_dim], each
 * element esize bytes. Element (l, p, t, h, d) is at canonical byte offset
 *   ((((l*planes + p)*T + t)*H + h)*D + d) * esize
 * and, for engine block b, at engine address
 *   layer_base[l] + p*plane_stride + b*block_stride + inner(t, h)*D*esize + d*esize
 * where inner(t, h) = t*H + h for token-major layouts (NHD, MLA) and
 * h*T + t for head-major ones (HND). Every layout of kv.h reduces to this.
 */
#ifndef KV_PACK_H
#define KV_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kv_pack_layout {
	uint32_t layers;
	uint32_t planes;
	uint32_t block_tokens;  /* T */
	uint32_t kv_heads;      /* H */
	uint32_t head_dim;      /* D */
	uint32_t esize;         /* bytes per element */
	uint32_t head_major;    /* 1: HND, 0: NHD/MLA */
	uint32_t num_blocks;    /* valid engine block ids are [0, num_blocks) */
	size_t block_stride;    /* resolved, bytes */
	size_t plane_stride;    /* resolved, bytes (unused when planes == 1) */
	size_t plane_bytes;     /* T*H*D*esize: one plane of one block */
	size_t block_bytes;     /* layers*planes*plane_bytes: one canonical block */
	void *const *layer_base; /* layers pointers (not owned) */
};

/*
 * Resolve an engine cache description against a geometry: check that the
 * layout is known and agrees with planes (MLA: planes 1 and kv_heads 1;
 * others: planes 2), that num_blocks and every layer pointer are set, and
 * fill the default strides. Returns 0 or -EINVAL.
 */
int kv_pack_layout_init(struct kv_pack_layout *pl, const struct kv_geometry *g,
			const struct kv_engine_cache *ec);

/* Gather engine block b (b < num_blocks) into the canonical block dst. */
void kv_pack_cpu(const struct kv_pack_layout *pl, uint32_t b, void *dst);

/*
 * Gather one (layer l, plane p) of engine block b: plane_bytes written to dst,
 * which is that plane's place in the canonical block. kv_pack_cpu() is this
 * for every l, p in order; it lets a caller checksum each plane while hot.
 */
void kv_pack_cpu_plane(const struct kv_pack_layout *pl, uint32_t b, uint32_t l,
		       uint32_t p, void *dst);

/* Scatter the canonical block src into engine block b (exact inverse). */
void kv_unpack_cpu(const struct kv_pack_layout *pl, const void *src, uint32_t b);

#ifdef __cplusplus
}
#endif
#endif /* KV_PACK_H */
