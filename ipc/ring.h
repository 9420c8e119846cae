/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the bounded MPMC ring: slot sequence protocol (internal).
 *
 * A queue's block (allocated by shm/, see shm/layout.h) holds:
 *
 *   +0      struct ring_hdr (SHMQ_RING_HDR_SIZE bytes): a write-once
 *           identity line, then prod_pos, cons_pos, the two event counts
 *           and the slow-path counters, each on its own 128-byte line
 *   +1024   capacity slots of slot_size bytes: struct slot (seq, len,
 *           flags) then the payload, msg_size bytes at most
 *
 * Positions.  prod_pos and cons_pos are free-running 64-bit counters: the
 * next position to claim on each side.  A position p lives in slot
 * p & mask; the lap is p >> log2(capacity).  They never wrap in practice
 * (2^64 messages), and are compared only through differences, so even a
 * wrap would be harmless.
 *
 * Slot states, by the value of seq for the slot of position p (Vyukov's
 * bounded MPMC queue):
 *
 *   seq == p             free for the producer of position p
 *                        (or claimed by it and being written: prod_pos > p)
 *   seq == p + 1         published: holds the message of position p
 *                        (or claimed by a consumer and being read: cons_pos > p)
 *   seq == p + capacity  freed: free for the producer of p + capacity
 *
 * Who writes what.  A producer claims p with a CAS on prod_pos when slot p
 * says "free for p"; it then owns len, flags and the payload, and publishes
 * them with a release store of seq = p + 1 (R1).  A consumer claims p with
 * a CAS on cons_pos when the slot says "published for p" (A2); it reads the
 * message, then frees the slot with a release store of seq = p + capacity
 * (R2), which the next lap's producer acquires (A1) before writing.  Only
 * the CAS decides ownership; prod_pos and cons_pos carry no data, so their
 * loads and CASes are relaxed.
 *
 * Ordering edges:
 *   R1 (publish, release)  ->  A2 (consumer's seq load, acquire):
 *       the consumer sees len and the payload the producer wrote.
 *   R2 (free, release)     ->  A1 (producer's seq load, acquire):
 *       the producer's writes to the slot come after the consumer's reads.
 *
 * Batches.  One CAS claims k consecutive positions, after checking that the
 * k slots are all in the wanted state.  That check stays true until the CAS:
 * only the claimer of a position may change its slot, and a successful CAS
 * from pos means nobody claimed any position >= pos in between.
 *
 * Blocking is in wait.h: after publishing (or freeing) the fast path issues
 * one fence and reads a waiter count; it makes a system call only when
 * someone sleeps.
 *
 * A process killed here.  Between a producer's CAS and R1 the slot is
 * claimed but unpublished: consumers wait at it (FIFO).  Between a
 * consumer's CAS and R2 the slot is not reusable: producers wait at it one
 * lap later.  Crash recovery (a later layer, see DESIGN.md) repairs both
 * from the process table; nothing in this file depends on it.
 *
 * Untrusted memory.  Every position is masked before use; len is read once
 * and clamped to msg_size and to the caller's buffer before any copy; a seq
 * that no honest peer could write makes the ring look full or empty, never
 * makes us touch memory outside the block.
 */
#ifndef SHMQ_RING_H
#define SHMQ_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "shm.h"

#define RING_MAGIC 0x474e4952514d4853ull   /* "SHMQRING" */
#define RING_LINE  128                      /* x86 prefetches line pairs */

struct shmq_event {
	_Atomic uint32_t seq;       /* futex word: bumped by each wake-up */
	_Atomic uint32_t waiters;   /* processes announced or asleep */
};

struct ring_hdr {
	/* Line 0: identity, written once at creation (for inspection). */
	uint64_t magic;
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t slot_size;
	uint32_t flags;
	uint8_t pad0[RING_LINE - 24];

	_Atomic uint64_t prod_pos;
	uint8_t pad1[RING_LINE - 8];
	_Atomic uint64_t cons_pos;
	uint8_t pad2[RING_LINE - 8];
	struct shmq_event not_empty; /* consumers wait here */
	uint8_t pad3[RING_LINE - 8];
	struct shmq_event not_full;  /* producers wait here */
	uint8_t pad4[RING_LINE - 8];

	/* Slow-path counters (relaxed adds): never touched by a fast path. */
	_Atomic uint64_t full_waits;  /* blocking sends that found it full */
	_Atomic uint64_t empty_waits; /* blocking receives that found it empty */
	_Atomic uint64_t sleeps;      /* futex waits entered */
	_Atomic uint64_t wakes;       /* futex wake calls issued */
	uint8_t pad5[RING_LINE - 32];

	uint8_t reserved[SHMQ_RING_HDR_SIZE - 6 * RING_LINE];
};

_Static_assert(sizeof(struct ring_hdr) == SHMQ_RING_HDR_SIZE, "ring header");
_Static_assert(offsetof(struct ring_hdr, cons_pos) -
	       offsetof(struct ring_hdr, prod_pos) == RING_LINE, "apart");

struct slot {
	_Atomic uint64_t seq;
	_Atomic uint32_t len;       /* relaxed; ordered by R1/A2 */
	uint32_t flags;
	unsigned char data[];
};

_Static_assert(sizeof(struct slot) == SHMQ_SLOT_HDR_SIZE, "slot header");

/* An open queue: geometry copied from the validated directory entry. */
struct shmq {
	struct ring_hdr *hdr;
	unsigned char *slots;
	uint64_t mask;              /* capacity - 1 */
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t slot_size;
	uint32_t idx;               /* directory index */
	shmq_seg *seg;
	_Atomic int64_t spin_ns;
	/*
	 * Outstanding zero-copy operations, one word per slot index, allocated
	 * on first use: 0 = none, else ZC_ACQ bit | (reserved length + 1).
	 */
	_Atomic(_Atomic uint32_t *) zc;
};

#define ZC_ACQ 0x80000000u

static inline struct slot *ring_slot(const struct shmq *q, uint64_t pos)
{
	return (struct slot *)(q->slots + (pos & q->mask) * q->slot_size);
}

void shmq__ring_init(void *block, const struct shmq_qinfo *qi);

/*
 * A small message's slot spans two cache lines (16-byte header, then the
 * payload).  Fetching them one after the other costs two cross-core hops; a
 * prefetch of the second line issued beside the load of seq (before the
 * branch on it) puts both misses in flight together.  A prefetch is not an
 * access: it cannot fault, race, or see anything a load could not.
 */
static inline void ring_prefetch_tail(const struct shmq *q, const struct slot *s)
{
	if (q->slot_size > 64)
		__builtin_prefetch((const char *)s + 64, 0, 3);
}

/*
 * Ask for slot @pos's lines in exclusive state before writing them.  A run
 * of stores to lines held elsewhere otherwise waits in the store buffer,
 * one ownership request at a time.  A hint: it cannot fault or race.
 */
static inline void ring_prefetch_write(const struct shmq *q, uint64_t pos)
{
	const char *s = (const char *)ring_slot(q, pos);

#if defined(__x86_64__) || defined(__i386__)
	/* PREFETCHW; executes as a NOP on CPUs without it. */
	__asm__ volatile("prefetchw %0" : : "m"(*s));
	if (q->slot_size > 64)
		__asm__ volatile("prefetchw %0" : : "m"(*(s + 64)));
#else
	__builtin_prefetch(s, 1, 3);
	if (q->slot_size > 64)
		__builtin_prefetch(s + 64, 1, 3);
#endif
}

/*
 * Claim up to @n consecutive positions for writing.  Returns how many
 * (0: full), the first in *@pos.
 */
static inline unsigned ring_prod_claim(struct shmq *q, unsigned n,
				       uint64_t *pos_out)
{
	struct ring_hdr *h = q->hdr;
	/* relaxed: a guess at the next position; the CAS confirms it. */
	uint64_t pos = atomic_load_explicit(&h->prod_pos, memory_order_relaxed);

	for (;;) {
		uint64_t seq, again;
		unsigned k = 0;

		do {
			/*
			 * A1: acquire; pairs with R2 (free) of the previous lap:
			 * its consumer's reads precede our writes to the slot.
			 */
			seq = atomic_load_explicit(&ring_slot(q, pos + k)->seq,
						   memory_order_acquire);
		} while (seq == pos + k && ++k < n);
		if (k) {
			/*
			 * relaxed: the CAS only decides who owns [pos, pos+k);
			 * slot contents are ordered by A1/R1, not by prod_pos.
			 */
			if (atomic_compare_exchange_weak_explicit(&h->prod_pos,
					&pos, pos + k, memory_order_relaxed,
					memory_order_relaxed)) {
				*pos_out = pos;
				return k;
			}
			continue;       /* pos was reloaded by the CAS */
		}
		if ((int64_t)(seq - pos) < 0)
			return 0;       /* the previous lap is still there: full */
		/* Another producer took pos; follow it. */
		again = atomic_load_explicit(&h->prod_pos, memory_order_relaxed);
		if (again == pos)
			return 0;       /* seq ahead of prod_pos: corrupt; act full */
		pos = again;
	}
}

/* Make position @pos's message visible to consumers. */
static inline void ring_publish(struct shmq *q, uint64_t pos, uint32_t len)
{
	struct slot *s = ring_slot(q, pos);

	/* relaxed: ordered before R1 by program order and R1's release. */
	atomic_store_explicit(&s->len, len, memory_order_relaxed);
	/* R1: release; publishes len and payload.  Pairs with A2. */
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
}

/*
 * Claim up to @n consecutive published messages.  Message k must fit
 * bufs[k].iov_len (or @buflen when @bufs is NULL, SIZE_MAX for no limit);
 * the claim stops before the first that does not.  Returns how many
 * (0: empty, or *@too_long set when the first one does not fit).
 */
static inline unsigned ring_cons_claim(struct shmq *q, unsigned n,
				       const struct iovec *bufs, size_t buflen,
				       uint64_t *pos_out, bool *too_long)
{
	struct ring_hdr *h = q->hdr;
	/* relaxed: a guess at the next position; the CAS confirms it. */
	uint64_t pos = atomic_load_explicit(&h->cons_pos, memory_order_relaxed);

	*too_long = false;
	for (;;) {
		uint64_t seq, again;
		unsigned k = 0;

		for (;;) {
			struct slot *s = ring_slot(q, pos + k);
			size_t lim = bufs ? bufs[k].iov_len : buflen;
			uint32_t len;

			/* A2: acquire; pairs with R1: len, payload visible. */
			seq = atomic_load_explicit(&s->seq,
						   memory_order_acquire);
			ring_prefetch_tail(q, s);
			if (seq != pos + k + 1)
				break;
			/* relaxed: ordered after A2; untrusted, so clamped. */
			len = atomic_load_explicit(&s->len,
						   memory_order_relaxed);
			if (len > q->msg_size)
				len = q->msg_size;
			if (len > lim) {
				if (k == 0)
					*too_long = true;
				break;
			}
			if (++k == n)
				break;
		}
		if (k) {
			/* relaxed: ownership only, as in ring_prod_claim. */
			if (atomic_compare_exchange_weak_explicit(&h->cons_pos,
					&pos, pos + k, memory_order_relaxed,
					memory_order_relaxed)) {
				*pos_out = pos;
				*too_long = false;
				return k;
			}
			continue;
		}
		if (*too_long)
			return 0;
		if ((int64_t)(seq - (pos + 1)) < 0)
			return 0;       /* not yet published: empty */
		/* Another consumer took pos; follow it. */
		again = atomic_load_explicit(&h->cons_pos, memory_order_relaxed);
		if (again == pos)
			return 0;       /* seq ahead of cons_pos: corrupt; act empty */
		pos = again;
	}
}

/* Length of claimed message @pos, clamped to msg_size and @lim. */
static inline uint32_t ring_len(const struct shmq *q, uint64_t pos, size_t lim)
{
	/* relaxed: read after our claim; ordered by A2 in ring_cons_claim. */
	uint32_t len = atomic_load_explicit(&ring_slot(q, pos)->len,
					    memory_order_relaxed);

	if (len > q->msg_size)
		len = q->msg_size;
	return len > lim ? (uint32_t)lim : len;
}

/* Give slot @pos back to producers (one lap later). */
static inline void ring_free(struct shmq *q, uint64_t pos)
{
	/* R2: release; our reads of the slot precede its reuse.  Pairs A1. */
	atomic_store_explicit(&ring_slot(q, pos)->seq, pos + q->capacity,
			      memory_order_release);
}

/* Cheap re-checks for the wait loop: could a claim succeed now? */
static inline bool ring_can_recv(const struct shmq *q)
{
	/* relaxed: a hint; the claim itself re-reads with acquire. */
	uint64_t pos = atomic_load_explicit(&q->hdr->cons_pos,
					    memory_order_relaxed);

	/*
	 * acquire: paired with R1, as A2.  True when pos is published, or
	 * when pos is stale (seq moved on): either way a claim should retry.
	 */
	const struct slot *s = ring_slot(q, pos);
	uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);

	ring_prefetch_tail(q, s);
	return (int64_t)(seq - (pos + 1)) >= 0;
}

static inline bool ring_can_send(const struct shmq *q)
{
	/* relaxed: a hint; the claim itself re-reads with acquire. */
	uint64_t pos = atomic_load_explicit(&q->hdr->prod_pos,
					    memory_order_relaxed);

	/* acquire: paired with R2, as A1. */
	return (int64_t)(atomic_load_explicit(&ring_slot(q, pos)->seq,
					      memory_order_acquire) - pos) >= 0;
}

#endif /* SHMQ_RING_H */
