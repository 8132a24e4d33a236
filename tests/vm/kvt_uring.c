// SPDX-License-Identifier: MIT
/*
 * kvt_uring.c - a kvmem host region registered as io_uring fixed buffers
 * and filled by O_DIRECT reads (READ_FIXED) from a loop block device whose
 * backing file holds random data; every byte checked.
 */
#include <linux/loop.h>
#include <liburing.h>

#include "kvt.h"

#define LEN (4ul << 20)

static int loop_attach(const char *img, char *dev, size_t devlen)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), n, lfd, bfd;

	if (ctl < 0)
		return -1;
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (n < 0)
		return -1;
	snprintf(dev, devlen, "/dev/loop%d", n);
	lfd = open(dev, O_RDWR | O_CLOEXEC);
	bfd = open(img, O_RDWR | O_CLOEXEC);
	if (lfd < 0 || bfd < 0 || ioctl(lfd, LOOP_SET_FD, bfd)) {
		if (lfd >= 0)
			close(lfd);
		if (bfd >= 0)
			close(bfd);
		return -1;
	}
	close(bfd);
	return lfd;	/* keep open; LOOP_CLR_FD on it later */
}

int main(void)
{
	const char *img = "/tmp/kvt_uring.img";
	char dev[64];
	uint64_t h = 0, seed = kvt_seed();
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct iovec iov[2];
	struct kvt_snap s;
	uint8_t *m = NULL, *src;
	int fd, lfd = -1, dfd = -1, ret, ringok = 0;

	kvt_begin("uring_fixed_buffers_odirect");
	kvt_snap(&s);
	fd = kvt_open();
	CHECK(fd >= 0 && kvt_alloc(fd, LEN, 0, -1, &h) == 0, "ALLOC");
	m = kvt_map(fd, h, LEN);
	CHECK(m != NULL, "map");
	if (!m)
		goto out;

	/* backing file with random data */
	src = malloc(LEN);
	kvt_fill(src, LEN, seed);
	int b = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(b >= 0 && write(b, src, LEN) == (ssize_t)LEN, "write image");
	close(b);
	free(src);
	lfd = loop_attach(img, dev, sizeof(dev));
	if (lfd < 0) {
		printf("skip uring_fixed_buffers_odirect: no loop device (%s)\n", strerror(errno));
		goto out;
	}
	dfd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
	CHECK(dfd >= 0, "open %s O_DIRECT: %s", dev, strerror(errno));

	ret = io_uring_queue_init(8, &ring, 0);
	CHECK(ret == 0, "io_uring_queue_init: %s", strerror(-ret));
	if (ret)
		goto out;
	ringok = 1;
	/* two fixed buffers: the two halves of the region */
	iov[0] = (struct iovec){ m, LEN / 2 };
	iov[1] = (struct iovec){ m + LEN / 2, LEN / 2 };
	ret = io_uring_register_buffers(&ring, iov, 2);
	CHECK(ret == 0, "io_uring_register_buffers on a kvmem mapping: %s", strerror(-ret));
	if (ret)
		goto out;
	for (int i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read_fixed(sqe, dfd, iov[i].iov_base, LEN / 2,
					 (off_t)i * (LEN / 2), i);
		sqe->user_data = i;
	}
	CHECK(io_uring_submit(&ring) == 2, "submit");
	for (int i = 0; i < 2; i++) {
		ret = io_uring_wait_cqe(&ring, &cqe);
		CHECK(ret == 0 && cqe->res == (int)(LEN / 2), "cqe %llu res %d",
		      ret ? 0ull : (unsigned long long)cqe->user_data, ret ? ret : cqe->res);
		if (!ret)
			io_uring_cqe_seen(&ring, cqe);
	}
	long bad = kvt_verify(m, LEN, seed);
	CHECK(bad < 0, "O_DIRECT data differs at byte %ld", bad);
	CHECK(io_uring_unregister_buffers(&ring) == 0, "unregister");
out:
	if (ringok)
		io_uring_queue_exit(&ring);
	if (dfd >= 0)
		close(dfd);
	if (lfd >= 0) {
		ioctl(lfd, LOOP_CLR_FD, 0);
		close(lfd);
	}
	unlink(img);
	if (m)
		munmap(m, LEN);
	if (fd >= 0)
		close(fd);
	CHECK_SNAP_SAME(&s, "uring case");
	if (lfd >= 0 || kvt_case_failed)
		kvt_end();
	return kvt_exit();
}
