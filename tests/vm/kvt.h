/* SPDX-License-Identifier: MIT */
/*
 * kvt.h - helpers for the kvmem tests that run inside the VM
 * (tests/vm/kvt_*.c). Each program runs cases; each case prints one line:
 *   ok NAME | not ok NAME: why | skip NAME: why
 * and suite.sh turns them into PASS/FAIL/SKIP lines. Exit status: 0 when
 * no case failed, 1 otherwise.
 */
#ifndef KVT_H
#define KVT_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvmem.h"

static int kvt_failed_cases;
static int kvt_case_failed;
static const char *kvt_case_name;

static inline void kvt_begin(const char *name)
{
	kvt_case_name = name;
	kvt_case_failed = 0;
}

static inline int kvt_end(void)
{
	if (kvt_case_failed)
		kvt_failed_cases++;
	else
		printf("ok %s\n", kvt_case_name);
	fflush(stdout);
	return !kvt_case_failed;
}

static inline void kvt_skip(const char *name, const char *why)
{
	printf("skip %s: %s\n", name, why);
	fflush(stdout);
}

/* First failure of a case prints "not ok"; later ones print detail only. */
static inline void kvt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!kvt_case_failed)
		printf("not ok %s: %s (%s:%d)\n", kvt_case_name, msg, file, line);
	else
		printf("  also: %s (%s:%d)\n", msg, file, line);
	fflush(stdout);
	kvt_case_failed = 1;
}

#define CHECK(cond, ...) \
	do { if (!(cond)) kvt_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
/* Expect a syscall-style call to fail with errno e. */
#define CHECK_ERR(call, e) do { \
	errno = 0; long _r = (long)(call); int _e = errno; \
	CHECK(_r == -1 && _e == (e), "%s: got %ld errno %d (%s), want %s", \
	      #call, _r, _e, strerror(_e), #e); } while (0)
#define CHECK_OK(call) do { \
	errno = 0; long _r = (long)(call); int _e = errno; \
	CHECK(_r >= 0, "%s: %ld errno %d (%s)", #call, _r, _e, strerror(_e)); \
	} while (0)

static inline int kvt_exit(void)
{
	return kvt_failed_cases ? 1 : 0;
}

/* ---- /proc/driver/kvmem/stats ---- */

static inline long long kvt_stat(const char *key)
{
	FILE *f = fopen("/proc/driver/kvmem/stats", "r");
	char line[256];
	size_t n = strlen(key);
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = atoll(line + n + 1);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Gauges: what "changes nothing" is checked against. */
static const char *const kvt_gauges[] = {
	"files", "regions", "host_regions", "user_regions", "gpu_regions",
	"pinned_bytes", "huge_pages", "mappings", "dmabufs",
};
#define KVT_NGAUGES (sizeof(kvt_gauges) / sizeof(kvt_gauges[0]))

struct kvt_snap {
	long long v[KVT_NGAUGES];
};

static inline void kvt_snap(struct kvt_snap *s)
{
	for (size_t i = 0; i < KVT_NGAUGES; i++)
		s->v[i] = kvt_stat(kvt_gauges[i]);
}

#define CHECK_SNAP_SAME(a, what) do { \
	struct kvt_snap _b; kvt_snap(&_b); \
	for (size_t _i = 0; _i < KVT_NGAUGES; _i++) \
		CHECK((a)->v[_i] == _b.v[_i], "%s changed %s: %lld -> %lld", \
		      what, kvt_gauges[_i], (a)->v[_i], _b.v[_i]); \
	} while (0)

/* ---- ioctl wrappers: return 0 or -errno ---- */

static inline int kvt_open(void)
{
	return open(KVMEM_DEV_PATH, O_RDWR | O_CLOEXEC);
}

static inline int kvt_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static inline int kvt_alloc(int fd, uint64_t len, uint32_t flags, int node,
			    uint64_t *handle)
{
	struct kvmem_alloc a = {
		.size = sizeof(a), .flags = flags, .length = len,
		.numa_node = node,
	};
	int ret = kvt_ioctl(fd, KVMEM_IOC_ALLOC, &a);

	if (!ret && handle)
		*handle = a.handle;
	return ret;
}

static inline int kvt_free(int fd, uint64_t handle)
{
	struct kvmem_free f = { .size = sizeof(f), .handle = handle };

	return kvt_ioctl(fd, KVMEM_IOC_FREE, &f);
}

static inline int kvt_query(int fd, uint64_t handle, struct kvmem_query *q)
{
	memset(q, 0, sizeof(*q));
	q->size = sizeof(*q);
	q->handle = handle;
	return kvt_ioctl(fd, KVMEM_IOC_QUERY, q);
}

static inline void *kvt_map(int fd, uint64_t handle, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       (off_t)(handle << 12));

	return p == MAP_FAILED ? NULL : p;
}

/* ---- data ---- */

static inline uint64_t kvt_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
	       ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ull;
}

static inline uint64_t kvt_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline void kvt_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t s = seed | 1, *q = p;

	for (size_t i = 0; i < len / 8; i++)
		q[i] = kvt_next(&s);
}

/* Returns the first differing byte offset, or -1 if all match. */
static inline long kvt_verify(const void *p, size_t len, uint64_t seed)
{
	uint64_t s = seed | 1;
	const uint64_t *q = p;

	for (size_t i = 0; i < len / 8; i++) {
		if (q[i] != kvt_next(&s)) {
			const uint8_t *b = (const uint8_t *)&q[i];
			uint64_t want = s;
			for (int k = 0; k < 8; k++)
				if (b[k] != ((uint8_t *)&want)[k])
					return (long)(i * 8 + k);
		}
	}
	return -1;
}

/* ---- faults: does touching p raise SIGBUS/SIGSEGV? ---- */

static sigjmp_buf kvt_jmp;
static volatile int kvt_sig;

static void kvt_on_fault(int sig)
{
	kvt_sig = sig;
	siglongjmp(kvt_jmp, 1);
}

/* Returns 0 if the read worked, or the signal number it raised. */
static inline int kvt_touch(volatile uint8_t *p, int write)
{
	struct sigaction sa, obus, osegv;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvt_on_fault;
	sigaction(SIGBUS, &sa, &obus);
	sigaction(SIGSEGV, &sa, &osegv);
	kvt_sig = 0;
	if (!sigsetjmp(kvt_jmp, 1)) {
		if (write)
			*p = 0x5a;
		else
			(void)*p;
	}
	sigaction(SIGBUS, &obus, NULL);
	sigaction(SIGSEGV, &osegv, NULL);
	return kvt_sig;
}

#endif /* KVT_H */
