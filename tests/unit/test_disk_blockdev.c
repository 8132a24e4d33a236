// SPDX-License-Identifier: MIT
/*
 * test_disk_blockdev.c - the disk tier on a block device (a loop device over
 * an image here; SKIP where losetup is not permitted): a new (zeroed) device
 * is formatted, blocks round-trip byte-exact, survive a close and reopen,
 * and a device smaller than disk_bytes is refused.
 */
#include "test_disk.h"

#define NAMES 300
#define POOL 16
#define ENGINE 32
#define DEV_BYTES (32u << 20)

static char loopdev[64];

static void detach(void)
{
	char cmd[128];

	if (loopdev[0]) {
		snprintf(cmd, sizeof(cmd), "losetup -d %s", loopdev);
		if (system(cmd)) {
			/* best effort */
		}
	}
}

int main(void)
{
	struct kv_geometry g = t_geometry_small();
	static kv_hash h[NAMES];
	struct t_engine eng;
	struct kv_stats st;
	struct kv *kv;
	char img[512], cmd[700];
	kv_hash ns = { 15, 16 };
	FILE *p;
	int fd;

	t_seed("test_disk_blockdev");
	t_hashes(h, NAMES);
	snprintf(img, sizeof(img), "%s/dev.img", td_dir());
	fd = open(img, O_CREAT | O_RDWR, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, DEV_BYTES), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "losetup -f --show '%s' 2>&1", img);
	p = popen(cmd, "r");
	if (!p || !fgets(loopdev, sizeof(loopdev), p)) {
		if (p)
			pclose(p);
		SKIP("losetup is not available");
	}
	if (pclose(p) || strncmp(loopdev, "/dev/loop", 9)) {
		loopdev[strcspn(loopdev, "\n")] = 0;
		snprintf(cmd, sizeof(cmd), "%s", loopdev);
		loopdev[0] = 0;
		SKIP("cannot attach a loop device: %s", cmd);
	}
	loopdev[strcspn(loopdev, "\n")] = 0;
	atexit(detach);
	printf("loop device %s\n", loopdev);

	t_engine_init(&eng, &g, KV_LAYOUT_VLLM_HND, ENGINE);
	CHECK_EQ(td_open(&g, POOL, loopdev, 2 * DEV_BYTES, 0, KV_ADMIT_ALL, ns, &kv), -EINVAL);
	CHECK_EQ(td_open(&g, POOL, loopdev, DEV_BYTES, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	td_store_all(kv, &eng, h, NAMES, 8);
	for (int i = 0; i < NAMES; i += 30) {
		struct kv_completion c = td_load_check(kv, &eng, h + i, 30);

		CHECK_EQ(c.res, 30);
	}
	kv_close(kv);

	CHECK_EQ(td_open(&g, POOL, loopdev, DEV_BYTES, 0, KV_ADMIT_ALL, ns, &kv), 0);
	CHECK_EQ(kv_stats(kv, &st), 0);
	CHECK_EQ(st.tier[KV_TIER_DISK].blocks, NAMES);
	CHECK_EQ(kv_attach(kv, &eng.ec), 0);
	for (int i = 0; i < NAMES; i += 30) {
		struct kv_completion c = td_load_check(kv, &eng, h + i, 30);

		CHECK_EQ(c.res, 30);
	}
	kv_close(kv);
	t_engine_free(&eng);
	printf("ok\n");
	return 0;
}
