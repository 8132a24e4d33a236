// SPDX-License-Identifier: MIT
/*
 * replay_report.c - the report of `kvctl replay`: a text summary, or one
 * JSON object (--json) with the same figures and more.
 */
#include <stdio.h>

#include "kv.h"
#include "replay.h"
#include "util.h"

/* What tier t's hits are worth; false if it had none. */
struct worth {
	double tokens, flops, recompute_s, kv_bytes, bw, load_s;   /* bw 0: not measured */
};

static bool tier_worth(const struct replay_report *rp, int t, struct worth *w)
{
	const struct replay_opts *o = rp->o;
	const struct replay_counters *c = rp->c;

	w->tokens = (double)c->hit_tokens_tier[t];
	w->flops = c->saved_flops_tier[t];
	w->recompute_s = w->flops / (o->gpu_tflops * 1e12);
	w->kv_bytes = w->tokens * kvr_model_kv_bytes_per_token(o->model);
	w->bw = c->load_ns_tier[t] ? c->load_bytes_tier[t] / (c->load_ns_tier[t] / 1e9) : 0;
	w->load_s = w->bw > 0 ? w->kv_bytes / w->bw : 0;
	return c->hit_tokens_tier[t] > 0;
}

static void print_worth_text(const struct replay_report *rp)
{
	const struct replay_opts *o = rp->o;
	const struct kvr_model *m = o->model;
	double flops = 0;
	char b1[32];

	for (int t = KV_TIER_HOST; t <= KV_TIER_REMOTE; t++)
		flops += rp->c->saved_flops_tier[t];
	printf("  worth        as %s (KV %s %s/token, %.2fB matmul params): the hits save %.3g prefill FLOPs = %.3f GPU-s at %g TFLOPS\n",
	       m->label, m->kv_dtype, kvu_fmt_bytes(b1, sizeof(b1), kvr_model_kv_bytes_per_token(m)),
	       kvr_model_matmul_params(m) / 1e9, flops, flops / (o->gpu_tflops * 1e12), o->gpu_tflops);
	for (int t = KV_TIER_HOST; t <= KV_TIER_REMOTE; t++) {
		struct worth w;

		if (!tier_worth(rp, t, &w))
			continue;
		printf("  %-12s %.0f tokens: recompute %.3f GPU-s; load %s of %s KV",
		       t == KV_TIER_HOST ? "host hits" : t == KV_TIER_DISK ? "disk hits" : "remote hits",
		       w.tokens, w.recompute_s, kvu_fmt_bytes(b1, sizeof(b1), w.kv_bytes), m->label);
		if (w.bw <= 0) {
			printf(" (no load timed)\n");
			continue;
		}
		printf(" at %.2f GB/s (measured) = %.3f s: ", w.bw / 1e9, w.load_s);
		if (w.load_s > w.recompute_s)
			printf("LOADING COSTS %.1fx MORE THAN RECOMPUTING\n", w.load_s / w.recompute_s);
		else
			printf("loading is %.1fx faster than recomputing\n",
			       w.load_s > 0 ? w.recompute_s / w.load_s : 0.0);
	}
}

static void print_worth_json(FILE *f, const struct replay_report *rp)
{
	const struct replay_opts *o = rp->o;
	const struct kvr_model *m = o->model;
	static const char *const names[] = { NULL, "host", "disk", "remote" };
	double flops = 0;

	for (int t = KV_TIER_HOST; t <= KV_TIER_REMOTE; t++)
		flops += rp->c->saved_flops_tier[t];
	fputs("\"worth\":{\"model\":", f);
	kvu_json_str(f, m->name);
	fprintf(f, ",\"layers\":%u,\"q_heads\":%u,\"kv_heads\":%u,\"d_qk\":%u,\"d_v\":%u,"
		"\"kv_dtype\":\"%s\",\"kv_bytes_per_token\":%.0f,\"active_params\":%.6g,"
		"\"matmul_params\":%.6g,\"gpu_tflops\":%g,\"saved_flops\":%.17g,"
		"\"saved_gpu_seconds\":%.6f,\"by_tier\":{",
		m->layers, m->q_heads, m->kv_heads, m->d_qk, m->d_v, m->kv_dtype,
		kvr_model_kv_bytes_per_token(m), m->active_params, kvr_model_matmul_params(m),
		o->gpu_tflops, flops, flops / (o->gpu_tflops * 1e12));
	for (int t = KV_TIER_HOST; t <= KV_TIER_REMOTE; t++) {
		struct worth w;

		tier_worth(rp, t, &w);
		fprintf(f, "%s\"%s\":{\"hit_tokens\":%.0f,\"flops\":%.17g,\"recompute_seconds\":%.6f,"
			"\"kv_bytes\":%.0f,\"measured_bytes_per_s\":",
			t > KV_TIER_HOST ? "," : "", names[t], w.tokens, w.flops, w.recompute_s, w.kv_bytes);
		if (w.bw > 0)
			fprintf(f, "%.1f,\"load_seconds\":%.6f,\"load_costs_more\":%s}", w.bw, w.load_s,
				w.load_s > w.recompute_s ? "true" : "false");
		else
			fputs("null,\"load_seconds\":null,\"load_costs_more\":null}", f);
	}
	fputs("}},", f);
}

void replay_print_text(const struct replay_report *rp)
{
	const struct replay_opts *o = rp->o;
	const struct replay_counters *c = rp->c;
	const struct kv_stats *st = rp->st;
	double secs = rp->secs;
	uint32_t bt = o->g.block_tokens;
	char b1[32], b2[32], b3[32];
	double pt = c->prompt_tokens ? (double)c->prompt_tokens : 1;
	uint64_t moved = c->bytes_loaded + c->bytes_stored;

	printf("kvctl replay: %llu requests, seed %llu, layout %s\n",
	       (unsigned long long)c->requests, (unsigned long long)o->seed,
	       kvu_layout_name(o->layout));
	printf("  geometry     %u layers x %u planes x %u tokens x %u heads x %u dim %s = %s/block\n",
	       o->g.layers, o->g.planes, bt, o->g.kv_heads, o->g.head_dim,
	       kvu_dtype_name(o->g.dtype), kvu_fmt_bytes(b1, sizeof(b1), (double)rp->block_bytes));
	printf("  tiers        host %s (%llu blocks%s), disk %s, peers %s\n",
	       kvu_fmt_bytes(b2, sizeof(b2), (double)o->host_bytes),
	       (unsigned long long)st->tier[KV_TIER_HOST].capacity,
	       st->host_pinned ? ", pinned" : "",
	       o->disk ? o->disk : "none", o->peers ? o->peers : "none");
	if (rp->trace) {
		const struct replay_trace *t = rp->trace;

		printf("  trace        %s: %zu requests over %.1f s of arrivals, %llu with a partial last block (not named); %s",
		       t->path, t->n, t->req[t->n - 1].ts_ms / 1e3,
		       (unsigned long long)t->partial, o->realtime ? "realtime" : "as fast as possible");
		if (o->realtime)
			printf(" x%g, starts late by %.1f ms at most, %.2f ms on average",
			       o->speed, c->late_max_ns / 1e6,
			       c->requests ? c->late_sum_ns / 1e6 / c->requests : 0.0);
		printf("; %llu in flight, queue depth %llu\n",
		       (unsigned long long)o->inflight, (unsigned long long)o->queue_depth);
	} else {
		printf("  workload     %llu chats, %llu agent loops, %llu one-shot; %llu in flight, queue depth %llu\n",
		       (unsigned long long)c->conversations[0],
		       (unsigned long long)c->conversations[1],
		       (unsigned long long)c->conversations[2],
		       (unsigned long long)o->inflight, (unsigned long long)o->queue_depth);
	}
	printf("  prompt       %llu tokens (%llu full blocks)\n",
	       (unsigned long long)c->prompt_tokens, (unsigned long long)c->full_blocks);
	printf("  from cache   %llu tokens = %.2f%% token hit rate; by lookup tier: host %llu (%.2f%%), disk %llu (%.2f%%), remote %llu (%.2f%%)\n",
	       (unsigned long long)c->hit_tokens, 100.0 * c->hit_tokens / pt,
	       (unsigned long long)c->hit_tokens_tier[KV_TIER_HOST],
	       100.0 * c->hit_tokens_tier[KV_TIER_HOST] / pt,
	       (unsigned long long)c->hit_tokens_tier[KV_TIER_DISK],
	       100.0 * c->hit_tokens_tier[KV_TIER_DISK] / pt,
	       (unsigned long long)c->hit_tokens_tier[KV_TIER_REMOTE],
	       100.0 * c->hit_tokens_tier[KV_TIER_REMOTE] / pt);
	printf("  unbounded    %llu tokens = %.2f%% (what an unbounded cache would serve%s)\n",
	       (unsigned long long)c->reusable_tokens, 100.0 * c->reusable_tokens / pt,
	       rp->trace ? ", in timestamp order" : "");
	printf("  lookups      %llu blocks present (host %llu, disk %llu, remote %llu); %llu loads cut short (miss), %llu load errors\n",
	       (unsigned long long)c->lookup_blocks,
	       (unsigned long long)c->lookup_tier[KV_TIER_HOST],
	       (unsigned long long)c->lookup_tier[KV_TIER_DISK],
	       (unsigned long long)c->lookup_tier[KV_TIER_REMOTE],
	       (unsigned long long)c->load_misses, (unsigned long long)c->load_errors);
	printf("  computed     %llu blocks; stored %llu (%llu already present, %llu stores short); %llu -EAGAIN retries\n",
	       (unsigned long long)c->computed_blocks, (unsigned long long)c->stored_blocks,
	       (unsigned long long)st->store_dedup, (unsigned long long)c->store_errors,
	       (unsigned long long)c->eagain);
	if (c->prefetches)
		printf("  prefetch     %llu kv_prefetch calls brought %llu blocks up to host memory\n",
		       (unsigned long long)c->prefetches, (unsigned long long)c->prefetched_blocks);
	printf("  moved        %s loaded + %s stored = %s\n",
	       kvu_fmt_bytes(b1, sizeof(b1), (double)c->bytes_loaded),
	       kvu_fmt_bytes(b2, sizeof(b2), (double)c->bytes_stored),
	       kvu_fmt_bytes(b3, sizeof(b3), (double)moved));
	for (int t = KV_TIER_HOST; t <= KV_TIER_REMOTE; t++) {
		const struct kv_tier_stats *ts = &st->tier[t];

		if (!ts->capacity && !ts->bytes_in && !ts->hits)
			continue;
		printf("  %-12s %llu/%llu blocks, %llu hits, %llu evictions, in %s, out %s, %llu failures, %llu bad checksums\n",
		       kv_tier_name(t), (unsigned long long)ts->blocks,
		       (unsigned long long)ts->capacity, (unsigned long long)ts->hits,
		       (unsigned long long)ts->evictions,
		       kvu_fmt_bytes(b1, sizeof(b1), (double)ts->bytes_in),
		       kvu_fmt_bytes(b2, sizeof(b2), (double)ts->bytes_out),
		       (unsigned long long)ts->failures, (unsigned long long)ts->verify_failures);
	}
	print_worth_text(rp);
	printf("  throughput   %.1f requests/s, %.0f prompt tokens/s, %.2f GB/s loaded+stored (%.2f s)\n",
	       c->requests / secs, c->prompt_tokens / secs, moved / secs / 1e9, secs);
	printf("  tool's work  hashing %.3f s, filling computed blocks %.2f s, checking loads %.2f s\n",
	       c->hash_ns / 1e9, c->fill_ns / 1e9, c->check_ns / 1e9);
	printf("  verification %llu failures (%llu loaded blocks checked byte for byte",
	       (unsigned long long)c->verify_failures, (unsigned long long)c->verified_blocks);
	if (c->corrupted)
		printf("; %llu spoiled on purpose", (unsigned long long)c->corrupted);
	printf(")\n");
}

static void json_tier(FILE *f, const char *name, const struct kv_tier_stats *t, int last)
{
	fprintf(f, "\"%s\":{\"blocks\":%llu,\"capacity\":%llu,\"hits\":%llu,\"misses\":%llu,"
		"\"evictions\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,\"failures\":%llu,"
		"\"verify_failures\":%llu}%s",
		name, (unsigned long long)t->blocks, (unsigned long long)t->capacity,
		(unsigned long long)t->hits, (unsigned long long)t->misses,
		(unsigned long long)t->evictions, (unsigned long long)t->bytes_in,
		(unsigned long long)t->bytes_out, (unsigned long long)t->failures,
		(unsigned long long)t->verify_failures, last ? "" : ",");
}

void replay_print_json(const struct replay_report *rp)
{
	const struct replay_opts *o = rp->o;
	const struct replay_counters *c = rp->c;
	const struct kv_stats *st = rp->st;
	double secs = rp->secs;
	double pt = c->prompt_tokens ? (double)c->prompt_tokens : 1;
	uint64_t moved = c->bytes_loaded + c->bytes_stored;
	FILE *f = stdout;

	fprintf(f, "{\"command\":\"replay\",\"requests\":%llu,\"seed\":%llu,\"layout\":",
		(unsigned long long)c->requests, (unsigned long long)o->seed);
	kvu_json_str(f, kvu_layout_name(o->layout));
	fprintf(f, ",\"geometry\":{\"layers\":%u,\"planes\":%u,\"block_tokens\":%u,"
		"\"kv_heads\":%u,\"head_dim\":%u,\"dtype\":\"%s\"},\"block_bytes\":%zu,",
		o->g.layers, o->g.planes, o->g.block_tokens, o->g.kv_heads, o->g.head_dim,
		kvu_dtype_name(o->g.dtype), rp->block_bytes);
	fprintf(f, "\"host_bytes\":%zu,\"disk\":", o->host_bytes);
	if (o->disk)
		kvu_json_str(f, o->disk);
	else
		fputs("null", f);
	fputs(",\"peers\":", f);
	if (o->peers)
		kvu_json_str(f, o->peers);
	else
		fputs("null", f);
	fprintf(f, ",\"inflight\":%llu,\"queue_depth\":%llu,",
		(unsigned long long)o->inflight, (unsigned long long)o->queue_depth);
	fprintf(f, "\"conversations\":{\"chat\":%llu,\"agent\":%llu,\"oneshot\":%llu},",
		(unsigned long long)c->conversations[0],
		(unsigned long long)c->conversations[1],
		(unsigned long long)c->conversations[2]);
	fputs("\"trace\":", f);
	if (rp->trace) {
		const struct replay_trace *t = rp->trace;

		fputs("{\"path\":", f);
		kvu_json_str(f, t->path);
		fprintf(f, ",\"requests\":%zu,\"last_arrival_ms\":%.3f,\"partial_last_blocks\":%llu,"
			"\"realtime\":%s,\"speed\":%g,\"late_max_ms\":%.3f,\"late_mean_ms\":%.3f},",
			t->n, t->req[t->n - 1].ts_ms, (unsigned long long)t->partial,
			o->realtime ? "true" : "false", o->speed, c->late_max_ns / 1e6,
			c->requests ? c->late_sum_ns / 1e6 / c->requests : 0.0);
	} else {
		fputs("null,", f);
	}
	fprintf(f, "\"capacity_blocks\":%llu,", (unsigned long long)o->capacity_blocks);
	fprintf(f, "\"prompt_tokens\":%llu,\"full_blocks\":%llu,\"cached_tokens\":%llu,"
		"\"cached_tokens_by_tier\":{\"host\":%llu,\"disk\":%llu,\"remote\":%llu},"
		"\"hit_rate\":%.6f,\"hit_rate_by_tier\":{\"host\":%.6f,\"disk\":%.6f,\"remote\":%.6f},"
		"\"reusable_tokens\":%llu,\"reusable_rate\":%.6f,",
		(unsigned long long)c->prompt_tokens, (unsigned long long)c->full_blocks,
		(unsigned long long)c->hit_tokens,
		(unsigned long long)c->hit_tokens_tier[KV_TIER_HOST],
		(unsigned long long)c->hit_tokens_tier[KV_TIER_DISK],
		(unsigned long long)c->hit_tokens_tier[KV_TIER_REMOTE],
		c->hit_tokens / pt, c->hit_tokens_tier[KV_TIER_HOST] / pt,
		c->hit_tokens_tier[KV_TIER_DISK] / pt, c->hit_tokens_tier[KV_TIER_REMOTE] / pt,
		(unsigned long long)c->reusable_tokens, c->reusable_tokens / pt);
	fprintf(f, "\"lookup_blocks\":%llu,\"lookup_blocks_by_tier\":{\"host\":%llu,\"disk\":%llu,\"remote\":%llu},",
		(unsigned long long)c->lookup_blocks,
		(unsigned long long)c->lookup_tier[KV_TIER_HOST],
		(unsigned long long)c->lookup_tier[KV_TIER_DISK],
		(unsigned long long)c->lookup_tier[KV_TIER_REMOTE]);
	fprintf(f, "\"loads\":%llu,\"stores\":%llu,\"load_misses\":%llu,\"load_errors\":%llu,"
		"\"store_errors\":%llu,\"eagain\":%llu,\"computed_blocks\":%llu,\"stored_blocks\":%llu,",
		(unsigned long long)c->loads, (unsigned long long)c->stores,
		(unsigned long long)c->load_misses, (unsigned long long)c->load_errors,
		(unsigned long long)c->store_errors, (unsigned long long)c->eagain,
		(unsigned long long)c->computed_blocks, (unsigned long long)c->stored_blocks);
	fprintf(f, "\"bytes_loaded\":%llu,\"bytes_stored\":%llu,\"seconds\":%.6f,"
		"\"requests_per_s\":%.3f,\"tokens_per_s\":%.1f,\"bytes_per_s\":%.1f,",
		(unsigned long long)c->bytes_loaded, (unsigned long long)c->bytes_stored, secs,
		c->requests / secs, c->prompt_tokens / secs, moved / secs);
	fprintf(f, "\"prefetches\":%llu,\"prefetched_blocks\":%llu,",
		(unsigned long long)c->prefetches, (unsigned long long)c->prefetched_blocks);
	fprintf(f, "\"hash_seconds\":%.6f,\"fill_seconds\":%.6f,\"check_seconds\":%.6f,",
		c->hash_ns / 1e9, c->fill_ns / 1e9, c->check_ns / 1e9);
	print_worth_json(f, rp);
	fputs("\"tiers\":{", f);
	json_tier(f, "host", &st->tier[KV_TIER_HOST], 0);
	json_tier(f, "disk", &st->tier[KV_TIER_DISK], 0);
	json_tier(f, "remote", &st->tier[KV_TIER_REMOTE], 1);
	fprintf(f, "},\"host_pinned\":%u,\"store_dedup\":%llu,\"rejected\":%llu,",
		st->host_pinned, (unsigned long long)st->store_dedup,
		(unsigned long long)st->rejected);
	fprintf(f, "\"verified_blocks\":%llu,\"verify_failures\":%llu,\"untouched_failures\":%llu,"
		"\"corrupted_on_purpose\":%llu}\n",
		(unsigned long long)c->verified_blocks, (unsigned long long)c->verify_failures,
		(unsigned long long)c->canary_failures, (unsigned long long)c->corrupted);
}
