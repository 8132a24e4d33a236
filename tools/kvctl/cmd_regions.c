// SPDX-License-Identifier: MIT
/*
 * cmd_regions.c - kvctl status / kvctl regions: what the kvmem module holds,
 * read from /proc/driver/kvmem/{stats,regions} (formats in docs/uapi.md).
 * Human-readable by default, --json for machines. Exit 1 when the module is
 * not loaded. KVCTL_KVMEM_PROC overrides the directory (tests).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvctl.h"
#include "util.h"

#define MAX_KEYS 64

struct kv_pair {
	char key[48];
	char val[64];
};

static const char *proc_dir(void)
{
	const char *d = getenv("KVCTL_KVMEM_PROC");

	return d && *d ? d : "/proc/driver/kvmem";
}

/* Open a file of the module's procfs directory, or say why not. */
static FILE *open_proc(const char *cmd, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", proc_dir(), name);
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			fprintf(stderr, "kvctl: %s: the kvmem module is not loaded (%s is missing); "
				"load it with 'modprobe kvmem' or 'insmod kmod/kvmem.ko'\n",
				cmd, path);
		else
			fprintf(stderr, "kvctl: %s: cannot read %s: %s\n", cmd, path,
				strerror(errno));
	}
	return f;
}

static int read_stats(const char *cmd, struct kv_pair *kv, int *n)
{
	FILE *f = open_proc(cmd, "stats");
	char line[160];

	if (!f)
		return -1;
	*n = 0;
	while (*n < MAX_KEYS && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		*colon = 0;
		snprintf(kv[*n].key, sizeof(kv[*n].key), "%.*s", (int)sizeof(kv[*n].key) - 1, line);
		snprintf(kv[*n].val, sizeof(kv[*n].val), "%s", colon + 1 + (colon[1] == ' '));
		kv[*n].val[strcspn(kv[*n].val, "\n")] = 0;
		(*n)++;
	}
	fclose(f);
	return 0;
}

static const char *get(const struct kv_pair *kv, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return kv[i].val;
	return NULL;
}

static int is_number(const char *s)
{
	char *end;

	if (!*s)
		return 0;
	errno = 0;
	(void)strtoll(s, &end, 10);
	return !errno && !*end;
}

/* server, auth: where --server and --auth-file are accepted (status), else NULL. */
static int parse_common(int argc, char **argv, const char *usage_text, int *json,
			long *pid, const char **server, const char **auth)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pid", required_argument, NULL, 'p' },
		{ "server", required_argument, NULL, 's' },
		{ "auth-file", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*json = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jp:s:a:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			*json = 1;
			break;
		case 's':
			if (!server) {
				fputs(usage_text, stderr);
				return 2;
			}
			*server = optarg;
			break;
		case 'a':
			if (!auth || !*optarg) {
				fputs(usage_text, stderr);
				return 2;
			}
			*auth = optarg;
			break;
		case 'p':
			if (!pid) {
				fputs(usage_text, stderr);
				return 2;
			}
			*pid = strtol(optarg, NULL, 10);
			if (*pid <= 0) {
				fprintf(stderr, "kvctl: %s: bad --pid '%s'\n", argv[0], optarg);
				return 2;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvctl: %s: unexpected argument '%s'\n", argv[0], argv[optind]);
		fputs(usage_text, stderr);
		return 2;
	}
	return -1;	/* go on */
}

static const char status_usage[] =
	"Usage: kvctl status [--json] [--server HOST:PORT [--auth-file FILE]]\n"
	"Show the kvmem module's state: ABI, GPU provider, open files, regions,\n"
	"pinned bytes against the module cap, mappings, dma-bufs and error counters\n"
	"(from /proc/driver/kvmem/stats).\n"
	"  -j, --json          one JSON object instead of text\n"
	"  -s, --server H:P    instead, a memory server's pool, blocks, clients and\n"
	"                      counters\n"
	"  -a, --auth-file F   the shared secret of a server run with --auth-file\n"
	"Exit status: 0 ok, 1 module not loaded or unreadable, 2 usage error.\n";

int kvctl_status(int argc, char **argv)
{
	struct kv_pair kv[MAX_KEYS];
	const char *server = NULL, *auth = NULL;
	char b1[32], b2[32];
	int n, json, ret;

	ret = parse_common(argc, argv, status_usage, &json, NULL, &server, &auth);
	if (ret >= 0)
		return ret;
	if (auth && !server) {
		fprintf(stderr, "kvctl: status: --auth-file goes with --server\n");
		return 2;
	}
	if (server)
		return kvctl_server_status(server, auth, json);
	if (read_stats(argv[0], kv, &n))
		return 1;

	if (json) {
		printf("{\"module_loaded\": true, \"device\": %s",
		       access("/dev/kvmem", R_OK | W_OK) ? "false" : "true");
		for (int i = 0; i < n; i++) {
			printf(", ");
			kvu_json_str(stdout, kv[i].key);
			printf(": ");
			if (is_number(kv[i].val))
				printf("%s", kv[i].val);
			else
				kvu_json_str(stdout, kv[i].val);
		}
		printf("}\n");
		return 0;
	}

	const char *pinned = get(kv, n, "pinned_bytes"), *cap = get(kv, n, "cap_bytes");
	printf("kvmem module: loaded, ABI %s, GPU provider %s, /dev/kvmem %s\n",
	       get(kv, n, "abi_version") ?: "?", get(kv, n, "gpu_provider") ?: "?",
	       access("/dev/kvmem", R_OK | W_OK) ? "not accessible" : "ok");
	printf("  open files      %s\n", get(kv, n, "files") ?: "?");
	printf("  regions         %s (host %s, user pins %s, gpu %s)\n",
	       get(kv, n, "regions") ?: "?", get(kv, n, "host_regions") ?: "?",
	       get(kv, n, "user_regions") ?: "?", get(kv, n, "gpu_regions") ?: "?");
	printf("  pinned          %s of %s cap (%s huge pages)\n",
	       kvu_fmt_bytes(b1, sizeof(b1), pinned ? atof(pinned) : 0),
	       kvu_fmt_bytes(b2, sizeof(b2), cap ? atof(cap) : 0),
	       get(kv, n, "huge_pages") ?: "?");
	printf("  mappings        %s, dma-bufs %s\n", get(kv, n, "mappings") ?: "?",
	       get(kv, n, "dmabufs") ?: "?");
	printf("  since load      %s regions created, %s freed, %s GPU invalidations\n",
	       get(kv, n, "allocs") ?: "?", get(kv, n, "frees") ?: "?",
	       get(kv, n, "gpu_invalidations") ?: "?");
	printf("  errors          %s bad input, %s foreign fd, %s no memory, "
	       "%s over RLIMIT_MEMLOCK, %s over cap, %s other\n",
	       get(kv, n, "err_inval") ?: "?", get(kv, n, "err_access") ?: "?",
	       get(kv, n, "err_nomem") ?: "?", get(kv, n, "err_memlock") ?: "?",
	       get(kv, n, "err_cap") ?: "?", get(kv, n, "err_other") ?: "?");
	return 0;
}

struct region_line {
	long pid;
	unsigned long handle;
	char kind[16];
	unsigned long long size, huge;
	int node, mapped, valid;
};

static const char regions_usage[] =
	"Usage: kvctl regions [--json] [--pid PID]\n"
	"List the regions the kvmem module holds, one per line: owning pid, handle,\n"
	"kind (host, user, gpu), size, NUMA node (-1: mixed), huge pages, live\n"
	"mappings, valid (0 once a GPU region's memory was freed under it).\n"
	"  -j, --json      a JSON array instead of a table\n"
	"  -p, --pid PID   only regions of process PID (default: all)\n"
	"Exit status: 0 ok, 1 module not loaded or unreadable, 2 usage error.\n";

int kvctl_regions(int argc, char **argv)
{
	struct region_line r;
	unsigned long long total = 0;
	long pid = 0;
	char line[256], b[32];
	int json, ret, count = 0;
	FILE *f;

	ret = parse_common(argc, argv, regions_usage, &json, &pid, NULL, NULL);
	if (ret >= 0)
		return ret;
	f = open_proc(argv[0], "regions");
	if (!f)
		return 1;

	if (json)
		printf("[");
	else
		printf("%8s %7s %-5s %12s %5s %6s %7s %6s\n", "PID", "HANDLE", "KIND",
		       "SIZE", "NUMA", "HUGE", "MAPPED", "VALID");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%ld %lu %15s %llu %d %llu %d %d", &r.pid, &r.handle,
			   r.kind, &r.size, &r.node, &r.huge, &r.mapped, &r.valid) != 8)
			continue;	/* header */
		if (pid && r.pid != pid)
			continue;
		if (json) {
			printf("%s\n  {\"pid\": %ld, \"handle\": %lu, \"kind\": ",
			       count ? "," : "", r.pid, r.handle);
			kvu_json_str(stdout, r.kind);
			printf(", \"size\": %llu, \"numa_node\": %d, \"huge_pages\": %llu, "
			       "\"mapped\": %d, \"valid\": %s}", r.size, r.node, r.huge,
			       r.mapped, r.valid ? "true" : "false");
		} else {
			printf("%8ld %7lu %-5s %12s %5d %6llu %7d %6s\n", r.pid, r.handle,
			       r.kind, kvu_fmt_bytes(b, sizeof(b), (double)r.size), r.node,
			       r.huge, r.mapped, r.valid ? "yes" : "NO");
		}
		total += r.size;
		count++;
	}
	fclose(f);
	if (json)
		printf("%s]\n", count ? "\n" : "");
	else
		printf("%d region%s, %s\n", count, count == 1 ? "" : "s",
		       kvu_fmt_bytes(b, sizeof(b), (double)total));
	return 0;
}
