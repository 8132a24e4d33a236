/* SPDX-License-Identifier: MIT */
/*
 * remote_wire.c - the client's side of the wire protocol over a
 * non-blocking TCP socket, every wait bounded by a deadline (see
 * remote_wire.h).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "remote_wire.h"

int kvc_wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		uint64_t now = kvc_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		uint64_t ms = (deadline - now + 999999) / 1000000;
		struct pollfd p = { .fd = fd, .events = ev };
		int r = poll(&p, 1, ms > 60000 ? 60000 : (int)ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int kvc_send_iov(int fd, struct iovec *iov, unsigned cnt, uint64_t deadline)
{
	unsigned i = 0;
	while (i < cnt) {
		if (iov[i].iov_len == 0) {
			i++;
			continue;
		}
		struct msghdr mh = { .msg_iov = iov + i, .msg_iovlen = cnt - i > KVC_IOV_CHUNK ? KVC_IOV_CHUNK : cnt - i };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int err = kvc_wait_fd(fd, POLLOUT, deadline);
				if (err)
					return err;
				continue;
			}
			if (errno == EINTR)
				continue;
			return -errno;
		}
		size_t left = (size_t)w;
		while (left && i < cnt) {
			if (left >= iov[i].iov_len) {
				left -= iov[i].iov_len;
				iov[i].iov_len = 0;
				i++;
			} else {
				iov[i].iov_base = (uint8_t *)iov[i].iov_base + left;
				iov[i].iov_len -= left;
				left = 0;
			}
		}
	}
	return 0;
}

int kvc_recv_full(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t r = recv(fd, p, len, MSG_DONTWAIT);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int err = kvc_wait_fd(fd, POLLIN, deadline);
		if (err)
			return err;
	}
	return 0;
}

int kvc_send_req(int fd, uint16_t op, uint64_t id, const void *meta, size_t mlen,
		    struct iovec *data, unsigned ndata, size_t dlen, uint64_t deadline)
{
	uint8_t hdr[KVP_HDR_BYTES];
	kvp_hdr_encode(hdr, op, 0, (uint32_t)(mlen + dlen), 0, id);
	if (ndata == 0) {
		struct iovec v[2] = { { hdr, sizeof(hdr) }, { (void *)meta, mlen } };
		return kvc_send_iov(fd, v, 2, deadline);
	}
	/* data[0] is reserved by the caller for header + meta (two entries: -2, -1). */
	data[-2] = (struct iovec){ hdr, sizeof(hdr) };
	data[-1] = (struct iovec){ (void *)meta, mlen };
	return kvc_send_iov(fd, data - 2, ndata + 2, deadline);
}

int kvc_recv_resp(int fd, uint16_t op, uint64_t id, struct kvp_hdr *h, uint64_t deadline)
{
	uint8_t b[KVP_HDR_BYTES];
	int err = kvc_recv_full(fd, b, sizeof(b), deadline);
	if (err)
		return err;
	if (kvp_hdr_decode(b, 1, h) || h->op != op || h->req_id != id)
		return -EPROTO;
	return 0;
}

int kvc_recv_batch(int fd, uint16_t op, uint64_t id, size_t n, size_t rent, bool check_res,
		   uint8_t *out, size_t *data_len, uint64_t deadline)
{
	struct kvp_hdr h;
	size_t blen = KVP_BATCH_HDR + n * rent;
	int err = kvc_recv_resp(fd, op, id, &h, deadline);
	if (err)
		return err;
	if (h.status || (data_len ? h.len < blen : h.len != blen))
		return -EPROTO;
	if ((err = kvc_recv_full(fd, out, blen, deadline)))
		return err;
	if (kvp_batch_decode(out, blen, rent, 0) != (int)n)
		return -EPROTO;
	for (size_t k = 0; check_res && k < n; k++) {
		int32_t x = (int32_t)kvp_get32(out + KVP_BATCH_HDR + k * rent);
		if (x > 0 || x < -4095)
			return -EPROTO;
	}
	if (data_len)
		*data_len = h.len - blen;
	return 0;
}

int kvc_recv_reason(int fd, const struct kvp_hdr *h, char *why, size_t wlen, uint64_t deadline)
{
	if (h->len > KVP_REASON_MAX)
		return -EPROTO;
	char buf[KVP_REASON_MAX + 1];
	int err = kvc_recv_full(fd, buf, h->len, deadline);
	if (err)
		return err;
	buf[h->len] = 0;
	for (size_t i = 0; i < h->len; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
			buf[i] = '?';
	snprintf(why, wlen, "%s", buf);
	return 0;
}


int kvc_tcp_connect(const char *host, const char *port, uint64_t deadline, int *out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(host, port, &hints, &ai);
	if (gai)
		return gai == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	int err = -EHOSTUNREACH;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) && errno != EINPROGRESS) {
			err = -errno;
			close(fd);
			continue;
		}
		err = kvc_wait_fd(fd, POLLOUT, deadline);
		if (!err) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			err = -soerr;
		}
		if (err) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		*out = fd;
		freeaddrinfo(ai);
		return 0;
	}
	freeaddrinfo(ai);
	return err;
}

int kvc_session_open(const char *host, const char *port, const struct kv_geometry *g,
			kv_hash root, bool admin, const uint8_t *secret, int secret_len,
			const char *name, uint64_t deadline, int *out, struct kvp_hello_reply *rep,
			char *why, size_t wlen)
{
	int fd = -1, err;
	struct kvp_hdr h;

	why[0] = 0;
	err = kvc_tcp_connect(host, port, deadline, &fd);
	if (err)
		return err;
	struct kvp_hello hello = {
		.ver_min = KVP_VERSION, .ver_max = KVP_VERSION,
		.flags = admin ? KVP_HELLO_ADMIN : 0,
		.ns_root = root,
	};
	if (!admin) {
		hello.geom = *g;
		hello.block_bytes = (uint32_t)kv_geometry_block_bytes(g);
	}
	snprintf(hello.name, sizeof(hello.name), "%s", name);
	uint8_t buf[KVP_HELLO_BYTES > KVP_HELLO_REPLY_BYTES ? KVP_HELLO_BYTES : KVP_HELLO_REPLY_BYTES];
	size_t n = kvp_hello_encode(buf, &hello);
	if ((err = kvc_send_req(fd, KVP_OP_HELLO, 1, buf, n, NULL, 0, 0, deadline)))
		goto fail;
	if ((err = kvc_recv_resp(fd, KVP_OP_HELLO, 1, &h, deadline)))
		goto fail;
	if (h.status) {
		kvc_recv_reason(fd, &h, why, wlen, deadline);
		err = h.status;
		goto fail;
	}
	if (h.len != KVP_HELLO_REPLY_BYTES) {
		err = -EPROTO;
		goto fail;
	}
	if ((err = kvc_recv_full(fd, buf, h.len, deadline)))
		goto fail;
	if (kvp_get16(buf) != KVP_VERSION) {
		/* Another version's check values cannot be verified: never use it. */
		snprintf(why, wlen, "server answered protocol version %u (this client speaks %u)",
			 kvp_get16(buf), KVP_VERSION);
		err = -EPROTONOSUPPORT;
		goto fail;
	}
	if ((err = kvp_hello_reply_decode(buf, h.len, rep)))
		goto fail;
	if (rep->flags & KVP_SRV_AUTH) {
		uint8_t mac[KVP_MAC_BYTES];
		if (secret_len <= 0) {
			snprintf(why, wlen, "server requires auth and no secret is configured");
			err = -EACCES;
			goto fail;
		}
		if ((err = kvp_auth_mac(secret, (size_t)secret_len, rep->nonce, root, &hello.geom, mac)))
			goto fail;
		if ((err = kvc_send_req(fd, KVP_OP_AUTH, 2, mac, sizeof(mac), NULL, 0, 0, deadline)))
			goto fail;
		if ((err = kvc_recv_resp(fd, KVP_OP_AUTH, 2, &h, deadline)))
			goto fail;
		if (h.status) {
			kvc_recv_reason(fd, &h, why, wlen, deadline);
			err = h.status;
			goto fail;
		}
		if (h.len) {
			err = -EPROTO;
			goto fail;
		}
	}
	*out = fd;
	return 0;
fail:
	close(fd);
	return err;
}
