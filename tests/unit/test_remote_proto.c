// SPDX-License-Identifier: MIT
/*
 * test_remote_proto.c - the remote tier's wire format: pinned header bytes
 * (the format is shared by every client and server version 1), encode and
 * decode round trips, and that each decoder refuses what docs/protocol.md
 * says it must (bad magic, op, flags, lengths, counts, names, geometry).
 */
#include "harness.h"
#include "proto.h"

static void t_header(void)
{
	uint8_t b[KVP_HDR_BYTES];
	struct kvp_hdr h;
	static const uint8_t pinned[KVP_HDR_BYTES] = {
		0x4b, 0x56, 0x52, 0x31, 0x05, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00, 0x00,
		0xfe, 0xff, 0xff, 0xff, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
	};

	kvp_hdr_encode(b, KVP_OP_GET, KVP_F_RESP, 16, -2, 0x0102030405060708ull);
	CHECK(memcmp(b, pinned, sizeof(b)) == 0);
	CHECK_EQ(kvp_hdr_decode(b, 1, &h), 0);
	CHECK_EQ(h.op, KVP_OP_GET);
	CHECK_EQ(h.len, 16);
	CHECK_EQ(h.status, -2);
	CHECK(h.req_id == 0x0102030405060708ull);
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), -EPROTO);   /* a response where a request is due */

	kvp_hdr_encode(b, KVP_OP_HELLO, 0, 10, 0, 1);
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), 0);
	b[0] ^= 1;
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), -EPROTO);   /* magic */
	kvp_hdr_encode(b, 0, 0, 0, 0, 1);
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), -EPROTO);   /* op 0 */
	kvp_hdr_encode(b, KVP_OP_MAX + 1, 0, 0, 0, 1);
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), -EPROTO);   /* unknown op */
	kvp_hdr_encode(b, KVP_OP_GET, 0x8000, 0, 0, 1);
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), -EPROTO);   /* unknown flag */
	kvp_hdr_encode(b, KVP_OP_GET, 0, KVP_MAX_FRAME + 1, 0, 1);
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), -EPROTO);   /* oversized */
	kvp_hdr_encode(b, KVP_OP_GET, 0, 8, -1, 1);
	CHECK_EQ(kvp_hdr_decode(b, 0, &h), -EPROTO);   /* status on a request */
	kvp_hdr_encode(b, KVP_OP_GET, KVP_F_RESP, 8, 5, 1);
	CHECK_EQ(kvp_hdr_decode(b, 1, &h), -EPROTO);   /* positive status */
}

static void t_layout(void)
{
	uint8_t p8[8];
	size_t meta, data;

	CHECK_EQ(kvp_req_layout(KVP_OP_HELLO, KVP_HELLO_BYTES, NULL, 4096, 1, &meta, &data), 0);
	CHECK_EQ(meta, KVP_HELLO_BYTES);
	CHECK_EQ(kvp_req_layout(KVP_OP_HELLO, KVP_HELLO_BYTES + 1, NULL, 4096, 1, &meta, &data), -EPROTO);
	CHECK_EQ(kvp_req_layout(KVP_OP_STATS, 1, NULL, 4096, 1, &meta, &data), -EPROTO);
	CHECK_EQ(kvp_req_layout(KVP_OP_AUTH, KVP_MAC_BYTES, NULL, 4096, 1, &meta, &data), 0);
	CHECK_EQ(kvp_req_layout(KVP_OP_GET, 7, NULL, 4096, 1, &meta, &data), -EPROTO);
	CHECK_EQ(kvp_req_layout(KVP_OP_GET, 8 + 16 * 3, NULL, 4096, 1, &meta, &data), 1);
	kvp_batch_encode(p8, 3);
	CHECK_EQ(kvp_req_layout(KVP_OP_GET, 8 + 16 * 3, p8, 4096, 1, &meta, &data), 0);
	CHECK_EQ(meta, 8 + 16 * 3);
	CHECK_EQ(data, 0);
	CHECK_EQ(kvp_req_layout(KVP_OP_GET, 8 + 16 * 4, p8, 4096, 1, &meta, &data), -EPROTO);
	CHECK_EQ(kvp_req_layout(KVP_OP_PUT, 8 + 24 * 3 + 3 * 4096, p8, 4096, 1, &meta, &data), 0);
	CHECK_EQ(meta, 8 + 24 * 3);
	CHECK_EQ(data, 3 * 4096);
	CHECK_EQ(kvp_req_layout(KVP_OP_PUT, 8 + 24 * 3 + 2 * 4096, p8, 4096, 1, &meta, &data), -EPROTO);
	CHECK_EQ(kvp_req_layout(KVP_OP_PUT, 8 + 24 * 3 + 3 * 4096 + 1, p8, 4096, 1, &meta, &data), -EPROTO);
	kvp_batch_encode(p8, 0);
	CHECK_EQ(kvp_req_layout(KVP_OP_GET, 8, p8, 4096, 1, &meta, &data), -EPROTO);
	kvp_batch_encode(p8, KVP_MAX_BATCH + 1);
	CHECK_EQ(kvp_req_layout(KVP_OP_LOOKUP, 8 + 16 * (KVP_MAX_BATCH + 1), p8, 4096, 1, &meta, &data), -EPROTO);
	kvp_batch_encode(p8, 1);
	p8[4] = 1;   /* reserved word */
	CHECK_EQ(kvp_req_layout(KVP_OP_GET, 8 + 16, p8, 4096, 1, &meta, &data), -EPROTO);
	/* n * block_bytes that would overflow 32 bits is still refused exactly. */
	kvp_batch_encode(p8, 4096);
	CHECK_EQ(kvp_req_layout(KVP_OP_PUT, 0xfffffff0u, p8, 1u << 20, 1, &meta, &data), -EPROTO);
	/* Version 2: one check value per layer; none can be sized before HELLO. */
	kvp_batch_encode(p8, 3);
	CHECK_EQ(kvp_req_layout(KVP_OP_PUT, 8 + 40 * 3 + 3 * 4096, p8, 4096, 3, &meta, &data), 0);
	CHECK_EQ(meta, 8 + 40 * 3);
	CHECK_EQ(kvp_req_layout(KVP_OP_GRANT, 8 + 40 * 3, p8, 4096, 3, &meta, &data), 0);
	CHECK_EQ(kvp_req_layout(KVP_OP_GRANT, 8 + 24 * 3, p8, 4096, 3, &meta, &data), -EPROTO);
	CHECK_EQ(kvp_req_layout(KVP_OP_PUT, 8 + 16 * 3 + 3 * 4096, p8, 4096, 0, &meta, &data), -EPROTO);
	/* Metadata beyond KVP_MAX_META is refused before anything is allocated. */
	kvp_batch_encode(p8, 4096);
	CHECK_EQ(kvp_req_layout(KVP_OP_GRANT, 8 + 4096 * (size_t)KVP_ENT_PUT(64), p8, 4096, 64,
				&meta, &data), -EPROTO);
	CHECK_EQ(kvp_batch_max(KVP_ENT_PUT(64)), (KVP_MAX_META - 8) / KVP_ENT_PUT(64));
	CHECK_EQ(kvp_batch_max(KVP_ENT_HASH), KVP_MAX_BATCH);
}

static void t_hello(void)
{
	struct kvp_hello h = {
		.ver_min = 1, .ver_max = 1,
		.geom = { 8, 2, 16, 4, 128, KV_DTYPE_FP16 },
		.ns_root = { 5, 6 },
	}, d;
	uint8_t b[KVP_HELLO_BYTES];

	h.block_bytes = (uint32_t)kv_geometry_block_bytes(&h.geom);
	strcpy(h.name, "unit");
	CHECK_EQ(kvp_hello_encode(b, &h), KVP_HELLO_BYTES);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), 0);
	CHECK(memcmp(&d.geom, &h.geom, sizeof(h.geom)) == 0);
	CHECK(kv_hash_eq(d.ns_root, h.ns_root));
	CHECK(strcmp(d.name, "unit") == 0);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b) - 1, &d), -EPROTO);

	struct kvp_hello bad = h;
	bad.block_bytes++;
	kvp_hello_encode(b, &bad);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), -EPROTO);   /* block bytes disagree */
	bad = h;
	bad.geom.planes = 3;
	kvp_hello_encode(b, &bad);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), -EPROTO);   /* bad geometry */
	bad = h;
	bad.ns_root = (kv_hash){ 0, 0 };
	kvp_hello_encode(b, &bad);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), -EPROTO);   /* no namespace */
	bad = h;
	bad.flags = 1u << 7;
	kvp_hello_encode(b, &bad);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), -EPROTO);   /* unknown flag */
	bad = h;
	bad.ver_min = 2;
	kvp_hello_encode(b, &bad);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), -EPROTO);   /* min > max */
	kvp_hello_encode(b, &h);
	b[52 + KVP_NAME_BYTES - 1] = 'x';
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), -EPROTO);   /* name not terminated */
	kvp_hello_encode(b, &h);
	b[52] = '\n';
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), -EPROTO);   /* control character */
	/* Admin hello: no geometry needed. */
	struct kvp_hello adm = { .ver_min = 1, .ver_max = 1, .flags = KVP_HELLO_ADMIN };
	kvp_hello_encode(b, &adm);
	CHECK_EQ(kvp_hello_decode(b, sizeof(b), &d), 0);

	struct kvp_hello_reply r = { .version = KVP_VERSION, .flags = KVP_SRV_AUTH, .capacity = 77,
				     .max_batch = 64, .max_data = 1 << 20 }, rd;
	uint8_t rb[KVP_HELLO_REPLY_BYTES];
	memset(r.nonce, 0x5a, sizeof(r.nonce));
	kvp_hello_reply_encode(rb, &r);
	CHECK_EQ(kvp_hello_reply_decode(rb, sizeof(rb), &rd), 0);
	CHECK_EQ(rd.capacity, 77);
	CHECK(memcmp(rd.nonce, r.nonce, sizeof(r.nonce)) == 0);
	r.max_batch = KVP_MAX_BATCH + 1;
	kvp_hello_reply_encode(rb, &r);
	CHECK_EQ(kvp_hello_reply_decode(rb, sizeof(rb), &rd), -EPROTO);
}

static void t_rdma_and_auth(void)
{
	struct kvp_rdma r = { .qpn = 0x123, .psn = 0x456, .lid = 0, .mtu = 3, .gid_index = 1,
			      .addr = 0x7f0000001000ull, .rkey = 0xabcdef, .max_msg = 8 << 20 }, d;
	uint8_t b[KVP_RDMA_BYTES];
	memset(r.gid, 0xfe, 16);
	kvp_rdma_encode(b, &r);
	CHECK_EQ(kvp_rdma_decode(b, sizeof(b), &d), 0);
	CHECK(d.addr == r.addr && d.rkey == r.rkey && d.qpn == r.qpn);
	r.qpn = 1u << 24;
	kvp_rdma_encode(b, &r);
	CHECK_EQ(kvp_rdma_decode(b, sizeof(b), &d), -EPROTO);
	r.qpn = 5;
	r.mtu = 9;
	kvp_rdma_encode(b, &r);
	CHECK_EQ(kvp_rdma_decode(b, sizeof(b), &d), -EPROTO);

	/* HMAC-SHA256 binds secret, nonce, namespace and geometry. */
	uint8_t nonce[KVP_NONCE_BYTES] = { 1 }, m1[32], m2[32];
	struct kv_geometry g = { 8, 2, 16, 4, 128, KV_DTYPE_FP16 };
	kv_hash ns = { 1, 2 };
	/* Pinned: the bytes OpenSSL's HMAC() gave before libkv moved to nettle,
	 * so clients and servers of either build still agree. */
	static const uint8_t pinned[32] = {
		0xa6, 0x3d, 0x3b, 0x13, 0xbc, 0xf4, 0x8c, 0xcf, 0x89, 0x3d, 0x02, 0x79,
		0x28, 0xbf, 0x2f, 0x4a, 0x34, 0xab, 0x32, 0x9c, 0x05, 0xd9, 0x39, 0xeb,
		0x81, 0x0f, 0xfa, 0x4b, 0xa6, 0x33, 0xfd, 0x08,
	};
	CHECK_EQ(kvp_auth_mac("secret", 6, nonce, ns, &g, m1), 0);
	CHECK(memcmp(m1, pinned, 32) == 0);
	CHECK_EQ(kvp_auth_mac("secret", 6, nonce, ns, &g, m2), 0);
	CHECK(memcmp(m1, m2, 32) == 0);
	CHECK_EQ(kvp_auth_mac("secreT", 6, nonce, ns, &g, m2), 0);
	CHECK(memcmp(m1, m2, 32) != 0);
	nonce[0] = 2;
	CHECK_EQ(kvp_auth_mac("secret", 6, nonce, ns, &g, m2), 0);
	CHECK(memcmp(m1, m2, 32) != 0);
	nonce[0] = 1;
	ns.lo = 3;
	CHECK_EQ(kvp_auth_mac("secret", 6, nonce, ns, &g, m2), 0);
	CHECK(memcmp(m1, m2, 32) != 0);
}

int main(void)
{
	t_header();
	t_layout();
	t_hello();
	t_rdma_and_auth();
	printf("ok\n");
	return 0;
}
