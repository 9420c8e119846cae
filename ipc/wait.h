/* SPDX-License-Identifier: MIT */
/*
 * wait.h - futex event counts: spin, announce, re-check, sleep; wake.
 * (internal; the protocol and its argument are at the top of wait.c)
 */
#ifndef SHMQ_WAIT_H
#define SHMQ_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

/* A blocking call's deadline: computed once, on first need. */
struct deadline {
	int64_t timeout_ns;     /* SHMQ_FOREVER or > 0 */
	uint64_t abs_ns;        /* CLOCK_MONOTONIC; 0 until computed */
	unsigned false_ready;   /* spins that ended "ready", for this call */
};

typedef bool (*ready_fn)(const struct shmq *q);
/* True when a claimed slot holds the caller up; *at: its position. */
typedef bool (*stuck_fn)(const struct shmq *q, uint64_t *at);

/* spsc.c: membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED); false if it failed. */
bool shmq__spsc_membarrier(void);
/* spsc.c: an SPSC waiter's guard ran out; @hit: it found its message. */
void shmq__spsc_guard_expired(bool hit);

/*
 * Wake up to @n ordinary sleepers and every poller on @ev; @w: the
 * caller's load of ev->waiters (after F1, or seq_cst), which says who
 * may sleep.
 */
/* queue.c, for poll.c: an MPMC queue's ready() and stuck() per side. */
bool shmq__ring_ready(const struct shmq *q, bool send);
bool shmq__ring_stuck_send(const struct shmq *q, uint64_t *at);
bool shmq__ring_stuck_recv(const struct shmq *q, uint64_t *at);

void shmq__wake(struct shmq *q, struct shmq_event *ev, unsigned n,
		uint32_t w);
int shmq__wait(struct shmq *q, struct shmq_event *ev, ready_fn ready,
	       stuck_fn stuck, struct deadline *dl);
/*
 * Note a stuck position; once the same one has been stuck for the handle's
 * stall threshold, run a repair.  Returns the time to sleep at most before
 * looking again (0: not stuck, or just repaired: no bound).
 */
uint64_t shmq__stall_check(struct shmq *q, stuck_fn stuck);

/*
 * After publishing (or freeing) n slots: wake up to n sleepers, if any.
 * The fast path is one fence and one load of a line that is only written
 * when someone waits, so it stays shared in every cache.
 */
static inline void shmq__notify(struct shmq *q, struct shmq_event *ev,
				unsigned n)
{
	/*
	 * F1: seq_cst; orders our publish (R1) or free (R2) before the load
	 * of waiters.  Pairs with F2 in shmq__wait(): either the waiter's
	 * re-check sees our store, or we see its announcement.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	/* relaxed: ordered by F1; a stale zero is excluded by F1/F2. */
	uint32_t w = atomic_load_explicit(&ev->waiters, memory_order_relaxed);

	if (__builtin_expect(w != 0, 0))
		shmq__wake(q, ev, n, w);
}

/*
 * shmq__notify() after the caller's own F1 (a publish that wrote to several
 * queues fences once): wake up to n sleepers, if any.
 */
static inline void shmq__notify_fenced(struct shmq *q, struct shmq_event *ev,
				       unsigned n)
{
	/* relaxed: ordered by the caller's F1, as in shmq__notify(). */
	uint32_t w = atomic_load_explicit(&ev->waiters, memory_order_relaxed);

	if (__builtin_expect(w != 0, 0))
		shmq__wake(q, ev, n, w);
}

/*
 * After a successful claim: if others sleep on @ev and ready() says there
 * is more for them, wake one (see "Passing a wake-up on", wait.c).  The
 * fast path is one load of a line that is only written when someone waits.
 */
static inline void shmq__pass_on(struct shmq *q, struct shmq_event *ev,
				 ready_fn ready)
{
	/*
	 * seq_cst: with the claim CAS (C1/C2, seq_cst) before it, our claim
	 * and this load pair with a waiter's W1 and F2 as F1 does in notify:
	 * either we see its announcement, or its re-check sees our claim
	 * and what lies beyond it.
	 */
	uint32_t w = atomic_load_explicit(&ev->waiters, memory_order_seq_cst);

	if (__builtin_expect(w != 0, 0) && ready(q))
		shmq__wake(q, ev, 1, w);
}

#endif /* SHMQ_WAIT_H */
