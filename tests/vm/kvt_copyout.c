// SPDX-License-Identifier: MIT
/*
 * kvt_copyout.c - a new region's handle must not be reachable by another
 * thread before the creating ioctl has copied its result out (issue 12,
 * defect 1: FREE in that window, then a failing copy-out, dropped a
 * reference on freed memory).
 *  - uffd_wp_copy_out: the ALLOC result lies on a userfaultfd
 *    write-protected page, so the ioctl stops inside its copy-out; the
 *    predicted handle must then be unknown to QUERY, mmap and FREE; the
 *    copy-out is made to fail and nothing may remain.
 *  - threads_copy_out: bounded loop of ALLOCs whose copy-out fails
 *    (read-only result page) while another thread FREEs the handles they
 *    get: no FREE may ever succeed.
 */
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "kvt.h"

static int fd;

struct alloc_job {
	struct kvmem_alloc *a;
	int ret;
};

static void *alloc_thread(void *arg)
{
	struct alloc_job *j = arg;

	j->ret = kvt_ioctl(fd, KVMEM_IOC_ALLOC, j->a);
	return NULL;
}

/* The next handle of fd: handles are cyclic, so one past the last. */
static uint64_t next_handle(void)
{
	uint64_t h = 0;

	if (kvt_alloc(fd, 4096, 0, -1, &h))
		return 0;
	kvt_free(fd, h);
	return h + 1;
}

static void case_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	struct alloc_job j = { 0 };
	struct kvmem_query q;
	struct uffd_msg msg;
	struct kvt_snap s;
	struct pollfd pfd;
	pthread_t t;
	uint8_t *pg;
	uint64_t h;
	int uffd;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) ||
	    !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		kvt_skip("uffd_wp_copy_out", "no userfaultfd write-protect");
		if (uffd >= 0)
			close(uffd);
		return;
	}
	kvt_begin("uffd_wp_copy_out");
	pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(pg != MAP_FAILED, "mmap");
	memset(pg, 0, 4096);
	reg.range.start = (uintptr_t)pg;
	reg.range.len = 4096;
	CHECK_OK(ioctl(uffd, UFFDIO_REGISTER, &reg));
	j.a = (struct kvmem_alloc *)pg;
	*j.a = (struct kvmem_alloc){ .size = sizeof(*j.a), .length = 65536,
				     .numa_node = -1 };
	wp.range = reg.range;
	CHECK_OK(ioctl(uffd, UFFDIO_WRITEPROTECT, &wp));
	h = next_handle();
	CHECK(h != 0, "ALLOC to learn the next handle");
	kvt_snap(&s);

	pthread_create(&t, NULL, alloc_thread, &j);
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	CHECK(poll(&pfd, 1, 20000) == 1, "ALLOC never reached its copy-out");
	CHECK(read(uffd, &msg, sizeof(msg)) == sizeof(msg) &&
	      msg.event == UFFD_EVENT_PAGEFAULT &&
	      (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP),
	      "not a write-protect fault");
	/* ALLOC is stopped in its copy-out: its handle must not exist yet. */
	CHECK(kvt_query(fd, h, &q) == -ENOENT, "QUERY of the pending handle %llu worked",
	      (unsigned long long)h);
	CHECK(kvt_map(fd, h, 4096) == NULL, "mmap of the pending handle worked");
	CHECK(kvt_free(fd, h) == -ENOENT,
	      "FREE of the pending handle %llu worked: it was reachable before ALLOC returned",
	      (unsigned long long)h);
	/* Let the copy-out fail: the page goes, the waiter retries. */
	munmap(pg, 4096);
	close(uffd);
	pthread_join(t, NULL);
	CHECK(j.ret == -EFAULT, "ALLOC with a vanished result page: %d", j.ret);
	CHECK(kvt_query(fd, h, &q) == -ENOENT, "undone handle still there");
	CHECK_SNAP_SAME(&s, "failed ALLOC");
	kvt_end();
}

static atomic_int stop;
static atomic_ulong base;
static atomic_long freed;

static void *freer(void *arg)
{
	(void)arg;
	while (!stop) {
		uint64_t b = base;

		for (uint64_t k = 0; k < 4; k++)
			if (kvt_free(fd, b + k) == 0)
				freed++;
	}
	return NULL;
}

static void case_threads(void)
{
	uint8_t *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvmem_alloc *a = (void *)pg;
	struct timespec t0, t1;
	struct kvt_snap s;
	long n = 0, efault = 0;
	pthread_t t;

	kvt_begin("threads_copy_out");
	*a = (struct kvmem_alloc){ .size = sizeof(*a), .length = 65536,
				   .numa_node = -1 };
	mprotect(pg, 4096, PROT_READ);
	base = next_handle();
	kvt_snap(&s);
	stop = 0;
	pthread_create(&t, NULL, freer, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (kvt_ioctl(fd, KVMEM_IOC_ALLOC, a) == -EFAULT)
			efault++;
		base++;
		n++;
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (n < 20000 && t1.tv_sec - t0.tv_sec < 3);
	stop = 1;
	pthread_join(t, NULL);
	printf("threads_copy_out: %ld ALLOCs, %ld EFAULT, %ld FREEs hit\n",
	       n, efault, (long)freed);
	CHECK(efault == n, "%ld of %ld ALLOCs did not fail with EFAULT", n - efault, n);
	CHECK(freed == 0, "%ld handles were freed before their ALLOC returned", (long)freed);
	CHECK_SNAP_SAME(&s, "failed ALLOCs");
	munmap(pg, 4096);
	kvt_end();
}

int main(void)
{
	fd = kvt_open();
	if (fd < 0) {
		printf("not ok open: %s\n", strerror(errno));
		return 1;
	}
	case_uffd();
	case_threads();
	close(fd);
	return kvt_exit();
}
