// SPDX-License-Identifier: MIT
/*
 * hash.c - block identity: a chain of XXH3-128 hashes from a namespace root.
 * The serialisation (parent in XXH128 canonical big-endian form, tokens as
 * little-endian uint32) is part of the format: disk files and memory servers
 * name blocks by it, and tests/unit/test_hash.c pins its values.
 */
#include <endian.h>
#include <string.h>
#include <xxhash.h>

#include "export.h"
#include "kv.h"

/* Seed of namespace roots: "kvroot01", so a root never equals a plain XXH3. */
#define KV_ROOT_SEED 0x6b76726f6f743031ull
/* Blocks up to this many tokens are hashed from one stack buffer. */
#define KV_HASH_STACK_TOKENS 1024

static kv_hash from_xxh(XXH128_hash_t x)
{
	kv_hash h = { .lo = x.low64, .hi = x.high64 };

	/* {0,0} is reserved as "no hash"; XXH3 producing it is ~2^-128. */
	if (!h.lo && !h.hi)
		h.lo = 1;
	return h;
}

KV_EXPORT kv_hash kv_hash_root(const void *ns, size_t len)
{
	if (!ns)
		len = 0;
	return from_xxh(XXH3_128bits_withSeed(ns ? ns : "", len, KV_ROOT_SEED));
}

static void canonical(kv_hash h, void *out)
{
	XXH128_hash_t x = { .low64 = h.lo, .high64 = h.hi };

	XXH128_canonicalFromHash((XXH128_canonical_t *)out, x);
}

#if __BYTE_ORDER != __LITTLE_ENDIAN
#error "kv_hash_chain hashes tokens as little-endian uint32; add a byte swap here"
#endif

KV_EXPORT size_t kv_hash_chain(kv_hash parent, const uint32_t *tokens, size_t ntokens,
		     uint32_t block_tokens, kv_hash *out)
{
	size_t nblocks, tok_bytes = (size_t)block_tokens * sizeof(uint32_t);

	if (!tokens || !out || !block_tokens)
		return 0;
	nblocks = ntokens / block_tokens;
	if (block_tokens <= KV_HASH_STACK_TOKENS) {
		unsigned char buf[sizeof(XXH128_canonical_t) +
				  KV_HASH_STACK_TOKENS * sizeof(uint32_t)];

		for (size_t i = 0; i < nblocks; i++) {
			canonical(parent, buf);
			memcpy(buf + sizeof(XXH128_canonical_t),
			       tokens + i * block_tokens, tok_bytes);
			parent = from_xxh(XXH3_128bits(buf, sizeof(XXH128_canonical_t) + tok_bytes));
			out[i] = parent;
		}
		return nblocks;
	}

	/* Long blocks: stream instead of copying; same bytes, same hash. */
	XXH3_state_t *st = XXH3_createState();

	if (!st)
		return 0;
	for (size_t i = 0; i < nblocks; i++) {
		XXH128_canonical_t c;

		canonical(parent, &c);
		XXH3_128bits_reset(st);
		XXH3_128bits_update(st, &c, sizeof(c));
		XXH3_128bits_update(st, tokens + i * block_tokens, tok_bytes);
		parent = from_xxh(XXH3_128bits_digest(st));
		out[i] = parent;
	}
	XXH3_freeState(st);
	return nblocks;
}
