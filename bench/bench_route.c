// SPDX-License-Identifier: MIT
/*
 * bench_route - what a publish costs when its route must be built (a route
 * cache miss), against one that finds its route cached, at 10, 1,000 and
 * 100,000 bindings, on a topic and a direct exchange.
 *
 * An exchange handle caches, per routing key, the queues the key reached
 * (ipc/publish.c).  Every directory or binding change in the segment, in
 * any process, invalidates every cached route; the next publish of a key
 * rebuilds its route under the control-plane lock: it walks the whole
 * binding table of the exchange (matching each binding's key), opens its
 * queues, swaps the route into the cache and waits for an RCU grace period
 * before freeing the stale one.  This program prices that.
 *
 * One process, pinned to one CPU.  For each exchange type and binding
 * count N:
 *
 *   1. The exchange gets N - 1 bindings that do not match the published
 *      key (to a sink queue; topic: a third literal "svcI.info", a third
 *      "svcI.*.error", a third "log.svcI.#"; direct: "svcI.info"), then one
 *      that does (topic "ping.*.down" for the key "ping.x.down"; direct
 *      "pp.down"), to the target queue.  The time to make them (each bind
 *      walks the table for a duplicate: quadratic in N) and the heap they
 *      take (shmq_seg_info() before and after) are reported.
 *   2. Then M iterations, each: a bind (or unbind, alternately) of a
 *      queue on another, tiny exchange (which invalidates every route of
 *      the segment and leaves our table as it is), then one timed publish
 *      (a miss), one untimed publish (the first hit after a walk finds
 *      its lines evicted: with 100,000 bindings it cost ~1 us), then one
 *      timed publish of the same key (a hit, the baseline of the same
 *      iteration); every message is received, untimed, and checked.
 *      Only the publish calls are timed, each with two CLOCK_MONOTONIC
 *      reads (about 20-30 ns are the clock's).
 *
 * Reported: median, p90, p99, p99.9, max of misses and hits, the miss's
 * excess over the hit, and the walk's cost per binding (the slope between
 * the smallest and the largest N).
 */
#include "mech.h"

#define RT_MSG 64
#define RT_MAX_COUNTS 8
#define RT_SEG_FULL ((size_t)64 << 20)
#define RT_SEG_QUICK ((size_t)16 << 20)

enum { RT_TOPIC, RT_DIRECT, RT_NTYPES };

static const char *const rt_type_name[RT_NTYPES] = { "topic", "direct" };
static const uint32_t rt_type[RT_NTYPES] = { SHMQ_TOPIC, SHMQ_DIRECT };

struct rt_result {
	unsigned bindings;
	double build_s;
	uint64_t heap_bytes;	/* heap_used after - before */
	uint64_t samples;
	struct hist *miss, *hit;
};

static const char rt_help[] =
	"usage: bench_route [options]\n"
	"\n"
	"What shmq_publish() costs when its route must be built (the first\n"
	"publish of a key after any binding or directory change) against one\n"
	"that finds it cached, at several binding counts, on a topic and a\n"
	"direct exchange (64-byte messages, one process on one CPU).\n"
	"Prints a table per exchange type and one SUMMARY line per type and\n"
	"count.\n"
	"\n"
	"options:\n"
	"  --bindings LIST  binding counts (default 10,1000,100000; --quick\n"
	"                   10,1000,10000; --smoke 10,100)\n"
	"  --iters N        misses (and hits) per count (default 2000, 200 at\n"
	"                   100,000 bindings and more; --quick 500, 100;\n"
	"                   --smoke 20)\n"
	"  --only LIST      exchange types: topic, direct\n"
	"  --cpus A,B       pins to A\n"
	"  --quick, --smoke, --out DIR, --tag NAME, --verbose, --help\n"
	"\n"
	"CSV (--out): route.csv, one row per type and count.\n";

/* Strips "--bindings LIST" from argv (bench_parse_opts() rejects it). */
static int rt_take_bindings(int *argc, char **argv, unsigned *v)
{
	int i, j, n = 0;
	char *p, *end;

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--bindings") || i + 1 >= *argc)
			continue;
		for (p = argv[i + 1]; *p && n < RT_MAX_COUNTS; p = end) {
			unsigned long x;

			errno = 0;
			x = strtoul(p, &end, 10);
			if (errno || end == p || !x || x > 10000000 ||
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

static uint64_t rt_heap_used(shmq_seg *seg)
{
	struct shmq_seg_info si;

	return shmq_seg_info(seg, &si) ? 0 : si.heap_used;
}

static void rt_other_key(char *buf, size_t len, int type, unsigned i)
{
	if (type == RT_DIRECT || i % 3 == 0)
		snprintf(buf, len, "svc%u.info", i);
	else if (i % 3 == 1)
		snprintf(buf, len, "svc%u.*.error", i);
	else
		snprintf(buf, len, "log.svc%u.#", i);
}

static int rt_fail(const char *what, int rc)
{
	fprintf(stderr, "bench_route: %s: %s\n", what, bench_strerror(rc));
	return rc;
}

/* Publishes @seq with @key through @x, timed; receives it from @q. */
static int rt_one(shmq_exchange *x, shmq *q, const char *key, char *buf,
		  uint64_t seq, struct hist *h)
{
	uint64_t t0, t1;
	ssize_t n;
	int rc;

	bench_msg_stamp(buf, RT_MSG, seq);
	t0 = bench_now_ns();
	rc = shmq_publish(x, key, buf, RT_MSG, 0);
	t1 = bench_now_ns();
	if (rc != 1)
		return rt_fail("shmq_publish", rc < 0 ? rc : BENCH_EBADMSG);
	if (h)
		hist_add(h, t1 - t0);
	n = shmq_recv(q, buf, RT_MSG, 0);
	if (n != RT_MSG)
		return rt_fail("shmq_recv", n < 0 ? (int)n : BENCH_EBADMSG);
	rc = bench_msg_check(buf, RT_MSG, seq, NULL);
	return rc ? rt_fail("message", rc) : 0;
}

/*
 * One exchange type at one binding count: makes the exchange and its
 * bindings, measures, removes them.
 */
static int rt_case(shmq_seg *seg, int type, unsigned nbind, uint64_t iters,
		   unsigned serial, struct rt_result *res, char *buf)
{
	struct shmq_xattr xa = { .type = rt_type[type] };
	struct shmq_attr sink = { .capacity = 2, .msg_size = RT_MSG };
	struct shmq_attr qa = { .capacity = 4, .msg_size = RT_MSG + 16 };
	const char *key = type == RT_TOPIC ? "ping.x.down" : "pp.down";
	const char *bkey = type == RT_TOPIC ? "ping.*.down" : "pp.down";
	char xname[32], sname[32], qname[32], fname[32], fq[32], k[64];
	shmq_exchange *x = NULL;
	uint64_t heap0, t0, i, seq = 0;
	shmq *q = NULL;
	unsigned b;
	int rc;

	snprintf(xname, sizeof(xname), "rt%u.x", serial);
	snprintf(sname, sizeof(sname), "rt%u.sink", serial);
	snprintf(qname, sizeof(qname), "rt%u.q", serial);
	snprintf(fname, sizeof(fname), "rt%u.flip", serial);
	snprintf(fq, sizeof(fq), "rt%u.flipq", serial);
	res->bindings = nbind;
	heap0 = rt_heap_used(seg);
	rc = shmq_exchange_create(seg, xname, &xa);
	if (!rc)
		rc = shmq_create(seg, sname, &sink);
	if (!rc)
		rc = shmq_create(seg, qname, &qa);
	if (!rc)
		rc = shmq_exchange_create(seg, fname, NULL);
	if (!rc)
		rc = shmq_create(seg, fq, &sink);
	if (rc)
		return rt_fail("setup", rc);
	t0 = bench_now_ns();
	for (b = 0; b + 1 < nbind; b++) {
		if (b % 1024 == 0)
			bench_progress("route %s: %u/%u bindings",
				       rt_type_name[type], b, nbind);
		rt_other_key(k, sizeof(k), type, b);
		rc = shmq_bind(seg, xname, sname, k);
		if (rc)
			return rt_fail("shmq_bind", rc);
	}
	rc = shmq_bind(seg, xname, qname, bkey);
	if (rc)
		return rt_fail("shmq_bind", rc);
	res->build_s = (double)(bench_now_ns() - t0) / 1e9;
	res->heap_bytes = rt_heap_used(seg) - heap0;
	bench_progress("route %s: %u bindings: timing", rt_type_name[type],
		       nbind);

	rc = shmq_exchange_open(seg, xname, &x);
	if (!rc)
		rc = shmq_open(seg, qname, &q);
	if (rc)
		return rt_fail("open", rc);
	/* Warm-up: the first route, the RCU registration, the lines. */
	for (i = 0; i < 4 && !rc; i++)
		rc = rt_one(x, q, key, buf, ++seq, NULL);
	for (i = 0; i < iters && !rc; i++) {
		/* Invalidates every cached route: a directory change. */
		rc = i % 2 ? shmq_unbind(seg, fname, fq, "flip") :
			     shmq_bind(seg, fname, fq, "flip");
		if (rc)
			return rt_fail("flip", rc);
		rc = rt_one(x, q, key, buf, ++seq, res->miss);
		/*
		 * The hit right after a miss finds its lines evicted by the
		 * walk (a 100,000-binding table is 4 MiB); the second one
		 * is the steady state, which is what is timed.
		 */
		if (!rc)
			rc = rt_one(x, q, key, buf, ++seq, NULL);
		if (!rc)
			rc = rt_one(x, q, key, buf, ++seq, res->hit);
	}
	res->samples = iters;
	shmq_close(q);
	shmq_exchange_close(x);
	if (rc)
		return rc;
	/* Unlinking the exchange removes its table with it. */
	rc = shmq_exchange_unlink(seg, xname);
	if (!rc)
		rc = shmq_exchange_unlink(seg, fname);
	if (!rc)
		rc = shmq_unlink(seg, sname);
	if (!rc)
		rc = shmq_unlink(seg, qname);
	if (!rc)
		rc = shmq_unlink(seg, fq);
	return rc ? rt_fail("teardown", rc) : 0;
}

static void rt_report(int type, struct rt_result *res, unsigned n,
		      FILE *csv)
{
	const struct rt_result *lo = &res[0], *hi = &res[n - 1];
	double slope = 0;
	unsigned i;

	printf("\n%s exchange: publish of a 64-byte message, route cache miss "
	       "vs hit (ns)\n", rt_type_name[type]);
	printf("%9s %8s %9s %6s %8s %8s %8s %8s %9s %10s %7s %7s %9s\n",
	       "bindings", "build_s", "heap_KiB", "n", "miss_med", "miss_p90",
	       "miss_p99", "p99.9", "miss_max", "hit_med", "hit_p99",
	       "x hit", "miss-hit");
	for (i = 0; i < n; i++) {
		const struct rt_result *r = &res[i];
		uint64_t mm = hist_pct(r->miss, 50), hm = hist_pct(r->hit, 50);

		printf("%9u %8.2f %9.0f %6" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %8" PRIu64 " %8" PRIu64 " %9" PRIu64 " %10" PRIu64
		       " %7" PRIu64 " %7.1f %9" PRId64 "\n", r->bindings,
		       r->build_s, (double)r->heap_bytes / 1024, r->samples,
		       mm, hist_pct(r->miss, 90), hist_pct(r->miss, 99),
		       hist_pct(r->miss, 99.9), r->miss->max, hm,
		       hist_pct(r->hit, 99), hm ? (double)mm / (double)hm : 0,
		       (int64_t)mm - (int64_t)hm);
	}
	if (n > 1 && hi->bindings > lo->bindings)
		slope = ((double)hist_pct(hi->miss, 50) -
			 (double)hist_pct(lo->miss, 50)) /
			(double)(hi->bindings - lo->bindings);
	if (n > 1)
		printf("(miss cost per binding walked, from %u to %u bindings: "
		       "%.1f ns; timed: the publish call only, clock reads "
		       "included)\n", lo->bindings, hi->bindings, slope);
	for (i = 0; i < n; i++) {
		const struct rt_result *r = &res[i];

		printf("SUMMARY route %s bindings=%u miss_median_ns=%" PRIu64
		       " miss_p99_ns=%" PRIu64 " miss_p999_ns=%" PRIu64
		       " miss_max_ns=%" PRIu64 " hit_median_ns=%" PRIu64
		       " hit_p99_ns=%" PRIu64 " samples=%" PRIu64
		       " build_s=%.3f heap_bytes=%" PRIu64
		       " per_binding_ns=%.2f\n", rt_type_name[type],
		       r->bindings, hist_pct(r->miss, 50),
		       hist_pct(r->miss, 99), hist_pct(r->miss, 99.9),
		       r->miss->max, hist_pct(r->hit, 50),
		       hist_pct(r->hit, 99), r->samples, r->build_s,
		       r->heap_bytes, slope);
		if (csv)
			fprintf(csv, "%s,%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64
				",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
				",%.3f,%" PRIu64 "\n", rt_type_name[type],
				r->bindings, r->samples, hist_pct(r->miss, 50),
				hist_pct(r->miss, 99), hist_pct(r->miss, 99.9),
				r->miss->max, hist_pct(r->hit, 50),
				hist_pct(r->hit, 99), r->build_s,
				r->heap_bytes);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const unsigned full[] = { 10, 1000, 100000 };
	static const unsigned quick[] = { 10, 1000, 10000 };
	static const unsigned smoke[] = { 10, 100 };
	unsigned counts[RT_MAX_COUNTS], n, i, serial = 0, maxb = 0;
	struct rt_result res[RT_MAX_COUNTS];
	struct bench_opts o;
	char seg_name[32];
	size_t seg_size;
	shmq_seg *seg;
	int type, a, b, nc, rc = 0;
	char *buf;
	FILE *csv;

	nc = rt_take_bindings(&argc, argv, counts);
	if (nc < 0) {
		fprintf(stderr, "bench_route: bad --bindings\n%s", rt_help);
		return 2;
	}
	bench_parse_opts(argc, argv, &o, rt_help);
	n = (unsigned)nc;
	if (!n) {
		const unsigned *d = o.smoke ? smoke : o.quick ? quick : full;

		n = o.smoke ? BENCH_ARRAY_SIZE(smoke) : o.quick ?
		    BENCH_ARRAY_SIZE(quick) : BENCH_ARRAY_SIZE(full);
		memcpy(counts, d, n * sizeof(*d));
	}
	for (i = 0; i < n; i++)
		if (counts[i] > maxb)
			maxb = counts[i];
	/* 64 MiB holds 100,000 bindings (a few MiB: see heap_KiB). */
	seg_size = maxb > 20000 ? RT_SEG_FULL *
		   (size_t)(1 + maxb / 1000000) : RT_SEG_QUICK;
	if (bench_pick_cpus(&o, &a, &b) < 0) {
		fprintf(stderr, "bench_route: bad --cpus\n");
		return 2;
	}
	if (bench_pin(a))
		fprintf(stderr, "bench_route: could not pin to CPU %d\n", a);
	if (bench_seg_begin("bench_route", seg_name, sizeof(seg_name),
			    seg_size, &seg))
		return 1;
	buf = bench_buf_alloc(RT_MSG, 1);
	for (i = 0; i < n; i++) {
		res[i].miss = hist_new();
		res[i].hit = hist_new();
		if (!buf || !res[i].miss || !res[i].hit) {
			fprintf(stderr, "bench_route: out of memory\n");
			bench_die(seg, seg_name);
		}
	}
	printf("bench_route: publish cost, route cache miss vs hit "
	       "(scratch names: bench.%d)\n", (int)getpid());
	printf("one process on CPU %d; segment %zu MiB; 64-byte messages; "
	       "timeout 0\n", a, seg_size >> 20);
	csv = bench_csv_open(&o, "route", "type,bindings,samples,"
			     "miss_median_ns,miss_p99_ns,miss_p999_ns,"
			     "miss_max_ns,hit_median_ns,hit_p99_ns,build_s,"
			     "heap_bytes");
	for (type = 0; type < RT_NTYPES && !rc; type++) {
		if (!bench_selected(&o, rt_type_name[type]))
			continue;
		for (i = 0; i < n && !rc; i++) {
			uint64_t iters = o.iters ? o.iters : o.smoke ? 20 :
					 o.quick ? (counts[i] > 20000 ? 100 :
						    500) :
					 counts[i] >= 100000 ? 200 : 2000;

			hist_reset(res[i].miss);
			hist_reset(res[i].hit);
			/* 100,000 bindings took 157-201 s on a loaded 2-CPU VM. */
			bench_watchdog(1800, rt_type_name[type]);
			rc = rt_case(seg, type, counts[i], iters, ++serial,
				     &res[i], buf);
			alarm(0);
		}
		bench_progress_done();
		if (!rc)
			rt_report(type, res, n, csv);
	}
	if (csv)
		fclose(csv);
	if (rc)
		bench_die(seg, seg_name);
	bench_seg_end("bench_route", seg_name, seg);
	for (i = 0; i < n; i++) {
		free(res[i].miss);
		free(res[i].hit);
	}
	free(buf);
	return 0;
}
