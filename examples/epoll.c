/* SPDX-License-Identifier: MIT */
/*
 * epoll.c - one event loop serving two queues and a timer.
 *
 *   cc -o epoll epoll.c $(pkg-config --cflags --libs shmq)
 *   ./epoll
 *
 * A service with a command queue and a data queue, and a periodic timer,
 * all in one epoll loop: a poll set (shmq_pollset_create) gives the two
 * queues one file descriptor that epoll watches beside a timerfd.  When
 * it is readable, shmq_pollset_ready() says which queues have messages;
 * the loop drains them without blocking and goes back to epoll_wait.
 *
 * The child process sends DATA_COUNT numbered data messages with pauses,
 * a command every 100, and "quit" last.  The parent checks that every
 * data message arrived once and in order, that every command arrived,
 * and that the timer ticked meanwhile; it exits 0 only then, and removes
 * its segment whatever happens (short of a signal that kills it: then
 * "mqctl -s epoll.PID destroy" removes /dev/shm/shmq.epoll.PID).
 */
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#define DATA_COUNT 1000
#define TICK_NS    5000000          /* the timer: every 5 ms */

static char seg_name[64];

static void remove_segment(void)
{
	shmq_seg_unlink(seg_name);
}

/* The child: DATA_COUNT data messages, a command every 100, then quit. */
static int client(void)
{
	shmq_seg *seg;
	shmq *cmd, *data;
	char msg[64];
	int i, len;

	if (shmq_seg_open(seg_name, &seg) < 0 ||
	    shmq_open(seg, "commands", &cmd) < 0 ||
	    shmq_open(seg, "data", &data) < 0) {
		warnx("client: cannot open the queues");
		return 1;
	}
	for (i = 0; i < DATA_COUNT; i++) {
		len = snprintf(msg, sizeof(msg), "%d", i);
		if (shmq_send(data, msg, (size_t)len, SHMQ_FOREVER) < 0)
			return 1;
		if (i % 100 == 99) {
			len = snprintf(msg, sizeof(msg), "checkpoint %d", i);
			if (shmq_send(cmd, msg, (size_t)len, SHMQ_FOREVER) < 0)
				return 1;
			usleep(3000);   /* the server goes back to sleep */
		}
	}
	if (shmq_send(cmd, "quit", 4, SHMQ_FOREVER) < 0)
		return 1;
	shmq_close(cmd);
	shmq_close(data);
	shmq_seg_close(seg);
	return 0;
}

/* The server's state, checked at the end. */
struct server {
	shmq *cmd, *data;
	int next_data;          /* the data message expected next */
	int commands;
	int ticks;
	int quit;
	int bad;
};

/* Take everything @q holds now (the poll set said it has something). */
static void drain(struct server *s, shmq *q)
{
	char buf[128];
	ssize_t n;

	while ((n = shmq_recv(q, buf, sizeof(buf) - 1, 0)) >= 0) {
		buf[n] = '\0';
		if (q == s->data) {
			if (atoi(buf) != s->next_data++)
				s->bad++;
		} else if (strcmp(buf, "quit") == 0) {
			s->quit = 1;
		} else {
			s->commands++;
		}
	}
	if (n != -EAGAIN)
		s->bad++;
}

static int serve(struct server *s)
{
	struct itimerspec its = { { 0, TICK_NS }, { 0, TICK_NS } };
	struct epoll_event ev, evs[4];
	struct shmq_pollq ready[2];
	shmq_pollset *ps;
	uint64_t expirations;
	int ep, tfd, rc, i, k, n;

	rc = shmq_pollset_create(&ps);
	if (rc < 0)
		errx(1, "pollset: %s", shmq_strerror(rc));
	if (shmq_pollset_add(ps, s->cmd, SHMQ_POLLIN) < 0 ||
	    shmq_pollset_add(ps, s->data, SHMQ_POLLIN) < 0)
		errx(1, "pollset add");
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (tfd < 0 || ep < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
		err(1, "timerfd/epoll");
	ev.events = EPOLLIN;
	ev.data.fd = shmq_pollset_fd(ps);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
		err(1, "epoll_ctl");
	ev.data.fd = tfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0)
		err(1, "epoll_ctl");

	while (!s->quit) {
		/* A 10 s limit, so that a lost wake-up fails instead of hanging. */
		n = epoll_wait(ep, evs, 4, 10000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			warnx("server: nothing for 10 s (%d data so far)",
			      s->next_data);
			s->bad++;
			break;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == tfd) {
				if (read(tfd, &expirations,
					 sizeof(expirations)) > 0)
					s->ticks += (int)expirations;
				continue;
			}
			/* The queues: which are ready (this also re-arms). */
			k = shmq_pollset_ready(ps, ready, 2);
			while (k-- > 0)
				drain(s, ready[k].q);
		}
	}
	close(ep);
	close(tfd);
	shmq_pollset_destroy(ps);
	return 0;
}

int main(void)
{
	struct server s = { 0 };
	shmq_seg *seg;
	pid_t pid;
	int rc, status;

	snprintf(seg_name, sizeof(seg_name), "epoll.%d", (int)getpid());
	rc = shmq_seg_create(seg_name, &(struct shmq_seg_attr){
		.size = 4 << 20 }, &seg);
	if (rc < 0)
		errx(1, "create %s: %s", seg_name, shmq_strerror(rc));
	atexit(remove_segment);
	if (shmq_create(seg, "commands", &(struct shmq_attr){
			.capacity = 16, .msg_size = 64 }) < 0 ||
	    shmq_create(seg, "data", &(struct shmq_attr){
			.capacity = 64, .msg_size = 64 }) < 0)
		errx(1, "create queues");
	if (shmq_open(seg, "commands", &s.cmd) < 0 ||
	    shmq_open(seg, "data", &s.data) < 0)
		errx(1, "open queues");

	/* Fork before the poll set starts its thread. */
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		err(1, "fork");
	if (pid == 0)
		_exit(client());

	serve(&s);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		s.bad++;
	printf("epoll: %d data messages in order, %d commands, quit; "
	       "%d timer ticks meanwhile\n", s.next_data, s.commands,
	       s.ticks);
	shmq_close(s.cmd);
	shmq_close(s.data);
	shmq_seg_close(seg);
	if (s.bad || s.next_data != DATA_COUNT ||
	    s.commands != DATA_COUNT / 100 || !s.ticks) {
		fprintf(stderr, "epoll: FAILED\n");
		return 1;
	}
	return 0;
}
