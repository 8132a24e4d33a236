/* SPDX-License-Identifier: MIT */
/*
 * kv_cuda_backend.h - the C ABI between libkv (libkv/src/backend_cuda.c) and
 * the CUDA shared object libkv_cuda.so, plus (under __CUDACC__) the launch API
 * of the pack/unpack kernels used by the backend, the GPU tests and the
 * benchmark.
 *
 * libkv never links the CUDA runtime: it dlopen()s libkv_cuda.so and resolves
 * exactly one symbol, KV_CUDA_ENTRY. Every struct crossing the boundary
 * starts with its size and the ABI version, so either side can grow; a
 * mismatch is refused with -EPROTO rather than misread. Everything is plain C
 * with fixed-width fields: no libkv-internal struct (kv_pack_layout,
 * kv_backend) crosses the boundary.
 */
#ifndef KV_CUDA_BACKEND_H
#define KV_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KV_CUDA_ABI_VERSION 1
#define KV_CUDA_ENTRY "kv_cuda_backend_create_v1"
#define KV_CUDA_SONAME "libkv_cuda.so.0"
#define KV_CUDA_LIBNAME "libkv_cuda.so"

/* Which path moves bytes between the device and host pool slots. */
enum kv_cuda_path {
	KV_CUDA_PATH_AUTO = 0,   /* by size (see kv_cuda_params.staged_min_run) */
	KV_CUDA_PATH_MAPPED = 1, /* kernel reads/writes the mapped host pool */
	KV_CUDA_PATH_STAGED = 2, /* kernel <-> device staging, DMA <-> host */
};

/* Engine cache and host pool, resolved (see kv_pack.h for the mapping). */
struct kv_cuda_params {
	uint32_t size;           /* sizeof(struct kv_cuda_params) */
	uint32_t abi;            /* KV_CUDA_ABI_VERSION */
	uint32_t layers, planes, block_tokens, kv_heads, head_dim, esize;
	uint32_t head_major;     /* 1: HND, 0: NHD/MLA */
	uint32_t num_blocks;
	uint64_t block_stride;   /* bytes */
	uint64_t plane_stride;   /* bytes */
	uint64_t plane_bytes;    /* T*H*D*esize */
	uint64_t block_bytes;    /* layers*planes*plane_bytes */
	const uint64_t *layer_base; /* layers device addresses (copied) */
	int32_t device;          /* CUDA ordinal */
	uint32_t flags;          /* KV_CUDA_F_* */
	void *stream;            /* engine's cudaStream_t (NULL: legacy default) */
	void *pool;              /* host pool (page aligned), or NULL */
	uint64_t pool_len;
	/* Tuning; 0 means "default, or the environment" (docs/cuda.md). */
	uint32_t path;           /* enum kv_cuda_path */
	uint32_t lanes;          /* concurrent copy streams (default 2) */
	uint64_t staging_bytes;  /* device staging per lane (default 64 MiB) */
	uint64_t staged_min_run; /* AUTO: staged when the mean contiguous host
				    run is at least this (default 256 KiB) */
	uint32_t max_ctas;       /* cap on the persistent grid (default: all) */
	uint32_t pad0;
};

#define KV_CUDA_F_QUIET (1u << 0) /* no warnings on stderr */

/* Operations; same contracts as struct kv_backend in libkv/src/backend.h. */
struct kv_cuda_ops {
	uint32_t size;           /* sizeof(struct kv_cuda_ops) */
	uint32_t abi;            /* KV_CUDA_ABI_VERSION */
	void *ctx;
	int (*fence)(void *ctx, void **fence);
	void (*fence_drop)(void *ctx, void *fence);
	int (*pack)(void *ctx, void *fence, const uint32_t *blocks,
		    void *const *dst, size_t n);
	int (*unpack)(void *ctx, void *const *src, const uint32_t *blocks,
		      size_t n);
	void (*destroy)(void *ctx);
	/* Path used by the last pack/unpack (enum kv_cuda_path); for tests. */
	uint32_t (*last_path)(void *ctx);
	/* Static description: device name, paths available. Never NULL. */
	const char *(*describe)(void *ctx);
};

/*
 * The one exported entry point of libkv_cuda.so. p->size and ops->size must
 * be set by the caller (ops is filled up to its size). Returns 0, or
 * -EOPNOTSUPP (no usable driver or device: the caller falls back or refuses
 * the attach), -ENODEV (bad ordinal), -EINVAL (bad parameters), -EPROTO (ABI
 * mismatch), -ENOMEM.
 */
typedef int (*kv_cuda_create_fn)(const struct kv_cuda_params *p,
				 struct kv_cuda_ops *ops);
int kv_cuda_backend_create_v1(const struct kv_cuda_params *p,
			      struct kv_cuda_ops *ops);

#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
#include <cuda_runtime.h>

/*
 * Launch API of the kernels (kv_pack_cuda.cu), C++ linkage, inside
 * libkv_cuda.so and linked directly into the GPU tests and benchmark.
 *
 * A batch is n engine blocks blocks[i] (device array) and n canonical blocks
 * at canon[i] (device array of addresses; device memory or mapped host
 * memory). One launch moves all layers and planes of all n blocks.
 */
struct kv_cuda_geom {
	uint32_t layers, planes, block_tokens, kv_heads, head_dim, esize;
	uint32_t head_major;
	uint64_t block_stride, plane_stride, plane_bytes, block_bytes;
	const uint64_t *layer_base;  /* device array of layers addresses */
};

enum kv_cuda_dir { KV_CUDA_PACK = 0, KV_CUDA_UNPACK = 1 };

/*
 * Widest access (16, 8, 4, 2 or 1 bytes) every address of the batch allows:
 * host-side check of the layer bases (host copy hbase), the strides, the
 * row/plane size and the canonical addresses (canon_align: OR of all of
 * them, or 0 to ignore).
 */
unsigned kv_cuda_vec_width(const struct kv_cuda_geom *g, const uint64_t *hbase,
			   uint64_t canon_align);

/*
 * cudaSuccess when the current device can run the kernels (this build has
 * machine code or PTX for it), else the error (cudaErrorNoKernelImageForDevice).
 */
cudaError_t kv_cuda_probe(void);

/*
 * Enqueue one pack or unpack launch on stream. width from
 * kv_cuda_vec_width(); max_ctas 0 for the default persistent grid.
 * Returns cudaSuccess or the launch error.
 */
cudaError_t kv_cuda_launch(const struct kv_cuda_geom *g, int dir,
			   const uint32_t *blocks, const uint64_t *canon,
			   uint32_t n, unsigned width, unsigned max_ctas,
			   cudaStream_t stream);
#endif /* __CUDACC__ */

#endif /* KV_CUDA_BACKEND_H */
