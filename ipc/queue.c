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
	 * under the control-plane mutex, which orders these stores.
	 */
	for (i = 0; i < qi->capacity; i++)
		atomic_store_explicit(&((struct slot *)(slots +
				(uint64_t)i * qi->slot_size))->seq, i,
				memory_order_relaxed);
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
	if (a.flags)
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
	qi.slot_size = shmq__slot_size(a.msg_size);
	if (shmq__ring_bytes(qi.capacity, qi.slot_size) > seg->heap_size)
		return -ENOSPC;
	return shmq__dir_create(seg, name, &qi, shmq__ring_init);
}

static int64_t default_spin(void)
{
	const char *s = getenv("SHMQ_SPIN_NS");
	char *end;
	long long v;

	if (!s || !*s)
		return SHMQ_DEFAULT_SPIN_NS;
	v = strtoll(s, &end, 10);
	return *end || v < 0 ? SHMQ_DEFAULT_SPIN_NS : v;
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
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	rc = shmq__dir_open(seg, name, &qi);
	if (rc) {
		free(q);
		return rc;
	}
	shmq__seg_get(seg);
	q->seg = seg;
	q->idx = qi.idx;
	q->hdr = (struct ring_hdr *)(seg->base + qi.off);
	q->slots = seg->base + qi.off + SHMQ_RING_HDR_SIZE;
	q->capacity = qi.capacity;
	q->mask = qi.capacity - 1;
	q->msg_size = qi.msg_size;
	q->slot_size = qi.slot_size;
	atomic_init(&q->spin_ns, default_spin());
	atomic_init(&q->zc, NULL);
	*out = q;
	return 0;
}

void shmq_close(shmq *q)
{
	if (!q)
		return;
	shmq__dir_close(q->seg, q->idx);
	shmq__seg_put(q->seg);
	/* relaxed: closing races with no other use of the handle. */
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

int shmq_get_attr(const shmq *q, struct shmq_attr *attr)
{
	if (!q || !attr)
		return -EINVAL;
	attr->capacity = q->capacity;
	attr->msg_size = q->msg_size;
	attr->flags = 0;
	return 0;
}

/* ---- claims with waiting ------------------------------------------------- */

/* Claim up to n slots to write, waiting per the timeout.  -errno or n. */
static int claim_prod(shmq *q, unsigned n, uint64_t *pos, int64_t timeout_ns)
{
	struct deadline dl = { timeout_ns, 0 };
	bool counted = false;
	unsigned k;
	int rc = 0;

	for (;;) {
		k = ring_prod_claim(q, n, pos);
		if (k)
			return (int)k;
		if (timeout_ns == 0)
			return -EAGAIN;
		if (rc)
			return rc;      /* the last attempt after the deadline */
		if (!counted) {
			/* relaxed: a statistic. */
			atomic_fetch_add_explicit(&q->hdr->full_waits, 1,
						  memory_order_relaxed);
			counted = true;
		}
		rc = shmq__wait(q, &q->hdr->not_full, ring_can_send, &dl);
	}
}

/* Claim up to n messages to read, waiting per the timeout.  -errno or n. */
static int claim_cons(shmq *q, unsigned n, const struct iovec *bufs,
		      size_t buflen, uint64_t *pos, int64_t timeout_ns)
{
	struct deadline dl = { timeout_ns, 0 };
	bool counted = false, too_long;
	unsigned k;
	int rc = 0;

	for (;;) {
		k = ring_cons_claim(q, n, bufs, buflen, pos, &too_long);
		if (k)
			return (int)k;
		if (too_long)
			return -EMSGSIZE;
		if (timeout_ns == 0)
			return -EAGAIN;
		if (rc)
			return rc;
		if (!counted) {
			/* relaxed: a statistic. */
			atomic_fetch_add_explicit(&q->hdr->empty_waits, 1,
						  memory_order_relaxed);
			counted = true;
		}
		rc = shmq__wait(q, &q->hdr->not_empty, ring_can_recv, &dl);
	}
}

/* ---- copy in, copy out --------------------------------------------------- */

int shmq_send(shmq *q, const void *msg, size_t len, int64_t timeout_ns)
{
	uint64_t pos;
	int rc;

	if (!q || (!msg && len) || timeout_check(timeout_ns))
		return -EINVAL;
	if (len > q->msg_size)
		return -EMSGSIZE;
	rc = claim_prod(q, 1, &pos, timeout_ns);
	if (rc < 0)
		return rc;
	if (len)        /* msg may be NULL when len is 0 */
		memcpy(ring_slot(q, pos)->data, msg, len);
	ring_publish(q, pos, (uint32_t)len);
	shmq__notify(q, &q->hdr->not_empty, 1);
	return 0;
}

ssize_t shmq_recv(shmq *q, void *buf, size_t buflen, int64_t timeout_ns)
{
	uint64_t pos;
	uint32_t len;
	int rc;

	if (!q || (!buf && buflen) || timeout_check(timeout_ns))
		return -EINVAL;
	rc = claim_cons(q, 1, NULL, buflen, &pos, timeout_ns);
	if (rc < 0)
		return rc;
	len = ring_len(q, pos, buflen);
	if (len)        /* buf may be NULL when buflen is 0 */
		memcpy(buf, ring_slot(q, pos)->data, len);
	ring_free(q, pos);
	shmq__notify(q, &q->hdr->not_full, 1);
	return len;
}

int shmq_send_batch(shmq *q, const struct iovec *msgs, unsigned n,
		    int64_t timeout_ns)
{
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
	k = claim_prod(q, fit, &pos, timeout_ns);
	if (k < 0)
		return k;
	for (i = 0; i < (unsigned)k; i++)
		ring_prefetch_write(q, pos + i);
	for (i = 0; i < (unsigned)k; i++)
		if (msgs[i].iov_len)
			memcpy(ring_slot(q, pos + i)->data, msgs[i].iov_base,
			       msgs[i].iov_len);
	/*
	 * Publish the first slot last: consumers take positions in order, so
	 * none can start on the batch before all of it is visible, and the
	 * next claim takes it whole instead of racing our writes slot by slot.
	 */
	for (i = (unsigned)k; i-- > 0;)
		ring_publish(q, pos + i, (uint32_t)msgs[i].iov_len);
	shmq__notify(q, &q->hdr->not_empty, (unsigned)k);
	return k;
}

int shmq_recv_batch(shmq *q, struct iovec *bufs, unsigned n,
		    int64_t timeout_ns)
{
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
	k = claim_cons(q, n, bufs, 0, &pos, timeout_ns);
	if (k < 0)
		return k;
	for (i = 0; i < (unsigned)k; i++) {
		uint32_t len = ring_len(q, pos + i, bufs[i].iov_len);

		if (len)
			memcpy(bufs[i].iov_base, ring_slot(q, pos + i)->data,
			       len);
		bufs[i].iov_len = len;
	}
	for (i = 0; i < (unsigned)k; i++)
		ring_free(q, pos + i);
	shmq__notify(q, &q->hdr->not_full, (unsigned)k);
	return k;
}

/* ---- zero-copy ------------------------------------------------------------- */

/*
 * The table of this handle's outstanding zero-copy operations, one word per
 * slot index.  At most one operation per index can be outstanding: a slot
 * reserved for position p cannot be acquired (that needs p published), and
 * one acquired for p cannot be reserved again (that needs it freed).
 */
static _Atomic uint32_t *zc_table(shmq *q)
{
	/* acquire: pairs with the release CAS below; the table is zeroed. */
	_Atomic uint32_t *t = atomic_load_explicit(&q->zc,
						   memory_order_acquire);
	_Atomic uint32_t *fresh = NULL;

	if (t)
		return t;
	fresh = calloc(q->capacity, sizeof(*fresh));
	if (!fresh)
		return NULL;
	/* release: publishes the zeroed table to other threads of q. */
	if (atomic_compare_exchange_strong_explicit(&q->zc, &t, fresh,
			memory_order_release, memory_order_acquire))
		return fresh;
	free(fresh);            /* another thread installed one first */
	return t;
}

/* Forget token's entry if it holds @want; -EINVAL when it does not. */
static int zc_take(shmq *q, uint64_t token, uint32_t want_acq, uint32_t *len)
{
	/* acquire: see the table the reserving thread installed. */
	_Atomic uint32_t *t = atomic_load_explicit(&q->zc,
						   memory_order_acquire);
	_Atomic uint32_t *e;
	uint32_t v;

	if (!t)
		return -EINVAL;
	e = &t[token & q->mask];
	/* relaxed: the CAS below decides; ordering comes from the caller. */
	v = atomic_load_explicit(e, memory_order_relaxed);
	if (v == 0 || (v & ZC_ACQ) != want_acq)
		return -EINVAL;
	if (len && (uint64_t)*len + 1 > (v & ~ZC_ACQ))
		return -EINVAL;
	/* relaxed: one thread wins a double commit; the loser gets -EINVAL. */
	if (!atomic_compare_exchange_strong_explicit(e, &v, 0,
			memory_order_relaxed, memory_order_relaxed))
		return -EINVAL;
	return 0;
}

int shmq_reserve(shmq *q, size_t len, struct shmq_msg *m, int64_t timeout_ns)
{
	_Atomic uint32_t *t;
	uint64_t pos;
	int rc;

	if (!q || !m || timeout_check(timeout_ns))
		return -EINVAL;
	if (len > q->msg_size)
		return -EMSGSIZE;
	t = zc_table(q);
	if (!t)
		return -ENOMEM;
	rc = claim_prod(q, 1, &pos, timeout_ns);
	if (rc < 0)
		return rc;
	/* relaxed: read back by commit via this handle; see zc_take(). */
	atomic_store_explicit(&t[pos & q->mask], (uint32_t)len + 1,
			      memory_order_relaxed);
	m->data = ring_slot(q, pos)->data;
	m->len = len;
	m->token = pos;
	return 0;
}

int shmq_commit(shmq *q, struct shmq_msg *m)
{
	uint32_t len;

	if (!q || !m || m->len > q->msg_size)
		return -EINVAL;
	/* The slot must still be claimed-unpublished for exactly this token. */
	/* relaxed: only our own claim could have set this value. */
	if (atomic_load_explicit(&ring_slot(q, m->token)->seq,
				 memory_order_relaxed) != m->token)
		return -EINVAL;
	len = (uint32_t)m->len;
	if (zc_take(q, m->token, 0, &len))
		return -EINVAL;
	ring_publish(q, m->token, len);
	shmq__notify(q, &q->hdr->not_empty, 1);
	return 0;
}

int shmq_acquire(shmq *q, struct shmq_msg *m, int64_t timeout_ns)
{
	_Atomic uint32_t *t;
	uint64_t pos;
	uint32_t len;
	int rc;

	if (!q || !m || timeout_check(timeout_ns))
		return -EINVAL;
	t = zc_table(q);
	if (!t)
		return -ENOMEM;
	rc = claim_cons(q, 1, NULL, SIZE_MAX, &pos, timeout_ns);
	if (rc < 0)
		return rc;
	len = ring_len(q, pos, SIZE_MAX);
	/* relaxed: read back by release via this handle; see zc_take(). */
	atomic_store_explicit(&t[pos & q->mask], ZC_ACQ | (len + 1),
			      memory_order_relaxed);
	m->data = ring_slot(q, pos)->data;
	m->len = len;
	m->token = pos;
	return 0;
}

int shmq_release(shmq *q, struct shmq_msg *m)
{
	if (!q || !m)
		return -EINVAL;
	/* relaxed: only our own claim keeps this value (published for token). */
	if (atomic_load_explicit(&ring_slot(q, m->token)->seq,
				 memory_order_relaxed) != m->token + 1)
		return -EINVAL;
	if (zc_take(q, m->token, ZC_ACQ, NULL))
		return -EINVAL;
	ring_free(q, m->token);
	shmq__notify(q, &q->hdr->not_full, 1);
	return 0;
}
