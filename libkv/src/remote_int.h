/* SPDX-License-Identifier: MIT */
/*
 * remote_int.h - the remote tier client's state, shared by remote.c
 * (peers, connections, placement, the TCP path) and remote_rdma_client.c
 * (the verbs path). Not part of any public interface.
 */
#ifndef KV_REMOTE_INT_H
#define KV_REMOTE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "proto.h"
#include "remote.h"
#include "remote_rdma.h"
#include "tier.h"

#define MAX_PEERS 64
#define MAX_IDLE 8

/*
 * Verify a block received for io->h against the check values the peer sent
 * with it (at p, little-endian), recomputed over the name asked for; on a
 * match the values go to io->check. Returns 0 or -EBADMSG (counted).
 */
struct remote;
int kvc_verify(struct remote *r, struct kv_tier_io *io, const uint8_t *p);

/*
 * A closing request (COMMIT, RELEASE) whose answer is read later: at the
 * connection's next request, after that request is on the wire, so the
 * server answers both without an idle round trip between calls.
 */
#define KVC_MAX_DEFERRED 4
struct kvc_deferred {
	uint64_t id;
	uint16_t op;
	uint32_t n;
};

struct rconn {
	int fd;
	bool rdma;             /* QP connected: put/get go over verbs */
	struct kvc_deferred pend[KVC_MAX_DEFERRED];
	unsigned npend;
	struct kvr_qp qp;
	uint64_t raddr;        /* server pool base */
	uint32_t rkey;
	uint32_t max_msg;      /* min of both devices */
};

struct rpeer {
	char host[256];
	char port[16];
	char label[280];
	uint64_t seed;
	pthread_mutex_t mu;
	struct rconn *idle[MAX_IDLE];
	unsigned nidle;
	bool down;
	int refused;            /* -EACCES / -EPROTONOSUPPORT: it refused this client for
				   good (secret, namespace, geometry, version): never retried */
	uint64_t retry_at;      /* ns, CLOCK_MONOTONIC */
	uint32_t backoff_ms;
	uint32_t max_batch;
	uint32_t max_data;
	uint64_t capacity;      /* blocks, from the last HELLO reply */
};

struct remote {
	struct kv_remote_opts o;
	size_t block_bytes;
	struct kv_check_shape shape;  /* check values per block: shape.layers */
	unsigned npeers;
	unsigned replicas;
	int timeout_ms;
	uint8_t secret[KVP_SECRET_MAX];
	int secret_len;
	char name[KVP_NAME_BYTES];
	atomic_uint_fast64_t req_id;
	struct rpeer peer[MAX_PEERS];
	bool rdma;                    /* device open and pool registered */
	struct kvr_dev dev;
	struct ibv_mr *mr;
	uint8_t *pool_base;
	size_t pool_len;
	atomic_bool rdma_warned;
	atomic_uint_fast64_t hits, misses, bytes_in, bytes_out, failures, verify_failures, stored;
	atomic_uint_fast64_t rdma_blocks;    /* blocks moved by RDMA READ/WRITE */
	atomic_uint_fast64_t ctl_waits;      /* control answers waited for (verbs path) */
	atomic_uint npeers_refused;          /* peers with refused set */
	atomic_uint_fast64_t ctl_calls;      /* verbs put/get calls */
};

/*
 * Set up the verbs QP of a freshly opened connection (RDMA_CONNECT over
 * its control stream). On a verbs failure the connection stays TCP (one
 * warning per tier); if the control stream broke, c->fd is closed and set
 * to -1.
 */
void kvc_rdma_setup(struct remote *r, struct rpeer *p, struct rconn *c, uint64_t deadline);

/*
 * Read the answers of c's deferred requests, in order, checking each (a
 * COMMIT that failed is counted in the tier's failures: the block is not
 * there). Returns 0, or -errno when the stream broke (drop the connection).
 */
int kvc_deferred_drain(struct remote *r, struct rconn *c, uint64_t deadline);

/* Whether every io[idx[k]].buf lies in the registered pool (else the batch goes over TCP). */
bool kvc_rdma_bufs_ok(struct remote *r, struct kv_tier_io *io, const size_t *idx, size_t n);

/*
 * Store io[idx[0..n)] through c: GRANT, RDMA WRITE, COMMIT. res[k] gets
 * each block's result (0 stored or already there, -ENOSPC, ...). Returns 0,
 * or -errno when the connection failed (it must then be dropped).
 */
int kvc_rdma_put(struct remote *r, struct rconn *c, struct kv_tier_io *io, const size_t *idx,
		 size_t n, int32_t *res, uint64_t deadline);

/*
 * Load io[idx[0..n)] through c: LEASE, RDMA READ, verify each block's
 * check values against the name asked for as its READs complete, RELEASE.
 * res[k]: 0, -ENOENT, -EBADMSG.
 * Returns 0, or -errno when the connection failed (leases die with it).
 */
int kvc_rdma_get(struct remote *r, struct rconn *c, struct kv_tier_io *io, const size_t *idx,
		 size_t n, int32_t *res, uint64_t deadline);

#endif /* KV_REMOTE_INT_H */
