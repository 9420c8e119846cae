/* SPDX-License-Identifier: MIT */
/*
 * exchange.c - exchanges' control plane: create, unlink, bind, unbind, and
 * the listings mqctl shows.  Everything here runs under the control-plane
 * lock and ends with shmq__dir_changed() when it changed anything, which
 * is what tells every process's route cache (publish.c) to look again.
 * The blocks' format and the rules of writing them are in exchange.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exchange.h"

/* ---- create, unlink ------------------------------------------------------- */

static _Thread_local const struct shmq_xattr *init_attr;

static void xchg_init(void *block, const struct shmq_qinfo *qi)
{
	struct xchg_hdr *h = block;

	h->magic = XCHG_MAGIC;
	h->type = qi->slot_size;
	h->flags = 0;
	if (init_attr->alternate)
		strcpy(h->alternate, init_attr->alternate);
}

int shmq_exchange_create(shmq_seg *seg, const char *name,
			 const struct shmq_xattr *attr)
{
	struct shmq_xattr a = { SHMQ_DIRECT, 0, NULL };
	struct shmq_qinfo qi = { 0 };
	int rc;

	if (!seg)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	if (attr)
		a = *attr;
	if (!a.type)
		a.type = SHMQ_DIRECT;
	if (a.type > SHMQ_TOPIC || a.flags)
		return -EINVAL;
	if (a.alternate && shmq__name_check(a.alternate))
		return -EINVAL;
	qi.kind = DIR_KIND_EXCHANGE;
	qi.size = XCHG_BLOCK;
	qi.slot_size = a.type;
	init_attr = &a;
	rc = shmq__dir_create(seg, name, &qi, xchg_init);
	init_attr = NULL;
	return rc;
}

int shmq_exchange_unlink(shmq_seg *seg, const char *name)
{
	int rc;

	if (!seg)
		return -EINVAL;
	rc = shmq__name_check(name);
	/* Its table goes with its entry: both blocks are the entry's. */
	return rc ? rc : shmq__dir_unlink(seg, name, DIR_KIND_EXCHANGE);
}

/* ---- bind, unbind ----------------------------------------------------------- */

static int key_check(const char *key, uint32_t *klen)
{
	size_t n;

	if (!key)
		return -EINVAL;
	n = strnlen(key, SHMQ_KEY_MAX + 1);
	if (n > SHMQ_KEY_MAX)
		return -EINVAL;
	*klen = (uint32_t)n;
	return 0;
}

/* Look up the exchange and the queue of a binding.  Under the lock. */
static int bind_lookup(shmq_seg *seg, const char *exchange, const char *queue,
		       struct shmq_qinfo *xi, struct shmq_qinfo *qi)
{
	int rc = shmq__dir_lookup(seg, exchange, DIR_KIND_EXCHANGE, xi);

	if (rc < 0)
		return rc;
	rc = shmq__dir_lookup(seg, queue, DIR_KIND_QUEUE, qi);
	if (rc < 0)
		return rc;
	return (qi->flags & SHMQ_SPSC) ? -EINVAL : 0;
}

static int names_check(const char *exchange, const char *queue)
{
	int rc = shmq__name_check(exchange);

	return rc ? rc : shmq__name_check(queue);
}

/*
 * Copy the live bindings of @xi's table (those naming a live queue) into a
 * new block with room for @extra more bytes, and put it in force.
 * *@t, *@used: the new table.
 */
static int tab_copy(shmq_seg *seg, const struct shmq_qinfo *xi,
		    uint64_t extra, struct xtab **t, uint64_t *used)
{
	uint64_t live = 0, want, size, off;
	struct qmemo memo;
	struct xwalk w;
	struct xbind *b;
	struct xtab *nt;
	uint32_t klen, qidx;
	int rc;

	rc = qmemo_init(seg, &memo);
	if (rc)
		return rc;
	xwalk_begin(seg, xi, &w);
	while ((b = xwalk_next(&w, &klen)))
		if (!b->dead && xbind_queue_memo(seg, &memo, b, &qidx))
			live += XBIND_SIZE(klen);
	/* Twice what is needed: a table that grows doubles. */
	want = sizeof(struct xtab) + 2 * (live + extra);
	size = (want + SEG_ALIGN - 1) & ~(uint64_t)(SEG_ALIGN - 1);
	rc = size > SHMQ_AUX_MAX ? -ENOSPC : shmq__alloc(seg, size, &off);
	if (rc)
		goto out;
	nt = (struct xtab *)(seg->base + off);
	memset(nt, 0, sizeof(*nt));
	nt->magic = XTAB_MAGIC;
	*used = 0;
	xwalk_begin(seg, xi, &w);
	while ((b = xwalk_next(&w, &klen))) {
		if (b->dead || !xbind_queue_memo(seg, &memo, b, &qidx))
			continue;
		if (*used + XBIND_SIZE(klen) > size - sizeof(*nt) - extra)
			break;          /* changed under us (hostile): stop */
		memcpy((unsigned char *)(nt + 1) + *used, b, XBIND_SIZE(klen));
		((struct xbind *)((unsigned char *)(nt + 1) + *used))->klen =
			klen;
		*used += XBIND_SIZE(klen);
	}
	nt->used = *used;
	shmq__dir_set_aux(seg, xi->idx, off, size);
	*t = nt;
out:
	qmemo_free(&memo);
	return rc;
}

/* A bind's or unbind's view of its binding, under the lock. */
struct bctx {
	struct shmq_qinfo xi, qi;       /* the exchange, the queue */
	struct xwalk w;                 /* walked to the end, or to found */
	uint32_t klen;
	struct xbind *found;            /* the live record, or NULL */
};

/*
 * Check the arguments, take the lock, look up both names and the binding.
 * 0 with the lock held, or -errno without it.  Idempotence costs one pass
 * comparing (queue, key), a few instructions per record: 100,000 binds
 * one by one still cost 5e9 of them.
 */
static int binding_find(shmq_seg *seg, const char *exchange,
			const char *queue, const char *key, struct bctx *c)
{
	struct xbind *b;
	uint32_t k;
	int rc;

	if (!seg)
		return -EINVAL;
	rc = names_check(exchange, queue);
	if (!rc)
		rc = key_check(key, &c->klen);
	if (!rc)
		rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	c->found = NULL;
	rc = bind_lookup(seg, exchange, queue, &c->xi, &c->qi);
	if (!rc)
		rc = xwalk_begin(seg, &c->xi, &c->w);
	while (!rc && (b = xwalk_next(&c->w, &k)))
		if (b->qidx == c->qi.idx && b->qgen == c->qi.gen &&
		    k == c->klen && !b->dead &&
		    memcmp(b->key, key, c->klen) == 0) {
			c->found = b;
			break;
		}
	if (!rc)
		rc = c->w.err;
	if (rc)
		shmq__seg_unlock(seg);
	return rc;
}

int shmq_bind(shmq_seg *seg, const char *exchange, const char *queue,
	      const char *key)
{
	uint64_t need, used;
	struct xbind *nb;
	struct xtab *t;
	struct bctx c;
	int rc = binding_find(seg, exchange, queue, key, &c);

	if (rc)
		return rc;
	if (c.found)
		goto out;               /* idempotent: rc is 0 */
	need = XBIND_SIZE(c.klen);
	t = c.w.t;
	used = c.w.used;
	if (!t || used + need > c.xi.aux_size - sizeof(struct xtab)) {
		/* Full (or none yet): a new table, dead records left out. */
		rc = tab_copy(seg, &c.xi, need, &t, &used);
		if (rc)
			goto out;
	}
	nb = (struct xbind *)((unsigned char *)(t + 1) + used);
	nb->qidx = c.qi.idx;
	nb->qgen = c.qi.gen;
	nb->klen = c.klen;
	nb->dead = 0;
	memcpy(nb->key, key, c.klen);
	/* The record is complete before it counts (exchange.h). */
	t->used = used + need;
	shmq__dir_changed(seg);
out:
	shmq__seg_unlock(seg);
	return rc;
}

int shmq_unbind(shmq_seg *seg, const char *exchange, const char *queue,
		const char *key)
{
	struct bctx c;
	int rc = binding_find(seg, exchange, queue, key, &c);

	if (rc)
		return rc;
	if (c.found) {
		c.found->dead = 1;      /* one store (exchange.h) */
		shmq__dir_changed(seg);
	}
	shmq__seg_unlock(seg);
	return c.found ? 0 : -ENOENT;
}

/* ---- listings ---------------------------------------------------------------- */

/* Fill @o; -EPROTO when the binding table is corrupt. */
static int xinfo_fill(shmq_seg *seg, const struct shmq_qinfo *xi,
		      struct shmq_exchange_info *o)
{
	const struct dir_entry *e = shmq__dir_entry(seg, xi->idx);
	const struct xchg_hdr *h = (const struct xchg_hdr *)(seg->base +
							     xi->off);
	struct xbind *b;
	struct xwalk w;
	uint32_t k;

	memset(o, 0, sizeof(*o));
	memcpy(o->name, e->name, sizeof(o->name));
	o->name[sizeof(o->name) - 1] = 0;
	o->state = xi->state == DIR_LIVE ? SHMQ_QUEUE_LIVE :
		   SHMQ_QUEUE_UNLINKED;
	o->index = xi->idx;
	o->type = xi->slot_size;
	o->handles = shmq__dir_opens(seg, xi->idx);
	o->create_time_ns = e->create_time_ns;
	/* relaxed, all: statistics, each exact on its own. */
	o->published = atomic_load_explicit(&h->published,
					    memory_order_relaxed);
	o->routed = atomic_load_explicit(&h->routed, memory_order_relaxed);
	o->unroutable = atomic_load_explicit(&h->unroutable,
					     memory_order_relaxed);
	o->dropped = atomic_load_explicit(&h->dropped, memory_order_relaxed);
	memcpy(o->alternate, h->alternate, sizeof(o->alternate));
	o->alternate[sizeof(o->alternate) - 1] = 0;
	if (shmq__name_check(o->alternate))
		o->alternate[0] = 0;    /* untrusted: show nothing odd */
	xwalk_begin(seg, xi, &w);
	while ((b = xwalk_next(&w, &k))) {
		struct shmq_qinfo qi;

		if (!b->dead && xbind_queue(seg, b, &qi))
			o->bindings++;
	}
	return w.err;
}

/* A validated exchange entry with a sane header block. */
static int xentry(shmq_seg *seg, uint32_t i, struct shmq_qinfo *xi)
{
	const struct dir_entry *e = shmq__dir_entry(seg, i);
	int rc;

	if (e->state == DIR_FREE)
		return 1;
	rc = shmq__dir_validate_entry(seg, e, xi);
	if (rc)
		return rc;
	if (xi->kind != DIR_KIND_EXCHANGE)
		return 1;
	if (((const struct xchg_hdr *)(seg->base + xi->off))->magic !=
	    XCHG_MAGIC)
		return -EPROTO;
	return 0;
}

int shmq_exchange_list(shmq_seg *seg, struct shmq_exchange_info *out,
		       unsigned n)
{
	struct shmq_qinfo xi;
	unsigned count = 0;
	uint32_t i;
	int rc;

	if (!seg || (!out && n))
		return -EINVAL;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	for (i = 0; i < seg->max_queues; i++) {
		rc = xentry(seg, i, &xi);
		if (rc < 0)
			break;
		if (rc > 0) {
			rc = 0;
			continue;
		}
		if (count < n && (rc = xinfo_fill(seg, &xi, &out[count])))
			break;
		count++;
	}
	shmq__seg_unlock(seg);
	return rc < 0 ? rc : (int)count;
}

int shmq_exchange_stat(shmq_seg *seg, const char *name,
		       struct shmq_exchange_info *out)
{
	struct shmq_qinfo xi;
	int idx, rc;

	if (!seg || !out)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	idx = shmq__dir_lookup(seg, name, DIR_KIND_EXCHANGE, &xi);
	if (idx >= 0) {
		rc = xentry(seg, (uint32_t)idx, &xi);
		if (rc == 0)
			rc = xinfo_fill(seg, &xi, out);
	} else {
		rc = idx;
	}
	shmq__seg_unlock(seg);
	return rc;
}

/* Add exchange @xi's live bindings to @out[*count...]. */
static int bindings_of(shmq_seg *seg, const struct shmq_qinfo *xi,
		       struct shmq_binding_info *out, unsigned n,
		       unsigned *count)
{
	const struct dir_entry *e = shmq__dir_entry(seg, xi->idx);
	struct xbind *b;
	struct xwalk w;
	uint32_t k;

	xwalk_begin(seg, xi, &w);
	while ((b = xwalk_next(&w, &k))) {
		struct shmq_qinfo qi;
		struct shmq_binding_info *o;

		if (b->dead || !xbind_queue(seg, b, &qi))
			continue;
		if (*count < n) {
			o = &out[*count];
			memset(o, 0, sizeof(*o));
			memcpy(o->exchange, e->name, sizeof(o->exchange));
			o->exchange[sizeof(o->exchange) - 1] = 0;
			memcpy(o->queue, shmq__dir_entry(seg, qi.idx)->name,
			       sizeof(o->queue));
			o->queue[sizeof(o->queue) - 1] = 0;
			o->key_len = k;
			memcpy(o->key, b->key, k);
			o->key[k] = 0;
		}
		(*count)++;
	}
	return w.err;
}

int shmq_binding_list(shmq_seg *seg, const char *exchange,
		      struct shmq_binding_info *out, unsigned n)
{
	struct shmq_qinfo xi;
	unsigned count = 0;
	uint32_t i;
	int rc;

	if (!seg || (!out && n))
		return -EINVAL;
	if (exchange) {
		rc = shmq__name_check(exchange);
		if (rc)
			return rc;
	}
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	if (exchange) {
		int idx = shmq__dir_lookup(seg, exchange, DIR_KIND_EXCHANGE,
					   &xi);

		rc = idx < 0 ? idx : bindings_of(seg, &xi, out, n, &count);
	} else {
		for (i = 0; i < seg->max_queues && rc == 0; i++) {
			rc = xentry(seg, i, &xi);
			if (rc > 0) {
				rc = 0;
				continue;
			}
			if (rc == 0)
				rc = bindings_of(seg, &xi, out, n, &count);
		}
	}
	shmq__seg_unlock(seg);
	return rc < 0 ? rc : (int)count;
}
