/* SPDX-License-Identifier: MIT */
/*
 * workers.c - a worker pool: competing consumers on one queue.
 *
 *   cc -o workers workers.c $(pkg-config --cflags --libs shmq)
 *   ./workers [WORKERS [JOBS]]        (default 4 workers, 1000 jobs)
 *
 * The parent puts JOBS jobs into the queue "jobs"; WORKERS forked worker
 * processes take them as they come (each job goes to exactly one worker)
 * and report each job done into the queue "done".  The parent checks that
 * every job was done exactly once, then sends each worker a stop message.
 * Exits 0 only if so; removes its segment whatever happens short of
 * a signal that kills it (see hello.c).
 *
 * (Acknowledged delivery, where a job taken by a worker that dies goes to
 * another worker, is planned for 0.4.  Today a job a worker has received
 * is its own; one held with shmq_acquire() and not yet released when its
 * process dies is delivered again: see shmq(7), Crash recovery.)
 */
#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#define MAX_WORKERS 64
#define STOP UINT32_MAX          /* a job number that means "stop" */
#define SECOND 1000000000LL

struct job { uint32_t id; uint32_t payload; };
struct done { uint32_t id; uint32_t worker; uint32_t result; };

static char seg_name[64];

static void remove_segment(void)
{
	shmq_seg_unlink(seg_name);
}

/* A worker: take jobs until told to stop; report each job done. */
static int worker(uint32_t me)
{
	shmq_seg *seg;
	shmq *jobs, *done;
	struct job j;
	unsigned n = 0;
	int rc;

	rc = shmq_seg_open(seg_name, &seg);
	if (rc < 0) {
		warnx("worker %u: %s", me, shmq_strerror(rc));
		return 1;
	}
	if ((rc = shmq_open(seg, "jobs", &jobs)) < 0 ||
	    (rc = shmq_open(seg, "done", &done)) < 0) {
		warnx("worker %u: open: %s", me, shmq_strerror(rc));
		return 1;
	}
	for (;;) {
		ssize_t len = shmq_recv(jobs, &j, sizeof(j), 30 * SECOND);
		struct done d;

		if (len != (ssize_t)sizeof(j)) {
			warnx("worker %u: recv: %s", me, len < 0 ?
			      shmq_strerror((int)len) : "short message");
			return 1;
		}
		if (j.id == STOP)
			break;
		d = (struct done){ j.id, me, j.payload * 2 };   /* the work */
		rc = shmq_send(done, &d, sizeof(d), 30 * SECOND);
		if (rc < 0) {
			warnx("worker %u: send: %s", me, shmq_strerror(rc));
			return 1;
		}
		n++;
	}
	printf("worker %u (pid %d): %u jobs\n", me, (int)getpid(), n);
	fflush(stdout);             /* the caller leaves with _exit() */
	shmq_close(jobs);
	shmq_close(done);
	shmq_seg_close(seg);
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t nworkers = argc > 1 ? (uint32_t)atoi(argv[1]) : 4;
	uint32_t njobs = argc > 2 ? (uint32_t)atoi(argv[2]) : 1000;
	pid_t pids[MAX_WORKERS];
	unsigned per_worker[MAX_WORKERS] = { 0 };
	unsigned char *seen;
	shmq_seg *seg;
	shmq *jobs, *done;
	uint32_t i, sent = 0, got = 0, bad = 0;
	int rc, status;

	if (nworkers < 1 || nworkers > MAX_WORKERS || njobs < 1 ||
	    njobs >= STOP)
		errx(2, "usage: workers [WORKERS (1-%d) [JOBS]]", MAX_WORKERS);
	seen = calloc(njobs, 1);
	if (!seen)
		err(1, "calloc");

	snprintf(seg_name, sizeof(seg_name), "workers.%d", (int)getpid());
	rc = shmq_seg_create(seg_name, &(struct shmq_seg_attr){
		.size = 16 << 20 }, &seg);
	if (rc < 0)
		errx(1, "create %s: %s", seg_name, shmq_strerror(rc));
	atexit(remove_segment);
	if ((rc = shmq_create(seg, "jobs", &(struct shmq_attr){
			.capacity = 256, .msg_size = sizeof(struct job) })) < 0 ||
	    (rc = shmq_create(seg, "done", &(struct shmq_attr){
			.capacity = 256, .msg_size = sizeof(struct done) })) < 0)
		errx(1, "create queues: %s", shmq_strerror(rc));
	shmq_seg_close(seg);

	fflush(stdout);
	for (i = 0; i < nworkers; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			err(1, "fork");
		if (pids[i] == 0)
			_exit(worker(i));
	}

	rc = shmq_seg_open(seg_name, &seg);
	if (rc < 0)
		errx(1, "open %s: %s", seg_name, shmq_strerror(rc));
	if ((rc = shmq_open(seg, "jobs", &jobs)) < 0 ||
	    (rc = shmq_open(seg, "done", &done)) < 0)
		errx(1, "open queues: %s", shmq_strerror(rc));

	/*
	 * Send jobs and collect results in one loop: with both queues
	 * bounded, a producer that only sent would stop when "done" fills.
	 */
	while (got < njobs) {
		struct done d;
		ssize_t len;

		while (sent < njobs) {
			struct job j = { sent, sent };

			rc = shmq_send(jobs, &j, sizeof(j), 0);
			if (rc == -EAGAIN)
				break;          /* full: collect results first */
			if (rc < 0)
				errx(1, "send: %s", shmq_strerror(rc));
			sent++;
		}
		len = shmq_recv(done, &d, sizeof(d), 30 * SECOND);
		if (len != (ssize_t)sizeof(d))
			errx(1, "FAILED: waiting for results: %s", len < 0 ?
			     shmq_strerror((int)len) : "short message");
		if (d.id >= njobs || d.worker >= nworkers ||
		    d.result != d.id * 2 || seen[d.id]++)
			bad++;
		else
			per_worker[d.worker]++;
		got++;
	}
	for (i = 0; i < nworkers; i++) {
		struct job stop = { STOP, 0 };

		rc = shmq_send(jobs, &stop, sizeof(stop), 30 * SECOND);
		if (rc < 0)
			errx(1, "send stop: %s", shmq_strerror(rc));
	}
	for (i = 0; i < nworkers; i++) {
		if (waitpid(pids[i], &status, 0) < 0)
			err(1, "waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	shmq_close(jobs);
	shmq_close(done);
	shmq_seg_close(seg);
	if (bad)
		errx(1, "FAILED: %u jobs lost, duplicated or wrong, or workers "
		     "failed", bad);
	printf("workers: %u jobs, each done exactly once by one of %u workers "
	       "(", njobs, nworkers);
	for (i = 0; i < nworkers; i++)
		printf("%s%u", i ? " " : "", per_worker[i]);
	printf("): ok\n");
	free(seen);
	return 0;
}
