// SPDX-License-Identifier: MIT
/*
 * checksum_avx2.c - libxxhash's XXH3 compiled inline for AVX2 (the Makefile
 * builds this file with -mavx2; checksum.c calls it only on CPUs with AVX2).
 * Same algorithm, same values as the shared library.
 */
#if defined(__x86_64__)
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "checksum.h"

uint64_t kv_csum64_avx2(const void *p, size_t len);
void kv_csum_reset_avx2(struct kv_csum *c);
void kv_csum_update_avx2(struct kv_csum *c, const void *p, size_t len);
uint64_t kv_csum_digest_avx2(const struct kv_csum *c);

uint64_t kv_csum64_avx2(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

void kv_csum_reset_avx2(struct kv_csum *c)
{
	XXH3_64bits_reset((XXH3_state_t *)c->st);
}

void kv_csum_update_avx2(struct kv_csum *c, const void *p, size_t len)
{
	XXH3_64bits_update((XXH3_state_t *)c->st, p, len);
}

uint64_t kv_csum_digest_avx2(const struct kv_csum *c)
{
	return XXH3_64bits_digest((const XXH3_state_t *)c->st);
}
#endif
