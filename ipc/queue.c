/* SPDX-License-Identifier: MIT */
/*
 * queue.c - the public queue API: argument checks, timeouts, and the
 * claim -> copy -> publish/free -> notify sequence over ring.h and wait.h.
 *
 * Every blocking call has the same shape: try the claim; if it found
 * nothing and the caller may wait, wait on the event and try again; after
 * the deadline, try once more (a wake-up may have arrived with it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "spsc.h"
#include "wait.h"

void shmq__ring_init(void *block, const struct shmq_qinfo *qi)
{
	struct ring_hdr *h = block;
	unsigned char *slots = (unsigned char *)block + SHMQ_RING_HDR_SIZE;
	uint32_t i;

	h->magic = RING_MAGIC;
	h->capacity = qi->capacity;
	h->msg_size = qi->msg_size;
	h->slot_size = qi->slot_size;
	h->flags = qi->flags;
	/*
	 * relaxed: the queue becomes visible only through the directory,
	 * under the control-plane mutex, which orders these stores.  The lane's
	 * slots follow the main ring's and start at lap 0 too.
	 */
	for (i = 0; i < qi->capacity + SHMQ_LANE_CAP; i++)
		atomic_store_explicit(&((struct slot *)(slots +
				(uint64_t)i * qi->slot_size))->seq,
				i < qi->capacity ? i : i - qi->capacity,
				memory_order_relaxed);
}

void shmq__ring_view(struct ring *main, struct ring *lane,
		     unsigned char *block, const struct shmq_qinfo *qi)
{
	struct ring_hdr *h = (struct ring_hdr *)block;

	main->prod_pos = &h->prod_pos;
	main->cons_pos = &h->cons_pos;
	main->slots = block + SHMQ_RING_HDR_SIZE;
	main->capacity = qi->capacity;
	main->mask = qi->capacity - 1;
	main->msg_size = qi->msg_size;
	main->slot_size = qi->slot_size;
	main->rec_meta = (uint64_t)qi->idx << REC_QSHIFT;
	*lane = *main;
	lane->prod_pos = &h->lane_prod_pos;
	lane->cons_pos = &h->lane_cons_pos;
	lane->slots = main->slots + (uint64_t)qi->capacity * qi->slot_size;
	lane->capacity = SHMQ_LANE_CAP;
	lane->mask = SHMQ_LANE_CAP - 1;
	lane->rec_meta |= REC_LANE;
}

static int timeout_check(int64_t timeout_ns)
{
	return timeout_ns >= 0 || timeout_ns == SHMQ_FOREVER ? 0 : -EINVAL;
}

/* ---- create, open, close --------------------------------------------- */

int shmq_create(shmq_seg *seg, const char *name, const struct shmq_attr *attr)
{
	struct shmq_attr a = { 0 };
	struct shmq_qinfo qi = { 0 };
	uint32_t cap;
	int rc;

	if (!seg)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	if (attr)
		a = *attr;
	if (a.flags & ~SHMQ_QUEUE_FLAGS)
		return -EINVAL;
	if (!a.capacity)
		a.capacity = SHMQ_DEFAULT_CAPACITY;
	if (!a.msg_size)
		a.msg_size = SHMQ_DEFAULT_MSG_SIZE;
	if (a.capacity > SHMQ_MAX_CAPACITY || a.msg_size > SHMQ_MAX_MSG_SIZE)
		return -EINVAL;
	for (cap = 2; cap < a.capacity; cap <<= 1)
		;
	qi.capacity = cap;
	qi.msg_size = a.msg_size;
	qi.flags = a.flags;
	qi.slot_size = shmq__slot_size(a.msg_size, a.flags);
	if (shmq__ring_bytes(qi.capacity, qi.slot_size, qi.flags) >
	    seg->heap_size)
		return -ENOSPC;
	return shmq__dir_create(seg, name, &qi, (qi.flags & SHMQ_SPSC) ?
				shmq__spsc_init : shmq__ring_init);
}

static int64_t env_ns(const char *name, int64_t dflt)
{
	const char *s = getenv(name);
	char *end;
	long long v;

	if (!s || !*s)
		return dflt;
	v = strtoll(s, &end, 10);
	return *end || v < 0 ? dflt : v;
}

int shmq_open(shmq_seg *seg, const char *name, shmq **out)
{
	struct shmq_qinfo qi;
	shmq *q;
	int rc;

	if (!seg || !out)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	/* Aligned: an SPSC side's private words have lines of their own. */
	q = aligned_alloc(RING_LINE, (sizeof(*q) + RING_LINE - 1) &
			  ~(size_t)(RING_LINE - 1));
	if (!q)
		return -ENOMEM;
	memset(q, 0, sizeof(*q));
	rc = shmq__dir_open(seg, name, &qi);
	if (rc) {
		free(q);
		return rc;
	}
	shmq__seg_get(seg);
	q->seg = seg;
	q->idx = qi.idx;
	q->hdr = (struct ring_hdr *)(seg->base + qi.off);
	shmq__ring_view(&q->main, &q->lane, seg->base + qi.off, &qi);
	q->capacity = qi.capacity;
	q->msg_size = qi.msg_size;
	if (qi.flags & SHMQ_SPSC)
		shmq__spsc_view(q, seg->base + qi.off, &qi);
	atomic_init(&q->side[SPSC_SEND].thread, 0);
	atomic_init(&q->side[SPSC_RECV].thread, 0);
	atomic_init(&q->spin_ns, env_ns("SHMQ_SPIN_NS", SHMQ_DEFAULT_SPIN_NS));
	atomic_init(&q->stall_ns, env_ns("SHMQ_STALL_NS",
					 SHMQ_DEFAULT_STALL_NS));
	atomic_init(&q->stall_at, 0);
	atomic_init(&q->stall_since, 0);
	atomic_init(&q->stall_polls, 0);
	atomic_init(&q->zc, NULL);
	*out = q;
	return 0;
}

void shmq_close(shmq *q)
{
	if (!q)
		return;
	if (q->flags & SHMQ_SPSC)
		shmq__spsc_close(q);
	shmq__dir_close(q->seg, q->idx);
	shmq__seg_put(q->seg);
	/* relaxed: as above. */
	free(atomic_load_explicit(&q->zc, memory_order_relaxed));
	free(q);
}

int shmq_unlink(shmq_seg *seg, const char *name)
{
	int rc;

	if (!seg)
		return -EINVAL;
	rc = shmq__name_check(name);
	return rc ? rc : shmq__dir_unlink(seg, name);
}

int shmq_set_spin(shmq *q, int64_t spin_ns)
{
	if (!q || spin_ns < 0)
		return -EINVAL;
	/* relaxed: a tuning knob read by spin(); no data depends on it. */
	atomic_store_explicit(&q->spin_ns, spin_ns, memory_order_relaxed);
	return 0;
}

int shmq_set_stall(shmq *q, int64_t stall_ns)
{
	if (!q || stall_ns < 0)
		return -EINVAL;
	/* relaxed: a tuning knob read by the stall check. */
	atomic_store_explicit(&q->stall_ns, stall_ns, memory_order_relaxed);
	return 0;
}

int shmq_get_attr(const shmq *q, struct shmq_attr *attr)
{
	if (!q || !attr)
		return -EINVAL;
	attr->capacity = q->capacity;
	attr->msg_size = q->msg_size;
	attr->flags = q->flags;
	return 0;
}

/* ---- operation records ----------------------------------------------------- */

/*
 * The record that names one call's claim.  A copying call holds it only for
 * the call, and a thread makes one call at a time, so one record serves all
 * of a thread's queues: the attachment caches one for the first thread that
 * uses it (the common case costs one compare), and other threads take one
 * from the attachment's bitmap for the length of the call.  The cached
 * record lives as long as the attachment.
 */
struct op {
	struct proc_rec *rec;
	int idx;                /* our bitmap record, or -1: the cached one */
};

static int __attribute__((noinline)) op_begin_slow(shmq *q, struct op *op,
						   unsigned long self)
{
	shmq_seg *seg = q->seg;
	unsigned long none = 0;
	int i = shmq__rec_get(seg);

	if (i < 0)
		return i;
	op->rec = &seg->recs[i];
	op->idx = i;
	/*
	 * relaxed: decides which thread owns the cached record; that thread
	 * alone then reads and writes rec_cidx.
	 */
	if (atomic_compare_exchange_strong_explicit(&seg->rec_owner, &none,
			self, memory_order_relaxed, memory_order_relaxed)) {
		/* relaxed: read back only by this thread (or one reusing its
		 * pthread_t, after glibc's thread teardown and creation, which
		 * synchronise). */
		atomic_store_explicit(&seg->rec_cidx, i, memory_order_relaxed);
		op->idx = -1;
	}
	return 0;
}

static inline int op_begin(shmq *q, struct op *op)
{
	shmq_seg *seg = q->seg;
	unsigned long self = (unsigned long)pthread_self();

	/* relaxed: only this thread stores its own id here (op_begin_slow). */
	if (__builtin_expect(atomic_load_explicit(&seg->rec_owner,
			memory_order_relaxed) == self, 1)) {
		/* relaxed: stored by this thread in op_begin_slow(). */
		op->rec = &seg->recs[atomic_load_explicit(&seg->rec_cidx,
						memory_order_relaxed)];
		op->idx = -1;
		return 0;
	}
	return op_begin_slow(q, op, self);
}

static inline void op_end(shmq *q, struct op *op)
{
	rec_clear(op->rec);
	if (op->idx >= 0)
		shmq__rec_put(q->seg, op->idx);
}

/*
 * Show in our process-table entry that this attachment sends to (or
 * receives from) the queue: once per handle and role, for mqctl's
 * producer and consumer counts.
 */
static void __attribute__((noinline)) mark_role(shmq *q, unsigned bit)
{
	/* relaxed, both: display only; no data depends on these bits. */
	atomic_fetch_or_explicit(&q->roles, (uint8_t)bit, memory_order_relaxed);
	atomic_fetch_or_explicit(&shmq__proc_roles(q->seg,
			(uint32_t)q->seg->proc_idx)[q->idx], (uint8_t)bit,
			memory_order_relaxed);
}

static inline void role(shmq *q, unsigned bit)
{
	/* relaxed: a hint, set once; a race marks the role twice, harmlessly. */
	if (__builtin_expect(!(atomic_load_explicit(&q->roles,
			memory_order_relaxed) & bit), 0))
		mark_role(q, bit);
}

/* ---- stuck positions (crash recovery's trigger) ---------------------------- */

/*
 * Consumers: the next position is claimed by a producer but not published.
 * Usually that producer is mid-copy; if it died there, only a repair helps.
 */
/*
 * Consumers, too: the ring and the lane are empty, but the last repair
 * pass left messages of a dead consumer in their slots (recover.c,
 * "Stranded messages").
 */
static bool cons_stranded(const shmq *q)
{
	/* relaxed: a hint; the pass re-reads everything under the lock. */
	return atomic_load_explicit(&q->hdr->stranded,
				    memory_order_relaxed) != 0 &&
	       !lane_pending(q);
}

static bool cons_stuck(const shmq *q, uint64_t *at)
{
	const struct ring *r = &q->main;
	/* relaxed, all: a hint; recover.c re-reads everything with acquire. */
	uint64_t c = atomic_load_explicit(r->cons_pos, memory_order_relaxed);
	uint64_t p = atomic_load_explicit(r->prod_pos, memory_order_relaxed);

	if (p == c && cons_stranded(q)) {
		*at = ~c;       /* not a position: stuck on the stranded */
		return true;
	}
	if (p == c || atomic_load_explicit(&ring_slot(r, c)->seq,
					   memory_order_relaxed) != c)
		return false;
	*at = c;
	return true;
}

/*
 * Producers: the slot of the next position still holds the previous lap's
 * message although a consumer has claimed it.  (Full with nothing claimed
 * is not stuck: it waits for consumers.)
 */
static bool prod_stuck(const shmq *q, uint64_t *at)
{
	const struct ring *r = &q->main;
	/* relaxed, all: a hint, as in cons_stuck(). */
	uint64_t p = atomic_load_explicit(r->prod_pos, memory_order_relaxed);
	uint64_t c = atomic_load_explicit(r->cons_pos, memory_order_relaxed);
	uint64_t prev = p - r->capacity;
	uint64_t seq = atomic_load_explicit(&ring_slot(r, p)->seq,
					    memory_order_relaxed);

	if ((seq & ~SEQ_TOMB) != prev + 1 || (int64_t)(c - prev) <= 0)
		return false;
	*at = prev;
	return true;
}

/* A polling caller checks for a stuck position every so many misses. */
#define POLLS_PER_STALL_CHECK 1024

static void poll_stall(shmq *q, stuck_fn stuck)
{
	/* relaxed: a per-handle counter; a lost update only delays a check. */
	uint32_t n = atomic_load_explicit(&q->stall_polls,
					  memory_order_relaxed) + 1;

	atomic_store_explicit(&q->stall_polls, n, memory_order_relaxed);
	if (n % POLLS_PER_STALL_CHECK == 0)
		shmq__stall_check(q, stuck);
}

/* ---- claims with waiting ------------------------------------------------- */

/*
 * Claim up to n slots to write, waiting per the timeout.  -errno or n.
 * The slow path: the caller's first try found the ring full.
 */
static int __attribute__((noinline))
claim_prod_slow(shmq *q, unsigned n, uint64_t *pos, int64_t timeout_ns,
		struct proc_rec *rec)
{
	struct deadline dl = { timeout_ns, 0, 0 };
	bool counted = false, tried = true;
	unsigned k;
	int rc = 0;

	for (;;) {
		/* The caller's try found the ring full: go straight on. */
		if (!tried) {
			k = ring_prod_claim(&q->main, n, pos, rec);
			if (k)
				return (int)k;
		}
		tried = false;
		/* A failed CAS may have left a position we do not own named. */
		rec_clear(rec);
		if (timeout_ns == 0) {
			poll_stall(q, prod_stuck);
			return -EAGAIN;
		}
		if (rc)
			return rc;      /* the last attempt after the deadline */
		if (!counted) {
			/* relaxed: a statistic. */
			atomic_fetch_add_explicit(&q->hdr->full_waits, 1,
						  memory_order_relaxed);
			counted = true;
		}
		rc = shmq__wait(q, &q->hdr->not_full, ring_can_send,
				prod_stuck, &dl);
	}
}

/* The fast path: one try, inline; the rest out of line. */
static inline int claim_prod(shmq *q, unsigned n, uint64_t *pos,
			     int64_t timeout_ns, struct proc_rec *rec)
{
	unsigned k = ring_prod_claim(&q->main, n, pos, rec);
	int rc = __builtin_expect(k != 0, 1) ? (int)k :
		 claim_prod_slow(q, n, pos, timeout_ns, rec);

	if (rc > 0)
		shmq__pass_on(q, &q->hdr->not_full, ring_can_send);
	return rc;
}

/* One try at the lane (when it may hold something), then the main ring. */
static inline unsigned cons_try(shmq *q, unsigned n, const struct iovec *bufs,
				size_t buflen, uint64_t *pos, struct ring **rp,
				int *why, struct proc_rec *rec)
{
	unsigned k;

	if (__builtin_expect(lane_pending(q), 0)) {
		k = ring_cons_claim(&q->lane, n, bufs, buflen, pos, why, rec);
		if (k || *why == CLAIM_TOO_LONG) {
			*rp = &q->lane;
			return k;
		}
	}
	*rp = &q->main;
	return ring_cons_claim(&q->main, n, bufs, buflen, pos, why, rec);
}

/*
 * Claim up to n messages to read, waiting per the timeout.  -errno or n;
 * *rp is the ring they are in (the main ring or the redelivery lane).
 * The slow path: the lane may hold something, or the caller's first try
 * at the main ring found nothing it could take.
 */
static int __attribute__((noinline))
claim_cons_slow(shmq *q, unsigned n, const struct iovec *bufs, size_t buflen,
		uint64_t *pos, struct ring **rp, int64_t timeout_ns,
		struct proc_rec *rec, bool tried)
{
	struct deadline dl = { timeout_ns, 0, 0 };
	bool counted = false, rescued = false;
	unsigned k = 0;
	int why = CLAIM_OK, rc = 0;

	for (;;) {
		/* The caller's try found the ring empty: go straight on. */
		if (!tried)
			k = cons_try(q, n, bufs, buflen, pos, rp, &why, rec);
		tried = false;
		if (!k && why == CLAIM_OK && !rescued && cons_stranded(q)) {
			/*
			 * Empty, but a dead consumer's messages wait for a
			 * lane: one more pass, once per call (then the stall
			 * check, through cons_stuck(), keeps trying).
			 */
			rescued = true;
			rec_clear(rec);
			if (shmq__recover_queue(q) > 0)
				continue;
		}
		if (__builtin_expect(why == CLAIM_TOMB, 0)) {
			/* A dead producer's position: skip it, try again. */
			ring_free(*rp, *pos);
			rec_clear(rec);
			if (*rp == &q->main)
				shmq__notify(q, &q->hdr->not_full, 1);
			continue;
		}
		if (k)
			return (int)k;
		rec_clear(rec);
		if (why == CLAIM_TOO_LONG)
			return -EMSGSIZE;
		if (timeout_ns == 0) {
			poll_stall(q, cons_stuck);
			return -EAGAIN;
		}
		if (rc)
			return rc;
		if (!counted) {
			/* relaxed: a statistic. */
			atomic_fetch_add_explicit(&q->hdr->empty_waits, 1,
						  memory_order_relaxed);
			counted = true;
		}
		rc = shmq__wait(q, &q->hdr->not_empty, ring_can_recv,
				cons_stuck, &dl);
	}
}

/* The fast path: no lane, one try at the ring, inline. */
static inline int claim_cons_try(shmq *q, unsigned n,
				 const struct iovec *bufs, size_t buflen,
				 uint64_t *pos, struct ring **rp,
				 int64_t timeout_ns, struct proc_rec *rec)
{
	unsigned k;
	int why;

	if (__builtin_expect(!lane_pending(q), 1)) {
		k = ring_cons_claim(&q->main, n, bufs, buflen, pos, &why, rec);
		if (__builtin_expect(k != 0 && why == CLAIM_OK, 1)) {
			*rp = &q->main;
			return (int)k;
		}
		if (k == 0 && why == CLAIM_OK)  /* empty: wait, or -EAGAIN */
			return claim_cons_slow(q, n, bufs, buflen, pos, rp,
					       timeout_ns, rec, true);
		if (k) {        /* a tombstone: skip it, as the slow path does */
			ring_free(&q->main, *pos);
			rec_clear(rec);
			shmq__notify(q, &q->hdr->not_full, 1);
		}
	}
	return claim_cons_slow(q, n, bufs, buflen, pos, rp, timeout_ns, rec,
			       false);
}

static inline int claim_cons(shmq *q, unsigned n, const struct iovec *bufs,
			     size_t buflen, uint64_t *pos, struct ring **rp,
			     int64_t timeout_ns, struct proc_rec *rec)
{
	int rc = claim_cons_try(q, n, bufs, buflen, pos, rp, timeout_ns, rec);

	if (rc > 0)
		shmq__pass_on(q, &q->hdr->not_empty, ring_can_recv);
	return rc;
}

/* After freeing n slots of ring r: only the main ring has waiting producers. */
static inline void notify_freed(shmq *q, const struct ring *r, unsigned n)
{
	if (r == &q->main)
		shmq__notify(q, &q->hdr->not_full, n);
}

/* ---- copy in, copy out --------------------------------------------------- */

/*
 * Streaming: every slot a producer writes was last written by a consumer
 * (its free, R2), so each write needs the line back from that consumer's
 * cache.  The claim CAS and the notify fence of every send wait for that
 * transfer, one message after another.  Asking for the slot PREFETCH_AHEAD
 * positions ahead now overlaps those transfers with the next sends.  Far
 * enough ahead that a consumer keeping up is not reading it; only on rings
 * large enough that it is not a slot still in use.  A hint: it cannot fault
 * or change anything (ring.h), however stale pos is.
 *
 * Small rings get no hint.  Asking for the next slot instead (pos + 1) was
 * tried: no measurable change to the ping-pong round trip, and 5-12% less
 * streaming throughput on an 8-slot ring (1x1, 2x2, 4x4), where that slot
 * is often one a consumer is still reading or another producer is
 * writing.
 */
#define PREFETCH_AHEAD 8

/*
 * Write a message into its slot, the slot's first line last.  That line
 * holds seq, which a waiting consumer reads over and over: written in one
 * run with len and seq (ring_publish), it changes hands once per message;
 * written first and again at the end, the consumer's reads in between can
 * take it away, and the producer must fetch it a second time.
 */
#define LINE0_DATA (64 - SHMQ_SLOT_HDR_SIZE)

static inline void copy_in(struct slot *s, const void *msg, size_t len)
{
	if (len > LINE0_DATA) {
		memcpy(s->data + LINE0_DATA, (const char *)msg + LINE0_DATA,
		       len - LINE0_DATA);
		/* A constant size: three vector moves, not a byte loop. */
		memcpy(s->data, msg, LINE0_DATA);
	} else if (len) {       /* msg may be NULL when len is 0 */
		memcpy(s->data, msg, len);
	}
}

static inline void prefetch_ahead(const shmq *q, uint64_t pos)
{
	if (q->capacity >= 4 * PREFETCH_AHEAD)
		ring_prefetch_write(&q->main, pos + PREFETCH_AHEAD);
}

/*
 * The single-message calls try one position inline first: take the
 * operation record, load the position and its slot's seq, and when the
 * slot is ready name it and CAS (exactly the n = 1 case of
 * ring_prod_claim() and ring_cons_claim(), with the slot's address
 * computed once).  A poll that finds the ring full or empty returns at
 * once.  Anything else (a lost race, a tombstone, the redelivery lane, a
 * message too long for the buffer, waiting) takes the general path, which
 * starts again from the positions.  The record is taken before the loads,
 * not between them and the CAS: measured (bench_pingpong), a call between
 * the seq load and the claim costs the round trip ~15%.
 */
static int __attribute__((noinline))
send_general(shmq *q, const void *msg, size_t len, int64_t timeout_ns)
{
	struct op op;
	uint64_t pos;
	int rc;

	rc = op_begin(q, &op);
	if (rc)
		return rc;
	rc = claim_prod(q, 1, &pos, timeout_ns, op.rec);
	if (rc > 0) {
		struct slot *s = ring_slot(&q->main, pos);

		prefetch_ahead(q, pos);
		copy_in(s, msg, len);
		slot_publish(s, pos, (uint32_t)len);
		rc = 0;
	}
	op_end(q, &op);
	if (rc == 0)
		shmq__notify(q, &q->hdr->not_empty, 1);
	return rc;
}

/* Give back a record that was taken but never named anything. */
static inline void op_drop(shmq *q, struct op *op)
{
	if (op->idx >= 0)
		shmq__rec_put(q->seg, op->idx);
}

int shmq_send(shmq *q, const void *msg, size_t len, int64_t timeout_ns)
{
	struct ring *r;
	struct slot *s;
	struct op op;
	uint64_t pos, seq;

	if (!q || (!msg && len) || timeout_check(timeout_ns))
		return -EINVAL;
	r = &q->main;
	if (len > q->msg_size)
		return -EMSGSIZE;
	role(q, PROC_ROLE_PROD);
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_send(q, msg, len, timeout_ns);
	if (op_begin(q, &op))
		return send_general(q, msg, len, timeout_ns);
	/* relaxed: a guess at the next position; the CAS confirms it. */
	pos = atomic_load_explicit(r->prod_pos, memory_order_relaxed);
	s = ring_slot(r, pos);
	/* A1: acquire; pairs with R2, as in ring_prod_claim(). */
	seq = atomic_load_explicit(&s->seq, memory_order_acquire);
	if (__builtin_expect(seq == pos, 1)) {
		rec_set(op.rec, r, pos, 0, 1);
		/* C1: seq_cst, as in ring_prod_claim(). */
		if (__builtin_expect(atomic_compare_exchange_strong_explicit(
				r->prod_pos, &pos, pos + 1,
				memory_order_seq_cst, memory_order_relaxed), 1)) {
			shmq__pass_on(q, &q->hdr->not_full, ring_can_send);
			prefetch_ahead(q, pos);
			copy_in(s, msg, len);
			slot_publish(s, pos, (uint32_t)len);
			op_end(q, &op);
			shmq__notify(q, &q->hdr->not_empty, 1);
			return 0;
		}
		op_end(q, &op);         /* lost the race: start again */
	} else {
		op_drop(q, &op);
		if (timeout_ns == 0 &&
		    (int64_t)((seq & ~SEQ_TOMB) - pos) < 0) {
			poll_stall(q, prod_stuck);      /* full */
			return -EAGAIN;
		}
	}
	return send_general(q, msg, len, timeout_ns);
}

static ssize_t __attribute__((noinline))
recv_general(shmq *q, void *buf, size_t buflen, int64_t timeout_ns)
{
	struct ring *r;
	struct op op;
	uint64_t pos;
	uint32_t len;
	int rc;

	rc = op_begin(q, &op);
	if (rc)
		return rc;
	rc = claim_cons(q, 1, NULL, buflen, &pos, &r, timeout_ns, op.rec);
	if (rc < 0) {
		op_end(q, &op);
		return rc;
	}
	len = ring_len(r, pos, buflen);
	if (len)        /* buf may be NULL when buflen is 0 */
		memcpy(buf, ring_slot(r, pos)->data, len);
	ring_free(r, pos);
	op_end(q, &op);
	notify_freed(q, r, 1);
	return len;
}

ssize_t shmq_recv(shmq *q, void *buf, size_t buflen, int64_t timeout_ns)
{
	struct ring *r;
	struct slot *s;
	struct op op;
	uint64_t pos, seq;
	uint32_t len;

	if (!q || (!buf && buflen) || timeout_check(timeout_ns))
		return -EINVAL;
	r = &q->main;
	role(q, PROC_ROLE_CONS);
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_recv(q, buf, buflen, timeout_ns);
	if (__builtin_expect(lane_pending(q), 0) || op_begin(q, &op))
		return recv_general(q, buf, buflen, timeout_ns);
	/* relaxed: a guess at the next position; the CAS confirms it. */
	pos = atomic_load_explicit(r->cons_pos, memory_order_relaxed);
	s = ring_slot(r, pos);
	/* A2: acquire; pairs with R1, as in ring_cons_claim(). */
	seq = atomic_load_explicit(&s->seq, memory_order_acquire);
	ring_prefetch_tail(r, s);
	if (__builtin_expect(seq == pos + 1, 1)) {
		/* relaxed: ordered after A2; untrusted, so clamped. */
		len = atomic_load_explicit(&s->len, memory_order_relaxed);
		if (len > r->msg_size)
			len = r->msg_size;
		if (__builtin_expect(len <= buflen, 1)) {
			rec_set(op.rec, r, pos, REC_CONS, 1);
			/* C2: seq_cst, as in ring_cons_claim(). */
			if (__builtin_expect(
				    atomic_compare_exchange_strong_explicit(
					r->cons_pos, &pos, pos + 1,
					memory_order_seq_cst,
					memory_order_relaxed), 1)) {
				shmq__pass_on(q, &q->hdr->not_empty,
					      ring_can_recv);
				if (len)        /* buf may be NULL if buflen 0 */
					memcpy(buf, s->data, len);
				slot_free(r, s, pos);
				op_end(q, &op);
				shmq__notify(q, &q->hdr->not_full, 1);
				return len;
			}
			op_end(q, &op); /* lost the race: start again */
		} else {
			op_drop(q, &op);
		}
	} else {
		op_drop(q, &op);
		if (timeout_ns == 0 &&
		    (int64_t)((seq & ~SEQ_TOMB) - (pos + 1)) < 0) {
			poll_stall(q, cons_stuck);      /* empty */
			return -EAGAIN;
		}
	}
	return recv_general(q, buf, buflen, timeout_ns);
}

/*
 * The same claim, record, free and wake-ups as a receive, with a bound:
 * purge takes a position only if it is below the bound it read when it
 * began, so a message sent after that is never its victim, whichever
 * consumers race it.  Tombstones below the bound are skipped and freed.
 */
int shmq__purge_one(shmq *q, uint64_t last, uint64_t *last_lane)
{
	struct op op;
	int rc = op_begin(q, &op);

	if (rc)
		return rc;
	for (;;) {
		struct ring *r = &q->lane;
		uint64_t lim = *last_lane, pos, seq, again;
		struct slot *s;
		bool tomb;

		/* relaxed: a guess at the next position; the CAS confirms it. */
		pos = atomic_load_explicit(r->cons_pos, memory_order_relaxed);
		if ((int64_t)(pos - lim) >= 0) {
			r = &q->main;
			lim = last;
			/* relaxed: as above. */
			pos = atomic_load_explicit(r->cons_pos,
						   memory_order_relaxed);
			if ((int64_t)(pos - lim) >= 0)
				break;          /* everything present is gone */
		}
		s = ring_slot(r, pos);
		/* A2: acquire; pairs with R1, as in ring_cons_claim(). */
		seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		tomb = seq == ((pos + 1) | SEQ_TOMB);
		if (seq != pos + 1 && !tomb) {
			bool stop = (int64_t)((seq & ~SEQ_TOMB) - (pos + 1)) < 0;

			if (!stop) {
				/* Another consumer took pos; follow it. */
				/* relaxed: a new guess, confirmed by the CAS. */
				again = atomic_load_explicit(r->cons_pos,
							     memory_order_relaxed);
				stop = again == pos; /* seq ahead: corrupt */
			}
			if (!stop)
				continue;
			/*
			 * Not published yet (or corrupt).  In the lane (a
			 * repair still copying, or one killed midway), go on
			 * with the main ring, as consumers do; in the main
			 * ring, stop: later messages wait behind this one.
			 */
			if (r == &q->main)
				break;
			*last_lane = pos;
			continue;
		}
		rec_set(op.rec, r, pos, REC_CONS, 1);
		/* C2: seq_cst, as in ring_cons_claim(). */
		if (!atomic_compare_exchange_strong_explicit(r->cons_pos, &pos,
				pos + 1, memory_order_seq_cst,
				memory_order_relaxed))
			continue;
		shmq__pass_on(q, &q->hdr->not_empty, ring_can_recv);
		slot_free(r, s, pos);
		rec_clear(op.rec);
		notify_freed(q, r, 1);
		if (!tomb) {
			rc = 1;
			break;
		}
	}
	op_end(q, &op);
	return rc;
}

int shmq_send_batch(shmq *q, const struct iovec *msgs, unsigned n,
		    int64_t timeout_ns)
{
	struct op op;
	uint64_t pos;
	unsigned i, fit;
	int k;

	if (!q || !msgs || n == 0 || timeout_check(timeout_ns))
		return -EINVAL;
	for (fit = 0; fit < n && msgs[fit].iov_len <= q->msg_size; fit++)
		if (!msgs[fit].iov_base && msgs[fit].iov_len)
			return -EINVAL;
	if (fit == 0)
		return -EMSGSIZE;
	if (fit > q->capacity)
		fit = q->capacity;
	role(q, PROC_ROLE_PROD);
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_send_batch(q, msgs, fit, timeout_ns);
	k = op_begin(q, &op);
	if (k)
		return k;
	k = claim_prod(q, fit, &pos, timeout_ns, op.rec);
	if (k < 0) {
		op_end(q, &op);
		return k;
	}
	for (i = 0; i < (unsigned)k; i++)
		ring_prefetch_write(&q->main, pos + i);
	for (i = 0; i < (unsigned)k; i++)
		copy_in(ring_slot(&q->main, pos + i), msgs[i].iov_base,
			msgs[i].iov_len);
	/*
	 * Publish the first slot last: consumers take positions in order, so
	 * none can start on the batch before all of it is visible, and the
	 * next claim takes it whole instead of racing our writes slot by slot.
	 */
	for (i = (unsigned)k; i-- > 0;)
		ring_publish(&q->main, pos + i, (uint32_t)msgs[i].iov_len);
	op_end(q, &op);
	shmq__notify(q, &q->hdr->not_empty, (unsigned)k);
	return k;
}

int shmq_recv_batch(shmq *q, struct iovec *bufs, unsigned n,
		    int64_t timeout_ns)
{
	struct ring *r;
	struct op op;
	uint64_t pos;
	unsigned i;
	int k;

	if (!q || !bufs || n == 0 || timeout_check(timeout_ns))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!bufs[i].iov_base && bufs[i].iov_len)
			return -EINVAL;
	if (n > q->capacity)
		n = q->capacity;
	role(q, PROC_ROLE_CONS);
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_recv_batch(q, bufs, n, timeout_ns);
	k = op_begin(q, &op);
	if (k)
		return k;
	k = claim_cons(q, n, bufs, 0, &pos, &r, timeout_ns, op.rec);
	if (k < 0) {
		op_end(q, &op);
		return k;
	}
	for (i = 0; i < (unsigned)k; i++) {
		uint32_t len = ring_len(r, pos + i, bufs[i].iov_len);

		if (len)
			memcpy(bufs[i].iov_base, ring_slot(r, pos + i)->data,
			       len);
		bufs[i].iov_len = len;
	}
	for (i = 0; i < (unsigned)k; i++)
		ring_free(r, pos + i);
	op_end(q, &op);
	notify_freed(q, r, (unsigned)k);
	return k;
}

/* ---- zero-copy ------------------------------------------------------------- */

/*
 * The table of this handle's outstanding zero-copy operations, one word per
 * slot index (then one per lane slot).  At most one operation per index can
 * be outstanding: a slot reserved for position p cannot be acquired (that
 * needs p published), and one acquired for p cannot be reserved again (that
 * needs it freed).  Each outstanding operation holds its own record.
 */
static _Atomic uint64_t *zc_table(shmq *q)
{
	/* acquire: pairs with the release CAS below; the table is zeroed. */
	_Atomic uint64_t *t = atomic_load_explicit(&q->zc,
						   memory_order_acquire);
	_Atomic uint64_t *fresh = NULL;

	if (t)
		return t;
	fresh = calloc(q->capacity + SHMQ_LANE_CAP, sizeof(*fresh));
	if (!fresh)
		return NULL;
	/* release: publishes the zeroed table to other threads of q. */
	if (atomic_compare_exchange_strong_explicit(&q->zc, &t, fresh,
			memory_order_release, memory_order_acquire))
		return fresh;
	free(fresh);            /* another thread installed one first */
	return t;
}

static _Atomic uint64_t *zc_entry(shmq *q, _Atomic uint64_t *t,
				  const struct ring *r, uint64_t pos)
{
	return r == &q->lane ? &t[q->capacity + (pos & q->lane.mask)] :
			       &t[pos & q->main.mask];
}

/*
 * The table word of an outstanding operation on position @pos of ring @r:
 * its kind and length, its record, and its lap (24 bits), so that a
 * commit or release of a stale token cannot take the entry of a later
 * operation on the same slot that happens to have the same record and
 * length (two threads committing one token while the first has already
 * reserved the slot's next lap).
 */
static uint64_t zc_word(const struct ring *r, uint64_t pos, uint32_t acq,
			uint32_t len, int rec)
{
	uint64_t lap = (pos >> __builtin_ctz(r->capacity)) & 0xffffff;

	return (uint64_t)(acq | (len + 1)) | (uint64_t)rec << 32 | lap << 40;
}

/*
 * Forget @r/@pos's entry if it holds an operation of kind @want_acq (and,
 * for a commit, at least *@len reserved bytes).  Returns its record's
 * index, or -EINVAL when there is no such operation.
 */
static int zc_take(shmq *q, const struct ring *r, uint64_t pos,
		   uint32_t want_acq, const uint32_t *len)
{
	/* acquire: see the table the reserving thread installed. */
	_Atomic uint64_t *t = atomic_load_explicit(&q->zc,
						   memory_order_acquire);
	_Atomic uint64_t *e;
	uint64_t v;

	if (!t)
		return -EINVAL;
	e = zc_entry(q, t, r, pos);
	/* relaxed: the CAS below decides; ordering comes from the caller. */
	v = atomic_load_explicit(e, memory_order_relaxed);
	if (v == 0 || ((uint32_t)v & ZC_ACQ) != want_acq ||
	    (v >> 40) != (zc_word(r, pos, 0, 0, 0) >> 40))
		return -EINVAL;         /* none, another kind, another lap */
	if (len && (uint64_t)*len + 1 > ((uint32_t)v & ~ZC_ACQ))
		return -EINVAL;
	/* relaxed: one thread wins a double commit; the loser gets -EINVAL. */
	if (!atomic_compare_exchange_strong_explicit(e, &v, 0,
			memory_order_relaxed, memory_order_relaxed))
		return -EINVAL;
	return (int)((v >> 32) & 0xff);
}

/*
 * A zero-copy operation holds its record from reserve (acquire) to commit
 * (release), across calls, so it cannot use the copying calls' cached
 * record.  Taking one from the bitmap and giving it back costs two locked
 * instructions per message; the thread that owns the cached record keeps
 * up to ZC_STASH clean ones aside instead (the others always use the
 * bitmap).  A record is thus in the bitmap, in that thread's stash, or
 * held by one operation; a stash is read and written by its thread alone.
 * If that thread exits, its cached and stashed records stay out of use
 * for the attachment's life (a thread that reuses its pthread_t takes them
 * over): make the first call through an attachment from a long-lived
 * thread.
 */
#define ZC_STASH SHMQ_ZC_STASH

static inline bool rec_owner_is_me(shmq_seg *seg)
{
	/* relaxed: set once by the owner itself (op_begin_slow). */
	return atomic_load_explicit(&seg->rec_owner, memory_order_relaxed) ==
	       (unsigned long)pthread_self();
}

static int zc_rec_get(shmq *q)
{
	shmq_seg *seg = q->seg;

	/* relaxed: a hint; op_begin()'s CAS decides who owns the cache. */
	if (!atomic_load_explicit(&seg->rec_owner, memory_order_relaxed)) {
		struct op op;

		if (op_begin(q, &op) == 0)      /* the first caller owns it */
			op_end(q, &op);
	}
	if (rec_owner_is_me(seg) && seg->zc_nstash > 0)
		return seg->zc_stash[--seg->zc_nstash];
	return shmq__rec_get(seg);
}

/* Give back record @i, already cleared (rec_clear). */
static void zc_rec_put(shmq_seg *seg, int i)
{
	if (rec_owner_is_me(seg) && seg->zc_nstash < ZC_STASH) {
		seg->zc_stash[seg->zc_nstash++] = i;
		return;
	}
	shmq__rec_put(seg, i);
}

int shmq_reserve(shmq *q, size_t len, struct shmq_msg *m, int64_t timeout_ns)
{
	_Atomic uint64_t *t;
	uint64_t pos;
	int rc, i;

	if (!q || !m || timeout_check(timeout_ns))
		return -EINVAL;
	if (len > q->msg_size)
		return -EMSGSIZE;
	if (q->flags & SHMQ_SPSC) {
		role(q, PROC_ROLE_PROD);
		return shmq__spsc_reserve(q, len, m, timeout_ns);
	}
	t = zc_table(q);
	if (!t)
		return -ENOMEM;
	role(q, PROC_ROLE_PROD);
	/* The record stays ours until commit: not the cached one. */
	i = zc_rec_get(q);
	if (i < 0)
		return i;
	rc = claim_prod(q, 1, &pos, timeout_ns, &q->seg->recs[i]);
	if (rc < 0) {
		rec_clear(&q->seg->recs[i]);
		zc_rec_put(q->seg, i);
		return rc;
	}
	prefetch_ahead(q, pos);
	/* relaxed: read back by commit via this handle; see zc_take(). */
	atomic_store_explicit(zc_entry(q, t, &q->main, pos),
			      zc_word(&q->main, pos, 0, (uint32_t)len, i),
			      memory_order_relaxed);
	m->data = ring_slot(&q->main, pos)->data;
	m->len = len;
	m->token = pos;
	return 0;
}

int shmq_commit(shmq *q, struct shmq_msg *m)
{
	uint32_t len;
	int i;

	if (!q || !m || m->len > q->msg_size)
		return -EINVAL;
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_commit(q, m);
	if (m->token & TOKEN_LANE)
		return -EINVAL;
	/* The slot must still be claimed-unpublished for exactly this token. */
	/* relaxed: only our own claim could have set this value. */
	if (atomic_load_explicit(&ring_slot(&q->main, m->token)->seq,
				 memory_order_relaxed) != m->token)
		return -EINVAL;
	len = (uint32_t)m->len;
	i = zc_take(q, &q->main, m->token, 0, &len);
	if (i < 0)
		return -EINVAL;
	ring_publish(&q->main, m->token, len);
	rec_clear(&q->seg->recs[i]);
	zc_rec_put(q->seg, i);
	shmq__notify(q, &q->hdr->not_empty, 1);
	return 0;
}

int shmq_acquire(shmq *q, struct shmq_msg *m, int64_t timeout_ns)
{
	_Atomic uint64_t *t;
	struct ring *r;
	uint64_t pos;
	uint32_t len;
	int rc, i;

	if (!q || !m || timeout_check(timeout_ns))
		return -EINVAL;
	if (q->flags & SHMQ_SPSC) {
		role(q, PROC_ROLE_CONS);
		return shmq__spsc_acquire(q, m, timeout_ns);
	}
	t = zc_table(q);
	if (!t)
		return -ENOMEM;
	role(q, PROC_ROLE_CONS);
	i = zc_rec_get(q);
	if (i < 0)
		return i;
	rc = claim_cons(q, 1, NULL, SIZE_MAX, &pos, &r, timeout_ns,
			&q->seg->recs[i]);
	if (rc < 0) {
		rec_clear(&q->seg->recs[i]);
		zc_rec_put(q->seg, i);
		return rc;
	}
	len = ring_len(r, pos, SIZE_MAX);
	/* relaxed: read back by release via this handle; see zc_take(). */
	atomic_store_explicit(zc_entry(q, t, r, pos),
			      zc_word(r, pos, ZC_ACQ, len, i),
			      memory_order_relaxed);
	m->data = ring_slot(r, pos)->data;
	m->len = len;
	m->token = r == &q->lane ? pos | TOKEN_LANE : pos;
	return 0;
}

int shmq_release(shmq *q, struct shmq_msg *m)
{
	struct ring *r;
	uint64_t pos;
	int i;

	if (!q || !m)
		return -EINVAL;
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_release(q, m);
	r = (m->token & TOKEN_LANE) ? &q->lane : &q->main;
	pos = m->token & ~TOKEN_LANE;
	/* relaxed: only our own claim keeps this value (published for pos). */
	if (atomic_load_explicit(&ring_slot(r, pos)->seq,
				 memory_order_relaxed) != pos + 1)
		return -EINVAL;
	i = zc_take(q, r, pos, ZC_ACQ, NULL);
	if (i < 0)
		return -EINVAL;
	ring_free(r, pos);
	rec_clear(&q->seg->recs[i]);
	zc_rec_put(q->seg, i);
	notify_freed(q, r, 1);
	return 0;
}
