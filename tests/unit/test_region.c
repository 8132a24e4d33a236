// SPDX-License-Identifier: MIT
/*
 * test_region.c - the mmap region provider under a low RLIMIT_MEMLOCK and
 * without CAP_IPC_LOCK (dropped here even when run as root): the pool works
 * unpinned unless pinning is required, in which case it is -EPERM.
 */
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "region.h"

static void drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	CHECK_EQ(syscall(SYS_capget, &hdr, data), 0);
	data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	CHECK_EQ(syscall(SYS_capset, &hdr, data), 0);
}

int main(void)
{
	struct rlimit rl = { 4 << 20, 4 << 20 };
	struct kv_geometry g = t_geometry_small();
	struct kv_config cfg = { .geometry = g, .host_bytes = 16 << 20,
				 .flags = KV_F_QUIET | KV_F_NO_KVMEM };
	struct kv_region r;
	struct kv_stats st;
	struct kv *kv;

	CHECK_EQ(kv_region_alloc(0, 0, &r), -EINVAL);
	CHECK_EQ(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
	drop_ipc_lock();

	/* Within the limit: pinned. */
	CHECK_EQ(kv_region_mmap_alloc(2 << 20, KV_F_QUIET, &r), 0);
	CHECK(r.pinned);
	CHECK(r.len >= (2u << 20));
	memset(r.addr, 0x5a, r.len);
	kv_region_free(&r);

	/* Beyond it: unpinned but usable, or -EPERM when pinning is required. */
	CHECK_EQ(kv_region_mmap_alloc(16 << 20, KV_F_QUIET, &r), 0);
	CHECK(!r.pinned);
	memset(r.addr, 0xa5, r.len);
	kv_region_free(&r);
	CHECK_EQ(kv_region_mmap_alloc(16 << 20, KV_F_QUIET | KV_F_REQUIRE_PINNED, &r), -EPERM);

	cfg.flags |= KV_F_REQUIRE_PINNED;
	CHECK_EQ(kv_open(&cfg, &kv), -EPERM);
	cfg.flags &= ~KV_F_REQUIRE_PINNED;
	CHECK_EQ(kv_open(&cfg, &kv), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.host_pinned, 0);
	CHECK_EQ(st.host_provider, KV_PROVIDER_MMAP);
	kv_close(kv);

	/* The module is mandatory on request: without it, -ENODEV. */
	if (access("/dev/kvmem", F_OK) != 0) {
		cfg.flags = KV_F_QUIET | KV_F_REQUIRE_KVMEM;
		CHECK_EQ(kv_open(&cfg, &kv), -ENODEV);
	}
	printf("ok\n");
	return 0;
}
