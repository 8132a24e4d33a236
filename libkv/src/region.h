/* SPDX-License-Identifier: MIT */
/*
 * region.h - providers of the large memory areas libkv stages blocks in (the
 * host pool). Two providers: /dev/kvmem (region_kvmem.c; pinned by the
 * kernel module, ordinary struct pages so ibv_reg_mr and io_uring fixed
 * buffers accept it) and anonymous mmap + mlock (region_mmap.c).
 */
#ifndef KV_REGION_H
#define KV_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_region {
	void *addr;
	size_t len;            /* bytes mapped at addr (>= requested, page multiple) */
	uint32_t provider;     /* enum kv_provider */
	bool pinned;           /* pages cannot be swapped or migrated */
	size_t huge_bytes;     /* bytes backed by huge pages, where known */
	int fd;                /* provider's fd (/dev/kvmem), or -1 */
	uint64_t handle;       /* provider's region handle, or 0 */
};

/*
 * Allocate a region of at least len bytes for the host pool. flags are
 * kv_config flags: KV_F_NO_KVMEM skips /dev/kvmem, KV_F_REQUIRE_KVMEM fails
 * with -ENODEV when it is unusable, KV_F_REQUIRE_PINNED fails with -EPERM when
 * the memory cannot be pinned (the reason is printed unless KV_F_QUIET).
 * Returns 0 and fills r, or -errno.
 */
int kv_region_alloc(size_t len, uint32_t flags, struct kv_region *r);

/* Release a region from either provider. r may be zeroed (no-op). */
void kv_region_free(struct kv_region *r);

/* Providers, called by kv_region_alloc(). Same contract. */
int kv_region_mmap_alloc(size_t len, uint32_t flags, struct kv_region *r);
void kv_region_mmap_free(struct kv_region *r);
/* Returns -ENODEV when /dev/kvmem does not exist or cannot be opened. */
int kv_region_kvmem_alloc(size_t len, uint32_t flags, struct kv_region *r);
void kv_region_kvmem_free(struct kv_region *r);

#endif /* KV_REGION_H */
