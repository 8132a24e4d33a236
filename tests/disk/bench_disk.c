// SPDX-License-Identifier: MIT
/*
 * bench_disk.c - libkv's disk tier alone, the way fio drives a file: one
 * thread, queue depth qd, blocks of the geometry's size, a fresh file of
 * the given size. Write: every slot once (the tier's log order: sequential
 * data + its slot headers). Read: every block once in random order, each
 * checksum-verified. Prints one line per phase: "write MB/s blocks".
 * BATCH is the blocks per tier call: each call runs as a sliding window of
 * qd I/Os that drains at its end (libkv's workers call with up to 64 blocks,
 * several workers at once).
 *
 * usage: bench_disk MODE FILE FILE_BYTES BLOCK_BYTES [QD [BATCH [threads]]]
 * MODE: write (format FILE, write every slot, keep it), read (reopen FILE:
 * the index comes back from the slot headers, then read everything), both.
 * BLOCK_BYTES must be a geometry's block size: layers x 2 x 16 tokens x
 * 8 heads x 128 x fp16 (64 KiB per layer): 256K (4 layers), 1M (16 layers).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "disk.h"
#include "region.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t parse(const char *s)
{
	char *e;
	double v = strtod(s, &e);

	switch (*e) {
	case 'G': case 'g': v *= 1 << 30; break;
	case 'M': case 'm': v *= 1 << 20; break;
	case 'K': case 'k': v *= 1 << 10; break;
	}
	return (size_t)v;
}

int main(int argc, char **argv)
{
	struct kv_disk_config dc = { 0 };
	struct kv_tier_pool pool;
	struct kv_tier_ops t;
	struct kv_tier_io *io;
	uint64_t *check, *got, nslots, data_off, slot_bytes, x = 88172645463325252ull;
	struct kv_check_shape shape;
	size_t bytes, bs, nbuf, batch;
	uint32_t *order;
	struct kv_region reg;
	char *buf;
	double t0, t1;
	int ret, threads = 0;

	const char *mode;
	bool do_write, do_read;

	if (argc < 5) {
		fprintf(stderr, "usage: %s write|read|both FILE FILE_BYTES BLOCK_BYTES "
			"[QD [BATCH [threads]]]\n", argv[0]);
		return 2;
	}
	mode = argv[1];
	do_write = !strcmp(mode, "write") || !strcmp(mode, "both");
	do_read = !strcmp(mode, "read") || !strcmp(mode, "both");
	if (!do_write && !do_read) {
		fprintf(stderr, "bench_disk: MODE is write, read or both\n");
		return 2;
	}
	argv++;
	argc--;
	bytes = parse(argv[2]);
	bs = parse(argv[3]);
	dc.path = argv[1];
	dc.bytes = bytes;
	dc.queue_depth = argc > 4 ? (uint32_t)atoi(argv[4]) : 32;
	batch = argc > 5 ? (size_t)atoi(argv[5]) : 256;
	threads = argc > 6 && !strcmp(argv[6], "threads");
	if (bs % (64 << 10) || !batch) {
		fprintf(stderr, "bench_disk: BLOCK_BYTES must be a multiple of 64K\n");
		return 2;
	}
	dc.geometry = (struct kv_geometry){ .layers = (uint32_t)(bs >> 16), .planes = 2,
					    .block_tokens = 16, .kv_heads = 8, .head_dim = 128,
					    .dtype = KV_DTYPE_FP16 };
	dc.flags = (do_write ? KV_F_DISK_REFORMAT : 0) | (threads ? KV_F_DISK_NO_URING : 0);
	if (kv_disk_layout(bytes, bs, kv_disk_header_bytes(dc.geometry.layers), &nslots, &data_off,
			   &slot_bytes)) {
		fprintf(stderr, "bench_disk: %zu bytes hold no block\n", bytes);
		return 2;
	}
	/*
	 * Buffers: a host pool of batch slots from the host pool's own provider
	 * (huge pages where it gets them), so every block of a call has its own
	 * slot, as in libkv. Block i is written from / read into slot i % batch.
	 * KV_BENCH_4K_PAGES=1: plain 4 KiB pages instead, as fio's buffers are.
	 */
	nbuf = batch;
	memset(&reg, 0, sizeof(reg));
	if (getenv("KV_BENCH_4K_PAGES")) {
		/* As fio allocates: plain 4 KiB pages, for the comparison's sake. */
		if (posix_memalign((void **)&buf, 4096, nbuf * slot_bytes))
			return 1;
		madvise(buf, nbuf * slot_bytes, MADV_NOHUGEPAGE);
	} else if (kv_region_alloc(nbuf * slot_bytes, KV_F_NO_KVMEM | KV_F_QUIET, &reg)) {
		fprintf(stderr, "bench_disk: cannot allocate %zu buffers\n", nbuf);
		return 1;
	} else {
		buf = reg.addr;
	}
	for (size_t i = 0; i < nbuf * slot_bytes / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		((uint64_t *)buf)[i] = x;
	}
	/* Check values bind the name: one set per block written (block i from slot i % nbuf). */
	shape = kv_check_shape_of(&dc.geometry);
	check = calloc(nslots * shape.layers, sizeof(*check));
	got = calloc(batch * shape.layers, sizeof(*got));
	io = calloc(batch, sizeof(*io));
	order = calloc(nslots, sizeof(*order));
	if (!check || !got || !io || !order)
		return 1;
	for (uint64_t i = 0; i < nslots; i++)
		kv_check_block(&shape, (kv_hash){ i + 1, 0x5eed }, buf + (i % nbuf) * slot_bytes,
			       check + i * shape.layers);
	pool = (struct kv_tier_pool){ buf, nbuf * slot_bytes, slot_bytes, bs };
	if (do_write)
		unlink(argv[1]);
	ret = kv_disk_tier_open(&dc, &pool, &t);
	if (ret) {
		fprintf(stderr, "bench_disk: open %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	fprintf(stderr, "bench_disk: %llu slots of %zu bytes, qd %u, batch %zu, %s, %s, %s\n",
		(unsigned long long)nslots, bs, dc.queue_depth, batch, kv_disk_engine(&t),
		kv_disk_direct(&t) ? "O_DIRECT" : "buffered",
		kv_disk_fixed(&t) ? "fixed buffers" : "plain buffers");

	t0 = now();
	for (uint64_t i = 0; do_write && i < nslots; i += batch) {
		size_t m = nslots - i < batch ? nslots - i : batch;

		for (size_t j = 0; j < m; j++) {
			size_t b = (i + j) % nbuf;

			io[j].h = (kv_hash){ i + j + 1, 0x5eed };
			io[j].buf = buf + b * slot_bytes;
			io[j].check = check + (i + j) * shape.layers;
		}
		if (t.write(t.ctx, io, m) != (int)m) {
			fprintf(stderr, "bench_disk: write failed: %s\n", strerror(-io[0].res));
			return 1;
		}
	}
	t1 = now();
	if (do_write)
		printf("write %.1f MB/s %llu\n", nslots * (double)bs / (t1 - t0) / 1e6,
		       (unsigned long long)nslots);
	printf("layout %llu %llu\n", (unsigned long long)data_off,
	       (unsigned long long)(nslots * slot_bytes));
	if (!do_read) {
		t.close(t.ctx);
		kv_region_free(&reg);
		return 0;
	}

	for (uint32_t i = 0; i < nslots; i++)
		order[i] = i;
	for (uint32_t i = (uint32_t)nslots - 1; i > 0; i--) {
		uint32_t j, tmp;

		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		j = (uint32_t)(x % (i + 1));
		tmp = order[i]; order[i] = order[j]; order[j] = tmp;
	}
	t0 = now();
	for (uint64_t i = 0; i < nslots; i += batch) {
		size_t m = nslots - i < batch ? nslots - i : batch;

		for (size_t j = 0; j < m; j++) {
			io[j].h = (kv_hash){ order[i + j] + 1ull, 0x5eed };
			io[j].buf = buf + ((i + j) % nbuf) * slot_bytes;
			io[j].check = got + j * shape.layers;
		}
		if (t.read(t.ctx, io, m) != (int)m) {
			fprintf(stderr, "bench_disk: read failed: %s\n", strerror(-io[0].res));
			return 1;
		}
		for (size_t j = 0; j < m; j++)
			if (memcmp(io[j].check, check + (size_t)order[i + j] * shape.layers,
				   shape.layers * sizeof(*check))) {
				fprintf(stderr, "bench_disk: block %u came back wrong\n", order[i + j]);
				return 1;
			}
	}
	t1 = now();
	printf("read %.1f MB/s %llu\n", nslots * (double)bs / (t1 - t0) / 1e6,
	       (unsigned long long)nslots);
	t.close(t.ctx);
	if (!strcmp(mode, "both"))
		unlink(argv[1]);
	kv_region_free(&reg);
	return 0;
}
