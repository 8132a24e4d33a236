/* SPDX-License-Identifier: MIT */
/*
 * tier.h - the tiers below the host pool (disk: tier 2, remote: tier 3).
 *
 * A lower tier owns its own map of what it holds (a disk tier rebuilds it
 * from slot headers at open; a memory server answers lookups), its own
 * eviction and its own I/O. libkv's workers call it in batches, without
 * kv->lock held, with host pool slots as the only buffers: a block moves
 * between a host slot and the tier with no copy on the CPU. Calls may block
 * for the I/O of the batch; each must finish within the tier's bounded
 * timeout (a dead disk or peer makes a block fail, never hangs a worker).
 * Every function is safe to call from several workers at once.
 */
#ifndef KV_TIER_H
#define KV_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* One block of a batch. */
struct kv_tier_io {
	kv_hash h;
	uint64_t *check;  /* layers check values (check.h) of buf's bytes under h:
			     write: the block's; read: filled from the stored copy once
			     it has been verified against h */
	void *buf;        /* host slot: block_bytes, 4 KiB aligned, inside the registered pool */
	int32_t res;      /* out: 0, or -ENOENT (absent), -EBADMSG (failed its checksum:
			     treated as absent and forgotten), -ENOSPC, -EIO, -ETIMEDOUT, ... */
};

struct kv_tier_ops {
	const char *name;     /* "disk", "remote" */
	int level;            /* enum kv_tier */
	void *ctx;
	/*
	 * Store n blocks (already present ones succeed without I/O). Sets each
	 * io[i].res. Returns how many were stored, or -errno if the tier failed
	 * as a whole.
	 */
	int (*write)(void *ctx, struct kv_tier_io *io, size_t n);
	/*
	 * Read n blocks into io[i].buf and verify each against its stored
	 * check values, recomputed over the name asked for (io[i].h), before
	 * reporting success: a copy stored under another name fails like a
	 * corrupt one. A mismatch is -EBADMSG and the copy is dropped. Sets
	 * io[i].res and io[i].check. Returns how many read.
	 */
	int (*read)(void *ctx, struct kv_tier_io *io, size_t n);
	/* For each h[i], whether the tier holds it (present[i] = 0/1). Returns 0 or -errno. */
	int (*lookup)(void *ctx, const kv_hash *h, size_t n, uint8_t *present);
	/*
	 * Optional (NULL: this tier drops what it evicts). The cascade: blocks
	 * this tier evicts are written to next first (next's write, from this
	 * tier's own staging, off the request path), those admit (enum
	 * kv_admit: REUSED = hit at least once in this tier) lets through.
	 * Called once, before any I/O. Returns 0 or -EINVAL.
	 */
	int (*chain)(void *ctx, const struct kv_tier_ops *next, uint32_t admit);
	/* Add this tier's counters into st (kv_stats' row for this tier). */
	void (*stats)(void *ctx, struct kv_tier_stats *st);
	/* Flush and free. */
	void (*close)(void *ctx);
};

/*
 * Pool registration: tiers that DMA into host slots (io_uring fixed
 * buffers, verbs MRs) get the whole pool once at open.
 */
struct kv_tier_pool {
	void *addr;
	size_t len;
	size_t slot_bytes;
	size_t block_bytes;
};

#endif /* KV_TIER_H */
