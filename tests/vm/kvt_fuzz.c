// SPDX-License-Identifier: MIT
/*
 * kvt_fuzz.c - bounded random-ioctl fuzz: a fixed number of calls with
 * random command numbers, struct sizes and contents (biased towards the
 * real commands and plausible values), plus random mmaps and frees, in a
 * few processes; afterwards every gauge is back where it was. suite.sh
 * then checks dmesg and that rmmod works. KVT_FUZZ_SEED reproduces a run.
 */
#include "kvt.h"

#define CALLS 20000
#define PROCS 3

static uint64_t rs;

static uint64_t rnd(void)
{
	return kvt_next(&rs);
}

static uint64_t pick(const uint64_t *v, size_t n)
{
	return v[rnd() % n];
}

static uint64_t rnd_len(void)
{
	static const uint64_t v[] = { 0, 1, 4095, 4096, 8192, 65536, 1 << 20,
				      2 << 20, (2 << 20) + 4096, 4 << 20,
				      1ull << 40, ~0ull, ~0ull << 12, 1ull << 63 };
	return rnd() & 1 ? pick(v, sizeof(v) / 8) : (rnd() % 64) << 12;
}

static void fuzz(int seedmix)
{
	static const unsigned long cmds[] = {
		KVMEM_IOC_INFO, KVMEM_IOC_ALLOC, KVMEM_IOC_PIN_USER,
		KVMEM_IOC_PIN_GPU, KVMEM_IOC_QUERY, KVMEM_IOC_EXPORT_DMABUF,
		KVMEM_IOC_FREE,
	};
	uint8_t *page = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *arg = page + 4096 - 128;	/* next page is PROT_NONE */
	uint64_t handles[64] = { 0 };
	void *maps[32] = { 0 };
	size_t maplen[32] = { 0 };
	int fd = kvt_open();

	rs ^= seedmix * 0x9e3779b97f4a7c15ull;
	mprotect(page + 4096, 4096, PROT_NONE);
	for (int i = 0; i < CALLS; i++) {
		unsigned long cmd;
		uint32_t *w = (uint32_t *)arg;
		int r = rnd() % 100;

		if (r < 5) {	/* random mmap of a known handle */
			uint64_t h = handles[rnd() % 64];
			size_t len = rnd() & 1 ? (rnd() % 16 + 1) << 12 : rnd_len();
			int k = rnd() % 32;
			if (maps[k])
				munmap(maps[k], maplen[k]);
			maps[k] = mmap(NULL, len, PROT_READ | PROT_WRITE,
				       rnd() % 8 ? MAP_SHARED : MAP_PRIVATE, fd,
				       (off_t)((rnd() % 4 ? h : rnd() % 128) << 12));
			if (maps[k] == MAP_FAILED) {
				maps[k] = NULL;
			} else {
				maplen[k] = len;
				((volatile uint8_t *)maps[k])[0] = 1;
			}
			continue;
		}
		if (r < 8) {	/* reopen: drops everything of the old fd */
			close(fd);
			fd = kvt_open();
			continue;
		}
		for (int k = 0; k < 128 / 8; k++)
			((uint64_t *)arg)[k] = rnd() % 3 ? 0 : rnd();
		cmd = rnd() % 10 ? cmds[rnd() % 7] :
		      rnd() % 2 ? _IOC(rnd() % 4, KVMEM_IOC_MAGIC, rnd() % 16, rnd() % 256) :
				  (unsigned long)rnd();
		/* plausible fields most of the time */
		w[0] = rnd() % 5 ? _IOC_SIZE(cmd) : (uint32_t)(rnd() % 160);
		if (rnd() % 4) {
			w[1] = rnd() % 3 ? 0 : (uint32_t)rnd() % 16;
			((uint64_t *)arg)[1] = _IOC_NR(cmd) == 1 ? rnd_len() :
				_IOC_NR(cmd) >= 4 ? handles[rnd() % 64] :
				rnd() % 2 ? (uintptr_t)page : (rnd() % 64) << 16;
			((uint64_t *)arg)[2] = _IOC_NR(cmd) == 1 ? (rnd() % 3 ? (uint64_t)-1 : rnd() % 4)
								 : rnd_len();
		}
		if (rnd() % 50 == 0)
			w[1] = 0x10000;
		errno = 0;
		int ret = ioctl(fd, cmd, rnd() % 40 ? (void *)arg : (void *)(uintptr_t)rnd());
		if (ret == 0 && (_IOC_NR(cmd) == 1 || _IOC_NR(cmd) == 2 || _IOC_NR(cmd) == 3) &&
		    _IOC_TYPE(cmd) == KVMEM_IOC_MAGIC) {
			/* handle: offset 24 (alloc, pin_user), 48 (pin_gpu) */
			uint64_t h = ((uint64_t *)arg)[_IOC_NR(cmd) == 3 ? 6 : 3];
			handles[rnd() % 64] = h;
		}
		if (ret == 0 && _IOC_NR(cmd) == 5 && _IOC_TYPE(cmd) == KVMEM_IOC_MAGIC) {
			int dfd = ((int32_t *)arg)[4];
			if (rnd() % 2) {
				void *d = mmap(NULL, 4096, PROT_READ, MAP_SHARED, dfd, 0);
				if (d != MAP_FAILED)
					munmap(d, 4096);
			}
			close(dfd);
		}
	}
	for (int k = 0; k < 32; k++)
		if (maps[k])
			munmap(maps[k], maplen[k]);
	close(fd);
	munmap(page, 3 * 4096);
}

int main(void)
{
	const char *env = getenv("KVT_FUZZ_SEED");
	struct kvt_snap s;
	int st, ok = 1;

	rs = env ? strtoull(env, NULL, 0) : kvt_seed();
	printf("fuzz seed: 0x%llx (KVT_FUZZ_SEED reproduces)\n", (unsigned long long)rs);
	long long a0 = kvt_stat("allocs"), e0 = kvt_stat("err_inval") +
		kvt_stat("err_other") + kvt_stat("err_nomem"), m0 = kvt_stat("err_access");

	kvt_begin("random_ioctls");
	kvt_snap(&s);
	fflush(stdout);
	for (int p = 0; p < PROCS; p++) {
		if (fork() == 0) {
			fuzz(p + 1);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		wait(&st);
		/* SIGBUS/SIGSEGV from touching a fresh mapping is a fuzz bug,
		 * not a kernel one; anything else is. */
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			ok = 0;
	}
	CHECK(ok, "a fuzz process died (status 0x%x)", st);
	/* one more run killed half way */
	pid_t pid = fork();
	if (pid == 0) {
		fuzz(99);
		_exit(0);
	}
	usleep(200000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	CHECK_SNAP_SAME(&s, "fuzz");
	printf("fuzz: %lld regions created, %lld calls refused, %lld EACCES\n",
	       kvt_stat("allocs") - a0, kvt_stat("err_inval") + kvt_stat("err_other") +
	       kvt_stat("err_nomem") - e0, kvt_stat("err_access") - m0);
	CHECK(kvt_stat("allocs") - a0 > 50, "fuzz hardly reached the success paths");
	kvt_end();
	return kvt_exit();
}
