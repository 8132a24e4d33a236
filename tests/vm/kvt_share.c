// SPDX-License-Identifier: MIT
/*
 * kvt_share.c - handles belong to the process that opened the fd: the fd
 * passed over a unix socket (SCM_RIGHTS) or inherited by fork() gets
 * EACCES for every ioctl and for mmap; fork() copies no mapping; nothing
 * leaks, even when the owner exits first and the receiver closes last.
 */
#include <sys/socket.h>

#include "kvt.h"

static int send_fd(int sock, int fd)
{
	char c = 'f';
	struct iovec iov = { &c, 1 };
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c1 = CMSG_FIRSTHDR(&m);

	c1->cmsg_level = SOL_SOCKET;
	c1->cmsg_type = SCM_RIGHTS;
	c1->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c1), &fd, sizeof(int));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char c;
	struct iovec iov = { &c, 1 };
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c1;
	int fd = -1;

	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	c1 = CMSG_FIRSTHDR(&m);
	if (c1 && c1->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c1), sizeof(int));
	return fd;
}

/* Every entry point refused with EACCES; counted, nothing changes. */
static void expect_foreign(int fd, uint64_t h, size_t len)
{
	struct kvmem_info in = { .size = sizeof(in) };
	struct kvmem_query q = { .size = sizeof(q), .handle = h };
	struct kvmem_export e = { .size = sizeof(e), .handle = h };
	struct kvmem_free f = { .size = sizeof(f), .handle = h };
	struct kvmem_alloc a = { .size = sizeof(a), .length = 65536, .numa_node = -1 };
	struct kvt_snap s;
	long long acc0 = kvt_stat("err_access");

	kvt_snap(&s);
	CHECK_ERR(ioctl(fd, KVMEM_IOC_INFO, &in), EACCES);
	CHECK_ERR(ioctl(fd, KVMEM_IOC_QUERY, &q), EACCES);
	CHECK_ERR(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e), EACCES);
	CHECK_ERR(ioctl(fd, KVMEM_IOC_FREE, &f), EACCES);
	CHECK_ERR(ioctl(fd, KVMEM_IOC_ALLOC, &a), EACCES);
	CHECK_ERR(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, h << 12), EACCES);
	CHECK(kvt_stat("err_access") == acc0 + 6, "err_access %lld, want %lld",
	      kvt_stat("err_access"), acc0 + 6);
	CHECK_SNAP_SAME(&s, "foreign use");
}

static void case_scm_rights(void)
{
	struct kvt_snap s;
	int sv[2], st;
	pid_t owner, receiver;
	size_t len = 1 << 20;

	kvt_begin("scm_rights_eacces");
	kvt_snap(&s);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	fflush(stdout);
	/* owner: allocates, sends the fd, exits; receiver outlives it */
	owner = fork();
	if (owner == 0) {
		int fd = kvt_open();
		uint64_t h = 0;
		if (fd < 0 || kvt_alloc(fd, len, 0, -1, &h))
			_exit(2);
		if (send_fd(sv[0], fd) ||
		    write(sv[0], &h, sizeof(h)) != sizeof(h))
			_exit(3);
		_exit(0);
	}
	receiver = fork();
	if (receiver == 0) {
		uint64_t h = 0;
		int fd = recv_fd(sv[1]);
		CHECK(fd >= 0, "recv fd");
		CHECK(read(sv[1], &h, sizeof(h)) == sizeof(h), "read handle");
		waitpid(owner, NULL, 0);	/* not our child: returns at once */
		expect_foreign(fd, h, len);
		close(fd);
		_exit(kvt_case_failed ? 1 : 0);
	}
	waitpid(owner, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "owner failed 0x%x", st);
	waitpid(receiver, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "receiver saw wrong errors (0x%x)", st);
	close(sv[0]);
	close(sv[1]);
	CHECK_SNAP_SAME(&s, "owner exited, receiver closed");
	kvt_end();
}

static void case_fork(void)
{
	struct kvt_snap s;
	struct kvmem_query q;
	size_t len = 2 << 20;
	uint64_t h = 0, seed = kvt_seed();
	uint8_t *m;
	int fd, st;
	pid_t pid;

	kvt_begin("fork_child_eacces_no_copy");
	kvt_snap(&s);
	fd = kvt_open();
	CHECK(fd >= 0 && kvt_alloc(fd, len, 0, -1, &h) == 0, "ALLOC");
	m = kvt_map(fd, h, len);
	CHECK(m != NULL, "map");
	if (!m)
		goto out;
	kvt_fill(m, len, seed);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		expect_foreign(fd, h, len);
		/* the mapping is not copied into the child (VM_DONTCOPY) */
		CHECK(kvt_touch(m, 0) == SIGSEGV, "parent's mapping visible in child");
		_exit(kvt_case_failed ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw wrong results (0x%x)", st);
	CHECK(kvt_query(fd, h, &q) == 0 && q.mapped == 1, "mapped %u after fork", q.mapped);
	CHECK(kvt_verify(m, len, seed) < 0, "data changed across fork");
	munmap(m, len);
	CHECK(kvt_free(fd, h) == 0, "FREE");
out:
	close(fd);
	CHECK_SNAP_SAME(&s, "fork");
	kvt_end();
}

/* In a fork child: every page of m must fault, read and write. */
static int child_sees_nothing(uint8_t *m, size_t len, const char *what)
{
	for (size_t off = 0; off < len; off += 4096) {
		int r = kvt_touch(m + off, 0), w = kvt_touch(m + off, 1);

		/* the read-only part faults SIGSEGV on write, before kvmem */
		if (r != SIGBUS || (w != SIGBUS && w != SIGSEGV)) {
			printf("  %s: child access at +%zu: read signal %d, write signal %d (want SIGBUS)\n",
			       what, off, r, w);
			return 1;
		}
	}
	return 0;
}

/*
 * MADV_DOFORK clears VM_DONTCOPY: the child's copy of a host mapping (of
 * /dev/kvmem and of a dma-buf) must map nothing, and the parent's mapping
 * and data stay as they were (issue 12, defect 9).
 */
static void case_dofork(void)
{
	struct kvmem_export e = { .size = sizeof(e) };
	size_t len = 4 << 20;
	uint64_t h = 0, seed = kvt_seed();
	struct kvmem_query q;
	struct kvt_snap s;
	uint8_t *m, *d;
	int fd, st;
	pid_t pid;

	kvt_begin("madv_dofork_child_sees_nothing");
	kvt_snap(&s);
	fd = kvt_open();
	CHECK(fd >= 0 && kvt_alloc(fd, len, 0, -1, &h) == 0, "ALLOC");
	m = kvt_map(fd, h, len);
	e.handle = h;
	CHECK(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e) == 0, "EXPORT");
	d = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
	CHECK(m != NULL && d != MAP_FAILED, "map");
	if (!m || d == MAP_FAILED)
		goto out;
	kvt_fill(m, len, seed);
	CHECK_OK(madvise(m, len, MADV_DOFORK));
	CHECK_OK(madvise(d, len, MADV_DOFORK));
	/* split the VMA too: each part is copied on its own */
	CHECK_OK(mprotect(m + (1 << 20), 4096, PROT_READ));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int bad = child_sees_nothing(m, len, "/dev/kvmem mapping") |
			  child_sees_nothing(d, len, "dma-buf mapping");

		/* and a grandchild after another MADV_DOFORK */
		if (!bad && madvise(m, len, MADV_DOFORK) == 0) {
			pid_t g = fork();

			if (g == 0) {
				int b = child_sees_nothing(m, len, "grandchild");

				fflush(stdout);
				_exit(b);
			}
			bad |= waitpid(g, &st, 0) != g || !WIFEXITED(st) ||
			       WEXITSTATUS(st);
		}
		munmap(m, len);
		fflush(stdout);
		_exit(bad);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/wait");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the child reached the parent's pages (status 0x%x)", st);
	CHECK(kvt_verify(m, len, seed) < 0 && kvt_verify(d, len, seed) < 0,
	      "parent's data changed across fork");
	CHECK(kvt_query(fd, h, &q) == 0 && q.mapped == 4,
	      "mapped %u after fork, want 4 (three parts + dma-buf)", q.mapped);
	munmap(m, len);
	munmap(d, len);
	close(e.fd);
	CHECK(kvt_free(fd, h) == 0, "FREE");
out:
	close(fd);
	CHECK_SNAP_SAME(&s, "MADV_DOFORK fork");
	kvt_end();
}

/*
 * After execve() the same process is a new image with a new mm: an fd it
 * opened without O_CLOEXEC must be foreign to it (every ioctl and mmap
 * EACCES), or its charges would go to the dead mm (issue 12, item 11).
 * Runs in the exec'd image: prints its own detail, returns the status.
 */
static int exec_child(int fd, uint64_t h)
{
	struct kvmem_info in = { .size = sizeof(in) };
	struct kvmem_alloc a = { .size = sizeof(a), .length = 65536, .numa_node = -1 };
	struct kvmem_free f = { .size = sizeof(f), .handle = h };
	int bad = 0;

	if (ioctl(fd, KVMEM_IOC_INFO, &in) != -1 || errno != EACCES)
		bad = printf("  INFO after exec: errno %d, want EACCES\n", errno);
	if (ioctl(fd, KVMEM_IOC_ALLOC, &a) != -1 || errno != EACCES)
		bad = printf("  ALLOC after exec: errno %d, want EACCES\n", errno);
	if (ioctl(fd, KVMEM_IOC_FREE, &f) != -1 || errno != EACCES)
		bad = printf("  FREE after exec: errno %d, want EACCES\n", errno);
	if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, h << 12) != MAP_FAILED ||
	    errno != EACCES)
		bad = printf("  mmap after exec: errno %d, want EACCES\n", errno);
	fflush(stdout);
	return bad ? 1 : 0;
}

static void case_exec(void)
{
	struct kvt_snap s;
	char fds[16], hs[32];
	uint64_t h = 0;
	int st;
	pid_t pid;

	kvt_begin("exec_same_pid_new_image_eacces");
	kvt_snap(&s);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(KVMEM_DEV_PATH, O_RDWR);	/* inherited by the new image */

		if (fd < 0 || kvt_alloc(fd, 65536, 0, -1, &h))
			_exit(2);
		snprintf(fds, sizeof(fds), "%d", fd);
		snprintf(hs, sizeof(hs), "%llu", (unsigned long long)h);
		execl("/proc/self/exe", "kvt_share", "--exec-child", fds, hs, (char *)NULL);
		_exit(3);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the new image could use the old one's fd (status 0x%x)", st);
	CHECK_SNAP_SAME(&s, "exec");
	kvt_end();
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--exec-child"))
		return exec_child(atoi(argv[2]), strtoull(argv[3], NULL, 0));
	case_scm_rights();
	case_fork();
	case_dofork();
	case_exec();
	return kvt_exit();
}
