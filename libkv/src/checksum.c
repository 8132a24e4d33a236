// SPDX-License-Identifier: MIT
/* checksum.c - pick the XXH3-64 implementation once (see checksum.h). */
#include <pthread.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t's size */
#include <xxhash.h>

#include "checksum.h"

_Static_assert(sizeof(XXH3_state_t) <= sizeof(struct kv_csum), "kv_csum too small");

/* checksum_avx2.c: libxxhash's own code compiled inline for AVX2. */
uint64_t kv_csum64_avx2(const void *p, size_t len);
void kv_csum_reset_avx2(struct kv_csum *c);
void kv_csum_update_avx2(struct kv_csum *c, const void *p, size_t len);
uint64_t kv_csum_digest_avx2(const struct kv_csum *c);

static uint64_t lib_csum64(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

static void lib_reset(struct kv_csum *c)
{
	XXH3_64bits_reset((XXH3_state_t *)c->st);
}

static void lib_update(struct kv_csum *c, const void *p, size_t len)
{
	XXH3_64bits_update((XXH3_state_t *)c->st, p, len);
}

static uint64_t lib_digest(const struct kv_csum *c)
{
	return XXH3_64bits_digest((const XXH3_state_t *)c->st);
}

static struct {
	uint64_t (*csum64)(const void *, size_t);
	void (*reset)(struct kv_csum *);
	void (*update)(struct kv_csum *, const void *, size_t);
	uint64_t (*digest)(const struct kv_csum *);
	const char *name;
} impl;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void pick(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2")) {
		impl.csum64 = kv_csum64_avx2;
		impl.reset = kv_csum_reset_avx2;
		impl.update = kv_csum_update_avx2;
		impl.digest = kv_csum_digest_avx2;
		impl.name = "avx2";
		return;
	}
#endif
	impl.csum64 = lib_csum64;
	impl.reset = lib_reset;
	impl.update = lib_update;
	impl.digest = lib_digest;
	impl.name = "libxxhash";
}

uint64_t kv_csum64(const void *p, size_t len)
{
	pthread_once(&impl_once, pick);
	return impl.csum64(p, len);
}

void kv_csum_reset(struct kv_csum *c)
{
	pthread_once(&impl_once, pick);
	impl.reset(c);
}

void kv_csum_update(struct kv_csum *c, const void *p, size_t len)
{
	impl.update(c, p, len);
}

uint64_t kv_csum_digest(const struct kv_csum *c)
{
	return impl.digest(c);
}

const char *kv_csum_impl(void)
{
	pthread_once(&impl_once, pick);
	return impl.name;
}
