// SPDX-License-Identifier: MIT
/*
 * kvt_rdma.c - a kvmem host region registered with ibv_reg_mr on
 * soft-RoCE (rxe0, set up by suite.sh) and written by RDMA WRITEs from
 * another process; every byte checked, including the untouched ones.
 * Server (this process) owns the region; the client is a forked child
 * with its own verbs context. They swap QP details over a socketpair.
 */
#include <infiniband/verbs.h>
#include <sys/socket.h>

#include "kvt.h"

#define REGION (4ul << 20)	/* two huge pages */
#define CHUNK (1ul << 20)
#define NCHUNK 3
#define OFF0 (512ul << 10)	/* writes cover [512K, 3.5M): crosses 2M */

struct peer {
	uint32_t qpn, psn, rkey;
	uint64_t addr, seed;
	union ibv_gid gid;
};

struct ep {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int gidx;
	union ibv_gid gid;
};

static int ep_open(struct ep *e, char *why, size_t wl)
{
	struct ibv_device **l = ibv_get_device_list(NULL);
	struct ibv_qp_init_attr ia = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};

	memset(e, 0, sizeof(*e));
	if (!l || !l[0]) {
		snprintf(why, wl, "no verbs device (rxe0 not set up)");
		return -1;
	}
	e->ctx = ibv_open_device(l[0]);
	ibv_free_device_list(l);
	if (!e->ctx) {
		snprintf(why, wl, "ibv_open_device: %s", strerror(errno));
		return -1;
	}
	/* the IPv4-mapped GID (::ffff:a.b.c.d) of port 1 */
	e->gidx = -1;
	for (int i = 0; i < 16 && e->gidx < 0; i++) {
		union ibv_gid g;
		if (ibv_query_gid(e->ctx, 1, i, &g))
			break;
		if (g.raw[10] == 0xff && g.raw[11] == 0xff && g.raw[12]) {
			e->gidx = i;
			e->gid = g;
		}
	}
	if (e->gidx < 0) {
		snprintf(why, wl, "no IPv4 GID on rxe0 port 1");
		return -1;
	}
	e->pd = ibv_alloc_pd(e->ctx);
	e->cq = e->pd ? ibv_create_cq(e->ctx, 16, NULL, NULL, 0) : NULL;
	ia.send_cq = ia.recv_cq = e->cq;
	e->qp = e->cq ? ibv_create_qp(e->pd, &ia) : NULL;
	if (!e->qp) {
		snprintf(why, wl, "pd/cq/qp: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int ep_connect(struct ep *e, const struct peer *me, const struct peer *them)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE,
	};

	if (ibv_modify_qp(e->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = IBV_MTU_1024;
	a.dest_qp_num = them->qpn;
	a.rq_psn = them->psn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = them->gid;
	a.ah_attr.grh.sgid_index = e->gidx;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = 1;
	if (ibv_modify_qp(e->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = me->psn;
	a.max_rd_atomic = 1;
	return ibv_modify_qp(e->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			     IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

static void ep_close(struct ep *e)
{
	if (e->qp)
		ibv_destroy_qp(e->qp);
	if (e->cq)
		ibv_destroy_cq(e->cq);
	if (e->pd)
		ibv_dealloc_pd(e->pd);
	if (e->ctx)
		ibv_close_device(e->ctx);
}

/* Client: its own buffer, NCHUNK RDMA WRITEs into the server's region. */
static int client(int sock)
{
	struct peer me = { .psn = 0x2222 }, them;
	struct ibv_wc wc;
	struct ibv_mr *mr;
	struct ep e;
	char why[128];
	uint8_t *buf;
	int done = 0, rc = 1;

	if (ep_open(&e, why, sizeof(why))) {
		fprintf(stderr, "client: %s\n", why);
		return 2;
	}
	buf = aligned_alloc(4096, NCHUNK * CHUNK);
	mr = ibv_reg_mr(e.pd, buf, NCHUNK * CHUNK, IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		goto out;
	me.qpn = e.qp->qp_num;
	me.gid = e.gid;
	if (read(sock, &them, sizeof(them)) != sizeof(them) ||
	    write(sock, &me, sizeof(me)) != sizeof(me))
		goto out;
	kvt_fill(buf, NCHUNK * CHUNK, them.seed);
	if (ep_connect(&e, &me, &them)) {
		fprintf(stderr, "client: connect: %s\n", strerror(errno));
		goto out;
	}
	for (int i = 0; i < NCHUNK; i++) {
		struct ibv_sge sge = { (uintptr_t)buf + i * CHUNK, CHUNK, mr->lkey };
		struct ibv_send_wr wr = {
			.wr_id = i, .sg_list = &sge, .num_sge = 1,
			.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
			.wr.rdma = { them.addr + OFF0 + i * CHUNK, them.rkey },
		}, *bad;
		if (ibv_post_send(e.qp, &wr, &bad)) {
			fprintf(stderr, "client: post_send: %s\n", strerror(errno));
			goto out;
		}
	}
	while (done < NCHUNK) {
		int n = ibv_poll_cq(e.cq, 1, &wc);
		if (n < 0)
			goto out;
		if (n == 0) {
			usleep(1000);
			continue;
		}
		if (wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "client: wc %llu status %s\n",
				(unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status));
			goto out;
		}
		done++;
	}
	rc = 0;
out:
	(void)!write(sock, &rc, sizeof(rc));
	if (mr)
		ibv_dereg_mr(mr);
	free(buf);
	ep_close(&e);
	return rc;
}

int main(void)
{
	struct peer me = { .psn = 0x1111 }, them;
	struct kvt_snap s;
	struct ibv_mr *mr = NULL;
	struct ep e;
	char why[160];
	uint64_t h = 0;
	uint8_t *m = NULL;
	int fd, sv[2], crc = -1, st;
	pid_t pid;

	kvt_snap(&s);
	if (ep_open(&e, why, sizeof(why))) {
		printf("not ok rdma_write_into_region: %s\n", why);
		return 1;
	}
	kvt_begin("rdma_write_into_region");
	fd = kvt_open();
	CHECK(fd >= 0 && kvt_alloc(fd, REGION, 0, -1, &h) == 0, "ALLOC");
	m = kvt_map(fd, h, REGION);
	CHECK(m != NULL, "map");
	if (!m)
		goto out;
	mr = ibv_reg_mr(e.pd, m, REGION, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	CHECK(mr != NULL, "ibv_reg_mr on a kvmem mapping: %s", strerror(errno));
	if (!mr)
		goto out;
	me.qpn = e.qp->qp_num;
	me.gid = e.gid;
	me.rkey = mr->rkey;
	me.addr = (uintptr_t)m;
	me.seed = kvt_seed();

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(client(sv[1]));
	}
	close(sv[1]);
	CHECK(write(sv[0], &me, sizeof(me)) == sizeof(me) &&
	      read(sv[0], &them, sizeof(them)) == sizeof(them), "exchange");
	CHECK(ep_connect(&e, &me, &them) == 0, "connect: %s", strerror(errno));
	CHECK(read(sv[0], &crc, sizeof(crc)) == sizeof(crc) && crc == 0,
	      "client's writes failed (%d)", crc);
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client status 0x%x", st);
	close(sv[0]);
	if (crc == 0) {
		long bad = kvt_verify(m + OFF0, NCHUNK * CHUNK, me.seed);
		CHECK(bad < 0, "RDMA data differs at region byte %ld", bad + (long)OFF0);
		size_t i;
		for (i = 0; i < OFF0 && !m[i]; i++)
			;
		CHECK(i == OFF0, "byte %zu before the written range changed", i);
		for (i = OFF0 + NCHUNK * CHUNK; i < REGION && !m[i]; i++)
			;
		CHECK(i == REGION, "byte %zu after the written range changed", i);
	}
	/* freeing the handle while the MR pins the pages: they stay valid */
	CHECK(kvt_free(fd, h) == 0, "FREE while registered");
out:
	if (mr)
		ibv_dereg_mr(mr);
	if (m)
		munmap(m, REGION);
	if (fd >= 0)
		close(fd);
	ep_close(&e);
	CHECK_SNAP_SAME(&s, "rdma case");
	kvt_end();
	return kvt_exit();
}
