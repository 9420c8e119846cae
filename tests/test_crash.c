// SPDX-License-Identifier: MIT
/*
 * test_crash.c - crash recovery with real processes: a child claims a slot
 * (reserve, acquire, a batch), tells the parent through a pipe, and is
 * SIGKILLed (or SIGSTOPped) there.  The parent then checks what each
 * repairer does: shmq_seg_recover(), shmq_seg_open(), a blocked call
 * stalled behind the slot, a polling call.  Children never assert: they
 * _exit() with a code the parent checks.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "ring.h"

#define QNAME	"crash"

enum { DO_RESERVE, DO_RESERVE_STOP, DO_ACQUIRE, DO_ACQUIRE7, DO_BATCH_RESERVE,
       DO_OPEN };

/*
 * Fork a child that attaches on its own, does @what, reports one byte on
 * a pipe and then waits to be killed (or, after SIGSTOP/SIGCONT, commits
 * "late" and exits 0).  Returns its pid once it has reported.
 */
static pid_t child_holding(struct t_fix *fix, int what)
{
	int fds[2];
	pid_t pid;
	char c = 0;

	assert_int_equal(pipe(fds), 0);
	pid = t_fork(30);
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shmq_msg m, m2;
		shmq_seg *seg;
		shmq *q;
		int rc = 0;

		close(fds[0]);
		if (shmq_seg_open(fix->name, &seg) || shmq_open(seg, QNAME, &q))
			_exit(10);
		switch (what) {
		case DO_RESERVE:
		case DO_RESERVE_STOP:
			rc = shmq_reserve(q, 4, &m, 0);
			break;
		case DO_ACQUIRE:
			rc = shmq_acquire(q, &m, 0);
			break;
		case DO_ACQUIRE7:
			for (int i = 0; i < 7 && !rc; i++)
				rc = shmq_acquire(q, &m, 0);
			break;
		case DO_BATCH_RESERVE:
			rc = shmq_reserve(q, 4, &m, 0);
			if (!rc)
				rc = shmq_reserve(q, 4, &m2, 0);
			break;
		default:
			rc = 0;
		}
		if (rc)
			_exit(11);
		if (write(fds[1], "x", 1) != 1)
			_exit(12);
		if (what == DO_RESERVE_STOP) {
			raise(SIGSTOP);
			memcpy(m.data, "late", 4);
			_exit(shmq_commit(q, &m) ? 13 : 0);
		}
		for (;;)
			pause();
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	return pid;
}

/* It must die of our SIGKILL: a child that failed on its own says how. */
static void kill_child(pid_t pid)
{
	t_kill_reap(pid);
}

static void expect_msg(shmq *q, const char *s, int64_t timeout_ns)
{
	t_recv_expect(q, s, strlen(s), timeout_ns);
}

/* A dead producer's reservation blocks FIFO until repaired; then skipped. */
static void test_recover_dead_producer(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	pid_t pid = child_holding(fix, DO_RESERVE);

	t_assert_err(shmq_send(q, "after", 5, 0), 0);
	t_expect_empty(q);                /* position 0 is claimed */
	t_assert_err(shmq_seg_recover(fix->seg), 0);    /* owner alive */
	t_expect_empty(q);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 1);    /* one tombstone */
	t_assert_err(shmq_seg_recover(fix->seg), 0);    /* idempotent */
	expect_msg(q, "after", 0);
	t_expect_empty(q);
	/* The ring keeps working across the tombstone's slot. */
	for (int i = 0; i < 20; i++) {
		t_assert_err(shmq_send(q, "again", 5, 0), 0);
		expect_msg(q, "again", 0);
	}
	shmq_close(q);
}

/* A batch of two claims: both become tombstones. */
static void test_recover_dead_producer_two(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	pid_t pid = child_holding(fix, DO_BATCH_RESERVE);
	struct iovec v[4];
	char b[4][64];

	t_assert_err(shmq_send(q, "third", 5, 0), 0);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 2);
	for (int i = 0; i < 4; i++)
		v[i] = (struct iovec){ b[i], sizeof(b[i]) };
	t_assert_err(shmq_recv_batch(q, v, 4, 0), 1);
	t_assert_err(v[0].iov_len, 5);
	assert_memory_equal(b[0], "third", 5);
	t_expect_empty(q);
	shmq_close(q);
}

/* A stopped producer is alive: never repaired, its message still arrives. */
static void test_stopped_producer_waited_for(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	pid_t pid = child_holding(fix, DO_RESERVE_STOP);
	char buf[64];
	int status;

	/* Wait until it has stopped itself. */
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	t_assert_err(shmq_send(q, "second", 6, 0), 0);
	t_assert_err(shmq_seg_recover(fix->seg), 0);
	t_assert_err(shmq_set_stall(q, T_MS), 0);
	/* A blocked call stalls behind it, repairs nothing, times out. */
	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 30 * T_MS), 30 * T_MS);
	assert_int_equal(kill(pid, SIGCONT), 0);
	expect_msg(q, "late", 5000 * T_MS);
	expect_msg(q, "second", 0);
	t_assert_exit0(t_wait_child(pid));
	shmq_close(q);
}

/* A dead consumer's message is delivered again, from the lane, first. */
static void test_recover_dead_consumer(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	pid_t pid;

	t_assert_err(shmq_send(q, "one", 3, 0), 0);
	t_assert_err(shmq_send(q, "two", 3, 0), 0);
	t_assert_err(shmq_send(q, "three", 5, 0), 0);
	pid = child_holding(fix, DO_ACQUIRE);   /* holds "one" */
	expect_msg(q, "two", 0);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 1);
	t_assert_err(shmq_seg_recover(fix->seg), 0);
	/* peek shows it first, marked; the ring's message after it. */
	{
		char b0[64], b1[64];
		struct shmq_peek_msg pm[3] = {
			{ .data = b0, .size = sizeof(b0) },
			{ .data = b1, .size = sizeof(b1) },
			{ .data = b1, .size = sizeof(b1) },
		};

		t_assert_err(shmq_peek(fix->seg, QNAME, pm, 2), 2);
		t_assert_err(pm[0].len, 3);
		assert_memory_equal(b0, "one", 3);
		assert_int_equal(pm[0].redelivered, 1);
		t_assert_err(pm[1].len, 5);
		assert_memory_equal(b1, "three", 5);
		assert_int_equal(pm[1].redelivered, 0);
	}
	expect_msg(q, "one", 0);                /* redelivered, lane first */
	expect_msg(q, "three", 0);
	t_expect_empty(q);
	shmq_close(q);
}

/* A redelivered message can be acquired and released in place too. */
static void test_redelivered_zero_copy(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 4, 64);
	struct shmq_msg m;
	pid_t pid;

	t_assert_err(shmq_send(q, "held", 4, 0), 0);
	pid = child_holding(fix, DO_ACQUIRE);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 1);
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	t_assert_err(m.len, 4);
	assert_memory_equal(m.data, "held", 4);
	t_assert_err(shmq_release(q, &m), 0);
	t_assert_err(shmq_release(q, &m), -EINVAL);
	t_expect_empty(q);
	/* Lane positions wrap like any ring's: several rounds. */
	for (int i = 0; i < 20; i++) {
		t_assert_err(shmq_send(q, "held", 4, 0), 0);
		pid = child_holding(fix, DO_ACQUIRE);
		kill_child(pid);
		t_assert_err(shmq_seg_recover(fix->seg), 1);
		expect_msg(q, "held", 0);
		t_expect_empty(q);
	}
	shmq_close(q);
}

/*
 * shmq_msg_meta(): an acquired message's seq is its first position, the
 * same when a dead holder's message comes back from the lane (mqbridge's
 * message id); a token that is not an outstanding acquisition: -EINVAL.
 */
static void test_msg_meta_of_redelivered(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 4, 64);
	struct shmq_meta meta;
	struct shmq_msg m, bad;
	uint64_t first;
	pid_t pid;

	t_assert_err(shmq_send(q, "zero", 4, 0), 0);
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	t_assert_err(shmq_msg_meta(q, &m, &meta), 0);
	first = meta.seq;
	assert_int_equal(meta.seq, m.token);
	assert_int_equal(meta.deliveries, 1);
	assert_int_equal(meta.flags, 0);
	assert_string_equal(meta.key, "");
	t_assert_err(shmq_msg_meta(q, &m, NULL), -EINVAL);
	bad = m;
	bad.token++;
	t_assert_err(shmq_msg_meta(q, &bad, &meta), -EINVAL);
	t_assert_err(shmq_release(q, &m), 0);
	t_assert_err(shmq_msg_meta(q, &m, &meta), -EINVAL);

	t_assert_err(shmq_send(q, "held", 4, 0), 0);
	pid = child_holding(fix, DO_ACQUIRE);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 1);
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	assert_memory_equal(m.data, "held", 4);
	t_assert_err(shmq_msg_meta(q, &m, &meta), 0);
	assert_int_equal(meta.seq, first + 1);  /* its position, not the lane's */
	assert_true(meta.flags & SHMQ_META_REDELIVERED);
	assert_int_equal(meta.deliveries, 2);
	t_assert_err(shmq_release(q, &m), 0);
	t_assert_err(shmq_msg_meta(q, &m, &meta), -EINVAL);
	t_expect_empty(q);
	shmq_close(q);
}

/* A blocked receiver stuck behind a dead producer repairs by itself. */
static void test_stalled_receiver_repairs(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	pid_t pid = child_holding(fix, DO_RESERVE);

	t_assert_err(shmq_send(q, "behind", 6, 0), 0);
	kill_child(pid);
	t_assert_err(shmq_set_stall(q, 2 * T_MS), 0);
	expect_msg(q, "behind", 10000 * T_MS);
	shmq_close(q);
}

/*
 * A sender on a full ring whose oldest slot a dead consumer holds: the
 * sender repairs it (m1 goes to the redelivery lane) and gets in, blocked
 * (@timeout_ns > 0) or polling (0, until 10 s have passed).
 */
static void sender_behind_dead_consumer(struct t_fix *fix, int64_t timeout_ns)
{
	shmq *q = t_queue(fix->seg, QNAME, 2, 64);
	uint64_t end = t_now_ns() + 10000 * (uint64_t)T_MS;
	pid_t pid;
	int rc;

	t_assert_err(shmq_send(q, "m1", 2, 0), 0);
	t_assert_err(shmq_send(q, "m2", 2, 0), 0);
	pid = child_holding(fix, DO_ACQUIRE);   /* holds m1 */
	kill_child(pid);
	t_assert_err(shmq_send(q, "m3", 2, 0), -EAGAIN);
	t_assert_err(shmq_set_stall(q, T_MS), 0);
	do
		rc = shmq_send(q, "m3", 2, timeout_ns);
	while (rc == -EAGAIN && timeout_ns == 0 && t_now_ns() < end);
	t_assert_err(rc, 0);
	expect_msg(q, "m1", 0);                 /* redelivered */
	expect_msg(q, "m2", 0);
	expect_msg(q, "m3", 0);
	t_expect_empty(q);
	shmq_close(q);
}

/* A blocked sender on a full ring whose slot a dead consumer holds. */
static void test_stalled_sender_repairs(void **state)
{
	sender_behind_dead_consumer(*state, 10000 * T_MS);
}

/* A polling receiver (timeout 0) repairs too, after enough misses. */
static void test_polling_receiver_repairs(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	pid_t pid = child_holding(fix, DO_RESERVE);
	uint64_t end = t_now_ns() + 10000 * (uint64_t)T_MS;
	char buf[64];
	ssize_t n;

	t_assert_err(shmq_send(q, "polled", 6, 0), 0);
	kill_child(pid);
	t_assert_err(shmq_set_stall(q, T_MS), 0);
	do
		n = shmq_recv(q, buf, sizeof(buf), 0);
	while (n == -EAGAIN && t_now_ns() < end);
	t_assert_err(n, 6);
	assert_memory_equal(buf, "polled", 6);
	shmq_close(q);
}

/* A polling sender (timeout 0) on a full ring repairs too. */
static void test_polling_sender_repairs(void **state)
{
	sender_behind_dead_consumer(*state, 0);
}

/*
 * shmq_purge() takes what was present, redelivered messages first, skips
 * tombstones, stops at an unpublished head, and leaves later messages.
 */
static void test_purge_bounds(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	struct shmq_msg m;
	pid_t pid;

	t_assert_err(shmq_purge(q), 0);
	t_assert_err(shmq_send(q, "a", 1, 0), 0);
	t_assert_err(shmq_send(q, "b", 1, 0), 0);
	pid = child_holding(fix, DO_ACQUIRE);   /* holds a */
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 1);    /* a: to the lane */
	t_assert_err(shmq_send(q, "c", 1, 0), 0);
	t_assert_err(shmq_purge(q), 3);
	t_expect_empty(q);
	/* A dead producer's claim becomes a tombstone: skipped, not counted. */
	pid = child_holding(fix, DO_RESERVE);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 1);
	t_assert_err(shmq_send(q, "d", 1, 0), 0);
	t_assert_err(shmq_purge(q), 1);
	t_expect_empty(q);
	/* A live reservation at the head: nothing behind it goes. */
	t_assert_err(shmq_reserve(q, 1, &m, 0), 0);
	t_assert_err(shmq_send(q, "e", 1, 0), 0);
	t_assert_err(shmq_purge(q), 0);
	memcpy(m.data, "r", 1);
	t_assert_err(shmq_commit(q, &m), 0);
	t_assert_err(shmq_purge(q), 2);
	/* What is sent after a purge is delivered. */
	t_assert_err(shmq_send(q, "f", 1, 0), 0);
	expect_msg(q, "f", 0);
	t_expect_empty(q);
	t_assert_err(shmq_purge(NULL), -EINVAL);
	shmq_close(q);
}

/*
 * A lane position claimed and not yet published (a repair still copying,
 * or killed midway) holds up neither consumers nor a purge of the ring.
 */
static void test_purge_past_unpublished_lane_head(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	/* relaxed, both: single-threaded; we play the stalled repair. */
	uint64_t lp = atomic_load_explicit(&q->hdr->lane_prod_pos,
					   memory_order_relaxed);

	atomic_store_explicit(&q->hdr->lane_prod_pos, lp + 1,
			      memory_order_relaxed);
	t_assert_err(shmq_send(q, "x", 1, 0), 0);
	t_assert_err(shmq_send(q, "y", 1, 0), 0);
	t_assert_err(shmq_purge(q), 2);
	t_assert_err(shmq_send(q, "z", 1, 0), 0);
	expect_msg(q, "z", 0);
	t_expect_empty(q);
	atomic_store_explicit(&q->hdr->lane_prod_pos, lp,
			      memory_order_relaxed);
	shmq_close(q);
}

/* Stall 0: a blocked call never repairs; shmq_seg_open() does. */
static void test_open_repairs(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 8, 64);
	pid_t pid = child_holding(fix, DO_RESERVE);
	char buf[64];
	shmq_seg *seg2;

	t_assert_err(shmq_send(q, "x", 1, 0), 0);
	kill_child(pid);
	t_assert_err(shmq_set_stall(q, 0), 0);
	t_assert_timeout(shmq_recv(q, buf, sizeof(buf), 20 * T_MS), 20 * T_MS);
	t_assert_err(shmq_seg_open(fix->name, &seg2), 0);
	shmq_seg_close(seg2);
	expect_msg(q, "x", 0);
	t_assert_err(shmq_set_stall(q, -1), -EINVAL);
	t_assert_err(shmq_set_stall(NULL, 0), -EINVAL);
	t_assert_err(shmq_seg_recover(NULL), -EINVAL);
	shmq_close(q);
}

/* An unlinked queue whose last user was killed is freed by a repair. */
static void test_dead_users_handles_reclaimed(void **state)
{
	struct t_fix *fix = *state;
	/* Big enough that two of them do not fit in the 4 MiB segment. */
	struct shmq_attr big = { .capacity = 4096, .msg_size = 512 };
	pid_t pid;

	t_assert_err(shmq_create(fix->seg, QNAME, &big), 0);
	pid = child_holding(fix, DO_OPEN);
	t_assert_err(shmq_unlink(fix->seg, QNAME), 0);
	t_assert_err(shmq_create(fix->seg, "other", &big), -ENOSPC);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 0);
	t_assert_err(shmq_create(fix->seg, "other", &big), 0);
}

/* Zero-copy holds are bounded per process: -ENOBUFS, then usable again. */
static void test_zero_copy_holds_bounded(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 128, .msg_size = 8 };
	struct shmq_msg m[128];
	shmq *q;
	int n = 0, i, rc;

	t_assert_err(shmq_create(fix->seg, QNAME, &a), 0);
	t_assert_err(shmq_open(fix->seg, QNAME, &q), 0);
	while ((rc = shmq_reserve(q, 8, &m[n], 0)) == 0)
		n++;
	t_assert_err(rc, -ENOBUFS);
	assert_true(n >= 32 && n < 128);
	/*
	 * This thread made the attachment's first call, so it owns the record
	 * its copying calls use: they still work while zero-copy holds have
	 * every other one (and its spare zero-copy records are all in use).
	 */
	t_assert_err(shmq_send(q, "c", 1, 0), 0);
	for (i = 0; i < n; i++)
		t_assert_err(shmq_commit(q, &m[i]), 0);
	t_assert_err(shmq_send(q, "c", 1, 0), 0);
	for (i = 0; i <= n + 1; i++) {
		char buf[8];

		t_assert_err(shmq_recv(q, buf, sizeof(buf), 0),
			     i < n ? 8 : 1);
	}
	t_expect_empty(q);
	shmq_close(q);
}

/* Records are per thread, not per handle: many queues, one thread. */
static void test_many_queues_one_thread(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr a = { .capacity = 2, .msg_size = 8 };
	enum { NQ = 100 };
	shmq *q[NQ];
	char name[16], buf[8];
	int i;

	for (i = 0; i < NQ; i++) {
		snprintf(name, sizeof(name), "q%d", i);
		t_assert_err(shmq_create(fix->seg, name, &a), 0);
		t_assert_err(shmq_open(fix->seg, name, &q[i]), 0);
		t_assert_err(shmq_send(q[i], "m", 1, 0), 0);
	}
	for (i = 0; i < NQ; i++) {
		t_assert_err(shmq_recv(q[i], buf, sizeof(buf), 0), 1);
		shmq_close(q[i]);
	}
}

/*
 * A dead consumer holds lane position 0 when the lane's next position needs
 * that very slot: the message is re-stamped in place, not lost.
 */
static void test_lane_holder_dies_when_lane_wraps(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 16, 64);
	char name[8];
	pid_t a, b, c;
	int i;

	t_assert_err(shmq_send(q, "m0", 2, 0), 0);
	a = child_holding(fix, DO_ACQUIRE);
	kill_child(a);
	t_assert_err(shmq_seg_recover(fix->seg), 1);    /* m0 -> lane 0 */
	b = child_holding(fix, DO_ACQUIRE);             /* holds lane 0 */
	for (i = 1; i <= 7; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		t_assert_err(shmq_send(q, name, 2, 0), 0);
	}
	c = child_holding(fix, DO_ACQUIRE7);            /* holds m1..m7 */
	kill_child(c);
	t_assert_err(shmq_seg_recover(fix->seg), 7);    /* -> lane 1..7 */
	kill_child(b);
	for (i = 1; i <= 7; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		expect_msg(q, name, 0);
	}
	t_expect_empty(q);
	t_assert_err(shmq_seg_recover(fix->seg), 1);    /* re-stamped */
	expect_msg(q, "m0", 0);
	t_expect_empty(q);
	/* The lane keeps working afterwards. */
	t_assert_err(shmq_send(q, "m8", 2, 0), 0);
	a = child_holding(fix, DO_ACQUIRE);
	kill_child(a);
	t_assert_err(shmq_seg_recover(fix->seg), 1);
	expect_msg(q, "m8", 0);
	shmq_close(q);
}

/* A tombstone at the head of a full ring is a full slot, not "ready". */
static void test_full_ring_with_tombstone_times_out(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, QNAME, 4, 64);
	pid_t pid = child_holding(fix, DO_RESERVE);

	for (int i = 0; i < 3; i++)
		t_assert_err(shmq_send(q, "f", 1, 0), 0);
	kill_child(pid);
	t_assert_err(shmq_seg_recover(fix->seg), 1);
	t_assert_timeout(shmq_send(q, "g", 1, 50 * T_MS), 50 * T_MS);
	expect_msg(q, "f", 0);          /* skips the tombstone */
	t_assert_err(shmq_send(q, "g", 1, 0), 0);
	t_assert_err(shmq_send(q, "h", 1, 0), 0);
	expect_msg(q, "f", 0);
	expect_msg(q, "f", 0);
	expect_msg(q, "g", 0);
	expect_msg(q, "h", 0);
	t_expect_empty(q);
	shmq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_recover_dead_producer),
		T(test_recover_dead_producer_two),
		T(test_stopped_producer_waited_for),
		T(test_recover_dead_consumer),
		T(test_redelivered_zero_copy),
		T(test_msg_meta_of_redelivered),
		T(test_stalled_receiver_repairs),
		T(test_stalled_sender_repairs),
		T(test_polling_receiver_repairs),
		T(test_polling_sender_repairs),
		T(test_purge_bounds),
		T(test_purge_past_unpublished_lane_head),
		T(test_open_repairs),
		T(test_dead_users_handles_reclaimed),
		T(test_zero_copy_holds_bounded),
		T(test_many_queues_one_thread),
		T(test_lane_holder_dies_when_lane_wraps),
		T(test_full_ring_with_tombstone_times_out),
#undef T
	};

	return cmocka_run_group_tests_name("crash", tests, t_group_setup,
					   t_group_teardown);
}
