/* SPDX-License-Identifier: MIT */
/*
 * remote_wire.h - the client's side of the wire protocol (docs/protocol.md)
 * over one non-blocking TCP socket: every wait is bounded by a deadline
 * (CLOCK_MONOTONIC ns), so a peer that stops answering costs at most the
 * caller's timeout. Used by the remote tier (remote.c) for data and by
 * kv_remote_server_stats for `kvctl status --server`.
 */
#ifndef KV_REMOTE_WIRE_H
#define KV_REMOTE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "kv.h"
#include "proto.h"

/* Largest iovec array handed to one sendmsg. */
#define KVC_IOV_CHUNK 512

static inline uint64_t kvc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wait until fd is ready for ev (POLLIN/POLLOUT). Returns 0, -ETIMEDOUT or -errno. */
int kvc_wait_fd(int fd, short ev, uint64_t deadline);

/* Send all of iov[0..cnt) (consumed in place). Returns 0, -ETIMEDOUT or -errno. */
int kvc_send_iov(int fd, struct iovec *iov, unsigned cnt, uint64_t deadline);

/* Receive exactly len bytes. Returns 0, -ECONNRESET (peer closed), -ETIMEDOUT or -errno. */
int kvc_recv_full(int fd, void *buf, size_t len, uint64_t deadline);

/*
 * Send a request: header, then meta (may be NULL), then ndata data iovs of
 * dlen bytes in all. With ndata > 0, data[-2] and data[-1] must exist: they
 * are overwritten with the header and meta, so the whole request goes out
 * in as few sendmsg calls as possible. Returns 0 or -errno.
 */
int kvc_send_req(int fd, uint16_t op, uint64_t id, const void *meta, size_t mlen,
		 struct iovec *data, unsigned ndata, size_t dlen, uint64_t deadline);

/* Read a response header for (op, id). Returns 0 and fills h, -EPROTO, or -errno. */
int kvc_recv_resp(int fd, uint16_t op, uint64_t id, struct kvp_hdr *h, uint64_t deadline);

/*
 * Receive the answer to (op, id) whose body starts with a batch of n
 * entries of rent bytes, into out (KVP_BATCH_HDR + n * rent bytes). With
 * check_res, each entry starts with a 32-bit result that must be 0 or a
 * negative errno. With data_len NULL the body must be exactly the batch;
 * otherwise block bytes may follow, and *data_len gets their count (still
 * unread). Returns 0, -EPROTO (an error status or anything malformed), or
 * -errno.
 */
int kvc_recv_batch(int fd, uint16_t op, uint64_t id, size_t n, size_t rent, bool check_res,
		   uint8_t *out, size_t *data_len, uint64_t deadline);

/* An error response: read its reason text (bounded, made printable) into why. */
int kvc_recv_reason(int fd, const struct kvp_hdr *h, char *why, size_t wlen, uint64_t deadline);

/*
 * Connect a non-blocking TCP socket (TCP_NODELAY) to host:port, trying
 * each address. Returns 0 and sets *out, or -EHOSTUNREACH / -errno.
 */
int kvc_tcp_connect(const char *host, const char *port, uint64_t deadline, int *out);

/*
 * Connect and say hello (and authenticate when asked). admin: a status-only
 * hello. why gets the server's reason when it refuses. Returns 0 with *out
 * the connected socket and *rep the server's HELLO reply, or -errno (the
 * server's status when it refused: -EACCES, -EPROTONOSUPPORT, ...).
 */
int kvc_session_open(const char *host, const char *port, const struct kv_geometry *g,
		     kv_hash root, bool admin, const uint8_t *secret, int secret_len,
		     const char *name, uint64_t deadline, int *out, struct kvp_hello_reply *rep,
		     char *why, size_t wlen);

#endif /* KV_REMOTE_WIRE_H */
