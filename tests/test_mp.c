// SPDX-License-Identifier: MIT
/*
 * test_mp.c - producer and consumer *processes* on a small ring, so both
 * sides block and wake each other through the shared futexes.  Each child
 * attaches on its own (shmq_seg_open after fork, never the parent's
 * handles), checks what it receives (intact, per-producer order), records
 * into a shared results area and _exit()s; the parent asserts on wait
 * statuses and totals (exactly once across all consumers).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

#define MAX_PROCS	6
#define MAX_BATCH	8
#define MSG_SIZE	64
#define CHILD_WATCHDOG	40

enum { MODE_PLAIN, MODE_BATCH, MODE_ZC };

/* Exit codes of children. */
enum {
	EXIT_OK = 0,
	EXIT_ATTACH = 1,	/* shmq_seg_open/shmq_open/set_spin failed */
	EXIT_CALL = 2,		/* a send/recv call failed */
	EXIT_CHECK = 3,		/* a message was wrong */
};

struct report {
	int err;
	char what[160];
	uint64_t count;
	uint32_t sentinels, passed_on;
};

/* Shared between the parent and its children (MAP_SHARED | MAP_ANONYMOUS). */
struct results {
	struct report prod[MAX_PROCS], cons[MAX_PROCS];
	atomic_uint seen[];		/* [nprod * per_prod] */
};

struct mp {
	const char *seg_name;
	const char *qname;
	uint32_t nprod, ncons, per_prod;
	int64_t spin;			/* < 0: the default */
	struct results *res;
	size_t res_size;
};

static void note(struct report *rep, int err, const char *fmt, uint32_t a,
		 uint32_t b)
{
	if (rep->err)
		return;
	rep->err = err ? err : -1;
	snprintf(rep->what, sizeof(rep->what), fmt, a, b);
}

/* In a child: attach to the segment and open the queue ourselves. */
static int child_attach(const struct mp *mp, struct report *rep,
			shmq_seg **seg, shmq **q)
{
	int rc;

	rc = shmq_seg_open(mp->seg_name, seg);
	if (rc) {
		note(rep, rc, "shmq_seg_open %u %u", 0, 0);
		return -1;
	}
	rc = shmq_open(*seg, mp->qname, q);
	if (rc) {
		note(rep, rc, "shmq_open %u %u", 0, 0);
		return -1;
	}
	if (mp->spin >= 0) {
		rc = shmq_set_spin(*q, mp->spin);
		if (rc) {
			note(rep, rc, "shmq_set_spin %u %u", 0, 0);
			return -1;
		}
	}
	return 0;
}

static void child_detach(shmq_seg *seg, shmq *q)
{
	shmq_close(q);
	shmq_seg_close(seg);
}

/* ---- producer processes ----------------------------------------------- */

static int producer(const struct mp *mp, uint32_t id, int mode)
{
	struct report *rep = &mp->res->prod[id];
	unsigned char bufs[MAX_BATCH][MSG_SIZE];
	struct iovec iov[MAX_BATCH];
	uint32_t seq = 0, rng = 4321u + id, n, i;
	struct shmq_msg m;
	shmq_seg *seg;
	shmq *q;
	int rc;

	if (child_attach(mp, rep, &seg, &q))
		return EXIT_ATTACH;
	while (seq < mp->per_prod) {
		if (mode == MODE_PLAIN || (mode == MODE_ZC && seq % 5 == 4)) {
			/* Zero-copy producers send every fifth plainly. */
			n = (uint32_t)t_msg_fill(bufs[0], MSG_SIZE, id, seq);
			rc = shmq_send(q, bufs[0], n, SHMQ_FOREVER);
			if (rc)
				goto call_failed;
			seq++;
		} else if (mode == MODE_BATCH) {
			n = 1 + t_rand(&rng) % MAX_BATCH;
			if (n > mp->per_prod - seq)
				n = mp->per_prod - seq;
			for (i = 0; i < n; i++) {
				iov[i].iov_base = bufs[i];
				iov[i].iov_len = t_msg_fill(bufs[i], MSG_SIZE,
							    id, seq + i);
			}
			rc = shmq_send_batch(q, iov, n, SHMQ_FOREVER);
			if (rc < 1 || (uint32_t)rc > n)
				goto call_failed;
			seq += (uint32_t)rc;
		} else {
			n = (uint32_t)t_msg_len(MSG_SIZE, id, seq);
			rc = shmq_reserve(q, n, &m, SHMQ_FOREVER);
			if (rc)
				goto call_failed;
			if (m.len != n) {
				note(rep, 0, "reserve gave len %u, not %u",
				     (uint32_t)m.len, n);
				rep->count = seq;
				return EXIT_CHECK;
			}
			t_msg_fill(m.data, MSG_SIZE, id, seq);
			rc = shmq_commit(q, &m);
			if (rc)
				goto call_failed;
			seq++;
		}
		rep->count = seq;
	}
	child_detach(seg, q);
	return EXIT_OK;

call_failed:
	note(rep, rc, "mode %u: call failed at seq %u", (uint32_t)mode, seq);
	return EXIT_CALL;
}

/* ---- consumer processes ----------------------------------------------- */

struct cstate {
	int64_t last[MAX_PROCS];
	uint32_t extra_sentinels;
	int bad;
};

static void consume_one(const struct mp *mp, struct report *rep,
			struct cstate *cs, const void *p, size_t len)
{
	uint32_t prod, seq;

	if (t_msg_check(p, len, &prod, &seq)) {
		note(rep, 0, "corrupt message of %u bytes after %u",
		     (uint32_t)len, (uint32_t)rep->count);
		cs->bad = 1;
		return;
	}
	if (prod >= T_SENTINEL) {
		if (rep->sentinels++)
			cs->extra_sentinels++;
		return;
	}
	if (prod >= mp->nprod || seq >= mp->per_prod) {
		note(rep, 0, "unknown message %u/%u", prod, seq);
		cs->bad = 1;
		return;
	}
	if ((int64_t)seq <= cs->last[prod]) {
		note(rep, 0, "producer %u: seq %u out of order", prod, seq);
		cs->bad = 1;
	}
	cs->last[prod] = seq;
	atomic_fetch_add_explicit(&mp->res->seen[prod * mp->per_prod + seq],
				  1, memory_order_relaxed);
	rep->count++;
}

static int consumer(const struct mp *mp, uint32_t id, int mode)
{
	struct report *rep = &mp->res->cons[id];
	unsigned char bufs[MAX_BATCH][MSG_SIZE + 16];
	unsigned char sent[sizeof(struct t_tag)];
	struct iovec iov[MAX_BATCH];
	uint32_t rng = 99u + id, n, i;
	struct cstate cs = { .bad = 0 };
	struct shmq_msg m;
	shmq_seg *seg;
	shmq *q;
	ssize_t len;
	int rc;

	for (i = 0; i < MAX_PROCS; i++)
		cs.last[i] = -1;
	if (child_attach(mp, rep, &seg, &q))
		return EXIT_ATTACH;
	/* Keep consuming after a bad message, so producers can finish. */
	while (!rep->sentinels) {
		if (mode == MODE_PLAIN) {
			len = shmq_recv(q, bufs[0], sizeof(bufs[0]),
					SHMQ_FOREVER);
			rc = (int)len;
			if (len < 0)
				goto call_failed;
			consume_one(mp, rep, &cs, bufs[0], (size_t)len);
		} else if (mode == MODE_BATCH) {
			n = 1 + t_rand(&rng) % MAX_BATCH;
			for (i = 0; i < n; i++) {
				iov[i].iov_base = bufs[i];
				iov[i].iov_len = sizeof(bufs[i]);
			}
			rc = shmq_recv_batch(q, iov, n, SHMQ_FOREVER);
			if (rc < 1 || (uint32_t)rc > n)
				goto call_failed;
			for (i = 0; i < (uint32_t)rc; i++)
				consume_one(mp, rep, &cs, iov[i].iov_base,
					    iov[i].iov_len);
		} else {
			rc = shmq_acquire(q, &m, SHMQ_FOREVER);
			if (rc)
				goto call_failed;
			consume_one(mp, rep, &cs, m.data, m.len);
			rc = shmq_release(q, &m);
			if (rc)
				goto call_failed;
		}
	}
	/* A batch took several sentinels: pass the others on. */
	while (cs.extra_sentinels) {
		rc = shmq_send(q, sent, t_msg_sentinel(sent, 1), SHMQ_FOREVER);
		if (rc)
			goto call_failed;
		cs.extra_sentinels--;
		rep->passed_on++;
	}
	child_detach(seg, q);
	return cs.bad ? EXIT_CHECK : EXIT_OK;

call_failed:
	note(rep, rc, "mode %u: call failed after %u messages",
	     (uint32_t)mode, (uint32_t)rep->count);
	return EXIT_CALL;
}

/* ---- the parent ------------------------------------------------------- */

struct mp_config {
	uint32_t nprod, ncons, per_prod, capacity;
	int64_t spin;
	const int *prod_modes, *cons_modes;	/* cycled */
	int nprod_modes, ncons_modes;
};

static void print_report(const char *who, uint32_t i,
			 const struct report *rep)
{
	if (rep->err)
		print_error("%s %u: %s (%s), %llu messages\n", who, i,
			    rep->what, shmq_errname(rep->err),
			    (unsigned long long)rep->count);
}

static void run_mp(struct t_fix *fix, const struct mp_config *c)
{
	struct shmq_attr a = { .capacity = c->capacity, .msg_size = MSG_SIZE };
	unsigned char sent[sizeof(struct t_tag)];
	pid_t prod[MAX_PROCS], cons[MAX_PROCS];
	int pstat[MAX_PROCS], cstat[MAX_PROCS];
	uint64_t total = 0;
	struct mp mp;
	uint32_t i;
	char buf[MSG_SIZE];
	shmq *q;

	assert_true(c->nprod <= MAX_PROCS && c->ncons <= MAX_PROCS);
	memset(&mp, 0, sizeof(mp));
	mp.seg_name = fix->name;
	mp.qname = "mp";
	mp.nprod = c->nprod;
	mp.ncons = c->ncons;
	mp.per_prod = c->per_prod;
	mp.spin = c->spin;
	mp.res_size = sizeof(struct results) +
		      (size_t)c->nprod * c->per_prod * sizeof(atomic_uint);
	mp.res = mmap(NULL, mp.res_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(mp.res != MAP_FAILED);

	t_assert_err(shmq_create(fix->seg, mp.qname, &a), 0);
	t_assert_err(shmq_open(fix->seg, mp.qname, &q), 0);

	for (i = 0; i < c->ncons; i++) {
		cons[i] = t_fork(CHILD_WATCHDOG);
		assert_true(cons[i] >= 0);
		if (cons[i] == 0)
			_exit(consumer(&mp, i,
				       c->cons_modes[i % c->ncons_modes]));
	}
	for (i = 0; i < c->nprod; i++) {
		prod[i] = t_fork(CHILD_WATCHDOG);
		assert_true(prod[i] >= 0);
		if (prod[i] == 0)
			_exit(producer(&mp, i,
				       c->prod_modes[i % c->nprod_modes]));
	}
	for (i = 0; i < c->nprod; i++)
		pstat[i] = t_wait_child(prod[i]);

	/* Everything is queued; then one sentinel per consumer. */
	for (i = 0; i < c->ncons; i++)
		t_assert_err(shmq_send(q, sent, t_msg_sentinel(sent, 0),
				       10000 * T_MS), 0);
	for (i = 0; i < c->ncons; i++)
		cstat[i] = t_wait_child(cons[i]);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
	shmq_close(q);

	for (i = 0; i < c->nprod; i++)
		print_report("producer", i, &mp.res->prod[i]);
	for (i = 0; i < c->ncons; i++)
		print_report("consumer", i, &mp.res->cons[i]);
	for (i = 0; i < c->nprod; i++) {
		t_assert_exit0(pstat[i]);
		assert_int_equal(mp.res->prod[i].count, c->per_prod);
	}
	for (i = 0; i < c->ncons; i++) {
		struct report *rep = &mp.res->cons[i];

		t_assert_exit0(cstat[i]);
		assert_int_equal(rep->sentinels - rep->passed_on, 1);
		total += rep->count;
	}
	for (i = 0; i < c->nprod * c->per_prod; i++) {
		unsigned v = atomic_load_explicit(&mp.res->seen[i],
						  memory_order_relaxed);

		if (v != 1)
			print_error("message %u/%u received %u times\n",
				    i / c->per_prod, i % c->per_prod, v);
		assert_int_equal(v, 1);
	}
	assert_int_equal(total, (uint64_t)c->nprod * c->per_prod);
	munmap(mp.res, mp.res_size);
}

static const int all_modes[] = { MODE_PLAIN, MODE_BATCH, MODE_ZC };

#define PER_PROD	20000

static void test_mp_mpmc_mixed(void **state)
{
	struct mp_config c = {
		.nprod = 3, .ncons = 3, .per_prod = PER_PROD, .capacity = 8,
		.spin = -1,
		.prod_modes = all_modes, .nprod_modes = 3,
		.cons_modes = all_modes, .ncons_modes = 3,
	};

	run_mp(*state, &c);
}

static void test_mp_mpmc_rotated_modes(void **state)
{
	static const int cons_modes[] = { MODE_ZC, MODE_PLAIN, MODE_BATCH };
	static const int prod_modes[] = { MODE_BATCH, MODE_ZC, MODE_PLAIN };
	struct mp_config c = {
		.nprod = 2, .ncons = 3, .per_prod = PER_PROD, .capacity = 16,
		.spin = -1,
		.prod_modes = prod_modes, .nprod_modes = 3,
		.cons_modes = cons_modes, .ncons_modes = 3,
	};

	run_mp(*state, &c);
}

/* Spin budget 0: every wait sleeps on the futex and must be woken. */
static void test_mp_futex_only(void **state)
{
	struct mp_config c = {
		.nprod = 2, .ncons = 2, .per_prod = PER_PROD / 2,
		.capacity = 4, .spin = 0,
		.prod_modes = all_modes, .nprod_modes = 3,
		.cons_modes = all_modes + 1, .ncons_modes = 2,
	};

	run_mp(*state, &c);
}

static void test_mp_futex_only_mixed(void **state)
{
	static const int cons_modes[] = { MODE_ZC, MODE_PLAIN, MODE_BATCH };
	struct mp_config c = {
		.nprod = 3, .ncons = 3, .per_prod = PER_PROD / 2,
		.capacity = 2, .spin = 0,
		.prod_modes = all_modes, .nprod_modes = 3,
		.cons_modes = cons_modes, .ncons_modes = 3,
	};

	run_mp(*state, &c);
}

/* ---- one blocked process, woken by another ---------------------------- */

enum { WAIT_RECV, WAIT_ACQUIRE, WAIT_RECV_BATCH, WAIT_SEND, WAIT_RESERVE,
       WAIT_SEND_BATCH };

/* In the child: block in one call with SHMQ_FOREVER; exit 0 if it ends well. */
static int blocked_child(const char *seg_name, int what, int64_t spin)
{
	char buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	struct shmq_msg m;
	shmq_seg *seg;
	shmq *q;
	int rc;

	if (shmq_seg_open(seg_name, &seg) || shmq_open(seg, "w", &q))
		return EXIT_ATTACH;
	if (spin >= 0 && shmq_set_spin(q, spin))
		return EXIT_ATTACH;
	switch (what) {
	case WAIT_RECV:
		rc = (int)shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER);
		if (rc != 4 || memcmp(buf, "wake", 4))
			return EXIT_CHECK;
		break;
	case WAIT_ACQUIRE:
		if (shmq_acquire(q, &m, SHMQ_FOREVER))
			return EXIT_CALL;
		if (m.len != 4 || memcmp(m.data, "wake", 4))
			return EXIT_CHECK;
		if (shmq_release(q, &m))
			return EXIT_CALL;
		break;
	case WAIT_RECV_BATCH:
		rc = shmq_recv_batch(q, &iov, 1, SHMQ_FOREVER);
		if (rc != 1 || iov.iov_len != 4 || memcmp(buf, "wake", 4))
			return EXIT_CHECK;
		break;
	case WAIT_SEND:
		if (shmq_send(q, "late", 4, SHMQ_FOREVER))
			return EXIT_CALL;
		break;
	case WAIT_RESERVE:
		if (shmq_reserve(q, 4, &m, SHMQ_FOREVER))
			return EXIT_CALL;
		memcpy(m.data, "late", 4);
		if (shmq_commit(q, &m))
			return EXIT_CALL;
		break;
	default:
		iov.iov_base = "late";
		iov.iov_len = 4;
		if (shmq_send_batch(q, &iov, 1, SHMQ_FOREVER) != 1)
			return EXIT_CALL;
		break;
	}
	shmq_close(q);
	shmq_seg_close(seg);
	return EXIT_OK;
}

static void blocked_and_woken(struct t_fix *fix, int what, int64_t spin)
{
	struct shmq_attr a = { .capacity = 2, .msg_size = 16 };
	int filling = what >= WAIT_SEND;
	char buf[16];
	shmq *q;
	pid_t pid;

	t_assert_err(shmq_create(fix->seg, "w", &a), 0);
	t_assert_err(shmq_open(fix->seg, "w", &q), 0);
	if (filling) {
		t_assert_err(shmq_send(q, "full", 4, 0), 0);
		t_assert_err(shmq_send(q, "full", 4, 0), 0);
	}
	pid = t_fork(20);
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(blocked_child(fix->name, what, spin));

	/* Let it block; if it did not, it exits with a failure anyway. */
	t_sleep_ms(50);
	if (filling) {
		t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), 4);
	} else {
		t_assert_err(shmq_send(q, "wake", 4, 0), 0);
	}
	t_assert_exit0(t_wait_child(pid));
	if (filling) {
		t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), 4);
		assert_memory_equal(buf, "full", 4);
		t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), 4);
		assert_memory_equal(buf, "late", 4);
	}
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
	shmq_close(q);
	t_assert_err(shmq_unlink(fix->seg, "w"), 0);
}

static void test_mp_blocked_receiver_woken(void **state)
{
	blocked_and_woken(*state, WAIT_RECV, -1);
	blocked_and_woken(*state, WAIT_RECV, 0);
	blocked_and_woken(*state, WAIT_ACQUIRE, 0);
	blocked_and_woken(*state, WAIT_RECV_BATCH, 0);
}

static void test_mp_blocked_sender_woken(void **state)
{
	blocked_and_woken(*state, WAIT_SEND, -1);
	blocked_and_woken(*state, WAIT_SEND, 0);
	blocked_and_woken(*state, WAIT_RESERVE, 0);
	blocked_and_woken(*state, WAIT_SEND_BATCH, 0);
}

/* Ping-pong: two processes alternate through two queues, always asleep. */
static void test_mp_ping_pong(void **state)
{
	struct t_fix *fix = *state;
	const int rounds = 2000;
	shmq *ping, *pong;
	uint32_t v;
	pid_t pid;
	int i;

	t_assert_err(shmq_create(fix->seg, "ping", NULL), 0);
	t_assert_err(shmq_create(fix->seg, "pong", NULL), 0);
	pid = t_fork(CHILD_WATCHDOG);
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_seg *seg;
		shmq *a, *b;

		if (shmq_seg_open(fix->name, &seg) ||
		    shmq_open(seg, "ping", &a) || shmq_open(seg, "pong", &b) ||
		    shmq_set_spin(a, 0) || shmq_set_spin(b, 0))
			_exit(EXIT_ATTACH);
		for (i = 0; i < rounds; i++) {
			if (shmq_recv(a, &v, sizeof(v), SHMQ_FOREVER) != 4)
				_exit(EXIT_CALL);
			if (v != (uint32_t)i)
				_exit(EXIT_CHECK);
			v++;
			if (shmq_send(b, &v, sizeof(v), SHMQ_FOREVER))
				_exit(EXIT_CALL);
		}
		shmq_close(a);
		shmq_close(b);
		shmq_seg_close(seg);
		_exit(EXIT_OK);
	}
	t_assert_err(shmq_open(fix->seg, "ping", &ping), 0);
	t_assert_err(shmq_open(fix->seg, "pong", &pong), 0);
	t_assert_err(shmq_set_spin(ping, 0), 0);
	t_assert_err(shmq_set_spin(pong, 0), 0);
	for (i = 0; i < rounds; i++) {
		v = (uint32_t)i;
		t_assert_err(shmq_send(ping, &v, sizeof(v), SHMQ_FOREVER), 0);
		t_assert_err(shmq_recv(pong, &v, sizeof(v), SHMQ_FOREVER), 4);
		assert_int_equal(v, (uint32_t)i + 1);
	}
	t_assert_exit0(t_wait_child(pid));
	shmq_close(ping);
	shmq_close(pong);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_mp_mpmc_mixed),
		T(test_mp_mpmc_rotated_modes),
		T(test_mp_futex_only),
		T(test_mp_futex_only_mixed),
		T(test_mp_blocked_receiver_woken),
		T(test_mp_blocked_sender_woken),
		T(test_mp_ping_pong),
#undef T
	};

	return cmocka_run_group_tests_name("mp", tests, t_group_setup,
					   t_group_teardown);
}
