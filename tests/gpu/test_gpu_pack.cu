// SPDX-License-Identifier: MIT
/*
 * test_gpu_pack - the CUDA pack/unpack kernels and the CUDA backend against
 * the CPU reference (kernels/kv_pack_cpu.c), byte for byte.
 *
 * For every layout, random geometries (odd head_dim, 1-byte elements, odd
 * block_tokens, custom strides and misaligned layer bases), random block ids
 * and fresh random data:
 *  - backend pack into host pool slots on each path (mapped, staged with a
 *    staging area of a few blocks so batches are chunked, auto), behind an
 *    engine-stream write that the fence must order before the pack;
 *  - backend unpack of random canonical blocks into a poisoned engine cache;
 *  - raw kernel launches to and from device memory at every vector width
 *    the addresses allow;
 *  - error paths: bad block ids, empty batches, slots outside the pool.
 * Outputs are poisoned before each run and compared whole (guards, gaps
 * between blocks and planes, unused slots), so stray or missing bytes fail.
 * SKIPs (77) without a usable CUDA device. KV_SEED=N reproduces a run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_common.h"
#include "kv_cuda_backend.h"
#include "kv_pack.h"

static struct rng R;
static unsigned long checks;

#define POISON_HOST 0xA5
#define POISON_ENGINE 0x5A

struct tcase {
	struct kv_geometry g;
	uint32_t layout;
	uint32_t nb;
	size_t esize;
	size_t alloc;            /* bytes per layer allocation */
	size_t off;              /* layer base offset inside its allocation */
	unsigned char *h[16];    /* host mirror allocations */
	unsigned char *d[16];    /* device allocations */
	void *hbase[16], *dbase[16];
	struct kv_pack_layout plh, pld; /* resolved for the mirror / the device */
	char name[160];
};

__global__ void spin_kernel(long long cycles)
{
	long long t0 = clock64();

	while (clock64() - t0 < cycles)
		;
}

static uint32_t pick(const uint32_t *v, size_t n)
{
	return v[rnd_below(&R, (uint32_t)n)];
}
#define PICK(a) pick(a, sizeof(a) / sizeof(a[0]))

static void make_case(struct tcase *c, uint32_t layout)
{
	static const uint32_t dtypes[] = { KV_DTYPE_FP16, KV_DTYPE_BF16, KV_DTYPE_FP32,
					   KV_DTYPE_FP8_E4M3, KV_DTYPE_FP8_E5M2, KV_DTYPE_INT8 };
	static const uint32_t tokens[] = { 1, 2, 3, 5, 8, 16, 17 };
	static const uint32_t heads[] = { 1, 2, 3, 4, 8 };
	static const uint32_t dims[] = { 1, 3, 7, 16, 64, 67, 128, 129 };
	static const uint32_t mla_dims[] = { 1, 5, 64, 512, 576, 577 };
	static const uint32_t pads[] = { 0, 0, 1, 2, 16, 48, 256 };
	static const uint32_t offs[] = { 0, 0, 0, 1, 2, 4, 16, 256 };
	struct kv_engine_cache ec;
	size_t plane, bs = 0, ps = 0, extent;

	memset(c, 0, sizeof(*c));
	c->layout = layout;
	c->g.layers = 1 + rnd_below(&R, 4);
	c->g.planes = layout == KV_LAYOUT_MLA ? 1 : 2;
	c->g.block_tokens = PICK(tokens);
	c->g.kv_heads = layout == KV_LAYOUT_MLA ? 1 : PICK(heads);
	c->g.head_dim = layout == KV_LAYOUT_MLA ? PICK(mla_dims) : PICK(dims);
	c->g.dtype = PICK(dtypes);
	c->nb = 3 + rnd_below(&R, 30);
	c->esize = kv_dtype_size(c->g.dtype);
	CHECK(c->esize, "dtype %u has no size", c->g.dtype);
	plane = (size_t)c->g.block_tokens * c->g.kv_heads * c->g.head_dim * c->esize;

	memset(&ec, 0, sizeof(ec));
	ec.mem = KV_MEM_HOST;
	ec.layout = layout;
	ec.num_blocks = c->nb;
	if (rnd_below(&R, 2)) { /* custom strides, never overlapping */
		size_t pb = PICK(pads), pp = PICK(pads);

		switch (layout) {
		case KV_LAYOUT_VLLM_NHD:
		case KV_LAYOUT_VLLM_HND:
			bs = plane + pb;
			ps = c->nb * bs + pp;
			break;
		case KV_LAYOUT_FLASHINFER_NHD:
			ps = plane + pp;
			bs = ps + plane + pb;
			break;
		default:
			bs = plane + pb;
			break;
		}
		ec.block_stride = bs;
		ec.plane_stride = ps;
	}
	c->off = PICK(offs);
	/* Resolve once with placeholders to learn the extent. */
	for (uint32_t l = 0; l < c->g.layers; l++)
		c->hbase[l] = (void *)(uintptr_t)4096;
	ec.layers = c->hbase;
	CHECK(kv_pack_layout_init(&c->plh, &c->g, &ec) == 0, "layout init refused a valid case");
	extent = (c->g.planes - 1) * c->plh.plane_stride + (c->nb - 1) * c->plh.block_stride + plane;
	c->alloc = c->off + extent + 64; /* 64 guard bytes after */

	for (uint32_t l = 0; l < c->g.layers; l++) {
		c->h[l] = (unsigned char *)malloc(c->alloc);
		CHECK(c->h[l], "out of memory");
		CK(cudaMalloc((void **)&c->d[l], c->alloc));
		c->hbase[l] = c->h[l] + c->off;
		c->dbase[l] = c->d[l] + c->off;
	}
	ec.layers = c->hbase;
	CHECK(kv_pack_layout_init(&c->plh, &c->g, &ec) == 0, "layout init (host)");
	ec.layers = c->dbase;
	ec.mem = KV_MEM_CUDA;
	CHECK(kv_pack_layout_init(&c->pld, &c->g, &ec) == 0, "layout init (device)");
	snprintf(c->name, sizeof(c->name),
		 "layout %u L%u P%u T%u H%u D%u es%zu nb%u bs%zu ps%zu off%zu", layout,
		 c->g.layers, c->g.planes, c->g.block_tokens, c->g.kv_heads, c->g.head_dim,
		 c->esize, c->nb, c->plh.block_stride, c->plh.plane_stride, c->off);
}

static void free_case(struct tcase *c)
{
	for (uint32_t l = 0; l < c->g.layers; l++) {
		free(c->h[l]);
		CK(cudaFree(c->d[l]));
	}
}

/* Mirror -> device, whole allocations. */
static void push_engine(struct tcase *c)
{
	for (uint32_t l = 0; l < c->g.layers; l++)
		CK(cudaMemcpy(c->d[l], c->h[l], c->alloc, cudaMemcpyHostToDevice));
}

/* Device must equal the mirror, every byte of every allocation. */
static void compare_engine(struct tcase *c, const char *what)
{
	unsigned char *tmp = (unsigned char *)malloc(c->alloc);

	CHECK(tmp, "out of memory");
	for (uint32_t l = 0; l < c->g.layers; l++) {
		CK(cudaMemcpy(tmp, c->d[l], c->alloc, cudaMemcpyDeviceToHost));
		if (memcmp(tmp, c->h[l], c->alloc)) {
			size_t i = 0;

			while (tmp[i] == c->h[l][i])
				i++;
			CHECK(0, "%s: %s: layer %u differs at byte %zu (got %02x want %02x)", what,
			      c->name, l, i, tmp[i], c->h[l][i]);
		}
	}
	free(tmp);
	checks++;
}

static int make_backend(struct tcase *c, unsigned path, void *pool, size_t pool_len,
			cudaStream_t es, struct kv_cuda_ops *ops)
{
	struct kv_cuda_params p;
	uint64_t bases[16];

	for (uint32_t l = 0; l < c->g.layers; l++)
		bases[l] = (uint64_t)(uintptr_t)c->pld.layer_base[l];
	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	p.abi = KV_CUDA_ABI_VERSION;
	p.layers = c->pld.layers;
	p.planes = c->pld.planes;
	p.block_tokens = c->pld.block_tokens;
	p.kv_heads = c->pld.kv_heads;
	p.head_dim = c->pld.head_dim;
	p.esize = c->pld.esize;
	p.head_major = c->pld.head_major;
	p.num_blocks = c->pld.num_blocks;
	p.block_stride = c->pld.block_stride;
	p.plane_stride = c->pld.plane_stride;
	p.plane_bytes = c->pld.plane_bytes;
	p.block_bytes = c->pld.block_bytes;
	p.layer_base = bases;
	p.device = 0;
	p.stream = es;
	p.pool = pool;
	p.pool_len = pool_len;
	p.path = path;
	/* A few blocks of staging so that batches are chunked. */
	p.staging_bytes = c->pld.block_bytes * (1 + rnd_below(&R, 3));
	p.lanes = 1 + rnd_below(&R, 2);
	memset(ops, 0, sizeof(*ops));
	ops->size = sizeof(*ops);
	ops->abi = KV_CUDA_ABI_VERSION;
	return kv_cuda_backend_create_v1(&p, ops);
}

/* n distinct values below nb in random order (n <= nb <= 64). */
static void distinct_ids(uint32_t *out, uint32_t n, uint32_t nb)
{
	uint32_t perm[64];

	for (uint32_t i = 0; i < nb; i++)
		perm[i] = i;
	for (uint32_t i = nb - 1; i > 0; i--) {
		uint32_t j = rnd_below(&R, i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	memcpy(out, perm, n * sizeof(uint32_t));
}

/* n distinct slot indices below nslots; sometimes runs of adjacent slots. */
static void pick_slots(uint32_t *slot, uint32_t n, uint32_t nslots)
{
	uint32_t *perm = (uint32_t *)malloc(nslots * sizeof(uint32_t));

	CHECK(perm, "out of memory");
	for (uint32_t i = 0; i < nslots; i++)
		perm[i] = i;
	if (rnd_below(&R, 3) == 0) {
		uint32_t start = rnd_below(&R, nslots - n + 1);

		for (uint32_t i = 0; i < n; i++)
			slot[i] = start + i;
	} else {
		for (uint32_t i = nslots - 1; i > 0; i--) {
			uint32_t j = rnd_below(&R, i + 1), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
		memcpy(slot, perm, n * sizeof(uint32_t));
	}
	free(perm);
}

/* Every byte of the pool outside the used slots must still be poison. */
static void check_unused(const unsigned char *pool, size_t pool_len, const uint32_t *slot,
			 uint32_t n, size_t bb, const char *name)
{
	unsigned char *used = (unsigned char *)calloc(pool_len / bb + 1, 1);

	CHECK(used, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		used[slot[i]] = 1;
	for (size_t off = 0; off < pool_len; off++)
		if (!(off / bb < pool_len / bb && used[off / bb]))
			CHECK(pool[off] == POISON_HOST, "%s: pool byte %zu outside the slots written",
			      name, off);
	free(used);
}

static void test_backend(struct tcase *c, unsigned path)
{
	size_t bb = c->plh.block_bytes;
	uint32_t nslots = 32, n, slot[32], blocks[32];
	size_t pool_len = ((nslots * bb + 4095) / 4096) * 4096;
	unsigned char *pool = NULL, *exp = (unsigned char *)malloc(bb), *newdata;
	void *ptrs[32];
	struct kv_cuda_ops ops;
	cudaStream_t es;
	void *fence;
	int ret;

	CHECK(exp, "out of memory");
	CHECK(!posix_memalign((void **)&pool, 4096, pool_len), "out of memory");
	CK(cudaStreamCreateWithFlags(&es, cudaStreamNonBlocking));
	ret = make_backend(c, path, pool, pool_len, es, &ops);
	CHECK(ret == 0, "%s: backend create (path %u): %d", c->name, path, ret);

	/* --- pack, ordered after engine work by the fence */
	rnd_fill(&R, c->h[0], c->alloc);
	for (uint32_t l = 1; l < c->g.layers; l++)
		rnd_fill(&R, c->h[l], c->alloc);
	push_engine(c);
	CK(cudaMallocHost((void **)&newdata, c->alloc));
	rnd_fill(&R, newdata, c->alloc);
	/* The engine is still busy, then rewrites layer 0: the pack must see it. */
	spin_kernel<<<1, 1, 0, es>>>(20 * 1000 * 1000);
	CK(cudaGetLastError());
	CK(cudaMemcpyAsync(c->d[0], newdata, c->alloc, cudaMemcpyHostToDevice, es));
	memcpy(c->h[0], newdata, c->alloc);
	memset(pool, POISON_HOST, pool_len);
	n = 1 + rnd_below(&R, nslots);
	pick_slots(slot, n, nslots);
	for (uint32_t i = 0; i < n; i++) {
		blocks[i] = rnd_below(&R, c->nb); /* duplicates are fine for pack */
		ptrs[i] = pool + (size_t)slot[i] * bb;
	}
	CHECK(ops.fence(ops.ctx, &fence) == 0, "fence");
	ret = ops.pack(ops.ctx, fence, blocks, ptrs, n);
	CHECK(ret == 0, "%s: pack of %u blocks: %d", c->name, n, ret);
	if (path)
		CHECK(ops.last_path(ops.ctx) == path, "%s: pack took path %u, forced %u", c->name,
		      ops.last_path(ops.ctx), path);
	for (uint32_t i = 0; i < n; i++) {
		kv_pack_cpu(&c->plh, blocks[i], exp);
		if (memcmp(exp, ptrs[i], bb)) {
			size_t k = 0;

			while (exp[k] == ((unsigned char *)ptrs[i])[k])
				k++;
			CHECK(0, "%s path %u (took %u): pack block %u (batch %u/%u) differs at byte %zu",
			      c->name, path, ops.last_path(ops.ctx), blocks[i], i, n, k);
		}
		checks++;
	}
	check_unused(pool, pool_len, slot, n, bb, c->name);
	CK(cudaStreamSynchronize(es));
	CK(cudaFreeHost(newdata));

	/* --- unpack of random canonical blocks into a poisoned engine cache */
	for (uint32_t l = 0; l < c->g.layers; l++)
		memset(c->h[l], POISON_ENGINE, c->alloc);
	push_engine(c);
	n = 1 + rnd_below(&R, c->nb < nslots ? c->nb : nslots);
	distinct_ids(blocks, n, c->nb); /* distinct targets */
	pick_slots(slot, n, nslots);
	for (uint32_t i = 0; i < n; i++) {
		ptrs[i] = pool + (size_t)slot[i] * bb;
		rnd_fill(&R, ptrs[i], bb);
		kv_unpack_cpu(&c->plh, ptrs[i], blocks[i]);
	}
	ret = ops.unpack(ops.ctx, ptrs, blocks, n);
	CHECK(ret == 0, "%s: unpack of %u blocks: %d", c->name, n, ret);
	compare_engine(c, path == KV_CUDA_PATH_MAPPED ? "unpack mapped"
			  : path == KV_CUDA_PATH_STAGED ? "unpack staged" : "unpack auto");

	/* --- error paths: refused, nothing written */
	blocks[0] = c->nb;
	CHECK(ops.fence(ops.ctx, &fence) == 0, "fence");
	CHECK(ops.pack(ops.ctx, fence, blocks, ptrs, 1) == -EINVAL, "bad block id accepted");
	CHECK(ops.unpack(ops.ctx, ptrs, blocks, 1) == -EINVAL, "bad block id accepted");
	blocks[0] = 0;
	CHECK(ops.pack(ops.ctx, NULL, blocks, ptrs, 0) == -EINVAL, "empty batch accepted");
	CHECK(ops.unpack(ops.ctx, NULL, blocks, 1) == -EINVAL, "NULL slots accepted");
	compare_engine(c, "after refused calls");
	{
		/* A slot outside the registered pool: staged (pageable) or refused. */
		unsigned char *foreign = (unsigned char *)malloc(bb);
		void *fp = foreign;

		CHECK(foreign, "out of memory");
		memset(foreign, POISON_HOST, bb);
		ret = ops.pack(ops.ctx, NULL, blocks, &fp, 1);
		if (path == KV_CUDA_PATH_MAPPED) {
			CHECK(ret == -EINVAL, "mapped-only pack to a foreign slot: %d", ret);
		} else {
			CHECK(ret == 0, "pack to a foreign slot: %d", ret);
			kv_pack_cpu(&c->plh, blocks[0], exp);
			CHECK(!memcmp(exp, foreign, bb), "%s: pack to a foreign slot differs", c->name);
		}
		free(foreign);
		checks++;
	}
	ops.destroy(ops.ctx);
	CK(cudaStreamDestroy(es));
	free(pool);
	free(exp);
}

/* Raw launches to/from device memory at every width the addresses allow. */
static void test_raw(struct tcase *c)
{
	size_t bb = c->plh.block_bytes;
	uint32_t n = 1 + rnd_below(&R, c->nb), blocks[64];
	struct kv_cuda_geom g;
	uint64_t hbase[16], *dlayers, *dcanon, hcanon[64];
	uint32_t *dblocks;
	unsigned char *dcan, *hcan = (unsigned char *)malloc(n * bb + 16);
	unsigned char *exp = (unsigned char *)malloc(bb);
	unsigned wmax;

	CHECK(hcan && exp, "out of memory");
	for (uint32_t l = 0; l < c->g.layers; l++)
		hbase[l] = (uint64_t)(uintptr_t)c->dbase[l];
	CK(cudaMalloc((void **)&dlayers, c->g.layers * sizeof(uint64_t)));
	CK(cudaMemcpy(dlayers, hbase, c->g.layers * sizeof(uint64_t), cudaMemcpyHostToDevice));
	memset(&g, 0, sizeof(g));
	g.layers = c->pld.layers;
	g.planes = c->pld.planes;
	g.block_tokens = c->pld.block_tokens;
	g.kv_heads = c->pld.kv_heads;
	g.head_dim = c->pld.head_dim;
	g.esize = c->pld.esize;
	g.head_major = c->pld.head_major;
	g.block_stride = c->pld.block_stride;
	g.plane_stride = c->pld.planes > 1 ? c->pld.plane_stride : 0;
	g.plane_bytes = c->pld.plane_bytes;
	g.block_bytes = c->pld.block_bytes;
	g.layer_base = dlayers;
	wmax = kv_cuda_vec_width(&g, hbase, 0);
	CK(cudaMalloc((void **)&dcan, n * bb + 16));
	CK(cudaMalloc((void **)&dcanon, n * sizeof(uint64_t)));
	CK(cudaMalloc((void **)&dblocks, n * sizeof(uint32_t)));

	for (unsigned w = wmax; w >= 1; w >>= 1) {
		/* Pack: random ids (duplicates allowed) into a poisoned buffer. */
		for (uint32_t i = 0; i < n; i++) {
			blocks[i] = rnd_below(&R, c->nb);
			hcanon[i] = (uint64_t)(uintptr_t)(dcan + i * bb);
		}
		for (uint32_t l = 0; l < c->g.layers; l++)
			rnd_fill(&R, c->h[l], c->alloc);
		push_engine(c);
		CK(cudaMemcpy(dblocks, blocks, n * sizeof(uint32_t), cudaMemcpyHostToDevice));
		CK(cudaMemcpy(dcanon, hcanon, n * sizeof(uint64_t), cudaMemcpyHostToDevice));
		CK(cudaMemset(dcan, POISON_HOST, n * bb + 16));
		/* A small grid cap now and then exercises the grid-stride loop. */
		CK(kv_cuda_launch(&g, KV_CUDA_PACK, dblocks, dcanon, n, w, rnd_below(&R, 4) * 7, 0));
		CK(cudaDeviceSynchronize());
		CK(cudaMemcpy(hcan, dcan, n * bb + 16, cudaMemcpyDeviceToHost));
		for (uint32_t i = 0; i < n; i++) {
			kv_pack_cpu(&c->plh, blocks[i], exp);
			CHECK(!memcmp(exp, hcan + i * bb, bb), "%s: raw pack width %u block %u differs",
			      c->name, w, i);
			checks++;
		}
		for (size_t k = n * bb; k < n * bb + 16; k++)
			CHECK(hcan[k] == POISON_HOST, "%s: raw pack width %u wrote past the batch",
			      c->name, w);

		/* Unpack: distinct ids from random canonical data into poison. */
		distinct_ids(blocks, n, c->nb);
		for (uint32_t l = 0; l < c->g.layers; l++)
			memset(c->h[l], POISON_ENGINE, c->alloc);
		push_engine(c);
		rnd_fill(&R, hcan, n * bb);
		for (uint32_t i = 0; i < n; i++)
			kv_unpack_cpu(&c->plh, hcan + i * bb, blocks[i]);
		CK(cudaMemcpy(dcan, hcan, n * bb, cudaMemcpyHostToDevice));
		CK(cudaMemcpy(dblocks, blocks, n * sizeof(uint32_t), cudaMemcpyHostToDevice));
		CK(kv_cuda_launch(&g, KV_CUDA_UNPACK, dblocks, dcanon, n, w, rnd_below(&R, 4) * 7, 0));
		CK(cudaDeviceSynchronize());
		compare_engine(c, "raw unpack");
	}
	/* A width that does not divide the rows is refused before launching. */
	if (g.plane_bytes % 16 || (g.head_major && (g.head_dim * g.esize) % 16))
		CHECK(kv_cuda_launch(&g, KV_CUDA_PACK, dblocks, dcanon, n, 16, 0, 0) ==
			      cudaErrorInvalidValue, "width 16 accepted for rows it does not divide");
	(void)cudaGetLastError();
	CK(cudaFree(dcan));
	CK(cudaFree(dcanon));
	CK(cudaFree(dblocks));
	CK(cudaFree(dlayers));
	free(hcan);
	free(exp);
}

/*
 * Several threads on one backend at once (libkv's workers do this): two pack
 * blocks [0, nb/2) into their own slots while two unpack into [nb/2, nb),
 * more threads than lanes, so some wait for a lane.
 */
struct conc {
	struct tcase *c;
	struct kv_cuda_ops *ops;
	unsigned char *pool;
	unsigned id;
	uint64_t seed;
	int fail;
};

static void *conc_thread(void *p)
{
	struct conc *t = (struct conc *)p;
	struct tcase *c = t->c;
	size_t bb = c->plh.block_bytes;
	struct rng r = { t->seed };
	unsigned char *exp = (unsigned char *)malloc(bb);
	uint32_t half = c->nb / 2, q = half / 2;

	if (!exp) {
		t->fail = 1;
		return NULL;
	}
	for (unsigned it = 0; it < 8 && !t->fail; it++) {
		uint32_t blocks[8], n = 1 + rnd_below(&r, 8);
		void *ptrs[8];

		for (uint32_t i = 0; i < n; i++)
			ptrs[i] = t->pool + ((size_t)t->id * 8 + i) * bb;
		if (t->id < 2) {
			for (uint32_t i = 0; i < n; i++)
				blocks[i] = rnd_below(&r, half);
			if (t->ops->pack(t->ops->ctx, NULL, blocks, ptrs, n)) {
				t->fail = 1;
				break;
			}
			for (uint32_t i = 0; i < n; i++) {
				kv_pack_cpu(&c->plh, blocks[i], exp);
				if (memcmp(exp, ptrs[i], bb))
					t->fail = 2;
			}
		} else {
			/* this thread's own quarter: [half + (id-2)*q, +q) */
			n = n < q ? n : q;
			for (uint32_t i = 0; i < n; i++) {
				blocks[i] = half + (t->id - 2) * q + (i + it) % q;
				rnd_fill(&r, ptrs[i], bb);
				kv_unpack_cpu(&c->plh, ptrs[i], blocks[i]);
			}
			if (t->ops->unpack(t->ops->ctx, ptrs, blocks, n))
				t->fail = 3;
		}
	}
	free(exp);
	return NULL;
}

static void test_concurrent(void)
{
	struct tcase c;
	struct kv_cuda_ops ops;
	unsigned char *pool = NULL;
	size_t pool_len;
	struct conc t[4];
	pthread_t th[4];
	int ret;

	do {
		make_case(&c, KV_LAYOUT_VLLM_NHD);
		if (c.nb >= 8)
			break;
		free_case(&c);
	} while (1);
	pool_len = ((32 * c.plh.block_bytes + 4095) / 4096) * 4096;
	CHECK(!posix_memalign((void **)&pool, 4096, pool_len), "out of memory");
	for (uint32_t l = 0; l < c.g.layers; l++)
		rnd_fill(&R, c.h[l], c.alloc);
	push_engine(&c);
	ret = make_backend(&c, KV_CUDA_PATH_AUTO, pool, pool_len, 0, &ops);
	CHECK(ret == 0, "backend create: %d", ret);
	for (unsigned k = 0; k < 4; k++) {
		t[k].c = &c;
		t[k].ops = &ops;
		t[k].pool = pool;
		t[k].id = k;
		t[k].seed = rnd(&R) | 1;
		t[k].fail = 0;
		CHECK(!pthread_create(&th[k], NULL, conc_thread, &t[k]), "pthread_create");
	}
	for (unsigned k = 0; k < 4; k++) {
		pthread_join(th[k], NULL);
		CHECK(!t[k].fail, "%s: concurrent thread %u failed (%d)", c.name, k, t[k].fail);
	}
	compare_engine(&c, "concurrent unpack");
	ops.destroy(ops.ctx);
	free(pool);
	free_case(&c);
	printf("concurrent      4 threads on one backend: ok\n");
}

int main(int argc, char **argv)
{
	static const uint32_t layouts[] = { KV_LAYOUT_VLLM_NHD, KV_LAYOUT_VLLM_HND,
					    KV_LAYOUT_FLASHINFER_NHD, KV_LAYOUT_MLA };
	static const char *const lname[] = { "?", "vllm_nhd", "vllm_hnd", "flashinfer_nhd", "mla" };
	unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 6;
	uint64_t seed = seed_from_env();
	struct cudaDeviceProp prop;

	gpu_require();
	CK(cudaSetDevice(0));
	CK(cudaGetDeviceProperties(&prop, 0));
	R.s = seed;
	printf("device 0: %s (sm_%d%d); seed %llu (KV_SEED=%llu to repeat)\n", prop.name,
	       prop.major, prop.minor, (unsigned long long)seed, (unsigned long long)seed);

	for (size_t li = 0; li < sizeof(layouts) / sizeof(layouts[0]); li++) {
		for (unsigned r = 0; r < rounds; r++) {
			struct tcase c;

			make_case(&c, layouts[li]);
			printf("%-15s %s\n", lname[layouts[li]], c.name);
			fflush(stdout);
			test_raw(&c);
			test_backend(&c, KV_CUDA_PATH_MAPPED);
			test_backend(&c, KV_CUDA_PATH_STAGED);
			test_backend(&c, KV_CUDA_PATH_AUTO);
			free_case(&c);
		}
	}
	test_concurrent();
	CK(cudaDeviceSynchronize());
	printf("ok: %lu comparisons, all byte-exact\n", checks);
	return 0;
}
