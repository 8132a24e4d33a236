/* SPDX-License-Identifier: MIT */
/*
 * server.h - the memory server core behind `kvctl serve`: one pool of
 * fixed-size slots (a kvmem region when the module is loaded, else mmap),
 * an index keyed by (namespace, block hash) with LRU eviction, leases that
 * hold a block against eviction while a client reads it, optional
 * per-namespace quotas, HMAC challenge-response auth, and an epoll loop
 * serving any number of connections on one thread. A malformed message
 * closes its connection and nothing else.
 */
#ifndef KV_SERVER_H
#define KV_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kv.h"
#include "proto.h"

struct kvs_config {
	size_t pool_bytes;            /* rounded down to whole slots */
	size_t block_bytes;           /* clients must use this block size */
	const struct kv_geometry *geom; /* non-NULL: clients must match it exactly */
	const uint8_t *secret;        /* non-NULL: AUTH required */
	size_t secret_len;
	uint64_t ns_quota;            /* max blocks per namespace; 0: none */
	uint32_t region_flags;        /* kv_config flags for kv_region_alloc */
	const char *rdma_dev;         /* verbs device for RDMA clients; NULL: none */
	bool verify_commit;           /* RDMA COMMIT: check each block's checksum first */
	uint64_t lease_ms;            /* a connection holding leases (or an unread GET
					 answer) longer than this is closed; 0: 30000 */
	FILE *log;                    /* one line per connection event; NULL: silent */
};

struct kvs;

/* Allocate the pool and index. Returns 0 and sets *out, or -errno. */
int kvs_create(const struct kvs_config *cfg, struct kvs **out);

/*
 * Listen on host:port (port "0": any free port). Writes the bound port to
 * *port_out when non-NULL. Returns 0 or -errno. May be called more than once.
 */
int kvs_listen(struct kvs *s, const char *host, const char *port, int *port_out);

/* Serve an already connected stream socket (tests, fuzzing). Returns 0 or -errno. */
int kvs_adopt_fd(struct kvs *s, int fd);

/* Wait up to timeout_ms for events and handle them. Returns events handled or -errno. */
int kvs_run_once(struct kvs *s, int timeout_ms);

/* Serve until *stop becomes non-zero. Returns 0 or -errno. */
int kvs_run(struct kvs *s, volatile sig_atomic_t *stop);

/* Counters, indexed by enum kvp_stat. */
void kvs_stats(struct kvs *s, uint64_t st[KVP_ST_COUNT]);

/* Connections currently open. */
unsigned kvs_nconns(struct kvs *s);

/* Close every connection and free everything. s may be NULL. */
void kvs_destroy(struct kvs *s);

#endif /* KV_SERVER_H */
