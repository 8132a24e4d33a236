// SPDX-License-Identifier: MIT
/*
 * backend_cuda.c - placeholder until the CUDA backend lands: a CUDA engine
 * cache is refused with -EOPNOTSUPP.
 */
#include <errno.h>

#include "backend.h"

int kv_backend_cuda_create(const struct kv_pack_layout *pl,
			   const struct kv_engine_cache *ec, void *pool,
			   size_t pool_len, struct kv_backend *be)
{
	(void)pl; (void)ec; (void)pool; (void)pool_len; (void)be;
	return -EOPNOTSUPP;
}
