// SPDX-License-Identifier: MIT
/*
 * bench_pingpong - round-trip latency of one message between two processes.
 *
 * The parent (pinned to CPU a) sends a message, the child (pinned to CPU b)
 * echoes it back; each round trip is timed on its own with CLOCK_MONOTONIC
 * into a histogram.  Cases, each compared with its baseline in the same
 * run:
 *
 *   raw-spin          two words 128 bytes apart in MAP_SHARED memory, each
 *                     side spins (PAUSE) on its word: the physical limit
 *   shmq-poll         shmq_send/shmq_recv with timeout 0, retried on -EAGAIN
 *   shmq-block        SHMQ_FOREVER at the default spin budget (or --spin)
 *   raw-futex         shared futex words, FUTEX_WAIT/FUTEX_WAKE every round
 *   shmq-block-spin0  SHMQ_FOREVER with shmq_set_spin(q, 0)
 *   pipe              two pipes, write then read
 *
 * Noise (vCPU migration, frequency, neighbours) comes in spells, so the cases
 * run in several rounds, interleaved with the order rotated, and each case's
 * figures come from all its rounds' samples together.
 *
 * A mechanism is a struct pp_mech of function pointers; adding one (Unix
 * sockets, eventfd, POSIX mq...) is one struct and one table entry.
 */
#include "common.h"

#define PP_QCAP 8		/* one message in flight: a small ring */
#define PP_SEG_MIN ((size_t)16 << 20)
#define PP_NO_SPIN ((int64_t)-1)	/* leave the library's spin budget */

struct pp_env {
	const char *seg_name;
	shmq_seg *seg;		/* parent's; the child opens its own */
	size_t size;		/* message bytes */
	int64_t spin_ns;	/* --spin, or PP_NO_SPIN */
	unsigned serial;	/* makes queue names unique per setup */
};

enum { PP_PING = 0, PP_PONG = 1 };

struct pp_mech {
	const char *name;
	const char *desc;
	int base;		/* index of the baseline it is compared to */
	double goal;		/* largest allowed ratio to base; 0: none */
	int polls;		/* busy-polls: needs two CPUs */
	int64_t timeout_ns;	/* shmq cases: 0 (poll) or SHMQ_FOREVER */
	int64_t spin_ns;	/* shmq cases: PP_NO_SPIN or a budget */
	size_t state_size;
	/* Parent, before fork(): shared memory, queues, pipes. */
	int (*setup)(struct pp_env *env, const struct pp_mech *m, void *st);
	/* Each process after fork(), side PP_PING (parent) or PP_PONG. */
	int (*attach)(struct pp_env *env, void *st, int side);
	int (*ping)(void *st);	/* one round trip */
	int (*pong)(void *st);	/* wait for one message, echo it */
	void (*detach)(void *st, int side);
	/* Parent, after the child is gone. */
	void (*teardown)(struct pp_env *env, void *st);
};

/* ---- raw spin: two cache lines ------------------------------------------- */

struct pp_spin_shared {
	/* written by the parent only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t ping;
	/* written by the child only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t pong;
};

struct pp_spin {
	struct pp_spin_shared *sh;
	uint64_t seq;
};

static int pp_spin_setup(struct pp_env *env BENCH_UNUSED,
			 const struct pp_mech *m BENCH_UNUSED, void *p)
{
	struct pp_spin *s = p;

	s->sh = bench_shared_alloc(sizeof(*s->sh));
	return s->sh ? 0 : -ENOMEM;
}

static int pp_spin_attach(struct pp_env *env BENCH_UNUSED,
			  void *p BENCH_UNUSED, int side BENCH_UNUSED)
{
	return 0;
}

static int pp_spin_ping(void *p)
{
	struct pp_spin *s = p;
	uint64_t seq = ++s->seq;

	/* release: nothing else to publish, but the pair is the pattern. */
	atomic_store_explicit(&s->sh->ping, seq, memory_order_release);
	/* acquire: pairs with the child's release of pong. */
	while (atomic_load_explicit(&s->sh->pong, memory_order_acquire) != seq)
		bench_relax();
	return 0;
}

static int pp_spin_pong(void *p)
{
	struct pp_spin *s = p;
	uint64_t seq = ++s->seq;

	/* acquire: pairs with the parent's release of ping. */
	while (atomic_load_explicit(&s->sh->ping, memory_order_acquire) != seq)
		bench_relax();
	atomic_store_explicit(&s->sh->pong, seq, memory_order_release);
	return 0;
}

static void pp_spin_detach(void *p BENCH_UNUSED, int side BENCH_UNUSED)
{
}

static void pp_spin_teardown(struct pp_env *env BENCH_UNUSED, void *p)
{
	struct pp_spin *s = p;

	bench_shared_free(s->sh, sizeof(*s->sh));
}

/* ---- raw futex: the same words, but sleep and wake every round ----------- */

struct pp_futex_shared {
	_Alignas(BENCH_ALIGN) _Atomic uint32_t ping;
	_Alignas(BENCH_ALIGN) _Atomic uint32_t pong;
};

struct pp_futex {
	struct pp_futex_shared *sh;
	uint32_t seq;
};

static int pp_futex_setup(struct pp_env *env BENCH_UNUSED,
			  const struct pp_mech *m BENCH_UNUSED, void *p)
{
	struct pp_futex *s = p;

	s->sh = bench_shared_alloc(sizeof(*s->sh));
	return s->sh ? 0 : -ENOMEM;
}

/* Sleeps until *word == want; the loop absorbs spurious wake-ups. */
static int pp_futex_await(_Atomic uint32_t *word, uint32_t want)
{
	uint32_t v;
	int rc;

	/* acquire: pairs with the peer's release store before its wake. */
	while ((v = atomic_load_explicit(word, memory_order_acquire)) != want) {
		rc = bench_futex_wait(word, v);
		if (rc && rc != -EAGAIN && rc != -EINTR)
			return rc;
	}
	return 0;
}

static int pp_futex_ping(void *p)
{
	struct pp_futex *s = p;
	uint32_t seq = ++s->seq;
	int rc;

	atomic_store_explicit(&s->sh->ping, seq, memory_order_release);
	rc = bench_futex_wake(&s->sh->ping, 1);
	return rc < 0 ? rc : pp_futex_await(&s->sh->pong, seq);
}

static int pp_futex_pong(void *p)
{
	struct pp_futex *s = p;
	uint32_t seq = ++s->seq;
	int rc;

	rc = pp_futex_await(&s->sh->ping, seq);
	if (rc)
		return rc;
	atomic_store_explicit(&s->sh->pong, seq, memory_order_release);
	rc = bench_futex_wake(&s->sh->pong, 1);
	return rc < 0 ? rc : 0;
}

static void pp_futex_teardown(struct pp_env *env BENCH_UNUSED, void *p)
{
	struct pp_futex *s = p;

	bench_shared_free(s->sh, sizeof(*s->sh));
}

/* ---- pipe ---------------------------------------------------------------- */

struct pp_pipe {
	int down[2];		/* parent -> child */
	int up[2];		/* child -> parent */
	int tx, rx;
	size_t size;
	uint64_t seq;
	char *buf;
};

static int pp_pipe_setup(struct pp_env *env,
			 const struct pp_mech *m BENCH_UNUSED, void *p)
{
	struct pp_pipe *s = p;

	s->size = env->size;
	if (pipe(s->down) < 0)
		return -errno;
	if (pipe(s->up) < 0) {
		int rc = -errno;

		close(s->down[0]);
		close(s->down[1]);
		return rc;
	}
	return 0;
}

static int pp_pipe_attach(struct pp_env *env BENCH_UNUSED, void *p, int side)
{
	struct pp_pipe *s = p;

	s->buf = aligned_alloc(64, (s->size + 63) & ~(size_t)63);
	if (!s->buf)
		return -ENOMEM;
	bench_msg_init(s->buf, s->size);
	s->tx = side == PP_PING ? s->down[1] : s->up[1];
	s->rx = side == PP_PING ? s->up[0] : s->down[0];
	/* The child closes the parent's ends, so a dead peer reads as EOF. */
	if (side == PP_PONG) {
		close(s->down[1]);
		close(s->up[0]);
	}
	return 0;
}

static int pp_pipe_ping(void *p)
{
	struct pp_pipe *s = p;
	int rc;

	bench_msg_stamp(s->buf, s->size, ++s->seq);
	rc = bench_write_full(s->tx, s->buf, s->size);
	if (!rc)
		rc = bench_read_full(s->rx, s->buf, s->size);
	if (!rc)
		rc = bench_msg_check(s->buf, s->size, s->seq, NULL);
	return rc;
}

static int pp_pipe_pong(void *p)
{
	struct pp_pipe *s = p;
	int rc;

	rc = bench_read_full(s->rx, s->buf, s->size);
	if (!rc)
		rc = bench_msg_check(s->buf, s->size, ++s->seq, NULL);
	if (!rc)
		rc = bench_write_full(s->tx, s->buf, s->size);
	return rc;
}

static void pp_pipe_detach(void *p, int side BENCH_UNUSED)
{
	struct pp_pipe *s = p;

	free(s->buf);
	s->buf = NULL;
}

static void pp_pipe_teardown(struct pp_env *env BENCH_UNUSED, void *p)
{
	struct pp_pipe *s = p;

	close(s->down[0]);
	close(s->down[1]);
	close(s->up[0]);
	close(s->up[1]);
}

/* ---- shmq ---------------------------------------------------------------- */

struct pp_shmq {
	char qdown[SHMQ_NAME_MAX + 1];	/* parent -> child */
	char qup[SHMQ_NAME_MAX + 1];	/* child -> parent */
	int64_t timeout_ns;
	int64_t spin_ns;
	size_t size;
	shmq_seg *own_seg;	/* the child's attachment */
	shmq *tx, *rx;
	uint64_t seq;
	char *buf;
};

static int pp_shmq_setup(struct pp_env *env, const struct pp_mech *m, void *p)
{
	struct shmq_attr attr = { .capacity = PP_QCAP,
				  .msg_size = (uint32_t)env->size };
	struct pp_shmq *s = p;
	int rc;

	s->size = env->size;
	s->timeout_ns = m->timeout_ns;
	/* --spin overrides the default budget, never the spin-0 case's. */
	s->spin_ns = m->spin_ns == PP_NO_SPIN ? env->spin_ns : m->spin_ns;
	env->serial++;
	snprintf(s->qdown, sizeof(s->qdown), "pp%u.down", env->serial);
	snprintf(s->qup, sizeof(s->qup), "pp%u.up", env->serial);
	rc = shmq_create(env->seg, s->qdown, &attr);
	if (rc)
		return rc;
	rc = shmq_create(env->seg, s->qup, &attr);
	if (rc)
		shmq_unlink(env->seg, s->qdown);
	return rc;
}

static int pp_shmq_attach(struct pp_env *env, void *p, int side)
{
	struct pp_shmq *s = p;
	shmq_seg *seg = env->seg;
	int rc;

	/* The child never touches the parent's attachment: it opens its own. */
	if (side == PP_PONG) {
		rc = shmq_seg_open(env->seg_name, &s->own_seg);
		if (rc)
			return rc;
		seg = s->own_seg;
	}
	rc = shmq_open(seg, side == PP_PING ? s->qdown : s->qup, &s->tx);
	if (!rc)
		rc = shmq_open(seg, side == PP_PING ? s->qup : s->qdown,
			       &s->rx);
	if (!rc && s->spin_ns != PP_NO_SPIN) {
		rc = shmq_set_spin(s->tx, s->spin_ns);
		if (!rc)
			rc = shmq_set_spin(s->rx, s->spin_ns);
	}
	if (!rc) {
		s->buf = aligned_alloc(64, (s->size + 63) & ~(size_t)63);
		if (!s->buf)
			rc = -ENOMEM;
		else
			bench_msg_init(s->buf, s->size);
	}
	return rc;
}

static int pp_shmq_send(struct pp_shmq *s)
{
	int rc;

	while ((rc = shmq_send(s->tx, s->buf, s->size, s->timeout_ns)) ==
	       -EAGAIN && !s->timeout_ns)
		bench_relax();
	return rc;
}

static int pp_shmq_recv(struct pp_shmq *s, uint64_t seq)
{
	ssize_t n;

	while ((n = shmq_recv(s->rx, s->buf, s->size, s->timeout_ns)) ==
	       -EAGAIN && !s->timeout_ns)
		bench_relax();
	if (n < 0)
		return (int)n;
	if ((size_t)n != s->size)
		return BENCH_EBADMSG;
	return bench_msg_check(s->buf, s->size, seq, NULL);
}

static int pp_shmq_ping(void *p)
{
	struct pp_shmq *s = p;
	int rc;

	bench_msg_stamp(s->buf, s->size, ++s->seq);
	rc = pp_shmq_send(s);
	return rc ? rc : pp_shmq_recv(s, s->seq);
}

static int pp_shmq_pong(void *p)
{
	struct pp_shmq *s = p;
	int rc;

	rc = pp_shmq_recv(s, ++s->seq);
	return rc ? rc : pp_shmq_send(s);
}

static void pp_shmq_detach(void *p, int side BENCH_UNUSED)
{
	struct pp_shmq *s = p;

	shmq_close(s->tx);
	shmq_close(s->rx);
	s->tx = s->rx = NULL;
	shmq_seg_close(s->own_seg);
	s->own_seg = NULL;
	free(s->buf);
	s->buf = NULL;
}

static void pp_shmq_teardown(struct pp_env *env, void *p)
{
	struct pp_shmq *s = p;

	shmq_unlink(env->seg, s->qdown);
	shmq_unlink(env->seg, s->qup);
}

/* ---- the cases ----------------------------------------------------------- */

enum { C_SPIN, C_POLL, C_BLOCK, C_FUTEX, C_SPIN0, C_PIPE, C_NR };

#define PP_SPIN_OPS							\
	.state_size = sizeof(struct pp_spin), .setup = pp_spin_setup,	\
	.attach = pp_spin_attach, .ping = pp_spin_ping,			\
	.pong = pp_spin_pong, .detach = pp_spin_detach,			\
	.teardown = pp_spin_teardown
#define PP_FUTEX_OPS							\
	.state_size = sizeof(struct pp_futex), .setup = pp_futex_setup,	\
	.attach = pp_spin_attach, .ping = pp_futex_ping,		\
	.pong = pp_futex_pong, .detach = pp_spin_detach,		\
	.teardown = pp_futex_teardown
#define PP_SHMQ_OPS							\
	.state_size = sizeof(struct pp_shmq), .setup = pp_shmq_setup,	\
	.attach = pp_shmq_attach, .ping = pp_shmq_ping,			\
	.pong = pp_shmq_pong, .detach = pp_shmq_detach,			\
	.teardown = pp_shmq_teardown
#define PP_PIPE_OPS							\
	.state_size = sizeof(struct pp_pipe), .setup = pp_pipe_setup,	\
	.attach = pp_pipe_attach, .ping = pp_pipe_ping,			\
	.pong = pp_pipe_pong, .detach = pp_pipe_detach,			\
	.teardown = pp_pipe_teardown

static const struct pp_mech pp_mechs[C_NR] = {
	[C_SPIN] = { .name = "raw-spin", .base = C_SPIN, .polls = 1,
		     .desc = "two words in MAP_SHARED memory, PAUSE-spin",
		     PP_SPIN_OPS },
	[C_POLL] = { .name = "shmq-poll", .base = C_SPIN, .goal = 1.10,
		     .polls = 1, .timeout_ns = 0, .spin_ns = PP_NO_SPIN,
		     .desc = "shmq_send/recv, timeout 0, retry on EAGAIN",
		     PP_SHMQ_OPS },
	[C_BLOCK] = { .name = "shmq-block", .base = C_SPIN, .goal = 1.25,
		      .timeout_ns = SHMQ_FOREVER, .spin_ns = PP_NO_SPIN,
		      .desc = "SHMQ_FOREVER, default spin budget",
		      PP_SHMQ_OPS },
	[C_FUTEX] = { .name = "raw-futex", .base = C_SPIN,
		      .desc = "shared futex words, WAIT/WAKE each round",
		      PP_FUTEX_OPS },
	[C_SPIN0] = { .name = "shmq-block-spin0", .base = C_FUTEX,
		      .goal = 1.25, .timeout_ns = SHMQ_FOREVER, .spin_ns = 0,
		      .desc = "SHMQ_FOREVER, shmq_set_spin(q, 0)",
		      PP_SHMQ_OPS },
	[C_PIPE] = { .name = "pipe", .base = C_FUTEX,
		     .desc = "two pipes, write + read",
		     PP_PIPE_OPS },
};

/* ---- the driver ---------------------------------------------------------- */

struct pp_run {
	struct pp_env env;
	const struct bench_opts *o;
	int cpu_a, cpu_b;
	uint64_t warm, iters;	/* per round */
	unsigned rounds;
	struct hist *round_h;
	struct hist *total[C_NR];
	double *round_med[C_NR];
	int skipped[C_NR];	/* PP_RUN, PP_NEEDS_2CPU or PP_UNSELECTED */
};

enum { PP_RUN = 0, PP_NEEDS_2CPU, PP_UNSELECTED };

/* Everything this program created goes; then exit(1). */
static void pp_die(struct pp_run *r)
{
	bench_kill_all();
	shmq_seg_close(r->env.seg);
	shmq_seg_unlink(r->env.seg_name);
	exit(1);
}

/* The child: pin, attach, echo warm + iters messages, leave. */
static void pp_child(struct pp_run *r, const struct pp_mech *m, void *st)
{
	uint64_t i, n = r->warm + r->iters;
	int rc;

	rc = bench_pin(r->cpu_b);
	if (!rc)
		rc = m->attach(&r->env, st, PP_PONG);
	if (rc) {
		fprintf(stderr, "%s: child setup: %s\n", m->name,
			bench_strerror(rc));
		_exit(1);
	}
	for (i = 0; i < n; i++) {
		rc = m->pong(st);
		if (rc) {
			fprintf(stderr, "%s: pong %" PRIu64 ": %s\n", m->name,
				i, bench_strerror(rc));
			_exit(1);
		}
	}
	m->detach(st, PP_PONG);
	_exit(0);
}

static void pp_round(struct pp_run *r, int c, unsigned round)
{
	const struct pp_mech *m = &pp_mechs[c];
	uint64_t i, t0, t1;
	void *st;
	pid_t pid;
	int rc;

	st = calloc(1, m->state_size);
	if (!st) {
		fprintf(stderr, "%s: out of memory\n", m->name);
		pp_die(r);
	}
	rc = m->setup(&r->env, m, st);
	if (rc) {
		fprintf(stderr, "%s: setup: %s\n", m->name, bench_strerror(rc));
		pp_die(r);
	}
	pid = bench_fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", m->name,
			bench_strerror((int)pid));
		m->teardown(&r->env, st);
		pp_die(r);
	}
	if (pid == 0)
		pp_child(r, m, st);

	rc = m->attach(&r->env, st, PP_PING);
	if (rc) {
		fprintf(stderr, "%s: setup: %s\n", m->name, bench_strerror(rc));
		pp_die(r);
	}
	/* Budget 1 ms per round trip, ample even for a sleeping peer. */
	bench_watchdog(30 + (unsigned)((r->warm + r->iters) / 1000), m->name);
	for (i = 0; i < r->warm; i++) {
		rc = m->ping(st);
		if (rc)
			goto fail;
	}
	hist_reset(r->round_h);
	for (i = 0; i < r->iters; i++) {
		t0 = bench_now_ns();
		rc = m->ping(st);
		t1 = bench_now_ns();
		if (rc)
			goto fail;
		hist_add(r->round_h, t1 - t0);
	}
	alarm(0);
	m->detach(st, PP_PING);
	if (bench_reap(pid, m->name))
		pp_die(r);
	m->teardown(&r->env, st);
	free(st);
	hist_merge(r->total[c], r->round_h);
	r->round_med[c][round] = (double)hist_pct(r->round_h, 50);
	if (r->o->verbose)
		printf("  round %u %-18s median %6" PRIu64 " ns  p99 %7" PRIu64
		       " ns\n", round + 1, m->name, hist_pct(r->round_h, 50),
		       hist_pct(r->round_h, 99));
	return;
fail:
	fprintf(stderr, "%s: round trip %" PRIu64 ": %s\n", m->name, i,
		bench_strerror(rc));
	pp_die(r);
}

static const char pp_help[] =
	"usage: bench_pingpong [options]\n"
	"\n"
	"Round-trip latency of one message between two processes pinned to\n"
	"two CPUs: shmq (polling, blocking, blocking without spin) against a\n"
	"raw shared-memory spin, a raw futex and a pipe, measured in the same\n"
	"run in interleaved rounds.  Prints a table, then one SUMMARY line\n"
	"per case with its ratio to its baseline.\n"
	"\n"
	"options:\n"
	"  --iters N        round trips per case, over all rounds\n"
	"                   (default 100000; --quick 15000)\n"
	BENCH_COMMON_HELP
	"\n"
	"The raw baselines carry no payload; --size applies to shmq and\n"
	"pipe.\n";

static double pp_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0;
}

static void pp_report(struct pp_run *r, const char *cpus)
{
	double med[C_NR];
	int c;

	printf("\n%-17s %8s %8s %8s %8s %8s %9s %7s  %-10s %s\n", "case",
	       "median", "mean", "p90", "p99", "p99.9", "max", "ratio", "vs",
	       "goal");
	for (c = 0; c < C_NR; c++)
		med[c] = (double)hist_pct(r->total[c], 50);
	for (c = 0; c < C_NR; c++) {
		const struct pp_mech *m = &pp_mechs[c];
		const struct hist *h = r->total[c];
		double ratio;
		char goal[32] = "";

		if (r->skipped[c] == PP_NEEDS_2CPU)
			printf("%-17s skipped: busy-polls, needs two CPUs\n",
			       m->name);
		if (r->skipped[c])
			continue;
		if (r->skipped[m->base]) {
			printf("%-17s %8" PRIu64 " %8.0f %8" PRIu64 " %8"
			       PRIu64 " %8" PRIu64 " %9" PRIu64 " %7s  %-10s\n",
			       m->name, hist_pct(h, 50), pp_mean(h),
			       hist_pct(h, 90), hist_pct(h, 99),
			       hist_pct(h, 99.9), h->max, "-", "-");
			continue;
		}
		ratio = med[m->base] > 0 ? med[c] / med[m->base] : 0;
		if (m->goal > 0)
			snprintf(goal, sizeof(goal), "<= %.2f %s", m->goal,
				 ratio <= m->goal ? "ok" : "MISSED");
		printf("%-17s %8" PRIu64 " %8.0f %8" PRIu64 " %8" PRIu64 " %8"
		       PRIu64 " %9" PRIu64 " %7.2f  %-10s %s\n", m->name,
		       hist_pct(h, 50), pp_mean(h), hist_pct(h, 90),
		       hist_pct(h, 99), hist_pct(h, 99.9), h->max, ratio,
		       pp_mechs[m->base].name, goal);
	}
	printf("(round trip in ns, each including one clock read; ratio = "
	       "median / baseline's median)\n");
	if (r->o->verbose) {
		printf("\nper-round medians (ns):\n");
		for (c = 0; c < C_NR; c++) {
			unsigned i;

			if (r->skipped[c])
				continue;
			printf("  %-17s", pp_mechs[c].name);
			for (i = 0; i < r->rounds; i++)
				printf(" %7.0f", r->round_med[c][i]);
			printf("\n");
		}
		printf("per-round ratios to the baseline's median of the "
		       "same round:\n");
		for (c = 0; c < C_NR; c++) {
			int base = pp_mechs[c].base;
			unsigned i;

			if (r->skipped[c] || r->skipped[base] || base == c)
				continue;
			printf("  %-17s", pp_mechs[c].name);
			for (i = 0; i < r->rounds; i++)
				printf(" %7.2f", r->round_med[base][i] > 0 ?
				       r->round_med[c][i] /
				       r->round_med[base][i] : 0);
			printf("  vs %s\n", pp_mechs[base].name);
		}
	}
	printf("\n");
	for (c = 0; c < C_NR; c++) {
		const struct pp_mech *m = &pp_mechs[c];
		double ratio;

		if (r->skipped[c])
			continue;
		printf("SUMMARY pingpong %s cpus=%s size=%zu median_ns=%" PRIu64
		       " p99_ns=%" PRIu64, m->name, cpus, r->env.size,
		       hist_pct(r->total[c], 50), hist_pct(r->total[c], 99));
		if (r->skipped[m->base]) {
			printf(" ratio=n/a vs=-");
		} else {
			ratio = med[m->base] > 0 ? med[c] / med[m->base] : 0;
			printf(" ratio=%.3f vs=%s", ratio,
			       pp_mechs[m->base].name);
			if (m->goal > 0)
				printf(" goal=%.2f met=%s", m->goal,
				       ratio <= m->goal ? "yes" : "no");
		}
		printf(" p999_ns=%" PRIu64 " max_ns=%" PRIu64 " mean_ns=%.1f\n",
		       hist_pct(r->total[c], 99.9), r->total[c]->max,
		       pp_mean(r->total[c]));
	}
}

int main(int argc, char **argv)
{
	struct shmq_seg_attr sattr = { 0 };
	struct bench_opts o;
	struct pp_run r;
	char seg_name[32], cpus[32];
	uint64_t total, clock_step;
	double clock_cost;
	unsigned round, k;
	int c, ncpu, rc;

	bench_parse_opts(argc, argv, &o, pp_help);
	memset(&r, 0, sizeof(r));
	r.o = &o;
	total = o.iters ? o.iters : o.quick ? 15000 : 100000;
	r.rounds = o.rounds ? o.rounds : o.quick ? 3 : 5;
	r.iters = total / r.rounds;
	if (!r.iters)
		r.iters = 1;
	r.warm = r.iters / 10 > 1000 ? r.iters / 10 : 1000;

	ncpu = bench_pick_cpus(&o, &r.cpu_a, &r.cpu_b);
	if (ncpu < 0) {
		fprintf(stderr, "bench_pingpong: --cpus: not two distinct "
			"CPUs of our affinity mask\n");
		return 2;
	}
	bench_cpus_str(cpus, sizeof(cpus), r.cpu_a, r.cpu_b);

	snprintf(seg_name, sizeof(seg_name), "bench.%d", (int)getpid());
	r.env.seg_name = seg_name;
	r.env.size = o.size;
	r.env.spin_ns = o.spin_ns;
	bench_setup_signals(seg_name);
	sattr.size = PP_SEG_MIN + 2 * (size_t)PP_QCAP * (o.size + 64) * 2;
	rc = shmq_seg_create(seg_name, &sattr, &r.env.seg);
	if (rc) {
		fprintf(stderr, "bench_pingpong: shmq_seg_create(%s): %s\n",
			seg_name, bench_strerror(rc));
		return 1;
	}

	r.round_h = hist_new();
	for (c = 0; c < C_NR; c++) {
		r.total[c] = hist_new();
		r.round_med[c] = calloc(r.rounds, sizeof(double));
		if (!r.total[c] || !r.round_med[c] || !r.round_h) {
			fprintf(stderr, "bench_pingpong: out of memory\n");
			pp_die(&r);
		}
		if (!bench_selected(&o, pp_mechs[c].name))
			r.skipped[c] = PP_UNSELECTED;
	}
	/* A case selected brings its baseline (and that one's) along. */
	for (k = 0; k < 2; k++)
		for (c = 0; c < C_NR; c++)
			if (!r.skipped[c])
				r.skipped[pp_mechs[c].base] = PP_RUN;
	for (c = 0; c < C_NR; c++)
		if (!r.skipped[c] && ncpu < 2 && pp_mechs[c].polls)
			r.skipped[c] = PP_NEEDS_2CPU;

	printf("bench_pingpong: round trip of one %zu-byte message between two "
	       "processes\n", o.size);
	if (ncpu < 2)
		printf("only one CPU available: running unpinned; the "
		       "busy-polling cases are skipped\n");
	else
		printf("parent on CPU %d, child on CPU %d\n", r.cpu_a, r.cpu_b);
	printf("%u interleaved rounds x %" PRIu64 " round trips per case "
	       "(+%" PRIu64 " warm-up); shmq-block spin: %s\n", r.rounds,
	       r.iters, r.warm, o.spin_ns < 0 ? "library default" : "--spin");
	if (o.spin_ns >= 0)
		printf("--spin %" PRId64 " ns applies to shmq-block only\n",
		       o.spin_ns);
	bench_clock_info(&clock_step, &clock_cost);
	printf("clock: CLOCK_MONOTONIC, step %" PRIu64 " ns, %.1f ns per "
	       "read\n", clock_step, clock_cost);
	for (c = 0; c < C_NR; c++)
		if (r.skipped[c] != PP_UNSELECTED)
			printf("  %-17s %s\n", pp_mechs[c].name,
			       pp_mechs[c].desc);
	fflush(stdout);

	if (bench_pin(r.cpu_a)) {
		fprintf(stderr, "bench_pingpong: cannot pin to CPU %d\n",
			r.cpu_a);
		pp_die(&r);
	}
	for (round = 0; round < r.rounds; round++) {
		/* Rotate the order so no case always follows the same one. */
		for (k = 0; k < C_NR; k++) {
			c = (int)((k + round) % C_NR);
			if (!r.skipped[c])
				pp_round(&r, c, round);
		}
	}
	bench_sig.what = NULL;

	pp_report(&r, cpus);

	shmq_seg_close(r.env.seg);
	rc = shmq_seg_unlink(seg_name);
	if (rc)
		fprintf(stderr, "bench_pingpong: shmq_seg_unlink(%s): %s\n",
			seg_name, bench_strerror(rc));
	for (c = 0; c < C_NR; c++) {
		free(r.total[c]);
		free(r.round_med[c]);
	}
	free(r.round_h);
	return 0;
}
