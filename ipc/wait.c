/* SPDX-License-Identifier: MIT */
/*
 * wait.c - futex event counts.
 *
 * Each queue has two events, "not empty" (consumers wait) and "not full"
 * (producers wait), each a 32-bit futex word `seq` and a count `waiters`
 * on their own cache line (ring.h).
 *
 * Waiter (shmq__wait), once a claim found nothing to do:
 *   1. spin: poll ready() for up to the handle's spin budget (nanoseconds,
 *      not iterations: a pause costs ~10x more on some CPUs than others),
 *      yielding the CPU between rounds after the first 10 us;
 *   2. announce: waiters++                                       (W1)
 *   3. F2: full fence (and, on an SPSC queue, membarrier(): spsc.c)
 *   4. v = seq                                                   (A3)
 *   5. re-check ready(); if ready: waiters--, return (caller retries)
 *   6. FUTEX_WAIT_BITSET(&seq, v, absolute CLOCK_MONOTONIC deadline)
 *   7. waiters--, return (caller retries its claim)
 *
 * Notifier (shmq__notify, after publishing or freeing n slots):
 *   1. F1: full fence
 *   2. if waiters == 0: done (no system call: the fast path)
 *   3. seq++                                                     (R3)
 *   4. FUTEX_WAKE(&seq, n): as many sleepers as slots made ready, never all
 *
 * Why no wake-up is lost.  The waiter stores W1 then (F2) loads the ring;
 * the notifier stores the ring then (F1) loads waiters.  With both fences
 * seq_cst, at least one side sees the other's store (the classic
 * store-buffer argument):
 *   - the waiter's re-check (5) sees the new slot: it does not sleep; or
 *   - the notifier sees waiters > 0 and bumps seq (R3).  If the waiter
 *     read v (A3) after R3, then A3 acquires R3, which follows the ring
 *     store, so the re-check (5) sees the slot and does not sleep.  If it
 *     read v before R3, the kernel compares seq with v atomically with
 *     queueing the waiter: either FUTEX_WAIT fails with EAGAIN (seq
 *     already changed) or the waiter is queued before R3+FUTEX_WAKE and
 *     is woken.
 * Spurious returns (EINTR, EAGAIN, a wake meant for a waiter that already
 * left, another consumer taking the message first) are harmless: the
 * caller re-runs its claim and, if it finds nothing, waits again.
 *
 * Passing a wake-up on (shmq__pass_on, after every successful claim).  One
 * wake-up per message is not enough when positions become ready out of
 * order: producer B publishes position 1 while position 0 is still being
 * written by A; B's wake-up goes to a sleeper that cannot take position 1
 * (claims are in order) and sleeps again; A's wake-up then goes to one
 * sleeper, which takes position 0, and position 1 waits with a sleeper next
 * to it (found by the model, ipc/wait.pml; test_threads_wake_out_of_order).
 * The same happens to a woken waiter that times out at that instant and
 * takes one message in its last attempt.  So whoever claims, and then sees
 * sleepers and more ready, wakes one: the chain reaches every ready
 * position.  Its load of waiters is ordered after the claim by the claim
 * CAS (C1/C2, seq_cst) and pairs with W1/F2 as F1 does.  The fast path is
 * one load of the waiters line, shared in every cache while nobody sleeps.
 * Consumers freeing slots out of order do the same to producers.
 *
 * Pollers (shmq_poll, poll.c) wait on many events at once, beside
 * ordinary waiters.  Two rules keep them from harming each other:
 *
 * 1. Their own futex word.  A poller sleeps (futex_waitv) on pseq, never
 *    on seq, and counts itself in the high half of waiters
 *    (WAITERS_POLLER), so the fast path still tests one word.  A notifier
 *    that sees ordinary waiters wakes n of them on seq exactly as before
 *    ("as many as published", pass-on); one that sees pollers wakes all
 *    of them on pseq.  So a poller never absorbs a wake-up meant for a
 *    receiver: a poller woken in place of a receiver, whose caller then
 *    does not consume, would strand that receiver with a message beside
 *    it (ipc/poll.pml finds exactly that with -DSHARED_WORD, the pollers
 *    sleeping on seq).  Readiness is news for every poller, as poll(2)
 *    wakes every poller of a file.
 *
 * 2. Notifiers take announcements.  A poller announces per event: P1
 *    waiters += WAITERS_POLLER, then P2 pollers++ (both seq_cst RMWs),
 *    remembering the epoch P2 returned; F2 (and M on an SPSC queue); A4
 *    v = pseq (acquire); then its announcements' epochs; re-check.  The
 *    notifier (shmq__wake, after F1) takes all of them at once (P3: a CAS
 *    to count 0 in the next epoch), subtracts them from waiters, bumps
 *    pseq (R6) and wakes every sleeper on pseq.  A poller leaving on its
 *    own withdraws its announcement (count--, waiters -= WAITERS_POLLER)
 *    only if its epoch is still current.  So a poller killed while it
 *    sleeps costs one FUTEX_WAKE, at the next notify, not one per notify
 *    for ever (test_poll_killed_poller_*).
 *
 * Why no wake-up of a poller is lost.  As for ordinary waiters, F1/F2: a
 * notifier whose load of waiters misses P1 is seen by the re-check.  If
 * it sees P1, it loads pollers (seq_cst).  (a) It misses P2 (count 0, or
 * its CAS fails and retries): its load precedes P2 in S, so F1 precedes
 * the poller's F2 in S and the re-check sees the publish.  (b) P3 takes
 * P2's announcement, then R6: a poller whose A4 read pseq after R6 also
 * sees P3 (R6 follows it) and the publish; it finds its epoch gone or the
 * queue ready, and does not sleep; one that read pseq before R6 either
 * fails futex_waitv with EAGAIN or is queued before the wake-all.  The
 * epoch check matters: without it, a poller whose announcement was taken
 * by a notifier whose message someone else then consumed would sleep
 * uncounted, and no later notifier would wake it (poll.pml
 * -DNO_EPOCH_CHECK).  Taking needs no kernel: the epoch is 40 bits, so
 * it cannot come round while a poller is between P2 and its check.
 * Residual: a poller killed between P1 and P2 (or between withdrawing
 * its count and its waiters) leaves WAITERS_POLLER in waiters that no
 * notifier takes; like an ordinary waiter killed asleep on an MPMC queue,
 * it costs every notify a system call until the queue is recreated.
 *
 * Deadline: computed once per call on CLOCK_MONOTONIC, passed to the
 * kernel as an absolute time, so EINTR restarts never extend the wait.
 *
 * Stalls (crash recovery).  Before sleeping (after the spin), a waiter asks
 * whether a claimed slot holds it up (stuck(): a producer's claim not yet
 * published, or a consumer's claim not yet freed).  Its owner may be slow,
 * stopped, or dead; a dead one will never wake us.  So while stuck, the
 * waiter sleeps at most the stall threshold at a time, and once the same
 * position has stayed stuck that long it runs a repair (recover.c), which
 * fixes the slot only if no live process's record names it.  A waiter that
 * is not stuck sleeps until woken: an empty or full ring needs no repair.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <linux/futex.h>
#include <time.h>
#include <urcu/arch.h>
#include <urcu/futex.h>

#include "ack.h"
#include "wait.h"

#ifndef FUTEX_WAIT_BITSET
#define FUTEX_WAIT_BITSET 9
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#endif

uint64_t shmq__stall_check(struct shmq *q, stuck_fn stuck)
{
	/* relaxed, all: per-handle hints; a race only delays or repeats an
	 * idempotent repair. */
	int64_t stall = atomic_load_explicit(&q->stall_ns,
					     memory_order_relaxed);
	uint64_t at, since, now;

	if (stall <= 0 || !stuck(q, &at)) {
		if (atomic_load_explicit(&q->stall_since, memory_order_relaxed))
			atomic_store_explicit(&q->stall_since, 0,
					      memory_order_relaxed);
		return 0;
	}
	now = shmq__now_ns(CLOCK_MONOTONIC);
	since = atomic_load_explicit(&q->stall_since, memory_order_relaxed);
	if (!since || atomic_load_explicit(&q->stall_at,
					   memory_order_relaxed) != at) {
		atomic_store_explicit(&q->stall_at, at, memory_order_relaxed);
		atomic_store_explicit(&q->stall_since, now,
				      memory_order_relaxed);
		return (uint64_t)stall;
	}
	if (now - since < (uint64_t)stall)
		return (uint64_t)stall - (now - since);
	/*
	 * Repair, then keep the sleeps bounded while still stuck: the repair
	 * may have found the lock busy, the lane full, or a live record (a
	 * slow owner, or a transient one) naming the slot.
	 */
	shmq__recover_queue(q);
	atomic_store_explicit(&q->stall_since, now, memory_order_relaxed);
	return (uint64_t)stall;
}

/* After this many "ready" that a claim then contradicts, stop believing. */
#define FALSE_READY_MAX 10000
#define HOT_SLEEP_NS    1000000ull      /* and sleep 1 ms at a time */

/*
 * An SPSC waiter's first sleep after announcing itself lasts at most this
 * long; then it looks again and sleeps on.  membarrier() (M) should make
 * this unnecessary, but Linux does not always deliver it: registration
 * updates only the CPUs running the process at that instant, and a CPU
 * that idles holding its address space (lazy TLB) and then runs one of
 * its threads again keeps the old, unregistered state, so its threads get
 * no barrier.  A notifier there can read waiters before its publish is
 * visible and skip the wake-up; the publish itself is merely late
 * (draining a store buffer takes nanoseconds), so one look a millisecond
 * later finds it.  Seen as a hang of test_threads_spsc without the guard.
 */
#define SPSC_GUARD_NS   1000000ull

/* Poll ready() this many times between clock reads while spinning. */
#define SPIN_CHECK_EVERY 32

/*
 * After this long, the spin yields the CPU between rounds of polls.  With
 * more runnable processes than CPUs, the peer we wait for may be the one
 * our spinning keeps off the CPU; a pure 20 us spin then costs a time
 * slice per message (bench_throughput --quick --only shmq --size 64 --pc
 * 1x2,4x4: 1.1-2.4M msgs/s without the yield, 8-13M with it).  Not
 * sooner: sched_yield() hands the CPU to any other runnable task, so a
 * spin that yields early turns a slow round trip into a sleep much more
 * often.  Yielding after 2 us put the blocking round trip's p99 at 12-38
 * us on a loaded machine, against 0.6 us without a yield or after 10 us
 * (make demo, three runs each).
 */
#define SPIN_YIELD_AFTER_NS 10000

/*
 * Take every poller's announcement on @ev (starting a new epoch), then
 * wake them all.  See "Pollers" at the top.
 */
static void wake_pollers(struct shmq_event *ev)
{
	/* seq_cst: after F1 (or pass-on's seq_cst load), in S; see the top. */
	uint64_t p = atomic_load_explicit(&ev->pollers, memory_order_seq_cst);
	uint64_t c;

	for (;;) {
		c = p & POLLERS_COUNT_MASK;
		if (!c)
			return;         /* every poller announced after F1 */
		/*
		 * P3: seq_cst CAS; takes the count and starts the next
		 * epoch.  Pairs with P2 (the poller's increment) and with the
		 * poller's epoch check after A4.
		 */
		if (atomic_compare_exchange_weak_explicit(&ev->pollers, &p,
				((p >> POLLERS_EPOCH_SHIFT) + 1) <<
				POLLERS_EPOCH_SHIFT, memory_order_seq_cst,
				memory_order_seq_cst))
			break;
	}
	/*
	 * relaxed: the count only steers notifiers; P1 of each poller taken
	 * preceded its P2, so this never goes below zero.
	 */
	atomic_fetch_sub_explicit(&ev->waiters, (uint32_t)c * WAITERS_POLLER,
				  memory_order_relaxed);
	/*
	 * R6: seq_cst RMW, after P3: a poller whose A4 reads the new pseq
	 * sees its announcement taken (and our publish).
	 */
	atomic_fetch_add_explicit(&ev->pseq, 1, memory_order_seq_cst);
	/* All of them: readiness is news for every poller, as with poll(2). */
	futex_async((int32_t *)&ev->pseq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void shmq__wake(struct shmq *q, struct shmq_event *ev, unsigned n,
		uint32_t w)
{
	if (w & WAITERS_PLAIN) {
		/*
		 * R3: release RMW on the futex word; a waiter whose A3 reads
		 * the new value sees the slot we published before F1.
		 */
		atomic_fetch_add_explicit(&ev->seq, 1, memory_order_release);
		/* Shared (not private) futex: the waiters are other processes. */
		futex_async((int32_t *)&ev->seq, FUTEX_WAKE,
			    (int32_t)(n ? n : 1), NULL, NULL, 0);
	}
	if (w >= WAITERS_POLLER)
		wake_pollers(ev);
	/* relaxed: a statistic. */
	atomic_fetch_add_explicit(&q->hdr->wakes, 1, memory_order_relaxed);
}

static int deadline_abs(struct deadline *dl)
{
	if (dl->timeout_ns == SHMQ_FOREVER)
		return 0;
	if (!dl->abs_ns)
		dl->abs_ns = shmq__now_ns(CLOCK_MONOTONIC) +
			     (uint64_t)dl->timeout_ns;
	return 1;
}

static bool deadline_passed(struct deadline *dl)
{
	return deadline_abs(dl) &&
	       shmq__now_ns(CLOCK_MONOTONIC) >= dl->abs_ns;
}

/* Poll ready() for at most the spin budget.  True when it became ready. */
static bool spin(const struct shmq *q, ready_fn ready, struct deadline *dl)
{
	/* relaxed: a tuning knob; any recent value will do. */
	int64_t budget = atomic_load_explicit(&((struct shmq *)q)->spin_ns,
					      memory_order_relaxed);
	uint64_t start, now;
	int i;

	if (budget <= 0)
		return false;
	start = shmq__now_ns(CLOCK_MONOTONIC);
	for (;;) {
		for (i = 0; i < SPIN_CHECK_EVERY; i++) {
			if (ready(q))
				return true;
			caa_cpu_relax();
		}
		now = shmq__now_ns(CLOCK_MONOTONIC);
		if (now - start >= (uint64_t)budget ||
		    (deadline_abs(dl) && now >= dl->abs_ns))
			return false;
		if (now - start >= SPIN_YIELD_AFTER_NS)
			sched_yield();
	}
}

/* When a sleep ends: the caller's deadline, a stall check, a guard. */
struct sleep {
	uint64_t wake_ns;       /* absolute; 0: none (wait for a wake-up) */
	uint64_t guard_ns;      /* SPSC: the first sleep's end, or 0 */
	bool hot;               /* ready() is not believed: bounded sleeps */
};

/*
 * Before announcing: how long the sleep may last.  A stall check may
 * bound it (and may repair a stuck slot now); so does the deadline, and
 * a ready() that has been contradicted too often.
 */
static void sleep_plan(struct shmq *q, struct shmq_event *ev, stuck_fn stuck,
		       struct deadline *dl, struct sleep *sl)
{
	uint64_t cap_ns = shmq__stall_check(q, stuck), probe_ns;

	/*
	 * A consumer of a queue where messages are fetched or acquired: bound
	 * the sleep, and probe for dead owners when one is due (ack.c,
	 * "Promptness").  Producers wait for room, which stuck() covers.
	 */
	if (ev != &q->hdr->not_full && (probe_ns = shmq__ack_probe(q)) &&
	    (!cap_ns || probe_ns < cap_ns))
		cap_ns = probe_ns;
	if (sl->hot && (!cap_ns || cap_ns > HOT_SLEEP_NS))
		cap_ns = HOT_SLEEP_NS;
	if (cap_ns)
		sl->wake_ns = shmq__now_ns(CLOCK_MONOTONIC) + cap_ns;
	if (deadline_abs(dl) && (!sl->wake_ns || dl->abs_ns < sl->wake_ns))
		sl->wake_ns = dl->abs_ns;
}

/*
 * Announce ourselves (W1, F2), then, on an SPSC queue, supply the
 * notifier's missing fence (M).  Should M fail, sleep in bounded steps
 * rather than risk a lost wake-up; should it succeed, the first sleep is
 * still bounded (SPSC_GUARD_NS).
 */
static void announce(struct shmq *q, struct shmq_event *ev, struct sleep *sl)
{
	/* W1: seq_cst RMW; announces us before the re-check (see F2). */
	atomic_fetch_add_explicit(&ev->waiters, 1, memory_order_seq_cst);
	/* F2: seq_cst; pairs with F1 in shmq__notify(). */
	atomic_thread_fence(memory_order_seq_cst);
	if (q->flags & SHMQ_SPSC) {
		uint64_t now = shmq__now_ns(CLOCK_MONOTONIC);

		/* M: see the top of spsc.c. */
		if (!shmq__spsc_membarrier()) {
			if (!sl->wake_ns || sl->wake_ns > now + HOT_SLEEP_NS)
				sl->wake_ns = now + HOT_SLEEP_NS;
		} else if (!sl->wake_ns || sl->wake_ns > now + SPSC_GUARD_NS) {
			sl->guard_ns = now + SPSC_GUARD_NS;
		}
	}
}

/*
 * Sleep on @ev while its seq is @v, until a wake-up, a signal or the
 * planned end.  Returns 0 (retry the claim) or -ETIMEDOUT (the deadline,
 * not a stall check's bound, has passed).
 */
static int sleep_on(struct shmq *q, struct shmq_event *ev, ready_fn ready,
		    struct deadline *dl, struct sleep *sl, uint32_t v)
{
	struct timespec ts, *tsp;
	uint64_t until;
	int rc;

	for (;;) {
		until = sl->guard_ns ? sl->guard_ns : sl->wake_ns;
		tsp = NULL;
		if (until) {
			ts.tv_sec = (time_t)(until / 1000000000ull);
			ts.tv_nsec = (long)(until % 1000000000ull);
			tsp = &ts;
		}
		/*
		 * Sleeps only while seq == v.  Returns 0 (woken, maybe
		 * spuriously), or -1 with EAGAIN (seq moved: a wake-up came
		 * first), EINTR (a signal) or ETIMEDOUT (the end).  All but
		 * ETIMEDOUT mean "retry".
		 */
		rc = futex_async((int32_t *)&ev->seq, FUTEX_WAIT_BITSET,
				 (int32_t)v, tsp, NULL,
				 (int32_t)FUTEX_BITSET_MATCH_ANY);
		if (!(sl->guard_ns && rc < 0 && errno == ETIMEDOUT))
			break;
		/*
		 * The guard ran out and nobody woke us: look once more, then
		 * sleep on, still announced.  Any notifier whose load of
		 * waiters came after W1 reached it sees us; one whose load
		 * came before had its publish in flight then, and that is
		 * visible by now.
		 */
		sl->guard_ns = 0;
		/* A3: acquire, as in shmq__wait(). */
		v = atomic_load_explicit(&ev->seq, memory_order_acquire);
		if (ready(q)) {
			shmq__spsc_guard_expired(true);
			return 0;
		}
		shmq__spsc_guard_expired(false);
	}
	/* A sleep cut short for a stall check is not the caller's timeout. */
	return rc < 0 && errno == ETIMEDOUT && deadline_passed(dl) ?
	       -ETIMEDOUT : 0;
}

/*
 * Wait until ready() may hold: spin for the budget, plan the sleep,
 * announce, re-check, sleep.  Returns 0 when the caller should retry its
 * claim, -ETIMEDOUT once the deadline has passed (the caller still makes
 * one last attempt).
 */
int shmq__wait(struct shmq *q, struct shmq_event *ev, ready_fn ready,
	       stuck_fn stuck, struct deadline *dl)
{
	struct sleep sl = { 0, 0, false };
	uint32_t v;
	int rc = 0;

	if (deadline_passed(dl))
		return -ETIMEDOUT;
	/*
	 * ready() said yes, yet the claim failed, many times in a row: shared
	 * words that no honest peer writes (or a state ready() misjudges).
	 * Stop trusting it and sleep in bounded steps instead of spinning.
	 */
	if (dl->false_ready > FALSE_READY_MAX) {
		sl.hot = true;
	} else if (spin(q, ready, dl)) {
		dl->false_ready++;
		return 0;
	}
	sleep_plan(q, ev, stuck, dl, &sl);
	announce(q, ev, &sl);
	/*
	 * After F2: a queue marked watched since the plan (its first fetch
	 * or acquire) bounds this sleep too; the marker's wake-up pairs with
	 * our announcement (ack.c, shmq__ack_mark).
	 */
	if (!sl.wake_ns && ev != &q->hdr->not_full && shmq__ack_watched(q))
		sl.wake_ns = shmq__now_ns(CLOCK_MONOTONIC) + ACK_PROBE_NS;
	/* A3: acquire; pairs with R3 in shmq__wake(). */
	v = atomic_load_explicit(&ev->seq, memory_order_acquire);
	if (sl.hot || !ready(q)) {
		/* relaxed: a statistic. */
		atomic_fetch_add_explicit(&q->hdr->sleeps, 1,
					  memory_order_relaxed);
		rc = sleep_on(q, ev, ready, dl, &sl, v);
	}
	/* relaxed: leaving needs no ordering; a late notifier wakes nobody. */
	atomic_fetch_sub_explicit(&ev->waiters, 1, memory_order_relaxed);
	return rc;
}
