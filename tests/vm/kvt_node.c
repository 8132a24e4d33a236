// SPDX-License-Identifier: MIT
/*
 * kvt_node.c - /dev/kvmem's device node on a real filesystem: an ext4
 * image, loop-mounted in the guest, gets a node with /dev/kvmem's number.
 * posix_fadvise() on it went to readahead through the file's private
 * address_space, whose a_ops were NULL: an oops (issue 12, defect 3).
 * On devtmpfs the noop backing device kept fadvise away from there.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "kvt.h"

#define DIR_ "/tmp/kvt_ext4"
#define IMG "/tmp/kvt_ext4.img"

int main(void)
{
	static const int advice[] = {
		POSIX_FADV_WILLNEED, POSIX_FADV_DONTNEED, POSIX_FADV_SEQUENTIAL,
		POSIX_FADV_RANDOM, POSIX_FADV_NOREUSE, POSIX_FADV_NORMAL,
	};
	struct kvt_snap s;
	struct stat st;
	uint64_t h = 0;
	uint8_t *m;
	int fd;

	if (stat(KVMEM_DEV_PATH, &st) || !S_ISCHR(st.st_mode)) {
		printf("not ok node: no %s\n", KVMEM_DEV_PATH);
		return 1;
	}
	mkdir(DIR_, 0755);
	if (system("truncate -s 16M " IMG " && mkfs.ext4 -q -F " IMG
		   " && mount -t ext4 -o loop " IMG " " DIR_)) {
		printf("skip fadvise_on_ext4_node: cannot make and mount an ext4 image (mkfs.ext4, loop)\n");
		return 77;
	}
	kvt_begin("fadvise_on_ext4_node");
	kvt_snap(&s);
	CHECK(mknod(DIR_ "/kvmem", S_IFCHR | 0600, st.st_rdev) == 0, "mknod: %s",
	      strerror(errno));
	fd = open(DIR_ "/kvmem", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open the ext4 node: %s", strerror(errno));
	if (fd >= 0) {
		for (size_t i = 0; i < sizeof(advice) / sizeof(advice[0]); i++) {
			int r = posix_fadvise(fd, 0, 1 << 20, advice[i]);

			CHECK(r == 0 || r == EINVAL || r == ESPIPE,
			      "fadvise %d: %s", advice[i], strerror(r));
		}
		CHECK(readahead(fd, 0, 1 << 20) == -1 && errno == EINVAL,
		      "readahead on a device: %s", strerror(errno));
		/* and the node works like /dev/kvmem */
		CHECK(kvt_alloc(fd, 65536, 0, -1, &h) == 0, "ALLOC");
		m = kvt_map(fd, h, 65536);
		CHECK(m != NULL, "mmap");
		if (m) {
			kvt_fill(m, 65536, h);
			CHECK(kvt_verify(m, 65536, h) < 0, "data");
			CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED) == 0 ||
			      errno == EINVAL, "fadvise while mapped");
			munmap(m, 65536);
		}
		close(fd);
	}
	CHECK_SNAP_SAME(&s, "ext4 node");
	kvt_end();
	unlink(DIR_ "/kvmem");
	umount(DIR_);
	unlink(IMG);
	return kvt_exit();
}
