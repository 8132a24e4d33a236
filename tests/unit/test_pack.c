// SPDX-License-Identifier: MIT
/*
 * test_pack.c - the CPU reference pack/unpack against an element-by-element
 * model of every layout (harness.c), with random geometry, dtype, strides
 * and block ids; unpack is the exact inverse and touches nothing else.
 */
#include "harness.h"
#include "kv_pack.h"

static const uint32_t layouts[] = { KV_LAYOUT_VLLM_NHD, KV_LAYOUT_VLLM_HND,
				    KV_LAYOUT_FLASHINFER_NHD, KV_LAYOUT_MLA };
static const uint32_t dtypes[] = { KV_DTYPE_FP16, KV_DTYPE_BF16, KV_DTYPE_FP32,
				   KV_DTYPE_FP8_E4M3, KV_DTYPE_INT8 };

static void one_case(uint32_t layout)
{
	struct kv_geometry g = {
		.layers = t_range(1, 5),
		.planes = layout == KV_LAYOUT_MLA ? 1 : 2,
		.block_tokens = t_range(1, 19),
		.kv_heads = layout == KV_LAYOUT_MLA ? 1 : t_range(1, 5),
		.head_dim = t_range(1, 130), /* odd sizes included */
		.dtype = dtypes[t_rand() % 5],
	};
	uint32_t nb = t_range(1, 24);
	size_t pad = (t_rand() & 1) ? t_range(1, 300) : 0;
	struct t_engine e, before;
	struct kv_pack_layout pl;
	size_t bb = kv_geometry_block_bytes(&g);
	unsigned char *got = malloc(bb), *want = malloc(bb), *src = malloc(bb);

	CHECK(got && want && src);
	t_engine_init_padded(&e, &g, layout, nb, pad);
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), 0);
	CHECK_EQ(pl.block_bytes, bb);

	for (int iter = 0; iter < 8; iter++) {
		uint32_t b = t_range(0, nb - 1);

		memset(got, 0xa5, bb); /* poison: unwritten bytes show */
		kv_pack_cpu(&pl, b, got);
		t_engine_expect(&e, b, want);
		if (memcmp(got, want, bb))
			FAILF("pack layout %u block %u geometry %u/%u/%u/%u/%u dtype %u pad %zu",
			      layout, b, g.layers, g.planes, g.block_tokens, g.kv_heads,
			      g.head_dim, g.dtype, pad);

		/* Unpack fresh bytes into b: b reads back as them, others unchanged. */
		t_engine_init_padded(&before, &g, layout, nb, pad);
		for (uint32_t l = 0; l < g.layers; l++)
			memcpy(before.layers[l], e.layers[l], e.layer_bytes);
		t_fill(src, bb);
		kv_unpack_cpu(&pl, src, b);
		t_engine_expect(&e, b, want);
		CHECK(!memcmp(want, src, bb));
		for (uint32_t o = 0; o < nb && iter < 2; o++) {
			if (o == b)
				continue;
			t_engine_expect(&e, o, want);
			t_engine_expect(&before, o, got);
			CHECK(!memcmp(want, got, bb));
		}
		t_engine_free(&before);
	}
	t_engine_free(&e);
	free(got);
	free(want);
	free(src);
}

static void bad_layouts(void)
{
	struct kv_geometry g = t_geometry_small();
	struct kv_pack_layout pl;
	struct t_engine e;

	t_engine_init(&e, &g, KV_LAYOUT_MLA, 4);
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), -EINVAL); /* MLA needs planes 1 */
	e.ec.layout = 99;
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), -EINVAL);
	e.ec.layout = KV_LAYOUT_VLLM_NHD;
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), 0);
	e.ec.num_blocks = 0;
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), -EINVAL);
	e.ec.num_blocks = 4;
	e.ec.block_stride = 8; /* smaller than a plane: blocks would overlap */
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), -EINVAL);
	e.ec.block_stride = 0;
	void *saved = e.layers[1];
	e.layers[1] = NULL;
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), -EINVAL);
	e.layers[1] = saved;
	g.planes = 1;
	CHECK_EQ(kv_pack_layout_init(&pl, &g, &e.ec), -EINVAL); /* vLLM needs 2 planes */
	t_engine_free(&e);
}

int main(void)
{
	t_seed("test_pack");
	bad_layouts();
	for (int i = 0; i < 200; i++)
		one_case(layouts[i % 4]);
	printf("ok\n");
	return 0;
}
