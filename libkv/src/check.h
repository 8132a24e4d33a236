/* SPDX-License-Identifier: MIT */
/*
 * check.h - the check value every stored copy of a block carries: one per
 * (name, layer), binding the block's 128-bit name and that layer's bytes.
 *
 *   check(name, l) = XXH3-64( prefix(name, l) || bytes of layer l )   (seed 0)
 *   prefix = u64 name.lo, u64 name.hi, u32 l, u32 layers, u64 layer_bytes
 *            (32 bytes, little-endian)
 *
 * Computed once, at pack time, in the same pass as the pack (each plane is
 * hashed while it is hot); carried unchanged by the host pool, the disk
 * tier's slot headers and memory servers; recomputed by every reader over
 * the name it asked for and the bytes it received. A copy stored under
 * another name (a stale index, a reused slot, a server answering for the
 * wrong block) therefore fails as surely as a bit flip. The layer is in
 * the prefix so one layer can be verified and released alone; the layer
 * count and size are so that a copy of another shape never matches.
 * Unkeyed: it defends against mix-ups and corruption, not against a
 * malicious peer (docs/protocol.md, "Threat model").
 */
#ifndef KV_CHECK_H
#define KV_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "checksum.h"
#include "kv.h"

#define KV_CHECK_PREFIX_BYTES 32

/* The shape the check values of a block depend on. */
struct kv_check_shape {
	uint32_t layers;     /* check values per block */
	size_t layer_bytes;  /* bytes of one layer: planes * plane bytes */
};

/* The shape of blocks of geometry g (g must pass kv_geometry_check). */
struct kv_check_shape kv_check_shape_of(const struct kv_geometry *g);

/* Start the check value of layer l of block name: reset c and hash the prefix. */
void kv_check_begin(struct kv_csum *c, const struct kv_check_shape *s, kv_hash name,
		    uint32_t l);

/* The check value of layer l, whose layer_bytes bytes are at p. */
uint64_t kv_check_layer(const struct kv_check_shape *s, kv_hash name, uint32_t l,
			const void *p);

/* Every layer's check value of the block at p into out[0..layers). */
void kv_check_block(const struct kv_check_shape *s, kv_hash name, const void *p,
		    uint64_t *out);

/*
 * Verify the block at p against its stored check values: 0, or -EBADMSG
 * at the first layer whose value differs (its index in *bad_layer when
 * bad_layer is not NULL).
 */
int kv_check_verify(const struct kv_check_shape *s, kv_hash name, const void *p,
		    const uint64_t *check, uint32_t *bad_layer);

#endif /* KV_CHECK_H */
