/* SPDX-License-Identifier: MIT */
/*
 * pool.h - the host tier's memory: one region cut into fixed slots of
 * slot_bytes (block bytes rounded up to 4 KiB so every slot can be the target
 * of O_DIRECT and RDMA). Free slots are a stack. Caller holds kv->lock.
 */
#ifndef KV_POOL_H
#define KV_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "region.h"

struct kv_pool {
	struct kv_region region;
	size_t slot_bytes;
	uint32_t nslots;
	uint32_t nfree;
	uint32_t *free;            /* stack of free slot numbers */
};

/*
 * Carve host_bytes (rounded down to whole slots, at least one) of a new
 * region into slots for blocks of block_bytes. Returns 0 or -errno
 * (-EINVAL when not even one slot fits).
 */
int kv_pool_init(struct kv_pool *p, size_t host_bytes, size_t block_bytes, uint32_t flags);
void kv_pool_destroy(struct kv_pool *p);

/* A free slot number, or KV_SLOT_NONE (UINT32_MAX) when none is free. */
uint32_t kv_pool_get(struct kv_pool *p);
void kv_pool_put(struct kv_pool *p, uint32_t slot);

static inline void *kv_pool_addr(const struct kv_pool *p, uint32_t slot)
{
	return (char *)p->region.addr + (size_t)slot * p->slot_bytes;
}

#endif /* KV_POOL_H */
