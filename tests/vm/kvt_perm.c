// SPDX-License-Identifier: MIT
/*
 * kvt_perm.c - who may open /dev/kvmem. Run as root; suite.sh loads
 * kvmem.ko with group=KVT_GID. The node must be root:KVT_GID, mode 0660
 * (the module's mode and group parameters); a user in that group (primary
 * or supplementary) works within its own RLIMIT_MEMLOCK and sees its own
 * regions in /proc/driver/kvmem/regions; a user outside it gets EACCES and
 * does not see root's regions there. The children drop to uids that need
 * not exist in /etc/passwd (setgroups/setgid/setuid).
 */
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "kvt.h"

#define UID_IN		4241
#define UID_OUT		4243
#define GID_OTHER	4244

static unsigned int param(const char *name)
{
	char path[128], b[32] = "";
	int f;

	snprintf(path, sizeof(path), "/sys/module/kvmem/parameters/%s", name);
	f = open(path, O_RDONLY);
	if (f < 0)
		return ~0u;
	if (read(f, b, sizeof(b) - 1) <= 0)
		b[0] = 0;
	close(f);
	return b[0] ? (unsigned int)strtoul(b, NULL, 0) : ~0u;
}

/*
 * In a child: become uid with primary gid and the given supplementary
 * groups, then run body; the exit status is body's (0 ok, 1 failed).
 * The parent returns it, or -1 if the child died.
 */
static int as_user(uid_t uid, gid_t gid, int ngroups, const gid_t *groups,
		   int (*body)(void))
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		if (setgroups(ngroups, groups) || setgid(gid) || setuid(uid)) {
			printf("  setgroups/setgid/setuid: %s\n", strerror(errno));
			_exit(2);
		}
		st = body();
		fflush(stdout);
		_exit(st);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Is there a line of pid in /proc/driver/kvmem/regions (as we may read it)? */
static int regions_has(pid_t pid)
{
	FILE *f = fopen("/proc/driver/kvmem/regions", "r");
	char line[256];
	int found = 0;

	while (f && fgets(line, sizeof(line), f))
		if (atoi(line) == pid)
			found = 1;
	if (f)
		fclose(f);
	return found;
}

static pid_t root_holder;	/* a root process holding a region */

/* A group member: open, allocate within its own memlock limit, map. */
static int member_body(void)
{
	struct rlimit rl = { 1 << 20, 1 << 20 };
	uint64_t h, seed = kvt_seed();
	uint8_t *m;
	int fd, ret;

	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		return 2;
	fd = kvt_open();
	if (fd < 0) {
		printf("  open as uid %d: %s\n", getuid(), strerror(errno));
		return 1;
	}
	ret = kvt_alloc(fd, 65536, 0, -1, &h);
	if (ret) {
		printf("  ALLOC 64 KiB: %s\n", strerror(-ret));
		return 1;
	}
	m = kvt_map(fd, h, 65536);
	if (!m) {
		printf("  mmap: %s\n", strerror(errno));
		return 1;
	}
	if (!regions_has(getpid())) {
		printf("  uid %d does not see its own region in /proc/driver/kvmem/regions\n",
		       getuid());
		return 1;
	}
	kvt_fill(m, 65536, seed);
	if (kvt_verify(m, 65536, seed) >= 0)
		return 1;
	munmap(m, 65536);
	/* no CAP_IPC_LOCK: the 1 MiB memlock limit applies */
	ret = kvt_alloc(fd, 2 << 20, 0, -1, NULL);
	if (ret != -EPERM) {
		printf("  ALLOC 2 MiB over a 1 MiB memlock limit: %d, want EPERM\n", ret);
		return 1;
	}
	if (kvt_free(fd, h))
		return 1;
	close(fd);
	return 0;
}

/* Not in the group: neither read-write nor read-only opens. */
static int outsider_body(void)
{
	int fd = open(KVMEM_DEV_PATH, O_RDWR | O_CLOEXEC), e = errno;

	/* another user's regions are not listed to it */
	if (regions_has(root_holder)) {
		printf("  uid %d sees root's region (pid %d) in /proc/driver/kvmem/regions\n",
		       getuid(), root_holder);
		return 1;
	}

	if (fd >= 0 || e != EACCES) {
		printf("  O_RDWR open as uid %d: fd %d errno %d, want EACCES\n",
		       getuid(), fd, e);
		return 1;
	}
	fd = open(KVMEM_DEV_PATH, O_RDONLY | O_CLOEXEC);
	e = errno;
	if (fd >= 0 || e != EACCES) {
		printf("  O_RDONLY open: fd %d errno %d, want EACCES\n", fd, e);
		return 1;
	}
	return 0;
}

int main(void)
{
	unsigned int gid = param("group"), mode = param("mode");
	struct kvt_snap s;
	struct stat st;
	gid_t supp;

	kvt_snap(&s);
	kvt_begin("node_group_owned_0660");
	CHECK(gid != ~0u && mode != ~0u, "no group/mode parameter of kvmem");
	CHECK(gid != 0, "suite.sh should load kvmem with group=<non-root gid>");
	CHECK(stat(KVMEM_DEV_PATH, &st) == 0, "stat: %s", strerror(errno));
	CHECK(S_ISCHR(st.st_mode), "not a character device");
	CHECK((st.st_mode & 07777) == 0660 && mode == 0660,
	      "mode %o (parameter %o), want 0660", st.st_mode & 07777, mode);
	CHECK(st.st_uid == 0 && st.st_gid == gid, "owner %d:%d, want 0:%u",
	      st.st_uid, st.st_gid, gid);
	kvt_end();
	if (gid == ~0u || gid == 0)
		return kvt_exit();

	kvt_begin("group_member_works");
	CHECK(as_user(UID_IN, gid, 0, NULL, member_body) == 0,
	      "uid %d with primary group %u", UID_IN, gid);
	kvt_end();

	kvt_begin("supplementary_group_works");
	supp = gid;
	CHECK(as_user(UID_IN, GID_OTHER, 1, &supp, member_body) == 0,
	      "uid %d with supplementary group %u", UID_IN, gid);
	kvt_end();

	kvt_begin("outsider_eacces");
	{
		int rfd = kvt_open();
		uint64_t rh = 0;

		CHECK(rfd >= 0 && kvt_alloc(rfd, 65536, 0, -1, &rh) == 0, "root ALLOC");
		root_holder = getpid();
		CHECK(regions_has(root_holder), "root does not see its own region");
		CHECK(as_user(UID_OUT, GID_OTHER, 0, NULL, outsider_body) == 0,
		      "uid %d gid %d", UID_OUT, GID_OTHER);
		if (rfd >= 0)
			close(rfd);
	}
	kvt_end();

	kvt_begin("perm_nothing_left");
	CHECK_SNAP_SAME(&s, "unprivileged users");
	kvt_end();
	return kvt_exit();
}
