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
#include <stdio.h>

#include "kv.h"
#include "util.h"

/*
 * models.c: a model, for what a hit is worth (the prefill it saves). Only
 * the figures below: the replay's own blocks keep its geometry options.
 */
struct kvr_model {
	const char *name, *label;   /* --model name, and as printed */
	uint32_t layers, q_heads, kv_heads;
	uint32_t d_qk, d_v;         /* attention head dims (q/k, v) */
	uint32_t kv_elems;          /* KV cache elements per token per layer */
	uint32_t kv_dtype_bytes;
	const char *kv_dtype;
	double active_params;       /* published active parameters per token */
	uint32_t hidden, vocab;     /* embedding table (and LM head unless tied) */
	int tied;
	const char *note;
};

/* By name ("llama-3-8b") or label ("Llama-3-8B"), any case; NULL if unknown. */
const struct kvr_model *kvr_model_find(const char *name);
/* One line per model of the table. */
void kvr_model_list(FILE *f);
/* Parameters every prompt token goes through: active - embedding - LM head. */
double kvr_model_matmul_params(const struct kvr_model *m);
/* KV cache bytes of one token (all layers). */
double kvr_model_kv_bytes_per_token(const struct kvr_model *m);
/* Prefill FLOPs of the prompt tokens at positions [a, b) (0-based). */
double kvr_model_prefill_flops(const struct kvr_model *m, uint64_t a, uint64_t b);

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
	/* --trace: replay a request trace instead of the generator */
	const char *trace;
	bool realtime;           /* honour the trace's arrival times */
	double speed;            /* --realtime's speed factor (2: twice as fast) */
	uint64_t capacity_blocks; /* host pool of exactly this many slots (0: host_bytes) */
	const struct kvr_model *model;   /* --model: what the hits are worth */
	double gpu_tflops;               /* --gpu-tflops: throughput of the recompute */
	bool requests_set, host_bytes_set, block_tokens_set;
};

struct replay_counters {
	uint64_t requests, prompt_tokens, full_blocks;
	uint64_t lookup_blocks, lookup_tier[4];     /* leading blocks kv_lookup found */
	uint64_t served_blocks, served_tier[4];     /* blocks actually loaded, by lookup tier */
	uint64_t reusable_blocks;                   /* leading blocks ever stored */
	uint64_t hit_tokens, hit_tokens_tier[4];    /* served blocks x block tokens, capped at
						       the request's input length, by lookup tier */
	uint64_t reusable_tokens;                   /* what an unbounded cache would serve */
	uint64_t late_max_ns, late_sum_ns;          /* --realtime: starts behind the arrival */
	double saved_flops_tier[4];                 /* --model's prefill FLOPs of the hits */
	uint64_t load_ns_tier[4], load_bytes_tier[4]; /* loads, by the slowest tier they read */
	uint64_t computed_blocks, stored_blocks;
	uint64_t load_misses;                       /* loads cut short by -ENOENT/-EBADMSG */
	uint64_t load_errors, store_errors;         /* other errors (not verification) */
	uint64_t verified_blocks, verify_failures, canary_failures, corrupted;
	uint64_t loads, stores, eagain, prefetches, prefetched_blocks;
	uint64_t bytes_loaded, bytes_stored;
	uint64_t fill_ns, check_ns, hash_ns;        /* the tool's own work */
	uint64_t conversations[3];                  /* generator: chats, agent loops, one-shot */
};

/*
 * replay_trace.c: a request trace in the Mooncake FAST'25 JSONL format. The
 * requests are kept in timestamp order (file order among equal timestamps).
 */
struct replay_trace_req {
	double ts_ms;          /* arrival, ms from the trace's start */
	uint64_t input_len;    /* prompt tokens */
	uint64_t output_len;
	size_t first;          /* its first id in replay_trace.ids */
	uint32_t nids;         /* hash_ids given */
	uint32_t nblk;         /* full blocks named: min(nids, input_len / block_tokens) */
	uint32_t line;         /* line in the file */
};

struct replay_trace {
	const char *path;
	struct replay_trace_req *req;
	size_t n;
	uint64_t *ids;
	size_t nids;
	uint32_t block_tokens;
	/* Set by replay_trace_limit() over the requests kept: */
	uint64_t input_tokens;
	uint32_t max_blocks;
	uint64_t partial;      /* requests with a trailing id not named (partial block) */
	/* Set by replay_trace_unbounded(): */
	uint64_t unbounded_tokens;
};

/*
 * Read the trace at path ("-": stdin). A malformed line is reported on
 * stderr as "kvctl: replay: PATH:LINE:COL: what" and fails the load.
 * Returns 0, -EINVAL (malformed or empty), -ENOMEM, or open/read's -errno.
 */
int replay_trace_load(const char *path, uint32_t block_tokens, struct replay_trace *t);
/* Keep the first n requests (in timestamp order) and total them up. */
void replay_trace_limit(struct replay_trace *t, size_t n);
/*
 * Name request i's full blocks into out (nblk entries), chained from root;
 * words is scratch for 2 * nblk uint32. Returns the count named.
 */
size_t replay_trace_names(const struct replay_trace *t, kv_hash root, size_t i,
			  uint32_t *words, kv_hash *out);
/*
 * The token hits of an unbounded cache over the kept requests, in
 * timestamp order: each request's leading blocks stored before, capped at
 * its input length. Sets t->unbounded_tokens; returns 0 or -ENOMEM.
 */
int replay_trace_unbounded(struct replay_trace *t, kv_hash root);
void replay_trace_free(struct replay_trace *t);

/*
 * replay_gen.c: the built-in workload. Many conversations share a few long
 * system prompts; chats resend their whole history each turn, agent loops
 * append tool output, one-shot requests share only the system prompt. The
 * sequence of requests and every token depend on the seed alone.
 */
struct tokbuf {
	uint32_t *t;
	size_t n, cap;
};

enum conv_kind { CONV_CHAT, CONV_AGENT, CONV_ONESHOT, CONV_KINDS };

struct conv {
	enum conv_kind kind;
	struct kvu_rng rng;
	struct tokbuf hist;    /* everything sent and generated so far */
	size_t staged;         /* tokens of the next turn appended but not sent */
	uint32_t turns_left;
	bool busy;             /* a request of it is in flight */
	bool ended;            /* restart at its next pick */
};

struct workload {
	struct kvu_rng rng;
	uint32_t *recent;      /* conversations of the last nrecent picks */
	uint32_t nrecent, recent_pos;
	int64_t next;          /* picked conversation not yet issued, or -1 */
	struct tokbuf *sys;    /* system prompts */
	uint32_t nsys;
	struct conv *convs;
	uint32_t nconv;
	uint64_t max_tokens;
	uint64_t started[CONV_KINDS];
};

int workload_init(struct workload *w, const struct replay_opts *o);
void workload_free(struct workload *w);
/* The next conversation to send a turn (kept until workload_issued()). */
struct conv *workload_pick(struct workload *w);
void workload_issued(struct workload *w);
/* (Re)start c with a system prompt. Returns 0 or -ENOMEM. */
int conv_start(struct workload *w, struct conv *c);
/* Stage c's next turn. Returns 0, -ENOSPC (it would outgrow max_tokens), -ENOMEM. */
int conv_stage(struct workload *w, struct conv *c);
/* c's turn was answered: append the reply. Returns 0 or -ENOMEM. */
int conv_answered(struct workload *w, struct conv *c);

/* Everything a report is made of. */
struct replay_report {
	const struct replay_opts *o;
	const struct replay_counters *c;
	const struct kv_stats *st;
	size_t block_bytes;
	double secs;
	const struct replay_trace *trace;   /* NULL: the built-in generator */
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
