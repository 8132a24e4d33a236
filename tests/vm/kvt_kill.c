// SPDX-License-Identifier: MIT
/*
 * kvt_kill.c - a process holding 100 regions (some mapped, some exported
 * as dma-bufs, some user pins) is killed with SIGKILL: every gauge returns
 * to where it was.
 */
#include "kvt.h"

#define NREG 100

static void holder(int wfd)
{
	int fd = kvt_open(), bad = 0;
	uint64_t h;
	static uint8_t pinbuf[5][4096] __attribute__((aligned(4096)));

	if (fd < 0)
		_exit(2);
	for (int i = 0; i < NREG; i++) {
		size_t len = (i % 7 + 1) * 65536;
		if (i == 0)
			len = 4ul << 20;	/* two huge pages */
		if (kvt_alloc(fd, len, 0, -1, &h)) {
			bad++;
			continue;
		}
		if (i % 2 == 0) {
			uint8_t *m = kvt_map(fd, h, len);
			if (m)
				memset(m, i, len);
			else
				bad++;
		}
		if (i % 10 == 0) {
			struct kvmem_export e = { .size = sizeof(e), .handle = h };
			if (ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e))
				bad++;
			else if (i % 20 == 0 &&
				 mmap(NULL, len, PROT_READ, MAP_SHARED, e.fd, 0) == MAP_FAILED)
				bad++;
		}
	}
	for (int i = 0; i < 5; i++) {
		struct kvmem_pin_user p = { .size = sizeof(p), .flags = KVMEM_PIN_WRITE,
					    .addr = (uintptr_t)pinbuf[i], .length = 4096 };
		if (ioctl(fd, KVMEM_IOC_PIN_USER, &p))
			bad++;
	}
	(void)!write(wfd, &bad, sizeof(bad));
	for (;;)
		pause();
}

int main(void)
{
	struct kvt_snap s;
	int p[2], bad = -1, st;
	pid_t pid;

	kvt_begin("sigkill_100_regions");
	kvt_snap(&s);
	CHECK(pipe(p) == 0, "pipe");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		holder(p[1]);
	}
	close(p[1]);
	CHECK(read(p[0], &bad, sizeof(bad)) == sizeof(bad) && bad == 0,
	      "holder could not set up (%d failures)", bad);
	CHECK(kvt_stat("regions") == s.v[1] + NREG + 5, "regions %lld, want %lld",
	      kvt_stat("regions"), s.v[1] + NREG + 5);
	CHECK(kvt_stat("mappings") >= s.v[7] + NREG / 2, "mappings %lld",
	      kvt_stat("mappings"));
	CHECK(kvt_stat("dmabufs") == s.v[8] + NREG / 10, "dmabufs %lld",
	      kvt_stat("dmabufs"));
	CHECK(kvt_stat("huge_pages") >= s.v[6] + 2, "huge pages %lld", kvt_stat("huge_pages"));
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "holder status 0x%x", st);
	CHECK_SNAP_SAME(&s, "SIGKILL of the holder");
	kvt_end();
	return kvt_exit();
}
