// SPDX-License-Identifier: MIT
/* harness.c - shared test helpers (see harness.h). */
#include <time.h>

#include "harness.h"

uint64_t t_rng_state = 0x9e3779b97f4a7c15ull;

uint64_t t_rand(void)
{
	uint64_t x = t_rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	t_rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

void t_seed(const char *test)
{
	const char *s = getenv("KV_TEST_SEED");
	uint64_t seed;

	if (s) {
		seed = strtoull(s, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
	}
	printf("%s: seed: %llu (KV_TEST_SEED=%llu reproduces)\n", test,
	       (unsigned long long)seed, (unsigned long long)seed);
	t_rng_state = seed ? seed : 1;
}

void t_fill(void *p, size_t n)
{
	unsigned char *c = p;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = t_rand();

		memcpy(c + i, &v, 8);
	}
	for (; i < n; i++)
		c[i] = (unsigned char)t_rand();
}

struct kv_geometry t_geometry_small(void)
{
	return (struct kv_geometry){ .layers = 2, .planes = 2, .block_tokens = 16,
				     .kv_heads = 2, .head_dim = 64, .dtype = KV_DTYPE_FP16 };
}

void t_engine_init(struct t_engine *e, const struct kv_geometry *g, uint32_t layout,
		   uint32_t num_blocks)
{
	t_engine_init_padded(e, g, layout, num_blocks, 0);
}

void t_engine_init_padded(struct t_engine *e, const struct kv_geometry *g, uint32_t layout,
			  uint32_t num_blocks, size_t pad)
{
	size_t es = kv_dtype_size(g->dtype), P;

	memset(e, 0, sizeof(*e));
	e->g = *g;
	e->plane_bytes = (size_t)g->block_tokens * g->kv_heads * g->head_dim * es;
	P = e->plane_bytes + pad;
	e->layer_bytes = P * g->planes * num_blocks;
	e->layers = calloc(g->layers, sizeof(void *));
	CHECK(e->layers);
	for (uint32_t l = 0; l < g->layers; l++) {
		e->layers[l] = malloc(e->layer_bytes);
		CHECK(e->layers[l]);
		t_fill(e->layers[l], e->layer_bytes);
	}
	e->ec = (struct kv_engine_cache){ .mem = KV_MEM_HOST, .layout = layout,
					  .num_blocks = num_blocks,
					  .layers = (void *const *)e->layers };
	if (pad) {
		if (layout == KV_LAYOUT_FLASHINFER_NHD) {
			e->ec.plane_stride = P;
			e->ec.block_stride = 2 * P;
		} else {
			e->ec.block_stride = P;
			e->ec.plane_stride = layout == KV_LAYOUT_MLA ? 0 : P * num_blocks;
		}
	}
}

void t_engine_free(struct t_engine *e)
{
	for (uint32_t l = 0; l < e->g.layers; l++)
		free(e->layers[l]);
	free(e->layers);
	memset(e, 0, sizeof(*e));
}

/* Engine byte address of element (l, p, t, h) row start, from the layout table in kv.h. */
static unsigned char *row_addr(const struct t_engine *e, uint32_t b, uint32_t l,
			       uint32_t p, uint32_t t, uint32_t h)
{
	const struct kv_geometry *g = &e->g;
	size_t P = e->plane_bytes, row = g->head_dim * kv_dtype_size(g->dtype);
	size_t nb = e->ec.num_blocks, off;
	size_t bs, ps;

	switch (e->ec.layout) {
	case KV_LAYOUT_VLLM_NHD: bs = P; ps = nb * P; off = ((size_t)t * g->kv_heads + h) * row; break;
	case KV_LAYOUT_VLLM_HND: bs = P; ps = nb * P; off = ((size_t)h * g->block_tokens + t) * row; break;
	case KV_LAYOUT_FLASHINFER_NHD: bs = 2 * P; ps = P; off = ((size_t)t * g->kv_heads + h) * row; break;
	default: bs = P; ps = 0; off = (size_t)t * row; break; /* MLA */
	}
	if (e->ec.block_stride)
		bs = e->ec.block_stride;
	if (e->ec.plane_stride)
		ps = e->ec.plane_stride;
	return (unsigned char *)e->layers[l] + p * ps + b * bs + off;
}

void t_engine_expect(const struct t_engine *e, uint32_t b, void *canon)
{
	const struct kv_geometry *g = &e->g;
	size_t row = g->head_dim * kv_dtype_size(g->dtype);
	unsigned char *out = canon;

	for (uint32_t l = 0; l < g->layers; l++)
		for (uint32_t p = 0; p < g->planes; p++)
			for (uint32_t t = 0; t < g->block_tokens; t++)
				for (uint32_t h = 0; h < g->kv_heads; h++, out += row)
					memcpy(out, row_addr(e, b, l, p, t, h), row);
}

static uint64_t tag_byte_state(uint64_t tag)
{
	return tag * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
}

static void rows_foreach(struct t_engine *e, uint32_t b, uint64_t tag, int check, int *bad)
{
	const struct kv_geometry *g = &e->g;
	size_t row = g->head_dim * kv_dtype_size(g->dtype);
	uint64_t s = tag_byte_state(tag);

	for (uint32_t l = 0; l < g->layers; l++)
		for (uint32_t p = 0; p < g->planes; p++)
			for (uint32_t t = 0; t < g->block_tokens; t++)
				for (uint32_t h = 0; h < g->kv_heads; h++) {
					unsigned char *r = row_addr(e, b, l, p, t, h);

					for (size_t i = 0; i < row; i++) {
						s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
						unsigned char v = (unsigned char)((s * 0x2545f4914f6cdd1dull) >> 56);

						if (!check)
							r[i] = v;
						else if (r[i] != v)
							(*bad)++;
					}
				}
}

void t_engine_fill_block(struct t_engine *e, uint32_t b, uint64_t tag)
{
	rows_foreach(e, b, tag, 0, NULL);
}

int t_engine_check_block(const struct t_engine *e, uint32_t b, uint64_t tag)
{
	int bad = 0;

	rows_foreach((struct t_engine *)e, b, tag, 1, &bad);
	return bad == 0;
}

struct kv *t_open(const struct kv_geometry *g, size_t nblocks, uint32_t flags)
{
	size_t slot = (kv_geometry_block_bytes(g) + 4095) & ~(size_t)4095;
	struct kv_config cfg = { .geometry = *g, .host_bytes = slot * nblocks,
				 .flags = flags | KV_F_QUIET };
	struct kv *kv = NULL;
	int ret = kv_open(&cfg, &kv);

	if (ret)
		FAILF("kv_open: %s", kv_strerror(ret));
	return kv;
}

struct kv_completion t_wait1(struct kv *kv)
{
	struct kv_completion c;
	int n = kv_wait(kv, &c, 1, 10000);

	if (n != 1)
		FAILF("kv_wait returned %d, expected one completion", n);
	return c;
}

void t_hashes(kv_hash *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h[i].lo = t_rand();
		h[i].hi = t_rand() | 1;
	}
}
