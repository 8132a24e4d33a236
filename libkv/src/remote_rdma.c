/* SPDX-License-Identifier: MIT */
/*
 * remote_rdma.c - verbs helpers of the remote tier (see remote_rdma.h).
 * Verbs return positive errno values or NULL+errno: converted to -errno here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <infiniband/verbs.h>

#include "remote_rdma.h"

/*
 * libibverbs is opened on first use (dlopen), never linked: libkv.so and
 * kvctl run on a host without rdma-core, where kvr_dev_open fails with
 * -ELIBACC and the remote tier uses TCP. <infiniband/verbs.h> stays a build
 * dependency. The calls below are the exported ones; the data path's
 * ibv_post_send, ibv_poll_cq and ibv_req_notify_cq are inline in the header
 * (through the context's ops table) and need no symbol. $KV_VERBS_LIB
 * names another library to open (a path or a soname; tests point it at
 * nothing to run as a host without libibverbs).
 */
#define KVR_VERBS_SONAME "libibverbs.so.1"

static struct {
	struct ibv_device **(*get_device_list)(int *num);
	void (*free_device_list)(struct ibv_device **list);
	const char *(*get_device_name)(struct ibv_device *dev);
	struct ibv_context *(*open_device)(struct ibv_device *dev);
	int (*close_device)(struct ibv_context *ctx);
	int (*query_port)(struct ibv_context *ctx, uint8_t port, struct _compat_ibv_port_attr *pa);
	int (*query_gid)(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid);
	struct ibv_pd *(*alloc_pd)(struct ibv_context *ctx);
	int (*dealloc_pd)(struct ibv_pd *pd);
	struct ibv_mr *(*reg_mr)(struct ibv_pd *pd, void *addr, size_t len, int access);
	int (*dereg_mr)(struct ibv_mr *mr);
	struct ibv_comp_channel *(*create_comp_channel)(struct ibv_context *ctx);
	int (*destroy_comp_channel)(struct ibv_comp_channel *ch);
	struct ibv_cq *(*create_cq)(struct ibv_context *ctx, int cqe, void *cq_ctx,
				    struct ibv_comp_channel *ch, int vector);
	int (*destroy_cq)(struct ibv_cq *cq);
	int (*get_cq_event)(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_ctx);
	void (*ack_cq_events)(struct ibv_cq *cq, unsigned int n);
	struct ibv_qp *(*create_qp)(struct ibv_pd *pd, struct ibv_qp_init_attr *ia);
	int (*modify_qp)(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask);
	int (*destroy_qp)(struct ibv_qp *qp);
} V;

static pthread_once_t verbs_once = PTHREAD_ONCE_INIT;
static bool verbs_ok;
static char verbs_why[320];

/* Resolve one symbol into *fp (a function pointer of any type). Returns 0 or -1. */
static int verbs_sym(void *h, const char *lib, const char *name, void *fp)
{
	void *p = dlsym(h, name);

	if (!p) {
		snprintf(verbs_why, sizeof(verbs_why), "cannot load %s: it has no %s", lib, name);
		return -1;
	}
	/* POSIX-sanctioned object -> function pointer conversion. */
	memcpy(fp, &p, sizeof(p));
	return 0;
}

static void verbs_load(void)
{
	const char *lib = getenv("KV_VERBS_LIB");
	void *h;

	if (!lib || !*lib)
		lib = KVR_VERBS_SONAME;
	/* Kept open once it has every symbol: the providers it loads register with it. */
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();
		snprintf(verbs_why, sizeof(verbs_why), "cannot load %s", e ? e : lib);
		return;
	}
#define SYM(f) verbs_sym(h, lib, "ibv_" #f, &V.f)
	if (SYM(get_device_list) || SYM(free_device_list) || SYM(get_device_name) ||
	    SYM(open_device) || SYM(close_device) || SYM(query_port) || SYM(query_gid) ||
	    SYM(alloc_pd) || SYM(dealloc_pd) || SYM(reg_mr) || SYM(dereg_mr) ||
	    SYM(create_comp_channel) || SYM(destroy_comp_channel) || SYM(create_cq) ||
	    SYM(destroy_cq) || SYM(get_cq_event) || SYM(ack_cq_events) || SYM(create_qp) ||
	    SYM(modify_qp) || SYM(destroy_qp)) {
		dlclose(h);
		return;
	}
#undef SYM
	verbs_ok = true;
}

int kvr_verbs_load(void)
{
	pthread_once(&verbs_once, verbs_load);
	return verbs_ok ? 0 : -ELIBACC;
}

const char *kvr_verbs_error(void)
{
	return kvr_verbs_load() ? verbs_why : NULL;
}

/* <infiniband/verbs.h>'s inline ibv_query_port, through the loaded symbol. */
static int query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *pa)
{
	struct verbs_context *vctx = verbs_get_ctx_op(ctx, query_port);

	if (vctx)
		return vctx->query_port(ctx, port, pa, sizeof(*pa));
	memset(pa, 0, sizeof(*pa));
	return V.query_port(ctx, port, (struct _compat_ibv_port_attr *)pa);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int pick_gid(struct ibv_context *ctx, uint8_t port, int tbl_len, uint8_t *index,
		    uint8_t gid[16])
{
	const char *e = getenv("KV_RDMA_GID_INDEX");
	union ibv_gid g;
	if (e && *e) {
		int i = atoi(e);
		if (V.query_gid(ctx, port, i, &g))
			return -EINVAL;
		*index = (uint8_t)i;
		memcpy(gid, g.raw, 16);
		return 0;
	}
	/* RoCEv2 over IPv4: the IPv4-mapped GID (::ffff:a.b.c.d), else index 0. */
	for (int i = 0; i < tbl_len && i < 256; i++) {
		if (V.query_gid(ctx, port, i, &g))
			continue;
		static const uint8_t v4[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(g.raw, v4, 12) == 0) {
			*index = (uint8_t)i;
			memcpy(gid, g.raw, 16);
			return 0;
		}
	}
	if (V.query_gid(ctx, port, 0, &g))
		return -EIO;
	*index = 0;
	memcpy(gid, g.raw, 16);
	return 0;
}

int kvr_dev_open(const char *name, struct kvr_dev *d)
{
	int n = 0, err = kvr_verbs_load();
	memset(d, 0, sizeof(*d));
	if (err)
		return err;
	err = -ENODEV;
	struct ibv_device **list = V.get_device_list(&n);
	if (!list)
		return -ENODEV;
	struct ibv_device *dev = NULL;
	for (int i = 0; i < n; i++)
		if (!name || strcmp(V.get_device_name(list[i]), name) == 0) {
			dev = list[i];
			break;
		}
	if (!dev)
		goto out;
	snprintf(d->name, sizeof(d->name), "%s", V.get_device_name(dev));
	d->ctx = V.open_device(dev);
	if (!d->ctx) {
		err = errno ? -errno : -ENODEV;
		goto out;
	}
	d->port = 1;
	struct ibv_port_attr pa;
	if ((err = -query_port(d->ctx, d->port, &pa)))
		goto err_close;
	if (pa.state != IBV_PORT_ACTIVE) {
		err = -ENETDOWN;
		goto err_close;
	}
	d->lid = pa.lid;
	d->mtu = (uint8_t)pa.active_mtu;
	d->max_msg = pa.max_msg_sz ? pa.max_msg_sz : (1u << 30);
	if ((err = pick_gid(d->ctx, d->port, pa.gid_tbl_len, &d->gid_index, d->gid)))
		goto err_close;
	d->pd = V.alloc_pd(d->ctx);
	if (!d->pd) {
		err = errno ? -errno : -ENOMEM;
		goto err_close;
	}
	V.free_device_list(list);
	return 0;
err_close:
	V.close_device(d->ctx);
	d->ctx = NULL;
out:
	V.free_device_list(list);
	return err;
}

void kvr_dev_close(struct kvr_dev *d)
{
	if (d->pd)
		V.dealloc_pd(d->pd);
	if (d->ctx)
		V.close_device(d->ctx);
	memset(d, 0, sizeof(*d));
}

int kvr_mr_reg(struct kvr_dev *d, void *addr, size_t len, struct ibv_mr **out)
{
	*out = V.reg_mr(d->pd, addr, len,
			  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
	return *out ? 0 : (errno ? -errno : -ENOMEM);
}

void kvr_mr_dereg(struct ibv_mr *mr)
{
	if (mr)
		V.dereg_mr(mr);
}

uint32_t kvr_mr_lkey(const struct ibv_mr *mr) { return mr->lkey; }
uint32_t kvr_mr_rkey(const struct ibv_mr *mr) { return mr->rkey; }

int kvr_qp_create(struct kvr_dev *d, unsigned max_wr, struct kvr_qp *q)
{
	memset(q, 0, sizeof(*q));
	/*
	 * A completion channel lets kvr_rw sleep in poll(2) once the queue is
	 * full instead of spinning: the CPU it would burn is the one a
	 * software device (rxe) or the verifying thread needs.
	 */
	q->ch = V.create_comp_channel(d->ctx);
	if (!q->ch)
		return errno ? -errno : -ENOMEM;
	int fl = fcntl(q->ch->fd, F_GETFL);
	if (fl < 0 || fcntl(q->ch->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int err = -errno;
		kvr_qp_destroy(q);
		return err;
	}
	q->cq = V.create_cq(d->ctx, (int)max_wr * 2, NULL, q->ch, 0);
	if (!q->cq) {
		int err = errno ? -errno : -ENOMEM;
		kvr_qp_destroy(q);
		return err;
	}
	struct ibv_qp_init_attr ia = {
		.send_cq = q->cq,
		.recv_cq = q->cq,
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = max_wr, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	q->qp = V.create_qp(d->pd, &ia);
	if (!q->qp) {
		int err = errno ? -errno : -ENOMEM;
		kvr_qp_destroy(q);
		return err;
	}
	q->max_wr = max_wr;
	q->psn = (uint32_t)(now_ns() ^ (uintptr_t)q) & 0xffffff;
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = d->port,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE,
	};
	int err = -V.modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				 IBV_QP_ACCESS_FLAGS);
	if (err) {
		kvr_qp_destroy(q);
		return err;
	}
	return 0;
}

void kvr_qp_local(const struct kvr_dev *d, const struct kvr_qp *q, const struct ibv_mr *mr,
		  void *base, struct kvp_rdma *out)
{
	memset(out, 0, sizeof(*out));
	out->qpn = q->qp->qp_num;
	out->psn = q->psn;
	memcpy(out->gid, d->gid, 16);
	out->lid = d->lid;
	out->mtu = d->mtu;
	out->gid_index = d->gid_index;
	out->addr = mr ? (uint64_t)(uintptr_t)base : 0;
	out->rkey = mr ? mr->rkey : 0;
	out->max_msg = d->max_msg;
}

int kvr_qp_connect(struct kvr_dev *d, struct kvr_qp *q, const struct kvp_rdma *rem)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR,
		.path_mtu = (enum ibv_mtu)(rem->mtu < d->mtu ? rem->mtu : d->mtu),
		.dest_qp_num = rem->qpn,
		.rq_psn = rem->psn,
		.max_dest_rd_atomic = 16,
		.min_rnr_timer = 12,
		.ah_attr = {
			.is_global = 1,
			.dlid = rem->lid,
			.sl = 0,
			.src_path_bits = 0,
			.port_num = d->port,
		},
	};
	memcpy(a.ah_attr.grh.dgid.raw, rem->gid, 16);
	a.ah_attr.grh.sgid_index = d->gid_index;
	a.ah_attr.grh.hop_limit = 64;
	int err = -V.modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
				 IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				 IBV_QP_MIN_RNR_TIMER);
	if (err)
		return err;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;       /* 4.096 us * 2^14 = 67 ms per retry */
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = q->psn;
	a.max_rd_atomic = 16;
	return -V.modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			      IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

void kvr_qp_destroy(struct kvr_qp *q)
{
	if (q->qp)
		V.destroy_qp(q->qp);
	if (q->cq) {
		/* Every event taken in cq_wait was acked there. */
		V.destroy_cq(q->cq);
	}
	if (q->ch)
		V.destroy_comp_channel(q->ch);
	memset(q, 0, sizeof(*q));
}

/*
 * Polls of an empty CQ before kvr_rw sleeps on the completion channel. A
 * hardware NIC completes a 1 MiB transfer in tens of microseconds, so a short
 * spin keeps latency down there; past it we stop taking CPU from whoever
 * produces the completions.
 */
#define KVR_SPINS 32

/*
 * Sleep on the completion channel until the armed CQ raises an event or the
 * deadline passes. Returns 0 (poll the CQ again), -ETIMEDOUT or -errno.
 */
static int cq_wait(struct kvr_qp *q, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		uint64_t ms = (deadline - now + 999999) / 1000000;
		struct pollfd pfd = { .fd = q->ch->fd, .events = POLLIN };
		int r = poll(&pfd, 1, ms > 1000 ? 1000 : (int)ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		struct ibv_cq *ev_cq;
		void *ev_ctx;
		if (V.get_cq_event(q->ch, &ev_cq, &ev_ctx) == 0) {
			V.ack_cq_events(ev_cq, 1);
			return 0;
		}
		if (errno != EAGAIN)
			return -EIO;
	}
}

int kvr_rw(struct kvr_qp *q, bool write, void *const *local, uint32_t lkey,
	   const uint64_t *raddr, uint32_t rkey, size_t n, size_t len, uint32_t max_msg,
	   uint64_t deadline, void (*fin)(void *arg, size_t i), void *arg)
{
	size_t piece = max_msg && max_msg < len ? max_msg : len;
	size_t per = (len + piece - 1) / piece;   /* work requests per block */
	size_t total = n * per, posted = 0, ndone = 0;
	unsigned outstanding = 0, spins = 0;
	bool armed = false;
	struct ibv_wc wc[16];

	while (ndone < total) {
		/* Post as many as the send queue takes. */
		while (posted < total && outstanding < q->max_wr) {
			size_t b = posted / per, k = posted % per;
			size_t off = k * piece, l = len - off < piece ? len - off : piece;
			struct ibv_sge sge = {
				.addr = (uint64_t)(uintptr_t)local[b] + off,
				.length = (uint32_t)l,
				.lkey = lkey,
			};
			struct ibv_send_wr wr = {
				.wr_id = posted,
				.sg_list = &sge,
				.num_sge = 1,
				.opcode = write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
				.send_flags = IBV_SEND_SIGNALED,
			}, *bad = NULL;
			wr.wr.rdma.remote_addr = raddr[b] + off;
			wr.wr.rdma.rkey = rkey;
			int err = ibv_post_send(q->qp, &wr, &bad);
			if (err)
				return -err;
			posted++;
			outstanding++;
		}
		int got = ibv_poll_cq(q->cq, 16, wc);
		if (got < 0)
			return -EIO;
		for (int i = 0; i < got; i++) {
			if (wc[i].status != IBV_WC_SUCCESS)
				return -EIO;
			if (fin && wc[i].wr_id % per == per - 1)
				fin(arg, (size_t)(wc[i].wr_id / per));
		}
		ndone += (size_t)got;
		outstanding -= (unsigned)got;
		if (got > 0) {
			spins = 0;
			armed = false;
			continue;
		}
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		if (++spins <= KVR_SPINS)
			continue;
		if (!armed) {
			/*
			 * Arm, then poll once more before sleeping: a completion
			 * that landed before the arm raises no event.
			 */
			if (ibv_req_notify_cq(q->cq, 0))
				return -EIO;
			armed = true;
			continue;
		}
		int err = cq_wait(q, deadline);
		if (err)
			return err;
		spins = 0;
		armed = false;
	}
	return 0;
}
