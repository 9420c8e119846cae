// SPDX-License-Identifier: MIT
/*
 * test_api.c - queues: create/open/close/unlink, attributes, names, space,
 * send/recv with every documented error, timeouts, FIFO order, error
 * strings and the spin budget.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "layout.h"		/* test_open_eproto_corrupt_record only */

static void send_str(shmq *q, const char *s)
{
	t_assert_err(shmq_send(q, s, strlen(s), 0), 0);
}

static void recv_str(shmq *q, const char *s)
{
	char buf[512];
	ssize_t n = shmq_recv(q, buf, sizeof(buf), 0);

	t_assert_err(n, (long long)strlen(s));
	assert_memory_equal(buf, s, strlen(s));
}

/* ---- create and attributes -------------------------------------------- */

static void test_create_defaults(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr zero = { 0 }, a;
	shmq *q;

	t_assert_err(shmq_create(fix->seg, "null", NULL), 0);
	t_assert_err(shmq_open(fix->seg, "null", &q), 0);
	memset(&a, 0xff, sizeof(a));
	t_assert_err(shmq_get_attr(q, &a), 0);
	assert_int_equal(a.capacity, SHMQ_DEFAULT_CAPACITY);
	assert_int_equal(a.capacity, 1024);
	assert_int_equal(a.msg_size, SHMQ_DEFAULT_MSG_SIZE);
	assert_int_equal(a.msg_size, 256);
	assert_int_equal(a.flags, 0);
	shmq_close(q);

	t_assert_err(shmq_create(fix->seg, "zero", &zero), 0);
	t_assert_err(shmq_open(fix->seg, "zero", &q), 0);
	t_assert_err(shmq_get_attr(q, &a), 0);
	assert_int_equal(a.capacity, 1024);
	assert_int_equal(a.msg_size, 256);
	shmq_close(q);
}

static void test_create_capacity_rounding(void **state)
{
	static const uint32_t in[]  = { 1, 2, 3, 5, 8, 9, 17, 1000, 1025 };
	static const uint32_t out[] = { 2, 2, 4, 8, 8, 16, 32, 1024, 2048 };
	struct t_fix *fix = *state;
	struct shmq_attr a;
	char name[32];
	shmq *q;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		snprintf(name, sizeof(name), "cap%u", in[i]);
		q = t_queue(fix->seg, name, in[i], 8);
		t_assert_err(shmq_get_attr(q, &a), 0);
		if (a.capacity != out[i])
			print_error("capacity %u\n", in[i]);
		t_assert_err(a.capacity, out[i]);
		assert_int_equal(a.msg_size, 8);
		shmq_close(q);
	}
	/* msg_size is kept as given: it is the largest payload. */
	q = t_queue(fix->seg, "ms100", 4, 100);
	t_assert_err(shmq_get_attr(q, &a), 0);
	assert_int_equal(a.msg_size, 100);
	shmq_close(q);
}

static void test_create_capacity_is_exact(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 5, 16);
	char buf[16];
	int i;

	/* Rounded to 8: exactly 8 messages fit, the ninth would block. */
	for (i = 0; i < 8; i++)
		t_assert_err(shmq_send(q, &i, sizeof(i), 0), 0);
	t_assert_err(shmq_send(q, &i, sizeof(i), 0), -EAGAIN);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), sizeof(int));
	t_assert_err(shmq_send(q, &i, sizeof(i), 0), 0);
	t_assert_err(shmq_send(q, &i, sizeof(i), 0), -EAGAIN);
	shmq_close(q);
}

static void test_create_bad_attr(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a;
	shmq *q;

	a = (struct shmq_attr){ .capacity = 4, .msg_size = 8, .flags = 0x10 };
	t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);
	a.flags = 0x80000000u;
	t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);

	a = (struct shmq_attr){ .capacity = SHMQ_MAX_CAPACITY + 1 };
	t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);
	a = (struct shmq_attr){ .capacity = UINT32_MAX };
	t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);
	a = (struct shmq_attr){ .msg_size = SHMQ_MAX_MSG_SIZE + 1 };
	t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);
	a = (struct shmq_attr){ .msg_size = UINT32_MAX };
	t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);

	/* Nothing was created by the failures. */
	t_assert_err(shmq_open(fix->seg, "q", &q), -ENOENT);
	t_assert_err(shmq_create(fix->seg, "q", NULL), 0);
	t_assert_err(shmq_unlink(fix->seg, "q"), 0);
}

static void test_create_eexist(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 4, .msg_size = 8 };
	struct shmq_attr got;
	shmq *q;

	t_assert_err(shmq_create(fix->seg, "q", NULL), 0);
	t_assert_err(shmq_create(fix->seg, "q", NULL), -EEXIST);
	t_assert_err(shmq_create(fix->seg, "q", &a), -EEXIST);
	/* The first queue is unchanged. */
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	t_assert_err(shmq_get_attr(q, &got), 0);
	assert_int_equal(got.capacity, 1024);
	shmq_close(q);
}

static void test_open_unlink_enoent(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = NULL;

	t_assert_err(shmq_open(fix->seg, "missing", &q), -ENOENT);
	t_assert_err(shmq_unlink(fix->seg, "missing"), -ENOENT);
	t_assert_err(shmq_create(fix->seg, "there", NULL), 0);
	t_assert_err(shmq_open(fix->seg, "ther", &q), -ENOENT);
	t_assert_err(shmq_open(fix->seg, "there2", &q), -ENOENT);
	t_assert_err(shmq_unlink(fix->seg, "there"), 0);
	t_assert_err(shmq_unlink(fix->seg, "there"), -ENOENT);
	t_assert_err(shmq_open(fix->seg, "there", &q), -ENOENT);
}

/* ---- names ------------------------------------------------------------ */

static void try_bad_name(struct t_fix *fix, const char *name, int expected)
{
	shmq *q = NULL;
	int rc1, rc2, rc3;

	rc1 = shmq_create(fix->seg, name, NULL);
	rc2 = shmq_open(fix->seg, name, &q);
	if (rc2 == 0)
		shmq_close(q);
	rc3 = shmq_unlink(fix->seg, name);
	if (rc1 != expected || rc2 != expected || rc3 != expected)
		print_error("queue name \"%s\"\n", name ? name : "(NULL)");
	t_assert_err(rc1, expected);
	t_assert_err(rc2, expected);
	t_assert_err(rc3, expected);
}

static void test_names_invalid(void **state)
{
	static const char *const bad[] = {
		"", "a/b", "/", "a b", " ", "tab\tx", "nl\n", "\xc3\xa9",
		"a:b", "a*", "a\\b", "\x7f", "q\x01", ".", "..",
	};
	struct t_fix *fix = *state;
	char long_name[300];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		try_bad_name(fix, bad[i], -EINVAL);
	try_bad_name(fix, NULL, -EINVAL);

	memset(long_name, 'q', sizeof(long_name));
	long_name[64] = '\0';
	try_bad_name(fix, long_name, -ENAMETOOLONG);
	long_name[64] = 'q';
	long_name[299] = '\0';
	try_bad_name(fix, long_name, -ENAMETOOLONG);
}

static void test_names_valid(void **state)
{
	static const char *const good[] = {
		"a", "...", "-", "_", "A.z-0_9", ".a", "a..b", "UPPER", "0",
	};
	struct t_fix *fix = *state;
	char name63[64];
	size_t i;
	shmq *q;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		t_assert_err(shmq_create(fix->seg, good[i], NULL), 0);
		t_assert_err(shmq_open(fix->seg, good[i], &q), 0);
		shmq_close(q);
		t_assert_err(shmq_unlink(fix->seg, good[i]), 0);
	}
	memset(name63, 'n', 63);
	name63[63] = '\0';
	t_assert_err(shmq_create(fix->seg, name63, NULL), 0);
	t_assert_err(shmq_open(fix->seg, name63, &q), 0);
	send_str(q, "63");
	recv_str(q, "63");
	shmq_close(q);
	/* A 62-byte prefix is another name. */
	name63[62] = '\0';
	t_assert_err(shmq_open(fix->seg, name63, &q), -ENOENT);
	name63[62] = 'n';
	t_assert_err(shmq_unlink(fix->seg, name63), 0);
}

/* ---- space ------------------------------------------------------------ */

static void test_create_enospc_memory(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 64, .msg_size = 8192 };
	char name[32];
	shmq *q;
	int i, rc = 0;

	/* About 512 KiB each in a 4 MiB segment. */
	for (i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "big%d", i);
		rc = shmq_create(fix->seg, name, &a);
		if (rc)
			break;
	}
	t_assert_err(rc, -ENOSPC);
	assert_true(i >= 1);
	assert_true(i < 64);
	/* The failure created nothing. */
	t_assert_err(shmq_open(fix->seg, name, &q), -ENOENT);

	/* Unlinked but still open: its memory is still in use. */
	t_assert_err(shmq_open(fix->seg, "big0", &q), 0);
	t_assert_err(shmq_unlink(fix->seg, "big0"), 0);
	t_assert_err(shmq_create(fix->seg, "again", &a), -ENOSPC);
	send_str(q, "still usable");
	recv_str(q, "still usable");
	/* The last handle frees it. */
	shmq_close(q);
	t_assert_err(shmq_create(fix->seg, "again", &a), 0);
	t_assert_err(shmq_create(fix->seg, "again2", &a), -ENOSPC);

	/* An unlinked queue without handles is freed at once. */
	t_assert_err(shmq_unlink(fix->seg, "big1"), 0);
	t_assert_err(shmq_create(fix->seg, "again2", &a), 0);
	t_assert_err(shmq_open(fix->seg, "again2", &q), 0);
	send_str(q, "fits");
	recv_str(q, "fits");
	shmq_close(q);
}

static void test_create_enospc_too_big(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 1024, .msg_size = 65536 };
	shmq *q;

	/* 64 MiB of slots can never fit a 4 MiB segment. */
	t_assert_err(shmq_create(fix->seg, "huge", &a), -ENOSPC);
	t_assert_err(shmq_open(fix->seg, "huge", &q), -ENOENT);
}

static void test_create_enospc_directory(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr sa = { .size = T_SEG_SIZE, .max_queues = 4 };
	struct shmq_attr a = { .capacity = 2, .msg_size = 8 };
	const char *name = t_segname();
	shmq_seg *seg;
	char qn[16];
	shmq *q;
	int i;

	(void)fix;
	t_assert_err(shmq_seg_create(name, &sa, &seg), 0);
	for (i = 0; i < 4; i++) {
		snprintf(qn, sizeof(qn), "q%d", i);
		t_assert_err(shmq_create(seg, qn, &a), 0);
	}
	t_assert_err(shmq_create(seg, "q4", &a), -ENOSPC);
	t_assert_err(shmq_open(seg, "q4", &q), -ENOENT);
	t_assert_err(shmq_unlink(seg, "q1"), 0);
	t_assert_err(shmq_create(seg, "q4", &a), 0);
	t_assert_err(shmq_create(seg, "q5", &a), -ENOSPC);
	t_assert_err(shmq_open(seg, "q4", &q), 0);
	send_str(q, "x");
	recv_str(q, "x");
	shmq_close(q);
	shmq_seg_close(seg);
}

/* ---- a corrupt queue record ------------------------------------------- */

/*
 * The one test that needs the byte map (shm/layout.h): it damages a
 * directory entry in place, as a broken or hostile peer could, while we
 * are attached.  Opening that queue must fail with -EPROTO, and a fresh
 * attachment, which validates every record, too.
 */
static off_t find_entry(int fd, const char *qname)
{
	struct seg_hdr hdr;
	struct dir_entry e;
	uint32_t i;

	assert_int_equal(pread(fd, &hdr, sizeof(hdr), 0), sizeof(hdr));
	for (i = 0; i < hdr.max_queues; i++) {
		off_t off = (off_t)(hdr.dir_off + (uint64_t)i * sizeof(e));

		assert_int_equal(pread(fd, &e, sizeof(e), off), sizeof(e));
		if (e.state != DIR_FREE && !strcmp(e.name, qname))
			return off;
	}
	fail_msg("no directory entry for %s", qname);
	return -1;
}

static void test_open_eproto_corrupt_record(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 8, .msg_size = 16 };
	uint32_t cap, bad = 3;		/* not a power of two */
	char path[128];
	shmq_seg *s;
	shmq *q;
	off_t off;
	int fd;

	t_assert_err(shmq_create(fix->seg, "victim", &a), 0);
	fd = open(t_shm_path(path, sizeof(path), fix->name), O_RDWR);
	assert_true(fd >= 0);
	off = find_entry(fd, "victim") + offsetof(struct dir_entry, capacity);
	assert_int_equal(pread(fd, &cap, 4, off), 4);
	assert_int_equal(cap, 8);
	assert_int_equal(pwrite(fd, &bad, 4, off), 4);

	t_assert_err(shmq_open(fix->seg, "victim", &q), -EPROTO);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);

	/* Repaired, it opens again. */
	assert_int_equal(pwrite(fd, &cap, 4, off), 4);
	close(fd);
	t_assert_err(shmq_open(fix->seg, "victim", &q), 0);
	send_str(q, "ok");
	recv_str(q, "ok");
	shmq_close(q);
	t_assert_err(shmq_seg_open(fix->name, &s), 0);
	shmq_seg_close(s);
}

/* ---- unlink while open ------------------------------------------------ */

static void test_unlink_while_open(void **state)
{
	struct t_fix *fix = *state;
	shmq *h1, *h1b, *h2, *tmp = NULL;

	h1 = t_queue(fix->seg, "q", 8, 32);
	t_assert_err(shmq_open(fix->seg, "q", &h1b), 0);
	send_str(h1, "old");
	t_assert_err(shmq_unlink(fix->seg, "q"), 0);

	/* The name is gone at once... */
	t_assert_err(shmq_open(fix->seg, "q", &tmp), -ENOENT);
	t_assert_err(shmq_unlink(fix->seg, "q"), -ENOENT);
	/* ...the handles keep working, with what the queue held. */
	recv_str(h1b, "old");
	send_str(h1b, "still");
	recv_str(h1, "still");

	/* A new queue may take the name; it is independent. */
	h2 = t_queue(fix->seg, "q", 2, 8);
	t_expect_empty(h2);
	send_str(h1, "to old");
	t_expect_empty(h2);
	send_str(h2, "to new");
	recv_str(h1b, "to old");
	t_expect_empty(h1);
	recv_str(h2, "to new");
	{
		struct shmq_attr a;

		t_assert_err(shmq_get_attr(h1, &a), 0);
		assert_int_equal(a.capacity, 8);
		assert_int_equal(a.msg_size, 32);
		t_assert_err(shmq_get_attr(h2, &a), 0);
		assert_int_equal(a.capacity, 2);
		assert_int_equal(a.msg_size, 8);
	}
	shmq_close(h1);
	send_str(h1b, "last handle");
	recv_str(h1b, "last handle");
	shmq_close(h1b);
	shmq_close(h2);
	t_assert_err(shmq_unlink(fix->seg, "q"), 0);
	t_assert_err(shmq_unlink(fix->seg, "q"), -ENOENT);
}

/* ---- send and receive ------------------------------------------------- */

static void test_send_recv_roundtrip(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 0, 0), *r;
	unsigned char big[256], out[300];
	size_t i;

	t_assert_err(shmq_open(fix->seg, "q", &r), 0);
	send_str(q, "hello");
	recv_str(r, "hello");
	t_expect_empty(q);
	t_expect_empty(r);

	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 + 1);
	t_assert_err(shmq_send(r, big, sizeof(big), 0), 0);
	memset(out, 0, sizeof(out));
	t_assert_err(shmq_recv(q, out, sizeof(out), 0), sizeof(big));
	assert_memory_equal(out, big, sizeof(big));

	/* Blocking calls that need not block return at once. */
	t_assert_err(shmq_send(q, "f", 1, SHMQ_FOREVER), 0);
	t_assert_err(shmq_recv(r, out, sizeof(out), SHMQ_FOREVER), 1);
	t_assert_err(shmq_send(q, "t", 1, 1000 * T_MS), 0);
	t_assert_err(shmq_recv(r, out, sizeof(out), 1000 * T_MS), 1);
	shmq_close(r);
	shmq_close(q);
}

static void test_recv_empty_eagain(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 16);
	char buf[16];

	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
	t_assert_err(shmq_recv(q, NULL, 0, 0), -EAGAIN);
	send_str(q, "x");
	recv_str(q, "x");
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
	shmq_close(q);
}

static void test_send_full_eagain(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 2, 16);

	send_str(q, "1");
	send_str(q, "2");
	t_assert_err(shmq_send(q, "3", 1, 0), -EAGAIN);
	t_assert_err(shmq_send(q, NULL, 0, 0), -EAGAIN);
	recv_str(q, "1");
	send_str(q, "3");
	t_assert_err(shmq_send(q, "4", 1, 0), -EAGAIN);
	recv_str(q, "2");
	recv_str(q, "3");
	t_expect_empty(q);
	shmq_close(q);
}

static void test_recv_timeout(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 16);
	char buf[16];

	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 20 * T_MS), 20 * T_MS);
	/* A tiny timeout still times out rather than failing otherwise. */
	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 1), 1);
	shmq_close(q);
}

static void test_send_timeout(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 2, 16);

	send_str(q, "1");
	send_str(q, "2");
	t_assert_timeout(shmq_send(q, "3", 1, 20 * T_MS), 20 * T_MS);
	t_assert_timeout(shmq_send(q, "3", 1, 1), 1);
	/* Nothing was sent by the failures. */
	recv_str(q, "1");
	recv_str(q, "2");
	t_expect_empty(q);
	shmq_close(q);
}

static void test_timeout_invalid(void **state)
{
	static const int64_t bad[] = { -2, -3, -1000000, INT64_MIN };
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 2, 16);
	char buf[16];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Empty queue: recv would block, send would not. */
		t_assert_err(shmq_recv(q, buf, sizeof(buf), bad[i]), -EINVAL);
		t_assert_err(shmq_send(q, "a", 1, bad[i]), -EINVAL);
	}
	t_expect_empty(q);
	send_str(q, "1");
	send_str(q, "2");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Full queue: send would block, recv would not. */
		t_assert_err(shmq_send(q, "a", 1, bad[i]), -EINVAL);
		t_assert_err(shmq_recv(q, buf, sizeof(buf), bad[i]), -EINVAL);
	}
	/* Nothing moved. */
	recv_str(q, "1");
	recv_str(q, "2");
	t_expect_empty(q);
	shmq_close(q);
}

static void test_send_emsgsize(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 16);
	char buf[64] = "0123456789abcdefXYZ";

	t_assert_err(shmq_send(q, buf, 17, 0), -EMSGSIZE);
	t_assert_err(shmq_send(q, buf, 64, SHMQ_FOREVER), -EMSGSIZE);
	t_assert_err(shmq_send(q, buf, SIZE_MAX, 0), -EMSGSIZE);
	t_expect_empty(q);
	t_assert_err(shmq_send(q, buf, 16, 0), 0);
	t_assert_err(shmq_recv(q, buf + 32, 32, 0), 16);
	assert_memory_equal(buf + 32, "0123456789abcdef", 16);

	/* EMSGSIZE comes before EAGAIN on a full queue. */
	while (shmq_send(q, buf, 1, 0) == 0)
		;
	t_assert_err(shmq_send(q, buf, 17, 0), -EMSGSIZE);
	shmq_close(q);
}

static void test_zero_length(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 16);
	char buf[16] = "untouched";

	t_assert_err(shmq_send(q, NULL, 0, 0), 0);
	t_assert_err(shmq_send(q, "ignored", 0, 0), 0);
	send_str(q, "after");
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), 0);
	assert_string_equal(buf, "untouched");
	t_assert_err(shmq_recv(q, NULL, 0, 0), 0);
	recv_str(q, "after");
	t_expect_empty(q);
	shmq_close(q);
}

static void test_recv_buffer_too_small(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 64);
	char buf[64];

	send_str(q, "0123456789");
	send_str(q, "next");
	t_assert_err(shmq_recv(q, buf, 9, 0), -EMSGSIZE);
	t_assert_err(shmq_recv(q, NULL, 0, 0), -EMSGSIZE);
	t_assert_err(shmq_recv(q, buf, 1, SHMQ_FOREVER), -EMSGSIZE);
	/* Not consumed: still the head of the queue. */
	t_assert_err(shmq_recv(q, buf, 10, 0), 10);
	assert_memory_equal(buf, "0123456789", 10);
	recv_str(q, "next");
	t_expect_empty(q);
	shmq_close(q);
}

static void test_fifo_order(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 16, 16);
	uint32_t rng = 7, sent = 0, got = 0, v;
	int round, k, n;

	/* Varying fill levels, across many laps of the ring. */
	for (round = 0; round < 300; round++) {
		n = (int)(t_rand(&rng) % 17);
		for (k = 0; k < n; k++) {
			if (shmq_send(q, &sent, sizeof(sent), 0))
				break;
			sent++;
		}
		n = (int)(t_rand(&rng) % 17);
		for (k = 0; k < n; k++) {
			if (shmq_recv(q, &v, sizeof(v), 0) < 0)
				break;
			if (v != got)
				print_error("got %u, expected %u\n", v, got);
			assert_int_equal(v, got);
			got++;
		}
	}
	while (shmq_recv(q, &v, sizeof(v), 0) == sizeof(v)) {
		assert_int_equal(v, got);
		got++;
	}
	assert_int_equal(got, sent);
	assert_true(sent > 16 * 20);
	shmq_close(q);
}

/* ---- NULL handles and arguments --------------------------------------- */

static void test_null_args(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 16);
	struct shmq_attr a;
	shmq *out = NULL;
	char buf[16];

	t_assert_err(shmq_get_attr(NULL, &a), -EINVAL);
	t_assert_err(shmq_get_attr(q, NULL), -EINVAL);

	t_assert_err(shmq_create(NULL, "x", NULL), -EINVAL);
	t_assert_err(shmq_open(NULL, "q", &out), -EINVAL);
	t_assert_err(shmq_unlink(NULL, "q"), -EINVAL);

	t_assert_err(shmq_send(NULL, "a", 1, 0), -EINVAL);
	t_assert_err(shmq_recv(NULL, buf, sizeof(buf), 0), -EINVAL);
	/* A NULL payload is only valid with length 0. */
	t_assert_err(shmq_send(q, NULL, 1, 0), -EINVAL);
	t_expect_empty(q);
	send_str(q, "abc");
	t_assert_err(shmq_recv(q, NULL, 16, 0), -EINVAL);
	recv_str(q, "abc");

	/* NULL closes are no-ops. */
	shmq_close(NULL);
	shmq_seg_close(NULL);
	shmq_close(q);
}

/* ---- error strings ---------------------------------------------------- */

static void test_strerror_errname(void **state)
{
	static const struct {
		int code;
		const char *name;
		const char *msg;
	} table[] = {
#define X(code, name, msg) { code, name, msg },
		SHMQ_ERRNO_MAP(X)
#undef X
	};
	static const int unknown[] = { 9999, -9999, INT_MAX, INT_MIN + 1,
				       INT_MIN, 4096, -4096 };
	const char *s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		s = shmq_errname(-table[i].code);
		assert_non_null(s);
		assert_string_equal(s, table[i].name);
		s = shmq_errname(table[i].code);
		assert_non_null(s);
		assert_string_equal(s, table[i].name);
		s = shmq_strerror(-table[i].code);
		assert_non_null(s);
		assert_string_equal(s, table[i].msg);
		s = shmq_strerror(table[i].code);
		assert_non_null(s);
		assert_string_equal(s, table[i].msg);
	}
	assert_string_equal(shmq_errname(0), "0");
	assert_non_null(shmq_strerror(0));
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		s = shmq_strerror(unknown[i]);
		assert_non_null(s);
		assert_true(s[0] != '\0');
		s = shmq_errname(unknown[i]);
		assert_non_null(s);
		assert_string_equal(s, "E?");
	}
	/* A kernel errno outside our table: still a string. */
	assert_non_null(shmq_strerror(-ENOTSOCK));
	assert_string_equal(shmq_errname(-ENOTSOCK), "E?");
}

static void test_version(void **state)
{
	char v[32];

	(void)state;
	snprintf(v, sizeof(v), "%d.%d.%d", SHMQ_VERSION_MAJOR,
		 SHMQ_VERSION_MINOR, SHMQ_VERSION_PATCH);
	assert_non_null(shmq_version());
	assert_string_equal(shmq_version(), v);
}

/* ---- spin budget ------------------------------------------------------ */

static void test_set_spin(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 16);
	char buf[16];

	t_assert_err(shmq_set_spin(q, -1), -EINVAL);
	t_assert_err(shmq_set_spin(q, -100), -EINVAL);
	t_assert_err(shmq_set_spin(q, INT64_MIN), -EINVAL);
	t_assert_err(shmq_set_spin(q, 0), 0);
	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 5 * T_MS), 5 * T_MS);
	t_assert_err(shmq_set_spin(q, 1000000), 0);
	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 5 * T_MS), 5 * T_MS);
	/* A budget longer than the timeout: the timeout still wins. */
	t_assert_err(shmq_set_spin(q, 10000 * T_MS), 0);
	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 5 * T_MS), 5 * T_MS);
	send_str(q, "ok");
	recv_str(q, "ok");
	shmq_close(q);
}

struct delayed_send {
	shmq *q;
	unsigned delay_ms;
	int rc;
};

static void *delayed_send_fn(void *arg)
{
	struct delayed_send *d = arg;

	t_sleep_ms(d->delay_ms);
	d->rc = shmq_send(d->q, "wake", 4, SHMQ_FOREVER);
	return NULL;
}

/* Block in recv until another thread sends, with the budget @spin. */
static void blocked_recv_is_woken(struct t_fix *fix, const char *spin)
{
	struct delayed_send d = { .delay_ms = 30 };
	uint64_t t0;
	pthread_t th;
	char buf[16];
	shmq *q;

	if (spin)
		setenv("SHMQ_SPIN_NS", spin, 1);
	else
		unsetenv("SHMQ_SPIN_NS");
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	d.q = q;
	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 2 * T_MS), 2 * T_MS);
	send_str(q, "ok");
	recv_str(q, "ok");

	assert_int_equal(pthread_create(&th, NULL, delayed_send_fn, &d), 0);
	t0 = t_now_ns();
	t_assert_err(shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER), 4);
	assert_true(t_now_ns() - t0 >= 1 * T_MS);
	assert_int_equal(pthread_join(th, NULL), 0);
	t_assert_err(d.rc, 0);
	assert_memory_equal(buf, "wake", 4);
	shmq_close(q);
	unsetenv("SHMQ_SPIN_NS");
}

static void test_spin_env(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 4, .msg_size = 16 };

	t_assert_err(shmq_create(fix->seg, "q", &a), 0);
	blocked_recv_is_woken(fix, "0");
	blocked_recv_is_woken(fix, "1000");
	/* A budget longer than the wait itself. */
	blocked_recv_is_woken(fix, "100000000");
	blocked_recv_is_woken(fix, "junk");		/* ignored */
	blocked_recv_is_woken(fix, "-5");		/* ignored */
	blocked_recv_is_woken(fix, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_create_defaults),
		T(test_create_capacity_rounding),
		T(test_create_capacity_is_exact),
		T(test_create_bad_attr),
		T(test_create_eexist),
		T(test_open_unlink_enoent),
		T(test_names_invalid),
		T(test_names_valid),
		T(test_create_enospc_memory),
		T(test_create_enospc_too_big),
		T(test_create_enospc_directory),
		T(test_open_eproto_corrupt_record),
		T(test_unlink_while_open),
		T(test_send_recv_roundtrip),
		T(test_recv_empty_eagain),
		T(test_send_full_eagain),
		T(test_recv_timeout),
		T(test_send_timeout),
		T(test_timeout_invalid),
		T(test_send_emsgsize),
		T(test_zero_length),
		T(test_recv_buffer_too_small),
		T(test_fifo_order),
		T(test_null_args),
		T(test_strerror_errname),
		T(test_version),
		T(test_set_spin),
		T(test_spin_env),
#undef T
	};

	return cmocka_run_group_tests_name("api", tests, t_group_setup,
					   t_group_teardown);
}
