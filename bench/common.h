/* SPDX-License-Identifier: MIT */
/*
 * common.h - helpers shared by the benchmarks (header only).
 *
 *   - a log-bucketed latency histogram (HdrHistogram-style, no sample cap):
 *     exact to the nanosecond below 1024 ns, 128 sub-buckets per power of
 *     two above (relative error below 0.8%);
 *   - the clock (CLOCK_MONOTONIC through the vDSO);
 *   - CPU choice and pinning (two CPUs taken from sched_getaffinity());
 *   - shared anonymous memory for the baselines (mapped before fork());
 *   - process bookkeeping: every child is recorded by pid, so that any exit
 *     path, SIGINT and a watchdog included, kills it and removes the
 *     benchmark's segment (and the ZeroMQ socket file of the case running);
 *   - command-line options common to all benchmarks, the run's sizes and
 *     its scratch segment.
 *
 * The compared mechanisms' plumbing is in mech.h.
 *
 * The only global state is what the signal handlers need (struct bench_sig).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

/* ---- small things -------------------------------------------------------- */

/* Hot words sit 128 bytes apart: the adjacent-line prefetcher pairs lines. */
#define BENCH_ALIGN 128
#define BENCH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A callback's parameter that this implementation does not need. */
#define BENCH_UNUSED __attribute__((unused))

/* One polite spin: PAUSE on x86, YIELD on arm64. */
static inline void bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The clock's step (smallest change seen) and the cost of one read, in ns.
 * Every timed sample includes about one read; on some VMs the TSC, and so
 * CLOCK_MONOTONIC, moves in steps of 10 ns or more.
 */
static inline void bench_clock_info(uint64_t *step, double *cost)
{
	uint64_t t0, t1, t, d, best = UINT64_MAX;
	unsigned i;

	for (i = 0; i < 1000; i++) {
		t0 = bench_now_ns();
		while ((t1 = bench_now_ns()) == t0)
			;
		d = t1 - t0;
		if (d < best)
			best = d;
	}
	t0 = bench_now_ns();
	for (i = 0, t = t0; i < 100000; i++)
		t = bench_now_ns();
	*step = best;
	*cost = (double)(t - t0) / 100000;
}

/* Shared (non-private) futex: the two sides are different processes. */
static inline int bench_futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	if (syscall(SYS_futex, word, FUTEX_WAIT, val, NULL, NULL, 0) < 0)
		return -errno;
	return 0;
}

static inline int bench_futex_wake(_Atomic uint32_t *word, int n)
{
	if (syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0) < 0)
		return -errno;
	return 0;
}

/* Anonymous shared memory, mapped before fork() (page aligned). */
static inline void *bench_shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline void bench_shared_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

/* Read or write exactly @len bytes (pipes may split large transfers). */
static inline int bench_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static inline int bench_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Messages carry their sequence number in their first and last 8 bytes
 * (sizes >= 16), so a torn or stale copy shows as well as a gap.
 */
#define BENCH_MIN_SIZE 8

static inline void bench_msg_init(void *msg, size_t size)
{
	unsigned char *p = msg;
	size_t i;

	for (i = 0; i < size; i++)
		p[i] = (unsigned char)(0xa5 ^ i);
}

static inline void bench_msg_stamp(void *msg, size_t size, uint64_t seq)
{
	memcpy(msg, &seq, sizeof(seq));
	if (size >= 2 * sizeof(seq))
		memcpy((char *)msg + size - sizeof(seq), &seq, sizeof(seq));
}

/* What the benchmarks return when a message fails its check. */
#define BENCH_EBADMSG (-EBADMSG)

/* shmq_strerror(), plus our own check failure. */
static inline const char *bench_strerror(int err)
{
	if (err == BENCH_EBADMSG)
		return "message check failed (sequence, length or content)";
	return shmq_strerror(err);
}

/* Returns 0 when @msg carries @seq at both ends, else BENCH_EBADMSG. */
static inline int bench_msg_check(const void *msg, size_t size, uint64_t seq,
				  uint64_t *got)
{
	uint64_t a, b = seq;

	memcpy(&a, msg, sizeof(a));
	if (size >= 2 * sizeof(seq))
		memcpy(&b, (const char *)msg + size - sizeof(seq), sizeof(b));
	if (a == seq && b == seq)
		return 0;
	if (got)
		*got = a != seq ? a : b;
	return BENCH_EBADMSG;
}

/* ---- histogram ----------------------------------------------------------- */

/*
 * Values below 2^HIST_LIN_BITS ns have a bucket each.  A value v above has
 * exponent e = floor(log2 v) and goes to sub-bucket (v >> (e - SUB_BITS))
 * masked to SUB_BITS bits: 2^SUB_BITS buckets per power of two, each
 * 2^(e - SUB_BITS) wide, so the relative error is below 2^-SUB_BITS.
 */
#define HIST_LIN_BITS 10
#define HIST_SUB_BITS 7
#define HIST_LIN (1u << HIST_LIN_BITS)
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_LIN + (64 - HIST_LIN_BITS) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	uint64_t sum;
	uint64_t b[HIST_BUCKETS];
};

static inline struct hist *hist_new(void)
{
	struct hist *h = calloc(1, sizeof(*h));

	if (h)
		h->min = UINT64_MAX;
	return h;
}

static inline void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static inline unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_LIN)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	return HIST_LIN + (e - HIST_LIN_BITS) * HIST_SUB +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The middle of bucket @i (its exact value in the linear range). */
static inline uint64_t hist_value(unsigned i)
{
	unsigned e, sub;
	uint64_t lo, width;

	if (i < HIST_LIN)
		return i;
	e = (i - HIST_LIN) / HIST_SUB + HIST_LIN_BITS;
	sub = (i - HIST_LIN) % HIST_SUB;
	width = (uint64_t)1 << (e - HIST_SUB_BITS);
	lo = ((uint64_t)1 << e) + sub * width;
	return lo + width / 2;
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

static inline void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* The value at percentile @p (0-100]: nearest rank, clamped to min/max. */
static inline uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;
	unsigned i;

	if (!h->count)
		return 0;
	if (p >= 100.0)
		return h->max;
	rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = hist_value(i);

			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

/* ---- options ------------------------------------------------------------- */

#define BENCH_MAX_LIST 16

struct bench_opts {
	int quick;
	int smoke;		/* --smoke: a tiny workload that proves each case */
	int verbose;
	uint64_t iters;		/* 0: the benchmark's default */
	size_t size;		/* message bytes (the first of sizes[]) */
	size_t sizes[BENCH_MAX_LIST];	/* --sizes; nsizes 0: the default */
	unsigned nsizes;
	unsigned batches[BENCH_MAX_LIST];	/* --batches */
	unsigned nbatches;
	unsigned pc[BENCH_MAX_LIST][2];	/* --pc PxC,... */
	unsigned npc;
	unsigned duration_ms;	/* throughput: length of one run */
	int64_t spin_ns;	/* -1: library default */
	unsigned rounds;	/* 0: the benchmark's default */
	int cpu_a, cpu_b;	/* -1: chosen from the affinity mask */
	const char *only;	/* comma-separated case names, or NULL: all */
	const char *out;	/* CSV directory, or NULL */
	const char *tag;	/* names the CSV files: NAME-TAG.csv */
};

/* "8,64,4k,64k": 1-BENCH_MAX_LIST sizes (k = 1024). Returns the count. */
static inline int bench_parse_sizes(const char *arg, size_t *v)
{
	const char *p = arg;
	int n = 0;

	while (*p) {
		char *end;
		unsigned long long x;

		errno = 0;
		x = strtoull(p, &end, 10);
		if (errno || end == p || n == BENCH_MAX_LIST)
			return -1;
		if (*end == 'k' || *end == 'K') {
			x *= 1024;
			end++;
		}
		if (x < BENCH_MIN_SIZE || x > SHMQ_MAX_MSG_SIZE ||
		    (*end && *end != ','))
			return -1;
		v[n++] = (size_t)x;
		p = *end ? end + 1 : end;
	}
	return n ? n : -1;
}

/* "1,32,256": 1-BENCH_MAX_LIST counts in [1, max]. */
static inline int bench_parse_uints(const char *arg, unsigned *v,
				    unsigned max)
{
	const char *p = arg;
	int n = 0;

	while (*p) {
		char *end;
		unsigned long x;

		errno = 0;
		x = strtoul(p, &end, 10);
		if (errno || end == p || !x || x > max ||
		    n == BENCH_MAX_LIST || (*end && *end != ','))
			return -1;
		v[n++] = (unsigned)x;
		p = *end ? end + 1 : end;
	}
	return n ? n : -1;
}

/* "1x1,2x2": producer x consumer pairs, each 1-64. */
static inline int bench_parse_pc(const char *arg, unsigned (*v)[2])
{
	const char *p = arg;
	int n = 0;

	while (*p) {
		char *end;
		unsigned long a, b;

		errno = 0;
		a = strtoul(p, &end, 10);
		if (errno || end == p || *end != 'x' || n == BENCH_MAX_LIST)
			return -1;
		p = end + 1;
		b = strtoul(p, &end, 10);
		if (errno || end == p || !a || !b || a > 64 || b > 64 ||
		    (*end && *end != ','))
			return -1;
		v[n][0] = (unsigned)a;
		v[n][1] = (unsigned)b;
		n++;
		p = *end ? end + 1 : end;
	}
	return n ? n : -1;
}

/*
 * Parses the common options; @help is printed for --help (exit 0) and after
 * a bad option (exit 2).
 */
static inline void bench_parse_opts(int argc, char **argv,
				    struct bench_opts *o, const char *help)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "smoke", no_argument, NULL, 'Q' },
		{ "iters", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "sizes", required_argument, NULL, 'z' },
		{ "batches", required_argument, NULL, 'b' },
		{ "pc", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "spin", required_argument, NULL, 'S' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "only", required_argument, NULL, 'o' },
		{ "out", required_argument, NULL, 'O' },
		{ "tag", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c, n;

	memset(o, 0, sizeof(*o));
	o->size = 64;
	o->spin_ns = -1;
	o->cpu_a = o->cpu_b = -1;

	while ((c = getopt_long(argc, argv, "qQn:s:z:b:p:d:S:r:c:o:O:T:vh",
				longopts, NULL)) != -1) {
		errno = 0;
		switch (c) {
		case 'q':
			o->quick = 1;
			break;
		case 'Q':
			o->smoke = 1;
			o->quick = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'n':
			o->iters = strtoull(optarg, &end, 0);
			if (errno || *end || !o->iters)
				goto bad;
			break;
		case 's':
			o->size = strtoull(optarg, &end, 0);
			if (errno || *end || o->size < BENCH_MIN_SIZE ||
			    o->size > SHMQ_MAX_MSG_SIZE)
				goto bad;
			o->sizes[0] = o->size;
			o->nsizes = 1;
			break;
		case 'z':
			n = bench_parse_sizes(optarg, o->sizes);
			if (n < 0)
				goto bad;
			o->nsizes = (unsigned)n;
			o->size = o->sizes[0];
			break;
		case 'b':
			n = bench_parse_uints(optarg, o->batches, 256);
			if (n < 0)
				goto bad;
			o->nbatches = (unsigned)n;
			break;
		case 'p':
			n = bench_parse_pc(optarg, o->pc);
			if (n < 0)
				goto bad;
			o->npc = (unsigned)n;
			break;
		case 'd':
			o->duration_ms = (unsigned)strtoul(optarg, &end, 0);
			if (errno || *end || !o->duration_ms ||
			    o->duration_ms > 600000)
				goto bad;
			break;
		case 'S':
			o->spin_ns = strtoll(optarg, &end, 0);
			if (errno || *end || o->spin_ns < 0)
				goto bad;
			break;
		case 'r':
			o->rounds = (unsigned)strtoul(optarg, &end, 0);
			if (errno || *end || !o->rounds || o->rounds > 1000)
				goto bad;
			break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &o->cpu_a,
				   &o->cpu_b) != 2 ||
			    o->cpu_a < 0 || o->cpu_b < 0 ||
			    o->cpu_a >= CPU_SETSIZE || o->cpu_b >= CPU_SETSIZE)
				goto bad;
			break;
		case 'o':
			o->only = optarg;
			break;
		case 'O':
			o->out = optarg;
			break;
		case 'T':
			o->tag = optarg;
			for (end = optarg; *end; end++)
				if (!strchr("abcdefghijklmnopqrstuvwxyz"
					    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					    "0123456789._-", *end))
					goto bad;
			break;
		case 'h':
			fputs(help, stdout);
			exit(0);
		default:
			goto usage;
		}
	}
	if (optind < argc)
		goto usage;
	return;
bad:
	fprintf(stderr, "%s: bad value for -%c: '%s'\n", argv[0], c, optarg);
usage:
	fputs(help, stderr);
	exit(2);
}

#define BENCH_COMMON_HELP \
	"  --quick          a short run (a few seconds)\n" \
	"  --smoke          a tiny workload: proves every case runs and\n" \
	"                   cleans up (make check); figures mean nothing\n" \
	"  --size BYTES     one message size (at least 8)\n" \
	"  --sizes LIST     message sizes, e.g. 8,64,512,4k,64k\n" \
	"  --spin NS        spin budget of the \"default spin\" shmq cases\n" \
	"                   (default: the library's, SHMQ_DEFAULT_SPIN_NS\n" \
	"                   or $SHMQ_SPIN_NS)\n" \
	"  --rounds N       interleaved rounds per case\n" \
	"  --cpus A,B       the two CPUs to pin to (default: the first\n" \
	"                   two of the affinity mask)\n" \
	"  --only A,B,...   run only these cases (and their baselines)\n" \
	"  --out DIR        also write CSV files into DIR (created)\n" \
	"  --tag NAME       CSV file name suffix (default: none)\n" \
	"  --verbose        also print every round's figure\n" \
	"  --help           this text\n"

/* Is case @name in the --only list (or is there no list)? */
static inline int bench_selected(const struct bench_opts *o, const char *name)
{
	size_t len = strlen(name);
	const char *p = o->only;

	if (!p)
		return 1;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == len && !strncmp(p, name, n))
			return 1;
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* ---- CPUs ---------------------------------------------------------------- */

/*
 * Chooses the two CPUs: --cpus if given (both must be allowed), else the
 * first two of our affinity mask.  Returns 2, or 1 when only one CPU is
 * available (run unpinned, *a = *b = -1), or -1 on a bad --cpus.
 */
static inline int bench_pick_cpus(struct bench_opts *o, int *a, int *b)
{
	cpu_set_t set;
	int i, n = 0;

	*a = *b = -1;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	if (o->cpu_a >= 0) {
		if (!CPU_ISSET(o->cpu_a, &set) || !CPU_ISSET(o->cpu_b, &set) ||
		    o->cpu_a == o->cpu_b)
			return -1;
		*a = o->cpu_a;
		*b = o->cpu_b;
		return 2;
	}
	for (i = 0; i < CPU_SETSIZE && n < 2; i++) {
		if (!CPU_ISSET(i, &set))
			continue;
		if (n++ == 0)
			*a = i;
		else
			*b = i;
	}
	if (n < 2) {
		*a = *b = -1;
		return 1;
	}
	return 2;
}

/* Pins the calling process to @cpu; -1 leaves it unpinned. */
static inline int bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return 0;
}

static inline void bench_cpus_str(char *buf, size_t len, int a, int b)
{
	if (a < 0)
		snprintf(buf, len, "unpinned");
	else
		snprintf(buf, len, "%d,%d", a, b);
}

/*
 * The CPUs of our affinity mask, in order, into @cpus (CPU_SETSIZE
 * entries), @a and @b (--cpus, or -1) first; their count in *@n, and the
 * first two as text in @str.  -1 (said on stderr, as @prog) when --cpus
 * does not name two distinct CPUs of the mask.
 */
static inline int bench_cpu_list(const char *prog, int a, int b, int *cpus,
				 int *n, char *str, size_t len)
{
	cpu_set_t set;
	int c;

	*n = 0;
	CPU_ZERO(&set);
	sched_getaffinity(0, sizeof(set), &set);
	if (a >= 0) {
		if (!CPU_ISSET(a, &set) || !CPU_ISSET(b, &set) || a == b) {
			fprintf(stderr, "%s: --cpus: not two distinct CPUs of "
				"our affinity mask\n", prog);
			return -1;
		}
		cpus[(*n)++] = a;
		cpus[(*n)++] = b;
	}
	for (c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && c != a && c != b)
			cpus[(*n)++] = c;
	if (*n > 1)
		bench_cpus_str(str, len, cpus[0], cpus[1]);
	else
		bench_cpus_str(str, len, -1, -1);
	return 0;
}

/* The smallest and the largest of @n >= 1 values. */
static inline double bench_min(const double *v, unsigned n)
{
	double m = v[0];
	unsigned i;

	for (i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

static inline double bench_max(const double *v, unsigned n)
{
	double m = v[0];
	unsigned i;

	for (i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

/* ---- processes, signals and cleanup -------------------------------------- */

#define BENCH_MAX_CHILDREN 24	/* bench_fanout: 16 consumers + 1 */
/* Broker processes a run may start (broker.h): RabbitMQ, its epmd, NATS. */
#define BENCH_MAX_BROKERS 4

/*
 * What the signal handlers need: the children to kill, the segment's file
 * to remove, and what was running (for the message).  Children start with
 * an empty copy and default handlers.
 */
static struct bench_sig {
	volatile pid_t child[BENCH_MAX_CHILDREN];
	char shm_path[128];		/* /dev/shm/shmq.NAME, or "" */
	const char *volatile what;	/* the case running, for messages */
	volatile pid_t roudi;		/* the iox-roudi we started, or 0 */
	char roudi_user_shm[128];	/* its payload segment */
	char zmq_path[96];		/* a ZeroMQ ipc:// socket file, or "" */
	/* the brokers we started, each leading its own process group */
	volatile pid_t broker[BENCH_MAX_BROKERS];
	char broker_dir[BENCH_MAX_BROKERS][96];	/* its scratch dir, or "" */
	volatile sig_atomic_t in_child;
} bench_sig;

static inline void bench_sig_puts(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));

	(void)r;
}

/*
 * Stops the iox-roudi we started (SIGTERM, then SIGKILL after 5 s) and
 * removes whatever it left behind.  Async-signal-safe.
 */
static inline void bench_roudi_stop(pid_t pid)
{
	static const char *const files[] = {
		"/tmp/roudi", "/tmp/roudi.lock", "/tmp/iox-unique-roudi.lock",
		"/dev/shm/iceoryx_mgmt",
	};
	struct timespec ts = { 0, 50000000 };
	unsigned i;
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (i = 0; i < 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		nanosleep(&ts, NULL);
	}
	if (i == 100) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	bench_sig.roudi = 0;
	for (i = 0; i < BENCH_ARRAY_SIZE(files); i++)
		unlink(files[i]);
	if (bench_sig.roudi_user_shm[0])
		unlink(bench_sig.roudi_user_shm);
}

/* rm -rf @dir, by fork() + execve(): a directory walk is not signal-safe. */
static inline void bench_rmtree(const char *dir)
{
	pid_t pid;
	int st;

	if (!dir || !dir[0])
		return;
	pid = fork();
	if (pid == 0) {
		execl("/bin/rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
}

/*
 * Stops process group @pgid, which we started (its leader is our child):
 * SIGTERM to the group, then SIGKILL once @grace_ms have passed without
 * the leader exiting and the group emptying; reaps the leader.  Then
 * removes @dir (NULL or "": none).  Async-signal-safe.
 */
static inline void bench_group_stop(pid_t pgid, unsigned grace_ms,
				    const char *dir)
{
	struct timespec ts = { 0, 10000000 };
	unsigned i;
	int st, reaped = 0;

	if (pgid <= 0)
		return;
	kill(-pgid, SIGTERM);
	for (i = 0; i < grace_ms / 10; i++) {
		/* 0: still running; pgid or -1 (ECHILD): gone. */
		if (!reaped && waitpid(pgid, &st, WNOHANG) != 0)
			reaped = 1;
		if (reaped && kill(-pgid, 0) < 0)
			break;
		nanosleep(&ts, NULL);
	}
	if (i == grace_ms / 10) {
		kill(-pgid, SIGKILL);
		if (!reaped)
			waitpid(pgid, &st, 0);
	}
	bench_rmtree(dir);
}

/*
 * Kills every recorded child and removes the segment (and the ZeroMQ
 * socket file of the case running); stops the iox-roudi and the brokers
 * we started.  Async-signal-safe:
 * the segment is removed with unlink(2) on its documented path
 * (/dev/shm/shmq.NAME, see shmq.h) rather than shmq_seg_unlink(), which
 * is not promised to be safe in a signal handler.
 */
static inline void bench_kill_all(void)
{
	unsigned i;

	for (i = 0; i < BENCH_MAX_CHILDREN; i++) {
		pid_t pid = bench_sig.child[i];

		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			bench_sig.child[i] = 0;
		}
	}
	if (bench_sig.shm_path[0])
		unlink(bench_sig.shm_path);
	if (bench_sig.zmq_path[0])
		unlink(bench_sig.zmq_path);
	bench_roudi_stop(bench_sig.roudi);
	/* Newest first: a broker before the epmd it registered with. */
	for (i = BENCH_MAX_BROKERS; i-- > 0;) {
		pid_t pid = bench_sig.broker[i];

		if (pid > 0) {
			bench_sig.broker[i] = 0;
			bench_group_stop(pid, 5000, bench_sig.broker_dir[i]);
		}
	}
}

static inline void bench_fatal_signal(int sig)
{
	int saved = errno;

	if (sig == SIGALRM)
		bench_sig_puts("\nbench: watchdog: no progress, giving up");
	else if (sig == SIGCHLD)
		bench_sig_puts("\nbench: a child process failed");
	else
		bench_sig_puts("\nbench: interrupted");
	if (bench_sig.what) {
		bench_sig_puts(" during ");
		bench_sig_puts(bench_sig.what);
	}
	bench_sig_puts("; cleaning up\n");
	bench_kill_all();
	errno = saved;
	_exit(sig == SIGINT ? 130 : 1);
}

/*
 * SIGCHLD: a child that failed (non-zero exit, killed) while we may be
 * blocked waiting for it ends the run.  Children that exited 0 are left
 * for the main flow to reap (WNOWAIT only peeks).
 */
static inline void bench_on_sigchld(int sig)
{
	unsigned i;

	for (i = 0; i < BENCH_MAX_CHILDREN; i++) {
		pid_t pid = bench_sig.child[i];
		siginfo_t si;

		if (pid <= 0)
			continue;
		si.si_pid = 0;
		if (waitid(P_PID, (id_t)pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			continue;
		if (si.si_code != CLD_EXITED || si.si_status != 0)
			bench_fatal_signal(sig);
	}
}

/*
 * Installs the handlers; @shm_name is the segment to remove on a fatal
 * path (NULL: none).
 */
static inline void bench_setup_signals(const char *shm_name)
{
	static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGALRM };
	struct sigaction sa;
	unsigned i;

	if (shm_name)
		snprintf(bench_sig.shm_path, sizeof(bench_sig.shm_path),
			 "/dev/shm/shmq.%s", shm_name);
	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = bench_fatal_signal;
	for (i = 0; i < BENCH_ARRAY_SIZE(fatal); i++)
		sigaction(fatal[i], &sa, NULL);
	sa.sa_handler = bench_on_sigchld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
}

/* The watchdog: a run that makes no progress for @sec seconds ends. */
static inline void bench_watchdog(unsigned sec, const char *what)
{
	bench_sig.what = what;
	alarm(sec);
}

/*
 * fork() with bookkeeping.  The child gets default signal handlers, an
 * empty child list, and dies with its parent (PR_SET_PDEATHSIG), so no
 * spinning orphan survives a SIGKILLed benchmark.
 */
static inline pid_t bench_fork(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGALRM,
				    SIGCHLD };
	pid_t parent = getpid();
	pid_t pid;
	unsigned i;

	for (i = 0; i < BENCH_MAX_CHILDREN; i++)
		if (bench_sig.child[i] == 0)
			break;
	if (i == BENCH_MAX_CHILDREN)
		return -EAGAIN;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		unsigned j;

		alarm(0);
		for (j = 0; j < BENCH_ARRAY_SIZE(sigs); j++)
			signal(sigs[j], SIG_DFL);
		for (j = 0; j < BENCH_MAX_CHILDREN; j++)
			bench_sig.child[j] = 0;
		bench_sig.shm_path[0] = '\0';
		bench_sig.zmq_path[0] = '\0';
		bench_sig.roudi = 0;
		for (j = 0; j < BENCH_MAX_BROKERS; j++)
			bench_sig.broker[j] = 0;
		bench_sig.in_child = 1;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		return 0;
	}
	bench_sig.child[i] = pid;
	return pid;
}

/*
 * Reaps @pid.  Returns 0 when it exited 0, else its exit code (or 128 +
 * signal) after saying so on stderr.
 */
static inline int bench_reap(pid_t pid, const char *what)
{
	unsigned i;
	int st, rc;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			st = 0x7f00;	/* lost it: report as exit 127 */
			break;
		}
	}
	for (i = 0; i < BENCH_MAX_CHILDREN; i++)
		if (bench_sig.child[i] == pid)
			bench_sig.child[i] = 0;
	if (WIFEXITED(st))
		rc = WEXITSTATUS(st);
	else
		rc = 128 + WTERMSIG(st);
	if (rc)
		fprintf(stderr, "bench: %s process %d failed (%s %d)\n",
			what, (int)pid,
			WIFEXITED(st) ? "exit" : "signal",
			WIFEXITED(st) ? rc : WTERMSIG(st));
	return rc;
}

/* ---- formatting ---------------------------------------------------------- */

/* "812", "12.4k", "3.21M" */
static inline const char *bench_fmt_rate(char *buf, size_t len, double v)
{
	if (v >= 1e9)
		snprintf(buf, len, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, len, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, len, "%.1fk", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
	return buf;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of @n values (sorts them). */
static inline double bench_median(double *v, unsigned n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


/* ---- progress line, CSV -------------------------------------------------- */

/*
 * A one-line progress report on stderr, rewritten in place; only when
 * stderr is a terminal, so logs and CI output stay clean.
 */
static inline void bench_progress(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline void bench_progress(const char *fmt, ...)
{
	static int tty = -1;
	char line[160];
	va_list ap;

	if (tty < 0)
		tty = isatty(STDERR_FILENO);
	if (!tty)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
}

static inline void bench_progress_done(void)
{
	if (isatty(STDERR_FILENO)) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
	}
}

/*
 * Opens DIR/NAME[-TAG].csv for writing (DIR created), or returns NULL
 * when --out was not given.  Exits 1 when it cannot.
 */
static inline FILE *bench_csv_open(const struct bench_opts *o,
				   const char *name, const char *header)
{
	char path[PATH_MAX];
	FILE *f;

	if (!o->out)
		return NULL;
	if (mkdir(o->out, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "bench: mkdir %s: %s\n", o->out,
			strerror(errno));
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s%s%s.csv", o->out, name,
		 o->tag ? "-" : "", o->tag ? o->tag : "");
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fprintf(f, "%s\n", header);
	return f;
}

/* ---- the run: sizes, the scratch segment --------------------------------- */

/*
 * The message sizes of a run: --size/--sizes, else the mode's defaults.
 * @maxsize: the largest; @goal_i: the size of the GOAL lines (the first
 * 64, else the last).
 */
static inline void bench_sizes(const struct bench_opts *o,
			       const size_t **sizes, unsigned *n,
			       size_t *maxsize, int *goal_i)
{
	static const size_t full_sizes[] = { 8, 64, 512, 4096, 65536 };
	static const size_t quick_sizes[] = { 64, 4096 };
	static const size_t smoke_sizes[] = { 8, 65536 };
	unsigned i;

	if (o->nsizes) {
		*sizes = o->sizes;
		*n = o->nsizes;
	} else if (o->smoke) {
		*sizes = smoke_sizes;
		*n = BENCH_ARRAY_SIZE(smoke_sizes);
	} else if (o->quick) {
		*sizes = quick_sizes;
		*n = BENCH_ARRAY_SIZE(quick_sizes);
	} else {
		*sizes = full_sizes;
		*n = BENCH_ARRAY_SIZE(full_sizes);
	}
	*maxsize = 0;
	*goal_i = -1;
	for (i = 0; i < *n; i++) {
		if ((*sizes)[i] > *maxsize)
			*maxsize = (*sizes)[i];
		if ((*sizes)[i] == 64 || (*goal_i < 0 && i == *n - 1))
			*goal_i = (int)i;
	}
}

/*
 * Names the run's segment bench.PID (in @name), installs the signal
 * handlers that remove it, and creates it with @size bytes.  0, or
 * -errno after saying so on stderr (as @prog).
 */
static inline int bench_seg_begin(const char *prog, char *name, size_t len,
				  size_t size, shmq_seg **seg)
{
	struct shmq_seg_attr sattr = { 0 };
	int rc;

	snprintf(name, len, "bench.%d", (int)getpid());
	bench_setup_signals(name);
	sattr.size = size;
	rc = shmq_seg_create(name, &sattr, seg);
	if (rc)
		fprintf(stderr, "%s: shmq_seg_create(%s): %s\n", prog, name,
			bench_strerror(rc));
	return rc;
}

/* The normal end: detaches and removes the segment. */
static inline void bench_seg_end(const char *prog, const char *name,
				 shmq_seg *seg)
{
	int rc;

	shmq_seg_close(seg);
	rc = shmq_seg_unlink(name);
	if (rc)
		fprintf(stderr, "%s: shmq_seg_unlink(%s): %s\n", prog, name,
			bench_strerror(rc));
}

/* A fatal error: everything this program created goes; then exit(1). */
static inline void bench_die(shmq_seg *seg, const char *name)
{
	bench_progress_done();
	bench_kill_all();
	shmq_seg_close(seg);
	shmq_seg_unlink(name);
	exit(1);
}

/* ---- optional mechanisms ------------------------------------------------- */

/*
 * BENCH_HAVE_ZMQ, BENCH_HAVE_ICEORYX, BENCH_HAVE_RABBITMQ and
 * BENCH_HAVE_NATS are set by the Makefile when the Debian packages
 * (libzmq3-dev; libiceoryx-binding-c-dev + iceoryx; librabbitmq-dev;
 * libnats-dev) are installed: `make bench-deps`.  Without them their rows
 * say so.
 */
#ifndef BENCH_HAVE_ZMQ
#define BENCH_HAVE_ZMQ 0
#endif
#ifndef BENCH_HAVE_ICEORYX
#define BENCH_HAVE_ICEORYX 0
#endif
#ifndef BENCH_HAVE_RABBITMQ
#define BENCH_HAVE_RABBITMQ 0
#endif
#ifndef BENCH_HAVE_NATS
#define BENCH_HAVE_NATS 0
#endif

/*
 * POSIX message queues need RLIMIT_MSGQUEUE bytes for their messages; the
 * default (800 KiB) is too little for 64 KiB messages.  Raise the soft
 * limit to the hard one, and both to @need when allowed (root).
 */
static inline void bench_mq_rlimit(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MSGQUEUE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit up = { need, need };

		if (setrlimit(RLIMIT_MSGQUEUE, &up) == 0)
			return;
	}
	setrlimit(RLIMIT_MSGQUEUE, &rl);
}

/* /proc/sys/fs/mqueue/NAME, or @dflt when unreadable. */
static inline long bench_mq_sysctl(const char *name, long dflt)
{
	char path[96];
	long v = dflt;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/fs/mqueue/%s", name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

/*
 * Can a POSIX message queue of @maxmsg messages of @size bytes be made?
 * 0, or mq_open()'s -errno (-EINVAL: size above fs.mqueue.msgsize_max or
 * maxmsg above msg_max; -EMFILE / -ENOMEM: RLIMIT_MSGQUEUE).
 */
static inline int bench_mq_probe(size_t size, long maxmsg)
{
	struct mq_attr a = { .mq_maxmsg = maxmsg, .mq_msgsize = (long)size };
	char name[64];
	mqd_t q;

	snprintf(name, sizeof(name), "/shmqbench.%d.probe", (int)getpid());
	q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
	if (q == (mqd_t)-1)
		return -errno;
	mq_unlink(name);
	mq_close(q);
	return 0;
}

/*
 * iceoryx needs its broker, iox-roudi, running for the whole run.  We start
 * one when none runs (/tmp/roudi is its socket), and stop it at the end;
 * roudi then removes its shared memory (/dev/shm/iceoryx_mgmt and
 * /dev/shm/USER) itself, provided every iceoryx process exit()ed (not
 * _exit()ed) so that it unregistered.  On a fatal path bench_kill_all()
 * stops it and removes what it left.
 */
#define BENCH_ROUDI_SOCK "/tmp/roudi"

/*
 * Starts iox-roudi with its log in @log.  Returns its pid (> 0), 0 when
 * one already runs (we use it and leave it), or -errno / -ENOENT.
 */
static inline pid_t bench_roudi_start(const char *log)
{
	pid_t pid;
	int i, st;

	if (access(BENCH_ROUDI_SOCK, F_OK) == 0)
		return 0;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execlp("iox-roudi", "iox-roudi", "-l", "warning", (char *)NULL);
		_exit(127);
	}
	bench_sig.roudi = pid;
	{
		struct passwd *pw = getpwuid(geteuid());

		/* The payload segment roudi makes is named after the user. */
		if (pw && !strchr(pw->pw_name, '/'))
			snprintf(bench_sig.roudi_user_shm,
				 sizeof(bench_sig.roudi_user_shm),
				 "/dev/shm/%s", pw->pw_name);
	}
	for (i = 0; i < 200; i++) {	/* 10 s */
		if (access(BENCH_ROUDI_SOCK, F_OK) == 0) {
			usleep(50000);	/* let it finish "ready for clients" */
			return pid;
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			bench_sig.roudi = 0;
			return -ENOENT;
		}
		usleep(50000);
	}
	bench_roudi_stop(pid);
	return -ETIMEDOUT;
}

#endif /* BENCH_COMMON_H */
