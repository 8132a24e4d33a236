// SPDX-License-Identifier: MIT
/*
 * kvt_nogpu.c - run against the default build (KVMEM_GPU=none, the
 * in-tree kmod/kvmem.ko): no GPU feature, PIN_GPU is EOPNOTSUPP and
 * changes nothing; host regions still work.
 */
#include "kvt.h"

int main(void)
{
	struct kvmem_info in = { .size = sizeof(in) };
	struct kvmem_pin_gpu g = { .size = sizeof(g), .addr = 1ull << 40, .length = 65536 };
	struct kvt_snap s;
	uint64_t h = 0;
	int fd = kvt_open();

	kvt_begin("default_build_has_no_gpu");
	CHECK(fd >= 0 && ioctl(fd, KVMEM_IOC_INFO, &in) == 0, "INFO");
	CHECK(!(in.features & (KVMEM_FEAT_GPU | KVMEM_FEAT_GPU_MOCK)),
	      "features 0x%llx", (unsigned long long)in.features);
	kvt_snap(&s);
	CHECK_ERR(ioctl(fd, KVMEM_IOC_PIN_GPU, &g), EOPNOTSUPP);
	CHECK_SNAP_SAME(&s, "PIN_GPU");
	CHECK(kvt_alloc(fd, 1 << 20, 0, -1, &h) == 0 && kvt_free(fd, h) == 0, "host region");
	close(fd);
	kvt_end();
	return kvt_exit();
}
