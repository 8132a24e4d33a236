/* SPDX-License-Identifier: MIT */
/* kvctl.h - subcommands of kvctl, one file each (cmd_<name>.c). */
#ifndef KVCTL_H
#define KVCTL_H

/* Each returns the process exit status (0 ok, 1 failure, 2 usage error). */
int kvctl_replay(int argc, char **argv);
int kvctl_bench(int argc, char **argv);
int kvctl_status(int argc, char **argv);   /* cmd_regions.c: module state */
int kvctl_regions(int argc, char **argv);  /* cmd_regions.c */

#endif /* KVCTL_H */
