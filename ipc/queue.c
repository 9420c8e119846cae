/* SPDX-License-Identifier: MIT */
/*
 * queue.c - the public queue API: create, open, close, attributes, and the
 * copying calls (send, recv, their batches, purge's step): argument
 * checks, timeouts, and the claim -> copy -> publish/free -> notify
 * sequence over claim.h, ring.h and wait.h.  Zero-copy is in zerocopy.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <stddef.h>

#include "ack.h"
#include "claim.h"
#include "spsc.h"

/* ---- for shmq_poll (poll.c) ------------------------------------------ */

bool shmq__ring_ready(const shmq *q, bool send)
{
	return send ? ring_can_send(q) : ring_can_recv(q);
}

bool shmq__ring_stuck_send(const shmq *q, uint64_t *at)
{
	return prod_stuck(q, at);
}

bool shmq__ring_stuck_recv(const shmq *q, uint64_t *at)
{
	return cons_stuck(q, at);
}

/* ---- create, open, close --------------------------------------------- */

/* Bytes of the 0.3 struct shmq_attr (capacity, msg_size, flags). */
#define ATTR_V01_SIZE offsetof(struct shmq_attr, max_unacked)

static int queue_create(shmq_seg *seg, const char *name,
			const struct shmq_attr *attr)
{
	struct shmq_attr a;
	struct shmq_qinfo qi = { 0 };
	uint32_t cap;
	int rc;

	memset(&a, 0, sizeof(a));
	if (!seg)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	if (attr)
		a = *attr;
	if ((a.flags & ~SHMQ_QUEUE_FLAGS) ||
	    (a.flags & SHMQ_OVERFLOW) == SHMQ_OVERFLOW ||
	    ((a.flags & SHMQ_SPSC) && (a.flags & SHMQ_DROP_OLDEST)))
		return -EINVAL;
	if (!a.capacity)
		a.capacity = SHMQ_DEFAULT_CAPACITY;
	if (!a.msg_size)
		a.msg_size = SHMQ_DEFAULT_MSG_SIZE;
	if (a.capacity > SHMQ_MAX_CAPACITY || a.msg_size > SHMQ_MAX_MSG_SIZE)
		return -EINVAL;
	/* Acknowledged delivery: MPMC queues only. */
	if (memchr(a.dead_letter, 0, sizeof(a.dead_letter)) == NULL ||
	    (a.dead_letter[0] && shmq__name_check(a.dead_letter)))
		return -EINVAL;
	if (a.flags & SHMQ_SPSC) {
		if (a.max_unacked || a.prefetch || a.max_deliveries ||
		    a.dead_letter[0])
			return -EINVAL;
	} else {
		if (a.max_unacked > SHMQ_MAX_UNACKED ||
		    a.prefetch > SHMQ_MAX_UNACKED)
			return -EINVAL;
	}
	for (cap = 2; cap < a.capacity; cap <<= 1)
		;
	if (!(a.flags & SHMQ_SPSC)) {
		/* Defaults: the (rounded) capacity, at most 64; no limit. */
		if (!a.max_unacked)
			a.max_unacked = cap < SHMQ_DEFAULT_UNACKED ? cap :
					SHMQ_DEFAULT_UNACKED;
		if (!a.prefetch)
			a.prefetch = a.max_unacked;
		if (a.prefetch > a.max_unacked)
			return -EINVAL;
	}
	qi.capacity = cap;
	qi.msg_size = a.msg_size;
	qi.flags = a.flags;
	qi.slot_size = shmq__slot_size(a.msg_size, a.flags);
	qi.ack_cap = a.max_unacked;
	qi.prefetch = a.prefetch;
	qi.max_deliveries = a.max_deliveries;
	if (shmq__queue_bytes(qi.capacity, qi.msg_size, qi.slot_size, qi.flags,
			      qi.ack_cap) > seg->heap_size)
		return -ENOSPC;
	qi.dead_letter = a.dead_letter;
	return shmq__dir_create(seg, name, &qi, (qi.flags & SHMQ_SPSC) ?
				shmq__spsc_init : shmq__ring_init);
}

int shmq_create_v04(shmq_seg *seg, const char *name,
		    const struct shmq_attr *attr);
int shmq_create_v04(shmq_seg *seg, const char *name,
		    const struct shmq_attr *attr)
{
	return queue_create(seg, name, attr);
}
__asm__(".symver shmq_create_v04,shmq_create@@SHMQ_0.4");

/* Programs built against 0.3: a 12-byte struct, the rest defaults. */
int shmq_create_v01(shmq_seg *seg, const char *name, const void *attr);
int shmq_create_v01(shmq_seg *seg, const char *name, const void *attr)
{
	struct shmq_attr a;

	memset(&a, 0, sizeof(a));
	if (attr)
		memcpy(&a, attr, ATTR_V01_SIZE);
	return queue_create(seg, name, attr ? &a : NULL);
}
__asm__(".symver shmq_create_v01,shmq_create@SHMQ_0.1");

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

/* A handle for validated entry @qi (the caller counted it: open or pin). */
int shmq__queue_new(shmq_seg *seg, const struct shmq_qinfo *qi, shmq **out)
{
	shmq *q;

	/* Aligned: an SPSC side's private words have lines of their own. */
	q = aligned_alloc(RING_LINE, (sizeof(*q) + RING_LINE - 1) &
			  ~(size_t)(RING_LINE - 1));
	if (!q)
		return -ENOMEM;
	memset(q, 0, sizeof(*q));
	shmq__seg_get(seg);
	q->seg = seg;
	q->idx = qi->idx;
	q->hdr = (struct ring_hdr *)(seg->base + qi->off);
	shmq__ring_view(&q->main, &q->lane, seg->base + qi->off, qi);
	q->capacity = qi->capacity;
	q->msg_size = qi->msg_size;
	q->flags = qi->flags;
	if (qi->flags & SHMQ_SPSC)
		shmq__spsc_view(q, seg->base + qi->off, qi);
	atomic_init(&q->side[SPSC_SEND].thread, 0);
	atomic_init(&q->side[SPSC_RECV].thread, 0);
	atomic_init(&q->spin_ns, env_ns("SHMQ_SPIN_NS", SHMQ_DEFAULT_SPIN_NS));
	atomic_init(&q->stall_ns, env_ns("SHMQ_STALL_NS",
					 SHMQ_DEFAULT_STALL_NS));
	atomic_init(&q->stall_at, 0);
	atomic_init(&q->stall_since, 0);
	atomic_init(&q->stall_polls, 0);
	atomic_init(&q->zc, NULL);
	shmq__ack_view(&q->ack, seg->base + qi->off, qi);
	if (q->ack.hdr) {
		/* Our attachment, as area entries name their owners (ack.h). */
		q->ack_me = ack_owner((uint32_t)seg->proc_idx,
				      seg->proc_idx < 0 ? 0 :
				      shmq__proc_entry(seg, (uint32_t)
						seg->proc_idx)->attach_gen);
		/* relaxed: an id, unique among this attachment's handles. */
		q->hid = atomic_fetch_add_explicit(&seg->next_hid, 1,
						   memory_order_relaxed) + 1;
		/* Handles start apart, each on a line of its own. */
		atomic_init(&q->ack_hint, (uint32_t)(((uint64_t)q->hid * 16 +
				(uint32_t)seg->proc_idx * 8) % q->ack.cap));
	}
	atomic_init(&q->owed, 0);
	atomic_init(&q->probe_at, 0);
	atomic_init(&q->dlx, NULL);
	*out = q;
	return 0;
}

/* Free a handle made by shmq__queue_new(); the caller uncounts it. */
void shmq__queue_free(shmq *q)
{
	if (q->flags & SHMQ_SPSC)
		shmq__spsc_close(q);
	shmq__seg_put(q->seg);
	/* relaxed: as above. */
	free(atomic_load_explicit(&q->zc, memory_order_relaxed));
	free(q);
}

int shmq_open(shmq_seg *seg, const char *name, shmq **out)
{
	struct shmq_qinfo qi;
	int rc;

	if (!seg || !out)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	rc = shmq__dir_open(seg, name, DIR_KIND_QUEUE, &qi);
	if (rc)
		return rc;
	rc = shmq__queue_new(seg, &qi, out);
	if (rc)
		shmq__dir_close(seg, qi.idx);
	return rc;
}

void shmq_close(shmq *q)
{
	shmq_seg *seg;
	uint32_t idx;

	if (!q)
		return;
	seg = q->seg;
	idx = q->idx;
	/* What the handle owes goes back, delivered again (as shmq_nack). */
	shmq__ack_close(q);
	shmq__ack_free(q);
	/* Our handle's bytes go first; the segment lives on through seg's
	 * reference until shmq__queue_free() drops it. */
	shmq__seg_get(seg);
	shmq__queue_free(q);
	shmq__dir_close(seg, idx);
	shmq__seg_put(seg);
}

int shmq_unlink(shmq_seg *seg, const char *name)
{
	int rc;

	if (!seg)
		return -EINVAL;
	rc = shmq__name_check(name);
	return rc ? rc : shmq__dir_unlink(seg, name, DIR_KIND_QUEUE);
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

int shmq_get_attr_v04(const shmq *q, struct shmq_attr *attr);
int shmq_get_attr_v04(const shmq *q, struct shmq_attr *attr)
{
	if (!q || !attr)
		return -EINVAL;
	memset(attr, 0, sizeof(*attr));
	attr->capacity = q->capacity;
	attr->msg_size = q->msg_size;
	attr->flags = q->flags;
	if (q->ack.hdr) {
		attr->max_unacked = q->ack.cap;
		attr->prefetch = q->ack.prefetch;
		attr->max_deliveries = q->ack.max_deliveries;
		/* Untrusted bytes: bounded. */
		memcpy(attr->dead_letter, q->ack.hdr->dead_letter,
		       sizeof(attr->dead_letter) - 1);
		attr->dead_letter[sizeof(attr->dead_letter) - 1] = 0;
	}
	return 0;
}
__asm__(".symver shmq_get_attr_v04,shmq_get_attr@@SHMQ_0.4");

/* Programs built against 0.3: fill the 12-byte struct only. */
int shmq_get_attr_v01(const shmq *q, void *attr);
int shmq_get_attr_v01(const shmq *q, void *attr)
{
	struct shmq_attr a;
	int rc = shmq_get_attr_v04(q, attr ? &a : NULL);

	if (rc == 0)
		memcpy(attr, &a, ATTR_V01_SIZE);
	return rc;
}
__asm__(".symver shmq_get_attr_v01,shmq_get_attr@SHMQ_0.1");

/* ---- copy in, copy out --------------------------------------------------- */

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
	rc = claim_prod_policy(q, 1, &pos, timeout_ns, op.rec);
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

/* An SPSC SHMQ_DROP_NEWEST send's result: count @n refused at -EAGAIN. */
static int __attribute__((noinline)) spsc_refused(shmq *q, int rc, unsigned n)
{
	if (rc == -EAGAIN)
		/* relaxed: a statistic. */
		atomic_fetch_add_explicit(&q->hdr->dropped, n,
					  memory_order_relaxed);
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
		return (q->flags & SHMQ_DROP_NEWEST) ?
		       spsc_refused(q, shmq__spsc_send(q, msg, len, 0), 1) :
		       shmq__spsc_send(q, msg, len, timeout_ns);
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
		if (timeout_ns == 0 && !(q->flags & SHMQ_OVERFLOW) &&
		    (int64_t)((seq & ~SEQ_TOMB) - pos) < 0) {
			poll_stall(q, prod_stuck);      /* full */
			return -EAGAIN;
		}
	}
	return send_general(q, msg, len, timeout_ns);
}

/*
 * What shmq_recv_meta() reports of claimed message @pos of ring @r, whose
 * key takes @klen bytes at the start of its data.
 */
void __attribute__((noinline))
shmq__meta_fill(shmq *q, const struct ring *r, uint64_t pos, uint32_t klen,
	  struct shmq_meta *meta)
{
	const struct slot *s = ring_slot(r, pos);

	if (klen > SHMQ_KEY_MAX)
		klen = SHMQ_KEY_MAX;
	memcpy(meta->key, s->data, klen);
	meta->key[klen] = 0;
	meta->key_len = klen;
	if (r == &q->lane) {
		/* Written before the lane slot's R1, read after our A2. */
		uint32_t i = (uint32_t)(pos & (SHMQ_LANE_CAP - 1));
		uint32_t d = q->hdr->lane_deliveries[i];

		meta->seq = q->hdr->lane_seq[i];
		meta->flags = SHMQ_META_REDELIVERED;
		meta->deliveries = d < 2 ? 2 : d;
	} else {
		meta->seq = pos;
		meta->flags = 0;
		meta->deliveries = 1;
	}
}

/* SPSC queues carry no key: seq is the position, never a redelivery. */
static ssize_t __attribute__((noinline))
spsc_recv_meta(shmq *q, void *buf, size_t buflen, struct shmq_meta *meta,
	       int64_t timeout_ns)
{
	ssize_t n = shmq__spsc_recv(q, buf, buflen, timeout_ns);

	if (n >= 0) {
		meta->seq = q->side[SPSC_RECV].next - 1;
		meta->flags = 0;
		meta->deliveries = 1;
		meta->key_len = 0;
		meta->key[0] = 0;
	}
	return n;
}

static ssize_t __attribute__((noinline))
recv_general(shmq *q, void *buf, size_t buflen, struct shmq_meta *meta,
	     int64_t timeout_ns)
{
	struct ring *r;
	struct op op;
	uint64_t pos;
	uint32_t len, klen;
	int rc;

	rc = op_begin(q, &op);
	if (rc)
		return rc;
	rc = claim_cons(q, 1, NULL, buflen, &pos, &r, timeout_ns, op.rec);
	if (rc < 0) {
		op_end(q, &op);
		return rc;
	}
	len = ring_len(r, pos, buflen, &klen);
	if (len)        /* buf may be NULL when buflen is 0 */
		memcpy(buf, ring_slot(r, pos)->data + klen, len);
	if (meta)
		shmq__meta_fill(q, r, pos, klen, meta);
	ring_free(r, pos);
	op_end(q, &op);
	notify_freed(q, r, 1);
	return len;
}

static inline __attribute__((always_inline)) ssize_t
recv_one(shmq *q, void *buf, size_t buflen, struct shmq_meta *meta,
	 int64_t timeout_ns)
{
	struct ring *r;
	struct slot *s;
	struct op op;
	uint64_t pos, seq;
	uint32_t len, klen;

	if (!q || (!buf && buflen) || timeout_check(timeout_ns))
		return -EINVAL;
	r = &q->main;
	role(q, PROC_ROLE_CONS);
	if (q->flags & SHMQ_SPSC)
		return meta ? spsc_recv_meta(q, buf, buflen, meta, timeout_ns) :
		       shmq__spsc_recv(q, buf, buflen, timeout_ns);
	if (__builtin_expect(lane_pending(q), 0) || op_begin(q, &op))
		return recv_general(q, buf, buflen, meta, timeout_ns);
	/* relaxed: a guess at the next position; the CAS confirms it. */
	pos = atomic_load_explicit(r->cons_pos, memory_order_relaxed);
	s = ring_slot(r, pos);
	/* A2: acquire; pairs with R1, as in ring_cons_claim(). */
	seq = atomic_load_explicit(&s->seq, memory_order_acquire);
	ring_prefetch_tail(r, s);
	if (__builtin_expect(seq == pos + 1, 1)) {
		/* relaxed: ordered after A2; untrusted, so clamped. */
		klen = slot_klen(s, r->msg_size);
		len = slot_plen(atomic_load_explicit(&s->len,
						     memory_order_relaxed),
				r->msg_size, klen);
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
					memcpy(buf, s->data + klen, len);
				if (meta)
					shmq__meta_fill(q, r, pos, klen, meta);
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
		/* Empty, unless messages wait for a pass (the slow path's). */
		if (timeout_ns == 0 &&
		    (int64_t)((seq & ~SEQ_TOMB) - (pos + 1)) < 0 &&
		    !cons_stranded(q)) {
			poll_stall(q, cons_stuck);      /* empty */
			return -EAGAIN;
		}
	}
	return recv_general(q, buf, buflen, meta, timeout_ns);
}

ssize_t shmq_recv(shmq *q, void *buf, size_t buflen, int64_t timeout_ns)
{
	return recv_one(q, buf, buflen, NULL, timeout_ns);
}

ssize_t shmq_recv_meta(shmq *q, void *buf, size_t buflen,
		       struct shmq_meta *meta, int64_t timeout_ns)
{
	return recv_one(q, buf, buflen, meta, timeout_ns);
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
		return (q->flags & SHMQ_DROP_NEWEST) ?
		       spsc_refused(q, shmq__spsc_send_batch(q, msgs, fit, 0),
				    fit) :
		       shmq__spsc_send_batch(q, msgs, fit, timeout_ns);
	k = op_begin(q, &op);
	if (k)
		return k;
	k = claim_prod_policy(q, fit, &pos, timeout_ns, op.rec);
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
		uint32_t klen, len = ring_len(r, pos + i, bufs[i].iov_len,
					      &klen);

		if (len)
			memcpy(bufs[i].iov_base,
			       ring_slot(r, pos + i)->data + klen, len);
		bufs[i].iov_len = len;
	}
	for (i = 0; i < (unsigned)k; i++)
		ring_free(r, pos + i);
	op_end(q, &op);
	notify_freed(q, r, (unsigned)k);
	return k;
}
