/* SPDX-License-Identifier: MIT */
/*
 * kvr_hostile.c - a memory server that answers for the wrong block: the
 * real server (libkv/server/server.c built with -DKVS_FAULTS, see kvs_fault
 * there) behind `kvctl serve`'s options, on a real socket, TCP or RDMA.
 *
 *   kvr_hostile [kvctl serve options] --fault MODE
 *     MODE 0 honest, 1 another block's bytes and check values, 2 the asked
 *     block's check values with another block's bytes, 3 a block stored
 *     under another namespace.
 *
 * Tests only (tests/remote/test_remote_hostile.sh, the VM's RDMA cases).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kvctl_serve(int argc, char **argv);
extern int kvs_fault;

int main(int argc, char **argv)
{
	int n = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--fault") && i + 1 < argc) {
			kvs_fault = atoi(argv[++i]);
			continue;
		}
		argv[n++] = argv[i];
	}
	argv[n] = NULL;
	if (kvs_fault < 0 || kvs_fault > 3) {
		fprintf(stderr, "kvr_hostile: --fault must be 0..3\n");
		return 2;
	}
	return kvctl_serve(n, argv);
}
