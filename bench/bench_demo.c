// SPDX-License-Identifier: MIT
/*
 * bench_demo - what `make demo` shows a new user.
 *
 * 1. Creates a segment and a queue.
 * 2. Forks a producer and a consumer process; each attaches to the segment
 *    by name and opens the queue.  The producer sends a few million 64-byte
 *    messages numbered 0, 1, 2...; the consumer checks every number and
 *    sends a report back to the parent over a second queue.
 * 3. Forks an echo process and times round trips (parent -> child ->
 *    parent) with blocking calls.
 * 4. Removes everything it created.
 */
#include "common.h"

#define DEMO_CAPACITY 1024
#define DEMO_SEG_SIZE ((size_t)16 << 20)
#define DEMO_Q "data"
#define DEMO_Q_REPORT "report"
#define DEMO_Q_PING "ping"
#define DEMO_Q_PONG "pong"

/* What the consumer tells the parent when it is done. */
struct demo_report {
	uint64_t received;	/* messages that passed the check */
	uint64_t elapsed_ns;	/* first message to last */
	int32_t error;		/* 0, or the failing call's error */
	uint32_t pad;
};

struct demo {
	const struct bench_opts *o;
	char seg_name[32];
	shmq_seg *seg;
	size_t size;
	uint64_t messages, round_trips;
	int cpu_a, cpu_b;
};

static void demo_die(struct demo *d)
{
	bench_kill_all();
	shmq_seg_close(d->seg);
	shmq_seg_unlink(d->seg_name);
	exit(1);
}

/* In a child: its own attachment and one queue (never the parent's). */
static void demo_child_open(struct demo *d, const char *who, int cpu,
			    shmq_seg **seg, const char *qname, shmq **q)
{
	int rc;

	bench_pin(cpu);
	rc = shmq_seg_open(d->seg_name, seg);
	if (!rc)
		rc = shmq_open(*seg, qname, q);
	if (!rc && d->o->spin_ns >= 0)
		rc = shmq_set_spin(*q, d->o->spin_ns);
	if (rc) {
		fprintf(stderr, "demo %s: opening queue %s: %s\n", who, qname,
			shmq_strerror(rc));
		_exit(1);
	}
}

static void demo_producer(struct demo *d)
{
	shmq_seg *seg;
	shmq *q;
	char *msg;
	uint64_t i;
	int rc;

	demo_child_open(d, "producer", d->cpu_a, &seg, DEMO_Q, &q);
	msg = malloc(d->size);
	if (!msg)
		_exit(1);
	bench_msg_init(msg, d->size);
	for (i = 0; i < d->messages; i++) {
		bench_msg_stamp(msg, d->size, i);
		/* Blocks (spin, then futex) only while the queue is full. */
		rc = shmq_send(q, msg, d->size, SHMQ_FOREVER);
		if (rc) {
			fprintf(stderr, "demo producer: shmq_send: %s\n",
				shmq_strerror(rc));
			_exit(1);
		}
	}
	free(msg);
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(0);
}

static void demo_consumer(struct demo *d)
{
	struct demo_report rep = { 0 };
	uint64_t t0 = 0, got = 0;
	shmq_seg *seg;
	shmq *q, *report;
	ssize_t n;
	char *msg;
	int rc;

	demo_child_open(d, "consumer", d->cpu_b, &seg, DEMO_Q, &q);
	rc = shmq_open(seg, DEMO_Q_REPORT, &report);
	msg = malloc(d->size);
	if (rc || !msg)
		_exit(1);
	while (rep.received < d->messages) {
		n = shmq_recv(q, msg, d->size, SHMQ_FOREVER);
		if (n < 0) {
			rep.error = (int32_t)n;
			break;
		}
		if (!rep.received)
			t0 = bench_now_ns();
		if ((size_t)n != d->size ||
		    bench_msg_check(msg, d->size, rep.received, &got)) {
			fprintf(stderr, "demo consumer: expected message "
				"%" PRIu64 ", got %" PRIu64 " (%zd bytes)\n",
				rep.received, got, n);
			rep.error = BENCH_EBADMSG;
			break;
		}
		rep.received++;
	}
	rep.elapsed_ns = bench_now_ns() - t0;
	rc = shmq_send(report, &rep, sizeof(rep), SHMQ_FOREVER);
	free(msg);
	shmq_close(report);
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(rc || rep.error ? 2 : 0);
}

static void demo_echo(struct demo *d, uint64_t n)
{
	shmq_seg *seg;
	shmq *ping, *pong;
	char *msg;
	uint64_t i;
	ssize_t len;
	int rc;

	demo_child_open(d, "echo", d->cpu_b, &seg, DEMO_Q_PING, &ping);
	rc = shmq_open(seg, DEMO_Q_PONG, &pong);
	if (!rc && d->o->spin_ns >= 0)
		rc = shmq_set_spin(pong, d->o->spin_ns);
	msg = malloc(d->size);
	if (rc || !msg)
		_exit(1);
	for (i = 0; i < n; i++) {
		len = shmq_recv(ping, msg, d->size, SHMQ_FOREVER);
		if (len < 0) {
			fprintf(stderr, "demo echo: shmq_recv: %s\n",
				shmq_strerror((int)len));
			_exit(1);
		}
		rc = shmq_send(pong, msg, (size_t)len, SHMQ_FOREVER);
		if (rc) {
			fprintf(stderr, "demo echo: shmq_send: %s\n",
				shmq_strerror(rc));
			_exit(1);
		}
	}
	free(msg);
	shmq_close(ping);
	shmq_close(pong);
	shmq_seg_close(seg);
	_exit(0);
}

/* Creates a queue (@flags: shmq_attr.flags) and opens it if @q. */
static void demo_queue(struct demo *d, const char *name, uint32_t msg_size,
		       uint32_t flags, shmq **q)
{
	struct shmq_attr attr = { .capacity = DEMO_CAPACITY,
				  .msg_size = msg_size, .flags = flags };
	int rc;

	rc = shmq_create(d->seg, name, &attr);
	if (!rc && q)
		rc = shmq_open(d->seg, name, q);
	if (!rc && q && d->o->spin_ns >= 0)
		rc = shmq_set_spin(*q, d->o->spin_ns);
	if (rc) {
		fprintf(stderr, "demo: creating queue %s: %s\n", name,
			shmq_strerror(rc));
		demo_die(d);
	}
}

/* One stream through queue DEMO_Q, created with @flags. */
static void demo_stream_once(struct demo *d, uint32_t flags)
{
	struct demo_report rep;
	shmq *report;
	pid_t prod, cons;
	ssize_t n;
	char b[32];

	demo_queue(d, DEMO_Q, (uint32_t)d->size, flags, NULL);
	demo_queue(d, DEMO_Q_REPORT, sizeof(rep), 0, &report);

	bench_watchdog(60 + (unsigned)(d->messages / 50000), "streaming");
	prod = bench_fork();
	if (prod == 0)
		demo_producer(d);
	cons = prod > 0 ? bench_fork() : prod;
	if (cons == 0)
		demo_consumer(d);
	if (prod < 0 || cons < 0) {
		fprintf(stderr, "demo: fork failed\n");
		demo_die(d);
	}
	/* The consumer's report arrives on a queue too. */
	n = shmq_recv(report, &rep, sizeof(rep), SHMQ_FOREVER);
	if (bench_reap(prod, "producer") | bench_reap(cons, "consumer") ||
	    n != (ssize_t)sizeof(rep)) {
		fprintf(stderr, "demo: streaming failed\n");
		demo_die(d);
	}
	alarm(0);
	shmq_close(report);
	shmq_unlink(d->seg, DEMO_Q);
	shmq_unlink(d->seg, DEMO_Q_REPORT);
	if (rep.error || rep.received != d->messages) {
		fprintf(stderr, "demo: the consumer got %" PRIu64 " of %" PRIu64
			" messages: %s\n", rep.received, d->messages,
			bench_strerror(rep.error));
		demo_die(d);
	}
	printf("   The consumer got all %" PRIu64 " in order: none lost, "
	       "none duplicated.\n", rep.received);
	printf("   => %s messages/s (%.0f ns per message, %.2f s)\n",
	       bench_fmt_rate(b, sizeof(b),
			      (double)rep.received * 1e9 /
			      (double)rep.elapsed_ns),
	       (double)rep.elapsed_ns / (double)rep.received,
	       (double)rep.elapsed_ns / 1e9);
}

static void demo_stream(struct demo *d)
{
	printf("2. Streaming: a producer process sends %" PRIu64 " messages "
	       "of %zu bytes, numbered\n   0, 1, 2...; a consumer process "
	       "receives them and checks every number.\n", d->messages,
	       d->size);
	fflush(stdout);
	demo_stream_once(d, 0);
	printf("   Again, through a queue created with SHMQ_SPSC (one sender "
	       "and one receiver\n   at a time, no atomic instruction or "
	       "fence per message):\n");
	fflush(stdout);
	demo_stream_once(d, SHMQ_SPSC);
	printf("\n");
}

static void demo_pingpong(struct demo *d)
{
	uint64_t warm = d->round_trips / 10, i, t0, t1;
	shmq *ping, *pong;
	struct hist *h;
	char *msg;
	pid_t pid;
	ssize_t n;
	int rc;

	h = hist_new();
	msg = calloc(1, d->size);
	if (!h || !msg) {
		fprintf(stderr, "demo: out of memory\n");
		demo_die(d);
	}
	demo_queue(d, DEMO_Q_PING, (uint32_t)d->size, 0, &ping);
	demo_queue(d, DEMO_Q_PONG, (uint32_t)d->size, 0, &pong);
	printf("3. Ping-pong: the parent sends a message on queue \"%s\", "
	       "an echo process\n   sends it back on \"%s\"; %" PRIu64
	       " round trips are timed one by one.\n", DEMO_Q_PING,
	       DEMO_Q_PONG, d->round_trips);
	fflush(stdout);

	bench_watchdog(60 + (unsigned)(d->round_trips / 1000), "ping-pong");
	pid = bench_fork();
	if (pid == 0)
		demo_echo(d, warm + d->round_trips);
	if (pid < 0) {
		fprintf(stderr, "demo: fork failed\n");
		demo_die(d);
	}
	bench_pin(d->cpu_a);
	for (i = 0; i < warm + d->round_trips; i++) {
		bench_msg_stamp(msg, d->size, i);
		t0 = bench_now_ns();
		rc = shmq_send(ping, msg, d->size, SHMQ_FOREVER);
		n = rc ? rc : shmq_recv(pong, msg, d->size, SHMQ_FOREVER);
		t1 = bench_now_ns();
		if (n < 0 || (size_t)n != d->size ||
		    bench_msg_check(msg, d->size, i, NULL)) {
			fprintf(stderr, "demo: round trip %" PRIu64 ": %s\n", i,
				n < 0 ? shmq_strerror((int)n) :
				"wrong message back");
			demo_die(d);
		}
		if (i >= warm)
			hist_add(h, t1 - t0);
	}
	if (bench_reap(pid, "echo"))
		demo_die(d);
	alarm(0);
	shmq_close(ping);
	shmq_close(pong);
	shmq_unlink(d->seg, DEMO_Q_PING);
	shmq_unlink(d->seg, DEMO_Q_PONG);
	printf("   round trip: median %.2f us, p99 %.2f us, p99.9 %.2f us, "
	       "max %.1f us\n\n", hist_pct(h, 50) / 1e3, hist_pct(h, 99) / 1e3,
	       hist_pct(h, 99.9) / 1e3, h->max / 1e3);
	free(msg);
	free(h);
}

static const char demo_help[] =
	"usage: bench_demo [options]\n"
	"\n"
	"A producer and a consumer process exchange messages through a shmq\n"
	"queue; then a ping-pong measures round trips.  Removes everything it\n"
	"created.\n"
	"\n"
	"options:\n"
	"  --iters N        messages to stream (default 5000000; --quick\n"
	"                   500000); the ping-pong does N / 50 round trips\n"
	BENCH_COMMON_HELP;

int main(int argc, char **argv)
{
	struct shmq_seg_attr sattr = { .size = DEMO_SEG_SIZE };
	struct bench_opts o;
	struct demo d;
	int rc, ncpu;

	bench_parse_opts(argc, argv, &o, demo_help);
	memset(&d, 0, sizeof(d));
	d.o = &o;
	d.size = o.size;
	d.messages = o.iters ? o.iters : o.quick ? 500000 : 5000000;
	d.round_trips = d.messages / 50 ? d.messages / 50 : 1;
	ncpu = bench_pick_cpus(&o, &d.cpu_a, &d.cpu_b);
	if (ncpu < 0) {
		fprintf(stderr, "bench_demo: --cpus: not two distinct CPUs of "
			"our affinity mask\n");
		return 2;
	}
	if (d.size > DEMO_SEG_SIZE / (4 * DEMO_CAPACITY))
		sattr.size = d.size * 4 * DEMO_CAPACITY + DEMO_SEG_SIZE;

	snprintf(d.seg_name, sizeof(d.seg_name), "demo.%d", (int)getpid());
	bench_setup_signals(d.seg_name);
	printf("shmq %s demo: processes talking through a shared-memory "
	       "message queue\n\n", shmq_version());
	rc = shmq_seg_create(d.seg_name, &sattr, &d.seg);
	if (rc) {
		fprintf(stderr, "demo: shmq_seg_create(%s): %s\n", d.seg_name,
			shmq_strerror(rc));
		return 1;
	}
	printf("1. Created segment \"%s\" (%zu MiB, /dev/shm/shmq.%s) and "
	       "in it queue \"%s\"\n   (%u slots of %zu bytes).  Other "
	       "processes attach to it by name.\n", d.seg_name,
	       sattr.size >> 20, d.seg_name, DEMO_Q, DEMO_CAPACITY, d.size);
	if (ncpu < 2)
		printf("   Only one CPU here: the processes take turns on it, "
		       "so expect slow figures.\n");
	else
		printf("   The producer (and later the parent) runs on CPU %d, "
		       "the consumer (and later\n   the echo process) on CPU "
		       "%d.\n", d.cpu_a, d.cpu_b);
	printf("\n");

	demo_stream(&d);
	demo_pingpong(&d);

	shmq_seg_close(d.seg);
	rc = shmq_seg_unlink(d.seg_name);
	if (rc) {
		fprintf(stderr, "demo: shmq_seg_unlink(%s): %s\n", d.seg_name,
			shmq_strerror(rc));
		return 1;
	}
	printf("4. Removed the queues and the segment; nothing is left in "
	       "/dev/shm.\n");
	printf("\nThe waiting side spun briefly, then slept on a futex in the "
	       "segment; the other\nside woke it only when someone was "
	       "asleep.  See README.md for the API.\n");
	return 0;
}
