// SPDX-License-Identifier: MIT
/*
 * cmd_replay.c - kvctl replay: a serving workload through the real library.
 *
 * The requests come from the built-in workload (replay_gen.c: shared system
 * prompts, chats, agent loops) or from a trace (--trace, replay_trace.c: the
 * Mooncake JSONL format). For every request, as an engine would:
 *
 *   name its full blocks (kv_hash_chain from the namespace root)
 *   kv_lookup the cached prefix
 *   kv_load the hits into engine blocks (engine cache in host memory)
 *   "compute" the rest: fill the engine blocks with bytes derived from each
 *     block's hash (util.c's pattern), so every later load is checked byte
 *     for byte, whatever layout the engine uses
 *   kv_store the computed blocks
 *
 * Several requests are in flight at once; a submission refused with -EAGAIN
 * stays pending until completions have been reaped. A load that stops early
 * with -ENOENT/-EBADMSG is a miss (the rest is recomputed); a loaded block
 * whose bytes are wrong, or an engine block past the loaded count that was
 * written anyway, is a verification failure (exit status 1). The report
 * (replay_report.c) prices the hits with a model of models.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h" /* kv_peers_refused */
#include "kv.h"
#include "kvctl.h"
#include "replay.h"
#include "util.h"

/* ------------------------------------------------------------------ options */


#define DEF_REQUESTS 1000
#define DEF_SEED 1
#define DEF_HOST_BYTES (192ull << 20)
#define DEF_LAYERS 8
#define DEF_KV_HEADS 4
#define DEF_HEAD_DIM 128
#define DEF_MLA_DIM 576
#define DEF_BLOCK_TOKENS 16
#define DEF_DISK_BYTES (1ull << 30)
#define DEF_INFLIGHT 8
#define DEF_QUEUE_DEPTH 4
#define DEF_MAX_TOKENS 4096
#define DEF_CONVERSATIONS 12
#define DEF_SYSTEM_PROMPTS 4
#define DEF_TRACE_BLOCK_TOKENS 512   /* the Mooncake traces' */
#define DEF_TRACE_LAYERS 1           /* with --trace: 128 KiB blocks */
#define DEF_TRACE_KV_HEADS 1
#define DEF_TRACE_HEAD_DIM 64
#define DEF_MODEL "llama-3-8b"
/* H100 SXM / H200 SXM dense BF16 tensor core peak (datasheets: 1,979 with sparsity). */
#define DEF_GPU_TFLOPS 989.0

static void replay_usage(FILE *f)
{
	fprintf(f,
"Usage: kvctl replay [OPTIONS]\n"
"       kvctl replay --trace FILE [OPTIONS]\n"
"Replay a serving workload (shared system prompts, multi-turn chats, agent\n"
"loops) through libkv with the engine cache in host memory, verify every\n"
"loaded block byte for byte, and report hits per tier and throughput.\n"
"\n"
"Trace (instead of the built-in workload):\n"
"      --trace FILE        replay a Mooncake FAST'25 JSONL trace (\"-\": stdin):\n"
"                          {\"timestamp\": MS, \"input_length\": N, \"output_length\": N,\n"
"                          \"hash_ids\": [...]}; one hash_id is one block of\n"
"                          --block-tokens tokens (default %d with --trace);\n"
"                          block i is named (and stored) only if full:\n"
"                          (i+1) x block-tokens <= input_length; names chain\n"
"                          h[i] = XXH3-128(h[i-1] || id as LE uint64) from the\n"
"                          namespace root, so equal id prefixes share names\n"
"                          Requests run in timestamp order: as fast as possible\n"
"      --realtime          ... or not before their arrival time\n"
"      --speed F           --realtime's speed factor (default 1; 10: ten times\n"
"                          faster than the trace)\n"
"  -n, --requests N        the first N requests of the trace (default: all)\n"
"  Each request: kv_lookup its named blocks (side-effect free), kv_load the\n"
"  leading hits in order (the host LRU touches them in order: the last hit\n"
"  becomes most recent), then compute and kv_store the blocks from the first\n"
"  miss on, in order (each new block enters at the most-recent end; one still\n"
"  present is not stored again and not touched). Evictions take the least\n"
"  recently used block.\n"
"\n"
"Workload:\n"
"  -n, --requests N        requests to replay (default %d)\n"
"  -s, --seed N            workload seed (default %d)\n"
"      --conversations N   conversations live at once (default %d)\n"
"      --system-prompts N  distinct system prompts (default %d)\n"
"      --max-tokens N      longest prompt; a conversation ends there (default %d)\n"
"      --inflight N        requests in flight at once (default %d)\n"
"Geometry and engine cache:\n"
"      --layout L          nhd (vLLM, default), hnd, flashinfer, mla\n"
"      --layers N          layers (default %d; 1 with --trace)\n"
"      --kv-heads N        KV heads (default %d; 1 for mla or with --trace)\n"
"      --head-dim N        head dim (default %d; %d for mla; 64 with --trace)\n"
"      --block-tokens N    tokens per block (default %d)\n"
"      --dtype T           fp16 (default), bf16, fp32, fp8, int8\n"
"      --engine-blocks N   engine cache blocks (default: 4 x max-tokens/block-tokens;\n"
"                          with --trace, inflight x the longest request's blocks)\n"
"Library:\n"
"      --host-bytes SIZE   host pool (default %llu MiB: small enough to evict)\n"
"      --capacity-blocks N host pool of exactly N blocks (N slots of the block\n"
"                          size rounded up to 4 KiB), instead of --host-bytes\n"
"      --disk PATH         add a disk tier in PATH (default: none)\n"
"      --disk-bytes SIZE   disk tier size (default %llu MiB)\n"
"      --reformat          reformat a disk tier written for another namespace\n"
"      --peers LIST        host:port,... memory servers (default: none)\n"
"      --replicas N        copies of each block on distinct peers (default 1)\n"
"      --remote-timeout MS bound on each remote batch (default 2000)\n"
"      --auth-file FILE    shared secret for servers run with --auth-file\n"
"      --rdma-dev NAME     verbs device for the remote tier (default: first found)\n"
"      --no-rdma           remote tier over TCP even where verbs would work\n"
"      --queue-depth N     library queue depth (default %d: small, so that\n"
"                          -EAGAIN and reaping are exercised)\n"
"      --workers N         library copy threads (default: library's choice)\n"
"      --verify-host       check checksums on host-tier loads too\n"
"      --admit POLICY      host evictions written to the lower tier: reused\n"
"                          (library default: blocks hit or stored again), all, none\n"
"      --prefetch          kv_prefetch a prefix found in a lower tier, then load it\n"
"                          (default: kv_load reads lower tiers itself)\n"
"What the hits are worth:\n"
"      --model NAME        price hits as the prefill they save for this model:\n"
"                          llama-3-8b (default), llama-3-70b, deepseek-v3\n"
"                          (--model list prints the table)\n"
"      --gpu-tflops F      recompute throughput (default %.0f: H100/H200 SXM\n"
"                          dense BF16 peak); each tier's load time, at the\n"
"                          bandwidth measured in this run for the model's KV\n"
"                          bytes, is set against the time to recompute it\n"
"Testing:\n"
"      --corrupt-every N   flip a byte of every Nth loaded block before it is\n"
"                          checked, to show the checker catches it (default off;\n"
"                          exit status 1 then)\n"
"Output:\n"
"      --json              print the report as one JSON object\n"
"  -q, --quiet             no progress line, no report (exit status only)\n"
"  -h, --help              this text\n"
"SIZE takes K, M, G suffixes (binary). Exit status: 0 ok, 1 verification\n"
"failures, a library error or a peer that refused this client (secret,\n"
"namespace, geometry), 2 usage error.\n",
		DEF_TRACE_BLOCK_TOKENS, DEF_REQUESTS, DEF_SEED, DEF_CONVERSATIONS, DEF_SYSTEM_PROMPTS,
		DEF_MAX_TOKENS, DEF_INFLIGHT, DEF_LAYERS, DEF_KV_HEADS, DEF_HEAD_DIM,
		DEF_MLA_DIM, DEF_BLOCK_TOKENS, (unsigned long long)(DEF_HOST_BYTES >> 20),
		(unsigned long long)(DEF_DISK_BYTES >> 20), DEF_QUEUE_DEPTH, DEF_GPU_TFLOPS);
}

enum {
	OPT_HOST_BYTES = 256, OPT_LAYOUT, OPT_BLOCK_TOKENS, OPT_LAYERS, OPT_DISK,
	OPT_DISK_BYTES, OPT_PEERS, OPT_JSON, OPT_KV_HEADS, OPT_HEAD_DIM, OPT_DTYPE,
	OPT_INFLIGHT, OPT_QUEUE_DEPTH, OPT_ENGINE_BLOCKS, OPT_MAX_TOKENS,
	OPT_CONVERSATIONS, OPT_SYSTEM_PROMPTS, OPT_REFORMAT, OPT_VERIFY_HOST,
	OPT_WORKERS, OPT_CORRUPT_EVERY, OPT_ADMIT, OPT_PREFETCH, OPT_REPLICAS,
	OPT_REMOTE_TIMEOUT, OPT_AUTH_FILE, OPT_RDMA_DEV, OPT_NO_RDMA, OPT_TRACE,
	OPT_REALTIME, OPT_SPEED, OPT_CAPACITY_BLOCKS, OPT_MODEL, OPT_GPU_TFLOPS,
};

static const struct option replay_longopts[] = {
	{ "requests", required_argument, NULL, 'n' },
	{ "seed", required_argument, NULL, 's' },
	{ "host-bytes", required_argument, NULL, OPT_HOST_BYTES },
	{ "layout", required_argument, NULL, OPT_LAYOUT },
	{ "block-tokens", required_argument, NULL, OPT_BLOCK_TOKENS },
	{ "layers", required_argument, NULL, OPT_LAYERS },
	{ "kv-heads", required_argument, NULL, OPT_KV_HEADS },
	{ "head-dim", required_argument, NULL, OPT_HEAD_DIM },
	{ "dtype", required_argument, NULL, OPT_DTYPE },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "disk-bytes", required_argument, NULL, OPT_DISK_BYTES },
	{ "reformat", no_argument, NULL, OPT_REFORMAT },
	{ "peers", required_argument, NULL, OPT_PEERS },
	{ "replicas", required_argument, NULL, OPT_REPLICAS },
	{ "remote-timeout", required_argument, NULL, OPT_REMOTE_TIMEOUT },
	{ "auth-file", required_argument, NULL, OPT_AUTH_FILE },
	{ "rdma-dev", required_argument, NULL, OPT_RDMA_DEV },
	{ "no-rdma", no_argument, NULL, OPT_NO_RDMA },
	{ "inflight", required_argument, NULL, OPT_INFLIGHT },
	{ "queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "engine-blocks", required_argument, NULL, OPT_ENGINE_BLOCKS },
	{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
	{ "conversations", required_argument, NULL, OPT_CONVERSATIONS },
	{ "system-prompts", required_argument, NULL, OPT_SYSTEM_PROMPTS },
	{ "verify-host", no_argument, NULL, OPT_VERIFY_HOST },
	{ "corrupt-every", required_argument, NULL, OPT_CORRUPT_EVERY },
	{ "admit", required_argument, NULL, OPT_ADMIT },
	{ "prefetch", no_argument, NULL, OPT_PREFETCH },
	{ "trace", required_argument, NULL, OPT_TRACE },
	{ "realtime", no_argument, NULL, OPT_REALTIME },
	{ "speed", required_argument, NULL, OPT_SPEED },
	{ "capacity-blocks", required_argument, NULL, OPT_CAPACITY_BLOCKS },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "gpu-tflops", required_argument, NULL, OPT_GPU_TFLOPS },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int bad_value(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "kvctl: replay: invalid value '%s' for --%s (%s)\n", val, opt, want);
	fprintf(stderr, "Try 'kvctl replay --help'.\n");
	return 2;
}

static int parse_opts(int argc, char **argv, struct replay_opts *o)
{
	uint64_t v;
	int c, idx = -1;
	bool heads_set = false, dim_set = false, layers_set = false;

	memset(o, 0, sizeof(*o));
	o->requests = DEF_REQUESTS;
	o->seed = DEF_SEED;
	o->host_bytes = DEF_HOST_BYTES;
	o->layout = KV_LAYOUT_VLLM_NHD;
	o->g.layers = DEF_LAYERS;
	o->g.planes = 2;
	o->g.block_tokens = DEF_BLOCK_TOKENS;
	o->g.kv_heads = DEF_KV_HEADS;
	o->g.head_dim = DEF_HEAD_DIM;
	o->g.dtype = KV_DTYPE_FP16;
	o->disk_bytes = DEF_DISK_BYTES;
	o->inflight = DEF_INFLIGHT;
	o->queue_depth = DEF_QUEUE_DEPTH;
	o->max_tokens = DEF_MAX_TOKENS;
	o->conversations = DEF_CONVERSATIONS;
	o->system_prompts = DEF_SYSTEM_PROMPTS;
	o->speed = 1;
	o->model = kvr_model_find(DEF_MODEL);
	o->gpu_tflops = DEF_GPU_TFLOPS;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:s:qh", replay_longopts, &idx)) != -1) {
		const char *name = idx >= 0 ? replay_longopts[idx].name : "?";

		/* getopt_long leaves idx alone for short options: name them here. */
		switch (c) {
		case 'n': name = "requests"; break;
		case 's': name = "seed"; break;
		default: break;
		}
		switch (c) {
		case 'n':
			if (kvu_parse_u64(optarg, 1, 100000000, &o->requests))
				return bad_value(name, optarg, "1..100000000");
			o->requests_set = true;
			break;
		case OPT_TRACE:
			if (!*optarg)
				return bad_value(name, optarg, "a trace file, or - for stdin");
			o->trace = optarg;
			break;
		case OPT_REALTIME:
			o->realtime = true;
			break;
		case OPT_SPEED: {
			char *end;

			errno = 0;
			o->speed = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->speed > 0) || o->speed > 1e9)
				return bad_value(name, optarg, "a factor > 0 such as 1, 10 or 0.5");
			break;
		}
		case OPT_MODEL:
			if (!strcmp(optarg, "list")) {
				kvr_model_list(stdout);
				return -1;
			}
			o->model = kvr_model_find(optarg);
			if (!o->model)
				return bad_value(name, optarg,
						 "llama-3-8b, llama-3-70b or deepseek-v3; --model list");
			break;
		case OPT_GPU_TFLOPS: {
			char *end;

			errno = 0;
			o->gpu_tflops = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->gpu_tflops > 0) || o->gpu_tflops > 1e7)
				return bad_value(name, optarg, "TFLOPS > 0, such as 989");
			break;
		}
		case OPT_CAPACITY_BLOCKS:
			if (kvu_parse_u64(optarg, 1, 1ull << 32, &o->capacity_blocks))
				return bad_value(name, optarg, "1..4294967296 blocks");
			break;
		case 's':
			if (kvu_parse_u64(optarg, 0, UINT64_MAX, &o->seed))
				return bad_value(name, optarg, "an unsigned integer");
			break;
		case OPT_HOST_BYTES:
			if (kvu_parse_size(optarg, &o->host_bytes) || !o->host_bytes)
				return bad_value(name, optarg, "a size such as 256M");
			o->host_bytes_set = true;
			break;
		case OPT_LAYOUT:
			o->layout = kvu_layout_parse(optarg);
			if (!o->layout)
				return bad_value(name, optarg, "nhd, hnd, flashinfer or mla");
			break;
		case OPT_BLOCK_TOKENS:
			if (kvu_parse_u64(optarg, 1, 4096, &v))
				return bad_value(name, optarg, "1..4096");
			o->g.block_tokens = (uint32_t)v;
			o->block_tokens_set = true;
			break;
		case OPT_LAYERS:
			if (kvu_parse_u64(optarg, 1, 1024, &v))
				return bad_value(name, optarg, "1..1024");
			o->g.layers = (uint32_t)v;
			layers_set = true;
			break;
		case OPT_KV_HEADS:
			if (kvu_parse_u64(optarg, 1, 1024, &v))
				return bad_value(name, optarg, "1..1024");
			o->g.kv_heads = (uint32_t)v;
			heads_set = true;
			break;
		case OPT_HEAD_DIM:
			if (kvu_parse_u64(optarg, 1, 65536, &v))
				return bad_value(name, optarg, "1..65536");
			o->g.head_dim = (uint32_t)v;
			dim_set = true;
			break;
		case OPT_DTYPE:
			o->g.dtype = kvu_dtype_parse(optarg);
			if (!o->g.dtype)
				return bad_value(name, optarg, "fp16, bf16, fp32, fp8, fp8_e5m2 or int8");
			break;
		case OPT_DISK:
			if (!*optarg)
				return bad_value(name, optarg, "a file or device path");
			o->disk = optarg;
			break;
		case OPT_DISK_BYTES:
			if (kvu_parse_size(optarg, &o->disk_bytes) || !o->disk_bytes)
				return bad_value(name, optarg, "a size such as 1G");
			break;
		case OPT_REFORMAT:
			o->reformat = true;
			break;
		case OPT_PEERS:
			o->peers = *optarg ? optarg : NULL;
			break;
		case OPT_REPLICAS:
			if (kvu_parse_u64(optarg, 1, 8, &o->replicas))
				return bad_value(name, optarg, "1..8");
			break;
		case OPT_REMOTE_TIMEOUT:
			if (kvu_parse_u64(optarg, 1, 600000, &o->remote_timeout_ms))
				return bad_value(name, optarg, "1..600000 ms");
			break;
		case OPT_AUTH_FILE:
			if (!*optarg)
				return bad_value(name, optarg, "a file path");
			o->auth_file = optarg;
			break;
		case OPT_RDMA_DEV:
			if (!*optarg)
				return bad_value(name, optarg, "a verbs device name");
			o->rdma_dev = optarg;
			break;
		case OPT_NO_RDMA:
			o->no_rdma = true;
			break;
		case OPT_INFLIGHT:
			if (kvu_parse_u64(optarg, 1, 1024, &o->inflight))
				return bad_value(name, optarg, "1..1024");
			break;
		case OPT_QUEUE_DEPTH:
			if (kvu_parse_u64(optarg, 1, 65536, &o->queue_depth))
				return bad_value(name, optarg, "1..65536");
			break;
		case OPT_WORKERS:
			if (kvu_parse_u64(optarg, 1, 256, &o->workers))
				return bad_value(name, optarg, "1..256");
			break;
		case OPT_ENGINE_BLOCKS:
			if (kvu_parse_u64(optarg, 1, 1u << 24, &o->engine_blocks))
				return bad_value(name, optarg, "1..16777216");
			break;
		case OPT_MAX_TOKENS:
			if (kvu_parse_u64(optarg, 1, 1u << 22, &o->max_tokens))
				return bad_value(name, optarg, "1..4194304");
			break;
		case OPT_CONVERSATIONS:
			if (kvu_parse_u64(optarg, 1, 100000, &o->conversations))
				return bad_value(name, optarg, "1..100000");
			break;
		case OPT_SYSTEM_PROMPTS:
			if (kvu_parse_u64(optarg, 1, 1000, &o->system_prompts))
				return bad_value(name, optarg, "1..1000");
			break;
		case OPT_ADMIT:
			if (!strcmp(optarg, "reused"))
				o->admit = KV_ADMIT_REUSED;
			else if (!strcmp(optarg, "all"))
				o->admit = KV_ADMIT_ALL;
			else if (!strcmp(optarg, "none"))
				o->admit = KV_ADMIT_NONE;
			else
				return bad_value(name, optarg, "reused, all or none");
			break;
		case OPT_PREFETCH:
			o->prefetch = true;
			break;
		case OPT_CORRUPT_EVERY:
			if (kvu_parse_u64(optarg, 1, UINT64_MAX, &o->corrupt_every))
				return bad_value(name, optarg, "a positive integer");
			break;
		case OPT_VERIFY_HOST:
			o->verify_host = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			replay_usage(stdout);
			return -1;
		case ':':
			fprintf(stderr, "kvctl: replay: option '%s' needs a value\n", argv[optind - 1]);
			fprintf(stderr, "Try 'kvctl replay --help'.\n");
			return 2;
		default:
			fprintf(stderr, "kvctl: replay: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "Try 'kvctl replay --help'.\n");
			return 2;
		}
		idx = -1;
	}
	if (optind < argc) {
		fprintf(stderr, "kvctl: replay: unexpected argument '%s'\n", argv[optind]);
		fprintf(stderr, "Try 'kvctl replay --help'.\n");
		return 2;
	}
	if (o->trace) {
		/*
		 * 512-token blocks of the default geometry would be 8 MiB: a small
		 * one instead (hit rates do not depend on it), unless given.
		 */
		if (!o->block_tokens_set)
			o->g.block_tokens = DEF_TRACE_BLOCK_TOKENS;
		if (!layers_set)
			o->g.layers = DEF_TRACE_LAYERS;
		if (!heads_set)
			o->g.kv_heads = DEF_TRACE_KV_HEADS;
		if (!dim_set && o->layout != KV_LAYOUT_MLA)
			o->g.head_dim = DEF_TRACE_HEAD_DIM;
	}
	if ((o->realtime || o->speed != 1) && !o->trace) {
		fprintf(stderr, "kvctl: replay: --realtime and --speed need --trace\n");
		return 2;
	}
	if (o->speed != 1 && !o->realtime) {
		fprintf(stderr, "kvctl: replay: --speed needs --realtime\n");
		return 2;
	}
	if (o->capacity_blocks && o->host_bytes_set) {
		fprintf(stderr, "kvctl: replay: give --capacity-blocks or --host-bytes, not both\n");
		return 2;
	}
	if (o->layout == KV_LAYOUT_MLA) {
		if (heads_set && o->g.kv_heads != 1) {
			fprintf(stderr, "kvctl: replay: --layout mla needs --kv-heads 1\n");
			return 2;
		}
		o->g.planes = 1;
		o->g.kv_heads = 1;
		if (!dim_set)
			o->g.head_dim = DEF_MLA_DIM;
	}
	if (kv_geometry_check(&o->g)) {
		fprintf(stderr, "kvctl: replay: invalid geometry (a block must fit in 1 GiB)\n");
		return 2;
	}
	if (o->capacity_blocks) {
		size_t bb = kv_geometry_block_bytes(&o->g), slot = (bb + 4095) & ~(size_t)4095;

		if (o->capacity_blocks > SIZE_MAX / slot) {
			fprintf(stderr, "kvctl: replay: --capacity-blocks %llu blocks of %zu bytes overflow\n",
				(unsigned long long)o->capacity_blocks, slot);
			return 2;
		}
		/* kv.h: host_bytes is rounded down to whole slots of the block rounded up to 4 KiB. */
		o->host_bytes = (size_t)o->capacity_blocks * slot;
	}
	if (o->trace)
		return 0;   /* the rest is checked against the trace once it is read */
	if (o->max_tokens < o->g.block_tokens) {
		fprintf(stderr, "kvctl: replay: --max-tokens must be at least --block-tokens\n");
		return 2;
	}
	if (!o->engine_blocks)
		o->engine_blocks = 4 * (o->max_tokens / o->g.block_tokens);
	if (o->engine_blocks < o->max_tokens / o->g.block_tokens) {
		fprintf(stderr, "kvctl: replay: --engine-blocks %llu cannot hold one --max-tokens prompt (%llu blocks)\n",
			(unsigned long long)o->engine_blocks,
			(unsigned long long)(o->max_tokens / o->g.block_tokens));
		return 2;
	}
	return 0;
}

/* ------------------------------------------------------------------ requests */

enum req_state {
	RQ_FREE, RQ_PREFETCH_PENDING, RQ_PREFETCHING, RQ_LOAD_PENDING, RQ_LOADING,
	RQ_STORE_PENDING, RQ_STORING,
};

struct req {
	enum req_state state;
	struct conv *conv;
	uint64_t id;
	uint32_t ntok, nblk;
	uint32_t hit;       /* kv_lookup's count */
	uint32_t loaded;    /* blocks the load brought back */
	bool computed;      /* blocks from loaded on hold their bytes */
	kv_hash *h;
	uint8_t *tier;
	uint32_t *eb;       /* engine blocks, one per full block */
	size_t cap;
	uint64_t load_t0;   /* first prefetch/load submitted (ns) */
};


struct replay {
	const struct replay_opts *o;
	struct kv *kv;
	struct kvu_engine eng;
	kv_hash root;
	size_t block_bytes;
	struct workload w;
	struct replay_trace tr;   /* --trace (tr.n == 0: the generator) */
	uint32_t *words;          /* scratch for naming a trace request */
	uint64_t t0_ns;           /* start of the run (--realtime's clock) */
	uint64_t due_ns;          /* next trace arrival not yet due, or 0 */
	struct kvr_hset seen;
	struct req *reqs;
	uint32_t nreq;
	uint32_t *free_eb;
	uint32_t nfree;
	uint64_t issued, done, active;
	struct replay_counters c;
};

/* user_data: request slot << 2 | operation. */
enum { UD_LOAD = 0, UD_STORE = 1, UD_PREFETCH = 2, UD_SHIFT = 2 };

static uint64_t canary_of(const struct req *r, uint32_t i)
{
	return kvu_mix64((r->id << 20) ^ i ^ 0xca9a7ull);
}

/* Room for nblk blocks in r's arrays. */
static int req_reserve(struct req *r, uint32_t nblk)
{
	if (nblk <= r->cap)
		return 0;
	kv_hash *h = realloc(r->h, nblk * sizeof(*h));

	if (!h)
		return -ENOMEM;
	r->h = h;
	uint8_t *t = realloc(r->tier, nblk);

	if (!t)
		return -ENOMEM;
	r->tier = t;
	uint32_t *eb = realloc(r->eb, nblk * sizeof(*eb));

	if (!eb)
		return -ENOMEM;
	r->eb = eb;
	r->cap = nblk;
	return 0;
}

/* r is named (r->h): count it, take engine blocks, look up its prefix. */
static int req_lookup(struct replay *R, struct req *r)
{
	uint32_t nblk = r->nblk;
	int ret;

	r->hit = r->loaded = 0;
	r->computed = false;
	r->load_t0 = 0;
	R->active++;
	R->c.requests++;
	R->c.prompt_tokens += r->ntok;
	R->c.full_blocks += nblk;

	for (uint32_t i = 0; i < nblk; i++)
		r->eb[i] = R->free_eb[--R->nfree];
	if (nblk) {
		ret = kv_lookup(R->kv, r->h, nblk, r->tier);
		if (ret < 0 || (uint32_t)ret > nblk) {
			fprintf(stderr, "kvctl: replay: kv_lookup: %s\n",
				ret < 0 ? kv_strerror(ret) : "count out of range");
			return ret < 0 ? ret : -EPROTO;
		}
		r->hit = (uint32_t)ret;
		R->c.lookup_blocks += r->hit;
		for (uint32_t i = 0; i < r->hit; i++)
			R->c.lookup_tier[r->tier[i] < 4 ? r->tier[i] : 0]++;
		/* A trace's unbounded rate is computed from the trace, in its order. */
		for (uint32_t i = 0; !R->tr.n && i < nblk && kvr_hset_has(&R->seen, r->h[i]); i++)
			R->c.reusable_blocks++;
	}
	if (r->hit) {
		bool lower = false;

		for (uint32_t i = 0; i < r->hit; i++) {
			kvu_canary_set(&R->eng, r->eb[i], canary_of(r, i));
			lower |= r->tier[i] > KV_TIER_HOST;
		}
		r->state = R->o->prefetch && lower ? RQ_PREFETCH_PENDING : RQ_LOAD_PENDING;
	} else {
		r->state = RQ_STORE_PENDING;   /* computed at submission */
	}
	return 0;
}

/* Take a free conversation's next turn and start it. 0: started, 1: nothing to start. */
static int req_start_gen(struct replay *R, struct req *r)
{
	struct workload *w = &R->w;
	struct conv *c = workload_pick(w);
	uint32_t bt = R->o->g.block_tokens, nblk;
	int ret;

	/* Wait for its previous turn; its next turn stays staged if it doesn't fit. */
	if (c->busy)
		return 1;
	if (c->ended && conv_start(w, c))
		return -ENOMEM;
	while ((ret = conv_stage(w, c)) == -ENOSPC)
		if (conv_start(w, c))
			return -ENOMEM;
	if (ret)
		return ret;
	nblk = (uint32_t)(c->hist.n / bt);
	if (nblk > R->nfree)
		return 1;   /* wait for engine blocks */
	if (req_reserve(r, nblk))
		return -ENOMEM;
	workload_issued(w);
	r->conv = c;
	r->id = R->issued++;
	r->ntok = (uint32_t)c->hist.n;
	r->nblk = nblk;
	c->busy = true;
	if (nblk) {
		uint64_t t0 = kvu_now_ns();
		size_t got = kv_hash_chain(R->root, c->hist.t, c->hist.n, bt, r->h);

		R->c.hash_ns += kvu_now_ns() - t0;
		if (got != nblk) {
			fprintf(stderr, "kvctl: replay: kv_hash_chain named %zu blocks, expected %u\n",
				got, nblk);
			return -EPROTO;
		}
	}
	return req_lookup(R, r);
}

/*
 * The trace's next request, in timestamp order; with --realtime not before
 * its arrival (R->due_ns is then set). 0: started, 1: not yet.
 */
static int req_start_trace(struct replay *R, struct req *r)
{
	const struct replay_trace_req *q = &R->tr.req[R->issued];
	uint64_t now;

	if (R->o->realtime) {
		uint64_t due = R->t0_ns + (uint64_t)(q->ts_ms * 1e6 / R->o->speed);

		now = kvu_now_ns();
		if (now < due) {
			R->due_ns = due;
			return 1;
		}
		if (q->nblk > R->nfree)
			return 1;
		R->c.late_sum_ns += now - due;
		if (now - due > R->c.late_max_ns)
			R->c.late_max_ns = now - due;
	}
	if (q->nblk > R->nfree)
		return 1;   /* wait for engine blocks */
	if (req_reserve(r, q->nblk))
		return -ENOMEM;
	r->conv = NULL;
	r->id = R->issued++;
	r->ntok = (uint32_t)q->input_len;
	r->nblk = q->nblk;
	now = kvu_now_ns();
	if (replay_trace_names(&R->tr, R->root, r->id, R->words, r->h) != r->nblk) {
		fprintf(stderr, "kvctl: replay: kv_hash_chain did not name the %u blocks of request %llu\n",
			r->nblk, (unsigned long long)r->id);
		return -EPROTO;
	}
	R->c.hash_ns += kvu_now_ns() - now;
	return req_lookup(R, r);
}

static int req_start(struct replay *R, struct req *r)
{
	return R->tr.n ? req_start_trace(R, r) : req_start_gen(R, r);
}

/* "Prefill": blocks from r->loaded on get their hash's bytes. */
static void req_compute(struct replay *R, struct req *r)
{
	uint64_t t0 = kvu_now_ns();

	for (uint32_t i = r->loaded; i < r->nblk; i++)
		kvu_pattern_fill(&R->eng, r->eb[i], r->h[i]);
	R->c.computed_blocks += r->nblk - r->loaded;
	R->c.fill_ns += kvu_now_ns() - t0;
}

static int req_finish(struct replay *R, struct req *r)
{
	for (uint32_t i = 0; i < r->nblk; i++)
		R->free_eb[R->nfree++] = r->eb[i];
	r->state = RQ_FREE;
	R->active--;
	R->done++;
	return r->conv && conv_answered(&R->w, r->conv) ? -ENOMEM : 0;
}

/* Submit r's pending operation. 0: submitted (or nothing to do), 1: -EAGAIN. */
static int req_submit(struct replay *R, struct req *r)
{
	uint64_t ud = (uint64_t)(r - R->reqs) << UD_SHIFT;
	int ret;

	if ((r->state == RQ_PREFETCH_PENDING || r->state == RQ_LOAD_PENDING) && !r->load_t0)
		r->load_t0 = kvu_now_ns();
	if (r->state == RQ_PREFETCH_PENDING) {
		ret = kv_prefetch(R->kv, r->h, r->hit, ud | UD_PREFETCH);
		if (ret == -EAGAIN) {
			R->c.eagain++;
			return 1;
		}
		if (ret) {
			fprintf(stderr, "kvctl: replay: kv_prefetch of %u blocks: %s\n",
				r->hit, kv_strerror(ret));
			return ret;
		}
		r->state = RQ_PREFETCHING;
		return 0;
	}
	if (r->state == RQ_LOAD_PENDING) {
		ret = kv_load(R->kv, r->h, r->eb, r->hit, ud | UD_LOAD);
		if (ret == -EAGAIN) {
			R->c.eagain++;
			return 1;
		}
		if (ret) {
			fprintf(stderr, "kvctl: replay: kv_load of %u blocks: %s\n",
				r->hit, kv_strerror(ret));
			return ret;
		}
		r->state = RQ_LOADING;
		return 0;
	}
	if (r->state != RQ_STORE_PENDING)
		return 0;
	if (r->loaded == r->nblk)
		return req_finish(R, r);
	/*
	 * Compute once: a refused store keeps its bytes (the engine blocks
	 * belong to this request until its store completes).
	 */
	if (!r->computed) {
		req_compute(R, r);
		r->computed = true;
	}
	ret = kv_store(R->kv, r->h + r->loaded, r->eb + r->loaded, r->nblk - r->loaded, ud | UD_STORE);
	if (ret == -EAGAIN) {
		R->c.eagain++;
		return 1;
	}
	if (ret) {
		fprintf(stderr, "kvctl: replay: kv_store of %u blocks: %s\n",
			r->nblk - r->loaded, kv_strerror(ret));
		return ret;
	}
	r->state = RQ_STORING;
	return 0;
}

static int on_completion(struct replay *R, const struct kv_completion *cq)
{
	uint64_t idx = cq->user_data >> UD_SHIFT;
	unsigned op = cq->user_data & ((1u << UD_SHIFT) - 1);
	bool store = op == UD_STORE;
	static const char *const op_name[] = { "load", "store", "prefetch", "?" };
	static const enum req_state expect[] = { RQ_LOADING, RQ_STORING, RQ_PREFETCHING, RQ_FREE };
	struct req *r;

	if (idx >= R->nreq || op > UD_PREFETCH) {
		fprintf(stderr, "kvctl: replay: completion with unknown user_data %#llx\n",
			(unsigned long long)cq->user_data);
		return -EPROTO;
	}
	r = &R->reqs[idx];
	if (r->state != expect[op]) {
		fprintf(stderr, "kvctl: replay: unexpected %s completion for request %llu (delivered twice?)\n",
			op_name[op], (unsigned long long)r->id);
		return -EPROTO;
	}
	if (op == UD_PREFETCH) {
		/* Load all the same: what did not come up is read (or missed) by the load. */
		R->c.prefetches++;
		R->c.prefetched_blocks += cq->res > 0 ? (uint64_t)cq->res : 0;
		r->state = RQ_LOAD_PENDING;
		return 0;
	}
	if (!store) {
		uint32_t got = cq->res > 0 ? (uint32_t)cq->res : 0;
		uint64_t t0 = kvu_now_ns();

		R->c.loads++;
		if (got > r->hit) {
			fprintf(stderr, "kvctl: replay: load completion res %d > %u requested\n",
				cq->res, r->hit);
			R->c.verify_failures++;
			got = r->hit;
		}
		if (cq->res < 0 || (got < r->hit && cq->err != -ENOENT && cq->err != -EBADMSG))
			R->c.load_errors++;
		else if (got < r->hit)
			R->c.load_misses++;
		for (uint32_t i = 0; i < got; i++) {
			R->c.verified_blocks++;
			if (R->o->corrupt_every && R->c.verified_blocks % R->o->corrupt_every == 0) {
				/* A byte somewhere in the block: last layer, last plane. */
				uint8_t *p = kvu_engine_plane(&R->eng, R->o->g.layers - 1,
							      R->o->g.planes - 1, r->eb[i]);

				p[(r->id * 7919) % R->eng.plane_bytes] ^= 0x40;
				R->c.corrupted++;
			}
			if (kvu_pattern_check(&R->eng, r->eb[i], r->h[i])) {
				R->c.verify_failures++;
				/* Its bytes are wrong: recompute from here on. */
				got = i;
				break;
			}
		}
		for (uint32_t i = got; i < r->hit; i++)
			if (cq->res >= 0 && (uint32_t)cq->res <= i &&
			    kvu_canary_check(&R->eng, r->eb[i], canary_of(r, i))) {
				R->c.canary_failures++;
				R->c.verify_failures++;
				break;
			}
		R->c.check_ns += kvu_now_ns() - t0;
		r->loaded = got;
		R->c.served_blocks += got;
		R->c.bytes_loaded += (uint64_t)got * R->block_bytes;
		uint8_t slowest = 0;

		for (uint32_t i = 0; i < got; i++) {
			uint8_t t = r->tier[i] < 4 ? r->tier[i] : 0;
			uint64_t bt = R->o->g.block_tokens, a = i * bt, b = a + bt;

			/* The field's count: leading blocks x block tokens, capped at the input. */
			if (b > r->ntok)
				b = r->ntok;
			R->c.served_tier[t]++;
			if (b > a) {
				R->c.hit_tokens += b - a;
				R->c.hit_tokens_tier[t] += b - a;
				R->c.saved_flops_tier[t] += kvr_model_prefill_flops(R->o->model, a, b);
			}
			if (t > slowest)
				slowest = t;
		}
		/* A load's time and bytes go to the slowest tier it read from. */
		if (got && r->load_t0) {
			R->c.load_ns_tier[slowest] += kvu_now_ns() - r->load_t0;
			R->c.load_bytes_tier[slowest] += (uint64_t)got * R->block_bytes;
		}
		r->state = RQ_STORE_PENDING;
		return 0;
	}

	uint32_t n = r->nblk - r->loaded;
	uint32_t got = cq->res > 0 ? (uint32_t)cq->res : 0;

	R->c.stores++;
	if (got > n)
		got = n;
	if (got < n)
		R->c.store_errors++;
	R->c.stored_blocks += got;
	R->c.bytes_stored += (uint64_t)got * R->block_bytes;
	for (uint32_t i = 0; i < got; i++)
		if (kvr_hset_add(&R->seen, r->h[r->loaded + i]))
			return -ENOMEM;
	return req_finish(R, r);
}

static void progress(struct replay *R, uint64_t t0, bool final)
{
	double s = (kvu_now_ns() - t0) / 1e9;
	double hit = R->c.prompt_tokens ?
		100.0 * R->c.served_blocks * R->o->g.block_tokens / R->c.prompt_tokens : 0;

	fprintf(stderr, "\rreplay: %llu/%llu requests, hit %.1f%%, %.1f s%s",
		(unsigned long long)R->done, (unsigned long long)R->o->requests, hit, s,
		final ? "\n" : "  ");
}

static int run_loop(struct replay *R)
{
	const struct replay_opts *o = R->o;
	struct kv_completion cq[64];
	bool tty = !o->quiet && isatty(2);
	uint64_t t0 = kvu_now_ns(), last_prog = 0, last_cq = kvu_now_ns();
	uint32_t rr = 0;
	int ret;

	R->t0_ns = t0;
	while (R->done < o->requests) {
		bool blocked = false;
		int timeout_ms = 1000;
		uint64_t done_before = R->done;

		/* Admit requests while there is room. */
		R->due_ns = 0;
		while (R->active < o->inflight && R->issued < o->requests) {
			struct req *r = NULL;

			for (uint32_t i = 0; i < R->nreq; i++)
				if (R->reqs[i].state == RQ_FREE) {
					r = &R->reqs[i];
					break;
				}
			if (!r)
				break;
			ret = req_start(R, r);
			if (ret < 0)
				return ret;
			if (ret > 0)
				break;
		}
		/* Submit what is pending, oldest slot first after the last refusal. */
		for (uint32_t k = 0; k < R->nreq && !blocked; k++) {
			struct req *r = &R->reqs[(rr + k) % R->nreq];

			ret = req_submit(R, r);
			if (ret < 0)
				return ret;
			if (ret > 0) {
				blocked = true;
				rr = (uint32_t)(r - R->reqs);
			}
		}
		if (R->done >= o->requests)
			break;

		/* Reap: block only when there is nothing else to do. */
		unsigned inflight = kv_inflight(R->kv);
		bool pending = false;

		for (uint32_t i = 0; i < R->nreq; i++)
			if (R->reqs[i].state == RQ_LOAD_PENDING || R->reqs[i].state == RQ_STORE_PENDING ||
			    R->reqs[i].state == RQ_PREFETCH_PENDING)
				pending = true;
		if (R->due_ns) {
			/* --realtime: the next arrival is not due yet; sleep until it is. */
			uint64_t now = kvu_now_ns(), ms = R->due_ns > now ?
				(R->due_ns - now + 999999) / 1000000 : 0;

			timeout_ms = ms < 1000 ? (int)ms : 1000;
			if (!inflight)
				last_cq = now;
		}
		if (!inflight && !pending && R->active == 0 && R->issued < o->requests &&
		    !R->due_ns) {
			if (R->done != done_before)
				continue;   /* requests with nothing to load or store finished */
			fprintf(stderr, "kvctl: replay: stalled: no request can start (engine blocks %u free)\n",
				R->nfree);
			return -EDEADLK;
		}
		ret = (pending && !blocked) ? kv_poll(R->kv, cq, 64) :
			kv_wait(R->kv, cq, 64, timeout_ms);
		if (ret < 0) {
			fprintf(stderr, "kvctl: replay: kv_wait: %s\n", kv_strerror(ret));
			return ret;
		}
		if (ret > 0)
			last_cq = kvu_now_ns();
		else if (kvu_now_ns() - last_cq > 30ull * 1000000000ull) {
			fprintf(stderr, "kvctl: replay: no completion for 30 s (%u requests in flight)\n",
				inflight);
			return -ETIMEDOUT;
		}
		for (int i = 0; i < ret; i++) {
			int e = on_completion(R, &cq[i]);

			if (e < 0)
				return e;
		}
		if (tty && kvu_now_ns() - last_prog > 200000000ull) {
			last_prog = kvu_now_ns();
			progress(R, t0, false);
		}
	}
	if (tty)
		progress(R, t0, true);
	return 0;
}

/* ------------------------------------------------------------------ main */

int kvctl_replay(int argc, char **argv)
{
	struct replay_opts o;
	struct replay R;
	struct kv_config cfg;
	struct kv_stats st;
	char ns[512];
	uint64_t t0, t1;
	int ret, status = 1;

	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;

	memset(&R, 0, sizeof(R));
	R.o = &o;
	R.block_bytes = kv_geometry_block_bytes(&o.g);
	if (!R.block_bytes) {
		fprintf(stderr, "kvctl: replay: kv_geometry_block_bytes rejected the geometry\n");
		return 2;
	}
	/*
	 * The namespace: everything that makes the bytes of a block differ. A
	 * trace's blocks are named from its ids, not from tokens: another
	 * namespace, so they never meet the generator's names.
	 */
	snprintf(ns, sizeof(ns),
		 "%s layers=%u planes=%u kv_heads=%u head_dim=%u "
		 "dtype=%s block_tokens=%u layout=%s tp=0",
		 o.trace ? "kvctl-replay-trace/v1 ids=mooncake-hash_ids" :
			   "kvctl-replay/v1 model=synthetic",
		 o.g.layers, o.g.planes, o.g.kv_heads, o.g.head_dim,
		 kvu_dtype_name(o.g.dtype), o.g.block_tokens, kvu_layout_name(o.layout));
	R.root = kv_hash_root(ns, strlen(ns));

	if (o.trace) {
		ret = replay_trace_load(o.trace, o.g.block_tokens, &R.tr);
		if (ret)
			return ret == -ENOMEM ? 1 : 2;
		replay_trace_limit(&R.tr, o.requests_set ? o.requests : R.tr.n);
		o.requests = R.tr.n;
		if (!o.engine_blocks)
			o.engine_blocks = o.inflight * (R.tr.max_blocks ? R.tr.max_blocks : 1);
		if (o.engine_blocks < R.tr.max_blocks || o.engine_blocks > (1u << 24)) {
			fprintf(stderr, "kvctl: replay: --engine-blocks %llu: the longest request needs %u, at most 16777216\n",
				(unsigned long long)o.engine_blocks, R.tr.max_blocks);
			status = 2;
			goto out_workload;
		}
		R.words = malloc((2 * (size_t)R.tr.max_blocks + 2) * sizeof(*R.words));
		if (!R.words || replay_trace_unbounded(&R.tr, R.root)) {
			fprintf(stderr, "kvctl: replay: cannot name the trace's blocks: %s\n", strerror(ENOMEM));
			goto out_workload;
		}
		R.c.reusable_tokens = R.tr.unbounded_tokens;
	} else if (workload_init(&R.w, &o)) {
		fprintf(stderr, "kvctl: replay: cannot build the workload: %s\n", strerror(ENOMEM));
		goto out_workload;
	}
	R.nreq = (uint32_t)o.inflight;
	R.reqs = calloc(R.nreq, sizeof(*R.reqs));
	R.free_eb = calloc(o.engine_blocks, sizeof(*R.free_eb));
	if (!R.reqs || !R.free_eb) {
		fprintf(stderr, "kvctl: replay: cannot allocate requests: %s\n", strerror(ENOMEM));
		goto out_workload;
	}
	for (uint32_t i = 0; i < o.engine_blocks; i++)
		R.free_eb[R.nfree++] = (uint32_t)o.engine_blocks - 1 - i;
	if (kvu_engine_init(&R.eng, &o.g, o.layout, (uint32_t)o.engine_blocks))
		goto out_workload;

	memset(&cfg, 0, sizeof(cfg));
	cfg.geometry = o.g;
	cfg.host_bytes = o.host_bytes;
	cfg.disk_path = o.disk;
	cfg.disk_bytes = o.disk ? o.disk_bytes : 0;
	cfg.peers = o.peers;
	cfg.remote_replicas = (uint32_t)o.replicas;
	cfg.remote_timeout_ms = (int32_t)o.remote_timeout_ms;
	cfg.remote_auth_file = o.auth_file;
	cfg.remote_rdma_dev = o.rdma_dev;
	cfg.queue_depth = (uint32_t)o.queue_depth;
	cfg.workers = (uint32_t)o.workers;
	cfg.ns_root = R.root;
	cfg.admit = o.admit;
	cfg.flags = (o.quiet ? KV_F_QUIET : 0) | (o.reformat ? KV_F_DISK_REFORMAT : 0) |
		    (o.verify_host ? KV_F_VERIFY_HOST : 0) | (o.no_rdma ? KV_F_REMOTE_NO_RDMA : 0);
	ret = kv_open(&cfg, &R.kv);
	if (ret) {
		bool foreign = o.disk && !o.reformat &&
			       (ret == -EEXIST || ret == -EMEDIUMTYPE || ret == -EUCLEAN);

		fprintf(stderr, "kvctl: replay: cannot open the cache (host %zu bytes%s%s%s%s): %s%s\n",
			o.host_bytes, o.disk ? ", disk " : "", o.disk ? o.disk : "",
			o.peers ? ", peers " : "", o.peers ? o.peers : "",
			/* From kv_open, -ENOENT is a path, not a missing block. */
			ret == -ENOENT ? "no such file or directory (the disk tier's directory must exist)"
				       : kv_strerror(ret),
			foreign ? " (the disk file was written for another namespace, geometry"
				  " or size; --reformat reuses it)" : "");
		goto out_engine;
	}
	ret = kv_attach(R.kv, &R.eng.ec);
	if (ret) {
		fprintf(stderr, "kvctl: replay: cannot attach the engine cache (%s layout): %s\n",
			kvu_layout_name(o.layout), kv_strerror(ret));
		goto out_kv;
	}

	t0 = kvu_now_ns();
	ret = run_loop(&R);
	t1 = kvu_now_ns();
	if (ret < 0) {
		if (ret == -ENOMEM)
			fprintf(stderr, "kvctl: replay: out of memory\n");
		fprintf(stderr, "kvctl: replay: stopped after %llu of %llu requests\n",
			(unsigned long long)R.done, (unsigned long long)o.requests);
		goto out_kv;
	}
	ret = kv_stats(R.kv, &st);
	if (ret) {
		fprintf(stderr, "kvctl: replay: kv_stats: %s\n", kv_strerror(ret));
		memset(&st, 0, sizeof(st));
	}
	double secs = (t1 - t0) / 1e9;

	if (secs <= 0)
		secs = 1e-9;
	struct replay_report rp = {
		.o = &o, .c = &R.c, .st = &st, .block_bytes = R.block_bytes, .secs = secs,
		.trace = R.tr.n ? &R.tr : NULL,
	};

	if (!R.tr.n)
		R.c.reusable_tokens = R.c.reusable_blocks * o.g.block_tokens;

	for (int k = 0; k < CONV_KINDS; k++)
		R.c.conversations[k] = R.w.started[k];
	if (o.json)
		replay_print_json(&rp);
	else if (!o.quiet)
		replay_print_text(&rp);
	fflush(stdout);
	if (R.c.verify_failures)
		fprintf(stderr, "kvctl: replay: %llu verification failures\n",
			(unsigned long long)R.c.verify_failures);
	status = R.c.verify_failures ? 1 : 0;
	{
		/* A peer that refused us (secret, namespace, geometry) is a configuration error. */
		unsigned np, nr = kv_peers_refused(R.kv, &np);

		if (nr) {
			fprintf(stderr, "kvctl: replay: %u of %u peers refused this client (see the "
				"libkv line above); their tier was not used\n", nr, np);
			status = 1;
		}
	}

out_kv:
	kv_close(R.kv);
out_engine:
	kvu_engine_free(&R.eng);
out_workload:
	for (uint32_t i = 0; R.reqs && i < R.nreq; i++) {
		free(R.reqs[i].h);
		free(R.reqs[i].tier);
		free(R.reqs[i].eb);
	}
	free(R.reqs);
	free(R.free_eb);
	kvr_hset_free(&R.seen);
	replay_trace_free(&R.tr);
	free(R.words);
	workload_free(&R.w);
	return status;
}
