/* SPDX-License-Identifier: MIT */
/*
 * hello.c - one producer process, one consumer process, one queue.
 *
 *   cc -o hello hello.c $(pkg-config --cflags --libs shmq)
 *   ./hello
 *
 * The parent creates a segment and a queue in it, then forks: the child
 * receives, the parent sends.  Each process attaches on its own (a forked
 * child never uses its parent's handles).  The consumer checks every
 * message; the program exits 0 only if all arrived intact and in order,
 * and removes its segment whatever happens.
 * (Whatever happens short of a signal that kills it: then
 * /dev/shm/shmq.hello.PID stays, and "mqctl -s hello.PID destroy"
 * removes it.  The library's calls are not async-signal-safe, so the
 * examples do not clean up from signal handlers.)
 */
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#define COUNT 5

static char seg_name[64];

static void remove_segment(void)
{
	shmq_seg_unlink(seg_name);
}

/* The child: attach, open the queue, receive COUNT messages in order. */
static int consumer(void)
{
	shmq_seg *seg;
	shmq *q;
	char buf[256], want[64];
	int i, rc;

	rc = shmq_seg_open(seg_name, &seg);
	if (rc < 0) {
		warnx("consumer: open %s: %s", seg_name, shmq_strerror(rc));
		return 1;
	}
	rc = shmq_open(seg, "greetings", &q);
	if (rc < 0) {
		warnx("consumer: open queue: %s", shmq_strerror(rc));
		shmq_seg_close(seg);
		return 1;
	}
	for (i = 0; i < COUNT; i++) {
		/* Wait at most 5 s for each message. */
		ssize_t n = shmq_recv(q, buf, sizeof(buf) - 1,
				      5 * 1000000000LL);

		if (n < 0) {
			warnx("consumer: recv: %s", shmq_strerror((int)n));
			break;
		}
		buf[n] = '\0';
		snprintf(want, sizeof(want), "hello %d", i);
		if (strcmp(buf, want) != 0) {
			warnx("consumer: got '%s', expected '%s'", buf, want);
			break;
		}
		printf("consumer %d: received '%s'\n", (int)getpid(), buf);
		fflush(stdout);
	}
	shmq_close(q);
	shmq_seg_close(seg);
	return i == COUNT ? 0 : 1;
}

int main(void)
{
	shmq_seg *seg;
	shmq *q;
	pid_t pid;
	int i, rc, status;

	/* A name of our own, so that two runs never meet. */
	snprintf(seg_name, sizeof(seg_name), "hello.%d", (int)getpid());

	/* 16 MiB; a NULL attr means 64 MiB, mode 0600. */
	rc = shmq_seg_create(seg_name, &(struct shmq_seg_attr){
		.size = 16 << 20 }, &seg);
	if (rc < 0)
		errx(1, "create %s: %s", seg_name, shmq_strerror(rc));
	atexit(remove_segment);     /* /dev/shm/shmq.hello.PID goes at exit */

	rc = shmq_create(seg, "greetings", &(struct shmq_attr){
		.capacity = 64, .msg_size = 128 });
	if (rc < 0)
		errx(1, "create queue: %s", shmq_strerror(rc));
	shmq_seg_close(seg);        /* detach before fork: each side attaches */

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		err(1, "fork");
	if (pid == 0)
		_exit(consumer());  /* _exit: the parent's atexit is not ours */

	/* The parent: the producer. */
	rc = shmq_seg_open(seg_name, &seg);
	if (rc < 0)
		errx(1, "open %s: %s", seg_name, shmq_strerror(rc));
	rc = shmq_open(seg, "greetings", &q);
	if (rc < 0)
		errx(1, "open queue: %s", shmq_strerror(rc));
	for (i = 0; i < COUNT; i++) {
		char msg[64];
		int len = snprintf(msg, sizeof(msg), "hello %d", i);

		/* Blocks while the queue is full. */
		rc = shmq_send(q, msg, (size_t)len, SHMQ_FOREVER);
		if (rc < 0)
			errx(1, "send: %s", shmq_strerror(rc));
	}
	shmq_close(q);
	shmq_seg_close(seg);

	if (waitpid(pid, &status, 0) < 0)
		err(1, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		errx(1, "FAILED: the consumer did not get all %d messages", COUNT);
	printf("hello: %d messages from process %d to process %d: ok\n",
	       COUNT, (int)getpid(), (int)pid);
	return 0;
}
