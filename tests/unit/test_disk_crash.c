// SPDX-License-Identifier: MIT
/*
 * test_disk_crash.c - kill -9 a process in the middle of heavy writes to its
 * disk tier (several times, each run reopening what the last one left),
 * then reopen: every load is byte-exact or a miss, and blocks survive.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "test_disk.h"

#define NAMES 3000          /* more than the disk holds: its slots are reused */
#define POOL 32
#define ENGINE 64
#define DISK (24u << 20)    /* ~1400 slots of 16 KiB */
#define ROUNDS 4

static kv_hash h[NAMES];

static void writer(const char *path, const struct kv_geometry *g, kv_hash ns, uint64_t seed)
{
	struct t_engine eng;
	uint32_t blocks[ENGINE];
	struct kv *kv;
	int ret;

	t_rng_state = seed;
	t_engine_init(&eng, g, KV_LAYOUT_VLLM_NHD, ENGINE);
	ret = td_open(g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv);
	if (ret) {
		fprintf(stderr, "child: kv_open: %s\n", kv_strerror(ret));
		_exit(3);
	}
	if (kv_attach(kv, &eng.ec))
		_exit(4);
	for (uint32_t j = 0; j < ENGINE; j++)
		blocks[j] = j;
	for (;;) {
		uint32_t n = t_range(8, ENGINE), at = t_range(0, NAMES - n);
		struct kv_completion c;

		for (uint32_t j = 0; j < n; j++)
			t_engine_fill_block(&eng, j, h[at + j].lo);
		if (kv_store(kv, h + at, blocks, n, 1))
			_exit(5);
		if (kv_wait(kv, &c, 1, 10000) != 1)
			_exit(6);
	}
}

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	struct t_engine eng;
	struct kv_stats st;
	struct kv *kv;
	char path[512];
	kv_hash ns = { 7, 8 };
	int exact = 0, missed = 0;

	t_seed("test_disk_crash");
	t_hashes(h, NAMES);
	snprintf(path, sizeof(path), "%s/kv.disk", td_dir());
	for (int r = 0; r < ROUNDS; r++) {
		pid_t pid = fork();
		int status;
		struct timespec ts = { 0, (long)t_range(300, 700) * 1000000L };

		CHECK(pid >= 0);
		if (pid == 0)
			writer(path, &g, ns, t_rand() | 1);
		nanosleep(&ts, NULL);
		if (r == 0) {
			/* Let the first run get past its first disk writes. */
			ts.tv_nsec = 500000000L;
			nanosleep(&ts, NULL);
		}
		CHECK_EQ(kill(pid, SIGKILL), 0);
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			FAILF("writer exited on its own: status %d", WEXITSTATUS(status));
	}

	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_HND, ENGINE);
	CHECK_EQ(td_open(&g, POOL, path, DISK, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("after %d kills: %llu blocks indexed, %llu headers rejected\n", ROUNDS,
	       (unsigned long long)st.tier[KV_TIER_DISK].blocks,
	       (unsigned long long)st.tier[KV_TIER_DISK].verify_failures);
	for (int i = 0; i < NAMES; i++) {
		struct kv_completion c = td_load_check(kv, &eng, h + i, 1);

		if (c.res == 1) {
			exact++;
		} else {
			CHECK(c.err == -ENOENT || c.err == -EBADMSG);
			missed++;
		}
	}
	CHECK_EQ(kv_stats(kv, &st), 0);
	printf("loads: %d exact, %d misses, %llu rejected by checksum\n", exact, missed,
	       (unsigned long long)st.tier[KV_TIER_DISK].verify_failures);
	CHECK(exact > 100);
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
