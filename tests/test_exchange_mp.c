// SPDX-License-Identifier: MIT
/*
 * test_exchange_mp.c - exchanges across real processes: fanout to
 * subscriber processes, competing consumers behind a topic binding,
 * bindings changed in one process and seen by another's route cache,
 * auto-delete queues of killed subscribers (and a publisher blocked on
 * one), fork() after publishing (with a thread publishing during the
 * fork), and processes SIGKILLed while binding or while publishing
 * between queues.  Single-process rules: test_exchange.c; threads on one
 * handle: test_exchange_threads.c.
 *
 * Children attach on their own (shmq_seg_open after fork, never the
 * parent's handles), check what they see and _exit() with a code saying
 * what went wrong (EXIT_* below, also printed on stderr); the parent
 * asserts on wait statuses.  Every child is forked with t_fork(), so the
 * fixture's teardown SIGKILLs and reaps it and unlinks the segment even
 * when an assertion fails midway.  Each test says in a comment what
 * library fault makes it fail.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define MSG_SIZE	64
#define CHILD_WD	60		/* a child's own watchdog, seconds */
#define SEC		(1000 * T_MS)

/* Exit codes of children. */
enum {
	EXIT_ATTACH = 20,	/* shmq_seg_open, shmq_open, exchange_open */
	EXIT_CALL = 21,		/* a call failed unexpectedly */
	EXIT_TORN = 22,		/* a message failed its checksum */
	EXIT_ORDER = 23,	/* out of order, or from the wrong sender */
	EXIT_KEY = 24,		/* the wrong routing key */
	EXIT_EXTRA = 25,	/* a message that should not be there */
};

/* In a child: say what went wrong and exit with @code. */
#define c_fail(code, ...) do {						\
		fprintf(stderr, "child %d: ", (int)getpid());		\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		_exit(code);						\
	} while (0)

static shmq_seg *c_attach(const char *name)
{
	shmq_seg *seg;
	int rc = shmq_seg_open(name, &seg);

	if (rc)
		c_fail(EXIT_ATTACH, "shmq_seg_open: %s", shmq_strerror(rc));
	return seg;
}

static shmq *c_open(shmq_seg *seg, const char *name)
{
	shmq *q;
	int rc = shmq_open(seg, name, &q);

	if (rc)
		c_fail(EXIT_ATTACH, "shmq_open %s: %s", name,
		       shmq_strerror(rc));
	return q;
}

static shmq_exchange *c_xopen(shmq_seg *seg, const char *name)
{
	shmq_exchange *x;
	int rc = shmq_exchange_open(seg, name, &x);

	if (rc)
		c_fail(EXIT_ATTACH, "shmq_exchange_open %s: %s", name,
		       shmq_strerror(rc));
	return x;
}

static void mkq(shmq_seg *seg, const char *name, uint32_t cap,
		uint32_t msg_size, uint32_t flags)
{
	struct shmq_attr a = { .capacity = cap,
			       .msg_size = msg_size, .flags = flags };

	t_assert_err(shmq_create(seg, name, &a), 0);
}

static void mkx(shmq_seg *seg, const char *name, uint32_t type)
{
	struct shmq_xattr a = { type, 0, NULL };

	t_assert_err(shmq_exchange_create(seg, name, &a), 0);
}

static void *shared_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

/* Read one byte from @fd within the watchdog; assert it came. */
static char pipe_read(int fd)
{
	char c = 0;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	assert_int_equal(n, 1);
	return c;
}

static void c_pipe_write(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		c_fail(EXIT_CALL, "pipe write");
}

/*
 * shmq_seg_check() of the segment: its errors, each printed; every
 * finding counts, the exchange's entry and binding table included.
 */
struct check_ctx {
	const char *xname;      /* for the message only */
	int errors;
};

static void check_problem(const struct shmq_problem *p, void *arg)
{
	struct check_ctx *c = arg;

	print_message("seg_check: %s: area %d index %d %s: %s\n",
		      p->severity == SHMQ_CHECK_ERROR ? "error" : "note",
		      p->area, p->index, p->queue ? p->queue : "-", p->what);
	if (p->severity == SHMQ_CHECK_ERROR)
		c->errors++;
}

static void assert_seg_checks(const char *segname, const char *xname)
{
	struct check_ctx c = { xname, 0 };

	assert_true(shmq_seg_check(segname, check_problem, &c) >= 0);
	assert_int_equal(c.errors, 0);
}

/* Receive everything in @q now; returns the count, asserts each intact. */
static unsigned drain_count(shmq *q)
{
	unsigned char buf[MSG_SIZE];
	unsigned n = 0;
	ssize_t len;

	while ((len = shmq_recv(q, buf, sizeof(buf), 0)) >= 0)
		n++;
	t_assert_err(len, -EAGAIN);
	return n;
}

/* ---- 1. fanout to subscriber processes -------------------------------------- */

#define FAN_SUBS	4
#define FAN_N		3000

static void fan_key(char *key, uint32_t s)
{
	snprintf(key, 16, "fan.%u", s % 7);
}

static void fan_subscriber(const char *segname, int i)
{
	char qname[16], key[16];
	unsigned char buf[MSG_SIZE];
	struct shmq_meta meta;
	shmq_seg *seg = c_attach(segname);
	uint32_t s, p, seq;
	ssize_t n;
	shmq *q;

	snprintf(qname, sizeof(qname), "sub%d", i);
	q = c_open(seg, qname);
	for (s = 0; s < FAN_N; s++) {
		n = shmq_recv_meta(q, buf, sizeof(buf), &meta, 20 * SEC);
		if (n < 0)
			c_fail(EXIT_CALL, "sub%d: recv %u: %s", i, s,
			       shmq_strerror((int)n));
		if (t_msg_check(buf, (size_t)n, &p, &seq))
			c_fail(EXIT_TORN, "sub%d: message %u torn", i, s);
		if (p != 0 || seq != s)
			c_fail(EXIT_ORDER, "sub%d: got %u/%u, expected 0/%u",
			       i, p, seq, s);
		fan_key(key, s);
		if (strcmp(meta.key, key) || meta.key_len != strlen(key))
			c_fail(EXIT_KEY, "sub%d: key %s for %u", i, meta.key,
			       s);
	}
	n = shmq_recv(q, buf, sizeof(buf), 0);
	if (n != -EAGAIN)
		c_fail(EXIT_EXTRA, "sub%d: more than %u messages", i, FAN_N);
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(0);
}

/*
 * Every subscriber process gets every message, whole and in order, with
 * its key.  Fails when a publish skips a queue or delivers twice (the
 * subscriber sees a gap or a repeat), reorders (a wrong seq), tears a
 * message or its key, or when a subscriber's blocking recv is never woken
 * by a publish from another process (its 20 s recv times out).
 */
static void test_fanout_to_subscriber_processes(void **state)
{
	struct t_fix *fix = *state;
	unsigned char buf[MSG_SIZE];
	pid_t pid[FAN_SUBS];
	shmq_exchange *x;
	char name[16], key[16];
	uint32_t s;
	int i;

	mkx(fix->seg, "fan", SHMQ_FANOUT);
	for (i = 0; i < FAN_SUBS; i++) {
		snprintf(name, sizeof(name), "sub%d", i);
		/* Small rings: the publisher waits for the slowest one. */
		mkq(fix->seg, name, 16, MSG_SIZE, 0);
		t_assert_err(shmq_bind(fix->seg, "fan", name, ""), 0);
	}
	for (i = 0; i < FAN_SUBS; i++) {
		pid[i] = t_fork(CHILD_WD);
		assert_true(pid[i] >= 0);
		if (pid[i] == 0)
			fan_subscriber(fix->name, i);
	}
	t_assert_err(shmq_exchange_open(fix->seg, "fan", &x), 0);
	for (s = 0; s < FAN_N; s++) {
		/* The key travels in the slot: leave room for it. */
		size_t len = t_msg_fill(buf, MSG_SIZE - 8, 0, s);

		fan_key(key, s);
		t_assert_err(shmq_publish(x, key, buf, len, 20 * SEC),
			     FAN_SUBS);
	}
	for (i = 0; i < FAN_SUBS; i++)
		t_assert_exit0(t_wait_child(pid[i]));
	shmq_exchange_close(x);
}

/* ---- 2. competing consumers behind a topic binding ----------------------- */

#define CC_PUBS		2
#define CC_CONS		3
#define CC_N		4000

static const char *const cc_keys[CC_PUBS] = { "jobs.a", "jobs.b.c" };

struct cc_shared {
	atomic_uint seen[CC_PUBS * CC_N];
	atomic_uint per_cons[CC_CONS];
};

static void cc_publisher(const char *segname, uint32_t p)
{
	unsigned char buf[MSG_SIZE];
	shmq_seg *seg = c_attach(segname);
	shmq_exchange *x = c_xopen(seg, "tx");
	uint32_t s;
	int rc;

	for (s = 0; s < CC_N; s++) {
		size_t len = t_msg_fill(buf, MSG_SIZE - 8, p, s);

		rc = shmq_publish(x, cc_keys[p], buf, len, 20 * SEC);
		if (rc != 1)
			c_fail(EXIT_CALL, "publisher %u: publish %u: %d (%s)",
			       p, s, rc, rc < 0 ? shmq_strerror(rc) : "");
	}
	shmq_exchange_close(x);
	shmq_seg_close(seg);
	_exit(0);
}

static void cc_consumer(const char *segname, struct cc_shared *sh, int c)
{
	unsigned char buf[MSG_SIZE];
	struct shmq_meta meta;
	shmq_seg *seg = c_attach(segname);
	shmq *q = c_open(seg, "jobs");
	int64_t last[CC_PUBS] = { -1, -1 };
	uint32_t p, s;
	ssize_t n;

	for (;;) {
		n = shmq_recv_meta(q, buf, sizeof(buf), &meta, 20 * SEC);
		if (n < 0)
			c_fail(EXIT_CALL, "consumer %d: recv: %s", c,
			       shmq_strerror((int)n));
		if (t_msg_check(buf, (size_t)n, &p, &s))
			c_fail(EXIT_TORN, "consumer %d: torn message", c);
		if (p >= T_SENTINEL)
			break;
		if (p >= CC_PUBS || s >= CC_N)
			c_fail(EXIT_EXTRA, "consumer %d: %u/%u invented", c, p,
			       s);
		if (strcmp(meta.key, cc_keys[p]))
			c_fail(EXIT_KEY, "consumer %d: %u/%u came with key %s",
			       c, p, s, meta.key);
		if ((int64_t)s <= last[p])
			c_fail(EXIT_ORDER, "consumer %d: %u/%u after %u/%lld",
			       c, p, s, p, (long long)last[p]);
		last[p] = s;
		atomic_fetch_add(&sh->seen[p * CC_N + s], 1);
		atomic_fetch_add(&sh->per_cons[c], 1);
	}
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(0);
}

/*
 * Two publisher processes with different keys, one queue bound with
 * "jobs.#", three consumer processes: every message is received exactly
 * once overall, each consumer sees each publisher's messages in order and
 * with its key; a key the binding does not match goes nowhere.  Fails on
 * a lost or duplicated message (seen[] is not all 1), a reordering within
 * one publisher, a wrong key, or a topic match that routes "other.x".
 */
static void test_competing_consumers_topic(void **state)
{
	struct t_fix *fix = *state;
	struct cc_shared *sh = shared_map(sizeof(*sh));
	unsigned char buf[MSG_SIZE];
	pid_t pub[CC_PUBS], cons[CC_CONS];
	shmq_exchange *x;
	uint32_t i, total = 0;

	mkx(fix->seg, "tx", SHMQ_TOPIC);
	mkq(fix->seg, "jobs", 32, MSG_SIZE, 0);
	t_assert_err(shmq_bind(fix->seg, "tx", "jobs", "jobs.#"), 0);
	for (i = 0; i < CC_CONS; i++) {
		cons[i] = t_fork(CHILD_WD);
		assert_true(cons[i] >= 0);
		if (cons[i] == 0)
			cc_consumer(fix->name, sh, (int)i);
	}
	for (i = 0; i < CC_PUBS; i++) {
		pub[i] = t_fork(CHILD_WD);
		assert_true(pub[i] >= 0);
		if (pub[i] == 0)
			cc_publisher(fix->name, i);
	}
	for (i = 0; i < CC_PUBS; i++)
		t_assert_exit0(t_wait_child(pub[i]));
	t_assert_err(shmq_exchange_open(fix->seg, "tx", &x), 0);
	/* Not matched by "jobs.#": nowhere (and no consumer sees it). */
	t_assert_err(shmq_publish(x, "other.jobs", "x", 1, 0), 0);
	t_assert_err(shmq_publish(x, "jobsx.a", "x", 1, 0), 0);
	for (i = 0; i < CC_CONS; i++)
		t_assert_err(shmq_publish(x, "jobs.stop", buf,
					  t_msg_sentinel(buf, i), 20 * SEC),
			     1);
	for (i = 0; i < CC_CONS; i++)
		t_assert_exit0(t_wait_child(cons[i]));
	for (i = 0; i < CC_PUBS * CC_N; i++) {
		unsigned v = atomic_load(&sh->seen[i]);

		if (v != 1)
			fail_msg("message %u/%u received %u times",
				 i / CC_N, i % CC_N, v);
	}
	for (i = 0; i < CC_CONS; i++)
		total += atomic_load(&sh->per_cons[i]);
	assert_int_equal(total, CC_PUBS * CC_N);
	shmq_exchange_close(x);
	munmap(sh, sizeof(*sh));
}

/* ---- 3. bind/unbind seen across processes -------------------------------- */

#define XB_ROUNDS	40

/* The binder child: runs the parent's commands, acks each when done. */
static void xb_binder(const char *segname, int cmd_fd, int ack_fd)
{
	shmq_seg *seg = c_attach(segname);
	char c, qname[4];
	int rc;

	for (;;) {
		if (read(cmd_fd, &c, 1) != 1)
			c_fail(EXIT_CALL, "binder: command pipe");
		if (c == 'q')
			break;
		snprintf(qname, sizeof(qname), "q%d", c & 1);
		if (c & 2)
			rc = shmq_unbind(seg, "dx", qname, "k");
		else
			rc = shmq_bind(seg, "dx", qname, "k");
		if (rc)
			c_fail(EXIT_CALL, "binder: %s %s: %s",
			       (c & 2) ? "unbind" : "bind", qname,
			       shmq_strerror(rc));
		c_pipe_write(ack_fd, 'a');
	}
	shmq_seg_close(seg);
	_exit(0);
}

/* Publish "k" and check which of q[0], q[1] got it: exactly @bound. */
static void xb_publish_check(shmq_exchange *x, shmq *q[2], const int bound[2],
			     uint32_t seq)
{
	unsigned char buf[MSG_SIZE];
	size_t len = t_msg_fill(buf, MSG_SIZE - 1, 0, seq);
	uint32_t p, s;
	ssize_t n;
	int i;

	t_assert_err(shmq_publish(x, "k", buf, len, 0), bound[0] + bound[1]);
	for (i = 0; i < 2; i++) {
		if (!bound[i]) {
			t_expect_empty(q[i]);
			continue;
		}
		n = shmq_recv(q[i], buf, sizeof(buf), 0);
		t_assert_err(n, (long long)len);
		assert_int_equal(t_msg_check(buf, (size_t)n, &p, &s), 0);
		assert_int_equal(s, seq);
		t_expect_empty(q[i]);
	}
}

/*
 * A child process binds and unbinds; the parent's route cache is warm
 * (the same key published just before) when each change happens, and the
 * parent's first publish after the child's ack must route by the change.
 * Fails when a bind/unbind in another process does not invalidate a
 * route cache (the generation not bumped, or bumped after the call
 * returned, or a cached route used despite a newer generation): the
 * publish then reaches the old set of queues.
 */
static void test_bind_seen_across_processes(void **state)
{
	struct t_fix *fix = *state;
	int cmd[2], ack[2], bound[2] = { 0, 0 };
	uint32_t rng = 12345, seq = 0, r;
	shmq_exchange *x;
	shmq *q[2];
	pid_t pid;

	mkx(fix->seg, "dx", SHMQ_DIRECT);
	q[0] = t_queue(fix->seg, "q0", 8, MSG_SIZE);
	q[1] = t_queue(fix->seg, "q1", 8, MSG_SIZE);
	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(ack), 0);
	pid = t_fork(CHILD_WD);
	assert_true(pid >= 0);
	if (pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		xb_binder(fix->name, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	t_assert_err(shmq_exchange_open(fix->seg, "dx", &x), 0);
	for (r = 0; r < XB_ROUNDS; r++) {
		int i = (int)(t_rand(&rng) & 1);
		char c = (char)(i | (bound[i] ? 2 : 0));

		/* Warm: the route of "k" as the bindings are now. */
		xb_publish_check(x, q, bound, seq++);
		xb_publish_check(x, q, bound, seq++);
		assert_int_equal(write(cmd[1], &c, 1), 1);
		assert_int_equal(pipe_read(ack[0]), 'a');
		bound[i] = !bound[i];
		/* Starts after the change returned: routes by it. */
		xb_publish_check(x, q, bound, seq++);
	}
	assert_int_equal(write(cmd[1], "q", 1), 1);
	t_assert_exit0(t_wait_child(pid));
	close(cmd[1]);
	close(ack[0]);
	shmq_exchange_close(x);
	shmq_close(q[0]);
	shmq_close(q[1]);
}

/* ---- 4. auto-delete on kill --------------------------------------------- */

/*
 * A subscriber: creates its private SHMQ_AUTODELETE queue @qname, opens
 * it, binds it to @xname, tells the parent, and waits to be killed.
 */
static void ad_subscriber(const char *segname, const char *xname,
			  const char *qname, uint32_t cap, int ack_fd)
{
	struct shmq_attr a = { .capacity = cap,
			       .msg_size = MSG_SIZE, .flags = SHMQ_AUTODELETE };
	shmq_seg *seg = c_attach(segname);
	shmq *q;
	int rc;

	rc = shmq_create(seg, qname, &a);
	if (rc)
		c_fail(EXIT_CALL, "create %s: %s", qname, shmq_strerror(rc));
	q = c_open(seg, qname);
	rc = shmq_bind(seg, xname, qname, "");
	if (rc)
		c_fail(EXIT_CALL, "bind %s: %s", qname, shmq_strerror(rc));
	c_pipe_write(ack_fd, 'a');
	for (;;)
		pause();
	(void)q;
}

static pid_t ad_spawn(struct t_fix *fix, const char *xname, const char *qname,
		      uint32_t cap)
{
	int ack[2];
	pid_t pid;

	assert_int_equal(pipe(ack), 0);
	pid = t_fork(CHILD_WD);
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ack[0]);
		ad_subscriber(fix->name, xname, qname, cap, ack[1]);
	}
	close(ack[1]);
	assert_int_equal(pipe_read(ack[0]), 'a');
	close(ack[0]);
	return pid;
}

/* No LIVE queue named @name in shmq_queue_list, nor by shmq_queue_stat. */
static void assert_queue_gone(shmq_seg *seg, const char *name)
{
	struct shmq_queue_info qi[8];
	int n, i;

	t_assert_err(shmq_queue_stat(seg, name, &qi[0]), -ENOENT);
	n = shmq_queue_list(seg, qi, 8);
	assert_true(n >= 0 && n <= 8);
	for (i = 0; i < n; i++)
		if (qi[i].state == SHMQ_QUEUE_LIVE &&
		    strcmp(qi[i].name, name) == 0)
			fail_msg("queue %s still listed live", name);
}

/*
 * A binding whose queue is gone and whose directory entry is FREE again
 * (unlinked, last handle closed) is ignored, by routing and by the
 * listing.  Single-process, but it is the state a killed auto-delete
 * subscriber leaves (test_autodelete_on_kill found it), so it lives here.
 * Failed before the fix: shmq__dir_validate_entry() returned 0 for a FREE
 * entry without filling its output, so xbind_queue() judged the freed
 * queue by the previous record's queue ("b", LIVE, the same gen 1) and
 * "x" was routed to "b", which is bound only with "y"; the listing showed
 * "b" twice.
 */
static void test_binding_of_freed_queue(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_binding_info bi[4];
	shmq_exchange *x;
	shmq *b;

	mkx(fix->seg, "dx", SHMQ_DIRECT);
	b = t_queue(fix->seg, "b", 4, MSG_SIZE);
	mkq(fix->seg, "a", 4, MSG_SIZE, 0);
	/* b's record first, then a's: a's is judged right after b's. */
	t_assert_err(shmq_bind(fix->seg, "dx", "b", "y"), 0);
	t_assert_err(shmq_bind(fix->seg, "dx", "a", "x"), 0);
	t_assert_err(shmq_unlink(fix->seg, "a"), 0);    /* entry FREE now */
	t_assert_err(shmq_binding_list(fix->seg, "dx", bi, 4), 1);
	assert_string_equal(bi[0].queue, "b");
	assert_string_equal(bi[0].key, "y");
	t_assert_err(shmq_exchange_open(fix->seg, "dx", &x), 0);
	t_assert_err(shmq_publish(x, "x", "m", 1, 0), 0);
	t_expect_empty(b);
	t_assert_err(shmq_publish(x, "y", "m", 1, 0), 1);
	t_recv_expect(b, "m", 1, 0);
	shmq_exchange_close(x);
	shmq_close(b);
}

enum { AD_RECOVER, AD_ATTACH, AD_MISS };

/*
 * A subscriber with a private SHMQ_AUTODELETE queue bound to a fanout
 * exchange is SIGKILLed while the parent's route cache is warm.  The
 * documented triggers (shmq.h, SHMQ_AUTODELETE) remove its queue and
 * bindings: shmq_seg_recover(), the next attach of any process, and a
 * publisher that routes anew (a key not in its cache).  After each, a
 * publish through the warm handle reaches only the queue that stays, the
 * queue is not listed, and its binding is gone.  Fails when the dead
 * holder is not reaped at that trigger, when reaping an auto-delete queue
 * does not bump the generation (the warm route would still deliver to
 * it), or when its bindings outlive it.
 */
static void test_autodelete_on_kill(void **state)
{
	struct t_fix *fix = *state;
	shmq_exchange *x;
	shmq *keep;
	int how;

	mkx(fix->seg, "fx", SHMQ_FANOUT);
	keep = t_queue(fix->seg, "keep", 16, MSG_SIZE);
	t_assert_err(shmq_bind(fix->seg, "fx", "keep", ""), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "fx", &x), 0);
	for (how = AD_RECOVER; how <= AD_MISS; how++) {
		pid_t sub = ad_spawn(fix, "fx", "private", 8);
		pid_t att;

		/* Warm: "k" routes to both. */
		t_assert_err(shmq_publish(x, "k", "m", 1, 0), 2);
		t_assert_err(shmq_publish(x, "k", "m", 1, 0), 2);
		t_assert_err(shmq_binding_list(fix->seg, "fx", NULL, 0), 2);
		t_kill_reap(sub);
		switch (how) {
		case AD_RECOVER:
			assert_true(shmq_seg_recover(fix->seg) >= 0);
			break;
		case AD_ATTACH:
			att = t_fork(CHILD_WD);
			assert_true(att >= 0);
			if (att == 0) {
				shmq_seg_close(c_attach(fix->name));
				_exit(0);
			}
			t_assert_exit0(t_wait_child(att));
			break;
		case AD_MISS:
			/* A key not in the cache: the rebuild reaps first. */
			t_assert_err(shmq_publish(x, "fresh", "m", 1, 0), 1);
			break;
		}
		t_assert_err(shmq_publish(x, "k", "m", 1, 0), 1);
		assert_queue_gone(fix->seg, "private");
		t_assert_err(shmq_binding_list(fix->seg, "fx", NULL, 0), 1);
		assert_int_equal(drain_count(keep), how == AD_MISS ? 4 : 3);
	}
	shmq_exchange_close(x);
	shmq_close(keep);
}

/*
 * A publisher blocked (warm route, default overflow policy) on a full
 * auto-delete queue whose only holder is then SIGKILLed: after the
 * queue's stall threshold (5 ms by default) publish.c rebuilds the route,
 * which reaps, and the publish goes through to the queue that stays.
 * Fails when a blocked publish never looks at its route again (it times
 * out after 20 s with -ETIMEDOUT, or never returns: the watchdog).
 */
static void test_autodelete_unblocks_publisher(void **state)
{
	struct t_fix *fix = *state;
	shmq_exchange *x;
	pid_t sub, killer;
	uint64_t t0;
	shmq *keep;
	int st;

	mkx(fix->seg, "fx2", SHMQ_FANOUT);
	keep = t_queue(fix->seg, "keep", 16, MSG_SIZE);
	t_assert_err(shmq_bind(fix->seg, "fx2", "keep", ""), 0);
	sub = ad_spawn(fix, "fx2", "private", 2);
	t_assert_err(shmq_exchange_open(fix->seg, "fx2", &x), 0);
	/* Fill the subscriber's queue (2 slots); it never reads. */
	t_assert_err(shmq_publish(x, "k", "1", 1, 0), 2);
	t_assert_err(shmq_publish(x, "k", "2", 1, 0), 2);
	t_assert_err(shmq_publish(x, "k", "3", 1, 0), -EAGAIN);
	/* Kill it while we are blocked in the next publish. */
	killer = t_fork(CHILD_WD);
	assert_true(killer >= 0);
	if (killer == 0) {
		t_sleep_ms(300);
		kill(sub, SIGKILL);
		_exit(0);
	}
	t0 = t_now_ns();
	t_assert_err(shmq_publish(x, "k", "3", 1, 20 * SEC), 1);
	assert_true(t_now_ns() - t0 < 20 * (uint64_t)SEC);
	t_assert_exit0(t_wait_child(killer));
	st = t_wait_child(sub);
	t_assert_killed(st);
	assert_queue_gone(fix->seg, "private");
	assert_int_equal(drain_count(keep), 3);
	shmq_exchange_close(x);
	shmq_close(keep);
}

/* ---- 5. fork() after publishing ------------------------------------------ */

#define FK_ROUNDS	12

struct fk_spinner {
	shmq_exchange *x;
	atomic_int stop;
	atomic_ulong published;
	int err;
};

/* A parent thread publishing in a loop: often inside a read-side section. */
static void *fk_spin(void *arg)
{
	struct fk_spinner *sp = arg;
	int rc;

	while (!atomic_load(&sp->stop)) {
		rc = shmq_publish(sp->x, "spin", "s", 1, 0);
		if (rc != 1) {
			sp->err = rc;
			break;
		}
		atomic_fetch_add(&sp->published, 1);
	}
	return NULL;
}

/* The child of a fork: its own attachment and handle; publish, rebind. */
static void fk_child(const char *segname, uint32_t round)
{
	shmq_seg *seg = c_attach(segname);
	shmq_exchange *x = c_xopen(seg, "dx");
	char qname[16];
	int rc;

	snprintf(qname, sizeof(qname), "c%u", round);
	if ((rc = shmq_publish(x, "k", "c1", 2, 10 * SEC)) != 1)
		c_fail(EXIT_CALL, "fork child: publish 1: %d", rc);
	/* A bind change: the child's route of "k" is rebuilt (retired). */
	if ((rc = shmq_bind(seg, "dx", qname, "k")))
		c_fail(EXIT_CALL, "fork child: bind: %s", shmq_strerror(rc));
	if ((rc = shmq_publish(x, "k", "c2", 2, 10 * SEC)) != 2)
		c_fail(EXIT_CALL, "fork child: publish 2: %d", rc);
	if ((rc = shmq_unbind(seg, "dx", qname, "k")))
		c_fail(EXIT_CALL, "fork child: unbind: %s", shmq_strerror(rc));
	if ((rc = shmq_publish(x, "k", "c3", 2, 10 * SEC)) != 1)
		c_fail(EXIT_CALL, "fork child: publish 3: %d", rc);
	shmq_exchange_close(x);
	shmq_seg_close(seg);
	_exit(0);
}

/*
 * The parent publishes (its thread is registered with liburcu, its route
 * cache warm), then forks while a second thread publishes in a loop, so
 * that at some forks that thread is inside an RCU read-side section that
 * will never end in the child.  Each child opens its own attachment and
 * exchange handle, publishes, binds (forcing a route rebuild, which
 * retires the old route), publishes, unbinds, publishes.  Fails when a
 * child hangs in synchronize_rcu() on the parent's thread (its watchdog
 * kills it: the wait status says signal 14), or when routing in the child
 * is wrong (its exit code).
 */
static void test_fork_after_publish(void **state)
{
	struct t_fix *fix = *state;
	struct fk_spinner sp = { 0 };
	char qname[16], buf[8];
	pthread_t th;
	shmq_exchange *x, *xs;
	shmq *q, *spin, *cq[FK_ROUNDS];
	uint32_t r;
	pid_t pid;

	mkx(fix->seg, "dx", SHMQ_DIRECT);
	q = t_queue(fix->seg, "q", 64, MSG_SIZE);
	/* Drop-oldest: the spinning thread never waits. */
	spin = t_queue_flags(fix->seg, "spinq", 8, MSG_SIZE, SHMQ_DROP_OLDEST);
	t_assert_err(shmq_bind(fix->seg, "dx", "q", "k"), 0);
	t_assert_err(shmq_bind(fix->seg, "dx", "spinq", "spin"), 0);
	for (r = 0; r < FK_ROUNDS; r++) {
		snprintf(qname, sizeof(qname), "c%u", r);
		cq[r] = t_queue(fix->seg, qname, 8, MSG_SIZE);
	}
	t_assert_err(shmq_exchange_open(fix->seg, "dx", &x), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "dx", &xs), 0);
	t_assert_err(shmq_publish(x, "k", "p", 1, 0), 1);
	sp.x = xs;
	assert_int_equal(pthread_create(&th, NULL, fk_spin, &sp), 0);
	for (r = 0; r < FK_ROUNDS; r++) {
		/* Let the spinner run (and be mid-publish at the fork). */
		while (atomic_load(&sp.published) < (r + 1) * 100ul &&
		       !sp.err)
			sched_yield();
		pid = t_fork(20);
		assert_true(pid >= 0);
		if (pid == 0)
			fk_child(fix->name, r);
		t_assert_exit0(t_wait_child(pid));
		/* Our own cache still works, after the child's changes too. */
		t_assert_err(shmq_publish(x, "k", "p", 1, 0), 1);
	}
	atomic_store(&sp.stop, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(sp.err, 0);
	/* 1 + FK_ROUNDS from us, 3 per child; each c<r> got "c2" only. */
	assert_int_equal(drain_count(q), 1 + FK_ROUNDS + 3 * FK_ROUNDS);
	for (r = 0; r < FK_ROUNDS; r++) {
		t_assert_err(shmq_recv(cq[r], buf, sizeof(buf), 0), 2);
		assert_memory_equal(buf, "c2", 2);
		t_expect_empty(cq[r]);
		shmq_close(cq[r]);
	}
	shmq_exchange_close(xs);
	shmq_exchange_close(x);
	shmq_close(spin);
	shmq_close(q);
}

/* ---- 6. killed while binding ------------------------------------------- */

#define KB_ROUNDS	150
#define KB_QUEUES	3
#define KB_KEYS		8

struct kb_shared {
	atomic_ulong ops;
};

static void kb_child(const char *segname, struct kb_shared *sh, uint32_t seed)
{
	shmq_seg *seg = c_attach(segname);
	char qname[8], key[8];
	int rc;

	for (;;) {
		uint32_t r = t_rand(&seed);

		snprintf(qname, sizeof(qname), "b%u", r % KB_QUEUES);
		snprintf(key, sizeof(key), "k%u", (r >> 8) % KB_KEYS);
		if (r & 0x10000)
			rc = shmq_bind(seg, "bx", qname, key);
		else
			rc = shmq_unbind(seg, "bx", qname, key);
		if (rc && rc != -ENOENT)
			c_fail(EXIT_CALL, "binder: %s", shmq_strerror(rc));
		if ((r & 0xff) == 0 &&
		    (rc = shmq_binding_list(seg, "bx", NULL, 0)) < 0)
			c_fail(EXIT_CALL, "binder: list: %s",
			       shmq_strerror(rc));
		atomic_fetch_add(&sh->ops, 1);
	}
}

/*
 * The bindings as listed are well formed and unique, the exchange's
 * count agrees, and publishing each key reaches exactly the queues the
 * list names.  Returns the number of bindings.
 */
static int kb_consistent(struct t_fix *fix, shmq_exchange *x, shmq **q)
{
	struct shmq_binding_info *b = calloc(64, sizeof(*b));
	struct shmq_exchange_info xi;
	int n, i, j, k, want[KB_KEYS] = { 0 };
	int per_q[KB_QUEUES][KB_KEYS] = { { 0 } };
	char key[16];

	assert_non_null(b);
	n = shmq_binding_list(fix->seg, "bx", b, 64);
	assert_true(n >= 0 && n <= KB_QUEUES * KB_KEYS);
	for (i = 0; i < n; i++) {
		int qi = -1, ki = -1;

		assert_string_equal(b[i].exchange, "bx");
		assert_int_equal(b[i].key_len, strlen(b[i].key));
		if (sscanf(b[i].queue, "b%d", &qi) != 1 || qi < 0 ||
		    qi >= KB_QUEUES || sscanf(b[i].key, "k%d", &ki) != 1 ||
		    ki < 0 || ki >= KB_KEYS)
			fail_msg("binding %s -> %s [%s] unknown", b[i].exchange,
				 b[i].queue, b[i].key);
		for (j = 0; j < i; j++)
			if (!strcmp(b[i].queue, b[j].queue) &&
			    !strcmp(b[i].key, b[j].key))
				fail_msg("binding %s [%s] listed twice",
					 b[i].queue, b[i].key);
		per_q[qi][ki] = 1;
		want[ki]++;
	}
	t_assert_err(shmq_exchange_stat(fix->seg, "bx", &xi), 0);
	assert_int_equal(xi.bindings, n);
	for (k = 0; k < KB_KEYS; k++) {
		snprintf(key, sizeof(key), "k%d", k);
		t_assert_err(shmq_publish(x, key, key, strlen(key), 0),
			     want[k]);
		for (j = 0; j < KB_QUEUES; j++)
			if (per_q[j][k])
				t_recv_expect(q[j], key, strlen(key), 0);
	}
	for (j = 0; j < KB_QUEUES; j++)
		t_expect_empty(q[j]);
	free(b);
	return n;
}

/*
 * A child binds and unbinds in a loop (most of its time under the
 * control-plane lock: table appends, dead marks, table copies) and is
 * SIGKILLed at random moments, many rounds.  After each kill the parent's
 * bind, list and unbind return at once (bounded), and every few rounds
 * the binding table is consistent with what routing does.  Fails when a
 * dead holder wedges the lock (the 10 s bound or the watchdog), when a
 * half-written record shows (a malformed or duplicate binding, the list
 * disagreeing with the exchange's count or with routing), or when
 * shmq_seg_check() finds the segment inconsistent.
 */
static void test_killed_while_binding(void **state)
{
	struct t_fix *fix = *state;
	struct kb_shared *sh = shared_map(sizeof(*sh));
	uint32_t rng = (uint32_t)getpid() * 2654435761u, r;
	shmq *q[KB_QUEUES];
	shmq_exchange *x;
	char name[16];
	int i;

	t_watchdog(T_WATCHDOG_S * 3);
	mkx(fix->seg, "bx", SHMQ_DIRECT);
	for (i = 0; i < KB_QUEUES; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		q[i] = t_queue(fix->seg, name, 64, MSG_SIZE);
	}
	t_assert_err(shmq_exchange_open(fix->seg, "bx", &x), 0);
	for (r = 0; r < KB_ROUNDS; r++) {
		unsigned long before = atomic_load(&sh->ops);
		uint64_t t0;
		pid_t pid = t_fork(CHILD_WD);

		assert_true(pid >= 0);
		if (pid == 0)
			kb_child(fix->name, sh, t_rand(&rng) | 1);
		/* Attached and looping: then kill at a random moment. */
		while (atomic_load(&sh->ops) < before + 1 + r % 50)
			sched_yield();
		usleep(t_rand(&rng) % 2000);
		t_kill_reap(pid);
		t0 = t_now_ns();
		t_assert_err(shmq_bind(fix->seg, "bx", "b0", "ctl"), 0);
		assert_true(shmq_binding_list(fix->seg, NULL, NULL, 0) >= 1);
		t_assert_err(shmq_unbind(fix->seg, "bx", "b0", "ctl"), 0);
		assert_true(t_now_ns() - t0 < 10 * (uint64_t)SEC);
		if (r % 10 == 9)
			kb_consistent(fix, x, q);
	}
	kb_consistent(fix, x, q);
	/* The table still grows and shrinks. */
	t_assert_err(shmq_bind(fix->seg, "bx", "b1", "final"), 0);
	t_assert_err(shmq_publish(x, "final", "f", 1, 0), 1);
	t_recv_expect(q[1], "f", 1, 0);
	t_assert_err(shmq_unbind(fix->seg, "bx", "b1", "final"), 0);
	t_assert_err(shmq_publish(x, "final", "f", 1, 0), 0);
	assert_seg_checks(fix->name, "bx");
	shmq_exchange_close(x);
	for (i = 0; i < KB_QUEUES; i++)
		shmq_close(q[i]);
	munmap(sh, sizeof(*sh));
}

/* ---- 7. killed while publishing between queues --------------------------- */

/* Fewer under sanitizers (TSan: about 5x slower per round). */
#define KP_ROUNDS	(T_SANITIZED ? 60 : 200)
#define KP_QUEUES	3
#define KP_CAP		4096

struct kp_shared {
	atomic_uint published;	/* publishes that returned 3 this round */
};

static void kp_child(const char *segname, struct kp_shared *sh, uint32_t id)
{
	shmq_seg *seg = c_attach(segname);
	shmq_exchange *x = c_xopen(seg, "fx");
	unsigned char buf[MSG_SIZE];
	uint32_t s = 0;
	int rc;

	for (;;) {
		size_t len = t_msg_fill(buf, MSG_SIZE, id, s);

		rc = shmq_publish(x, "", buf, len, 0);
		if (rc == -EAGAIN) {
			sched_yield();  /* full: the parent drains later */
			continue;
		}
		if (rc != KP_QUEUES)
			c_fail(EXIT_CALL, "publish %u: %d", s, rc);
		atomic_store(&sh->published, ++s);
	}
}

/*
 * Drain queue @q after a kill: every message whole and from round @id,
 * seqs 0, 1, 2... without a gap.  Returns how many.
 */
static uint32_t kp_drain(shmq *q, uint32_t id)
{
	unsigned char buf[MSG_SIZE];
	uint32_t n = 0, p, s;
	ssize_t len;

	while ((len = shmq_recv(q, buf, sizeof(buf), 0)) >= 0) {
		if (t_msg_check(buf, (size_t)len, &p, &s))
			fail_msg("round %u: message %u torn", id, n);
		if (p != id || s != n)
			fail_msg("round %u: got %u/%u where %u/%u was due", id,
				 p, s, id, n);
		n++;
	}
	t_assert_err(len, -EAGAIN);
	return n;
}

/*
 * A child publishes numbered, checksummed messages through a fanout to
 * three queues and is SIGKILLed at random moments, many rounds; then
 * shmq_seg_recover() and a drain of each queue.  Every message is whole,
 * each queue holds 0, 1, 2... of the round without a gap, the queues
 * differ by at most the one message in flight, everything the child saw
 * published is there, and publishing works afterwards.  Fails when a
 * killed publish leaves a torn or half-published slot visible, when
 * recovery does not turn a dead claim into a tombstone (a consumer stalls
 * or sees garbage), or when one publish reaches a queue twice or skips
 * one that a later publish reached (a gap).
 */
static void test_killed_while_publishing(void **state)
{
	struct t_fix *fix = *state;
	struct kp_shared *sh = shared_map(sizeof(*sh));
	uint32_t rng = (uint32_t)getpid() * 2246822519u, r, k;
	uint32_t n[KP_QUEUES], lo, hi, mid = 0;
	unsigned char buf[MSG_SIZE];
	shmq_exchange *x;
	shmq *q[KP_QUEUES];
	char name[16];
	int i;

	t_watchdog(T_WATCHDOG_S * 3);
	mkx(fix->seg, "fx", SHMQ_FANOUT);
	for (i = 0; i < KP_QUEUES; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		q[i] = t_queue(fix->seg, name, KP_CAP, MSG_SIZE);
		t_assert_err(shmq_bind(fix->seg, "fx", name, ""), 0);
	}
	for (r = 0; r < KP_ROUNDS; r++) {
		pid_t pid;

		atomic_store(&sh->published, 0);
		pid = t_fork(CHILD_WD);
		assert_true(pid >= 0);
		if (pid == 0)
			kp_child(fix->name, sh, r);
		while (atomic_load(&sh->published) < 1 + r % 64)
			sched_yield();
		usleep(t_rand(&rng) % 1000);
		t_kill_reap(pid);
		k = atomic_load(&sh->published);
		assert_true(shmq_seg_recover(fix->seg) >= 0);
		lo = UINT32_MAX;
		hi = 0;
		for (i = 0; i < KP_QUEUES; i++) {
			n[i] = kp_drain(q[i], r);
			lo = n[i] < lo ? n[i] : lo;
			hi = n[i] > hi ? n[i] : hi;
		}
		if (hi - lo > 1 || lo < k)
			fail_msg("round %u: queues hold %u, %u, %u; %u were "
				 "published", r, n[0], n[1], n[2], k);
		mid += hi != lo;
	}
	/* Publishing works afterwards, and reaches every queue. */
	t_assert_err(shmq_exchange_open(fix->seg, "fx", &x), 0);
	for (k = 0; k < 10; k++) {
		size_t len = t_msg_fill(buf, MSG_SIZE, KP_ROUNDS, k);

		t_assert_err(shmq_publish(x, "", buf, len, 0), KP_QUEUES);
	}
	for (i = 0; i < KP_QUEUES; i++)
		assert_int_equal(kp_drain(q[i], KP_ROUNDS), 10);
	assert_seg_checks(fix->name, "fx");
	print_message("killed while publishing: %u rounds, %u killed between "
		      "queues\n", KP_ROUNDS, mid);
	shmq_exchange_close(x);
	for (i = 0; i < KP_QUEUES; i++)
		shmq_close(q[i]);
	munmap(sh, sizeof(*sh));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)

/* Unlinked queues that no handle of ours keeps: their storage is not freed. */
static int count_unlinked(shmq_seg *seg)
{
	struct shmq_queue_info info[16];
	int n = shmq_queue_list(seg, info, 16), i, k = 0;

	for (i = 0; i < n && i < 16; i++)
		if (info[i].state == SHMQ_QUEUE_UNLINKED)
			k++;
	return n < 0 ? n : k;
}

/* Route to three queues one after the other, unlinking each. */
static int pins_drop_body(const char *segname)
{
	struct shmq_xattr xa = { SHMQ_FANOUT, 0, NULL };
	shmq_exchange *x;
	shmq_seg *seg;
	int i, rc;

	if (shmq_seg_open(segname, &seg))
		return 10;
	if (shmq_exchange_create(seg, "fx", &xa) ||
	    shmq_exchange_open(seg, "fx", &x))
		return 11;
	for (i = 0; i < 3; i++) {
		struct shmq_attr a = { .capacity = 2,
				       .msg_size = 64, .flags = 0 };
		char qn[16];

		snprintf(qn, sizeof(qn), "cq%d", i);
		if (shmq_create(seg, qn, &a) || shmq_bind(seg, "fx", qn, ""))
			return 12;
		if (shmq_publish(x, "", "m", 1, 0) != 1)        /* pins it */
			return 13;
		if (shmq_unlink(seg, qn))
			return 14;
	}
	if (shmq_publish(x, "", "m", 1, 0) != 0)        /* a rebuild */
		return 15;
	rc = count_unlinked(seg);
	shmq_exchange_close(x);
	shmq_seg_close(seg);
	return rc == 0 ? 0 : 20 + rc;
}

/*
 * A child of fork() whose parent used the library (but was inside no
 * read-side section when it forked) frees stale routes as any process:
 * the storage of the queues they pinned goes.  It once kept every stale
 * route of a fork child until the handle closed (exit status 23: three
 * unlinked queues still held).
 */
static void test_fork_child_drops_stale_pins(void **state)
{
	struct t_fix *fix = *state;
	shmq_exchange *x;
	pid_t pid;

	/* The parent uses RCU first (a publish), then forks. */
	t_assert_err(shmq_exchange_create(fix->seg, "warm", NULL), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "warm", &x), 0);
	t_assert_err(shmq_publish(x, "k", "m", 1, 0), 0);
	pid = t_fork(30);
	if (pid == 0)
		_exit(pins_drop_body(fix->name));
	t_assert_exit0(t_wait_child(pid));
	shmq_exchange_close(x);
	t_assert_err(count_unlinked(fix->seg), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fanout_to_subscriber_processes),
		T(test_competing_consumers_topic),
		T(test_bind_seen_across_processes),
		T(test_binding_of_freed_queue),
		T(test_autodelete_on_kill),
		T(test_autodelete_unblocks_publisher),
		T(test_fork_after_publish),
		T(test_killed_while_binding),
		T(test_killed_while_publishing),
		T(test_fork_child_drops_stale_pins),
	};

	return cmocka_run_group_tests_name("exchange_mp", tests, t_group_setup,
					   t_group_teardown);
}
