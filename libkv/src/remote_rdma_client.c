/* SPDX-License-Identifier: MIT */
/*
 * remote_rdma_client.c - the remote tier's verbs path (see remote_int.h):
 * a connection's RC QP is set up over its TCP control stream; a put is
 * GRANT, RDMA WRITE into the granted slots, COMMIT; a get is LEASE, RDMA
 * READ, verify, RELEASE. The host pool was registered once at open.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "remote_int.h"
#include "remote_wire.h"

void kvc_rdma_setup(struct remote *r, struct rpeer *p, struct rconn *c, uint64_t deadline)
{
	struct kvp_rdma loc, rem;
	struct kvp_hdr h;
	uint8_t b[KVP_RDMA_BYTES];
	char why[KVP_REASON_MAX + 1] = "";
	int err = kvr_qp_create(&r->dev, 128, &c->qp);
	if (err)
		goto fail;
	kvr_qp_local(&r->dev, &c->qp, NULL, NULL, &loc);
	kvp_rdma_encode(b, &loc);
	if ((err = kvc_send_req(c->fd, KVP_OP_RDMA_CONNECT, 3, b, sizeof(b), NULL, 0, 0, deadline)))
		goto fail_conn;
	if ((err = kvc_recv_resp(c->fd, KVP_OP_RDMA_CONNECT, 3, &h, deadline)))
		goto fail_conn;
	if (h.status) {
		if ((err = kvc_recv_reason(c->fd, &h, why, sizeof(why), deadline)))
			goto fail_conn;
		err = h.status;
		goto fail;
	}
	if (h.len != KVP_RDMA_BYTES || (err = kvc_recv_full(c->fd, b, h.len, deadline)))
		goto fail_conn;
	if ((err = kvp_rdma_decode(b, h.len, &rem)) || rem.rkey == 0)
		goto fail_conn;
	if ((err = kvr_qp_connect(&r->dev, &c->qp, &rem)))
		goto fail;
	c->rdma = true;
	c->raddr = rem.addr;
	c->rkey = rem.rkey;
	c->max_msg = rem.max_msg < r->dev.max_msg ? rem.max_msg : r->dev.max_msg;
	return;
fail_conn:
	/* The control stream is out of step: drop the connection entirely. */
	kvr_qp_destroy(&c->qp);
	close(c->fd);
	c->fd = -1;
	return;
fail:
	kvr_qp_destroy(&c->qp);
	if (!atomic_exchange(&r->rdma_warned, true) && !(r->o.flags & KV_REMOTE_QUIET))
		fprintf(stderr, "libkv: remote peer %s: RDMA not usable (%s%s%s), using TCP\n", p->label,
			strerror(-err), why[0] ? ": " : "", why);
}

bool kvc_rdma_bufs_ok(struct remote *r, struct kv_tier_io *io, const size_t *idx, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		uint8_t *b = io[idx[k]].buf;
		if (b < r->pool_base || b + r->block_bytes > r->pool_base + r->pool_len)
			return false;
	}
	return true;
}

/* One request/response with a batch answer of n entries of rent bytes into out. */
static int rpc_batch(struct remote *r, int fd, uint16_t op, const uint8_t *m, size_t mlen, size_t n,
		     size_t rent, uint8_t *out, uint64_t deadline)
{
	uint64_t id = atomic_fetch_add(&r->req_id, 1);
	struct kvp_hdr rh;
	size_t rlen = KVP_BATCH_HDR + n * rent;
	int err = kvc_send_req(fd, op, id, m, mlen, NULL, 0, 0, deadline);
	if (!err)
		err = kvc_recv_resp(fd, op, id, &rh, deadline);
	if (!err && (rh.status || rh.len != rlen))
		err = -EPROTO;
	if (!err)
		err = kvc_recv_full(fd, out, rlen, deadline);
	if (!err && kvp_batch_decode(out, rlen, rent, 0) != (int)n)
		err = -EPROTO;
	for (size_t k = 0; !err && k < n; k++) {
		int32_t x = (int32_t)kvp_get32(out + KVP_BATCH_HDR + k * rent);
		if (x > 0 || x < -4095)
			err = -EPROTO;
	}
	return err;
}

/* put = GRANT slots, RDMA WRITE into them, COMMIT. */
int kvc_rdma_put(struct remote *r, struct rconn *c, struct kv_tier_io *io, const size_t *idx,
		    size_t n, int32_t *res, uint64_t deadline)
{
	uint8_t *m = malloc(KVP_BATCH_HDR + n * KVP_ENT_HASH_CSUM);
	uint8_t *a = malloc(KVP_BATCH_HDR + n * KVP_RENT_GRANT);
	void **loc = malloc(n * sizeof(*loc));
	uint64_t *rad = malloc(n * sizeof(*rad));
	size_t *gk = malloc(n * sizeof(*gk));
	int err = -ENOMEM;
	if (!m || !a || !loc || !rad || !gk)
		goto out;
	kvp_batch_encode(m, (uint32_t)n);
	for (size_t k = 0; k < n; k++) {
		kvp_put_hash(m + KVP_BATCH_HDR + k * KVP_ENT_HASH_CSUM, io[idx[k]].h);
		kvp_put64(m + KVP_BATCH_HDR + k * KVP_ENT_HASH_CSUM + 16, io[idx[k]].csum);
	}
	err = rpc_batch(r, c->fd, KVP_OP_GRANT, m, KVP_BATCH_HDR + n * KVP_ENT_HASH_CSUM, n,
			KVP_RENT_GRANT, a, deadline);
	if (err)
		goto out;
	size_t ng = 0;
	for (size_t k = 0; k < n; k++) {
		const uint8_t *e = a + KVP_BATCH_HDR + k * KVP_RENT_GRANT;
		int32_t x = (int32_t)kvp_get32(e);
		uint64_t off = kvp_get64(e + 8);
		res[k] = x == -EEXIST ? 0 : x;
		if (x)
			continue;
		if (off > UINT64_MAX - c->raddr - r->block_bytes) {
			err = -EPROTO;
			goto out;
		}
		loc[ng] = io[idx[k]].buf;
		rad[ng] = c->raddr + off;
		gk[ng++] = k;
	}
	if (!ng)
		goto out;
	err = kvr_rw(&c->qp, true, loc, kvr_mr_lkey(r->mr), rad, c->rkey, ng, r->block_bytes,
		     c->max_msg, deadline, NULL, NULL);
	if (err)
		goto out;
	atomic_fetch_add(&r->rdma_blocks, ng);
	kvp_batch_encode(m, (uint32_t)ng);
	for (size_t g = 0; g < ng; g++)
		kvp_put_hash(m + KVP_BATCH_HDR + g * KVP_ENT_HASH, io[idx[gk[g]]].h);
	err = rpc_batch(r, c->fd, KVP_OP_COMMIT, m, KVP_BATCH_HDR + ng * KVP_ENT_HASH, ng,
			KVP_RENT_RES, a, deadline);
	for (size_t g = 0; !err && g < ng; g++)
		res[gk[g]] = (int32_t)kvp_get32(a + KVP_BATCH_HDR + g * KVP_RENT_RES);
out:
	free(m);
	free(a);
	free(loc);
	free(rad);
	free(gk);
	return err;
}

struct read_verify {
	struct remote *r;
	struct kv_tier_io *io;
	const size_t *idx, *gk;
	int32_t *res;
};

static void read_verified(void *arg, size_t g)
{
	struct read_verify *v = arg;
	struct kv_tier_io *b = &v->io[v->idx[v->gk[g]]];
	if (kv_csum64(b->buf, v->r->block_bytes) != b->csum) {
		atomic_fetch_add(&v->r->verify_failures, 1);
		v->res[v->gk[g]] = -EBADMSG;
	}
}

/* get = LEASE (held against eviction), RDMA READ, verify, RELEASE. */
int kvc_rdma_get(struct remote *r, struct rconn *c, struct kv_tier_io *io, const size_t *idx,
		    size_t n, int32_t *res, uint64_t deadline)
{
	uint8_t *m = malloc(KVP_BATCH_HDR + n * KVP_ENT_HASH);
	uint8_t *a = malloc(KVP_BATCH_HDR + n * KVP_RENT_LEASE);
	void **loc = malloc(n * sizeof(*loc));
	uint64_t *rad = malloc(n * sizeof(*rad));
	size_t *gk = malloc(n * sizeof(*gk));
	int err = -ENOMEM;
	if (!m || !a || !loc || !rad || !gk)
		goto out;
	kvp_batch_encode(m, (uint32_t)n);
	for (size_t k = 0; k < n; k++)
		kvp_put_hash(m + KVP_BATCH_HDR + k * KVP_ENT_HASH, io[idx[k]].h);
	err = rpc_batch(r, c->fd, KVP_OP_LEASE, m, KVP_BATCH_HDR + n * KVP_ENT_HASH, n,
			KVP_RENT_LEASE, a, deadline);
	if (err)
		goto out;
	size_t ng = 0;
	for (size_t k = 0; k < n; k++) {
		const uint8_t *e = a + KVP_BATCH_HDR + k * KVP_RENT_LEASE;
		int32_t x = (int32_t)kvp_get32(e);
		uint64_t off = kvp_get64(e + 16);
		res[k] = x;
		if (x)
			continue;
		if (off > UINT64_MAX - c->raddr - r->block_bytes) {
			err = -EPROTO;
			goto out;
		}
		io[idx[k]].csum = kvp_get64(e + 8);
		loc[ng] = io[idx[k]].buf;
		rad[ng] = c->raddr + off;
		gk[ng++] = k;
	}
	if (!ng)
		goto out;
	/* Each block is verified as soon as its READs complete, while the rest are in flight. */
	struct read_verify rv = { .r = r, .io = io, .idx = idx, .gk = gk, .res = res };
	err = kvr_rw(&c->qp, false, loc, kvr_mr_lkey(r->mr), rad, c->rkey, ng, r->block_bytes,
		     c->max_msg, deadline, read_verified, &rv);
	if (err)
		goto out;   /* closing the connection drops the leases */
	atomic_fetch_add(&r->rdma_blocks, ng);
	kvp_batch_encode(m, (uint32_t)ng);
	for (size_t g = 0; g < ng; g++)
		kvp_put_hash(m + KVP_BATCH_HDR + g * KVP_ENT_HASH, io[idx[gk[g]]].h);
	err = rpc_batch(r, c->fd, KVP_OP_RELEASE, m, KVP_BATCH_HDR + ng * KVP_ENT_HASH, ng,
			KVP_RENT_RES, a, deadline);
out:
	free(m);
	free(a);
	free(loc);
	free(rad);
	free(gk);
	return err;
}
