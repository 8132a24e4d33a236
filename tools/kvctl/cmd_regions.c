// SPDX-License-Identifier: MIT
/* cmd_regions.c - placeholder until the kvmem module lands. */
#include <stdio.h>

#include "kvctl.h"

int kvctl_status(int argc, char **argv)
{
	(void)argc; (void)argv;
	fprintf(stderr, "kvctl: status: /dev/kvmem support is not built yet\n");
	return 1;
}

int kvctl_regions(int argc, char **argv)
{
	(void)argc; (void)argv;
	fprintf(stderr, "kvctl: regions: /dev/kvmem support is not built yet\n");
	return 1;
}
