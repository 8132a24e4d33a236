/* SPDX-License-Identifier: MIT */
/*
 * remote_rdma.h - the verbs part of the remote tier, shared by the client
 * (remote.c) and the memory server (server.c): open a device, register a
 * pool once, RC queue pairs connected with the peer's RDMA_CONNECT info
 * (exchanged over the TCP control connection), and batches of one-sided
 * READ/WRITE split at the device's largest message.
 */
#ifndef KV_REMOTE_RDMA_H
#define KV_REMOTE_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct ibv_context;
struct ibv_pd;
struct ibv_mr;
struct ibv_cq;
struct ibv_comp_channel;
struct ibv_qp;

struct kvr_dev {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	uint8_t port;
	uint8_t gid_index;
	uint8_t gid[16];
	uint16_t lid;
	uint8_t mtu;            /* enum ibv_mtu (active) */
	uint32_t max_msg;       /* port's max_msg_sz */
	char name[64];
};

struct kvr_qp {
	struct ibv_comp_channel *ch; /* kvr_rw sleeps on it when the CQ is empty */
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	uint32_t psn;
	unsigned max_wr;
};

/*
 * libibverbs is not linked: it is dlopen()ed on first use ($KV_VERBS_LIB,
 * else libibverbs.so.1), so a host without rdma-core runs libkv over TCP.
 * kvr_verbs_load returns 0 once it is loaded, or -ELIBACC (quiet; every
 * call answers the same). kvr_verbs_error says why in one phrase ("cannot
 * load libibverbs.so.1: ..."), or returns NULL when it loaded.
 */
int kvr_verbs_load(void);
const char *kvr_verbs_error(void);

/*
 * Open a verbs device (name NULL: the first one) on port 1, pick the GID
 * (KV_RDMA_GID_INDEX, else the first IPv4-mapped RoCE GID, else 0).
 * Returns 0, or -ENODEV when there is none (quiet), -ELIBACC when
 * libibverbs cannot be loaded (quiet: see kvr_verbs_error), or -errno.
 * The other kvr_* calls need a device opened by it.
 */
int kvr_dev_open(const char *name, struct kvr_dev *d);
void kvr_dev_close(struct kvr_dev *d);

/* Register [addr, addr+len) once for local write and remote read/write. Returns 0 or -errno. */
int kvr_mr_reg(struct kvr_dev *d, void *addr, size_t len, struct ibv_mr **out);
void kvr_mr_dereg(struct ibv_mr *mr);
uint32_t kvr_mr_lkey(const struct ibv_mr *mr);
uint32_t kvr_mr_rkey(const struct ibv_mr *mr);

/* Create an RC QP with its own CQ. Returns 0 or -errno. */
int kvr_qp_create(struct kvr_dev *d, unsigned max_wr, struct kvr_qp *q);
/* Our end's description for RDMA_CONNECT (addr/rkey of mr, or 0 when mr is NULL). */
void kvr_qp_local(const struct kvr_dev *d, const struct kvr_qp *q, const struct ibv_mr *mr,
		  void *base, struct kvp_rdma *out);
/* INIT -> RTR -> RTS towards the peer described by rem. Returns 0 or -errno. */
int kvr_qp_connect(struct kvr_dev *d, struct kvr_qp *q, const struct kvp_rdma *rem);
void kvr_qp_destroy(struct kvr_qp *q);

/*
 * n one-sided transfers of len bytes: local[i] (in the MR of lkey) to/from
 * remote address raddr[i] (rkey). Each is split into work requests of at
 * most max_msg bytes; at most q->max_wr are outstanding. Waits for all
 * completions until deadline (CLOCK_MONOTONIC ns). Returns 0, -ETIMEDOUT,
 * or -EIO (a completion with an error status). After an error the QP must
 * be destroyed. fin (may be NULL) is called for block i as soon as all its
 * work requests completed (RC completes them in order), while later ones
 * are still in flight: the client verifies READs there. Polls the CQ a few
 * times when it is empty, then sleeps on the completion channel.
 */
int kvr_rw(struct kvr_qp *q, bool write, void *const *local, uint32_t lkey,
	   const uint64_t *raddr, uint32_t rkey, size_t n, size_t len, uint32_t max_msg,
	   uint64_t deadline, void (*fin)(void *arg, size_t i), void *arg);

#endif /* KV_REMOTE_RDMA_H */
