// SPDX-License-Identifier: MIT
/*
 * disk.c - tier 2 over a file or block device (see disk.h and
 * docs/disk-format.md).
 *
 * Locks: d->mu guards the slot map (state, readers, hash chains), the CLOCK
 * hand and the counters; it is never held across I/O. d->hdr_mu serialises
 * writes of the header table (its in-memory image is what is written, so a
 * page written later always carries every header updated before it) and is
 * held across those writes only. d->rmu guards the pool of rings.
 *
 * A write: data first (fixed buffer from the host slot), then the header
 * pages of the batch; the block enters the map only when both are done, so
 * it is never visible before it is complete. A torn or stale pair fails the
 * data checksum at read time and is dropped: never returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "disk.h"

_Static_assert(sizeof(struct kv_disk_header) == 64, "fixed part of a slot header is 64 bytes");
_Static_assert(sizeof(struct kv_disk_super) <= KV_DISK_SB_BYTES, "superblock fits");
_Static_assert(offsetof(struct kv_disk_super, csum) == 128, "superblock layout");

#define DISK_DEF_QD 32
#define DISK_MAX_QD 4096
#define DISK_MAX_RINGS 16
#define DISK_THREADS 4
#define REG_CHUNK (1ull << 30) /* io_uring: one registered buffer is at most 1 GiB */
#define NONE32 UINT32_MAX

enum { S_FREE = 0, S_WRITING, S_VALID };

struct dslot {
	uint32_t hnext;   /* hash chain */
	uint16_t readers;
	uint8_t state;
	uint8_t ref;      /* CLOCK: hit since the hand last passed */
	uint8_t hit;      /* loaded at least once since it was written (demotion) */
	uint8_t demote;   /* S_WRITING: its old block goes to the next tier first */
};

struct dio;
struct dsess;

/* One I/O of a batch. */
struct dio {
	void *buf;
	uint64_t off;
	uint32_t len;
	bool write;
	bool data;              /* a block (not the header table) */
	int res;
	size_t idx;             /* caller's index */
	struct dio *next;       /* thread pool queue */
	struct dsess *sess;
};

/* A caller waiting on thread-pool I/Os. */
struct dsess {
	pthread_cond_t cv;
	struct dio *done;       /* completed, not yet taken */
};

struct dring {
	struct io_uring ring;
	struct dring *next;
	bool fixed;             /* the pool is registered with this ring */
};

struct disk {
	char *path;
	int fd;
	int lock_fd;            /* flock'd: one user per file (io_uring rings hold fd's file) */
	bool direct, uring, fixed, quiet;
	uint32_t qd, batch;
	size_t block_bytes, slot_bytes, hdr_bytes;
	struct kv_check_shape shape;
	uint64_t nslots, table_off, data_off, instance;

	/* Registered pool (fixed buffers). */
	char *pool;
	size_t pool_len, reg_chunk;

	pthread_mutex_t mu;
	struct dslot *slots;
	uint32_t *buckets;
	uint64_t bmask;
	uint64_t hand;
	uint64_t gen;
	struct kv_tier_stats st;

	pthread_mutex_t hdr_mu;
	unsigned char *table;   /* nslots headers of hdr_bytes, 4 KiB aligned image */
	size_t table_bytes;

	/* io_uring engine: one ring per concurrent caller. */
	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	struct dring *rfree;
	unsigned nrings;
	bool warned_fixed;

	/* Thread-pool engine. */
	pthread_mutex_t tmu;
	pthread_cond_t tcv;
	struct dio *qhead, *qtail;
	pthread_t threads[DISK_THREADS];
	unsigned nthreads;
	bool tstop;

	/* The cascade: blocks this tier evicts go on to next under next_admit (tier.h). */
	struct kv_tier_ops next;
	bool has_next;
	uint32_t next_admit;
	uint64_t demoted;

	uint64_t fault_every, fault_count;  /* KV_DISK_FAULT_EIO (tests) */
	unsigned fault_delay_ms;            /* KV_DISK_FAULT_DELAY_MS (tests): a slow disk, per call */
};

static void warn(const struct disk *d, const char *fmt, const char *a, const char *b)
{
	if (d->quiet)
		return;
	fprintf(stderr, "libkv: disk tier %s: ", d->path);
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------ layout */

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t layout_data_off(uint64_t n, uint64_t hb)
{
	return round_up(KV_DISK_SB_BYTES + n * hb, KV_DISK_DATA_ALIGN);
}

int kv_disk_layout(size_t disk_bytes, size_t block_bytes, size_t header_bytes,
		   uint64_t *nslots, uint64_t *data_off, uint64_t *slot_bytes)
{
	uint64_t sb = round_up(block_bytes, KV_DISK_ALIGN), n;

	if (!block_bytes || !header_bytes || disk_bytes < KV_DISK_SB_BYTES)
		return -EINVAL;
	/*
	 * data_off(n) >= 4096 + n * header_bytes, so no count above this one
	 * fits; the fit only gets easier as n falls, and the rounding of
	 * data_off costs less than 1 MiB, so the walk down is short.
	 */
	n = (disk_bytes - KV_DISK_SB_BYTES) / (sb + header_bytes);
	while (n && layout_data_off(n, header_bytes) + n * sb > disk_bytes)
		n--;
	if (!n || n >= NONE32)
		return -EINVAL;
	*nslots = n;
	*slot_bytes = sb;
	*data_off = layout_data_off(n, header_bytes);
	return 0;
}

static struct kv_disk_header *hdr(const struct disk *d, uint32_t s)
{
	return (struct kv_disk_header *)(d->table + (size_t)s * d->hdr_bytes);
}

static uint64_t *hdr_checks(struct kv_disk_header *h)
{
	return (uint64_t *)(h + 1);
}

/* Over every byte of the header but hcsum itself: the fixed part, check values, padding. */
static uint64_t hdr_csum(const struct disk *d, const struct kv_disk_header *h)
{
	struct kv_csum c;

	kv_csum_reset(&c);
	kv_csum_update(&c, h, offsetof(struct kv_disk_header, hcsum));
	kv_csum_update(&c, h + 1, d->hdr_bytes - sizeof(*h));
	return kv_csum_digest(&c);
}

static uint64_t sb_csum(const struct kv_disk_super *s)
{
	return kv_csum64(s, offsetof(struct kv_disk_super, csum));
}

/* ------------------------------------------------------------------ map (d->mu held) */

static uint64_t hbucket(const struct disk *d, kv_hash h)
{
	return (h.lo ^ (h.hi >> 7)) & d->bmask;
}

static kv_hash slot_hash(const struct disk *d, uint32_t s)
{
	kv_hash h = { hdr(d, s)->h_lo, hdr(d, s)->h_hi };

	return h;
}

static uint32_t map_find(const struct disk *d, kv_hash h)
{
	for (uint32_t s = d->buckets[hbucket(d, h)]; s != NONE32; s = d->slots[s].hnext)
		if (kv_hash_eq(slot_hash(d, s), h))
			return s;
	return NONE32;
}

static void map_insert(struct disk *d, uint32_t s)
{
	uint64_t b = hbucket(d, slot_hash(d, s));

	d->slots[s].hnext = d->buckets[b];
	d->buckets[b] = s;
	d->slots[s].state = S_VALID;
	d->slots[s].ref = 0;
	d->slots[s].hit = 0;
	d->st.blocks++;
}

static void map_remove(struct disk *d, uint32_t s)
{
	uint32_t *pp = &d->buckets[hbucket(d, slot_hash(d, s))];

	while (*pp != NONE32 && *pp != s)
		pp = &d->slots[*pp].hnext;
	if (*pp == s)
		*pp = d->slots[s].hnext;
	d->slots[s].hnext = NONE32;
	d->slots[s].state = S_FREE;
	d->st.blocks--;
}

/* A slot to write into, evicting in CLOCK order; NONE32 when all are busy. */
static uint32_t slot_alloc(struct disk *d)
{
	for (uint64_t tries = 0; tries < 2 * d->nslots; tries++) {
		uint32_t s = (uint32_t)d->hand;
		struct dslot *x = &d->slots[s];

		d->hand = (d->hand + 1) % d->nslots;
		if (x->readers || x->state == S_WRITING)
			continue;
		if (x->state == S_VALID) {
			if (x->ref) {
				x->ref = 0;
				continue;
			}
			/* Leaving this tier: offered to the next one first (disk_demote). */
			x->demote = d->has_next && (d->next_admit == KV_ADMIT_ALL ||
						   (d->next_admit == KV_ADMIT_REUSED && x->hit));
			map_remove(d, s);
			d->st.evictions++;
		} else {
			x->demote = 0;
		}
		x->state = S_WRITING;
		return s;
	}
	return NONE32;
}

/* ------------------------------------------------------------------ io_uring engine */

static int ring_setup(struct disk *d, struct dring *r)
{
	unsigned entries = 1;
	int ret;

	while (entries < d->qd)
		entries <<= 1;
	/*
	 * A ring is used by one thread at a time and every call reaps all its
	 * completions before it returns, so completion task work can wait for
	 * that thread's next entry: no IPI per completion (5.19+). Older
	 * kernels refuse the flag; plain setup then.
	 */
	ret = getenv("KV_DISK_NO_COOP") ? -EINVAL
		: io_uring_queue_init(entries, &r->ring, IORING_SETUP_COOP_TASKRUN);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(entries, &r->ring, 0);
	if (ret)
		return ret;
	ret = io_uring_register_files(&r->ring, &d->fd, 1);
	if (ret) {
		io_uring_queue_exit(&r->ring);
		return ret;
	}
	if (d->fixed) { /* set once at open, before any ring exists */
		struct iovec iov[64];
		unsigned n = 0;

		for (size_t off = 0; off < d->pool_len && n < 64; off += d->reg_chunk, n++) {
			iov[n].iov_base = d->pool + off;
			iov[n].iov_len = d->pool_len - off < d->reg_chunk ? d->pool_len - off
									 : d->reg_chunk;
		}
		ret = n ? io_uring_register_buffers(&r->ring, iov, n) : -EINVAL;
		if (ret) {
			/* This ring goes without; say so once per tier. */
			pthread_mutex_lock(&d->rmu);
			if (!d->warned_fixed) {
				d->warned_fixed = true;
				warn(d, "cannot register the host pool with io_uring (%s%s); "
				     "using unregistered buffers", strerror(-ret),
				     ret == -ENOMEM ? ": raise RLIMIT_MEMLOCK (ulimit -l)" : "");
			}
			pthread_mutex_unlock(&d->rmu);
		} else {
			r->fixed = true;
		}
	}
	return 0;
}

static struct dring *ring_get(struct disk *d)
{
	struct dring *r;

	pthread_mutex_lock(&d->rmu);
	for (;;) {
		if (d->rfree) {
			r = d->rfree;
			d->rfree = r->next;
			break;
		}
		if (d->nrings < DISK_MAX_RINGS) {
			d->nrings++;
			pthread_mutex_unlock(&d->rmu);
			r = calloc(1, sizeof(*r));
			if (r && ring_setup(d, r) == 0)
				return r;
			free(r);
			pthread_mutex_lock(&d->rmu);
			d->nrings--;
			if (!d->nrings) {
				pthread_mutex_unlock(&d->rmu);
				return NULL;
			}
		}
		pthread_cond_wait(&d->rcv, &d->rmu);
	}
	pthread_mutex_unlock(&d->rmu);
	return r;
}

static void ring_put(struct disk *d, struct dring *r)
{
	pthread_mutex_lock(&d->rmu);
	r->next = d->rfree;
	d->rfree = r;
	pthread_cond_signal(&d->rcv);
	pthread_mutex_unlock(&d->rmu);
}

static void prep(struct disk *d, struct dring *r, struct io_uring_sqe *sqe, struct dio *io)
{
	char *b = io->buf;

	if (r->fixed && b >= d->pool && b + io->len <= d->pool + d->pool_len &&
	    (size_t)(b - d->pool) / d->reg_chunk == (size_t)(b + io->len - 1 - d->pool) / d->reg_chunk) {
		int bi = (int)((size_t)(b - d->pool) / d->reg_chunk);

		if (io->write)
			io_uring_prep_write_fixed(sqe, 0, b, io->len, io->off, bi);
		else
			io_uring_prep_read_fixed(sqe, 0, b, io->len, io->off, bi);
	} else if (io->write) {
		io_uring_prep_write(sqe, 0, b, io->len, io->off);
	} else {
		io_uring_prep_read(sqe, 0, b, io->len, io->off);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, io);
}

typedef void (*done_fn)(struct disk *d, struct dio *io, void *arg);

static void io_finish(struct disk *d, struct dio *io, int res)
{
	/* Test-only fault injection (KV_DISK_FAULT_EIO=N): every Nth data I/O fails. */
	if (d->fault_every && io->data &&
	    __atomic_add_fetch(&d->fault_count, 1, __ATOMIC_RELAXED) % d->fault_every == 0)
		res = -EIO;
	if (res == (int)io->len)
		io->res = 0;
	else if (res < 0)
		io->res = res;
	else
		io->res = -EIO; /* short transfer: past the end of a truncated file */
}

/* Prepare I/Os from *next while fewer than qd are in flight; submit in batches. */
static void uring_fill(struct disk *d, struct dring *r, struct dio *ios, size_t n, size_t *next,
		       size_t *inflight)
{
	unsigned prepped = 0;

	while (*next < n && *inflight < d->qd) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

		if (!sqe)
			break;
		prep(d, r, sqe, &ios[(*next)++]);
		(*inflight)++;
		if (++prepped >= d->batch) {
			io_uring_submit(&r->ring);
			prepped = 0;
		}
	}
	if (prepped)
		io_uring_submit(&r->ring);
}

/*
 * Run n I/Os with at most qd in flight; fn sees each as it completes. The
 * queue is refilled before fn runs (checksums), so the device never waits
 * for the CPU; completions are reaped in batches without a syscall each.
 */
static int run_uring(struct disk *d, struct dio *ios, size_t n, done_fn fn, void *arg)
{
	struct dring *r = ring_get(d);
	size_t next = 0, done = 0, inflight = 0;
	int stuck = 0;

	if (!r)
		return -ENOMEM;
	uring_fill(d, r, ios, n, &next, &inflight);
	while (done < next) {
		struct io_uring_cqe *cqes[64];
		struct dio *fin[64];
		unsigned got;

		got = io_uring_peek_batch_cqe(&r->ring, cqes, 64);
		if (!got) {
			struct io_uring_cqe *cqe;
			int ret = io_uring_wait_cqe(&r->ring, &cqe);

			if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ++stuck > 1000)
				break; /* the ring is broken: fail the rest */
			continue;
		}
		for (unsigned i = 0; i < got; i++) {
			fin[i] = io_uring_cqe_get_data(cqes[i]);
			io_finish(d, fin[i], cqes[i]->res);
		}
		io_uring_cq_advance(&r->ring, got);
		inflight -= got;
		done += got;
		uring_fill(d, r, ios, n, &next, &inflight);
		for (unsigned i = 0; fn && i < got; i++)
			fn(d, fin[i], arg);
	}
	ring_put(d, r);
	if (done < next)
		return -EIO; /* in flight on a broken ring: cannot happen short of a kernel bug */
	for (; next < n; next++) {
		ios[next].res = -EIO;
		if (fn)
			fn(d, &ios[next], arg);
	}
	return 0;
}

/* ------------------------------------------------------------------ thread-pool engine */

static void *tp_main(void *arg)
{
	struct disk *d = arg;

	for (;;) {
		struct dio *io;
		size_t got = 0;
		int res = 0;

		pthread_mutex_lock(&d->tmu);
		while (!d->qhead && !d->tstop)
			pthread_cond_wait(&d->tcv, &d->tmu);
		io = d->qhead;
		if (io) {
			d->qhead = io->next;
			if (!d->qhead)
				d->qtail = NULL;
		}
		pthread_mutex_unlock(&d->tmu);
		if (!io)
			return NULL;
		while (got < io->len) {
			ssize_t r = io->write ? pwrite(d->fd, (char *)io->buf + got, io->len - got,
						       (off_t)(io->off + got))
					      : pread(d->fd, (char *)io->buf + got, io->len - got,
						      (off_t)(io->off + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				res = r < 0 ? -errno : -EIO;
				break;
			}
			got += (size_t)r;
		}
		pthread_mutex_lock(&d->tmu);
		io->res = res ? res : (int)io->len;
		io->next = io->sess->done;
		io->sess->done = io;
		pthread_cond_signal(&io->sess->cv);
		pthread_mutex_unlock(&d->tmu);
	}
}

static int run_threads(struct disk *d, struct dio *ios, size_t n, done_fn fn, void *arg)
{
	struct dsess s = { .done = NULL };
	size_t next = 0, done = 0, inflight = 0;

	pthread_cond_init(&s.cv, NULL);
	pthread_mutex_lock(&d->tmu);
	while (done < n) {
		struct dio *list;

		for (; next < n && inflight < d->qd; next++, inflight++) {
			struct dio *io = &ios[next];

			io->sess = &s;
			io->next = NULL;
			if (d->qtail)
				d->qtail->next = io;
			else
				d->qhead = io;
			d->qtail = io;
			pthread_cond_signal(&d->tcv);
		}
		while (!s.done)
			pthread_cond_wait(&s.cv, &d->tmu);
		list = s.done;
		s.done = NULL;
		pthread_mutex_unlock(&d->tmu);
		while (list) {
			struct dio *io = list;

			list = io->next;
			io_finish(d, io, io->res);
			if (fn)
				fn(d, io, arg);
			inflight--;
			done++;
		}
		pthread_mutex_lock(&d->tmu);
	}
	pthread_mutex_unlock(&d->tmu);
	pthread_cond_destroy(&s.cv);
	return 0;
}

static int run_ios(struct disk *d, struct dio *ios, size_t n, done_fn fn, void *arg)
{
	if (!n)
		return 0;
	return d->uring ? run_uring(d, ios, n, fn, arg) : run_threads(d, ios, n, fn, arg);
}

/* ------------------------------------------------------------------ tier ops */

struct page_run {
	uint64_t first, last;
};

static int cmp_run(const void *a, const void *b)
{
	uint64_t x = ((const struct page_run *)a)->first, y = ((const struct page_run *)b)->first;

	return x < y ? -1 : x > y;
}

/*
 * Write the header-table pages holding the headers of slots[0..n): caller
 * holds d->hdr_mu. A header may straddle pages; overlapping and adjacent
 * pages go in one I/O. Returns 0 or the first error.
 */
static int write_header_pages(struct disk *d, const uint32_t *slots, size_t n)
{
	struct page_run *run = malloc(n * sizeof(*run));
	struct dio *ios = calloc(n, sizeof(*ios));
	size_t nio = 0;
	int err = 0;

	if (!run || !ios) {
		free(run);
		free(ios);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		run[i].first = (uint64_t)slots[i] * d->hdr_bytes / KV_DISK_ALIGN;
		run[i].last = (((uint64_t)slots[i] + 1) * d->hdr_bytes - 1) / KV_DISK_ALIGN;
	}
	qsort(run, n, sizeof(*run), cmp_run);
	for (size_t i = 0; i < n;) {
		struct page_run r = run[i++];

		while (i < n && run[i].first <= r.last + 1) {
			if (run[i].last > r.last)
				r.last = run[i].last;
			i++;
		}
		ios[nio].buf = d->table + r.first * KV_DISK_ALIGN;
		ios[nio].off = d->table_off + r.first * KV_DISK_ALIGN;
		ios[nio].len = (uint32_t)((r.last - r.first + 1) * KV_DISK_ALIGN);
		ios[nio].write = true;
		nio++;
	}
	run_ios(d, ios, nio, NULL, NULL);
	for (size_t i = 0; i < nio; i++)
		if (ios[i].res && !err)
			err = ios[i].res;
	free(run);
	free(ios);
	return err;
}

#define DEMOTE_BATCH 16

/*
 * The cascade: before slots[0..n) are overwritten, read the blocks they
 * held (still on disk: the slots are S_WRITING, ours alone) and write them
 * to the next tier, verified against their own names and check values so a
 * torn copy never travels on. On the caller's thread, without d->mu; a
 * failure only loses what eviction would have lost anyway.
 */
static void disk_demote(struct disk *d, const uint32_t *slots, size_t n)
{
	size_t L = d->shape.layers;
	unsigned char *buf = NULL;
	uint64_t *chk = malloc(DEMOTE_BATCH * L * sizeof(*chk));
	struct kv_tier_io io[DEMOTE_BATCH];
	struct dio ios[DEMOTE_BATCH];

	if (!chk || posix_memalign((void **)&buf, KV_DISK_ALIGN,
				   (n < DEMOTE_BATCH ? n : DEMOTE_BATCH) * d->slot_bytes)) {
		free(chk);
		return;
	}
	for (size_t at = 0; at < n; at += DEMOTE_BATCH) {
		size_t m = n - at < DEMOTE_BATCH ? n - at : DEMOTE_BATCH, k = 0;

		memset(ios, 0, sizeof(ios));
		for (size_t j = 0; j < m; j++) {
			ios[j].buf = buf + j * d->slot_bytes;
			ios[j].off = d->data_off + (uint64_t)slots[at + j] * d->slot_bytes;
			ios[j].len = (uint32_t)d->slot_bytes;
			ios[j].data = true;
			ios[j].idx = j;
		}
		run_ios(d, ios, m, NULL, NULL);
		for (size_t j = 0; j < m; j++) {
			struct kv_disk_header *h = hdr(d, slots[at + j]);
			kv_hash name = { h->h_lo, h->h_hi };

			if (ios[j].res || kv_check_verify(&d->shape, name, ios[j].buf, hdr_checks(h),
							  NULL))
				continue;
			memcpy(chk + k * L, hdr_checks(h), L * sizeof(*chk));
			io[k] = (struct kv_tier_io){ .h = name, .check = chk + k * L,
						     .buf = ios[j].buf };
			k++;
		}
		if (k) {
			int r = d->next.write(d->next.ctx, io, k);

			pthread_mutex_lock(&d->mu);
			d->demoted += r > 0 ? (uint64_t)r : 0;
			pthread_mutex_unlock(&d->mu);
		}
	}
	free(buf);
	free(chk);
}

static int disk_write(void *ctx, struct kv_tier_io *io, size_t n)
{
	struct disk *d = ctx;
	struct dio *ios = calloc(n ? n : 1, sizeof(*ios));
	uint32_t *slot = calloc(n ? n : 1, sizeof(*slot));
	uint32_t *wslots = calloc(n ? n : 1, sizeof(*wslots));
	size_t nio = 0, nw = 0;
	int stored = 0, herr;

	if (!ios || !slot || !wslots) {
		free(ios);
		free(slot);
		free(wslots);
		for (size_t i = 0; i < n; i++)
			io[i].res = -ENOMEM;
		return -ENOMEM;
	}
	if (d->fault_delay_ms)
		usleep(d->fault_delay_ms * 1000u);
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < n; i++) {
		slot[i] = NONE32;
		if (map_find(d, io[i].h) != NONE32) {
			io[i].res = 0; /* already present */
			continue;
		}
		slot[i] = slot_alloc(d);
		if (slot[i] == NONE32) {
			io[i].res = -ENOSPC;
			d->st.failures++;
			continue;
		}
		ios[nio].buf = io[i].buf;
		ios[nio].off = d->data_off + (uint64_t)slot[i] * d->slot_bytes;
		ios[nio].len = (uint32_t)d->slot_bytes;
		ios[nio].write = true;
		ios[nio].data = true;
		ios[nio].idx = i;
		nio++;
		if (d->slots[slot[i]].demote)
			wslots[nw++] = slot[i];
	}
	pthread_mutex_unlock(&d->mu);
	if (nw) {
		disk_demote(d, wslots, nw);
		nw = 0;
	}

	run_ios(d, ios, nio, NULL, NULL);

	/* Headers of the blocks whose data is down; a failed slot's header says empty. */
	pthread_mutex_lock(&d->hdr_mu);
	for (size_t k = 0; k < nio; k++) {
		size_t i = ios[k].idx;
		uint32_t s = slot[i];
		struct kv_disk_header *h = hdr(d, s);

		memset(h, 0, d->hdr_bytes);
		if (!ios[k].res) {
			h->h_lo = io[i].h.lo;
			h->h_hi = io[i].h.hi;
			h->gen = __atomic_add_fetch(&d->gen, 1, __ATOMIC_RELAXED);
			h->instance = d->instance;
			h->slot = s;
			h->magic = KV_DISK_HDR_MAGIC;
			h->nchecks = d->shape.layers;
			/* The writer's values, made at pack time: never recomputed here. */
			memcpy(hdr_checks(h), io[i].check, d->shape.layers * sizeof(uint64_t));
			h->hcsum = hdr_csum(d, h);
		}
		wslots[nw++] = s;
	}
	herr = nw ? write_header_pages(d, wslots, nw) : 0;
	pthread_mutex_unlock(&d->hdr_mu);

	pthread_mutex_lock(&d->mu);
	for (size_t k = 0; k < nio; k++) {
		size_t i = ios[k].idx;
		uint32_t s = slot[i];
		int res = ios[k].res ? ios[k].res : herr;

		io[i].res = res;
		if (res) {
			d->slots[s].state = S_FREE;
			d->st.failures++;
		} else if (map_find(d, io[i].h) != NONE32) {
			d->slots[s].state = S_FREE; /* another writer got there first */
		} else {
			map_insert(d, s);
			d->st.bytes_in += d->block_bytes;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (!io[i].res)
			stored++;
	pthread_mutex_unlock(&d->mu);
	free(ios);
	free(slot);
	free(wslots);
	return stored;
}

struct read_arg {
	struct kv_tier_io *io;
	const uint32_t *slot;
};

/*
 * Verify each block as it lands, while the rest of the batch is in flight:
 * against the name asked for, so a slot whose header and bytes disagree
 * (a torn rewrite, a stale map) is a miss. The slot has readers, so its
 * header in the image cannot change meanwhile.
 */
static void read_done(struct disk *d, struct dio *x, void *arg)
{
	struct read_arg *a = arg;

	if (!x->res && kv_check_verify(&d->shape, a->io[x->idx].h, x->buf,
				       hdr_checks(hdr(d, a->slot[x->idx])), NULL))
		x->res = -EBADMSG;
}

static int disk_read(void *ctx, struct kv_tier_io *io, size_t n)
{
	struct disk *d = ctx;
	struct dio *ios = calloc(n ? n : 1, sizeof(*ios));
	uint32_t *slot = calloc(n ? n : 1, sizeof(*slot));
	struct read_arg a = { io, slot };
	size_t nio = 0;
	int got = 0;

	if (!ios || !slot) {
		free(ios);
		free(slot);
		for (size_t i = 0; i < n; i++)
			io[i].res = -ENOMEM;
		return -ENOMEM;
	}
	if (d->fault_delay_ms)
		usleep(d->fault_delay_ms * 1000u);
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < n; i++) {
		uint32_t s = map_find(d, io[i].h);

		slot[i] = s;
		if (s == NONE32) {
			io[i].res = -ENOENT;
			d->st.misses++;
			continue;
		}
		d->slots[s].readers++;
		d->slots[s].ref = 1;
		ios[nio].buf = io[i].buf;
		ios[nio].off = d->data_off + (uint64_t)s * d->slot_bytes;
		ios[nio].len = (uint32_t)d->slot_bytes;
		ios[nio].data = true;
		ios[nio].idx = i;
		nio++;
	}
	pthread_mutex_unlock(&d->mu);

	run_ios(d, ios, nio, read_done, &a);

	pthread_mutex_lock(&d->mu);
	for (size_t k = 0; k < nio; k++) {
		size_t i = ios[k].idx;
		uint32_t s = slot[i];

		io[i].res = ios[k].res;
		if (!ios[k].res)
			memcpy(io[i].check, hdr_checks(hdr(d, s)), d->shape.layers * sizeof(uint64_t));
		d->slots[s].readers--;
		if (!ios[k].res) {
			d->slots[s].hit = 1;
			d->st.hits++;
			d->st.bytes_out += d->block_bytes;
			got++;
			continue;
		}
		if (ios[k].res == -EBADMSG)
			d->st.verify_failures++;
		else
			d->st.failures++;
		/* Not stored any more: forget it (once, if several readers failed). */
		if (d->slots[s].state == S_VALID && kv_hash_eq(slot_hash(d, s), io[i].h))
			map_remove(d, s);
	}
	pthread_mutex_unlock(&d->mu);
	free(ios);
	free(slot);
	return got;
}

static int disk_chain(void *ctx, const struct kv_tier_ops *next, uint32_t admit)
{
	struct disk *d = ctx;

	if (admit > KV_ADMIT_NONE)
		return -EINVAL;
	d->next = *next;
	d->has_next = admit != KV_ADMIT_NONE;
	d->next_admit = admit;
	return 0;
}

static int disk_lookup(void *ctx, const kv_hash *h, size_t n, uint8_t *present)
{
	struct disk *d = ctx;

	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < n; i++)
		present[i] = map_find(d, h[i]) != NONE32;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void disk_stats(void *ctx, struct kv_tier_stats *st)
{
	struct disk *d = ctx;

	pthread_mutex_lock(&d->mu);
	st->blocks += d->st.blocks;
	st->capacity += d->st.capacity;
	st->hits += d->st.hits;
	st->misses += d->st.misses;
	st->evictions += d->st.evictions;
	st->bytes_in += d->st.bytes_in;
	st->bytes_out += d->st.bytes_out;
	st->failures += d->st.failures;
	st->verify_failures += d->st.verify_failures;
	pthread_mutex_unlock(&d->mu);
}

static void disk_free(struct disk *d)
{
	if (d->nthreads) {
		pthread_mutex_lock(&d->tmu);
		d->tstop = true;
		pthread_cond_broadcast(&d->tcv);
		pthread_mutex_unlock(&d->tmu);
		for (unsigned i = 0; i < d->nthreads; i++)
			pthread_join(d->threads[i], NULL);
	}
	while (d->rfree) {
		struct dring *r = d->rfree;

		d->rfree = r->next;
		io_uring_queue_exit(&r->ring);
		free(r);
	}
	if (d->fd >= 0) {
		fdatasync(d->fd);
		close(d->fd);
	}
	if (d->lock_fd >= 0)
		close(d->lock_fd); /* drops the flock */
	free(d->table);
	free(d->slots);
	free(d->buckets);
	free(d->path);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->hdr_mu);
	pthread_mutex_destroy(&d->rmu);
	pthread_cond_destroy(&d->rcv);
	pthread_mutex_destroy(&d->tmu);
	pthread_cond_destroy(&d->tcv);
	free(d);
}

static void disk_close(void *ctx)
{
	disk_free(ctx);
}

/* ------------------------------------------------------------------ open */

static int pio(int fd, bool wr, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = wr ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
			       : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EUCLEAN; /* past the end: truncated */
		done += (size_t)r;
	}
	return 0;
}

static int file_size(int fd, uint64_t *size, bool *blockdev)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	*blockdev = S_ISBLK(st.st_mode);
	if (*blockdev) {
		if (ioctl(fd, BLKGETSIZE64, size))
			return -errno;
	} else if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int do_format(struct disk *d, struct kv_disk_super *sb, bool blockdev,
		     const struct kv_disk_config *dc)
{
	const size_t chunk = 4u << 20;
	uint64_t file_bytes = d->data_off + d->nslots * d->slot_bytes;
	void *zero;
	int ret;

	if (!blockdev && ftruncate(d->fd, (off_t)file_bytes))
		return -errno;
	/*
	 * Reserve the space (contiguous extents, no ENOSPC later). Where that
	 * fails (a small or non-supporting file system) the file stays sparse:
	 * writes that find no space fail alone, are counted, and serving goes on.
	 */
	if (!blockdev && fallocate(d->fd, 0, 0, (off_t)file_bytes)) {
		if (errno == ENOSPC)
			warn(d, "cannot reserve disk_bytes (%s); the file stays sparse and blocks "
			     "that find no space will not be stored", strerror(errno), "");
	}
	/* Zero the header table so it is allocated (no ENOSPC on header writes later). */
	if (posix_memalign(&zero, KV_DISK_ALIGN, chunk))
		return -ENOMEM;
	memset(zero, 0, chunk);
	for (uint64_t off = 0; off < d->table_bytes; off += chunk) {
		size_t len = d->table_bytes - off < chunk ? d->table_bytes - off : chunk;

		ret = pio(d->fd, true, zero, len, d->table_off + off);
		if (ret) {
			free(zero);
			return ret;
		}
	}
	free(zero);
	memset(sb, 0, KV_DISK_SB_BYTES);
	memcpy(sb->magic, KV_DISK_MAGIC, 8);
	sb->version = KV_DISK_VERSION;
	sb->header_bytes = (uint32_t)d->hdr_bytes;
	sb->block_bytes = d->block_bytes;
	sb->slot_bytes = d->slot_bytes;
	sb->nslots = d->nslots;
	sb->table_off = d->table_off;
	sb->data_off = d->data_off;
	sb->file_bytes = file_bytes;
	if (getrandom(&sb->instance, sizeof(sb->instance), 0) != sizeof(sb->instance))
		sb->instance = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	sb->instance |= 1;
	sb->geometry = dc->geometry;
	sb->ns_root = dc->ns_root;
	sb->created = (uint64_t)time(NULL);
	sb->csum = sb_csum(sb);
	ret = pio(d->fd, true, sb, KV_DISK_SB_BYTES, 0);
	if (ret)
		return ret;
	if (fdatasync(d->fd))
		return -errno;
	d->instance = sb->instance;
	return 0;
}

/* Rebuild the map from the header table (no data is read). */
static int load_table(struct disk *d)
{
	const size_t chunk = 4u << 20;
	uint32_t best_gen_slot = NONE32;
	int ret;

	for (uint64_t off = 0; off < d->table_bytes; off += chunk) {
		size_t len = d->table_bytes - off < chunk ? d->table_bytes - off : chunk;

		ret = pio(d->fd, false, (char *)d->table + off, len, d->table_off + off);
		if (ret)
			return ret;
	}
	for (uint32_t s = 0; s < d->nslots; s++) {
		struct kv_disk_header *h = hdr(d, s);
		uint32_t old;
		kv_hash hh = { h->h_lo, h->h_hi };

		if (!h->gen && !h->magic && !h->hcsum)
			continue; /* never written */
		if (h->magic != KV_DISK_HDR_MAGIC || h->nchecks != d->shape.layers ||
		    h->hcsum != hdr_csum(d, h) || h->slot != s) {
			d->st.verify_failures++; /* torn or corrupt header: slot is empty */
			memset(h, 0, d->hdr_bytes);
			continue;
		}
		if (h->instance != d->instance || !h->gen) {
			memset(h, 0, d->hdr_bytes); /* from before a reformat */
			continue;
		}
		old = map_find(d, hh);
		if (old != NONE32) {
			/* The same block twice: keep the newer copy. */
			if (hdr(d, old)->gen > h->gen)
				continue;
			map_remove(d, old);
		}
		map_insert(d, s);
		if (h->gen > d->gen) {
			d->gen = h->gen;
			best_gen_slot = s;
		}
	}
	/* Continue the log after the newest block. */
	d->hand = best_gen_slot == NONE32 ? 0 : (best_gen_slot + 1) % d->nslots;
	return 0;
}

static int open_fd(struct disk *d, bool direct)
{
	int fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);

	return fd < 0 ? -errno : fd;
}

static const char *why_reformat(const struct kv_disk_config *dc)
{
	return (dc->flags & KV_F_DISK_REFORMAT) ? "reformatting" :
		"refusing to use it (KV_F_DISK_REFORMAT / kvctl --reformat reformats it)";
}

static int check_super(struct disk *d, const struct kv_disk_super *sb, uint64_t size,
		       const struct kv_disk_config *dc)
{
	static const char zero[64];
	char msg[256];

	if (memcmp(sb->magic, KV_DISK_MAGIC, 8)) {
		if (!memcmp(sb, zero, sizeof(zero)))
			return 1; /* all zeros: a new file or device */
		warn(d, "not a libkv disk tier (no superblock); %s", why_reformat(dc), "");
		return -EMEDIUMTYPE;
	}
	if (sb->csum != sb_csum(sb)) {
		warn(d, "superblock fails its checksum; %s", why_reformat(dc), "");
		return -EUCLEAN;
	}
	if (sb->version != KV_DISK_VERSION || sb->header_bytes != d->hdr_bytes) {
		if (sb->version == 1)
			snprintf(msg, sizeof(msg), "format version 1 (this library reads only "
				 "version %u, whose check values bind each block's name)",
				 KV_DISK_VERSION);
		else
			snprintf(msg, sizeof(msg), "format version %u, %u-byte slot headers "
				 "(this library: version %u, %zu-byte headers)", sb->version,
				 sb->header_bytes, KV_DISK_VERSION, d->hdr_bytes);
		warn(d, "%s; %s", msg, why_reformat(dc));
		return -EMEDIUMTYPE;
	}
	if (memcmp(&sb->geometry, &dc->geometry, sizeof(dc->geometry)) ||
	    sb->block_bytes != d->block_bytes || sb->nslots != d->nslots ||
	    sb->slot_bytes != d->slot_bytes || sb->data_off != d->data_off ||
	    sb->table_off != d->table_off) {
		snprintf(msg, sizeof(msg),
			 "written for another geometry or size (file: %llu slots of %llu bytes, "
			 "config: %llu slots of %zu bytes)",
			 (unsigned long long)sb->nslots, (unsigned long long)sb->block_bytes,
			 (unsigned long long)d->nslots, d->block_bytes);
		warn(d, "%s; %s", msg, why_reformat(dc));
		return -EEXIST;
	}
	if (!kv_hash_eq(sb->ns_root, dc->ns_root)) {
		warn(d, "written for another namespace; %s", why_reformat(dc), "");
		return -EEXIST;
	}
	if (size < sb->file_bytes) {
		snprintf(msg, sizeof(msg), "truncated (%llu bytes, the format needs %llu)",
			 (unsigned long long)size, (unsigned long long)sb->file_bytes);
		warn(d, "%s; %s", msg, why_reformat(dc));
		return -EUCLEAN;
	}
	d->instance = sb->instance;
	return 0;
}

int kv_disk_tier_open(const struct kv_disk_config *dc, const struct kv_tier_pool *pool,
		      struct kv_tier_ops *t)
{
	struct kv_disk_super *sb = NULL;
	struct disk *d;
	uint64_t size = 0;
	bool blockdev = false;
	int ret;

	if (!dc || !dc->path || !t || kv_geometry_check(&dc->geometry))
		return -EINVAL;
	if (dc->queue_depth > DISK_MAX_QD)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fd = -1;
	d->lock_fd = -1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->hdr_mu, NULL);
	pthread_mutex_init(&d->rmu, NULL);
	pthread_cond_init(&d->rcv, NULL);
	pthread_mutex_init(&d->tmu, NULL);
	pthread_cond_init(&d->tcv, NULL);
	d->path = strdup(dc->path);
	d->quiet = dc->flags & KV_F_QUIET;
	d->qd = dc->queue_depth ? dc->queue_depth : DISK_DEF_QD;
	d->batch = dc->batch && dc->batch < d->qd ? dc->batch : d->qd;
	d->block_bytes = kv_geometry_block_bytes(&dc->geometry);
	d->shape = kv_check_shape_of(&dc->geometry);
	d->hdr_bytes = kv_disk_header_bytes(dc->geometry.layers);
	if (getenv("KV_DISK_FAULT_EIO"))
		d->fault_every = strtoull(getenv("KV_DISK_FAULT_EIO"), NULL, 0);
	if (getenv("KV_DISK_FAULT_DELAY_MS"))
		d->fault_delay_ms = (unsigned)strtoul(getenv("KV_DISK_FAULT_DELAY_MS"), NULL, 0);
	ret = -ENOMEM;
	if (!d->path)
		goto err;
	ret = kv_disk_layout(dc->bytes, d->block_bytes, d->hdr_bytes, &d->nslots, &d->data_off,
			     &d->slot_bytes);
	if (ret) {
		warn(d, "%s bytes cannot hold one block%s", "disk_bytes", "");
		goto err;
	}
	d->table_off = KV_DISK_SB_BYTES;
	d->table_bytes = round_up(d->nslots * d->hdr_bytes, KV_DISK_ALIGN);

	/* O_DIRECT, or buffered where the file system refuses it. */
	d->direct = true;
	ret = open_fd(d, true);
	if (ret == -EINVAL) {
		warn(d, "the file system refuses O_DIRECT; using buffered I/O%s%s", "", "");
		d->direct = false;
		ret = open_fd(d, false);
	}
	if (ret < 0) {
		warn(d, "cannot open: %s%s", strerror(-ret),
		     ret == -ENOENT ? " (its directory does not exist)" : "");
		goto err;
	}
	d->fd = ret;
	d->lock_fd = open(d->path, O_RDONLY | O_CLOEXEC);
	if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB)) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		warn(d, "in use by another process or kv (%s)%s", strerror(-ret), "");
		goto err;
	}
	ret = file_size(d->fd, &size, &blockdev);
	if (ret)
		goto err;
	if (blockdev && size < d->data_off + d->nslots * d->slot_bytes) {
		warn(d, "the device is smaller than disk_bytes%s%s", "", "");
		ret = -EINVAL;
		goto err;
	}
	if (posix_memalign((void **)&sb, KV_DISK_ALIGN, KV_DISK_SB_BYTES) ||
	    posix_memalign((void **)&d->table, KV_DISK_ALIGN, d->table_bytes)) {
		ret = -ENOMEM;
		goto err;
	}
	memset(d->table, 0, d->table_bytes);
	memset(sb, 0, KV_DISK_SB_BYTES);
	if (size >= KV_DISK_SB_BYTES) {
		ret = pio(d->fd, false, sb, KV_DISK_SB_BYTES, 0);
		if (ret == -EINVAL && d->direct) {
			/* Accepted O_DIRECT at open but not for I/O (some FUSE, overlay). */
			warn(d, "the file system refuses O_DIRECT; using buffered I/O%s%s", "", "");
			d->direct = false;
			close(d->fd);
			d->fd = open_fd(d, false);
			if (d->fd < 0) {
				ret = d->fd;
				goto err;
			}
			ret = pio(d->fd, false, sb, KV_DISK_SB_BYTES, 0);
		}
		if (ret)
			goto err;
		ret = check_super(d, sb, size, dc);
	} else if (size > 0) {
		warn(d, "not a libkv disk tier (%s); %s", "shorter than a superblock",
		     why_reformat(dc));
		ret = -EMEDIUMTYPE;
	} else {
		ret = 1; /* empty: new */
	}
	if (ret < 0 && !(dc->flags & KV_F_DISK_REFORMAT))
		goto err;

	d->slots = calloc(d->nslots, sizeof(*d->slots));
	for (d->bmask = 1; d->bmask < d->nslots + d->nslots / 2; d->bmask <<= 1)
		;
	d->buckets = malloc(d->bmask * sizeof(*d->buckets));
	if (!d->slots || !d->buckets) {
		ret = -ENOMEM;
		goto err;
	}
	memset(d->buckets, 0xff, d->bmask * sizeof(*d->buckets));
	d->bmask--;
	for (uint64_t s = 0; s < d->nslots; s++)
		d->slots[s].hnext = NONE32;
	d->st.capacity = d->nslots;

	if (ret != 0) {
		ret = do_format(d, sb, blockdev, dc);
		if (ret == -EINVAL && d->direct) {
			warn(d, "the file system refuses O_DIRECT; using buffered I/O%s%s", "", "");
			d->direct = false;
			close(d->fd);
			d->fd = open_fd(d, false);
			if (d->fd < 0) {
				ret = d->fd;
				goto err;
			}
			ret = do_format(d, sb, blockdev, dc);
		}
		if (ret) {
			warn(d, "cannot format: %s%s", strerror(-ret), "");
			goto err;
		}
	} else {
		ret = load_table(d);
		if (ret) {
			warn(d, "cannot read the slot headers: %s%s", strerror(-ret), "");
			goto err;
		}
	}
	free(sb);
	sb = NULL;

	/* Engine: io_uring, or the thread pool (forced, or io_uring unavailable). */
	if (pool && pool->addr && pool->len) {
		d->pool = pool->addr;
		d->pool_len = pool->len;
		d->reg_chunk = pool->slot_bytes ? REG_CHUNK / pool->slot_bytes * pool->slot_bytes
						: REG_CHUNK;
		if (!d->reg_chunk)
			d->reg_chunk = REG_CHUNK;
		d->fixed = d->pool_len / d->reg_chunk < 64;
	}
	d->uring = !(dc->flags & KV_F_DISK_NO_URING);
	if (d->uring) {
		struct dring *r = calloc(1, sizeof(*r));

		ret = r ? ring_setup(d, r) : -ENOMEM;
		if (ret) {
			free(r);
			warn(d, "io_uring is unavailable (%s%s); using a pread/pwrite thread pool",
			     strerror(-ret), ret == -EPERM ?
			     ": kernel.io_uring_disabled or a seccomp profile" : "");
			d->uring = false;
		} else {
			d->nrings = 1;
			d->rfree = r;
		}
	}
	if (!d->uring) {
		d->fixed = false;
		for (; d->nthreads < DISK_THREADS; d->nthreads++)
			if (pthread_create(&d->threads[d->nthreads], NULL, tp_main, d)) {
				ret = -EAGAIN;
				if (!d->nthreads)
					goto err;
				break;
			}
	}

	memset(t, 0, sizeof(*t));
	t->name = "disk";
	t->level = KV_TIER_DISK;
	t->ctx = d;
	t->write = disk_write;
	t->read = disk_read;
	t->lookup = disk_lookup;
	t->chain = disk_chain;
	t->stats = disk_stats;
	t->close = disk_close;
	return 0;

err:
	free(sb);
	disk_free(d);
	return ret;
}

const char *kv_disk_engine(const struct kv_tier_ops *t)
{
	const struct disk *d = t->ctx;

	return d->uring ? "io_uring" : "threads";
}

int kv_disk_direct(const struct kv_tier_ops *t)
{
	return ((const struct disk *)t->ctx)->direct;
}

int kv_disk_fixed(const struct kv_tier_ops *t)
{
	const struct disk *d = t->ctx;

	return d->fixed && !d->warned_fixed;
}
