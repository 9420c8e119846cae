/* SPDX-License-Identifier: MIT */
/*
 * workers.c - a worker pool with acknowledgements: the way to consume jobs.
 *
 *   cc -o workers workers.c $(pkg-config --cflags --libs shmq)
 *   ./workers [WORKERS [JOBS]]        (default 4 workers, 1000 jobs)
 *
 * The parent puts JOBS jobs into the queue "jobs"; WORKERS forked workers
 * compete for them.  Each worker takes a job with shmq_fetch(), does it,
 * reports it into the queue "done", and only then acknowledges it with
 * shmq_ack().  A job whose worker dies before the ack is delivered again,
 * to another worker, within milliseconds: at least once.
 *
 * To show it, the worker that first gets job JOBS/2 kills itself with
 * SIGKILL while holding it.  The parent checks that every job was done,
 * that the killed worker's job was done by another worker on its second
 * delivery, and (since that worker died before doing its job) that no job
 * was done twice.  Exits 0 only if so; removes its segment whatever
 * happens short of a signal that kills the parent (see hello.c).
 */
#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#define MAX_WORKERS 32          /* the segment holds 64 processes */
#define STOP UINT32_MAX          /* a job number that means "stop" */
#define SECOND 1000000000LL

struct job { uint32_t id; uint32_t payload; };
struct report { uint32_t id; uint32_t worker; uint32_t deliveries;
		uint32_t result; };

static char seg_name[64];
static uint32_t crash_job;       /* its first taker dies holding it */

static void remove_segment(void)
{
	shmq_seg_unlink(seg_name);
}

/* A worker: fetch, do the job, report it, then ack; until told to stop. */
static int worker(uint32_t me)
{
	struct shmq_meta meta;
	struct report r;
	struct job j;
	shmq_seg *seg;
	shmq *jobs, *done;
	uint64_t tag;
	ssize_t len;
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
		/* The job stays owed by this process until shmq_ack(). */
		len = shmq_fetch(jobs, &j, sizeof(j), &meta, &tag, 30 * SECOND);
		if (len != (ssize_t)sizeof(j)) {
			warnx("worker %u: fetch: %s", me, len < 0 ?
			      shmq_strerror((int)len) : "short message");
			return 1;
		}
		if (j.id == STOP) {
			shmq_ack(jobs, tag);
			break;
		}
		if (j.id == crash_job && meta.deliveries == 1)
			raise(SIGKILL);         /* die holding the job */

		r = (struct report){ j.id, me, meta.deliveries, j.payload * 2 };
		rc = shmq_send(done, &r, sizeof(r), 30 * SECOND);
		if (rc < 0) {
			warnx("worker %u: send: %s", me, shmq_strerror(rc));
			return 1;
		}
		shmq_ack(jobs, tag);            /* done: forget it */
	}
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
	unsigned char *seen;
	struct report crashed = { 0 };
	shmq_seg *seg;
	shmq *jobs, *done;
	uint32_t i, sent = 0, distinct = 0, bad = 0, killed = 0;
	int rc, status, victim = -1;

	if (nworkers < 2 || nworkers > MAX_WORKERS || njobs < 1 ||
	    njobs >= STOP)
		errx(2, "usage: workers [WORKERS (2-%d) [JOBS]]", MAX_WORKERS);
	crash_job = njobs / 2;
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
			.capacity = 256, .msg_size = sizeof(struct report) })) < 0)
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
	 * Send jobs and collect reports in one loop: with both queues
	 * bounded, a producer that only sent would stop when "done" fills.
	 */
	while (distinct < njobs) {
		struct report r;
		ssize_t len;

		while (sent < njobs) {
			struct job j = { sent, sent };

			rc = shmq_send(jobs, &j, sizeof(j), 0);
			if (rc == -EAGAIN)
				break;          /* full: collect reports first */
			if (rc < 0)
				errx(1, "send: %s", shmq_strerror(rc));
			sent++;
		}
		len = shmq_recv(done, &r, sizeof(r), 30 * SECOND);
		if (len != (ssize_t)sizeof(r))
			errx(1, "FAILED: waiting for reports: %s", len < 0 ?
			     shmq_strerror((int)len) : "short message");
		if (r.id >= njobs || r.worker >= nworkers ||
		    r.result != r.id * 2 || seen[r.id]++) {
			bad++;                  /* wrong, or done twice */
			continue;
		}
		if (r.id == crash_job)
			crashed = r;
		distinct++;
	}

	/* One stop per survivor: the killed worker is gone by now. */
	for (i = 0; i < nworkers - 1; i++) {
		struct job stop = { STOP, 0 };

		rc = shmq_send(jobs, &stop, sizeof(stop), 30 * SECOND);
		if (rc < 0)
			errx(1, "send stop: %s", shmq_strerror(rc));
	}
	for (i = 0; i < nworkers; i++) {
		if (waitpid(pids[i], &status, 0) < 0)
			err(1, "waitpid");
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
			victim = (int)i;
			killed++;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			bad++;
		}
	}
	shmq_close(jobs);
	shmq_close(done);
	shmq_seg_close(seg);
	free(seen);
	if (bad || killed != 1 || crashed.deliveries != 2 ||
	    crashed.worker == (uint32_t)victim)
		errx(1, "FAILED: %u reports wrong or duplicated, or workers "
		     "failed; %u worker(s) killed; job %u done by worker %u "
		     "on delivery %u", bad, killed, crash_job, crashed.worker,
		     crashed.deliveries);
	printf("workers: worker %d was killed holding job %u; worker %u did "
	       "it on its 2nd delivery\n", victim, crash_job, crashed.worker);
	printf("workers: %u jobs, each done once by %u workers: ok\n",
	       njobs, nworkers);
	return 0;
}
