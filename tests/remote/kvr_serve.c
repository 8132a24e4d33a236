/* SPDX-License-Identifier: MIT */
/*
 * kvr_serve.c - test driver for the memory server until kvctl's dispatcher
 * wires it: `kvr_serve ARGS` = `kvctl serve ARGS`,
 * `kvr_serve status HOST:PORT [--json]` = `kvctl status --server HOST:PORT`.
 */
#include <string.h>

int kvctl_serve(int argc, char **argv);
int kvctl_server_status(const char *hostport, int json);

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "status") == 0)
		return kvctl_server_status(argv[2], argc > 3 && strcmp(argv[3], "--json") == 0);
	return kvctl_serve(argc, argv);
}
