// SPDX-License-Identifier: MIT
/* check.c - per-(name, layer) check values (see check.h for the definition). */
#include <errno.h>
#include <string.h>

#include "check.h"

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

struct kv_check_shape kv_check_shape_of(const struct kv_geometry *g)
{
	struct kv_check_shape s = { g->layers, kv_geometry_block_bytes(g) / g->layers };

	return s;
}

void kv_check_begin(struct kv_csum *c, const struct kv_check_shape *s, kv_hash name,
		    uint32_t l)
{
	/* 32 bytes keep the layer's bytes 32-byte aligned in XXH3's stripes. */
	unsigned char pre[KV_CHECK_PREFIX_BYTES];

	put64(pre, name.lo);
	put64(pre + 8, name.hi);
	put64(pre + 16, (uint64_t)l | (uint64_t)s->layers << 32);
	put64(pre + 24, s->layer_bytes);
	kv_csum_reset(c);
	kv_csum_update(c, pre, sizeof(pre));
}

uint64_t kv_check_layer(const struct kv_check_shape *s, kv_hash name, uint32_t l,
			const void *p)
{
	struct kv_csum c;

	kv_check_begin(&c, s, name, l);
	kv_csum_update(&c, p, s->layer_bytes);
	return kv_csum_digest(&c);
}

void kv_check_block(const struct kv_check_shape *s, kv_hash name, const void *p,
		    uint64_t *out)
{
	const unsigned char *b = p;

	for (uint32_t l = 0; l < s->layers; l++)
		out[l] = kv_check_layer(s, name, l, b + (size_t)l * s->layer_bytes);
}

int kv_check_verify(const struct kv_check_shape *s, kv_hash name, const void *p,
		    const uint64_t *check, uint32_t *bad_layer)
{
	const unsigned char *b = p;

	for (uint32_t l = 0; l < s->layers; l++)
		if (kv_check_layer(s, name, l, b + (size_t)l * s->layer_bytes) != check[l]) {
			if (bad_layer)
				*bad_layer = l;
			return -EBADMSG;
		}
	return 0;
}
