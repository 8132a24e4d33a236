// SPDX-License-Identifier: MIT
/*
 * test_hash.c - block identity. Pinned values guard the format (disk files
 * and memory servers name blocks by it); an independent re-derivation with
 * plain XXH3 guards the serialisation; the rest checks what must differ.
 */
#include <xxhash.h>

#include "harness.h"

static kv_hash manual(kv_hash parent, const uint32_t *tok, uint32_t bt)
{
	unsigned char buf[16 + 4 * 4096];
	XXH128_canonical_t c;
	XXH128_hash_t x = { .low64 = parent.lo, .high64 = parent.hi };

	XXH128_canonicalFromHash(&c, x);
	memcpy(buf, &c, 16);
	memcpy(buf + 16, tok, 4ul * bt);
	x = XXH3_128bits(buf, 16 + 4ul * bt);
	return (kv_hash){ x.low64, x.high64 };
}

int main(void)
{
	const char ns[] = "llama-3-8b|fp16|vllm-nhd|tp0";
	uint32_t tok[5000];
	kv_hash h[400], h2[400], root, root2;

	for (uint32_t i = 0; i < 5000; i++)
		tok[i] = i * 2654435761u;

	root = kv_hash_root(ns, strlen(ns));
	/* Pinned: changing these breaks every stored block on disk and on servers. */
	printf("root %016llx %016llx\n", (unsigned long long)root.hi, (unsigned long long)root.lo);
	CHECK_EQ(root.hi, 0x5841d4391aae546cull);
	CHECK_EQ(root.lo, 0xf06adcba79879affull);
	CHECK_EQ(kv_hash_chain(root, tok, 33, 16, h), 2); /* trailing partial block not named */
	printf("h1 %016llx %016llx\n", (unsigned long long)h[1].hi, (unsigned long long)h[1].lo);
	CHECK_EQ(h[1].hi, 0x31930abd2eb38a3eull);
	CHECK_EQ(h[1].lo, 0xee3114b0441215afull);

	/* Independent derivation of the chain, short and streamed (long) blocks. */
	CHECK(kv_hash_eq(h[0], manual(root, tok, 16)));
	CHECK(kv_hash_eq(h[1], manual(h[0], tok + 16, 16)));
	CHECK_EQ(kv_hash_chain(root, tok, 4096 + 100, 2048, h), 2);
	CHECK(kv_hash_eq(h[0], manual(root, tok, 2048)));
	CHECK(kv_hash_eq(h[1], manual(h[0], tok + 2048, 2048)));

	/* Chaining: hashing in two calls equals one call. */
	CHECK_EQ(kv_hash_chain(root, tok, 320, 16, h), 20);
	CHECK_EQ(kv_hash_chain(h[9], tok + 160, 160, 16, h2), 10);
	for (int i = 0; i < 10; i++)
		CHECK(kv_hash_eq(h[10 + i], h2[i]));

	/* Different namespace: every block differs. */
	root2 = kv_hash_root("llama-3-8b|fp16|vllm-nhd|tp1", strlen(ns));
	CHECK(!kv_hash_eq(root, root2));
	CHECK_EQ(kv_hash_chain(root2, tok, 320, 16, h2), 20);
	for (int i = 0; i < 20; i++)
		CHECK(!kv_hash_eq(h[i], h2[i]));

	/* Token order matters; a different parent changes every later block. */
	uint32_t sw[32];
	memcpy(sw, tok, sizeof(sw));
	sw[3] = tok[4];
	sw[4] = tok[3];
	CHECK_EQ(kv_hash_chain(root, sw, 32, 16, h2), 2);
	CHECK(!kv_hash_eq(h[0], h2[0]));
	CHECK(!kv_hash_eq(h[1], h2[1]));
	memcpy(sw, tok, sizeof(sw));
	sw[20] ^= 1; /* second block differs only */
	CHECK_EQ(kv_hash_chain(root, sw, 32, 16, h2), 2);
	CHECK(kv_hash_eq(h[0], h2[0]));
	CHECK(!kv_hash_eq(h[1], h2[1]));
	/* Same tokens of block 1 under a different parent: different name. */
	CHECK_EQ(kv_hash_chain(root2, tok + 16, 16, 16, h2), 1);
	CHECK(!kv_hash_eq(h[1], h2[0]));

	/* Degenerate inputs name nothing. */
	CHECK_EQ(kv_hash_chain(root, tok, 15, 16, h2), 0);
	CHECK_EQ(kv_hash_chain(root, tok, 16, 0, h2), 0);
	CHECK_EQ(kv_hash_chain(root, NULL, 16, 16, h2), 0);
	CHECK_EQ(kv_hash_chain(root, tok, 16, 16, NULL), 0);
	/* No hash is {0,0}; empty namespace is a valid root. */
	root2 = kv_hash_root(NULL, 0);
	CHECK(root2.lo || root2.hi);

	printf("ok\n");
	return 0;
}
