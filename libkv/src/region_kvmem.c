// SPDX-License-Identifier: MIT
/*
 * region_kvmem.c - placeholder until the kvmem module lands: no /dev/kvmem.
 */
#include <errno.h>

#include "region.h"

int kv_region_kvmem_alloc(size_t len, uint32_t flags, struct kv_region *r)
{
	(void)len; (void)flags; (void)r;
	return -ENODEV;
}

void kv_region_kvmem_free(struct kv_region *r)
{
	(void)r;
}
