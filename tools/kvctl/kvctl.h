/* SPDX-License-Identifier: MIT */
/* kvctl.h - subcommands of kvctl, one file each (cmd_<name>.c). */
#ifndef KVCTL_H
#define KVCTL_H

/* Each returns the process exit status (0 ok, 1 failure, 2 usage error). */
int kvctl_replay(int argc, char **argv);
int kvctl_bench(int argc, char **argv);
int kvctl_status(int argc, char **argv);   /* cmd_regions.c: module state */
int kvctl_regions(int argc, char **argv);  /* cmd_regions.c */
int kvctl_serve(int argc, char **argv);    /* cmd_serve.c: memory server */
/* cmd_serve.c: `kvctl status --server HOST:PORT [--auth-file FILE]`. */
int kvctl_server_status(const char *hostport, const char *auth_file, int json);

#endif /* KVCTL_H */
