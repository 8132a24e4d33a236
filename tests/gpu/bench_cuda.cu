// SPDX-License-Identifier: MIT
/*
 * bench_cuda - throughput of the CUDA pack/unpack path against the copies it
 * must keep up with, printed as markdown tables for docs/benchmarks.md.
 *
 *  1. device: pack/unpack kernels (engine cache <-> device buffer) against
 *     one cudaMemcpy device-to-device of the same bytes (target >= 0.9);
 *  2. host: the backend's pack/unpack (engine cache <-> registered host pool
 *     slots, random slots) on each path against one cudaMemcpyAsync of the
 *     same bytes between one contiguous device buffer and the pool (target
 *     >= 0.9), both directions at once too, and the per-block
 *     cudaMemcpyAsync loop (one copy per block, layer and plane: the old
 *     swap path) to show the gap;
 *  3. a batch-size sweep of mapped vs staged, from which the AUTO threshold
 *     (KV_CUDA_STAGED_MIN_KB) is chosen.
 *
 * Usage: kv_cuda_bench [--if-gpu] [--iters N] [--quick]
 *   --if-gpu  without a usable device print one line and exit 0 (make bench)
 *   --iters   timed repetitions per figure, median reported (default 10)
 *   --quick   smaller batches (a first look; not for the record)
 * Without a device (and without --if-gpu) it exits 77.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gpu_common.h"
#include "kv_cuda_backend.h"
#include "kv_pack.h"

static unsigned iters = 10;
static struct rng R = { 0x9E3779B97F4A7C15ULL };

struct bcase {
	const char *name;
	uint32_t layout, layers, tokens, heads, dim, dtype, n;
};

struct setup {
	const struct bcase *bc;
	struct kv_pack_layout pl;  /* device layer pointers */
	struct kv_cuda_geom g;
	uint64_t hbase[128];
	void *dbase[128];
	uint32_t nb, n;
	size_t bb, alloc;
	uint32_t *blocks;          /* host: distinct random ids */
	uint32_t *d_blocks;
	uint64_t *d_canon;         /* device buffer block addresses */
	unsigned char *dbuf;       /* device, n*bb */
	unsigned char *dbuf2;      /* device, n*bb: memcpy source */
	unsigned char *pool;       /* host pool (mmap), registered by the backend */
	size_t pool_len;
	void **slots;              /* n random distinct slots, pack */
	void **slots2;             /* n more, disjoint from slots (unpack) */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void setup_case(struct setup *s, const struct bcase *bc, uint32_t n)
{
	struct kv_geometry g;
	struct kv_engine_cache ec;
	size_t plane, esize;

	memset(s, 0, sizeof(*s));
	s->bc = bc;
	s->n = n;
	s->nb = 2 * n + 8;
	memset(&g, 0, sizeof(g));
	g.layers = bc->layers;
	g.planes = bc->layout == KV_LAYOUT_MLA ? 1 : 2;
	g.block_tokens = bc->tokens;
	g.kv_heads = bc->heads;
	g.head_dim = bc->dim;
	g.dtype = bc->dtype;
	esize = kv_dtype_size(g.dtype);
	plane = (size_t)g.block_tokens * g.kv_heads * g.head_dim * esize;
	s->alloc = plane * g.planes * s->nb;
	for (uint32_t l = 0; l < g.layers; l++) {
		CK(cudaMalloc(&s->dbase[l], s->alloc));
		CK(cudaMemset(s->dbase[l], (int)l, s->alloc));
		s->hbase[l] = (uint64_t)(uintptr_t)s->dbase[l];
	}
	memset(&ec, 0, sizeof(ec));
	ec.mem = KV_MEM_CUDA;
	ec.layout = bc->layout;
	ec.num_blocks = s->nb;
	ec.layers = s->dbase;
	CHECK(kv_pack_layout_init(&s->pl, &g, &ec) == 0, "layout init");
	s->bb = s->pl.block_bytes;

	uint64_t *dl;

	CK(cudaMalloc((void **)&dl, g.layers * sizeof(uint64_t)));
	CK(cudaMemcpy(dl, s->hbase, g.layers * sizeof(uint64_t), cudaMemcpyHostToDevice));
	s->g.layers = g.layers;
	s->g.planes = g.planes;
	s->g.block_tokens = g.block_tokens;
	s->g.kv_heads = g.kv_heads;
	s->g.head_dim = g.head_dim;
	s->g.esize = (uint32_t)esize;
	s->g.head_major = s->pl.head_major;
	s->g.block_stride = s->pl.block_stride;
	s->g.plane_stride = g.planes > 1 ? s->pl.plane_stride : 0;
	s->g.plane_bytes = s->pl.plane_bytes;
	s->g.block_bytes = s->bb;
	s->g.layer_base = dl;

	/* distinct random engine blocks */
	uint32_t *perm = (uint32_t *)malloc(s->nb * sizeof(uint32_t));

	CHECK(perm, "oom");
	for (uint32_t i = 0; i < s->nb; i++)
		perm[i] = i;
	for (uint32_t i = s->nb - 1; i > 0; i--) {
		uint32_t j = rnd_below(&R, i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	s->blocks = (uint32_t *)malloc(n * sizeof(uint32_t));
	CHECK(s->blocks, "oom");
	memcpy(s->blocks, perm, n * sizeof(uint32_t));
	free(perm);

	CK(cudaMalloc((void **)&s->dbuf, n * s->bb));
	CK(cudaMalloc((void **)&s->dbuf2, n * s->bb));
	CK(cudaMemset(s->dbuf2, 7, n * s->bb));
	CK(cudaMalloc((void **)&s->d_blocks, n * sizeof(uint32_t)));
	CK(cudaMalloc((void **)&s->d_canon, n * sizeof(uint64_t)));
	CK(cudaMemcpy(s->d_blocks, s->blocks, n * sizeof(uint32_t), cudaMemcpyHostToDevice));
	{
		uint64_t *hc = (uint64_t *)malloc(n * sizeof(uint64_t));

		CHECK(hc, "oom");
		for (uint32_t i = 0; i < n; i++)
			hc[i] = (uint64_t)(uintptr_t)(s->dbuf + i * s->bb);
		CK(cudaMemcpy(s->d_canon, hc, n * sizeof(uint64_t), cudaMemcpyHostToDevice));
		free(hc);
	}

	/* host pool of 2n slots (like libkv's: page-aligned anonymous memory) */
	s->pool_len = 2 * n * s->bb;
	s->pool = (unsigned char *)mmap(NULL, s->pool_len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	CHECK(s->pool != MAP_FAILED, "mmap %zu bytes: %s", s->pool_len, strerror(errno));
	s->slots = (void **)malloc(n * sizeof(void *));
	s->slots2 = (void **)malloc(n * sizeof(void *));
	CHECK(s->slots && s->slots2, "oom");
	{
		uint32_t *sp = (uint32_t *)malloc(2 * n * sizeof(uint32_t));

		CHECK(sp, "oom");
		for (uint32_t i = 0; i < 2 * n; i++)
			sp[i] = i;
		for (uint32_t i = 2 * n - 1; i > 0; i--) {
			uint32_t j = rnd_below(&R, i + 1), t = sp[i];

			sp[i] = sp[j];
			sp[j] = t;
		}
		for (uint32_t i = 0; i < n; i++) {
			s->slots[i] = s->pool + (size_t)sp[i] * s->bb;
			s->slots2[i] = s->pool + (size_t)sp[n + i] * s->bb;
		}
		free(sp);
	}
}

static void teardown(struct setup *s)
{
	for (uint32_t l = 0; l < s->g.layers; l++)
		CK(cudaFree(s->dbase[l]));
	CK(cudaFree((void *)s->g.layer_base));
	CK(cudaFree(s->dbuf));
	CK(cudaFree(s->dbuf2));
	CK(cudaFree(s->d_blocks));
	CK(cudaFree(s->d_canon));
	munmap(s->pool, s->pool_len);
	free(s->blocks);
	free(s->slots);
	free(s->slots2);
}

static int make_ops(struct setup *s, unsigned path, struct kv_cuda_ops *ops)
{
	struct kv_cuda_params p;

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	p.abi = KV_CUDA_ABI_VERSION;
	p.layers = s->pl.layers;
	p.planes = s->pl.planes;
	p.block_tokens = s->pl.block_tokens;
	p.kv_heads = s->pl.kv_heads;
	p.head_dim = s->pl.head_dim;
	p.esize = s->pl.esize;
	p.head_major = s->pl.head_major;
	p.num_blocks = s->pl.num_blocks;
	p.block_stride = s->pl.block_stride;
	p.plane_stride = s->pl.plane_stride;
	p.plane_bytes = s->pl.plane_bytes;
	p.block_bytes = s->bb;
	p.layer_base = s->hbase;
	p.device = 0;
	p.pool = s->pool;
	p.pool_len = s->pool_len;
	p.path = path;
	memset(ops, 0, sizeof(*ops));
	ops->size = sizeof(*ops);
	ops->abi = KV_CUDA_ABI_VERSION;
	return kv_cuda_backend_create_v1(&p, ops);
}

/* Median seconds of fn over iters runs, timed with events on stream st. */
template <typename F>
static double time_stream(cudaStream_t st, F fn)
{
	cudaEvent_t a, b;
	double v[64];

	CK(cudaEventCreate(&a));
	CK(cudaEventCreate(&b));
	fn(); /* warm up */
	CK(cudaStreamSynchronize(st));
	for (unsigned i = 0; i < iters; i++) {
		float ms;

		CK(cudaEventRecord(a, st));
		fn();
		CK(cudaEventRecord(b, st));
		CK(cudaEventSynchronize(b));
		CK(cudaEventElapsedTime(&ms, a, b));
		v[i] = ms * 1e-3;
	}
	CK(cudaEventDestroy(a));
	CK(cudaEventDestroy(b));
	return median(v, iters);
}

/* Median wall seconds of a synchronous fn. */
template <typename F>
static double time_wall(F fn)
{
	double v[64];

	fn();
	for (unsigned i = 0; i < iters; i++) {
		double t0 = now_s();

		fn();
		v[i] = now_s() - t0;
	}
	return median(v, iters);
}

static void row(const char *cs, const struct setup *s, const char *op, double t, double tb,
		const char *base, double target)
{
	double bytes = (double)s->n * s->bb;
	double gbs = bytes / t / 1e9, gbb = bytes / tb / 1e9;

	printf("| %s | %.2f MiB | %u | %s | %.1f | %s %.1f | %.2f | %s |\n", cs,
	       s->bb / 1048576.0, s->n, op, gbs, base, gbb, tb / t,
	       target > 0 ? (tb / t >= target ? "met" : "**missed**") : "-");
	fflush(stdout);
}

static void bench_device(const struct bcase *bc, uint32_t n)
{
	struct setup s;
	cudaStream_t st;
	unsigned w;
	double tk, tu, tm;

	setup_case(&s, bc, n);
	CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
	w = kv_cuda_vec_width(&s.g, s.hbase, (uint64_t)(uintptr_t)s.dbuf);
	tm = time_stream(st, [&] {
		CK(cudaMemcpyAsync(s.dbuf, s.dbuf2, (size_t)n * s.bb, cudaMemcpyDeviceToDevice, st));
	});
	tk = time_stream(st, [&] {
		CK(kv_cuda_launch(&s.g, KV_CUDA_PACK, s.d_blocks, s.d_canon, n, w, 0, st));
	});
	tu = time_stream(st, [&] {
		CK(kv_cuda_launch(&s.g, KV_CUDA_UNPACK, s.d_blocks, s.d_canon, n, w, 0, st));
	});
	row(bc->name, &s, "pack (kernel, D2D)", tk, tm, "D2D memcpy", 0.9);
	row(bc->name, &s, "unpack (kernel, D2D)", tu, tm, "D2D memcpy", 0.9);
	CK(cudaStreamDestroy(st));
	teardown(&s);
}

struct both_arg {
	struct kv_cuda_ops *ops;
	struct setup *s;
	int pack;
	pthread_barrier_t *bar;
	int ret;
};

static void *both_thread(void *p)
{
	struct both_arg *a = (struct both_arg *)p;

	pthread_barrier_wait(a->bar);
	if (a->pack)
		a->ret = a->ops->pack(a->ops->ctx, NULL, a->s->blocks, a->s->slots, a->s->n);
	else
		a->ret = a->ops->unpack(a->ops->ctx, a->s->slots2, a->s->blocks, a->s->n);
	return NULL;
}

static void bench_host(const struct bcase *bc, uint32_t n, bool sweep_only)
{
	static const char *const pname[] = { "auto", "mapped", "staged" };
	struct setup s;
	cudaStream_t st, st2;
	double td2h = 0, th2d = 0, tboth = 0, tloop = 0;
	size_t total;

	setup_case(&s, bc, n);
	total = (size_t)n * s.bb;
	CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
	CK(cudaStreamCreateWithFlags(&st2, cudaStreamNonBlocking));

	for (unsigned path = sweep_only ? 1 : 0; path <= 2; path++) {
		struct kv_cuda_ops ops;
		int ret = make_ops(&s, path, &ops);
		char op[96];
		double tp, tu;

		CHECK(ret == 0, "backend create: %d", ret);
		if (path == (sweep_only ? 1u : 0u)) {
			/* Baselines, with the pool registered by the backend. */
			td2h = time_stream(st, [&] {
				CK(cudaMemcpyAsync(s.pool, s.dbuf2, total, cudaMemcpyDeviceToHost, st));
			});
			th2d = time_stream(st, [&] {
				CK(cudaMemcpyAsync(s.dbuf, s.pool + total, total, cudaMemcpyHostToDevice,
						   st));
			});
			tboth = time_wall([&] {
				CK(cudaMemcpyAsync(s.pool, s.dbuf2, total, cudaMemcpyDeviceToHost, st));
				CK(cudaMemcpyAsync(s.dbuf, s.pool + total, total, cudaMemcpyHostToDevice,
						   st2));
				CK(cudaStreamSynchronize(st));
				CK(cudaStreamSynchronize(st2));
			});
			if (!sweep_only) {
				/* One cudaMemcpyAsync per block, layer and plane (NHD planes). */
				tloop = time_stream(st, [&] {
					for (uint32_t i = 0; i < n; i++) {
						unsigned char *dst = (unsigned char *)s.slots[i];

						for (uint32_t l = 0; l < s.g.layers; l++)
							for (uint32_t p = 0; p < s.g.planes; p++) {
								const char *src = (const char *)s.dbase[l] +
									p * s.g.plane_stride +
									(size_t)s.blocks[i] * s.g.block_stride;

								CK(cudaMemcpyAsync(dst, src, s.g.plane_bytes,
										   cudaMemcpyDeviceToHost, st));
								dst += s.g.plane_bytes;
							}
					}
				});
				row(bc->name, &s, "per-plane cudaMemcpyAsync loop D2H", tloop, td2h,
				    "1 memcpy D2H", 0);
			}
		}
		tp = time_wall([&] {
			CHECK(ops.pack(ops.ctx, NULL, s.blocks, s.slots, n) == 0, "pack");
		});
		snprintf(op, sizeof(op), "pack to host, %s%s", pname[path],
			 path ? "" : (ops.last_path(ops.ctx) == 1 ? " (mapped)" : " (staged)"));
		row(bc->name, &s, op, tp, td2h, "1 memcpy D2H", path ? 0 : 0.9);
		tu = time_wall([&] {
			CHECK(ops.unpack(ops.ctx, s.slots2, s.blocks, n) == 0, "unpack");
		});
		snprintf(op, sizeof(op), "unpack from host, %s%s", pname[path],
			 path ? "" : (ops.last_path(ops.ctx) == 1 ? " (mapped)" : " (staged)"));
		row(bc->name, &s, op, tu, th2d, "1 memcpy H2D", path ? 0 : 0.9);
		if (!sweep_only) {
			pthread_barrier_t bar;
			struct both_arg a[2] = { { &ops, &s, 1, &bar, 0 }, { &ops, &s, 0, &bar, 0 } };
			double t;

			pthread_barrier_init(&bar, NULL, 3);
			t = time_wall([&] {
				pthread_t th[2];

				for (int k = 0; k < 2; k++)
					pthread_create(&th[k], NULL, both_thread, &a[k]);
				pthread_barrier_wait(&bar);
				for (int k = 0; k < 2; k++)
					pthread_join(th[k], NULL);
				CHECK(a[0].ret == 0 && a[1].ret == 0, "both directions");
			});
			pthread_barrier_destroy(&bar);
			/* bytes: both directions, so compare times directly */
			snprintf(op, sizeof(op), "pack+unpack at once, %s (2x bytes)", pname[path]);
			row(bc->name, &s, op, t / 2, tboth / 2, "D2H+H2D at once", path ? 0 : 0.9);
		}
		ops.destroy(ops.ctx);
	}
	CK(cudaStreamDestroy(st));
	CK(cudaStreamDestroy(st2));
	teardown(&s);
}

int main(int argc, char **argv)
{
	static const struct bcase cases[] = {
		{ "llama8b vllm_nhd", KV_LAYOUT_VLLM_NHD, 32, 16, 8, 128, KV_DTYPE_BF16, 128 },
		{ "llama8b vllm_hnd", KV_LAYOUT_VLLM_HND, 32, 16, 8, 128, KV_DTYPE_BF16, 128 },
		{ "llama8b flashinfer", KV_LAYOUT_FLASHINFER_NHD, 32, 16, 8, 128, KV_DTYPE_BF16, 128 },
		{ "deepseek mla", KV_LAYOUT_MLA, 61, 64, 1, 576, KV_DTYPE_BF16, 64 },
		{ "small fp8 nhd", KV_LAYOUT_VLLM_NHD, 32, 16, 1, 64, KV_DTYPE_FP8_E4M3, 1024 },
	};
	static const uint32_t sweep[] = { 1, 4, 16, 64, 256 };
	bool if_gpu = false, quick = false;
	struct cudaDeviceProp prop;
	int n = 0, drv = 0, rt = 0;
	cudaError_t e;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--if-gpu"))
			if_gpu = true;
		else if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--if-gpu] [--iters N (10)] [--quick]\n", argv[0]);
			return 2;
		}
	}
	if (iters < 1 || iters > 64)
		iters = 10;
	e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n <= 0) {
		printf("kv_cuda_bench: skipped: no usable CUDA device (%s)\n",
		       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
		return if_gpu ? 0 : SKIP_RC;
	}
	CK(cudaSetDevice(0));
	CK(cudaGetDeviceProperties(&prop, 0));
	CK(cudaDriverGetVersion(&drv));
	CK(cudaRuntimeGetVersion(&rt));
	printf("\n## CUDA pack/unpack: %s (sm_%d%d, %d SMs), driver %d, runtime %d, "
	       "median of %u\n\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
	       drv, rt, iters);
	printf("| case | block | blocks | operation | GB/s | baseline GB/s | ratio | target 0.9 |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint32_t nb = quick ? (cases[c].n + 7) / 8 : cases[c].n;

		bench_device(&cases[c], nb);
		bench_host(&cases[c], nb, false);
	}
	printf("\n### mapped vs staged by batch size (sets KV_CUDA_STAGED_MIN_KB)\n\n");
	printf("| case | block | blocks | operation | GB/s | baseline GB/s | ratio | - |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (size_t k = 0; k < sizeof(sweep) / sizeof(sweep[0]); k++) {
		bench_host(&cases[0], sweep[k], true);
		bench_host(&cases[4], sweep[k] * 8, true);
	}
	return 0;
}
