/* SPDX-License-Identifier: MIT */
/*
 * exchange.h - an exchange's two blocks in the segment (internal).
 *
 * An exchange is a directory entry of kind DIR_KIND_EXCHANGE (shm/layout.h)
 * with two blocks of the heap:
 *
 *   dir_entry.off   struct xchg_hdr (SEG_ALIGN bytes): identity, written
 *                   once before the entry goes LIVE, then the counters,
 *                   which publishers add to (relaxed) on their own line.
 *                   Never moved: a handle keeps a pointer to it for its
 *                   counters, and its open count keeps the block.
 *   dir_entry.aux   the binding table: struct xtab, then records
 *                   (struct xbind, 8-byte aligned, XBIND_SIZE bytes each)
 *                   up to xtab.used.  Written only under the control-plane
 *                   lock, and read only under it (a route cache rebuild,
 *                   the listings), so it needs no atomics.
 *
 * Crash consistency of the table.  A bind writes its record past `used`,
 * then stores `used` (one store): killed before, the record is invisible.
 * An unbind sets the record's `dead` (one store).  A table that must grow,
 * or holds too many dead records, is copied (live records only) into a new
 * block, which one store of dir_entry.aux puts in force; killed before it,
 * the old table stays in force and the new block is free again (the
 * allocator knows blocks only through the directory).
 *
 * A binding names its queue by directory index and creation number (gen):
 * when the queue is unlinked, or the entry reused, the binding no longer
 * names a LIVE queue of that gen and is ignored everywhere (and dropped at
 * the next copy).  So unlinking a queue removes its bindings without
 * touching any table.
 *
 * Untrusted.  Every walk checks each record against `used` and the block
 * (-EPROTO, never a read outside), copies the key length once, and is
 * bounded by used / sizeof(struct xbind) steps.
 */
#ifndef SHMQ_EXCHANGE_H
#define SHMQ_EXCHANGE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "topic.h"

#define XCHG_MAGIC 0x47484358514d4853ull   /* "SHMQXCHG" */
#define XTAB_MAGIC 0x42415458514d4853ull   /* "SHMQXTAB" */
#define XCHG_BLOCK SEG_ALIGN

struct xchg_hdr {
	/* Line 0: identity, written once at creation. */
	uint64_t magic;                 /* XCHG_MAGIC */
	uint32_t type;                  /* SHMQ_DIRECT, _FANOUT, _TOPIC */
	uint32_t flags;                 /* 0 */
	char alternate[SHMQ_NAME_MAX + 1];      /* "" for none */
	uint8_t pad0[RING_LINE - 80];

	/* Line 1: counters, relaxed adds by publishers (statistics). */
	_Atomic uint64_t published;     /* publishes that succeeded */
	_Atomic uint64_t routed;        /* deliveries */
	_Atomic uint64_t unroutable;    /* publishes nothing took */
	_Atomic uint64_t dropped;       /* refused or evicted at full queues */
	uint8_t pad1[RING_LINE - 32];
};

_Static_assert(sizeof(struct xchg_hdr) == 2 * RING_LINE, "exchange header");
_Static_assert(sizeof(struct xchg_hdr) <= XCHG_BLOCK, "fits its block");

struct xtab {
	uint64_t magic;                 /* XTAB_MAGIC */
	uint64_t used;                  /* record bytes after this header */
	uint8_t pad[48];
};

struct xbind {
	uint32_t qidx;                  /* the queue's directory index */
	uint32_t qgen;                  /* ... and its creation number */
	uint32_t klen;                  /* binding key bytes, <= SHMQ_KEY_MAX */
	uint32_t dead;                  /* 1: unbound */
	char key[];
};

_Static_assert(sizeof(struct xtab) == 64, "table header");
_Static_assert(sizeof(struct xbind) == 16, "record header");

#define XBIND_SIZE(klen) \
	((sizeof(struct xbind) + (uint64_t)(klen) + 7) & ~(uint64_t)7)

/* ---- walking a binding table (under the control-plane lock) ------------- */

struct xwalk {
	struct xtab *t;                 /* NULL: no table */
	uint64_t used;                  /* validated copy of t->used */
	uint64_t off;                   /* next record */
	int err;                        /* -EPROTO once a record is corrupt */
};

/* Start a walk over the table of exchange @xi (validated entry). */
static inline int xwalk_begin(const shmq_seg *seg, const struct shmq_qinfo *xi,
			      struct xwalk *w)
{
	w->t = NULL;
	w->used = w->off = 0;
	w->err = 0;
	if (!xi->aux_size)
		return 0;
	w->t = (struct xtab *)(seg->base + xi->aux_off);
	w->used = w->t->used;
	if (w->t->magic != XTAB_MAGIC || xi->aux_size < sizeof(struct xtab) ||
	    w->used > xi->aux_size - sizeof(struct xtab) || w->used % 8) {
		w->t = NULL;
		w->used = 0;
		return w->err = -EPROTO;
	}
	return 0;
}

/*
 * The next record and its key length (copied once, checked), or NULL at the
 * end or at a corrupt record (then w->err is -EPROTO).
 */
static inline struct xbind *xwalk_next(struct xwalk *w, uint32_t *klen)
{
	struct xbind *b;
	uint32_t k;

	if (!w->t || w->off >= w->used)
		return NULL;
	if (w->used - w->off < sizeof(struct xbind)) {
		w->err = -EPROTO;
		return NULL;
	}
	b = (struct xbind *)((unsigned char *)(w->t + 1) + w->off);
	k = b->klen;
	if (k > SHMQ_KEY_MAX || XBIND_SIZE(k) > w->used - w->off) {
		w->err = -EPROTO;
		return NULL;
	}
	w->off += XBIND_SIZE(k);
	*klen = k;
	return b;
}

/*
 * Does binding @b name a LIVE MPMC queue of its gen?  Fills @qi (validated)
 * when it does.
 */
static inline bool xbind_queue(const shmq_seg *seg, const struct xbind *b,
			       struct shmq_qinfo *qi)
{
	uint32_t idx = b->qidx;

	if (idx >= seg->max_queues ||
	    shmq__dir_validate_entry(seg, shmq__dir_entry(seg, idx), qi) ||
	    qi->kind != DIR_KIND_QUEUE || qi->state != DIR_LIVE ||
	    qi->gen != b->qgen || qi->capacity == 0 || (qi->flags & SHMQ_SPSC))
		return false;
	return true;
}

/*
 * What one walk has learnt of the directory's queues (under the lock):
 * st[idx] 0 unknown, 1 a LIVE MPMC queue of creation gen[idx], 2 not.  A
 * table of 100,000 bindings to a few queues validates each entry once.
 */
struct qmemo {
	uint8_t *st;            /* max_queues bytes, zeroed before a walk */
	uint32_t *gen;          /* max_queues */
};

static inline int qmemo_init(const shmq_seg *seg, struct qmemo *m)
{
	m->st = calloc(seg->max_queues, 1);
	m->gen = malloc(seg->max_queues * sizeof(*m->gen));
	if (m->st && m->gen)
		return 0;
	free(m->st);
	free(m->gen);
	m->st = NULL;
	m->gen = NULL;
	return -ENOMEM;
}

static inline void qmemo_free(struct qmemo *m)
{
	free(m->st);
	free(m->gen);
}

/* xbind_queue() with the memo; *@idx: the queue's index when true. */
static inline bool xbind_queue_memo(const shmq_seg *seg, struct qmemo *m,
				    const struct xbind *b, uint32_t *idx)
{
	uint32_t i = b->qidx;

	if (i >= seg->max_queues)
		return false;
	if (!m->st[i]) {
		struct shmq_qinfo qi;
		bool ok = !shmq__dir_validate_entry(seg,
				shmq__dir_entry(seg, i), &qi) &&
			  qi.kind == DIR_KIND_QUEUE && qi.state == DIR_LIVE &&
			  qi.capacity != 0 && !(qi.flags & SHMQ_SPSC);

		m->st[i] = ok ? 1 : 2;
		m->gen[i] = qi.gen;
	}
	*idx = i;
	return m->st[i] == 1 && m->gen[i] == b->qgen;
}

/* Does a binding of type @type with key @bk match routing key @rk? */
static inline bool xbind_match(uint32_t type, const char *bk, uint32_t blen,
			       const char *rk, uint32_t rlen)
{
	if (type == SHMQ_FANOUT)
		return true;
	if (type == SHMQ_TOPIC)
		return shmq__topic_match(bk, blen, rk, rlen);
	return blen == rlen && memcmp(bk, rk, rlen) == 0;
}

#endif /* SHMQ_EXCHANGE_H */
