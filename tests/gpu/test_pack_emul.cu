// SPDX-License-Identifier: MIT
/*
 * test_pack_emul - the CUDA pack/unpack kernel body (kernels/kv_pack_cuda.cu,
 * included here) run on the host, CTA by CTA and thread by thread, against
 * the CPU reference. No GPU needed: this checks the index arithmetic (the
 * multiply-high division, the head-major permutation, chunking, the
 * grid-stride loop, every vector width) wherever nvcc exists, so the GPU
 * test (test_gpu_pack) is left with what only hardware can show.
 * KV_SEED=N reproduces a run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_pack_cuda.cu"
#include "emul.h"

#include "kv_pack.h"

/* Same helpers as the GPU tests, without the device requirement. */
#include "gpu_common.h"

static struct rng R;
static unsigned long checks;

static void test_fastdiv(void)
{
	static const uint32_t special[] = { 1, 2, 3, 7, 64, 67, 129, 576, 65535, 65536, 65537,
					    (1u << 20) + 1, (1u << 30) - 1, 1u << 30,
					    (1u << 31) - 1 };

	for (uint32_t k = 0; k < 20000; k++) {
		uint32_t d = k < sizeof(special) / sizeof(special[0]) ? special[k]
			     : k < 6000 ? k : 1 + rnd_below(&R, (1u << 31) - 1);
		fastdiv f = make_fastdiv(d);

		for (int t = 0; t < 64; t++) {
			uint32_t nn = t < 4 ? (uint32_t)((1u << 31) - 1 - t) : t < 8 ? d * (t - 4)
				      : (uint32_t)(rnd(&R) & 0x7fffffff);

			if (nn >= (1u << 31))
				continue;
			CHECK(fdiv(nn, f) == nn / d, "fastdiv %u / %u = %u", nn, d, fdiv(nn, f));
		}
	}
	checks++;
}

static uint32_t pick(const uint32_t *v, size_t n)
{
	return v[rnd_below(&R, (uint32_t)n)];
}
#define PICK(a) pick(a, sizeof(a) / sizeof(a[0]))

static void one_case(uint32_t layout)
{
	static const uint32_t dtypes[] = { KV_DTYPE_FP16, KV_DTYPE_BF16, KV_DTYPE_FP32,
					   KV_DTYPE_FP8_E4M3, KV_DTYPE_INT8 };
	static const uint32_t tokens[] = { 1, 2, 3, 5, 16, 17 };
	static const uint32_t heads[] = { 1, 2, 3, 8 };
	static const uint32_t dims[] = { 1, 3, 7, 16, 64, 67, 128 };
	static const uint32_t mla_dims[] = { 1, 5, 64, 576, 577 };
	static const uint32_t pads[] = { 0, 0, 1, 2, 16, 48 };
	static const uint32_t offs[] = { 0, 0, 1, 2, 4, 16 };
	struct kv_geometry g;
	struct kv_engine_cache ec;
	struct kv_pack_layout pl, plr;
	unsigned char *eng[4], *ref[4];
	void *base[4], *rbase[4];
	uint64_t hbase[4];
	size_t plane, extent, alloc, off, esize, bb;
	uint32_t nb, n, blocks[40];
	struct kv_cuda_geom cg;

	memset(&g, 0, sizeof(g));
	g.layers = 1 + rnd_below(&R, 3);
	g.planes = layout == KV_LAYOUT_MLA ? 1 : 2;
	g.block_tokens = PICK(tokens);
	g.kv_heads = layout == KV_LAYOUT_MLA ? 1 : PICK(heads);
	g.head_dim = layout == KV_LAYOUT_MLA ? PICK(mla_dims) : PICK(dims);
	g.dtype = PICK(dtypes);
	esize = kv_dtype_size(g.dtype);
	nb = 2 + rnd_below(&R, 12);
	plane = (size_t)g.block_tokens * g.kv_heads * g.head_dim * esize;
	memset(&ec, 0, sizeof(ec));
	ec.mem = KV_MEM_HOST;
	ec.layout = layout;
	ec.num_blocks = nb;
	if (rnd_below(&R, 2)) {
		size_t pb = PICK(pads), pp = PICK(pads);

		if (layout == KV_LAYOUT_FLASHINFER_NHD) {
			ec.plane_stride = plane + pp;
			ec.block_stride = ec.plane_stride + plane + pb;
		} else if (layout == KV_LAYOUT_MLA) {
			ec.block_stride = plane + pb;
		} else {
			ec.block_stride = plane + pb;
			ec.plane_stride = nb * ec.block_stride + pp;
		}
	}
	off = PICK(offs);
	for (uint32_t l = 0; l < g.layers; l++)
		base[l] = (void *)(uintptr_t)4096;
	ec.layers = base;
	CHECK(kv_pack_layout_init(&pl, &g, &ec) == 0, "layout init");
	extent = (g.planes - 1) * pl.plane_stride + (nb - 1) * pl.block_stride + plane;
	alloc = off + extent + 32;
	for (uint32_t l = 0; l < g.layers; l++) {
		/* 16-aligned allocations, so off decides the base alignment */
		CHECK(!posix_memalign((void **)&eng[l], 64, alloc), "oom");
		CHECK(!posix_memalign((void **)&ref[l], 64, alloc), "oom");
		base[l] = eng[l] + off;
		rbase[l] = ref[l] + off;
		hbase[l] = (uint64_t)(uintptr_t)base[l];
	}
	ec.layers = base;
	CHECK(kv_pack_layout_init(&pl, &g, &ec) == 0, "layout init");
	ec.layers = rbase;
	CHECK(kv_pack_layout_init(&plr, &g, &ec) == 0, "layout init");
	bb = pl.block_bytes;

	memset(&cg, 0, sizeof(cg));
	cg.layers = g.layers;
	cg.planes = g.planes;
	cg.block_tokens = g.block_tokens;
	cg.kv_heads = g.kv_heads;
	cg.head_dim = g.head_dim;
	cg.esize = (uint32_t)esize;
	cg.head_major = pl.head_major;
	cg.block_stride = pl.block_stride;
	cg.plane_stride = g.planes > 1 ? pl.plane_stride : 0;
	cg.plane_bytes = pl.plane_bytes;
	cg.block_bytes = bb;
	cg.layer_base = hbase;

	n = 1 + rnd_below(&R, nb);
	unsigned char *can, *exp = (unsigned char *)malloc(bb);
	uint64_t canon[40];

	CHECK(!posix_memalign((void **)&can, 64, n * bb + 16) && exp, "oom");
	for (uint32_t i = 0; i < n; i++)
		canon[i] = (uint64_t)(uintptr_t)(can + i * bb);
	for (unsigned w = kv_cuda_vec_width(&cg, hbase, canon[0] | bb); w >= 1; w >>= 1) {
		static const uint32_t grids[] = { 1, 2, 3, 64, 100000 };
		unsigned grid = PICK(grids);

		/* pack */
		for (uint32_t l = 0; l < g.layers; l++)
			rnd_fill(&R, eng[l], alloc);
		for (uint32_t i = 0; i < n; i++)
			blocks[i] = rnd_below(&R, nb);
		memset(can, 0xA5, n * bb + 16);
		CHECK(!emulate(&cg, KV_CUDA_PACK, blocks, canon, n, w, grid), "args refused");
		for (uint32_t i = 0; i < n; i++) {
			kv_pack_cpu(&pl, blocks[i], exp);
			CHECK(!memcmp(exp, can + i * bb, bb),
			      "layout %u L%u T%u H%u D%u es%zu off%zu w%u: pack block %u differs",
			      layout, g.layers, g.block_tokens, g.kv_heads, g.head_dim, esize, off,
			      w, i);
			checks++;
		}
		for (size_t k = n * bb; k < n * bb + 16; k++)
			CHECK(can[k] == 0xA5, "pack wrote past the batch");

		/* unpack into poison, distinct targets */
		for (uint32_t i = 0; i < n; i++)
			blocks[i] = i;
		for (uint32_t i = n - 1; i > 0; i--) {
			uint32_t j = rnd_below(&R, i + 1), t = blocks[i];

			blocks[i] = blocks[j];
			blocks[j] = t;
		}
		for (uint32_t i = 0; i < n; i++)
			blocks[i] = (blocks[i] + nb - n) % nb; /* not always from 0 */
		for (uint32_t l = 0; l < g.layers; l++) {
			memset(eng[l], 0x5A, alloc);
			memset(ref[l], 0x5A, alloc);
		}
		rnd_fill(&R, can, n * bb);
		CHECK(!emulate(&cg, KV_CUDA_UNPACK, blocks, canon, n, w, grid), "args refused");
		for (uint32_t i = 0; i < n; i++)
			kv_unpack_cpu(&plr, can + i * bb, blocks[i]);
		for (uint32_t l = 0; l < g.layers; l++)
			CHECK(!memcmp(eng[l], ref[l], alloc),
			      "layout %u L%u T%u H%u D%u es%zu off%zu w%u: unpack differs (layer %u)",
			      layout, g.layers, g.block_tokens, g.kv_heads, g.head_dim, esize, off,
			      w, l);
		checks++;
	}
	for (uint32_t l = 0; l < g.layers; l++) {
		free(eng[l]);
		free(ref[l]);
	}
	free(can);
	free(exp);
}

int main(int argc, char **argv)
{
	static const uint32_t layouts[] = { KV_LAYOUT_VLLM_NHD, KV_LAYOUT_VLLM_HND,
					    KV_LAYOUT_FLASHINFER_NHD, KV_LAYOUT_MLA };
	unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 25;
	uint64_t seed = seed_from_env();

	R.s = seed;
	printf("seed %llu (KV_SEED=%llu to repeat)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	test_fastdiv();
	for (unsigned r = 0; r < rounds; r++)
		for (size_t li = 0; li < 4; li++)
			one_case(layouts[li]);
	printf("ok: %lu comparisons, all byte-exact\n", checks);
	return 0;
}
