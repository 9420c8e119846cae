/* SPDX-License-Identifier: MIT */
/*
 * pubsub.c - publish/subscribe through a topic exchange.
 *
 *   cc -o pubsub pubsub.c $(pkg-config --cflags --libs shmq)
 *   ./pubsub
 *
 * A topic exchange "events" routes each message by its routing key, words
 * separated by dots.  Two subscriber processes each create a private
 * queue (SHMQ_AUTODELETE: it goes away, with its bindings, when its
 * subscriber closes it or dies) and bind it with wildcards: "*" matches
 * exactly one word, "#" zero or more.
 *
 *   subscriber "eu"     binds  orders.eu.*   and  alerts.#
 *   subscriber "errors" binds  *.*.error     and  alerts.#
 *
 * The publisher (the parent) publishes six messages; each subscriber
 * prints what it receives with its key and checks that it got exactly
 * the keys its bindings match, in order.  Exits 0 only if both did.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#define SECOND 1000000000LL

static char seg_name[64];
static pid_t owner;             /* the process that removes the segment */

static void remove_segment(void)
{
	/* A subscriber's errx() runs this too: only the creator unlinks. */
	if (getpid() == owner)
		shmq_seg_unlink(seg_name);
}

struct sub {
	const char *name;
	const char *bindings[2];
	const char *expect[6];  /* the keys it must receive, in order */
};

static const struct sub subs[2] = {
	{ "eu", { "orders.eu.*", "alerts.#" },
	  { "orders.eu.created", "alerts", "orders.eu.error", "alerts.disk.full",
	    NULL } },
	{ "errors", { "*.*.error", "alerts.#" },
	  { "alerts", "orders.eu.error", "payments.us.error",
	    "alerts.disk.full", NULL } },
};

static const char *const published[] = {
	"orders.eu.created", "orders.us.created", "alerts",
	"orders.eu.error", "payments.us.error", "alerts.disk.full",
};

/* A subscriber: its own queue and bindings, then receive until "stop". */
static int subscriber(const struct sub *s, int ready_fd)
{
	struct shmq_attr a = { .capacity = 16, .msg_size = 256,
			       .flags = SHMQ_AUTODELETE };
	struct shmq_meta meta;
	char qname[32], buf[128];
	shmq_seg *seg;
	shmq *q;
	int rc, i, n = 0;

	if ((rc = shmq_seg_open(seg_name, &seg)) < 0)
		errx(1, "%s: %s", s->name, shmq_strerror(rc));
	snprintf(qname, sizeof(qname), "sub.%s", s->name);
	if ((rc = shmq_create(seg, qname, &a)) < 0 ||
	    (rc = shmq_open(seg, qname, &q)) < 0)
		errx(1, "%s: queue: %s", s->name, shmq_strerror(rc));
	for (i = 0; i < 2; i++)
		if ((rc = shmq_bind(seg, "events", qname, s->bindings[i])) < 0)
			errx(1, "%s: bind: %s", s->name, shmq_strerror(rc));
	/* Bound: messages published from now on reach us. */
	if (write(ready_fd, "r", 1) != 1)
		err(1, "%s: pipe", s->name);
	for (;;) {
		ssize_t len = shmq_recv_meta(q, buf, sizeof(buf) - 1, &meta,
					     10 * SECOND);

		if (len < 0)
			errx(1, "%s: recv: %s", s->name, shmq_strerror((int)len));
		buf[len] = 0;
		if (strcmp(buf, "stop") == 0)
			break;
		printf("[%s] %-18s %s\n", s->name, meta.key, buf);
		if (!s->expect[n] || strcmp(meta.key, s->expect[n]) != 0)
			errx(1, "%s: did not expect %s", s->name, meta.key);
		n++;
	}
	if (s->expect[n])
		errx(1, "%s: %s never came", s->name, s->expect[n]);
	/* The last close unlinks the private queue and its bindings. */
	shmq_close(q);
	shmq_seg_close(seg);
	return 0;
}

int main(void)
{
	struct shmq_xattr xa = { .type = SHMQ_TOPIC };
	struct shmq_seg_attr sa = { .size = 1 << 20 };
	struct shmq_binding_info b;
	shmq_exchange *x;
	shmq_seg *seg;
	pid_t pid[2];
	int fds[2], rc, i, status, failed = 0;
	char c;

	owner = getpid();
	snprintf(seg_name, sizeof(seg_name), "pubsub.%d", (int)owner);
	if ((rc = shmq_seg_create(seg_name, &sa, &seg)) < 0)
		errx(1, "create: %s", shmq_strerror(rc));
	atexit(remove_segment);
	if ((rc = shmq_exchange_create(seg, "events", &xa)) < 0 ||
	    (rc = shmq_exchange_open(seg, "events", &x)) < 0)
		errx(1, "exchange: %s", shmq_strerror(rc));
	if (pipe(fds) < 0)
		err(1, "pipe");
	fflush(stdout);
	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			err(1, "fork");
		if (pid[i] == 0) {
			close(fds[0]);
			/* exit(), not _exit(): stdout is flushed. */
			exit(subscriber(&subs[i], fds[1]));
		}
	}
	close(fds[1]);
	/* Wait until both subscribers are bound. */
	for (i = 0; i < 2; i++)
		if (read(fds[0], &c, 1) != 1)
			errx(1, "a subscriber failed to start");
	close(fds[0]);

	for (i = 0; i < 6; i++) {
		char msg[64];

		snprintf(msg, sizeof(msg), "message %d", i + 1);
		/* How many queues got it: 0 if no binding matches. */
		rc = shmq_publish(x, published[i], msg, strlen(msg), SECOND);
		if (rc < 0)
			errx(1, "publish: %s", shmq_strerror(rc));
		printf("published %-18s -> %d queue(s)\n", published[i], rc);
	}
	/* "alerts.#" reaches both: a stop message for each. */
	if ((rc = shmq_publish(x, "alerts.stop", "stop", 4, SECOND)) != 2)
		errx(1, "stop: %d", rc);
	for (i = 0; i < 2; i++) {
		if (waitpid(pid[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			failed = 1;
	}
	/* The private queues went with their subscribers' last close. */
	rc = shmq_binding_list(seg, "events", &b, 1);
	if (rc != 0) {
		warnx("%d binding(s) outlived their subscribers", rc);
		failed = 1;
	}
	shmq_exchange_close(x);
	shmq_seg_close(seg);
	puts(failed ? "pubsub: FAILED" : "pubsub: ok");
	return failed;
}
