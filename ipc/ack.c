/* SPDX-License-Identifier: MIT */
/*
 * ack.c - acknowledged delivery: shmq_fetch, shmq_ack, shmq_nack; the
 * unacknowledged area (ack.h); the probes that make a dead owner's
 * messages come back promptly; dead-lettering.
 *
 * The area.  A fetched message must survive its ring slot (a slow job
 * must not stop producers when they lap it), so each MPMC queue has an
 * area of cap entries beside its rings.  An entry is taken, filled, owed
 * and freed through its 64-bit state word (ack.h): kind, owner, gen.
 *
 * Fetch (one message):
 *   1. take an entry: CAS FREE -> FILLING(me, gen + 1)          (K1)
 *      (none free, or this handle owes its prefetch: wait on "room")
 *   2. claim a message as shmq_recv does, named by an operation record
 *   3. copy the key and payload into the entry; write its seq, source
 *      position, deliveries, handle
 *   4. HELD(me, gen): release store                              (K2)
 *   5. copy the payload out, free the ring slot (R2), clear the record
 *      (R4), wake a producer
 *   6. tag = gen << 32 | index + 1
 * Ack: CAS HELD(me, gen) -> FREE(gen) (K3), then wake a fetcher waiting
 * for room.  Nack: CAS HELD(me, gen) -> READY(gen) (K4), then move it
 * into the redelivery lane (under the control-plane lock, as recovery).
 *
 * Who may change a state word.  FREE: any fetcher (K1; the CAS decides).
 * FILLING, HELD: only its owner while the owner lives (K2, K3, K4); a
 * repairer under the lock once the owner is dead.  READY: only a holder of
 * the control-plane lock (the move into the lane, then FREE).  So an owner
 * never races a repairer over its own entries, and repairers never race
 * each other; every transition is a CAS from the exact word read (or a
 * store by the only party allowed), so a stale tag cannot touch a later
 * fetch's entry: its gen differs.
 *
 * A fetcher killed at each step (the repairer, recover.c, under the lock,
 * sees its owner dead: no live attachment has its (index, attach_gen)):
 *   before K1              nothing is taken.
 *   K1 .. the claim        the entry is FILLING and empty: freed.
 *   the claim .. K2        the ring slot is a dead consumer's claim: moved
 *                          to the lane as for shmq_recv; the FILLING entry
 *                          is freed.  Delivered once more.
 *   K2 .. R2               both the entry (HELD) and the ring slot hold the
 *                          message.  The pass turns dead HELD entries READY
 *                          first, and a dead consumer's ring slot whose
 *                          position a READY entry names as its source is
 *                          freed, not moved: delivered once more, not twice.
 *   after R2               the entry alone: READY, then moved to the lane.
 * A READY entry whose move was cut short by the repairer's own death
 * (after the lane publish, before FREE) is moved again by the next pass:
 * the only duplicate recovery makes, at least once.
 *
 * Promptness.  A dead owner's messages must reach a waiting consumer
 * within 100 ms with no recovery call, attach or send, and without
 * heartbeats on the fast path.  Death is visible only in the kernel: the
 * dead attachment's liveness lock (shm/proc.c) is free.  So consumers
 * that wait on a queue where anything has ever been fetched or acquired
 * (holds_seen) sleep at most ACK_PROBE_NS at a time, and every
 * ACK_PROBE_NS a waiting handle probes: one F_OFD_GETLK per attached
 * process; a dead one makes it run recovery over the whole segment
 * (trylock: never blocked by a stopped holder of the lock), which reaps
 * the dead attachment and repairs every queue.  Every other place that
 * reaps a dead attachment repairs at once too (shmq__repair_locked), so
 * an attachment that is gone from the process table has nothing left to
 * find.  The cost: an idle consumer of such a queue wakes 40 times a
 * second (a few microseconds each); queues used only with the copying
 * calls sleep until woken, as before.  A stopped process holds its lock:
 * it is alive and keeps what it owes.
 *   The first fetch or acquire on a queue sets holds_seen (seq_cst) and
 * then looks for sleepers (seq_cst) and wakes them all; a sleeper reads
 * holds_seen after its announcement (W1) and fence (F2): either it sees
 * the mark and bounds its sleep, or the marker sees it and wakes it.
 * Without that, a consumer asleep since before the first fetch would
 * sleep through the fetcher's death.
 *
 * The per-handle limit (prefetch) is the handle's own count of what it
 * owes (owed), kept only when the limit is below the area's size (two
 * locked instructions per message otherwise spent for nothing); threads
 * of one handle share it, and each reserves its count (a CAS below the
 * limit) before it takes an entry, so together they cannot pass the
 * limit; a fetch that then fails gives the count back.  Whatever frees an
 * entry or uncounts one wakes
 * every fetch waiting for room (the "room" event), since each judges its
 * own handle's limit: one woken in vain must not swallow the wake-up.
 *
 * Dead-lettering (max_deliveries): shmq_nack of a message delivered that
 * many times publishes it to the dead-letter exchange at once; a message
 * that comes back after its owner's death is judged by the consumer that
 * would get it from the lane (claim.h), which publishes it from there
 * (holding no claim: its slot is freed first).  Both may wait for the
 * control-plane lock (opening the exchange, building a route), as any
 * shmq_publish.  Eviction (SHMQ_DROP_OLDEST), which may run inside a
 * publish, drops a poison message like any other oldest one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ack.h"
#include "claim.h"
#include "spsc.h"

/* How long shmq_nack() waits for the control-plane lock to requeue. */
#define ACK_NACK_LOCK_NS 20000000ll

/* ---- the area's geometry ---------------------------------------------------- */

void shmq__ack_view(struct ack_view *a, unsigned char *block,
		    const struct shmq_qinfo *qi)
{
	uint64_t off;

	memset(a, 0, sizeof(*a));
	if (!qi->ack_cap)
		return;
	off = shmq__ack_off(qi->capacity, qi->slot_size, qi->flags);
	a->hdr = (struct ack_hdr *)(block + off);
	a->state = (_Atomic uint64_t *)(block + off + SHMQ_ACK_HDR_SIZE);
	a->ents = block + off + SHMQ_ACK_HDR_SIZE +
		  shmq__ack_states_bytes(qi->ack_cap);
	/* From the validated directory entry, never from the block. */
	a->cap = qi->ack_cap;
	a->entry_size = shmq__ack_entry_size(qi->msg_size);
	a->prefetch = qi->prefetch ? qi->prefetch : qi->ack_cap;
	a->max_deliveries = qi->max_deliveries;
}

void shmq__ack_init(void *block, const struct shmq_qinfo *qi,
		    const char *dead_letter)
{
	struct ack_view a;

	shmq__ack_view(&a, block, qi);
	if (!a.hdr)
		return;
	/* The block is zeroed: every state word is FREE, gen 0. */
	a.hdr->magic = ACK_MAGIC;
	a.hdr->cap = a.cap;
	a.hdr->entry_size = a.entry_size;
	if (dead_letter)
		strncpy(a.hdr->dead_letter, dead_letter,
			sizeof(a.hdr->dead_letter) - 1);
}

/* ---- owners --------------------------------------------------------------- */

bool shmq__ack_owner_alive(shmq_seg *seg, const uint8_t *alive, uint64_t v)
{
	uint32_t p = ACK_PIDX(v);

	if (p >= seg->max_procs || !alive[p])
		return false;
	/*
	 * Under the lock, which orders every attach's write of attach_gen.
	 * Another nonce: the dead owner's entry was taken by a new attachment.
	 */
	return shmq__proc_entry(seg, p)->attach_gen == ACK_NONCE(v);
}

/* ---- promptness ------------------------------------------------------------- */

void shmq__ack_mark(shmq *q)
{
	struct ack_hdr *h = q->ack.hdr;
	uint32_t w;

	/* relaxed: set once and never cleared; the slow path orders below. */
	if (!h || __builtin_expect(atomic_load_explicit(&h->holds_seen,
					memory_order_relaxed) != 0, 1))
		return;
	/*
	 * seq_cst store, then seq_cst load of the consumers' waiters: pairs
	 * with a sleeper's W1 and F2 before it reads holds_seen (see the
	 * top, "Promptness").  Whoever misses the other is seen by it.
	 */
	atomic_store_explicit(&h->holds_seen, 1, memory_order_seq_cst);
	w = atomic_load_explicit(&q->hdr->not_empty.waiters,
				 memory_order_seq_cst);
	if (w)
		shmq__wake(q, &q->hdr->not_empty, INT32_MAX, w);
}

bool shmq__ack_watched(const shmq *q)
{
	/* relaxed: read after the waiter's F2, which orders it (see mark). */
	return q->ack.hdr && atomic_load_explicit(&q->ack.hdr->holds_seen,
						  memory_order_relaxed) &&
	       atomic_load_explicit(&q->stall_ns, memory_order_relaxed) > 0;
}

/* Is any attached process dead (its liveness lock free)? */
static bool dead_attached(shmq_seg *seg)
{
	uint32_t i;

	for (i = 0; i < seg->max_procs; i++) {
		struct proc_entry *pe = shmq__proc_entry(seg, i);

		/*
		 * relaxed: written under the lock by attach and reap; a stale
		 * value costs one liveness check, or the next probe.
		 */
		if (__atomic_load_n(&pe->state, __ATOMIC_RELAXED) ==
		    PROC_ATTACHED && !shmq__proc_alive(seg, i))
			return true;
	}
	return false;
}

uint64_t shmq__ack_probe(shmq *q)
{
	uint64_t now, last;

	if (!shmq__ack_watched(q))
		return 0;
	now = shmq__now_ns(CLOCK_MONOTONIC);
	/* relaxed: a per-handle hint; two threads probing at once is harmless. */
	last = atomic_load_explicit(&q->probe_at, memory_order_relaxed);
	if (now - last >= ACK_PROBE_NS) {
		atomic_store_explicit(&q->probe_at, now, memory_order_relaxed);
		if (dead_attached(q->seg))
			shmq__recover_dead(q->seg);
		/* relaxed: a hint; the pass re-reads every word under the lock. */
		else if (atomic_load_explicit(&q->ack.hdr->ready,
					      memory_order_relaxed))
			shmq__recover_queue(q);
	}
	return ACK_PROBE_NS;
}

/* ---- taking and giving back entries ------------------------------------------ */

/*
 * Does the queue limit what one handle may owe (prefetch below the area's
 * size)?  Only then does a handle count what it owes: the count is two
 * locked instructions per message that a queue without a limit skips.
 */
static inline bool limited(const shmq *q)
{
	return q->ack.prefetch < q->ack.cap;
}

/* Can a fetch through @q take an entry now?  (The room wait's ready().) */
static bool room_ready(const shmq *q)
{
	const struct ack_view *a = &q->ack;
	uint32_t i;

	/* seq_cst: pairs with an acker's decrement (see shmq_ack). */
	if (limited(q) && atomic_load_explicit(&((shmq *)q)->owed,
					       memory_order_seq_cst) >=
	    a->prefetch)
		return false;
	for (i = 0; i < a->cap; i++)
		/* relaxed: a hint; the CAS in take() decides. */
		if (ACK_KIND(atomic_load_explicit(&a->state[i],
						  memory_order_relaxed)) ==
		    ACK_FREE)
			return true;
	return false;
}

static bool never_stuck(const shmq *q, uint64_t *at)
{
	(void)q;
	(void)at;
	return false;
}

/* K1: take a free entry for a fetch.  Its index, or -1; *@gen its gen. */
static int take(shmq *q, uint32_t *gen)
{
	struct ack_view *a = &q->ack;
	/* relaxed: a private hint. */
	uint32_t start = atomic_load_explicit(&q->ack_hint,
					      memory_order_relaxed), i, k;

	if (start >= a->cap)
		start = 0;
	for (k = 0, i = start; k < a->cap; k++, i = i + 1 == a->cap ? 0 : i + 1) {
		/* relaxed: a guess; the CAS confirms it. */
		uint64_t v = atomic_load_explicit(&a->state[i],
						  memory_order_relaxed);
		uint32_t g;

		if (ACK_KIND(v) != ACK_FREE)
			continue;
		g = ACK_GEN(v) + 1;
		/*
		 * K1: acquire; pairs with the release that freed the entry
		 * (K3, or a mover's): its reads of the entry precede our
		 * writes.  The CAS alone decides who takes it.
		 */
		if (atomic_compare_exchange_strong_explicit(&a->state[i], &v,
				ack_word(ACK_FILLING, q->ack_me, g),
				memory_order_acquire, memory_order_relaxed)) {
			/* relaxed: a private hint (see the load above). */
			atomic_store_explicit(&q->ack_hint, i,
					      memory_order_relaxed);
			*gen = g;
			return (int)i;
		}
	}
	return -1;
}

/* An entry taken by take() and not used: FREE again, same gen. */
static void untake(shmq *q, uint32_t i, uint32_t gen)
{
	/* release: pairs with K1 of the next taker (we wrote nothing). */
	atomic_store_explicit(&q->ack.state[i], ack_word(ACK_FREE, 0, gen),
			      memory_order_release);
	/* All of them: each room waiter judges its own handle's limit. */
	shmq__notify(q, &q->ack.hdr->room, INT32_MAX);
}

static void gave_up_entry(shmq *q);

/*
 * Under a prefetch limit: count one more owed message if the handle is
 * below its limit (so that threads sharing the handle cannot pass it
 * together).  Without a limit: nothing to count.
 */
static bool reserve_owed(shmq *q)
{
	uint32_t o;

	if (!limited(q))
		return true;
	/* relaxed: a guess; the CAS decides. */
	o = atomic_load_explicit(&q->owed, memory_order_relaxed);
	do {
		if (o >= q->ack.prefetch)
			return false;
		/*
		 * seq_cst: pairs, like gave_up_entry's decrement, with a room
		 * waiter's re-check (the count is part of room_ready()).
		 */
	} while (!atomic_compare_exchange_weak_explicit(&q->owed, &o, o + 1,
			memory_order_seq_cst, memory_order_relaxed));
	return true;
}

/* Take an entry, waiting per @dl.  Index, or -EAGAIN / -ETIMEDOUT. */
static int take_wait(shmq *q, uint32_t *gen, struct deadline *dl)
{
	int i, rc = 0;

	for (;;) {
		if (reserve_owed(q)) {
			i = take(q, gen);
			if (i >= 0)
				return i;
			/* No entry: give the count back (and its waiters). */
			if (limited(q))
				gave_up_entry(q);
		}
		if (dl->timeout_ns == 0) {
			/* A full area may be a dead owner's: probe now and then. */
			shmq__ack_probe(q);
			return -EAGAIN;
		}
		if (rc)
			return rc;      /* the last attempt after the deadline */
		rc = shmq__wait(q, &q->ack.hdr->room, room_ready, never_stuck,
				dl);
	}
}

/* The time left of @dl, as a relative timeout for the next wait. */
static int64_t remaining(struct deadline *dl)
{
	uint64_t now;

	if (dl->timeout_ns == SHMQ_FOREVER || dl->timeout_ns == 0)
		return dl->timeout_ns;
	if (!dl->abs_ns)
		return dl->timeout_ns;
	now = shmq__now_ns(CLOCK_MONOTONIC);
	return now >= dl->abs_ns ? 0 : (int64_t)(dl->abs_ns - now);
}

/* ---- fetch, ack, nack --------------------------------------------------------- */

ssize_t shmq_fetch(shmq *q, void *buf, size_t buflen, struct shmq_meta *meta,
		   uint64_t *tag, int64_t timeout_ns)
{
	struct deadline dl = { timeout_ns, 0, 0 };
	struct shmq_meta m;
	struct ack_ent *e;
	struct ring *r;
	struct op op;
	uint64_t pos;
	uint32_t gen = 0, len, klen;
	int i, rc;

	if (!q || !tag || (!buf && buflen) || timeout_check(timeout_ns))
		return -EINVAL;
	if ((q->flags & SHMQ_SPSC) || !q->ack.hdr)
		return -EOPNOTSUPP;
	role(q, PROC_ROLE_CONS);
	shmq__ack_mark(q);
	i = take_wait(q, &gen, &dl);
	if (i < 0)
		return i;
	rc = op_begin(q, &op);
	if (rc) {
		untake(q, (uint32_t)i, gen);
		if (limited(q))
			gave_up_entry(q);
		return rc;
	}
	rc = claim_cons(q, 1, NULL, buflen, &pos, &r, remaining(&dl), op.rec);
	if (rc < 0) {
		op_end(q, &op);
		untake(q, (uint32_t)i, gen);
		if (limited(q))
			gave_up_entry(q);
		return rc;
	}
	/* Step 3: the message into the entry (ours while FILLING). */
	e = ack_ent(&q->ack, (uint32_t)i);
	len = ring_len(r, pos, SIZE_MAX, &klen);
	memcpy(e->data, ring_slot(r, pos)->data, klen + len);
	shmq__meta_fill(q, r, pos, klen, meta ? meta : &m);
	if (!meta)
		meta = &m;
	e->seq = meta->seq;
	e->src = pos | (r == &q->lane ? ACK_SRC_LANE : 0);
	e->deliveries = meta->deliveries;
	e->len = len;
	e->klen = klen;
	/* relaxed: read by our own process's acks, ordered by K2 / the tag. */
	atomic_store_explicit(&e->hid, q->hid, memory_order_relaxed);
	/*
	 * K2: release; publishes the entry's bytes to a repairer that
	 * acquires HELD (after our death).  From here the entry owes the
	 * message; until R2 below, the ring slot holds it too (see the top).
	 */
	atomic_store_explicit(&q->ack.state[i],
			      ack_word(ACK_HELD, q->ack_me, gen),
			      memory_order_release);
	if (len > buflen)
		len = (uint32_t)buflen;         /* ring_len checked; defensive */
	if (len)
		memcpy(buf, e->data + klen, len);
	ring_free(r, pos);
	op_end(q, &op);
	notify_freed(q, r, 1);
	*tag = (uint64_t)gen << 32 | (uint32_t)(i + 1);
	return len;
}

/* A handle that can acknowledge at all: 0, or -EINVAL / -EOPNOTSUPP. */
static int ack_check(shmq *q)
{
	if (!q)
		return -EINVAL;
	if ((q->flags & SHMQ_SPSC) || !q->ack.hdr)
		return -EOPNOTSUPP;
	return 0;
}

/*
 * The entry of @tag if it is an outstanding fetch of @q: its index, and
 * in *@want the state word it must have.  -EINVAL otherwise (and the
 * errors of ack_check()).
 */
static int tag_entry(shmq *q, uint64_t tag, uint64_t *want)
{
	uint32_t i = (uint32_t)tag;
	uint64_t v;
	int rc = ack_check(q);

	if (rc)
		return rc;
	if (i == 0 || i > q->ack.cap)
		return -EINVAL;
	i--;
	*want = ack_word(ACK_HELD, q->ack_me, (uint32_t)(tag >> 32));
	/* acquire: pairs with K2 (another thread of ours may have fetched). */
	v = atomic_load_explicit(&q->ack.state[i], memory_order_acquire);
	if (v != *want)
		return -EINVAL;
	/* relaxed: written by our process before K2, which we acquired. */
	if (atomic_load_explicit(&ack_ent(&q->ack, i)->hid,
				 memory_order_relaxed) != q->hid)
		return -EINVAL;         /* another handle's fetch */
	return (int)i;
}

/*
 * An entry left HELD by this handle (its state CAS, seq_cst, is done):
 * uncount it, and wake the fetchers waiting for room, all of them (each
 * judges its own handle's limit: one woken in vain would keep the wake-up
 * from the one that could go on).
 */
static void gave_up_entry(shmq *q)
{
	uint32_t w;

	if (limited(q))
		/* seq_cst RMW: ordered before the load below, as the CAS. */
		atomic_fetch_sub_explicit(&q->owed, 1, memory_order_seq_cst);
	/*
	 * seq_cst: with the state CAS (and the count) before it, pairs with
	 * a room waiter's W1/F2 (as pass-on does, wait.h): either it sees
	 * the entry and the count, or we see it.
	 */
	w = atomic_load_explicit(&q->ack.hdr->room.waiters,
				 memory_order_seq_cst);
	if (__builtin_expect(w != 0, 0))
		shmq__wake(q, &q->ack.hdr->room, INT32_MAX, w);
}

int shmq_ack(shmq *q, uint64_t tag)
{
	uint64_t want;
	int i = tag_entry(q, tag, &want);

	if (i < 0)
		return i;
	/*
	 * K3: seq_cst (release for the next taker's K1: our reads of the
	 * entry come first; seq_cst for gave_up_entry's pairing).  Fails if
	 * another thread acked or nacked the same tag first.
	 */
	if (!atomic_compare_exchange_strong_explicit(&q->ack.state[i], &want,
			ack_word(ACK_FREE, 0, ACK_GEN(want)),
			memory_order_seq_cst, memory_order_relaxed))
		return -EINVAL;
	/* relaxed: a private hint: this entry is in our cache. */
	atomic_store_explicit(&q->ack_hint, (uint32_t)i, memory_order_relaxed);
	gave_up_entry(q);
	return 0;
}

static int nack_poison(shmq *q, uint32_t i, uint64_t want);

/* Entries turned READY by us: count them, then try to move them now. */
static void requeue(shmq *q, uint32_t n)
{
	/* relaxed, both: a statistic, and a hint re-read under the lock. */
	atomic_fetch_add_explicit(&q->ack.hdr->nacked, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&q->ack.hdr->ready, n, memory_order_relaxed);
	if (shmq__ack_requeue(q, ACK_NACK_LOCK_NS) < 0)
		/*
		 * The lock is busy: the messages wait in the area.  A consumer
		 * that finds the queue empty (claim.h, cons_stranded) or probes
		 * moves them; wake one.
		 */
		shmq__notify(q, &q->hdr->not_empty, 1);
}

int shmq_nack(shmq *q, uint64_t tag)
{
	uint64_t want;
	int i = tag_entry(q, tag, &want);

	if (i < 0)
		return i;
	/* Delivered max_deliveries times: not again; dead-lettered now. */
	if (q->ack.max_deliveries &&
	    ack_ent(&q->ack, (uint32_t)i)->deliveries >= q->ack.max_deliveries)
		return nack_poison(q, (uint32_t)i, want);
	/*
	 * K4: seq_cst (release: our reads of the entry precede the mover's
	 * copy; seq_cst as K3).  From READY on, only a holder of the lock
	 * touches the entry.
	 */
	if (!atomic_compare_exchange_strong_explicit(&q->ack.state[i], &want,
			ack_word(ACK_READY, 0, ACK_GEN(want)),
			memory_order_seq_cst, memory_order_relaxed))
		return -EINVAL;
	/* Our count: a fetch of ours waiting at the limit may go on. */
	gave_up_entry(q);
	requeue(q, 1);
	return 0;
}

void shmq__ack_close(shmq *q)
{
	uint32_t i, n = 0;

	/* relaxed: the caller closes the handle: no other thread uses it. */
	if (!q->ack.hdr || (limited(q) && !atomic_load_explicit(&q->owed,
							memory_order_relaxed)))
		return;
	for (i = 0; i < q->ack.cap; i++) {
		/* acquire: as in tag_entry(). */
		uint64_t v = atomic_load_explicit(&q->ack.state[i],
						  memory_order_acquire);

		/* relaxed: written by our process before K2 (acquired above). */
		if (ACK_KIND(v) != ACK_HELD ||
		    (v & ACK_OWNER_MASK) != q->ack_me ||
		    atomic_load_explicit(&ack_ent(&q->ack, i)->hid,
					 memory_order_relaxed) != q->hid)
			continue;
		/* K4, as in shmq_nack(). */
		if (atomic_compare_exchange_strong_explicit(&q->ack.state[i],
				&v, ack_word(ACK_READY, 0, ACK_GEN(v)),
				memory_order_seq_cst, memory_order_relaxed))
			n++;
	}
	/* relaxed: the handle is being closed (see above). */
	atomic_store_explicit(&q->owed, 0, memory_order_relaxed);
	if (n)
		requeue(q, n);
}

/* ---- poison messages ------------------------------------------------------------ */


/* The queue's dead-letter exchange, opened on first use (or NULL). */
static shmq_exchange *dlx_get(shmq *q)
{
	/* acquire: pairs with the release CAS below. */
	shmq_exchange *x = atomic_load_explicit(&q->dlx, memory_order_acquire);
	shmq_exchange *none = NULL;
	char name[sizeof(q->ack.hdr->dead_letter)];

	if (x)
		return x;
	/* Untrusted bytes: bounded, and the name is checked by open. */
	memcpy(name, q->ack.hdr->dead_letter, sizeof(name));
	name[sizeof(name) - 1] = 0;
	if (!name[0] || shmq_exchange_open(q->seg, name, &x) != 0)
		return NULL;
	/* release: publishes the opened handle to our other threads. */
	if (!atomic_compare_exchange_strong_explicit(&q->dlx, &none, x,
			memory_order_release, memory_order_acquire)) {
		shmq_exchange_close(x);
		x = none;
	}
	return x;
}

/*
 * Count a dead-lettered message, then publish it to the dead-letter
 * exchange (never waiting: a full queue there drops it), if there is one.
 */
static void dead_letter_send(shmq *q, const char *key, const void *msg,
			     uint32_t len)
{
	shmq_exchange *x;

	/* relaxed: a statistic. */
	atomic_fetch_add_explicit(&q->ack.hdr->dead_lettered, 1,
				  memory_order_relaxed);
	if (msg && (x = dlx_get(q)) != NULL)
		(void)shmq_publish(x, key, msg, len, 0);
}

void shmq__dead_letter(shmq *q, uint64_t pos, struct proc_rec *rec)
{
	struct ring *r = &q->lane;
	uint32_t len, klen;
	char key[SHMQ_KEY_MAX + 1];
	unsigned char *copy = malloc(q->msg_size ? q->msg_size : 1);

	len = ring_len(r, pos, SIZE_MAX, &klen);
	if (klen > SHMQ_KEY_MAX)
		klen = SHMQ_KEY_MAX;
	memcpy(key, ring_slot(r, pos)->data, klen);
	key[klen] = 0;
	if (copy)
		memcpy(copy, ring_slot(r, pos)->data + klen, len);
	/*
	 * The slot goes first (our record is the one a publish would use):
	 * killed between here and the publish, the message is lost, as a
	 * dead-lettered message may be (at most once, as RabbitMQ's).
	 */
	ring_free(r, pos);
	rec_clear(rec);
	dead_letter_send(q, key, copy, len);
	free(copy);
}

/* shmq_nack() of entry @i (state @want) at max_deliveries. */
static int nack_poison(shmq *q, uint32_t i, uint64_t want)
{
	struct ack_ent *e = ack_ent(&q->ack, i);
	unsigned char *copy = malloc(q->msg_size ? q->msg_size : 1);
	char key[SHMQ_KEY_MAX + 1];
	uint32_t klen, len;

	/* Ours while HELD; clamped all the same (the segment is shared). */
	klen = e->klen > q->msg_size ? q->msg_size : e->klen;
	len = e->len > q->msg_size - klen ? q->msg_size - klen : e->len;
	if (copy)
		memcpy(copy, e->data + klen, len);
	if (klen > SHMQ_KEY_MAX)
		klen = SHMQ_KEY_MAX;
	memcpy(key, e->data, klen);
	key[klen] = 0;
	/* K3, as in shmq_ack(): the entry is done with. */
	if (!atomic_compare_exchange_strong_explicit(&q->ack.state[i], &want,
			ack_word(ACK_FREE, 0, ACK_GEN(want)),
			memory_order_seq_cst, memory_order_relaxed)) {
		free(copy);
		return -EINVAL;
	}
	gave_up_entry(q);
	/* relaxed: a statistic. */
	atomic_fetch_add_explicit(&q->ack.hdr->nacked, 1, memory_order_relaxed);
	dead_letter_send(q, key, copy, len);
	free(copy);
	return 0;
}

bool shmq__lane_take_poison(shmq *q, uint64_t *pos_out, struct proc_rec *rec)
{
	struct ring *r = &q->lane;
	/* relaxed: a guess; the CAS confirms it. */
	uint64_t pos = atomic_load_explicit(r->cons_pos, memory_order_relaxed);

	/* A2: acquire, as in ring_cons_claim(): then its count is visible. */
	if (atomic_load_explicit(&ring_slot(r, pos)->seq,
				 memory_order_acquire) != pos + 1 ||
	    q->hdr->lane_deliveries[pos & (SHMQ_LANE_CAP - 1)] <=
	    q->ack.max_deliveries)
		return false;
	rec_set(rec, r, pos, REC_CONS, 1);
	/* C2: seq_cst, as in ring_cons_claim(). */
	if (!atomic_compare_exchange_strong_explicit(r->cons_pos, &pos,
			pos + 1, memory_order_seq_cst, memory_order_relaxed)) {
		rec_clear(rec);
		return false;
	}
	*pos_out = pos;
	return true;
}

/* Close the dead-letter exchange handle, if any (shmq_close). */
void shmq__ack_free(shmq *q)
{
	/* relaxed: the handle is being closed; no other thread uses it. */
	shmq_exchange *x = atomic_load_explicit(&q->dlx, memory_order_relaxed);

	if (x)
		shmq_exchange_close(x);
}

/* ---- who owes what ----------------------------------------------------------------- */

int shmq_queue_owed(shmq_seg *seg, const char *name, struct shmq_owed *out,
		    unsigned n)
{
	struct shmq_qinfo qi;
	struct ack_view a;
	uint32_t *fetched = NULL, *acquired = NULL, p, i;
	uint8_t *alive = NULL;
	int rc, count = 0;

	if (!seg || (!out && n))
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	fetched = calloc(seg->max_procs, sizeof(*fetched));
	acquired = calloc(seg->max_procs, sizeof(*acquired));
	alive = calloc(seg->max_procs, 1);
	if (!fetched || !acquired || !alive) {
		rc = -ENOMEM;
		goto out;
	}
	rc = shmq__seg_lock(seg);
	if (rc)
		goto out;
	rc = shmq__dir_lookup(seg, name, DIR_KIND_QUEUE, &qi);
	if (rc < 0)
		goto unlock;
	shmq__proc_alive_map(seg, alive);
	shmq__ack_view(&a, seg->base + qi.off, &qi);
	for (i = 0; i < a.cap; i++) {
		/* acquire: a snapshot; pairs with K2. */
		uint64_t v = atomic_load_explicit(&a.state[i],
						  memory_order_acquire);

		if (ACK_KIND(v) == ACK_HELD && ACK_PIDX(v) < seg->max_procs &&
		    shmq__proc_entry(seg, ACK_PIDX(v))->state != PROC_FREE &&
		    shmq__proc_entry(seg, ACK_PIDX(v))->attach_gen ==
		    ACK_NONCE(v))
			fetched[ACK_PIDX(v)]++;
	}
	for (p = 0; p < seg->max_procs; p++) {
		struct proc_entry *pe = shmq__proc_entry(seg, p);
		int k;

		if (pe->state == PROC_FREE)
			continue;
		for (k = 0; k < PROC_RECS; k++) {
			/* acquire: a snapshot, as shmq__proc_live_recs. */
			uint64_t m = atomic_load_explicit(&pe->rec[k].meta,
							  memory_order_acquire);

			/*
			 * A held zero-copy message: a consumer's record of
			 * this queue (a copying call's is brief; counted too).
			 */
			if ((m & REC_VALID) && (m & REC_CONS) &&
			    ((m >> REC_QSHIFT) & REC_QMASK) == qi.idx)
				acquired[p] += (uint32_t)(m & REC_NMASK);
		}
		if (!fetched[p] && !acquired[p])
			continue;
		if ((unsigned)count < n) {
			out[count].proc_index = p;
			out[count].pid = pe->pid;
			out[count].alive = alive[p] ? 1 : 0;
			out[count].fetched = fetched[p];
			out[count].acquired = acquired[p];
			out[count].pad = 0;
		}
		count++;
	}
	rc = count;
unlock:
	shmq__seg_unlock(seg);
out:
	free(fetched);
	free(acquired);
	free(alive);
	return rc;
}

void shmq__ack_owed_by(shmq_seg *seg, uint32_t *owed)
{
	uint32_t q, i;

	for (q = 0; q < seg->max_queues; q++) {
		struct shmq_qinfo qi;
		struct ack_view a;

		if (shmq__dir_validate_entry(seg, shmq__dir_entry(seg, q),
					     &qi) != 0 ||
		    qi.kind != DIR_KIND_QUEUE || !qi.ack_cap)
			continue;
		shmq__ack_view(&a, seg->base + qi.off, &qi);
		for (i = 0; i < a.cap; i++) {
			/* relaxed: a snapshot for display. */
			uint64_t v = atomic_load_explicit(&a.state[i],
							  memory_order_relaxed);
			uint32_t p = ACK_PIDX(v);

			if (ACK_KIND(v) == ACK_HELD && p < seg->max_procs &&
			    shmq__proc_entry(seg, p)->attach_gen ==
			    ACK_NONCE(v))
				owed[p]++;
		}
	}
}
