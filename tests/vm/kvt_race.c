// SPDX-License-Identifier: MIT
/*
 * kvt_race.c - threads of one process race on one fd: alloc, free, mmap +
 * touch, dma-buf export + mmap, query on shared handles, while another
 * thread pins and touches GPU regions and a third fires the mock's free
 * callbacks (cudaFree) under them. Expected: no crash, SIGBUS only on
 * invalidated GPU mappings, every gauge and the mock back to zero.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "kvt.h"

#define SLOTS 32
#define SECS 4
#define MOCK_FREE "/sys/module/kvmem_p2p_mock/parameters/free_va"

static int fd;
static _Atomic uint64_t slot[SLOTS];
static atomic_int stop;
static atomic_long ops, sigbus, unexpected;
static __thread sigjmp_buf tjmp;
static __thread volatile int tsig;

static void on_sig(int sig)
{
	tsig = sig;
	siglongjmp(tjmp, 1);
}

/* 0: ok, else the signal the access raised (per thread). */
static int touch(volatile uint8_t *p)
{
	tsig = 0;
	if (!sigsetjmp(tjmp, 1)) {
		p[0] = 0x11;
		(void)p[4095];
	}
	return tsig;
}

static void *worker(void *arg)
{
	uint64_t s = kvt_seed() ^ (uintptr_t)arg;

	while (!stop) {
		int k = kvt_next(&s) % SLOTS, op = kvt_next(&s) % 6;
		uint64_t h = slot[k], nh;

		switch (op) {
		case 0: /* alloc into a slot, free what was there */
			if (!kvt_alloc(fd, ((kvt_next(&s) % 32) + 1) * 65536, 0, -1, &nh)) {
				h = atomic_exchange(&slot[k], nh);
				if (h)
					kvt_free(fd, h);
			}
			break;
		case 1: /* free (may race with another free: ENOENT is fine) */
			if (h && atomic_compare_exchange_strong(&slot[k], &h, 0))
				kvt_free(fd, h);
			break;
		case 2: { /* map, touch, unmap (the handle may be freed meanwhile) */
			uint8_t *m = h ? kvt_map(fd, h, 65536) : NULL;
			if (m) {
				int sig = touch(m);
				if (sig) {
					unexpected++;
					printf("  worker: signal %d on handle %llu\n", sig,
					       (unsigned long long)h);
				}
				munmap(m, 65536);
			}
			break;
		}
		case 3: { /* export, map the dma-buf, close */
			struct kvmem_export e = { .size = sizeof(e), .handle = h };
			if (h && !ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e)) {
				uint8_t *d = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
				if (d != MAP_FAILED) {
					if (touch(d))
						unexpected++;
					munmap(d, 4096);
				}
				close(e.fd);
			}
			break;
		}
		default: {
			struct kvmem_query q;
			if (h)
				kvt_query(fd, h, &q);
			break;
		}
		}
		ops++;
	}
	return NULL;
}

static void *gpu(void *arg)
{
	uint64_t s = kvt_seed();

	while (!stop) {
		struct kvmem_pin_gpu g = { .size = sizeof(g),
			.addr = (1ull << 42) + (kvt_next(&s) % 8) * (1 << 20),
			.length = ((kvt_next(&s) % 4) + 1) * 65536 };
		uint8_t *m;

		if (ioctl(fd, KVMEM_IOC_PIN_GPU, &g))
			continue;	/* ENXIO when freed while pinning */
		m = mmap(NULL, g.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, g.mmap_offset);
		if (m != MAP_FAILED) {
			for (int i = 0; i < 20; i++) {
				int sig = touch(m + (i % (g.length / 4096)) * 4096);
				if (sig == SIGBUS)
					sigbus++;	/* freed by the firer */
				else if (sig) {
					unexpected++;
					printf("  gpu: signal %d\n", sig);
				}
			}
			munmap(m, g.length);
		}
		kvt_free(fd, g.handle);
		ops++;
	}
	return NULL;
}

static void *firer(void *arg)
{
	while (!stop) {
		int f = open(MOCK_FREE, O_WRONLY);
		if (f >= 0) {
			(void)!write(f, "0", 1);
			close(f);
		}
		usleep(20000);
	}
	return NULL;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_sig };
	pthread_t t[6];
	struct kvt_snap s;
	int n = 0, have_gpu = access(MOCK_FREE, W_OK) == 0;

	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	kvt_begin("threads_race_one_fd");
	kvt_snap(&s);
	fd = kvt_open();
	CHECK(fd >= 0, "open");
	for (int i = 0; i < 4; i++)
		pthread_create(&t[n++], NULL, worker, (void *)(uintptr_t)i);
	if (have_gpu) {
		pthread_create(&t[n++], NULL, gpu, NULL);
		pthread_create(&t[n++], NULL, firer, NULL);
	}
	sleep(SECS);
	stop = 1;
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("race: %ld operations, %ld SIGBUS on freed GPU memory\n", (long)ops, (long)sigbus);
	CHECK(unexpected == 0, "%ld unexpected faults", (long)unexpected);
	CHECK(ops > 100, "only %ld operations", (long)ops);
	close(fd);
	CHECK_SNAP_SAME(&s, "race");
	if (have_gpu) {
		char b[16] = "";
		int f = open("/sys/module/kvmem_p2p_mock/parameters/live", O_RDONLY);
		CHECK(f >= 0 && read(f, b, sizeof(b)) > 0 && atoi(b) == 0, "mock live %s", b);
		if (f >= 0)
			close(f);
	}
	kvt_end();
	return kvt_exit();
}
