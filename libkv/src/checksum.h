/* SPDX-License-Identifier: MIT */
/*
 * checksum.h - the 64-bit checksum every stored copy carries: XXH3-64 of the
 * canonical block bytes (seed 0), from libxxhash. The same value whatever
 * the CPU; the code path is picked once at run time (AVX2 where the CPU has
 * it, libxxhash's build otherwise) because the checksum is on the store path
 * and Debian's libxxhash is built for baseline x86-64 (SSE2).
 */
#ifndef KV_CHECKSUM_H
#define KV_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Streaming state; large enough for XXH3_state_t (checked in checksum.c). */
struct kv_csum {
	_Alignas(64) unsigned char st[640];
};

/* XXH3-64 of len bytes at p. */
uint64_t kv_csum64(const void *p, size_t len);

/* The same computed piecewise: reset, update in order, digest. */
void kv_csum_reset(struct kv_csum *c);
void kv_csum_update(struct kv_csum *c, const void *p, size_t len);
uint64_t kv_csum_digest(const struct kv_csum *c);

/* Name of the implementation in use ("avx2" or "libxxhash"). */
const char *kv_csum_impl(void);

#endif /* KV_CHECKSUM_H */
