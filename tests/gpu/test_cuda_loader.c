// SPDX-License-Identifier: MIT
/*
 * test_cuda_loader - libkv's CUDA backend loader (libkv/src/backend_cuda.c)
 * and the ABI checks of libkv_cuda.so, on any host: without libkv_cuda.so,
 * or without a driver, a CUDA engine cache must be refused with -EOPNOTSUPP
 * (never a crash or a silent success); a mismatched ABI with -EPROTO.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "kv_cuda_backend.h"

/* CUDA maps memory in the shadow gap ASan protects by default. */
const char *__asan_default_options(void)
{
	return "protect_shadow_gap=0";
}

static int fails;

#define EXPECT(cond, ...)                                                   \
	do {                                                                \
		if (!(cond)) {                                              \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
			printf(__VA_ARGS__);                                \
			printf("\n");                                       \
			fails++;                                            \
		}                                                           \
	} while (0)

/* Direct calls into libkv_cuda.so: the ABI guard works without a GPU. */
static void check_abi(const char *so)
{
	void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	kv_cuda_create_fn create;
	struct kv_cuda_params p;
	struct kv_cuda_ops ops;
	uint64_t base[1] = { 0x1000 };
	void *sym;

	EXPECT(h, "dlopen %s: %s", so, dlerror());
	if (!h)
		return;
	sym = dlsym(h, KV_CUDA_ENTRY);
	EXPECT(sym, "%s does not export %s", so, KV_CUDA_ENTRY);
	if (!sym)
		return;
	memcpy(&create, &sym, sizeof(sym));
	EXPECT(!dlsym(h, "cudaMalloc"), "%s exports cudart symbols", so);

	memset(&p, 0, sizeof(p));
	memset(&ops, 0, sizeof(ops));
	p.size = sizeof(p);
	p.abi = KV_CUDA_ABI_VERSION + 1;
	ops.size = sizeof(ops);
	EXPECT(create(&p, &ops) == -EPROTO, "future ABI not refused");
	p.abi = KV_CUDA_ABI_VERSION;
	p.size = sizeof(p) - 8;
	EXPECT(create(&p, &ops) == -EPROTO, "short params not refused");
	p.size = sizeof(p);
	ops.size = 8;
	EXPECT(create(&p, &ops) == -EPROTO, "short ops not refused");
	ops.size = sizeof(ops);
	EXPECT(create(&p, &ops) == -EINVAL, "empty geometry not refused");
	EXPECT(create(NULL, &ops) == -EINVAL, "NULL params not refused");

	/* A consistent geometry with an inconsistent plane size. */
	p.layers = 1; p.planes = 2; p.block_tokens = 4; p.kv_heads = 2;
	p.head_dim = 8; p.esize = 2; p.num_blocks = 4;
	p.plane_bytes = 4 * 2 * 8 * 2 + 2;
	p.block_bytes = 2 * p.plane_bytes;
	p.block_stride = p.plane_bytes;
	p.plane_stride = 4 * p.plane_bytes;
	p.layer_base = base;
	EXPECT(create(&p, &ops) == -EINVAL, "wrong plane_bytes not refused");
	dlclose(h);
}

int main(void)
{
	const char *build = getenv("KV_BUILD");
	char so[PATH_MAX];
	int have_so, have_driver, ret;
	struct kv_pack_layout pl;
	struct kv_engine_cache ec;
	struct kv_backend be;
	void *layers[2];
	static char eng[2][4096];
	void *pool = NULL;

	snprintf(so, sizeof(so), "%s/libkv_cuda.so.0", build ? build : "build");
	have_so = access(so, R_OK) == 0;
	{
		void *d = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);

		have_driver = d != NULL;
		/* keep it loaded: closing a driver library is not worth the risk */
	}
	printf("libkv_cuda.so: %s; CUDA driver: %s\n", have_so ? so : "not built",
	       have_driver ? "present" : "absent");

	memset(&pl, 0, sizeof(pl));
	pl.layers = 2; pl.planes = 2; pl.block_tokens = 4; pl.kv_heads = 2;
	pl.head_dim = 8; pl.esize = 2; pl.head_major = 0; pl.num_blocks = 4;
	pl.plane_bytes = 4 * 2 * 8 * 2;
	pl.block_bytes = pl.plane_bytes * 2 * 2;
	pl.block_stride = pl.plane_bytes;
	pl.plane_stride = pl.plane_bytes * 4;
	layers[0] = eng[0];
	layers[1] = eng[1];
	pl.layer_base = layers;
	memset(&ec, 0, sizeof(ec));
	ec.mem = KV_MEM_CUDA;
	ec.layout = KV_LAYOUT_VLLM_NHD;
	ec.num_blocks = 4;
	ec.layers = layers;
	if (posix_memalign(&pool, 4096, 1 << 16))
		return 1;

	EXPECT(kv_backend_cuda_create(NULL, &ec, pool, 1 << 16, &be) == -EINVAL,
	       "NULL layout not refused");
	EXPECT(kv_backend_cuda_create(&pl, NULL, pool, 1 << 16, &be) == -EINVAL,
	       "NULL engine cache not refused");

	if (have_so) {
		check_abi(so);
		setenv("KV_CUDA_LIB", so, 1);
	} else {
		setenv("KV_CUDA_LIB", "/nonexistent/libkv_cuda.so", 1);
	}
	ret = kv_backend_cuda_create(&pl, &ec, pool, 1 << 16, &be);
	printf("kv_backend_cuda_create with host pointers: %d (%s)\n", ret, strerror(-ret));
	if (!have_so || !have_driver)
		EXPECT(ret == -EOPNOTSUPP, "expected -EOPNOTSUPP, got %d", ret);
	else /* no device: -EOPNOTSUPP; a device: host pointers are refused */
		EXPECT(ret == -EOPNOTSUPP || ret == -EINVAL, "expected -EOPNOTSUPP or -EINVAL, got %d",
		       ret);
	if (ret == 0)
		be.destroy(be.ctx);
	/* Refusal is stable (the loader result is cached). */
	EXPECT(kv_backend_cuda_create(&pl, &ec, pool, 1 << 16, &be) == ret,
	       "second attempt differs");
	free(pool);
	if (fails) {
		printf("%d checks failed\n", fails);
		return 1;
	}
	printf("ok\n");
	return 0;
}
