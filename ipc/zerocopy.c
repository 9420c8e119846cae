/* SPDX-License-Identifier: MIT */
/*
 * zerocopy.c - shmq_reserve/commit (write in place, then publish) and
 * shmq_acquire/release (read in place, then free): the handle's table of
 * outstanding operations, and the operation records they hold across
 * calls.
 */
#include <errno.h>
#include <stdlib.h>

#include "ack.h"
#include "claim.h"
#include "spsc.h"

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
		/* SHMQ_DROP_NEWEST: never wait (no count: nothing was sent). */
		return shmq__spsc_reserve(q, len, m,
				(q->flags & SHMQ_DROP_NEWEST) ? 0 : timeout_ns);
	}
	t = zc_table(q);
	if (!t)
		return -ENOMEM;
	role(q, PROC_ROLE_PROD);
	/* The record stays ours until commit: not the cached one. */
	i = zc_rec_get(q);
	if (i < 0)
		return i;
	rc = claim_prod_policy(q, 1, &pos, timeout_ns, &q->seg->recs[i]);
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
	uint32_t len, klen;
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
	/* A held message: its consumers must watch for our death (ack.c). */
	shmq__ack_mark(q);
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
	len = ring_len(r, pos, SIZE_MAX, &klen);
	/* relaxed: read back by release via this handle; see zc_take(). */
	atomic_store_explicit(zc_entry(q, t, r, pos),
			      zc_word(r, pos, ZC_ACQ, len, i),
			      memory_order_relaxed);
	m->data = ring_slot(r, pos)->data + klen;
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

/*
 * The metadata of an acquired message, for a consumer that needs an
 * idempotency key (mqbridge's JetStream message id): a main-ring message's
 * seq is its position; a lane message's is the position recovery recorded
 * in lane_seq[] when it moved the message there.
 */
int shmq_msg_meta(shmq *q, const struct shmq_msg *m, struct shmq_meta *meta)
{
	_Atomic uint64_t *t;
	struct ring *r;
	uint64_t pos, v;
	uint32_t klen;

	if (!q || !m || !meta)
		return -EINVAL;
	if (q->flags & SHMQ_SPSC) {
		const struct spsc_side *sd = &q->side[SPSC_RECV];

		/* Only the receiving side's owner reads its private words. */
		if (m->token - sd->pos >= sd->next - sd->pos)
			return -EINVAL;
		meta->seq = m->token;
		meta->flags = 0;
		meta->deliveries = 1;
		meta->key_len = 0;
		meta->key[0] = 0;
		return 0;
	}
	r = (m->token & TOKEN_LANE) ? &q->lane : &q->main;
	pos = m->token & ~TOKEN_LANE;
	/* relaxed: only our own claim keeps this value (published for pos). */
	if (atomic_load_explicit(&ring_slot(r, pos)->seq,
				 memory_order_relaxed) != pos + 1)
		return -EINVAL;
	/* acquire: see the table the acquiring thread installed. */
	t = atomic_load_explicit(&q->zc, memory_order_acquire);
	if (!t)
		return -EINVAL;
	/* relaxed: written by this handle's acquire of pos (same caller). */
	v = atomic_load_explicit(zc_entry(q, t, r, pos), memory_order_relaxed);
	if (v == 0 || !((uint32_t)v & ZC_ACQ) ||
	    (v >> 40) != (zc_word(r, pos, 0, 0, 0) >> 40))
		return -EINVAL;
	(void)ring_len(r, pos, SIZE_MAX, &klen);
	shmq__meta_fill(q, r, pos, klen, meta);
	return 0;
}
