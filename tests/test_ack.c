// SPDX-License-Identifier: MIT
/*
 * test_ack.c - acknowledged delivery in one process: shmq_fetch's message
 * and metadata, shmq_ack and shmq_nack with good and bad tags (unknown,
 * twice, 0, another handle's, another queue's: -EINVAL and nothing
 * changes), the give-back of shmq_nack and shmq_close (first, deliveries
 * + 1), the unacknowledged area's bound and the prefetch limit (waits,
 * never drops), max_deliveries with and without a dead-letter exchange,
 * SPSC queues (-EOPNOTSUPP), bad attributes, the effective defaults, the
 * counters of shmq_queue_stat, shmq_queue_owed and shmq_proc_list, plain
 * receives beside fetches, producers that owed messages do not hold up,
 * and a program built against the 0.3 header (tests/abi03).
 *
 * Threads: test_ack_threads.c.  Processes killed while they owe:
 * test_crash.c and the torture test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define QA(...) ((struct shmq_attr){ __VA_ARGS__ })

static void mkq(shmq_seg *seg, const char *name, struct shmq_attr a)
{
	t_assert_err(shmq_create(seg, name, &a), 0);
}

static shmq *openq(shmq_seg *seg, const char *name)
{
	shmq *q = NULL;

	t_assert_err(shmq_open(seg, name, &q), 0);
	assert_non_null(q);
	return q;
}

static struct shmq_queue_info qstat(shmq_seg *seg, const char *name)
{
	struct shmq_queue_info qi;

	memset(&qi, 0x5a, sizeof(qi));
	t_assert_err(shmq_queue_stat(seg, name, &qi), 0);
	return qi;
}

static void send_str(shmq *q, const char *s)
{
	t_assert_err(shmq_send(q, s, strlen(s), 0), 0);
}

/*
 * Fetch one message at once and check it: payload @msg, delivered for the
 * @deliveries-th time (SHMQ_META_REDELIVERED exactly when more than once),
 * routing key @key.  Returns its tag (nonzero); its seq in *@seq if asked.
 */
static uint64_t fetch_expect(shmq *q, const char *msg, uint32_t deliveries,
			     const char *key, uint64_t *seq)
{
	struct shmq_meta m;
	uint64_t tag = 0;
	char buf[512];

	memset(&m, 0x5a, sizeof(m));
	memset(buf, 0, sizeof(buf));
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), &m, &tag, 0),
		     (long long)strlen(msg));
	if (strcmp(buf, msg))
		print_error("fetched \"%s\", expected \"%s\"\n", buf, msg);
	assert_memory_equal(buf, msg, strlen(msg));
	assert_true(tag != 0);
	if (m.deliveries != deliveries)
		print_error("\"%s\": deliveries %u, expected %u\n", msg,
			    m.deliveries, deliveries);
	assert_int_equal(m.deliveries, deliveries);
	assert_int_equal(m.flags, deliveries > 1 ? SHMQ_META_REDELIVERED : 0);
	assert_string_equal(m.key, key);
	assert_int_equal(m.key_len, strlen(key));
	if (seq)
		*seq = m.seq;
	return tag;
}

/* Nothing to fetch now (the queue may hold nothing fetchable). */
static void fetch_none(shmq *q)
{
	uint64_t tag = 0;
	char buf[512];

	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 0), -EAGAIN);
}

/* ---- fetch, metadata, ack --------------------------------------------- */

static void test_fetch_meta(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_xattr xa = { SHMQ_DIRECT, 0, NULL };
	struct shmq_queue_info qi;
	uint64_t t1, t2, t3, seq;
	shmq_exchange *x;
	char buf[64];
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 64));
	t_assert_err(shmq_exchange_create(fix->seg, "x", &xa), 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "k.e.y"), 0);
	q = openq(fix->seg, "q");
	t_assert_err(shmq_exchange_open(fix->seg, "x", &x), 0);
	send_str(q, "plain");
	t_assert_err(shmq_publish(x, "k.e.y", "keyed", 5, 0), 1);
	send_str(q, "nometa");

	t1 = fetch_expect(q, "plain", 1, "", &seq);
	assert_int_equal(seq, 0);
	t2 = fetch_expect(q, "keyed", 1, "k.e.y", &seq);
	assert_int_equal(seq, 1);
	/* meta may be NULL. */
	t3 = 0;
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &t3, 0), 6);
	assert_memory_equal(buf, "nometa", 6);
	assert_true(t3 != 0);
	/* Three messages owed at once: three names. */
	assert_true(t1 != t2 && t2 != t3 && t1 != t3);
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 3);
	/* The ring slots are free already. */
	assert_int_equal(qi.depth, 0);
	assert_int_equal(qi.received, 3);

	t_assert_err(shmq_ack(q, t2), 0);
	t_assert_err(shmq_ack(q, t1), 0);
	t_assert_err(shmq_ack(q, t3), 0);
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.nacked, 0);
	/* Acknowledged: gone for good. */
	fetch_none(q);
	t_expect_empty(q);
	shmq_exchange_close(x);
	shmq_close(q);
}

static void test_ack_twice(void **state)
{
	struct t_fix *fix = *state;
	uint64_t tag;
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 4, .msg_size = 16));
	q = openq(fix->seg, "q");
	send_str(q, "once");
	tag = fetch_expect(q, "once", 1, "", NULL);
	t_assert_err(shmq_ack(q, tag), 0);
	t_assert_err(shmq_ack(q, tag), -EINVAL);
	t_assert_err(shmq_nack(q, tag), -EINVAL);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	assert_int_equal(qstat(fix->seg, "q").nacked, 0);
	fetch_none(q);

	/* Given back: its tag is dead too. */
	send_str(q, "back");
	tag = fetch_expect(q, "back", 1, "", NULL);
	t_assert_err(shmq_nack(q, tag), 0);
	t_assert_err(shmq_nack(q, tag), -EINVAL);
	t_assert_err(shmq_ack(q, tag), -EINVAL);
	assert_int_equal(qstat(fix->seg, "q").nacked, 1);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	tag = fetch_expect(q, "back", 2, "", NULL);
	t_assert_err(shmq_ack(q, tag), 0);
	fetch_none(q);
	shmq_close(q);
}

/*
 * Tags that are not an outstanding fetch of the handle: -EINVAL, and the
 * messages stay owed, each still acknowledged by its own handle.
 */
static void test_bad_tags(void **state)
{
	struct t_fix *fix = *state;
	uint64_t made_up[8], t1, t2, to = 0;
	struct shmq_queue_info qi;
	shmq *h1, *h2, *o;
	size_t i, k;
	char buf[16];

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 16));
	mkq(fix->seg, "other", QA(.capacity = 8, .msg_size = 16));
	h1 = openq(fix->seg, "q");
	h2 = openq(fix->seg, "q");
	o = openq(fix->seg, "other");
	send_str(h1, "one");
	send_str(h1, "two");
	t1 = fetch_expect(h1, "one", 1, "", NULL);
	t2 = fetch_expect(h2, "two", 1, "", NULL);
	/*
	 * A tag of the other queue.  Tags may be per queue, so the same
	 * number could name h1's message; move the other queue on until it
	 * differs from both.
	 */
	for (i = 0; i < 16; i++) {
		send_str(o, "o");
		to = fetch_expect(o, "o", 1, "", NULL);
		if (to != t1 && to != t2)
			break;
		t_assert_err(shmq_ack(o, to), 0);
	}
	assert_true(to != t1 && to != t2);

	k = 0;
	made_up[k++] = t1 + 1;
	made_up[k++] = t1 - 1;
	made_up[k++] = t1 ^ ((uint64_t)1 << 40);
	made_up[k++] = t1 ^ ((uint64_t)1 << 63);
	made_up[k++] = ~t1;
	made_up[k++] = UINT64_MAX;
	made_up[k++] = 0x5a5a5a5a5a5a5a5aull;
	made_up[k++] = 1;
	for (i = 0; i < k; i++) {
		if (made_up[i] == t1 || made_up[i] == t2 || made_up[i] == to)
			continue;
		t_assert_err(shmq_ack(h1, made_up[i]), -EINVAL);
		t_assert_err(shmq_nack(h1, made_up[i]), -EINVAL);
	}
	t_assert_err(shmq_ack(h1, 0), -EINVAL);
	t_assert_err(shmq_nack(h1, 0), -EINVAL);
	/* Another handle of the same queue. */
	t_assert_err(shmq_ack(h1, t2), -EINVAL);
	t_assert_err(shmq_nack(h1, t2), -EINVAL);
	t_assert_err(shmq_ack(h2, t1), -EINVAL);
	t_assert_err(shmq_nack(h2, t1), -EINVAL);
	/* Another queue's. */
	t_assert_err(shmq_ack(h1, to), -EINVAL);
	t_assert_err(shmq_nack(h1, to), -EINVAL);
	t_assert_err(shmq_ack(o, t1), -EINVAL);
	t_assert_err(shmq_nack(o, t2), -EINVAL);
	/* NULL handle. */
	t_assert_err(shmq_ack(NULL, t1), -EINVAL);
	t_assert_err(shmq_nack(NULL, t1), -EINVAL);

	/* Nothing changed: still owed, nothing given back. */
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 2);
	assert_int_equal(qi.nacked, 0);
	assert_int_equal(qi.depth, 0);
	qi = qstat(fix->seg, "other");
	assert_int_equal(qi.unacked, 1);
	assert_int_equal(qi.nacked, 0);
	fetch_none(h1);
	fetch_none(o);
	t_assert_err(shmq_recv(h2, buf, sizeof(buf), 0), -EAGAIN);

	/* The right handles still can. */
	t_assert_err(shmq_ack(h1, t1), 0);
	t_assert_err(shmq_nack(h2, t2), 0);
	t_assert_err(shmq_ack(o, to), 0);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	assert_int_equal(qstat(fix->seg, "q").nacked, 1);
	assert_int_equal(qstat(fix->seg, "other").unacked, 0);
	t2 = fetch_expect(h1, "two", 2, "", NULL);
	t_assert_err(shmq_ack(h1, t2), 0);
	fetch_none(h1);
	fetch_none(o);
	shmq_close(h1);
	shmq_close(h2);
	shmq_close(o);
}

static void test_fetch_bad_args(void **state)
{
	static const int64_t bad[] = { -2, -3, -1000000, INT64_MIN };
	struct t_fix *fix = *state;
	struct shmq_meta m;
	uint64_t tag;
	char buf[16];
	size_t i;
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 4, .msg_size = 16));
	q = openq(fix->seg, "q");
	send_str(q, "m");
	t_assert_err(shmq_fetch(NULL, buf, sizeof(buf), &m, &tag, 0), -EINVAL);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), &m, NULL, 0), -EINVAL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		t_assert_err(shmq_fetch(q, buf, sizeof(buf), &m, &tag, bad[i]),
			     -EINVAL);
	/* Nothing taken. */
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	assert_int_equal(qstat(fix->seg, "q").depth, 1);
	tag = fetch_expect(q, "m", 1, "", NULL);
	t_assert_err(shmq_ack(q, tag), 0);
	shmq_close(q);
}

/* ---- giving back -------------------------------------------------------- */

/*
 * shmq_nack: the message comes back ahead of messages sent before it was
 * given back and never fetched, with its seq, deliveries + 1 and
 * SHMQ_META_REDELIVERED; shmq_recv and shmq_recv_meta take it too.
 */
static void test_nack_first(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_meta m;
	uint64_t tag, seq, seq2;
	char buf[16];
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 16));
	q = openq(fix->seg, "q");
	send_str(q, "a");
	send_str(q, "b");
	send_str(q, "c");
	tag = fetch_expect(q, "a", 1, "", &seq);
	assert_int_equal(seq, 0);
	send_str(q, "d");
	t_assert_err(shmq_nack(q, tag), 0);
	assert_int_equal(qstat(fix->seg, "q").nacked, 1);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	tag = fetch_expect(q, "a", 2, "", &seq2);
	assert_int_equal(seq2, seq);
	t_assert_err(shmq_nack(q, tag), 0);
	/* A plain receive beside fetches: the given-back message first. */
	memset(&m, 0x5a, sizeof(m));
	t_assert_err(shmq_recv_meta(q, buf, sizeof(buf), &m, 0), 1);
	assert_memory_equal(buf, "a", 1);
	assert_int_equal(m.deliveries, 3);
	assert_int_equal(m.flags, SHMQ_META_REDELIVERED);
	assert_int_equal(m.seq, seq);
	/* Received, not fetched: nothing owed. */
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	tag = fetch_expect(q, "b", 1, "", &seq);
	assert_int_equal(seq, 1);
	t_recv_expect(q, "c", 1, 0);
	t_assert_err(shmq_nack(q, tag), 0);
	t_recv_expect(q, "b", 1, 0);
	tag = fetch_expect(q, "d", 1, "", &seq);
	assert_int_equal(seq, 3);
	t_assert_err(shmq_ack(q, tag), 0);
	t_expect_empty(q);
	fetch_none(q);
	assert_int_equal(qstat(fix->seg, "q").nacked, 3);
	shmq_close(q);
}

/*
 * More given back at once than the redelivery lane holds (8): all of
 * them still come back before the ring's messages, in order, to a
 * fetching and to a polling copying consumer alike; depth counts each
 * waiting message once.
 */
static void test_nack_many_first(void **state)
{
	struct t_fix *fix = *state;
	uint64_t tags[20];
	char msg[16], buf[16];
	int i, round;
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 64, .msg_size = 16,
			      .max_unacked = 32));
	q = openq(fix->seg, "q");
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 30; i++) {
			snprintf(msg, sizeof(msg), "m%d", i);
			send_str(q, msg);
		}
		for (i = 0; i < 20; i++) {
			snprintf(msg, sizeof(msg), "m%d", i);
			tags[i] = fetch_expect(q, msg, 1, "", NULL);
		}
		for (i = 0; i < 20; i++)
			t_assert_err(shmq_nack(q, tags[i]), 0);
		assert_int_equal(qstat(fix->seg, "q").depth, 30);
		for (i = 0; i < 30; i++) {
			snprintf(msg, sizeof(msg), "m%d", i);
			if (round == 0) {
				t_assert_err(shmq_ack(q, fetch_expect(q, msg,
						i < 20 ? 2 : 1, "", NULL)), 0);
				continue;
			}
			/* A polling copying receiver: the same order. */
			memset(buf, 0, sizeof(buf));
			t_assert_err(shmq_recv(q, buf, sizeof(buf), 0),
				     (long long)strlen(msg));
			assert_string_equal(buf, msg);
		}
		t_expect_empty(q);
		assert_int_equal(qstat(fix->seg, "q").depth, 0);
	}
	shmq_close(q);
}

/* Given back through an exchange: the key stays. */
static void test_nack_keeps_key(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_xattr xa = { SHMQ_FANOUT, 0, NULL };
	shmq_exchange *x;
	uint64_t tag, seq, seq2;
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 16));
	t_assert_err(shmq_exchange_create(fix->seg, "x", &xa), 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", ""), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "x", &x), 0);
	q = openq(fix->seg, "q");
	t_assert_err(shmq_publish(x, "orders.eu", "job", 3, 0), 1);
	tag = fetch_expect(q, "job", 1, "orders.eu", &seq);
	t_assert_err(shmq_nack(q, tag), 0);
	tag = fetch_expect(q, "job", 2, "orders.eu", &seq2);
	assert_int_equal(seq, seq2);
	t_assert_err(shmq_ack(q, tag), 0);
	shmq_exchange_close(x);
	shmq_close(q);
}

/* shmq_close gives back what the handle owes; another handle gets it. */
static void test_close_gives_back(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	uint64_t tag[3];
	shmq *h1, *h2;
	char buf[16];
	int i, seen_a = 0, seen_b = 0;

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 16));
	h1 = openq(fix->seg, "q");
	h2 = openq(fix->seg, "q");
	send_str(h2, "a");
	send_str(h2, "b");
	send_str(h2, "c");
	fetch_expect(h1, "a", 1, "", NULL);
	fetch_expect(h1, "b", 1, "", NULL);
	assert_int_equal(qstat(fix->seg, "q").unacked, 2);
	shmq_close(h1);
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.nacked, 2);
	assert_int_equal(qi.depth, 3);
	/* Both come back before c, in either order. */
	for (i = 0; i < 2; i++) {
		struct shmq_meta m;

		memset(buf, 0, sizeof(buf));
		t_assert_err(shmq_fetch(h2, buf, sizeof(buf), &m, &tag[i], 0), 1);
		assert_int_equal(m.deliveries, 2);
		assert_int_equal(m.flags, SHMQ_META_REDELIVERED);
		seen_a += buf[0] == 'a';
		seen_b += buf[0] == 'b';
	}
	assert_int_equal(seen_a, 1);
	assert_int_equal(seen_b, 1);
	tag[2] = fetch_expect(h2, "c", 1, "", NULL);
	for (i = 0; i < 3; i++)
		t_assert_err(shmq_ack(h2, tag[i]), 0);
	/* A handle that owes nothing closes without a trace. */
	shmq_close(h2);
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.nacked, 2);
	assert_int_equal(qi.depth, 0);
}

/* ---- errors and waits ----------------------------------------------------- */

static void test_fetch_emsgsize(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_meta m;
	uint64_t tag = 0;
	char buf[64];
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 4, .msg_size = 64));
	q = openq(fix->seg, "q");
	send_str(q, "0123456789");
	send_str(q, "next");
	t_assert_err(shmq_fetch(q, buf, 9, &m, &tag, 0), -EMSGSIZE);
	t_assert_err(shmq_fetch(q, NULL, 0, &m, &tag, 0), -EMSGSIZE);
	t_assert_err(shmq_fetch(q, buf, 1, NULL, &tag, SHMQ_FOREVER),
		     -EMSGSIZE);
	/* Nothing taken: not owed, still the head. */
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	assert_int_equal(qstat(fix->seg, "q").depth, 2);
	tag = fetch_expect(q, "0123456789", 1, "", NULL);
	t_assert_err(shmq_ack(q, tag), 0);
	tag = fetch_expect(q, "next", 1, "", NULL);
	t_assert_err(shmq_ack(q, tag), 0);
	shmq_close(q);
}

static void test_fetch_empty(void **state)
{
	struct t_fix *fix = *state;
	uint64_t tag = 0;
	char buf[16];
	shmq *q;

	mkq(fix->seg, "q", QA(.capacity = 4, .msg_size = 16));
	q = openq(fix->seg, "q");
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 0), -EAGAIN);
	t_assert_timeout(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 20 * T_MS),
			 20 * T_MS);
	t_assert_timeout(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 1), 1);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	shmq_close(q);
}

/*
 * max_unacked 4: the fifth fetch waits while four are owed (-EAGAIN,
 * -ETIMEDOUT), though messages wait; an ack makes room.  Nothing is
 * dropped on the way.
 */
static void test_area_full(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	uint64_t tag[8];
	char msg[16], buf[16];
	shmq *q, *q2;
	int i;

	mkq(fix->seg, "q", QA(.capacity = 16, .msg_size = 16,
			      .max_unacked = 4));
	q = openq(fix->seg, "q");
	q2 = openq(fix->seg, "q");
	for (i = 0; i < 8; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		send_str(q, msg);
	}
	for (i = 0; i < 4; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		tag[i] = fetch_expect(q, msg, 1, "", NULL);
	}
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag[4], 0),
		     -EAGAIN);
	t_assert_timeout(shmq_fetch(q, buf, sizeof(buf), NULL, &tag[4],
				    20 * T_MS), 20 * T_MS);
	/* The area is the queue's: another handle waits as well. */
	t_assert_err(shmq_fetch(q2, buf, sizeof(buf), NULL, &tag[4], 0),
		     -EAGAIN);
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 4);
	assert_int_equal(qi.depth, 4);
	assert_int_equal(qi.dropped, 0);
	assert_int_equal(qi.dead_lettered, 0);
	/* A plain receive does not need the area. */
	t_recv_expect(q, "m4", 2, 0);
	t_assert_err(shmq_ack(q, tag[1]), 0);
	tag[5] = fetch_expect(q, "m5", 1, "", NULL);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag[4], 0),
		     -EAGAIN);
	t_assert_err(shmq_nack(q, tag[2]), 0);
	/* Given back: room for one, and m2 comes first. */
	tag[2] = fetch_expect(q, "m2", 2, "", NULL);
	for (i = 0; i < 6; i++)
		if (i != 1 && i != 4)
			t_assert_err(shmq_ack(q, tag[i]), 0);
	tag[6] = fetch_expect(q2, "m6", 1, "", NULL);
	tag[7] = fetch_expect(q2, "m7", 1, "", NULL);
	t_assert_err(shmq_ack(q2, tag[6]), 0);
	t_assert_err(shmq_ack(q2, tag[7]), 0);
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.depth, 0);
	assert_int_equal(qi.sent, 8);
	assert_int_equal(qi.dropped, 0);
	shmq_close(q);
	shmq_close(q2);
}

/*
 * prefetch 2 of max_unacked 8: a handle that owes two waits; another
 * handle of the same queue still fetches.
 */
static void test_prefetch(void **state)
{
	struct t_fix *fix = *state;
	uint64_t a[3], b[3];
	char buf[16];
	shmq *h1, *h2;

	mkq(fix->seg, "q", QA(.capacity = 16, .msg_size = 16,
			      .max_unacked = 8, .prefetch = 2));
	h1 = openq(fix->seg, "q");
	h2 = openq(fix->seg, "q");
	send_str(h1, "1");
	send_str(h1, "2");
	send_str(h1, "3");
	send_str(h1, "4");
	send_str(h1, "5");
	a[0] = fetch_expect(h1, "1", 1, "", NULL);
	a[1] = fetch_expect(h1, "2", 1, "", NULL);
	t_assert_err(shmq_fetch(h1, buf, sizeof(buf), NULL, &a[2], 0), -EAGAIN);
	t_assert_timeout(shmq_fetch(h1, buf, sizeof(buf), NULL, &a[2],
				    20 * T_MS), 20 * T_MS);
	b[0] = fetch_expect(h2, "3", 1, "", NULL);
	b[1] = fetch_expect(h2, "4", 1, "", NULL);
	t_assert_err(shmq_fetch(h2, buf, sizeof(buf), NULL, &b[2], 0), -EAGAIN);
	assert_int_equal(qstat(fix->seg, "q").unacked, 4);
	t_assert_err(shmq_ack(h1, a[0]), 0);
	a[2] = fetch_expect(h1, "5", 1, "", NULL);
	/* A nack frees the handle's place as an ack does. */
	t_assert_err(shmq_nack(h2, b[0]), 0);
	b[0] = fetch_expect(h2, "3", 2, "", NULL);
	t_assert_err(shmq_ack(h1, a[1]), 0);
	t_assert_err(shmq_ack(h1, a[2]), 0);
	t_assert_err(shmq_ack(h2, b[0]), 0);
	t_assert_err(shmq_ack(h2, b[1]), 0);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	fetch_none(h1);
	shmq_close(h1);
	shmq_close(h2);
}

/* ---- poison messages ------------------------------------------------------- */

/*
 * max_deliveries 3 with a dead-letter fanout exchange bound to "dlq":
 * after its third delivery a nack sends the message there, with its key.
 */
static void test_dead_letter(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_xattr fan = { SHMQ_FANOUT, 0, NULL },
			  dir = { SHMQ_DIRECT, 0, NULL };
	struct shmq_queue_info qi;
	struct shmq_meta m;
	shmq_exchange *x;
	uint64_t tag, seq, seq2;
	uint32_t d;
	char buf[64];
	shmq *q, *dlq;

	t_assert_err(shmq_exchange_create(fix->seg, "dlx", &fan), 0);
	t_assert_err(shmq_exchange_create(fix->seg, "in", &dir), 0);
	mkq(fix->seg, "dlq", QA(.capacity = 8, .msg_size = 64));
	t_assert_err(shmq_bind(fix->seg, "dlx", "dlq", ""), 0);
	mkq(fix->seg, "work", QA(.capacity = 8, .msg_size = 64,
				 .max_deliveries = 3, .dead_letter = "dlx"));
	t_assert_err(shmq_bind(fix->seg, "in", "work", "job.poison"), 0);
	t_assert_err(shmq_bind(fix->seg, "in", "work", "job.fine"), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "in", &x), 0);
	q = openq(fix->seg, "work");
	dlq = openq(fix->seg, "dlq");
	qi = qstat(fix->seg, "work");
	assert_int_equal(qi.max_deliveries, 3);
	assert_string_equal(qi.dead_letter, "dlx");

	t_assert_err(shmq_publish(x, "job.poison", "poison", 6, 0), 1);
	t_assert_err(shmq_publish(x, "job.fine", "fine", 4, 0), 1);
	tag = fetch_expect(q, "poison", 1, "job.poison", &seq);
	for (d = 2; d <= 3; d++) {
		t_assert_err(shmq_nack(q, tag), 0);
		tag = fetch_expect(q, "poison", d, "job.poison", &seq2);
		assert_int_equal(seq2, seq);
	}
	/*
	 * Delivered three times: given back once more, it is not delivered
	 * again.  It goes to the exchange when a consumer would get it (the
	 * library does it then), so the next fetch gets "fine".
	 */
	t_assert_err(shmq_nack(q, tag), 0);
	assert_int_equal(qstat(fix->seg, "work").unacked, 0);
	tag = fetch_expect(q, "fine", 1, "job.fine", NULL);
	qi = qstat(fix->seg, "work");
	assert_int_equal(qi.dead_lettered, 1);
	assert_int_equal(qi.unacked, 1);
	assert_int_equal(qi.depth, 0);
	t_assert_err(shmq_ack(q, tag), 0);
	fetch_none(q);
	t_expect_empty(q);
	qi = qstat(fix->seg, "work");
	assert_int_equal(qi.depth, 0);
	assert_int_equal(qi.dead_lettered, 1);

	memset(&m, 0x5a, sizeof(m));
	t_assert_err(shmq_recv_meta(dlq, buf, sizeof(buf), &m, 0), 6);
	assert_memory_equal(buf, "poison", 6);
	assert_string_equal(m.key, "job.poison");
	assert_int_equal(m.key_len, strlen("job.poison"));
	t_expect_empty(dlq);
	assert_int_equal(qstat(fix->seg, "dlq").dead_lettered, 0);
	shmq_exchange_close(x);
	shmq_close(q);
	shmq_close(dlq);
}

/*
 * Without a dead-letter exchange, or when it does not exist: dropped,
 * counted.  max_deliveries 1: the first nack already.  Closing a handle
 * gives back as a nack does: the limit applies there too.
 */
static void test_dead_letter_dropped(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	uint64_t tag;
	shmq *q, *q2;

	mkq(fix->seg, "none", QA(.capacity = 4, .msg_size = 16,
				 .max_deliveries = 2));
	q = openq(fix->seg, "none");
	send_str(q, "p");
	send_str(q, "after");
	tag = fetch_expect(q, "p", 1, "", NULL);
	t_assert_err(shmq_nack(q, tag), 0);
	tag = fetch_expect(q, "p", 2, "", NULL);
	t_assert_err(shmq_nack(q, tag), 0);
	/* The next consumer drops it on the way to "after". */
	tag = fetch_expect(q, "after", 1, "", NULL);
	qi = qstat(fix->seg, "none");
	assert_int_equal(qi.dead_lettered, 1);
	assert_int_equal(qi.unacked, 1);
	assert_int_equal(qi.depth, 0);
	assert_string_equal(qi.dead_letter, "");
	t_assert_err(shmq_ack(q, tag), 0);
	fetch_none(q);
	shmq_close(q);

	/* The exchange need not exist at creation; still missing later. */
	mkq(fix->seg, "missing", QA(.capacity = 4, .msg_size = 16,
				    .max_deliveries = 1,
				    .dead_letter = "nosuch"));
	q = openq(fix->seg, "missing");
	q2 = openq(fix->seg, "missing");
	send_str(q, "p1");
	send_str(q, "p2");
	tag = fetch_expect(q, "p1", 1, "", NULL);
	t_assert_err(shmq_nack(q, tag), 0);
	fetch_expect(q, "p2", 1, "", NULL);
	qi = qstat(fix->seg, "missing");
	assert_int_equal(qi.dead_lettered, 1);
	assert_string_equal(qi.dead_letter, "nosuch");
	shmq_close(q);
	fetch_none(q2);
	qi = qstat(fix->seg, "missing");
	assert_int_equal(qi.dead_lettered, 2);
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.depth, 0);
	shmq_close(q2);
}

/* ---- SPSC, attributes, defaults ------------------------------------------ */

static void test_spsc(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a;
	uint64_t tag = 0;
	char buf[16];
	shmq *q;

	mkq(fix->seg, "s", QA(.capacity = 4, .msg_size = 16,
			      .flags = SHMQ_SPSC));
	q = openq(fix->seg, "s");
	send_str(q, "x");
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 0),
		     -EOPNOTSUPP);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 20 * T_MS),
		     -EOPNOTSUPP);
	t_assert_err(shmq_ack(q, 1), -EOPNOTSUPP);
	t_assert_err(shmq_nack(q, 1), -EOPNOTSUPP);
	/* Nothing taken; the queue works on. */
	t_recv_expect(q, "x", 1, 0);
	memset(&a, 0x5a, sizeof(a));
	t_assert_err(shmq_get_attr(q, &a), 0);
	assert_int_equal(a.flags, SHMQ_SPSC);
	assert_int_equal(a.max_unacked, 0);
	assert_int_equal(a.prefetch, 0);
	assert_int_equal(a.max_deliveries, 0);
	assert_string_equal(a.dead_letter, "");
	shmq_close(q);

	t_assert_err(shmq_create(fix->seg, "b", &QA(.capacity = 4,
			.flags = SHMQ_SPSC, .max_unacked = 4)), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "b", &QA(.capacity = 4,
			.flags = SHMQ_SPSC, .prefetch = 1)), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "b", &QA(.capacity = 4,
			.flags = SHMQ_SPSC, .max_deliveries = 1)), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "b", &QA(.capacity = 4,
			.flags = SHMQ_SPSC, .dead_letter = "dlx")), -EINVAL);
	t_assert_err(shmq_queue_stat(fix->seg, "b", &(struct shmq_queue_info){ 0 }),
		     -ENOENT);
}

static void test_bad_attr(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a;
	struct shmq_queue_info qi;
	size_t i;
	static const char *const bad_names[] = {
		"a/b", "a b", "/", "x*", "\xc3\xa9", ".", "..",
	};

	/* prefetch above max_unacked, given or defaulted (min(8, 64)). */
	t_assert_err(shmq_create(fix->seg, "q", &QA(.capacity = 16,
			.max_unacked = 4, .prefetch = 5)), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "q", &QA(.capacity = 8,
			.prefetch = 9)), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "q", &QA(.capacity = 16,
			.max_unacked = SHMQ_MAX_UNACKED + 1)), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "q", &QA(.capacity = 16,
			.max_unacked = UINT32_MAX)), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "q", &QA(.capacity = 16,
			.max_unacked = 4, .prefetch = UINT32_MAX)), -EINVAL);
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		a = QA(.capacity = 16, .max_deliveries = 2);
		strcpy(a.dead_letter, bad_names[i]);
		t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);
	}
	/* No terminating NUL within the field: not a name. */
	a = QA(.capacity = 16, .max_deliveries = 2);
	memset(a.dead_letter, 'x', sizeof(a.dead_letter));
	t_assert_err(shmq_create(fix->seg, "q", &a), -EINVAL);
	/* Nothing was created by the failures. */
	t_assert_err(shmq_queue_stat(fix->seg, "q", &qi), -ENOENT);

	/* The edges that are allowed. */
	mkq(fix->seg, "p1", QA(.capacity = 16, .max_unacked = 4,
			       .prefetch = 1));
	mkq(fix->seg, "p4", QA(.capacity = 16, .max_unacked = 4,
			       .prefetch = 4));
	a = QA(.capacity = 16);
	memset(a.dead_letter, 'd', SHMQ_NAME_MAX);
	mkq(fix->seg, "dl63", a);
	qi = qstat(fix->seg, "dl63");
	assert_int_equal(strlen(qi.dead_letter), SHMQ_NAME_MAX);
	assert_int_equal(qi.max_deliveries, 0);
}

static void get_attr_expect(shmq_seg *seg, const char *name,
			    uint32_t max_unacked, uint32_t prefetch,
			    uint32_t max_deliveries, const char *dl)
{
	struct shmq_queue_info qi;
	struct shmq_attr a;
	shmq *q = openq(seg, name);
	int rc;

	memset(&a, 0x5a, sizeof(a));
	rc = shmq_get_attr(q, &a);
	shmq_close(q);			/* before a failed assertion leaks it */
	t_assert_err(rc, 0);
	if (a.max_unacked != max_unacked || a.prefetch != prefetch)
		print_error("queue %s: max_unacked %u prefetch %u\n", name,
			    a.max_unacked, a.prefetch);
	assert_int_equal(a.max_unacked, max_unacked);
	assert_int_equal(a.prefetch, prefetch);
	assert_int_equal(a.max_deliveries, max_deliveries);
	assert_string_equal(a.dead_letter, dl);
	qi = qstat(seg, name);
	assert_int_equal(qi.max_unacked, max_unacked);
	assert_int_equal(qi.prefetch, prefetch);
	assert_int_equal(qi.max_deliveries, max_deliveries);
	assert_string_equal(qi.dead_letter, dl);
}

/* shmq_get_attr: max_unacked = min(capacity, 64), prefetch = max_unacked. */
static void test_get_attr_defaults(void **state)
{
	struct t_fix *fix = *state;

	t_assert_err(shmq_create(fix->seg, "null", NULL), 0);
	get_attr_expect(fix->seg, "null", 64, 64, 0, "");
	mkq(fix->seg, "zero", QA(.capacity = 0));
	get_attr_expect(fix->seg, "zero", 64, 64, 0, "");
	mkq(fix->seg, "c16", QA(.capacity = 16));
	get_attr_expect(fix->seg, "c16", 16, 16, 0, "");
	/* capacity 5 rounds to 8: the default follows the rounded one. */
	mkq(fix->seg, "c5", QA(.capacity = 5));
	get_attr_expect(fix->seg, "c5", 8, 8, 0, "");
	mkq(fix->seg, "c2", QA(.capacity = 2));
	get_attr_expect(fix->seg, "c2", 2, 2, 0, "");
	mkq(fix->seg, "c64", QA(.capacity = 64));
	get_attr_expect(fix->seg, "c64", 64, 64, 0, "");
	mkq(fix->seg, "c128", QA(.capacity = 128));
	get_attr_expect(fix->seg, "c128", 64, 64, 0, "");
	/* Given: kept; prefetch follows max_unacked. */
	mkq(fix->seg, "m100", QA(.capacity = 128, .max_unacked = 100));
	get_attr_expect(fix->seg, "m100", 100, 100, 0, "");
	mkq(fix->seg, "m4p3", QA(.capacity = 16, .max_unacked = 4,
				 .prefetch = 3));
	get_attr_expect(fix->seg, "m4p3", 4, 3, 0, "");
	mkq(fix->seg, "p5", QA(.capacity = 16, .prefetch = 5));
	get_attr_expect(fix->seg, "p5", 16, 5, 0, "");
	mkq(fix->seg, "dl", QA(.capacity = 16, .max_deliveries = 7,
			       .dead_letter = "dead.x"));
	get_attr_expect(fix->seg, "dl", 16, 16, 7, "dead.x");
}

/* ---- inspection -------------------------------------------------------------- */

static void test_queue_info_fields(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi, list[4];
	uint64_t tag[3];
	shmq *q;
	int i, n;

	mkq(fix->seg, "q", QA(.capacity = 32, .msg_size = 16,
			      .max_unacked = 10, .prefetch = 6,
			      .max_deliveries = 5, .dead_letter = "later"));
	q = openq(fix->seg, "q");
	qi = qstat(fix->seg, "q");
	assert_string_equal(qi.name, "q");
	assert_int_equal(qi.capacity, 32);
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.max_unacked, 10);
	assert_int_equal(qi.prefetch, 6);
	assert_int_equal(qi.max_deliveries, 5);
	assert_int_equal(qi.nacked, 0);
	assert_int_equal(qi.dead_lettered, 0);
	assert_string_equal(qi.dead_letter, "later");
	for (i = 0; i < 3; i++)
		send_str(q, "m");
	for (i = 0; i < 3; i++)
		tag[i] = fetch_expect(q, "m", 1, "", NULL);
	t_assert_err(shmq_nack(q, tag[0]), 0);
	tag[0] = fetch_expect(q, "m", 2, "", NULL);
	t_assert_err(shmq_ack(q, tag[1]), 0);
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 2);
	assert_int_equal(qi.nacked, 1);
	assert_int_equal(qi.sent, 3);
	assert_int_equal(qi.depth, 0);
	/* The listing says the same. */
	n = shmq_queue_list(fix->seg, list, 4);
	t_assert_err(n, 1);
	assert_int_equal(list[0].unacked, 2);
	assert_int_equal(list[0].nacked, 1);
	assert_int_equal(list[0].max_unacked, 10);
	assert_int_equal(list[0].prefetch, 6);
	assert_string_equal(list[0].dead_letter, "later");
	t_assert_err(shmq_ack(q, tag[0]), 0);
	t_assert_err(shmq_ack(q, tag[2]), 0);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	shmq_close(q);
}

/* Our entry in shmq_proc_list(); asserts there is one. */
static struct shmq_proc_info self_proc(shmq_seg *seg)
{
	struct shmq_proc_info pi[16];
	int i, n;

	n = shmq_proc_list(seg, pi, 16);
	assert_true(n >= 1 && n <= 16);
	for (i = 0; i < n; i++)
		if (pi[i].self)
			return pi[i];
	fail_msg("no self entry in shmq_proc_list");
	return pi[0];
}

static void test_queue_owed(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_owed ow[4];
	struct shmq_proc_info me;
	struct shmq_msg zc;
	uint64_t tag[3];
	shmq *q, *q2;
	int i;

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 16));
	q = openq(fix->seg, "q");
	q2 = openq(fix->seg, "q");
	t_assert_err(shmq_queue_owed(fix->seg, "q", NULL, 0), 0);
	t_assert_err(shmq_queue_owed(fix->seg, "q", ow, 4), 0);
	for (i = 0; i < 5; i++)
		send_str(q, "m");
	tag[0] = fetch_expect(q, "m", 1, "", NULL);
	tag[1] = fetch_expect(q, "m", 1, "", NULL);
	tag[2] = fetch_expect(q2, "m", 1, "", NULL);
	t_assert_err(shmq_ack(q, tag[1]), 0);
	/* Held in place by shmq_acquire: owed too, as "acquired". */
	t_assert_err(shmq_acquire(q2, &zc, 0), 0);

	me = self_proc(fix->seg);
	memset(ow, 0x5a, sizeof(ow));
	t_assert_err(shmq_queue_owed(fix->seg, "q", ow, 4), 1);
	assert_int_equal(ow[0].pid, getpid());
	assert_int_equal(ow[0].proc_index, me.index);
	assert_int_equal(ow[0].alive, 1);
	/* Both handles' fetches: one process. */
	assert_int_equal(ow[0].fetched, 2);
	assert_int_equal(ow[0].acquired, 1);
	t_assert_err(shmq_queue_owed(fix->seg, "q", NULL, 0), 1);

	t_assert_err(shmq_release(q2, &zc), 0);
	t_assert_err(shmq_queue_owed(fix->seg, "q", ow, 4), 1);
	assert_int_equal(ow[0].fetched, 2);
	assert_int_equal(ow[0].acquired, 0);
	t_assert_err(shmq_ack(q, tag[0]), 0);
	t_assert_err(shmq_nack(q2, tag[2]), 0);
	t_assert_err(shmq_queue_owed(fix->seg, "q", ow, 4), 0);

	/* Errors as shmq_queue_stat's. */
	t_assert_err(shmq_queue_owed(fix->seg, "nope", ow, 4), -ENOENT);
	t_assert_err(shmq_queue_owed(fix->seg, "a/b", ow, 4), -EINVAL);
	t_assert_err(shmq_queue_owed(fix->seg, NULL, ow, 4), -EINVAL);
	t_assert_err(shmq_queue_owed(NULL, "q", ow, 4), -EINVAL);
	t_assert_err(shmq_queue_owed(fix->seg, "q", NULL, 1), -EINVAL);
	shmq_close(q);
	shmq_close(q2);
}

/* shmq_proc_info.unacked: what the process owes over all queues. */
static void test_proc_list_unacked(void **state)
{
	struct t_fix *fix = *state;
	uint64_t ta[2], tb;
	shmq *a, *b;

	mkq(fix->seg, "a", QA(.capacity = 8, .msg_size = 16));
	mkq(fix->seg, "b", QA(.capacity = 8, .msg_size = 16));
	a = openq(fix->seg, "a");
	b = openq(fix->seg, "b");
	assert_int_equal(self_proc(fix->seg).unacked, 0);
	send_str(a, "1");
	send_str(a, "2");
	send_str(b, "3");
	ta[0] = fetch_expect(a, "1", 1, "", NULL);
	ta[1] = fetch_expect(a, "2", 1, "", NULL);
	tb = fetch_expect(b, "3", 1, "", NULL);
	assert_int_equal(self_proc(fix->seg).unacked, 3);
	t_assert_err(shmq_ack(a, ta[0]), 0);
	assert_int_equal(self_proc(fix->seg).unacked, 2);
	t_assert_err(shmq_nack(b, tb), 0);
	assert_int_equal(self_proc(fix->seg).unacked, 1);
	/* Closing gives back: nothing owed. */
	shmq_close(a);
	assert_int_equal(self_proc(fix->seg).unacked, 0);
	assert_int_equal(qstat(fix->seg, "a").depth, 1);
	shmq_close(b);
}

/* ---- beside the rest of the queue ---------------------------------------------- */

/* Copying receives and fetches on one queue take turns in FIFO order. */
static void test_recv_beside_fetch(void **state)
{
	struct t_fix *fix = *state;
	uint64_t tag[4];
	char msg[16];
	shmq *q;
	int i, k = 0;

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 16));
	q = openq(fix->seg, "q");
	for (i = 0; i < 8; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		send_str(q, msg);
	}
	for (i = 0; i < 8; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		if (i % 2)
			t_recv_expect(q, msg, strlen(msg), 0);
		else
			tag[k++] = fetch_expect(q, msg, 1, "", NULL);
	}
	assert_int_equal(qstat(fix->seg, "q").unacked, 4);
	for (i = 0; i < 4; i++)
		t_assert_err(shmq_ack(q, tag[i]), 0);
	t_expect_empty(q);
	shmq_close(q);
}

/*
 * Owed messages are out of the ring: fill it, fetch everything, and a
 * whole ring's worth more goes in without waiting.
 */
static void test_producers_not_blocked(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	uint64_t tag[16];
	char msg[16];
	shmq *q;
	int i;

	mkq(fix->seg, "q", QA(.capacity = 8, .msg_size = 16,
			      .max_unacked = 8));
	q = openq(fix->seg, "q");
	for (i = 0; i < 8; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		send_str(q, msg);
	}
	t_assert_err(shmq_send(q, "full", 4, 0), -EAGAIN);
	for (i = 0; i < 8; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		tag[i] = fetch_expect(q, msg, 1, "", NULL);
	}
	for (i = 8; i < 16; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		send_str(q, msg);
	}
	qi = qstat(fix->seg, "q");
	assert_int_equal(qi.unacked, 8);
	assert_int_equal(qi.depth, 8);
	assert_int_equal(qi.full_waits, 0);
	/* The area is full now: fetch waits for an ack, recv does not. */
	fetch_none(q);
	t_recv_expect(q, "m8", 2, 0);
	for (i = 0; i < 8; i++)
		t_assert_err(shmq_ack(q, tag[i]), 0);
	for (i = 9; i < 16; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		tag[i] = fetch_expect(q, msg, 1, "", NULL);
	}
	for (i = 9; i < 16; i++)
		t_assert_err(shmq_ack(q, tag[i]), 0);
	assert_int_equal(qstat(fix->seg, "q").unacked, 0);
	t_expect_empty(q);
	shmq_close(q);
}

/* ---- a program built against 0.3 ------------------------------------------------ */

#define OLD_CLIENT "build/abi03/old_client"

/*
 * tests/abi03/old_client, built against the 0.3.1 header and bound to
 * 0.3.1's symbol versions, creates a queue through shmq_create@SHMQ_0.1
 * with a 12-byte struct before a PROT_NONE page, reads it back through
 * shmq_get_attr@SHMQ_0.1 likewise, lists the processes through
 * shmq_proc_list@SHMQ_0.2 into the old struct, and sends four messages.
 * Then we fetch them: the queue got the acknowledged-delivery defaults.
 */
static void test_abi_0_3_client(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	struct stat st;
	char status[64], msg[16];
	uint64_t tag[4];
	pid_t pid;
	shmq *q;
	int i, ws;

	if (stat(OLD_CLIENT, &st))
		t_skip(OLD_CLIENT " not found (make builds it; run from the "
		       "top directory)");
	pid = t_fork(30);
	if (pid == 0) {
		execl(OLD_CLIENT, OLD_CLIENT, fix->name, (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	ws = t_wait_child(pid);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws))
		print_error("old_client: %s\n",
			    t_status_str(ws, status, sizeof(status)));
	t_assert_exit0(ws);

	get_attr_expect(fix->seg, "old", 16, 16, 0, "");
	qi = qstat(fix->seg, "old");
	assert_int_equal(qi.capacity, 16);
	assert_int_equal(qi.msg_size, 64);
	assert_int_equal(qi.flags, 0);
	assert_int_equal(qi.depth, 4);
	q = openq(fix->seg, "old");
	for (i = 0; i < 4; i++) {
		snprintf(msg, sizeof(msg), "old %d", i);
		tag[i] = fetch_expect(q, msg, 1, "", NULL);
	}
	t_assert_err(shmq_nack(q, tag[2]), 0);
	tag[2] = fetch_expect(q, "old 2", 2, "", NULL);
	for (i = 0; i < 4; i++)
		t_assert_err(shmq_ack(q, tag[i]), 0);
	assert_int_equal(qstat(fix->seg, "old").unacked, 0);
	shmq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_fetch_meta),
		T(test_ack_twice),
		T(test_bad_tags),
		T(test_fetch_bad_args),
		T(test_nack_first),
		T(test_nack_many_first),
		T(test_nack_keeps_key),
		T(test_close_gives_back),
		T(test_fetch_emsgsize),
		T(test_fetch_empty),
		T(test_area_full),
		T(test_prefetch),
		T(test_dead_letter),
		T(test_dead_letter_dropped),
		T(test_spsc),
		T(test_bad_attr),
		T(test_get_attr_defaults),
		T(test_queue_info_fields),
		T(test_queue_owed),
		T(test_proc_list_unacked),
		T(test_recv_beside_fetch),
		T(test_producers_not_blocked),
		T(test_abi_0_3_client),
#undef T
	};

	return cmocka_run_group_tests_name("ack", tests, t_group_setup,
					   t_group_teardown);
}
