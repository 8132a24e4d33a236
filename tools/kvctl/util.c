// SPDX-License-Identifier: MIT
/* util.c - helpers shared by kvctl replay and bench (see util.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util.h"

uint64_t kvu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int kvu_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int kvu_parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (tolower((unsigned char)*end)) {
	case '\0': break;
	case 'k': shift = 10; end++; break;
	case 'm': shift = 20; end++; break;
	case 'g': shift = 30; end++; break;
	case 't': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (shift) {
		if (!strcasecmp(end, "ib") || !strcasecmp(end, "b"))
			end += strlen(end);
	}
	if (*end)
		return -EINVAL;
	if (shift && v > (~0ull >> shift))
		return -EINVAL;
	*out = (size_t)(v << shift);
	return 0;
}

const char *kvu_fmt_bytes(char *buf, size_t len, double b)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	if (u == 0 || b == (double)(uint64_t)b)
		snprintf(buf, len, "%.0f %s", b, unit[u]);
	else
		snprintf(buf, len, "%.1f %s", b, unit[u]);
	return buf;
}

static const struct {
	const char *name;
	uint32_t v;
} layouts[] = {
	{ "nhd", KV_LAYOUT_VLLM_NHD },
	{ "hnd", KV_LAYOUT_VLLM_HND },
	{ "flashinfer", KV_LAYOUT_FLASHINFER_NHD },
	{ "mla", KV_LAYOUT_MLA },
}, dtypes[] = {
	{ "fp16", KV_DTYPE_FP16 },
	{ "bf16", KV_DTYPE_BF16 },
	{ "fp32", KV_DTYPE_FP32 },
	{ "fp8", KV_DTYPE_FP8_E4M3 },
	{ "fp8_e5m2", KV_DTYPE_FP8_E5M2 },
	{ "int8", KV_DTYPE_INT8 },
};

uint32_t kvu_layout_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (!strcasecmp(s, layouts[i].name))
			return layouts[i].v;
	if (!strcasecmp(s, "vllm") || !strcasecmp(s, "vllm_nhd"))
		return KV_LAYOUT_VLLM_NHD;
	if (!strcasecmp(s, "vllm_hnd"))
		return KV_LAYOUT_VLLM_HND;
	if (!strcasecmp(s, "flashinfer_nhd"))
		return KV_LAYOUT_FLASHINFER_NHD;
	return 0;
}

const char *kvu_layout_name(uint32_t v)
{
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (layouts[i].v == v)
			return layouts[i].name;
	return "?";
}

uint32_t kvu_dtype_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (!strcasecmp(s, dtypes[i].name))
			return dtypes[i].v;
	if (!strcasecmp(s, "fp8_e4m3"))
		return KV_DTYPE_FP8_E4M3;
	return 0;
}

const char *kvu_dtype_name(uint32_t v)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (dtypes[i].v == v)
			return dtypes[i].name;
	return "?";
}

int kvu_engine_init(struct kvu_engine *e, const struct kv_geometry *g,
		    uint32_t layout, uint32_t num_blocks)
{
	size_t esize = kv_dtype_size(g->dtype);
	uint32_t l;

	memset(e, 0, sizeof(*e));
	if (!esize || !num_blocks || !g->layers) {
		fprintf(stderr, "kvctl: bad engine cache geometry\n");
		return -EINVAL;
	}
	e->g = *g;
	e->esize = esize;
	e->row_bytes = (size_t)g->head_dim * esize;
	e->plane_bytes = (size_t)g->block_tokens * g->kv_heads * e->row_bytes;
	switch (layout) {
	case KV_LAYOUT_VLLM_NHD:
	case KV_LAYOUT_VLLM_HND:
		e->block_stride = e->plane_bytes;
		e->plane_stride = e->plane_bytes * num_blocks;
		e->head_major = layout == KV_LAYOUT_VLLM_HND;
		break;
	case KV_LAYOUT_FLASHINFER_NHD:
		e->block_stride = 2 * e->plane_bytes;
		e->plane_stride = e->plane_bytes;
		break;
	case KV_LAYOUT_MLA:
		e->block_stride = e->plane_bytes;
		e->plane_stride = 0;
		break;
	default:
		fprintf(stderr, "kvctl: unknown engine layout %u\n", layout);
		return -EINVAL;
	}
	e->layer_bytes = e->plane_bytes * g->planes * num_blocks;
	e->layers = calloc(g->layers, sizeof(*e->layers));
	if (!e->layers)
		goto err_nomem;
	for (l = 0; l < g->layers; l++) {
		void *p = mmap(NULL, e->layer_bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		if (p == MAP_FAILED) {
			char b[32];

			fprintf(stderr, "kvctl: cannot map the engine cache (%u layers x %s): %s\n",
				g->layers, kvu_fmt_bytes(b, sizeof(b), (double)e->layer_bytes),
				strerror(errno));
			kvu_engine_free(e);
			return -ENOMEM;
		}
		madvise(p, e->layer_bytes, MADV_HUGEPAGE);
		memset(p, 0, e->layer_bytes);
		e->layers[l] = p;
	}
	e->ec.mem = KV_MEM_HOST;
	e->ec.layout = layout;
	e->ec.num_blocks = num_blocks;
	e->ec.layers = e->layers;
	return 0;

err_nomem:
	fprintf(stderr, "kvctl: cannot allocate the engine cache: %s\n", strerror(ENOMEM));
	kvu_engine_free(e);
	return -ENOMEM;
}

void kvu_engine_free(struct kvu_engine *e)
{
	if (e->layers) {
		for (uint32_t l = 0; l < e->g.layers; l++)
			if (e->layers[l])
				munmap(e->layers[l], e->layer_bytes);
		free(e->layers);
	}
	memset(e, 0, sizeof(*e));
}

/* Seed of canonical row r of block h. */
static inline uint64_t row_seed(kv_hash h, uint64_t r)
{
	return kvu_mix64(h.lo ^ kvu_mix64(h.hi + (r + 1) * 0xd1342543de82ef95ull));
}

/* Calls fn(row pointer, canonical row index) for every row of engine block b. */
#define FOR_EACH_ROW(e, b, ptr, r, body)						\
	do {										\
		uint32_t T_ = (e)->g.block_tokens, H_ = (e)->g.kv_heads;		\
		for (uint32_t l_ = 0; l_ < (e)->g.layers; l_++)				\
			for (uint32_t p_ = 0; p_ < (e)->g.planes; p_++) {		\
				uint8_t *pl_ = kvu_engine_plane(e, l_, p_, b);		\
				uint64_t base_ = ((uint64_t)l_ * (e)->g.planes + p_) * T_ * H_; \
				for (uint32_t t_ = 0; t_ < T_; t_++)			\
					for (uint32_t h_ = 0; h_ < H_; h_++) {		\
						size_t in_ = (e)->head_major ?		\
							(size_t)h_ * T_ + t_ :		\
							(size_t)t_ * H_ + h_;		\
						uint8_t *ptr = pl_ + in_ * (e)->row_bytes; \
						uint64_t r = base_ + (uint64_t)t_ * H_ + h_; \
						body;					\
					}						\
			}								\
	} while (0)

#define PATTERN_STEP 0x9e3779b97f4a7c15ull

static inline uint64_t pattern_word(uint64_t x)
{
	return x ^ (x >> 29);
}

static void fill_row(uint8_t *dst, size_t len, uint64_t seed)
{
	size_t words = len / 8, i;
	uint64_t x = seed;

	for (i = 0; i < words; i++) {
		uint64_t w;

		x += PATTERN_STEP;
		w = pattern_word(x);
		memcpy(dst + i * 8, &w, 8);
	}
	if (len % 8) {
		uint64_t w;

		x += PATTERN_STEP;
		w = pattern_word(x);
		memcpy(dst + words * 8, &w, len % 8);
	}
}

static int check_row(const uint8_t *src, size_t len, uint64_t seed)
{
	size_t words = len / 8, i;
	uint64_t x = seed, diff = 0;

	for (i = 0; i < words; i++) {
		uint64_t w;

		x += PATTERN_STEP;
		memcpy(&w, src + i * 8, 8);
		diff |= w ^ pattern_word(x);
	}
	if (len % 8) {
		uint64_t w = 0, v;

		x += PATTERN_STEP;
		v = pattern_word(x);
		memcpy(&w, src + words * 8, len % 8);
		memset((uint8_t *)&v + len % 8, 0, 8 - len % 8);
		diff |= w ^ v;
	}
	return diff != 0;
}

void kvu_pattern_fill(const struct kvu_engine *e, uint32_t b, kv_hash h)
{
	size_t len = e->row_bytes;

	FOR_EACH_ROW(e, b, ptr, r, fill_row(ptr, len, row_seed(h, r)));
}

int kvu_pattern_check(const struct kvu_engine *e, uint32_t b, kv_hash h)
{
	size_t len = e->row_bytes;
	int bad = 0;

	FOR_EACH_ROW(e, b, ptr, r, bad |= check_row(ptr, len, row_seed(h, r)));
	return bad ? -EBADMSG : 0;
}

void kvu_canary_set(const struct kvu_engine *e, uint32_t b, uint64_t v)
{
	uint8_t *p = kvu_engine_plane(e, 0, 0, b);
	size_t n = e->row_bytes < 8 ? e->row_bytes : 8;

	memcpy(p, &v, n);
}

int kvu_canary_check(const struct kvu_engine *e, uint32_t b, uint64_t v)
{
	uint8_t *p = kvu_engine_plane(e, 0, 0, b);
	size_t n = e->row_bytes < 8 ? e->row_bytes : 8;

	return memcmp(p, &v, n) ? -EBADMSG : 0;
}

void kvu_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
