/* SPDX-License-Identifier: MIT */
/*
 * poller.h - shmq_poll's engine, shared with the poll set (internal; the
 * protocol is at the top of poll.c, its argument at the top of wait.c).
 */
#ifndef SHMQ_POLL_H
#define SHMQ_POLL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

/* A private futex word the poll also sleeps on, and its expected value. */
struct poll_ctl {
	_Atomic uint32_t *word;
	uint32_t val;
};

/*
 * shmq_poll() on a checked set (revents cleared): the number of ready
 * entries, -EAGAIN, -ETIMEDOUT, or 0 when @x's word moved.  @spin_ok:
 * spin first for the handles' budget.
 */
int shmq__poll(struct shmq_pollq *set, unsigned n, int64_t timeout_ns,
	       bool spin_ok, const struct poll_ctl *x);

/* Tests: sleep as without futex_waitv (on), or find out again (off). */
void shmq__poll_force_fallback(bool on);
/* Tests: how many sleeps this process's polls took (all; without
 * futex_waitv). */
uint64_t shmq__poll_sleeps(void);
uint64_t shmq__poll_fallback_sleeps(void);

#endif /* SHMQ_POLL_H */
