// SPDX-License-Identifier: MIT
/*
 * backend_cuda.c - the CUDA copy backend, loaded on demand: libkv itself never
 * links the CUDA runtime. The first KV_MEM_CUDA attach dlopen()s
 * libkv_cuda.so (kernels/, which carries its own static cudart) and resolves
 * its one versioned entry point, KV_CUDA_ENTRY. Search order:
 *   1. next to the libkv that is running (dladdr; for a static libkv.a that
 *      is the executable's directory),
 *   2. $KV_CUDA_LIB (a path, or a name for the dynamic loader),
 *   3. the default library search path (libkv_cuda.so.0, libkv_cuda.so).
 * Anything missing (the object, the driver, a device) is -EOPNOTSUPP, so a
 * host without CUDA keeps working with host-memory engine caches. Set
 * KV_CUDA_DEBUG=1 to see why each candidate was refused.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kv_cuda_backend.h"

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static kv_cuda_create_fn cuda_create; /* NULL: not found */

static int cuda_debug(void)
{
	const char *s = getenv("KV_CUDA_DEBUG");

	return s && *s && *s != '0';
}

/* Open one candidate; keep it (never dlclose: cudart has atexit hooks). */
static int try_open(const char *name)
{
	void *h, *sym;

	if (!name || !*name)
		return 0;
	h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		if (cuda_debug())
			fprintf(stderr, "libkv: cuda: %s\n", dlerror());
		return 0;
	}
	sym = dlsym(h, KV_CUDA_ENTRY);
	if (!sym) {
		if (cuda_debug())
			fprintf(stderr, "libkv: cuda: %s has no %s\n", name, KV_CUDA_ENTRY);
		dlclose(h);
		return 0;
	}
	/* POSIX-sanctioned object -> function pointer conversion. */
	memcpy(&cuda_create, &sym, sizeof(sym));
	if (cuda_debug())
		fprintf(stderr, "libkv: cuda: using %s\n", name);
	return 1;
}

/* Try DIR/libkv_cuda.so.0 and DIR/libkv_cuda.so for the directory of path. */
static int try_dir_of(const char *path)
{
	static const char *const names[] = { KV_CUDA_SONAME, KV_CUDA_LIBNAME };
	char buf[PATH_MAX];
	const char *slash = path ? strrchr(path, '/') : NULL;
	size_t dlen;

	if (!slash)
		return 0;
	dlen = (size_t)(slash - path);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (dlen + 1 + strlen(names[i]) + 1 > sizeof(buf))
			return 0;
		memcpy(buf, path, dlen);
		buf[dlen] = '/';
		strcpy(buf + dlen + 1, names[i]);
		if (try_open(buf))
			return 1;
	}
	return 0;
}

static void cuda_load(void)
{
	Dl_info info;

	if (dladdr((void *)&kv_backend_cuda_create, &info) && try_dir_of(info.dli_fname))
		return;
	if (try_open(getenv("KV_CUDA_LIB")))
		return;
	if (try_open(KV_CUDA_SONAME))
		return;
	try_open(KV_CUDA_LIBNAME);
}

int kv_backend_cuda_create(const struct kv_pack_layout *pl,
			   const struct kv_engine_cache *ec, void *pool,
			   size_t pool_len, struct kv_backend *be)
{
	struct kv_cuda_params p;
	struct kv_cuda_ops ops;
	uint64_t *bases;
	int ret;

	if (!pl || !ec || !be || !pl->layer_base || !pl->layers)
		return -EINVAL;
	pthread_once(&cuda_once, cuda_load);
	if (!cuda_create)
		return -EOPNOTSUPP;

	bases = calloc(pl->layers, sizeof(*bases));
	if (!bases)
		return -ENOMEM;
	for (uint32_t l = 0; l < pl->layers; l++)
		bases[l] = (uint64_t)(uintptr_t)pl->layer_base[l];

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	p.abi = KV_CUDA_ABI_VERSION;
	p.layers = pl->layers;
	p.planes = pl->planes;
	p.block_tokens = pl->block_tokens;
	p.kv_heads = pl->kv_heads;
	p.head_dim = pl->head_dim;
	p.esize = pl->esize;
	p.head_major = pl->head_major;
	p.num_blocks = pl->num_blocks;
	p.block_stride = pl->block_stride;
	p.plane_stride = pl->plane_stride;
	p.plane_bytes = pl->plane_bytes;
	p.block_bytes = pl->block_bytes;
	p.layer_base = bases;
	p.device = ec->device;
	p.stream = ec->cuda_stream;
	p.pool = pool;
	p.pool_len = pool_len;

	memset(&ops, 0, sizeof(ops));
	ops.size = sizeof(ops);
	ops.abi = KV_CUDA_ABI_VERSION;
	ret = cuda_create(&p, &ops);
	free(bases);
	if (ret && cuda_debug())
		fprintf(stderr, "libkv: cuda: %s refused the engine cache: %s\n", KV_CUDA_ENTRY,
			strerror(ret < 0 ? -ret : ret));
	if (ret > 0)  /* foreign convention slipped through: still an error */
		ret = -EIO;
	if (ret)
		return ret;

	memset(be, 0, sizeof(*be));
	be->name = "cuda";
	be->ctx = ops.ctx;
	be->fence = ops.fence;
	be->fence_drop = ops.fence_drop;
	be->pack = ops.pack;
	be->unpack = ops.unpack;
	be->destroy = ops.destroy;
	return 0;
}
