/* SPDX-License-Identifier: MIT */
/*
 * kv.h - libkv: page fixed-size KV-cache blocks between an inference engine's
 * cache and cheaper tiers (pinned host pool, local disk, remote memory servers).
 *
 * Conventions (liburing's):
 *  - every function that can fail returns 0 (or a count) on success and a
 *    negative errno on failure; kv_strerror() turns it into text;
 *  - objects are opaque; constructors fill an out-parameter;
 *  - any thread may call any function on the same struct kv; each submitted
 *    request produces exactly one completion.
 *
 * A block is [layers][planes][block_tokens][kv_heads][head_dim] elements of
 * dtype (the canonical layout; planes is 2 for K,V or 1 for an MLA latent).
 * It is named by a chained XXH3-128 hash of its tokens (kv_hash_chain()).
 */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KV_VERSION_MAJOR 0
#define KV_VERSION_MINOR 4
#define KV_VERSION_PATCH 0

/*
 * Since 0.4. The version of the libkv actually loaded ("0.4.0"), which may
 * be newer than the header a program was built with. Never NULL.
 */
const char *kv_version(void);

/* ---------------------------------------------------------------- identity */

/* A 128-bit block name. Compare with kv_hash_eq(); {0,0} is never produced. */
typedef struct kv_hash {
	uint64_t lo;
	uint64_t hi;
} kv_hash;

static inline int kv_hash_eq(kv_hash a, kv_hash b)
{
	return a.lo == b.lo && a.hi == b.hi;
}

/*
 * Root of a namespace's hash chain: XXH3-128 of the namespace bytes (model
 * name, dtype, layout, tensor-parallel rank, user salt: any byte string the
 * caller builds) under a fixed seed. Different namespaces give different
 * roots, so they never share a block. Returns the root.
 */
kv_hash kv_hash_root(const void *ns, size_t len);

/*
 * Name the full blocks of a token sequence: h[i] = XXH3_128(h[i-1] || tokens
 * of block i), h[-1] = parent, where h[i-1] is serialised in XXH128's
 * canonical (big-endian) form and tokens as little-endian uint32. Only full
 * blocks are named: a trailing partial block is ignored. out must hold
 * ntokens / block_tokens entries. Returns the number of hashes written (0 if
 * tokens, out or block_tokens is 0/NULL).
 */
size_t kv_hash_chain(kv_hash parent, const uint32_t *tokens, size_t ntokens,
		     uint32_t block_tokens, kv_hash *out);

/* ---------------------------------------------------------------- geometry */

enum kv_dtype {
	KV_DTYPE_FP16 = 1,
	KV_DTYPE_BF16 = 2,
	KV_DTYPE_FP32 = 3,
	KV_DTYPE_FP8_E4M3 = 4,
	KV_DTYPE_FP8_E5M2 = 5,
	KV_DTYPE_INT8 = 6,
};

/* Shape of one canonical block. */
struct kv_geometry {
	uint32_t layers;       /* transformer layers in a block */
	uint32_t planes;       /* 2: K and V; 1: MLA latent */
	uint32_t block_tokens; /* tokens per block */
	uint32_t kv_heads;     /* KV heads (1 for MLA) */
	uint32_t head_dim;     /* elements per head (latent dim for MLA) */
	uint32_t dtype;        /* enum kv_dtype */
};

/* Bytes of one element of dtype, or 0 for an unknown dtype. */
size_t kv_dtype_size(uint32_t dtype);

/*
 * Check a geometry: every field non-zero, planes 1 or 2, a known dtype, and a
 * block size that fits in 1 GiB without overflow. Returns 0 or -EINVAL.
 */
int kv_geometry_check(const struct kv_geometry *g);

/* Bytes of one canonical block, or 0 if kv_geometry_check() fails. */
size_t kv_geometry_block_bytes(const struct kv_geometry *g);

/* ---------------------------------------------------------------- engine cache */

enum kv_mem {
	KV_MEM_HOST = 1, /* engine cache in host memory: CPU pack/unpack */
	KV_MEM_CUDA = 2, /* engine cache in CUDA device memory */
};

/*
 * Engine layouts, per layer (each layer has its own base pointer). P is the
 * bytes of one plane of one engine block: block_tokens*kv_heads*head_dim*esize.
 *   VLLM_NHD       [2][num_blocks][block_tokens][kv_heads][head_dim]
 *                  default plane_stride = num_blocks*P, block_stride = P
 *   VLLM_HND       [2][num_blocks][kv_heads][block_tokens][head_dim]
 *                  default plane_stride = num_blocks*P, block_stride = P
 *   FLASHINFER_NHD [num_blocks][2][block_tokens][kv_heads][head_dim]
 *                  default plane_stride = P, block_stride = 2*P
 *   MLA            [num_blocks][block_tokens][latent_dim] (planes = 1,
 *                  kv_heads = 1, head_dim = latent_dim); block_stride = P
 */
enum kv_layout {
	KV_LAYOUT_VLLM_NHD = 1,
	KV_LAYOUT_VLLM_HND = 2,
	KV_LAYOUT_FLASHINFER_NHD = 3,
	KV_LAYOUT_MLA = 4,
};

/* Where and how the engine keeps its KV cache. Copied by kv_attach(). */
struct kv_engine_cache {
	uint32_t mem;          /* enum kv_mem */
	uint32_t layout;       /* enum kv_layout */
	int32_t device;        /* CUDA device ordinal (KV_MEM_CUDA) */
	uint32_t num_blocks;   /* engine blocks per layer */
	void *const *layers;   /* geometry.layers base pointers */
	size_t block_stride;   /* bytes between engine blocks; 0: layout default */
	size_t plane_stride;   /* bytes between K and V planes; 0: layout default */
	/*
	 * KV_MEM_CUDA only: the engine's compute stream (cudaStream_t). At
	 * kv_store() time libkv records an event on it and its own copy stream
	 * waits for that event, so a store never reads KV the engine has not
	 * finished writing. kv_load() completions are delivered only after
	 * the unpack has finished on the device. NULL: legacy default stream.
	 */
	void *cuda_stream;
};

/* ---------------------------------------------------------------- library */

enum kv_flags {
	KV_F_REQUIRE_PINNED = 1u << 0, /* fail kv_open if the pool can't be pinned */
	KV_F_REQUIRE_KVMEM = 1u << 1,  /* fail kv_open if /dev/kvmem is unusable */
	KV_F_NO_KVMEM = 1u << 2,       /* never use /dev/kvmem */
	KV_F_VERIFY_HOST = 1u << 3,    /* verify check values on host-tier loads too */
	KV_F_DISK_NO_URING = 1u << 4,  /* disk tier: force the thread-pool path */
	KV_F_DISK_REFORMAT = 1u << 5,  /* disk tier: reformat a foreign/mismatched file */
	KV_F_QUIET = 1u << 6,          /* no warnings on stderr */
	KV_F_REMOTE_NO_RDMA = 1u << 7, /* remote tier: TCP even where verbs would work (0.3) */
	/*
	 * Since 0.4, the cascade host -> disk -> remote (both tiers configured):
	 * blocks the disk tier evicts go on to the remote tier when they were
	 * loaded from disk at least once (default), every one (DEMOTE_ALL), or
	 * none (DEMOTE_NONE). Both together are refused.
	 */
	KV_F_DEMOTE_ALL = 1u << 8,
	KV_F_DEMOTE_NONE = 1u << 9,
	/*
	 * Since 0.4, with peers: write-through. Every block stored is also sent
	 * to the remote tier soon after (by the background flusher, off the
	 * request path) while host memory keeps it, so other nodes can share a
	 * hot prefix at once rather than only this node's evictions.
	 */
	KV_F_WRITE_THROUGH = 1u << 10,
};

struct kv_config {
	struct kv_geometry geometry;
	size_t host_bytes;        /* host pool size, rounded down to whole slots (a slot is
				     block bytes rounded up to 4 KiB, for O_DIRECT/RDMA);
				     at least one slot */
	const char *disk_path;    /* disk tier file or device; NULL: no disk tier; not "" */
	size_t disk_bytes;        /* disk tier size (with disk_path): room for the superblock,
				     the slot table and at least one slot (disk-format.md) */
	const char *peers;        /* "host:port,host:port" memory servers; NULL: none. Each
				     entry "host:port" or "[v6addr]:port" (leading spaces
				     ignored), non-empty host, port 1..65535, at most 64
				     entries, no empty entry ("a:1,,b:2", a trailing comma) */
	uint32_t flags;           /* enum kv_flags */
	uint32_t queue_depth;     /* max requests in flight; 0: 256, max 65536 */
	uint32_t workers;         /* copy/check-value threads; 0: one per core up to 8; max 8 */
	kv_hash ns_root;          /* namespace root (kv_hash_root); checked by disk/remote tiers;
				     required (not {0,0}) with peers */
	/* Since 0.2 (fields only added at the end; 0 always means the default): */
	uint32_t disk_queue_depth; /* disk I/Os in flight per worker; 0: 32, max 4096 */
	uint32_t disk_batch;       /* disk I/Os prepared per io_uring submit; 0: disk_queue_depth */
	uint32_t admit;            /* enum kv_admit: which host evictions are written to the
				      first lower tier (disk, else remote); 0: KV_ADMIT_REUSED */
	/* Since 0.3: the remote tier (used only with peers). */
	uint32_t remote_replicas;  /* copies of each block, on distinct peers; 0: 1, max 8 */
	int32_t remote_timeout_ms; /* bound on each remote batch, connecting included: a
				      peer that takes longer is marked down and its blocks
				      become misses / failed stores; 0: 2000, max 600000 */
	const char *remote_auth_file; /* shared secret for servers run with --auth-file
					 (read once by kv_open); NULL: none */
	const char *remote_rdma_dev;  /* verbs device (e.g. "mlx5_0"); NULL: the first
					 one found, if any; else TCP */
};

/*
 * kv_open refuses with -EINVAL, leaving nothing behind: a bad geometry,
 * host_bytes under one slot, a field above its max, an unknown flag bit,
 * KV_F_REQUIRE_KVMEM with KV_F_NO_KVMEM, disk_path "" or without
 * disk_bytes, disk_bytes under one disk slot (no file is created), a bad
 * peers list, peers with ns_root {0,0} (every server would refuse the
 * session). The last two say why on stderr unless KV_F_QUIET. A tier's
 * flags (KV_F_DISK_*, KV_F_REMOTE_*) without that tier are accepted and
 * do nothing.
 *
 * ABI: struct kv_config only grows at its end, and kv_open is versioned
 * (KV_0.1, KV_0.2, KV_0.3 in libkv.map): a program built against an older
 * kv.h calls the kv_open of its version, which reads only the fields that
 * version had and gives the newer ones their 0 default.
 */

/*
 * Admission of blocks evicted from the host pool into the lower tier
 * (written back asynchronously, on a worker, before their slot is reused).
 * Blocks loaded from a lower tier are already there and never rewritten.
 */
enum kv_admit {
	KV_ADMIT_REUSED = 0, /* only blocks hit (loaded) or stored again while in host memory */
	KV_ADMIT_ALL = 1,    /* every evicted block */
	KV_ADMIT_NONE = 2,   /* none: lower tiers only hold what was put there before */
};

struct kv;

/*
 * Create a cache instance: validate cfg, allocate the host pool, open the
 * disk tier (cfg->disk_path: a file, created and sized to disk_bytes if
 * absent, or a block device; its index is rebuilt from the slot headers),
 * start the workers. Returns 0 and sets *out, or -EINVAL (bad config),
 * -ENOMEM, -EPERM (KV_F_REQUIRE_PINNED and the memlock limit is too low),
 * -ENODEV (KV_F_REQUIRE_KVMEM and no module), -EOPNOTSUPP (peers: no remote
 * tier in this build); the -EINVAL cases are listed after struct kv_config.
 * Disk tier errors (a line on stderr says which unless KV_F_QUIET):
 * -EMEDIUMTYPE (not a libkv disk tier, or another format version), -EEXIST
 * (written for another geometry, size or namespace), -EUCLEAN (truncated,
 * or corrupt superblock) -- the three are reformatted instead with
 * KV_F_DISK_REFORMAT --, -EBUSY (open in another process), or the error of
 * open(2)/read/write (-ENOENT: disk_path's directory does not exist; note
 * that kv_strerror() words -ENOENT as a miss, which is what it means
 * everywhere else). A file system that refuses O_DIRECT and a host where
 * io_uring is unavailable are not errors: one warning each, then buffered
 * I/O / a pread-pwrite thread pool. Remote tier: -EINVAL (a bad peers list,
 * no ns_root, remote_replicas > 8, remote_timeout_ms out of range) or the
 * error reading remote_auth_file; peers that are down are not an error
 * (they are connected lazily and retried with backoff), nor is a host with
 * no RDMA device (TCP is used; one warning if remote_rdma_dev was named).
 */
int kv_open(const struct kv_config *cfg, struct kv **out);

/*
 * Wait for every submitted request to complete, write the host blocks the
 * admission policy (cfg.admit) lets down to the disk tier (so a restart
 * finds them), then free everything. Undelivered completions are dropped.
 * kv may be NULL.
 */
void kv_close(struct kv *kv);

/*
 * Describe the engine's KV cache. Must be called before kv_store/kv_load and
 * may be called again only with no request in flight. Within a layer no two
 * planes of the engine blocks 0..num_blocks-1 may overlap: block_stride and
 * plane_stride must each be at least P, and no block's V plane may overlap
 * any block's K plane (e.g. plane_stride == block_stride, or V of block b
 * running into K of block b+1). Returns 0, -EINVAL (bad description,
 * overlapping planes, layout/planes mismatch), -EBUSY (requests in flight),
 * -EOPNOTSUPP (KV_MEM_CUDA without a usable CUDA backend).
 */
int kv_attach(struct kv *kv, const struct kv_engine_cache *ec);

enum kv_tier {
	KV_TIER_NONE = 0,
	KV_TIER_HOST = 1,
	KV_TIER_DISK = 2,
	KV_TIER_REMOTE = 3,
};

/*
 * How many leading hashes of h[0..n) are present in some tier; tier_out (may
 * be NULL, else n entries) gets each one's best tier, KV_TIER_NONE from the
 * first absent one on. Host memory is looked at first; lower tiers are asked
 * only about the blocks it lacks. Side-effect free: nothing is touched,
 * promoted or held (a block found may be evicted before a later load).
 * Returns the count (>= 0) or -EINVAL.
 */
int kv_lookup(struct kv *kv, const kv_hash *h, size_t n, uint8_t *tier_out);

/*
 * Queue a store of engine blocks engine_blocks[i] under names h[i]. The
 * engine blocks are read (packed) before the completion is posted; they must
 * not change until then. A hash already present completes without copying,
 * and so does a hash repeated within h (the engine block of its first
 * occurrence is the one stored); one engine block may be stored under
 * several names. Both count as done and in kv_stats().store_dedup.
 * Returns 0 once queued, -EINVAL (NULL, n == 0, block id out of range, not
 * attached), -EAGAIN (queue_depth requests already in flight).
 */
int kv_store(struct kv *kv, const kv_hash *h, const uint32_t *engine_blocks,
	     size_t n, uint64_t user_data);

/*
 * Queue a load of blocks h[i] into engine blocks engine_blocks[i], in order.
 * A block not in host memory is read from the best lower tier (disk, then
 * remote) into a host slot, verified against the check values that bind
 * its name to its bytes, kept there, then unpacked. Host memory is looked
 * at first: a load whose blocks are all there sends no message and reads
 * no disk. Loading stops at the first block it cannot deliver. The
 * completion's res is the count of leading blocks loaded, err why it
 * stopped: a miss, -ENOENT (absent) or -EBADMSG (the copy failed its check
 * values: corrupt, or another block's bytes; treated as absent), or an error,
 * e.g. -EIO: a lower tier's read of that block failed (the tier forgets the
 * copy, so later lookups miss it, and counts it in its failures). If an
 * error stops it before any block is loaded, res is err (a miss gives 0).
 * Engine blocks from res on (all if res < 0) are left untouched. A hash may
 * repeat within h (each of its engine blocks gets the block); an engine
 * block may not (-EINVAL: the two copies would race). Returns like
 * kv_store().
 */
int kv_load(struct kv *kv, const kv_hash *h, const uint32_t *engine_blocks,
	    size_t n, uint64_t user_data);

enum kv_comp_flags {
	KV_COMP_STORE = 1u << 0,
	KV_COMP_LOAD = 1u << 1,
	KV_COMP_PREFETCH = 1u << 2,   /* since 0.2 */
};

/*
 * Since 0.2. Queue a promotion of h[0..n) into the host tier ahead of a
 * kv_load (no engine cache is touched; kv_attach is not needed). Blocks
 * already in host memory count as done; others are read from the best lower
 * tier and verified. Stops at the first block found nowhere (or failing
 * verification), like kv_load. One completion with KV_COMP_PREFETCH: res is
 * the count of leading blocks resident when the completion is posted, err
 * why it stopped early. The prefetch holds each block it delivered until
 * then, so it never evicts its own head: past what the pool can hold besides
 * the blocks other requests are using, it stops with -ENOSPC. Once posted,
 * the blocks are ordinary host blocks (the most recently used): concurrent
 * requests may evict them before a later kv_load, which then reads them
 * from below again. Returns 0 once queued, -EINVAL (NULL, n == 0), -EAGAIN
 * (queue full).
 */
int kv_prefetch(struct kv *kv, const kv_hash *h, size_t n, uint64_t user_data);

struct kv_completion {
	uint64_t user_data; /* as given at submission */
	int32_t res;        /* leading blocks done (>= 0); if none was done and
			       err is an error, not a miss: err (< 0) */
	int32_t err;        /* why it stopped before n: 0 (all done), a miss
			       (-ENOENT, -EBADMSG) or an error (-EIO: a lower
			       tier failed on that block; -ENOSPC, -ENOMEM...) */
	uint32_t n;         /* blocks requested */
	uint32_t flags;     /* enum kv_comp_flags */
	/* Since 0.4: */
	uint32_t reserved[2]; /* zero; may gain meaning in a later version */
};

/*
 * ABI of the output structs. kv_poll/kv_wait fill arrays of struct
 * kv_completion and their signatures are fixed, so the array stride is the
 * layout the caller was built with: each layout has its own symbol version.
 * kv_poll@KV_0.1 / kv_wait@KV_0.1 write the 24-byte 0.1 layout (up to
 * flags), the defaults @@KV_0.4 the 32-byte one above. A new field takes
 * reserved room first (old callers see it as zero and ignore it) and is
 * documented with the version that gave it meaning; only a layout that
 * needs more room gets a new version node. A size field inside each
 * completion was not chosen: the library would have to trust memory the
 * caller may not have initialised, and every caller would have to set it.
 * struct kv_stats follows the same rule: kv_stats@KV_0.1 writes the 0.1
 * layout (up to host_huge_bytes), kv_stats@@KV_0.4 adds host_dirty,
 * flusher_writes, store_stalls and reserved[].
 */

/*
 * Take up to max finished completions without blocking, oldest first.
 * Returns how many were written to c (0 if none), or -EINVAL (kv or c NULL,
 * max == 0: nothing is taken).
 */
int kv_poll(struct kv *kv, struct kv_completion *c, unsigned max);

/*
 * Like kv_poll() but wait up to timeout_ms for at least one; as with
 * poll(2), any negative timeout_ms waits forever and 0 does not wait.
 * Returns the count (> 0), 0 on timeout, or -EINVAL (as kv_poll()).
 */
int kv_wait(struct kv *kv, struct kv_completion *c, unsigned max, int timeout_ms);

/*
 * An eventfd that is readable while completions are waiting (for engines
 * with an event loop). Owned by kv; do not close it. The engine may read(2)
 * it (8 bytes, value meaningless) to clear readiness, e.g. in an
 * edge-triggered loop: every new completion, and every kv_poll/kv_wait that
 * leaves completions waiting, makes it readable again; one that takes the
 * last makes it unreadable. Returns the fd, or -EINVAL (kv NULL).
 */
int kv_event_fd(struct kv *kv);

/* Requests submitted and not yet taken by kv_poll/kv_wait. Returns the count (0: kv NULL). */
unsigned kv_inflight(struct kv *kv);

struct kv_tier_stats {
	uint64_t blocks;      /* blocks held now */
	uint64_t capacity;    /* blocks it can hold */
	uint64_t hits;        /* blocks loaded from this tier */
	uint64_t misses;      /* lookups/loads that found nothing here */
	uint64_t evictions;   /* blocks evicted from this tier */
	uint64_t bytes_in;    /* bytes written into this tier */
	uint64_t bytes_out;   /* bytes read out of this tier */
	uint64_t failures;    /* I/O errors, no space, ... */
	uint64_t verify_failures; /* copies rejected by their check values: corrupt,
				     or another block's bytes under this name */
};

enum kv_provider {
	KV_PROVIDER_NONE = 0,
	KV_PROVIDER_MMAP = 1,   /* anonymous mmap (+mlock) */
	KV_PROVIDER_KVMEM = 2,  /* /dev/kvmem region */
};

struct kv_stats {
	struct kv_tier_stats tier[4];  /* indexed by enum kv_tier; [0] unused */
	uint64_t stores;         /* store requests completed */
	uint64_t loads;          /* load requests completed */
	uint64_t store_dedup;    /* blocks stored that were already present */
	uint64_t rejected;       /* submissions refused (-EINVAL, -EAGAIN) */
	uint32_t host_provider;  /* enum kv_provider of the host pool */
	uint32_t host_pinned;    /* 1 if the host pool is pinned */
	uint64_t host_huge_bytes; /* bytes of the host pool in huge pages (if known) */
	/* Since 0.4 (see struct kv_completion's ABI note): */
	uint64_t host_dirty;     /* host blocks the first lower tier lacks and the admission
				    policy (kv_config.admit) wants there: the flusher's work */
	uint64_t flusher_writes; /* blocks the background flusher wrote down */
	uint64_t store_stalls;   /* stores and promotions that had to wait for the flusher
				    because the oldest host blocks were all dirty */
	uint64_t reserved[5];    /* zero; may gain meaning in a later version */
};

/* Snapshot the counters (reserved[] written as zero). Returns 0 or -EINVAL. */
int kv_stats(struct kv *kv, struct kv_stats *st);

/*
 * Text for a negative errno (or 0). Any int is valid: a value that is not
 * 0 or -1..-4095 gives "unknown error...". Never NULL.
 */
const char *kv_strerror(int err);

/* Name of a tier ("host", ...) or "none". Never NULL. */
const char *kv_tier_name(int tier);

#ifdef __cplusplus
}
#endif
#endif /* KV_H */
