// SPDX-License-Identifier: MIT
/*
 * bench_ack - acknowledged delivery (issue 12): what shmq_fetch() +
 * shmq_ack() cost against shmq_recv(), and how soon a job held by a
 * worker that is SIGKILLed reaches another, waiting worker.
 *
 * Throughput.  One producer process sends numbered 64-byte messages
 * (SHMQ_FOREVER) into an MPMC queue of 1024 slots for --duration ms;
 * C consumer processes (1, then 3) take them, either with shmq_recv()
 * (recv) or with shmq_fetch() followed by shmq_ack() of each message
 * (fetch+ack), both SHMQ_FOREVER at the default spin budget, meta NULL.
 * The queue has the default acknowledgement attributes (max_unacked 64,
 * prefetch 64): a consumer acknowledges each message before it fetches
 * the next, so it never owes more than one.  Every message is checked:
 * its length, its whole content (the sequence number at both ends, the
 * fill pattern between), each consumer's numbers strictly rising, and,
 * through one bitmap per consumer in shared memory, that the consumers
 * together got each number sent exactly once (none lost, none twice);
 * after a fetch+ack run the queue must owe nothing (unacked 0).  The
 * producer then sends one empty end marker per consumer.  The rate is
 * the messages received over the time from the start line to the last
 * consumer's end.  The four cases (recv and fetch+ack at 1:1 and 1:3)
 * run in interleaved rounds, the order rotated each round; each figure
 * is the median over rounds and the judged figure is fetch+ack / recv
 * at the same shape (goal >= 0.5x at both); the table also gives the
 * median of that ratio taken within each round (paired), where the two
 * ran back to back, which a noisy machine moves less.  Processes are
 * pinned round-robin over the CPUs of our affinity mask (producer
 * first): on 2 CPUs the 1:3 shape has four processes on two CPUs, for
 * both cases.
 *
 * Kill-to-redelivery.  For each case, one queue and one waiting worker
 * process kept for the whole run; per kill, a fresh victim process:
 *
 *   fetched   the victim takes the job with shmq_fetch(SHMQ_FOREVER) and
 *             holds it (never acknowledges); the waiter waits in
 *             shmq_fetch(SHMQ_FOREVER).
 *   acquired  the victim takes it with shmq_acquire(SHMQ_FOREVER) and
 *             holds it (never releases); the waiter waits in
 *             shmq_acquire(SHMQ_FOREVER).
 *
 * One kill: the parent sends the job (its number, 64 bytes) into the
 * empty queue while the waiter is parked outside the library (on a futex
 * of the shared page: so only the victim can take the job), forks the
 * victim, waits for the victim's word that it holds the job (checked:
 * content, deliveries 1, not REDELIVERED), lets the waiter into its call
 * and waits until the queue counts it among its waiters and the kernel
 * shows it asleep, then waits a random 1-51 ms more (so that the kill
 * falls at every phase of the waiter's bounded sleep, ~25 ms in the
 * library as of 0.4), reads CLOCK_MONOTONIC and sends SIGKILL.  The
 * waiter reads CLOCK_MONOTONIC as soon as its call returns and puts it in
 * the shared page; it checks the job (content, the victim's meta.seq,
 * SHMQ_META_REDELIVERED, deliveries 2) and acknowledges or releases it.
 * The figure is arrival - kill: the kernel's teardown of the victim, the
 * waiter noticing the death, the recovery and the waiter's wake-up.  The
 * parent also reaps the victim right after kill() (reaped - kill: the
 * kernel's part alone, for reference).  Then the queue must be empty and
 * owe nothing.  The two cases alternate kill by kill.  A job that does
 * not arrive within 5 s ends the run with an error.
 *
 * Every process this program starts is recorded and dies with it
 * (bench_fork(): PR_SET_PDEATHSIG); any exit path, SIGINT and the
 * watchdog included, kills them and removes the segment.
 */
#include <time.h>

#include "mech.h"

#define AK_MSG 64
#define AK_CAP 1024
#define AK_MAX_CONS 3
#define AK_MAX_ROUNDS 64
/* A throughput run stops at this many messages: the bitmaps' size. */
#define AK_MAX_MSGS ((uint64_t)1 << 25)
#define AK_WORDS (AK_MAX_MSGS / 64)
#define AK_PHASE_MS 50		/* the kill's random delay: 1 + [0, 50) ms */
#define AK_ARRIVE_NS 5000000000ull	/* a job later than this: failure */
#define AK_BLOCKED_NS 2000000000ull	/* waiting to see the waiter asleep */

enum { AK_RECV, AK_FETCH };		/* throughput: how consumers take */
enum { AK_FETCHED, AK_ACQUIRED, AK_NKILL };	/* kill-to-redelivery */

static const char *const ak_kill_name[AK_NKILL] = { "fetched", "acquired" };

/* Throughput: one run's control words (MAP_SHARED). */
struct ak_ctl {
	_Atomic uint32_t ready;		/* children attached */
	_Atomic uint32_t go;		/* the start line */
	uint64_t t_start;
	uint64_t sent;			/* by the producer, markers not counted */
	uint64_t got[AK_MAX_CONS];	/* by each consumer */
	uint64_t t_end[AK_MAX_CONS];
};

/* Kill-to-redelivery: one case's shared page. */
struct ak_kill {
	_Atomic uint32_t held;		/* kill number the victim holds */
	_Atomic uint32_t go;		/* kill number the waiter may wait for */
	_Atomic uint32_t waiting;	/* kill number the waiter is waiting for */
	_Atomic uint32_t done;		/* kill number the waiter got */
	_Atomic uint32_t stop;		/* the waiter's end */
	uint64_t victim_seq;		/* meta.seq as the victim saw it */
	uint64_t t_arrive;		/* the waiter's clock when its call
					 * returned */
};

struct ak_tcase {
	int how;			/* AK_RECV or AK_FETCH */
	unsigned nc;			/* consumers */
	double rate[AK_MAX_ROUNDS];
};

struct ak_run {
	const struct bench_opts *o;
	const char *seg_name;
	shmq_seg *seg;
	int cpus[CPU_SETSIZE];
	int ncpu;
	unsigned serial;
	/* throughput */
	unsigned rounds, duration_ms;
	struct ak_ctl *ctl;
	uint64_t *bits;			/* AK_MAX_CONS bitmaps of AK_WORDS */
	uint64_t bits_used;		/* words to clear before the next run */
	struct ak_tcase tcases[4];
	unsigned ntcases;
	/* kill-to-redelivery */
	unsigned kills;
	int kill_on[AK_NKILL];
	struct ak_kill *kk[AK_NKILL];
	shmq *kq[AK_NKILL];		/* the parent's handles: it sends jobs */
	char kq_name[AK_NKILL][SHMQ_NAME_MAX + 1];
	pid_t waiter[AK_NKILL];
	struct hist *lat[AK_NKILL];	/* kill -> arrival */
	struct hist *reap[AK_NKILL];	/* kill -> victim reaped */
	unsigned unseen[AK_NKILL];	/* kills with the waiter not seen asleep */
	uint64_t rng;
};

static const char ak_help[] =
	"usage: bench_ack [options]\n"
	"\n"
	"Acknowledged delivery.  Throughput of 64-byte messages from one\n"
	"producer process to 1 and to 3 consumer processes taking them with\n"
	"shmq_fetch() + shmq_ack() against shmq_recv(), interleaved rounds,\n"
	"every message checked (content, none lost, none twice); and the time\n"
	"from SIGKILL of a worker holding a job (fetched, or acquired) to the\n"
	"job's arrival at another worker already waiting on the queue, over\n"
	"--kills kills per case: median, p90, p99, max.  Prints the tables,\n"
	"GOAL lines (fetch+ack >= 0.5x recv at 1:1 and 1:3; redelivery p99\n"
	"<= 100 ms) and SUMMARY lines.\n"
	"\n"
	"options:\n"
	"  --kills N        kills per case (default 200; --quick 50; --smoke 5)\n"
	"  --duration MS    throughput: how long the producer sends per run\n"
	"                   (default 500; --quick 200; --smoke 20)\n"
	"  --rounds N       throughput: interleaved rounds (default 7; --quick\n"
	"                   3; --smoke 1)\n"
	"  --only LIST      of throughput, fetched, acquired (default: all)\n"
	"  --cpus A,B       the first two CPUs (producer, first consumer; the\n"
	"                   victims, the waiters)\n"
	"  --spin NS        the shmq spin budget of every handle\n"
	"  --quick, --smoke, --out DIR, --tag NAME, --verbose, --help\n"
	"\n"
	"CSV (--out): ack.csv, one row per case.\n";

/* --kills N, taken out of argv before the common options are parsed. */
static int ak_take_kills(int *argc, char **argv, unsigned *kills)
{
	int i, j;

	for (i = 1; i < *argc; i++) {
		unsigned long x;
		char *end;

		if (strcmp(argv[i], "--kills"))
			continue;
		if (i + 1 >= *argc)
			return -1;
		errno = 0;
		x = strtoul(argv[i + 1], &end, 10);
		if (errno || *end || !x || x > 100000)
			return -1;
		*kills = (unsigned)x;
		for (j = i; j + 2 <= *argc; j++)
			argv[j] = argv[j + 2];
		*argc -= 2;
		return 0;
	}
	return 0;
}

static void ak_die(struct ak_run *r)
{
	bench_die(r->seg, r->seg_name);
}

static int ak_cpu(const struct ak_run *r, unsigned i)
{
	return r->ncpu > 1 ? r->cpus[i % (unsigned)r->ncpu] : -1;
}

static uint64_t ak_rand(struct ak_run *r)
{
	/* xorshift64*: the kill's delay needs no better. */
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 0x2545f4914f6cdd1dull;
}

static void ak_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void ak_loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double a = 0, b = 0, c = 0;

	if (!f || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
	if (f)
		fclose(f);
}

/*
 * The process leaves our list of children: we are about to SIGKILL it,
 * and the SIGCHLD handler would take its death for a failure.  It still
 * dies with us (PR_SET_PDEATHSIG).
 */
static void ak_forget_child(pid_t pid)
{
	unsigned i;

	for (i = 0; i < BENCH_MAX_CHILDREN; i++)
		if (bench_sig.child[i] == pid)
			bench_sig.child[i] = 0;
}

/* Is @pid asleep (state S or D in /proc/PID/stat)? */
static int ak_asleep(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

/* Message @seq: the fill pattern, @seq in its first and last 8 bytes. */
static void ak_stamp(void *buf, uint64_t seq)
{
	bench_msg_init(buf, AK_MSG);
	bench_msg_stamp(buf, AK_MSG, seq);
}

/*
 * Checks a whole message against @tmpl (the fill pattern): both ends
 * carry the same number, the bytes between are the pattern's.  Returns
 * 0 and the number in *@seq, or BENCH_EBADMSG.
 */
static int ak_check(const void *msg, size_t len, const char *tmpl,
		    uint64_t *seq)
{
	uint64_t a, b;

	if (len != AK_MSG)
		return BENCH_EBADMSG;
	memcpy(&a, msg, sizeof(a));
	memcpy(&b, (const char *)msg + AK_MSG - sizeof(b), sizeof(b));
	if (a != b || memcmp((const char *)msg + 8, tmpl + 8, AK_MSG - 16))
		return BENCH_EBADMSG;
	*seq = a;
	return 0;
}

/* ---- throughput ---------------------------------------------------------- */

static const char *ak_tname(const struct ak_tcase *c)
{
	return c->how == AK_FETCH ? "fetch+ack" : "recv";
}

static void ak_qname(char *buf, unsigned serial)
{
	snprintf(buf, SHMQ_NAME_MAX + 1, "ack%u", serial);
}

static int ak_child_open(struct ak_run *r, const char *qname, int cpu,
			 shmq_seg **seg, shmq **q)
{
	int rc = bench_pin(cpu);

	if (!rc)
		rc = shmq_seg_open(r->seg_name, seg);
	if (!rc) {
		/* --spin, or (-1, BENCH_NO_SPIN) the library's. */
		rc = bench_shmq_open(*seg, qname, r->o->spin_ns, q);
		if (rc)
			shmq_seg_close(*seg);
	}
	return rc;
}

/* Ready, then wait for the parent's start line. */
static void ak_start(struct ak_ctl *ctl)
{
	/* relaxed: a count; the parent's release store of go orders. */
	atomic_fetch_add_explicit(&ctl->ready, 1, memory_order_relaxed);
	bench_futex_wake(&ctl->ready, 1);
	/* acquire: pairs with the parent's release store of go. */
	while (!atomic_load_explicit(&ctl->go, memory_order_acquire))
		bench_futex_wait(&ctl->go, 0);
}

static void ak_producer(struct ak_run *r, const struct ak_tcase *c,
			const char *qname)
{
	uint64_t seq = 0, deadline;
	char buf[AK_MSG] __attribute__((aligned(64)));
	shmq_seg *seg;
	unsigned i;
	shmq *q;
	int rc;

	rc = ak_child_open(r, qname, ak_cpu(r, 0), &seg, &q);
	if (rc)
		goto fail;
	ak_start(r->ctl);
	deadline = r->ctl->t_start + (uint64_t)r->duration_ms * 1000000u;
	bench_msg_init(buf, AK_MSG);
	for (;;) {
		/* The clock every 256 messages; the bitmaps' end. */
		if (!(seq & 255) && (bench_now_ns() >= deadline ||
				     seq >= AK_MAX_MSGS))
			break;
		bench_msg_stamp(buf, AK_MSG, seq);
		rc = shmq_send(q, buf, AK_MSG, SHMQ_FOREVER);
		if (rc)
			goto fail;
		seq++;
	}
	r->ctl->sent = seq;
	for (i = 0; i < c->nc; i++) {
		rc = shmq_send(q, buf, 0, SHMQ_FOREVER);
		if (rc)
			goto fail;
	}
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(0);
fail:
	fprintf(stderr, "bench_ack: %s 1:%u: producer, message %" PRIu64
		": %s\n", ak_tname(c), c->nc, seq, bench_strerror(rc));
	_exit(1);
}

static void ak_consumer(struct ak_run *r, const struct ak_tcase *c,
			const char *qname, unsigned idx)
{
	char buf[AK_MSG] __attribute__((aligned(64)));
	char tmpl[AK_MSG];
	uint64_t *bits = r->bits + (size_t)idx * AK_WORDS;
	uint64_t got = 0, seq = 0, next = 0, tag = 0;
	shmq_seg *seg;
	ssize_t n;
	shmq *q;
	int rc;

	bench_msg_init(tmpl, AK_MSG);
	rc = ak_child_open(r, qname, ak_cpu(r, 1 + idx), &seg, &q);
	if (rc)
		goto fail;
	ak_start(r->ctl);
	for (;;) {
		if (c->how == AK_FETCH)
			n = shmq_fetch(q, buf, sizeof(buf), NULL, &tag,
				       SHMQ_FOREVER);
		else
			n = shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER);
		if (n < 0) {
			rc = (int)n;
			goto fail;
		}
		if (n == 0) {			/* the end marker */
			if (c->how == AK_FETCH && (rc = shmq_ack(q, tag)))
				goto fail;
			break;
		}
		/* Whole content; strictly rising (one ring, FIFO claims). */
		rc = ak_check(buf, (size_t)n, tmpl, &seq);
		if (rc || seq < next || seq >= AK_MAX_MSGS) {
			fprintf(stderr, "bench_ack: %s 1:%u: consumer %u: "
				"message %" PRIu64 " (%zd bytes) after %" PRIu64
				": bad length, content or order\n",
				ak_tname(c), c->nc, idx, seq, n, next);
			_exit(1);
		}
		next = seq + 1;
		bits[seq >> 6] |= (uint64_t)1 << (seq & 63);
		got++;
		if (c->how == AK_FETCH && (rc = shmq_ack(q, tag)))
			goto fail;
	}
	r->ctl->t_end[idx] = bench_now_ns();
	r->ctl->got[idx] = got;
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(0);
fail:
	fprintf(stderr, "bench_ack: %s 1:%u: consumer %u, after %" PRIu64
		" messages: %s\n", ak_tname(c), c->nc, idx, got,
		bench_strerror(rc));
	_exit(1);
}

/*
 * The consumers' bitmaps: together every number below @sent exactly once
 * (their union all ones, no bit in two of them), nothing at or above.
 */
static int ak_check_bits(struct ak_run *r, unsigned nc, uint64_t sent)
{
	uint64_t words = (sent + 63) / 64, w, full, any, twice, b;
	unsigned i;

	for (w = 0; w < words; w++) {
		any = twice = 0;
		for (i = 0; i < nc; i++) {
			b = r->bits[(size_t)i * AK_WORDS + w];
			twice |= any & b;
			any |= b;
		}
		full = w + 1 < words || !(sent & 63) ? ~(uint64_t)0 :
		       ((uint64_t)1 << (sent & 63)) - 1;
		if (twice || any != full) {
			uint64_t bad = twice ? twice : any ^ full;

			fprintf(stderr, "bench_ack: message %" PRIu64 " %s\n",
				w * 64 + (uint64_t)__builtin_ctzll(bad),
				twice ? "received twice" : any & ~full ?
				"received but never sent" : "lost");
			return BENCH_EBADMSG;
		}
	}
	if (words > r->bits_used)
		r->bits_used = words;
	return 0;
}

static void ak_tround(struct ak_run *r, struct ak_tcase *c, unsigned round)
{
	struct shmq_attr qa = { .capacity = AK_CAP, .msg_size = AK_MSG };
	char qname[SHMQ_NAME_MAX + 1];
	struct shmq_queue_info qi;
	pid_t pids[AK_MAX_CONS + 1];
	uint64_t got = 0, t_end = 0;
	unsigned i, n = c->nc + 1;
	uint32_t v;
	int bad = 0, rc;

	bench_progress("ack: throughput %s 1:%u, round %u/%u", ak_tname(c),
		       c->nc, round + 1, r->rounds);
	memset(r->ctl, 0, sizeof(*r->ctl));
	for (i = 0; i < AK_MAX_CONS; i++)
		memset(r->bits + (size_t)i * AK_WORDS, 0,
		       r->bits_used * sizeof(uint64_t));
	r->bits_used = 0;
	ak_qname(qname, ++r->serial);
	rc = shmq_create(r->seg, qname, &qa);
	if (rc) {
		fprintf(stderr, "bench_ack: shmq_create(%s): %s\n", qname,
			bench_strerror(rc));
		ak_die(r);
	}
	bench_watchdog(30 + r->duration_ms / 1000, "throughput");
	fflush(NULL);
	for (i = 0; i < n; i++) {
		pids[i] = bench_fork();
		if (pids[i] == 0) {
			if (i == 0)
				ak_producer(r, c, qname);
			ak_consumer(r, c, qname, i - 1);
		}
		if (pids[i] < 0) {
			fprintf(stderr, "bench_ack: fork: %s\n",
				bench_strerror((int)pids[i]));
			ak_die(r);
		}
	}
	/* acquire: only a count (the children's setup is theirs). */
	while ((v = atomic_load_explicit(&r->ctl->ready,
					 memory_order_acquire)) < n)
		bench_futex_wait(&r->ctl->ready, v);
	r->ctl->t_start = bench_now_ns();
	/* release: the start line, and t_start with it. */
	atomic_store_explicit(&r->ctl->go, 1, memory_order_release);
	bench_futex_wake(&r->ctl->go, INT32_MAX);
	for (i = 0; i < n; i++)
		bad |= bench_reap(pids[i], i ? "consumer" : "producer") != 0;
	alarm(0);
	if (bad)
		ak_die(r);
	/* waitpid() ordered the children's writes. */
	for (i = 0; i < c->nc; i++) {
		got += r->ctl->got[i];
		if (r->ctl->t_end[i] > t_end)
			t_end = r->ctl->t_end[i];
	}
	if (got != r->ctl->sent) {
		fprintf(stderr, "bench_ack: %s 1:%u: sent %" PRIu64 ", received "
			"%" PRIu64 "\n", ak_tname(c), c->nc, r->ctl->sent, got);
		ak_die(r);
	}
	if (ak_check_bits(r, c->nc, r->ctl->sent))
		ak_die(r);
	rc = shmq_queue_stat(r->seg, qname, &qi);
	if (!rc && (qi.depth || qi.unacked || qi.nacked)) {
		fprintf(stderr, "bench_ack: %s 1:%u: after the run the queue "
			"holds %" PRIu64 ", owes %u, %" PRIu64 " given back\n",
			ak_tname(c), c->nc, qi.depth, qi.unacked, qi.nacked);
		ak_die(r);
	}
	shmq_unlink(r->seg, qname);
	c->rate[round] = (double)got * 1e9 /
			 (double)(t_end > r->ctl->t_start ?
				  t_end - r->ctl->t_start : 1);
	if (r->o->verbose) {
		char b[16];

		printf("  round %u %-9s 1:%u %9s msgs/s (%" PRIu64 " messages)"
		       "\n", round + 1, ak_tname(c), c->nc,
		       bench_fmt_rate(b, sizeof(b), c->rate[round]), got);
	}
}

/* ---- kill-to-redelivery -------------------------------------------------- */

/*
 * Takes the job as case @k does: shmq_fetch() (@tag) or shmq_acquire()
 * (@m); copies its bytes to @buf and its metadata to @meta.  Returns the
 * length or a negative error.
 */
static ssize_t ak_take(int k, shmq *q, char *buf, struct shmq_meta *meta,
		       uint64_t *tag, struct shmq_msg *m)
{
	ssize_t n;
	int rc;

	if (k == AK_FETCHED)
		return shmq_fetch(q, buf, AK_MSG, meta, tag, SHMQ_FOREVER);
	rc = shmq_acquire(q, m, SHMQ_FOREVER);
	if (rc)
		return rc;
	n = (ssize_t)m->len;
	if (m->len <= AK_MSG)
		memcpy(buf, m->data, m->len);
	rc = shmq_msg_meta(q, m, meta);
	return rc ? rc : n;
}

/* Job number @job: length, content, and what its meta says. */
static int ak_job_ok(const char *what, unsigned job, ssize_t n,
		     const char *buf, const struct shmq_meta *meta,
		     uint32_t deliveries)
{
	char tmpl[AK_MSG];
	uint64_t seq = 0;
	int redelivered = !!(meta->flags & SHMQ_META_REDELIVERED);

	bench_msg_init(tmpl, AK_MSG);
	if (n < 0) {
		fprintf(stderr, "bench_ack: %s, kill %u: %s\n", what, job,
			bench_strerror((int)n));
		return 0;
	}
	if (ak_check(buf, (size_t)n, tmpl, &seq) || seq != job) {
		fprintf(stderr, "bench_ack: %s, kill %u: got %zd bytes, job %"
			PRIu64 " (content %s)\n", what, job, n, seq,
			n == AK_MSG ? "checked" : "not checked");
		return 0;
	}
	if (meta->deliveries != deliveries ||
	    redelivered != (deliveries > 1)) {
		fprintf(stderr, "bench_ack: %s, kill %u: deliveries %u, %s "
			"(expected %u, %s)\n", what, job, meta->deliveries,
			redelivered ? "REDELIVERED" : "not REDELIVERED",
			deliveries, deliveries > 1 ? "REDELIVERED" :
			"not REDELIVERED");
		return 0;
	}
	return 1;
}

/* A victim: takes job @job, says so, and holds it until SIGKILL. */
static void ak_victim(struct ak_run *r, int k, unsigned job)
{
	struct ak_kill *kk = r->kk[k];
	char buf[AK_MSG] __attribute__((aligned(64)));
	struct shmq_meta meta;
	struct shmq_msg m;
	shmq_seg *seg;
	uint64_t tag;
	ssize_t n;
	shmq *q;
	int rc;

	rc = ak_child_open(r, r->kq_name[k], ak_cpu(r, 0), &seg, &q);
	if (rc) {
		fprintf(stderr, "bench_ack: %s victim: attach: %s\n",
			ak_kill_name[k], bench_strerror(rc));
		_exit(1);
	}
	memset(&meta, 0, sizeof(meta));
	n = ak_take(k, q, buf, &meta, &tag, &m);
	if (!ak_job_ok(k == AK_FETCHED ? "fetched victim" :
		       "acquired victim", job, n, buf, &meta, 1))
		_exit(1);
	kk->victim_seq = meta.seq;
	/* release: victim_seq, and the job is ours. */
	atomic_store_explicit(&kk->held, job, memory_order_release);
	bench_futex_wake(&kk->held, 1);
	for (;;)
		pause();
}

/*
 * The waiting worker of case @k, for the whole run: parked on the
 * shared page's futex between kills (outside the library, so that the
 * job goes to the victim), then in shmq_fetch()/shmq_acquire() until the
 * job comes back.
 */
static void ak_waiter(struct ak_run *r, int k)
{
	struct ak_kill *kk = r->kk[k];
	char buf[AK_MSG] __attribute__((aligned(64)));
	struct shmq_meta meta;
	struct shmq_msg m;
	unsigned last = 0, job;
	shmq_seg *seg;
	uint64_t tag = 0, t;
	ssize_t n;
	shmq *q;
	int rc;

	rc = ak_child_open(r, r->kq_name[k], ak_cpu(r, 1), &seg, &q);
	if (rc) {
		fprintf(stderr, "bench_ack: %s waiter: attach: %s\n",
			ak_kill_name[k], bench_strerror(rc));
		_exit(1);
	}
	for (;;) {
		/* acquire: pairs with the parent's release of go. */
		while ((job = atomic_load_explicit(&kk->go,
						    memory_order_acquire)) ==
		       last && !atomic_load_explicit(&kk->stop,
						     memory_order_acquire))
			bench_futex_wait(&kk->go, last);
		if (job == last)
			break;			/* stop */
		last = job;
		atomic_store_explicit(&kk->waiting, job,
				      memory_order_release);
		memset(&meta, 0, sizeof(meta));
		n = ak_take(k, q, buf, &meta, &tag, &m);
		t = bench_now_ns();
		kk->t_arrive = t;
		if (!ak_job_ok(k == AK_FETCHED ? "fetched, the waiter" :
			       "acquired, the waiter", job, n, buf, &meta,
			       2))
			_exit(1);
		if (meta.seq != kk->victim_seq) {
			fprintf(stderr, "bench_ack: %s, kill %u: meta.seq %"
				PRIu64 ", the victim saw %" PRIu64 "\n",
				ak_kill_name[k], job, meta.seq,
				kk->victim_seq);
			_exit(1);
		}
		rc = k == AK_FETCHED ? shmq_ack(q, tag) : shmq_release(q, &m);
		if (rc) {
			fprintf(stderr, "bench_ack: %s, kill %u: %s: %s\n",
				ak_kill_name[k], job, k == AK_FETCHED ?
				"shmq_ack" : "shmq_release",
				bench_strerror(rc));
			_exit(1);
		}
		/* release: t_arrive, and the job is done with. */
		atomic_store_explicit(&kk->done, job, memory_order_release);
		bench_futex_wake(&kk->done, 1);
	}
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(0);
}

/*
 * Waits (polling, 100 us apart) until *@word is @val, for at most
 * @limit_ns.  Returns 0, or -ETIMEDOUT.
 */
static int ak_await(_Atomic uint32_t *word, uint32_t val, uint64_t limit_ns)
{
	uint64_t end = bench_now_ns() + limit_ns;

	/* acquire: pairs with the child's release store. */
	while (atomic_load_explicit(word, memory_order_acquire) != val) {
		if (bench_now_ns() > end)
			return -ETIMEDOUT;
		ak_sleep_ns(100000);
	}
	return 0;
}

static void ak_kill_setup(struct ak_run *r)
{
	struct shmq_attr qa = { .capacity = 16, .msg_size = AK_MSG };
	int k, rc;

	for (k = 0; k < AK_NKILL; k++) {
		if (!r->kill_on[k])
			continue;
		snprintf(r->kq_name[k], sizeof(r->kq_name[k]), "ack.%s",
			 ak_kill_name[k]);
		r->kk[k] = bench_shared_alloc(sizeof(*r->kk[k]));
		r->lat[k] = hist_new();
		r->reap[k] = hist_new();
		if (!r->kk[k] || !r->lat[k] || !r->reap[k]) {
			fprintf(stderr, "bench_ack: out of memory\n");
			ak_die(r);
		}
		rc = shmq_create(r->seg, r->kq_name[k], &qa);
		if (!rc)
			rc = bench_shmq_open(r->seg, r->kq_name[k],
					     BENCH_NO_SPIN, &r->kq[k]);
		if (rc) {
			fprintf(stderr, "bench_ack: queue %s: %s\n",
				r->kq_name[k], bench_strerror(rc));
			ak_die(r);
		}
		fflush(NULL);
		r->waiter[k] = bench_fork();
		if (r->waiter[k] == 0)
			ak_waiter(r, k);
		if (r->waiter[k] < 0) {
			fprintf(stderr, "bench_ack: fork: %s\n",
				bench_strerror((int)r->waiter[k]));
			ak_die(r);
		}
	}
}

static void ak_kill_teardown(struct ak_run *r)
{
	int k, bad = 0;

	for (k = 0; k < AK_NKILL; k++) {
		if (!r->kill_on[k])
			continue;
		/* release: pairs with the waiter's acquire of stop. */
		atomic_store_explicit(&r->kk[k]->stop, 1, memory_order_release);
		bench_futex_wake(&r->kk[k]->go, INT32_MAX);
		bad |= bench_reap(r->waiter[k], "waiter") != 0;
		shmq_close(r->kq[k]);
		shmq_unlink(r->seg, r->kq_name[k]);
	}
	if (bad)
		ak_die(r);
}

/* One kill of case @k, job number @job (from 1). */
static void ak_kill_one(struct ak_run *r, int k, unsigned job)
{
	struct ak_kill *kk = r->kk[k];
	char msg[AK_MSG] __attribute__((aligned(64)));
	struct shmq_queue_info qi;
	struct shmq_owed ow[4];
	uint64_t t_kill, t_reap, end;
	unsigned d;
	pid_t pid;
	int rc, st, seen = 0;

	bench_progress("ack: kill %u/%u, %s", job, r->kills,
		       ak_kill_name[k]);
	bench_watchdog(30, ak_kill_name[k]);
	ak_stamp(msg, job);
	rc = shmq_send(r->kq[k], msg, AK_MSG, 0);
	if (rc) {
		fprintf(stderr, "bench_ack: %s, kill %u: send: %s\n",
			ak_kill_name[k], job, bench_strerror(rc));
		ak_die(r);
	}
	fflush(NULL);
	pid = bench_fork();
	if (pid == 0)
		ak_victim(r, k, job);
	if (pid < 0) {
		fprintf(stderr, "bench_ack: fork: %s\n",
			bench_strerror((int)pid));
		ak_die(r);
	}
	if (ak_await(&kk->held, job, 10000000000ull)) {
		fprintf(stderr, "bench_ack: %s, kill %u: the victim did not "
			"take the job within 10 s\n", ak_kill_name[k], job);
		ak_die(r);
	}
	/* release: pairs with the waiter's acquire of go. */
	atomic_store_explicit(&kk->go, job, memory_order_release);
	bench_futex_wake(&kk->go, 1);
	if (ak_await(&kk->waiting, job, 10000000000ull)) {
		fprintf(stderr, "bench_ack: %s, kill %u: the waiter did not "
			"start waiting\n", ak_kill_name[k], job);
		ak_die(r);
	}
	/* Blocked: announced on the queue and asleep in the kernel. */
	end = bench_now_ns() + AK_BLOCKED_NS;
	while (bench_now_ns() < end) {
		if (!shmq_queue_stat(r->seg, r->kq_name[k], &qi) &&
		    qi.recv_waiters > 0 && ak_asleep(r->waiter[k])) {
			seen = 1;
			break;
		}
		ak_sleep_ns(100000);
	}
	if (!seen)
		r->unseen[k]++;
	ak_sleep_ns(1000000 + ak_rand(r) % ((uint64_t)AK_PHASE_MS * 1000000));

	ak_forget_child(pid);
	t_kill = bench_now_ns();
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	t_reap = bench_now_ns();
	if (ak_await(&kk->done, job, AK_ARRIVE_NS)) {
		fprintf(stderr, "bench_ack: %s, kill %u: the job did not reach "
			"the waiting worker within %.0f s of the kill\n",
			ak_kill_name[k], job, AK_ARRIVE_NS / 1e9);
		ak_die(r);
	}
	hist_add(r->lat[k], kk->t_arrive > t_kill ? kk->t_arrive - t_kill : 0);
	hist_add(r->reap[k], t_reap - t_kill);
	if (r->o->verbose)
		printf("  kill %u %-8s %8.3f ms (reaped %.3f ms)%s\n", job,
		       ak_kill_name[k], (double)(kk->t_arrive - t_kill) / 1e6,
		       (double)(t_reap - t_kill) / 1e6,
		       seen ? "" : " waiter not seen asleep");
	/* Nothing left: the queue empty, nobody owing it anything. */
	rc = shmq_queue_stat(r->seg, r->kq_name[k], &qi);
	if (rc || qi.depth || qi.unacked) {
		fprintf(stderr, "bench_ack: %s, kill %u: after the kill the "
			"queue %s: depth %" PRIu64 ", unacked %u\n",
			ak_kill_name[k], job, rc ? bench_strerror(rc) : "ok",
			qi.depth, qi.unacked);
		ak_die(r);
	}
	/*
	 * An entry left as zeros is not a process: the merged 0.4 core's
	 * shmq_queue_owed() returns the queue's directory index, without
	 * filling anything, for a queue past the directory's first entry.
	 */
	memset(ow, 0, sizeof(ow));
	rc = shmq_queue_owed(r->seg, r->kq_name[k], ow, 4);
	for (d = 0; rc > 0 && d < (unsigned)rc && d < 4; d++)
		if (ow[d].pid)
			break;
	if (rc < 0 || (rc > 0 && d < (unsigned)rc && d < 4)) {
		fprintf(stderr, "bench_ack: %s, kill %u: %s still owes the "
			"queue (pid %u: %u fetched, %u acquired)\n",
			ak_kill_name[k], job, rc < 0 ? bench_strerror(rc) :
			"a process", rc > 0 ? ow[d].pid : 0,
			rc > 0 ? ow[d].fetched : 0, rc > 0 ? ow[d].acquired : 0);
		ak_die(r);
	}
	alarm(0);
}

/* ---- report -------------------------------------------------------------- */

static double ak_med(const double *v, unsigned n)
{
	double t[AK_MAX_ROUNDS];

	memcpy(t, v, n * sizeof(*v));
	return bench_median(t, n);
}



static double ak_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* The recv case of fetch+ack case @i's shape. */
static int ak_base(const struct ak_run *r, unsigned i)
{
	unsigned j;

	for (j = 0; j < r->ntcases; j++)
		if (r->tcases[j].how == AK_RECV &&
		    r->tcases[j].nc == r->tcases[i].nc)
			return (int)j;
	return -1;
}

static void ak_report_tp(struct ak_run *r, const char *cpus, FILE *csv)
{
	double med[4], ratio[4], paired[4], worst = 1e9;
	unsigned i, n = r->rounds;
	char b1[16], b2[16], b3[16], line[256];
	size_t len = 0;

	for (i = 0; i < r->ntcases; i++)
		med[i] = ak_med(r->tcases[i].rate, n);
	/* The same ratio round by round (the two ran back to back). */
	for (i = 0; i < r->ntcases; i++) {
		double v[AK_MAX_ROUNDS];
		int b = ak_base(r, i);
		unsigned j;

		for (j = 0; j < n; j++)
			v[j] = b >= 0 ? r->tcases[i].rate[j] /
					r->tcases[b].rate[j] : 1;
		paired[i] = bench_median(v, n);
	}
	printf("\nthroughput: 64-byte messages, 1 producer process -> C "
	       "consumer processes (median of %u interleaved rounds of %u ms; "
	       "CPUs %s)\n", n, r->duration_ms, cpus);
	printf("%-10s %9s %9s %9s %9s %8s %7s %7s\n", "case", "consumers",
	       "msgs/s", "min", "max", "ns/msg", "x recv", "paired");
	for (i = 0; i < r->ntcases; i++) {
		const struct ak_tcase *c = &r->tcases[i];
		int b = ak_base(r, i);

		ratio[i] = b >= 0 ? med[i] / med[b] : 1;
		printf("%-10s %9u %9s %9s %9s %8.1f %7.2f %7.2f\n",
		       ak_tname(c), c->nc,
		       bench_fmt_rate(b1, sizeof(b1), med[i]),
		       bench_fmt_rate(b2, sizeof(b2), bench_min(c->rate, n)),
		       bench_fmt_rate(b3, sizeof(b3), bench_max(c->rate, n)),
		       1e9 / med[i], ratio[i], paired[i]);
		if (csv)
			fprintf(csv, "throughput,%s,%u,%.0f,%.4f,,,,,\n",
				ak_tname(c), c->nc, med[i], ratio[i]);
	}
	printf("(x recv: median / recv's median at the same number of "
	       "consumers, higher is faster; paired: the median over rounds "
	       "of that ratio within each round; every message checked: "
	       "content, order per consumer, none lost, none twice)\n");
	for (i = 0; i < r->ntcases; i++) {
		const struct ak_tcase *c = &r->tcases[i];
		int b = ak_base(r, i);

		if (c->how != AK_FETCH || b < 0)
			continue;
		if (ratio[i] < worst)
			worst = ratio[i];
		len += (size_t)snprintf(line + len, sizeof(line) - len,
					"%s%.2fx at 1:%u (%s vs %s msgs/s)",
					len ? ", " : "", ratio[i], c->nc,
					bench_fmt_rate(b1, sizeof(b1), med[i]),
					bench_fmt_rate(b2, sizeof(b2),
						       med[b]));
	}
	if (len)
		printf("GOAL ack-throughput %s: fetch+ack / recv %s (goal >= "
		       "0.5x at 1:1 and 1:3; 64 B)\n",
		       worst >= 0.5 ? "PASS" : "SHORT", line);
	for (i = 0; i < r->ntcases; i++) {
		const struct ak_tcase *c = &r->tcases[i];

		printf("SUMMARY ack throughput %s cpus=%s consumers=%u "
		       "msgs_per_s=%.0f min=%.0f max=%.0f ratio_recv=%.3f "
		       "paired_ratio=%.3f", ak_tname(c), cpus, c->nc, med[i],
		       bench_min(c->rate, n), bench_max(c->rate, n), ratio[i],
		       paired[i]);
		if (c->how == AK_FETCH)
			printf(" goal=0.5 met=%s", ratio[i] >= 0.5 ?
			       "yes" : "no");
		printf("\n");
	}
}

static void ak_report_kill(struct ak_run *r, FILE *csv)
{
	int k;

	printf("\nkill-to-redelivery: %u kills per case, the cases "
	       "alternating; from the parent's clock just before "
	       "kill(SIGKILL) of the worker holding the job to the waiting "
	       "worker's clock when its call returned (ms)\n", r->kills);
	printf("%-9s %6s %8s %8s %8s %8s %8s %8s %9s %7s\n", "case", "kills",
	       "median", "mean", "p90", "p99", "max", "min", "reaped", "unseen");
	for (k = 0; k < AK_NKILL; k++) {
		const struct hist *h = r->lat[k];

		if (!r->kill_on[k])
			continue;
		printf("%-9s %6" PRIu64 " %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f "
		       "%9.3f %7u\n", ak_kill_name[k], h->count,
		       ak_ms(hist_pct(h, 50)),
		       h->count ? (double)h->sum / (double)h->count / 1e6 : 0,
		       ak_ms(hist_pct(h, 90)), ak_ms(hist_pct(h, 99)),
		       ak_ms(h->max), ak_ms(h->min),
		       ak_ms(hist_pct(r->reap[k], 50)), r->unseen[k]);
		if (csv)
			fprintf(csv, "redelivery,%s,,,,%" PRIu64 ",%.3f,%.3f,"
				"%.3f,%.3f\n", ak_kill_name[k], h->count,
				ak_ms(hist_pct(h, 50)), ak_ms(hist_pct(h, 90)),
				ak_ms(hist_pct(h, 99)), ak_ms(h->max));
	}
	printf("(fetched: the victim holds the job from shmq_fetch(), the "
	       "waiter waits in shmq_fetch(); acquired: shmq_acquire() both; "
	       "each kill falls 1-%u ms after the waiter was seen asleep; "
	       "reaped: median time from kill() to waitpid() returning in the "
	       "parent, the kernel's part; unseen: kills where the waiter was "
	       "not seen announced and asleep within %.0f s, killed anyway)\n",
	       AK_PHASE_MS + 1, AK_BLOCKED_NS / 1e9);
	printf("for comparison (not run here):\n"
	       "  RabbitMQ: a consumer's unacknowledged deliveries are "
	       "requeued when its channel or connection closes; a SIGKILLed "
	       "consumer's TCP connection is closed by its kernel, so the "
	       "requeue is immediate (a consumer that hangs or is cut off: "
	       "after the heartbeat timeout, 60 s by default)\n"
	       "  NATS JetStream: a message not acknowledged within the "
	       "consumer's AckWait is redelivered; the default AckWait is "
	       "30 s (a dead worker is noticed by nothing sooner)\n");
	for (k = 0; k < AK_NKILL; k++) {
		const struct hist *h = r->lat[k];
		double p99 = ak_ms(hist_pct(h, 99));

		if (!r->kill_on[k])
			continue;
		printf("GOAL redelivery-%s %s: p99 %.2f ms, median %.2f ms, "
		       "max %.2f ms over %" PRIu64 " kills (goal p99 <= 100 ms)"
		       "\n", ak_kill_name[k], p99 <= 100 ? "PASS" : "SHORT",
		       p99, ak_ms(hist_pct(h, 50)), ak_ms(h->max), h->count);
	}
	for (k = 0; k < AK_NKILL; k++) {
		const struct hist *h = r->lat[k];

		if (!r->kill_on[k])
			continue;
		printf("SUMMARY ack redelivery %s kills=%" PRIu64 " median_ms="
		       "%.3f mean_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
		       "min_ms=%.3f reaped_median_ms=%.3f unseen=%u goal=100 "
		       "met=%s\n", ak_kill_name[k], h->count,
		       ak_ms(hist_pct(h, 50)),
		       h->count ? (double)h->sum / (double)h->count / 1e6 : 0,
		       ak_ms(hist_pct(h, 90)), ak_ms(hist_pct(h, 99)),
		       ak_ms(h->max), ak_ms(h->min),
		       ak_ms(hist_pct(r->reap[k], 50)), r->unseen[k],
		       ak_ms(hist_pct(h, 99)) <= 100 ? "yes" : "no");
	}
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct ak_run r;
	char seg_name[32], cpus[32], load[48];
	unsigned i, k, round, job;
	int tp_on;
	FILE *csv;

	memset(&r, 0, sizeof(r));
	if (ak_take_kills(&argc, argv, &r.kills)) {
		fprintf(stderr, "bench_ack: bad --kills\n%s", ak_help);
		return 2;
	}
	bench_parse_opts(argc, argv, &o, ak_help);
	r.o = &o;
	r.seg_name = seg_name;
	if (!r.kills)
		r.kills = o.smoke ? 5 : o.quick ? 50 : 200;
	r.rounds = o.rounds ? o.rounds : o.smoke ? 1 : o.quick ? 3 : 7;
	if (r.rounds > AK_MAX_ROUNDS)
		r.rounds = AK_MAX_ROUNDS;
	r.duration_ms = o.duration_ms ? o.duration_ms : o.smoke ? 20 :
			o.quick ? 200 : 500;
	tp_on = bench_selected(&o, "throughput");
	for (k = 0; k < AK_NKILL; k++)
		r.kill_on[k] = bench_selected(&o, ak_kill_name[k]);
	/* recv before fetch+ack at each shape; the rounds rotate. */
	r.tcases[0] = (struct ak_tcase){ .how = AK_RECV, .nc = 1 };
	r.tcases[1] = (struct ak_tcase){ .how = AK_FETCH, .nc = 1 };
	r.tcases[2] = (struct ak_tcase){ .how = AK_RECV, .nc = 3 };
	r.tcases[3] = (struct ak_tcase){ .how = AK_FETCH, .nc = 3 };
	r.ntcases = tp_on ? 4 : 0;
	r.rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ bench_now_ns();
	if (!r.rng)
		r.rng = 1;

	/* The CPUs we may use, in order; --cpus puts its two first. */
	if (bench_cpu_list("bench_ack", o.cpu_a, o.cpu_b, r.cpus, &r.ncpu, cpus,
			   sizeof(cpus)))
		return 2;

	if (bench_seg_begin("bench_ack", seg_name, sizeof(seg_name),
			    (size_t)16 << 20, &r.seg))
		return 1;
	r.ctl = bench_shared_alloc(sizeof(*r.ctl));
	r.bits = tp_on ? bench_shared_alloc(AK_MAX_CONS * AK_WORDS *
					    sizeof(uint64_t)) : NULL;
	if (!r.ctl || (tp_on && !r.bits)) {
		fprintf(stderr, "bench_ack: out of memory\n");
		ak_die(&r);
	}
	/* Fault the bitmaps in now, not during the first timed run. */
	if (r.bits)
		memset(r.bits, 0, AK_MAX_CONS * AK_WORDS * sizeof(uint64_t));
	ak_loadavg(load, sizeof(load));
	printf("bench_ack: acknowledged delivery: shmq_fetch + shmq_ack against "
	       "shmq_recv, and SIGKILL-to-redelivery (scratch names: bench.%d)"
	       "\n", (int)getpid());
	printf("CPUs used round-robin: %d of them%s; load average at start: "
	       "%s\n", r.ncpu, r.ncpu < 2 ? " (unpinned)" : "", load);
	fflush(stdout);

	csv = bench_csv_open(&o, "ack", "part,case,consumers,msgs_per_s,"
			     "ratio_recv,kills,median_ms,p90_ms,p99_ms,max_ms");
	for (round = 0; round < r.rounds && r.ntcases; round++)
		for (i = 0; i < r.ntcases; i++)
			ak_tround(&r, &r.tcases[(i + round) % r.ntcases],
				  round);
	bench_sig.what = NULL;
	bench_progress_done();
	if (r.ntcases) {
		ak_report_tp(&r, cpus, csv);
		fflush(stdout);
	}

	if (r.kill_on[AK_FETCHED] || r.kill_on[AK_ACQUIRED]) {
		ak_kill_setup(&r);
		for (job = 1; job <= r.kills; job++)
			for (k = 0; k < AK_NKILL; k++) {
				/* Alternate which case goes first. */
				unsigned kc = (k + job) % AK_NKILL;

				if (r.kill_on[kc])
					ak_kill_one(&r, (int)kc, job);
			}
		ak_kill_teardown(&r);
		bench_sig.what = NULL;
		bench_progress_done();
		ak_report_kill(&r, csv);
	}
	ak_loadavg(load, sizeof(load));
	printf("load average at the end: %s\n", load);
	fflush(stdout);
	if (csv)
		fclose(csv);
	for (k = 0; k < AK_NKILL; k++) {
		bench_shared_free(r.kk[k], sizeof(*r.kk[k]));
		free(r.lat[k]);
		free(r.reap[k]);
	}
	bench_shared_free(r.bits, AK_MAX_CONS * AK_WORDS * sizeof(uint64_t));
	bench_shared_free(r.ctl, sizeof(*r.ctl));
	bench_seg_end("bench_ack", seg_name, r.seg);
	return 0;
}
