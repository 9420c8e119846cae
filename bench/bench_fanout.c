// SPDX-License-Identifier: MIT
/*
 * bench_fanout - one publisher, a fanout exchange, N queues (1, 2, 4, 8,
 * 16), each drained by its own consumer process; against a plain
 * shmq_send() loop to one queue with one consumer, in the same run.
 *
 * Two measurements of each case, in interleaved rounds:
 *
 *   streaming  the producer process (pinned to CPU a) publishes 64-byte
 *              messages for --duration ms, blocking (SHMQ_FOREVER) when a
 *              queue is full; the N consumer processes (all pinned to CPU
 *              b) block in shmq_recv_batch() (SHMQ_FOREVER, up to 32 at a
 *              time) and check every message (sequence at both ends, none
 *              lost, none twice).  Reported: messages published per
 *              second, deliveries per second (N x that), the wall time per
 *              publish, the producer's own CPU time per publish
 *              (CLOCK_PROCESS_CPUTIME_ID: includes the time it spins
 *              waiting for room), and how often it found a queue full.
 *              On 2 CPUs the N consumers share one CPU: when their work
 *              (N deliveries per publish) exceeds the producer's, the
 *              producer waits, and the rate is the consumers' (the full-
 *              wait column says so).
 *   solo       one process, no consumer running: publish C messages into
 *              N empty queues of capacity C (timed as one loop), then
 *              drain them (untimed); repeated.  The producer's path
 *              alone, without cross-CPU traffic: the cleanest figure of
 *              what each extra queue adds to a publish.
 *
 * The cost per extra queue is the least-squares slope of ns per publish
 * over N.  The per-queue ratio (ns per publish / N, over a shmq_send()'s ns
 * per message) is the goal (<= 1.5x).
 */
#include <time.h>

#include "mech.h"

#define FO_MSG 64
#define FO_CAP 4096		/* streaming queues: room to run ahead */
#define FO_SOLO_CAP 1024	/* solo: messages per timed loop */
#define FO_BATCH 32		/* consumers' shmq_recv_batch() */
#define FO_MAX_N 16
#define FO_MAX_CASES 8
#define FO_MAX_ROUNDS 32

struct fo_shared {
	_Atomic uint32_t ready;		/* consumers attached */
	_Atomic uint32_t go;		/* set by the producer's start */
	uint64_t published;		/* by the producer */
	uint64_t wall_ns, cpu_ns;
	uint64_t received[FO_MAX_N];	/* by each consumer */
};

struct fo_case {
	unsigned n;		/* queues; 0: the shmq_send baseline */
	double rate[FO_MAX_ROUNDS];	/* publishes (sends) per second */
	double cpu[FO_MAX_ROUNDS];	/* producer CPU ns per publish */
	double waits[FO_MAX_ROUNDS];	/* full waits per 1000 publishes */
	double sleeps[FO_MAX_ROUNDS];	/* futex sleeps per 1000 publishes */
	double solo[FO_MAX_ROUNDS];	/* solo ns per publish */
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

static const char fo_help[] =
	"usage: bench_fanout [options]\n"
	"\n"
	"One publisher through a fanout exchange to N queues (default 1, 2,\n"
	"4, 8, 16), each drained by its own consumer process, against a\n"
	"plain shmq_send() loop to one queue, in interleaved rounds (64-byte\n"
	"messages).  Streaming (producer on CPU a, consumers on CPU b, all\n"
	"blocking) and solo (one process, no consumer running).  Prints the\n"
	"tables, the cost per extra queue, a GOAL line and SUMMARY lines.\n"
	"\n"
	"options:\n"
	"  --queues LIST    fanout widths, at most 16 (default 1,2,4,8,16)\n"
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
		for (p = argv[i + 1]; *p && n < FO_MAX_CASES - 1; p = end) {
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

/* The queues (and exchange, n > 0) of one case. */
static int fo_setup(struct fo_run *r, unsigned n, unsigned cap)
{
	struct shmq_xattr xa = { .type = SHMQ_FANOUT };
	struct shmq_attr qa = { .capacity = cap, .msg_size = FO_MSG };
	char x[SHMQ_NAME_MAX + 1], q[SHMQ_NAME_MAX + 1];
	unsigned i, nq = n ? n : 1;
	int rc = 0;

	r->serial++;
	fo_names(r->serial, 0, x, q);
	if (n)
		rc = shmq_exchange_create(r->seg, x, &xa);
	for (i = 0; i < nq && !rc; i++) {
		fo_names(r->serial, i, x, q);
		rc = shmq_create(r->seg, q, &qa);
		if (!rc && n)
			rc = shmq_bind(r->seg, x, q, "");
	}
	return rc;
}

static void fo_teardown(struct fo_run *r, unsigned n)
{
	char x[SHMQ_NAME_MAX + 1], q[SHMQ_NAME_MAX + 1];
	unsigned i;

	for (i = 0; i < (n ? n : 1); i++) {
		fo_names(r->serial, i, x, q);
		shmq_unlink(r->seg, q);
	}
	if (n)
		shmq_exchange_unlink(r->seg, x);
}

/*
 * Full waits the producer counted on the case's queues, and the futex
 * sleeps of anyone on them (@sleeps): each costs its waker a FUTEX_WAKE.
 */
static uint64_t fo_full_waits(struct fo_run *r, unsigned n, uint64_t *sleeps)
{
	char x[SHMQ_NAME_MAX + 1], q[SHMQ_NAME_MAX + 1];
	struct shmq_queue_info qi;
	uint64_t w = 0;
	unsigned i;

	for (i = 0; i < (n ? n : 1); i++) {
		fo_names(r->serial, i, x, q);
		if (!shmq_queue_stat(r->seg, q, &qi)) {
			w += qi.full_waits;
			*sleeps += qi.sleeps;
		}
	}
	return w;
}

/* ---- streaming ----------------------------------------------------------- */

static void fo_consumer(struct fo_run *r, unsigned n, unsigned i)
{
	char x[SHMQ_NAME_MAX + 1], qn[SHMQ_NAME_MAX + 1];
	struct iovec iov[FO_BATCH];
	uint64_t seq = 0;
	shmq_seg *seg;
	char *bufs;
	shmq *q;
	int rc, k, j;

	(void)n;
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

static void fo_producer(struct fo_run *r, unsigned n)
{
	char x[SHMQ_NAME_MAX + 1], qn[SHMQ_NAME_MAX + 1];
	uint64_t seq = 0, t0, c0, end, now;
	shmq_exchange *xh = NULL;
	shmq *q = NULL;
	shmq_seg *seg;
	char *buf;
	int rc, i;

	fo_names(r->serial, 0, x, qn);
	rc = bench_pin(r->cpu_a);
	if (!rc)
		rc = shmq_seg_open(r->seg_name, &seg);
	if (!rc)
		rc = n ? shmq_exchange_open(seg, x, &xh) :
			 shmq_open(seg, qn, &q);
	buf = bench_buf_alloc(FO_MSG, 1);
	if (rc || !buf)
		goto fail;
	/* acquire: pairs with each consumer's release. */
	while (atomic_load_explicit(&r->sh->ready, memory_order_acquire) <
	       (n ? n : 1))
		usleep(1000);
	/* Warm-up: the route, the lines (not counted). */
	for (i = 0; i < 64 && !rc; i++) {
		bench_msg_stamp(buf, FO_MSG, ++seq);
		rc = n ? shmq_publish(xh, "", buf, FO_MSG, SHMQ_FOREVER) :
			 shmq_send(q, buf, FO_MSG, SHMQ_FOREVER);
		rc = rc < 0 ? rc : 0;
	}
	t0 = bench_now_ns();
	c0 = fo_cpu_ns();
	end = t0 + (uint64_t)r->duration_ms * 1000000;
	do {
		for (i = 0; i < 256 && !rc; i++) {
			bench_msg_stamp(buf, FO_MSG, ++seq);
			if (n) {
				rc = shmq_publish(xh, "", buf, FO_MSG,
						  SHMQ_FOREVER);
				rc = rc == (int)n ? 0 : rc < 0 ? rc :
				     BENCH_EBADMSG;
			} else {
				rc = shmq_send(q, buf, FO_MSG, SHMQ_FOREVER);
			}
		}
		now = bench_now_ns();
	} while (!rc && now < end);
	r->sh->cpu_ns = fo_cpu_ns() - c0;
	r->sh->wall_ns = now - t0;
	r->sh->published = seq - 64;
	if (rc)
		goto fail;
	/* The end marker: an empty message to every queue. */
	rc = n ? shmq_publish(xh, "", buf, 0, SHMQ_FOREVER) :
		 shmq_send(q, buf, 0, SHMQ_FOREVER);
	if (rc < 0)
		goto fail;
	r->sh->published += 64;		/* what consumers count */
	shmq_exchange_close(xh);
	shmq_close(q);
	shmq_seg_close(seg);
	free(buf);
	_exit(0);
fail:
	fprintf(stderr, "fanout: producer (%u queues): %s\n", n,
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
	unsigned i, nq = c->n ? c->n : 1;
	int bad = 0, rc;

	memset(r->sh, 0, sizeof(*r->sh));
	rc = fo_setup(r, c->n, FO_CAP);
	if (rc) {
		fprintf(stderr, "fanout: setup: %s\n", bench_strerror(rc));
		fo_die(r);
	}
	bench_watchdog(60 + r->duration_ms / 1000 * 4, "fanout");
	fflush(NULL);
	for (i = 0; i < nq; i++) {
		pids[i] = bench_fork();
		if (pids[i] == 0)
			fo_consumer(r, c->n, i);
		if (pids[i] < 0) {
			fprintf(stderr, "fanout: fork: %s\n",
				bench_strerror((int)pids[i]));
			fo_die(r);
		}
	}
	pids[nq] = bench_fork();
	if (pids[nq] == 0)
		fo_producer(r, c->n);
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
		uint64_t pubs = r->sh->published - 64, sl = 0;

		c->rate[round] = (double)pubs * 1e9 / (double)r->sh->wall_ns;
		c->cpu[round] = (double)r->sh->cpu_ns / (double)pubs;
		c->waits[round] = (double)fo_full_waits(r, c->n, &sl) *
				  1000.0 / (double)pubs;
		c->sleeps[round] = (double)sl * 1000.0 / (double)pubs;
	}
	fo_teardown(r, c->n);
}

/* ---- solo ------------------------------------------------------------------ */

static void fo_solo(struct fo_run *r, struct fo_case *c, unsigned round)
{
	char x[SHMQ_NAME_MAX + 1], qn[SHMQ_NAME_MAX + 1];
	shmq *qs[FO_MAX_N];
	struct iovec iov[FO_BATCH];
	shmq_exchange *xh = NULL;
	unsigned i, k, rep, nq = c->n ? c->n : 1;
	uint64_t seq = 0, t0, best = UINT64_MAX;
	double v[64];
	char *buf;
	int rc;

	rc = fo_setup(r, c->n, FO_SOLO_CAP);
	buf = bench_buf_alloc(FO_MSG, FO_BATCH);
	for (i = 0; i < nq && !rc; i++) {
		fo_names(r->serial, i, x, qn);
		rc = shmq_open(r->seg, qn, &qs[i]);
	}
	if (!rc && c->n)
		rc = shmq_exchange_open(r->seg, x, &xh);
	if (rc || !buf) {
		fprintf(stderr, "fanout: solo setup: %s\n",
			bench_strerror(rc ? rc : -ENOMEM));
		fo_die(r);
	}
	(void)best;
	/* Rep 0 warms up (route, lines, records); not counted. */
	for (rep = 0; rep <= r->solo_reps && !rc; rep++) {
		t0 = bench_now_ns();
		for (i = 0; i < FO_SOLO_CAP && !rc; i++) {
			bench_msg_stamp(buf, FO_MSG, ++seq);
			rc = c->n ? shmq_publish(xh, "", buf, FO_MSG, 0) :
				    shmq_send(qs[0], buf, FO_MSG, 0);
			rc = c->n && rc == (int)c->n ? 0 : rc;
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
		fprintf(stderr, "fanout: solo (%u queues): %s\n", c->n,
			bench_strerror(rc));
		fo_die(r);
	}
	c->solo[round] = bench_median(v, r->solo_reps);
	shmq_exchange_close(xh);
	for (i = 0; i < nq; i++)
		shmq_close(qs[i]);
	free(buf);
	fo_teardown(r, c->n);
}

/* ---- report ---------------------------------------------------------------- */

static double fo_med(const double *v, unsigned n)
{
	double t[FO_MAX_ROUNDS];

	memcpy(t, v, n * sizeof(*v));
	return bench_median(t, n);
}

static double fo_min(const double *v, unsigned n)
{
	double m = v[0];
	unsigned i;

	for (i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

static double fo_max(const double *v, unsigned n)
{
	double m = v[0];
	unsigned i;

	for (i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

/* Least-squares slope of @y over the fanout cases' N. */
static double fo_slope(const struct fo_run *r, const double *y)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, k = 0;
	unsigned i;

	for (i = 1; i < r->ncases; i++) {
		double xv = r->cases[i].n;

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

static void fo_report(struct fo_run *r, const char *cpus, FILE *csv)
{
	double wall[FO_MAX_CASES], cpu[FO_MAX_CASES], solo[FO_MAX_CASES];
	double worst = 0, worst_solo = 0, send_solo, send_cpu;
	unsigned i, n = r->rounds, wn = 0, wsn = 0;
	char b1[16], b2[16], b3[16], b4[16];

	for (i = 0; i < r->ncases; i++) {
		wall[i] = 1e9 / fo_med(r->cases[i].rate, n);
		cpu[i] = fo_med(r->cases[i].cpu, n);
		solo[i] = fo_med(r->cases[i].solo, n);
	}
	send_cpu = cpu[0];
	send_solo = solo[0];
	printf("\nstreaming: 64-byte messages, producer on CPU %d, every "
	       "consumer on CPU %d (median of %u runs of %u ms)\n", r->cpu_a,
	       r->cpu_b, n, r->duration_ms);
	printf("%-11s %6s %9s %9s %9s %11s %9s %9s %8s %8s %9s %9s\n",
	       "case", "queues", "msgs/s", "min", "max", "deliver/s",
	       "wall ns", "cpu ns", "cpu/q", "x send", "waits/1k",
	       "sleeps/1k");
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];
		unsigned nq = c->n ? c->n : 1;
		double rate = fo_med(c->rate, n);
		char name[16];

		snprintf(name, sizeof(name), c->n ? "fanout-%u" : "send",
			 c->n);
		printf("%-11s %6u %9s %9s %9s %11s %9.1f %9.1f %8.1f %8.2f "
		       "%9.1f %9.1f\n", name, nq, bench_fmt_rate(b1, sizeof(b1), rate),
		       bench_fmt_rate(b2, sizeof(b2), fo_min(c->rate, n)),
		       bench_fmt_rate(b3, sizeof(b3), fo_max(c->rate, n)),
		       bench_fmt_rate(b4, sizeof(b4), rate * nq), wall[i],
		       cpu[i], cpu[i] / nq, cpu[i] / nq / send_cpu,
		       fo_med(c->waits, n), fo_med(c->sleeps, n));
	}
	printf("(wall ns: wall time per publish (send), which includes any "
	       "time the producer was not running; cpu ns: the producer's "
	       "CPU time per publish, waits included; cpu/q = cpu ns / "
	       "queues; x send = cpu/q / send's cpu ns; waits/1k: full-queue "
	       "waits per 1000 publishes; sleeps/1k: futex sleeps on the "
	       "queues per 1000 publishes, each woken by a FUTEX_WAKE)\n");
	printf("cost per extra queue (slope over N): producer CPU %.1f ns "
	       "(wall %.1f ns)\n", fo_slope(r, cpu), fo_slope(r, wall));

	printf("\nsolo: one process, no consumer running; %u messages into "
	       "empty queues, median of %u loops x %u runs\n", FO_SOLO_CAP,
	       r->solo_reps, n);
	printf("%-11s %6s %9s %9s %9s %8s %8s\n", "case", "queues", "ns/msg",
	       "min", "max", "ns/queue", "x send");
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];
		unsigned nq = c->n ? c->n : 1;
		char name[16];

		snprintf(name, sizeof(name), c->n ? "fanout-%u" : "send",
			 c->n);
		printf("%-11s %6u %9.1f %9.1f %9.1f %8.1f %8.2f\n", name, nq,
		       solo[i], fo_min(c->solo, n), fo_max(c->solo, n),
		       solo[i] / nq, solo[i] / nq / send_solo);
		if (i && solo[i] / nq / send_solo > worst_solo) {
			worst_solo = solo[i] / nq / send_solo;
			wsn = nq;
		}
		if (i && cpu[i] / nq / send_cpu > worst) {
			worst = cpu[i] / nq / send_cpu;
			wn = nq;
		}
	}
	printf("cost per extra queue (slope over N): %.1f ns\n",
	       fo_slope(r, solo));
	if (r->ncases > 1)
		printf("GOAL fanout-per-queue %s: worst per-queue cost %.2fx "
		       "shmq_send solo (%u queues), %.2fx streaming CPU (%u "
		       "queues); per extra queue %.1f ns solo, %.1f ns "
		       "streaming CPU (goal <= 1.50x; 64 B)\n",
		       worst_solo <= 1.5 && worst <= 1.5 ? "PASS" : "SHORT",
		       worst_solo, wsn, worst, wn, fo_slope(r, solo),
		       fo_slope(r, cpu));
	for (i = 0; i < r->ncases; i++) {
		const struct fo_case *c = &r->cases[i];
		unsigned nq = c->n ? c->n : 1;
		double rate = fo_med(c->rate, n);

		char name[16];

		snprintf(name, sizeof(name), c->n ? "fanout-%u" : "send",
			 c->n);
		printf("SUMMARY fanout %s cpus=%s queues=%u msgs_per_s=%.0f "
		       "deliveries_per_s=%.0f ns_per_msg=%.1f cpu_ns=%.1f "
		       "cpu_ns_per_queue=%.1f ratio_send=%.3f waits_per_1k=%.1f "
		       "sleeps_per_1k=%.1f "
		       "solo_ns=%.1f solo_ns_per_queue=%.1f "
		       "solo_ratio_send=%.3f\n", name, cpus, nq, rate, rate * nq, wall[i],
		       cpu[i], cpu[i] / nq, cpu[i] / nq / send_cpu,
		       fo_med(c->waits, n), fo_med(c->sleeps, n), solo[i],
		       solo[i] / nq,
		       solo[i] / nq / send_solo);
		if (csv)
			fprintf(csv, "%s,%u,%.0f,%.0f,%.1f,%.1f,%.1f,%.4f,%.1f,"
				"%.1f,%.1f,%.4f\n", c->n ? "fanout" : "send",
				nq, rate, rate * nq, wall[i], cpu[i],
				cpu[i] / nq, cpu[i] / nq / send_cpu,
				fo_med(c->waits, n), solo[i], solo[i] / nq,
				solo[i] / nq / send_solo);
	}
	if (r->o->verbose)
		for (i = 0; i < r->ncases; i++) {
			unsigned k;

			printf("  rounds %-3u msgs/s:", r->cases[i].n);
			for (k = 0; k < n; k++)
				printf(" %.0f", r->cases[i].rate[k]);
			printf("  solo ns:");
			for (k = 0; k < n; k++)
				printf(" %.1f", r->cases[i].solo[k]);
			printf("\n");
		}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const unsigned dflt[] = { 1, 2, 4, 8, 16 };
	unsigned widths[FO_MAX_CASES], nw, i, k, round;
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
	r.cases[0].n = 0;
	for (i = 0; i < nw; i++)
		r.cases[i + 1].n = widths[i];
	r.ncases = nw + 1;
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
	       "drained by its own process (scratch names: bench.%d)\n",
	       (int)getpid());
	printf("%u interleaved rounds; producer CPU %d, consumers CPU %d%s\n",
	       r.rounds, r.cpu_a, r.cpu_b, ncpu < 2 ?
	       " (one CPU: unpinned)" : "");
	fflush(stdout);
	bench_pin(r.cpu_a);	/* the solo runs */
	for (round = 0; round < r.rounds; round++)
		for (k = 0; k < r.ncases; k++) {
			struct fo_case *c = &r.cases[(k + round) % r.ncases];

			bench_progress("fanout: %u queues, round %u/%u", c->n,
				       round + 1, r.rounds);
			fo_stream(&r, c, round);
			fo_solo(&r, c, round);
		}
	bench_sig.what = NULL;
	bench_progress_done();
	csv = bench_csv_open(&o, "fanout", "case,queues,msgs_per_s,"
			     "deliveries_per_s,ns_per_msg,cpu_ns,cpu_ns_per_queue,"
			     "ratio_send,waits_per_1k,solo_ns,"
			     "solo_ns_per_queue,solo_ratio_send");
	fo_report(&r, cpus, csv);
	if (csv)
		fclose(csv);
	bench_shared_free(r.sh, sizeof(*r.sh));
	bench_seg_end("bench_fanout", seg_name, r.seg);
	return 0;
}
