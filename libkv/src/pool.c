// SPDX-License-Identifier: MIT
/* pool.c - fixed-size slots over one region (see pool.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "pool.h"

#define SLOT_ALIGN 4096ul

int kv_pool_init(struct kv_pool *p, size_t host_bytes, size_t block_bytes, uint32_t flags)
{
	size_t n;
	int ret;

	memset(p, 0, sizeof(*p));
	p->region.fd = -1;
	if (!block_bytes)
		return -EINVAL;
	p->slot_bytes = (block_bytes + SLOT_ALIGN - 1) & ~(SLOT_ALIGN - 1);
	n = host_bytes / p->slot_bytes;
	if (!n || n >= KV_SLOT_NONE)
		return -EINVAL;
	p->free = malloc(n * sizeof(*p->free));
	if (!p->free)
		return -ENOMEM;
	ret = kv_region_alloc(n * p->slot_bytes, flags, &p->region);
	if (ret) {
		free(p->free);
		p->free = NULL;
		return ret;
	}
	p->nslots = (uint32_t)n;
	for (uint32_t i = 0; i < p->nslots; i++)
		p->free[i] = p->nslots - 1 - i;  /* slot 0 on top */
	p->nfree = p->nslots;
	return 0;
}

void kv_pool_destroy(struct kv_pool *p)
{
	kv_region_free(&p->region);
	free(p->free);
	memset(p, 0, sizeof(*p));
}

uint32_t kv_pool_get(struct kv_pool *p)
{
	return p->nfree ? p->free[--p->nfree] : KV_SLOT_NONE;
}

void kv_pool_put(struct kv_pool *p, uint32_t slot)
{
	p->free[p->nfree++] = slot;
}
