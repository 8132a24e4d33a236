// SPDX-License-Identifier: MIT
/*
 * test_checksum.c - the block checksum is XXH3-64 whatever implementation
 * the CPU gets: one-shot and piecewise agree with libxxhash for random
 * lengths and split points (stored checksums must stay valid across hosts).
 * The check values (check.h) are XXH3-64 over the 32-byte prefix and the
 * layer's bytes, exactly as documented (pinned vector), and bind the name,
 * the layer and the shape: none of them can change without a mismatch.
 */
#include <errno.h>
#include <string.h>
#include <xxhash.h>

#include "check.h"
#include "checksum.h"
#include "harness.h"

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void t_check_values(unsigned char *buf)
{
	struct kv_check_shape sh = { 3, 4096 }, other = { 4, 4096 };
	kv_hash a = { 0x0123456789abcdefull, 0xfedcba9876543210ull }, b = a;
	static unsigned char ref[32 + 4096];
	uint64_t chk[3], v[256];
	uint32_t bad = 99;

	/* The definition, with libxxhash itself. */
	put64(ref, a.lo);
	put64(ref + 8, a.hi);
	put64(ref + 16, 1 | (uint64_t)3 << 32);
	put64(ref + 24, 4096);
	memcpy(ref + 32, buf + 4096, 4096);
	CHECK_EQ(kv_check_layer(&sh, a, 1, buf + 4096), XXH3_64bits(ref, sizeof(ref)));
	/* A pinned vector: stored values stay valid across versions and hosts. */
	for (int i = 0; i < 256; i++)
		v[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
	{
		struct kv_check_shape one = { 1, sizeof(v) };
		CHECK_EQ(kv_check_layer(&one, (kv_hash){ 1, 2 }, 0, v), 0x3ca857014ddd7267ull);
	}
	kv_check_block(&sh, a, buf, chk);
	for (uint32_t l = 0; l < 3; l++)
		CHECK_EQ(chk[l], kv_check_layer(&sh, a, l, buf + l * 4096));
	CHECK_EQ(kv_check_verify(&sh, a, buf, chk, &bad), 0);
	CHECK_EQ(bad, 99);
	/* Another name (one bit), another layer position, another shape: all differ. */
	b.hi ^= 1ull << 63;
	CHECK_EQ(kv_check_verify(&sh, b, buf, chk, &bad), -EBADMSG);
	CHECK_EQ(bad, 0);
	CHECK(kv_check_layer(&sh, a, 0, buf + 4096) != chk[1]);
	CHECK(kv_check_layer(&other, a, 1, buf + 4096) != chk[1]);
	/* One flipped byte in the last layer is found there. */
	buf[2 * 4096 + 77] ^= 0x10;
	CHECK_EQ(kv_check_verify(&sh, a, buf, chk, &bad), -EBADMSG);
	CHECK_EQ(bad, 2);
	buf[2 * 4096 + 77] ^= 0x10;
}

int main(void)
{
	static unsigned char buf[1 << 20];
	struct kv_csum st;

	t_seed("test_checksum");
	printf("implementation: %s\n", kv_csum_impl());
	t_fill(buf, sizeof(buf));
	CHECK_EQ(kv_csum64(buf, 0), XXH3_64bits(buf, 0));
	for (int i = 0; i < 300; i++) {
		size_t len = i < 100 ? (size_t)i * 7 : t_range(1, sizeof(buf));
		size_t off = t_range(0, 63), cut;

		if (off + len > sizeof(buf))
			len = sizeof(buf) - off;
		CHECK_EQ(kv_csum64(buf + off, len), XXH3_64bits(buf + off, len));
		kv_csum_reset(&st);
		for (size_t done = 0; done < len; done += cut) {
			cut = t_range(1, 70000);
			if (cut > len - done)
				cut = len - done;
			kv_csum_update(&st, buf + off + done, cut);
		}
		CHECK_EQ(kv_csum_digest(&st), XXH3_64bits(buf + off, len));
	}
	t_check_values(buf);
	printf("ok\n");
	return 0;
}
