/* SPDX-License-Identifier: MIT */
/*
 * spsc.h - the single-producer single-consumer queue (internal; the
 * protocol and its argument are at the top of spsc.c).
 */
#ifndef SHMQ_SPSC_H
#define SHMQ_SPSC_H

#include <sys/types.h>

#include "ring.h"

/*
 * An entry (spsc.c): the position it publishes, low 32 bits + 1, in the
 * high half, the length in the low half.  Shared with inspect.c and the
 * tests, which read and write entries themselves.
 */
static inline uint64_t spsc_ent_word(uint64_t pos, uint32_t len)
{
	return (uint64_t)(uint32_t)(pos + 1) << 32 | len;
}

/* Does entry @e publish position @pos? */
static inline bool spsc_ent_names(uint64_t e, uint64_t pos)
{
	return (uint32_t)(e >> 32) == (uint32_t)(pos + 1);
}

/*
 * An owner word (ring_hdr.spsc_owner): the holder's attach time (low 48
 * bits) above SPSC_OWNER_IDX_BITS bits of process-table index + 1.
 */
#define SPSC_OWNER_IDX_BITS 16
#define SPSC_OWNER_IDX(v)   ((uint32_t)((v) & ((1u << SPSC_OWNER_IDX_BITS) - 1)))

void shmq__spsc_init(void *block, const struct shmq_qinfo *qi);
/* Fill an SPSC handle's view of its block (after shmq__ring_view). */
void shmq__spsc_view(shmq *q, unsigned char *block,
		     const struct shmq_qinfo *qi);
/* Give back the sides @q holds (shmq_close). */
void shmq__spsc_close(shmq *q);

int shmq__spsc_send(shmq *q, const void *msg, size_t len, int64_t timeout_ns);
ssize_t shmq__spsc_recv(shmq *q, void *buf, size_t buflen,
			int64_t timeout_ns);
int shmq__spsc_send_batch(shmq *q, const struct iovec *msgs, unsigned n,
			  int64_t timeout_ns);
int shmq__spsc_recv_batch(shmq *q, struct iovec *bufs, unsigned n,
			  int64_t timeout_ns);
int shmq__spsc_reserve(shmq *q, size_t len, struct shmq_msg *m,
		       int64_t timeout_ns);
int shmq__spsc_commit(shmq *q, struct shmq_msg *m);
int shmq__spsc_acquire(shmq *q, struct shmq_msg *m, int64_t timeout_ns);
int shmq__spsc_release(shmq *q, struct shmq_msg *m);
int shmq__spsc_purge(shmq *q);

/* shmq_poll: may side @side (SPSC_SEND/SPSC_RECV) go on?  A hint. */
bool shmq__spsc_poll_ready(const shmq *q, int side);

/*
 * Inspection, under the control-plane lock: the pid holding side @side
 * of the queue whose header is @h (0: nobody, or a holder that is gone);
 * a snapshot of the oldest messages (as shmq_peek); take sides back from
 * dead holders (shmq_seg_recover: how many).
 */
uint32_t shmq__spsc_holder(shmq_seg *seg, const struct ring_hdr *h, int side);
/*
 * The first unpublished position at or after the receiver's: prod_pos,
 * or later when a sender died after publishing and before moving it on.
 */
uint64_t shmq__spsc_published_end(const struct ring_hdr *h,
				  const _Atomic uint64_t *ents,
				  uint32_t capacity);
int shmq__spsc_peek(shmq_seg *seg, const struct shmq_qinfo *g,
		    struct shmq_peek_msg *msgs, unsigned n);
int shmq__spsc_reclaim(shmq_seg *seg, struct ring_hdr *h);

/*
 * White-box counters for the tests (not exported by shmq.map), this
 * process's since it started:
 *   waits: SPSC waits that announced themselves and passed M
 *     (membarrier), to re-check and sleep;
 *   guard_expiries: first sleeps that ran out their guard (wait.c,
 *     SPSC_GUARD_NS) without a wake-up;
 *   guard_hits: those of them that then found the message (or room)
 *     ready: a wake-up that was lost, or raced the guard.  The protocol
 *     (spsc.c's top) keeps this a small fraction of waits;
 *   membarrier_failures: waits whose membarrier() (M) failed.
 */
struct shmq__spsc_counts {
	uint64_t waits, guard_expiries, guard_hits, membarrier_failures;
};
void shmq__spsc_counts(struct shmq__spsc_counts *c);
/* The calling thread's notifies that used the fence F1 (not F1'). */
uint64_t shmq__spsc_fenced_notifies(void);
/* Did this process register for MEMBARRIER_CMD_GLOBAL_EXPEDITED? */
bool shmq__spsc_registered(void);

#endif /* SHMQ_SPSC_H */
