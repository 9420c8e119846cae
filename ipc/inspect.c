/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - what mqctl sees of a queue: its counters, a snapshot of its
 * oldest messages, a purge (whose claims are queue.c's), and the ring part
 * of shmq_seg_check().
 *
 * Nothing here writes a ring word or adds work to a fast path.  Readers
 * take single atomic loads of words the data plane already keeps (prod_pos,
 * cons_pos, the event counts, the slow-path counters, slot seqs) and hold
 * the control-plane lock so that the block they read cannot be freed and
 * reused under them (a block is freed only under that lock, dir.c).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ack.h"
#include "ring.h"
#include "spsc.h"
#include "inspect.h"

/* A tombstone: a dead producer's claim, no message (ring.h). */
#define INSPECT_TOMB SEQ_TOMB

/* ---- counters ----------------------------------------------------------- */

/* The unacknowledged area's part of queue_fill().  Under the lock. */
static void ack_fill(shmq_seg *seg, const struct shmq_qinfo *g,
		     struct shmq_queue_info *qi)
{
	struct ack_view a;
	uint32_t i, ready = 0;

	shmq__ack_view(&a, seg->base + g->off, g);
	qi->max_unacked = a.cap;
	qi->prefetch = a.prefetch;
	qi->max_deliveries = a.max_deliveries;
	/* Untrusted bytes: bounded. */
	memcpy(qi->dead_letter, a.hdr->dead_letter, sizeof(qi->dead_letter));
	qi->dead_letter[sizeof(qi->dead_letter) - 1] = 0;
	/* relaxed: statistics, each exact on its own. */
	qi->nacked = atomic_load_explicit(&a.hdr->nacked, memory_order_relaxed);
	qi->dead_lettered = atomic_load_explicit(&a.hdr->dead_lettered,
						 memory_order_relaxed);
	for (i = 0; i < a.cap; i++) {
		/* relaxed: a snapshot for display. */
		uint64_t k = ACK_KIND(atomic_load_explicit(&a.state[i],
						memory_order_relaxed));

		if (k == ACK_HELD)
			qi->unacked++;
		else if (k == ACK_READY)
			ready++;
	}
	/* Given back and not yet in the lane: waiting, as the lane's are. */
	qi->depth += ready;
}

/* Fill @qi from entry @idx (validated) and its ring.  Under the lock. */
static void queue_fill(shmq_seg *seg, const struct dir_entry *e,
		       const struct shmq_qinfo *g, struct shmq_queue_info *qi)
{
	const struct ring_hdr *h = (const struct ring_hdr *)(seg->base + g->off);
	uint64_t sent, recvd;
	uint32_t w;

	memset(qi, 0, sizeof(*qi));
	memcpy(qi->name, e->name, sizeof(qi->name));
	qi->name[sizeof(qi->name) - 1] = 0;
	qi->state = e->state == DIR_LIVE ? SHMQ_QUEUE_LIVE : SHMQ_QUEUE_UNLINKED;
	qi->index = g->idx;
	qi->capacity = g->capacity;
	qi->msg_size = g->msg_size;
	qi->slot_size = g->slot_size;
	qi->bytes = g->size;
	qi->create_time_ns = e->create_time_ns;
	qi->handles = shmq__dir_opens(seg, g->idx);
	qi->producers = shmq__dir_roles(seg, g->idx, PROC_ROLE_PROD);
	qi->consumers = shmq__dir_roles(seg, g->idx, PROC_ROLE_CONS);
	/*
	 * relaxed: statistics.  cons_pos is read before prod_pos so that the
	 * difference is never negative for an honest MPMC ring (prod_pos
	 * only grows, and never trails cons_pos); clamped for a dishonest
	 * one.  An SPSC queue's prod_pos is a hint that may trail what is
	 * published (and cons_pos): its entries say how far it goes.
	 */
	recvd = atomic_load_explicit(&h->cons_pos, memory_order_relaxed);
	if (g->flags & SHMQ_SPSC)
		sent = shmq__spsc_published_end(h, (const _Atomic uint64_t *)
				((const unsigned char *)h + SHMQ_RING_HDR_SIZE),
				g->capacity);
	else
		sent = atomic_load_explicit(&h->prod_pos,
					    memory_order_relaxed);
	qi->sent = sent;
	qi->received = recvd;
	if ((int64_t)(sent - recvd) < 0)
		qi->depth = 0;
	else if (sent - recvd > g->capacity)
		qi->depth = g->capacity;
	else
		qi->depth = sent - recvd;
	/*
	 * relaxed: a count of announced waiters, for display only: ordinary
	 * waiters in the low half, pollers in the high (wait.h).
	 */
	w = atomic_load_explicit(&h->not_full.waiters, memory_order_relaxed);
	qi->send_pollers = w / WAITERS_POLLER;
	qi->send_waiters = (w & WAITERS_PLAIN) + qi->send_pollers;
	w = atomic_load_explicit(&h->not_empty.waiters, memory_order_relaxed);
	qi->recv_pollers = w / WAITERS_POLLER;
	qi->recv_waiters = (w & WAITERS_PLAIN) + qi->recv_pollers;
	/* relaxed: slow-path statistics, each exact on its own. */
	qi->full_waits = atomic_load_explicit(&h->full_waits,
					      memory_order_relaxed);
	qi->empty_waits = atomic_load_explicit(&h->empty_waits,
					       memory_order_relaxed);
	qi->sleeps = atomic_load_explicit(&h->sleeps, memory_order_relaxed);
	qi->wakes = atomic_load_explicit(&h->wakes, memory_order_relaxed);
	qi->dropped = atomic_load_explicit(&h->dropped, memory_order_relaxed);
	/* relaxed: recovery's counters (ring.h), for display. */
	qi->tombstones = atomic_load_explicit(&h->tombstones,
					      memory_order_relaxed);
	qi->redelivered = atomic_load_explicit(&h->redelivered,
					       memory_order_relaxed);
	qi->repairs = qi->tombstones + qi->redelivered;
	/* relaxed: a depth for display, clamped below; untrusted. */
	recvd = atomic_load_explicit(&h->lane_cons_pos, memory_order_relaxed);
	sent = atomic_load_explicit(&h->lane_prod_pos, memory_order_relaxed);
	qi->lane_depth = (int64_t)(sent - recvd) < 0 ? 0 :
			 sent - recvd > SHMQ_LANE_CAP ? SHMQ_LANE_CAP :
			 sent - recvd;
	qi->flags = g->flags;
	if (g->flags & SHMQ_SPSC)
		qi->lane_depth = 0;     /* no lane */
	if (!(g->flags & SHMQ_SPSC)) {
		/*
		 * relaxed: a display hint.  Messages of a dead consumer still
		 * in their slots for want of lane room (recover.c): waiting
		 * too, though cons_pos is past them.  They sit in slots that
		 * no waiting message uses, so the ring holds at most
		 * capacity of both (untrusted: clamped so).
		 */
		uint64_t st = atomic_load_explicit(&h->stranded,
						   memory_order_relaxed);

		qi->depth += st > g->capacity - qi->depth ?
			     g->capacity - qi->depth : st;
	}
	/* What consumers will get: the lane is drained first. */
	qi->depth += qi->lane_depth;
	if (g->ack_cap)
		ack_fill(seg, g, qi);
	if (g->flags & SHMQ_SPSC) {
		qi->sender_pid = shmq__spsc_holder(seg, h, SPSC_SEND);
		qi->receiver_pid = shmq__spsc_holder(seg, h, SPSC_RECV);
	}
}

static int queue_list(shmq_seg *seg, struct shmq_queue_info *out, unsigned n)
{
	unsigned count = 0;
	uint32_t i;
	int rc;

	if (!seg || (!out && n))
		return -EINVAL;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	for (i = 0; i < seg->max_queues; i++) {
		const struct dir_entry *e = shmq__dir_entry(seg, i);
		struct shmq_qinfo g;

		if (e->state == DIR_FREE)
			continue;
		rc = shmq__dir_validate_entry(seg, e, &g);
		if (rc)
			break;
		if (g.kind != DIR_KIND_QUEUE)
			continue;
		if (count < n)
			queue_fill(seg, e, &g, &out[count]);
		count++;
	}
	shmq__seg_unlock(seg);
	return rc ? rc : (int)count;
}

static int queue_stat(shmq_seg *seg, const char *name,
		      struct shmq_queue_info *out)
{
	struct shmq_qinfo g;
	int idx, rc;

	if (!seg || !out)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	idx = shmq__dir_lookup(seg, name, DIR_KIND_QUEUE, &g);
	if (idx >= 0)
		queue_fill(seg, shmq__dir_entry(seg, (uint32_t)idx), &g, out);
	shmq__seg_unlock(seg);
	return idx < 0 ? idx : 0;
}

/*
 * 0.4 added dropped at the end of struct shmq_queue_info: programs built
 * against 0.2/0.3 pass arrays of the shorter struct, so they keep the
 * symbols of version SHMQ_0.2, which fill only that much.
 */
#define QINFO_V02_SIZE offsetof(struct shmq_queue_info, dropped)

int shmq_queue_list_v04(shmq_seg *seg, struct shmq_queue_info *out,
			unsigned n);
int shmq_queue_list_v04(shmq_seg *seg, struct shmq_queue_info *out,
			unsigned n)
{
	return queue_list(seg, out, n);
}
__asm__(".symver shmq_queue_list_v04,shmq_queue_list@@SHMQ_0.4");

int shmq_queue_stat_v04(shmq_seg *seg, const char *name,
			struct shmq_queue_info *out);
int shmq_queue_stat_v04(shmq_seg *seg, const char *name,
			struct shmq_queue_info *out)
{
	return queue_stat(seg, name, out);
}
__asm__(".symver shmq_queue_stat_v04,shmq_queue_stat@@SHMQ_0.4");

int shmq_queue_list_v02(shmq_seg *seg, void *out, unsigned n);
int shmq_queue_list_v02(shmq_seg *seg, void *out, unsigned n)
{
	struct shmq_queue_info *tmp = NULL;
	unsigned i;
	int rc;

	if (!seg || (!out && n))
		return -EINVAL;
	if (n && !(tmp = calloc(n, sizeof(*tmp))))
		return -ENOMEM;
	rc = queue_list(seg, tmp, n);
	for (i = 0; rc > 0 && i < n && i < (unsigned)rc; i++)
		memcpy((char *)out + (size_t)i * QINFO_V02_SIZE, &tmp[i],
		       QINFO_V02_SIZE);
	free(tmp);
	return rc;
}
__asm__(".symver shmq_queue_list_v02,shmq_queue_list@SHMQ_0.2");

int shmq_queue_stat_v02(shmq_seg *seg, const char *name, void *out);
int shmq_queue_stat_v02(shmq_seg *seg, const char *name, void *out)
{
	struct shmq_queue_info tmp;
	int rc;

	if (!out)
		return -EINVAL;
	rc = queue_stat(seg, name, &tmp);
	if (rc == 0)
		memcpy(out, &tmp, QINFO_V02_SIZE);
	return rc;
}
__asm__(".symver shmq_queue_stat_v02,shmq_queue_stat@SHMQ_0.2");

/* ---- peek ------------------------------------------------------------------ */

/*
 * Copy the message of position @pos if it is published, then confirm that
 * the slot still holds it (seqlock style: seq, copy, fence, seq again).
 * A consumer may free it and a producer of the next lap overwrite it while
 * we copy; the second read of seq then differs and the copy is dropped.
 * Returns 1 (copied), 0 (skip: tombstone, or changed under us), -1 (stop:
 * not yet published; later positions are not shown in front of it).
 */
static int peek_one(const unsigned char *slots, uint64_t mask,
		    uint32_t slot_size, uint32_t msg_size, uint64_t pos,
		    struct shmq_peek_msg *m)
{
	const struct slot *s = (const struct slot *)(slots +
					(pos & mask) * slot_size);
	uint64_t seq, again;
	uint32_t len, klen;

	/* I1: acquire; pairs with R1 (publish): len and payload visible. */
	seq = atomic_load_explicit(&s->seq, memory_order_acquire);
	if (seq == ((pos + 1) | INSPECT_TOMB))
		return 0;
	if (seq == pos)
		return -1;
	if (seq != pos + 1)
		return 0;               /* consumed (and maybe reused) already */
	/* relaxed: ordered after I1; untrusted, so clamped. */
	klen = slot_klen(s, msg_size);
	len = slot_plen(atomic_load_explicit(&s->len, memory_order_relaxed),
			msg_size, klen);
	m->len = len;
	/*
	 * Plain copy of bytes another process may be rewriting: the result
	 * is used only if the re-check below shows nobody did.
	 */
	memcpy(m->data, s->data + klen, len < m->size ? len : m->size);
	/*
	 * I2: acquire fence; orders the copy before the second seq load, so
	 * a producer's rewrite (after its A1 saw our position freed) shows
	 * up as a changed seq.  Pairs with R2 (the consumer's free).
	 */
	atomic_thread_fence(memory_order_acquire);
	/* relaxed: ordered after the copy by I2. */
	again = atomic_load_explicit(&s->seq, memory_order_relaxed);
	if (again != seq)
		return 0;
	m->pos = pos;
	return 1;
}

int shmq_peek(shmq_seg *seg, const char *name, struct shmq_peek_msg *msgs,
	      unsigned n)
{
	const struct ring_hdr *h;
	struct shmq_qinfo g;
	uint64_t pos, end;
	unsigned got = 0;
	int idx, rc;

	if (!seg || !msgs || n == 0)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	idx = shmq__dir_lookup(seg, name, DIR_KIND_QUEUE, &g);
	if (idx < 0) {
		rc = idx;
		goto out;
	}
	if (g.flags & SHMQ_SPSC) {
		rc = shmq__spsc_peek(seg, &g, msgs, n);
		goto out;
	}
	h = (const struct ring_hdr *)(seg->base + g.off);
	/* The lane first: consumers drain it before the ring. */
	/* relaxed: where to start and stop looking; each slot is checked. */
	pos = atomic_load_explicit(&h->lane_cons_pos, memory_order_relaxed);
	end = atomic_load_explicit(&h->lane_prod_pos, memory_order_relaxed);
	if ((int64_t)(end - pos) < 0 || end - pos > SHMQ_LANE_CAP)
		end = pos;              /* corrupt or empty: nothing to show */
	for (; pos != end && got < n; pos++) {
		int r = peek_one(seg->base + g.off + SHMQ_RING_HDR_SIZE +
				 (uint64_t)g.capacity * g.slot_size,
				 SHMQ_LANE_CAP - 1, g.slot_size, g.msg_size, pos,
				 &msgs[got]);

		if (r < 0)
			break;
		if (r > 0)
			msgs[got].redelivered = 1;
		got += (unsigned)r;
	}
	/* relaxed: as above. */
	pos = atomic_load_explicit(&h->cons_pos, memory_order_relaxed);
	end = atomic_load_explicit(&h->prod_pos, memory_order_relaxed);
	if ((int64_t)(end - pos) < 0 || end - pos > g.capacity)
		end = pos + g.capacity;         /* corrupt: bounded anyway */
	for (; pos != end && got < n; pos++) {
		int r = peek_one(seg->base + g.off + SHMQ_RING_HDR_SIZE,
				 g.capacity - 1, g.slot_size, g.msg_size, pos,
				 &msgs[got]);

		if (r < 0)
			break;
		if (r > 0)
			msgs[got].redelivered = 0;
		got += (unsigned)r;
	}
	rc = (int)got;
out:
	shmq__seg_unlock(seg);
	return rc;
}

/* ---- purge ------------------------------------------------------------------ */

int shmq_purge(shmq *q)
{
	uint64_t last, last_lane;
	int dropped = 0, rc;

	if (!q)
		return -EINVAL;
	if (q->flags & SHMQ_SPSC)
		return shmq__spsc_purge(q);
	/*
	 * relaxed: the bounds of the work.  A position below @last (main
	 * ring) or @last_lane (the lane) was claimed by a producer (or by
	 * recovery) before we began: its message is "present now".  Later
	 * ones are left to the consumers (shmq__purge_one() claims only
	 * below these bounds).
	 */
	last = atomic_load_explicit(&q->hdr->prod_pos, memory_order_relaxed);
	last_lane = atomic_load_explicit(&q->hdr->lane_prod_pos,
					 memory_order_relaxed);
	while ((rc = shmq__purge_one(q, last, &last_lane)) > 0)
		dropped++;
	return rc < 0 && !dropped ? rc : dropped;
}

/* ---- check: one ring ------------------------------------------------------ */

#define BAD_SLOTS_SHOWN 8

struct bad_slot {
	uint64_t pos, seq;
	uint32_t idx;
};

/* Which seq values are legal for the slot of position @q (ring.h). */
static int seq_legal(uint64_t q, uint64_t seq, uint64_t cons, uint32_t cap)
{
	if (seq == q + 1 || seq == ((q + 1) | INSPECT_TOMB))
		return 1;               /* published, held, or a tombstone */
	if ((int64_t)(q - cons) >= 0)
		return seq == q;        /* not consumed: free for q / claimed */
	return seq == q + cap;          /* consumed in this lap: freed */
}

/*
 * Check one ring's positions and slots (the main ring or the lane).  On a
 * segment in use the ring moves while we read it: take the positions, scan
 * the slots, take the positions again; only a scan between two equal
 * readings is judged.  Slot changes that do not move a position (publish,
 * a claim whose CAS has not happened yet) go from one legal state to
 * another, so they cannot make a legal ring look broken.
 */
static void ring_scan(struct shmq_check_ctx *c, int idx, const char *name,
		      const char *which, const _Atomic uint64_t *prod_pos,
		      const _Atomic uint64_t *cons_pos,
		      const unsigned char *slots, uint32_t cap,
		      uint32_t slot_size)
{
	struct bad_slot bad[BAD_SLOTS_SHOWN];
	uint64_t prod = 0, cons = 0;
	uint32_t nbad = 0, k;
	int tries;

	for (tries = 0; tries < 20; tries++) {
		uint64_t p2, c2, q;

		/* acquire: the slot loads below come after these. */
		cons = atomic_load_explicit(cons_pos, memory_order_acquire);
		prod = atomic_load_explicit(prod_pos, memory_order_acquire);
		nbad = 0;
		if ((int64_t)(prod - cons) >= 0 && prod - cons <= cap) {
			for (q = prod - cap; q != prod; q++) {
				const struct slot *s = (const struct slot *)
					(slots + (q & (cap - 1)) *
					 (uint64_t)slot_size);
				/* relaxed: judged as a snapshot, below. */
				uint64_t seq = atomic_load_explicit(&s->seq,
							memory_order_relaxed);

				if (seq_legal(q, seq, cons, cap))
					continue;
				if (nbad < BAD_SLOTS_SHOWN) {
					bad[nbad].pos = q;
					bad[nbad].seq = seq;
					bad[nbad].idx = (uint32_t)(q & (cap - 1));
				}
				nbad++;
			}
		}
		/* acquire: orders the slot loads before these re-reads. */
		atomic_thread_fence(memory_order_acquire);
		c2 = atomic_load_explicit(cons_pos, memory_order_relaxed);
		p2 = atomic_load_explicit(prod_pos, memory_order_relaxed);
		if (c2 == cons && p2 == prod)
			break;
	}
	if (tries == 20) {
		shmq__check_report(c, SHMQ_CHECK_NOTE, SHMQ_AREA_QUEUE, idx,
				   name, "%sbusy: positions kept moving, slots "
				   "not checked", which);
		return;
	}
	if ((int64_t)(prod - cons) < 0) {
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "%scons_pos %llu is ahead of prod_pos "
				   "%llu", which, (unsigned long long)cons,
				   (unsigned long long)prod);
		return;
	}
	if (prod - cons > cap) {
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "%sprod_pos - cons_pos = %llu exceeds "
				   "capacity %u", which,
				   (unsigned long long)(prod - cons), cap);
		return;
	}
	for (k = 0; k < nbad && k < BAD_SLOTS_SHOWN; k++)
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE,
				   (int)bad[k].idx, name, "%sslot %u (position "
				   "%lld): seq %llu is not a legal state for "
				   "that position", which, bad[k].idx,
				   /* signed: "-3" is lap -1, never used */
				   (long long)bad[k].pos,
				   (unsigned long long)bad[k].seq);
	if (nbad > BAD_SLOTS_SHOWN)
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "%s%u more slots in an illegal state",
				   which, nbad - BAD_SLOTS_SHOWN);
}

/*
 * An SPSC queue (spsc.c): positions at most capacity apart, every waiting
 * message's length within msg_size, and an owner word either 0 or naming
 * a process-table entry.  Judged only between two equal readings of the
 * positions, as ring_scan() does.
 */
static void spsc_check(struct shmq_check_ctx *c, const unsigned char *block,
		       const struct shmq_qinfo *qi, const char *name)
{
	const struct ring_hdr *h = (const struct ring_hdr *)block;
	const _Atomic uint64_t *ents =
		(const _Atomic uint64_t *)(block + SHMQ_RING_HDR_SIZE);
	int idx = (int)qi->idx, side, tries;
	uint64_t p = 0, t = 0, pos;
	uint32_t bad = 0, badtag = 0, badlen = 0;

	for (tries = 0; tries < 8; tries++) {
		/* relaxed, all: a snapshot, confirmed by the second reading. */
		t = atomic_load_explicit(&h->cons_pos, memory_order_relaxed);
		p = atomic_load_explicit(&h->prod_pos, memory_order_relaxed);
		bad = badtag = 0;
		if ((int64_t)(p - t) >= 0 && p - t <= qi->capacity)
			for (pos = t; pos != p; pos++) {
				uint64_t e = atomic_load_explicit(
					&ents[pos & (qi->capacity - 1)],
					memory_order_relaxed);

				/* prod_pos trails the entries: each is out. */
				if (!spsc_ent_names(e, pos))
					badtag++;
				else if ((uint32_t)e > qi->msg_size && !bad++)
					badlen = (uint32_t)e;
			}
		if (atomic_load_explicit(&h->cons_pos, memory_order_relaxed) ==
		    t && atomic_load_explicit(&h->prod_pos,
					      memory_order_relaxed) == p)
			break;
	}
	if (tries == 8) {
		shmq__check_report(c, SHMQ_CHECK_NOTE, SHMQ_AREA_QUEUE, idx,
				   name, "queue busy; not judged");
		return;
	}
	if ((int64_t)(p - t) < 0 && t - p <= qi->capacity)
		/* prod_pos is a hint the sender stores after the entries. */
		shmq__check_report(c, SHMQ_CHECK_NOTE, SHMQ_AREA_QUEUE, idx,
				   name, "the sender's position (%llu) trails "
				   "the receiver's (%llu): a sender died after "
				   "publishing; the next one moves it on",
				   (unsigned long long)p, (unsigned long long)t);
	else if ((int64_t)(p - t) < 0 || p - t > qi->capacity)
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "positions sent %llu, received %llu: "
				   "more than capacity %u apart",
				   (unsigned long long)p, (unsigned long long)t,
				   qi->capacity);
	if (badtag)
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "%u of the %llu messages waiting have "
				   "no entry naming their position", badtag,
				   (unsigned long long)(p - t));
	if (bad)
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "%u waiting messages longer than "
				   "msg_size %u (e.g. %u bytes)", bad,
				   qi->msg_size, badlen);
	for (side = 0; side < 2; side++) {
		/* relaxed: a snapshot. */
		uint64_t v = atomic_load_explicit(&h->spsc_owner[side],
						  memory_order_relaxed);
		uint64_t pidx = SPSC_OWNER_IDX(v);

		if (v && (pidx == 0 || pidx > c->max_procs))
			shmq__check_report(c, SHMQ_CHECK_ERROR,
					   SHMQ_AREA_QUEUE, idx, name,
					   "%s side held by process entry "
					   "%llu, which cannot exist",
					   side ? "receiving" : "sending",
					   (unsigned long long)pidx - 1);
	}
}

/*
 * An MPMC queue's unacknowledged area (ack.h): its header agrees with the
 * directory, its dead-letter name is a name, and each state word is of a
 * kind that can exist, owned (when it must be) by a process entry that
 * can exist, with an entry whose lengths fit.  Hostile words found here
 * cost nothing but a message: every reader clamps them (ack.c).
 */
#define BAD_ENTRIES_SHOWN 4

static void ack_check(struct shmq_check_ctx *c, const unsigned char *block,
		      const struct shmq_qinfo *qi, const char *name)
{
	struct ack_view a;
	char dl[sizeof(((struct ack_hdr *)0)->dead_letter)];
	uint32_t i, nbad = 0;
	int idx = (int)qi->idx;

	shmq__ack_view(&a, (unsigned char *)block, qi);
	if (a.hdr->magic != ACK_MAGIC || a.hdr->cap != a.cap ||
	    a.hdr->entry_size != a.entry_size) {
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "unacknowledged area: header says "
				   "magic 0x%016llx, %u entries of %u bytes; "
				   "expected %u of %u",
				   (unsigned long long)a.hdr->magic,
				   a.hdr->cap, a.hdr->entry_size, a.cap,
				   a.entry_size);
		return;
	}
	memcpy(dl, a.hdr->dead_letter, sizeof(dl));
	if (!memchr(dl, 0, sizeof(dl)) || (dl[0] && shmq__name_check(dl)))
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "unacknowledged area: the dead-letter "
				   "exchange's name is not a name");
	for (i = 0; i < a.cap; i++) {
		/* relaxed: a snapshot; a live queue may move on meanwhile. */
		uint64_t v = atomic_load_explicit(&a.state[i],
						  memory_order_relaxed);
		uint64_t k = ACK_KIND(v);
		const struct ack_ent *e = ack_ent(&a, i);
		const char *why = NULL;

		if ((k == ACK_FILLING || k == ACK_HELD) &&
		    ACK_PIDX(v) >= c->max_procs)
			why = "owned by a process entry that cannot exist";
		else if ((k == ACK_HELD || k == ACK_READY) &&
			 ((uint64_t)e->klen + e->len > qi->msg_size ||
			  e->deliveries == 0))
			why = "holds a message longer than msg_size, or never "
			      "delivered";
		else if (k == ACK_FREE && (v & ACK_OWNER_MASK))
			why = "is free but names an owner";
		if (!why)
			continue;
		if (nbad++ < BAD_ENTRIES_SHOWN)
			shmq__check_report(c, SHMQ_CHECK_ERROR,
					   SHMQ_AREA_QUEUE, idx, name,
					   "unacknowledged entry %u (state "
					   "0x%016llx) %s", i,
					   (unsigned long long)v, why);
	}
	if (nbad > BAD_ENTRIES_SHOWN)
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "%u more unacknowledged entries in an "
				   "illegal state", nbad - BAD_ENTRIES_SHOWN);
}

static void ring_check(struct shmq_check_ctx *c, const unsigned char *block,
		       const struct shmq_qinfo *qi, const char *name)
{
	const struct ring_hdr *h = (const struct ring_hdr *)block;
	const unsigned char *slots = block + SHMQ_RING_HDR_SIZE;
	int idx = (int)qi->idx;

	if (h->magic != RING_MAGIC) {
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "ring header: bad magic 0x%016llx",
				   (unsigned long long)h->magic);
		return;
	}
	if (h->capacity != qi->capacity || h->msg_size != qi->msg_size ||
	    h->slot_size != qi->slot_size) {
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "ring header says capacity %u, "
				   "msg_size %u, slot_size %u; the directory "
				   "says %u, %u, %u", h->capacity, h->msg_size,
				   h->slot_size, qi->capacity, qi->msg_size,
				   qi->slot_size);
		return;
	}
	if (h->flags != qi->flags) {
		shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_QUEUE, idx,
				   name, "ring header says flags 0x%x; the "
				   "directory says 0x%x", h->flags, qi->flags);
		return;
	}
	if (qi->flags & SHMQ_SPSC) {
		spsc_check(c, block, qi, name);
		return;
	}
	ring_scan(c, idx, name, "", &h->prod_pos, &h->cons_pos, slots,
		  qi->capacity, qi->slot_size);
	/* The redelivery lane follows the main slots (ring.h). */
	ring_scan(c, idx, name, "redelivery lane: ", &h->lane_prod_pos,
		  &h->lane_cons_pos,
		  slots + (uint64_t)qi->capacity * qi->slot_size,
		  SHMQ_LANE_CAP, qi->slot_size);
	if (qi->ack_cap)
		ack_check(c, block, qi, name);
}

int shmq_seg_check(const char *name, shmq_check_fn fn, void *arg)
{
	struct shmq_check_ctx c = { fn, arg, 0, SHMQ_MAX_PROCS };
	int rc = shmq__seg_check_file(name, &c, ring_check,
				      shmq__xchg_check);

	return rc < 0 ? rc : c.errors;
}
