/* SPDX-License-Identifier: MIT */
/*
 * holder.c - a consumer that dies holding a message, and what recovery
 * does about it (the README's crash tour).
 *
 *   cc -o holder holder.c $(pkg-config --cflags --libs shmq)
 *   ./holder SEGMENT QUEUE   acquire the oldest message of QUEUE in place
 *                            (shmq_acquire), say so, and wait, holding it,
 *                            until killed
 *   ./holder                 the whole tour in one program, checked: a
 *                            segment of its own, two messages, a forked
 *                            holder SIGKILLed while it holds the first,
 *                            then shmq_seg_recover() and both messages
 *                            received, the held one first (it was
 *                            delivered again: at least once)
 *
 * The self-test exits 0 only if everything happened as described and
 * removes its segment whatever happens short of
 * a signal that kills it (see hello.c).
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

static char seg_name[64];

static void remove_segment(void)
{
	shmq_seg_unlink(seg_name);
}

/*
 * Acquire one message and hold it; tell @fd (or stdout) what it is, then
 * wait to be killed.  Returns only on failure.
 */
static int hold(const char *segment, const char *queue, int fd)
{
	struct shmq_msg m;
	shmq_seg *seg;
	shmq *q;
	char line[400];
	int rc, len;

	rc = shmq_seg_open(segment, &seg);
	if (rc < 0) {
		warnx("segment %s: %s", segment, shmq_strerror(rc));
		return 1;
	}
	rc = shmq_open(seg, queue, &q);
	if (rc < 0) {
		warnx("queue %s: %s", queue, shmq_strerror(rc));
		return 1;
	}
	rc = shmq_acquire(q, &m, SHMQ_FOREVER);
	if (rc < 0) {
		warnx("acquire: %s", shmq_strerror(rc));
		return 1;
	}
	len = snprintf(line, sizeof(line), "holder %d: holding '%.*s'\n",
		       (int)getpid(), (int)(m.len < 256 ? m.len : 256),
		       (const char *)m.data);
	if (write(fd, line, (size_t)len) != len)
		return 1;
	for (;;)
		pause();        /* never shmq_release(): we wait to be killed */
}

static void expect_recv(shmq *q, const char *want)
{
	char buf[256];
	ssize_t n = shmq_recv(q, buf, sizeof(buf) - 1, 0);

	if (n < 0)
		errx(1, "FAILED: expected '%s': %s", want, shmq_strerror((int)n));
	buf[n] = '\0';
	if (strcmp(buf, want) != 0)
		errx(1, "FAILED: received '%s', expected '%s'", buf, want);
	printf("received '%s'\n", buf);
}

static int self_test(void)
{
	struct shmq_queue_info info;
	shmq_seg *seg;
	shmq *q;
	char line[400];
	int fds[2], rc, status;
	ssize_t n;
	pid_t pid;

	snprintf(seg_name, sizeof(seg_name), "holder.%d", (int)getpid());
	rc = shmq_seg_create(seg_name, &(struct shmq_seg_attr){
		.size = 4 << 20 }, &seg);
	if (rc < 0)
		errx(1, "create %s: %s", seg_name, shmq_strerror(rc));
	atexit(remove_segment);
	rc = shmq_create(seg, "jobs", &(struct shmq_attr){ .capacity = 8 });
	if (rc < 0)
		errx(1, "create queue: %s", shmq_strerror(rc));
	if ((rc = shmq_open(seg, "jobs", &q)) < 0 ||
	    (rc = shmq_send(q, "job-1", 5, 0)) < 0 ||
	    (rc = shmq_send(q, "job-2", 5, 0)) < 0)
		errx(1, "send: %s", shmq_strerror(rc));
	shmq_close(q);
	shmq_seg_close(seg);    /* before fork: the child attaches itself */

	if (pipe(fds) < 0)
		err(1, "pipe");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		err(1, "fork");
	if (pid == 0) {
		close(fds[0]);
		_exit(hold(seg_name, "jobs", fds[1]));
	}
	close(fds[1]);
	n = read(fds[0], line, sizeof(line) - 1);
	if (n <= 0) {
		kill(pid, SIGKILL);
		errx(1, "FAILED: the holder did not acquire a message");
	}
	line[n] = '\0';
	fputs(line, stdout);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	printf("holder %d: killed (SIGKILL) while holding it\n", (int)pid);

	/* Attaching also recovers; recover explicitly to see the count. */
	rc = shmq_seg_open(seg_name, &seg);
	if (rc < 0)
		errx(1, "open: %s", shmq_strerror(rc));
	rc = shmq_seg_recover(seg);
	if (rc < 0)
		errx(1, "recover: %s", shmq_strerror(rc));
	rc = shmq_queue_stat(seg, "jobs", &info);
	if (rc < 0)
		errx(1, "stat: %s", shmq_strerror(rc));
	printf("recovered: %llu redelivered, %llu in the redelivery lane, "
	       "depth %llu\n", (unsigned long long)info.redelivered,
	       (unsigned long long)info.lane_depth,
	       (unsigned long long)info.depth);
	if (info.redelivered != 1 || info.lane_depth != 1 || info.depth != 2)
		errx(1, "FAILED: expected 1 redelivered, 1 in the lane, depth 2");

	rc = shmq_open(seg, "jobs", &q);
	if (rc < 0)
		errx(1, "open queue: %s", shmq_strerror(rc));
	expect_recv(q, "job-1");        /* the held one, delivered again */
	expect_recv(q, "job-2");
	shmq_close(q);
	shmq_seg_close(seg);
	printf("holder: a message held by a killed consumer was delivered "
	       "again: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3)
		return hold(argv[1], argv[2], STDOUT_FILENO);
	if (argc != 1)
		errx(2, "usage: holder [SEGMENT QUEUE]");
	return self_test();
}
