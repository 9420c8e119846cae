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
 *   then    SHMQ_LANE_CAP slots of the redelivery lane: a second ring of
 *           the same format, whose positions live on the lane line of the
 *           header; crash recovery is its only producer (ipc/recover.c)
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
 *   seq == (p+1) | TOMB  a tombstone: position p was claimed by a producer
 *                        that died before publishing (recover.c).  Consumers
 *                        claim it like a message, deliver nothing, free it.
 *
 * Who writes what.  A producer claims p with a CAS on prod_pos when slot p
 * says "free for p"; it then owns len, flags and the payload, and publishes
 * them with a release store of seq = p + 1 (R1).  A consumer claims p with
 * a CAS on cons_pos when the slot says "published for p" (A2); it reads the
 * message, then frees the slot with a release store of seq = p + capacity
 * (R2), which the next lap's producer acquires (A1) before writing.  Only
 * the CAS decides ownership; prod_pos and cons_pos carry no data, so their
 * loads are relaxed.  The CASes (C1, C2) are releases only to publish the
 * claimer's operation record to repairers (see below).
 *
 * Ordering edges:
 *   R1 (publish, release)  ->  A2 (consumer's seq load, acquire):
 *       the consumer sees len and the payload the producer wrote.
 *   R2 (free, release)     ->  A1 (producer's seq load, acquire):
 *       the producer's writes to the slot come after the consumer's reads.
 *
 * Every ordering label of the library, each defined once (the comment at
 * the atomic says what it pairs with):
 *
 *   label  file          what
 *   A1     ring.h        producer's load of a slot's seq (acquire)
 *   A2     ring.h        consumer's load of a slot's seq (acquire)
 *   C1/C2  ring.h        producer's / consumer's claim CAS (release:
 *                        publishes the operation record)
 *   R1     ring.h        publish: store of seq = pos + 1 (release)
 *   R2     ring.h        free: store of seq = pos + capacity (release)
 *   R4     ring.h        clearing an operation record (release)
 *   T1     recover.c     tombstone CAS (release)
 *   F1     wait.c        notifier's fence before reading waiters (seq_cst)
 *   W1/F2  wait.c        waiter's announcement and fence (seq_cst)
 *   A3/R3  wait.c        waiter's load / waker's add of the futex word
 *   M      wait.c        SPSC waiter's membarrier(), standing in for F1
 *   P1/P2  poll.c        poller's announcement: waiters += WAITERS_POLLER,
 *                        pollers++ (seq_cst RMWs)
 *   A4     poll.c        poller's load of pseq (acquire), then of the
 *                        pollers epoch
 *   P3/R6  wait.c        notifier takes the pollers (CAS, seq_cst) / bumps
 *                        pseq (seq_cst RMW); pairs with P2 / A4
 *   SP1    spsc.c        SPSC sender's store of an entry (release)
 *   SA1    spsc.c        SPSC receiver's load of an entry (acquire)
 *   SC1    spsc.c        SPSC receiver's store of cons_pos (release)
 *   SA2    spsc.c        SPSC sender's load of cons_pos (acquire)
 *   I1/I2  inspect.c     peek's seq load (acquire) and fence
 *
 * Batches.  One CAS claims k consecutive positions, after checking that the
 * k slots are all in the wanted state.  That check stays true until the CAS:
 * only the claimer of a position may change its slot (or a repairer, and
 * only once its claimer is dead, by a CAS from the state the claimer left),
 * and a successful CAS from pos means nobody claimed any position >= pos
 * in between.
 *
 * Blocking is in wait.h: after publishing (or freeing) the fast path issues
 * one fence and reads a waiter count; it makes a system call only when
 * someone sleeps.
 *
 * Operation records (crash recovery).  Before each claim CAS, the claimer
 * stores {pos, meta} naming exactly the positions it is about to CAS for in
 * one of its process-table records (shm/layout.h, struct proc_rec); the CAS
 * is a release (C1, C2), so whoever acquires the new prod_pos/cons_pos
 * value also sees the record.  After publishing (R1) or freeing (R2) the
 * claimer clears the record with a release store (R4).  Hence: a position
 * claimed and not yet published/freed by a live process is always named by
 * a live record, and a repairer that finds no live record naming a stuck
 * position knows its owner is dead.
 *
 * A process killed here.  Before its CAS: nothing is claimed; the record
 * dies with the process.  Between a producer's CAS and R1: the slot is
 * claimed but unpublished; consumers wait at it (FIFO) until a repairer
 * turns it into a tombstone.  Between a consumer's CAS and R2: the slot is
 * not reusable; a repairer moves its message to the redelivery lane and
 * frees it.  After R1/R2, before R4: nothing to repair (the slot moved on).
 *
 * Untrusted memory.  Every position is masked before use; len is read once
 * and clamped to msg_size and to the caller's buffer before any copy; a seq
 * that no honest peer could write makes the ring look full or empty, never
 * makes us touch memory outside the block.
 */
#ifndef SHMQ_RING_H
#define SHMQ_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "shm.h"

#define RING_MAGIC 0x474e4952514d4853ull   /* "SHMQRING" */
#define RING_LINE  128                      /* x86 prefetches line pairs */
#define SEQ_TOMB   (1ull << 63)             /* tombstone bit of seq */
#define TOKEN_LANE (1ull << 63)             /* zero-copy token: lane pos */

/*
 * An event count (wait.c).  seq and waiters are the ordinary waiters'
 * futex word and count; the rest serves shmq_poll() (poll.c), added in
 * 0.4 in what was the line's padding (zero in older segments: no poller).
 *
 *   +0   seq      futex word of ordinary waiters: bumped by each wake-up
 *   +4   waiters  low 16 bits: ordinary waiters announced or asleep;
 *                 high 16 bits: pollers' announcements (WAITERS_POLLER
 *                 each).  The notifier's fast path tests the whole word.
 *                 (65535 threads blocked on one side of one queue would
 *                 carry into the pollers' half: far beyond any use.)
 *   +8   pollers  epoch << POLLERS_EPOCH_SHIFT | count of the pollers'
 *                 announcements made in this epoch; a notifier that
 *                 wakes the pollers takes them all and starts an epoch
 *   +16  pseq     pollers' futex word: bumped by each wake of the pollers
 *   +20  pad
 */
struct shmq_event {
	_Atomic uint32_t seq;
	_Atomic uint32_t waiters;
	_Atomic uint64_t pollers;
	_Atomic uint32_t pseq;
	uint32_t pad;
};

/* waiters: ordinary waiters in the low half, pollers in the high. */
#define WAITERS_PLAIN   0xffffu
#define WAITERS_POLLER  0x10000u
/* pollers: epoch above this shift, count of announcements below. */
#define POLLERS_EPOCH_SHIFT 24
#define POLLERS_COUNT_MASK  ((1ull << POLLERS_EPOCH_SHIFT) - 1)

_Static_assert(sizeof(struct shmq_event) == 24, "event count");
_Static_assert(offsetof(struct shmq_event, pollers) == 8, "pollers");
_Static_assert(offsetof(struct shmq_event, pseq) == 16, "pseq");

struct ring_hdr {
	/* Line 0: identity, written once at creation (for inspection). */
	uint64_t magic;
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t slot_size;
	uint32_t flags;
	uint8_t pad0[RING_LINE - 24];

	_Atomic uint64_t prod_pos;
	/* SPSC: end of the batch being published (spsc.c), else unused. */
	_Atomic uint64_t spsc_batch_end;
	uint8_t pad1[RING_LINE - 16];
	_Atomic uint64_t cons_pos;
	uint8_t pad2[RING_LINE - 8];
	struct shmq_event not_empty; /* consumers wait here */
	uint8_t pad3[RING_LINE - sizeof(struct shmq_event)];
	struct shmq_event not_full;  /* producers wait here */
	uint8_t pad4[RING_LINE - sizeof(struct shmq_event)];

	/* Slow-path counters (relaxed adds): never touched by a fast path. */
	_Atomic uint64_t full_waits;  /* blocking sends that found it full */
	_Atomic uint64_t empty_waits; /* blocking receives that found it empty */
	_Atomic uint64_t sleeps;      /* futex waits entered */
	_Atomic uint64_t wakes;       /* futex wake calls issued */
	_Atomic uint64_t dropped;     /* refused (SHMQ_DROP_NEWEST) or
				       * evicted (SHMQ_DROP_OLDEST) at full */
	uint8_t pad5[RING_LINE - 40];

	/*
	 * The redelivery lane and recovery counters: written only by crash
	 * recovery (and by consumers of the lane), so the line stays shared
	 * in every cache and the consumers' check of it costs no transfer.
	 */
	_Atomic uint64_t lane_prod_pos;
	_Atomic uint64_t lane_cons_pos;
	_Atomic uint64_t tombstones;  /* dead producers' claims repaired */
	_Atomic uint64_t redelivered; /* dead consumers' messages moved */
	_Atomic uint64_t repairs;     /* repair passes over this queue */
	/*
	 * Messages of dead consumers that the last repair pass found and
	 * could not move (the lane was full): consumers that find the lane
	 * and the ring empty while this is set run another pass (claim.h).
	 */
	_Atomic uint64_t stranded;
	uint8_t pad6[RING_LINE - 48];

	/*
	 * SPSC queues (spsc.c): who holds the sending [0] and receiving [1]
	 * side, 0 for nobody.  Written only when a side is taken or given
	 * back (under the control-plane lock, or by the holder's release).
	 */
	_Atomic uint64_t spsc_owner[2];
	/*
	 * The lane's messages' identities (MPMC): for lane position p, the
	 * main-ring position the message was first published at and how
	 * many times it has been delivered, in entry p % SHMQ_LANE_CAP.
	 * Written by the lane's producer (recovery, under the lock) before
	 * it publishes the lane slot (R1), read by the consumer that claimed
	 * it (after A2): ordered like the slot's bytes.
	 */
	uint64_t lane_seq[SHMQ_LANE_CAP];
	uint32_t lane_deliveries[SHMQ_LANE_CAP];
	uint8_t reserved[SHMQ_RING_HDR_SIZE - 7 * RING_LINE - 16 -
			 12 * SHMQ_LANE_CAP];
};

_Static_assert(sizeof(struct ring_hdr) == SHMQ_RING_HDR_SIZE, "ring header");
_Static_assert(offsetof(struct ring_hdr, cons_pos) -
	       offsetof(struct ring_hdr, prod_pos) == RING_LINE, "apart");
_Static_assert(offsetof(struct ring_hdr, lane_prod_pos) == 6 * RING_LINE,
	       "lane line");
_Static_assert(offsetof(struct ring_hdr, not_empty) == 3 * RING_LINE &&
	       offsetof(struct ring_hdr, not_full) == 4 * RING_LINE,
	       "event lines (the pollers' words use their former padding)");

/*
 * A slot.  data holds the routing key (key bytes, SLOT_KEYLEN(flags) of
 * them: 0 after shmq_send) and then the payload (len bytes): key + payload
 * <= msg_size.  Both fields are written before R1 and read after A2, and
 * are untrusted: readers clamp the key to msg_size and the payload to
 * what is left after it (slot_klen, slot_plen).
 */
struct slot {
	_Atomic uint64_t seq;
	_Atomic uint32_t len;       /* payload bytes; relaxed, ordered by R1/A2 */
	_Atomic uint32_t flags;     /* SLOT_KEYLEN: the key's length; as len */
	unsigned char data[];
};

#define SLOT_KEYLEN(f) ((f) & 0xffu)

/* The key length of a claimed slot, clamped to @msg_size. */
static inline uint32_t slot_klen(const struct slot *s, uint32_t msg_size)
{
	/*
	 * relaxed: ordered after A2 like len; atomic because a claim may read
	 * it speculatively and lose the slot to another consumer, after
	 * which the next lap's producer rewrites it.
	 */
	uint32_t k = SLOT_KEYLEN(atomic_load_explicit(&s->flags,
						      memory_order_relaxed));

	return k > msg_size ? msg_size : k;
}

/* Clamp a payload length read from a slot whose key takes @klen bytes. */
static inline uint32_t slot_plen(uint32_t len, uint32_t msg_size,
				 uint32_t klen)
{
	return len > msg_size - klen ? msg_size - klen : len;
}

_Static_assert(sizeof(struct slot) == SHMQ_SLOT_HDR_SIZE, "slot header");

/*
 * A view of one ring (a queue's main ring or its lane): where its
 * positions and slots are, copied from the validated directory entry.
 */
struct ring {
	_Atomic uint64_t *prod_pos;
	_Atomic uint64_t *cons_pos;
	unsigned char *slots;
	uint64_t mask;              /* capacity - 1 */
	uint64_t rec_meta;          /* REC_LANE? | queue index << REC_QSHIFT */
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t slot_size;
};

/*
 * One side of an SPSC queue as the handle holding it sees it (spsc.c).
 * Private to the holding thread but for @thread; on its own lines, so a
 * producer thread and a consumer thread sharing a handle do not share one.
 */
enum { SPSC_SEND = 0, SPSC_RECV = 1 };

struct spsc_side {
	uint64_t pos;           /* send: next to publish; recv: next to free */
	uint64_t next;          /* next to reserve / acquire (>= pos) */
	uint64_t cached;        /* the other side's position, as last read */
	uint64_t owner;         /* our value of hdr->spsc_owner[side] */
	uint32_t *res_len;      /* send: reserved length per slot, or NULL */
	_Atomic unsigned long thread;   /* pthread_self() of the holder, or 0 */
} __attribute__((aligned(RING_LINE)));

/* A queue's unacknowledged area as a handle or a repairer sees it (ack.h). */
struct ack_hdr;
struct ack_view {
	struct ack_hdr *hdr;            /* NULL: no area (SPSC) */
	_Atomic uint64_t *state;
	unsigned char *ents;
	uint32_t cap;
	uint32_t entry_size;
	uint32_t prefetch;
	uint32_t max_deliveries;
};

/* An open queue. */
struct shmq {
	struct ring main;
	struct ring lane;
	struct ring_hdr *hdr;
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t idx;               /* directory index */
	shmq_seg *seg;
	_Atomic uint8_t roles;      /* PROC_ROLE_* this handle has shown */
	_Atomic int64_t spin_ns;
	_Atomic int64_t stall_ns;   /* 0: never repair from a wait */
	/* A stuck position seen by this handle, and since when (hints). */
	_Atomic uint64_t stall_at;
	_Atomic uint64_t stall_since;
	_Atomic uint32_t stall_polls;
	/*
	 * Outstanding zero-copy operations, allocated on first use, one word
	 * per slot index (capacity main slots, then SHMQ_LANE_CAP lane
	 * slots): 0 = none, else ZC_ACQ | (length + 1), the record's index
	 * at bits 32-39, the position's lap (low 24 bits) at 40-63.
	 */
	_Atomic(_Atomic uint64_t *) zc;
	uint32_t flags;             /* SHMQ_SPSC or 0 */
	bool fence_free;            /* SPSC: membarrier registered, notify
				     * without a fence (spsc.c) */
	_Atomic uint64_t *ents;     /* SPSC: an entry per slot (spsc.c) */
	/* Acknowledged delivery (ack.c). */
	struct ack_view ack;
	uint64_t ack_me;            /* our owner bits in a state word */
	uint32_t hid;               /* this handle's id in its process */
	_Atomic uint32_t owed;      /* fetched through it, not yet acked */
	_Atomic uint32_t ack_hint;  /* the entry to try first */
	_Atomic uint64_t probe_at;  /* CLOCK_MONOTONIC of the last probe */
	_Atomic(struct shmq_exchange *) dlx; /* dead-letter exchange, opened
				     * on first use */
	/* SPSC queues only (flags & SHMQ_SPSC): the sides this handle holds. */
	struct spsc_side side[2];
};

#define ZC_ACQ 0x80000000u

static inline struct slot *ring_slot(const struct ring *r, uint64_t pos)
{
	return (struct slot *)(r->slots + (pos & r->mask) * r->slot_size);
}

void shmq__ring_init(void *block, const struct shmq_qinfo *qi);
void shmq__ring_view(struct ring *main, struct ring *lane,
		     unsigned char *block, const struct shmq_qinfo *qi);

/* ---- operation records ---------------------------------------------------- */

/* Name [pos, pos + n) of ring @r in @rec, before the claim CAS. */
static inline void rec_set(struct proc_rec *rec, const struct ring *r,
			   uint64_t pos, uint64_t kind, unsigned n)
{
	/* relaxed: ordered before the meta store below (release). */
	atomic_store_explicit(&rec->pos, pos, memory_order_relaxed);
	/*
	 * R5: release; a repairer that acquires this meta sees our pos, and
	 * everything this thread did before (the previous user of the record
	 * cleared it before we got it: shmq__rec_get/put, or in program order
	 * for a record from our own zero-copy stash).  The claim CAS
	 * (C1/C2) publishes the record again to whoever acquires the position.
	 */
	atomic_store_explicit(&rec->meta, REC_VALID | kind | r->rec_meta | n,
			      memory_order_release);
}

/* R4: the claim is over (published, freed, or never made). */
static inline void rec_clear(struct proc_rec *rec)
{
	/*
	 * release: our publish (R1) or free (R2) comes first; a repairer that
	 * acquires the cleared record (shmq__proc_live_recs) sees it.
	 */
	atomic_store_explicit(&rec->meta, 0, memory_order_release);
}

/* ---- prefetch hints ------------------------------------------------------- */

/*
 * A small message's slot spans two cache lines (16-byte header, then the
 * payload).  Fetching them one after the other costs two cross-core hops; a
 * prefetch of the second line issued beside the load of seq (before the
 * branch on it) puts both misses in flight together.  A prefetch is not an
 * access: it cannot fault, race, or see anything a load could not.
 */
static inline void ring_prefetch_tail(const struct ring *r, const struct slot *s)
{
	if (r->slot_size > 64)
		__builtin_prefetch((const char *)s + 64, 0, 3);
}

/*
 * Ask for slot @pos's lines in exclusive state before writing them.  A run
 * of stores to lines held elsewhere otherwise waits in the store buffer,
 * one ownership request at a time, and the next locked instruction (a
 * claim CAS, the notify fence, a zero-copy commit's CAS) waits for all of
 * them.  Up to PREFETCH_LINES lines (the whole slot of a message up to
 * about 500 bytes): with only the first two, 512-byte zero-copy messages
 * ran at 6.7-7.2M msgs/s, with eight 12.8M (bench_throughput --quick
 * --only shmq,shmq-zc --sizes 64,512,4096,65536); past eight lines the
 * hardware's own stream prefetch does as well (64 lines: no gain at
 * 4 KiB).  A hint: it cannot fault or race.
 */
#define PREFETCH_LINES 8

static inline void ring_prefetch_write(const struct ring *r, uint64_t pos)
{
	const char *s = (const char *)ring_slot(r, pos);
	uint32_t n = r->slot_size < PREFETCH_LINES * 64 ? r->slot_size :
		     PREFETCH_LINES * 64, o;

	for (o = 0; o < n; o += 64) {
#if defined(__x86_64__) || defined(__i386__)
		/* PREFETCHW; executes as a NOP on CPUs without it. */
		__asm__ volatile("prefetchw %0" : : "m"(*(s + o)));
#else
		__builtin_prefetch(s + o, 1, 3);
#endif
	}
}

/* ---- producer side -------------------------------------------------------- */

/*
 * Claim up to @n consecutive positions for writing, recorded in @rec.
 * Returns how many (0: full; @rec then names nothing we own), the first in
 * *@pos_out.
 */
static inline unsigned ring_prod_claim(struct ring *r, unsigned n,
				       uint64_t *pos_out, struct proc_rec *rec)
{
	/* relaxed: a guess at the next position; the CAS confirms it. */
	uint64_t pos = atomic_load_explicit(r->prod_pos, memory_order_relaxed);

	for (;;) {
		uint64_t seq, again;
		unsigned k = 0;

		do {
			/*
			 * A1: acquire; pairs with R2 (free) of the previous lap:
			 * its consumer's reads precede our writes to the slot.
			 */
			seq = atomic_load_explicit(&ring_slot(r, pos + k)->seq,
						   memory_order_acquire);
		} while (seq == pos + k && ++k < n);
		if (k) {
			rec_set(rec, r, pos, 0, k);
			/*
			 * C1: seq_cst (on x86 the same lock cmpxchg as a
			 * release); publishes the record to a repairer that
			 * acquires prod_pos, and orders the claim before the
			 * pass-on's load of waiters (wait.h, shmq__pass_on).
			 * Ownership of [pos, pos+k) is all the CAS decides;
			 * slot contents are ordered by A1/R1.  Killed after
			 * it: the record names our claim.
			 */
			if (atomic_compare_exchange_weak_explicit(r->prod_pos,
					&pos, pos + k, memory_order_seq_cst,
					memory_order_relaxed)) {
				*pos_out = pos;
				return k;
			}
			continue;       /* pos was reloaded by the CAS */
		}
		if ((int64_t)((seq & ~SEQ_TOMB) - pos) < 0)
			return 0;       /* the previous lap (or its tombstone): full */
		/* Another producer took pos; follow it. */
		/* relaxed: a new guess, confirmed by the next CAS. */
		again = atomic_load_explicit(r->prod_pos, memory_order_relaxed);
		if (again == pos)
			return 0;       /* seq ahead of prod_pos: corrupt; act full */
		pos = again;
	}
}

/* Make position @pos's message, in slot @s, visible to consumers. */
static inline void slot_publish(struct slot *s, uint64_t pos, uint32_t len)
{
	/* relaxed, both: ordered before R1 by R1's release.  No key. */
	atomic_store_explicit(&s->flags, 0, memory_order_relaxed);
	atomic_store_explicit(&s->len, len, memory_order_relaxed);
	/* R1: release; publishes len and payload.  Pairs with A2. */
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
}

static inline void ring_publish(struct ring *r, uint64_t pos, uint32_t len)
{
	slot_publish(ring_slot(r, pos), pos, len);
}

/* slot_publish() of a message whose key takes the first @klen data bytes. */
static inline void slot_publish_key(struct slot *s, uint64_t pos,
				    uint32_t len, uint32_t klen)
{
	/* relaxed, both: ordered before R1 by R1's release. */
	atomic_store_explicit(&s->flags, klen, memory_order_relaxed);
	atomic_store_explicit(&s->len, len, memory_order_relaxed);
	/* R1: release; publishes key, len and payload.  Pairs with A2. */
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
}

/* ---- consumer side -------------------------------------------------------- */

enum { CLAIM_OK, CLAIM_TOO_LONG, CLAIM_TOMB };

/*
 * Claim up to @n consecutive published messages, recorded in @rec.
 * Message k must fit bufs[k].iov_len (or @buflen when @bufs is NULL,
 * SIZE_MAX for no limit); the claim stops before the first that does not,
 * and before a tombstone.  Returns how many (0: empty), the first in
 * *@pos_out; *@why is CLAIM_TOO_LONG when the first message does not fit
 * (nothing claimed), CLAIM_TOMB when the one position claimed is a
 * tombstone (the caller frees it and tries again).
 */
static inline unsigned ring_cons_claim(struct ring *r, unsigned n,
				       const struct iovec *bufs, size_t buflen,
				       uint64_t *pos_out, int *why,
				       struct proc_rec *rec)
{
	/* relaxed: a guess at the next position; the CAS confirms it. */
	uint64_t pos = atomic_load_explicit(r->cons_pos, memory_order_relaxed);

	for (;;) {
		uint64_t seq, again;
		unsigned k = 0;

		*why = CLAIM_OK;
		for (;;) {
			struct slot *s = ring_slot(r, pos + k);
			size_t lim = bufs ? bufs[k].iov_len : buflen;
			uint32_t len;

			/* A2: acquire; pairs with R1: len, payload visible. */
			seq = atomic_load_explicit(&s->seq,
						   memory_order_acquire);
			ring_prefetch_tail(r, s);
			if (seq != pos + k + 1) {
				if (k == 0 && seq == ((pos + 1) | SEQ_TOMB)) {
					*why = CLAIM_TOMB;
					k = 1;
				}
				break;
			}
			/* relaxed: ordered after A2; untrusted, so clamped. */
			len = slot_plen(atomic_load_explicit(&s->len,
						memory_order_relaxed),
					r->msg_size, slot_klen(s, r->msg_size));
			if (len > lim) {
				if (k == 0)
					*why = CLAIM_TOO_LONG;
				break;
			}
			if (++k == n)
				break;
		}
		if (k) {
			rec_set(rec, r, pos, REC_CONS, k);
			/*
			 * C2: seq_cst; publishes the record and orders the
			 * claim before the pass-on, as C1.  Ownership only;
			 * the message was acquired by A2.  Killed after it:
			 * the record names our claim.
			 */
			if (atomic_compare_exchange_weak_explicit(r->cons_pos,
					&pos, pos + k, memory_order_seq_cst,
					memory_order_relaxed)) {
				*pos_out = pos;
				return k;
			}
			continue;
		}
		if (*why == CLAIM_TOO_LONG)
			return 0;
		if ((int64_t)((seq & ~SEQ_TOMB) - (pos + 1)) < 0)
			return 0;       /* not yet published: empty */
		/* Another consumer took pos; follow it. */
		/* relaxed: a new guess, confirmed by the next CAS. */
		again = atomic_load_explicit(r->cons_pos, memory_order_relaxed);
		if (again == pos)
			return 0;       /* seq ahead of cons_pos: corrupt; act empty */
		pos = again;
	}
}

/*
 * Length of claimed message @pos, clamped to msg_size (after its key) and
 * @lim; *@klen: its key's length (the payload starts there in data).
 */
static inline uint32_t ring_len(const struct ring *r, uint64_t pos, size_t lim,
				uint32_t *klen)
{
	const struct slot *s = ring_slot(r, pos);
	uint32_t k = slot_klen(s, r->msg_size);
	/* relaxed: read after our claim; ordered by A2 in ring_cons_claim. */
	uint32_t len = slot_plen(atomic_load_explicit(&s->len,
				 memory_order_relaxed), r->msg_size, k);

	*klen = k;
	return len > lim ? (uint32_t)lim : len;
}

/* Give slot @s, of position @pos, back to producers (one lap later). */
static inline void slot_free(const struct ring *r, struct slot *s,
			     uint64_t pos)
{
	/* R2: release; our reads of the slot precede its reuse.  Pairs A1. */
	atomic_store_explicit(&s->seq, pos + r->capacity,
			      memory_order_release);
}

static inline void ring_free(struct ring *r, uint64_t pos)
{
	slot_free(r, ring_slot(r, pos), pos);
}

/*
 * True when the redelivery lane may hold something.  Both words sit on a
 * line that only recovery and lane consumers write, so in the common case
 * this is one load that hits in the cache.
 */
static inline bool lane_pending(const struct shmq *q)
{
	/* relaxed, both: a hint; the lane claim re-reads seq with acquire. */
	return atomic_load_explicit(q->lane.prod_pos, memory_order_relaxed) !=
	       atomic_load_explicit(q->lane.cons_pos, memory_order_relaxed);
}

/* Cheap re-checks for the wait loop: could a claim succeed now? */
static inline bool ring_ready_recv(const struct ring *r)
{
	/* relaxed: a hint; the claim itself re-reads with acquire. */
	uint64_t pos = atomic_load_explicit(r->cons_pos, memory_order_relaxed);
	const struct slot *s = ring_slot(r, pos);
	/*
	 * acquire: paired with R1, as A2.  True when pos is published (or a
	 * tombstone), or when pos is stale (seq moved on): either way a claim
	 * should retry.
	 */
	uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);

	ring_prefetch_tail(r, s);
	return (int64_t)((seq & ~SEQ_TOMB) - (pos + 1)) >= 0;
}

static inline bool ring_can_recv(const struct shmq *q)
{
	return (lane_pending(q) && ring_ready_recv(&q->lane)) ||
	       ring_ready_recv(&q->main);
}

static inline bool ring_can_send(const struct shmq *q)
{
	/* relaxed: a hint; the claim itself re-reads with acquire. */
	uint64_t pos = atomic_load_explicit(q->main.prod_pos,
					    memory_order_relaxed);

	/* acquire: paired with R2, as A1.  A tombstone is a full slot. */
	return (int64_t)((atomic_load_explicit(&ring_slot(&q->main, pos)->seq,
					       memory_order_acquire) &
			  ~SEQ_TOMB) - pos) >= 0;
}

/*
 * queue.c, for shmq_purge(): drop the oldest message whose position is
 * below @last (main ring) or *@last_lane (the lane, taken first; lowered
 * to "done" when the lane's head is not published).  1: one dropped; 0:
 * none left below the bounds (or the main ring's next is not published
 * yet); -errno.
 */
int shmq__purge_one(struct shmq *q, uint64_t last, uint64_t *last_lane);

/*
 * queue.c: fill @meta for claimed message @pos of ring @r, whose key takes
 * @klen bytes at the start of its data (shmq_recv_meta, shmq_msg_meta).
 */
struct shmq_meta;
void shmq__meta_fill(struct shmq *q, const struct ring *r, uint64_t pos,
		     uint32_t klen, struct shmq_meta *meta);

/* queue.c: a handle for a validated entry that the caller counted (an
 * open or a pin), and its release (the caller uncounts it). */
int shmq__queue_new(shmq_seg *seg, const struct shmq_qinfo *qi, shmq **out);
void shmq__queue_free(shmq *q);

/* recover.c: repair queue @q's stuck positions now (takes the control-plane lock). */
int shmq__recover_queue(shmq *q);

#endif /* SHMQ_RING_H */
