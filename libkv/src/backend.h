/* SPDX-License-Identifier: MIT */
/*
 * backend.h - copy backends move blocks between the engine's cache and host
 * pool slots: the CPU reference (backend_cpu.c) for KV_MEM_HOST and the CUDA
 * backend (backend_cuda.c, which dlopens libkv_cuda.so) for KV_MEM_CUDA.
 */
#ifndef KV_BACKEND_H
#define KV_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "kv_pack.h"

struct kv_backend {
	const char *name;
	void *ctx;
	/*
	 * Capture an ordering point on the submitting thread (CUDA: record an
	 * event on the engine's stream). *fence may be set to NULL. Called by
	 * kv_store() before it queues. Returns 0 or -errno.
	 */
	int (*fence)(void *ctx, void **fence);
	/* Drop a fence that pack() will not consume (request rejected). */
	void (*fence_drop)(void *ctx, void *fence);
	/*
	 * Pack engine blocks[i] into dst[i] (host pool slots, block_bytes each)
	 * after fence (consumed). Synchronous: the bytes are in dst on return.
	 * Returns 0 or -errno.
	 */
	int (*pack)(void *ctx, void *fence, const uint32_t *blocks, void *const *dst,
		    size_t n);
	/*
	 * Optional (NULL when absent): pack() that also writes block i's check
	 * values (check.h: one per layer, under name h[i]) to check[i][0..layers),
	 * computed while the bytes are hot.
	 */
	int (*pack_check)(void *ctx, void *fence, const uint32_t *blocks,
			  void *const *dst, const kv_hash *h, uint64_t *const *check,
			  size_t n);
	/* Unpack src[i] into engine blocks[i]; done on return. 0 or -errno. */
	int (*unpack)(void *ctx, void *const *src, const uint32_t *blocks, size_t n);
	void (*destroy)(void *ctx);
};

/*
 * Create the backend for an engine cache already resolved into pl (whose
 * layer_base must outlive the backend). pool/pool_len is the host pool
 * (the CUDA backend registers it with the device). Returns 0 or -errno:
 * -EOPNOTSUPP when the CUDA runtime or libkv_cuda.so is unavailable.
 */
int kv_backend_cpu_create(const struct kv_pack_layout *pl, struct kv_backend *be);
int kv_backend_cuda_create(const struct kv_pack_layout *pl,
			   const struct kv_engine_cache *ec, void *pool,
			   size_t pool_len, struct kv_backend *be);

#endif /* KV_BACKEND_H */
