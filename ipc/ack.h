/* SPDX-License-Identifier: MIT */
/*
 * ack.h - the unacknowledged area of an MPMC queue (internal; the
 * protocol and its argument are at the top of ack.c).
 *
 * Where (shm/shm.h, shmq__queue_bytes): after the redelivery lane, at a
 * 128-byte boundary of the queue's block:
 *
 *   +0     struct ack_hdr (SHMQ_ACK_HDR_SIZE): a write-once line, then a
 *          line of slow-path words (the "room" event, counters)
 *   +256   _Atomic uint64_t state[cap], rounded up to whole lines
 *   then   cap entries of shmq__ack_entry_size(msg_size) bytes: struct
 *          ack_ent, then the key and the payload
 *
 * An entry's state word says who owns it and what it holds:
 *
 *   bits 62-63  kind: ACK_FREE, ACK_FILLING (taken by a fetcher that has
 *               not yet copied its message in), ACK_HELD (a message owed
 *               by its owner), ACK_READY (a message given back, by a
 *               nack or because its owner died, waiting for room in the
 *               lane; no owner)
 *   bits 52-61  owner: its process-table index (FILLING, HELD)
 *   bits 32-51  owner: that entry's attach_gen when it fetched, so that
 *               an entry owned by a dead attachment whose process-table
 *               entry was taken by a new one still reads as dead
 *   bits  0-31  gen: bumped by each fetch that takes the entry, so that
 *               a tag (gen, index) names one fetch for ever
 */
#ifndef SHMQ_ACK_H
#define SHMQ_ACK_H

#include <stdatomic.h>
#include <stdint.h>

#include "ring.h"

#define ACK_MAGIC 0x4b4341514d4853ull      /* "SHMQACK" */

#define ACK_FREE    0ull
#define ACK_FILLING 1ull
#define ACK_HELD    2ull
#define ACK_READY   3ull
#define ACK_KIND(v)  ((v) >> 62)
#define ACK_OWNER_SHIFT 32
#define ACK_OWNER_MASK  (0x3fffffffull << ACK_OWNER_SHIFT)
#define ACK_GEN(v)   ((uint32_t)(v))
#define ACK_PIDX(v)  ((uint32_t)((v) >> 52) & 0x3ffu)
#define ACK_NONCE(v) ((uint32_t)((v) >> 32) & ACK_NONCE_MASK)

_Static_assert(SHMQ_MAX_PROCS <= 1024, "10 bits of process index");

static inline uint64_t ack_word(uint64_t kind, uint64_t owner, uint32_t gen)
{
	return kind << 62 | owner | gen;
}

/* The owner bits of attachment (process-table index, attach_gen). */
static inline uint64_t ack_owner(uint32_t pidx, uint32_t nonce)
{
	return (uint64_t)pidx << 52 | (uint64_t)(nonce & ACK_NONCE_MASK) << 32;
}

/* Where an entry's message was fetched from: ring position, lane bit. */
#define ACK_SRC_LANE (1ull << 63)

struct ack_hdr {
	/* Line 0: written once, at creation. */
	uint64_t magic;                 /* ACK_MAGIC */
	uint32_t cap;                   /* entries (== dir_entry.ack_cap) */
	uint32_t entry_size;
	char dead_letter[64];           /* "" or an exchange's name */
	uint8_t pad0[RING_LINE - 80];

	/* Line 1: slow-path words. */
	struct shmq_event room;         /* fetchers wait here for an entry
					 * (area full, or at their prefetch) */
	/*
	 * 1 once anything has been fetched or acquired from the queue: its
	 * waiting consumers then bound their sleeps and probe for dead
	 * owners (ack.c, "Promptness").
	 */
	_Atomic uint32_t holds_seen;
	/* Entries in ACK_READY: a hint that a pass has messages to move. */
	_Atomic uint32_t ready;
	_Atomic uint64_t nacked;        /* given back by shmq_nack/close */
	_Atomic uint64_t dead_lettered; /* at max_deliveries */
	uint8_t pad1[RING_LINE - sizeof(struct shmq_event) - 24];
};

_Static_assert(sizeof(struct ack_hdr) == SHMQ_ACK_HDR_SIZE, "ack header");

/*
 * An entry's header.  Written by its owner while the entry is FILLING and
 * published by the release store of HELD; read by the owner, and by a
 * repairer (under the control-plane lock) once it has acquired a state
 * that no live owner can change.  Untrusted: clamped before any use.
 */
struct ack_ent {
	uint64_t seq;                   /* the position first published at */
	uint64_t src;                   /* ring position | ACK_SRC_LANE */
	uint32_t deliveries;            /* deliveries so far (>= 1) */
	uint32_t len;                   /* payload bytes */
	uint32_t klen;                  /* key bytes, before the payload */
	_Atomic uint32_t hid;           /* the owning handle, in its process */
	unsigned char data[];
};

_Static_assert(sizeof(struct ack_ent) == SHMQ_ACK_ENT_HDR, "entry header");

static inline struct ack_hdr *ack_ready(const struct shmq *q)
{
	return q->ack.hdr;
}

static inline struct ack_ent *ack_ent(const struct ack_view *a, uint32_t i)
{
	return (struct ack_ent *)(a->ents + (size_t)i * a->entry_size);
}

/* Set up @a for the queue of validated entry @qi in @block. */
void shmq__ack_view(struct ack_view *a, unsigned char *block,
		    const struct shmq_qinfo *qi);
/* Initialise a new queue's area (under the lock, at creation). */
void shmq__ack_init(void *block, const struct shmq_qinfo *qi,
		    const char *dead_letter);

/* ---- for the wait loops (wait.c, poll.c) ---------------------------------- */

/* How long a consumer of a watched queue sleeps at most between probes. */
#define ACK_PROBE_NS 25000000ull

/*
 * A consumer of @q is about to sleep: 0 if it may sleep until woken, else
 * the longest it may sleep before probing again for dead owners (and, if
 * a probe is due, the probe has just run).
 */
uint64_t shmq__ack_probe(struct shmq *q);
/* After announcing (F2): must a sleep planned unbounded be bounded? */
bool shmq__ack_watched(const struct shmq *q);

/* ---- for the claims (claim.h) --------------------------------------------- */

/*
 * Lane position @pos of @q, claimed under @rec, holds a message delivered
 * max_deliveries times already: send it to the dead-letter exchange (or
 * drop it), free the slot and clear @rec.
 */
void shmq__dead_letter(struct shmq *q, uint64_t pos, struct proc_rec *rec);

/* Anything fetched or acquired: mark the queue watched (once). */
void shmq__ack_mark(struct shmq *q);

/* ---- for recovery (recover.c) ---------------------------------------------- */

/* Is the owner of state @v (FILLING or HELD) a live attachment? */
bool shmq__ack_owner_alive(shmq_seg *seg, const uint8_t *alive, uint64_t v);

/*
 * Move @q's READY entries into its lane, waiting at most @lock_ns for the
 * control-plane lock: how many moved, or -errno (the lock was busy).
 */
int shmq__ack_requeue(struct shmq *q, int64_t lock_ns);
/*
 * A dead attachment was seen: recover the whole segment now (reap, then
 * repair every queue), unless the control-plane lock is busy.
 */
int shmq__recover_dead(shmq_seg *seg);

/* queue.c, at shmq_close: give back what handle @q owes, then let go of
 * its dead-letter exchange. */
void shmq__ack_close(struct shmq *q);
void shmq__ack_free(struct shmq *q);

#endif /* SHMQ_ACK_H */
