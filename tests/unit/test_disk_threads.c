// SPDX-License-Identifier: MIT
/* test_disk_threads.c - the disk round trip on the forced pread/pwrite thread pool. */
#define RT_FLAGS KV_F_DISK_NO_URING
#define RT_NAME "test_disk_threads"
#include "test_disk_roundtrip.c"
