// SPDX-License-Identifier: MIT
/*
 * bench_fanout - one publisher, a fanout exchange, N queues (1, 2, 4, 8,
 * 16), each drained by its own consumer process; against the same
 * producer sending each message with shmq_send() to the same N queues,
 * in the same run.
 *
 * Two cases for each width N:
 *
 *   fanout-N   one shmq_publish() per message through a fanout exchange
 *              bound to the N queues.
 *   sends-N    the baseline: no exchange; one shmq_send() per message to
 *              each of the N queues in turn (same capacity, consumers and
 *              checks).  sends-1, one shmq_send() to one queue, is also
 *              the reference of the "x send1" columns.
 *
 * Why sends-N rather than N times sends-1: streaming, each queue's slot
 * and index lines travel between the producer's CPU and the consumers'
 * on every message, so the producer's cost per queue grows with N for
 * plain sends too.  One send to one queue never pays for that traffic;
 * dividing a publish by N x its cost blamed the exchange for what N
 * queues cost.
 *
 * Two measurements of each case, in interleaved rounds:
 *
 *   streaming  the producer process (pinned to CPU a) puts 64-byte
 *              messages into the queues for --duration ms, blocking
 *              (SHMQ_FOREVER) when a queue is full; the N consumer
 *              processes (all pinned to CPU b) block in shmq_recv_batch()
 *              (SHMQ_FOREVER, up to 32 at a time) and check every message
 *              (sequence at both ends, none lost, none twice).  Reported:
 *              messages per second (a message is one publish, or N
 *              sends), deliveries per second (N x that), the wall time
 *              per message, the producer's own CPU time per message
 *              (CLOCK_PROCESS_CPUTIME_ID: includes the time it spins
 *              waiting for room), and how often it found a queue full.
 *              On 2 CPUs the N consumers share one CPU: when their work
 *              (N deliveries per message) exceeds the producer's, the
 *              producer waits, and the rate is the consumers' (the full-
 *              wait column says so).
 *   solo       one process, no consumer running: put C messages into N
 *              empty queues of capacity C (timed as one loop), then drain
 *              them (untimed); repeated.  The producer's path alone,
 *              without cross-CPU traffic.
 *
 * For each N: fanout-N against sends-N, in streaming CPU ns and solo ns
 * per message.  Their ratio is also the ratio per queue: the goal
 * is <= 1.5x, and the GOAL line judges the worst N of each measurement.
 * The cost per extra queue of each is the least-squares slope of ns per
 * message over N.
 */
#include <time.h>

#include "mech.h"

#define FO_MSG 64
#define FO_CAP 4096		/* streaming queues: room to run ahead */
#define FO_SOLO_CAP 1024	/* solo: messages per timed loop */
#define FO_BATCH 32		/* consumers' shmq_recv_batch() */
#define FO_MAX_N 16
#define FO_MAX_WIDTHS 7
#define FO_MAX_CASES (2 * FO_MAX_WIDTHS + 1)
#define FO_MAX_ROUNDS 32

struct fo_shared {
	_Atomic uint32_t ready;		/* consumers attached */
	_Atomic uint32_t go;		/* set by the producer's start */
	uint64_t published;		/* by the producer */
	uint64_t wall_ns, cpu_ns;
	uint64_t received[FO_MAX_N];	/* by each consumer */
};

struct fo_case {
	unsigned n;		/* queues */
	int fan;		/* 1: fanout-N (publish); 0: sends-N */
	int base;		/* fanout-N: index of sends-N */
	double rate[FO_MAX_ROUNDS];	/* messages per second */
	double cpu[FO_MAX_ROUNDS];	/* producer CPU ns per message */
	double waits[FO_MAX_ROUNDS];	/* full waits per 1000 messages */
	double sleeps[FO_MAX_ROUNDS];	/* futex sleeps per 1000 msgs */
	double solo[FO_MAX_ROUNDS];	/* solo ns per message */
};

struct fo_run {
	const struct bench_opts *o;
	const char *seg_name;
	shmq_seg *seg;
	int cpu_a, cpu_b;
	unsigned rounds, serial, ncases;
	unsigned duration_ms, solo_reps;
	struct fo_shared *sh;
	struct fo_case cases[FO_MAX_CASES];
};

/* Where a message goes: the exchange (fanout-N), or each of the queues. */
struct fo_out {
	shmq_exchange *xh;
	shmq *qs[FO_MAX_N];
	unsigned n;
};

static const char fo_help[] =
	"usage: bench_fanout [options]\n"
	"\n"
	"One publisher through a fanout exchange to N queues (default 1, 2,\n"
	"4, 8, 16), each drained by its own consumer process, against the\n"
	"same producer sending each message with shmq_send() to each of the\n"
	"N queues (sends-N), in interleaved rounds (64-byte messages).\n"
	"Streaming (producer on CPU a, consumers on CPU b, all blocking) and\n"
	"solo (one process, no consumer running).  Prints the tables,\n"
	"fanout-N against sends-N for each N, the cost per extra queue, a\n"
	"GOAL line and SUMMARY lines.\n"
	"\n"
	"options:\n"
	"  --queues LIST    fanout widths, at most 7 of 1-16 (default\n"
	"                   1,2,4,8,16)\n"
	"  --duration MS    streaming run length (default 500; --quick 200;\n"
	"                   --smoke 20)\n"
	"  --rounds N       interleaved rounds (default 5; --quick 3; --smoke 1)\n"
	"  --cpus A,B       producer on A, consumers on B\n"
	"  --quick, --smoke, --out DIR, --tag NAME, --verbose, --help\n"
	"\n"
	"CSV (--out): fanout.csv, one row per case.\n";

static int fo_take_queues(int *argc, char **argv, unsigned *v)
{
	int i, j, n = 0;
	char *p, *end;

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--queues") || i + 1 >= *argc)
			continue;
		for (p = argv[i + 1]; *p && n < FO_MAX_WIDTHS; p = end) {
			unsigned long x;

			errno = 0;
			x = strtoul(p, &end, 10);
			if (errno || end == p || !x || x > FO_MAX_N ||
			    (*end && *end != ','))
				return -1;
			v[n++] = (unsigned)x;
			if (*end)
				end++;
		}
		if (*p)
			return -1;	/* more than FO_MAX_WIDTHS */
		for (j = i; j + 2 <= *argc; j++)
			argv[j] = argv[j + 2];
		*argc -= 2;
		return n;
	}
	return 0;
}

static uint64_t fo_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fo_names(unsigned serial, unsigned i, char *x, char *q)
{
	snprintf(x, SHMQ_NAME_MAX + 1, "fo%u.x", serial);
	snprintf(q, SHMQ_NAME_MAX + 1, "fo%u.q%u", serial, i);
}

/* The queues of one case, and for fanout-N its exchange bound to each. */
static int fo_setup(struct fo_run *r, const struct fo_case *c, unsigned cap)
{
	struct shmq_xattr xa = { .type = SHMQ_FANOUT };
	struct shmq_attr qa = { .capacity = cap, .msg_size = FO_MSG };
	char x[SHMQ_NAME_MAX + 1], q[SHMQ_NAME_MAX + 1];
	unsigned i;
	int rc = 0;

	r->serial++;
	fo_names(r->serial, 0, x, q);
	if (c->fan)
		rc = shmq_exchange_create(r->seg, x, &xa);
	for (i = 0; i < c->n && !rc; i++) {
		fo_names(r->serial, i, x, q);
		rc = shmq_create(r->seg, q, &qa);
		if (!rc && c->fan)
			rc = shmq_bind(r->seg, x, q, "");
	}
	return rc;
}

static void fo_teardown(struct fo_run *r, const struct fo_case *c)
{
	char x[SHMQ_NAME_MAX + 1], q[SHMQ_NAME_MAX + 1];
	unsigned i;

	for (i = 0; i < c->n; i++) {
		fo_names(r->serial, i, x, q);
		shmq_unlink(r->seg, q);
	}
	if (c->fan)
		shmq_exchange_unlink(r->seg, x);
}

/*
 * Full waits the producer counted on the case's queues, and the futex
 * sleeps of anyone on them (@sleeps): each costs its waker a FUTEX_WAKE.
 */
static uint64_t fo_full_waits(struct fo_run *r, const struct fo_case *c,
			      uint64_t *sleeps)
{
	char x[SHMQ_NAME_MAX + 1], q[SHMQ_NAME_MAX + 1];
	struct shmq_queue_info qi;
	uint64_t w = 0;
	unsigned i;

	for (i = 0; i < c->n; i++) {
		fo_names(r->serial, i, x, q);
		if (!shmq_queue_stat(r->seg, q, &qi)) {
			w += qi.full_waits;
			*sleeps += qi.sleeps;
		}
	}
	return w;
}

/*
 * The producer's handles for case @c: the exchange for fanout-N, the N
 * queues for sends-N.
 */
static int fo_out_open(shmq_seg *seg, unsigned serial,
		       const struct fo_case *c, struct fo_out *out)
{
	char x[SHMQ_NAME_MAX + 1], qn[SHMQ_NAME_MAX + 1];
	unsigned i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->n = c->n;
	fo_names(serial, 0, x, qn);
	if (c->fan)
		return shmq_exchange_open(seg, x, &out->xh);
	for (i = 0; i < c->n && !rc; i++) {
		fo_names(serial, i, x, qn);
		rc = shmq_open(seg, qn, &out->qs[i]);
	}
	return rc;
}

static void fo_out_close(struct fo_out *out)
{
	unsigned i;

	shmq_exchange_close(out->xh);
	for (i = 0; i < out->n; i++)
		shmq_close(out->qs[i]);
}

/*
 * One message to every queue: one publish, or one send to each queue in
 * turn.  Returns 0 or a negative error (BENCH_EBADMSG when a publish
 * reached some other number of queues than N).
 */
static inline int fo_put(const struct fo_out *out, const void *buf,
			 size_t len, int64_t timeout_ns)
{
	unsigned i;
	int rc;

	if (out->xh) {
		rc = shmq_publish(out->xh, "", buf, len, timeout_ns);
		return rc == (int)out->n ? 0 : rc < 0 ? rc : BENCH_EBADMSG;
	}
	for (i = 0; i < out->n; i++) {
		rc = shmq_send(out->qs[i], buf, len, timeout_ns);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- streaming ----------------------------------------------------------- */

static void fo_consumer(struct fo_run *r, unsigned i)
{
	char x[SHMQ_NAME_MAX + 1], qn[SHMQ_NAME_MAX + 1];
	struct iovec iov[FO_BATCH];
	uint64_t seq = 0;
	shmq_seg *seg;
	char *bufs;
	shmq *q;
	int rc, k, j;

	fo_names(r->serial, i, x, qn);
	rc = bench_pin(r->cpu_b);
	if (!rc)
		rc = shmq_seg_open(r->seg_name, &seg);
	if (!rc)
		rc = shmq_open(seg, qn, &q);
	bufs = bench_buf_alloc(FO_MSG, FO_BATCH);
	if (rc || !bufs) {
		fprintf(stderr, "fanout: consumer %u: %s\n", i,
			bench_strerror(rc ? rc : -ENOMEM));
		_exit(1);
	}
	/* release: our attachment is done; pairs with the producer's acquire. */
	atomic_fetch_add_explicit(&r->sh->ready, 1, memory_order_release);
	for (;;) {
		for (j = 0; j < FO_BATCH; j++) {
			iov[j].iov_base = bufs + j * bench_stride(FO_MSG);
			iov[j].iov_len = FO_MSG;
		}
		k = shmq_recv_batch(q, iov, FO_BATCH, SHMQ_FOREVER);
		if (k < 0) {
			fprintf(stderr, "fanout: consumer %u: %s\n", i,
				bench_strerror(k));
			_exit(1);
		}
		for (j = 0; j < k; j++) {
			if (iov[j].iov_len == 0)
				goto end;	/* the end marker */
			if (iov[j].iov_len != FO_MSG ||
			    bench_msg_check(iov[j].iov_base, FO_MSG, ++seq,
					    NULL)) {
				fprintf(stderr, "fanout: consumer %u: message "
					"%" PRIu64 " failed its check\n", i,
					seq);
				_exit(1);
			}
		}
	}
end:
	r->sh->received[i] = seq;
	shmq_close(q);
	shmq_seg_close(seg);
	free(bufs);
	_exit(0);
}

static void fo_producer(struct fo_run *r, const struct fo_case *c)
{
	uint64_t seq = 0, t0, c0, end, now;
	struct fo_out out;
	shmq_seg *seg;
	char *buf;
	int rc, i;

	memset(&out, 0, sizeof(out));
	rc = bench_pin(r->cpu_a);
	if (!rc)
		rc = shmq_seg_open(r->seg_name, &seg);
	if (!rc)
		rc = fo_out_open(seg, r->serial, c, &out);
	buf = bench_buf_alloc(FO_MSG, 1);
	if (rc || !buf)
		goto fail;
	/* acquire: pairs with each consumer's release. */
	while (atomic_load_explicit(&r->sh->ready, memory_order_acquire) <
	       c->n)
		usleep(1000);
	/* Warm-up: the route, the lines (not counted). */
	for (i = 0; i < 64 && !rc; i++) {
		bench_msg_stamp(buf, FO_MSG, ++seq);
		rc = fo_put(&out, buf, FO_MSG, SHMQ_FOREVER);
	}
	t0 = bench_now_ns();
	c0 = fo_cpu_ns();
	end = t0 + (uint64_t)r->duration_ms * 1000000;
	do {
		for (i = 0; i < 256 && !rc; i++) {
			bench_msg_stamp(buf, FO_MSG, ++seq);
			rc = fo_put(&out, buf, FO_MSG, SHMQ_FOREVER);
		}
		now = bench_now_ns();
	} while (!rc && now < end);
	r->sh->cpu_ns = fo_cpu_ns() - c0;
	r->sh->wall_ns = now - t0;
	r->sh->published = seq - 64;
	if (rc)
		goto fail;
	/* The end marker: an empty message to every queue. */
	rc = fo_put(&out, buf, 0, SHMQ_FOREVER);
	if (rc)
		goto fail;
	r->sh->published += 64;		/* what consumers count */
	fo_out_close(&out);
	shmq_seg_close(seg);
	free(buf);
	_exit(0);
fail:
	fprintf(stderr, "fanout: producer (%s, %u queues): %s\n",
		c->fan ? "fanout" : "sends", c->n,
		bench_strerror(rc ? rc : -ENOMEM));
	_exit(1);
}

static void fo_die(struct fo_run *r)
{
	bench_die(r->seg, r->seg_name);
}

static void fo_stream(struct fo_run *r, struct fo_case *c, unsigned round)
{
	pid_t pids[FO_MAX_N + 1];
	unsigned i, nq = c->n;
	int bad = 0, rc;

	memset(r->sh, 0, sizeof(*r->sh));
	rc = fo_setup(r, c, FO_CAP);
	if (rc) {
		fprintf(stderr, "fanout: setup: %s\n", bench_strerror(rc));
		fo_die(r);
	}
	bench_watchdog(60 + r->duration_ms / 1000 * 4, "fanout");
	fflush(NULL);
	for (i = 0; i < nq; i++) {
		pids[i] = bench_fork();
		if (pids[i] == 0)
			fo_consumer(r, i);
		if (pids[i] < 0) {
			fprintf(stderr, "fanout: fork: %s\n",
				bench_strerror((int)pids[i]));
			fo_die(r);
		}
	}
	pids[nq] = bench_fork();
	if (pids[nq] == 0)
		fo_producer(r, c);
	if (pids[nq] < 0)
		fo_die(r);
	for (i = 0; i <= nq; i++)
		bad |= bench_reap(pids[i], i < nq ? "consumer" :
				  "producer") != 0;
	alarm(0);
	for (i = 0; i < nq && !bad; i++)
		if (r->sh->received[i] != r->sh->published) {
			fprintf(stderr, "fanout: queue %u got %" PRIu64 " of %"
				PRIu64 " messages\n", i, r->sh->received[i],
				r->sh->published);
			bad = 1;
		}
	if (bad)
		fo_die(r);
	{
		uint64_t msgs = r->sh->published - 64, sl = 0;

		c->rate[round] = (double)msgs * 1e9 / (double)r->sh->wall_ns;
		c->cpu[round] = (double)r->sh->cpu_ns / (double)msgs;
		c->waits[round] = (double)fo_full_waits(r, c, &sl) *
				  1000.0 / (double)msgs;
		c->sleeps[round] = (double)sl * 1000.0 / (double)msgs;
	}
	fo_teardown(r, c);
}

/* ---- solo ------------------------------------------------------------------ */

static void fo_solo(struct fo_run *r, struct fo_case *c, unsigned round)
{
	char x[SHMQ_NAME_MAX + 1], qn[SHMQ_NAME_MAX + 1];
	shmq *qs[FO_MAX_N];
	struct iovec iov[FO_BATCH];
	struct fo_out out;
	unsigned i, k, rep, nq = c->n;
	uint64_t seq = 0, t0;
	double v[64];
	char *buf;
	int rc;

	memset(&out, 0, sizeof(out));
	rc = fo_setup(r, c, FO_SOLO_CAP);
	buf = bench_buf_alloc(FO_MSG, FO_BATCH);
	/* The drain's own handles: sends-N's are the producer's. */
	for (i = 0; i < nq && !rc; i++) {
		fo_names(r->serial, i, x, qn);
		rc = shmq_open(r->seg, qn, &qs[i]);
	}
	if (!rc)
		rc = fo_out_open(r->seg, r->serial, c, &out);
	if (rc || !buf) {
		fprintf(stderr, "fanout: solo setup: %s\n",
			bench_strerror(rc ? rc : -ENOMEM));
		fo_die(r);
	}
	/* Rep 0 warms up (route, lines, records); not counted. */
	for (rep = 0; rep <= r->solo_reps && !rc; rep++) {
		t0 = bench_now_ns();
		for (i = 0; i < FO_SOLO_CAP && !rc; i++) {
			bench_msg_stamp(buf, FO_MSG, ++seq);
			rc = fo_put(&out, buf, FO_MSG, 0);
		}
		if (rep)
			v[rep - 1] = (double)(bench_now_ns() - t0) /
				     FO_SOLO_CAP;
		/* Drain, checking the count and the last sequence number. */
		for (i = 0; i < nq && !rc; i++) {
			uint64_t got = 0;

			for (;;) {
				for (k = 0; k < FO_BATCH; k++) {
					iov[k].iov_base = buf + k *
						bench_stride(FO_MSG);
					iov[k].iov_len = FO_MSG;
				}
				rc = shmq_recv_batch(qs[i], iov, FO_BATCH, 0);
				if (rc == -EAGAIN) {
					rc = 0;
					break;
				}
				if (rc < 0)
					break;
				got += (uint64_t)rc;
				rc = bench_msg_check(iov[rc - 1].iov_base,
						     FO_MSG, seq - FO_SOLO_CAP +
						     got, NULL);
			}
			if (!rc && got != FO_SOLO_CAP)
				rc = BENCH_EBADMSG;
		}
	}
	if (rc) {
		fprintf(stderr, "fanout: solo (%s, %u queues): %s\n",
			c->fan ? "fanout" : "sends", c->n, bench_strerror(rc));
		fo_die(r);
	}
	c->solo[round] = bench_median(v, r->solo_reps);
	fo_out_close(&out);
	for (i = 0; i < nq; i++)
		shmq_close(qs[i]);
	free(buf);
	fo_teardown(r, c);
}

/* ---- report ---------------------------------------------------------------- */

static double fo_med(const double *v, unsigned n)
{
	double t[FO_MAX_ROUNDS];

	memcpy(t, v, n * sizeof(*v));
	return bench_median(t, n);
}



/* Least-squares slope of @y over N, for the fanout (@fan) or sends cases. */
static double fo_slope(const struct fo_run *r, const double *y, int fan)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, k = 0;
	unsigned i;

	for (i = 0; i < r->ncases; i++) {
		double xv = r->cases[i].n;

		if (r->cases[i].fan != fan)
			continue;
		sx += xv;
		sy += y[i];
		sxx += xv * xv;
		sxy += xv * y[i];
		k++;
	}
	if (k < 2 || k * sxx - sx * sx == 0)
		return 0;
	return (k * sxy - sx * sy) / (k * sxx - sx * sx);
}

static const char *fo_name(const struct fo_case *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%u", c->fan ? "fanout" : "sends", c->n);
	return buf;
}

/* "%8.2f" of a fanout case's ratio to its sends-N, "-" for a sends case. */
static const char *fo_xsends(const struct fo_case *c, double v, char *buf,
			     size_t len)
{
	if (c->fan)
		snprintf(buf, len, "%8.2f", v);
	else
		snprintf(buf, len, "%8s", "-");
	return buf;
}

static void fo_report(struct fo_run *r, const char *cpus, FILE *csv)
{
	double wall[FO_MAX_CASES], cpu[FO_MAX_CASES], solo[FO_MAX_CASES];
	double xs_cpu[FO_MAX_CASES], xs_solo[FO_MAX_CASES];
	double worst = 0, worst_solo = 0, send_solo, send_cpu;
	double sl_fcpu, sl_scpu, sl_fwall, sl_swall, sl_fsolo, sl_ssolo;
	unsigned i, n = r->rounds, wn = 0, wsn = 0;
	char b1[16], b2[16], b3[16], b4[16], b5[16], name[16];

	for (i = 0; i < r->ncases; i++) {
		wall[i] = 1e9 / fo_med(r->cases[i].rate, n);
		cpu[i] = fo_med(r->cases[i].cpu, n);
		solo[i] = fo_med(r->cases[i].solo, n);
	}
	/* fanout-N over sends-N: per message, hence also per queue. */
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];

		xs_cpu[i] = c->fan ? cpu[i] / cpu[c->base] : 1;
		xs_solo[i] = c->fan ? solo[i] / solo[c->base] : 1;
		if (c->fan && xs_cpu[i] > worst) {
			worst = xs_cpu[i];
			wn = c->n;
		}
		if (c->fan && xs_solo[i] > worst_solo) {
			worst_solo = xs_solo[i];
			wsn = c->n;
		}
	}
	send_cpu = cpu[0];	/* sends-1: one shmq_send() to one queue */
	send_solo = solo[0];
	sl_fcpu = fo_slope(r, cpu, 1);
	sl_scpu = fo_slope(r, cpu, 0);
	sl_fwall = fo_slope(r, wall, 1);
	sl_swall = fo_slope(r, wall, 0);
	sl_fsolo = fo_slope(r, solo, 1);
	sl_ssolo = fo_slope(r, solo, 0);

	printf("\nstreaming: 64-byte messages, producer on CPU %d, every "
	       "consumer on CPU %d (median of %u runs of %u ms)\n", r->cpu_a,
	       r->cpu_b, n, r->duration_ms);
	printf("%-11s %6s %9s %9s %9s %11s %9s %9s %8s %8s %8s %9s %9s\n",
	       "case", "queues", "msgs/s", "min", "max", "deliver/s",
	       "wall ns", "cpu ns", "cpu/q", "x sends", "x send1",
	       "waits/1k", "sleeps/1k");
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];
		double rate = fo_med(c->rate, n);

		printf("%-11s %6u %9s %9s %9s %11s %9.1f %9.1f %8.1f %s %8.2f "
		       "%9.1f %9.1f\n", fo_name(c, name, sizeof(name)), c->n,
		       bench_fmt_rate(b1, sizeof(b1), rate),
		       bench_fmt_rate(b2, sizeof(b2), bench_min(c->rate, n)),
		       bench_fmt_rate(b3, sizeof(b3), bench_max(c->rate, n)),
		       bench_fmt_rate(b4, sizeof(b4), rate * c->n), wall[i],
		       cpu[i], cpu[i] / c->n,
		       fo_xsends(c, xs_cpu[i], b5, sizeof(b5)),
		       cpu[i] / c->n / send_cpu,
		       fo_med(c->waits, n), fo_med(c->sleeps, n));
	}
	printf("(a message: one publish (fanout-N) or one shmq_send() to each "
	       "of the N queues (sends-N); wall ns: wall time per message, "
	       "which includes any time the producer was not running; cpu "
	       "ns: the producer's CPU time per message, waits included; "
	       "cpu/q = cpu ns / queues; x sends = fanout-N's cpu ns / "
	       "sends-N's; x send1 = cpu/q / sends-1's cpu ns; waits/1k: "
	       "full-queue waits per 1000 messages; sleeps/1k: futex sleeps "
	       "on the queues per 1000 messages, each woken by a "
	       "FUTEX_WAKE)\n");
	printf("cost per extra queue (slope over N): fanout %.1f ns producer "
	       "CPU (wall %.1f ns); sends %.1f ns producer CPU (wall %.1f "
	       "ns)\n", sl_fcpu, sl_fwall, sl_scpu, sl_swall);

	printf("\nsolo: one process, no consumer running; %u messages into "
	       "empty queues, median of %u loops x %u runs\n", FO_SOLO_CAP,
	       r->solo_reps, n);
	printf("%-11s %6s %9s %9s %9s %8s %8s %8s\n", "case", "queues",
	       "ns/msg", "min", "max", "ns/queue", "x sends", "x send1");
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];

		printf("%-11s %6u %9.1f %9.1f %9.1f %8.1f %s %8.2f\n",
		       fo_name(c, name, sizeof(name)), c->n, solo[i],
		       bench_min(c->solo, n), bench_max(c->solo, n), solo[i] / c->n,
		       fo_xsends(c, xs_solo[i], b5, sizeof(b5)),
		       solo[i] / c->n / send_solo);
	}
	printf("cost per extra queue (slope over N): fanout %.1f ns; sends "
	       "%.1f ns\n", sl_fsolo, sl_ssolo);

	printf("\nfanout-N against sends-N, ns per message (ratio = fanout / "
	       "sends, also the ratio per queue; goal <= 1.50x)\n");
	printf("%-15s %10s %10s %7s %11s %10s %7s\n", "queues",
	       "cpu fanout", "cpu sends", "ratio", "solo fanout",
	       "solo sends", "ratio");
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];

		if (!c->fan)
			continue;
		printf("%-15u %10.1f %10.1f %7.2f %11.1f %10.1f %7.2f\n", c->n,
		       cpu[i], cpu[c->base], xs_cpu[i], solo[i],
		       solo[c->base], xs_solo[i]);
	}
	printf("%-15s %10.1f %10.1f %7s %11.1f %10.1f %7s\n",
	       "per extra queue", sl_fcpu, sl_scpu, "", sl_fsolo, sl_ssolo,
	       "");
	printf("GOAL fanout-per-queue %s: worst fanout-N / sends-N %.2fx solo "
	       "(%u queues), %.2fx streaming CPU (%u queues); per extra queue "
	       "fanout %.1f ns solo, %.1f ns streaming CPU; sends %.1f ns "
	       "solo, %.1f ns streaming CPU (goal <= 1.50x; 64 B)\n",
	       worst_solo <= 1.5 && worst <= 1.5 ? "PASS" : "SHORT",
	       worst_solo, wsn, worst, wn, sl_fsolo, sl_fcpu, sl_ssolo,
	       sl_scpu);
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];
		double rate = fo_med(c->rate, n);

		printf("SUMMARY fanout %s cpus=%s queues=%u msgs_per_s=%.0f "
		       "deliveries_per_s=%.0f ns_per_msg=%.1f cpu_ns=%.1f "
		       "cpu_ns_per_queue=%.1f ratio_sends=%.3f ratio_send=%.3f "
		       "waits_per_1k=%.1f sleeps_per_1k=%.1f solo_ns=%.1f "
		       "solo_ns_per_queue=%.1f solo_ratio_sends=%.3f "
		       "solo_ratio_send=%.3f\n",
		       fo_name(c, name, sizeof(name)), cpus, c->n, rate,
		       rate * c->n, wall[i], cpu[i], cpu[i] / c->n, xs_cpu[i],
		       cpu[i] / c->n / send_cpu, fo_med(c->waits, n),
		       fo_med(c->sleeps, n), solo[i], solo[i] / c->n,
		       xs_solo[i], solo[i] / c->n / send_solo);
		if (csv)
			fprintf(csv, "%s,%u,%.0f,%.0f,%.1f,%.1f,%.1f,%.4f,%.1f,"
				"%.1f,%.1f,%.4f,%.4f,%.4f,%.1f\n",
				c->fan ? "fanout" : "sends", c->n, rate,
				rate * c->n, wall[i], cpu[i], cpu[i] / c->n,
				cpu[i] / c->n / send_cpu, fo_med(c->waits, n),
				solo[i], solo[i] / c->n,
				solo[i] / c->n / send_solo, xs_cpu[i],
				xs_solo[i], fo_med(c->sleeps, n));
	}
	printf("SUMMARY fanout per-extra-queue cpus=%s fanout_cpu_ns=%.1f "
	       "sends_cpu_ns=%.1f fanout_wall_ns=%.1f sends_wall_ns=%.1f "
	       "fanout_solo_ns=%.1f sends_solo_ns=%.1f\n", cpus, sl_fcpu,
	       sl_scpu, sl_fwall, sl_swall, sl_fsolo, sl_ssolo);
	if (r->o->verbose)
		for (i = 0; i < r->ncases; i++) {
			const struct fo_case *c = &r->cases[i];
			unsigned k;

			printf("  rounds %-10s msgs/s:",
			       fo_name(c, name, sizeof(name)));
			for (k = 0; k < n; k++)
				printf(" %.0f", c->rate[k]);
			printf("  cpu ns:");
			for (k = 0; k < n; k++)
				printf(" %.1f", c->cpu[k]);
			printf("  solo ns:");
			for (k = 0; k < n; k++)
				printf(" %.1f", c->solo[k]);
			printf("\n");
		}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const unsigned dflt[] = { 1, 2, 4, 8, 16 };
	unsigned widths[FO_MAX_WIDTHS], nw, i, k, round;
	struct bench_opts o;
	struct fo_run r;
	char seg_name[32], cpus[32];
	int nc, ncpu;
	FILE *csv;

	nc = fo_take_queues(&argc, argv, widths);
	if (nc < 0) {
		fprintf(stderr, "bench_fanout: bad --queues\n%s", fo_help);
		return 2;
	}
	bench_parse_opts(argc, argv, &o, fo_help);
	nw = (unsigned)nc;
	if (!nw) {
		nw = BENCH_ARRAY_SIZE(dflt);
		memcpy(widths, dflt, sizeof(dflt));
	}
	memset(&r, 0, sizeof(r));
	r.o = &o;
	r.seg_name = seg_name;
	r.rounds = o.rounds ? o.rounds : o.smoke ? 1 : o.quick ? 3 : 5;
	if (r.rounds > FO_MAX_ROUNDS)
		r.rounds = FO_MAX_ROUNDS;
	r.duration_ms = o.duration_ms ? o.duration_ms : o.smoke ? 20 :
			o.quick ? 200 : 500;
	r.solo_reps = o.smoke ? 2 : o.quick ? 10 : 30;
	/*
	 * sends-1 first (the x send1 reference), then sends-N before each
	 * fanout-N: the rounds rotate through this order, so each pair runs
	 * back to back in every round but one's wrap-around.
	 */
	r.cases[0].n = 1;
	r.ncases = 1;
	for (i = 0; i < nw; i++) {
		struct fo_case *c;

		for (k = 0; k < r.ncases; k++)
			if (!r.cases[k].fan && r.cases[k].n == widths[i])
				break;
		if (k == r.ncases) {
			r.cases[k].n = widths[i];
			r.ncases++;
		}
		c = &r.cases[r.ncases++];
		c->n = widths[i];
		c->fan = 1;
		c->base = (int)k;
	}
	ncpu = bench_pick_cpus(&o, &r.cpu_a, &r.cpu_b);
	if (ncpu < 0) {
		fprintf(stderr, "bench_fanout: bad --cpus\n");
		return 2;
	}
	bench_cpus_str(cpus, sizeof(cpus), r.cpu_a, r.cpu_b);
	if (bench_seg_begin("bench_fanout", seg_name, sizeof(seg_name),
			    (size_t)64 << 20, &r.seg))
		return 1;
	r.sh = bench_shared_alloc(sizeof(*r.sh));
	if (!r.sh)
		fo_die(&r);
	printf("bench_fanout: one publisher, a fanout exchange, N queues each "
	       "drained by its own process, against shmq_send() to each of "
	       "the N queues (scratch names: bench.%d)\n", (int)getpid());
	printf("%u interleaved rounds; producer CPU %d, consumers CPU %d%s\n",
	       r.rounds, r.cpu_a, r.cpu_b, ncpu < 2 ?
	       " (one CPU: unpinned)" : "");
	fflush(stdout);
	bench_pin(r.cpu_a);	/* the solo runs */
	for (round = 0; round < r.rounds; round++)
		for (k = 0; k < r.ncases; k++) {
			struct fo_case *c = &r.cases[(k + round) % r.ncases];
			char name[16];

			bench_progress("fanout: %s, round %u/%u",
				       fo_name(c, name, sizeof(name)),
				       round + 1, r.rounds);
			fo_stream(&r, c, round);
			fo_solo(&r, c, round);
		}
	bench_sig.what = NULL;
	bench_progress_done();
	/* The first twelve columns as before; the new ones appended. */
	csv = bench_csv_open(&o, "fanout", "case,queues,msgs_per_s,"
			     "deliveries_per_s,ns_per_msg,cpu_ns,cpu_ns_per_queue,"
			     "ratio_send,waits_per_1k,solo_ns,"
			     "solo_ns_per_queue,solo_ratio_send,ratio_sends,"
			     "solo_ratio_sends,sleeps_per_1k");
	fo_report(&r, cpus, csv);
	if (csv)
		fclose(csv);
	bench_shared_free(r.sh, sizeof(*r.sh));
	bench_seg_end("bench_fanout", seg_name, r.seg);
	return 0;
}
