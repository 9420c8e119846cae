// SPDX-License-Identifier: MIT
/*
 * prof_publish - a driver for instruction profiles of the publish fast
 * path (not a benchmark: make does not build it).  One thread, one
 * process: N shmq_publish() (a direct exchange, one binding, the route
 * cached) + shmq_recv() pairs, then N shmq_send() + shmq_recv() pairs on
 * a queue of the same geometry (64 B, capacity 8, timeout 0), so that a
 * callgrind run gives both paths' inclusive cost per call side by side:
 *
 *   cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Iinclude -o build/prof_publish \
 *       bench/prof_publish.c build/libshmq.a \
 *       $(pkg-config --libs liburcu-cds liburcu-memb) -lpthread -lrt
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out \
 *       build/prof_publish 100000
 *   callgrind_annotate --inclusive=yes cg.out
 *
 * Argument 2 "fanout N" publishes through a fanout exchange to N queues
 * instead (each drained after every publish).  Argument 2 "time" runs
 * both loops 15 times alternately, timed, and prints the median ns per
 * pair of each (run it pinned: taskset -c 1 build/prof_publish 100000
 * time).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

#define MSG 64

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "prof_publish: %s: %s\n", what, shmq_strerror(rc));
	return 1;
}

int main(int argc, char **argv)
{
	struct shmq_seg_attr sa = { .size = 16 << 20 };
	struct shmq_attr qa = { .capacity = 8, .msg_size = MSG + 16 };
	struct shmq_xattr xa = { .type = SHMQ_DIRECT };
	long i, n = argc > 1 ? atol(argv[1]) : 100000;
	int fan = argc > 3 && !strcmp(argv[2], "fanout") ? atoi(argv[3]) : 0;
	char name[64], buf[MSG] = { 0 }, qn[32];
	shmq *q[16], *p;
	shmq_exchange *x;
	shmq_seg *seg;
	int rc, k, nq = fan ? fan : 1, rep, reps;
	double t0, t1, tp[15], ts[15];

	if (nq < 1 || nq > 16)
		return 2;
	reps = argc > 2 && !strcmp(argv[2], "time") ? 15 : 1;
	snprintf(name, sizeof(name), "prof.%d", (int)getpid());
	rc = shmq_seg_create(name, &sa, &seg);
	if (rc)
		return die("seg", rc);
	if (fan)
		xa.type = SHMQ_FANOUT;
	rc = shmq_exchange_create(seg, "x", &xa);
	for (k = 0; k < nq && !rc; k++) {
		snprintf(qn, sizeof(qn), "q%d", k);
		rc = shmq_create(seg, qn, &qa);
		if (!rc)
			rc = shmq_bind(seg, "x", qn, "pp.down");
		if (!rc)
			rc = shmq_open(seg, qn, &q[k]);
	}
	if (!rc)
		rc = shmq_create(seg, "p", &qa);
	if (!rc)
		rc = shmq_open(seg, "p", &p);
	if (!rc)
		rc = shmq_exchange_open(seg, "x", &x);
	if (rc)
		goto fail;
	for (rep = 0; rep < reps; rep++) {
		t0 = now_ns();
		for (i = 0; i < n; i++) {
			rc = shmq_publish(x, "pp.down", buf, MSG, 0);
			if (rc != nq)
				goto fail;
			for (k = 0; k < nq; k++)
				if (shmq_recv(q[k], buf, MSG, 0) != MSG)
					goto fail;
		}
		t1 = now_ns();
		for (i = 0; i < n; i++) {
			rc = shmq_send(p, buf, MSG, 0);
			if (rc || shmq_recv(p, buf, MSG, 0) != MSG)
				goto fail;
		}
		tp[rep] = (t1 - t0) / n;
		ts[rep] = (now_ns() - t1) / n;
	}
	if (reps > 1) {
		qsort(tp, reps, sizeof(double), cmp);
		qsort(ts, reps, sizeof(double), cmp);
		printf("publish+recv %.1f ns (%.1f-%.1f), send+recv %.1f ns "
		       "(%.1f-%.1f): median (range) of %d loops of %ld\n",
		       tp[reps / 2], tp[0], tp[reps - 1], ts[reps / 2], ts[0],
		       ts[reps - 1], reps, n);
	}
	shmq_exchange_close(x);
	for (k = 0; k < nq; k++)
		shmq_close(q[k]);
	shmq_close(p);
	shmq_seg_close(seg);
	shmq_seg_unlink(name);
	return 0;
fail:
	shmq_seg_unlink(name);
	return die("run", rc < 0 ? rc : -EBADMSG);
}
