// SPDX-License-Identifier: MIT
/*
 * region.c - choose the host pool's provider: /dev/kvmem when it is usable
 * (pinned by the module, counted in /proc/driver/kvmem), otherwise anonymous
 * mmap + mlock. KV_FORCE_KVMEM=1 in the environment acts as
 * KV_F_REQUIRE_KVMEM unless the caller said KV_F_NO_KVMEM, so the same test
 * programs run on kvmem regions in the VM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "region.h"

int kv_region_alloc(size_t len, uint32_t flags, struct kv_region *r)
{
	const char *force = getenv("KV_FORCE_KVMEM");
	int ret;

	if (!r || !len)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (force && !strcmp(force, "1") && !(flags & KV_F_NO_KVMEM))
		flags |= KV_F_REQUIRE_KVMEM;
	if ((flags & KV_F_REQUIRE_KVMEM) && (flags & KV_F_NO_KVMEM))
		return -EINVAL;

	if (!(flags & KV_F_NO_KVMEM)) {
		ret = kv_region_kvmem_alloc(len, flags, r);
		if (!ret || (flags & KV_F_REQUIRE_KVMEM))
			return ret;
		/* -ENODEV: no module; anything else is worth a word. */
		if (ret != -ENODEV && !(flags & KV_F_QUIET))
			fprintf(stderr, "libkv: /dev/kvmem region of %zu bytes failed (%s); "
				"using mmap\n", len, kv_strerror(ret));
	}
	return kv_region_mmap_alloc(len, flags, r);
}

void kv_region_free(struct kv_region *r)
{
	if (!r || !r->addr)
		return;
	if (r->provider == KV_PROVIDER_KVMEM)
		kv_region_kvmem_free(r);
	else
		kv_region_mmap_free(r);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}
