// SPDX-License-Identifier: MIT
/*
 * bench_latency.c - latency rows of make bench (public API only, so the same
 * source builds against an older libkv for before/after tables):
 *   host_hit  p50/p99 of a 16-block kv_load whose blocks are all in host
 *             memory, without and with a peer configured (they must match:
 *             a host hit sends nothing to the peer);
 *   store     p50/p99 of a 16-block kv_store of new blocks into a host pool
 *             that is full of dirty blocks over a disk tier (every slot a
 *             store takes must first be written down to disk by someone).
 * usage: bench_latency DIR [HOST:PORT]   (DIR: where the disk tier file goes)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"

#define NB 64          /* engine blocks */
#define BATCH 16
#define ITERS 2000

static struct kv_geometry geom = { 8, 2, 16, 8, 128, KV_DTYPE_FP16 }; /* 512 KiB blocks */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void pct(double *v, int n, double *p50, double *p99)
{
	qsort(v, n, sizeof(*v), cmp_d);
	*p50 = v[n / 2];
	*p99 = v[(int)(n * 0.99)];
}

struct engine {
	void *layers[8];
	unsigned char *mem;
	struct kv_engine_cache ec;
};

static int engine_init(struct engine *e)
{
	size_t per_layer = 2 * (size_t)NB * (kv_geometry_block_bytes(&geom) / geom.layers / 2);

	e->mem = malloc(per_layer * geom.layers);
	if (!e->mem)
		return -ENOMEM;
	for (size_t i = 0; i < per_layer * geom.layers; i++)
		e->mem[i] = (unsigned char)(i * 31 + 7);
	for (uint32_t l = 0; l < geom.layers; l++)
		e->layers[l] = e->mem + l * per_layer;
	e->ec = (struct kv_engine_cache){ .mem = KV_MEM_HOST, .layout = KV_LAYOUT_VLLM_NHD,
					  .num_blocks = NB, .layers = e->layers };
	return 0;
}

static int run1(struct kv *kv, int store, const kv_hash *h, const uint32_t *blk)
{
	struct kv_completion c;
	int ret = store ? kv_store(kv, h, blk, BATCH, 1) : kv_load(kv, h, blk, BATCH, 2);

	if (ret || kv_wait(kv, &c, 1, 60000) != 1 || c.res != BATCH)
		return -1;
	return 0;
}

static size_t slot_bytes(void)
{
	return (kv_geometry_block_bytes(&geom) + 4095) & ~(size_t)4095;
}

/* p50/p99 of host-hit loads, with peers = NULL or a server. */
static int host_hit(const char *peers, double *p50, double *p99)
{
	struct kv_config cfg = { .geometry = geom, .host_bytes = slot_bytes() * 4 * NB,
				 .peers = peers, .flags = KV_F_QUIET | KV_F_REMOTE_NO_RDMA,
				 .ns_root = kv_hash_root("bench_latency", 13) };
	static double v[ITERS];
	struct engine e;
	kv_hash h[NB];
	uint32_t blk[NB];
	struct kv *kv;

	if (engine_init(&e) || kv_open(&cfg, &kv) || kv_attach(kv, &e.ec))
		return -1;
	for (uint32_t i = 0; i < NB; i++) {
		h[i] = (kv_hash){ i + 1, 0xbe7c };
		blk[i] = i;
	}
	for (uint32_t i = 0; i < NB; i += BATCH)
		if (run1(kv, 1, h + i, blk + i))
			return -1;
	for (int i = 0; i < ITERS; i++) {
		uint32_t at = (uint32_t)(i % (NB / BATCH)) * BATCH;
		double t0 = now_us();

		if (run1(kv, 0, h + at, blk + at))
			return -1;
		v[i] = now_us() - t0;
	}
	pct(v, ITERS, p50, p99);
	kv_close(kv);
	free(e.mem);
	return 0;
}

/* p50/p99 of stores of new blocks into a pool full of dirty ones, over a disk tier. */
static int dirty_store(const char *dir, double *p50, double *p99, double *stall_share)
{
	char path[512];
	struct kv_config cfg = { .geometry = geom, .host_bytes = slot_bytes() * 4 * BATCH,
				 .disk_bytes = 1u << 30, .admit = KV_ADMIT_ALL,
				 .flags = KV_F_QUIET | KV_F_DISK_REFORMAT,
				 .ns_root = kv_hash_root("bench_latency", 13) };
	const int n = 600;
	static double v[600];
	struct engine e;
	uint32_t blk[BATCH];
	struct kv *kv;

	snprintf(path, sizeof(path), "%s/bench_latency.disk", dir);
	unlink(path);
	cfg.disk_path = path;
	if (engine_init(&e) || kv_open(&cfg, &kv) || kv_attach(kv, &e.ec))
		return -1;
	for (uint32_t i = 0; i < BATCH; i++)
		blk[i] = i;
	for (int i = 0; i < n + 8; i++) {
		kv_hash h[BATCH];
		double t0;

		for (uint32_t j = 0; j < BATCH; j++)
			h[j] = (kv_hash){ (uint64_t)i * BATCH + j + 1, 0x5707e };
		t0 = now_us();
		if (run1(kv, 1, h, blk))
			return -1;
		if (i >= 8) /* the first rounds fill the pool */
			v[i - 8] = now_us() - t0;
	}
	pct(v, n, p50, p99);
	*stall_share = 0;
#if KV_VERSION_MINOR >= 4
	{
		struct kv_stats st;

		if (!kv_stats(kv, &st))
			*stall_share = (double)st.store_stalls / ((n + 8) * BATCH);
	}
#endif
	kv_close(kv);
	unlink(path);
	free(e.mem);
	return 0;
}

int main(int argc, char **argv)
{
	double a50, a99, b50, b99, s50, s99, stall;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_latency DIR [HOST:PORT]\n");
		return 2;
	}
	if (host_hit(NULL, &a50, &a99)) {
		fprintf(stderr, "bench_latency: host-hit loads failed\n");
		return 1;
	}
	printf("\nLatency (16 blocks of %zu KiB per call, %d calls)\n",
	       kv_geometry_block_bytes(&geom) >> 10, ITERS);
	printf("  | what | p50 us | p99 us |\n  |---|---:|---:|\n");
	printf("  | kv_load, all host hits, no peers | %.1f | %.1f |\n", a50, a99);
	if (argc > 2) {
		if (host_hit(argv[2], &b50, &b99)) {
			fprintf(stderr, "bench_latency: host-hit loads with a peer failed\n");
			return 1;
		}
		printf("  | kv_load, all host hits, peer %s configured | %.1f | %.1f |\n", argv[2],
		       b50, b99);
	}
	if (dirty_store(argv[1], &s50, &s99, &stall)) {
		fprintf(stderr, "bench_latency: stores over the disk tier failed\n");
		return 1;
	}
	printf("  | kv_store of new blocks, host pool full of dirty blocks over a disk tier "
	       "(%.0f%% of blocks stalled) | %.1f | %.1f |\n", stall * 100, s50, s99);
	return 0;
}
