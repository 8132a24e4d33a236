// SPDX-License-Identifier: MIT
/*
 * test_gpu_roundtrip - libkv end to end with an engine cache in CUDA memory:
 * kv_attach(KV_MEM_CUDA) loads libkv_cuda.so, kv_store packs engine blocks
 * into the host tier behind the engine's stream, kv_load unpacks them into
 * other engine blocks; the device memory is compared on the host with the
 * CPU reference, every byte, for every layout.
 *
 * The store is submitted while the engine's stream is still busy rewriting
 * the blocks (a long kernel, then a copy of new data): the store must see
 * the new data (the cross-stream rule of docs/cuda.md). Several stores and
 * loads are in flight at once so that libkv's workers use several lanes.
 * Each layout runs on each path (KV_CUDA_PATH auto, mapped, staged) unless
 * KV_CUDA_PATH is set. SKIPs (77) without a usable CUDA device.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_common.h"
#include "kv.h"
#include "kv_pack.h"

static struct rng R;

__global__ void spin_kernel(long long cycles)
{
	long long t0 = clock64();

	while (clock64() - t0 < cycles)
		;
}

/* Wait for exactly `want` completions; each must have res == its n. */
static void wait_all(struct kv *kv, unsigned want, uint32_t flags, const char *what)
{
	struct kv_completion c[16];
	unsigned got = 0;

	while (got < want) {
		int r = kv_wait(kv, c, 16, 60000);

		CHECK(r > 0, "%s: kv_wait returned %d after %u of %u completions", what, r, got,
		      want);
		for (int i = 0; i < r; i++) {
			CHECK(c[i].res == (int32_t)c[i].n && c[i].err == 0,
			      "%s: request %llu: res %d err %d (%s) of %u", what,
			      (unsigned long long)c[i].user_data, c[i].res, c[i].err,
			      kv_strerror(c[i].err ? c[i].err : c[i].res), c[i].n);
			CHECK(c[i].flags & flags, "%s: completion flags %#x", what, c[i].flags);
		}
		got += (unsigned)r;
	}
}

static void run_layout(uint32_t layout, const char *lname)
{
	const uint32_t nb = 96, per = 8, batches = 4, n = per * batches;
	struct kv_geometry g;
	struct kv_config cfg;
	struct kv_engine_cache ec;
	struct kv_pack_layout plh;
	struct kv *kv = NULL;
	unsigned char *h[8], *d[8], *newdata;
	void *hbase[8], *dbase[8];
	size_t plane, alloc, bb;
	uint32_t src[32], dst[32], tokens[32 * 16];
	kv_hash hashes[32], root;
	uint8_t tiers[32];
	cudaStream_t es;
	int ret;

	memset(&g, 0, sizeof(g));
	g.layers = 3;
	g.planes = layout == KV_LAYOUT_MLA ? 1 : 2;
	g.block_tokens = 16;
	g.kv_heads = layout == KV_LAYOUT_MLA ? 1 : 4;
	g.head_dim = layout == KV_LAYOUT_MLA ? 576 : 128;
	g.dtype = KV_DTYPE_BF16;
	plane = (size_t)g.block_tokens * g.kv_heads * g.head_dim * 2;
	alloc = plane * g.planes * nb; /* default strides: dense */

	memset(&ec, 0, sizeof(ec));
	ec.mem = KV_MEM_HOST;
	ec.layout = layout;
	ec.num_blocks = nb;
	CK(cudaStreamCreateWithFlags(&es, cudaStreamNonBlocking));
	for (uint32_t l = 0; l < g.layers; l++) {
		h[l] = (unsigned char *)malloc(alloc);
		CHECK(h[l], "out of memory");
		rnd_fill(&R, h[l], alloc);
		CK(cudaMalloc((void **)&d[l], alloc));
		CK(cudaMemcpy(d[l], h[l], alloc, cudaMemcpyHostToDevice));
		hbase[l] = h[l];
		dbase[l] = d[l];
	}
	ec.layers = hbase;
	CHECK(kv_pack_layout_init(&plh, &g, &ec) == 0, "layout");
	bb = plh.block_bytes;

	memset(&cfg, 0, sizeof(cfg));
	cfg.geometry = g;
	cfg.host_bytes = (size_t)(n + 8) * bb;
	cfg.flags = KV_F_QUIET;
	ret = kv_open(&cfg, &kv);
	CHECK(ret == 0, "kv_open: %s", kv_strerror(ret));

	ec.mem = KV_MEM_CUDA;
	ec.device = 0;
	ec.layers = dbase;
	ec.cuda_stream = es;
	ret = kv_attach(kv, &ec);
	CHECK(ret == 0, "kv_attach(KV_MEM_CUDA): %s (is libkv_cuda.so found? KV_CUDA_LIB=%s)",
	      kv_strerror(ret), getenv("KV_CUDA_LIB") ? getenv("KV_CUDA_LIB") : "(unset)");

	/* Distinct source and destination engine blocks. */
	{
		uint32_t perm[96];

		for (uint32_t i = 0; i < nb; i++)
			perm[i] = i;
		for (uint32_t i = nb - 1; i > 0; i--) {
			uint32_t j = rnd_below(&R, i + 1), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
		memcpy(src, perm, n * sizeof(uint32_t));
		memcpy(dst, perm + n, n * sizeof(uint32_t));
	}
	for (uint32_t i = 0; i < n * 16; i++)
		tokens[i] = (uint32_t)rnd(&R);
	root = kv_hash_root(lname, strlen(lname));
	CHECK(kv_hash_chain(root, tokens, n * 16, 16, hashes) == n, "hash chain");

	/* The engine is still writing layer 0 when the stores are queued. */
	CK(cudaMallocHost((void **)&newdata, alloc));
	rnd_fill(&R, newdata, alloc);
	spin_kernel<<<1, 1, 0, es>>>(50 * 1000 * 1000);
	CK(cudaGetLastError());
	CK(cudaMemcpyAsync(d[0], newdata, alloc, cudaMemcpyHostToDevice, es));
	memcpy(h[0], newdata, alloc);
	for (uint32_t b = 0; b < batches; b++) {
		ret = kv_store(kv, hashes + b * per, src + b * per, per, 100 + b);
		CHECK(ret == 0, "kv_store: %s", kv_strerror(ret));
	}
	wait_all(kv, batches, KV_COMP_STORE, "store");
	CK(cudaStreamSynchronize(es));
	CHECK(kv_lookup(kv, hashes, n, tiers) == (int)n, "lookup after store");

	/* Poison the whole device cache, then load into the other blocks. */
	for (uint32_t l = 0; l < g.layers; l++)
		CK(cudaMemset(d[l], 0x5A, alloc));
	for (uint32_t b = 0; b < batches; b++) {
		ret = kv_load(kv, hashes + b * per, dst + b * per, per, 200 + b);
		CHECK(ret == 0, "kv_load: %s", kv_strerror(ret));
	}
	wait_all(kv, batches, KV_COMP_LOAD, "load");

	/* Compare on the host: block dst[i] now holds what src[i] held. */
	{
		unsigned char *back[8], *want = (unsigned char *)malloc(bb),
				       *got = (unsigned char *)malloc(bb);
		void *bbase[8];
		struct kv_pack_layout plb;
		uint8_t *touched = (uint8_t *)calloc(nb, 1);

		CHECK(want && got && touched, "out of memory");
		for (uint32_t l = 0; l < g.layers; l++) {
			back[l] = (unsigned char *)malloc(alloc);
			CHECK(back[l], "out of memory");
			CK(cudaMemcpy(back[l], d[l], alloc, cudaMemcpyDeviceToHost));
			bbase[l] = back[l];
		}
		ec.mem = KV_MEM_HOST;
		ec.layers = bbase;
		ec.cuda_stream = NULL;
		CHECK(kv_pack_layout_init(&plb, &g, &ec) == 0, "layout");
		for (uint32_t i = 0; i < n; i++) {
			kv_pack_cpu(&plh, src[i], want);
			kv_pack_cpu(&plb, dst[i], got);
			CHECK(!memcmp(want, got, bb), "%s: engine block %u (loaded from %u) differs",
			      lname, dst[i], src[i]);
			touched[dst[i]] = 1;
		}
		/* Blocks not loaded into are still poison. */
		for (uint32_t b = 0; b < nb; b++) {
			if (touched[b])
				continue;
			kv_pack_cpu(&plb, b, got);
			for (size_t k = 0; k < bb; k++)
				CHECK(got[k] == 0x5A, "%s: engine block %u written by a load", lname, b);
		}
		for (uint32_t l = 0; l < g.layers; l++)
			free(back[l]);
		free(want);
		free(got);
		free(touched);
	}

	kv_close(kv);
	CK(cudaFreeHost(newdata));
	for (uint32_t l = 0; l < g.layers; l++) {
		CK(cudaFree(d[l]));
		free(h[l]);
	}
	CK(cudaStreamDestroy(es));
	printf("%-15s %u blocks stored and loaded back, byte-exact\n", lname, n);
}

int main(void)
{
	char lib[4096];
	const char *build = getenv("KV_BUILD");
	uint64_t seed = seed_from_env();
	struct cudaDeviceProp prop;

	gpu_require();
	CK(cudaSetDevice(0));
	CK(cudaGetDeviceProperties(&prop, 0));
	R.s = seed;
	printf("device 0: %s; seed %llu (KV_SEED=%llu to repeat)\n", prop.name,
	       (unsigned long long)seed, (unsigned long long)seed);
	/*
	 * libkv looks next to itself first (here: the program, linked with
	 * libkv.a), then at KV_CUDA_LIB: point it at the build's libkv_cuda.so.
	 */
	if (!getenv("KV_CUDA_LIB")) {
		ssize_t len = readlink("/proc/self/exe", lib, sizeof(lib) - 32);

		if (len > 0) {
			lib[len] = 0;
			strcpy(strrchr(lib, '/') ? strrchr(lib, '/') + 1 : lib, "libkv_cuda.so.0");
		}
		if ((len <= 0 || access(lib, R_OK)) && build)
			snprintf(lib, sizeof(lib), "%s/libkv_cuda.so.0", build);
		setenv("KV_CUDA_LIB", lib, 1);
	}
	printf("libkv_cuda: %s\n", getenv("KV_CUDA_LIB"));
	/* Each layout on each path, unless KV_CUDA_PATH says which. */
	{
		static const char *const paths[] = { "auto", "mapped", "staged" };
		bool fixed = getenv("KV_CUDA_PATH") != NULL;

		for (unsigned k = 0; k < (fixed ? 1u : 3u); k++) {
			if (!fixed)
				setenv("KV_CUDA_PATH", paths[k], 1);
			printf("path %s\n", getenv("KV_CUDA_PATH"));
			run_layout(KV_LAYOUT_VLLM_NHD, "vllm_nhd");
			run_layout(KV_LAYOUT_VLLM_HND, "vllm_hnd");
			run_layout(KV_LAYOUT_FLASHINFER_NHD, "flashinfer_nhd");
			run_layout(KV_LAYOUT_MLA, "mla");
		}
	}
	printf("ok\n");
	return 0;
}
