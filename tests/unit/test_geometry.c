// SPDX-License-Identifier: MIT
/* test_geometry.c - geometry validation and block size. */
#include "harness.h"

int main(void)
{
	struct kv_geometry g = t_geometry_small(), b;

	CHECK_EQ(kv_geometry_check(&g), 0);
	CHECK_EQ(kv_geometry_block_bytes(&g), 2 * 2 * 16 * 2 * 64 * 2);
	CHECK_EQ(kv_geometry_check(NULL), -EINVAL);
	CHECK_EQ(kv_geometry_block_bytes(NULL), 0);

	/* Each zero field is refused. */
	uint32_t *fields[] = { &b.layers, &b.planes, &b.block_tokens, &b.kv_heads,
			       &b.head_dim, &b.dtype };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		b = g;
		*fields[i] = 0;
		CHECK_EQ(kv_geometry_check(&b), -EINVAL);
		CHECK_EQ(kv_geometry_block_bytes(&b), 0);
	}
	b = g; b.planes = 3;
	CHECK_EQ(kv_geometry_check(&b), -EINVAL);
	b = g; b.dtype = 99;
	CHECK_EQ(kv_geometry_check(&b), -EINVAL);
	/* Overflow of size_t and of the 1 GiB cap. */
	b = g; b.layers = b.block_tokens = b.kv_heads = b.head_dim = UINT32_MAX;
	CHECK_EQ(kv_geometry_check(&b), -EINVAL);
	b = (struct kv_geometry){ 1, 1, 1, 1, 1u << 30, KV_DTYPE_FP8_E4M3 };
	CHECK_EQ(kv_geometry_block_bytes(&b), 1u << 30);
	b.dtype = KV_DTYPE_FP16;
	CHECK_EQ(kv_geometry_check(&b), -EINVAL);

	CHECK_EQ(kv_dtype_size(KV_DTYPE_BF16), 2);
	CHECK_EQ(kv_dtype_size(KV_DTYPE_FP32), 4);
	CHECK_EQ(kv_dtype_size(KV_DTYPE_FP8_E5M2), 1);
	CHECK_EQ(kv_dtype_size(KV_DTYPE_INT8), 1);
	CHECK_EQ(kv_dtype_size(0), 0);

	/* MLA: one plane. */
	b = (struct kv_geometry){ 61, 1, 64, 1, 576, KV_DTYPE_BF16 };
	CHECK_EQ(kv_geometry_block_bytes(&b), 61ull * 64 * 576 * 2);

	CHECK(kv_strerror(-ENOENT) && *kv_strerror(-ENOENT));
	CHECK(kv_strerror(-12345) != NULL);
	CHECK(kv_strerror(5) != NULL);
	CHECK(!strcmp(kv_tier_name(KV_TIER_DISK), "disk"));
	CHECK(!strcmp(kv_tier_name(42), "none"));
	printf("ok\n");
	return 0;
}
