/* SPDX-License-Identifier: MIT */
/*
 * server.c - the memory server core (see server.h).
 *
 * One thread, one epoll set, non-blocking sockets. A connection reads one
 * request at a time (header, metadata, then for PUT the block data straight
 * into the pool slots it was given), answers it, and reads the next once
 * the answer is sent. GET answers are sent with sendmsg() from the pool
 * slots themselves; those slots are pinned (refs) until the bytes are out,
 * so eviction cannot reuse them mid-send. The same pin is the RDMA lease.
 *
 * Index: entry i describes slot i. A chained hash table over
 * (namespace, hash), an LRU list of READY entries, a free list of slots.
 * The namespace key is XXH3-128(ns_root || geometry), so a client only ever
 * reaches blocks of the namespace and geometry it said hello with.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <nettle/memops.h>
#include <xxhash.h>

#include "check.h"
#include "region.h"
#include "remote_rdma.h"
#include "server.h"

#define NIL UINT32_MAX
#define MAX_LISTEN 8
#define MAX_NS 4096
#define SCRATCH_BYTES (64u << 10)
#define IOV_BATCH 512
#define MAX_LEASES 65536u      /* per connection (grants + leases) */
#define LEASE_GRANT (1u << 31)  /* lease list entry is a grant (PENDING slot) */

enum { ENT_FREE = 0, ENT_PENDING = 1, ENT_READY = 2 };

struct ent {
	kv_hash h;
	kv_hash ns;
	uint64_t *chk;         /* the writer's check values (check.h), nchk of them */
	uint32_t nchk, chkcap; /* chkcap: room in chk, kept across reuse of the slot */
	uint32_t hnext;
	uint32_t prev, next;   /* LRU links (READY only) */
	uint32_t refs;         /* sends in progress + leases */
	uint32_t nsidx;
	uint8_t state;
};

struct ns_ent {
	kv_hash key;
	uint64_t blocks;
};

enum { ST_HELLO, ST_AUTH, ST_READY, ST_ADMIN };
enum { RD_HDR, RD_PREFIX, RD_META, RD_DATA };

struct conn {
	struct conn *cprev, *cnext;
	int fd;
	uint64_t id;
	char peer[64];
	char name[KVP_NAME_BYTES];
	int state;
	bool admin_after_auth;
	bool closing;          /* close once the output is sent */
	bool want_out;         /* registered for EPOLLOUT */
	kv_hash ns;
	uint32_t nsidx;
	uint8_t nonce[KVP_NONCE_BYTES];
	kv_hash root;              /* as said in hello (for the AUTH MAC) */
	struct kv_geometry geom;

	/* input */
	int rstage;
	uint8_t hbuf[KVP_HDR_BYTES];
	size_t hgot;
	struct kvp_hdr hdr;
	uint8_t *mbuf;
	size_t mcap, mlen, mgot;
	size_t dlen, dgot;
	uint32_t put_n;
	uint32_t *put_slot;    /* slot per PUT block, NIL: discard */
	int32_t *put_res;

	/* output */
	uint8_t *obuf;
	size_t ocap, olen;
	struct iovec *iov;
	unsigned iovcnt, iovidx, iovcap;
	uint32_t *pinned;      /* slots to unpin when the output is sent */
	unsigned npinned;

	/* leases (RDMA), in the order taken */
	struct lease *leases;
	unsigned nleases, lcap;
	struct kvr_qp qp;
	bool has_qp;
	/* When the pins of the answer being sent were taken (ms; 0: none held). */
	uint64_t pin_since;
};

/*
 * One block held for a client's one-sided RDMA: a LEASE (a READY block it
 * reads, pinned against eviction) or a GRANT (a PENDING slot it writes,
 * until COMMIT). Each expires on its own: see sweep().
 */
struct lease {
	uint32_t v;            /* slot, | LEASE_GRANT for a grant */
	uint64_t since;        /* ms when it was taken */
};

struct kvs {
	struct kvs_config cfg;
	struct kv_geometry geom;
	bool strict_geom;
	uint8_t secret[KVP_SECRET_MAX];
	size_t secret_len;
	FILE *log;
	int epfd;
	int lfd[MAX_LISTEN];
	unsigned nlisten;
	uint64_t next_conn_id;
	unsigned nconns;
	struct conn *conns;

	bool rdma;
	struct kvr_dev dev;
	struct ibv_mr *mr;

	struct kv_region region;
	uint8_t *pool;
	size_t block_bytes;
	uint32_t capacity;
	struct ent *ents;
	uint32_t *buckets;
	uint32_t bmask;
	uint32_t free_head;    /* via hnext */
	uint32_t lru_head, lru_tail;
	uint64_t nblocks;
	struct ns_ent *ns;
	unsigned nns;
	uint8_t scratch[SCRATCH_BYTES];

	uint64_t st[KVP_ST_COUNT];
	uint64_t t0_ns;
	uint64_t lease_ms;     /* longest a connection may hold leases/pins */
	uint64_t next_sweep_ms;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}

static void logf_(struct kvs *s, struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void logf_(struct kvs *s, struct conn *c, const char *fmt, ...)
{
	if (!s->log)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	if (c)
		fprintf(s->log, "%02d:%02d:%02d.%03ld serve: conn %llu %s: %s\n", tm.tm_hour,
			tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (unsigned long long)c->id,
			c->peer, msg);
	else
		fprintf(s->log, "%02d:%02d:%02d.%03ld serve: %s\n", tm.tm_hour, tm.tm_min,
			tm.tm_sec, ts.tv_nsec / 1000000, msg);
	fflush(s->log);
}

/* ------------------------------------------------------------------ index */

static uint32_t bucket_of(struct kvs *s, kv_hash ns, kv_hash h)
{
	uint64_t x = h.lo ^ (ns.lo * 0x9e3779b97f4a7c15ull) ^ (h.hi >> 17);
	x ^= x >> 29;
	return (uint32_t)x & s->bmask;
}

static uint32_t ix_find(struct kvs *s, kv_hash ns, kv_hash h)
{
	for (uint32_t i = s->buckets[bucket_of(s, ns, h)]; i != NIL; i = s->ents[i].hnext)
		if (kv_hash_eq(s->ents[i].h, h) && kv_hash_eq(s->ents[i].ns, ns))
			return i;
	return NIL;
}

static void lru_unlink(struct kvs *s, uint32_t i)
{
	struct ent *e = &s->ents[i];
	if (e->prev != NIL)
		s->ents[e->prev].next = e->next;
	else
		s->lru_head = e->next;
	if (e->next != NIL)
		s->ents[e->next].prev = e->prev;
	else
		s->lru_tail = e->prev;
	e->prev = e->next = NIL;
}

static void lru_push(struct kvs *s, uint32_t i)
{
	struct ent *e = &s->ents[i];
	e->prev = NIL;
	e->next = s->lru_head;
	if (s->lru_head != NIL)
		s->ents[s->lru_head].prev = i;
	s->lru_head = i;
	if (s->lru_tail == NIL)
		s->lru_tail = i;
}

static void lru_touch(struct kvs *s, uint32_t i)
{
	if (s->lru_head == i)
		return;
	lru_unlink(s, i);
	lru_push(s, i);
}

/* Remove entry i (PENDING or READY, refs 0) and free its slot. */
static void ent_free(struct kvs *s, uint32_t i)
{
	struct ent *e = &s->ents[i];
	uint32_t *pp = &s->buckets[bucket_of(s, e->ns, e->h)];
	while (*pp != i && *pp != NIL)
		pp = &s->ents[*pp].hnext;
	if (*pp == i)
		*pp = e->hnext;
	if (e->state == ENT_READY) {
		lru_unlink(s, i);
		s->nblocks--;
	}
	if (e->nsidx < s->nns && s->ns[e->nsidx].blocks)
		s->ns[e->nsidx].blocks--;
	e->state = ENT_FREE;
	e->refs = 0;
	e->hnext = s->free_head;
	s->free_head = i;
}

/* Evict the least recently used unpinned block, of namespace nsidx if not NIL. */
static bool evict_one(struct kvs *s, uint32_t nsidx)
{
	for (uint32_t i = s->lru_tail; i != NIL; i = s->ents[i].prev) {
		if (s->ents[i].refs)
			continue;
		if (nsidx != NIL && s->ents[i].nsidx != nsidx)
			continue;
		ent_free(s, i);
		s->st[KVP_ST_EVICTIONS]++;
		return true;
	}
	return false;
}

/*
 * A PENDING entry for (ns, h) in a free slot, holding the check values at
 * checks (the connection's geometry.layers of them, little-endian, stored
 * as sent: the server never makes them), or NIL when the pool is full of
 * pinned blocks (or no memory for the values).
 */
static uint32_t ent_alloc(struct kvs *s, struct conn *c, kv_hash h, const uint8_t *checks)
{
	uint32_t nchk = c->geom.layers;

	if (s->cfg.ns_quota && c->nsidx < s->nns && s->ns[c->nsidx].blocks >= s->cfg.ns_quota)
		if (!evict_one(s, c->nsidx))
			return NIL;
	if (s->free_head == NIL && !evict_one(s, NIL))
		return NIL;
	uint32_t i = s->free_head;
	struct ent *e = &s->ents[i];
	if (e->chkcap < nchk) {
		uint64_t *v = realloc(e->chk, nchk * sizeof(*v));
		if (!v)
			return NIL;
		e->chk = v;
		e->chkcap = nchk;
	}
	s->free_head = e->hnext;
	e->h = h;
	e->ns = c->ns;
	e->nchk = nchk;
	kvp_get_checks(checks, e->chk, nchk);
	e->refs = 0;
	e->nsidx = c->nsidx;
	e->state = ENT_PENDING;
	e->prev = e->next = NIL;
	uint32_t b = bucket_of(s, c->ns, h);
	e->hnext = s->buckets[b];
	s->buckets[b] = i;
	if (c->nsidx < s->nns)
		s->ns[c->nsidx].blocks++;
	return i;
}

static void ent_ready(struct kvs *s, uint32_t i)
{
	s->ents[i].state = ENT_READY;
	lru_push(s, i);
	s->nblocks++;
}

static uint32_t ns_index(struct kvs *s, kv_hash key)
{
	for (unsigned i = 0; i < s->nns; i++)
		if (kv_hash_eq(s->ns[i].key, key))
			return i;
	if (s->nns >= MAX_NS)
		return NIL;
	s->ns[s->nns].key = key;
	s->ns[s->nns].blocks = 0;
	return s->nns++;
}

static inline uint8_t *slot_ptr(struct kvs *s, uint32_t i)
{
	return s->pool + (size_t)i * s->block_bytes;
}

/* ------------------------------------------------------------ connections */

static void conn_close(struct kvs *s, struct conn *c, const char *why)
{
	/* Unpin what an unfinished send held, free unfinished PUT slots, drop leases. */
	for (unsigned k = 0; k < c->npinned; k++)
		if (s->ents[c->pinned[k]].refs)
			s->ents[c->pinned[k]].refs--;
	if (c->rstage == RD_DATA && c->put_slot)
		for (uint32_t k = 0; k < c->put_n; k++)
			if (c->put_slot[k] != NIL)
				ent_free(s, c->put_slot[k]);
	/* The QP goes first: no RDMA can touch a slot after this. */
	if (c->has_qp)
		kvr_qp_destroy(&c->qp);
	for (unsigned k = 0; k < c->nleases; k++) {
		uint32_t i = c->leases[k].v & ~LEASE_GRANT;
		struct ent *e = &s->ents[i];
		if (c->leases[k].v & LEASE_GRANT) {
			if (e->state == ENT_PENDING)
				ent_free(s, i);
		} else if (e->refs) {
			e->refs--;
		}
	}
	logf_(s, c, "closed (%s)", why);
	if (c->cprev)
		c->cprev->cnext = c->cnext;
	else
		s->conns = c->cnext;
	if (c->cnext)
		c->cnext->cprev = c->cprev;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->mbuf);
	free(c->put_slot);
	free(c->put_res);
	free(c->obuf);
	free(c->iov);
	free(c->pinned);
	free(c->leases);
	free(c);
	s->nconns--;
}

static int conn_events(struct kvs *s, struct conn *c, bool out)
{
	struct epoll_event ev = { .events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c };
	c->want_out = out;
	return epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) ? -errno : 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* Start a response: header + room for meta bytes. Returns the meta area or NULL. */
static uint8_t *resp_begin(struct conn *c, int32_t status, size_t meta)
{
	size_t cap = c->ocap;
	if (grow((void **)&c->obuf, &cap, KVP_HDR_BYTES + meta, 1))
		return NULL;
	c->ocap = cap;
	c->olen = KVP_HDR_BYTES + meta;
	c->hdr.status = status;
	c->iovcnt = 0;
	c->iovidx = 0;
	c->npinned = 0;
	return c->obuf + KVP_HDR_BYTES;
}

static int iov_add(struct conn *c, void *p, size_t len)
{
	size_t cap = c->iovcap;
	if (grow((void **)&c->iov, &cap, c->iovcnt + 1, sizeof(*c->iov)))
		return -ENOMEM;
	c->iovcap = (unsigned)cap;
	c->iov[c->iovcnt].iov_base = p;
	c->iov[c->iovcnt].iov_len = len;
	c->iovcnt++;
	return 0;
}

/* Finish the response started by resp_begin: data_bytes of iovs already added after it. */
static int resp_send(struct kvs *s, struct conn *c, size_t data_bytes)
{
	size_t len = c->olen - KVP_HDR_BYTES + data_bytes;
	kvp_hdr_encode(c->obuf, c->hdr.op, KVP_F_RESP, (uint32_t)len, c->hdr.status, c->hdr.req_id);
	/* The header + meta goes first: shift the data iovs by one. */
	if (iov_add(c, NULL, 0))
		return -ENOMEM;
	memmove(c->iov + 1, c->iov, (c->iovcnt - 1) * sizeof(*c->iov));
	c->iov[0].iov_base = c->obuf;
	c->iov[0].iov_len = c->olen;
	c->iovidx = 0;
	if (c->npinned)
		c->pin_since = now_ms();
	return conn_events(s, c, true);
}

static int resp_error(struct kvs *s, struct conn *c, int32_t status, const char *reason, bool close_after)
{
	size_t rl = reason ? strnlen(reason, KVP_REASON_MAX) : 0;
	uint8_t *p = resp_begin(c, status, rl);
	if (!p)
		return -ENOMEM;
	memcpy(p, reason, rl);
	c->closing = close_after;
	return resp_send(s, c, 0);
}

/* Write what can be written. Returns 0, 1 when all is out, -errno to close. */
static int conn_flush(struct kvs *s, struct conn *c)
{
	while (c->iovidx < c->iovcnt) {
		unsigned cnt = c->iovcnt - c->iovidx;
		if (cnt > IOV_BATCH)
			cnt = IOV_BATCH;
		struct msghdr mh = { .msg_iov = c->iov + c->iovidx, .msg_iovlen = cnt };
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s->st[KVP_ST_BYTES_OUT] += (uint64_t)w;
		size_t left = (size_t)w;
		while (left && c->iovidx < c->iovcnt) {
			struct iovec *v = &c->iov[c->iovidx];
			if (left >= v->iov_len) {
				left -= v->iov_len;
				c->iovidx++;
			} else {
				v->iov_base = (uint8_t *)v->iov_base + left;
				v->iov_len -= left;
				left = 0;
			}
		}
		while (c->iovidx < c->iovcnt && c->iov[c->iovidx].iov_len == 0)
			c->iovidx++;
	}
	for (unsigned k = 0; k < c->npinned; k++)
		if (s->ents[c->pinned[k]].refs)
			s->ents[c->pinned[k]].refs--;
	c->npinned = 0;
	c->pin_since = 0;
	c->iovcnt = c->iovidx = 0;
	return 1;
}

/* ---------------------------------------------------------------- requests */

static int do_hello(struct kvs *s, struct conn *c)
{
	struct kvp_hello h;
	char why[KVP_REASON_MAX];

	if (kvp_hello_decode(c->mbuf, c->mlen, &h))
		return -EPROTO;
	memcpy(c->name, h.name, KVP_NAME_BYTES);
	c->root = h.ns_root;
	c->geom = h.geom;
	if (h.ver_min > KVP_VERSION || h.ver_max < KVP_VERSION) {
		snprintf(why, sizeof(why), "protocol version %u..%u not supported (server speaks %u)",
			 h.ver_min, h.ver_max, KVP_VERSION);
		goto refuse;
	}
	if (!(h.flags & KVP_HELLO_ADMIN)) {
		if (h.block_bytes != s->block_bytes) {
			snprintf(why, sizeof(why),
				 "geometry mismatch: client blocks are %u bytes, this server holds %zu-byte blocks",
				 h.block_bytes, s->block_bytes);
			goto refuse;
		}
		if (!kvp_batch_max(KVP_ENT_PUT(h.geom.layers))) {
			snprintf(why, sizeof(why), "geometry of %u layers: one block's check values "
				 "exceed the %u-byte metadata bound", h.geom.layers, KVP_MAX_META);
			goto refuse;
		}
		if (s->strict_geom && memcmp(&h.geom, &s->geom, sizeof(h.geom))) {
			snprintf(why, sizeof(why),
				 "geometry mismatch: client %ux%ux%ux%ux%u dtype %u, server %ux%ux%ux%ux%u dtype %u",
				 h.geom.layers, h.geom.planes, h.geom.block_tokens, h.geom.kv_heads,
				 h.geom.head_dim, h.geom.dtype, s->geom.layers, s->geom.planes,
				 s->geom.block_tokens, s->geom.kv_heads, s->geom.head_dim, s->geom.dtype);
			goto refuse;
		}
		uint8_t key[16 + 24];
		kvp_put_hash(key, h.ns_root);
		kvp_put32(key + 16, h.geom.layers);
		kvp_put32(key + 20, h.geom.planes);
		kvp_put32(key + 24, h.geom.block_tokens);
		kvp_put32(key + 28, h.geom.kv_heads);
		kvp_put32(key + 32, h.geom.head_dim);
		kvp_put32(key + 36, h.geom.dtype);
		XXH128_hash_t x = XXH3_128bits(key, sizeof(key));
		c->ns.lo = x.low64;
		c->ns.hi = x.high64;
		c->nsidx = ns_index(s, c->ns);
		if (c->nsidx == NIL) {
			snprintf(why, sizeof(why), "too many namespaces (%u)", MAX_NS);
			goto refuse;
		}
	}
	struct kvp_hello_reply r = {
		.version = KVP_VERSION,
		.flags = (s->secret_len ? KVP_SRV_AUTH : 0) | (s->rdma ? KVP_SRV_RDMA : 0),
		.capacity = s->capacity,
		.max_batch = KVP_MAX_BATCH,
		.max_data = KVP_MAX_DATA,
	};
	if (s->secret_len) {
		if (getrandom(c->nonce, sizeof(c->nonce), 0) != (ssize_t)sizeof(c->nonce))
			return -EIO;
		memcpy(r.nonce, c->nonce, sizeof(r.nonce));
	}
	uint8_t *p = resp_begin(c, 0, KVP_HELLO_REPLY_BYTES);
	if (!p)
		return -ENOMEM;
	kvp_hello_reply_encode(p, &r);
	bool admin = h.flags & KVP_HELLO_ADMIN;
	if (s->secret_len) {
		c->state = ST_AUTH;
		c->admin_after_auth = admin;
	} else {
		c->state = admin ? ST_ADMIN : ST_READY;
	}
	if (admin)
		logf_(s, c, "hello ok (status client '%s')%s", c->name,
		      s->secret_len ? ", auth required" : "");
	else
		logf_(s, c, "hello ok (client '%s', namespace %016llx%016llx, %u-byte blocks)%s",
		      c->name, (unsigned long long)h.ns_root.hi, (unsigned long long)h.ns_root.lo,
		      h.block_bytes, s->secret_len ? ", auth required" : "");
	return resp_send(s, c, 0);
refuse:
	s->st[KVP_ST_REFUSED]++;
	logf_(s, c, "hello refused: %s", why);
	return resp_error(s, c, -EPROTONOSUPPORT, why, true);
}

static int do_auth(struct kvs *s, struct conn *c)
{
	uint8_t mac[KVP_MAC_BYTES];

	if (c->mlen != KVP_MAC_BYTES)
		return -EPROTO;
	/* The MAC binds nonce, namespace root and geometry as said in hello. */
	int err = kvp_auth_mac(s->secret, s->secret_len, c->nonce, c->root, &c->geom, mac);
	if (err)
		return err;
	memset(c->nonce, 0, sizeof(c->nonce));   /* one answer per challenge */
	if (!memeql_sec(mac, c->mbuf, KVP_MAC_BYTES)) {   /* constant time */
		s->st[KVP_ST_AUTH_FAILURES]++;
		logf_(s, c, "auth failed (client '%s')", c->name);
		return resp_error(s, c, -EACCES, "authentication failed", true);
	}
	c->state = c->admin_after_auth ? ST_ADMIN : ST_READY;
	logf_(s, c, "auth ok");
	resp_begin(c, 0, 0);
	return resp_send(s, c, 0);
}

static int do_lookup(struct kvs *s, struct conn *c)
{
	int n = kvp_batch_decode(c->mbuf, c->mlen, KVP_ENT_HASH, 0);
	if (n < 0)
		return n;
	uint8_t *p = resp_begin(c, 0, KVP_BATCH_HDR + (size_t)n);
	if (!p)
		return -ENOMEM;
	kvp_batch_encode(p, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		uint32_t e = ix_find(s, c->ns, kvp_get_hash(c->mbuf + KVP_BATCH_HDR + (size_t)i * KVP_ENT_HASH));
		p[KVP_BATCH_HDR + i] = e != NIL && s->ents[e].state == ENT_READY;
	}
	return resp_send(s, c, 0);
}

/*
 * Test builds only (-DKVS_FAULTS, tests/remote/kvr_hostile): a server that
 * answers for the wrong block, as a stale index or a reused slot would, so
 * the tests can show that clients never accept it. kvs_fault selects:
 *   1 another block's bytes and check values (same namespace)
 *   2 the asked block's check values with another block's bytes
 *   3 a block stored under another namespace, bytes and check values
 * fault_pick gives the entry whose bytes are sent for e, fault_checks the
 * entry whose check values go with them. Production builds answer honestly.
 */
#ifdef KVS_FAULTS
int kvs_fault;

static uint32_t fault_pick(struct kvs *s, struct conn *c, uint32_t e)
{
	for (uint32_t i = s->lru_head; kvs_fault && i != NIL; i = s->ents[i].next) {
		bool same_ns = kv_hash_eq(s->ents[i].ns, c->ns);

		if (i != e && s->ents[i].state == ENT_READY && same_ns == (kvs_fault != 3) &&
		    s->ents[i].nchk == c->geom.layers)
			return i;
	}
	return e;
}

static uint32_t fault_checks(uint32_t e, uint32_t d)
{
	return kvs_fault == 2 ? e : d;
}
#else
static inline uint32_t fault_pick(struct kvs *s, struct conn *c, uint32_t e)
{
	return e;
}

static inline uint32_t fault_checks(uint32_t e, uint32_t d)
{
	return d;
}
#endif

static int do_get(struct kvs *s, struct conn *c)
{
	int n = kvp_batch_decode(c->mbuf, c->mlen, KVP_ENT_HASH, 0);
	if (n < 0)
		return n;
	if ((size_t)n * s->block_bytes > KVP_MAX_DATA && n > 1)
		return -EPROTO;
	size_t rent = KVP_RENT_GET(c->geom.layers);
	if (KVP_BATCH_HDR + (size_t)n * rent > KVP_MAX_META)
		return -EPROTO;   /* the answer's entries, check values included, fit the bound too */
	uint8_t *p = resp_begin(c, 0, KVP_BATCH_HDR + (size_t)n * rent);
	if (!p)
		return -ENOMEM;
	size_t pc = c->npinned;
	if (grow((void **)&c->pinned, &pc, (size_t)n, sizeof(*c->pinned)))
		return -ENOMEM;
	kvp_batch_encode(p, (uint32_t)n);
	size_t data = 0;
	s->st[KVP_ST_GETS]++;
	for (int i = 0; i < n; i++) {
		kv_hash h = kvp_get_hash(c->mbuf + KVP_BATCH_HDR + (size_t)i * KVP_ENT_HASH);
		uint32_t e = ix_find(s, c->ns, h);
		uint8_t *r = p + KVP_BATCH_HDR + (size_t)i * rent;
		memset(r, 0, rent);
		if (e == NIL || s->ents[e].state != ENT_READY) {
			kvp_put32(r, (uint32_t)-ENOENT);
			s->st[KVP_ST_MISSES]++;
			continue;
		}
		uint32_t d = fault_pick(s, c, e);
		kvp_put_checks(r + 8, s->ents[fault_checks(e, d)].chk, c->geom.layers);
		s->ents[d].refs++;
		c->pinned[c->npinned++] = d;
		lru_touch(s, e);
		if (iov_add(c, slot_ptr(s, d), s->block_bytes))
			return -ENOMEM;
		data += s->block_bytes;
		s->st[KVP_ST_HITS]++;
	}
	return resp_send(s, c, data);
}

/* PUT metadata is in: give each new block a slot, then read the data. */
static int put_begin(struct kvs *s, struct conn *c)
{
	size_t ent = KVP_ENT_PUT(c->geom.layers);
	int n = kvp_batch_decode(c->mbuf, c->mlen, ent, 0);
	if (n < 0)
		return n;
	c->put_n = (uint32_t)n;
	free(c->put_slot);
	free(c->put_res);
	c->put_slot = malloc((size_t)n * sizeof(*c->put_slot));
	c->put_res = malloc((size_t)n * sizeof(*c->put_res));
	if (!c->put_slot || !c->put_res)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const uint8_t *q = c->mbuf + KVP_BATCH_HDR + (size_t)i * ent;
		kv_hash h = kvp_get_hash(q);
		c->put_slot[i] = NIL;
		c->put_res[i] = 0;
		uint32_t e = ix_find(s, c->ns, h);
		if (e != NIL) {
			if (s->ents[e].state == ENT_READY)
				lru_touch(s, e);
			continue;   /* present (or being stored): succeeds, data discarded */
		}
		e = ent_alloc(s, c, h, q + 16);
		if (e == NIL) {
			c->put_res[i] = -ENOSPC;
			continue;
		}
		c->put_slot[i] = e;
	}
	s->st[KVP_ST_PUTS]++;
	c->dgot = 0;
	return 0;
}

static int put_end(struct kvs *s, struct conn *c)
{
	uint32_t n = c->put_n;
	for (uint32_t i = 0; i < n; i++)
		if (c->put_slot[i] != NIL)
			ent_ready(s, c->put_slot[i]);
	uint8_t *p = resp_begin(c, 0, KVP_BATCH_HDR + (size_t)n * KVP_RENT_RES);
	if (!p)
		return -ENOMEM;
	kvp_batch_encode(p, n);
	for (uint32_t i = 0; i < n; i++)
		kvp_put32(p + KVP_BATCH_HDR + (size_t)i * KVP_RENT_RES, (uint32_t)c->put_res[i]);
	c->put_n = 0;
	return resp_send(s, c, 0);
}

static int do_stats(struct kvs *s, struct conn *c)
{
	if (c->mlen != 0)
		return -EPROTO;
	uint64_t st[KVP_ST_COUNT];
	kvs_stats(s, st);
	uint8_t *p = resp_begin(c, 0, KVP_BATCH_HDR + 8 * KVP_ST_COUNT);
	if (!p)
		return -ENOMEM;
	kvp_batch_encode(p, KVP_ST_COUNT);
	for (unsigned i = 0; i < KVP_ST_COUNT; i++)
		kvp_put64(p + KVP_BATCH_HDR + 8 * i, st[i]);
	return resp_send(s, c, 0);
}

/* ------------------------------------------------------------------- RDMA */

static int lease_add(struct conn *c, uint32_t v, uint64_t now)
{
	size_t cap = c->lcap;
	if (c->nleases >= MAX_LEASES)
		return -ENOSPC;
	if (grow((void **)&c->leases, &cap, c->nleases + 1, sizeof(*c->leases)))
		return -ENOMEM;
	c->lcap = (unsigned)cap;
	c->leases[c->nleases++] = (struct lease){ .v = v, .since = now };
	return 0;
}

/*
 * Remove v from c's lease list. Returns true if it was there. Searched from
 * the newest end: a client releases the batch it leased last.
 */
static bool lease_del(struct conn *c, uint32_t v)
{
	for (unsigned k = c->nleases; k-- > 0;)
		if (c->leases[k].v == v) {
			c->leases[k] = c->leases[--c->nleases];
			return true;
		}
	return false;
}

static int do_rdma_connect(struct kvs *s, struct conn *c)
{
	struct kvp_rdma rem, loc;
	if (c->has_qp || kvp_rdma_decode(c->mbuf, c->mlen, &rem))
		return -EPROTO;
	int err = kvr_qp_create(&s->dev, 16, &c->qp);
	if (!err) {
		c->has_qp = true;
		err = kvr_qp_connect(&s->dev, &c->qp, &rem);
	}
	if (err) {
		logf_(s, c, "rdma connect failed: %s", strerror(-err));
		return resp_error(s, c, err, "cannot connect the queue pair", false);
	}
	kvr_qp_local(&s->dev, &c->qp, s->mr, s->pool, &loc);
	uint8_t *p = resp_begin(c, 0, KVP_RDMA_BYTES);
	if (!p)
		return -ENOMEM;
	kvp_rdma_encode(p, &loc);
	logf_(s, c, "rdma connected (qp %u <-> %u, device %s)", loc.qpn, rem.qpn, s->dev.name);
	return resp_send(s, c, 0);
}

/* --verify-commit: does the written block fail the check values it was granted with? */
static bool commit_bad(struct kvs *s, struct conn *c, uint32_t e)
{
	struct kv_check_shape sh = { c->geom.layers, s->block_bytes / c->geom.layers };

	return kv_check_verify(&sh, s->ents[e].h, slot_ptr(s, e), s->ents[e].chk, NULL) != 0;
}

static int do_rdma(struct kvs *s, struct conn *c)
{
	uint16_t op = c->hdr.op;
	if (op == KVP_OP_RDMA_CONNECT)
		return do_rdma_connect(s, c);
	if (!c->has_qp)
		return -EPROTO;
	uint32_t L = c->geom.layers;
	size_t ent = op == KVP_OP_GRANT ? KVP_ENT_PUT(L) : KVP_ENT_HASH;
	int n = kvp_batch_decode(c->mbuf, c->mlen, ent, 0);
	if (n < 0)
		return n;
	size_t rent = op == KVP_OP_GRANT ? KVP_RENT_GRANT : op == KVP_OP_LEASE ? KVP_RENT_LEASE(L) : KVP_RENT_RES;
	if (KVP_BATCH_HDR + (size_t)n * rent > KVP_MAX_META)
		return -EPROTO;
	uint8_t *p = resp_begin(c, 0, KVP_BATCH_HDR + (size_t)n * rent);
	if (!p)
		return -ENOMEM;
	kvp_batch_encode(p, (uint32_t)n);
	uint64_t now = now_ms();
	for (int i = 0; i < n; i++) {
		const uint8_t *q = c->mbuf + KVP_BATCH_HDR + (size_t)i * ent;
		uint8_t *r = p + KVP_BATCH_HDR + (size_t)i * rent;
		kv_hash h = kvp_get_hash(q);
		uint32_t e = ix_find(s, c->ns, h);
		int32_t res = 0;
		memset(r, 0, rent);
		switch (op) {
		case KVP_OP_GRANT:
			/* -EEXIST: present (or being stored): nothing to write. */
			if (e != NIL) {
				res = -EEXIST;
				break;
			}
			e = ent_alloc(s, c, h, q + 16);
			if (e == NIL) {
				res = -ENOSPC;
				break;
			}
			if (lease_add(c, e | LEASE_GRANT, now)) {
				ent_free(s, e);
				res = -ENOSPC;
				break;
			}
			kvp_put64(r + 8, (uint64_t)e * s->block_bytes);
			break;
		case KVP_OP_COMMIT:
			if (e == NIL || s->ents[e].state != ENT_PENDING || !lease_del(c, e | LEASE_GRANT)) {
				res = -ENOENT;
				break;
			}
			/*
			 * RC delivered every WRITE before the client sent COMMIT.
			 * Readers verify every block anyway; --verify-commit also
			 * checks here, so a bad writer is caught at the source.
			 */
			if (s->cfg.verify_commit && commit_bad(s, c, e)) {
				ent_free(s, e);
				res = -EBADMSG;
				break;
			}
			ent_ready(s, e);
			s->st[KVP_ST_BYTES_IN] += s->block_bytes;
			break;
		case KVP_OP_LEASE:
			if (e == NIL || s->ents[e].state != ENT_READY) {
				res = -ENOENT;
				s->st[KVP_ST_MISSES]++;
				break;
			}
			if (lease_add(c, e, now)) {
				res = -ENOSPC;
				break;
			}
			s->ents[e].refs++;
			lru_touch(s, e);
			s->st[KVP_ST_HITS]++;
			{
				uint32_t d = fault_pick(s, c, e);
				kvp_put64(r + 8, (uint64_t)d * s->block_bytes);
				kvp_put_checks(r + 16, s->ents[fault_checks(e, d)].chk, L);
			}
			break;
		case KVP_OP_RELEASE:
			if (e == NIL || !lease_del(c, e)) {
				res = -ENOENT;
				break;
			}
			if (s->ents[e].refs)
				s->ents[e].refs--;
			s->st[KVP_ST_BYTES_OUT] += s->block_bytes;
			break;
		}
		kvp_put32(r, (uint32_t)res);
	}
	if (op == KVP_OP_GRANT)
		s->st[KVP_ST_PUTS]++;
	if (op == KVP_OP_LEASE)
		s->st[KVP_ST_GETS]++;
	return resp_send(s, c, 0);
}

/* A whole request (header + metadata) is in: act on it. Returns 0 or -errno to close. */
static int dispatch(struct kvs *s, struct conn *c)
{
	if (c->hdr.op != KVP_OP_STATS && c->hdr.op != KVP_OP_HELLO && c->hdr.op != KVP_OP_AUTH)
		s->st[KVP_ST_REQUESTS]++;
	switch (c->hdr.op) {
	case KVP_OP_HELLO:
		return do_hello(s, c);
	case KVP_OP_AUTH:
		return do_auth(s, c);
	case KVP_OP_LOOKUP:
		return do_lookup(s, c);
	case KVP_OP_GET:
		return do_get(s, c);
	case KVP_OP_STATS:
		return do_stats(s, c);
	case KVP_OP_RDMA_CONNECT:
	case KVP_OP_GRANT:
	case KVP_OP_COMMIT:
	case KVP_OP_LEASE:
	case KVP_OP_RELEASE:
		if (!s->rdma)
			return resp_error(s, c, -EOPNOTSUPP, "RDMA is not enabled on this server", false);
		return do_rdma(s, c);
	default:
		return -EPROTO;
	}
}

/* Is op allowed in the connection's state? (checked on the header, before any payload) */
static bool op_allowed(struct conn *c, uint16_t op)
{
	switch (c->state) {
	case ST_HELLO:
		return op == KVP_OP_HELLO;
	case ST_AUTH:
		return op == KVP_OP_AUTH;
	case ST_ADMIN:
		return op == KVP_OP_STATS;
	default:
		return op != KVP_OP_HELLO && op != KVP_OP_AUTH;
	}
}

static ssize_t rd(int fd, void *p, size_t len)
{
	for (;;) {
		ssize_t r = recv(fd, p, len, MSG_DONTWAIT);
		if (r > 0)
			return r;
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

/* Read and act on requests until the socket is drained or a response is pending. */
static int conn_read(struct kvs *s, struct conn *c)
{
	for (;;) {
		ssize_t r;
		switch (c->rstage) {
		case RD_HDR:
			r = rd(c->fd, c->hbuf + c->hgot, KVP_HDR_BYTES - c->hgot);
			if (r <= 0)
				return (int)r;
			c->hgot += (size_t)r;
			if (c->hgot < KVP_HDR_BYTES)
				continue;
			c->hgot = 0;
			if (kvp_hdr_decode(c->hbuf, 0, &c->hdr) || !op_allowed(c, c->hdr.op))
				return -EPROTO;
			c->mgot = 0;
			{
				size_t meta, data;
				int lr = kvp_req_layout(c->hdr.op, c->hdr.len, NULL, s->block_bytes,
							c->geom.layers, &meta, &data);
				if (lr < 0)
					return -EPROTO;
				if (lr == 1) {
					c->mlen = KVP_BATCH_HDR;
					c->rstage = RD_PREFIX;
				} else {
					c->mlen = meta;
					c->rstage = RD_META;
				}
			}
			if (grow((void **)&c->mbuf, &c->mcap, c->mlen ? c->mlen : 1, 1))
				return -ENOMEM;
			break;
		case RD_PREFIX:
		case RD_META:
			if (c->mgot < c->mlen) {
				r = rd(c->fd, c->mbuf + c->mgot, c->mlen - c->mgot);
				if (r <= 0)
					return (int)r;
				c->mgot += (size_t)r;
				if (c->mgot < c->mlen)
					continue;
			}
			if (c->rstage == RD_PREFIX) {
				size_t meta, data;
				if (kvp_req_layout(c->hdr.op, c->hdr.len, c->mbuf, s->block_bytes,
						   c->geom.layers, &meta, &data))
					return -EPROTO;
				if (c->hdr.op == KVP_OP_GET && data == 0 &&
				    (meta - KVP_BATCH_HDR) / KVP_ENT_HASH > 1 &&
				    (meta - KVP_BATCH_HDR) / KVP_ENT_HASH * s->block_bytes > KVP_MAX_DATA)
					return -EPROTO;   /* the answer would exceed max_data */
				if (grow((void **)&c->mbuf, &c->mcap, meta, 1))
					return -ENOMEM;
				c->mlen = meta;
				c->dlen = data;
				c->rstage = RD_META;
				continue;
			}
			if (c->hdr.op == KVP_OP_PUT) {
				s->st[KVP_ST_REQUESTS]++;
				int err = put_begin(s, c);
				if (err)
					return err;
				c->rstage = RD_DATA;
				continue;
			}
			c->rstage = RD_HDR;
			{
				int err = dispatch(s, c);
				if (err)
					return err;
			}
			if (c->iovcnt)
				return 0;   /* wait for the response to go out */
			break;
		case RD_DATA:
			while (c->dgot < c->dlen) {
				size_t bi = c->dgot / s->block_bytes, off = c->dgot % s->block_bytes;
				size_t want = s->block_bytes - off;
				uint8_t *dst;
				if (c->put_slot[bi] != NIL) {
					dst = slot_ptr(s, c->put_slot[bi]) + off;
				} else {
					dst = s->scratch;
					if (want > SCRATCH_BYTES)
						want = SCRATCH_BYTES;
				}
				r = rd(c->fd, dst, want);
				if (r <= 0)
					return (int)r;
				c->dgot += (size_t)r;
				s->st[KVP_ST_BYTES_IN] += (uint64_t)r;
			}
			c->rstage = RD_HDR;
			{
				int err = put_end(s, c);
				if (err)
					return err;
			}
			return 0;
		}
	}
}

static void conn_event(struct kvs *s, struct conn *c, uint32_t ev)
{
	int err = 0;
	if (c->want_out) {
		err = conn_flush(s, c);
		if (err < 0)
			goto fail;
		if (err == 0)
			return;
		if (c->closing) {
			conn_close(s, c, "refused");
			return;
		}
		if ((err = conn_events(s, c, false)))
			goto fail;
		/* Fall through: the socket may already hold the next request. */
	} else if (ev & (EPOLLERR | EPOLLHUP) && !(ev & EPOLLIN)) {
		err = -ECONNRESET;
		goto fail;
	}
	err = conn_read(s, c);
	if (err < 0)
		goto fail;
	if (c->want_out) {
		/* Try to send right away; most answers fit the socket buffer. */
		err = conn_flush(s, c);
		if (err < 0)
			goto fail;
		if (err == 1) {
			if (c->closing) {
				conn_close(s, c, "refused");
				return;
			}
			if ((err = conn_events(s, c, false)))
				goto fail;
		}
	}
	return;
fail:
	if (err == -EPROTO)
		s->st[KVP_ST_PROTO_ERRORS]++;
	if (err == -EACCES)
		s->st[KVP_ST_AUTH_FAILURES]++;
	conn_close(s, c, err == -ECONNRESET ? "peer closed" :
		   err == -EPROTO ? "protocol error" : strerror(-err));
}

static int conn_add(struct kvs *s, int fd, const char *peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	c->id = ++s->next_conn_id;
	c->state = ST_HELLO;
	c->nsidx = NIL;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;
		free(c);
		return err;
	}
	c->cnext = s->conns;
	if (s->conns)
		s->conns->cprev = c;
	s->conns = c;
	s->nconns++;
	s->st[KVP_ST_CONNS_TOTAL]++;
	logf_(s, c, "connected");
	return 0;
}

int kvs_adopt_fd(struct kvs *s, int fd)
{
	return conn_add(s, fd, "adopted");
}

static void accept_all(struct kvs *s, int lfd)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		char host[INET6_ADDRSTRLEN] = "?", port[8] = "?", peer[64];
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(peer, sizeof(peer), "%s:%s", host, port);
		if (conn_add(s, fd, peer))
			close(fd);
	}
}

/* ------------------------------------------------------------------ server */

int kvs_create(const struct kvs_config *cfg, struct kvs **out)
{
	if (!cfg || !out || cfg->block_bytes == 0 || cfg->block_bytes > KVP_MAX_BLOCK)
		return -EINVAL;
	if (cfg->geom && kv_geometry_block_bytes(cfg->geom) != cfg->block_bytes)
		return -EINVAL;
	if (cfg->secret_len > KVP_SECRET_MAX || (cfg->secret_len && !cfg->secret))
		return -EINVAL;
	size_t nslots = cfg->pool_bytes / cfg->block_bytes;
	if (nslots < 1 || nslots >= NIL / 2)
		return -EINVAL;
	struct kvs *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int err;
	s->cfg = *cfg;
	s->log = cfg->log;
	s->block_bytes = cfg->block_bytes;
	s->capacity = (uint32_t)nslots;
	if (cfg->geom) {
		s->geom = *cfg->geom;
		s->strict_geom = true;
	}
	if (cfg->secret_len) {
		memcpy(s->secret, cfg->secret, cfg->secret_len);
		s->secret_len = cfg->secret_len;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		err = -errno;
		goto err_free;
	}
	err = kv_region_alloc(nslots * cfg->block_bytes, cfg->region_flags, &s->region);
	if (err)
		goto err_ep;
	s->pool = s->region.addr;
	uint32_t nb = 1;
	while (nb < nslots * 2)
		nb <<= 1;
	s->bmask = nb - 1;
	s->ents = calloc(nslots, sizeof(*s->ents));
	s->buckets = malloc((size_t)nb * sizeof(*s->buckets));
	s->ns = calloc(MAX_NS, sizeof(*s->ns));
	if (!s->ents || !s->buckets || !s->ns) {
		err = -ENOMEM;
		goto err_ix;
	}
	memset(s->buckets, 0xff, (size_t)nb * sizeof(*s->buckets));
	for (uint32_t i = 0; i < nslots; i++) {
		s->ents[i].hnext = i + 1 < nslots ? i + 1 : NIL;
		s->ents[i].prev = s->ents[i].next = NIL;
	}
	s->free_head = 0;
	s->lru_head = s->lru_tail = NIL;
	if (cfg->rdma_dev) {
		/* The pool is registered once; clients get offsets into it. */
		err = kvr_dev_open(cfg->rdma_dev, &s->dev);
		if (!err) {
			err = kvr_mr_reg(&s->dev, s->pool, (size_t)s->capacity * s->block_bytes, &s->mr);
			if (err)
				kvr_dev_close(&s->dev);
		}
		if (err)
			goto err_ix;
		s->rdma = true;
	}
	s->t0_ns = now_ns();
	s->lease_ms = cfg->lease_ms ? cfg->lease_ms : 30000;
	*out = s;
	return 0;
err_ix:
	for (uint32_t i = 0; s->ents && i < s->capacity; i++)
		free(s->ents[i].chk);
	free(s->ents);
	free(s->buckets);
	free(s->ns);
	kv_region_free(&s->region);
err_ep:
	close(s->epfd);
err_free:
	free(s);
	return err;
}

int kvs_listen(struct kvs *s, const char *host, const char *port, int *port_out)
{
	if (s->nlisten >= MAX_LISTEN)
		return -ENOSPC;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(host && *host ? host : NULL, port, &hints, &ai);
	if (gai)
		return gai == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	int err = -EADDRNOTAVAIL, fd = -1;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return err;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	ev.data.u64 = (uint64_t)s->nlisten | (1ull << 63);
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		err = -errno;
		close(fd);
		return err;
	}
	s->lfd[s->nlisten++] = fd;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char hbuf[INET6_ADDRSTRLEN] = "?", pbuf[8] = "0";
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf, sizeof(pbuf),
			    NI_NUMERICHOST | NI_NUMERICSERV);
	if (port_out)
		*port_out = atoi(pbuf);
	logf_(s, NULL, "listening on %s:%s (pool %zu blocks of %zu bytes, %s%s%s)", hbuf, pbuf,
	      (size_t)s->capacity, s->block_bytes,
	      s->region.provider == KV_PROVIDER_KVMEM ? "kvmem region" : "mmap",
	      s->region.pinned ? ", pinned" : ", not pinned",
	      s->secret_len ? ", auth required" : "");
	return 0;
}

/*
 * A client that holds any one lease or grant (RDMA) or leaves a GET answer
 * unread for longer than lease_ms would keep those blocks from eviction
 * forever: its connection is closed, which destroys its QP before the
 * leases go, so a late RDMA can never touch a slot that was reused. Each
 * lease is timed on its own, so a client that keeps a stream of short
 * leases going (pipelined batches) is never cut off.
 */
static void sweep(struct kvs *s)
{
	uint64_t now = now_ms();
	if (now < s->next_sweep_ms)
		return;
	s->next_sweep_ms = now + 250;
	struct conn *c = s->conns, *next;
	for (; c; c = next) {
		next = c->cnext;
		if (c->pin_since && now - c->pin_since > s->lease_ms) {
			conn_close(s, c, "left an answer unread past the lease time");
			continue;
		}
		for (unsigned k = 0; k < c->nleases; k++)
			if (now - c->leases[k].since > s->lease_ms) {
				conn_close(s, c, "held a lease past the lease time");
				break;
			}
	}
}

int kvs_run_once(struct kvs *s, int timeout_ms)
{
	sweep(s);
	struct epoll_event ev[64];
	int n = epoll_wait(s->epfd, ev, 64, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 & (1ull << 63)) {
			accept_all(s, s->lfd[ev[i].data.u64 & 0xff]);
			continue;
		}
		conn_event(s, ev[i].data.ptr, ev[i].events);
	}
	return n;
}

int kvs_run(struct kvs *s, volatile sig_atomic_t *stop)
{
	while (!*stop) {
		int r = kvs_run_once(s, 200);
		if (r < 0)
			return r;
	}
	return 0;
}

void kvs_stats(struct kvs *s, uint64_t st[KVP_ST_COUNT])
{
	memcpy(st, s->st, sizeof(s->st));
	st[KVP_ST_POOL_BYTES] = (uint64_t)s->capacity * s->block_bytes;
	st[KVP_ST_BLOCK_BYTES] = s->block_bytes;
	st[KVP_ST_CAPACITY] = s->capacity;
	st[KVP_ST_BLOCKS] = s->nblocks;
	st[KVP_ST_CLIENTS] = s->nconns;
	uint64_t leases = 0, nns = 0;
	for (uint32_t i = 0; i < s->capacity; i++)
		leases += s->ents[i].refs;
	for (unsigned i = 0; i < s->nns; i++)
		nns += s->ns[i].blocks != 0;
	st[KVP_ST_LEASES] = leases;
	st[KVP_ST_NAMESPACES] = nns;
	st[KVP_ST_PROVIDER] = s->region.provider;
	st[KVP_ST_RDMA] = s->rdma;
	st[KVP_ST_UPTIME_MS] = (now_ns() - s->t0_ns) / 1000000;
}

unsigned kvs_nconns(struct kvs *s)
{
	return s->nconns;
}

void kvs_destroy(struct kvs *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_close(s, s->conns, "server shutting down");
	for (unsigned i = 0; i < s->nlisten; i++)
		close(s->lfd[i]);
	close(s->epfd);
	if (s->rdma) {
		kvr_mr_dereg(s->mr);
		kvr_dev_close(&s->dev);
	}
	kv_region_free(&s->region);
	for (uint32_t i = 0; s->ents && i < s->capacity; i++)
		free(s->ents[i].chk);
	free(s->ents);
	free(s->buckets);
	free(s->ns);
	free(s);
}
