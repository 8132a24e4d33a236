// SPDX-License-Identifier: MIT
/*
 * main.c - kvctl, the admin tool of kvmem + libkv: dispatch to a subcommand.
 * Each subcommand parses its own options (argv[0] is the command's name) and
 * returns the exit status: 0 ok, 1 failure, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "kv.h"
#include "kvctl.h"

/*
 * Commands whose files may not be in the tree yet: weak references, so that
 * kvctl links without them and runs them once a cmd_<name>.c defines them.
 */
int kvctl_blocks(int argc, char **argv) __attribute__((weak));
int kvctl_evict(int argc, char **argv) __attribute__((weak));

static int not_implemented(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "kvctl: %s: not implemented yet\n", argv[0]);
	return 2;
}

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "replay", kvctl_replay, "replay a serving workload through libkv and verify every load" },
	{ "bench", kvctl_bench, "host tier, hashing and index throughput (vs memcpy)" },
	{ "status", kvctl_status, "state of the kvmem module and its regions" },
	{ "regions", kvctl_regions, "list the pinned regions of /dev/kvmem" },
	{ "blocks", kvctl_blocks, "list the blocks of a cache" },
	{ "evict", kvctl_evict, "evict blocks from a tier" },
	{ "serve", kvctl_serve, "run a memory server for remote tiers" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: kvctl [--version] [--help] COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s%s\n", commands[i].name, commands[i].help,
			commands[i].fn ? "" : " (not implemented yet)");
	fprintf(f,
		"\n"
		"'kvctl COMMAND --help' lists a command's options and their defaults.\n"
		"Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		/* kvctl ships with the library: one version. */
		printf("kvctl %s (libkv %s, built against kv.h %d.%d)\n", kv_version(), kv_version(),
		       KV_VERSION_MAJOR, KV_VERSION_MINOR);
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (cmd[0] == '-') {
		fprintf(stderr, "kvctl: unknown option '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn ? commands[i].fn(argc - 1, argv + 1) :
						not_implemented(argc - 1, argv + 1);
	fprintf(stderr, "kvctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
