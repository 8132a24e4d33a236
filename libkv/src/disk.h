/* SPDX-License-Identifier: MIT */
/*
 * disk.h - tier 2: blocks in a file or block device (docs/disk-format.md).
 *
 * A superblock, a table of 64-byte slot headers and a data area of fixed
 * slots. Opened O_DIRECT (buffered, with one warning, where the file system
 * refuses it) and driven by io_uring with the host pool registered as fixed
 * buffers and the file registered; a small pread/pwrite thread pool replaces
 * io_uring where it is unavailable (one warning) or when KV_F_DISK_NO_URING
 * asks for it. Slots are reused in CLOCK order (a log with second chance).
 */
#ifndef KV_DISK_H
#define KV_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "tier.h"

#define KV_DISK_MAGIC "LIBKVDSK"
#define KV_DISK_VERSION 2 /* 2: per-(name, layer) check values in the slot header */
#define KV_DISK_HDR_MAGIC 0x4853564bu /* "KVSH" */
#define KV_DISK_SB_BYTES 4096u
#define KV_DISK_ALIGN 4096u
#define KV_DISK_DATA_ALIGN (1u << 20)

/* On disk at offset 0 (little-endian), padded with zeros to 4096 bytes. */
struct kv_disk_super {
	char magic[8];          /* KV_DISK_MAGIC, not NUL-terminated */
	uint32_t version;       /* KV_DISK_VERSION */
	uint32_t header_bytes;  /* sizeof(struct kv_disk_header) */
	uint64_t block_bytes;   /* bytes of one canonical block */
	uint64_t slot_bytes;    /* block_bytes rounded up to 4096 */
	uint64_t nslots;
	uint64_t table_off;     /* first slot header */
	uint64_t data_off;      /* first slot's data */
	uint64_t file_bytes;    /* data_off + nslots * slot_bytes */
	uint64_t instance;      /* random, new at every format */
	struct kv_geometry geometry;
	uint32_t pad[2];        /* 0 */
	kv_hash ns_root;        /* namespace the blocks belong to */
	uint64_t created;       /* seconds since the epoch */
	uint64_t csum;          /* XXH3-64 of the bytes above */
};

/*
 * One per slot at table_off + slot * header_bytes, where header_bytes =
 * kv_disk_header_bytes(layers): this fixed part, then the block's `layers`
 * check values (u64 each, check.h), then zeros up to a multiple of 64.
 */
struct kv_disk_header {
	uint64_t h_lo, h_hi;    /* the block's name */
	uint64_t gen;           /* write generation (1, 2, ...); 0: empty */
	uint64_t instance;      /* the superblock's; another value: empty */
	uint32_t slot;          /* its own slot number */
	uint32_t magic;         /* KV_DISK_HDR_MAGIC */
	uint32_t nchecks;       /* check values that follow: geometry.layers */
	uint32_t reserved32;    /* 0 */
	uint64_t reserved;      /* 0 */
	uint64_t hcsum;         /* XXH3-64 of the header's other bytes: the 56 above,
				   then from the check values to the header's end */
};

/* Bytes of one slot header for blocks of `layers` layers. */
static inline uint64_t kv_disk_header_bytes(uint32_t layers)
{
	return (64 + 8 * (uint64_t)layers + 63) / 64 * 64;
}

struct kv_disk_config {
	const char *path;
	size_t bytes;
	struct kv_geometry geometry;
	kv_hash ns_root;
	uint32_t flags;         /* KV_F_DISK_NO_URING, KV_F_DISK_REFORMAT, KV_F_QUIET */
	uint32_t queue_depth;   /* I/Os in flight per caller; 0: 32 */
	uint32_t batch;         /* SQEs per submit; 0: queue_depth */
};

/*
 * Open (or create and format) the disk tier described by dc, registering
 * pool (may be NULL: no fixed buffers) with io_uring. Fills *t. Returns 0 or
 * -errno: -EINVAL (too small for one slot), -EMEDIUMTYPE (not a libkv disk
 * tier, or another version), -EEXIST (another geometry, size or namespace),
 * -EUCLEAN (truncated file or corrupt superblock), -EBUSY (in use by another
 * process), or the open/read/write error. The last three kinds and the first
 * two are reformatted instead when dc->flags has KV_F_DISK_REFORMAT.
 */
int kv_disk_tier_open(const struct kv_disk_config *dc, const struct kv_tier_pool *pool,
		      struct kv_tier_ops *t);

/*
 * The format's geometry for a config (for tests and tools): nslots is the
 * largest n with data_off(n) + n * slot_bytes <= disk_bytes, where
 * data_off(n) = 4096 + n * header_bytes rounded up to 1 MiB and slot_bytes
 * = block_bytes rounded up to 4096 (docs/disk-format.md). Returns 0, or
 * -EINVAL when not even one slot fits (or the count passes 2^32 - 1).
 */
int kv_disk_layout(size_t disk_bytes, size_t block_bytes, size_t header_bytes,
		   uint64_t *nslots, uint64_t *data_off, uint64_t *slot_bytes);

/* Which engine a tier opened with kv_disk_tier_open runs: "io_uring" or "threads". */
const char *kv_disk_engine(const struct kv_tier_ops *t);
/* Whether it uses O_DIRECT and fixed buffers (1/0). */
int kv_disk_direct(const struct kv_tier_ops *t);
int kv_disk_fixed(const struct kv_tier_ops *t);

#endif /* KV_DISK_H */
