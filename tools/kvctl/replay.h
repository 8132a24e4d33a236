/* SPDX-License-Identifier: MIT */
/*
 * replay.h - the parts of `kvctl replay` shared between its files:
 * cmd_replay.c (options, the request engine), replay_report.c (the text and
 * JSON reports) and the hash set of every block name ever stored.
 */
#ifndef KVCTL_REPLAY_H
#define KVCTL_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

struct replay_opts {
	uint64_t requests;
	uint64_t seed;
	size_t host_bytes;
	uint32_t layout;
	struct kv_geometry g;
	const char *disk;
	size_t disk_bytes;
	const char *peers;
	uint64_t replicas;       /* remote tier (0: library default) */
	uint64_t remote_timeout_ms;
	const char *auth_file;
	const char *rdma_dev;
	bool no_rdma;
	uint64_t inflight;
	uint64_t queue_depth;
	uint64_t engine_blocks;
	uint64_t max_tokens;
	uint64_t conversations;
	uint64_t system_prompts;
	uint64_t workers;
	uint64_t corrupt_every;  /* test of the checker: spoil every Nth loaded block */
	uint32_t admit;          /* enum kv_admit */
	bool prefetch;           /* kv_prefetch lower-tier hits before loading */
	bool reformat;
	bool verify_host;
	bool json;
	bool quiet;
};

struct replay_counters {
	uint64_t requests, prompt_tokens, full_blocks;
	uint64_t lookup_blocks, lookup_tier[4];     /* leading blocks kv_lookup found */
	uint64_t served_blocks, served_tier[4];     /* blocks actually loaded, by lookup tier */
	uint64_t reusable_blocks;                   /* leading blocks ever stored */
	uint64_t computed_blocks, stored_blocks;
	uint64_t load_misses;                       /* loads cut short by -ENOENT/-EBADMSG */
	uint64_t load_errors, store_errors;         /* other errors (not verification) */
	uint64_t verified_blocks, verify_failures, canary_failures, corrupted;
	uint64_t loads, stores, eagain, prefetches, prefetched_blocks;
	uint64_t bytes_loaded, bytes_stored;
	uint64_t fill_ns, check_ns, hash_ns;        /* the tool's own work */
	uint64_t conversations[3];                  /* generator: chats, agent loops, one-shot */
};

/* Everything a report is made of. */
struct replay_report {
	const struct replay_opts *o;
	const struct replay_counters *c;
	const struct kv_stats *st;
	size_t block_bytes;
	double secs;
};

/* replay_report.c: the report on stdout, as text or as one JSON object. */
void replay_print_text(const struct replay_report *rp);
void replay_print_json(const struct replay_report *rp);

/* A set of block names (open addressing); zero-initialise, then add. */
struct kvr_hset {
	kv_hash *slot;
	size_t cap, n;
};

bool kvr_hset_has(const struct kvr_hset *s, kv_hash h);
/* Returns 0 or -ENOMEM. */
int kvr_hset_add(struct kvr_hset *s, kv_hash h);
void kvr_hset_free(struct kvr_hset *s);

#endif /* KVCTL_REPLAY_H */
