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

int main(void)
{
	case_scm_rights();
	case_fork();
	return kvt_exit();
}
