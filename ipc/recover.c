/* SPDX-License-Identifier: MIT */
/*
 * recover.c - crash recovery: repair the slots that dead processes left.
 *
 * A process can die at any instruction.  What it can leave behind in a
 * ring (ring.h has the slot states):
 *
 *   producer-stuck  position p in [cons_pos, prod_pos) with seq == p: a
 *                   producer claimed p and has not published it.  Consumers
 *                   wait at p (FIFO), forever if the producer is dead.
 *   consumer-stuck  position p in [prod_pos - capacity, cons_pos) with
 *                   seq == p + 1 (or a tombstone): a consumer claimed p and
 *                   has not freed it.  Producers wait at it one lap later.
 *
 * Either may be an owner that is merely slow or stopped (SIGSTOP): it will
 * finish, and must find its slot as it left it.  Every claim is named by a
 * record of its owner's, written before the claim CAS and cleared after the
 * publish or free (ring.h, "Operation records"); so a stuck position that
 * no LIVE process's record names has a dead owner.  Liveness is the OFD
 * lock of the process-table entry (shm/proc.c): it cannot be fooled by pid
 * reuse or pid namespaces, and a stopped process holds it.
 *
 * A repair pass over one ring, under the control-plane lock (so repairers
 * never race each other; a repairer killed midway leaves work that the next
 * pass redoes, see each step):
 *
 *   1. read cons_pos, then prod_pos (acquire: pairs with the claim CASes'
 *      release, C1/C2, so the records of every claim below them are
 *      visible to step 2); with cons read first, cons <= prod.
 *   2. copy the records of live processes (shmq__proc_live_recs).
 *   3. producer-stuck p, unnamed: CAS seq p -> (p+1)|TOMB.  The CAS fails if
 *      the slot moved on, so a record cleared after step 2 (its owner
 *      published: R1 before R4) cannot make us damage a message.  Consumers
 *      claim a tombstone and free it without delivering anything.  Nothing
 *      committed is lost (the producer never committed) and nothing is
 *      invented.
 *   4. consumer-stuck p, unnamed: a tombstone is freed (seq = p+capacity).
 *      A message is copied into the queue's redelivery lane (claim a lane
 *      position under a record of ours, copy, publish), then its slot is
 *      freed.  Killed after the lane claim and before its publish: the lane
 *      slot is producer-stuck with no live record, and is tombstoned by a
 *      later pass, while slot p, still unfreed, is moved again.  Killed
 *      after the lane publish and before the free: the next pass moves it a
 *      second time (the message is then delivered twice: still "at least
 *      once" for a killed consumer's message).  A full lane leaves p for a
 *      later pass; live consumers drain the lane before the ring.
 *
 * The lane is scanned like the main ring (a consumer can die holding a lane
 * message too: it is moved to a new lane position).
 *
 * Stranded messages.  A consumer that died holding more messages than the
 * lane has room for (a batch) leaves the rest in their slots after the
 * pass; nothing would trigger the next pass (the ring looks empty to
 * consumers: cons_pos is past them).  So each pass over the main ring
 * stores how many it had to leave in hdr.stranded, stat counts them in the
 * depth, and a consumer that finds the lane and the ring empty while it is
 * set runs another pass (claim.h, cons_stranded) before it waits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "spsc.h"
#include "wait.h"

struct pass {
	shmq_seg *seg;
	uint8_t alive[SHMQ_MAX_PROCS];
	struct shmq_rec_copy *recs;     /* max_procs * PROC_RECS */
	unsigned nrecs;
	int rec;                        /* our record for lane claims, or -1 */
};

/* Does a live record name position @pos of ring @r? */
static bool named(const struct pass *ps, const struct ring *r, uint64_t pos)
{
	const uint64_t which = REC_LANE | (REC_QMASK << REC_QSHIFT);
	unsigned i;

	for (i = 0; i < ps->nrecs; i++) {
		uint64_t m = ps->recs[i].meta;

		/* Garbage in a record can only make us wait: the safe side. */
		if ((m & which) == (r->rec_meta & which) &&
		    pos - ps->recs[i].pos < (m & REC_NMASK))
			return true;
	}
	return false;
}

/*
 * A dead consumer holds lane position @pos, and the next lane position @lp
 * (= @pos + lane capacity) needs that very slot: the message is already
 * where it must go.  Claim @lp and turn the slot's seq from "held, pos"
 * straight into "published, lp", which is "freed for lp" and "published"
 * in one step.  Killed after the claim: pos is still held, and a later pass
 * moves it to another slot (lp then becomes a tombstone).
 */
/* Lane entry @i's message has been delivered once more (under the lock). */
static void lane_meta_bump(shmq *q, uint32_t i)
{
	uint32_t d = q->hdr->lane_deliveries[i];

	q->hdr->lane_deliveries[i] = d < 2 ? 2 : d == UINT32_MAX ? d : d + 1;
}

static int lane_restamp(struct pass *ps, shmq *q, struct ring *lane,
			uint64_t pos, uint64_t lp)
{
	struct proc_rec *rec = &ps->seg->recs[ps->rec];
	struct slot *s = ring_slot(lane, pos);
	uint64_t want = pos + 1;

	rec_set(rec, lane, lp, 0, 1);
	/* C1 (lane): release; publishes our record. */
	if (!atomic_compare_exchange_strong_explicit(lane->prod_pos, &lp,
			lp + 1, memory_order_release, memory_order_relaxed)) {
		rec_clear(rec);
		return -ENOSPC;
	}
	/* Same slot, same entry: the identity stays, one more delivery. */
	lane_meta_bump(q, (uint32_t)(lp & (SHMQ_LANE_CAP - 1)));
	/*
	 * R1 (lane): release, as a publish; the payload and len are the ones
	 * pos carried.  A CAS: the slot must still be held for pos.
	 */
	atomic_compare_exchange_strong_explicit(&s->seq, &want, lp + 1,
			memory_order_release, memory_order_relaxed);
	rec_clear(rec);
	return 1;
}

/*
 * Copy the message of slot @pos of @r into a new position of @q's lane.
 * 0, or 1 when the message already sat in the lane slot it needed and was
 * re-stamped there (nothing left to free), -ENOSPC when the lane is full,
 * -ENOBUFS without a record.
 */
static int lane_put(struct pass *ps, shmq *q, const struct ring *r,
		    uint64_t pos)
{
	struct ring *lane = &q->lane;
	const struct slot *src = ring_slot(r, pos);
	struct proc_rec *rec;
	struct slot *dst;
	uint64_t lp;
	uint32_t len, klen, di;

	if (ps->rec < 0)
		return -ENOBUFS;
	rec = &ps->seg->recs[ps->rec];
	/* relaxed: only repairers write it, and they hold the lock. */
	lp = atomic_load_explicit(lane->prod_pos, memory_order_relaxed);
	dst = ring_slot(lane, lp);
	if (r == lane && dst == src)
		return lane_restamp(ps, q, lane, pos, lp);
	/* A1 (lane): acquire; pairs with a lane consumer's free (R2). */
	if (atomic_load_explicit(&dst->seq, memory_order_acquire) != lp)
		return -ENOSPC;
	rec_set(rec, lane, lp, 0, 1);
	/* C1 (lane): release; publishes our record, as in ring_prod_claim. */
	if (!atomic_compare_exchange_strong_explicit(lane->prod_pos, &lp,
			lp + 1, memory_order_release, memory_order_relaxed)) {
		rec_clear(rec);
		return -ENOSPC; /* a corrupt lane: leave it */
	}
	/* relaxed: ordered by the caller's acquire of seq; untrusted. */
	klen = slot_klen(src, r->msg_size);
	len = slot_plen(atomic_load_explicit(&src->len, memory_order_relaxed),
			r->msg_size, klen);
	memcpy(dst->data, src->data, klen + len);
	/* The message's identity: ordered before R1 like its bytes. */
	di = (uint32_t)(lp & (SHMQ_LANE_CAP - 1));
	if (r == lane) {
		uint32_t si = (uint32_t)(pos & (SHMQ_LANE_CAP - 1));

		q->hdr->lane_seq[di] = q->hdr->lane_seq[si];
		q->hdr->lane_deliveries[di] = q->hdr->lane_deliveries[si];
		lane_meta_bump(q, di);
	} else {
		q->hdr->lane_seq[di] = pos;
		q->hdr->lane_deliveries[di] = 2;
	}
	slot_publish_key(dst, lp, len, klen);   /* R1 */
	rec_clear(rec);                 /* R4 */
	return 0;
}

/* One pass over ring @r of queue @q (the main ring or the lane). */
static int repair_ring(struct pass *ps, shmq *q, struct ring *r)
{
	uint64_t cons, prod, p, lo, seq, left = 0;
	int n = 0, rc;

	/* acquire, both: step 1 above; pairs with C1/C2. */
	cons = atomic_load_explicit(r->cons_pos, memory_order_acquire);
	prod = atomic_load_explicit(r->prod_pos, memory_order_acquire);
	if (prod - cons > r->capacity)
		return 0;       /* inconsistent (corrupt) positions: hands off */
	rc = shmq__proc_live_recs(ps->seg, ps->alive, ps->recs,
				  ps->seg->max_procs * PROC_RECS);
	ps->nrecs = rc < 0 ? 0 : (unsigned)rc;

	/* Step 3: producer-stuck positions become tombstones. */
	for (p = cons; p != prod; p++) {
		struct slot *s = ring_slot(r, p);

		/* acquire: pairs with R1; a published slot is left alone. */
		seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (seq != p || named(ps, r, p))
			continue;
		/*
		 * T1: release; pairs with A2 of the consumer that claims the
		 * tombstone.  Fails if the slot moved on since our load.
		 */
		if (atomic_compare_exchange_strong_explicit(&s->seq, &seq,
				(p + 1) | SEQ_TOMB, memory_order_release,
				memory_order_relaxed)) {
			n++;
			/* relaxed: a statistic. */
			atomic_fetch_add_explicit(&q->hdr->tombstones, 1,
						  memory_order_relaxed);
			shmq__notify(q, &q->hdr->not_empty, 1);
		}
	}

	/* Step 4: consumer-stuck positions are freed, messages redelivered. */
	lo = prod - r->capacity;
	if ((int64_t)(cons - lo) < 0)
		lo = cons;
	for (p = lo; p != cons; p++) {
		struct slot *s = ring_slot(r, p);
		uint64_t want;

		/* acquire: pairs with R1; we may copy the message out. */
		seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		if ((seq & ~SEQ_TOMB) != p + 1 || named(ps, r, p))
			continue;
		if (!(seq & SEQ_TOMB)) {
			rc = lane_put(ps, q, r, p);
			if (rc < 0) {
				left++;         /* lane full: a later pass */
				continue;
			}
			if (rc == 1) {          /* re-stamped in place */
				n++;
				/* relaxed: a statistic. */
				atomic_fetch_add_explicit(&q->hdr->redelivered,
						1, memory_order_relaxed);
				shmq__notify(q, &q->hdr->not_empty, 1);
				continue;
			}
		}
		want = seq;
		/*
		 * R2 (repair): release; our copy-out precedes the slot's
		 * reuse.  Pairs with A1 of the next lap's producer.
		 */
		if (atomic_compare_exchange_strong_explicit(&s->seq, &want,
				p + r->capacity, memory_order_release,
				memory_order_relaxed)) {
			n++;
			if (!(seq & SEQ_TOMB)) {
				/* relaxed: a statistic. */
				atomic_fetch_add_explicit(&q->hdr->redelivered,
						1, memory_order_relaxed);
				shmq__notify(q, &q->hdr->not_empty, 1);
			}
			if (r == &q->main)
				shmq__notify(q, &q->hdr->not_full, 1);
		}
	}
	if (r == &q->main)
		/* relaxed: a hint (see the top), written under the lock. */
		atomic_store_explicit(&q->hdr->stranded, left,
				      memory_order_relaxed);
	return n;
}

/* Both rings of one queue: the lane first, so that it has room. */
static int repair_queue(struct pass *ps, shmq *q)
{
	int n;

	/* relaxed: a statistic. */
	atomic_fetch_add_explicit(&q->hdr->repairs, 1, memory_order_relaxed);
	n = repair_ring(ps, q, &q->lane);
	return n + repair_ring(ps, q, &q->main);
}

/* Start a pass: under the lock. */
static int pass_begin(struct pass *ps, shmq_seg *seg)
{
	ps->seg = seg;
	ps->recs = malloc((size_t)seg->max_procs * PROC_RECS *
			  sizeof(*ps->recs));
	if (!ps->recs)
		return -ENOMEM;
	shmq__proc_alive_map(seg, ps->alive);
	ps->rec = shmq__rec_get(seg);
	return 0;
}

static void pass_end(struct pass *ps)
{
	if (ps->rec >= 0) {
		rec_clear(&ps->seg->recs[ps->rec]);
		shmq__rec_put(ps->seg, ps->rec);
	}
	free(ps->recs);
}

int shmq__recover_queue(shmq *q)
{
	struct pass ps;
	int rc;

	/*
	 * A waiter must not block on the control plane: its holder may be
	 * stopped.  Busy means another process is at work there (perhaps
	 * repairing); the waiter, whose sleeps stay bounded while it is stuck
	 * (shmq__stall_check), tries again after the next stall period.
	 */
	rc = shmq__seg_trylock(q->seg);
	if (rc)
		return rc;
	rc = pass_begin(&ps, q->seg);
	if (!rc) {
		rc = repair_queue(&ps, q);
		pass_end(&ps);
	}
	shmq__seg_unlock(q->seg);
	return rc;
}

int shmq_seg_recover(shmq_seg *seg)
{
	struct pass ps;
	uint32_t i;
	int rc, n = 0;

	if (!seg)
		return -EINVAL;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	/* Dead attachments: their entries and open-handle counts go. */
	shmq__proc_reap(seg);
	shmq__dir_sweep(seg);
	rc = pass_begin(&ps, seg);
	if (rc)
		goto out;
	for (i = 0; i < seg->max_queues; i++) {
		struct shmq_qinfo qi = { 0 };
		struct shmq tq;

		/*
		 * One validated copy of the entry: a FREE one fills nothing
		 * (capacity stays 0), whatever the state read earlier said.
		 */
		if (shmq__dir_validate_entry(seg, shmq__dir_entry(seg, i),
					     &qi) != 0 || qi.capacity == 0)
			continue;
		if (qi.flags & SHMQ_SPSC) {
			/* No claims to repair; only sides of the dead. */
			n += shmq__spsc_reclaim(seg, (struct ring_hdr *)
						(seg->base + qi.off));
			continue;
		}
		/* A handle-less view of the queue, enough for a repair. */
		memset(&tq, 0, sizeof(tq));
		tq.seg = seg;
		tq.idx = qi.idx;
		tq.hdr = (struct ring_hdr *)(seg->base + qi.off);
		tq.capacity = qi.capacity;
		tq.msg_size = qi.msg_size;
		shmq__ring_view(&tq.main, &tq.lane, seg->base + qi.off, &qi);
		n += repair_queue(&ps, &tq);
	}
	pass_end(&ps);
	rc = n;
out:
	shmq__seg_unlock(seg);
	return rc;
}

/* Attaching repairs: shm/ calls back into the pass above (shmq__seg_open). */
int shmq_seg_open_flags(const char *name, unsigned flags, shmq_seg **out)
{
	return shmq__seg_open(name, flags, shmq_seg_recover, out);
}

int shmq_seg_open(const char *name, shmq_seg **out)
{
	return shmq__seg_open(name, 0, shmq_seg_recover, out);
}
