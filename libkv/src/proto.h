/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the remote tier's wire protocol (docs/protocol.md), shared by
 * the client (remote.c) and the memory server (server.c).
 *
 * Every message is a 24-byte header followed by hdr.len payload bytes, all
 * integers little-endian. Requests carry a request id the response echoes.
 * Decoders validate every field against the bounds below and the
 * connection's negotiated block size; anything else is a protocol error
 * that closes the connection. Encoders write into caller buffers.
 */
#ifndef KV_PROTO_H
#define KV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#define KVP_MAGIC 0x3152564bu      /* "KVR1" */
#define KVP_VERSION 2                /* 2: per-(name, layer) check values (check.h) */
#define KVP_HDR_BYTES 24
#define KVP_MAX_BATCH 4096u         /* blocks per request */
#define KVP_MAX_META (1u << 20)     /* payload bytes before block data */
#define KVP_MAX_FRAME (1u << 30)    /* whole payload incl. data (u32 len) */
#define KVP_MAX_DATA (64u << 20)    /* client splits data frames at this */
#define KVP_MAX_BLOCK (256u << 20)  /* largest block a server accepts */
#define KVP_NONCE_BYTES 32
#define KVP_MAC_BYTES 32
#define KVP_NAME_BYTES 32
#define KVP_REASON_MAX 256

enum kvp_op {
	KVP_OP_HELLO = 1,
	KVP_OP_AUTH = 2,
	KVP_OP_LOOKUP = 3,
	KVP_OP_PUT = 4,
	KVP_OP_GET = 5,
	KVP_OP_STATS = 6,
	KVP_OP_RDMA_CONNECT = 7,
	KVP_OP_GRANT = 8,
	KVP_OP_COMMIT = 9,
	KVP_OP_LEASE = 10,
	KVP_OP_RELEASE = 11,
	KVP_OP_MAX = 11,
};

enum kvp_hdr_flags {
	KVP_F_RESP = 1u << 0,
};

/* HELLO flags (client). */
enum kvp_hello_flags {
	KVP_HELLO_ADMIN = 1u << 0, /* status only: geometry may be zero, only STATS allowed */
	KVP_HELLO_RDMA = 1u << 1,  /* client has a verbs device and wants to use it */
};

/* HELLO reply flags (server). */
enum kvp_server_flags {
	KVP_SRV_AUTH = 1u << 0,    /* AUTH must follow before any other op */
	KVP_SRV_RDMA = 1u << 1,    /* server has a verbs device */
};

struct kvp_hdr {
	uint32_t magic;
	uint16_t op;
	uint16_t flags;
	uint32_t len;       /* payload bytes after the header */
	int32_t status;     /* responses: 0 or -errno; requests: 0 */
	uint64_t req_id;
};

struct kvp_hello {
	uint16_t ver_min, ver_max;
	uint32_t flags;              /* enum kvp_hello_flags */
	struct kv_geometry geom;
	kv_hash ns_root;
	uint32_t block_bytes;        /* kv_geometry_block_bytes(&geom), cross-checked */
	char name[KVP_NAME_BYTES];   /* client name, NUL padded (for logs) */
};
#define KVP_HELLO_BYTES (4 + 4 + 24 + 16 + 4 + KVP_NAME_BYTES)

struct kvp_hello_reply {
	uint16_t version;
	uint32_t flags;              /* enum kvp_server_flags */
	uint8_t nonce[KVP_NONCE_BYTES];
	uint64_t capacity;           /* pool blocks */
	uint32_t max_batch;
	uint32_t max_data;           /* data bytes per frame the server accepts */
};
#define KVP_HELLO_REPLY_BYTES (4 + 4 + KVP_NONCE_BYTES + 8 + 4 + 4)

/*
 * Batched request bodies: u32 n, u32 reserved (0), then n entries. Entries
 * that carry a block's check values have one u64 per layer of the
 * connection's geometry (nchecks = geometry.layers, said in HELLO).
 */
#define KVP_BATCH_HDR 8
#define KVP_ENT_HASH 16              /* LOOKUP, GET, COMMIT, LEASE, RELEASE */
#define KVP_ENT_PUT(nchecks) (16 + 8 * (size_t)(nchecks))     /* PUT, GRANT: hash, checks */
/* Reply entries. */
#define KVP_RENT_PRESENT 1           /* LOOKUP: u8 */
#define KVP_RENT_RES 4               /* PUT, COMMIT, RELEASE: i32 */
#define KVP_RENT_GET(nchecks) (8 + 8 * (size_t)(nchecks))     /* GET: i32 res, u32 0, checks */
#define KVP_RENT_GRANT 16            /* GRANT: i32 res, u32 0, u64 offset */
#define KVP_RENT_LEASE(nchecks) (16 + 8 * (size_t)(nchecks))  /* LEASE: i32 res, u32 0,
								   u64 offset, checks */

/* Most blocks per batch whose entries of ent bytes fit in KVP_MAX_META. */
static inline size_t kvp_batch_max(size_t ent)
{
	size_t n = (KVP_MAX_META - KVP_BATCH_HDR) / ent;

	return n < KVP_MAX_BATCH ? n : KVP_MAX_BATCH;
}

/* STATS reply: u32 count, u32 0, then count u64 in this order (may grow). */
enum kvp_stat {
	KVP_ST_POOL_BYTES, KVP_ST_BLOCK_BYTES, KVP_ST_CAPACITY, KVP_ST_BLOCKS,
	KVP_ST_CLIENTS, KVP_ST_CONNS_TOTAL, KVP_ST_PUTS, KVP_ST_GETS, KVP_ST_HITS,
	KVP_ST_MISSES, KVP_ST_EVICTIONS, KVP_ST_BYTES_IN, KVP_ST_BYTES_OUT,
	KVP_ST_AUTH_FAILURES, KVP_ST_PROTO_ERRORS, KVP_ST_LEASES, KVP_ST_NAMESPACES,
	KVP_ST_REFUSED, KVP_ST_PROVIDER, KVP_ST_RDMA, KVP_ST_UPTIME_MS,
	KVP_ST_REQUESTS,   /* requests but HELLO, AUTH and STATS (since version 2) */
	KVP_ST_COUNT
};
extern const char *const kvp_stat_names[KVP_ST_COUNT];

/* RDMA_CONNECT body (both directions). */
struct kvp_rdma {
	uint32_t qpn;
	uint32_t psn;
	uint8_t gid[16];
	uint16_t lid;
	uint8_t mtu;         /* enum ibv_mtu */
	uint8_t gid_index;
	uint64_t addr;       /* server: pool base address for RDMA */
	uint32_t rkey;       /* server: pool rkey */
	uint32_t max_msg;    /* largest message of the sender's device */
};
#define KVP_RDMA_BYTES (4 + 4 + 16 + 2 + 1 + 1 + 8 + 4 + 4)

/* ---- little-endian helpers */
static inline void kvp_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void kvp_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void kvp_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t kvp_get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t kvp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t kvp_get64(const uint8_t *p)
{
	return (uint64_t)kvp_get32(p) | (uint64_t)kvp_get32(p + 4) << 32;
}
static inline void kvp_put_hash(uint8_t *p, kv_hash h) { kvp_put64(p, h.lo); kvp_put64(p + 8, h.hi); }
static inline kv_hash kvp_get_hash(const uint8_t *p)
{
	kv_hash h = { kvp_get64(p), kvp_get64(p + 8) };
	return h;
}

/* Header. */
void kvp_hdr_encode(uint8_t *buf, uint16_t op, uint16_t flags, uint32_t len,
		    int32_t status, uint64_t req_id);
/*
 * Decode and validate a header: magic, op in range, only known flags, len
 * within KVP_MAX_FRAME, status 0 on requests and a plausible -errno on
 * responses. resp: 1 if a response is expected, 0 for a request.
 * Returns 0 or -EPROTO.
 */
int kvp_hdr_decode(const uint8_t *buf, int resp, struct kvp_hdr *h);

/*
 * Where a request's payload splits into metadata (read into a buffer) and
 * block data (PUT only: n blocks read straight into pool slots). Fixed-size
 * ops must have exactly their size. Batched ops: with first8 NULL, returns
 * 1 (read the 8-byte batch header first) or -EPROTO; with the batch header,
 * checks 1 <= n <= KVP_MAX_BATCH, that the metadata fits KVP_MAX_META and
 * that len is exactly n entries (PUT, GRANT: of KVP_ENT_PUT(nchecks) bytes,
 * nchecks > 0) plus n blocks of block_bytes for PUT. Returns 0 with *meta,
 * *data set, or -EPROTO.
 */
int kvp_req_layout(uint16_t op, uint32_t len, const uint8_t *first8,
		   size_t block_bytes, uint32_t nchecks, size_t *meta, size_t *data);

/* Little-endian check values: n of them from p into v, or from v to p. */
void kvp_get_checks(const uint8_t *p, uint64_t *v, size_t n);
void kvp_put_checks(uint8_t *p, const uint64_t *v, size_t n);

/* HELLO. */
size_t kvp_hello_encode(uint8_t *buf, const struct kvp_hello *h);
/* Returns 0, or -EPROTO (malformed: wrong length, unknown flags, unterminated
 * name, block_bytes disagreeing with geom, bad geometry unless ADMIN). */
int kvp_hello_decode(const uint8_t *p, size_t len, struct kvp_hello *h);
size_t kvp_hello_reply_encode(uint8_t *buf, const struct kvp_hello_reply *r);
int kvp_hello_reply_decode(const uint8_t *p, size_t len, struct kvp_hello_reply *r);

/* RDMA_CONNECT. */
size_t kvp_rdma_encode(uint8_t *buf, const struct kvp_rdma *r);
int kvp_rdma_decode(const uint8_t *p, size_t len, struct kvp_rdma *r);

/*
 * Batch body: check "u32 n, u32 0, n entries of ent bytes" fills exactly
 * len bytes (plus extra trailing bytes of block data, which the caller
 * accounts for) with 1 <= n <= KVP_MAX_BATCH. Returns n or -EPROTO.
 */
int kvp_batch_decode(const uint8_t *p, size_t len, size_t ent, size_t extra);
void kvp_batch_encode(uint8_t *p, uint32_t n);

/* The MAC a client sends for AUTH: HMAC-SHA256(secret, "kvr-auth-v1" ||
 * nonce || ns_root || geometry), computed with nettle. Returns 0. */
int kvp_auth_mac(const void *secret, size_t secret_len,
		 const uint8_t nonce[KVP_NONCE_BYTES], kv_hash ns_root,
		 const struct kv_geometry *g, uint8_t mac[KVP_MAC_BYTES]);

/* Read a shared secret file (trailing newlines stripped, 1..4096 bytes).
 * Returns the length and fills buf (KVP_SECRET_MAX bytes), or -errno. */
#define KVP_SECRET_MAX 4096
int kvp_secret_load(const char *path, uint8_t *buf);

const char *kvp_op_name(unsigned op);

#endif /* KV_PROTO_H */
