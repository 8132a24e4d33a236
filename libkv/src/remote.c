/* SPDX-License-Identifier: MIT */
/*
 * remote.c - the remote tier client (see remote.h): peers, connections,
 * placement, the round engine and the TCP data path. The socket helpers
 * are in remote_wire.c, the verbs data path in remote_rdma_client.c.
 *
 * Each call works in rounds: every unfinished block goes to its next
 * candidate peer (rendezvous order, skipping peers marked down), the blocks
 * of one peer go in one request per chunk, and each block's answer either
 * finishes it or moves it on to its next candidate. Every socket wait is
 * bounded by the call's deadline (now + timeout_ms); a peer that fails or
 * times out is marked down and retried after an exponential backoff, so a
 * dead peer costs later calls nothing until its next probe.
 *
 * Connections: a few idle ones per peer are kept; a worker takes one for
 * a request and gives it back. An idle connection that became readable
 * (the server closed it, e.g. it restarted) is dropped before use.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xxhash.h>

#include "checksum.h"
#include "proto.h"
#include "remote.h"
#include "remote_int.h"
#include "remote_rdma.h"
#include "remote_wire.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define CHUNK_BYTES (8u << 20)    /* data per TCP request; two are kept in flight */

static void rconn_free(struct rconn *c)
{
	if (!c)
		return;
	/* QP first: after this no RDMA touches our slots. */
	if (c->qp.qp)
		kvr_qp_destroy(&c->qp);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void peer_down(struct remote *r, struct rpeer *p, int err, const char *why)
{
	pthread_mutex_lock(&p->mu);
	bool was_up = !p->down;
	p->down = true;
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (p->backoff_ms > BACKOFF_MAX_MS)
		p->backoff_ms = BACKOFF_MAX_MS;
	p->retry_at = kvc_now_ns() + (uint64_t)p->backoff_ms * 1000000ull;
	struct rconn *drop[MAX_IDLE];
	unsigned nd = 0;
	while (p->nidle)
		drop[nd++] = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->mu);
	for (unsigned k = 0; k < nd; k++)
		rconn_free(drop[k]);
	if (was_up && !(r->o.flags & KV_REMOTE_QUIET))
		fprintf(stderr, "libkv: remote peer %s down: %s%s%s; retrying with backoff\n",
			p->label, strerror(-err), why && *why ? ": " : "", why ? why : "");
}

/* Is p worth trying now (up, or down and due for a probe)? */
static bool peer_usable(struct rpeer *p, uint64_t now)
{
	pthread_mutex_lock(&p->mu);
	bool ok = !p->refused && (!p->down || now >= p->retry_at);
	pthread_mutex_unlock(&p->mu);
	return ok;
}

static int conn_get(struct remote *r, struct rpeer *p, uint64_t deadline, struct rconn **out)
{
	pthread_mutex_lock(&p->mu);
	while (p->nidle) {
		struct rconn *c = p->idle[--p->nidle];
		pthread_mutex_unlock(&p->mu);
		struct pollfd pf = { .fd = c->fd, .events = POLLIN | POLLRDHUP };
		int pr = poll(&pf, 1, 0);
		/*
		 * Idle and readable means closed by the server (or junk), except
		 * with deferred answers outstanding: then only a hang-up is stale.
		 */
		if (pr == 0 || (c->npend && !(pf.revents & (POLLHUP | POLLERR | POLLRDHUP)))) {
			*out = c;
			return 0;
		}
		rconn_free(c);   /* closed by the server (or junk): stale */
		pthread_mutex_lock(&p->mu);
	}
	uint64_t now = kvc_now_ns();
	if (p->down) {
		if (now < p->retry_at) {
			pthread_mutex_unlock(&p->mu);
			return -EHOSTDOWN;
		}
		/* This caller probes; the others fail fast until the probe's result. */
		p->retry_at = now + (uint64_t)p->backoff_ms * 1000000ull;
	}
	pthread_mutex_unlock(&p->mu);

	struct kvp_hello_reply rep;
	char why[KVP_REASON_MAX + 1];
	struct rconn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	int err = kvc_session_open(p->host, p->port, &r->o.geom, r->o.ns_root, false, r->secret,
			       r->secret_len, r->name, deadline, &c->fd, &rep, why, sizeof(why));
	if (!err && r->rdma && (rep.flags & KVP_SRV_RDMA)) {
		kvc_rdma_setup(r, p, c, deadline);
		if (c->fd < 0)
			err = -EPROTO;
	}
	if ((err == -EACCES || err == -EPROTONOSUPPORT) && why[0]) {
		/* why is set only when the server (or our missing secret) said no, not by connect(). */
		/* The server answered and said no: retrying cannot change that. */
		rconn_free(c);
		pthread_mutex_lock(&p->mu);
		bool first = !p->refused;
		p->refused = err;
		p->down = true;
		pthread_mutex_unlock(&p->mu);
		if (first) {
			atomic_fetch_add(&r->npeers_refused, 1);
			if (!(r->o.flags & KV_REMOTE_QUIET))
				fprintf(stderr, "libkv: remote peer %s refused this client: %s; not "
					"retried (check the secret, namespace and geometry)\n", p->label,
					why[0] ? why : strerror(-err));
		}
		return err;
	}
	if (err) {
		rconn_free(c);
		peer_down(r, p, err, why);
		return err;
	}
	pthread_mutex_lock(&p->mu);
	bool was_down = p->down;
	p->down = false;
	p->backoff_ms = 0;
	p->max_batch = rep.max_batch;
	p->max_data = rep.max_data;
	p->capacity = rep.capacity;
	pthread_mutex_unlock(&p->mu);
	if (was_down && !(r->o.flags & KV_REMOTE_QUIET))
		fprintf(stderr, "libkv: remote peer %s reconnected\n", p->label);
	*out = c;
	return 0;
}

static void conn_put(struct remote *r, struct rpeer *p, struct rconn *c, int err)
{
	if (err) {
		rconn_free(c);
		peer_down(r, p, err, NULL);
		return;
	}
	pthread_mutex_lock(&p->mu);
	if (p->nidle < MAX_IDLE && !p->down) {
		p->idle[p->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	rconn_free(c);
}

/* ---------------------------------------------------------------- requests */

/* Blocks per request to p: bounded by the server's batch and data limits. */
static size_t chunk_blocks(struct remote *r, struct rpeer *p)
{
	size_t mb = p->max_batch ? p->max_batch : KVP_MAX_BATCH;
	size_t md = p->max_data ? p->max_data : KVP_MAX_DATA;
	if (md > CHUNK_BYTES)
		md = CHUNK_BYTES;
	size_t c = md / r->block_bytes, mm = kvp_batch_max(KVP_ENT_PUT(r->shape.layers));
	if (c < 1)
		c = 1;
	if (mb > mm)
		mb = mm;   /* the entries, check values included, fit KVP_MAX_META */
	return c < mb ? c : mb;
}

/* LOOKUP of idx[0..n) on one connection. present[idx[k]] set. */
static int rpc_lookup(struct remote *r, int fd, const kv_hash *h, const size_t *idx, size_t n,
		      uint8_t *present, uint64_t deadline)
{
	size_t mlen = KVP_BATCH_HDR + n * KVP_ENT_HASH;
	uint8_t *m = malloc(mlen > KVP_BATCH_HDR + n ? mlen : KVP_BATCH_HDR + n);
	if (!m)
		return -ENOMEM;
	kvp_batch_encode(m, (uint32_t)n);
	for (size_t k = 0; k < n; k++)
		kvp_put_hash(m + KVP_BATCH_HDR + k * KVP_ENT_HASH, h[idx[k]]);
	uint64_t id = atomic_fetch_add(&r->req_id, 1);
	int err = kvc_send_req(fd, KVP_OP_LOOKUP, id, m, mlen, NULL, 0, 0, deadline);
	if (!err)
		err = kvc_recv_batch(fd, KVP_OP_LOOKUP, id, n, KVP_RENT_PRESENT, false, m, NULL,
				     deadline);
	for (size_t k = 0; !err && k < n; k++) {
		uint8_t v = m[KVP_BATCH_HDR + k];
		if (v > 1)
			err = -EPROTO;
		else
			present[idx[k]] = v;
	}
	free(m);
	return err;
}

/* PUT request for io[idx[0..n)]: metadata then the slots themselves. */
static int put_send(struct remote *r, int fd, struct kv_tier_io *io, const size_t *idx, size_t n,
		    uint64_t id, uint64_t deadline)
{
	size_t ent = KVP_ENT_PUT(r->shape.layers), mlen = KVP_BATCH_HDR + n * ent;
	uint8_t *m = malloc(mlen);
	struct iovec *v = malloc((n + 2) * sizeof(*v));
	int err = -ENOMEM;
	if (m && v) {
		kvp_batch_encode(m, (uint32_t)n);
		for (size_t k = 0; k < n; k++) {
			uint8_t *e = m + KVP_BATCH_HDR + k * ent;
			kvp_put_hash(e, io[idx[k]].h);
			kvp_put_checks(e + 16, io[idx[k]].check, r->shape.layers);
			v[k + 2].iov_base = io[idx[k]].buf;
			v[k + 2].iov_len = r->block_bytes;
		}
		err = kvc_send_req(fd, KVP_OP_PUT, id, m, mlen, v + 2, (unsigned)n, n * r->block_bytes, deadline);
	}
	free(m);
	free(v);
	return err;
}

/* PUT answer: res per block. */
static int put_recv(int fd, size_t n, uint64_t id, int32_t *res, uint64_t deadline)
{
	uint8_t *m = malloc(KVP_BATCH_HDR + n * KVP_RENT_RES);
	if (!m)
		return -ENOMEM;
	int err = kvc_recv_batch(fd, KVP_OP_PUT, id, n, KVP_RENT_RES, true, m, NULL, deadline);
	for (size_t k = 0; !err && k < n; k++)
		res[k] = (int32_t)kvp_get32(m + KVP_BATCH_HDR + k * KVP_RENT_RES);
	free(m);
	return err;
}

static int get_send(int fd, struct kv_tier_io *io, const size_t *idx, size_t n, uint64_t id,
		    uint64_t deadline)
{
	size_t mlen = KVP_BATCH_HDR + n * KVP_ENT_HASH;
	uint8_t *m = malloc(mlen);
	if (!m)
		return -ENOMEM;
	kvp_batch_encode(m, (uint32_t)n);
	for (size_t k = 0; k < n; k++)
		kvp_put_hash(m + KVP_BATCH_HDR + k * KVP_ENT_HASH, io[idx[k]].h);
	int err = kvc_send_req(fd, KVP_OP_GET, id, m, mlen, NULL, 0, 0, deadline);
	free(m);
	return err;
}

/* GET answer straight into the slots, each verified as it lands; res[k] per block. */
static int get_recv(struct remote *r, int fd, struct kv_tier_io *io, const size_t *idx, size_t n,
		    uint64_t id, int32_t *res, uint64_t deadline)
{
	size_t rent = KVP_RENT_GET(r->shape.layers), rlen = KVP_BATCH_HDR + n * rent;
	uint8_t *m = malloc(rlen);
	if (!m)
		return -ENOMEM;
	size_t dlen = 0, found = 0;
	int err = kvc_recv_batch(fd, KVP_OP_GET, id, n, rent, true, m, &dlen, deadline);
	for (size_t k = 0; !err && k < n; k++)
		found += kvp_get32(m + KVP_BATCH_HDR + k * rent) == 0;
	if (!err && dlen != found * r->block_bytes)
		err = -EPROTO;
	for (size_t k = 0; !err && k < n; k++) {
		const uint8_t *e = m + KVP_BATCH_HDR + k * rent;
		int32_t x = (int32_t)kvp_get32(e);
		struct kv_tier_io *b = &io[idx[k]];
		res[k] = x;
		if (x)
			continue;
		err = kvc_recv_full(fd, b->buf, r->block_bytes, deadline);
		if (err)
			break;
		/* Verify now, while the server keeps filling the socket buffer. */
		res[k] = kvc_verify(r, b, e + 8);
	}
	free(m);
	return err;
}

int kvc_verify(struct remote *r, struct kv_tier_io *io, const uint8_t *p)
{
	const uint8_t *b = io->buf;

	for (uint32_t l = 0; l < r->shape.layers; l++)
		if (kv_check_layer(&r->shape, io->h, l, b + (size_t)l * r->shape.layer_bytes) !=
		    kvp_get64(p + 8 * (size_t)l)) {
			atomic_fetch_add(&r->verify_failures, 1);
			return -EBADMSG;
		}
	kvp_get_checks(p, io->check, r->shape.layers);
	return 0;
}

/* ------------------------------------------------------------- placement */

static void rank_peers(struct remote *r, kv_hash h, uint8_t *order)
{
	uint64_t score[MAX_PEERS];
	for (unsigned i = 0; i < r->npeers; i++) {
		uint8_t b[16];
		kvp_put_hash(b, h);
		score[i] = XXH3_64bits_withSeed(b, sizeof(b), r->peer[i].seed);
		order[i] = (uint8_t)i;
	}
	/* Insertion sort, highest score first (npeers is small). */
	for (unsigned i = 1; i < r->npeers; i++) {
		uint8_t o = order[i];
		unsigned j = i;
		while (j > 0 && score[order[j - 1]] < score[o]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = o;
	}
}

enum { OP_LOOKUP, OP_PUT, OP_GET };

/*
 * The round engine shared by lookup, write and read. For each block:
 * rank[i] = next candidate position, got[i] = peers that answered (read,
 * lookup) or stored (write), done[i] when finished.
 */
struct job {
	struct remote *r;
	int op;
	size_t n;
	const kv_hash *h;           /* lookup */
	uint8_t *present;           /* lookup out */
	struct kv_tier_io *io;      /* put/get */
	uint8_t *order;             /* n * npeers */
	uint8_t *rank, *got, *done;
	int32_t *last;              /* last error per block */
};

static kv_hash job_hash(struct job *j, size_t i)
{
	return j->op == OP_LOOKUP ? j->h[i] : j->io[i].h;
}

/* One peer's share of a round: blocks idx[0..cnt). */
static void job_peer(struct job *j, unsigned pi, size_t *idx, size_t cnt, uint64_t deadline)
{
	struct remote *r = j->r;
	struct rpeer *p = &r->peer[pi];
	int32_t *res = malloc(cnt * sizeof(*res));
	struct rconn *conn = NULL;
	int err = res ? 0 : -ENOMEM;
	if (!err)
		err = conn_get(r, p, deadline, &conn);
	int fd = conn ? conn->fd : -1;
	size_t off = 0;
	bool verbs = !err && j->op != OP_LOOKUP && conn->rdma && kvc_rdma_bufs_ok(r, j->io, idx, cnt);
	/* The TCP paths read the stream themselves: the verbs path's deferred answers first. */
	if (!err && !verbs && conn->npend)
		err = kvc_deferred_drain(r, conn, deadline);
	if (j->op == OP_LOOKUP) {
		size_t c = p->max_batch ? p->max_batch : KVP_MAX_BATCH;
		while (!err && off < cnt) {
			size_t m = c < cnt - off ? c : cnt - off;
			err = rpc_lookup(r, fd, j->h, idx + off, m, j->present, deadline);
			for (size_t k = 0; !err && k < m; k++)
				res[off + k] = j->present[idx[off + k]] ? 0 : -ENOENT;
			if (!err)
				off += m;
		}
	} else if (verbs) {
		size_t c = p->max_batch ? p->max_batch : KVP_MAX_BATCH;
		if (c > 256)
			c = 256;
		if (c > kvp_batch_max(KVP_RENT_LEASE(r->shape.layers)))
			c = kvp_batch_max(KVP_RENT_LEASE(r->shape.layers));
		while (!err && off < cnt) {
			size_t m = c < cnt - off ? c : cnt - off;
			err = j->op == OP_PUT ? kvc_rdma_put(r, conn, j->io, idx + off, m, res + off, deadline)
					      : kvc_rdma_get(r, conn, j->io, idx + off, m, res + off, deadline);
			if (!err)
				off += m;
		}
	} else {
		/*
		 * Pipelined, two requests in flight: the server answers chunk k
		 * while chunk k+1 is already on the wire, so neither side idles
		 * between chunks.
		 */
		size_t c = chunk_blocks(r, p), sent = 0;
		uint64_t ids[2];
		size_t at[2], len[2];
		unsigned head = 0, inflight = 0;
		while (!err && off < cnt) {
			while (!err && sent < cnt && inflight < 2) {
				unsigned slot = (head + inflight) % 2;
				size_t m = c < cnt - sent ? c : cnt - sent;
				ids[slot] = atomic_fetch_add(&r->req_id, 1);
				at[slot] = sent;
				len[slot] = m;
				err = j->op == OP_PUT ? put_send(r, fd, j->io, idx + sent, m, ids[slot], deadline)
						      : get_send(fd, j->io, idx + sent, m, ids[slot], deadline);
				sent += m;
				inflight++;
			}
			if (err)
				break;
			err = j->op == OP_PUT ? put_recv(fd, len[head], ids[head], res + at[head], deadline)
					      : get_recv(r, fd, j->io, idx + at[head], len[head], ids[head],
							 res + at[head], deadline);
			if (!err)
				off += len[head];
			head = (head + 1) % 2;
			inflight--;
		}
	}
	if (conn)
		conn_put(r, p, conn, err);
	for (size_t k = 0; k < cnt; k++) {
		size_t i = idx[k];
		if (k >= off) {
			/* Not answered (the peer failed): move on to the next candidate. */
			j->last[i] = err ? err : -EIO;
			j->rank[i]++;
			continue;
		}
		int32_t x = res[k];   /* answered before any failure: keep it */
		if (j->op == OP_GET && x == 0)
			atomic_fetch_add(&r->bytes_out, r->block_bytes);   /* verified in rpc_get */
		if (j->op == OP_PUT) {
			if (x == 0) {
				j->got[i]++;
				atomic_fetch_add(&r->bytes_in, r->block_bytes);
			}
			j->last[i] = x ? x : j->last[i];
			j->rank[i]++;
			if (j->got[i] >= r->replicas)
				j->done[i] = 1;
			continue;
		}
		j->got[i]++;
		if (x == 0) {
			j->done[i] = 1;
			j->last[i] = 0;
			continue;
		}
		/* A miss (or a copy that failed its checksum): the next replica, if any. */
		if (j->last[i] != -EBADMSG)
			j->last[i] = x;
		j->rank[i]++;
		if (j->got[i] >= r->replicas)
			j->done[i] = 1;
	}
	free(res);
}

static int job_run(struct job *j)
{
	struct remote *r = j->r;
	size_t n = j->n;
	unsigned np = r->npeers;
	int err = -ENOMEM;
	size_t *idx = malloc(n * sizeof(*idx));
	size_t *cnt = calloc(np, sizeof(*cnt));
	size_t *start = calloc(np + 1, sizeof(*start));
	uint8_t *who = malloc(n);
	j->order = malloc(n * np);
	j->rank = calloc(n, 1);
	j->got = calloc(n, 1);
	j->done = calloc(n, 1);
	j->last = malloc(n * sizeof(*j->last));
	if (!idx || !cnt || !start || !who || !j->order || !j->rank || !j->got || !j->done || !j->last)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rank_peers(r, job_hash(j, i), j->order + i * np);
		j->last[i] = -EHOSTDOWN;
	}
	uint64_t deadline = kvc_now_ns() + (uint64_t)r->timeout_ms * 1000000ull;
	for (;;) {
		uint64_t now = kvc_now_ns();
		bool usable[MAX_PEERS];
		for (unsigned k = 0; k < np; k++)
			usable[k] = peer_usable(&r->peer[k], now);
		memset(cnt, 0, np * sizeof(*cnt));
		size_t pending = 0;
		for (size_t i = 0; i < n; i++) {
			if (j->done[i])
				continue;
			while (j->rank[i] < np && !usable[j->order[i * np + j->rank[i]]])
				j->rank[i]++;
			if (j->rank[i] >= np) {
				j->done[i] = 1;
				continue;
			}
			if (now >= deadline) {
				j->done[i] = 1;
				j->last[i] = -ETIMEDOUT;
				continue;
			}
			who[i] = j->order[i * np + j->rank[i]];
			cnt[who[i]]++;
			pending++;
		}
		if (!pending)
			break;
		start[0] = 0;
		for (unsigned k = 0; k < np; k++)
			start[k + 1] = start[k] + cnt[k];
		memset(cnt, 0, np * sizeof(*cnt));
		for (size_t i = 0; i < n; i++)
			if (!j->done[i])
				idx[start[who[i]] + cnt[who[i]]++] = i;
		for (unsigned k = 0; k < np; k++)
			if (cnt[k])
				job_peer(j, k, idx + start[k], cnt[k], deadline);
	}
	err = 0;
out:
	free(idx);
	free(cnt);
	free(start);
	free(who);
	free(j->order);
	free(j->rank);
	free(j->done);
	if (err) {
		free(j->last);
		free(j->got);
		j->last = NULL;
		j->got = NULL;
	}
	return err;
}

/* ------------------------------------------------------------ tier ops */

static int remote_write(void *ctx, struct kv_tier_io *io, size_t n)
{
	struct remote *r = ctx;
	if (n == 0)
		return 0;
	struct job j = { .r = r, .op = OP_PUT, .n = n, .io = io };
	int err = job_run(&j);
	if (err)
		return err;
	int ok = 0;
	for (size_t i = 0; i < n; i++) {
		io[i].res = j.got[i] ? 0 : (j.last[i] ? j.last[i] : -EIO);
	}
	free(j.last);
	free(j.got);
	for (size_t i = 0; i < n; i++) {
		if (io[i].res == 0)
			ok++;
		else
			atomic_fetch_add(&r->failures, 1);
	}
	atomic_fetch_add(&r->stored, (uint64_t)ok);
	return ok;
}

static int remote_read(void *ctx, struct kv_tier_io *io, size_t n)
{
	struct remote *r = ctx;
	if (n == 0)
		return 0;
	struct job j = { .r = r, .op = OP_GET, .n = n, .io = io };
	int err = job_run(&j);
	if (err)
		return err;
	int ok = 0;
	for (size_t i = 0; i < n; i++) {
		io[i].res = j.last[i];
		if (io[i].res == 0) {
			ok++;
			atomic_fetch_add(&r->hits, 1);
		} else if (io[i].res == -ENOENT || io[i].res == -EBADMSG) {
			atomic_fetch_add(&r->misses, 1);
		} else {
			atomic_fetch_add(&r->misses, 1);
			atomic_fetch_add(&r->failures, 1);
		}
	}
	free(j.last);
	free(j.got);
	return ok;
}

static int remote_lookup(void *ctx, const kv_hash *h, size_t n, uint8_t *present)
{
	struct remote *r = ctx;
	if (n == 0)
		return 0;
	memset(present, 0, n);
	struct job j = { .r = r, .op = OP_LOOKUP, .n = n, .h = h, .present = present };
	int err = job_run(&j);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++)
		present[i] = j.last[i] == 0;
	free(j.last);
	free(j.got);
	return 0;
}

static void remote_stats(void *ctx, struct kv_tier_stats *st)
{
	struct remote *r = ctx;
	st->hits += atomic_load(&r->hits);
	st->misses += atomic_load(&r->misses);
	st->bytes_in += atomic_load(&r->bytes_in);
	st->bytes_out += atomic_load(&r->bytes_out);
	st->failures += atomic_load(&r->failures);
	st->verify_failures += atomic_load(&r->verify_failures);
	/* Capacity of the servers reachable now (blocks they hold: kvctl status --server). */
	for (unsigned i = 0; i < r->npeers; i++) {
		pthread_mutex_lock(&r->peer[i].mu);
		if (!r->peer[i].down)
			st->capacity += r->peer[i].capacity / r->replicas;
		pthread_mutex_unlock(&r->peer[i].mu);
	}
}

static void remote_close(void *ctx)
{
	struct remote *r = ctx;
	if (!r)
		return;
	for (unsigned i = 0; i < r->npeers; i++) {
		struct rpeer *p = &r->peer[i];
		while (p->nidle)
			rconn_free(p->idle[--p->nidle]);
		pthread_mutex_destroy(&p->mu);
	}
	if (r->rdma) {
		kvr_mr_dereg(r->mr);
		kvr_dev_close(&r->dev);
	}
	memset(r->secret, 0, sizeof(r->secret));
	free(r);
}

/* ------------------------------------------------------------------ open */

/* Split "host:port" / "[v6]:port" into parts. Returns 0 or -EINVAL. */
static int parse_hostport(const char *s, size_t len, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;
	const char *hs = s, *he;
	if (len == 0)
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		if (!rb || rb + 1 >= s + len || rb[1] != ':')
			return -EINVAL;
		hs = s + 1;
		he = rb;
		colon = rb + 1;
	} else {
		colon = NULL;
		for (const char *q = s; q < s + len; q++)
			if (*q == ':')
				colon = q;
		if (!colon)
			return -EINVAL;
		he = colon;
	}
	size_t hl = (size_t)(he - hs), pl = (size_t)(s + len - colon - 1);
	if (hl == 0 || hl >= hlen || pl == 0 || pl >= plen)
		return -EINVAL;
	memcpy(host, hs, hl);
	host[hl] = 0;
	memcpy(port, colon + 1, pl);
	port[pl] = 0;
	char *end;
	long v = strtol(port, &end, 10);
	if (*end || v < 1 || v > 65535)
		return -EINVAL;
	return 0;
}

int kv_remote_peers_check(const char *peers)
{
	char host[sizeof(((struct rpeer *)0)->host)], port[sizeof(((struct rpeer *)0)->port)];
	unsigned n = 0;

	if (!peers)
		return -EINVAL;
	for (const char *s = peers;; s++) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);

		while (len && *s == ' ') {
			s++;
			len--;
		}
		/* An empty entry ("a:1,,b:2", a trailing comma, "") is a typo, not "no peer". */
		if (!len || ++n > MAX_PEERS ||
		    parse_hostport(s, len, host, sizeof(host), port, sizeof(port)))
			return -EINVAL;
		s += len;
		if (!*s)
			return 0;
	}
}

int kv_remote_tier_open_opts(const struct kv_remote_opts *o, struct kv_tier_ops *out)
{
	if (!o || !o->peers || !out || kv_remote_peers_check(o->peers))
		return -EINVAL;
	size_t bb = kv_geometry_block_bytes(&o->geom);
	if (bb == 0 || bb > KVP_MAX_BLOCK)
		return -EINVAL;
	/* One block's entry, check values included, must fit a request's metadata. */
	if (!kvp_batch_max(KVP_ENT_PUT(o->geom.layers)))
		return -EINVAL;
	struct remote *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->o = *o;
	r->o.peers = NULL;
	r->block_bytes = bb;
	r->shape = kv_check_shape_of(&o->geom);
	r->replicas = o->replicas ? o->replicas : 1;
	r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
	const char *nm = o->name ? o->name : "libkv";
	memcpy(r->name, nm, strnlen(nm, sizeof(r->name) - 1));
	atomic_init(&r->req_id, 16);
	int err = -EINVAL;
	const char *s = o->peers;
	while (*s) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		while (len && (*s == ' ')) {
			s++;
			len--;
		}
		if (len) {
			if (r->npeers >= MAX_PEERS)
				goto fail;
			struct rpeer *p = &r->peer[r->npeers];
			if (parse_hostport(s, len, p->host, sizeof(p->host), p->port, sizeof(p->port)))
				goto fail;
			char lb[sizeof(p->label)];
			snprintf(lb, sizeof(lb), "%s:%s", p->host, p->port);
			memcpy(p->label, lb, sizeof(lb));
			p->seed = XXH3_64bits(p->label, strlen(p->label));
			pthread_mutex_init(&p->mu, NULL);
			r->npeers++;
		}
		s += len;
		if (*s == ',')
			s++;
	}
	if (r->npeers == 0)
		goto fail;
	if (r->replicas > r->npeers)
		r->replicas = r->npeers;
	if (o->auth_file) {
		int n = kvp_secret_load(o->auth_file, r->secret);
		if (n < 0) {
			err = n;
			if (!(o->flags & KV_REMOTE_QUIET))
				fprintf(stderr, "libkv: cannot read remote auth file %s: %s\n",
					o->auth_file, strerror(-n));
			goto fail;
		}
		r->secret_len = n;
	}
	if (o->pool && o->pool->addr && o->pool->len && !(o->flags & KV_REMOTE_NO_RDMA)) {
		/* Verbs when there is a device: the host pool registered once. */
		int e = kvr_dev_open(o->rdma_dev, &r->dev);
		if (!e) {
			e = kvr_mr_reg(&r->dev, o->pool->addr, o->pool->len, &r->mr);
			if (e) {
				if (!(o->flags & KV_REMOTE_QUIET))
					fprintf(stderr, "libkv: cannot register the host pool with %s: %s%s; "
						"remote tier uses TCP\n", r->dev.name, strerror(-e),
						e == -ENOMEM || e == -EPERM ? " (RLIMIT_MEMLOCK? ulimit -l)" : "");
				kvr_dev_close(&r->dev);
			} else {
				r->rdma = true;
				r->pool_base = o->pool->addr;
				r->pool_len = o->pool->len;
			}
		} else if (o->rdma_dev && !(o->flags & KV_REMOTE_QUIET)) {
			fprintf(stderr, "libkv: RDMA device %s not usable: %s; remote tier uses TCP\n",
				o->rdma_dev, e == -ELIBACC ? kvr_verbs_error() : strerror(-e));
		}
	}
	*out = (struct kv_tier_ops){
		.name = "remote",
		.level = KV_TIER_REMOTE,
		.ctx = r,
		.write = remote_write,
		.read = remote_read,
		.lookup = remote_lookup,
		.stats = remote_stats,
		.close = remote_close,
	};
	return 0;
fail:
	remote_close(r);
	return err;
}

int kv_remote_placement(const struct kv_tier_ops *t, kv_hash h)
{
	struct remote *r = t->ctx;
	uint8_t order[MAX_PEERS];
	if (!r || !r->npeers)
		return -1;
	rank_peers(r, h, order);
	return order[0];
}

int kv_remote_peer_up(const struct kv_tier_ops *t, unsigned i)
{
	struct remote *r = t->ctx;
	if (!r || i >= r->npeers)
		return -1;
	pthread_mutex_lock(&r->peer[i].mu);
	int up = !r->peer[i].down;
	pthread_mutex_unlock(&r->peer[i].mu);
	return up;
}

int kv_remote_server_stats(const char *hostport, const char *auth_file, int timeout_ms,
			   uint64_t *st, unsigned max, char *why_out, size_t wlen)
{
	char host[256], port[16], why[KVP_REASON_MAX + 1];
	uint8_t secret[KVP_SECRET_MAX];
	int slen = 0, fd, err;
	if (!hostport || parse_hostport(hostport, strlen(hostport), host, sizeof(host), port, sizeof(port)))
		return -EINVAL;
	if (auth_file && (slen = kvp_secret_load(auth_file, secret)) < 0)
		return slen;
	uint64_t deadline = kvc_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 2000) * 1000000ull;
	struct kvp_hello_reply rep;
	struct kv_geometry g = { 0 };
	kv_hash root = { 0, 0 };
	err = kvc_session_open(host, port, &g, root, true, secret, slen, "kvctl-status", deadline, &fd,
			   &rep, why, sizeof(why));
	memset(secret, 0, sizeof(secret));
	if (err) {
		if (why_out && wlen)
			snprintf(why_out, wlen, "%s", why);
		return err;
	}
	struct kvp_hdr h;
	uint8_t buf[KVP_BATCH_HDR + 8 * 256];
	err = kvc_send_req(fd, KVP_OP_STATS, 3, NULL, 0, NULL, 0, 0, deadline);
	if (!err)
		err = kvc_recv_resp(fd, KVP_OP_STATS, 3, &h, deadline);
	if (!err && (h.status || h.len < KVP_BATCH_HDR || h.len > sizeof(buf)))
		err = h.status ? h.status : -EPROTO;
	if (!err)
		err = kvc_recv_full(fd, buf, h.len, deadline);
	int n = err ? err : kvp_batch_decode(buf, h.len, 8, 0);
	close(fd);
	if (n < 0)
		return n;
	for (unsigned i = 0; i < max; i++)
		st[i] = i < (unsigned)n ? kvp_get64(buf + KVP_BATCH_HDR + 8 * i) : 0;
	return n;
}

unsigned kv_remote_refused(const struct kv_tier_ops *t, unsigned *npeers)
{
	struct remote *r = t ? t->ctx : NULL;
	if (npeers)
		*npeers = r ? r->npeers : 0;
	return r ? atomic_load(&r->npeers_refused) : 0;
}

uint64_t kv_remote_ctl_waits(const struct kv_tier_ops *t, uint64_t *calls)
{
	struct remote *r = t ? t->ctx : NULL;
	if (calls)
		*calls = r ? atomic_load(&r->ctl_calls) : 0;
	return r ? atomic_load(&r->ctl_waits) : 0;
}

uint64_t kv_remote_rdma_blocks(const struct kv_tier_ops *t)
{
	struct remote *r = t->ctx;
	return r ? atomic_load(&r->rdma_blocks) : 0;
}
