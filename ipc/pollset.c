/* SPDX-License-Identifier: MIT */
/*
 * pollset.c - a poll set for event loops: an eventfd that becomes
 * readable when a queue of the set is ready.
 *
 * Futexes have no file descriptor, so a thread does the waiting: it runs
 * shmq_poll's engine (poll.c, no spin) over a copy of the set, also
 * sleeping on the set's private control word `ctl`, and when a queue is
 * ready it disarms itself and writes the eventfd.  The event loop sees
 * the descriptor readable and calls shmq_pollset_ready(), which reads the
 * eventfd, scans the set once (timeout 0) and re-arms the thread.  While
 * a queue stays ready the re-armed thread signals again at once: in
 * effect level-triggered, one thread wake-up late.
 *
 * The control word.  Every change the thread must notice (add, del,
 * re-arm, destroy) is made under `lock` and then bumps `ctl` and wakes
 * it (FUTEX_WAKE, private).  The thread reads `ctl` under the lock with
 * the state it copies; its sleep (futex_waitv, or FUTEX_WAIT while
 * disarmed) includes `ctl` with that value, so a change made after the
 * copy either makes the sleep fail at once (EAGAIN) or wakes it.
 *
 * Threads.  The API calls take `lock`; the thread takes it only to copy
 * the set and to disarm.  A handle in the set must stay open until it is
 * removed (as with epoll and a closed descriptor, but here it is a use
 * after free): shmq_pollset_del() returns only when the thread no longer
 * uses the handle (it waits for the thread's poll to end).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "poller.h"

#define THREAD_STACK (128 * 1024)

struct shmq_pollset {
	pthread_mutex_t lock;
	pthread_cond_t idle;            /* the thread finished a poll */
	struct shmq_pollq set[SHMQ_POLL_MAX];
	unsigned n;
	bool armed;                     /* the thread may signal */
	bool stop;
	bool busy;                      /* the thread polls a copy of the set */
	uint64_t gen;                   /* bumped by del */
	uint64_t busy_gen;              /* gen of the thread's copy */
	_Atomic uint32_t ctl;           /* private futex word, see the top */
	int efd;
	pthread_t thread;
};

static void ctl_bump(shmq_pollset *ps)
{
	/* release: the change made under the lock before it (ctl_moved()). */
	atomic_fetch_add_explicit(&ps->ctl, 1, memory_order_release);
	syscall(SYS_futex, &ps->ctl, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1,
		NULL, NULL, 0);
}

static void *pollset_thread(void *arg)
{
	shmq_pollset *ps = arg;
	struct shmq_pollq set[SHMQ_POLL_MAX];
	struct poll_ctl x = { &ps->ctl, 0 };
	uint64_t one = 1;
	unsigned n;
	int rc;

	for (;;) {
		pthread_mutex_lock(&ps->lock);
		ps->busy = false;
		pthread_cond_broadcast(&ps->idle);
		if (ps->stop) {
			pthread_mutex_unlock(&ps->lock);
			return NULL;
		}
		/* relaxed: under the lock, which orders it with the changes. */
		x.val = atomic_load_explicit(&ps->ctl, memory_order_relaxed);
		n = ps->armed ? ps->n : 0;
		memcpy(set, ps->set, n * sizeof(set[0]));
		ps->busy = n != 0;
		ps->busy_gen = ps->gen;
		pthread_mutex_unlock(&ps->lock);
		if (!n) {
			/* Disarmed or empty: until the next change. */
			syscall(SYS_futex, &ps->ctl,
				FUTEX_WAIT | FUTEX_PRIVATE_FLAG, x.val, NULL,
				NULL, 0);
			continue;
		}
		rc = shmq__poll(set, n, SHMQ_FOREVER, false, &x);
		if (rc <= 0)
			continue;       /* the set changed (or cannot be) */
		pthread_mutex_lock(&ps->lock);
		/* relaxed: under the lock, as above. */
		if (atomic_load_explicit(&ps->ctl, memory_order_relaxed) ==
		    x.val)
			ps->armed = false;
		else
			rc = 0;         /* changed meanwhile: look again */
		pthread_mutex_unlock(&ps->lock);
		/* Nonblocking; a full counter (2^64 - 2) is readable anyway. */
		if (rc > 0 && write(ps->efd, &one, sizeof(one)) < 0)
			continue;
	}
}

int shmq_pollset_create(shmq_pollset **out)
{
	shmq_pollset *ps;
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	if (!out)
		return -EINVAL;
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->armed = true;
	ps->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ps->efd < 0) {
		rc = -errno;
		free(ps);
		return rc;
	}
	pthread_mutex_init(&ps->lock, NULL);
	pthread_cond_init(&ps->idle, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	/* The thread inherits a mask that blocks every signal. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&ps->thread, &attr, pollset_thread, ps);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		close(ps->efd);
		pthread_cond_destroy(&ps->idle);
		pthread_mutex_destroy(&ps->lock);
		free(ps);
		return rc;
	}
	*out = ps;
	return 0;
}

void shmq_pollset_destroy(shmq_pollset *ps)
{
	if (!ps)
		return;
	pthread_mutex_lock(&ps->lock);
	ps->stop = true;
	ctl_bump(ps);
	pthread_mutex_unlock(&ps->lock);
	pthread_join(ps->thread, NULL);
	close(ps->efd);
	pthread_cond_destroy(&ps->idle);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
}

static bool events_ok(uint32_t events)
{
	return events && !(events & ~(SHMQ_POLLIN | SHMQ_POLLOUT));
}

int shmq_pollset_add(shmq_pollset *ps, shmq *q, uint32_t events)
{
	unsigned i;
	int rc = 0;

	if (!ps || !q || !events_ok(events))
		return -EINVAL;
	pthread_mutex_lock(&ps->lock);
	for (i = 0; i < ps->n && ps->set[i].q != q; i++)
		;
	if (i == ps->n && ps->n == SHMQ_POLL_MAX) {
		rc = -ENOSPC;
	} else {
		ps->set[i].q = q;
		ps->set[i].events = events;
		ps->set[i].revents = 0;
		if (i == ps->n)
			ps->n++;
		ctl_bump(ps);
	}
	pthread_mutex_unlock(&ps->lock);
	return rc;
}

int shmq_pollset_del(shmq_pollset *ps, shmq *q)
{
	unsigned i;
	int rc = 0;

	if (!ps || !q)
		return -EINVAL;
	pthread_mutex_lock(&ps->lock);
	for (i = 0; i < ps->n && ps->set[i].q != q; i++)
		;
	if (i == ps->n) {
		rc = -ENOENT;
	} else {
		memmove(&ps->set[i], &ps->set[i + 1],
			(ps->n - i - 1) * sizeof(ps->set[0]));
		ps->n--;
		ps->gen++;
		ctl_bump(ps);
		/* A copy older than this may name @q: wait until it goes. */
		while (ps->busy && ps->busy_gen != ps->gen)
			pthread_cond_wait(&ps->idle, &ps->lock);
	}
	pthread_mutex_unlock(&ps->lock);
	return rc;
}

int shmq_pollset_fd(const shmq_pollset *ps)
{
	return ps ? ps->efd : -EINVAL;
}

int shmq_pollset_ready(shmq_pollset *ps, struct shmq_pollq *out, unsigned n)
{
	struct shmq_pollq set[SHMQ_POLL_MAX];
	uint64_t cnt;
	unsigned i, k = 0, m;
	int rc;

	if (!ps || !out || n == 0)
		return -EINVAL;
	/* Clear first: a signal after this read is for a later state. */
	if (read(ps->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&ps->lock);
	m = ps->n;
	memcpy(set, ps->set, m * sizeof(set[0]));
	if (m) {
		rc = shmq__poll(set, m, 0, false, NULL);
		for (i = 0; rc > 0 && i < m && k < n; i++)
			if (set[i].revents)
				out[k++] = set[i];
	}
	/* Re-arm: the thread looks again, and signals if still ready. */
	ps->armed = true;
	ctl_bump(ps);
	pthread_mutex_unlock(&ps->lock);
	return (int)k;
}
