/* SPDX-License-Identifier: MIT */
/*
 * remote.h - the remote tier (tier 3): memory servers (`kvctl serve`) on
 * other nodes, reached over TCP (block bytes straight between the socket
 * and the host slot) or RDMA verbs where both sides have a device.
 *
 * Placement: rendezvous hashing of each block over the live peers, with a
 * replica count. Batches are split per peer. Every block read is checked
 * against its checksum before it is reported. A peer that is down, dies or
 * stops answering turns its blocks into misses / failed stores within the
 * timeout; it is retried with exponential backoff.
 */
#ifndef KV_REMOTE_H
#define KV_REMOTE_H

#include <stdint.h>

#include "kv.h"
#include "tier.h"

enum kv_remote_flags {
	KV_REMOTE_NO_RDMA = 1u << 0,  /* TCP even where verbs would work */
	KV_REMOTE_QUIET = 1u << 1,    /* no warnings on stderr */
};

struct kv_remote_opts {
	const char *peers;            /* "host:port,host:port" (IPv6: [addr]:port) */
	struct kv_geometry geom;
	kv_hash ns_root;
	const struct kv_tier_pool *pool; /* registered once for RDMA; may be NULL for TCP */
	uint32_t flags;               /* enum kv_remote_flags */
	int timeout_ms;               /* bound on each batch; <= 0: 2000 */
	unsigned replicas;            /* copies of each block; 0: 1 */
	const char *auth_file;        /* shared secret for servers that ask; NULL: none */
	const char *name;             /* client name shown in server logs; NULL: "libkv" */
	const char *rdma_dev;         /* verbs device; NULL: first one found */
};

/*
 * Check a peers list: one or more comma-separated "host:port" / "[v6]:port"
 * entries (leading spaces ignored), each with a non-empty host and a port in
 * 1..65535, at most 64; no empty entry. Returns 0 or -EINVAL.
 */
int kv_remote_peers_check(const char *peers);

/*
 * Open the remote tier (kv_open fills o from struct kv_config). Peers need
 * not be up: they are connected lazily and retried. Returns 0 and fills
 * *out, or -EINVAL (bad peers list or geometry), -ENOMEM, or the error
 * reading the auth file.
 */
int kv_remote_tier_open_opts(const struct kv_remote_opts *o, struct kv_tier_ops *out);

/*
 * Per-peer view for tests and `kvctl`: index of the peer a block's first
 * replica goes to among all configured peers (ignoring liveness), or -1.
 */
int kv_remote_placement(const struct kv_tier_ops *t, kv_hash h);

/* Whether peer i is currently considered up (1), down (0), or -1 if no such peer. */
int kv_remote_peer_up(const struct kv_tier_ops *t, unsigned i);

/* Blocks moved over RDMA so far (0: everything went over TCP). */
uint64_t kv_remote_rdma_blocks(const struct kv_tier_ops *t);

/*
 * Peers that refused this client for good (wrong secret, namespace,
 * geometry or protocol version: never retried), and in *npeers how many
 * were configured.
 */
unsigned kv_remote_refused(const struct kv_tier_ops *t, unsigned *npeers);

/*
 * Control answers the verbs path waited for, and (in *calls) its put/get
 * calls: one each (GRANT, LEASE) since COMMIT and RELEASE answers are read
 * with the next request instead of waited for (tests).
 */
uint64_t kv_remote_ctl_waits(const struct kv_tier_ops *t, uint64_t *calls);

/*
 * Fetch a server's counters (enum kvp_stat order) with an admin hello.
 * Returns how many it sent, or -errno; a refusal's reason, if the server
 * gave one, goes to why (wlen bytes, may be NULL). Prints nothing.
 */
int kv_remote_server_stats(const char *hostport, const char *auth_file, int timeout_ms,
			   uint64_t *st, unsigned max, char *why, size_t wlen);

#endif /* KV_REMOTE_H */
