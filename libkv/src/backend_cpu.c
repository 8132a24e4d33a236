// SPDX-License-Identifier: MIT
/*
 * backend_cpu.c - the copy backend for an engine cache in host memory: the
 * CPU reference pack/unpack of kernels/kv_pack_cpu.c, run on libkv's worker
 * threads. No fences: host stores are ordered by the caller's own program order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"

struct cpu_ctx {
	struct kv_pack_layout pl;
	struct kv_check_shape shape;
};

static int cpu_fence(void *ctx, void **fence)
{
	*fence = NULL;
	return 0;
}

static void cpu_fence_drop(void *ctx, void *fence)
{
}

static int cpu_pack(void *ctx, void *fence, const uint32_t *blocks,
		    void *const *dst, size_t n)
{
	struct cpu_ctx *c = ctx;

	for (size_t i = 0; i < n; i++)
		kv_pack_cpu(&c->pl, blocks[i], dst[i]);
	return 0;
}

/* Hash each plane into its layer's check value right after packing it, while it is in L1/L2. */
static int cpu_pack_check(void *ctx, void *fence, const uint32_t *blocks,
			  void *const *dst, const kv_hash *h, uint64_t *const *check, size_t n)
{
	struct cpu_ctx *c = ctx;
	struct kv_csum st;

	for (size_t i = 0; i < n; i++) {
		unsigned char *out = dst[i];

		for (uint32_t l = 0; l < c->pl.layers; l++) {
			kv_check_begin(&st, &c->shape, h[i], l);
			for (uint32_t p = 0; p < c->pl.planes; p++, out += c->pl.plane_bytes) {
				kv_pack_cpu_plane(&c->pl, blocks[i], l, p, out);
				kv_csum_update(&st, out, c->pl.plane_bytes);
			}
			check[i][l] = kv_csum_digest(&st);
		}
	}
	return 0;
}

static int cpu_unpack(void *ctx, void *const *src, const uint32_t *blocks, size_t n)
{
	struct cpu_ctx *c = ctx;

	for (size_t i = 0; i < n; i++)
		kv_unpack_cpu(&c->pl, src[i], blocks[i]);
	return 0;
}

static void cpu_destroy(void *ctx)
{
	free(ctx);
}

int kv_backend_cpu_create(const struct kv_pack_layout *pl, struct kv_backend *be)
{
	struct cpu_ctx *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->pl = *pl;
	c->shape = (struct kv_check_shape){ pl->layers, pl->planes * pl->plane_bytes };
	*be = (struct kv_backend){
		.name = "cpu",
		.ctx = c,
		.fence = cpu_fence,
		.fence_drop = cpu_fence_drop,
		.pack = cpu_pack,
		.pack_check = cpu_pack_check,
		.unpack = cpu_unpack,
		.destroy = cpu_destroy,
	};
	return 0;
}
