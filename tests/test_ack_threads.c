// SPDX-License-Identifier: MIT
/*
 * test_ack_threads.c - acknowledged delivery with threads of one process:
 * producer threads and worker threads on one queue fetching, acking and
 * sometimes giving back (each worker with its own handle, or all on one),
 * and fetchers that hand their tags to another thread which acks them
 * through the same handle.  A ledger counts each message's acks and
 * nacks: every message is acknowledged exactly once by the end, each
 * delivery carries deliveries = 1 + its nacks so far (REDELIVERED with
 * it), and its seq never changes.  Also: a thread blocked in shmq_fetch
 * at its handle's prefetch limit, or at the full area, is released by
 * another thread's ack.  Built with -fsanitize=thread too (no fork here).
 *
 * Threads only record; the test's thread asserts after joining them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define MAX_THREADS	6
#define MSG_SIZE	64
#define MAX_NACKS	2		/* per message: bounds the run */
#define WAIT_NS		(20 * T_MS)	/* a worker's fetch, then a look at
					 * whether everything is acked */
#define LONG_NS		(10000 * T_MS)	/* "forever", but a hang is reported
					 * as one rather than by the watchdog */
#define TAG_RING	64

struct run;

struct worker {
	struct run *r;
	pthread_t th;
	uint32_t id;
	shmq *q;
	/* Results, read by the test after pthread_join(). */
	int err;			/* first error, 0 if none */
	char what[160];
	uint64_t count;			/* sent, fetched or acked */
	uint64_t nacked;
};

/* A tag on its way from a fetcher to the acker. */
struct pending {
	uint64_t tag;
	uint32_t idx;
};

struct run {
	struct t_fix *fix;
	const char *qname;
	shmq *shared;			/* NULL: every worker opens its own */
	int pass;			/* workers pass tags to the acker */
	uint32_t nprod, nwork, per_prod;
	uint64_t total;
	/* The ledger, per message (producer * per_prod + seq). */
	atomic_uint *acks, *nacks;
	_Atomic uint64_t *seq1;		/* 1 + its seq at the first delivery */
	atomic_ullong acked;		/* messages acknowledged */
	atomic_int stop;		/* a thread failed: everyone ends */
	struct worker prod[MAX_THREADS], work[MAX_THREADS], acker;
	/* The fetchers' tags for the acker (pass mode). */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pending ring[TAG_RING];
	unsigned head, tail;
};

static void record(struct worker *w, int err, const char *fmt, uint64_t a,
		   uint64_t b)
{
	/* The rest would wait for messages that will not come. */
	atomic_store(&w->r->stop, 1);
	if (w->err)
		return;
	w->err = err ? err : -1;
	snprintf(w->what, sizeof(w->what), fmt, (unsigned long long)a,
		 (unsigned long long)b);
}

static int worker_open(struct worker *w)
{
	int rc;

	if (w->r->shared) {
		w->q = w->r->shared;
		return 0;
	}
	rc = shmq_open(w->r->fix->seg, w->r->qname, &w->q);
	if (rc)
		record(w, rc, "shmq_open %llu %llu", 0, 0);
	return rc;
}

static void worker_close(struct worker *w)
{
	if (!w->r->shared)
		shmq_close(w->q);
}

static int all_acked(struct run *r)
{
	return atomic_load(&r->acked) >= r->total || atomic_load(&r->stop);
}

static void *producer(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	unsigned char buf[MSG_SIZE];
	uint32_t seq;
	size_t n;
	int rc;

	if (worker_open(w))
		return NULL;
	for (seq = 0; seq < r->per_prod && !atomic_load(&r->stop); seq++) {
		n = t_msg_fill(buf, MSG_SIZE, w->id, seq);
		rc = shmq_send(w->q, buf, n, LONG_NS);
		if (rc) {
			record(w, rc, "send seq %llu %llu", seq, 0);
			break;
		}
		w->count++;
	}
	worker_close(w);
	return NULL;
}

/*
 * Done with message @idx fetched as @tag through @q: give it back now and
 * then (at most MAX_NACKS times), else acknowledge it.  The ledger moves
 * first, so that whoever gets the message again sees its count.
 */
static void settle(struct worker *w, shmq *q, uint64_t tag, uint32_t idx,
		   uint32_t *rng)
{
	struct run *r = w->r;
	int rc;

	if (atomic_load(&r->nacks[idx]) < MAX_NACKS && t_rand(rng) % 8 == 0) {
		atomic_fetch_add(&r->nacks[idx], 1);
		rc = shmq_nack(q, tag);
		if (rc)
			record(w, rc, "nack of message %llu: %llu", idx, 0);
		w->nacked++;
		return;
	}
	if (atomic_fetch_add(&r->acks[idx], 1) != 0)
		record(w, 0, "message %llu acknowledged twice (%llu)", idx, 0);
	rc = shmq_ack(q, tag);
	if (rc)
		record(w, rc, "ack of message %llu: %llu", idx, 0);
	w->count++;
	atomic_fetch_add(&r->acked, 1);
}

/* Check a fetched message against the ledger; its index, or -1. */
static int64_t check_fetched(struct worker *w, const void *buf, ssize_t n,
			     const struct shmq_meta *m)
{
	struct run *r = w->r;
	uint32_t prod, seq, idx, nk;
	uint64_t s1;

	if (t_msg_check(buf, (size_t)n, &prod, &seq) || prod >= r->nprod ||
	    seq >= r->per_prod) {
		record(w, 0, "corrupt message, len %llu, after %llu",
		       (uint64_t)n, w->count);
		return -1;
	}
	idx = prod * r->per_prod + seq;
	nk = atomic_load(&r->nacks[idx]);
	if (atomic_load(&r->acks[idx]))
		record(w, 0, "message %llu fetched after its ack (%llu)", idx,
		       0);
	if (m->deliveries != nk + 1)
		record(w, 0, "message %llu: deliveries %llu", idx,
		       m->deliveries);
	if (!(m->flags & SHMQ_META_REDELIVERED) != (m->deliveries == 1))
		record(w, 0, "message %llu: flags %llu", idx, m->flags);
	s1 = atomic_load(&r->seq1[idx]);
	if (m->deliveries == 1 && s1 == 0)
		atomic_store(&r->seq1[idx], m->seq + 1);
	else if (s1 != m->seq + 1)
		record(w, 0, "message %llu: seq changed to %llu", idx, m->seq);
	return idx;
}

static void *fetcher(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	unsigned char buf[MSG_SIZE];
	uint32_t rng = 99u + w->id;
	struct shmq_meta m;
	uint64_t tag;
	int64_t idx;
	ssize_t n;

	if (worker_open(w))
		return NULL;
	while (!w->err && !all_acked(r)) {
		tag = 0;
		n = shmq_fetch(w->q, buf, sizeof(buf), &m, &tag, WAIT_NS);
		if (n == -ETIMEDOUT)
			continue;
		if (n < 0) {
			record(w, (int)n, "fetch: %llu after %llu", 0,
			       w->count);
			break;
		}
		if (!tag)
			record(w, 0, "tag 0 (%llu, %llu)", 0, 0);
		if ((idx = check_fetched(w, buf, n, &m)) < 0)
			break;
		if (!r->pass) {
			settle(w, w->q, tag, (uint32_t)idx, &rng);
			continue;
		}
		/* Hand it to the acker (room: the area bounds the tags). */
		pthread_mutex_lock(&r->mu);
		while (r->tail - r->head == TAG_RING)
			pthread_cond_wait(&r->cv, &r->mu);
		r->ring[r->tail % TAG_RING] =
			(struct pending){ tag, (uint32_t)idx };
		r->tail++;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	worker_close(w);
	return NULL;
}

/* Pass mode: acknowledges (or gives back) what the fetchers took. */
static void *acker(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	uint32_t rng = 7;
	struct pending p;

	while (!w->err && !all_acked(r)) {
		pthread_mutex_lock(&r->mu);
		while (r->head == r->tail && !all_acked(r))
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->head == r->tail) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		p = r->ring[r->head % TAG_RING];
		r->head++;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		settle(w, r->shared, p.tag, p.idx, &rng);
	}
	return NULL;
}

static void assert_worker_ok(const char *role, struct worker *w)
{
	if (w->err)
		print_error("%s %u: %s (%s)\n", role, w->id, w->what,
			    shmq_errname(w->err));
	assert_int_equal(w->err, 0);
}

static void run_ledger(struct t_fix *fix, int shared, int pass,
		       uint32_t nprod, uint32_t nwork)
{
	struct run *r = calloc(1, sizeof(*r));
	struct shmq_attr a = { .capacity = 64, .msg_size = MSG_SIZE,
			       .max_unacked = 16, .prefetch = 4 };
	struct shmq_queue_info qi;
	uint64_t nacked = 0, acked = 0, sent = 0;
	uint32_t i;

	assert_non_null(r);
	r->fix = fix;
	r->qname = "jobs";
	r->pass = pass;
	r->nprod = nprod;
	r->nwork = nwork;
	/* TSan and ASan are many times slower. */
	r->per_prod = T_SANITIZED ? 3000 : 20000;
	r->total = (uint64_t)nprod * r->per_prod;
	r->acks = calloc(r->total, sizeof(*r->acks));
	r->nacks = calloc(r->total, sizeof(*r->nacks));
	r->seq1 = calloc(r->total, sizeof(*r->seq1));
	assert_non_null(r->acks);
	assert_non_null(r->nacks);
	assert_non_null(r->seq1);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	t_assert_err(shmq_create(fix->seg, r->qname, &a), 0);
	if (shared || pass)
		t_assert_err(shmq_open(fix->seg, r->qname, &r->shared), 0);
	t_watchdog(T_WATCHDOG_S);

	for (i = 0; i < nwork; i++) {
		r->work[i] = (struct worker){ .r = r, .id = i };
		assert_int_equal(pthread_create(&r->work[i].th, NULL, fetcher,
						&r->work[i]), 0);
	}
	if (pass) {
		r->acker = (struct worker){ .r = r, .id = 0 };
		assert_int_equal(pthread_create(&r->acker.th, NULL, acker,
						&r->acker), 0);
	}
	for (i = 0; i < nprod; i++) {
		r->prod[i] = (struct worker){ .r = r, .id = i };
		assert_int_equal(pthread_create(&r->prod[i].th, NULL, producer,
						&r->prod[i]), 0);
	}
	for (i = 0; i < nprod; i++)
		pthread_join(r->prod[i].th, NULL);
	for (i = 0; i < nwork; i++)
		pthread_join(r->work[i].th, NULL);
	if (pass) {
		/* Done or failed: the acker may be waiting for a tag. */
		pthread_mutex_lock(&r->mu);
		atomic_store(&r->stop, 1);
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->acker.th, NULL);
	}
	for (i = 0; i < nprod; i++) {
		assert_worker_ok("producer", &r->prod[i]);
		sent += r->prod[i].count;
	}
	for (i = 0; i < nwork; i++) {
		assert_worker_ok("worker", &r->work[i]);
		nacked += r->work[i].nacked;
		acked += pass ? 0 : r->work[i].count;
	}
	if (pass) {
		assert_worker_ok("acker", &r->acker);
		nacked += r->acker.nacked;
		acked += r->acker.count;
	}
	assert_int_equal(sent, r->total);
	assert_int_equal(acked, r->total);
	for (i = 0; i < r->total; i++) {
		if (atomic_load(&r->acks[i]) != 1)
			print_error("message %u: %u acks\n", i,
				    atomic_load(&r->acks[i]));
		assert_int_equal(atomic_load(&r->acks[i]), 1);
		assert_true(atomic_load(&r->seq1[i]) != 0);
	}
	/* Some were given back, or the run tested less than it says. */
	assert_true(nacked > 0);
	qi = (struct shmq_queue_info){ 0 };
	t_assert_err(shmq_queue_stat(fix->seg, r->qname, &qi), 0);
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.depth, 0);
	assert_int_equal(qi.sent, r->total);
	assert_int_equal(qi.nacked, nacked);
	assert_int_equal(qi.dead_lettered, 0);
	if (r->shared)
		shmq_close(r->shared);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r->acks);
	free(r->nacks);
	free(r->seq1);
	free(r);
}

/* Each worker with its own handle. */
static void test_ledger_own_handles(void **state)
{
	run_ledger(*state, 0, 0, 2, 3);
}

/* All workers on one handle: the prefetch limit is the handle's. */
static void test_ledger_shared_handle(void **state)
{
	run_ledger(*state, 1, 0, 2, 3);
}

/*
 * Fetchers hand their tags to another thread, which acks or nacks them
 * through the same handle.  The fetchers keep meeting the prefetch limit
 * (4), which only the acker's acks lift.
 */
static void test_ledger_ack_other_thread(void **state)
{
	run_ledger(*state, 1, 1, 2, 2);
}

/* ---- a blocked fetch released by an ack -------------------------------- */

struct blocked {
	shmq *q;
	_Atomic int done;
	ssize_t rc;			/* the fetch's */
	uint64_t tag;
	int ack_rc;			/* its own ack's */
	char buf[16];
};

static void *fetch_blocked(void *arg)
{
	struct blocked *b = arg;

	b->ack_rc = -1000;
	b->rc = shmq_fetch(b->q, b->buf, sizeof(b->buf), NULL, &b->tag,
			   LONG_NS);
	if (b->rc >= 0)
		b->ack_rc = shmq_ack(b->q, b->tag);
	atomic_store(&b->done, 1);
	return NULL;
}

/*
 * @holder owes @q's limit (its handle's prefetch, or the queue's area);
 * a thread fetching through @waiter blocks, though a message waits, until
 * this thread acks one of @holder's messages.
 */
static void blocked_until_ack(shmq *holder, shmq *waiter, uint64_t tag)
{
	struct blocked b = { .q = waiter };
	pthread_t th;
	int early;

	assert_int_equal(pthread_create(&th, NULL, fetch_blocked, &b), 0);
	/* It must still wait: nothing it may take is free. */
	t_sleep_ms(100);
	early = atomic_load(&b.done);
	t_assert_err(shmq_ack(holder, tag), 0);
	pthread_join(th, NULL);
	if (early)
		print_error("the fetch returned %lld before the ack\n",
			    (long long)b.rc);
	assert_false(early);
	t_assert_err(b.rc, 3);
	assert_memory_equal(b.buf, "job", 3);
	assert_true(b.tag != 0);
	t_assert_err(b.ack_rc, 0);
}

static void test_prefetch_wait_released(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 16, .msg_size = 16,
			       .max_unacked = 8, .prefetch = 2 };
	uint64_t tag[2];
	char buf[16];
	shmq *q;
	int i;

	t_assert_err(shmq_create(fix->seg, "q", &a), 0);
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	for (i = 0; i < 4; i++)
		t_assert_err(shmq_send(q, "job", 3, 0), 0);
	for (i = 0; i < 2; i++)
		t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag[i], 0),
			     3);
	/* The handle is at its limit: the blocked thread shares it. */
	blocked_until_ack(q, q, tag[0]);
	t_assert_err(shmq_ack(q, tag[1]), 0);
	t_assert_err(shmq_queue_stat(fix->seg, "q",
				     &(struct shmq_queue_info){ 0 }), 0);
	shmq_close(q);
}

static void test_area_wait_released(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 16, .msg_size = 16,
			       .max_unacked = 2 };
	struct shmq_queue_info qi;
	uint64_t tag[2];
	char buf[16];
	shmq *h1, *h2;
	int i;

	t_assert_err(shmq_create(fix->seg, "q", &a), 0);
	t_assert_err(shmq_open(fix->seg, "q", &h1), 0);
	t_assert_err(shmq_open(fix->seg, "q", &h2), 0);
	for (i = 0; i < 4; i++)
		t_assert_err(shmq_send(h1, "job", 3, 0), 0);
	for (i = 0; i < 2; i++)
		t_assert_err(shmq_fetch(h1, buf, sizeof(buf), NULL, &tag[i], 0),
			     3);
	/* The area is full: another handle's fetch waits for h1's ack. */
	blocked_until_ack(h1, h2, tag[0]);
	t_assert_err(shmq_ack(h1, tag[1]), 0);
	t_assert_err(shmq_queue_stat(fix->seg, "q", &qi), 0);
	assert_int_equal(qi.unacked, 0);
	assert_int_equal(qi.depth, 1);
	shmq_close(h1);
	shmq_close(h2);
}

/*
 * Threads sharing one handle never owe more than its prefetch together:
 * rounds of four threads fetching at once (timeout 0) from a backlog
 * through a handle of prefetch 2 with nothing acked; then the main thread
 * acks what they got.  More than 2 in a round fails.
 */
struct racer {
	shmq *q;
	pthread_barrier_t *go;
	uint64_t tags[2];
	int got;
};

static void *race_fetch(void *arg)
{
	struct racer *r = arg;
	uint64_t tag;
	char buf[16];
	int k;

	r->got = 0;
	pthread_barrier_wait(r->go);
	for (k = 0; k < 2; k++)
		if (shmq_fetch(r->q, buf, sizeof(buf), NULL, &tag, 0) >= 0) {
			if (r->got < 2)
				r->tags[r->got] = tag;
			r->got++;
		}
	return NULL;
}

static void test_prefetch_shared_by_threads(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 64, .msg_size = 16,
			       .max_unacked = 16, .prefetch = 2 };
	struct racer r[4];
	pthread_barrier_t go;
	pthread_t th[4];
	int round, i, k, total;
	shmq *q;

	t_assert_err(shmq_create(fix->seg, "q", &a), 0);
	t_assert_err(shmq_open(fix->seg, "q", &q), 0);
	for (round = 0; round < 300; round++) {
		while (shmq_send(q, "job", 3, 0) == 0)
			;
		assert_int_equal(pthread_barrier_init(&go, NULL, 4), 0);
		for (i = 0; i < 4; i++) {
			r[i].q = q;
			r[i].go = &go;
			assert_int_equal(pthread_create(&th[i], NULL,
							race_fetch, &r[i]), 0);
		}
		for (i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		for (i = 0, total = 0; i < 4; i++)
			total += r[i].got;
		if (total != 2)
			print_error("round %d: the threads fetched %d "
				    "(prefetch 2)\n", round, total);
		assert_int_equal(total, 2);
		for (i = 0; i < 4; i++)
			for (k = 0; k < r[i].got; k++)
				t_assert_err(shmq_ack(q, r[i].tags[k]), 0);
	}
	shmq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_ledger_own_handles),
		T(test_ledger_shared_handle),
		T(test_ledger_ack_other_thread),
		T(test_prefetch_wait_released),
		T(test_prefetch_shared_by_threads),
		T(test_area_wait_released),
#undef T
	};

	return cmocka_run_group_tests_name("ack_threads", tests,
					   t_group_setup, t_group_teardown);
}
