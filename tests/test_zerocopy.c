// SPDX-License-Identifier: MIT
/*
 * test_zerocopy.c - shmq_reserve/commit and shmq_acquire/release: lengths,
 * tokens, errors, the FIFO position a reservation holds, the slot an
 * acquisition holds, and mixing with copying calls.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

/* Reserve, fill with @s (its length), commit. */
static void zc_send(shmq *q, const char *s)
{
	struct shmq_msg m;
	size_t len = strlen(s);

	t_assert_err(shmq_reserve(q, len, &m, 0), 0);
	assert_true(m.data != NULL || len == 0);
	assert_int_equal(m.len, len);
	memcpy(m.data, s, len);
	t_assert_err(shmq_commit(q, &m), 0);
}

/* Acquire, compare with @s, release. */
static void zc_recv(shmq *q, const char *s)
{
	struct shmq_msg m;
	size_t len = strlen(s);

	t_assert_err(shmq_acquire(q, &m, 0), 0);
	assert_int_equal(m.len, len);
	assert_memory_equal(m.data, s, len);
	t_assert_err(shmq_release(q, &m), 0);
}

static void test_zc_roundtrip(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 64);
	struct shmq_msg m;
	int i;

	zc_send(q, "zero-copy");
	zc_recv(q, "zero-copy");
	t_expect_empty(q);

	/* The whole msg_size is writable and arrives intact. */
	t_assert_err(shmq_reserve(q, 64, &m, SHMQ_FOREVER), 0);
	assert_int_equal(m.len, 64);
	for (i = 0; i < 64; i++)
		((unsigned char *)m.data)[i] = (unsigned char)(i * 3 + 1);
	t_assert_err(shmq_commit(q, &m), 0);
	t_assert_err(shmq_acquire(q, &m, SHMQ_FOREVER), 0);
	assert_int_equal(m.len, 64);
	for (i = 0; i < 64; i++)
		assert_int_equal(((unsigned char *)m.data)[i],
				 (unsigned char)(i * 3 + 1));
	t_assert_err(shmq_release(q, &m), 0);

	/* Zero-length reservations are messages too. */
	t_assert_err(shmq_reserve(q, 0, &m, 0), 0);
	assert_int_equal(m.len, 0);
	t_assert_err(shmq_commit(q, &m), 0);
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	assert_int_equal(m.len, 0);
	t_assert_err(shmq_release(q, &m), 0);
	t_expect_empty(q);

	/* Many laps of the ring. */
	for (i = 0; i < 100; i++) {
		zc_send(q, "lap");
		zc_recv(q, "lap");
	}
	shmq_close(q);
}

static void test_zc_commit_shorter(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 32);
	struct shmq_msg m;

	t_assert_err(shmq_reserve(q, 32, &m, 0), 0);
	memcpy(m.data, "0123456789abcdefghijklmnopqrstuv", 32);
	m.len = 5;
	t_assert_err(shmq_commit(q, &m), 0);
	t_assert_err(shmq_reserve(q, 10, &m, 0), 0);
	m.len = 0;
	t_assert_err(shmq_commit(q, &m), 0);

	t_recv_expect(q, "01234", 5, 0);
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	assert_int_equal(m.len, 0);
	t_assert_err(shmq_release(q, &m), 0);
	t_expect_empty(q);
	shmq_close(q);
}

static void test_zc_commit_longer(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 32);
	struct shmq_msg m;

	t_assert_err(shmq_reserve(q, 8, &m, 0), 0);
	memcpy(m.data, "abcdefgh", 8);
	m.len = 9;
	t_assert_err(shmq_commit(q, &m), -EINVAL);
	m.len = 32;
	t_assert_err(shmq_commit(q, &m), -EINVAL);
	m.len = (size_t)-1;
	t_assert_err(shmq_commit(q, &m), -EINVAL);
	/* Nothing was published by the failures... */
	t_expect_empty(q);
	/* ...and the reservation is still ours to commit. */
	m.len = 8;
	t_assert_err(shmq_commit(q, &m), 0);
	t_recv_expect(q, "abcdefgh", 8, 0);
	shmq_close(q);
}

static void test_zc_bad_tokens(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 4, 32);
	struct shmq_msg m, bogus, a;

	/* Tokens never handed out. */
	bogus = (struct shmq_msg){ .data = NULL, .len = 0, .token = 0 };
	t_assert_err(shmq_commit(q, &bogus), -EINVAL);
	t_assert_err(shmq_release(q, &bogus), -EINVAL);
	bogus.token = 0xdeadbeefcafef00dull;
	t_assert_err(shmq_commit(q, &bogus), -EINVAL);
	t_assert_err(shmq_release(q, &bogus), -EINVAL);
	bogus.token = ~0ull;
	t_assert_err(shmq_commit(q, &bogus), -EINVAL);
	t_assert_err(shmq_release(q, &bogus), -EINVAL);

	/* A near miss of a real token. */
	t_assert_err(shmq_reserve(q, 3, &m, 0), 0);
	memcpy(m.data, "tok", 3);
	bogus = m;
	bogus.token ^= 1;
	t_assert_err(shmq_commit(q, &bogus), -EINVAL);
	bogus.token = m.token + 1;
	t_assert_err(shmq_commit(q, &bogus), -EINVAL);
	/* A reservation is not an acquisition. */
	t_assert_err(shmq_release(q, &m), -EINVAL);
	t_assert_err(shmq_commit(q, &m), 0);
	/* Twice. */
	t_assert_err(shmq_commit(q, &m), -EINVAL);

	t_assert_err(shmq_acquire(q, &a, 0), 0);
	assert_int_equal(a.len, 3);
	assert_memory_equal(a.data, "tok", 3);
	bogus = a;
	bogus.token ^= 1;
	t_assert_err(shmq_release(q, &bogus), -EINVAL);
	/* An acquisition is not a reservation. */
	t_assert_err(shmq_commit(q, &a), -EINVAL);
	t_assert_err(shmq_release(q, &a), 0);
	t_assert_err(shmq_release(q, &a), -EINVAL);

	/* After all that, the queue is consistent. */
	t_expect_empty(q);
	zc_send(q, "fine");
	t_recv_expect(q, "fine", 4, 0);
	shmq_close(q);
}

static void test_zc_token_of_other_handle(void **state)
{
	struct t_fix *fix = *state;
	shmq *h1 = t_queue(fix->seg, "q", 4, 32), *h2, *other;
	struct shmq_msg m;

	t_assert_err(shmq_open(fix->seg, "q", &h2), 0);
	other = t_queue(fix->seg, "other", 4, 32);

	t_assert_err(shmq_reserve(h1, 4, &m, 0), 0);
	memcpy(m.data, "mine", 4);
	t_assert_err(shmq_commit(h2, &m), -EINVAL);
	t_assert_err(shmq_commit(other, &m), -EINVAL);
	t_assert_err(shmq_commit(h1, &m), 0);

	t_assert_err(shmq_acquire(h2, &m, 0), 0);
	t_assert_err(shmq_release(h1, &m), -EINVAL);
	t_assert_err(shmq_release(other, &m), -EINVAL);
	t_assert_err(shmq_release(h2, &m), 0);

	t_expect_empty(h1);
	t_expect_empty(other);
	shmq_close(other);
	shmq_close(h2);
	shmq_close(h1);
}

static void test_zc_errors(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 2, 16);
	struct shmq_msg m;

	/* Too long. */
	t_assert_err(shmq_reserve(q, 17, &m, 0), -EMSGSIZE);
	t_assert_err(shmq_reserve(q, 17, &m, SHMQ_FOREVER), -EMSGSIZE);
	t_assert_err(shmq_reserve(q, SIZE_MAX, &m, 0), -EMSGSIZE);

	/* Empty. */
	t_assert_err(shmq_acquire(q, &m, 0), -EAGAIN);
	t_assert_timeout(shmq_acquire(q, &m, 20 * T_MS), 20 * T_MS);

	/* Full (one committed, one reserved and still open). */
	zc_send(q, "a");
	t_assert_err(shmq_reserve(q, 16, &m, 0), 0);
	{
		struct shmq_msg m2;

		t_assert_err(shmq_reserve(q, 1, &m2, 0), -EAGAIN);
		t_assert_timeout(shmq_reserve(q, 1, &m2, 20 * T_MS), 20 * T_MS);
		t_assert_err(shmq_reserve(q, 1, &m2, -2), -EINVAL);
		t_assert_err(shmq_reserve(q, 17, &m2, 0), -EMSGSIZE);
	}
	m.len = 1;
	memcpy(m.data, "b", 1);
	t_assert_err(shmq_commit(q, &m), 0);

	/* Invalid timeouts and NULL arguments. */
	t_assert_err(shmq_acquire(q, &m, -2), -EINVAL);
	t_assert_err(shmq_acquire(q, &m, INT64_MIN), -EINVAL);
	t_assert_err(shmq_acquire(q, NULL, 0), -EINVAL);
	t_assert_err(shmq_acquire(NULL, &m, 0), -EINVAL);
	t_recv_expect(q, "a", 1, 0);
	t_assert_err(shmq_reserve(q, 1, &m, -2), -EINVAL);
	t_assert_err(shmq_reserve(q, 1, NULL, 0), -EINVAL);
	t_assert_err(shmq_reserve(NULL, 1, &m, 0), -EINVAL);
	t_assert_err(shmq_commit(q, NULL), -EINVAL);
	t_assert_err(shmq_release(q, NULL), -EINVAL);
	t_assert_err(shmq_commit(NULL, &m), -EINVAL);
	t_assert_err(shmq_release(NULL, &m), -EINVAL);

	/* Nothing moved: "b" is next, and then nothing. */
	t_recv_expect(q, "b", 1, 0);
	t_expect_empty(q);
	shmq_close(q);
}

/* The position of a reservation is fixed when it is made. */
static void test_zc_reservation_holds_position(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	struct shmq_msg a, b, c;

	t_assert_err(shmq_reserve(q, 1, &a, 0), 0);
	t_assert_err(shmq_send(q, "B", 1, 0), 0);
	/* Consumers wait at A's slot. */
	t_expect_empty(q);
	t_assert_err(shmq_acquire(q, &b, 0), -EAGAIN);
	memcpy(a.data, "A", 1);
	t_assert_err(shmq_commit(q, &a), 0);
	t_recv_expect(q, "A", 1, 0);
	t_recv_expect(q, "B", 1, 0);

	/* Committed out of order, delivered in reservation order. */
	t_assert_err(shmq_reserve(q, 1, &a, 0), 0);
	t_assert_err(shmq_reserve(q, 1, &b, 0), 0);
	t_assert_err(shmq_reserve(q, 1, &c, 0), 0);
	memcpy(a.data, "1", 1);
	memcpy(b.data, "2", 1);
	memcpy(c.data, "3", 1);
	t_assert_err(shmq_commit(q, &c), 0);
	t_assert_err(shmq_commit(q, &b), 0);
	t_expect_empty(q);
	t_assert_err(shmq_commit(q, &a), 0);
	t_recv_expect(q, "1", 1, 0);
	t_recv_expect(q, "2", 1, 0);
	t_recv_expect(q, "3", 1, 0);
	t_expect_empty(q);
	shmq_close(q);
}

/* An acquired slot stays unavailable to producers until released. */
static void test_zc_acquire_holds_slot(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 2, 16);
	struct shmq_msg m, m2;

	t_assert_err(shmq_send(q, "X", 1, 0), 0);
	t_assert_err(shmq_send(q, "Y", 1, 0), 0);
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	assert_memory_equal(m.data, "X", 1);
	t_assert_err(shmq_send(q, "Z", 1, 0), -EAGAIN);
	t_assert_err(shmq_reserve(q, 1, &m2, 0), -EAGAIN);
	/* The next message is past the held one. */
	t_recv_expect(q, "Y", 1, 0);
	/*
	 * Producers claim positions in ring order: the next position is
	 * X's slot, so nothing can be sent while X is held.
	 */
	t_assert_err(shmq_send(q, "Z", 1, 0), -EAGAIN);
	/* The held message is still intact. */
	assert_int_equal(m.len, 1);
	assert_memory_equal(m.data, "X", 1);
	t_assert_err(shmq_release(q, &m), 0);
	t_assert_err(shmq_send(q, "Z", 1, 0), 0);
	t_assert_err(shmq_send(q, "W", 1, 0), 0);
	t_assert_err(shmq_send(q, "V", 1, 0), -EAGAIN);
	t_recv_expect(q, "Z", 1, 0);
	t_recv_expect(q, "W", 1, 0);
	t_expect_empty(q);
	shmq_close(q);
}

static void test_zc_mixed_with_plain(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 8, 16);
	struct iovec iov[3] = {
		{ "b1", 2 }, { "b22", 3 }, { "b333", 4 },
	};
	char b[2][16];
	struct iovec bufs[2] = { { b[0], 16 }, { b[1], 16 } };
	struct shmq_msg m;

	t_assert_err(shmq_send(q, "plain", 5, 0), 0);
	zc_send(q, "zc");
	t_assert_err(shmq_send_batch(q, iov, 3, 0), 3);
	zc_send(q, "zc2");

	zc_recv(q, "plain");
	t_recv_expect(q, "zc", 2, 0);
	zc_recv(q, "b1");
	t_assert_err(shmq_recv_batch(q, bufs, 2, 0), 2);
	assert_int_equal(bufs[0].iov_len, 3);
	assert_memory_equal(b[0], "b22", 3);
	assert_int_equal(bufs[1].iov_len, 4);
	assert_memory_equal(b[1], "b333", 4);
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	assert_int_equal(m.len, 3);
	assert_memory_equal(m.data, "zc2", 3);
	/* Held by acquire; a plain send and receive go around it. */
	t_assert_err(shmq_send(q, "after", 5, 0), 0);
	t_recv_expect(q, "after", 5, 0);
	t_assert_err(shmq_release(q, &m), 0);
	t_expect_empty(q);
	shmq_close(q);
}

struct zc_thread {
	shmq *q;
	struct shmq_msg m;
	int mode;		/* 0: commit m; 1: send after 30 ms;
				 * 2: recv after 30 ms */
	int rc;
};

static void *zc_thread_fn(void *arg)
{
	struct zc_thread *t = arg;
	char buf[16];

	switch (t->mode) {
	case 0:
		t->rc = shmq_commit(t->q, &t->m);
		break;
	case 1:
		t_sleep_ms(30);
		t->rc = shmq_send(t->q, "woke", 4, SHMQ_FOREVER);
		break;
	default:
		t_sleep_ms(30);
		t->rc = (int)shmq_recv(t->q, buf, sizeof(buf), SHMQ_FOREVER);
		break;
	}
	return NULL;
}

static void test_zc_threads_and_blocking(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "q", 2, 16);
	struct zc_thread t = { .q = q };
	struct shmq_msg m;
	pthread_t th;

	/* Any thread using the handle may commit its token. */
	t_assert_err(shmq_reserve(q, 5, &t.m, 0), 0);
	memcpy(t.m.data, "other", 5);
	t.mode = 0;
	assert_int_equal(pthread_create(&th, NULL, zc_thread_fn, &t), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	t_assert_err(t.rc, 0);
	t_recv_expect(q, "other", 5, 0);

	/* acquire blocks until a message arrives. */
	t.mode = 1;
	assert_int_equal(pthread_create(&th, NULL, zc_thread_fn, &t), 0);
	t_assert_err(shmq_acquire(q, &m, SHMQ_FOREVER), 0);
	assert_int_equal(m.len, 4);
	assert_memory_equal(m.data, "woke", 4);
	t_assert_err(shmq_release(q, &m), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	t_assert_err(t.rc, 0);

	/* reserve blocks until a slot frees. */
	zc_send(q, "f1");
	zc_send(q, "f2");
	t.mode = 2;
	assert_int_equal(pthread_create(&th, NULL, zc_thread_fn, &t), 0);
	t_assert_err(shmq_reserve(q, 2, &m, SHMQ_FOREVER), 0);
	memcpy(m.data, "f3", 2);
	t_assert_err(shmq_commit(q, &m), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	t_assert_err(t.rc, 2);
	t_recv_expect(q, "f2", 2, 0);
	t_recv_expect(q, "f3", 2, 0);
	t_expect_empty(q);
	shmq_close(q);
}

/*
 * A handle's zero-copy bookkeeping (capacity entries) is allocated when
 * first needed; in a process that cannot grow, reserve/acquire fail with
 * -ENOMEM and leave the queue as it was.
 */
static void test_zc_enomem(void **state)
{
	struct shmq_seg_attr sa = { .size = 80 << 20 };
	struct shmq_attr a = { .capacity = 1 << 20, .msg_size = 8 };
	const char *name = t_segname();
	struct rlimit rl;
	struct shmq_msg m;
	shmq_seg *seg;
	shmq *q1, *q2;
	int *res;
	pid_t pid;

	(void)state;
	if (T_SANITIZED)
		t_skip("RLIMIT_AS and the sanitizer's shadow memory do not mix");
	t_assert_err(shmq_seg_create(name, &sa, &seg), 0);
	t_assert_err(shmq_create(seg, "big", &a), 0);
	shmq_seg_close(seg);
	res = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(res != MAP_FAILED);
	memset(res, 0x55, 4096);

	pid = t_fork(20);
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[8];

		if (shmq_seg_open(name, &seg) || shmq_open(seg, "big", &q1) ||
		    shmq_open(seg, "big", &q2) ||
		    shmq_send(q1, "m", 1, 0) || getrlimit(RLIMIT_AS, &rl))
			_exit(10);
		if (t_limit_address_space(1 << 20))
			_exit(11);
		res[0] = shmq_reserve(q1, 1, &m, 0);
		res[1] = shmq_acquire(q2, &m, 0);
		if (setrlimit(RLIMIT_AS, &rl))
			_exit(12);
		/* Nothing was claimed: the message is there, once. */
		res[2] = (int)shmq_recv(q1, buf, sizeof(buf), 0);
		res[3] = (int)shmq_recv(q1, buf, sizeof(buf), 0);
		/* With memory, the same calls work. */
		res[4] = shmq_reserve(q1, 1, &m, 0);
		res[5] = res[4] ? -1 : shmq_commit(q1, &m);
		res[6] = shmq_acquire(q2, &m, 0);
		res[7] = res[6] ? -1 : shmq_release(q2, &m);
		_exit(0);
	}
	t_assert_exit0(t_wait_child(pid));
	t_assert_err(res[0], -ENOMEM);
	t_assert_err(res[1], -ENOMEM);
	t_assert_err(res[2], 1);
	t_assert_err(res[3], -EAGAIN);
	t_assert_err(res[4], 0);
	t_assert_err(res[5], 0);
	t_assert_err(res[6], 0);
	t_assert_err(res[7], 0);
	munmap(res, 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_zc_roundtrip),
		T(test_zc_commit_shorter),
		T(test_zc_commit_longer),
		T(test_zc_bad_tokens),
		T(test_zc_token_of_other_handle),
		T(test_zc_errors),
		T(test_zc_reservation_holds_position),
		T(test_zc_acquire_holds_slot),
		T(test_zc_mixed_with_plain),
		T(test_zc_threads_and_blocking),
		T(test_zc_enomem),
#undef T
	};

	return cmocka_run_group_tests_name("zerocopy", tests, t_group_setup,
					   t_group_teardown);
}
