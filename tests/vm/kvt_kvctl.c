// SPDX-License-Identifier: MIT
/*
 * kvt_kvctl.c - kvctl status / regions against the live module: a host
 * region (mapped), a user pin and an invalidated GPU region show up with
 * the right fields in the table and in --json.
 */
#include "kvt.h"

static int run(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	if (!p)
		return -1;
	n = fread(out, 1, len - 1, p);
	out[n] = 0;
	return pclose(p);
}

int main(void)
{
	const char *b = getenv("KV_BUILD");
	char cmd[512], out[8192], want[256];
	uint64_t h1 = 0;
	struct kvmem_pin_user p = { .size = sizeof(p) };
	struct kvmem_pin_gpu g = { .size = sizeof(g), .addr = 1ull << 41, .length = 65536 };
	int fd = kvt_open(), st, gpu;
	uint8_t *u = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (!b) {
		printf("skip kvctl: KV_BUILD not set\n");
		return 77;
	}
	kvt_begin("kvctl_regions_status");
	CHECK(fd >= 0 && kvt_alloc(fd, 4 << 20, KVMEM_ALLOC_HUGE_REQUIRED, 0, &h1) == 0, "ALLOC");
	void *m = kvt_map(fd, h1, 4 << 20);
	CHECK(m != NULL, "map");
	p.addr = (uintptr_t)u;
	p.length = 8192;
	CHECK(ioctl(fd, KVMEM_IOC_PIN_USER, &p) == 0, "PIN_USER");
	gpu = ioctl(fd, KVMEM_IOC_PIN_GPU, &g) == 0;
	if (gpu) {
		int f = open("/sys/module/kvmem_p2p_mock/parameters/free_va", O_WRONLY);
		CHECK(f >= 0 && write(f, "0x20000000000", 13) == 13, "fire callback");
		close(f);
	}

	snprintf(cmd, sizeof(cmd), "%s/kvctl regions --json --pid %d", b, getpid());
	st = run(cmd, out, sizeof(out));
	CHECK(st == 0, "%s: status %d", cmd, st);
	snprintf(want, sizeof(want), "{\"pid\": %d, \"handle\": %llu, \"kind\": \"host\", "
		 "\"size\": 4194304, \"numa_node\": 0, \"huge_pages\": 2, \"mapped\": 1, "
		 "\"valid\": true}", getpid(), (unsigned long long)h1);
	CHECK(strstr(out, want), "no host line like %s in:\n%s", want, out);
	snprintf(want, sizeof(want), "\"handle\": %llu, \"kind\": \"user\", \"size\": 8192",
		 (unsigned long long)p.handle);
	CHECK(strstr(out, want), "no user-pin line in:\n%s", out);
	if (gpu) {
		snprintf(want, sizeof(want), "\"handle\": %llu, \"kind\": \"gpu\", \"size\": 65536, "
			 "\"numa_node\": -1, \"huge_pages\": 0, \"mapped\": 0, \"valid\": false",
			 (unsigned long long)g.handle);
		CHECK(strstr(out, want), "no invalid gpu line in:\n%s", out);
	}

	snprintf(cmd, sizeof(cmd), "%s/kvctl regions --pid %d", b, getpid());
	st = run(cmd, out, sizeof(out));
	CHECK(st == 0 && strstr(out, "HANDLE") && strstr(out, " host ") &&
	      strstr(out, gpu ? "3 regions" : "2 regions"), "table:\n%s", out);

	snprintf(cmd, sizeof(cmd), "%s/kvctl status --json", b);
	st = run(cmd, out, sizeof(out));
	snprintf(want, sizeof(want), "\"regions\": %lld,", kvt_stat("regions"));
	CHECK(st == 0 && strstr(out, "\"module_loaded\": true") && strstr(out, want) &&
	      strstr(out, "\"gpu_provider\": \"mock\""), "status --json:\n%s", out);
	snprintf(cmd, sizeof(cmd), "%s/kvctl status", b);
	st = run(cmd, out, sizeof(out));
	CHECK(st == 0 && strstr(out, "kvmem module: loaded, ABI 1"), "status:\n%s", out);

	if (m)
		munmap(m, 4 << 20);
	close(fd);
	kvt_end();
	return kvt_exit();
}
