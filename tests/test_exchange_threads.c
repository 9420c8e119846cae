// SPDX-License-Identifier: MIT
/*
 * test_exchange_threads.c - threads of one process on one exchange handle
 * (its route cache: rculfhash lookups, rebuilds, grace periods, retired
 * routes) while another thread changes what the routes depend on:
 * creates, binds, unbinds and unlinks queues.  Runs under TSan as well
 * (make check-tsan), which sees the route cache's ordering and the
 * handles' reference counts.  Threads record what they saw; only the
 * test's own thread asserts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define MSG_SIZE	64
#define NPUB		4
#define NKEYS		3
#define SEC		(1000 * T_MS)

/* Message s of any publisher goes with key s % NKEYS. */
static const char *const keys[NKEYS] = { "a.x", "a.y.z", "b.q" };
/* What the queue that stays is bound with: every key but "b.q". */
#define STAY_BINDING	"a.#"
static int stay_gets(uint32_t s)
{
	return s % NKEYS != 2;
}

/* The churning queues' bindings, and which keys each may get. */
#define NPAT		3
static const char *const pats[NPAT] = { "#", "a.*", "*.q" };
static const int pat_gets[NPAT][NKEYS] = {
	{ 1, 1, 1 }, { 1, 0, 0 }, { 0, 0, 1 },
};

struct xt {
	shmq_seg *seg;
	shmq_exchange *x;
	uint32_t per_pub;
	atomic_int pubs_done;
	atomic_int stop;
	/* stay's consumer: deliveries per (publisher, seq) */
	uint8_t *seen;
	uint64_t stay_n;
	/* churn: queues made, messages checked in them */
	unsigned churned;
	uint64_t churn_msgs;
	/* the first error of each thread, as text */
	char err[NPUB + 2][160];
};

static void __attribute__((format(printf, 3, 0)))
xt_fail(struct xt *t, int who, const char *fmt, long a, long b, long c)
{
	if (!t->err[who][0])
		snprintf(t->err[who], sizeof(t->err[who]), fmt, a, b, c);
}

struct pub_arg {
	struct xt *t;
	uint32_t id;
};

static void *publisher(void *arg)
{
	struct pub_arg *pa = arg;
	struct xt *t = pa->t;
	unsigned char buf[MSG_SIZE];
	uint32_t s;
	int rc;

	for (s = 0; s < t->per_pub; s++) {
		/* Room for the longest key before the payload. */
		size_t len = t_msg_fill(buf, MSG_SIZE - 8, pa->id, s);

		rc = shmq_publish(t->x, keys[s % NKEYS], buf, len, 20 * SEC);
		if (rc < 0 || (stay_gets(s) && rc < 1)) {
			xt_fail(t, (int)pa->id, "publisher %ld: publish %ld: %ld",
				pa->id, s, rc);
			break;
		}
	}
	atomic_fetch_add(&t->pubs_done, 1);
	return NULL;
}

/* Check one message a queue got: intact, and its key the one of its seq. */
static int check_msg(const unsigned char *buf, ssize_t n,
		     const struct shmq_meta *m, uint32_t *p, uint32_t *s)
{
	if (t_msg_check(buf, (size_t)n, p, s) || *p >= NPUB)
		return -1;
	if (strcmp(m->key, keys[*s % NKEYS]) != 0)
		return -2;
	return 0;
}

/* Drains "stay": each publisher's a-keyed messages, once, in order. */
static void *stay_consumer(void *arg)
{
	struct xt *t = arg;
	unsigned char buf[MSG_SIZE];
	int64_t last[NPUB];
	struct shmq_meta m;
	uint32_t p, s;
	shmq *q;
	ssize_t n;
	int i, rc;

	for (i = 0; i < NPUB; i++)
		last[i] = -1;
	rc = shmq_open(t->seg, "stay", &q);
	if (rc) {
		xt_fail(t, NPUB, "stay: open: %ld", rc, 0, 0);
		return NULL;
	}
	for (;;) {
		/* Publishers done: what is left is in the queue now. */
		int done = atomic_load(&t->pubs_done) == NPUB;

		n = shmq_recv_meta(q, buf, sizeof(buf), &m,
				   done ? 0 : 100 * T_MS);
		if (n == -EAGAIN && done)
			break;
		if (n == -ETIMEDOUT)
			continue;
		if (n < 0) {
			xt_fail(t, NPUB, "stay: recv: %ld", n, 0, 0);
			break;
		}
		if ((rc = check_msg(buf, n, &m, &p, &s))) {
			xt_fail(t, NPUB, rc == -1 ?
				"stay: torn message (%ld bytes)" :
				"stay: message of the wrong key (%ld bytes)",
				n, 0, 0);
			break;
		}
		if (!stay_gets(s)) {
			xt_fail(t, NPUB, "stay: %ld/%ld came with key b.q",
				p, s, 0);
			break;
		}
		if ((int64_t)s <= last[p]) {
			xt_fail(t, NPUB, "stay: %ld/%ld after seq %ld", p, s,
				last[p]);
			break;
		}
		last[p] = s;
		t->seen[p * t->per_pub + s]++;
		t->stay_n++;
	}
	shmq_close(q);
	return NULL;
}

/* Receive what churn queue @q holds; each must match pattern @pat. */
static int churn_drain(struct xt *t, shmq *q, int pat)
{
	unsigned char buf[MSG_SIZE];
	struct shmq_meta m;
	uint32_t p, s;
	ssize_t n;

	while ((n = shmq_recv_meta(q, buf, sizeof(buf), &m, 0)) >= 0) {
		if (check_msg(buf, n, &m, &p, &s)) {
			xt_fail(t, NPUB + 1, "churn: torn or mis-keyed "
				"message (%ld bytes)", n, 0, 0);
			return -1;
		}
		if (!pat_gets[pat][s % NKEYS]) {
			xt_fail(t, NPUB + 1, "churn: queue bound with pattern "
				"%ld got key %ld (seq %ld)", pat,
				(long)(s % NKEYS), s);
			return -1;
		}
		t->churn_msgs++;
	}
	return n == -EAGAIN ? 0 : -1;
}

/*
 * Creates a queue, binds it with one of the patterns, lets publishers
 * route to it for a while (draining and checking), unbinds, drains,
 * unlinks; again until the publishers are done.  Churn queues drop when
 * full (half newest, half oldest): publishers never wait for this thread.
 */
static void *churner(void *arg)
{
	struct xt *t = arg;
	char name[16];
	unsigned i;
	int rc;

	for (i = 0; atomic_load(&t->pubs_done) < NPUB; i++) {
		struct shmq_attr a = { .capacity = 16,
				       .msg_size = MSG_SIZE, .flags = (i & 1) ?
				       SHMQ_DROP_OLDEST : SHMQ_DROP_NEWEST };
		int pat = (int)(i % NPAT), k;
		shmq *q;

		snprintf(name, sizeof(name), "churn%u", i % 4);
		if ((rc = shmq_create(t->seg, name, &a)) ||
		    (rc = shmq_open(t->seg, name, &q))) {
			xt_fail(t, NPUB + 1, "churn %ld: create/open: %ld",
				i, rc, 0);
			break;
		}
		if ((rc = shmq_bind(t->seg, "tx", name, pats[pat]))) {
			xt_fail(t, NPUB + 1, "churn %ld: bind: %ld", i, rc, 0);
			shmq_close(q);
			break;
		}
		for (k = 0; k < 5; k++) {
			usleep(200);
			if (churn_drain(t, q, pat))
				break;
		}
		rc = (i % 3 == 0) ? 0 :
		     shmq_unbind(t->seg, "tx", name, pats[pat]);
		if (rc)
			xt_fail(t, NPUB + 1, "churn %ld: unbind: %ld", i, rc,
				0);
		churn_drain(t, q, pat);
		/* Every third keeps its binding: the unlink removes it. */
		rc = shmq_unlink(t->seg, name);
		if (rc)
			xt_fail(t, NPUB + 1, "churn %ld: unlink: %ld", i, rc,
				0);
		churn_drain(t, q, pat);
		shmq_close(q);
		t->churned++;
		if (t->err[NPUB + 1][0])
			break;
	}
	return NULL;
}

/*
 * NPUB publisher threads share one exchange handle; a thread creates,
 * binds, unbinds and unlinks queues all along (each change makes every
 * cached route stale: rebuilds, retirements and grace periods while
 * other threads are inside lookups); a consumer drains the queue whose
 * binding stays.  Fails on a crash or TSan report, on a lost, duplicated
 * or reordered message in the queue that stays (a rebuild that dropped
 * it from a route, a route freed while in use), on a message a churn
 * queue got with a key its binding does not match (a route of another
 * key or generation used), or on a publish error.
 */
static void test_threads_publish_while_rebinding(void **state)
{
	struct t_fix *fix = *state;
	struct pub_arg pa[NPUB];
	pthread_t pt[NPUB], ct, st;
	struct xt *t = calloc(1, sizeof(*t));
	uint32_t p, s;
	int i;

	assert_non_null(t);
	t->seg = fix->seg;
	t->per_pub = T_SANITIZED ? 3000 : 20000;
	t->seen = calloc((size_t)NPUB * t->per_pub, 1);
	assert_non_null(t->seen);
	t_assert_err(shmq_exchange_create(fix->seg, "tx",
		&(struct shmq_xattr){ SHMQ_TOPIC, 0, NULL }), 0);
	t_assert_err(shmq_create(fix->seg, "stay",
		&(struct shmq_attr){ .capacity = 256,
				       .msg_size = MSG_SIZE, .flags = 0 }), 0);
	t_assert_err(shmq_bind(fix->seg, "tx", "stay", STAY_BINDING), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "tx", &t->x), 0);
	assert_int_equal(pthread_create(&st, NULL, stay_consumer, t), 0);
	assert_int_equal(pthread_create(&ct, NULL, churner, t), 0);
	for (i = 0; i < NPUB; i++) {
		pa[i] = (struct pub_arg){ t, (uint32_t)i };
		assert_int_equal(pthread_create(&pt[i], NULL, publisher,
						&pa[i]), 0);
	}
	for (i = 0; i < NPUB; i++)
		assert_int_equal(pthread_join(pt[i], NULL), 0);
	assert_int_equal(pthread_join(ct, NULL), 0);
	assert_int_equal(pthread_join(st, NULL), 0);
	for (i = 0; i < NPUB + 2; i++)
		if (t->err[i][0])
			fail_msg("%s", t->err[i]);
	for (p = 0; p < NPUB; p++)
		for (s = 0; s < t->per_pub; s++)
			if (t->seen[p * t->per_pub + s] != stay_gets(s))
				fail_msg("stay: %u/%u received %u times", p, s,
					 t->seen[p * t->per_pub + s]);
	print_message("exchange threads: %u churned queues, %llu messages "
		      "checked in them, %llu in the queue that stays\n",
		      t->churned, (unsigned long long)t->churn_msgs,
		      (unsigned long long)t->stay_n);
	assert_true(t->churned > 0);
	shmq_exchange_close(t->x);
	free(t->seen);
	free(t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_threads_publish_while_rebinding),
	};

	return cmocka_run_group_tests_name("exchange_threads", tests,
					   t_group_setup, t_group_teardown);
}
