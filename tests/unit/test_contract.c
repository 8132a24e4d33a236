// SPDX-License-Identifier: MIT
/*
 * test_contract.c - what kv.h promises beyond the happy path, one function
 * per promise: every int is valid input to kv_strerror, ...
 */
#include <limits.h>
#include <poll.h>
#include <unistd.h>

#include "harness.h"

/* Every int is valid input; what is not a negative errno is "unknown error". */
static void strerror_any_int(void)
{
	static const int odd[] = { INT_MIN, INT_MIN + 1, -4096, -100000, 1, 4096, INT_MAX };

	CHECK(!strcmp(kv_strerror(0), "success"));
	CHECK(kv_strerror(-ENOENT) && strstr(kv_strerror(-ENOENT), "miss"));
	CHECK(!strcmp(kv_strerror(-EINVAL), strerror(EINVAL)));
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		const char *s = kv_strerror(odd[i]);

		if (!s || strncmp(s, "unknown error", 13))
			FAILF("kv_strerror(%d) = \"%s\"", odd[i], s ? s : "(null)");
	}
	printf("kv_strerror: every int gives text\n");
}

int main(void)
{
	t_seed("test_contract");
	strerror_any_int();
	printf("ok\n");
	return 0;
}
