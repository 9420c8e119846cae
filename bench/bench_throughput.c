// SPDX-License-Identifier: MIT
/*
 * bench_throughput - messages per second from one producer process to one
 * consumer process.
 *
 * The producer (pinned to CPU a) sends a fixed count of messages, each
 * carrying its sequence number; the consumer (pinned to CPU b) receives
 * them and checks every one: no gap, no duplicate, no torn copy.  A failed
 * check ends the program with a non-zero status.  Cases:
 *
 *   spsc          the baseline: a Lamport single-producer single-consumer
 *                 ring in MAP_SHARED memory, written for this one case
 *                 (indices 128 bytes apart, each side caching the other's,
 *                 acquire/release, busy-polling, no system calls)
 *   shmq          shmq_send/shmq_recv, SHMQ_FOREVER, default spin budget
 *   shmq-batch32  shmq_send_batch/shmq_recv_batch of 32
 *   shmq-zc       shmq_reserve/commit, shmq_acquire/release
 *   pipe          one pipe, one write and one read per message
 *
 * Each case runs several times, interleaved with the order rotated; the
 * figure is the median.  Ratios are to spsc and to unbatched shmq.
 *
 * A mechanism is a struct tp_mech of function pointers (setup, attach,
 * send, recv, detach, teardown); adding one is one struct and one entry.
 */
#include "common.h"

#define TP_SEG_MIN ((size_t)16 << 20)
#define TP_RING_MAX ((size_t)4 << 20)	/* most bytes of slots per ring */
#define TP_CAPACITY 1024
#define TP_BATCH 32
#define TP_NO_SPIN ((int64_t)-1)

enum { TP_PRODUCER = 0, TP_CONSUMER = 1 };

struct tp_env {
	const char *seg_name;
	shmq_seg *seg;		/* parent's; children open their own */
	size_t size;		/* message bytes */
	unsigned capacity;	/* ring slots */
	int64_t spin_ns;	/* --spin, or TP_NO_SPIN */
	int yield;		/* one CPU: polling loops yield */
	unsigned serial;	/* makes queue names unique per setup */
};

struct tp_mech {
	const char *name;
	const char *desc;
	unsigned batch;		/* most messages per send/recv call */
	unsigned count_div;	/* slow mechanisms move count / count_div */
	size_t state_size;
	/* Parent, before fork(). */
	int (*setup)(struct tp_env *env, const struct tp_mech *m, void *st);
	/* Each child after fork(), side TP_PRODUCER or TP_CONSUMER. */
	int (*attach)(struct tp_env *env, void *st, int side);
	/* Sends messages @seq.. @seq + @n - 1; returns how many (>= 1). */
	int (*send)(void *st, uint64_t seq, unsigned n);
	/*
	 * Receives up to @n messages, checks that they carry *@next,
	 * *@next + 1, ... and advances *@next; returns how many (>= 1), or
	 * BENCH_EBADMSG on a gap, a duplicate or a torn message.
	 */
	int (*recv)(void *st, uint64_t *next, unsigned n);
	void (*detach)(void *st, int side);
	/* Parent, after both children are gone. */
	void (*teardown)(struct tp_env *env, void *st);
};

/* Says what the consumer got instead of @want; returns BENCH_EBADMSG. */
static int tp_bad(const char *what, uint64_t want, uint64_t got)
{
	fprintf(stderr, "%s: sequence check failed: expected message %" PRIu64
		", got %" PRIu64 " (%s)\n", what, want, got,
		got < want ? "duplicate or stale" : "gap or torn");
	return BENCH_EBADMSG;
}

static int tp_check(const char *what, const void *msg, size_t len,
		    size_t size, uint64_t *next)
{
	uint64_t got = 0;

	if (len != size) {
		fprintf(stderr, "%s: message %" PRIu64 " has %zu bytes, sent "
			"%zu\n", what, *next, len, size);
		return BENCH_EBADMSG;
	}
	if (bench_msg_check(msg, size, *next, &got))
		return tp_bad(what, *next, got);
	(*next)++;
	return 0;
}

static void *tp_buf_alloc(size_t size, unsigned n)
{
	size_t stride = (size + 63) & ~(size_t)63;
	char *p = aligned_alloc(64, stride * n);
	unsigned i;

	if (p)
		for (i = 0; i < n; i++)
			bench_msg_init(p + i * stride, size);
	return p;
}

/* ---- spsc: the baseline ring --------------------------------------------- */

struct tp_spsc_shared {
	/* next position to fill; written by the producer only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t head;
	/* next position to drain; written by the consumer only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t tail;
	_Alignas(BENCH_ALIGN) unsigned char slots[];
};

struct tp_spsc {
	struct tp_spsc_shared *sh;
	size_t map_size;
	size_t size, slot_size;
	uint64_t capacity;	/* a power of two: positions are masked */
	uint64_t pos;		/* our index: head (producer) or tail */
	uint64_t cached;	/* the other side's index, as last read */
	char *buf;
	int yield;
};

static int tp_spsc_setup(struct tp_env *env,
			 const struct tp_mech *m BENCH_UNUSED, void *p)
{
	struct tp_spsc *s = p;

	s->size = env->size;
	s->slot_size = (env->size + 63) & ~(size_t)63;
	s->capacity = env->capacity;
	s->yield = env->yield;
	s->map_size = sizeof(*s->sh) + s->capacity * s->slot_size;
	s->sh = bench_shared_alloc(s->map_size);
	return s->sh ? 0 : -ENOMEM;
}

static int tp_spsc_attach(struct tp_env *env BENCH_UNUSED, void *p,
			  int side BENCH_UNUSED)
{
	struct tp_spsc *s = p;

	s->buf = tp_buf_alloc(s->size, 1);
	return s->buf ? 0 : -ENOMEM;
}

static inline void tp_spin(int yield)
{
	if (yield)
		sched_yield();
	else
		bench_relax();
}

static int tp_spsc_send(void *p, uint64_t seq, unsigned n BENCH_UNUSED)
{
	struct tp_spsc *s = p;

	/*
	 * Full when pos - tail == capacity (free-running counters: the
	 * difference is right across wrap-around).  Read tail only then.
	 */
	if (s->pos - s->cached == s->capacity) {
		/* acquire: pairs with the consumer's release of tail; its
		 * copy out of the slot is done before we overwrite it. */
		while ((s->cached = atomic_load_explicit(&s->sh->tail,
					memory_order_acquire)) + s->capacity ==
		       s->pos)
			tp_spin(s->yield);
	}
	bench_msg_stamp(s->buf, s->size, seq);
	memcpy(s->sh->slots + (s->pos & (s->capacity - 1)) * s->slot_size,
	       s->buf, s->size);
	/* release: publishes the slot's bytes.  Pairs with recv's acquire. */
	atomic_store_explicit(&s->sh->head, ++s->pos, memory_order_release);
	return 1;
}

static int tp_spsc_recv(void *p, uint64_t *next, unsigned n BENCH_UNUSED)
{
	struct tp_spsc *s = p;

	if (s->pos == s->cached) {
		/* acquire: pairs with send's release of head. */
		while ((s->cached = atomic_load_explicit(&s->sh->head,
					memory_order_acquire)) == s->pos)
			tp_spin(s->yield);
	}
	memcpy(s->buf,
	       s->sh->slots + (s->pos & (s->capacity - 1)) * s->slot_size,
	       s->size);
	/* release: our copy is done; the producer may reuse the slot. */
	atomic_store_explicit(&s->sh->tail, ++s->pos, memory_order_release);
	return tp_check("spsc", s->buf, s->size, s->size, next) ?: 1;
}

static void tp_spsc_detach(void *p, int side BENCH_UNUSED)
{
	struct tp_spsc *s = p;

	free(s->buf);
	s->buf = NULL;
}

static void tp_spsc_teardown(struct tp_env *env BENCH_UNUSED, void *p)
{
	struct tp_spsc *s = p;

	bench_shared_free(s->sh, s->map_size);
}

/* ---- shmq: copy, batch, zero-copy ---------------------------------------- */

struct tp_shmq {
	char qname[SHMQ_NAME_MAX + 1];
	size_t size, stride;
	int64_t spin_ns;
	shmq_seg *own_seg;	/* the child's own attachment */
	shmq *q;
	char *bufs;		/* TP_BATCH messages, stride bytes apart */
	struct iovec iov[TP_BATCH];
};

static int tp_shmq_setup(struct tp_env *env,
			 const struct tp_mech *m BENCH_UNUSED, void *p)
{
	struct shmq_attr attr = { .capacity = env->capacity,
				  .msg_size = (uint32_t)env->size };
	struct tp_shmq *s = p;

	s->size = env->size;
	s->stride = (env->size + 63) & ~(size_t)63;
	s->spin_ns = env->spin_ns;
	env->serial++;
	snprintf(s->qname, sizeof(s->qname), "tp%u", env->serial);
	return shmq_create(env->seg, s->qname, &attr);
}

static int tp_shmq_attach(struct tp_env *env, void *p, int side BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	int rc;

	/* Children never use the parent's attachment: each opens its own. */
	rc = shmq_seg_open(env->seg_name, &s->own_seg);
	if (!rc)
		rc = shmq_open(s->own_seg, s->qname, &s->q);
	if (!rc && s->spin_ns != TP_NO_SPIN)
		rc = shmq_set_spin(s->q, s->spin_ns);
	if (!rc) {
		s->bufs = tp_buf_alloc(s->size, TP_BATCH);
		if (!s->bufs)
			rc = -ENOMEM;
	}
	return rc;
}

static int tp_shmq_send(void *p, uint64_t seq, unsigned n BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	int rc;

	bench_msg_stamp(s->bufs, s->size, seq);
	rc = shmq_send(s->q, s->bufs, s->size, SHMQ_FOREVER);
	return rc ? rc : 1;
}

static int tp_shmq_recv(void *p, uint64_t *next, unsigned n BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	ssize_t len;

	len = shmq_recv(s->q, s->bufs, s->size, SHMQ_FOREVER);
	if (len < 0)
		return (int)len;
	return tp_check("shmq", s->bufs, (size_t)len, s->size, next) ?: 1;
}

static int tp_batch_send(void *p, uint64_t seq, unsigned n)
{
	struct tp_shmq *s = p;
	unsigned i;

	for (i = 0; i < n; i++) {
		s->iov[i].iov_base = s->bufs + i * s->stride;
		s->iov[i].iov_len = s->size;
		bench_msg_stamp(s->iov[i].iov_base, s->size, seq + i);
	}
	return shmq_send_batch(s->q, s->iov, n, SHMQ_FOREVER);
}

static int tp_batch_recv(void *p, uint64_t *next, unsigned n)
{
	struct tp_shmq *s = p;
	int i, k, rc;

	for (i = 0; i < (int)n; i++) {
		s->iov[i].iov_base = s->bufs + i * s->stride;
		s->iov[i].iov_len = s->size;
	}
	k = shmq_recv_batch(s->q, s->iov, n, SHMQ_FOREVER);
	if (k < 0)
		return k;
	if (k == 0 || k > (int)n) {
		fprintf(stderr, "shmq-batch32: shmq_recv_batch(n = %u) "
			"returned %d\n", n, k);
		return BENCH_EBADMSG;
	}
	for (i = 0; i < k; i++) {
		rc = tp_check("shmq-batch32", s->iov[i].iov_base,
			      s->iov[i].iov_len, s->size, next);
		if (rc)
			return rc;
	}
	return k;
}

static int tp_zc_send(void *p, uint64_t seq, unsigned n BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	struct shmq_msg m;
	int rc;

	rc = shmq_reserve(s->q, s->size, &m, SHMQ_FOREVER);
	if (rc)
		return rc;
	/* The message is built in place: the same bytes as the others. */
	memcpy(m.data, s->bufs, s->size);
	bench_msg_stamp(m.data, s->size, seq);
	m.len = s->size;
	rc = shmq_commit(s->q, &m);
	return rc ? rc : 1;
}

static int tp_zc_recv(void *p, uint64_t *next, unsigned n BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	struct shmq_msg m;
	int rc, rc2;

	rc = shmq_acquire(s->q, &m, SHMQ_FOREVER);
	if (rc)
		return rc;
	/* Checked in place, inside the slot. */
	rc = tp_check("shmq-zc", m.data, m.len, s->size, next);
	rc2 = shmq_release(s->q, &m);
	return rc ? rc : rc2 ? rc2 : 1;
}

static void tp_shmq_detach(void *p, int side BENCH_UNUSED)
{
	struct tp_shmq *s = p;

	shmq_close(s->q);
	s->q = NULL;
	shmq_seg_close(s->own_seg);
	s->own_seg = NULL;
	free(s->bufs);
	s->bufs = NULL;
}

static void tp_shmq_teardown(struct tp_env *env, void *p)
{
	struct tp_shmq *s = p;

	shmq_unlink(env->seg, s->qname);
}

/* ---- pipe ---------------------------------------------------------------- */

struct tp_pipe {
	int fd[2];
	size_t size;
	char *buf;
};

static int tp_pipe_setup(struct tp_env *env,
			 const struct tp_mech *m BENCH_UNUSED, void *p)
{
	struct tp_pipe *s = p;

	s->size = env->size;
	return pipe(s->fd) < 0 ? -errno : 0;
}

static int tp_pipe_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	struct tp_pipe *s = p;

	/* Each side closes the other's end: a dead peer shows as EOF/EPIPE. */
	close(s->fd[side == TP_PRODUCER ? 0 : 1]);
	s->buf = tp_buf_alloc(s->size, 1);
	return s->buf ? 0 : -ENOMEM;
}

static int tp_pipe_send(void *p, uint64_t seq, unsigned n BENCH_UNUSED)
{
	struct tp_pipe *s = p;

	bench_msg_stamp(s->buf, s->size, seq);
	return bench_write_full(s->fd[1], s->buf, s->size) ?: 1;
}

static int tp_pipe_recv(void *p, uint64_t *next, unsigned n BENCH_UNUSED)
{
	struct tp_pipe *s = p;
	int rc;

	rc = bench_read_full(s->fd[0], s->buf, s->size);
	if (rc)
		return rc;
	return tp_check("pipe", s->buf, s->size, s->size, next) ?: 1;
}

static void tp_pipe_detach(void *p, int side BENCH_UNUSED)
{
	struct tp_pipe *s = p;

	free(s->buf);
	s->buf = NULL;
}

static void tp_pipe_teardown(struct tp_env *env BENCH_UNUSED, void *p)
{
	struct tp_pipe *s = p;

	close(s->fd[0]);
	close(s->fd[1]);
}

/* ---- the cases ----------------------------------------------------------- */

enum { C_SPSC, C_SHMQ, C_BATCH, C_ZC, C_PIPE, C_NR };

#define TP_SHMQ_OPS							\
	.state_size = sizeof(struct tp_shmq), .setup = tp_shmq_setup,	\
	.attach = tp_shmq_attach, .detach = tp_shmq_detach,		\
	.teardown = tp_shmq_teardown

static const struct tp_mech tp_mechs[C_NR] = {
	[C_SPSC] = { .name = "spsc", .batch = 1, .count_div = 1,
		     .desc = "baseline: Lamport SPSC ring, busy-polling",
		     .state_size = sizeof(struct tp_spsc),
		     .setup = tp_spsc_setup, .attach = tp_spsc_attach,
		     .send = tp_spsc_send, .recv = tp_spsc_recv,
		     .detach = tp_spsc_detach, .teardown = tp_spsc_teardown },
	[C_SHMQ] = { .name = "shmq", .batch = 1, .count_div = 1,
		     .desc = "shmq_send/shmq_recv, SHMQ_FOREVER",
		     .send = tp_shmq_send, .recv = tp_shmq_recv,
		     TP_SHMQ_OPS },
	[C_BATCH] = { .name = "shmq-batch32", .batch = TP_BATCH,
		      .count_div = 1,
		      .desc = "shmq_send_batch/shmq_recv_batch of 32",
		      .send = tp_batch_send, .recv = tp_batch_recv,
		      TP_SHMQ_OPS },
	[C_ZC] = { .name = "shmq-zc", .batch = 1, .count_div = 1,
		   .desc = "shmq_reserve/commit, shmq_acquire/release",
		   .send = tp_zc_send, .recv = tp_zc_recv,
		   TP_SHMQ_OPS },
	[C_PIPE] = { .name = "pipe", .batch = 1, .count_div = 10,
		     .desc = "one pipe, write/read per message (1/10 count)",
		     .state_size = sizeof(struct tp_pipe),
		     .setup = tp_pipe_setup, .attach = tp_pipe_attach,
		     .send = tp_pipe_send, .recv = tp_pipe_recv,
		     .detach = tp_pipe_detach, .teardown = tp_pipe_teardown },
};

/* ---- the driver ---------------------------------------------------------- */

/* Start line and clock shared by the parent and the two children. */
struct tp_ctl {
	/* children attached and waiting; futex word */
	_Alignas(BENCH_ALIGN) _Atomic uint32_t ready;
	/* 1: start; futex word */
	_Alignas(BENCH_ALIGN) _Atomic uint32_t go;
	/* written by the producer before its first send */
	_Alignas(BENCH_ALIGN) uint64_t t_start;
	/* written by the consumer after its last check */
	_Alignas(BENCH_ALIGN) uint64_t t_end;
};

struct tp_run {
	struct tp_env env;
	const struct bench_opts *o;
	struct tp_ctl *ctl;
	int cpu_a, cpu_b;
	uint64_t count;		/* messages per run (before count_div) */
	unsigned rounds;
	double *rate[C_NR];	/* messages/s per round */
	int selected[C_NR];
};

static void tp_die(struct tp_run *r)
{
	bench_kill_all();
	shmq_seg_close(r->env.seg);
	shmq_seg_unlink(r->env.seg_name);
	exit(1);
}

/* A child: pin, attach, wait for the start, then send or receive all. */
static void tp_child(struct tp_run *r, const struct tp_mech *m, void *st,
		     int side, uint64_t count)
{
	struct tp_ctl *ctl = r->ctl;
	uint64_t seq = 0;
	int rc;

	rc = bench_pin(side == TP_PRODUCER ? r->cpu_a : r->cpu_b);
	if (!rc)
		rc = m->attach(&r->env, st, side);
	if (rc) {
		fprintf(stderr, "%s: %s setup: %s\n", m->name,
			side == TP_PRODUCER ? "producer" : "consumer",
			bench_strerror(rc));
		_exit(1);
	}
	/* relaxed: only a count; the parent's go store orders the start. */
	atomic_fetch_add_explicit(&ctl->ready, 1, memory_order_relaxed);
	bench_futex_wake(&ctl->ready, 1);
	/* acquire: pairs with the parent's release store of go. */
	while (!atomic_load_explicit(&ctl->go, memory_order_acquire))
		bench_futex_wait(&ctl->go, 0);

	if (side == TP_PRODUCER) {
		ctl->t_start = bench_now_ns();
		while (seq < count) {
			uint64_t left = count - seq;

			rc = m->send(st, seq, left < m->batch ?
				     (unsigned)left : m->batch);
			if (rc <= 0)
				goto fail;
			seq += (unsigned)rc;
		}
	} else {
		while (seq < count) {
			uint64_t left = count - seq;

			rc = m->recv(st, &seq, left < m->batch ?
				     (unsigned)left : m->batch);
			if (rc <= 0)
				goto fail;
		}
		ctl->t_end = bench_now_ns();
	}
	m->detach(st, side);
	_exit(0);
fail:
	fprintf(stderr, "%s: %s, message %" PRIu64 ": %s\n", m->name,
		side == TP_PRODUCER ? "send" : "recv", seq,
		rc ? bench_strerror(rc) : "returned 0");
	/* Exit 2: a failed check (or call), which fails the whole run. */
	_exit(2);
}

static void tp_round(struct tp_run *r, int c, unsigned round)
{
	const struct tp_mech *m = &tp_mechs[c];
	uint64_t count = r->count / m->count_div;
	struct tp_ctl *ctl = r->ctl;
	pid_t prod, cons;
	uint32_t v;
	void *st;
	int rc, bad;

	if (!count)
		count = 1;
	st = calloc(1, m->state_size);
	if (!st) {
		fprintf(stderr, "%s: out of memory\n", m->name);
		tp_die(r);
	}
	memset(ctl, 0, sizeof(*ctl));
	rc = m->setup(&r->env, m, st);
	if (rc) {
		fprintf(stderr, "%s: setup: %s\n", m->name, bench_strerror(rc));
		tp_die(r);
	}
	/* Budget: 30 s plus 20 us per message, far beyond any real run. */
	bench_watchdog(30 + (unsigned)(count / 50000), m->name);
	prod = bench_fork();
	if (prod == 0)
		tp_child(r, m, st, TP_PRODUCER, count);
	cons = prod > 0 ? bench_fork() : prod;
	if (cons == 0)
		tp_child(r, m, st, TP_CONSUMER, count);
	if (prod < 0 || cons < 0) {
		fprintf(stderr, "%s: fork: %s\n", m->name,
			bench_strerror(prod < 0 ? (int)prod : (int)cons));
		tp_die(r);
	}

	/* acquire: pairs with nothing that matters; only a count. */
	while ((v = atomic_load_explicit(&ctl->ready, memory_order_acquire)) <
	       2)
		bench_futex_wait(&ctl->ready, v);
	/* release: the children's start line. */
	atomic_store_explicit(&ctl->go, 1, memory_order_release);
	bench_futex_wake(&ctl->go, INT32_MAX);

	bad = bench_reap(prod, "producer") != 0;
	bad |= bench_reap(cons, "consumer") != 0;
	alarm(0);
	if (bad) {
		fprintf(stderr, "%s: run failed\n", m->name);
		tp_die(r);
	}
	m->teardown(&r->env, st);
	free(st);
	/* The children's writes are visible: waitpid() ordered them. */
	r->rate[c][round] = (double)count * 1e9 /
			    (double)(ctl->t_end - ctl->t_start);
	if (r->o->verbose) {
		char b[32];

		printf("  round %u %-13s %9s msgs/s  (%" PRIu64 " messages in "
		       "%.3f s)\n", round + 1, m->name,
		       bench_fmt_rate(b, sizeof(b), r->rate[c][round]), count,
		       (double)(ctl->t_end - ctl->t_start) / 1e9);
	}
}

static const char tp_help[] =
	"usage: bench_throughput [options]\n"
	"\n"
	"Messages per second from one producer process to one consumer\n"
	"process, pinned to two CPUs: shmq (copy, batch of 32, zero-copy)\n"
	"against a single-producer single-consumer ring written for this one\n"
	"case and a pipe, interleaved.  Every message is checked (sequence,\n"
	"no gap, no duplicate); a failed check exits non-zero.  Prints a\n"
	"table, then one SUMMARY line per case with its ratios.\n"
	"\n"
	"options:\n"
	"  --iters N        messages per run (default 10000000; --quick\n"
	"                   1000000); the pipe moves a tenth of that\n"
	BENCH_COMMON_HELP;

static void tp_report(struct tp_run *r, const char *cpus)
{
	double med[C_NR], lo[C_NR], hi[C_NR];
	char b1[32], b2[32], b3[32], b4[32];
	int c;

	for (c = 0; c < C_NR; c++) {
		med[c] = lo[c] = hi[c] = 0;
		if (!r->selected[c])
			continue;
		/* bench_median() sorts: then min and max are at the ends. */
		med[c] = bench_median(r->rate[c], r->rounds);
		lo[c] = r->rate[c][0];
		hi[c] = r->rate[c][r->rounds - 1];
	}
	printf("\n%-13s %10s %10s %10s %8s %8s %8s  %s\n", "case", "msgs/s",
	       "min", "max", "ns/msg", "vs spsc", "vs shmq", "goal");
	for (c = 0; c < C_NR; c++) {
		char goal[40] = "";
		double rs, rq;

		if (!r->selected[c])
			continue;
		rs = med[C_SPSC] > 0 ? med[c] / med[C_SPSC] : 0;
		rq = med[C_SHMQ] > 0 ? med[c] / med[C_SHMQ] : 0;
		if (c == C_SHMQ && r->selected[C_SPSC])
			snprintf(goal, sizeof(goal), ">= 0.50 x spsc %s",
				 rs >= 0.5 ? "ok" : "MISSED");
		if (c == C_BATCH && r->selected[C_SHMQ])
			snprintf(goal, sizeof(goal), ">= 2.00 x shmq %s",
				 rq >= 2.0 ? "ok" : "MISSED");
		if (r->selected[C_SHMQ])
			snprintf(b4, sizeof(b4), "%8.2f", rq);
		else
			snprintf(b4, sizeof(b4), "%8s", "-");
		printf("%-13s %10s %10s %10s %8.1f %8.2f %s  %s\n",
		       tp_mechs[c].name, bench_fmt_rate(b1, sizeof(b1), med[c]),
		       bench_fmt_rate(b2, sizeof(b2), lo[c]),
		       bench_fmt_rate(b3, sizeof(b3), hi[c]), 1e9 / med[c], rs,
		       b4, goal);
	}
	printf("(median of %u runs; ratios of medians)\n\n", r->rounds);
	for (c = 0; c < C_NR; c++) {
		double rs, rq;

		if (!r->selected[c])
			continue;
		rs = med[C_SPSC] > 0 ? med[c] / med[C_SPSC] : 0;
		rq = med[C_SHMQ] > 0 ? med[c] / med[C_SHMQ] : 0;
		printf("SUMMARY throughput %s cpus=%s size=%zu msgs_per_s=%.0f "
		       "ratio=%.3f", tp_mechs[c].name, cpus, r->env.size,
		       med[c], rs);
		if (r->selected[C_SHMQ])
			printf(" ratio_shmq=%.3f", rq);
		else
			printf(" ratio_shmq=n/a");
		if (c == C_SHMQ && r->selected[C_SPSC])
			printf(" goal=ratio>=0.50 met=%s",
			       rs >= 0.5 ? "yes" : "no");
		if (c == C_BATCH && r->selected[C_SHMQ])
			printf(" goal=ratio_shmq>=2.00 met=%s",
			       rq >= 2.0 ? "yes" : "no");
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	struct shmq_seg_attr sattr = { 0 };
	size_t slot, ring;
	struct bench_opts o;
	struct tp_run r;
	char seg_name[32], cpus[32];
	unsigned round, k;
	int c, ncpu, rc;

	bench_parse_opts(argc, argv, &o, tp_help);
	memset(&r, 0, sizeof(r));
	r.o = &o;
	r.count = o.iters ? o.iters : o.quick ? 1000000 : 10000000;
	r.rounds = o.rounds ? o.rounds : o.quick ? 3 : 5;

	ncpu = bench_pick_cpus(&o, &r.cpu_a, &r.cpu_b);
	if (ncpu < 0) {
		fprintf(stderr, "bench_throughput: --cpus: not two distinct "
			"CPUs of our affinity mask\n");
		return 2;
	}
	bench_cpus_str(cpus, sizeof(cpus), r.cpu_a, r.cpu_b);

	/* 1024 slots, fewer for large messages: a ring stays <= 4 MiB. */
	slot = (o.size + 64 + 63) & ~(size_t)63;
	r.env.capacity = TP_CAPACITY;
	while (r.env.capacity > 2 && r.env.capacity * slot > TP_RING_MAX)
		r.env.capacity /= 2;
	ring = r.env.capacity * slot;
	r.env.size = o.size;
	r.env.spin_ns = o.spin_ns;
	r.env.yield = ncpu < 2;

	for (c = 0; c < C_NR; c++)
		r.selected[c] = bench_selected(&o, tp_mechs[c].name);
	/* The ratios need their baselines. */
	if (r.selected[C_BATCH] || r.selected[C_ZC] || r.selected[C_PIPE])
		r.selected[C_SHMQ] = 1;
	r.selected[C_SPSC] = 1;

	snprintf(seg_name, sizeof(seg_name), "bench.%d", (int)getpid());
	r.env.seg_name = seg_name;
	bench_setup_signals(seg_name);
	sattr.size = TP_SEG_MIN > 4 * ring ? TP_SEG_MIN : 4 * ring;
	rc = shmq_seg_create(seg_name, &sattr, &r.env.seg);
	if (rc) {
		fprintf(stderr, "bench_throughput: shmq_seg_create(%s): %s\n",
			seg_name, bench_strerror(rc));
		return 1;
	}
	r.ctl = bench_shared_alloc(sizeof(*r.ctl));
	for (c = 0; c < C_NR; c++) {
		r.rate[c] = calloc(r.rounds, sizeof(double));
		if (!r.rate[c] || !r.ctl) {
			fprintf(stderr, "bench_throughput: out of memory\n");
			tp_die(&r);
		}
	}

	printf("bench_throughput: one producer process -> one consumer "
	       "process, %zu-byte messages\n", o.size);
	if (ncpu < 2)
		printf("only one CPU available: running unpinned (polling "
		       "loops yield)\n");
	else
		printf("producer on CPU %d, consumer on CPU %d\n", r.cpu_a,
		       r.cpu_b);
	printf("%" PRIu64 " messages per run, %u interleaved runs per case, "
	       "rings of %u slots; shmq spin: %s\n", r.count, r.rounds,
	       r.env.capacity, o.spin_ns < 0 ? "library default" : "--spin");
	for (c = 0; c < C_NR; c++)
		if (r.selected[c])
			printf("  %-13s %s\n", tp_mechs[c].name,
			       tp_mechs[c].desc);
	fflush(stdout);

	for (round = 0; round < r.rounds; round++) {
		/* Rotate the order so no case always follows the same one. */
		for (k = 0; k < C_NR; k++) {
			c = (int)((k + round) % C_NR);
			if (r.selected[c])
				tp_round(&r, c, round);
		}
	}
	bench_sig.what = NULL;

	tp_report(&r, cpus);

	shmq_seg_close(r.env.seg);
	rc = shmq_seg_unlink(seg_name);
	if (rc)
		fprintf(stderr, "bench_throughput: shmq_seg_unlink(%s): %s\n",
			seg_name, bench_strerror(rc));
	for (c = 0; c < C_NR; c++)
		free(r.rate[c]);
	bench_shared_free(r.ctl, sizeof(*r.ctl));
	return 0;
}
