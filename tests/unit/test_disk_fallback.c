// SPDX-License-Identifier: MIT
/*
 * test_disk_fallback.c - the two fallbacks, each with exactly one warning:
 *  - a file system that refuses O_DIRECT (ramfs, mounted here) -> buffered
 *    I/O; round trip and restart there;
 *  - io_uring unavailable (a seccomp filter makes io_uring_setup fail with
 *    EPERM, as Docker's default profile does) -> the pread/pwrite pool.
 * SKIPs only the part whose mount is not permitted.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "test_disk.h"

#define NAMES 200
#define POOL 16
#define ENGINE 32
#define DISK (16u << 20)

static int warn_fd = -1, saved_fd = -1;
static char warn_path[512];

static void capture_begin(void)
{
	fflush(stderr);
	saved_fd = dup(2);
	warn_fd = open(warn_path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	CHECK(saved_fd >= 0 && warn_fd >= 0);
	dup2(warn_fd, 2);
}

/* Stop capturing; count the captured lines that contain pat. */
static int capture_end(const char *pat)
{
	char buf[8192], *p;
	ssize_t n;
	int count = 0;

	fflush(stderr);
	dup2(saved_fd, 2);
	close(saved_fd);
	n = pread(warn_fd, buf, sizeof(buf) - 1, 0);
	close(warn_fd);
	buf[n > 0 ? n : 0] = 0;
	fputs(buf, stdout);
	for (p = buf; (p = strstr(p, pat)); p++)
		count++;
	return count;
}

static void roundtrip(const char *path, uint32_t flags, const char *pat, int restart)
{
	struct kv_geometry g = t_geometry_small();
	static kv_hash h[NAMES];
	struct t_engine eng;
	struct kv_config cfg = { .geometry = g, .disk_path = path, .disk_bytes = DISK,
				 .flags = flags, .admit = KV_ADMIT_ALL, .ns_root = { 1, 1 } };
	struct kv_stats st;
	struct kv *kv;
	int ret;

	cfg.host_bytes = POOL * ((kv_geometry_block_bytes(&g) + 4095) & ~4095ul);
	t_hashes(h, NAMES);
	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_NHD, ENGINE);
	for (int run = 0; run <= restart; run++) {
		capture_begin();
		ret = kv_open(&cfg, &kv);
		if (ret) {
			capture_end(pat);
			FAILF("kv_open %s: %s", path, kv_strerror(ret));
		}
		CHECK_EQ(kv_attach(kv, &eng.ec), 0);
		if (!run)
			td_store_all(kv, &eng, h, NAMES, 8);
		for (int i = 0; i < NAMES; i += 25) {
			struct kv_completion c = td_load_check(kv, &eng, h + i, 25);

			if (c.res != 25)
				FAILF("load at %d: res %d err %s", i, c.res, kv_strerror(c.err));
		}
		CHECK_EQ(kv_stats(kv, &st), 0);
		CHECK(st.tier[KV_TIER_DISK].hits > 0);
		CHECK_EQ(st.tier[KV_TIER_DISK].failures, 0);
		kv_close(kv);
		ret = capture_end(pat);
		if (ret != 1)
			FAILF("%d warnings containing \"%s\", expected exactly one", ret, pat);
	}
	t_engine_free(&eng);
}

static int no_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

int main(void)
{
	char why[256], path[512];
	const char *dir, *mnt;
	int skipped = 0, fd;

	t_seed("test_disk_fallback");
	dir = td_dir();
	snprintf(warn_path, sizeof(warn_path), "%s/stderr", dir);

	/* 1. No O_DIRECT. */
	mnt = td_mount(dir, "ramfs", NULL, why, sizeof(why));
	if (!mnt) {
		printf("part 1 skipped: %s\n", why);
		skipped++;
	} else {
		snprintf(path, sizeof(path), "%s/kv.disk", mnt);
		fd = open(path, O_CREAT | O_RDWR | O_DIRECT, 0600);
		if (fd >= 0) {
			close(fd);
			unlink(path);
			printf("part 1 skipped: ramfs accepts O_DIRECT on this kernel\n");
			skipped++;
		} else {
			roundtrip(path, 0, "refuses O_DIRECT", 1);
			printf("part 1: buffered fallback on ramfs ok\n");
		}
		umount2(mnt, MNT_DETACH);
		td_mnt[0] = 0;
	}

	/* 2. No io_uring (the filter stays for the rest of the process). */
	fd = no_uring();
	if (fd) {
		printf("part 2 skipped: cannot install a seccomp filter: %s\n", strerror(-fd));
		skipped++;
	} else {
		snprintf(path, sizeof(path), "%s/kv2.disk", dir);
		roundtrip(path, 0, "io_uring is unavailable", 1);
		printf("part 2: thread-pool fallback under seccomp ok\n");
	}
	if (skipped == 2)
		SKIP("neither fallback could be set up here (see above)");
	printf("ok\n");
	return 0;
}
