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

#include "ack.h"
#include "ring.h"
#include "spsc.h"
#include "wait.h"

struct pass {
	shmq_seg *seg;
	uint8_t alive[SHMQ_MAX_PROCS];
	struct shmq_rec_copy *recs;     /* max_procs * PROC_RECS */
	unsigned nrecs;
	int rec;                        /* our record for lane claims, or -1 */
	/*
	 * The queue being repaired: the sources (ring position | lane bit)
	 * of its READY area entries, whose ring slots, if a dead consumer
	 * still holds them, are freed rather than moved (ack.c).
	 */
	uint64_t *srcs;
	uint32_t nsrcs;
};

/* Is the message of ring @r's position @pos kept by a READY entry? */
static bool in_area(const struct pass *ps, const shmq *q, const struct ring *r,
		    uint64_t pos)
{
	uint64_t want = pos | (r == &q->lane ? ACK_SRC_LANE : 0);
	uint32_t i;

	for (i = 0; i < ps->nsrcs; i++)
		if (ps->srcs[i] == want)
			return true;
	return false;
}

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
/*
 * Claim the next lane position for a message to move there: *@lp, its
 * slot in *@dst.  0, -ENOSPC (the lane is full), -ENOBUFS (no record).
 */
static int lane_claim(struct pass *ps, shmq *q, uint64_t *lp_out,
		      struct slot **dst_out)
{
	struct ring *lane = &q->lane;
	struct proc_rec *rec;
	struct slot *dst;
	uint64_t lp;

	if (ps->rec < 0)
		return -ENOBUFS;
	rec = &ps->seg->recs[ps->rec];
	/* relaxed: only repairers write it, and they hold the lock. */
	lp = atomic_load_explicit(lane->prod_pos, memory_order_relaxed);
	dst = ring_slot(lane, lp);
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
	*lp_out = lp;
	*dst_out = dst;
	return 0;
}

/*
 * Move READY entries of @q's area into its lane while it has room (the
 * lane is delivered first: a nacked message comes back before the rest).
 * How many moved; *@left: how many still wait.
 */
/* A READY entry to move, and the position its message was first at. */
struct ready_ent {
	uint64_t seq;
	uint32_t idx;
};

static int ready_cmp(const void *a, const void *b)
{
	const struct ready_ent *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int area_move(struct pass *ps, shmq *q, uint64_t *left)
{
	struct ack_view *a = &q->ack;
	struct ready_ent small[64], *r = small;
	uint32_t i, k, nr = 0, waiting = 0;
	int n = 0;

	/*
	 * The READY entries, oldest message first (as they were sent), so
	 * that more given back than the lane holds still come back in
	 * order.  (READY changes only under the lock, which we hold; a
	 * nack that adds one meanwhile is moved by the next pass.)
	 */
	if (a->cap > 64 && !(r = malloc(a->cap * sizeof(*r))))
		r = small;      /* no memory: index order, 64 at most */
	for (i = 0; i < a->cap; i++) {
		/* acquire: pairs with K4 or the pass's own READY. */
		uint64_t v = atomic_load_explicit(&a->state[i],
						  memory_order_acquire);

		if (ACK_KIND(v) != ACK_READY)
			continue;
		if (nr == (r == small ? 64u : a->cap)) {
			waiting++;
			continue;
		}
		r[nr].seq = ack_ent(a, i)->seq;
		r[nr++].idx = i;
	}
	qsort(r, nr, sizeof(*r), ready_cmp);
	for (k = 0; k < nr; k++) {
		/* acquire: as above (unchanged since: we hold the lock). */
		uint64_t v = atomic_load_explicit(&a->state[r[k].idx],
						  memory_order_acquire);
		struct ack_ent *e = ack_ent(a, r[k].idx);
		uint32_t klen, len, d, di;
		struct slot *dst;
		uint64_t lp;

		if (ACK_KIND(v) != ACK_READY)
			continue;
		if (lane_claim(ps, q, &lp, &dst) < 0) {
			*left += nr - k;
			waiting += nr - k;
			break;
		}
		/* Untrusted: clamp before the copy. */
		klen = e->klen > q->msg_size ? q->msg_size : e->klen;
		len = e->len > q->msg_size - klen ? q->msg_size - klen : e->len;
		memcpy(dst->data, e->data, klen + len);
		di = (uint32_t)(lp & (SHMQ_LANE_CAP - 1));
		d = e->deliveries;
		q->hdr->lane_seq[di] = e->seq;
		q->hdr->lane_deliveries[di] = d < 1 ? 2 : d == UINT32_MAX ?
					      d : d + 1;
		slot_publish_key(dst, lp, len, klen);   /* R1 */
		rec_clear(&ps->seg->recs[ps->rec]);     /* R4 */
		/*
		 * release: our copy precedes the entry's reuse (pairs with
		 * K1).  Killed before it: the next pass moves it again.
		 */
		atomic_store_explicit(&a->state[r[k].idx],
				      ack_word(ACK_FREE, 0, ACK_GEN(v)),
				      memory_order_release);
		shmq__notify(q, &q->hdr->not_empty, 1);
		/* All: each room waiter judges its own limit (ack.c). */
		shmq__notify(q, &a->hdr->room, INT32_MAX);
		n++;
	}
	if (r != small)
		free(r);
	/*
	 * relaxed: a hint, recounted here under the lock rather than kept
	 * by decrements (a nacker killed between its K4 and its increment
	 * would otherwise leave it off for ever).  A nack racing this scan
	 * adds one after: at worst one rescue pass for nothing.
	 */
	atomic_store_explicit(&a->hdr->ready, waiting, memory_order_relaxed);
	return n;
}

/*
 * Entries of dead owners: a FILLING one holds nothing yet (its message,
 * if claimed, is still in its ring slot) and is freed; a HELD one turns
 * READY.  Then note the sources of every READY entry (see in_area()).
 */
static int area_dead(struct pass *ps, shmq *q)
{
	struct ack_view *a = &q->ack;
	uint32_t i;
	int n = 0;

	ps->nsrcs = 0;
	for (i = 0; i < a->cap; i++) {
		/* acquire: pairs with K2: the entry's bytes are visible. */
		uint64_t v = atomic_load_explicit(&a->state[i],
						  memory_order_acquire);
		uint64_t k = ACK_KIND(v);

		if ((k == ACK_FILLING || k == ACK_HELD) &&
		    !shmq__ack_owner_alive(ps->seg, ps->alive, v)) {
			uint64_t nv = ack_word(k == ACK_HELD ? ACK_READY :
					       ACK_FREE, 0, ACK_GEN(v));

			/*
			 * release: as K3/K4 (the owner is dead; the CAS only
			 * guards against a word changed since our load).
			 */
			if (atomic_compare_exchange_strong_explicit(
					&a->state[i], &v, nv,
					memory_order_release,
					memory_order_relaxed)) {
				if (k == ACK_HELD) {
					/* relaxed: a hint and a statistic. */
					atomic_fetch_add_explicit(
						&a->hdr->ready, 1,
						memory_order_relaxed);
					atomic_fetch_add_explicit(
						&q->hdr->redelivered, 1,
						memory_order_relaxed);
					n++;
				} else {
					shmq__notify(q, &a->hdr->room,
						     INT32_MAX);
				}
				v = nv;
				k = ACK_KIND(nv);
			}
		}
		if (k == ACK_READY && ps->srcs)
			ps->srcs[ps->nsrcs++] = ack_ent(a, i)->src;
	}
	return n;
}

static int lane_put(struct pass *ps, shmq *q, const struct ring *r,
		    uint64_t pos)
{
	struct ring *lane = &q->lane;
	const struct slot *src = ring_slot(r, pos);
	struct proc_rec *rec;
	struct slot *dst;
	uint64_t lp;
	uint32_t len, klen, di;
	int rc;

	if (ps->rec < 0)
		return -ENOBUFS;
	rec = &ps->seg->recs[ps->rec];
	/* relaxed: only repairers write it, and they hold the lock. */
	lp = atomic_load_explicit(lane->prod_pos, memory_order_relaxed);
	if (r == lane && ring_slot(lane, lp) == src)
		return lane_restamp(ps, q, lane, pos, lp);
	rc = lane_claim(ps, q, &lp, &dst);
	if (rc < 0)
		return rc;
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
		/* A dead fetcher's message that its area entry keeps: free. */
		if (!(seq & SEQ_TOMB) && !in_area(ps, q, r, p)) {
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
			if (!(seq & SEQ_TOMB) && !in_area(ps, q, r, p)) {
				/* relaxed: a statistic. */
				atomic_fetch_add_explicit(&q->hdr->redelivered,
						1, memory_order_relaxed);
				shmq__notify(q, &q->hdr->not_empty, 1);
			}
			if (r == &q->main)
				shmq__notify(q, &q->hdr->not_full, 1);
		}
	}
	if (r == &q->main) {
		uint64_t waiting = 0;

		/*
		 * The area's READY entries, after the ring's messages.  Those
		 * left for want of lane room are counted by the area's ready
		 * hint (and stat's depth), not in stranded.
		 */
		if (q->ack.hdr)
			n += area_move(ps, q, &waiting);
		/* relaxed: a hint (see the top), written under the lock. */
		atomic_store_explicit(&q->hdr->stranded, left,
				      memory_order_relaxed);
	}
	return n;
}

/*
 * Both rings of one queue: the area's dead entries first (so that the
 * ring passes know which slots the area keeps), the lane next, so that
 * it has room, then the main ring and the moves out of the area.
 */
static int repair_queue(struct pass *ps, shmq *q)
{
	uint64_t srcs[256];
	int n = 0;

	/* relaxed: a statistic. */
	atomic_fetch_add_explicit(&q->hdr->repairs, 1, memory_order_relaxed);
	ps->srcs = NULL;
	ps->nsrcs = 0;
	if (q->ack.hdr) {
		ps->srcs = q->ack.cap <= 256 ? srcs :
			   malloc(q->ack.cap * sizeof(*ps->srcs));
		/*
		 * Without the list, a dead fetcher's message could be moved
		 * from both its entry and its ring slot: leave the queue to a
		 * later pass.
		 */
		if (!ps->srcs)
			return 0;
		n += area_dead(ps, q);
	}
	n += repair_ring(ps, q, &q->lane);
	n += repair_ring(ps, q, &q->main);
	if (ps->srcs != srcs)
		free(ps->srcs);
	ps->srcs = NULL;
	ps->nsrcs = 0;
	return n;
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

int shmq__ack_requeue(shmq *q, int64_t lock_ns)
{
	struct pass ps;
	uint64_t left = 0;
	int rc;

	rc = shmq__seg_lock_for(q->seg, lock_ns);
	if (rc)
		return rc;
	/* Moves only: no liveness map or records to copy. */
	memset(&ps, 0, sizeof(ps));
	ps.seg = q->seg;
	ps.rec = shmq__rec_get(q->seg);
	/* What cannot move for want of lane room: the ready hint says so. */
	rc = area_move(&ps, q, &left);
	pass_end(&ps);
	shmq__seg_unlock(q->seg);
	return rc;
}

/* Every queue of the segment, under the lock. */
static int repair_all(shmq_seg *seg)
{
	struct pass ps;
	uint32_t i;
	int rc, n = 0;

	rc = pass_begin(&ps, seg);
	if (rc)
		return rc;
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
		shmq__ack_view(&tq.ack, seg->base + qi.off, &qi);
		n += repair_queue(&ps, &tq);
	}
	pass_end(&ps);
	return n;
}

int shmq__repair_locked(shmq_seg *seg)
{
	return repair_all(seg);
}

/* Under the lock: dead attachments go, then every queue is repaired. */
static int recover_locked(shmq_seg *seg)
{
	/* Dead attachments: their entries and open-handle counts go. */
	shmq__proc_reap(seg);
	shmq__dir_sweep(seg);
	return repair_all(seg);
}

int shmq_seg_recover(shmq_seg *seg)
{
	int rc;

	if (!seg)
		return -EINVAL;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	rc = recover_locked(seg);
	shmq__seg_unlock(seg);
	return rc;
}

int shmq__recover_dead(shmq_seg *seg)
{
	/* Never wait on the lock: its holder may be stopped (see above). */
	int rc = shmq__seg_trylock(seg);

	if (rc)
		return rc;
	rc = recover_locked(seg);
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
