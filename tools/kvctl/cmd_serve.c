/* SPDX-License-Identifier: MIT */
/*
 * cmd_serve.c - `kvctl serve`: a memory server for remote tiers, and
 * `kvctl status --server HOST:PORT`: its pool, blocks, clients, counters.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kv.h"
#include "proto.h"
#include "remote.h"
#include "remote_rdma.h"
#include "server.h"
#include "util.h"

int kvctl_serve(int argc, char **argv);
int kvctl_server_status(const char *hostport, const char *auth_file, int json);

#define DEF_LAYERS 8
#define DEF_PLANES 2
#define DEF_BLOCK_TOKENS 16
#define DEF_KV_HEADS 4
#define DEF_HEAD_DIM 128

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void serve_usage(FILE *f)
{
	fprintf(f,
"Usage: kvctl serve --listen HOST:PORT --pool BYTES [options]\n"
"Run a memory server that remote tiers (libkv peers) store blocks in.\n"
"  -l, --listen HOST:PORT  address to listen on (required; port 0: any free port)\n"
"  -p, --pool BYTES        pool size, e.g. 4G (required; whole blocks are used)\n"
"      --block-bytes N     block size clients must use (default %u, the size of\n"
"                          kvctl replay's default geometry)\n"
"      --layers N --planes N --block-tokens N --kv-heads N --head-dim N --dtype T\n"
"                          pin an exact geometry instead (defaults %u,%u,%u,%u,%u,fp16)\n"
"      --auth-file FILE    require clients to prove knowledge of this shared secret\n"
"      --ns-quota BLOCKS   at most BLOCKS blocks per namespace (default: no quota)\n"
"      --rdma-dev NAME     also serve RDMA clients through this verbs device\n"
"                          (the pool is registered once; default: TCP only)\n"
"      --lease-ms MS       close a client that holds any one lease or grant (RDMA)\n"
"                          or leaves an answer unread for longer (default 30000)\n"
"      --verify-commit     check the checksum of each RDMA-written block at commit\n"
"                          (readers always verify; default: off)\n"
"      --no-kvmem          never allocate the pool from /dev/kvmem\n"
"      --port-file FILE    write the bound port to FILE once listening\n"
"  -q, --quiet             no per-connection log lines\n"
"Logs one line per connection event on stdout. SIGINT/SIGTERM stop it.\n",
		DEF_LAYERS * DEF_PLANES * DEF_BLOCK_TOKENS * DEF_KV_HEADS * DEF_HEAD_DIM * 2,
		DEF_LAYERS, DEF_PLANES, DEF_BLOCK_TOKENS, DEF_KV_HEADS, DEF_HEAD_DIM);
}

enum {
	OPT_BLOCK_BYTES = 256, OPT_LAYERS, OPT_PLANES, OPT_BLOCK_TOKENS, OPT_KV_HEADS,
	OPT_HEAD_DIM, OPT_DTYPE, OPT_AUTH, OPT_QUOTA, OPT_RDMA, OPT_NO_KVMEM, OPT_PORT_FILE, OPT_LEASE, OPT_VERIFY,
};

static int split_hostport(const char *s, char *host, size_t hl, char *port, size_t pl)
{
	const char *c = strrchr(s, ':');
	if (!c || c == s)
		return -EINVAL;
	const char *hs = s, *he = c;
	if (*s == '[' && c[-1] == ']') {
		hs++;
		he--;
	}
	if ((size_t)(he - hs) >= hl || strlen(c + 1) >= pl || !c[1])
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = 0;
	strcpy(port, c + 1);
	char *end;
	long v = strtol(port, &end, 10);
	return *end || v < 0 || v > 65535 ? -EINVAL : 0;
}

int kvctl_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "pool", required_argument, NULL, 'p' },
		{ "block-bytes", required_argument, NULL, OPT_BLOCK_BYTES },
		{ "layers", required_argument, NULL, OPT_LAYERS },
		{ "planes", required_argument, NULL, OPT_PLANES },
		{ "block-tokens", required_argument, NULL, OPT_BLOCK_TOKENS },
		{ "kv-heads", required_argument, NULL, OPT_KV_HEADS },
		{ "head-dim", required_argument, NULL, OPT_HEAD_DIM },
		{ "dtype", required_argument, NULL, OPT_DTYPE },
		{ "auth-file", required_argument, NULL, OPT_AUTH },
		{ "ns-quota", required_argument, NULL, OPT_QUOTA },
		{ "rdma-dev", required_argument, NULL, OPT_RDMA },
		{ "no-kvmem", no_argument, NULL, OPT_NO_KVMEM },
		{ "port-file", required_argument, NULL, OPT_PORT_FILE },
		{ "lease-ms", required_argument, NULL, OPT_LEASE },
		{ "verify-commit", no_argument, NULL, OPT_VERIFY },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct kv_geometry g = { DEF_LAYERS, DEF_PLANES, DEF_BLOCK_TOKENS, DEF_KV_HEADS,
				 DEF_HEAD_DIM, KV_DTYPE_FP16 };
	const char *listen_at = NULL, *auth = NULL, *port_file = NULL, *rdma = NULL;
	size_t pool = 0, block_bytes = 0;
	uint64_t quota = 0, lease_ms = 30000, v;
	bool strict = false, quiet = false, verify = false;
	uint32_t rflags = KV_F_QUIET;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "l:p:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_at = optarg; break;
		case 'p':
			if (kvu_parse_size(optarg, &pool) || pool == 0) {
				fprintf(stderr, "kvctl serve: bad --pool '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_BLOCK_BYTES:
			if (kvu_parse_size(optarg, &block_bytes) || block_bytes == 0 ||
			    block_bytes > KVP_MAX_BLOCK) {
				fprintf(stderr, "kvctl serve: bad --block-bytes '%s' (1..%u)\n", optarg,
					KVP_MAX_BLOCK);
				return 2;
			}
			break;
		case OPT_LAYERS: case OPT_PLANES: case OPT_BLOCK_TOKENS:
		case OPT_KV_HEADS: case OPT_HEAD_DIM:
			if (kvu_parse_u64(optarg, 1, 1u << 20, &v)) {
				fprintf(stderr, "kvctl serve: bad value '%s'\n", optarg);
				return 2;
			}
			if (c == OPT_LAYERS) g.layers = (uint32_t)v;
			if (c == OPT_PLANES) g.planes = (uint32_t)v;
			if (c == OPT_BLOCK_TOKENS) g.block_tokens = (uint32_t)v;
			if (c == OPT_KV_HEADS) g.kv_heads = (uint32_t)v;
			if (c == OPT_HEAD_DIM) g.head_dim = (uint32_t)v;
			strict = true;
			break;
		case OPT_DTYPE:
			if (!(g.dtype = kvu_dtype_parse(optarg))) {
				fprintf(stderr, "kvctl serve: unknown --dtype '%s'\n", optarg);
				return 2;
			}
			strict = true;
			break;
		case OPT_AUTH: auth = optarg; break;
		case OPT_QUOTA:
			if (kvu_parse_u64(optarg, 1, UINT32_MAX, &quota)) {
				fprintf(stderr, "kvctl serve: bad --ns-quota '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_RDMA: rdma = optarg; break;
		case OPT_LEASE:
			if (kvu_parse_u64(optarg, 100, 3600000, &lease_ms)) {
				fprintf(stderr, "kvctl serve: bad --lease-ms '%s' (100..3600000)\n", optarg);
				return 2;
			}
			break;
		case OPT_NO_KVMEM: rflags |= KV_F_NO_KVMEM; break;
		case OPT_VERIFY: verify = true; break;
		case OPT_PORT_FILE: port_file = optarg; break;
		case 'q': quiet = true; break;
		case 'h': serve_usage(stdout); return 0;
		default: serve_usage(stderr); return 2;
		}
	}
	if (!listen_at || !pool || optind != argc) {
		serve_usage(stderr);
		return 2;
	}
	char host[256], port[16];
	if (split_hostport(listen_at, host, sizeof(host), port, sizeof(port))) {
		fprintf(stderr, "kvctl serve: bad --listen '%s' (HOST:PORT)\n", listen_at);
		return 2;
	}
	if (strict) {
		size_t bb = kv_geometry_block_bytes(&g);
		if (!bb || (block_bytes && block_bytes != bb)) {
			fprintf(stderr, "kvctl serve: bad geometry (or --block-bytes disagrees with it)\n");
			return 2;
		}
		block_bytes = bb;
	} else if (!block_bytes) {
		block_bytes = kv_geometry_block_bytes(&g);
	}
	if (pool < block_bytes) {
		fprintf(stderr, "kvctl serve: --pool %zu holds no %zu-byte block\n", pool, block_bytes);
		return 2;
	}
	uint8_t secret[KVP_SECRET_MAX];
	int slen = 0;
	if (auth) {
		struct stat sb;
		slen = kvp_secret_load(auth, secret);
		if (slen < 0) {
			fprintf(stderr, "kvctl serve: cannot read --auth-file %s: %s\n", auth,
				strerror(-slen));
			return 1;
		}
		if (stat(auth, &sb) == 0 && (sb.st_mode & 077))
			fprintf(stderr, "kvctl serve: warning: %s is readable by group/others\n", auth);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct kvs_config cfg = {
		.pool_bytes = pool,
		.block_bytes = block_bytes,
		.geom = strict ? &g : NULL,
		.secret = slen > 0 ? secret : NULL,
		.secret_len = slen > 0 ? (size_t)slen : 0,
		.ns_quota = quota,
		.region_flags = rflags,
		.rdma_dev = rdma,
		.lease_ms = lease_ms,
		.verify_commit = verify,
		.log = quiet ? NULL : stdout,
	};
	struct kvs *s;
	int err = kvs_create(&cfg, &s);
	memset(secret, 0, sizeof(secret));
	if (err) {
		if (rdma && err == -ELIBACC)
			fprintf(stderr, "kvctl serve: --rdma-dev %s: %s (install libibverbs1 and "
				"ibverbs-providers, or serve TCP only)\n", rdma, kvr_verbs_error());
		else if (rdma)
			fprintf(stderr, "kvctl serve: cannot set up a %zu-byte pool registered with "
				"RDMA device %s: %s%s\n", pool, rdma, strerror(-err),
				err == -EPERM || err == -ENOMEM ? " (RLIMIT_MEMLOCK? see ulimit -l)" : "");
		else
			fprintf(stderr, "kvctl serve: cannot allocate a %zu-byte pool: %s%s\n", pool,
				strerror(-err), err == -EPERM || err == -ENOMEM ?
				" (RLIMIT_MEMLOCK? see ulimit -l)" : "");
		return 1;
	}
	int bound = 0;
	err = kvs_listen(s, host, port, &bound);
	if (err) {
		fprintf(stderr, "kvctl serve: cannot listen on %s: %s\n", listen_at, strerror(-err));
		kvs_destroy(s);
		return 1;
	}
	if (port_file) {
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", bound) < 0 || fclose(f) || rename(tmp, port_file)) {
			fprintf(stderr, "kvctl serve: cannot write %s\n", port_file);
			kvs_destroy(s);
			return 1;
		}
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	err = kvs_run(s, &stop_flag);
	kvs_destroy(s);
	if (err) {
		fprintf(stderr, "kvctl serve: %s\n", strerror(-err));
		return 1;
	}
	if (!quiet)
		printf("serve: stopped\n");
	return 0;
}

int kvctl_server_status(const char *hostport, const char *auth, int json)
{
	uint64_t st[KVP_ST_COUNT];
	char why[KVP_REASON_MAX + 1] = "";
	int n = kv_remote_server_stats(hostport, auth, 2000, st, KVP_ST_COUNT, why, sizeof(why));
	if (n < 0) {
		if (why[0])
			fprintf(stderr, "kvctl: server %s: %s\n", hostport, why);
		fprintf(stderr, "kvctl: cannot get status of server %s: %s\n", hostport, strerror(-n));
		return 1;
	}
	if (json) {
		printf("{\"server\":\"%s\"", hostport);
		for (unsigned i = 0; i < KVP_ST_COUNT; i++)
			printf(",\"%s\":%llu", kvp_stat_names[i], (unsigned long long)st[i]);
		printf("}\n");
		return 0;
	}
	char b1[32], b2[32];
	printf("server %s\n", hostport);
	printf("  pool        %s in %llu blocks of %s (%s)\n",
	       kvu_fmt_bytes(b1, sizeof(b1), (double)st[KVP_ST_POOL_BYTES]),
	       (unsigned long long)st[KVP_ST_CAPACITY],
	       kvu_fmt_bytes(b2, sizeof(b2), (double)st[KVP_ST_BLOCK_BYTES]),
	       st[KVP_ST_PROVIDER] == KV_PROVIDER_KVMEM ? "kvmem region" : "mmap");
	printf("  blocks      %llu held, %llu namespaces, %llu leased\n",
	       (unsigned long long)st[KVP_ST_BLOCKS], (unsigned long long)st[KVP_ST_NAMESPACES],
	       (unsigned long long)st[KVP_ST_LEASES]);
	printf("  clients     %llu connected, %llu since start\n",
	       (unsigned long long)st[KVP_ST_CLIENTS], (unsigned long long)st[KVP_ST_CONNS_TOTAL]);
	printf("  requests    %llu puts, %llu gets: %llu hits, %llu misses, %llu evictions\n",
	       (unsigned long long)st[KVP_ST_PUTS], (unsigned long long)st[KVP_ST_GETS],
	       (unsigned long long)st[KVP_ST_HITS], (unsigned long long)st[KVP_ST_MISSES],
	       (unsigned long long)st[KVP_ST_EVICTIONS]);
	printf("  bytes       %s in, %s out\n", kvu_fmt_bytes(b1, sizeof(b1), (double)st[KVP_ST_BYTES_IN]),
	       kvu_fmt_bytes(b2, sizeof(b2), (double)st[KVP_ST_BYTES_OUT]));
	printf("  refused     %llu hellos, %llu auth failures, %llu protocol errors\n",
	       (unsigned long long)st[KVP_ST_REFUSED], (unsigned long long)st[KVP_ST_AUTH_FAILURES],
	       (unsigned long long)st[KVP_ST_PROTO_ERRORS]);
	printf("  uptime      %.1f s\n", (double)st[KVP_ST_UPTIME_MS] / 1000.0);
	return 0;
}
