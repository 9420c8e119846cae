// SPDX-License-Identifier: MIT
/*
 * test_batch.c - shmq_send_batch() and shmq_recv_batch(): prefixes, partial
 * batches, too-long entries, buffers too small, errors, timeouts, order
 * and blocking.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

static char payload[80] =
	"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_-";

/* iov[i] = the first lens[i] bytes of payload, shifted by i. */
static void make_iovs(struct iovec *iov, const size_t *lens, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		iov[i].iov_base = payload + i;
		iov[i].iov_len = lens[i];
	}
}

/* ---- arguments -------------------------------------------------------- */

static void test_batch_invalid_args(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 16);
	struct iovec iov[2] = { { payload, 1 }, { payload, 2 } };
	char b0[16], b1[16];
	struct iovec bufs[2] = { { b0, 16 }, { b1, 16 } };

	t_assert_err(shmq_send_batch(q, iov, 0, 0), -EINVAL);
	t_assert_err(shmq_send_batch(q, iov, 0, SHMQ_FOREVER), -EINVAL);
	t_assert_err(shmq_send_batch(q, NULL, 1, 0), -EINVAL);
	t_assert_err(shmq_send_batch(q, iov, 2, -2), -EINVAL);
	t_assert_err(shmq_send_batch(q, iov, 2, INT64_MIN), -EINVAL);
	t_assert_err(shmq_send_batch(NULL, iov, 2, 0), -EINVAL);
	t_expect_empty(q);

	/* Empty queue, then one message: EINVAL either way. */
	t_assert_err(shmq_recv_batch(q, bufs, 0, 0), -EINVAL);
	t_assert_err(shmq_recv_batch(q, bufs, 0, SHMQ_FOREVER), -EINVAL);
	t_assert_err(shmq_recv_batch(q, NULL, 1, 0), -EINVAL);
	t_assert_err(shmq_recv_batch(q, bufs, 2, -2), -EINVAL);
	t_assert_err(shmq_send(q, "m", 1, 0), 0);
	t_assert_err(shmq_recv_batch(q, bufs, 0, 0), -EINVAL);
	t_assert_err(shmq_recv_batch(q, NULL, 1, 0), -EINVAL);
	t_assert_err(shmq_recv_batch(q, bufs, 2, -3), -EINVAL);
	t_assert_err(shmq_recv_batch(NULL, bufs, 2, 0), -EINVAL);
	t_recv_expect(q, "m", 1, 0);
	shmq_close(q);
}

/* ---- send_batch ------------------------------------------------------- */

static void test_send_batch_all(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	static const size_t lens[5] = { 1, 16, 0, 7, 3 };
	struct iovec iov[5];
	unsigned i;

	make_iovs(iov, lens, 5);
	t_assert_err(shmq_send_batch(q, iov, 5, 0), 5);
	for (i = 0; i < 5; i++)
		t_recv_expect(q, iov[i].iov_base, lens[i], 0);
	t_expect_empty(q);

	/* A batch of one. */
	t_assert_err(shmq_send_batch(q, iov, 1, SHMQ_FOREVER), 1);
	t_recv_expect(q, iov[0].iov_base, lens[0], 0);
	shmq_close(q);
}

static void test_send_batch_stops_before_oversize(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	static const size_t lens[5] = { 4, 16, 0, 17, 3 };
	static const size_t first[2] = { 17, 1 };
	struct iovec iov[5];
	unsigned i;

	make_iovs(iov, lens, 5);
	t_assert_err(shmq_send_batch(q, iov, 5, 0), 3);
	for (i = 0; i < 3; i++)
		t_recv_expect(q, iov[i].iov_base, lens[i], 0);
	t_expect_empty(q);

	/* The oversize entry first: nothing is sent. */
	t_assert_err(shmq_send_batch(q, iov + 3, 2, 0), -EMSGSIZE);
	make_iovs(iov, first, 2);
	t_assert_err(shmq_send_batch(q, iov, 2, SHMQ_FOREVER), -EMSGSIZE);
	t_expect_empty(q);

	/* Oversize beats full: the message could never be sent. */
	for (i = 0; i < 8; i++)
		t_assert_err(shmq_send(q, "f", 1, 0), 0);
	t_assert_err(shmq_send_batch(q, iov, 2, 0), -EMSGSIZE);
	shmq_close(q);
}

static void test_send_batch_partial(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	static const size_t lens[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
					 11, 12, 13, 14, 15, 16, 0, 1, 2, 3 };
	struct iovec iov[20];
	int i;

	make_iovs(iov, lens, 20);
	/* More than the capacity on an empty ring: what fits. */
	t_assert_err(shmq_send_batch(q, iov, 20, 0), 8);
	for (i = 0; i < 8; i++)
		t_recv_expect(q, iov[i].iov_base, lens[i], 0);

	/* Six taken, five asked: two fit. */
	for (i = 0; i < 6; i++)
		t_assert_err(shmq_send(q, &i, 1, 0), 0);
	t_assert_err(shmq_send_batch(q, iov + 10, 5, 0), 2);

	/* Full: EAGAIN, ETIMEDOUT after the timeout. */
	t_assert_err(shmq_send_batch(q, iov, 3, 0), -EAGAIN);
	t_assert_timeout(shmq_send_batch(q, iov, 3, 20 * T_MS), 20 * T_MS);

	for (i = 0; i < 6; i++) {
		char c = (char)i;

		t_recv_expect(q, &c, 1, 0);
	}
	t_recv_expect(q, iov[10].iov_base, lens[10], 0);
	t_recv_expect(q, iov[11].iov_base, lens[11], 0);
	t_expect_empty(q);
	shmq_close(q);
}

/* ---- recv_batch ------------------------------------------------------- */

static void test_recv_batch_sets_len(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	char b[4][16];
	struct iovec bufs[4];
	int i;

	t_assert_err(shmq_send(q, "abc", 3, 0), 0);
	t_assert_err(shmq_send(q, NULL, 0, 0), 0);
	t_assert_err(shmq_send(q, "0123456789", 10, 0), 0);
	for (i = 0; i < 4; i++) {
		bufs[i].iov_base = b[i];
		bufs[i].iov_len = sizeof(b[i]);
	}
	/* Fewer messages than buffers: what is there, without waiting. */
	t_assert_err(shmq_recv_batch(q, bufs, 4, 0), 3);
	assert_int_equal(bufs[0].iov_len, 3);
	assert_memory_equal(b[0], "abc", 3);
	assert_int_equal(bufs[1].iov_len, 0);
	assert_int_equal(bufs[2].iov_len, 10);
	assert_memory_equal(b[2], "0123456789", 10);
	t_expect_empty(q);

	/* A zero-length message fits a zero-length (NULL) buffer. */
	t_assert_err(shmq_send(q, NULL, 0, 0), 0);
	bufs[0].iov_base = NULL;
	bufs[0].iov_len = 0;
	t_assert_err(shmq_recv_batch(q, bufs, 1, 0), 1);
	assert_int_equal(bufs[0].iov_len, 0);
	shmq_close(q);
}

static void test_recv_batch_stops_before_too_long(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	char b[4][16];
	struct iovec bufs[4];
	int i;

	t_assert_err(shmq_send(q, "11111", 5, 0), 0);
	t_assert_err(shmq_send(q, "22222", 5, 0), 0);
	t_assert_err(shmq_send(q, "333333333333", 12, 0), 0);
	t_assert_err(shmq_send(q, "44444", 5, 0), 0);
	for (i = 0; i < 4; i++) {
		bufs[i].iov_base = b[i];
		bufs[i].iov_len = 8;
	}
	t_assert_err(shmq_recv_batch(q, bufs, 4, 0), 2);
	assert_int_equal(bufs[0].iov_len, 5);
	assert_int_equal(bufs[1].iov_len, 5);
	assert_memory_equal(b[0], "11111", 5);
	assert_memory_equal(b[1], "22222", 5);

	/* The first does not fit: EMSGSIZE, not consumed. */
	for (i = 0; i < 4; i++)
		bufs[i].iov_len = 8;
	t_assert_err(shmq_recv_batch(q, bufs, 4, 0), -EMSGSIZE);
	t_assert_err(shmq_recv_batch(q, bufs, 1, SHMQ_FOREVER), -EMSGSIZE);
	bufs[0].iov_len = 11;
	t_assert_err(shmq_recv_batch(q, bufs, 4, 0), -EMSGSIZE);

	/* Per-entry sizes: bufs[0] fits it, bufs[1] too small for nothing. */
	bufs[0].iov_len = 12;
	bufs[1].iov_len = 5;
	t_assert_err(shmq_recv_batch(q, bufs, 2, 0), 2);
	assert_int_equal(bufs[0].iov_len, 12);
	assert_memory_equal(b[0], "333333333333", 12);
	assert_int_equal(bufs[1].iov_len, 5);
	assert_memory_equal(b[1], "44444", 5);
	t_expect_empty(q);

	/* A later entry too small: stop there, the rest stays queued. */
	t_assert_err(shmq_send(q, "aaaa", 4, 0), 0);
	t_assert_err(shmq_send(q, "bbbbbbbb", 8, 0), 0);
	bufs[0].iov_len = 16;
	bufs[1].iov_len = 7;
	t_assert_err(shmq_recv_batch(q, bufs, 2, 0), 1);
	assert_int_equal(bufs[0].iov_len, 4);
	t_recv_expect(q, "bbbbbbbb", 8, 0);
	t_expect_empty(q);
	shmq_close(q);
}

static void test_recv_batch_empty_and_timeout(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	char b[2][16];
	struct iovec bufs[2] = { { b[0], 16 }, { b[1], 16 } };

	t_assert_err(shmq_recv_batch(q, bufs, 2, 0), -EAGAIN);
	t_assert_timeout(shmq_recv_batch(q, bufs, 2, 20 * T_MS), 20 * T_MS);
	t_assert_timeout(shmq_recv_batch(q, bufs, 1, 1), 1);
	shmq_close(q);
}

/* ---- order ------------------------------------------------------------ */

static void test_batch_order_preserved(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 16, 8);
	uint32_t out[32], in[32], next_send = 0, next_recv = 0, rng = 99;
	struct iovec iov[32];
	int round, n, k, i;

	for (round = 0; round < 400; round++) {
		/* Send a batch, a single, or nothing. */
		n = 1 + (int)(t_rand(&rng) % 20);
		for (i = 0; i < n; i++) {
			out[i] = next_send + (uint32_t)i;
			iov[i].iov_base = &out[i];
			iov[i].iov_len = sizeof(out[i]);
		}
		if (round % 5 == 0) {
			k = shmq_send(q, &out[0], sizeof(out[0]), 0) ? 0 : 1;
		} else {
			k = shmq_send_batch(q, iov, (unsigned)n, 0);
			if (k == -EAGAIN)
				k = 0;
			assert_true(k >= 0 && k <= n);
		}
		next_send += (uint32_t)k;

		/* Receive a batch or a single. */
		n = 1 + (int)(t_rand(&rng) % 20);
		for (i = 0; i < n; i++) {
			iov[i].iov_base = &in[i];
			iov[i].iov_len = sizeof(in[i]);
		}
		if (round % 7 == 0) {
			k = shmq_recv(q, &in[0], sizeof(in[0]), 0) < 0 ? 0 : 1;
		} else {
			k = shmq_recv_batch(q, iov, (unsigned)n, 0);
			if (k == -EAGAIN)
				k = 0;
			assert_true(k >= 0 && k <= n);
		}
		for (i = 0; i < k; i++) {
			if (round % 7)
				assert_int_equal(iov[i].iov_len, 4);
			if (in[i] != next_recv)
				print_error("round %d: got %u expected %u\n",
					    round, in[i], next_recv);
			assert_int_equal(in[i], next_recv);
			next_recv++;
		}
	}
	while (shmq_recv(q, &in[0], sizeof(in[0]), 0) == 4) {
		assert_int_equal(in[0], next_recv);
		next_recv++;
	}
	assert_int_equal(next_recv, next_send);
	assert_true(next_send > 16 * 20);
	shmq_close(q);
}

/* ---- blocking --------------------------------------------------------- */

struct helper {
	shmq *q;
	int rc;
	int mode;		/* 0: send 3 as a batch, 1: receive 2 */
};

static void *helper_fn(void *arg)
{
	struct helper *h = arg;
	uint32_t v[3] = { 100, 101, 102 };
	struct iovec iov[3] = {
		{ &v[0], 4 }, { &v[1], 4 }, { &v[2], 4 },
	};

	t_sleep_ms(30);
	if (h->mode == 0) {
		h->rc = shmq_send_batch(h->q, iov, 3, SHMQ_FOREVER);
	} else {
		h->rc = shmq_recv_batch(h->q, iov, 2, SHMQ_FOREVER);
		if (h->rc == 2 && (iov[0].iov_len != 4 || iov[1].iov_len != 4 ||
				   v[0] != 0 || v[1] != 1))
			h->rc = -1000;
	}
	return NULL;
}

static void test_batch_blocking(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 8);
	struct helper h = { .q = q };
	uint32_t v[4], i;
	struct iovec iov[4];
	pthread_t th;
	int k, got;

	/* A receiver blocked for the first message is woken by a batch. */
	for (i = 0; i < 4; i++) {
		iov[i].iov_base = &v[i];
		iov[i].iov_len = 4;
	}
	h.mode = 0;
	assert_int_equal(pthread_create(&th, NULL, helper_fn, &h), 0);
	k = shmq_recv_batch(q, iov, 4, SHMQ_FOREVER);
	assert_true(k >= 1 && k <= 3);
	got = k;
	while (got < 3) {
		k = shmq_recv_batch(q, iov + got, 1, 1000 * T_MS);
		t_assert_err(k, 1);
		got++;
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	t_assert_err(h.rc, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(v[i], 100 + i);

	/* A sender blocked on a full ring is woken when one slot frees. */
	for (i = 0; i < 4; i++)
		t_assert_err(shmq_send(q, &i, 4, 0), 0);
	h.mode = 1;
	assert_int_equal(pthread_create(&th, NULL, helper_fn, &h), 0);
	for (i = 0; i < 4; i++) {
		v[i] = 10 + i;
		iov[i].iov_base = &v[i];
		iov[i].iov_len = 4;
	}
	k = shmq_send_batch(q, iov, 4, SHMQ_FOREVER);
	assert_true(k >= 1 && k <= 2);
	assert_int_equal(pthread_join(th, NULL), 0);
	t_assert_err(h.rc, 2);
	for (i = 2; i < 4; i++) {
		uint32_t x;

		t_assert_err(shmq_recv(q, &x, 4, 0), 4);
		assert_int_equal(x, i);
	}
	for (i = 0; i < (uint32_t)k; i++) {
		uint32_t x;

		t_assert_err(shmq_recv(q, &x, 4, 0), 4);
		assert_int_equal(x, 10 + i);
	}
	t_expect_empty(q);
	shmq_close(q);
}

/* Batches and single calls interleave in one FIFO. */
static void test_batch_mixed_with_plain(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	static const size_t lens[3] = { 2, 3, 4 };
	struct iovec iov[3], bufs[3];
	char b[3][16];
	int i;

	make_iovs(iov, lens, 3);
	t_assert_err(shmq_send(q, "P", 1, 0), 0);
	t_assert_err(shmq_send_batch(q, iov, 3, 0), 3);
	t_assert_err(shmq_send(q, "Q", 1, 0), 0);
	t_recv_expect(q, "P", 1, 0);
	t_recv_expect(q, iov[0].iov_base, 2, 0);
	for (i = 0; i < 3; i++) {
		bufs[i].iov_base = b[i];
		bufs[i].iov_len = sizeof(b[i]);
	}
	t_assert_err(shmq_recv_batch(q, bufs, 3, 0), 3);
	assert_int_equal(bufs[0].iov_len, 3);
	assert_memory_equal(b[0], iov[1].iov_base, 3);
	assert_int_equal(bufs[1].iov_len, 4);
	assert_memory_equal(b[1], iov[2].iov_base, 4);
	assert_int_equal(bufs[2].iov_len, 1);
	assert_memory_equal(b[2], "Q", 1);
	t_expect_empty(q);
	shmq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_batch_invalid_args),
		T(test_send_batch_all),
		T(test_send_batch_stops_before_oversize),
		T(test_send_batch_partial),
		T(test_recv_batch_sets_len),
		T(test_recv_batch_stops_before_too_long),
		T(test_recv_batch_empty_and_timeout),
		T(test_batch_order_preserved),
		T(test_batch_blocking),
		T(test_batch_mixed_with_plain),
#undef T
	};

	return cmocka_run_group_tests_name("batch", tests, t_group_setup,
					   t_group_teardown);
}
