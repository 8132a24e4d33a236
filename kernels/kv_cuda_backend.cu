// SPDX-License-Identifier: MIT
/*
 * kv_cuda_backend.cu - libkv's copy backend for an engine cache in CUDA
 * memory, built into libkv_cuda.so and reached through one entry point
 * (kv_cuda_backend_create_v1, see kv_cuda_backend.h).
 *
 * Streams and ordering (the rule engines rely on, docs/cuda.md):
 *  - fence() runs on the thread that calls kv_store(): it records an event on
 *    the engine's stream. pack() makes its own stream wait for that event
 *    before its kernel reads the engine's cache, so a store never reads KV
 *    the engine has not finished writing, whatever the engine queues later.
 *  - pack()/unpack() return only after their device work has finished (an
 *    event with blocking sync, so the waiting worker sleeps instead of
 *    spinning a core); libkv posts the completion after that.
 *  - unpack() does not wait for the engine: the engine blocks a load writes
 *    must not be in use by engine work still queued (the engine allocated
 *    them for the load).
 *
 * Concurrency: libkv's workers call pack/unpack from several threads. The
 * backend has a few lanes (kernel stream, copy stream, descriptors, staging),
 * each used by one call at a time, so a store and a load can run at once in
 * both directions.
 *
 * Paths (per call):
 *  - mapped: the pool is registered with cudaHostRegister(Mapped); the kernel
 *    reads or writes host slots directly over PCIe/C2C. One launch, no
 *    staging, best for small blocks (many small DMA copies would be slow).
 *  - staged: the kernel packs into device staging memory, then the copy
 *    engines move contiguous runs of slots (coalesced; one batched memcpy
 *    call when the driver has cudaMemcpyBatchAsync), double-buffered across
 *    the lane's two streams for batches larger than the staging area. Best
 *    for large blocks;
 *    also the fallback when the pool could not be registered or a slot is
 *    outside it (pageable copies, slower but correct).
 *  AUTO picks staged when the mean contiguous host run is at least
 *  staged_min_run bytes. The benchmark (tests/gpu/bench_cuda.cu) measures
 *  both so that the default can be set from data.
 */
#include <cuda_runtime.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_cuda_backend.h"

#define KV_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr size_t DEFAULT_STAGING = 32u << 20;
constexpr size_t DEFAULT_STAGED_MIN_RUN = 256u << 10;
constexpr unsigned DEFAULT_LANES = 2;
constexpr unsigned MAX_LANES = 16;
constexpr size_t DESC_BYTES = sizeof(uint64_t) + sizeof(uint32_t);

struct lane {
	pthread_mutex_t mu;
	cudaStream_t stream;       /* kernels (and the fence wait) */
	cudaStream_t cstream;      /* staged path: host<->staging copies */
	cudaEvent_t done;          /* blocking-sync event: end of a call */
	cudaEvent_t kdone[2];      /* staged: kernel on staging half h done */
	cudaEvent_t cdone[2];      /* staged: copies of staging half h done */
	char *h_desc;              /* pinned host descriptors of a call: */
	char *d_desc;              /*   canon[n] then blocks[n]; device copy */
	uint64_t *h_canon, *d_canon;
	uint32_t *h_blocks, *d_blocks;
	size_t cap;                /* descriptors the buffers can hold */
	char *staging;             /* device staging, staging_bytes */
	void **cp_dst;             /* memcpy batch arrays (host, malloc) */
	void **cp_src;
	size_t *cp_len;
	size_t cp_cap;
};

struct ctx {
	struct kv_cuda_geom g;     /* g.layer_base: device array */
	uint64_t *h_layers;        /* host copy of the layer bases */
	uint64_t *d_layers;
	uint32_t num_blocks;
	int device;
	cudaStream_t engine_stream;
	char *pool;                /* host pool and its device alias */
	size_t pool_len;
	char *pool_dev;
	bool registered, own_registration;
	unsigned path;
	size_t staging_bytes;      /* 0: no staging (mapped only) */
	size_t staged_min_run;
	unsigned max_ctas;
	bool quiet;
	int batch_copy;            /* 1 try cudaMemcpyBatchAsync, 0 don't */
	unsigned nlanes;
	struct lane lanes[MAX_LANES];
	unsigned next_lane;
	pthread_mutex_t ev_mu;     /* guards the free fence events */
	cudaEvent_t *ev_free;
	size_t ev_n, ev_cap;
	unsigned last_path;
	char desc[512];
};

/* cudaError_t -> negative errno (design: converted at the call). */
int cuda_errno(cudaError_t e)
{
	switch (e) {
	case cudaSuccess:
		return 0;
	case cudaErrorMemoryAllocation:
		return -ENOMEM;
	case cudaErrorInvalidValue:
	case cudaErrorInvalidDevicePointer:
	case cudaErrorInvalidResourceHandle:
		return -EINVAL;
	case cudaErrorInvalidDevice:
		return -ENODEV;
	case cudaErrorNoDevice:
	case cudaErrorInsufficientDriver:
	case cudaErrorStubLibrary:
	case cudaErrorCallRequiresNewerDriver:
	case cudaErrorSystemDriverMismatch:
	case cudaErrorCompatNotSupportedOnDevice:
	case cudaErrorDevicesUnavailable:
	case cudaErrorNoKernelImageForDevice:
	case cudaErrorNotSupported:
		return -EOPNOTSUPP;
	case cudaErrorNotPermitted:
		return -EPERM;
	default:
		return -EIO;
	}
}

void warn(const struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c && c->quiet)
		return;
	va_start(ap, fmt);
	fputs("libkv: cuda: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

uint64_t env_u64(const char *name, uint64_t def, uint64_t scale)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return def;
	v = strtoull(s, &end, 0);
	if (*end)
		return def;
	return (uint64_t)v * scale;
}

unsigned env_path(unsigned def)
{
	const char *s = getenv("KV_CUDA_PATH");

	if (!s)
		return def;
	if (!strcasecmp(s, "mapped"))
		return KV_CUDA_PATH_MAPPED;
	if (!strcasecmp(s, "staged"))
		return KV_CUDA_PATH_STAGED;
	return KV_CUDA_PATH_AUTO;
}

/* ------------------------------------------------------------- lanes */

void lane_free_desc(struct lane *ln)
{
	cudaFreeHost(ln->h_desc);
	cudaFree(ln->d_desc);
	ln->h_desc = ln->d_desc = NULL;
	ln->h_canon = ln->d_canon = NULL;
	ln->h_blocks = ln->d_blocks = NULL;
	ln->cap = 0;
}

/* Caller holds ln->mu and the lane's stream is idle. */
int lane_reserve(struct lane *ln, size_t n)
{
	size_t cap = ln->cap ? ln->cap : 256;
	cudaError_t e;

	if (n <= ln->cap)
		goto carve;
	while (cap < n)
		cap *= 2;
	lane_free_desc(ln);
	e = cudaHostAlloc((void **)&ln->h_desc, cap * DESC_BYTES, cudaHostAllocDefault);
	if (e == cudaSuccess)
		e = cudaMalloc((void **)&ln->d_desc, cap * DESC_BYTES);
	if (e != cudaSuccess) {
		(void)cudaGetLastError();
		lane_free_desc(ln);
		return cuda_errno(e);
	}
	ln->cap = cap;
carve:
	/* canon[n] then blocks[n], contiguous: one upload per call */
	ln->h_canon = (uint64_t *)ln->h_desc;
	ln->d_canon = (uint64_t *)ln->d_desc;
	ln->h_blocks = (uint32_t *)(ln->h_desc + n * sizeof(uint64_t));
	ln->d_blocks = (uint32_t *)(ln->d_desc + n * sizeof(uint64_t));
	return 0;
}

int lane_reserve_copies(struct lane *ln, size_t n)
{
	void **d, **s;
	size_t *l;

	if (n <= ln->cp_cap)
		return 0;
	d = (void **)realloc(ln->cp_dst, n * sizeof(*d));
	if (d)
		ln->cp_dst = d;
	s = (void **)realloc(ln->cp_src, n * sizeof(*s));
	if (s)
		ln->cp_src = s;
	l = (size_t *)realloc(ln->cp_len, n * sizeof(*l));
	if (l)
		ln->cp_len = l;
	if (!d || !s || !l)
		return -ENOMEM;
	ln->cp_cap = n;
	return 0;
}

struct lane *lane_get(struct ctx *c)
{
	unsigned start = __atomic_fetch_add(&c->next_lane, 1, __ATOMIC_RELAXED);

	for (unsigned k = 0; k < c->nlanes; k++) {
		struct lane *ln = &c->lanes[(start + k) % c->nlanes];

		if (!pthread_mutex_trylock(&ln->mu))
			return ln;
	}
	struct lane *ln = &c->lanes[start % c->nlanes];

	pthread_mutex_lock(&ln->mu);
	return ln;
}

void lane_put(struct lane *ln)
{
	pthread_mutex_unlock(&ln->mu);
}

/* ------------------------------------------------------------- fences */

/*
 * Runs on the engine's thread (kv_store): leave its current device as found,
 * since the driver context is shared with the engine's own CUDA runtime.
 */
struct device_guard {
	int prev = -1;
	cudaError_t enter(int dev)
	{
		if (cudaGetDevice(&prev) != cudaSuccess) {
			(void)cudaGetLastError();
			prev = -1;
		}
		return prev == dev ? cudaSuccess : cudaSetDevice(dev);
	}
	~device_guard()
	{
		int cur;

		if (prev >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != prev)
			cudaSetDevice(prev);
	}
};

int be_fence(void *vc, void **fence)
{
	struct ctx *c = (struct ctx *)vc;
	struct device_guard dg;
	cudaEvent_t ev = NULL;
	cudaError_t e;

	*fence = NULL;
	e = dg.enter(c->device);
	if (e != cudaSuccess)
		return cuda_errno(e);
	pthread_mutex_lock(&c->ev_mu);
	if (c->ev_n)
		ev = c->ev_free[--c->ev_n];
	pthread_mutex_unlock(&c->ev_mu);
	if (!ev) {
		e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
		if (e != cudaSuccess)
			return cuda_errno(e);
	}
	e = cudaEventRecord(ev, c->engine_stream);
	if (e != cudaSuccess) {
		cudaEventDestroy(ev);
		return cuda_errno(e);
	}
	*fence = ev;
	return 0;
}

/* Give a fence event back for reuse (a wait already enqueued keeps the
 * event's state at the time it was enqueued, so re-recording is safe). */
void be_fence_drop(void *vc, void *fence)
{
	struct ctx *c = (struct ctx *)vc;
	cudaEvent_t ev = (cudaEvent_t)fence;

	if (!ev)
		return;
	pthread_mutex_lock(&c->ev_mu);
	if (c->ev_n == c->ev_cap) {
		size_t cap = c->ev_cap ? 2 * c->ev_cap : 16;
		cudaEvent_t *a = cap <= 1024 ? (cudaEvent_t *)realloc(c->ev_free, cap * sizeof(*a))
					     : NULL;

		if (!a) {
			pthread_mutex_unlock(&c->ev_mu);
			cudaEventDestroy(ev);
			return;
		}
		c->ev_free = a;
		c->ev_cap = cap;
	}
	c->ev_free[c->ev_n++] = ev;
	pthread_mutex_unlock(&c->ev_mu);
}

/* ------------------------------------------------------------- transfers */

bool in_pool(const struct ctx *c, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)c->pool;

	return c->registered && a >= b && len <= c->pool_len && a - b <= c->pool_len - len;
}

/*
 * Enqueue on the lane's copy stream the host<->staging copies of blocks
 * [i0, i0+m) of the batch (block i0 + k at base + k*block_bytes) as
 * contiguous runs. to_host: staging -> host (pack), else host -> staging.
 */
int enqueue_copies(struct ctx *c, struct lane *ln, char *base, void *const *host, size_t i0,
		   size_t m, bool to_host)
{
	size_t bb = c->g.block_bytes, runs = 0;
	bool pinned = true; /* every run inside the registered pool */
	cudaError_t e;
	int ret = lane_reserve_copies(ln, m);

	if (ret)
		return ret;
	for (size_t k = 0; k < m;) {
		char *h = (char *)host[i0 + k];
		size_t len = bb, k2 = k + 1;

		while (k2 < m && (char *)host[i0 + k2] == h + len) {
			len += bb;
			k2++;
		}
		ln->cp_dst[runs] = to_host ? (void *)h : (void *)(base + k * bb);
		ln->cp_src[runs] = to_host ? (void *)(base + k * bb) : (void *)h;
		ln->cp_len[runs] = len;
		pinned = pinned && in_pool(c, h, len);
		runs++;
		k = k2;
	}
	/* One call for all runs where the driver has it (CUDA 12.8+). */
	if (runs > 1 && pinned && __atomic_load_n(&c->batch_copy, __ATOMIC_RELAXED)) {
		struct cudaMemcpyAttributes attr;
		size_t idx = 0;

		memset(&attr, 0, sizeof(attr));
		attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
		attr.flags = cudaMemcpyFlagPreferOverlapWithCompute;
		e = cudaMemcpyBatchAsync(ln->cp_dst, ln->cp_src, ln->cp_len, runs, &attr, &idx, 1,
					 ln->cstream);
		if (e == cudaSuccess)
			return 0;
		/* Old driver or refused: remember, clear the error, loop. */
		(void)cudaGetLastError();
		__atomic_store_n(&c->batch_copy, 0, __ATOMIC_RELAXED);
	}
	for (size_t r = 0; r < runs; r++) {
		e = cudaMemcpyAsync(ln->cp_dst[r], ln->cp_src[r], ln->cp_len[r],
				    to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice,
				    ln->cstream);
		if (e != cudaSuccess)
			return cuda_errno(e);
	}
	return 0;
}

/* Choose the path for a batch of host slots. */
unsigned choose_path(const struct ctx *c, void *const *host, size_t n)
{
	size_t bb = c->g.block_bytes, runs = 1;
	bool mappable = true;

	for (size_t i = 0; i < n && mappable; i++)
		mappable = in_pool(c, host[i], bb);
	if (!mappable)
		return KV_CUDA_PATH_STAGED; /* pageable or foreign memory */
	if (!c->staging_bytes || c->path == KV_CUDA_PATH_MAPPED)
		return KV_CUDA_PATH_MAPPED;
	if (c->path == KV_CUDA_PATH_STAGED)
		return KV_CUDA_PATH_STAGED;
	for (size_t i = 1; i < n; i++)
		if ((char *)host[i] != (char *)host[i - 1] + bb)
			runs++;
	return (n * bb) / runs >= c->staged_min_run ? KV_CUDA_PATH_STAGED : KV_CUDA_PATH_MAPPED;
}

int check_batch(const struct ctx *c, void *const *host, const uint32_t *blocks, size_t n)
{
	if (!host || !blocks || !n || n >= (1u << 31))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (blocks[i] >= c->num_blocks || !host[i])
			return -EINVAL;
	return 0;
}

/* Copy the n descriptors of the call (canon, then blocks) to the device. */
cudaError_t upload_desc(struct lane *ln, size_t n)
{
	return cudaMemcpyAsync(ln->d_desc, ln->h_desc, n * DESC_BYTES, cudaMemcpyHostToDevice,
			       ln->stream);
}

/*
 * Move one batch; dir KV_CUDA_PACK (engine -> host) or KV_CUDA_UNPACK.
 * fence (may be NULL) is consumed in every case. Returns when the device
 * work is finished, 0 or -errno.
 */
int transfer(struct ctx *c, cudaEvent_t fence, void *const *host, const uint32_t *blocks,
	     size_t n, int dir)
{
	size_t bb = c->g.block_bytes;
	bool pack = dir == KV_CUDA_PACK;
	struct lane *ln = NULL;
	cudaError_t e = cudaSuccess;
	unsigned path, w;
	int ret;

	ret = check_batch(c, host, blocks, n);
	if (ret)
		goto out;
	e = cudaSetDevice(c->device);
	if (e != cudaSuccess) {
		ret = cuda_errno(e);
		goto out;
	}
	path = choose_path(c, host, n);
	if (path == KV_CUDA_PATH_STAGED && !c->staging_bytes) {
		ret = -EINVAL; /* a slot outside the pool, and mapped only */
		goto out;
	}

	ln = lane_get(c);
	ret = lane_reserve(ln, n);
	if (ret)
		goto out;
	if (fence) {
		e = cudaStreamWaitEvent(ln->stream, fence, 0);
		if (e != cudaSuccess)
			goto cuda_fail;
	}
	memcpy(ln->h_blocks, blocks, n * sizeof(uint32_t));

	if (path == KV_CUDA_PATH_MAPPED) {
		uint64_t align = 0;

		for (size_t i = 0; i < n; i++) {
			ln->h_canon[i] = (uint64_t)(uintptr_t)(c->pool_dev +
							       ((char *)host[i] - c->pool));
			align |= ln->h_canon[i];
		}
		w = kv_cuda_vec_width(&c->g, c->h_layers, align);
		e = upload_desc(ln, n);
		if (e == cudaSuccess)
			e = kv_cuda_launch(&c->g, dir, ln->d_blocks, ln->d_canon, (uint32_t)n, w,
					   c->max_ctas, ln->stream);
		if (e != cudaSuccess)
			goto cuda_fail;
	} else {
		/*
		 * Double-buffered when the staging area holds two blocks or more:
		 * the kernel fills (pack) or drains (unpack) one half while the
		 * copy engines move the other. Chunk k uses half k % halves.
		 */
		unsigned halves = c->staging_bytes / bb >= 2 ? 2 : 1;
		size_t per = c->staging_bytes / halves / bb; /* blocks per chunk, >= 1 */
		size_t half_bytes = per * bb;

		for (size_t i = 0; i < n; i++)
			ln->h_canon[i] = (uint64_t)(uintptr_t)(ln->staging +
							       (i / per) % halves * half_bytes +
							       (i % per) * bb);
		w = kv_cuda_vec_width(&c->g, c->h_layers,
				      (uint64_t)(uintptr_t)ln->staging | half_bytes);
		e = upload_desc(ln, n);
		if (e != cudaSuccess)
			goto cuda_fail;
		for (size_t i0 = 0, k = 0; i0 < n; i0 += per, k++) {
			size_t m = n - i0 < per ? n - i0 : per;
			unsigned h = k % halves;
			char *base = ln->staging + h * half_bytes;

			if (pack) {
				/* the copies out of this half (chunk k - halves) are done */
				if (k >= halves)
					e = cudaStreamWaitEvent(ln->stream, ln->cdone[h], 0);
				if (e == cudaSuccess)
					e = kv_cuda_launch(&c->g, dir, ln->d_blocks + i0,
							   ln->d_canon + i0, (uint32_t)m, w,
							   c->max_ctas, ln->stream);
				if (e == cudaSuccess)
					e = cudaEventRecord(ln->kdone[h], ln->stream);
				if (e == cudaSuccess)
					e = cudaStreamWaitEvent(ln->cstream, ln->kdone[h], 0);
				if (e != cudaSuccess)
					goto cuda_fail;
				ret = enqueue_copies(c, ln, base, host, i0, m, true);
				if (ret)
					goto drain;
				e = cudaEventRecord(ln->cdone[h], ln->cstream);
			} else {
				/* the kernel reading this half (chunk k - halves) is done */
				if (k >= halves)
					e = cudaStreamWaitEvent(ln->cstream, ln->kdone[h], 0);
				if (e != cudaSuccess)
					goto cuda_fail;
				ret = enqueue_copies(c, ln, base, host, i0, m, false);
				if (ret)
					goto drain;
				e = cudaEventRecord(ln->cdone[h], ln->cstream);
				if (e == cudaSuccess)
					e = cudaStreamWaitEvent(ln->stream, ln->cdone[h], 0);
				if (e == cudaSuccess)
					e = kv_cuda_launch(&c->g, dir, ln->d_blocks + i0,
							   ln->d_canon + i0, (uint32_t)m, w,
							   c->max_ctas, ln->stream);
				if (e == cudaSuccess)
					e = cudaEventRecord(ln->kdone[h], ln->stream);
			}
			if (e != cudaSuccess)
				goto cuda_fail;
		}
		/* The last copies (pack) waited for every kernel: end on them. */
		if (pack) {
			e = cudaEventRecord(ln->done, ln->cstream);
			if (e == cudaSuccess)
				e = cudaEventSynchronize(ln->done);
			if (e != cudaSuccess)
				goto cuda_fail;
			__atomic_store_n(&c->last_path, path, __ATOMIC_RELAXED);
			goto out;
		}
	}
	e = cudaEventRecord(ln->done, ln->stream);
	if (e == cudaSuccess)
		e = cudaEventSynchronize(ln->done);
	if (e != cudaSuccess)
		goto cuda_fail;
	__atomic_store_n(&c->last_path, path, __ATOMIC_RELAXED);
	goto out;

cuda_fail:
	ret = cuda_errno(e);
	warn(c, "%s of %zu blocks failed: %s", pack ? "pack" : "unpack", n,
	     cudaGetErrorString(e));
drain:
	/* Never return while queued work may still touch the slots. */
	cudaStreamSynchronize(ln->stream);
	cudaStreamSynchronize(ln->cstream);
	(void)cudaGetLastError();
out:
	if (ln)
		lane_put(ln);
	if (fence)
		be_fence_drop(c, fence);
	return ret;
}

int be_pack(void *vc, void *fence, const uint32_t *blocks, void *const *dst, size_t n)
{
	return transfer((struct ctx *)vc, (cudaEvent_t)fence, dst, blocks, n, KV_CUDA_PACK);
}

int be_unpack(void *vc, void *const *src, const uint32_t *blocks, size_t n)
{
	return transfer((struct ctx *)vc, NULL, src, blocks, n, KV_CUDA_UNPACK);
}

uint32_t be_last_path(void *vc)
{
	return __atomic_load_n(&((struct ctx *)vc)->last_path, __ATOMIC_RELAXED);
}

const char *be_describe(void *vc)
{
	return ((struct ctx *)vc)->desc;
}

void pool_unref(struct ctx *c);

void be_destroy(void *vc)
{
	struct ctx *c = (struct ctx *)vc;
	struct device_guard dg;

	if (!c)
		return;
	dg.enter(c->device);
	for (unsigned k = 0; k < c->nlanes; k++) {
		struct lane *ln = &c->lanes[k];

		if (ln->stream) {
			cudaStreamSynchronize(ln->stream);
			cudaStreamDestroy(ln->stream);
		}
		if (ln->cstream) {
			cudaStreamSynchronize(ln->cstream);
			cudaStreamDestroy(ln->cstream);
		}
		if (ln->done)
			cudaEventDestroy(ln->done);
		for (unsigned h = 0; h < 2; h++) {
			if (ln->kdone[h])
				cudaEventDestroy(ln->kdone[h]);
			if (ln->cdone[h])
				cudaEventDestroy(ln->cdone[h]);
		}
		lane_free_desc(ln);
		cudaFree(ln->staging);
		free(ln->cp_dst);
		free(ln->cp_src);
		free(ln->cp_len);
	}
	for (unsigned k = 0; k < MAX_LANES; k++)
		pthread_mutex_destroy(&c->lanes[k].mu);
	for (size_t k = 0; k < c->ev_n; k++)
		cudaEventDestroy(c->ev_free[k]);
	free(c->ev_free);
	pthread_mutex_destroy(&c->ev_mu);
	pool_unref(c);
	cudaFree(c->d_layers);
	free(c->h_layers);
	(void)cudaGetLastError();
	free(c);
}

int check_params(const struct kv_cuda_params *p)
{
	uint64_t plane, block;

	if (!p->layers || !p->planes || p->planes > 2 || !p->block_tokens || !p->kv_heads ||
	    !p->head_dim || !p->esize || !p->num_blocks || !p->layer_base)
		return -EINVAL;
	plane = (uint64_t)p->block_tokens * p->kv_heads * p->head_dim * p->esize;
	block = plane * p->planes * p->layers;
	if (plane != p->plane_bytes || block != p->block_bytes || block > (1ull << 30))
		return -EINVAL;
	if (p->block_stride < plane || (p->planes > 1 && p->plane_stride < plane))
		return -EINVAL;
	for (uint32_t l = 0; l < p->layers; l++)
		if (!p->layer_base[l])
			return -EINVAL;
	if (p->lanes > MAX_LANES)
		return -EINVAL;
	return 0;
}

/* The engine's cache must be device (or managed) memory of this device. */
int check_layer_memory(const struct ctx *c)
{
	for (uint32_t l = 0; l < c->g.layers; l++) {
		struct cudaPointerAttributes a;
		cudaError_t e = cudaPointerGetAttributes(&a, (void *)(uintptr_t)c->h_layers[l]);

		if (e != cudaSuccess) {
			(void)cudaGetLastError();
			return -EINVAL;
		}
		if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged) {
			warn(c, "layer %u base %#llx is not CUDA device memory", l,
			     (unsigned long long)c->h_layers[l]);
			return -EINVAL;
		}
		if (a.type == cudaMemoryTypeDevice && a.device != c->device) {
			warn(c, "layer %u is on device %d, engine cache says %d", l, a.device,
			     c->device);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Registrations of host pools made by this library, counted: kv_attach()
 * creates the new backend before destroying the old one, so the same pool
 * is registered twice for a moment and must stay registered until the last
 * backend using it is gone. A pool registered by someone else (the engine)
 * is used and never unregistered here.
 */
struct pool_reg {
	void *addr;
	size_t len;
	unsigned refs;
};
pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
struct pool_reg regs[32];

/* Caller holds reg_mu. */
struct pool_reg *reg_find(void *addr, size_t len)
{
	for (auto &r : regs)
		if (r.refs && r.addr == addr && r.len == len)
			return &r;
	return NULL;
}

/* Register c->pool (or take a reference). Returns whether it is pinned. */
bool pool_ref(struct ctx *c)
{
	struct pool_reg *r;
	cudaError_t e;
	bool pinned = false;

	pthread_mutex_lock(&reg_mu);
	r = reg_find(c->pool, c->pool_len);
	if (r) {
		r->refs++;
		c->own_registration = true;
		pinned = true;
		goto out;
	}
	e = cudaHostRegister(c->pool, c->pool_len,
			     cudaHostRegisterMapped | cudaHostRegisterPortable);
	if (e == cudaErrorHostMemoryAlreadyRegistered) {
		(void)cudaGetLastError(); /* somebody else's: use, never unregister */
		pinned = true;
	} else if (e != cudaSuccess) {
		(void)cudaGetLastError();
		warn(c, "cannot register the %zu-byte host pool with CUDA (%s); "
		     "using pageable staged copies (slow)", c->pool_len, cudaGetErrorString(e));
	} else {
		pinned = true;
		for (auto &slot : regs)
			if (!slot.refs) {
				slot.addr = c->pool;
				slot.len = c->pool_len;
				slot.refs = 1;
				c->own_registration = true;
				break;
			}
		/* Table full: keep it registered for the life of the process. */
	}
out:
	pthread_mutex_unlock(&reg_mu);
	return pinned;
}

void pool_unref(struct ctx *c)
{
	struct pool_reg *r;

	if (!c->own_registration)
		return;
	pthread_mutex_lock(&reg_mu);
	r = reg_find(c->pool, c->pool_len);
	if (r && --r->refs == 0) {
		cudaHostUnregister(c->pool);
		(void)cudaGetLastError();
	}
	pthread_mutex_unlock(&reg_mu);
	c->own_registration = false;
}

int register_pool(struct ctx *c)
{
	cudaError_t e;
	void *dev = NULL;
	int can_map = 0;

	if (!c->pool || !c->pool_len)
		return 0;
	if (cudaDeviceGetAttribute(&can_map, cudaDevAttrCanMapHostMemory, c->device) !=
		    cudaSuccess || !can_map) {
		(void)cudaGetLastError();
		warn(c, "device cannot map host memory; using staged copies");
		return 0;
	}
	if (!pool_ref(c))
		return 0;
	e = cudaHostGetDevicePointer(&dev, c->pool, 0);
	if (e != cudaSuccess || !dev) {
		(void)cudaGetLastError();
		warn(c, "host pool is registered but not mapped (%s); using staged copies",
		     cudaGetErrorString(e));
		/* Still pinned: staged DMA copies stay fast. */
		return 0;
	}
	c->pool_dev = (char *)dev;
	c->registered = true;
	return 0;
}

int setup_lanes(struct ctx *c)
{
	cudaError_t e;

	for (unsigned k = 0; k < c->nlanes; k++) {
		struct lane *ln = &c->lanes[k];

		e = cudaStreamCreateWithFlags(&ln->stream, cudaStreamNonBlocking);
		if (e == cudaSuccess)
			e = cudaStreamCreateWithFlags(&ln->cstream, cudaStreamNonBlocking);
		if (e == cudaSuccess)
			e = cudaEventCreateWithFlags(&ln->done, cudaEventDisableTiming |
									cudaEventBlockingSync);
		for (unsigned h = 0; h < 2 && e == cudaSuccess; h++) {
			e = cudaEventCreateWithFlags(&ln->kdone[h], cudaEventDisableTiming);
			if (e == cudaSuccess)
				e = cudaEventCreateWithFlags(&ln->cdone[h], cudaEventDisableTiming);
		}
		if (e != cudaSuccess)
			return cuda_errno(e);
		if (lane_reserve(ln, 256))
			return -ENOMEM;
	}
	return 0;
}

/*
 * Device staging for every lane, unless the mapped path alone is enough.
 * Without memory for it, AUTO on a mapped pool degrades to mapped only.
 */
int setup_staging(struct ctx *c)
{
	cudaError_t e = cudaSuccess;

	if (c->path == KV_CUDA_PATH_MAPPED && c->registered) {
		c->staging_bytes = 0;
		return 0;
	}
	/* At least one block, whole blocks only. */
	if (c->staging_bytes < c->g.block_bytes)
		c->staging_bytes = c->g.block_bytes;
	c->staging_bytes -= c->staging_bytes % c->g.block_bytes;
	for (unsigned k = 0; k < c->nlanes && e == cudaSuccess; k++)
		e = cudaMalloc((void **)&c->lanes[k].staging, c->staging_bytes);
	if (e == cudaSuccess)
		return 0;
	(void)cudaGetLastError();
	for (unsigned k = 0; k < c->nlanes; k++) {
		cudaFree(c->lanes[k].staging);
		c->lanes[k].staging = NULL;
	}
	if (c->path != KV_CUDA_PATH_AUTO || !c->registered)
		return cuda_errno(e);
	warn(c, "no device memory for %zu bytes of staging per lane (%s); mapped path only",
	     c->staging_bytes, cudaGetErrorString(e));
	c->staging_bytes = 0;
	return 0;
}

} // namespace

KV_CUDA_EXPORT int kv_cuda_backend_create_v1(const struct kv_cuda_params *p,
					     struct kv_cuda_ops *ops)
{
	struct cudaDeviceProp prop;
	struct device_guard dg;
	struct ctx *c;
	int count = 0, ret;
	cudaError_t e;

	if (!p || !ops)
		return -EINVAL;
	if (p->abi != KV_CUDA_ABI_VERSION || p->size < sizeof(*p) || ops->size < sizeof(*ops))
		return -EPROTO;
	ret = check_params(p);
	if (ret)
		return ret;
	/* No driver, no device, driver too old: libkv reports -EOPNOTSUPP. */
	e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess || count <= 0) {
		(void)cudaGetLastError();
		return -EOPNOTSUPP;
	}
	if (p->device < 0 || p->device >= count)
		return -ENODEV;

	c = (struct ctx *)calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->ev_mu, NULL);
	for (unsigned k = 0; k < MAX_LANES; k++)
		pthread_mutex_init(&c->lanes[k].mu, NULL);
	c->device = p->device;
	c->quiet = p->flags & KV_CUDA_F_QUIET;
	c->engine_stream = (cudaStream_t)p->stream;
	c->num_blocks = p->num_blocks;
	c->pool = (char *)p->pool;
	c->pool_len = p->pool_len;
	c->batch_copy = 1;
	c->path = p->path ? p->path : env_path(KV_CUDA_PATH_AUTO);
	c->nlanes = p->lanes ? p->lanes : (unsigned)env_u64("KV_CUDA_LANES", DEFAULT_LANES, 1);
	if (c->nlanes < 1 || c->nlanes > MAX_LANES)
		c->nlanes = DEFAULT_LANES;
	c->staged_min_run = p->staged_min_run ? p->staged_min_run
			    : env_u64("KV_CUDA_STAGED_MIN_KB", DEFAULT_STAGED_MIN_RUN, 1024);
	c->max_ctas = p->max_ctas ? p->max_ctas : (unsigned)env_u64("KV_CUDA_MAX_CTAS", 0, 1);
	c->staging_bytes = p->staging_bytes ? p->staging_bytes
			   : env_u64("KV_CUDA_STAGING_MB", DEFAULT_STAGING, 1u << 20);

	c->g.layers = p->layers;
	c->g.planes = p->planes;
	c->g.block_tokens = p->block_tokens;
	c->g.kv_heads = p->kv_heads;
	c->g.head_dim = p->head_dim;
	c->g.esize = p->esize;
	c->g.head_major = p->head_major ? 1 : 0;
	c->g.block_stride = p->block_stride;
	c->g.plane_stride = p->planes > 1 ? p->plane_stride : 0;
	c->g.plane_bytes = p->plane_bytes;
	c->g.block_bytes = p->block_bytes;

	e = dg.enter(c->device);
	if (e != cudaSuccess) {
		ret = cuda_errno(e);
		goto fail;
	}
	e = kv_cuda_probe();
	if (e != cudaSuccess) {
		(void)cudaGetLastError();
		if (cudaGetDeviceProperties(&prop, c->device) == cudaSuccess)
			warn(c, "no kernel image for %s (sm_%d%d): %s; rebuild with "
			     "CUDA_ARCHS including %d%d", prop.name, prop.major, prop.minor,
			     cudaGetErrorString(e), prop.major, prop.minor);
		(void)cudaGetLastError();
		ret = -EOPNOTSUPP;
		goto fail;
	}
	c->h_layers = (uint64_t *)malloc(p->layers * sizeof(uint64_t));
	if (!c->h_layers) {
		ret = -ENOMEM;
		goto fail;
	}
	memcpy(c->h_layers, p->layer_base, p->layers * sizeof(uint64_t));
	ret = check_layer_memory(c);
	if (ret)
		goto fail;
	e = cudaMalloc((void **)&c->d_layers, p->layers * sizeof(uint64_t));
	if (e == cudaSuccess)
		e = cudaMemcpy(c->d_layers, c->h_layers, p->layers * sizeof(uint64_t),
			       cudaMemcpyHostToDevice);
	if (e != cudaSuccess) {
		ret = cuda_errno(e);
		goto fail;
	}
	c->g.layer_base = c->d_layers;

	ret = register_pool(c);
	if (!ret)
		ret = setup_lanes(c);
	if (!ret)
		ret = setup_staging(c);
	if (ret)
		goto fail;

	if (cudaGetDeviceProperties(&prop, c->device) != cudaSuccess) {
		(void)cudaGetLastError();
		snprintf(prop.name, sizeof(prop.name), "device %d", c->device);
		prop.major = prop.minor = 0;
		prop.multiProcessorCount = 0;
	}
	snprintf(c->desc, sizeof(c->desc),
		 "cuda: %s (sm_%d%d, %d SMs), pool %s, %u lanes, staging %zu MiB, path %s",
		 prop.name, prop.major, prop.minor, prop.multiProcessorCount,
		 c->registered ? "mapped" : "not mapped", c->nlanes, c->staging_bytes >> 20,
		 c->path == KV_CUDA_PATH_MAPPED ? "mapped"
		 : c->path == KV_CUDA_PATH_STAGED ? "staged" : "auto");

	ops->abi = KV_CUDA_ABI_VERSION;
	ops->ctx = c;
	ops->fence = be_fence;
	ops->fence_drop = be_fence_drop;
	ops->pack = be_pack;
	ops->unpack = be_unpack;
	ops->destroy = be_destroy;
	ops->last_path = be_last_path;
	ops->describe = be_describe;
	return 0;

fail:
	be_destroy(c);
	return ret;
}
