// SPDX-License-Identifier: MIT
/*
 * kvt_memlock.c - accounting: RLIMIT_MEMLOCK lowered in a child without
 * CAP_IPC_LOCK (EPERM beyond it, nothing held), and the module-wide cap
 * (max_pinned_mb; ENOMEM beyond it).
 */
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "kvt.h"

#define MiB (1ul << 20)
#define CAP_PARAM "/sys/module/kvmem/parameters/max_pinned_mb"

static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &hdr, d))
		return -1;
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &hdr, d) ? -1 : 0;
}

static void child_memlock(void)
{
	struct rlimit rl = { MiB, MiB };
	struct kvt_snap s;
	uint64_t h1, h2, h3;
	long long e0;
	int fd;

	kvt_begin("rlimit_memlock");
	fd = kvt_open();
	CHECK(fd >= 0, "open");
	CHECK(drop_ipc_lock() == 0, "capset: %s", strerror(errno));
	CHECK(setrlimit(RLIMIT_MEMLOCK, &rl) == 0, "setrlimit");
	CHECK(kvt_alloc(fd, 512 * 1024, 0, -1, &h1) == 0, "512 KiB within 1 MiB");
	kvt_snap(&s);
	e0 = kvt_stat("err_memlock");
	CHECK(kvt_alloc(fd, MiB, 0, -1, &h2) == -EPERM, "1 MiB more should be EPERM");
	CHECK(kvt_stat("err_memlock") == e0 + 1, "err_memlock not counted");
	CHECK_SNAP_SAME(&s, "failed alloc");
	uint8_t *u = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvmem_pin_user p = { .size = sizeof(p), .addr = (uintptr_t)u, .length = MiB };
	CHECK_ERR(ioctl(fd, KVMEM_IOC_PIN_USER, &p), EPERM);
	CHECK_SNAP_SAME(&s, "failed pin");
	CHECK(kvt_alloc(fd, 512 * 1024, 0, -1, &h3) == 0, "up to exactly the limit");
	CHECK(kvt_free(fd, h1) == 0 && kvt_free(fd, h3) == 0, "FREE");
	CHECK(kvt_alloc(fd, MiB, 0, -1, &h2) == 0, "1 MiB after freeing");
	CHECK(kvt_free(fd, h2) == 0, "FREE");
	close(fd);
	kvt_end();
	exit(kvt_exit());
}

static int set_cap(const char *v)
{
	int f = open(CAP_PARAM, O_WRONLY);
	int ok = f >= 0 && write(f, v, strlen(v)) == (ssize_t)strlen(v);

	if (f >= 0)
		close(f);
	return ok ? 0 : -1;
}

static void case_module_cap(int fd)
{
	struct kvmem_info in = { .size = sizeof(in) };
	struct kvt_snap s;
	uint64_t h1, h2;
	long long e0;

	kvt_begin("module_cap");
	CHECK(set_cap("4") == 0, "write %s", CAP_PARAM);
	CHECK(ioctl(fd, KVMEM_IOC_INFO, &in) == 0 && in.cap_bytes == 4 * MiB,
	      "INFO cap_bytes %llu", (unsigned long long)in.cap_bytes);
	CHECK(kvt_stat("cap_bytes") == 4 * MiB, "stats cap_bytes");
	kvt_snap(&s);
	e0 = kvt_stat("err_cap");
	CHECK(kvt_alloc(fd, 8 * MiB, 0, -1, &h1) == -ENOMEM, "8 MiB over a 4 MiB cap");
	CHECK(kvt_stat("err_cap") == e0 + 1, "err_cap not counted");
	CHECK_SNAP_SAME(&s, "over cap");
	CHECK(kvt_alloc(fd, 3 * MiB, 0, -1, &h1) == 0, "3 MiB");
	CHECK(ioctl(fd, KVMEM_IOC_INFO, &in) == 0 && in.pinned_bytes == 3 * MiB,
	      "INFO pinned_bytes %llu", (unsigned long long)in.pinned_bytes);
	CHECK(kvt_alloc(fd, 2 * MiB, 0, -1, &h2) == -ENOMEM, "3 + 2 MiB over cap");
	CHECK(kvt_alloc(fd, MiB, 0, -1, &h2) == 0, "3 + 1 MiB fits exactly");
	CHECK(kvt_free(fd, h1) == 0 && kvt_free(fd, h2) == 0, "FREE");
	CHECK(set_cap("0") == 0, "restore cap");
	kvt_end();
}

int main(void)
{
	int fd = kvt_open(), st;
	pid_t pid;

	if (fd < 0) {
		printf("not ok open: %s\n", strerror(errno));
		return 1;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		child_memlock();
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		kvt_failed_cases++;
	case_module_cap(fd);
	close(fd);
	return kvt_exit();
}
