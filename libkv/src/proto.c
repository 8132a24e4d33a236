/* SPDX-License-Identifier: MIT */
/*
 * proto.c - encode/decode of the remote tier's wire protocol. Every decoder
 * checks lengths first, then each field; nothing here allocates or trusts a
 * length from the wire beyond the bounds in proto.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/hmac.h>

#include "proto.h"

const char *const kvp_stat_names[KVP_ST_COUNT] = {
	[KVP_ST_POOL_BYTES] = "pool_bytes",
	[KVP_ST_BLOCK_BYTES] = "block_bytes",
	[KVP_ST_CAPACITY] = "capacity",
	[KVP_ST_BLOCKS] = "blocks",
	[KVP_ST_CLIENTS] = "clients",
	[KVP_ST_CONNS_TOTAL] = "connections_total",
	[KVP_ST_PUTS] = "puts",
	[KVP_ST_GETS] = "gets",
	[KVP_ST_HITS] = "hits",
	[KVP_ST_MISSES] = "misses",
	[KVP_ST_EVICTIONS] = "evictions",
	[KVP_ST_BYTES_IN] = "bytes_in",
	[KVP_ST_BYTES_OUT] = "bytes_out",
	[KVP_ST_AUTH_FAILURES] = "auth_failures",
	[KVP_ST_PROTO_ERRORS] = "protocol_errors",
	[KVP_ST_LEASES] = "leases",
	[KVP_ST_NAMESPACES] = "namespaces",
	[KVP_ST_REFUSED] = "refused",
	[KVP_ST_PROVIDER] = "provider",
	[KVP_ST_RDMA] = "rdma",
	[KVP_ST_UPTIME_MS] = "uptime_ms",
	[KVP_ST_REQUESTS] = "requests",
};

static const char *const op_names[KVP_OP_MAX + 1] = {
	[KVP_OP_HELLO] = "hello", [KVP_OP_AUTH] = "auth", [KVP_OP_LOOKUP] = "lookup",
	[KVP_OP_PUT] = "put", [KVP_OP_GET] = "get", [KVP_OP_STATS] = "stats",
	[KVP_OP_RDMA_CONNECT] = "rdma_connect", [KVP_OP_GRANT] = "grant",
	[KVP_OP_COMMIT] = "commit", [KVP_OP_LEASE] = "lease", [KVP_OP_RELEASE] = "release",
};

const char *kvp_op_name(unsigned op)
{
	return op >= 1 && op <= KVP_OP_MAX ? op_names[op] : "unknown";
}

void kvp_hdr_encode(uint8_t *b, uint16_t op, uint16_t flags, uint32_t len,
		    int32_t status, uint64_t req_id)
{
	kvp_put32(b, KVP_MAGIC);
	kvp_put16(b + 4, op);
	kvp_put16(b + 6, flags);
	kvp_put32(b + 8, len);
	kvp_put32(b + 12, (uint32_t)status);
	kvp_put64(b + 16, req_id);
}

int kvp_hdr_decode(const uint8_t *b, int resp, struct kvp_hdr *h)
{
	h->magic = kvp_get32(b);
	h->op = kvp_get16(b + 4);
	h->flags = kvp_get16(b + 6);
	h->len = kvp_get32(b + 8);
	h->status = (int32_t)kvp_get32(b + 12);
	h->req_id = kvp_get64(b + 16);
	if (h->magic != KVP_MAGIC || h->op < 1 || h->op > KVP_OP_MAX)
		return -EPROTO;
	if (h->flags & ~(uint16_t)KVP_F_RESP)
		return -EPROTO;
	if (!!(h->flags & KVP_F_RESP) != !!resp)
		return -EPROTO;
	if (h->len > KVP_MAX_FRAME)
		return -EPROTO;
	if (!resp && h->status != 0)
		return -EPROTO;
	if (resp && (h->status > 0 || h->status < -4095))
		return -EPROTO;
	return 0;
}

static size_t req_ent_bytes(uint16_t op, uint32_t nchecks)
{
	switch (op) {
	case KVP_OP_LOOKUP: case KVP_OP_GET: case KVP_OP_COMMIT:
	case KVP_OP_LEASE: case KVP_OP_RELEASE:
		return KVP_ENT_HASH;
	case KVP_OP_PUT: case KVP_OP_GRANT:
		return KVP_ENT_PUT(nchecks);
	default:
		return 0;
	}
}

void kvp_get_checks(const uint8_t *p, uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = kvp_get64(p + 8 * i);
}

void kvp_put_checks(uint8_t *p, const uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kvp_put64(p + 8 * i, v[i]);
}

int kvp_req_layout(uint16_t op, uint32_t len, const uint8_t *first8,
		   size_t block_bytes, uint32_t nchecks, size_t *meta, size_t *data)
{
	size_t ent = req_ent_bytes(op, nchecks), want;
	*data = 0;
	if ((op == KVP_OP_PUT || op == KVP_OP_GRANT) && nchecks == 0)
		return -EPROTO;   /* no geometry yet: no check values can be sized */
	if (!ent) {
		switch (op) {
		case KVP_OP_HELLO: want = KVP_HELLO_BYTES; break;
		case KVP_OP_AUTH: want = KVP_MAC_BYTES; break;
		case KVP_OP_STATS: want = 0; break;
		case KVP_OP_RDMA_CONNECT: want = KVP_RDMA_BYTES; break;
		default: return -EPROTO;
		}
		if (len != want)
			return -EPROTO;
		*meta = len;
		return 0;
	}
	if (len < KVP_BATCH_HDR)
		return -EPROTO;
	if (!first8)
		return 1;   /* read the batch header first */
	uint32_t n = kvp_get32(first8);
	if (n < 1 || n > KVP_MAX_BATCH || kvp_get32(first8 + 4) != 0)
		return -EPROTO;
	size_t m = KVP_BATCH_HDR + (size_t)n * ent;
	if (m > len || m > KVP_MAX_META)
		return -EPROTO;
	if (op != KVP_OP_PUT) {
		if (m != len)
			return -EPROTO;
		*meta = m;
		return 0;
	}
	if (block_bytes == 0)
		return -EPROTO;
	size_t d = (size_t)len - m;
	/* Exactly n blocks; division avoids the overflow of n * block_bytes. */
	if (d % block_bytes || d / block_bytes != n)
		return -EPROTO;
	*meta = m;
	*data = d;
	return 0;
}

int kvp_batch_decode(const uint8_t *p, size_t len, size_t ent, size_t extra)
{
	if (len < KVP_BATCH_HDR || ent == 0)
		return -EPROTO;
	uint32_t n = kvp_get32(p);
	if (n < 1 || n > KVP_MAX_BATCH || kvp_get32(p + 4) != 0)
		return -EPROTO;
	if (len - KVP_BATCH_HDR != (size_t)n * ent + extra)
		return -EPROTO;
	return (int)n;
}

void kvp_batch_encode(uint8_t *p, uint32_t n)
{
	kvp_put32(p, n);
	kvp_put32(p + 4, 0);
}

static void geom_encode(uint8_t *p, const struct kv_geometry *g)
{
	kvp_put32(p, g->layers);
	kvp_put32(p + 4, g->planes);
	kvp_put32(p + 8, g->block_tokens);
	kvp_put32(p + 12, g->kv_heads);
	kvp_put32(p + 16, g->head_dim);
	kvp_put32(p + 20, g->dtype);
}

static void geom_decode(const uint8_t *p, struct kv_geometry *g)
{
	g->layers = kvp_get32(p);
	g->planes = kvp_get32(p + 4);
	g->block_tokens = kvp_get32(p + 8);
	g->kv_heads = kvp_get32(p + 12);
	g->head_dim = kvp_get32(p + 16);
	g->dtype = kvp_get32(p + 20);
}

size_t kvp_hello_encode(uint8_t *b, const struct kvp_hello *h)
{
	kvp_put16(b, h->ver_min);
	kvp_put16(b + 2, h->ver_max);
	kvp_put32(b + 4, h->flags);
	geom_encode(b + 8, &h->geom);
	kvp_put_hash(b + 32, h->ns_root);
	kvp_put32(b + 48, h->block_bytes);
	memset(b + 52, 0, KVP_NAME_BYTES);
	memcpy(b + 52, h->name, strnlen(h->name, KVP_NAME_BYTES - 1));
	return KVP_HELLO_BYTES;
}

int kvp_hello_decode(const uint8_t *p, size_t len, struct kvp_hello *h)
{
	if (len != KVP_HELLO_BYTES)
		return -EPROTO;
	h->ver_min = kvp_get16(p);
	h->ver_max = kvp_get16(p + 2);
	h->flags = kvp_get32(p + 4);
	geom_decode(p + 8, &h->geom);
	h->ns_root = kvp_get_hash(p + 32);
	h->block_bytes = kvp_get32(p + 48);
	memcpy(h->name, p + 52, KVP_NAME_BYTES);
	if (h->ver_min == 0 || h->ver_min > h->ver_max)
		return -EPROTO;
	if (h->flags & ~(uint32_t)(KVP_HELLO_ADMIN | KVP_HELLO_RDMA))
		return -EPROTO;
	if (h->name[KVP_NAME_BYTES - 1] != 0)
		return -EPROTO;
	for (size_t i = 0; i < KVP_NAME_BYTES && h->name[i]; i++)
		if ((unsigned char)h->name[i] < 0x20 || (unsigned char)h->name[i] > 0x7e)
			return -EPROTO;
	if (h->flags & KVP_HELLO_ADMIN)
		return 0;
	size_t bb = kv_geometry_block_bytes(&h->geom);
	if (bb == 0 || bb != h->block_bytes)
		return -EPROTO;
	if (h->ns_root.lo == 0 && h->ns_root.hi == 0)
		return -EPROTO;
	return 0;
}

size_t kvp_hello_reply_encode(uint8_t *b, const struct kvp_hello_reply *r)
{
	kvp_put16(b, r->version);
	kvp_put16(b + 2, 0);
	kvp_put32(b + 4, r->flags);
	memcpy(b + 8, r->nonce, KVP_NONCE_BYTES);
	kvp_put64(b + 40, r->capacity);
	kvp_put32(b + 48, r->max_batch);
	kvp_put32(b + 52, r->max_data);
	return KVP_HELLO_REPLY_BYTES;
}

int kvp_hello_reply_decode(const uint8_t *p, size_t len, struct kvp_hello_reply *r)
{
	if (len != KVP_HELLO_REPLY_BYTES)
		return -EPROTO;
	r->version = kvp_get16(p);
	r->flags = kvp_get32(p + 4);
	memcpy(r->nonce, p + 8, KVP_NONCE_BYTES);
	r->capacity = kvp_get64(p + 40);
	r->max_batch = kvp_get32(p + 48);
	r->max_data = kvp_get32(p + 52);
	if (r->version != KVP_VERSION || kvp_get16(p + 2) != 0)
		return -EPROTO;
	if (r->flags & ~(uint32_t)(KVP_SRV_AUTH | KVP_SRV_RDMA))
		return -EPROTO;
	if (r->max_batch < 1 || r->max_batch > KVP_MAX_BATCH || r->max_data < 4096)
		return -EPROTO;
	return 0;
}

size_t kvp_rdma_encode(uint8_t *b, const struct kvp_rdma *r)
{
	kvp_put32(b, r->qpn);
	kvp_put32(b + 4, r->psn);
	memcpy(b + 8, r->gid, 16);
	kvp_put16(b + 24, r->lid);
	b[26] = r->mtu;
	b[27] = r->gid_index;
	kvp_put64(b + 28, r->addr);
	kvp_put32(b + 36, r->rkey);
	kvp_put32(b + 40, r->max_msg);
	return KVP_RDMA_BYTES;
}

int kvp_rdma_decode(const uint8_t *p, size_t len, struct kvp_rdma *r)
{
	if (len != KVP_RDMA_BYTES)
		return -EPROTO;
	r->qpn = kvp_get32(p);
	r->psn = kvp_get32(p + 4);
	memcpy(r->gid, p + 8, 16);
	r->lid = kvp_get16(p + 24);
	r->mtu = p[26];
	r->gid_index = p[27];
	r->addr = kvp_get64(p + 28);
	r->rkey = kvp_get32(p + 36);
	r->max_msg = kvp_get32(p + 40);
	/* QP numbers are 24 bits, PSNs 24 bits, MTU enum 1..5 (256..4096). */
	if (r->qpn == 0 || r->qpn > 0xffffff || r->psn > 0xffffff)
		return -EPROTO;
	if (r->mtu < 1 || r->mtu > 5 || r->max_msg == 0)
		return -EPROTO;
	return 0;
}

int kvp_auth_mac(const void *secret, size_t secret_len,
		 const uint8_t nonce[KVP_NONCE_BYTES], kv_hash ns_root,
		 const struct kv_geometry *g, uint8_t mac[KVP_MAC_BYTES])
{
	static const char tag[] = "kvr-auth-v1";
	uint8_t msg[sizeof(tag) - 1 + KVP_NONCE_BYTES + 16 + 24];
	struct hmac_sha256_ctx ctx;

	_Static_assert(SHA256_DIGEST_SIZE == KVP_MAC_BYTES, "the MAC is one SHA-256 digest");
	memcpy(msg, tag, sizeof(tag) - 1);
	memcpy(msg + sizeof(tag) - 1, nonce, KVP_NONCE_BYTES);
	kvp_put_hash(msg + sizeof(tag) - 1 + KVP_NONCE_BYTES, ns_root);
	geom_encode(msg + sizeof(tag) - 1 + KVP_NONCE_BYTES + 16, g);
	/* nettle's HMAC (libnettle8): no global state, nothing to initialise. */
	hmac_sha256_set_key(&ctx, secret_len, secret);
	hmac_sha256_update(&ctx, sizeof(msg), msg);
	hmac_sha256_digest(&ctx, KVP_MAC_BYTES, mac);
	explicit_bzero(&ctx, sizeof(ctx));   /* it holds the keyed pads */
	return 0;
}

int kvp_secret_load(const char *path, uint8_t *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, KVP_SECRET_MAX);
	int err = n < 0 ? -errno : 0;
	char more;
	if (!err && n == KVP_SECRET_MAX && read(fd, &more, 1) == 1)
		err = -EFBIG;
	close(fd);
	if (err)
		return err;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		return -ENODATA;
	return (int)n;
}
