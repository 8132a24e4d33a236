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

int kvc_deferred_drain(struct remote *r, struct rconn *c, uint64_t deadline)
{
	int err = 0;

	for (unsigned k = 0; k < c->npend && !err; k++) {
		struct kvc_deferred *d = &c->pend[k];
		uint8_t *a = malloc(KVP_BATCH_HDR + (size_t)d->n * KVP_RENT_RES);

		if (!a)
			return -ENOMEM;
		err = kvc_recv_batch(c->fd, d->op, d->id, d->n, KVP_RENT_RES, true, a, NULL, deadline);
		for (uint32_t i = 0; !err && d->op == KVP_OP_COMMIT && i < d->n; i++)
			if (kvp_get32(a + KVP_BATCH_HDR + (size_t)i * KVP_RENT_RES))
				atomic_fetch_add(&r->failures, 1); /* not stored after all */
		free(a);
	}
	c->npend = 0;
	return err;
}

/*
 * One request with a batch answer of n entries of rent bytes into out. The
 * request goes out first; then the answers of the connection's deferred
 * requests, which the server sent before this one's, are read; then its own.
 */
static int rpc_batch(struct remote *r, struct rconn *c, uint16_t op, const uint8_t *m, size_t mlen,
		     size_t n, size_t rent, uint8_t *out, uint64_t deadline)
{
	uint64_t id = atomic_fetch_add(&r->req_id, 1);
	int err = kvc_send_req(c->fd, op, id, m, mlen, NULL, 0, 0, deadline);
	if (!err)
		err = kvc_deferred_drain(r, c, deadline);
	if (!err)
		err = kvc_recv_batch(c->fd, op, id, n, rent, true, out, NULL, deadline);
	atomic_fetch_add(&r->ctl_waits, 1);
	return err;
}

/*
 * One verbs batch of n blocks: the request and answer buffers of its first
 * step (GRANT or LEASE), and the blocks that step let through (the granted
 * or leased ones: io[idx[gk[g]]], local buffer loc[g], server address
 * rad[g]) for the transfer and the closing step (COMMIT or RELEASE).
 */
struct rdma_batch {
	uint8_t *m, *a;
	void **loc;
	uint64_t *rad;
	size_t *gk;
	size_t ng;
};

static void batch_free(struct rdma_batch *b)
{
	free(b->m);
	free(b->a);
	free(b->loc);
	free(b->rad);
	free(b->gk);
}

/* Buffers for n blocks (requests of ent bytes each, answers of rent). Returns 0 or -ENOMEM. */
static int batch_alloc(struct rdma_batch *b, size_t n, size_t ent, size_t rent)
{
	*b = (struct rdma_batch){
		.m = malloc(KVP_BATCH_HDR + n * ent),
		.a = malloc(KVP_BATCH_HDR + n * rent),
		.loc = malloc(n * sizeof(*b->loc)),
		.rad = malloc(n * sizeof(*b->rad)),
		.gk = malloc(n * sizeof(*b->gk)),
	};
	if (b->m && b->a && b->loc && b->rad && b->gk)
		return 0;
	batch_free(b);
	return -ENOMEM;
}

/* Let block k through to the transfer, at offset off of the server's pool. */
static int batch_take(struct remote *r, struct rconn *c, struct rdma_batch *b, void *buf,
		      size_t k, uint64_t off)
{
	if (off > UINT64_MAX - c->raddr - r->block_bytes)
		return -EPROTO;
	b->loc[b->ng] = buf;
	b->rad[b->ng] = c->raddr + off;
	b->gk[b->ng++] = k;
	return 0;
}

/*
 * A load's closing step (RELEASE) for the blocks transferred: sent now, its
 * answer read at the connection's next request (kvc_deferred_drain), so the
 * next call does not wait a round trip for it (the answer carries nothing
 * the load needs). The server handles a connection's requests in order.
 */
static int batch_close(struct remote *r, struct rconn *c, struct rdma_batch *b, uint16_t op,
		       struct kv_tier_io *io, const size_t *idx, uint64_t deadline)
{
	uint64_t id = atomic_fetch_add(&r->req_id, 1);
	int err = 0;

	if (c->npend == KVC_MAX_DEFERRED)
		err = kvc_deferred_drain(r, c, deadline);
	kvp_batch_encode(b->m, (uint32_t)b->ng);
	for (size_t g = 0; g < b->ng; g++)
		kvp_put_hash(b->m + KVP_BATCH_HDR + g * KVP_ENT_HASH, io[idx[b->gk[g]]].h);
	if (!err)
		err = kvc_send_req(c->fd, op, id, b->m, KVP_BATCH_HDR + b->ng * KVP_ENT_HASH, NULL, 0,
				   0, deadline);
	if (!err)
		c->pend[c->npend++] = (struct kvc_deferred){ id, op, (uint32_t)b->ng };
	return err;
}

/* put = GRANT slots, RDMA WRITE into them, COMMIT. */
int kvc_rdma_put(struct remote *r, struct rconn *c, struct kv_tier_io *io, const size_t *idx,
		 size_t n, int32_t *res, uint64_t deadline)
{
	struct rdma_batch b;
	size_t ent = KVP_ENT_PUT(r->shape.layers);
	int err = batch_alloc(&b, n, ent, KVP_RENT_GRANT);
	if (err)
		return err;
	kvp_batch_encode(b.m, (uint32_t)n);
	for (size_t k = 0; k < n; k++) {
		kvp_put_hash(b.m + KVP_BATCH_HDR + k * ent, io[idx[k]].h);
		kvp_put_checks(b.m + KVP_BATCH_HDR + k * ent + 16, io[idx[k]].check, r->shape.layers);
	}
	atomic_fetch_add(&r->ctl_calls, 1);
	err = rpc_batch(r, c, KVP_OP_GRANT, b.m, KVP_BATCH_HDR + n * ent, n,
			KVP_RENT_GRANT, b.a, deadline);
	for (size_t k = 0; !err && k < n; k++) {
		const uint8_t *e = b.a + KVP_BATCH_HDR + k * KVP_RENT_GRANT;
		int32_t x = (int32_t)kvp_get32(e);
		res[k] = x == -EEXIST ? 0 : x;
		if (x == 0)
			err = batch_take(r, c, &b, io[idx[k]].buf, k, kvp_get64(e + 8));
	}
	if (!err && b.ng)
		err = kvr_rw(&c->qp, true, b.loc, kvr_mr_lkey(r->mr), b.rad, c->rkey, b.ng,
			     r->block_bytes, c->max_msg, deadline, NULL, NULL);
	if (!err && b.ng) {
		/*
		 * COMMIT is waited for: a block the server dropped (--verify-commit)
		 * must not count as stored, or its host copy is evicted as clean and
		 * lost. Puts run on the flusher, off the request path.
		 */
		atomic_fetch_add(&r->rdma_blocks, b.ng);
		kvp_batch_encode(b.m, (uint32_t)b.ng);
		for (size_t g = 0; g < b.ng; g++)
			kvp_put_hash(b.m + KVP_BATCH_HDR + g * KVP_ENT_HASH, io[idx[b.gk[g]]].h);
		err = rpc_batch(r, c, KVP_OP_COMMIT, b.m, KVP_BATCH_HDR + b.ng * KVP_ENT_HASH, b.ng,
				KVP_RENT_RES, b.a, deadline);
		for (size_t g = 0; !err && g < b.ng; g++)
			res[b.gk[g]] = (int32_t)kvp_get32(b.a + KVP_BATCH_HDR + g * KVP_RENT_RES);
	}
	batch_free(&b);
	return err;
}

struct read_verify {
	struct remote *r;
	struct kv_tier_io *io;
	const size_t *idx, *gk;
	int32_t *res;
	const uint8_t *a;       /* the LEASE answer: each block's check values */
	size_t rent;
};

static void read_verified(void *arg, size_t g)
{
	struct read_verify *v = arg;
	size_t k = v->gk[g];
	struct kv_tier_io *b = &v->io[v->idx[k]];

	v->res[k] = kvc_verify(v->r, b, v->a + KVP_BATCH_HDR + k * v->rent + 16);
}

/* get = LEASE (held against eviction), RDMA READ, verify, RELEASE. */
int kvc_rdma_get(struct remote *r, struct rconn *c, struct kv_tier_io *io, const size_t *idx,
		 size_t n, int32_t *res, uint64_t deadline)
{
	struct rdma_batch b;
	size_t rent = KVP_RENT_LEASE(r->shape.layers);
	int err = batch_alloc(&b, n, KVP_ENT_HASH, rent);
	if (err)
		return err;
	kvp_batch_encode(b.m, (uint32_t)n);
	for (size_t k = 0; k < n; k++)
		kvp_put_hash(b.m + KVP_BATCH_HDR + k * KVP_ENT_HASH, io[idx[k]].h);
	atomic_fetch_add(&r->ctl_calls, 1);
	err = rpc_batch(r, c, KVP_OP_LEASE, b.m, KVP_BATCH_HDR + n * KVP_ENT_HASH, n,
			rent, b.a, deadline);
	for (size_t k = 0; !err && k < n; k++) {
		const uint8_t *e = b.a + KVP_BATCH_HDR + k * rent;
		res[k] = (int32_t)kvp_get32(e);
		if (res[k])
			continue;
		err = batch_take(r, c, &b, io[idx[k]].buf, k, kvp_get64(e + 8));
	}
	/* Each block is verified as soon as its READs complete, while the rest are in flight. */
	struct read_verify rv = { .r = r, .io = io, .idx = idx, .gk = b.gk, .res = res,
				  .a = b.a, .rent = rent };
	if (!err && b.ng)
		err = kvr_rw(&c->qp, false, b.loc, kvr_mr_lkey(r->mr), b.rad, c->rkey, b.ng,
			     r->block_bytes, c->max_msg, deadline, read_verified, &rv);
	/* On an error the connection is closed, which drops the leases. */
	if (!err && b.ng) {
		atomic_fetch_add(&r->rdma_blocks, b.ng);
		err = batch_close(r, c, &b, KVP_OP_RELEASE, io, idx, deadline);
	}
	batch_free(&b);
	return err;
}
