/* SPDX-License-Identifier: MIT */
/*
 * poll.c - shmq_poll(): wait until one of several queues is ready.
 *
 * A poller waits on a set of event counts (ring.h, struct shmq_event):
 * not_empty for SHMQ_POLLIN, not_full for SHMQ_POLLOUT.  The protocol is
 * the ordinary waiter's (wait.c) made plural, on the pollers' own futex
 * word pseq; its argument, and how pollers and ordinary waiters keep out
 * of each other's way, are at the top of wait.c ("Pollers"):
 *
 *   1. scan: every entry's readiness; return if any
 *   2. spin: scan for the largest spin budget of the set's handles
 *   3. plan: the sleep's end (deadline, stall checks, fallback steps)
 *   4. announce on each distinct event: P1 waiters += WAITERS_POLLER,
 *      P2 pollers++ (remember its epoch)
 *   5. F2 (seq_cst fence); M (membarrier) if a queue is SPSC
 *   6. A4: v = pseq, then the epoch: taken by a notifier?  Then retry
 *   7. re-check (scan); if ready: withdraw, return
 *   8. futex_waitv on every pseq (and the poll set's control word)
 *   9. withdraw (each announcement whose epoch is still current), scan
 *
 * Without futex_waitv (ENOSYS, or SHMQ_POLL_FALLBACK=1 in the
 * environment), step 8 waits on one word only, exactly when there is only
 * one, else in bounded steps (FALLBACK_MIN_NS doubling to FALLBACK_MAX_NS)
 * after which it scans again: correct, since every announcement stays in
 * place, only up to a step late for the other queues.
 *
 * A process killed here.  Before P1: nothing.  Asleep or between P2 and
 * the withdrawal: its announcements are taken by the next notifier of
 * each queue (one FUTEX_WAKE each).  Between P1 and P2, or between the
 * two halves of a withdrawal (one instruction apart): a stale
 * WAITERS_POLLER in waiters, see wait.c ("Residual").
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <urcu/arch.h>

#include "ack.h"
#include "poller.h"
#include "spsc.h"
#include "wait.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif
#define WAITV_MAX 128                   /* the kernel's FUTEX_WAITV_MAX */

/* One futex_waitv(2) entry (linux/futex.h since 5.16). */
struct waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};

#define FALLBACK_MIN_NS 100000ull
#define FALLBACK_MAX_NS 1000000ull
/* As wait.c: SPSC first sleep guard, and bounded sleeps without M. */
#define SPSC_GUARD_NS   1000000ull
#define SPIN_CHECK_EVERY 8
#define SPIN_YIELD_AFTER_NS 10000

/* 1: futex_waitv works; -1: ENOSYS or forced off; 0: not known yet. */
static _Atomic int waitv_state;

/* Sleeps taken by polls, and those without futex_waitv (for the tests). */
static _Atomic uint64_t poll_sleeps, fallback_sleeps;

uint64_t shmq__poll_sleeps(void)
{
	/* relaxed: a count for tests. */
	return atomic_load_explicit(&poll_sleeps, memory_order_relaxed);
}

uint64_t shmq__poll_fallback_sleeps(void)
{
	/* relaxed: a count for tests. */
	return atomic_load_explicit(&fallback_sleeps, memory_order_relaxed);
}

void shmq__poll_force_fallback(bool on)
{
	/* relaxed: a process-wide switch for tests, read on each sleep. */
	atomic_store_explicit(&waitv_state, on ? -1 : 0, memory_order_relaxed);
}

static bool waitv_usable(void)
{
	/* relaxed: a cached answer; a race only asks twice. */
	int st = atomic_load_explicit(&waitv_state, memory_order_relaxed);

	if (st == 0) {
		const char *f = getenv("SHMQ_POLL_FALLBACK");

		st = f && *f && *f != '0' ? -1 : 1;
		/* relaxed: as the load above. */
		atomic_store_explicit(&waitv_state, st, memory_order_relaxed);
	}
	return st > 0;
}

/* One distinct event count the poller announces itself on. */
struct pwait {
	shmq *q;
	struct shmq_event *ev;
	uint64_t epoch;         /* of our announcement (P2) */
	uint32_t v;             /* pseq as A4 read it */
	bool send;              /* not_full (SHMQ_POLLOUT) */
};

static bool entry_side_ready(shmq *q, bool send)
{
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_poll_ready(q, send ? SPSC_SEND : SPSC_RECV);
	return shmq__ring_ready(q, send);
}

/* Step 1: set every revents; how many entries are ready. */
static int scan(struct shmq_pollq *set, unsigned n)
{
	unsigned i;
	int k = 0;

	for (i = 0; i < n; i++) {
		uint32_t r = 0;

		if ((set[i].events & SHMQ_POLLIN) &&
		    entry_side_ready(set[i].q, false))
			r |= SHMQ_POLLIN;
		if ((set[i].events & SHMQ_POLLOUT) &&
		    entry_side_ready(set[i].q, true))
			r |= SHMQ_POLLOUT;
		set[i].revents = r;
		k += r != 0;
	}
	return k;
}

static bool deadline_passed(uint64_t abs_ns)
{
	return abs_ns && shmq__now_ns(CLOCK_MONOTONIC) >= abs_ns;
}

/* Step 2: scan for up to the largest spin budget.  How many are ready. */
static int spin(struct shmq_pollq *set, unsigned n, uint64_t abs_ns)
{
	int64_t budget = 0, b;
	uint64_t start, now;
	unsigned i;
	int k;

	for (i = 0; i < n; i++) {
		/* relaxed: a tuning knob; any recent value will do. */
		b = atomic_load_explicit(&set[i].q->spin_ns,
					 memory_order_relaxed);
		if (b > budget)
			budget = b;
	}
	if (budget <= 0)
		return 0;
	start = shmq__now_ns(CLOCK_MONOTONIC);
	for (;;) {
		for (i = 0; i < SPIN_CHECK_EVERY; i++) {
			k = scan(set, n);
			if (k)
				return k;
			caa_cpu_relax();
		}
		now = shmq__now_ns(CLOCK_MONOTONIC);
		if (now - start >= (uint64_t)budget || (abs_ns && now >= abs_ns))
			return 0;
		if (now - start >= SPIN_YIELD_AFTER_NS)
			sched_yield();
	}
}

/* The distinct event counts of the set, in order.  How many. */
static unsigned events_of(const struct shmq_pollq *set, unsigned n,
			  struct pwait *w)
{
	unsigned i, j, nw = 0, d;

	for (i = 0; i < n; i++) {
		for (d = 0; d < 2; d++) {
			bool send = d == 1;
			struct shmq_event *ev;

			if (!(set[i].events & (send ? SHMQ_POLLOUT : SHMQ_POLLIN)))
				continue;
			ev = send ? &set[i].q->hdr->not_full :
				    &set[i].q->hdr->not_empty;
			for (j = 0; j < nw && w[j].ev != ev; j++)
				;
			if (j < nw)
				continue;       /* the same queue twice */
			w[nw].q = set[i].q;
			w[nw].ev = ev;
			w[nw].send = send;
			nw++;
		}
	}
	return nw;
}

/* Step 4 (P1, P2) for every event. */
static void announce(struct pwait *w, unsigned nw)
{
	unsigned i;

	for (i = 0; i < nw; i++) {
		/* P1: seq_cst RMW; the notifiers' fast path sees us. */
		atomic_fetch_add_explicit(&w[i].ev->waiters, WAITERS_POLLER,
					  memory_order_seq_cst);
		/*
		 * P2: seq_cst RMW, after P1; pairs with P3 (wait.c): a
		 * notifier that takes this count subtracts our P1.
		 */
		w[i].epoch = atomic_fetch_add_explicit(&w[i].ev->pollers, 1,
						       memory_order_seq_cst) >>
			     POLLERS_EPOCH_SHIFT;
	}
}

/*
 * Step 6: A4 on every event, then the epoch behind it.  True when some
 * announcement was already taken by a notifier: the caller must not
 * sleep on it uncounted, and retries instead.
 */
static bool load_pseq(struct pwait *w, unsigned nw)
{
	bool taken = false;
	unsigned i;

	for (i = 0; i < nw; i++) {
		/* A4: acquire; pairs with R6 in wake_pollers(). */
		w[i].v = atomic_load_explicit(&w[i].ev->pseq,
					      memory_order_acquire);
		/*
		 * relaxed: after A4; if A4 read R6's value, P3 (before R6)
		 * happened before this load and it sees the new epoch.
		 */
		if ((atomic_load_explicit(&w[i].ev->pollers,
					  memory_order_relaxed) >>
		     POLLERS_EPOCH_SHIFT) != w[i].epoch)
			taken = true;
	}
	return taken;
}

/* Step 9: withdraw every announcement no notifier has taken. */
static void withdraw(struct pwait *w, unsigned nw)
{
	unsigned i;

	for (i = 0; i < nw; i++) {
		/* relaxed: the CAS below decides against P3. */
		uint64_t p = atomic_load_explicit(&w[i].ev->pollers,
						  memory_order_relaxed);

		while ((p >> POLLERS_EPOCH_SHIFT) == w[i].epoch &&
		       (p & POLLERS_COUNT_MASK)) {
			/*
			 * relaxed: one RMW order on the word decides whether
			 * P3 took us (then it subtracted our P1) or we leave.
			 */
			if (atomic_compare_exchange_weak_explicit(
					&w[i].ev->pollers, &p, p - 1,
					memory_order_relaxed,
					memory_order_relaxed)) {
				/* relaxed: as an ordinary waiter's leaving. */
				atomic_fetch_sub_explicit(&w[i].ev->waiters,
							  WAITERS_POLLER,
							  memory_order_relaxed);
				break;
			}
		}
	}
}

static struct timespec *abs_ts(uint64_t abs_ns, struct timespec *ts)
{
	if (!abs_ns)
		return NULL;
	ts->tv_sec = (time_t)(abs_ns / 1000000000ull);
	ts->tv_nsec = (long)(abs_ns % 1000000000ull);
	return ts;
}

/*
 * Step 8 without futex_waitv: one word (shared, or @x's private one),
 * until @until.  Returns like futex_waitv: >= 0 or -1 with errno.
 */
static int wait_one(_Atomic uint32_t *word, uint32_t v, bool private,
		    uint64_t until)
{
	struct timespec ts;

	return (int)syscall(SYS_futex, word, FUTEX_WAIT_BITSET |
			    (private ? FUTEX_PRIVATE_FLAG : 0), v,
			    abs_ts(until, &ts), NULL, FUTEX_BITSET_MATCH_ANY);
}

/*
 * Step 8: sleep on every event of @w (and @x) until a wake-up, a signal
 * or @until.  Spurious returns are harmless: the caller scans again.
 */
static void sleep_all(struct pwait *w, unsigned nw,
		      const struct poll_ctl *x, uint64_t until,
		      uint64_t *fb_ns)
{
	struct waitv wv[WAITV_MAX];
	struct timespec ts;
	unsigned i, k = 0;
	uint64_t now;
	long rc;

	/* relaxed: a count for tests. */
	atomic_fetch_add_explicit(&poll_sleeps, 1, memory_order_relaxed);
	if (waitv_usable() && nw + (x != NULL) <= WAITV_MAX) {
		for (i = 0; i < nw; i++) {
			/* Shared futexes: the notifiers are other processes. */
			wv[k].val = w[i].v;
			wv[k].uaddr = (uint64_t)(uintptr_t)&w[i].ev->pseq;
			wv[k].flags = FUTEX_32;
			wv[k].reserved = 0;
			k++;
		}
		if (x) {
			wv[k].val = x->val;
			wv[k].uaddr = (uint64_t)(uintptr_t)x->word;
			wv[k].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
			wv[k].reserved = 0;
			k++;
		}
		/*
		 * Sleeps only while every word holds its value.  Returns the
		 * index of a word woken, or -1 with EAGAIN (a word moved: a
		 * wake-up came first), EINTR, ETIMEDOUT, or ENOSYS (an older
		 * kernel: use the fallback from now on).
		 */
		rc = syscall(SYS_futex_waitv, wv, k, 0, abs_ts(until, &ts),
			     CLOCK_MONOTONIC);
		if (rc >= 0 || errno != ENOSYS)
			return;
		/* relaxed: as in waitv_usable(). */
		atomic_store_explicit(&waitv_state, -1, memory_order_relaxed);
	}
	/* relaxed: a count for tests. */
	atomic_fetch_add_explicit(&fallback_sleeps, 1, memory_order_relaxed);
	/* The fallback: one word exactly, several in bounded steps. */
	if (nw == 1 && !x) {
		wait_one(&w[0].ev->pseq, w[0].v, false, until);
		return;
	}
	now = shmq__now_ns(CLOCK_MONOTONIC);
	if (!until || until > now + *fb_ns)
		until = now + *fb_ns;
	if (*fb_ns < FALLBACK_MAX_NS)
		*fb_ns *= 2;
	if (nw)
		wait_one(&w[0].ev->pseq, w[0].v, false, until);
	else
		wait_one(x->word, x->val, true, until);
}

/* Step 3, part: bound the sleep by any stuck queue's stall check. */
static uint64_t stall_bound(struct pwait *w, unsigned nw)
{
	uint64_t best = 0, b;
	unsigned i;

	for (i = 0; i < nw; i++) {
		if (w[i].q->flags & SHMQ_SPSC)
			continue;       /* nothing is ever stuck there */
		b = shmq__stall_check(w[i].q, w[i].send ? shmq__ring_stuck_send
						       : shmq__ring_stuck_recv);
		if (b && (!best || b < best))
			best = b;
		/* A receiver of a watched queue probes for dead owners. */
		if (!w[i].send && (b = shmq__ack_probe(w[i].q)) &&
		    (!best || b < best))
			best = b;
	}
	return best;
}

static bool ctl_moved(const struct poll_ctl *x)
{
	/* acquire: the poll set's change (under its mutex) came first. */
	return x && atomic_load_explicit(x->word, memory_order_acquire) !=
		    x->val;
}

int shmq__poll(struct shmq_pollq *set, unsigned n, int64_t timeout_ns,
	       bool spin_ok, const struct poll_ctl *x)
{
	struct pwait w[2 * SHMQ_POLL_MAX];
	uint64_t abs_ns = 0, until, b, fb_ns = FALLBACK_MIN_NS, now;
	bool spsc = false, guard = true, taken;
	unsigned nw, i;
	int k;

	k = scan(set, n);
	if (k)
		return k;
	if (timeout_ns == 0)
		return -EAGAIN;
	if (timeout_ns != SHMQ_FOREVER)
		abs_ns = shmq__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ns;
	if (spin_ok) {
		k = spin(set, n, abs_ns);
		if (k)
			return k;
	}
	nw = events_of(set, n, w);
	for (i = 0; i < nw; i++)
		spsc |= (w[i].q->flags & SHMQ_SPSC) != 0;
	for (;;) {
		if (ctl_moved(x))
			return 0;
		if (deadline_passed(abs_ns))
			return -ETIMEDOUT;
		/* Step 3: the sleep ends at the deadline, or sooner. */
		until = abs_ns;
		b = stall_bound(w, nw);
		now = shmq__now_ns(CLOCK_MONOTONIC);
		if (b && (!until || now + b < until))
			until = now + b;
		/* Steps 4 and 5. */
		announce(w, nw);
		/* F2: seq_cst; pairs with F1 in shmq__notify(), as wait.c's. */
		atomic_thread_fence(memory_order_seq_cst);
		if (spsc) {
			/* M: see spsc.c; bounded sleeps when it fails. */
			uint64_t cap = shmq__spsc_membarrier() ?
				       (guard ? SPSC_GUARD_NS : 0) :
				       SPSC_GUARD_NS;

			guard = false;
			if (cap && (!until || now + cap < until))
				until = now + cap;
		}
		/* Steps 6 and 7. */
		taken = load_pseq(w, nw);
		k = scan(set, n);
		if (!k && !taken && !ctl_moved(x)) {
			for (i = 0; i < nw; i++)
				/* relaxed: a statistic. */
				atomic_fetch_add_explicit(&w[i].q->hdr->sleeps,
							  1,
							  memory_order_relaxed);
			sleep_all(w, nw, x, until, &fb_ns);
		}
		/* Step 9. */
		withdraw(w, nw);
		if (!k)
			k = scan(set, n);
		if (k)
			return k;
	}
}

int shmq_poll(struct shmq_pollq *set, unsigned n, int64_t timeout_ns)
{
	unsigned i;

	if (!set || n == 0 || n > SHMQ_POLL_MAX || timeout_ns < SHMQ_FOREVER)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!set[i].q || !set[i].events ||
		    (set[i].events & ~(SHMQ_POLLIN | SHMQ_POLLOUT)))
			return -EINVAL;
		set[i].revents = 0;
	}
	return shmq__poll(set, n, timeout_ns, true, NULL);
}
