// SPDX-License-Identifier: MIT
/*
 * test_exchange.c - exchanges in one process: create/open/unlink, bindings,
 * direct/fanout/topic routing, one copy per queue, alternates and
 * unroutable counts, all-or-nothing publishes, overflow policies (for
 * publish and send), auto-delete queues, shmq_recv_meta, the listings, and
 * the 0.3 ABI of shmq_queue_list.  Multi-process cases: test_exchange_mp.c.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/mman.h>

#include "helpers.h"
#include "layout.h"		/* test_corrupt_table_eproto only */

static void mkq(shmq_seg *seg, const char *name, uint32_t cap,
		uint32_t msg_size, uint32_t flags)
{
	struct shmq_attr a = { .capacity = cap,
			       .msg_size = msg_size, .flags = flags };

	t_assert_err(shmq_create(seg, name, &a), 0);
}

static void mkx(shmq_seg *seg, const char *name, uint32_t type,
		const char *alt)
{
	struct shmq_xattr a = { type, 0, alt };

	t_assert_err(shmq_exchange_create(seg, name, &a), 0);
}

/* Receive one message with its metadata and check both. */
static void recv_key(shmq *q, const char *msg, const char *key)
{
	struct shmq_meta m;
	char buf[512];
	ssize_t n;

	memset(&m, 0x5a, sizeof(m));
	n = shmq_recv_meta(q, buf, sizeof(buf), &m, 0);
	t_assert_err(n, (long long)strlen(msg));
	assert_memory_equal(buf, msg, strlen(msg));
	assert_string_equal(m.key, key);
	assert_int_equal(m.key_len, strlen(key));
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.deliveries, 1);
}

/* A call that must fail with -EAGAIN at once, though told to wait. */
#define assert_eagain_at_once(call) do {				\
		struct timespec t0_, t1_;					\
		long long rc_;						\
		clock_gettime(CLOCK_MONOTONIC, &t0_);			\
		rc_ = (call);						\
		clock_gettime(CLOCK_MONOTONIC, &t1_);			\
		t_assert_err(rc_, -EAGAIN);				\
		assert_true(t1_.tv_sec - t0_.tv_sec < 2);		\
	} while (0)

static int pub(shmq_exchange *x, const char *key, const char *msg)
{
	return shmq_publish(x, key, msg, strlen(msg), 0);
}

/* ---- create, open, unlink ------------------------------------------------- */

static void test_create_open_unlink(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_xattr bad = { 4, 0, NULL }, badf = { 1, 1, NULL },
			  bada = { 1, 0, "no/slash" };
	shmq_exchange *x;
	shmq *q;

	t_assert_err(shmq_exchange_create(fix->seg, "x", NULL), 0);
	t_assert_err(shmq_exchange_create(fix->seg, "x", NULL), -EEXIST);
	mkq(fix->seg, "q", 0, 0, 0);
	/* One namespace: queues and exchanges clash. */
	t_assert_err(shmq_exchange_create(fix->seg, "q", NULL), -EEXIST);
	t_assert_err(shmq_create(fix->seg, "x", NULL), -EEXIST);
	/* The other kind's name is not found. */
	t_assert_err(shmq_open(fix->seg, "x", &q), -ENOENT);
	t_assert_err(shmq_exchange_open(fix->seg, "q", &x), -ENOENT);
	t_assert_err(shmq_unlink(fix->seg, "x"), -ENOENT);
	t_assert_err(shmq_exchange_unlink(fix->seg, "q"), -ENOENT);
	t_assert_err(shmq_exchange_create(fix->seg, "b", &bad), -EINVAL);
	t_assert_err(shmq_exchange_create(fix->seg, "b", &badf), -EINVAL);
	t_assert_err(shmq_exchange_create(fix->seg, "b", &bada), -EINVAL);
	t_assert_err(shmq_exchange_create(fix->seg, "a/b", NULL), -EINVAL);
	t_assert_err(shmq_exchange_create(NULL, "b", NULL), -EINVAL);
	t_assert_err(shmq_exchange_open(fix->seg, "nope", &x), -ENOENT);
	t_assert_err(shmq_exchange_open(fix->seg, "x", &x), 0);
	t_assert_err(shmq_exchange_unlink(fix->seg, "x"), 0);
	/* The handle lives on; publishing through it is -ENOENT. */
	t_assert_err(pub(x, "k", "m"), -ENOENT);
	shmq_exchange_close(x);
	shmq_exchange_close(NULL);
	t_assert_err(shmq_exchange_unlink(fix->seg, "x"), -ENOENT);
	/* The name is free again. */
	t_assert_err(shmq_exchange_create(fix->seg, "x", NULL), 0);
}

/* ---- routing ---------------------------------------------------------------- */

static void test_direct(void **state)
{
	struct t_fix *fix = *state;
	shmq_exchange *x;
	shmq *a, *b;

	mkx(fix->seg, "d", SHMQ_DIRECT, NULL);
	mkq(fix->seg, "a", 8, 64, 0);
	mkq(fix->seg, "b", 8, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "d", "a", "red"), 0);
	t_assert_err(shmq_bind(fix->seg, "d", "b", "blue"), 0);
	t_assert_err(shmq_bind(fix->seg, "d", "b", ""), 0);
	t_assert_err(shmq_open(fix->seg, "a", &a), 0);
	t_assert_err(shmq_open(fix->seg, "b", &b), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "d", &x), 0);
	t_assert_err(pub(x, "red", "r1"), 1);
	t_assert_err(pub(x, "blue", "b1"), 1);
	t_assert_err(pub(x, "", "e1"), 1);
	t_assert_err(pub(x, "green", "g1"), 0);
	t_assert_err(pub(x, "re", "g2"), 0);
	recv_key(a, "r1", "red");
	recv_key(b, "b1", "blue");
	recv_key(b, "e1", "");
	t_expect_empty(a);
	t_expect_empty(b);
	shmq_exchange_close(x);
	shmq_close(a);
	shmq_close(b);
}

static void test_fanout(void **state)
{
	struct t_fix *fix = *state;
	char name[16];
	shmq_exchange *x;
	shmq *q[4];
	int i;

	mkx(fix->seg, "f", SHMQ_FANOUT, NULL);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		mkq(fix->seg, name, 8, 64, 0);
		t_assert_err(shmq_bind(fix->seg, "f", name, i ? "any" : ""), 0);
		t_assert_err(shmq_open(fix->seg, name, &q[i]), 0);
	}
	t_assert_err(shmq_exchange_open(fix->seg, "f", &x), 0);
	t_assert_err(pub(x, "whatever.key", "m1"), 4);
	t_assert_err(pub(x, "", "m2"), 4);
	for (i = 0; i < 4; i++) {
		recv_key(q[i], "m1", "whatever.key");
		recv_key(q[i], "m2", "");
		shmq_close(q[i]);
	}
	shmq_exchange_close(x);
}

static void test_topic(void **state)
{
	struct t_fix *fix = *state;
	shmq_exchange *x;
	shmq *err, *eu, *all;

	mkx(fix->seg, "t", SHMQ_TOPIC, NULL);
	mkq(fix->seg, "err", 16, 64, 0);
	mkq(fix->seg, "eu", 16, 64, 0);
	mkq(fix->seg, "all", 16, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "t", "err", "*.error"), 0);
	t_assert_err(shmq_bind(fix->seg, "t", "err", "#.fatal.#"), 0);
	t_assert_err(shmq_bind(fix->seg, "t", "eu", "orders.eu.#"), 0);
	t_assert_err(shmq_bind(fix->seg, "t", "all", "#"), 0);
	t_assert_err(shmq_open(fix->seg, "err", &err), 0);
	t_assert_err(shmq_open(fix->seg, "eu", &eu), 0);
	t_assert_err(shmq_open(fix->seg, "all", &all), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "t", &x), 0);
	t_assert_err(pub(x, "billing.error", "1"), 2);
	t_assert_err(pub(x, "orders.eu", "2"), 2);
	t_assert_err(pub(x, "orders.eu.created", "3"), 2);
	/* Both of err's bindings match: still one copy. */
	t_assert_err(pub(x, "fatal.error", "4"), 2);
	t_assert_err(pub(x, "a.b.error", "5"), 1);
	t_assert_err(pub(x, "", "6"), 1);
	recv_key(err, "1", "billing.error");
	recv_key(err, "4", "fatal.error");
	t_expect_empty(err);
	recv_key(eu, "2", "orders.eu");
	recv_key(eu, "3", "orders.eu.created");
	t_expect_empty(eu);
	recv_key(all, "1", "billing.error");
	recv_key(all, "2", "orders.eu");
	recv_key(all, "3", "orders.eu.created");
	recv_key(all, "4", "fatal.error");
	recv_key(all, "5", "a.b.error");
	recv_key(all, "6", "");
	shmq_exchange_close(x);
	shmq_close(err);
	shmq_close(eu);
	shmq_close(all);
}

/* A topic binding of 16 '#' against a 125-word key returns at once. */
static void test_topic_no_blowup(void **state)
{
	struct t_fix *fix = *state;
	char bind[64] = "", key[256] = "";
	shmq_exchange *x;
	shmq *q;
	int i;

	for (i = 0; i < 16; i++)
		strcat(bind, i ? ".#" : "#");
	strcat(bind, ".z");
	for (i = 0; i < 125; i++)
		strcat(key, i ? ".a" : "a");
	mkx(fix->seg, "t", SHMQ_TOPIC, NULL);
	mkq(fix->seg, "q", 16, 300, 0);
	t_assert_err(shmq_bind(fix->seg, "t", "q", bind), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "t", &x), 0);
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	t_assert_err(pub(x, key, "no"), 0);
	key[strlen(key) - 1] = 'z';
	t_assert_err(pub(x, key, "yes"), 1);
	shmq_exchange_close(x);
	shmq_close(q);
}

static void test_bind_rules(void **state)
{
	struct t_fix *fix = *state;
	char longkey[300];

	memset(longkey, 'k', sizeof(longkey));
	longkey[256] = 0;
	mkx(fix->seg, "x", SHMQ_DIRECT, NULL);
	mkq(fix->seg, "q", 0, 0, 0);
	mkq(fix->seg, "s", 0, 0, SHMQ_SPSC);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "k"), 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "k"), 0);       /* again */
	t_assert_err(shmq_binding_list(fix->seg, "x", NULL, 0), 1);
	t_assert_err(shmq_bind(fix->seg, "x", "q", longkey), -EINVAL);
	longkey[255] = 0;
	t_assert_err(shmq_bind(fix->seg, "x", "q", longkey), 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", NULL), -EINVAL);
	t_assert_err(shmq_bind(fix->seg, "nope", "q", "k"), -ENOENT);
	t_assert_err(shmq_bind(fix->seg, "x", "nope", "k"), -ENOENT);
	t_assert_err(shmq_bind(fix->seg, "q", "q", "k"), -ENOENT);
	t_assert_err(shmq_bind(fix->seg, "x", "x", "k"), -ENOENT);
	t_assert_err(shmq_bind(fix->seg, "x", "s", "k"), -EINVAL);
	t_assert_err(shmq_bind(fix->seg, "x", "b/d", "k"), -EINVAL);
	t_assert_err(shmq_unbind(fix->seg, "x", "q", "other"), -ENOENT);
	t_assert_err(shmq_unbind(fix->seg, "x", "q", "k"), 0);
	t_assert_err(shmq_unbind(fix->seg, "x", "q", "k"), -ENOENT);
	t_assert_err(shmq_binding_list(fix->seg, "x", NULL, 0), 1);
	t_assert_err(shmq_unbind(fix->seg, "x", "q", longkey), 0);
	t_assert_err(shmq_binding_list(fix->seg, "x", NULL, 0), 0);
	t_assert_err(shmq_binding_list(fix->seg, "nope", NULL, 0), -ENOENT);
}

static void test_publish_args(void **state)
{
	struct t_fix *fix = *state;
	char longkey[300];
	shmq_exchange *x;

	memset(longkey, 'k', sizeof(longkey));
	longkey[256] = 0;
	mkx(fix->seg, "x", SHMQ_DIRECT, NULL);
	mkq(fix->seg, "q", 4, 16, 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "0123456789"), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "x", &x), 0);
	t_assert_err(shmq_publish(NULL, "k", "m", 1, 0), -EINVAL);
	t_assert_err(shmq_publish(x, NULL, "m", 1, 0), -EINVAL);
	t_assert_err(shmq_publish(x, "k", NULL, 1, 0), -EINVAL);
	t_assert_err(shmq_publish(x, "k", "m", 1, -5), -EINVAL);
	t_assert_err(shmq_publish(x, longkey, "m", 1, 0), -EINVAL);
	t_assert_err(shmq_publish(x, "k", NULL, 0, 0), 0);
	/* Key and payload share msg_size: 10 + 6 fits, 10 + 7 does not. */
	t_assert_err(shmq_publish(x, "0123456789", "abcdef", 6, 0), 1);
	t_assert_err(shmq_publish(x, "0123456789", "abcdefg", 7, 0),
		     -EMSGSIZE);
	shmq_exchange_close(x);
}

static void test_alternate(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_exchange_info xi;
	shmq_exchange *x;
	shmq *q;

	/* main -> alt1 -> alt2 -> main (a cycle, followed once each) */
	mkx(fix->seg, "main", SHMQ_DIRECT, "alt1");
	mkx(fix->seg, "alt1", SHMQ_TOPIC, "alt2");
	mkx(fix->seg, "alt2", SHMQ_FANOUT, "main");
	mkq(fix->seg, "q", 16, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "alt1", "q", "x.*"), 0);
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "main", &x), 0);
	t_assert_err(pub(x, "x.y", "via-alt1"), 1);
	t_assert_err(pub(x, "nothing", "lost"), 0);
	recv_key(q, "via-alt1", "x.y");
	t_expect_empty(q);
	t_assert_err(shmq_exchange_stat(fix->seg, "main", &xi), 0);
	assert_int_equal(xi.published, 2);
	assert_int_equal(xi.routed, 1);
	assert_int_equal(xi.unroutable, 1);
	assert_string_equal(xi.alternate, "alt1");
	assert_int_equal(xi.type, SHMQ_DIRECT);
	/* A fanout alternate takes everything once it has a queue. */
	t_assert_err(shmq_bind(fix->seg, "alt2", "q", ""), 0);
	t_assert_err(pub(x, "nothing", "via-alt2"), 1);
	recv_key(q, "via-alt2", "nothing");
	/* Matching at main itself: no alternate. */
	t_assert_err(shmq_bind(fix->seg, "main", "q", "direct"), 0);
	t_assert_err(pub(x, "direct", "d"), 1);
	recv_key(q, "d", "direct");
	t_expect_empty(q);
	shmq_exchange_close(x);
	shmq_close(q);
}

/* ---- all or nothing, overflow policies -------------------------------------- */

static void test_all_or_nothing(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	shmq_exchange *x;
	shmq *a, *b;

	mkx(fix->seg, "f", SHMQ_FANOUT, NULL);
	mkq(fix->seg, "a", 4, 64, 0);
	mkq(fix->seg, "b", 2, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "f", "a", ""), 0);
	t_assert_err(shmq_bind(fix->seg, "f", "b", ""), 0);
	t_assert_err(shmq_open(fix->seg, "a", &a), 0);
	t_assert_err(shmq_open(fix->seg, "b", &b), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "f", &x), 0);
	t_assert_err(pub(x, "k", "1"), 2);
	t_assert_err(pub(x, "k", "2"), 2);
	/* b is full: nothing goes anywhere. */
	t_assert_err(pub(x, "k", "3"), -EAGAIN);
	t_assert_timeout(shmq_publish(x, "k", "4", 1, 20 * T_MS), 20 * T_MS);
	t_assert_err(shmq_queue_stat(fix->seg, "a", &qi), 0);
	assert_int_equal(qi.depth, 2);
	recv_key(b, "1", "k");
	t_assert_err(pub(x, "k", "5"), 2);
	recv_key(a, "1", "k");
	recv_key(a, "2", "k");
	recv_key(a, "5", "k");
	t_expect_empty(a);
	recv_key(b, "2", "k");
	recv_key(b, "5", "k");
	t_expect_empty(b);
	shmq_exchange_close(x);
	shmq_close(a);
	shmq_close(b);
}

static void test_drop_newest(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	struct shmq_exchange_info xi;
	shmq_exchange *x;
	shmq *a, *d;

	mkx(fix->seg, "f", SHMQ_FANOUT, NULL);
	mkq(fix->seg, "a", 8, 64, 0);
	mkq(fix->seg, "d", 2, 64, SHMQ_DROP_NEWEST);
	t_assert_err(shmq_bind(fix->seg, "f", "a", ""), 0);
	t_assert_err(shmq_bind(fix->seg, "f", "d", ""), 0);
	t_assert_err(shmq_open(fix->seg, "a", &a), 0);
	t_assert_err(shmq_open(fix->seg, "d", &d), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "f", &x), 0);
	t_assert_err(pub(x, "k", "1"), 2);
	t_assert_err(pub(x, "k", "2"), 2);
	t_assert_err(pub(x, "k", "3"), 1);         /* d full: skipped */
	/* shmq_send: -EAGAIN at once, whatever the timeout. */
	assert_eagain_at_once(shmq_send(d, "s", 1, SHMQ_FOREVER));
	t_assert_err(shmq_queue_stat(fix->seg, "d", &qi), 0);
	assert_int_equal(qi.dropped, 2);
	assert_int_equal(qi.flags, SHMQ_DROP_NEWEST);
	t_assert_err(shmq_exchange_stat(fix->seg, "f", &xi), 0);
	assert_int_equal(xi.dropped, 1);
	assert_int_equal(xi.routed, 5);
	recv_key(d, "1", "k");
	recv_key(d, "2", "k");
	t_expect_empty(d);
	recv_key(a, "1", "k");
	recv_key(a, "2", "k");
	recv_key(a, "3", "k");
	shmq_exchange_close(x);
	shmq_close(a);
	shmq_close(d);
}

static void test_drop_oldest(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	struct shmq_exchange_info xi;
	shmq_exchange *x;
	shmq *o;

	mkx(fix->seg, "f", SHMQ_FANOUT, NULL);
	mkq(fix->seg, "o", 2, 64, SHMQ_DROP_OLDEST);
	t_assert_err(shmq_bind(fix->seg, "f", "o", ""), 0);
	t_assert_err(shmq_open(fix->seg, "o", &o), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "f", &x), 0);
	t_assert_err(pub(x, "k", "1"), 1);
	t_assert_err(pub(x, "k", "2"), 1);
	t_assert_err(pub(x, "k", "3"), 1);         /* evicts 1 */
	t_assert_err(shmq_send(o, "4", 1, SHMQ_FOREVER), 0);   /* evicts 2 */
	t_assert_err(shmq_queue_stat(fix->seg, "o", &qi), 0);
	assert_int_equal(qi.dropped, 2);
	t_assert_err(shmq_exchange_stat(fix->seg, "f", &xi), 0);
	assert_int_equal(xi.dropped, 1);
	recv_key(o, "3", "k");
	recv_key(o, "4", "");
	t_expect_empty(o);
	shmq_exchange_close(x);
	shmq_close(o);
}

static void test_overflow_flags(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr both = { .flags = SHMQ_DROP_NEWEST | SHMQ_DROP_OLDEST },
			 spsc_old = { .flags = SHMQ_SPSC | SHMQ_DROP_OLDEST },
			 spsc_new = { .capacity = 4,
				      .flags = SHMQ_SPSC | SHMQ_DROP_NEWEST },
			 unknown = { .flags = 0x100 };
	struct shmq_queue_info qi;
	shmq *s;
	int i;

	t_assert_err(shmq_create(fix->seg, "a", &both), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "a", &spsc_old), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "a", &unknown), -EINVAL);
	t_assert_err(shmq_create(fix->seg, "s", &spsc_new), 0);
	t_assert_err(shmq_open(fix->seg, "s", &s), 0);
	for (i = 0; i < 4; i++)
		t_assert_err(shmq_send(s, "m", 1, 0), 0);
	assert_eagain_at_once(shmq_send(s, "m", 1, SHMQ_FOREVER));
	t_assert_err(shmq_queue_stat(fix->seg, "s", &qi), 0);
	assert_int_equal(qi.dropped, 1);
	shmq_close(s);
}

struct unbinder {
	shmq_seg *seg;
	int unlink;             /* unlink the queue instead of unbinding */
};

static void *unbind_later(void *arg)
{
	struct unbinder *u = arg;

	t_sleep_ms(50);
	if (u->unlink)
		t_assert_err(shmq_unlink(u->seg, "a"), 0);
	else
		t_assert_err(shmq_unbind(u->seg, "f", "a", ""), 0);
	return NULL;
}

/*
 * A publish blocked for ever on a full queue that is then unbound (or
 * unlinked) must route again and return: nobody may ever make room there.
 * Fails (the watchdog, or the bound) if the wait never looks at the
 * route again.
 */
static void test_publish_unblocked_by_unbind(void **state)
{
	struct t_fix *fix = *state;
	struct unbinder u = { fix->seg, 0 };
	shmq_exchange *x;
	pthread_t th;
	shmq *b;
	int round;

	for (round = 0; round < 2; round++) {
		u.unlink = round;
		mkx(fix->seg, "f", SHMQ_FANOUT, NULL);
		mkq(fix->seg, "a", 2, 64, 0);
		mkq(fix->seg, "b", 8, 64, 0);
		t_assert_err(shmq_bind(fix->seg, "f", "a", ""), 0);
		t_assert_err(shmq_bind(fix->seg, "f", "b", ""), 0);
		t_assert_err(shmq_exchange_open(fix->seg, "f", &x), 0);
		t_assert_err(pub(x, "k", "1"), 2);
		t_assert_err(pub(x, "k", "2"), 2);
		assert_int_equal(pthread_create(&th, NULL, unbind_later, &u), 0);
		/* Returns once a is out of the route: b alone gets it. */
		t_assert_err(shmq_publish(x, "k", "3", 1, SHMQ_FOREVER), 1);
		pthread_join(th, NULL);
		t_assert_err(shmq_open(fix->seg, "b", &b), 0);
		recv_key(b, "1", "k");
		recv_key(b, "2", "k");
		recv_key(b, "3", "k");
		shmq_close(b);
		shmq_exchange_close(x);
		t_assert_err(shmq_exchange_unlink(fix->seg, "f"), 0);
		if (!round)
			t_assert_err(shmq_unlink(fix->seg, "a"), 0);
		t_assert_err(shmq_unlink(fix->seg, "b"), 0);
	}
}

/*
 * SHMQ_PUBLISH_MAX default-policy queues: delivered to all; one more is
 * -E2BIG and leaves nothing behind.  (At 64 a publish once ran out of its
 * attachment's 60 operation records midway, every time, and left a
 * tombstone in each queue it had claimed.)
 */
static void test_publish_max_fanout(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	shmq_exchange *x;
	char name[32];
	unsigned i;

	mkx(fix->seg, "fan", SHMQ_FANOUT, NULL);
	for (i = 0; i < SHMQ_PUBLISH_MAX; i++) {
		snprintf(name, sizeof(name), "q%u", i);
		mkq(fix->seg, name, 2, 64, 0);
		t_assert_err(shmq_bind(fix->seg, "fan", name, ""), 0);
	}
	t_assert_err(shmq_exchange_open(fix->seg, "fan", &x), 0);
	t_assert_err(pub(x, "", "m"), SHMQ_PUBLISH_MAX);
	mkq(fix->seg, "one-more", 2, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "fan", "one-more", ""), 0);
	t_assert_err(pub(x, "", "m"), -E2BIG);
	assert_string_equal(shmq_errname(-E2BIG), "E2BIG");
	for (i = 0; i < SHMQ_PUBLISH_MAX; i++) {
		snprintf(name, sizeof(name), "q%u", i);
		t_assert_err(shmq_queue_stat(fix->seg, name, &qi), 0);
		assert_int_equal(qi.sent, 1);   /* no claim, no tombstone */
	}
	shmq_exchange_close(x);
}

struct blocked {
	shmq *q;
	shmq_exchange *x;
	_Atomic int done;
	int rc;
};

static void *send_blocked(void *arg)
{
	struct blocked *b = arg;

	b->rc = shmq_send(b->q, "s", 1, SHMQ_FOREVER);
	atomic_store(&b->done, 1);
	return NULL;
}

static void *publish_blocked(void *arg)
{
	struct blocked *b = arg;

	b->rc = shmq_publish(b->x, "", "p", 1, SHMQ_FOREVER);
	atomic_store(&b->done, 1);
	return NULL;
}

/*
 * A publisher woken on a full queue A that then waits for another full
 * queue B must pass A's wake-up on: a sender asleep on A behind it must
 * get the room.  Long wait slices (SHMQ_STALL_NS) keep the order of the
 * sleepers fixed; the sender stays asleep without the pass-on.
 */
static void test_publish_passes_wakeup_on(void **state)
{
	struct t_fix *fix = *state;
	struct blocked p = { 0 }, snd = { 0 };
	pthread_t tp, ts;
	shmq *a, *b;
	char buf[8];
	int i, sent;

	setenv("SHMQ_STALL_NS", "10000000000", 1);
	mkq(fix->seg, "A", 2, 64, 0);
	mkq(fix->seg, "B", 2, 64, 0);
	mkx(fix->seg, "fan", SHMQ_FANOUT, NULL);
	t_assert_err(shmq_bind(fix->seg, "fan", "A", ""), 0);
	t_assert_err(shmq_bind(fix->seg, "fan", "B", ""), 0);
	t_assert_err(shmq_open(fix->seg, "A", &a), 0);
	t_assert_err(shmq_open(fix->seg, "B", &b), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "fan", &p.x), 0);
	for (i = 0; i < 2; i++) {
		t_assert_err(shmq_send(a, "a", 1, 0), 0);
		t_assert_err(shmq_send(b, "b", 1, 0), 0);
	}
	assert_int_equal(pthread_create(&tp, NULL, publish_blocked, &p), 0);
	t_sleep_ms(200);
	snd.q = a;
	assert_int_equal(pthread_create(&ts, NULL, send_blocked, &snd), 0);
	t_sleep_ms(200);
	t_assert_err(shmq_recv(a, buf, sizeof(buf), 0), 1);    /* one wake */
	for (i = 0; i < 100 && !atomic_load(&snd.done); i++)
		t_sleep_ms(10);
	sent = atomic_load(&snd.done);
	while (!atomic_load(&p.done) || !atomic_load(&snd.done)) {
		(void)shmq_recv(a, buf, sizeof(buf), 0);
		(void)shmq_recv(b, buf, sizeof(buf), 0);
		t_sleep_ms(10);
	}
	pthread_join(tp, NULL);
	pthread_join(ts, NULL);
	unsetenv("SHMQ_STALL_NS");
	shmq_exchange_close(p.x);
	shmq_close(a);
	shmq_close(b);
	assert_true(sent);
	t_assert_err(p.rc, 2);
	t_assert_err(snd.rc, 0);
}

/* ---- metadata ------------------------------------------------------------------ */

static void test_recv_meta(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_meta m;
	shmq_exchange *x;
	char buf[64];
	shmq *q;

	mkx(fix->seg, "x", SHMQ_DIRECT, NULL);
	mkq(fix->seg, "q", 4, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "k.e.y"), 0);
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "x", &x), 0);
	t_assert_err(shmq_send(q, "plain", 5, 0), 0);
	t_assert_err(pub(x, "k.e.y", "keyed"), 1);
	t_assert_err(pub(x, "k.e.y", "tiny"), 1);
	memset(&m, 0x5a, sizeof(m));
	t_assert_err(shmq_recv_meta(q, buf, sizeof(buf), &m, 0), 5);
	assert_memory_equal(buf, "plain", 5);
	assert_int_equal(m.key_len, 0);
	assert_string_equal(m.key, "");
	assert_int_equal(m.seq, 0);
	assert_int_equal(m.deliveries, 1);
	/* shmq_recv sees the payload only. */
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), 5);
	assert_memory_equal(buf, "keyed", 5);
	/* Too small a buffer: -EMSGSIZE, not consumed; meta may be NULL. */
	t_assert_err(shmq_recv_meta(q, buf, 3, &m, 0), -EMSGSIZE);
	t_assert_err(shmq_recv_meta(q, buf, 4, NULL, 0), 4);
	t_assert_err(shmq_recv_meta(q, buf, sizeof(buf), &m, 0), -EAGAIN);
	t_assert_err(pub(x, "k.e.y", "seq3"), 1);
	t_assert_err(shmq_recv_meta(q, buf, sizeof(buf), &m, 0), 4);
	assert_int_equal(m.seq, 3);
	assert_string_equal(m.key, "k.e.y");
	shmq_exchange_close(x);
	shmq_close(q);
}

/* ---- lifetimes -------------------------------------------------------------------- */

static void test_unlink_removes_bindings(void **state)
{
	struct t_fix *fix = *state;
	shmq_exchange *x;
	shmq *q;

	mkx(fix->seg, "x", SHMQ_FANOUT, NULL);
	mkq(fix->seg, "q", 4, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", ""), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "x", &x), 0);
	t_assert_err(pub(x, "k", "1"), 1);
	t_assert_err(shmq_unlink(fix->seg, "q"), 0);
	t_assert_err(shmq_binding_list(fix->seg, NULL, NULL, 0), 0);
	t_assert_err(pub(x, "k", "2"), 0);
	/* A new queue of that name is not bound. */
	mkq(fix->seg, "q", 4, 64, 0);
	t_assert_err(pub(x, "k", "3"), 0);
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	t_expect_empty(q);
	t_assert_err(shmq_bind(fix->seg, "x", "q", ""), 0);
	t_assert_err(pub(x, "k", "4"), 1);
	recv_key(q, "4", "k");
	/* Unlinking the exchange drops its table; a new one starts empty. */
	t_assert_err(shmq_exchange_unlink(fix->seg, "x"), 0);
	mkx(fix->seg, "x", SHMQ_FANOUT, NULL);
	t_assert_err(shmq_binding_list(fix->seg, "x", NULL, 0), 0);
	shmq_exchange_close(x);
	shmq_close(q);
}

static void test_autodelete(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_queue_info qi;
	shmq_exchange *x;
	shmq *q, *q2;

	mkx(fix->seg, "x", SHMQ_FANOUT, NULL);
	mkq(fix->seg, "never", 4, 64, SHMQ_AUTODELETE);
	mkq(fix->seg, "sub", 4, 64, SHMQ_AUTODELETE);
	t_assert_err(shmq_bind(fix->seg, "x", "sub", ""), 0);
	t_assert_err(shmq_bind(fix->seg, "x", "never", ""), 0);
	t_assert_err(shmq_open(fix->seg, "sub", &q), 0);
	t_assert_err(shmq_open(fix->seg, "sub", &q2), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "x", &x), 0);
	t_assert_err(pub(x, "k", "1"), 2);
	shmq_close(q2);
	t_assert_err(shmq_queue_stat(fix->seg, "sub", &qi), 0);
	/* The exchange's own handle does not keep it. */
	shmq_close(q);
	t_assert_err(shmq_queue_stat(fix->seg, "sub", &qi), -ENOENT);
	t_assert_err(shmq_binding_list(fix->seg, "x", NULL, 0), 1);
	t_assert_err(pub(x, "k", "2"), 1);
	/* Never opened: stays. */
	t_assert_err(shmq_queue_stat(fix->seg, "never", &qi), 0);
	assert_int_equal(qi.depth, 2);
	shmq_exchange_close(x);
	/* The storage went with the last pin. */
	t_assert_err(shmq_queue_list(fix->seg, NULL, 0), 1);
}

/* ---- capacity: many bindings ------------------------------------------------------ */

static void test_many_bindings(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_exchange_info xi;
	struct shmq_binding_info *bi;
	char key[32];
	shmq_exchange *x;
	shmq *a, *b;
	int i, n = 10000;

	mkx(fix->seg, "t", SHMQ_TOPIC, NULL);
	mkq(fix->seg, "a", 4, 64, 0);
	mkq(fix->seg, "b", 4, 64, 0);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "svc%d.*.error", i);
		t_assert_err(shmq_bind(fix->seg, "t", i % 2 ? "a" : "b", key),
			     0);
	}
	t_assert_err(shmq_exchange_stat(fix->seg, "t", &xi), 0);
	assert_int_equal(xi.bindings, n);
	bi = calloc((size_t)n, sizeof(*bi));
	assert_non_null(bi);
	t_assert_err(shmq_binding_list(fix->seg, "t", bi, (unsigned)n), n);
	assert_string_equal(bi[7].key, "svc7.*.error");
	assert_string_equal(bi[7].queue, "a");
	assert_string_equal(bi[7].exchange, "t");
	free(bi);
	/* Unbind half, then the table is compacted on growth. */
	for (i = 0; i < n; i += 2) {
		snprintf(key, sizeof(key), "svc%d.*.error", i);
		t_assert_err(shmq_unbind(fix->seg, "t", "b", key), 0);
	}
	t_assert_err(shmq_exchange_open(fix->seg, "t", &x), 0);
	t_assert_err(shmq_open(fix->seg, "a", &a), 0);
	t_assert_err(shmq_open(fix->seg, "b", &b), 0);
	t_assert_err(pub(x, "svc4321.db.error", "hit"), 1);
	t_assert_err(pub(x, "svc4320.db.error", "miss"), 0);
	recv_key(a, "hit", "svc4321.db.error");
	t_expect_empty(b);
	for (i = 0; i < n; i += 2) {
		snprintf(key, sizeof(key), "svc%d.#", i);
		t_assert_err(shmq_bind(fix->seg, "t", "b", key), 0);
	}
	t_assert_err(pub(x, "svc4320", "now"), 1);
	recv_key(b, "now", "svc4320");
	t_assert_err(shmq_binding_list(fix->seg, NULL, NULL, 0), n);
	shmq_exchange_close(x);
	shmq_close(a);
	shmq_close(b);
}

/* ---- listings ------------------------------------------------------------------------ */

static void test_listings(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_exchange_info xs[4];
	struct shmq_binding_info bs[4];
	struct shmq_queue_info qs[4];

	mkx(fix->seg, "x1", SHMQ_TOPIC, NULL);
	mkx(fix->seg, "x2", SHMQ_FANOUT, "x1");
	mkq(fix->seg, "q", 4, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "x1", "q", "a.#"), 0);
	t_assert_err(shmq_bind(fix->seg, "x2", "q", ""), 0);
	t_assert_err(shmq_exchange_list(fix->seg, xs, 4), 2);
	assert_string_equal(xs[0].name, "x1");
	assert_int_equal(xs[0].type, SHMQ_TOPIC);
	assert_int_equal(xs[0].bindings, 1);
	assert_int_equal(xs[0].state, SHMQ_QUEUE_LIVE);
	assert_string_equal(xs[1].alternate, "x1");
	t_assert_err(shmq_exchange_list(fix->seg, NULL, 0), 2);
	t_assert_err(shmq_exchange_list(fix->seg, NULL, 1), -EINVAL);
	/* Queues and exchanges are listed apart. */
	t_assert_err(shmq_queue_list(fix->seg, qs, 4), 1);
	t_assert_err(shmq_binding_list(fix->seg, NULL, bs, 4), 2);
	assert_string_equal(bs[0].exchange, "x1");
	assert_string_equal(bs[0].key, "a.#");
	assert_int_equal(bs[0].key_len, 3);
	assert_string_equal(bs[1].exchange, "x2");
	t_assert_err(shmq_exchange_stat(fix->seg, "q", &xs[0]), -ENOENT);
	t_assert_err(shmq_queue_stat(fix->seg, "x1", &qs[0]), -ENOENT);
}

/*
 * A binding table whose magic is garbage: every listing says -EPROTO
 * (shmq_exchange_stat once said 0 bindings instead), and routing through
 * it delivers nothing rather than reading garbage.
 */
static void test_corrupt_table_eproto(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_exchange_info xi;
	struct shmq_binding_info bi;
	const struct seg_hdr *h;
	struct dir_entry *e;
	unsigned char *base;
	char path[128];
	uint32_t i;
	int fd;

	mkx(fix->seg, "x", SHMQ_DIRECT, NULL);
	mkq(fix->seg, "q", 4, 64, 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "k"), 0);
	fd = open(t_shm_path(path, sizeof(path), fix->name), O_RDWR);
	assert_true(fd >= 0);
	base = mmap(NULL, T_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    0);
	close(fd);
	assert_true(base != MAP_FAILED);
	h = (const struct seg_hdr *)base;
	e = (struct dir_entry *)(base + h->dir_off);
	for (i = 0; i < h->max_queues && strcmp(e[i].name, "x"); i++)
		;
	assert_true(i < h->max_queues);
	assert_int_equal(e[i].kind, DIR_KIND_EXCHANGE);
	assert_true(e[i].aux != 0);
	memset(base + DIR_AUX_OFF(e[i].aux), 0x5a, 8);    /* the magic */
	t_assert_err(shmq_exchange_stat(fix->seg, "x", &xi), -EPROTO);
	t_assert_err(shmq_exchange_list(fix->seg, &xi, 1), -EPROTO);
	t_assert_err(shmq_binding_list(fix->seg, "x", &bi, 1), -EPROTO);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "other"), -EPROTO);
	munmap(base, T_SEG_SIZE);
}

/*
 * A program built against 0.3 calls shmq_queue_list@SHMQ_0.2 with arrays
 * of the 0.3 struct: the library must write no byte past them.
 */
static void test_queue_info_abi_0_3(void **state)
{
	struct t_fix *fix = *state;
	size_t old = offsetof(struct shmq_queue_info, dropped);
	int (*list)(shmq_seg *, void *, unsigned);
	int (*stat)(shmq_seg *, const char *, void *);
	int (*sopen)(const char *, shmq_seg **);
	void (*sclose)(shmq_seg *);
	unsigned char buf[3 * sizeof(struct shmq_queue_info)];
	shmq_seg *seg;
	void *h;
	size_t i;

	h = dlopen("build/libshmq.so", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		t_skip("build/libshmq.so not found (run from the top directory)");
	list = (int (*)(shmq_seg *, void *, unsigned))
		dlvsym(h, "shmq_queue_list", "SHMQ_0.2");
	stat = (int (*)(shmq_seg *, const char *, void *))
		dlvsym(h, "shmq_queue_stat", "SHMQ_0.2");
	sopen = (int (*)(const char *, shmq_seg **))
		dlvsym(h, "shmq_seg_open", "SHMQ_0.1");
	sclose = (void (*)(shmq_seg *))dlvsym(h, "shmq_seg_close", "SHMQ_0.1");
	assert_non_null(list);
	assert_non_null(stat);
	assert_non_null(sopen);
	assert_non_null(sclose);
	mkq(fix->seg, "q1", 4, 64, 0);
	mkq(fix->seg, "q2", 4, 64, 0);
	t_assert_err(sopen(fix->name, &seg), 0);
	memset(buf, 0xa5, sizeof(buf));
	t_assert_err(list(seg, buf, 2), 2);
	assert_string_equal((char *)buf + old, "q2");
	for (i = 2 * old; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xa5);
	memset(buf, 0xa5, sizeof(buf));
	t_assert_err(stat(seg, "q1", buf), 0);
	assert_string_equal((char *)buf, "q1");
	for (i = old; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xa5);
	sclose(seg);
	dlclose(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_create_open_unlink),
		T(test_direct),
		T(test_fanout),
		T(test_topic),
		T(test_topic_no_blowup),
		T(test_bind_rules),
		T(test_publish_args),
		T(test_alternate),
		T(test_all_or_nothing),
		T(test_drop_newest),
		T(test_drop_oldest),
		T(test_overflow_flags),
		T(test_publish_unblocked_by_unbind),
		T(test_publish_max_fanout),
		T(test_publish_passes_wakeup_on),
		T(test_recv_meta),
		T(test_unlink_removes_bindings),
		T(test_autodelete),
		T(test_many_bindings),
		T(test_listings),
		T(test_corrupt_table_eproto),
		T(test_queue_info_abi_0_3),
#undef T
	};

	return cmocka_run_group_tests_name("exchange", tests, t_group_setup,
					   t_group_teardown);
}
