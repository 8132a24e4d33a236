// SPDX-License-Identifier: MIT
/*
 * kvt_memcg.c - host regions are charged to the caller's memory cgroup
 * (issue 12, defect 7): in a cgroup v2 group with memory.max = 16 MiB, a
 * 64 MiB ALLOC (huge pages first, or base pages only) is ENOMEM even for
 * root (CAP_IPC_LOCK skips only the memlock limit), a 4 MiB one raises
 * memory.current by its size and FREE lowers it again.
 */
#include <sys/mount.h>
#include <sys/stat.h>

#include "kvt.h"

#define CG "/sys/fs/cgroup"
#define GRP CG "/kvt_memcg"
#define MiB (1ull << 20)

static int put(const char *path, const char *v)
{
	int f = open(path, O_WRONLY), n = strlen(v);

	if (f < 0)
		return -1;
	n = write(f, v, n) == n ? 0 : -1;
	close(f);
	return n;
}

static long long get(const char *path)
{
	char b[64] = "";
	int f = open(path, O_RDONLY);

	if (f < 0 || read(f, b, sizeof(b) - 1) <= 0)
		b[0] = 0;
	if (f >= 0)
		close(f);
	return b[0] ? atoll(b) : -1;
}

/* In the child, inside the group. Returns 0 or 1; prints why. */
static int child(void)
{
	long long c0, c1, c2;
	uint64_t h;
	int fd = kvt_open(), ret;

	if (fd < 0)
		return 1;
	ret = kvt_alloc(fd, 64 * MiB, 0, -1, NULL);
	if (ret != -ENOMEM) {
		printf("  64 MiB ALLOC in a 16 MiB memcg: %d, want ENOMEM\n", ret);
		return 1;
	}
	ret = kvt_alloc(fd, 64 * MiB, KVMEM_ALLOC_NO_HUGE, -1, NULL);
	if (ret != -ENOMEM) {
		printf("  64 MiB NO_HUGE ALLOC in a 16 MiB memcg: %d, want ENOMEM\n", ret);
		return 1;
	}
	c0 = get(GRP "/memory.current");
	ret = kvt_alloc(fd, 4 * MiB, 0, -1, &h);
	c1 = get(GRP "/memory.current");
	if (ret || c1 < c0 + (long long)(4 * MiB)) {
		printf("  4 MiB ALLOC: %d, memory.current %lld -> %lld\n", ret, c0, c1);
		return 1;
	}
	kvt_free(fd, h);
	c2 = get(GRP "/memory.current");
	if (c2 > c1 - (long long)(4 * MiB)) {
		printf("  FREE: memory.current %lld -> %lld\n", c1, c2);
		return 1;
	}
	close(fd);
	return 0;
}

int main(void)
{
	struct kvt_snap s;
	char pid[32];
	int st;
	pid_t p;

	if (access(CG "/cgroup.controllers", R_OK))
		mount("cgroup2", CG, "cgroup2", 0, NULL);
	put(CG "/cgroup.subtree_control", "+memory");
	rmdir(GRP);
	if (mkdir(GRP, 0755) || access(GRP "/memory.max", W_OK)) {
		printf("skip memcg_max_below_pin: no cgroup v2 memory controller\n");
		return 77;
	}
	kvt_begin("memcg_max_below_pin");
	kvt_snap(&s);
	CHECK(put(GRP "/memory.max", "16777216") == 0, "memory.max");
	put(GRP "/memory.swap.max", "0");
	fflush(stdout);
	p = fork();
	if (p == 0) {
		snprintf(pid, sizeof(pid), "%d", getpid());
		if (put(GRP "/cgroup.procs", pid))
			_exit(2);
		st = child();
		fflush(stdout);
		_exit(st);
	}
	CHECK(p > 0 && waitpid(p, &st, 0) == p, "fork");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	CHECK_SNAP_SAME(&s, "memcg");
	CHECK(rmdir(GRP) == 0, "rmdir: %s", strerror(errno));
	kvt_end();
	return kvt_exit();
}
