// SPDX-License-Identifier: MIT
/*
 * cmd_bench.c - kvctl bench: what the library costs next to plain memory.
 *
 *   host   kv_store / kv_load throughput of the host tier for blocks of 64 KiB,
 *          1 MiB and 4 MiB (engine cache in host memory, vLLM NHD layout),
 *          against memcpy of the same bytes between the same engine cache and
 *          a buffer as large as the pool, measured in the same rounds, warm.
 *          The pool holds exactly one round's working set: after a warm-up
 *          round fills it, each round's stores evict the previous round's
 *          blocks (the steady state of a full cache) and its loads find
 *          every block of the round.
 *   hash   kv_hash_chain tokens per second for 16- and 256-token blocks.
 *   index  kv_lookup per second at a million resident blocks (tiny geometry:
 *          64-byte blocks), in batches of a chain's 64 blocks and singly.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kv.h"
#include "kvctl.h"
#include "util.h"

#define MAX_SIZES 8
#define MAX_ROUNDS 100

struct bench_opts {
	bool host, hash, index;
	size_t sizes[MAX_SIZES];
	unsigned nsizes;
	size_t working_set;
	uint64_t rounds;
	uint64_t batch;
	uint64_t index_blocks;
	uint64_t workers;
	double seconds;       /* per hash/index measurement */
	bool json;
	bool quiet;
};

#define DEF_WORKING_SET (256ull << 20)
#define DEF_ROUNDS 5
#define DEF_BATCH 32
#define DEF_INDEX_BLOCKS 1000000
#define DEF_SECONDS 0.5
#define INDEX_CHAIN 64
#define INDEX_ENGINE_BLOCKS 1024

static void bench_usage(FILE *f)
{
	fprintf(f,
"Usage: kvctl bench [OPTIONS]\n"
"Measure libkv's host tier against memcpy, hashing and index lookups.\n"
"\n"
"      --sections LIST     any of host,hash,index (default all)\n"
"      --sizes LIST        host tier block sizes, multiples of 4 KiB\n"
"                          (default 64K,1M,4M)\n"
"      --working-set SIZE  bytes stored and loaded per round and size; the\n"
"                          pool holds exactly this much (default %llu MiB)\n"
"      --rounds N          timed rounds per size; the median is reported\n"
"                          (default %d, after one warm-up round)\n"
"      --batch N           blocks per kv_store/kv_load call (default %d)\n"
"      --index-blocks N    resident blocks for the index section (default %d)\n"
"      --seconds S         time per hash/index measurement (default %.1f)\n"
"      --workers N         library copy threads (default: library's choice)\n"
"      --quick             a smoke run: working set 32M, 2 rounds, 100000\n"
"                          index blocks, 0.1 s per measurement\n"
"      --json              print the results as one JSON object\n"
"  -q, --quiet             no progress on stderr\n"
"  -h, --help              this text\n"
"Throughputs are GB/s (10^9 bytes/s) of block bytes moved; memcpy runs on\n"
"one thread, libkv on its workers. Exit status: 0 ok, 1 a library error or a\n"
"short load, 2 usage error.\n",
		(unsigned long long)(DEF_WORKING_SET >> 20), DEF_ROUNDS, DEF_BATCH,
		DEF_INDEX_BLOCKS, DEF_SECONDS);
}

enum {
	OPT_SECTIONS = 256, OPT_SIZES, OPT_WORKING_SET, OPT_ROUNDS, OPT_BATCH,
	OPT_INDEX_BLOCKS, OPT_SECONDS, OPT_WORKERS, OPT_QUICK, OPT_JSON,
};

static const struct option bench_longopts[] = {
	{ "sections", required_argument, NULL, OPT_SECTIONS },
	{ "sizes", required_argument, NULL, OPT_SIZES },
	{ "working-set", required_argument, NULL, OPT_WORKING_SET },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "index-blocks", required_argument, NULL, OPT_INDEX_BLOCKS },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "quick", no_argument, NULL, OPT_QUICK },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int bench_bad(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "kvctl: bench: invalid value '%s' for --%s (%s)\n", val, opt, want);
	fprintf(stderr, "Try 'kvctl bench --help'.\n");
	return 2;
}

static int parse_list(const char *arg, struct bench_opts *o, bool sizes)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	if (sizes)
		o->nsizes = 0;
	else
		o->host = o->hash = o->index = false;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (sizes) {
			size_t v;

			if (o->nsizes == MAX_SIZES || kvu_parse_size(tok, &v) || !v ||
			    v % 4096 || v > (1ull << 30)) {
				ret = -EINVAL;
				break;
			}
			o->sizes[o->nsizes++] = v;
		} else if (!strcmp(tok, "host")) {
			o->host = true;
		} else if (!strcmp(tok, "hash")) {
			o->hash = true;
		} else if (!strcmp(tok, "index")) {
			o->index = true;
		} else {
			ret = -EINVAL;
			break;
		}
	}
	if (!ret && ((sizes && !o->nsizes) || (!sizes && !o->host && !o->hash && !o->index)))
		ret = -EINVAL;
	free(copy);
	return ret;
}

static int parse_bench(int argc, char **argv, struct bench_opts *o)
{
	bool quick = false, ws_set = false, rounds_set = false, ib_set = false, sec_set = false;
	char *end;
	int c;

	memset(o, 0, sizeof(*o));
	o->host = o->hash = o->index = true;
	o->sizes[0] = 64 << 10;
	o->sizes[1] = 1 << 20;
	o->sizes[2] = 4 << 20;
	o->nsizes = 3;
	o->working_set = DEF_WORKING_SET;
	o->rounds = DEF_ROUNDS;
	o->batch = DEF_BATCH;
	o->index_blocks = DEF_INDEX_BLOCKS;
	o->seconds = DEF_SECONDS;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qh", bench_longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SECTIONS:
			if (parse_list(optarg, o, false))
				return bench_bad("sections", optarg, "a list of host, hash, index");
			break;
		case OPT_SIZES:
			if (parse_list(optarg, o, true))
				return bench_bad("sizes", optarg, "up to 8 sizes, multiples of 4K, at most 1G");
			break;
		case OPT_WORKING_SET:
			if (kvu_parse_size(optarg, &o->working_set) || !o->working_set)
				return bench_bad("working-set", optarg, "a size such as 256M");
			ws_set = true;
			break;
		case OPT_ROUNDS:
			if (kvu_parse_u64(optarg, 1, MAX_ROUNDS, &o->rounds))
				return bench_bad("rounds", optarg, "1..100");
			rounds_set = true;
			break;
		case OPT_BATCH:
			if (kvu_parse_u64(optarg, 1, 65536, &o->batch))
				return bench_bad("batch", optarg, "1..65536");
			break;
		case OPT_INDEX_BLOCKS:
			if (kvu_parse_u64(optarg, INDEX_CHAIN, 1ull << 28, &o->index_blocks))
				return bench_bad("index-blocks", optarg, "64..268435456");
			ib_set = true;
			break;
		case OPT_SECONDS:
			o->seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(o->seconds > 0 && o->seconds <= 60))
				return bench_bad("seconds", optarg, "a number in (0, 60]");
			sec_set = true;
			break;
		case OPT_WORKERS:
			if (kvu_parse_u64(optarg, 1, 256, &o->workers))
				return bench_bad("workers", optarg, "1..256");
			break;
		case OPT_QUICK:
			quick = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			bench_usage(stdout);
			return -1;
		case ':':
			fprintf(stderr, "kvctl: bench: option '%s' needs a value\n", argv[optind - 1]);
			fprintf(stderr, "Try 'kvctl bench --help'.\n");
			return 2;
		default:
			fprintf(stderr, "kvctl: bench: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "Try 'kvctl bench --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvctl: bench: unexpected argument '%s'\n", argv[optind]);
		fprintf(stderr, "Try 'kvctl bench --help'.\n");
		return 2;
	}
	if (quick) {
		if (!ws_set)
			o->working_set = 32ull << 20;
		if (!rounds_set)
			o->rounds = 2;
		if (!ib_set)
			o->index_blocks = 100000;
		if (!sec_set)
			o->seconds = 0.1;
	}
	return 0;
}

static void note(const struct bench_opts *o, const char *fmt, const char *what)
{
	if (!o->quiet && isatty(2))
		fprintf(stderr, fmt, what);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------ batches */

struct batch_result {
	uint64_t blocks;    /* blocks completed */
	uint64_t short_ops; /* completions with res < n */
	int first_err;      /* err of the first short completion */
};

/*
 * Store or load n blocks (h[i] <-> engine block eb[i]) in requests of batch
 * blocks, as many in flight as the library accepts, and wait for all.
 * Returns 0 or -errno of a refused submission.
 */
static int run_batches(struct kv *kv, bool store, const kv_hash *h, const uint32_t *eb,
		       size_t n, size_t batch, struct batch_result *br)
{
	struct kv_completion cq[64];
	size_t next = 0, inflight = 0;

	memset(br, 0, sizeof(*br));
	while (next < n || inflight) {
		while (next < n) {
			size_t k = n - next < batch ? n - next : batch;
			int ret = store ? kv_store(kv, h + next, eb + next, k, next) :
					  kv_load(kv, h + next, eb + next, k, next);

			if (ret == -EAGAIN)
				break;
			if (ret) {
				fprintf(stderr, "kvctl: bench: kv_%s of %zu blocks: %s\n",
					store ? "store" : "load", k, kv_strerror(ret));
				return ret;
			}
			next += k;
			inflight++;
		}
		if (!inflight)
			continue;   /* -EAGAIN with nothing of ours in flight: retry */
		int got = kv_wait(kv, cq, 64, 30000);

		if (got < 0) {
			fprintf(stderr, "kvctl: bench: kv_wait: %s\n", kv_strerror(got));
			return got;
		}
		if (got == 0) {
			fprintf(stderr, "kvctl: bench: no completion in 30 s\n");
			return -ETIMEDOUT;
		}
		for (int i = 0; i < got; i++) {
			if (cq[i].res > 0)
				br->blocks += (uint64_t)cq[i].res;
			if (cq[i].res < 0 || (uint32_t)cq[i].res < cq[i].n) {
				if (!br->short_ops++)
					br->first_err = cq[i].res < 0 ? cq[i].res : cq[i].err;
			}
		}
		inflight -= (size_t)got;
	}
	return 0;
}

/* ------------------------------------------------------------------ host */

struct host_row {
	size_t size;
	uint64_t blocks;
	struct kv_geometry g;
	double ours[3], mem[3];   /* store, load, store+load: GB/s (median) */
	double ratio[3];          /* median of the rounds' ours/mem */
	uint64_t evictions;       /* during the timed rounds */
	uint64_t short_ops;
	int first_err;
	bool pinned;
	bool done;
};

static const char *const op_name[3] = { "store", "load", "store_load" };

/* A geometry of exactly size bytes: fp16, 2 planes, 8 KV heads of 128. */
static void host_geometry(size_t size, struct kv_geometry *g)
{
	size_t per = 2 * 8 * 128 * 2;   /* bytes per token per layer */
	size_t tl = size / per;         /* tokens x layers */

	g->planes = 2;
	g->kv_heads = 8;
	g->head_dim = 128;
	g->dtype = KV_DTYPE_FP16;
	if (tl % 16 == 0) {
		g->block_tokens = 16;
		g->layers = (uint32_t)(tl / 16);
	} else {
		g->block_tokens = (uint32_t)tl;
		g->layers = 1;
	}
}

/* memcpy between the engine cache and a canonical buffer, block by block. */
static void memcpy_blocks(const struct kvu_engine *e, uint8_t *canon, size_t n, bool to_canon)
{
	for (size_t b = 0; b < n; b++) {
		uint8_t *c = canon + b * e->plane_bytes * e->g.planes * e->g.layers;

		for (uint32_t l = 0; l < e->g.layers; l++)
			for (uint32_t p = 0; p < e->g.planes; p++, c += e->plane_bytes) {
				uint8_t *eng = kvu_engine_plane(e, l, p, (uint32_t)b);

				if (to_canon)
					memcpy(c, eng, e->plane_bytes);
				else
					memcpy(eng, c, e->plane_bytes);
			}
	}
	/* Keep the copies from being optimised away. */
	__asm__ volatile("" : : "r"(canon) : "memory");
}

static void round_hashes(kv_hash *h, size_t n, size_t size, unsigned round)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t key[3] = { size, round, i };

		h[i] = kv_hash_root(key, sizeof(key));
	}
}

static int bench_host_size(const struct bench_opts *o, struct host_row *row)
{
	struct kvu_engine e;
	struct kv_config cfg;
	struct kv *kv = NULL;
	struct kv_stats st0, st1;
	struct batch_result br;
	kv_hash *h = NULL;
	uint32_t *eb = NULL;
	uint8_t *canon = MAP_FAILED;
	double v[3][3][MAX_ROUNDS];
	size_t n, bytes;
	int ret;

	memset(row->ours, 0, sizeof(row->ours));
	host_geometry(row->size, &row->g);
	if (kv_geometry_block_bytes(&row->g) != row->size) {
		fprintf(stderr, "kvctl: bench: no geometry of %zu bytes\n", row->size);
		return -EINVAL;
	}
	n = o->working_set / row->size;
	if (n < 1)
		n = 1;
	row->blocks = n;
	bytes = n * row->size;

	ret = kvu_engine_init(&e, &row->g, KV_LAYOUT_VLLM_NHD, (uint32_t)n);
	if (ret)
		return ret;
	for (size_t b = 0; b < n; b++)
		kvu_pattern_fill(&e, (uint32_t)b, kv_hash_root(&b, sizeof(b)));
	canon = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	h = calloc(n, sizeof(*h));
	eb = calloc(n, sizeof(*eb));
	if (canon == MAP_FAILED || !h || !eb) {
		fprintf(stderr, "kvctl: bench: cannot allocate %zu bytes of buffers\n", bytes);
		ret = -ENOMEM;
		goto out;
	}
	madvise(canon, bytes, MADV_HUGEPAGE);
	memset(canon, 1, bytes);
	for (size_t i = 0; i < n; i++)
		eb[i] = (uint32_t)i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.geometry = row->g;
	cfg.host_bytes = bytes;
	cfg.workers = (uint32_t)o->workers;
	cfg.ns_root = kv_hash_root("kvctl-bench", 11);
	cfg.flags = KV_F_QUIET;
	ret = kv_open(&cfg, &kv);
	if (ret) {
		fprintf(stderr, "kvctl: bench: cannot open a %zu-byte host pool: %s\n",
			bytes, kv_strerror(ret));
		goto out;
	}
	ret = kv_attach(kv, &e.ec);
	if (ret) {
		fprintf(stderr, "kvctl: bench: cannot attach the engine cache: %s\n", kv_strerror(ret));
		goto out;
	}

	/* Warm-up: fault in the pool, the engine cache and the buffer. */
	round_hashes(h, n, row->size, 0);
	if ((ret = run_batches(kv, true, h, eb, n, o->batch, &br)) ||
	    (ret = run_batches(kv, false, h, eb, n, o->batch, &br)))
		goto out;
	memcpy_blocks(&e, canon, n, true);
	memcpy_blocks(&e, canon, n, false);
	kv_stats(kv, &st0);

	for (unsigned r = 0; r < o->rounds; r++) {
		uint64_t t0, t1, t2, t3, t4;

		round_hashes(h, n, row->size, r + 1);
		t0 = kvu_now_ns();
		memcpy_blocks(&e, canon, n, true);
		t1 = kvu_now_ns();
		ret = run_batches(kv, true, h, eb, n, o->batch, &br);
		t2 = kvu_now_ns();
		if (ret)
			goto out;
		if (br.short_ops && !row->short_ops++)
			row->first_err = br.first_err;
		ret = run_batches(kv, false, h, eb, n, o->batch, &br);
		t3 = kvu_now_ns();
		if (ret)
			goto out;
		if (br.short_ops && !row->short_ops++)
			row->first_err = br.first_err;
		memcpy_blocks(&e, canon, n, false);
		t4 = kvu_now_ns();

		v[0][0][r] = bytes / (double)(t2 - t1);     /* bytes/ns = GB/s */
		v[0][1][r] = bytes / (double)(t1 - t0);
		v[1][0][r] = bytes / (double)(t3 - t2);
		v[1][1][r] = bytes / (double)(t4 - t3);
		v[2][0][r] = 2.0 * bytes / (double)(t3 - t1);
		v[2][1][r] = 2.0 * bytes / (double)((t1 - t0) + (t4 - t3));
		for (int k = 0; k < 3; k++)
			v[k][2][r] = v[k][0][r] / v[k][1][r];
	}
	kv_stats(kv, &st1);
	/* Loads must have brought back the stored bytes. */
	for (size_t b = 0; b < n; b++)
		if (kvu_pattern_check(&e, (uint32_t)b, kv_hash_root(&b, sizeof(b)))) {
			fprintf(stderr, "kvctl: bench: engine block %zu came back wrong\n", b);
			ret = -EBADMSG;
			goto out;
		}
	for (int k = 0; k < 3; k++) {
		row->ours[k] = median(v[k][0], (unsigned)o->rounds);
		row->mem[k] = median(v[k][1], (unsigned)o->rounds);
		row->ratio[k] = median(v[k][2], (unsigned)o->rounds);
	}
	row->evictions = st1.tier[KV_TIER_HOST].evictions - st0.tier[KV_TIER_HOST].evictions;
	row->pinned = st1.host_pinned;
	row->done = true;
	ret = 0;
out:
	kv_close(kv);
	if (canon != MAP_FAILED)
		munmap(canon, bytes);
	free(h);
	free(eb);
	kvu_engine_free(&e);
	return ret;
}

/* ------------------------------------------------------------------ hash */

struct hash_row {
	uint32_t block_tokens;
	double tokens_per_s;
	double ns_per_token;
};

static int bench_hash(const struct bench_opts *o, struct hash_row *row)
{
	const size_t ntok = 1 << 20;
	uint32_t *tok = malloc(ntok * sizeof(*tok));
	kv_hash *out = malloc((ntok / row->block_tokens + 1) * sizeof(*out));
	struct kvu_rng rng = { 42 };
	kv_hash root = kv_hash_root("kvctl-bench-hash", 16);
	uint64_t t0, t, total = 0;
	size_t chunk = 65536;   /* tokens per call: a long prompt */

	if (!tok || !out) {
		free(tok);
		free(out);
		fprintf(stderr, "kvctl: bench: cannot allocate the token buffer\n");
		return -ENOMEM;
	}
	for (size_t i = 0; i < ntok; i++)
		tok[i] = (uint32_t)kvu_rng_below(&rng, 128000);
	kv_hash_chain(root, tok, ntok, row->block_tokens, out);   /* warm */
	t0 = kvu_now_ns();
	do {
		for (size_t off = 0; off < ntok; off += chunk) {
			size_t got = kv_hash_chain(root, tok + off, chunk, row->block_tokens, out);

			total += got * row->block_tokens;
		}
		t = kvu_now_ns();
	} while (t - t0 < (uint64_t)(o->seconds * 1e9));
	row->tokens_per_s = total / ((t - t0) / 1e9);
	row->ns_per_token = (t - t0) / (double)total;
	free(tok);
	free(out);
	return 0;
}

/* ------------------------------------------------------------------ index */

struct index_row {
	uint64_t blocks, resident;
	size_t block_bytes, pool_bytes;
	double insert_per_s;
	double batch_per_s, single_per_s, miss_per_s;
	uint64_t wrong;   /* lookups that did not find what was stored */
	bool done;
};

static int bench_index(const struct bench_opts *o, struct index_row *row)
{
	struct kv_geometry g = {
		.layers = 1, .planes = 2, .block_tokens = 16, .kv_heads = 1,
		.head_dim = 1, .dtype = KV_DTYPE_FP16,
	};
	struct kvu_engine e;
	struct kv_config cfg;
	struct kv *kv = NULL;
	struct kv_stats st;
	struct batch_result br;
	struct kvu_rng rng = { 7 };
	size_t n = o->index_blocks / INDEX_CHAIN * INDEX_CHAIN, chains = n / INDEX_CHAIN;
	uint32_t *tok = NULL, *eb = NULL;
	kv_hash *h = NULL;
	uint8_t tier[INDEX_CHAIN];
	uint64_t t0, t, calls, found;
	const uint64_t limit = (uint64_t)(o->seconds * 1e9);
	int ret;

	row->blocks = n;
	row->block_bytes = kv_geometry_block_bytes(&g);
	ret = kvu_engine_init(&e, &g, KV_LAYOUT_VLLM_NHD, INDEX_ENGINE_BLOCKS);
	if (ret)
		return ret;
	h = malloc(n * sizeof(*h));
	eb = malloc(n * sizeof(*eb));
	tok = malloc((size_t)INDEX_CHAIN * g.block_tokens * sizeof(*tok));
	if (!h || !eb || !tok) {
		fprintf(stderr, "kvctl: bench: cannot allocate %zu hashes\n", n);
		ret = -ENOMEM;
		goto out;
	}
	/* Chains of 64 blocks, each from its own root, like distinct prompts. */
	for (size_t c = 0; c < chains; c++) {
		kv_hash root = kv_hash_root(&c, sizeof(c));

		for (size_t i = 0; i < (size_t)INDEX_CHAIN * g.block_tokens; i++)
			tok[i] = (uint32_t)kvu_rng_below(&rng, 128000);
		kv_hash_chain(root, tok, (size_t)INDEX_CHAIN * g.block_tokens, g.block_tokens,
			      h + c * INDEX_CHAIN);
	}
	for (size_t i = 0; i < n; i++)
		eb[i] = (uint32_t)(i % INDEX_ENGINE_BLOCKS);

	memset(&cfg, 0, sizeof(cfg));
	cfg.geometry = g;
	cfg.host_bytes = n * row->block_bytes;
	cfg.workers = (uint32_t)o->workers;
	cfg.ns_root = kv_hash_root("kvctl-bench-index", 17);
	cfg.flags = KV_F_QUIET;
	ret = kv_open(&cfg, &kv);
	if (!ret && !kv_stats(kv, &st) && st.tier[KV_TIER_HOST].capacity < n &&
	    st.tier[KV_TIER_HOST].capacity) {
		/*
		 * The pool spends more than block_bytes per block (aligned
		 * slots): grow it so that n blocks fit, within reason, and say
		 * so in the output (pool_bytes).
		 */
		size_t per = (cfg.host_bytes + st.tier[KV_TIER_HOST].capacity - 1) /
			     st.tier[KV_TIER_HOST].capacity;
		size_t want = n * per, cap = 8ull << 30;
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

		if (pages > 0 && psz > 0 && (size_t)pages * (size_t)psz / 4 < cap)
			cap = (size_t)pages * (size_t)psz / 4;
		kv_close(kv);
		kv = NULL;
		cfg.host_bytes = want < cap ? want : cap;
		ret = kv_open(&cfg, &kv);
	}
	if (ret) {
		fprintf(stderr, "kvctl: bench: cannot open a pool of %zu blocks (%zu bytes): %s\n",
			n, cfg.host_bytes, kv_strerror(ret));
		goto out;
	}
	row->pool_bytes = cfg.host_bytes;
	if (!kv_stats(kv, &st) && st.tier[KV_TIER_HOST].capacity < n) {
		/* Still short: measure at what fits, whole chains. */
		n = st.tier[KV_TIER_HOST].capacity / INDEX_CHAIN * INDEX_CHAIN;
		chains = n / INDEX_CHAIN;
		if (!chains) {
			fprintf(stderr, "kvctl: bench: the pool holds no %d-block chain\n", INDEX_CHAIN);
			ret = -ENOSPC;
			goto out;
		}
		row->blocks = n;
	}
	ret = kv_attach(kv, &e.ec);
	if (ret) {
		fprintf(stderr, "kvctl: bench: cannot attach the engine cache: %s\n", kv_strerror(ret));
		goto out;
	}
	t0 = kvu_now_ns();
	ret = run_batches(kv, true, h, eb, n, INDEX_ENGINE_BLOCKS, &br);
	t = kvu_now_ns();
	if (ret)
		goto out;
	row->insert_per_s = br.blocks / ((t - t0) / 1e9);
	kv_stats(kv, &st);
	row->resident = st.tier[KV_TIER_HOST].blocks;

	/* A chain's 64 blocks per call, chains in random order. */
	calls = found = 0;
	t0 = kvu_now_ns();
	do {
		for (int k = 0; k < 256; k++) {
			size_t c = kvu_rng_below(&rng, chains);
			int got = kv_lookup(kv, h + c * INDEX_CHAIN, INDEX_CHAIN, tier);

			if (got < 0) {
				fprintf(stderr, "kvctl: bench: kv_lookup: %s\n", kv_strerror(got));
				ret = got;
				goto out;
			}
			found += (uint64_t)got;
		}
		calls += 256;
		t = kvu_now_ns();
	} while (t - t0 < limit);
	row->batch_per_s = calls * INDEX_CHAIN / ((t - t0) / 1e9);
	row->wrong += calls * INDEX_CHAIN - found;

	/* One hash per call, random blocks. */
	calls = found = 0;
	t0 = kvu_now_ns();
	do {
		for (int k = 0; k < 1024; k++) {
			int got = kv_lookup(kv, h + kvu_rng_below(&rng, n), 1, tier);

			found += got == 1;
		}
		calls += 1024;
		t = kvu_now_ns();
	} while (t - t0 < limit);
	row->single_per_s = calls / ((t - t0) / 1e9);
	row->wrong += calls - found;

	/* One absent hash per call. */
	calls = found = 0;
	t0 = kvu_now_ns();
	do {
		for (int k = 0; k < 1024; k++) {
			kv_hash x = { kvu_rng_next(&rng), kvu_rng_next(&rng) | 1 };

			found += kv_lookup(kv, &x, 1, tier) != 0;
		}
		calls += 1024;
		t = kvu_now_ns();
	} while (t - t0 < limit);
	row->miss_per_s = calls / ((t - t0) / 1e9);
	row->wrong += found;
	row->done = true;
	ret = 0;
out:
	kv_close(kv);
	free(h);
	free(eb);
	free(tok);
	kvu_engine_free(&e);
	return ret;
}

/* ------------------------------------------------------------------ output */

static const char *size_key(size_t size, char *buf, size_t len)
{
	if (size % (1 << 30) == 0)
		snprintf(buf, len, "%zuGiB", size >> 30);
	else if (size % (1 << 20) == 0)
		snprintf(buf, len, "%zuMiB", size >> 20);
	else
		snprintf(buf, len, "%zuKiB", size >> 10);
	return buf;
}

static void print_text(const struct bench_opts *o, const struct host_row *hr, unsigned nh,
		       const struct hash_row *hs, unsigned nhs, const struct index_row *ix)
{
	char b1[32], b2[32];

	if (o->host && nh) {
		printf("host tier: kv_store/kv_load vs memcpy (1 thread), engine cache in host memory (vLLM NHD)\n");
		printf("  working set %s per round = pool size; %llu timed rounds (median), batches of %llu blocks;\n",
		       kvu_fmt_bytes(b1, sizeof(b1), (double)o->working_set),
		       (unsigned long long)o->rounds, (unsigned long long)o->batch);
		printf("  each round's stores evict the previous round (steady state of a full pool);\n");
		printf("  ratio = median over rounds of libkv/memcpy measured back to back\n");
		printf("  %-8s %-10s %10s %12s %7s\n", "block", "op", "libkv GB/s", "memcpy GB/s", "ratio");
		for (unsigned i = 0; i < nh; i++) {
			if (!hr[i].done)
				continue;
			for (int k = 0; k < 3; k++)
				printf("  %-8s %-10s %10.2f %12.2f %7.2f\n",
				       k ? "" : kvu_fmt_bytes(b2, sizeof(b2), (double)hr[i].size),
				       k == 2 ? "store+load" : op_name[k], hr[i].ours[k], hr[i].mem[k],
				       hr[i].ratio[k]);
			printf("  %-8s (%llu blocks of %u layer%s x %u tokens; %llu evictions%s%s)\n", "",
			       (unsigned long long)hr[i].blocks, hr[i].g.layers,
			       hr[i].g.layers == 1 ? "" : "s", hr[i].g.block_tokens,
			       (unsigned long long)hr[i].evictions, hr[i].pinned ? ", pinned pool" : "",
			       hr[i].short_ops ? ", SHORT LOADS/STORES" : "");
		}
	}
	if (o->hash && nhs) {
		printf("hashing: kv_hash_chain (XXH3-128 chain)\n");
		printf("  %-12s %14s %10s\n", "block", "tokens/s", "ns/token");
		for (unsigned i = 0; i < nhs; i++) {
			char name[32];

			snprintf(name, sizeof(name), "%u tokens", hs[i].block_tokens);
			printf("  %-12s %14.0f %10.3f\n", name, hs[i].tokens_per_s, hs[i].ns_per_token);
		}
	}
	if (o->index && ix->done) {
		printf("index: kv_lookup at %llu resident blocks (%zu-byte blocks, pool %s)\n",
		       (unsigned long long)ix->resident, ix->block_bytes,
		       kvu_fmt_bytes(b1, sizeof(b1), (double)ix->pool_bytes));
		printf("  %-22s %14s %10s\n", "op", "lookups/s", "ns/lookup");
		printf("  %-22s %14.0f %10.1f\n", "batch of 64 (hits)", ix->batch_per_s, 1e9 / ix->batch_per_s);
		printf("  %-22s %14.0f %10.1f\n", "single (hit)", ix->single_per_s, 1e9 / ix->single_per_s);
		printf("  %-22s %14.0f %10.1f\n", "single (miss)", ix->miss_per_s, 1e9 / ix->miss_per_s);
		printf("  %-22s %14.0f %10.1f\n", "insert (kv_store)", ix->insert_per_s, 1e9 / ix->insert_per_s);
		if (ix->wrong)
			printf("  %llu lookups gave a wrong answer\n", (unsigned long long)ix->wrong);
	}
}

static void print_json(const struct bench_opts *o, const struct host_row *hr, unsigned nh,
		       const struct hash_row *hs, unsigned nhs, const struct index_row *ix)
{
	char key[32];
	bool first = true;

	printf("{\"command\":\"bench\",\"threads_memcpy\":1,\"cpus\":%ld", sysconf(_SC_NPROCESSORS_ONLN));
	if (o->host) {
		printf(",\"host\":{\"working_set\":%zu,\"rounds\":%llu,\"batch\":%llu,\"evicting\":true",
		       o->working_set, (unsigned long long)o->rounds, (unsigned long long)o->batch);
		for (unsigned i = 0; i < nh; i++) {
			if (!hr[i].done)
				continue;
			printf(",\"%s\":{\"block_bytes\":%zu,\"blocks\":%llu,\"layers\":%u,\"block_tokens\":%u,"
			       "\"evictions\":%llu,\"short\":%llu,\"pinned\":%s",
			       size_key(hr[i].size, key, sizeof(key)), hr[i].size,
			       (unsigned long long)hr[i].blocks, hr[i].g.layers, hr[i].g.block_tokens,
			       (unsigned long long)hr[i].evictions, (unsigned long long)hr[i].short_ops,
			       hr[i].pinned ? "true" : "false");
			for (int k = 0; k < 3; k++)
				printf(",\"%s\":{\"libkv_gbps\":%.4f,\"memcpy_gbps\":%.4f,\"ratio\":%.4f}",
				       op_name[k], hr[i].ours[k], hr[i].mem[k], hr[i].ratio[k]);
			printf("}");
		}
		printf("}");
	}
	if (o->hash) {
		printf(",\"hash\":{");
		for (unsigned i = 0; i < nhs; i++) {
			printf("%s\"%u_tokens\":{\"tokens_per_s\":%.1f,\"ns_per_token\":%.4f}",
			       first ? "" : ",", hs[i].block_tokens, hs[i].tokens_per_s, hs[i].ns_per_token);
			first = false;
		}
		printf("}");
	}
	if (o->index && ix->done)
		printf(",\"index\":{\"blocks\":%llu,\"resident\":%llu,\"block_bytes\":%zu,\"pool_bytes\":%zu,"
		       "\"lookup_batch_per_s\":%.1f,\"lookup_batch_size\":%d,\"lookup_single_per_s\":%.1f,"
		       "\"lookup_miss_per_s\":%.1f,\"insert_per_s\":%.1f,\"wrong\":%llu}",
		       (unsigned long long)ix->blocks, (unsigned long long)ix->resident,
		       ix->block_bytes, ix->pool_bytes, ix->batch_per_s, INDEX_CHAIN, ix->single_per_s,
		       ix->miss_per_s, ix->insert_per_s, (unsigned long long)ix->wrong);
	printf("}\n");
}

int kvctl_bench(int argc, char **argv)
{
	struct bench_opts o;
	struct host_row hr[MAX_SIZES];
	struct hash_row hs[2] = { { .block_tokens = 16 }, { .block_tokens = 256 } };
	struct index_row ix;
	unsigned nh = 0, nhs = 0;
	int ret, status = 0;
	char b[32];

	ret = parse_bench(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;
	memset(hr, 0, sizeof(hr));
	memset(&ix, 0, sizeof(ix));

	if (o.host)
		for (unsigned i = 0; i < o.nsizes; i++) {
			hr[nh].size = o.sizes[i];
			note(&o, "bench: host tier, %s blocks...\n",
			     kvu_fmt_bytes(b, sizeof(b), (double)o.sizes[i]));
			if (bench_host_size(&o, &hr[nh]))
				status = 1;
			if (hr[nh].short_ops) {
				fprintf(stderr, "kvctl: bench: %s: %llu rounds with short stores/loads (%s)\n",
					kvu_fmt_bytes(b, sizeof(b), (double)o.sizes[i]),
					(unsigned long long)hr[nh].short_ops, kv_strerror(hr[nh].first_err));
				status = 1;
			}
			nh++;
		}
	if (o.hash)
		for (unsigned i = 0; i < 2; i++) {
			note(&o, "bench: hashing%s...\n", "");
			if (bench_hash(&o, &hs[i]))
				status = 1;
			else
				nhs++;
		}
	if (o.index) {
		note(&o, "bench: index%s...\n", "");
		if (bench_index(&o, &ix))
			status = 1;
		else if (ix.wrong) {
			fprintf(stderr, "kvctl: bench: %llu lookups gave a wrong answer\n",
				(unsigned long long)ix.wrong);
			status = 1;
		}
	}
	if (o.json)
		print_json(&o, hr, nh, hs, nhs, &ix);
	else
		print_text(&o, hr, nh, hs, nhs, &ix);
	return status;
}
