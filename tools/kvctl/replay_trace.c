// SPDX-License-Identifier: MIT
/*
 * replay_trace.c - the request traces `kvctl replay --trace` reads: the
 * Mooncake FAST'25 release's JSONL, one request a line:
 *
 *   {"timestamp": 27482, "input_length": 6955, "output_length": 52,
 *    "hash_ids": [46, 47, 48, ...]}
 *
 * timestamp: arrival in ms; input_length, output_length: tokens; hash_ids:
 * one id per block of the prompt, prefix-chained in the trace's own id space
 * (two requests share block i exactly when their first i+1 ids are equal).
 *
 * Naming: id i of a request is the block [i*bt, (i+1)*bt) of its prompt (bt:
 * --block-tokens). Only full blocks are named ((i+1)*bt <= input_length), as
 * libkv names only full blocks; a trailing partial block is neither named nor
 * stored. The names chain through kv_hash_chain with each id as two uint32
 * "tokens" (its little-endian uint64) and block_tokens 2:
 *
 *   h[i] = XXH3-128(h[i-1] || id_i as LE uint64),  h[-1] = namespace root
 *
 * so equal id prefixes give equal names, and an id reused under another
 * prefix gives another name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

/* ------------------------------------------------------------------ a JSON line */

struct jp {
	const char *s, *p;
	const char *err;    /* what was wrong, at p */
};

static void jp_ws(struct jp *j)
{
	while (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')
		j->p++;
}

static int jp_fail(struct jp *j, const char *what)
{
	if (!j->err)
		j->err = what;
	return -EINVAL;
}

static int jp_string(struct jp *j, char *out, size_t len)
{
	size_t n = 0;

	if (*j->p != '"')
		return jp_fail(j, "expected a string");
	j->p++;
	while (*j->p != '"') {
		char ch = *j->p;

		if (!ch || ch == '\n')
			return jp_fail(j, "unterminated string");
		if (ch == '\\') {
			j->p++;
			if (!*j->p)
				return jp_fail(j, "unterminated string");
			if (*j->p == 'u') {
				for (int k = 1; k <= 4; k++)
					if (!strchr("0123456789abcdefABCDEF", j->p[k]) || !j->p[k])
						return jp_fail(j, "bad \\u escape");
				j->p += 4;
				ch = '?';
			} else if (strchr("\"\\/bfnrt", *j->p)) {
				ch = *j->p;
			} else {
				return jp_fail(j, "bad escape in a string");
			}
		}
		if (out && n + 1 < len)
			out[n++] = ch;
		j->p++;
	}
	j->p++;
	if (out)
		out[n < len ? n : len - 1] = 0;
	return 0;
}

/* A number: its text must be JSON's; *v its value. */
static int jp_number(struct jp *j, double *v)
{
	const char *q = j->p;
	char *end;

	if (*q == '-')
		q++;
	if (*q < '0' || *q > '9')
		return jp_fail(j, "expected a number");
	errno = 0;
	*v = strtod(j->p, &end);
	if (errno || end == j->p)
		return jp_fail(j, "number out of range");
	j->p = end;
	return 0;
}

/* A non-negative integer that fits in uint64. */
static int jp_uint(struct jp *j, uint64_t *v)
{
	char *end;

	if (*j->p < '0' || *j->p > '9')
		return jp_fail(j, "expected a non-negative integer");
	errno = 0;
	*v = strtoull(j->p, &end, 10);
	if (errno)
		return jp_fail(j, "integer out of range");
	if (*end == '.' || *end == 'e' || *end == 'E')
		return jp_fail(j, "expected an integer");
	j->p = end;
	return 0;
}

static int jp_skip(struct jp *j, int depth)
{
	double d;

	jp_ws(j);
	if (depth > 32)
		return jp_fail(j, "nested too deep");
	switch (*j->p) {
	case '"':
		return jp_string(j, NULL, 0);
	case '{':
	case '[': {
		char close = *j->p == '{' ? '}' : ']';

		j->p++;
		jp_ws(j);
		if (*j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (close == '}') {
				jp_ws(j);
				if (jp_string(j, NULL, 0))
					return -EINVAL;
				jp_ws(j);
				if (*j->p != ':')
					return jp_fail(j, "expected ':'");
				j->p++;
			}
			if (jp_skip(j, depth + 1))
				return -EINVAL;
			jp_ws(j);
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p != close)
				return jp_fail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
			j->p++;
			return 0;
		}
	}
	default:
		if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "null", 4)) {
			j->p += 4;
			return 0;
		}
		if (!strncmp(j->p, "false", 5)) {
			j->p += 5;
			return 0;
		}
		return jp_number(j, &d);
	}
}

/* ------------------------------------------------------------------ the trace */

static int ids_push(struct replay_trace *t, size_t *cap, uint64_t id)
{
	if (t->nids == *cap) {
		size_t c = *cap ? *cap * 2 : 4096;
		uint64_t *p = realloc(t->ids, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->ids = p;
		*cap = c;
	}
	t->ids[t->nids++] = id;
	return 0;
}

/* Parse one request line into r (ids appended to t->ids). */
static int parse_line(struct replay_trace *t, size_t *idcap, struct jp *j,
		      struct replay_trace_req *r)
{
	bool have_ts = false, have_in = false, have_ids = false;
	char key[64];

	memset(r, 0, sizeof(*r));
	r->first = t->nids;
	jp_ws(j);
	if (*j->p != '{')
		return jp_fail(j, "expected a JSON object ('{')");
	j->p++;
	jp_ws(j);
	if (*j->p == '}')
		return jp_fail(j, "empty object: timestamp, input_length and hash_ids are needed");
	for (;;) {
		jp_ws(j);
		if (jp_string(j, key, sizeof(key)))
			return -EINVAL;
		jp_ws(j);
		if (*j->p != ':')
			return jp_fail(j, "expected ':'");
		j->p++;
		jp_ws(j);
		if (!strcmp(key, "timestamp")) {
			if (jp_number(j, &r->ts_ms))
				return -EINVAL;
			if (!(r->ts_ms >= 0))
				return jp_fail(j, "timestamp must be >= 0");
			have_ts = true;
		} else if (!strcmp(key, "input_length")) {
			if (jp_uint(j, &r->input_len))
				return -EINVAL;
			if (r->input_len > UINT32_MAX)
				return jp_fail(j, "input_length too large");
			have_in = true;
		} else if (!strcmp(key, "output_length")) {
			if (jp_uint(j, &r->output_len))
				return -EINVAL;
		} else if (!strcmp(key, "hash_ids")) {
			if (have_ids)
				return jp_fail(j, "hash_ids given twice");
			if (*j->p != '[')
				return jp_fail(j, "hash_ids must be an array");
			j->p++;
			jp_ws(j);
			if (*j->p == ']') {
				j->p++;
			} else {
				for (;;) {
					uint64_t id;

					jp_ws(j);
					if (jp_uint(j, &id))
						return -EINVAL;
					if (ids_push(t, idcap, id))
						return -ENOMEM;
					jp_ws(j);
					if (*j->p == ',') {
						j->p++;
						continue;
					}
					if (*j->p != ']')
						return jp_fail(j, "expected ',' or ']' in hash_ids");
					j->p++;
					break;
				}
			}
			if (t->nids - r->first > UINT32_MAX)
				return jp_fail(j, "too many hash_ids");
			r->nids = (uint32_t)(t->nids - r->first);
			have_ids = true;
		} else if (jp_skip(j, 0)) {
			return -EINVAL;
		}
		jp_ws(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p != '}')
			return jp_fail(j, "expected ',' or '}'");
		j->p++;
		break;
	}
	jp_ws(j);
	if (*j->p)
		return jp_fail(j, "text after the object");
	if (!have_ts)
		return jp_fail(j, "no \"timestamp\"");
	if (!have_in)
		return jp_fail(j, "no \"input_length\"");
	if (!have_ids)
		return jp_fail(j, "no \"hash_ids\"");
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct replay_trace_req *x = a, *y = b;

	if (x->ts_ms != y->ts_ms)
		return x->ts_ms < y->ts_ms ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;   /* stable: file order */
}

int replay_trace_load(const char *path, uint32_t block_tokens, struct replay_trace *t)
{
	FILE *f;
	char *line = NULL;
	size_t linecap = 0, cap = 0, idcap = 0;
	ssize_t len;
	uint32_t lineno = 0;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	t->path = path;
	t->block_tokens = block_tokens;
	f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!f) {
		ret = -errno;
		fprintf(stderr, "kvctl: replay: cannot open trace %s: %s\n", path, strerror(errno));
		return ret;
	}
	while ((len = getline(&line, &linecap, f)) >= 0) {
		struct replay_trace_req *r;
		struct jp j;

		lineno++;
		if (strlen(line) != (size_t)len) {
			fprintf(stderr, "kvctl: replay: %s:%u: a NUL byte in the line\n", path, lineno);
			ret = -EINVAL;
			break;
		}
		j = (struct jp){ .s = line, .p = line };
		jp_ws(&j);
		if (!*j.p)
			continue;   /* blank line */
		if (t->n == cap) {
			size_t c = cap ? cap * 2 : 1024;
			struct replay_trace_req *p = realloc(t->req, c * sizeof(*p));

			if (!p) {
				ret = -ENOMEM;
				break;
			}
			t->req = p;
			cap = c;
		}
		r = &t->req[t->n];
		ret = parse_line(t, &idcap, &j, r);
		if (ret == -ENOMEM)
			break;
		if (ret) {
			fprintf(stderr, "kvctl: replay: %s:%u:%ld: %s\n", path, lineno,
				(long)(j.p - j.s) + 1, j.err);
			break;
		}
		r->line = lineno;
		r->nblk = (uint32_t)(r->input_len / block_tokens < r->nids ?
				     r->input_len / block_tokens : r->nids);
		t->n++;
	}
	if (!ret && ferror(f)) {
		ret = -EIO;
		fprintf(stderr, "kvctl: replay: cannot read trace %s: %s\n", path, strerror(errno));
	}
	if (ret == -ENOMEM)
		fprintf(stderr, "kvctl: replay: trace %s: out of memory\n", path);
	if (!ret && !t->n) {
		fprintf(stderr, "kvctl: replay: %s: no requests in the trace\n", path);
		ret = -EINVAL;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	if (ret) {
		replay_trace_free(t);
		return ret;
	}
	qsort(t->req, t->n, sizeof(*t->req), by_time);
	return 0;
}

void replay_trace_limit(struct replay_trace *t, size_t n)
{
	if (n < t->n)
		t->n = n;
	t->input_tokens = t->max_blocks = t->partial = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct replay_trace_req *r = &t->req[i];

		t->input_tokens += r->input_len;
		if (r->nblk > t->max_blocks)
			t->max_blocks = r->nblk;
		if (r->nblk < r->nids)
			t->partial++;
	}
}

size_t replay_trace_names(const struct replay_trace *t, kv_hash root, size_t i,
			  uint32_t *words, kv_hash *out)
{
	const struct replay_trace_req *r = &t->req[i];

	for (uint32_t k = 0; k < r->nblk; k++) {
		uint64_t id = t->ids[r->first + k];

		words[2 * k] = (uint32_t)id;
		words[2 * k + 1] = (uint32_t)(id >> 32);
	}
	return r->nblk ? kv_hash_chain(root, words, 2 * (size_t)r->nblk, 2, out) : 0;
}

int replay_trace_unbounded(struct replay_trace *t, kv_hash root)
{
	struct kvr_hset seen = { 0 };
	uint32_t *words = malloc((2 * (size_t)t->max_blocks + 2) * sizeof(*words));
	kv_hash *h = malloc(((size_t)t->max_blocks + 1) * sizeof(*h));
	int ret = 0;

	t->unbounded_tokens = 0;
	if (!words || !h) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < t->n && !ret; i++) {
		size_t n = replay_trace_names(t, root, i, words, h), k = 0;
		uint64_t tok;

		while (k < n && kvr_hset_has(&seen, h[k]))
			k++;
		tok = (uint64_t)k * t->block_tokens;
		t->unbounded_tokens += tok < t->req[i].input_len ? tok : t->req[i].input_len;
		for (size_t b = k; b < n && !ret; b++)
			ret = kvr_hset_add(&seen, h[b]);
	}
out:
	kvr_hset_free(&seen);
	free(words);
	free(h);
	return ret;
}

void replay_trace_free(struct replay_trace *t)
{
	free(t->req);
	free(t->ids);
	t->req = NULL;
	t->ids = NULL;
	t->n = t->nids = 0;
}
