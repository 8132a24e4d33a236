// SPDX-License-Identifier: MIT
/*
 * test_checksum.c - the block checksum is XXH3-64 whatever implementation
 * the CPU gets: one-shot and piecewise agree with libxxhash for random
 * lengths and split points (stored checksums must stay valid across hosts).
 */
#include <xxhash.h>

#include "checksum.h"
#include "harness.h"

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
	printf("ok\n");
	return 0;
}
