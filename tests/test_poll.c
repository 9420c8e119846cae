// SPDX-License-Identifier: MIT
/*
 * test_poll.c - shmq_poll() and the poll set: readiness per queue and
 * direction, timeouts, errors; a poller beside blocked receivers (it must
 * never take their wake-ups); two producer processes sending to 8 queues
 * at random with pauses while one poller receives everything, with
 * futex_waitv and with the bounded-sleep fallback; the same with threads
 * (TSan); a poller SIGKILLed asleep (its announcement is taken by the next
 * send, not paid for by every send); the event-loop descriptor.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "poller.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

#define NQ       8
#define MSG_MAX  64

static void qname(char *buf, size_t size, int i)
{
	snprintf(buf, size, "pq%d", i);
}

/* Create and open NQ queues (4 slots each, so senders also fill them). */
static void open_set(shmq_seg *seg, shmq **q, unsigned cap, uint32_t flags)
{
	char name[16];
	int i;

	for (i = 0; i < NQ; i++) {
		qname(name, sizeof(name), i);
		q[i] = t_queue_flags(seg, name, cap, MSG_MAX, flags);
	}
}

static void close_set(shmq **q)
{
	int i;

	for (i = 0; i < NQ; i++)
		shmq_close(q[i]);
}

static void fill_set(struct shmq_pollq *set, shmq **q, uint32_t events)
{
	int i;

	for (i = 0; i < NQ; i++) {
		set[i].q = q[i];
		set[i].events = events;
		set[i].revents = 0xdead;
	}
}

static struct shmq_queue_info stat_q(shmq_seg *seg, int i)
{
	struct shmq_queue_info qi;
	char name[16];

	qname(name, sizeof(name), i);
	t_assert_err(shmq_queue_stat(seg, name, &qi), 0);
	return qi;
}

/* ---- errors, readiness, timeouts ----------------------------------------- */

static void test_poll_einval(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_pollq set[SHMQ_POLL_MAX + 1];
	shmq *q = t_queue(fix->seg, "e", 4, 16);
	unsigned i;

	for (i = 0; i <= SHMQ_POLL_MAX; i++) {
		set[i].q = q;
		set[i].events = SHMQ_POLLIN;
	}
	t_assert_err(shmq_poll(NULL, 1, 0), -EINVAL);
	t_assert_err(shmq_poll(set, 0, 0), -EINVAL);
	t_assert_err(shmq_poll(set, SHMQ_POLL_MAX + 1, 0), -EINVAL);
	/* The maximum itself is fine (and the same queue many times). */
	t_assert_err(shmq_poll(set, SHMQ_POLL_MAX, 0), -EAGAIN);
	t_assert_err(shmq_poll(set, 1, -2), -EINVAL);
	set[1].q = NULL;
	t_assert_err(shmq_poll(set, 2, 0), -EINVAL);
	set[1].q = q;
	set[1].events = 0;
	t_assert_err(shmq_poll(set, 2, 0), -EINVAL);
	set[1].events = 0x2;    /* no such event */
	t_assert_err(shmq_poll(set, 2, 0), -EINVAL);
	set[1].events = SHMQ_POLLIN | 0x100;
	t_assert_err(shmq_poll(set, 2, 0), -EINVAL);
	shmq_close(q);
}

static void readiness(shmq_seg *seg, uint32_t flags)
{
	struct shmq_pollq set[NQ];
	shmq *q[NQ];
	int i, v = 7;

	open_set(seg, q, 4, flags);
	fill_set(set, q, SHMQ_POLLIN);
	t_assert_err(shmq_poll(set, NQ, 0), -EAGAIN);
	for (i = 0; i < NQ; i++)
		assert_int_equal(set[i].revents, 0);
	/* Every empty queue has room. */
	fill_set(set, q, SHMQ_POLLIN | SHMQ_POLLOUT);
	t_assert_err(shmq_poll(set, NQ, 0), NQ);
	for (i = 0; i < NQ; i++)
		assert_int_equal(set[i].revents, SHMQ_POLLOUT);
	/* A message in queue 5: POLLIN there only. */
	t_assert_err(shmq_send(q[5], &v, sizeof(v), 0), 0);
	fill_set(set, q, SHMQ_POLLIN);
	t_assert_err(shmq_poll(set, NQ, SHMQ_FOREVER), 1);
	for (i = 0; i < NQ; i++)
		assert_int_equal(set[i].revents, i == 5 ? SHMQ_POLLIN : 0);
	/* Queue 5 full: no POLLOUT there, both directions reported apart. */
	for (i = 1; i < 4; i++)
		t_assert_err(shmq_send(q[5], &i, sizeof(i), 0), 0);
	fill_set(set, q, SHMQ_POLLOUT);
	t_assert_err(shmq_poll(set, NQ, 0), NQ - 1);
	assert_int_equal(set[5].revents, 0);
	set[5].events = SHMQ_POLLIN | SHMQ_POLLOUT;
	t_assert_err(shmq_poll(&set[5], 1, 0), 1);
	assert_int_equal(set[5].revents, SHMQ_POLLIN);
	for (i = 0; i < 4; i++)
		t_recv_expect(q[5], i ? (void *)&i : (void *)&v, sizeof(i), 0);
	fill_set(set, q, SHMQ_POLLIN);
	t_assert_err(shmq_poll(set, NQ, 0), -EAGAIN);
	close_set(q);
}

static void test_poll_readiness_mpmc(void **state)
{
	readiness(((struct t_fix *)*state)->seg, 0);
}

static void test_poll_readiness_spsc(void **state)
{
	readiness(((struct t_fix *)*state)->seg, SHMQ_SPSC);
}

static void test_poll_timeout(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_pollq set[NQ];
	shmq *q[NQ];

	open_set(fix->seg, q, 4, 0);
	fill_set(set, q, SHMQ_POLLIN);
	t_assert_timeout(shmq_poll(set, NQ, 30 * T_MS), 30 * T_MS);
	t_assert_err(shmq_set_spin(q[0], 0), 0);
	t_assert_err(shmq_set_spin(q[3], 0), 0);
	/* The largest budget counts: make them all 0 to sleep at once. */
	for (int i = 0; i < NQ; i++)
		t_assert_err(shmq_set_spin(q[i], 0), 0);
	t_assert_timeout(shmq_poll(set, NQ, 30 * T_MS), 30 * T_MS);
	shmq__poll_force_fallback(true);
	t_assert_timeout(shmq_poll(set, NQ, 30 * T_MS), 30 * T_MS);
	t_assert_timeout(shmq_poll(set, 1, 30 * T_MS), 30 * T_MS);
	shmq__poll_force_fallback(false);
	/* Nobody is left announced. */
	assert_int_equal(stat_q(fix->seg, 0).recv_waiters, 0);
	assert_int_equal(stat_q(fix->seg, 0).recv_pollers, 0);
	close_set(q);
}

/* ---- a sleeping poller is woken ------------------------------------------ */

struct sender {
	shmq *q;
	unsigned delay_ms;
	int rc;
};

static void *send_later(void *arg)
{
	struct sender *s = arg;
	int v = 42;

	t_sleep_ms(s->delay_ms);
	s->rc = shmq_send(s->q, &v, sizeof(v), SHMQ_FOREVER);
	return NULL;
}

static void woken(shmq_seg *seg, uint32_t flags, bool fallback)
{
	struct shmq_pollq set[NQ];
	struct sender s;
	pthread_t th;
	shmq *q[NQ], *tx;
	uint64_t fb0;
	int i;

	open_set(seg, q, 4, flags);
	for (i = 0; i < NQ; i++)
		t_assert_err(shmq_set_spin(q[i], 0), 0);
	t_assert_err(shmq_open(seg, "pq5", &tx), 0);
	fb0 = shmq__poll_fallback_sleeps();
	shmq__poll_force_fallback(fallback);
	for (i = 0; i < 3; i++) {
		s.q = tx;
		s.delay_ms = 20;
		s.rc = -1;
		assert_int_equal(pthread_create(&th, NULL, send_later, &s), 0);
		fill_set(set, q, SHMQ_POLLIN);
		t_assert_err(shmq_poll(set, NQ, SHMQ_FOREVER), 1);
		assert_int_equal(set[5].revents, SHMQ_POLLIN);
		assert_int_equal(pthread_join(th, NULL), 0);
		t_assert_err(s.rc, 0);
		t_recv_expect(q[5], &(int){ 42 }, sizeof(int), 0);
	}
	shmq__poll_force_fallback(false);
	assert_true(stat_q(seg, 5).sleeps >= 1);
	/* Each way really slept its own way. */
	if (fallback)
		assert_true(shmq__poll_fallback_sleeps() > fb0);
	else
		assert_true(shmq__poll_fallback_sleeps() == fb0);
	shmq_close(tx);
	close_set(q);
}

static void test_poll_woken_mpmc(void **state)
{
	woken(((struct t_fix *)*state)->seg, 0, false);
}

static void test_poll_woken_spsc(void **state)
{
	woken(((struct t_fix *)*state)->seg, SHMQ_SPSC, false);
}

static void test_poll_woken_fallback(void **state)
{
	woken(((struct t_fix *)*state)->seg, 0, true);
}

struct receiver {
	shmq *q;
	unsigned delay_ms;
	int64_t timeout_ns;
	int got;                /* the int received, or -errno */
};

static void *recv_later(void *arg)
{
	struct receiver *r = arg;
	int v = -1;
	ssize_t rc;

	t_sleep_ms(r->delay_ms);
	rc = shmq_recv(r->q, &v, sizeof(v), r->timeout_ns);
	r->got = rc < 0 ? (int)rc : v;
	return NULL;
}

/*
 * A kernel without futex_waitv, for real: in a child, a seccomp filter
 * makes the system call fail with ENOSYS (as on Linux < 5.16); shmq_poll
 * must notice and still wake for a message on any of the 8 queues.
 */
static void test_poll_enosys(void **state)
{
	struct t_fix *fix = *state;
	pid_t pid = t_fork(30);

	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
				 offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex_waitv,
				 0, 1),
			BPF_STMT(BPF_RET | BPF_K,
				 SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
		struct shmq_pollq set[NQ];
		struct sender sd;
		pthread_t th;
		shmq_seg *seg;
		shmq *q[NQ];
		int i, round;

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(10);
		if (syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0) != -1 ||
		    errno != ENOSYS)
			_exit(11);
		if (shmq_seg_open(fix->name, &seg))
			_exit(12);
		open_set(seg, q, 4, 0);
		for (i = 0; i < NQ; i++)
			shmq_set_spin(q[i], 0);
		for (round = 0; round < 3; round++) {
			if (shmq_open(seg, "pq6", &sd.q))
				_exit(13);
			sd.delay_ms = 20;
			sd.rc = -1;
			if (pthread_create(&th, NULL, send_later, &sd))
				_exit(14);
			fill_set(set, q, SHMQ_POLLIN);
			if (shmq_poll(set, NQ, 10000 * T_MS) != 1 ||
			    set[6].revents != SHMQ_POLLIN)
				_exit(15);
			pthread_join(th, NULL);
			shmq_close(sd.q);
			if (sd.rc || shmq_recv(q[6], &i, sizeof(i), 0) !=
			    sizeof(i) || i != 42)
				_exit(16);
		}
		close_set(q);
		shmq_seg_close(seg);
		/* It slept the fallback's way (not in a busy loop). */
		_exit(shmq__poll_fallback_sleeps() ? 0 : 17);
	}
	t_assert_exit0(t_wait_child(pid));
}

/* POLLOUT: a full queue; a receiver makes room. */
static void test_poll_woken_pollout(void **state)
{
	struct t_fix *fix = *state;
	struct receiver r = { NULL, 20, SHMQ_FOREVER, -1 };
	struct shmq_pollq e;
	shmq *q = t_queue(fix->seg, "full", 2, 16);
	pthread_t th;
	int i;

	t_assert_err(shmq_open(fix->seg, "full", &r.q), 0);
	for (i = 0; i < 2; i++)
		t_assert_err(shmq_send(q, &i, sizeof(i), 0), 0);
	t_assert_err(shmq_set_spin(q, 0), 0);
	e.q = q;
	e.events = SHMQ_POLLOUT;
	t_assert_err(shmq_poll(&e, 1, 0), -EAGAIN);
	assert_int_equal(pthread_create(&th, NULL, recv_later, &r), 0);
	t_assert_err(shmq_poll(&e, 1, SHMQ_FOREVER), 1);
	assert_int_equal(e.revents, SHMQ_POLLOUT);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(r.got, 0);
	shmq_close(r.q);
	shmq_close(q);
}

/*
 * A queue unlinked while polled keeps working like any open handle: a
 * sender through another open handle still wakes the poller.
 */
static void test_poll_unlinked_queue(void **state)
{
	struct t_fix *fix = *state;
	struct sender s = { NULL, 20, -1 };
	struct shmq_pollq e;
	shmq *q = t_queue(fix->seg, "gone", 4, 16);
	pthread_t th;

	t_assert_err(shmq_open(fix->seg, "gone", &s.q), 0);
	t_assert_err(shmq_unlink(fix->seg, "gone"), 0);
	t_assert_err(shmq_set_spin(q, 0), 0);
	e.q = q;
	e.events = SHMQ_POLLIN;
	assert_int_equal(pthread_create(&th, NULL, send_later, &s), 0);
	t_assert_err(shmq_poll(&e, 1, SHMQ_FOREVER), 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	t_recv_expect(q, &(int){ 42 }, sizeof(int), 0);
	shmq_close(s.q);
	shmq_close(q);
}

/* ---- a poller beside ordinary receivers ---------------------------------- */

struct idle_poller {
	shmq *q;
	_Atomic int polls;      /* polls that returned ready */
	_Atomic bool stop;
};

/* Polls the queue for ever and never receives: the worst neighbour. */
static void *poll_never_consume(void *arg)
{
	struct idle_poller *p = arg;
	struct shmq_pollq e = { p->q, SHMQ_POLLIN, 0 };

	while (!atomic_load(&p->stop))
		if (shmq_poll(&e, 1, 20 * T_MS) > 0) {
			atomic_fetch_add(&p->polls, 1);
			t_sleep_ms(1);  /* saw it; does nothing about it */
		}
	return NULL;
}

/*
 * Receivers blocked in shmq_recv (spin 0) and a poller that never
 * consumes, on one queue: every message sent reaches a receiver.  If a
 * poller could take a receiver's wake-up, a receiver would sleep beside
 * its message for ever (the model's -DSHARED_WORD control).
 */
static void test_poll_beside_receivers(void **state)
{
	struct t_fix *fix = *state;
	struct idle_poller ip = { NULL, 0, false };
	struct receiver r[2];
	pthread_t pth, rth[2];
	shmq *q = t_queue(fix->seg, "mix", 8, 16), *rq[2];
	int round, i;

	t_assert_err(shmq_open(fix->seg, "mix", &ip.q), 0);
	t_assert_err(shmq_set_spin(ip.q, 0), 0);
	assert_int_equal(pthread_create(&pth, NULL, poll_never_consume, &ip),
			 0);
	for (i = 0; i < 2; i++) {
		t_assert_err(shmq_open(fix->seg, "mix", &rq[i]), 0);
		t_assert_err(shmq_set_spin(rq[i], 0), 0);
	}
	for (round = 0; round < 20; round++) {
		for (i = 0; i < 2; i++) {
			r[i] = (struct receiver){ rq[i], 0, 10000 * T_MS, -1 };
			assert_int_equal(pthread_create(&rth[i], NULL,
							recv_later, &r[i]), 0);
		}
		t_sleep_ms(5);  /* let them (and the poller) sleep */
		for (i = 0; i < 2; i++)
			t_assert_err(shmq_send(q, &round, sizeof(round), 0), 0);
		for (i = 0; i < 2; i++) {
			assert_int_equal(pthread_join(rth[i], NULL), 0);
			assert_int_equal(r[i].got, round);
		}
	}
	atomic_store(&ip.stop, true);
	assert_int_equal(pthread_join(pth, NULL), 0);
	for (i = 0; i < 2; i++)
		shmq_close(rq[i]);
	shmq_close(ip.q);
	t_expect_empty(q);
	shmq_close(q);
}

/* ---- many messages: processes, then threads --------------------------- */

#define MP_PRODUCERS 2
#define MP_MSGS      3000

/*
 * Producer @id: MP_MSGS tagged messages to random queues, pausing now and
 * then (0-2 ms) so that the poller goes to sleep.  Exit code: 0 or a
 * failure step.
 */
static int produce(const char *seg_name, shmq_seg *seg0, uint32_t id)
{
	shmq_seg *seg = seg0;
	shmq *q[NQ];
	char name[16], buf[MSG_MAX];
	uint32_t rnd = 0x9e3779b9u * (id + 1), i;
	size_t len;

	if (!seg && shmq_seg_open(seg_name, &seg))
		return 10;
	for (i = 0; i < NQ; i++) {
		qname(name, sizeof(name), (int)i);
		if (shmq_open(seg, name, &q[i]))
			return 11;
	}
	for (i = 0; i < MP_MSGS; i++) {
		uint32_t r = t_rand(&rnd);

		len = t_msg_fill(buf, sizeof(buf), id, i);
		if (shmq_send(q[r % NQ], buf, len, 10000 * T_MS))
			return 12;
		if ((r >> 8) % 64 == 0)
			usleep((r >> 16) % 2000);
	}
	for (i = 0; i < NQ; i++)
		shmq_close(q[i]);
	if (!seg0)
		shmq_seg_close(seg);
	return 0;
}

/*
 * The poller: receive every message of every producer, in per-producer
 * order per queue... any order across queues, so count per producer and
 * check that each seq arrives exactly once.  A poll that times out
 * (POLL_GIVE_UP) while messages are still due is a lost wake-up.
 * Returns 0 or a failure step.
 */
#define POLL_GIVE_UP (5000 * T_MS)

static int consume_all(shmq **q, unsigned nprod)
{
	struct shmq_pollq set[NQ];
	static unsigned char seen[MP_PRODUCERS][MP_MSGS];
	char buf[MSG_MAX];
	unsigned total = 0, want = nprod * MP_MSGS, i;
	uint32_t prod, seq;
	ssize_t len;
	int k;

	memset(seen, 0, sizeof(seen));
	while (total < want) {
		fill_set(set, q, SHMQ_POLLIN);
		k = shmq_poll(set, NQ, POLL_GIVE_UP);
		if (k == -ETIMEDOUT) {
			fprintf(stderr, "poll timed out with %u of %u "
				"received\n", total, want);
			return 1;
		}
		if (k <= 0)
			return 2;
		for (i = 0; i < NQ; i++) {
			if (!(set[i].revents & SHMQ_POLLIN))
				continue;
			/* Drain what is there: a hint, so timeout 0. */
			while ((len = shmq_recv(q[i], buf, sizeof(buf), 0)) >= 0) {
				if (t_msg_check(buf, (size_t)len, &prod, &seq) ||
				    prod >= nprod || seq >= MP_MSGS ||
				    seen[prod][seq]++)
					return 3;
				total++;
			}
			if (len != -EAGAIN)
				return 4;
		}
	}
	return 0;
}

static void poll_processes(struct t_fix *fix, bool fallback)
{
	pid_t pid[MP_PRODUCERS];
	uint64_t sleeps = 0;
	shmq *q[NQ];
	int i, rc;

	open_set(fix->seg, q, 4, 0);
	for (i = 0; i < NQ; i++)
		t_assert_err(shmq_set_spin(q[i], 0), 0);
	sleeps = shmq__poll_sleeps();
	shmq__poll_force_fallback(fallback);
	for (i = 0; i < MP_PRODUCERS; i++) {
		pid[i] = t_fork(60);
		if (pid[i] == 0)
			_exit(produce(fix->name, NULL, (uint32_t)i));
	}
	rc = consume_all(q, MP_PRODUCERS);
	shmq__poll_force_fallback(false);
	t_assert_err(rc, 0);
	for (i = 0; i < MP_PRODUCERS; i++)
		t_assert_exit0(t_wait_child(pid[i]));
	for (i = 0; i < NQ; i++) {
		t_expect_empty(q[i]);
		assert_int_equal(stat_q(fix->seg, i).recv_waiters, 0);
	}
	/* The pauses made the poller sleep (else this proves little). */
	assert_true(shmq__poll_sleeps() > sleeps);
	close_set(q);
}

static void test_poll_processes(void **state)
{
	poll_processes(*state, false);
}

static void test_poll_processes_fallback(void **state)
{
	poll_processes(*state, true);
}

struct producer_arg {
	shmq_seg *seg;
	uint32_t id;
	int rc;
};

static void *producer_thread(void *arg)
{
	struct producer_arg *a = arg;

	a->rc = produce(NULL, a->seg, a->id);
	return NULL;
}

/* The same with threads: what TSan sees (make check-tsan). */
static void test_poll_threads(void **state)
{
	struct t_fix *fix = *state;
	struct producer_arg a[MP_PRODUCERS];
	pthread_t th[MP_PRODUCERS];
	shmq *q[NQ];
	int i, rc;

	open_set(fix->seg, q, 4, 0);
	for (i = 0; i < NQ; i++)
		t_assert_err(shmq_set_spin(q[i], i & 1 ? 0 : 2000), 0);
	for (i = 0; i < MP_PRODUCERS; i++) {
		a[i] = (struct producer_arg){ fix->seg, (uint32_t)i, -1 };
		assert_int_equal(pthread_create(&th[i], NULL, producer_thread,
						&a[i]), 0);
	}
	rc = consume_all(q, MP_PRODUCERS);
	for (i = 0; i < MP_PRODUCERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		t_assert_err(a[i].rc, 0);
	}
	t_assert_err(rc, 0);
	close_set(q);
}

/* ---- a poller killed asleep -------------------------------------------- */

/*
 * A poller SIGKILLed while it sleeps leaves its announcement; the next
 * send takes it (one FUTEX_WAKE), and the sends after that make no system
 * call (wakes stays put), MPMC and SPSC alike.
 */
static void killed_poller(struct t_fix *fix, uint32_t flags)
{
	struct shmq_queue_info qi;
	shmq *q[NQ];
	uint64_t t0, wakes;
	pid_t pid;
	int i, v = 1;

	open_set(fix->seg, q, 4, flags);
	pid = t_fork(30);
	if (pid == 0) {
		shmq_seg *seg;
		shmq *cq[NQ];
		struct shmq_pollq set[NQ];
		char name[16];

		if (shmq_seg_open(fix->name, &seg))
			_exit(10);
		for (i = 0; i < NQ; i++) {
			qname(name, sizeof(name), i);
			if (shmq_open(seg, name, &cq[i]) ||
			    shmq_set_spin(cq[i], 0))
				_exit(11);
		}
		fill_set(set, cq, SHMQ_POLLIN);
		shmq_poll(set, NQ, SHMQ_FOREVER);
		_exit(12);      /* nobody sends: never */
	}
	t0 = t_now_ns();
	do {
		t_sleep_ms(2);
		qi = stat_q(fix->seg, NQ - 1);
	} while (qi.recv_pollers == 0 && t_now_ns() - t0 < 10000 * T_MS);
	assert_int_equal(qi.recv_pollers, 1);
	assert_int_equal(qi.recv_waiters, 1);
	t_sleep_ms(20);         /* asleep by now, most likely */
	t_kill_reap(pid);
	for (i = 0; i < NQ; i++) {
		wakes = stat_q(fix->seg, i).wakes;
		t_assert_err(shmq_send(q[i], &v, sizeof(v), 0), 0);
		qi = stat_q(fix->seg, i);
		assert_int_equal(qi.recv_waiters, 0);
		assert_int_equal(qi.recv_pollers, 0);
		assert_true(qi.wakes - wakes <= 1);
		wakes = qi.wakes;
		t_assert_err(shmq_send(q[i], &v, sizeof(v), 0), 0);
		t_assert_err(shmq_send(q[i], &v, sizeof(v), 0), 0);
		assert_int_equal(stat_q(fix->seg, i).wakes, wakes);
	}
	close_set(q);
}

static void test_poll_killed_poller_mpmc(void **state)
{
	killed_poller(*state, 0);
}

static void test_poll_killed_poller_spsc(void **state)
{
	killed_poller(*state, SHMQ_SPSC);
}

/* ---- the poll set and its descriptor ------------------------------------ */

/* Is @fd readable within @ms? */
static bool readable(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/*
 * Does the descriptor go quiet, nothing being ready?  A signal the thread
 * sent for a message we received since may still come, once (it is a
 * hint): each shmq_pollset_ready() must then find nothing.
 */
static bool settles(shmq_pollset *ps, int fd)
{
	struct shmq_pollq out[1];
	int round;

	for (round = 0; round < 5; round++) {
		if (!readable(fd, 20))
			return true;
		if (shmq_pollset_ready(ps, out, 1) != 0)
			return false;
	}
	return false;
}

static void test_pollset_errors(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_pollq out[1];
	shmq_pollset *ps;
	shmq *q = t_queue(fix->seg, "a", 4, 16), *more[SHMQ_POLL_MAX + 1];
	int i;

	t_assert_err(shmq_pollset_create(NULL), -EINVAL);
	t_assert_err(shmq_pollset_create(&ps), 0);
	t_assert_err(shmq_pollset_add(NULL, q, SHMQ_POLLIN), -EINVAL);
	t_assert_err(shmq_pollset_add(ps, NULL, SHMQ_POLLIN), -EINVAL);
	t_assert_err(shmq_pollset_add(ps, q, 0), -EINVAL);
	t_assert_err(shmq_pollset_add(ps, q, 0x2), -EINVAL);
	t_assert_err(shmq_pollset_del(ps, q), -ENOENT);
	t_assert_err(shmq_pollset_del(NULL, q), -EINVAL);
	t_assert_err(shmq_pollset_fd(NULL), -EINVAL);
	t_assert_err(shmq_pollset_ready(ps, NULL, 1), -EINVAL);
	t_assert_err(shmq_pollset_ready(ps, out, 0), -EINVAL);
	t_assert_err(shmq_pollset_ready(NULL, out, 1), -EINVAL);
	/* An empty set is never ready. */
	t_assert_err(shmq_pollset_ready(ps, out, 1), 0);
	/* SHMQ_POLL_MAX handles; the same one again changes its events. */
	t_assert_err(shmq_pollset_add(ps, q, SHMQ_POLLIN), 0);
	for (i = 1; i <= SHMQ_POLL_MAX; i++) {
		t_assert_err(shmq_open(fix->seg, "a", &more[i]), 0);
		t_assert_err(shmq_pollset_add(ps, more[i], SHMQ_POLLIN),
			     i < SHMQ_POLL_MAX ? 0 : -ENOSPC);
	}
	t_assert_err(shmq_pollset_add(ps, q, SHMQ_POLLOUT), 0);
	for (i = 1; i <= SHMQ_POLL_MAX; i++) {
		t_assert_err(shmq_pollset_del(ps, more[i]),
			     i < SHMQ_POLL_MAX ? 0 : -ENOENT);
		shmq_close(more[i]);
	}
	t_assert_err(shmq_pollset_ready(ps, out, 1), 1);
	assert_ptr_equal(out[0].q, q);
	assert_int_equal(out[0].revents, SHMQ_POLLOUT);
	shmq_pollset_destroy(ps);
	shmq_pollset_destroy(NULL);
	shmq_close(q);
}

/* No descriptor left: -EMFILE, and nothing leaks (in a child). */
static void test_pollset_create_emfile(void **state)
{
	pid_t pid = t_fork(30);

	(void)state;
	if (pid == 0) {
		struct rlimit rl;
		shmq_pollset *ps = NULL;
		int fd = dup(0);

		if (fd < 0)
			_exit(10);
		close(fd);
		/* The lowest free descriptor is the limit: none left. */
		rl.rlim_cur = rl.rlim_max = (rlim_t)fd;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			_exit(11);
		_exit(shmq_pollset_create(&ps) == -EMFILE && !ps ? 0 : 12);
	}
	t_assert_exit0(t_wait_child(pid));
}

static void test_pollset_fd(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_pollq out[NQ];
	struct epoll_event ev = { .events = EPOLLIN };
	shmq_pollset *ps;
	shmq *q[NQ], *tx;
	int ep, i, fd, v = 5;

	open_set(fix->seg, q, 4, 0);
	t_assert_err(shmq_open(fix->seg, "pq3", &tx), 0);
	t_assert_err(shmq_pollset_create(&ps), 0);
	for (i = 0; i < NQ; i++)
		t_assert_err(shmq_pollset_add(ps, q[i], SHMQ_POLLIN), 0);
	fd = shmq_pollset_fd(ps);
	assert_true(fd >= 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	assert_int_equal(epoll_wait(ep, &ev, 1, 50), 0);
	for (i = 0; i < 50; i++) {
		t_assert_err(shmq_send(tx, &v, sizeof(v), 0), 0);
		assert_int_equal(epoll_wait(ep, &ev, 1, 10000), 1);
		t_assert_err(shmq_pollset_ready(ps, out, NQ), 1);
		assert_ptr_equal(out[0].q, q[3]);
		assert_int_equal(out[0].revents, SHMQ_POLLIN);
		t_recv_expect(q[3], &v, sizeof(v), 0);
		/* Re-armed, nothing ready: the descriptor stays quiet... */
		if (i % 10 == 0)
			assert_true(settles(ps, fd));
	}
	/* ...but readable again while a message stays (level-triggered). */
	t_assert_err(shmq_send(tx, &v, sizeof(v), 0), 0);
	assert_true(readable(fd, 10000));
	t_assert_err(shmq_pollset_ready(ps, out, NQ), 1);
	assert_true(readable(fd, 10000));
	t_assert_err(shmq_pollset_ready(ps, out, NQ), 1);
	t_recv_expect(q[3], &v, sizeof(v), 0);
	t_assert_err(shmq_pollset_ready(ps, out, NQ), 0);
	/* Removed: its messages no longer count. */
	t_assert_err(shmq_pollset_del(ps, q[3]), 0);
	t_assert_err(shmq_send(tx, &v, sizeof(v), 0), 0);
	assert_true(settles(ps, fd));
	/* Added back: ready at once. */
	t_assert_err(shmq_pollset_add(ps, q[3], SHMQ_POLLIN), 0);
	assert_true(readable(fd, 10000));
	close(ep);
	shmq_pollset_destroy(ps);
	t_recv_expect(q[3], &v, sizeof(v), 0);
	shmq_close(tx);
	close_set(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_poll_einval, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_readiness_mpmc,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_readiness_spsc,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_timeout, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_woken_mpmc, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_woken_spsc, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_woken_fallback,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_enosys, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_woken_pollout,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_unlinked_queue,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_beside_receivers,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_processes, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_processes_fallback,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_threads, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_killed_poller_mpmc,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_poll_killed_poller_spsc,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_pollset_errors, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_pollset_create_emfile,
						t_setup_noseg, t_teardown),
		cmocka_unit_test_setup_teardown(test_pollset_fd, t_setup,
						t_teardown),
	};

	return cmocka_run_group_tests_name("poll", tests, t_group_setup,
					   t_group_teardown);
}

