/* SPDX-License-Identifier: MIT */
/*
 * publish.c - exchange handles, their route caches, and shmq_publish().
 *
 * Routing.  Which queues get a message published with key K depends on
 * the bindings, which live in the segment and change under the control-
 * plane lock (exchange.c); walking them for every message would cost a
 * lock and a scan.  So each handle keeps a route cache: an rculfhash
 * (liburcu, memb flavor) from K to a route, the array of queue handles K
 * reached when the route was built, tagged with the segment's dir_gen at
 * that time.  Every directory or binding change, in any process, bumps
 * dir_gen (seq_cst, before the change's call returns).  A publish loads
 * dir_gen first and uses a cached route only if its tag is equal: so a
 * publish that starts after a bind/unbind returned routes by it, and a
 * cached publish costs one load of a rarely written line, one hash probe
 * and a reference count, whatever the number of bindings.
 *
 * A miss (or a stale route) rebuilds the route under the lock: reap dead
 * attachments (a dead subscriber's SHMQ_AUTODELETE queue goes now), walk
 * the exchange's bindings (then its alternate's, each exchange once, when
 * nothing matched), and open a library handle (a pin, not an open: it
 * does not keep an auto-delete queue) to each queue.  Stale routes of the
 * handle are dropped in the same pass, so that pins of queues that are
 * gone do not linger.
 *
 * Reclamation.  Readers find a route under rcu_read_lock() and take a
 * reference before leaving the read-side section; they may then block in
 * the publish (a full queue) without holding up anyone.  A rebuild
 * replaces or deletes stale routes in the table, waits for a grace period
 * (synchronize_rcu: every reader that could have found them has taken its
 * reference or gone), and drops the table's reference; the last reference
 * frees the route and unpins its queues.  In a child of fork(), liburcu's
 * registry may name parent threads that were inside a read-side section
 * when the parent forked and will never leave it (liburcu requires
 * registrations to be released before fork, which a library cannot
 * impose); there synchronize_rcu() could wait for ever, so the child
 * retires stale routes to a list freed when the handle closes (when no
 * publish runs through it) instead.
 *
 * All or nothing.  A publish first makes sure every matching queue of the
 * default (blocking) overflow policy has room (nothing claimed: a full
 * queue is waited for holding nothing), then claims one slot in each, in
 * route order, each claim named by its own operation record (ring.h) so
 * that crash recovery knows a live claim from a dead one.  A claim that
 * fails (room taken since the check) makes the publish abandon the claims
 * it holds: each becomes a tombstone, which consumers skip, and the
 * publish waits for room again.  Only when it holds a slot in every
 * blocking queue does it write and publish them; then it serves the
 * SHMQ_DROP_NEWEST / _OLDEST queues one at a time (never waiting).  So an
 * error return means no queue got the message, and a publisher killed
 * midway leaves each queue with the whole message (published) or without
 * it (a claim that recovery turns into a tombstone), never torn.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "claim.h"
#include "exchange.h"

/* A library handle to one queue (a pin), shared by the routes naming it. */
struct xq {
	shmq *q;
	uint32_t idx, gen;
	long routes;            /* routes naming it; under x->mu */
	struct xq *next;
};

struct route {
	struct cds_lfht_node node;
	/* The table's reference (until removed) + publishers using it. */
	_Atomic long refs;
	_Atomic int ready;      /* 1 once built (see route_match) */
	struct route *retired;  /* fork child: the handle's retired list */
	uint32_t gen;           /* dir_gen it was built at */
	uint32_t n;             /* queues */
	uint32_t nblock;        /* of which default policy: the first ones */
	uint32_t min_msg;       /* smallest msg_size among them */
	uint32_t klen;
	char key[SHMQ_KEY_MAX + 1];
	struct xq *qs[];
};

/*
 * A route build's scratch, the handle's (allocated at open, used under
 * x->mu): seen[] max_queues bytes (1 a queue taken, 2 an exchange
 * walked), the queue memo, qs[] max_queues copies, the first n the route.
 */
struct match_set {
	uint8_t *seen;
	struct qmemo memo;
	struct shmq_qinfo *qs;
	uint32_t n;
};

struct shmq_exchange {
	shmq_seg *seg;
	struct xchg_hdr *hdr;   /* counters (its block stays: we count an open) */
	uint32_t idx, gen;
	struct cds_lfht *ht;
	/*
	 * The route built last, checked before the hash table: a publisher
	 * that uses one key (the common case) pays a key comparison instead
	 * of a hash and a lookup.  Written by rebuilds (x->mu); read under
	 * rcu_read_lock(), like the table.
	 */
	_Atomic(struct route *) last;
	pthread_mutex_t mu;     /* rebuilds; xqs; retired; scratch */
	struct xq *xqs;
	struct route *retired;
	struct match_set scratch;
	_Atomic unsigned long tsan_gp; /* ThreadSanitizer builds only */
};

/*
 * ThreadSanitizer does not see liburcu's grace periods (liburcu is not
 * instrumented, and its readers publish their state with plain stores
 * and fences), so a route freed after synchronize_rcu() looks to it as if
 * freed under a reader that looked at it in route_match().  For TSan
 * builds only, an edge it does see: each reader makes a release RMW on
 * the handle's tsan_gp before it leaves its read-side section, and a
 * reclaimer acquires tsan_gp after synchronize_rcu().  That returned only
 * after every reader that could see the retired routes left its section,
 * so their RMWs precede our load in tsan_gp's modification order: being
 * RMWs, they continue one release sequence, and the acquire synchronizes
 * with each.  Other builds pay nothing.
 */
#if defined(__SANITIZE_THREAD__)
#define SHMQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMQ_TSAN 1
#endif
#endif

static inline void tsan_reader_leaves(shmq_exchange *x)
{
#ifdef SHMQ_TSAN
	/* release: see above; pairs with tsan_grace_period_over(). */
	atomic_fetch_add_explicit(&x->tsan_gp, 1, memory_order_release);
#else
	(void)x;
#endif
}

static inline void tsan_grace_period_over(shmq_exchange *x)
{
#ifdef SHMQ_TSAN
	/* acquire: pairs with every tsan_reader_leaves() before it. */
	(void)atomic_load_explicit(&x->tsan_gp, memory_order_acquire);
#else
	(void)x;
#endif
}

/* ---- RCU reader registration -------------------------------------------- */

/*
 * memb-flavor readers must be registered threads.  A thread registers at
 * its first publish and unregisters when it exits (a key destructor).
 *
 * fork().  liburcu wants every reader registration released before a
 * fork(): the child inherits the registry, and a parent thread that was
 * inside a read-side section at the fork stays in it for ever there, so
 * synchronize_rcu() in the child would never return.  A library cannot
 * impose that on its caller, so it finds out instead: each of our reader
 * threads is on our own list with a flag, set before it enters a section
 * and cleared after it leaves; the atfork child handler (our list's mutex
 * is held across the fork) looks at the other threads' flags.  Set: some
 * thread was inside, so this child never waits for a grace period and
 * retires stale routes to a list freed at shmq_exchange_close() (their
 * pins, hence unlinked queues' storage, stay until then: documented).
 * Clear: liburcu's state for those threads says "not inside" too, as the
 * flag is stored before its read lock's store and after its unlock's
 * (release), and the child waits for grace periods as any process.
 */
struct reader {
	_Atomic int inside;             /* in a read-side section of ours */
	struct reader *prev, *next;
};

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t readers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reader *readers;          /* under readers_mu */
/* Set in a child of fork() when a reader of the parent was inside. */
static _Atomic int fork_ghosts;
/* initial-exec: no __tls_get_addr call on each publish from libshmq.so. */
static _Thread_local bool rcu_registered
	__attribute__((tls_model("initial-exec")));
static _Thread_local struct reader me
	__attribute__((tls_model("initial-exec")));

static void readers_prepare(void)
{
	pthread_mutex_lock(&readers_mu);
}

static void readers_parent(void)
{
	pthread_mutex_unlock(&readers_mu);
}

static void readers_child(void)
{
	struct reader *r;

	for (r = readers; r; r = r->next)
		/* relaxed: the parent's last store, copied by fork(). */
		if (r != &me && atomic_load_explicit(&r->inside,
						     memory_order_relaxed))
			atomic_store_explicit(&fork_ghosts, 1,
					      memory_order_relaxed);
	/* The other threads do not exist here: only we stay listed. */
	readers = rcu_registered ? &me : NULL;
	me.prev = me.next = NULL;
	/* Locked by readers_prepare() in the thread that forked: this one. */
	pthread_mutex_unlock(&readers_mu);
}

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&readers_mu);
	if (me.prev)
		me.prev->next = me.next;
	else if (readers == &me)
		readers = me.next;
	if (me.next)
		me.next->prev = me.prev;
	pthread_mutex_unlock(&readers_mu);
	urcu_memb_unregister_thread();
}

static void rcu_key_init(void)
{
	pthread_key_create(&rcu_key, rcu_thread_exit);
	pthread_atfork(readers_prepare, readers_parent, readers_child);
}

static void __attribute__((noinline)) rcu_register_slow(void)
{
	pthread_once(&rcu_once, rcu_key_init);
	urcu_memb_register_thread();
	pthread_mutex_lock(&readers_mu);
	me.prev = NULL;
	me.next = readers;
	if (readers)
		readers->prev = &me;
	readers = &me;
	pthread_mutex_unlock(&readers_mu);
	pthread_setspecific(rcu_key, (void *)1);
	rcu_registered = true;
}

static inline void rcu_register(void)
{
	if (__builtin_expect(!rcu_registered, 0))
		rcu_register_slow();
}

/* Enter a read-side section (registered threads only). */
static inline void reader_lock(void)
{
	/* relaxed + release fence: stored before the read lock's store. */
	atomic_store_explicit(&me.inside, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	urcu_memb_read_lock();
}

/* Leave it; a rebuild or close (not a publisher) needs no TSan edge. */
static inline void reader_leave(void)
{
	urcu_memb_read_unlock();
	/* release: stored after the unlock's store. */
	atomic_store_explicit(&me.inside, 0, memory_order_release);
}

/* ---- hashing ----------------------------------------------------------------- */

static unsigned long key_hash(const char *key, uint32_t klen)
{
	uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a, 64 bits */
	uint32_t i;

	for (i = 0; i < klen; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
	return (unsigned long)(h ^ (h >> 29));
}

struct key_ref {
	const char *key;
	uint32_t klen;
};

static int route_match(struct cds_lfht_node *node, const void *arg)
{
	struct route *r = caa_container_of(node, struct route, node);
	const struct key_ref *k = arg;

	/*
	 * acquire: pairs with the builder's release store of ready
	 * (route_build): the route's fields and its queues' handles are
	 * visible.  liburcu's rcu_assign_pointer orders them too, but
	 * ThreadSanitizer cannot see into liburcu; this pair it sees.  Every
	 * publisher reads a route first here.
	 */
	return atomic_load_explicit(&r->ready, memory_order_acquire) &&
	       r->klen == k->klen && memcmp(r->key, k->key, k->klen) == 0;
}

/* ---- open, close -------------------------------------------------------------- */

static void scratch_free(shmq_exchange *x)
{
	free(x->scratch.seen);
	free(x->scratch.qs);
	qmemo_free(&x->scratch.memo);
}

int shmq_exchange_open(shmq_seg *seg, const char *name, shmq_exchange **out)
{
	struct shmq_qinfo xi;
	shmq_exchange *x;
	int rc;

	if (!seg || !out)
		return -EINVAL;
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	/*
	 * No CDS_LFHT_AUTO_RESIZE: that would start a worker thread behind
	 * the caller's back.  1024 buckets: a chain stays short up to some
	 * thousands of distinct keys per handle.
	 */
	x->ht = cds_lfht_new_flavor(1024, 1024, 0, 0, &urcu_memb_flavor, NULL);
	if (!x->ht) {
		free(x);
		return -ENOMEM;
	}
	x->scratch.seen = calloc(seg->max_queues, 1);
	x->scratch.qs = malloc(seg->max_queues * sizeof(*x->scratch.qs));
	rc = qmemo_init(seg, &x->scratch.memo);
	if (!rc && (!x->scratch.seen || !x->scratch.qs))
		rc = -ENOMEM;
	if (!rc)
		rc = shmq__dir_open(seg, name, DIR_KIND_EXCHANGE, &xi);
	if (rc) {
		scratch_free(x);
		cds_lfht_destroy(x->ht, NULL);
		free(x);
		return rc;
	}
	if (((struct xchg_hdr *)(seg->base + xi.off))->magic != XCHG_MAGIC) {
		shmq__dir_close(seg, xi.idx);
		scratch_free(x);
		cds_lfht_destroy(x->ht, NULL);
		free(x);
		return -EPROTO;
	}
	shmq__seg_get(seg);
	x->seg = seg;
	x->hdr = (struct xchg_hdr *)(seg->base + xi.off);
	x->idx = xi.idx;
	x->gen = xi.gen;
	pthread_mutex_init(&x->mu, NULL);
	*out = x;
	return 0;
}

/* Under x->mu: a route no longer references its queues. */
static void route_free_locked(shmq_exchange *x, struct route *r)
{
	uint32_t i;

	for (i = 0; i < r->n; i++) {
		struct xq *xq = r->qs[i], **pp;

		if (--xq->routes)
			continue;
		for (pp = &x->xqs; *pp && *pp != xq; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = xq->next;
		shmq__queue_free(xq->q);
		shmq__dir_unpin(x->seg, xq->idx);
		free(xq);
	}
	free(r);
}

static void route_put(shmq_exchange *x, struct route *r)
{
	/*
	 * acq_rel: the usual reference count; the last dropper sees every
	 * other holder's use of the route before freeing it.
	 */
	if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&x->mu);
	route_free_locked(x, r);
	pthread_mutex_unlock(&x->mu);
}

/*
 * The tables are walked node by node: cds_lfht_for_each_entry() computes
 * container_of(NULL) when it ends, which UBSan (clang, pointer-overflow)
 * reports as an offset applied to a null pointer.
 */
void shmq_exchange_close(shmq_exchange *x)
{
	struct cds_lfht_node *n;
	struct cds_lfht_iter it;
	struct route *r, *next;

	if (!x)
		return;
	/* No publish runs through @x now (the contract): no grace period. */
	pthread_mutex_lock(&x->mu);
	rcu_register();
	reader_lock();
	for (cds_lfht_first(x->ht, &it); (n = cds_lfht_iter_get_node(&it));
	     cds_lfht_next(x->ht, &it)) {
		r = caa_container_of(n, struct route, node);
		cds_lfht_del(x->ht, &r->node);
		route_free_locked(x, r);
	}
	reader_leave();
	for (r = x->retired; r; r = next) {
		next = r->retired;
		route_free_locked(x, r);
	}
	pthread_mutex_unlock(&x->mu);
	cds_lfht_destroy(x->ht, NULL);
	shmq__dir_close(x->seg, x->idx);
	shmq__seg_put(x->seg);
	pthread_mutex_destroy(&x->mu);
	scratch_free(x);
	free(x);
}

/* ---- building a route (a cache miss) ------------------------------------------ */

/* Under x->mu: the library handle to queue @qi, made if need be. */
static struct xq *xq_get(shmq_exchange *x, const struct shmq_qinfo *qi)
{
	struct xq *xq;

	for (xq = x->xqs; xq; xq = xq->next)
		if (xq->idx == qi->idx && xq->gen == qi->gen)
			return xq;
	xq = calloc(1, sizeof(*xq));
	if (!xq)
		return NULL;
	if (shmq__dir_pin_locked(x->seg, qi->idx)) {
		free(xq);
		return NULL;
	}
	if (shmq__queue_new(x->seg, qi, &xq->q)) {
		shmq__proc_pins(x->seg, (uint32_t)x->seg->proc_idx)[qi->idx]--;
		free(xq);
		return NULL;
	}
	xq->idx = qi->idx;
	xq->gen = qi->gen;
	xq->next = x->xqs;
	x->xqs = xq;
	return xq;
}


/* Under the lock: the queues of exchange @xi whose bindings match. */
static int match_exchange(shmq_seg *seg, const struct shmq_qinfo *xi,
			  const char *key, uint32_t klen, struct match_set *m)
{
	uint32_t type = xi->slot_size, k;
	struct xbind *b;
	struct xwalk w;

	xwalk_begin(seg, xi, &w);
	while ((b = xwalk_next(&w, &k))) {
		uint32_t qidx;

		if (b->dead || !xbind_queue_memo(seg, &m->memo, b, &qidx) ||
		    (m->seen[qidx] & 1) ||
		    !xbind_match(type, b->key, k, key, klen))
			continue;
		/* The memo said LIVE under the lock: this copy agrees. */
		if (shmq__dir_validate_entry(seg, shmq__dir_entry(seg, qidx),
					     &m->qs[m->n]))
			continue;
		m->seen[qidx] |= 1;
		m->n++;
	}
	return w.err;
}

/*
 * Build the route of @key (x->mu held): returns it with two references
 * (the table's and the caller's), or NULL with *@err set.
 */
static struct route *route_build(shmq_exchange *x, const char *key,
				 uint32_t klen, int *err)
{
	shmq_seg *seg = x->seg;
	struct match_set m = x->scratch;
	struct shmq_qinfo xi;
	struct route *r = NULL;
	uint32_t i, gen, nb = 0, nd;
	int rc;

	memset(m.seen, 0, seg->max_queues);
	memset(m.memo.st, 0, seg->max_queues);
	m.n = 0;
	rc = shmq__seg_lock(seg);
	if (rc)
		goto out_free;
	/* Dead attachments go first: their auto-delete queues with them. */
	if (shmq__proc_reap(seg))
		shmq__repair_locked(seg);
	shmq__dir_sweep(seg);
	/* Stable under the lock: every change is made under it. */
	/* relaxed: we hold the lock, which ordered every change before it. */
	gen = atomic_load_explicit(&shmq__hdr(seg)->dir_gen,
				   memory_order_relaxed);
	if (shmq__dir_validate_entry(seg, shmq__dir_entry(seg, x->idx), &xi) ||
	    xi.kind != DIR_KIND_EXCHANGE || xi.state != DIR_LIVE ||
	    xi.gen != x->gen) {
		rc = -ENOENT;   /* unlinked since we opened it */
		goto out_unlock;
	}
	for (;;) {
		const struct xchg_hdr *h;
		char alt[SHMQ_NAME_MAX + 1];
		int ai;

		m.seen[xi.idx] |= 2;
		rc = match_exchange(seg, &xi, key, klen, &m);
		if (rc || m.n)
			break;
		/* Nothing matched: the alternate exchange, if any (once). */
		h = (const struct xchg_hdr *)(seg->base + xi.off);
		memcpy(alt, h->alternate, sizeof(alt));
		alt[sizeof(alt) - 1] = 0;
		if (!alt[0] || shmq__name_check(alt))
			break;
		ai = shmq__dir_lookup(seg, alt, DIR_KIND_EXCHANGE, &xi);
		if (ai < 0 || (m.seen[ai] & 2))
			break;
	}
	if (rc)
		goto out_unlock;
	r = calloc(1, sizeof(*r) + m.n * sizeof(r->qs[0]));
	if (!r) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	r->gen = gen;
	r->klen = klen;
	memcpy(r->key, key, klen);
	r->min_msg = UINT32_MAX;
	/* Default-policy queues first: they are claimed together. */
	for (i = 0; i < m.n; i++)
		if (!(m.qs[i].flags & SHMQ_OVERFLOW))
			nb++;
	r->nblock = nb;
	nd = nb;
	nb = 0;
	for (i = 0; i < m.n; i++) {
		struct xq *xq = xq_get(x, &m.qs[i]);

		if (!xq) {
			rc = -ENOMEM;
			break;
		}
		xq->routes++;
		if (m.qs[i].flags & SHMQ_OVERFLOW)
			r->qs[nd++] = xq;
		else
			r->qs[nb++] = xq;
		r->n++;
		if (m.qs[i].msg_size < r->min_msg)
			r->min_msg = m.qs[i].msg_size;
	}
	if (rc) {
		shmq__seg_unlock(seg);
		/* Unreference what was taken (the holes are NULL). */
		for (i = 0, nb = 0; i < m.n; i++)
			if (r->qs[i])
				r->qs[nb++] = r->qs[i];
		r->n = nb;
		route_free_locked(x, r);
		r = NULL;
		goto out_free;
	}
	/* relaxed: published with the route by the store of ready below. */
	atomic_store_explicit(&r->refs, 2, memory_order_relaxed);
	/* release: pairs with route_match()'s acquire. */
	atomic_store_explicit(&r->ready, 1, memory_order_release);
out_unlock:
	shmq__seg_unlock(seg);
out_free:
	*err = rc;
	return r;
}

/*
 * A miss: build the route of @key, put it in the table in place of a
 * stale one, and retire every route of an older generation.  Returns the
 * route with the caller's reference, or NULL with *@err.
 */
static struct route * __attribute__((noinline))
route_rebuild(shmq_exchange *x, const char *key, uint32_t klen,
	      unsigned long hash, int *err)
{
	struct route *r, *old, *dead = NULL;
	struct cds_lfht_node *on, *n;
	struct cds_lfht_iter it;
	struct key_ref k = { key, klen };
	bool forked;

	pthread_mutex_lock(&x->mu);
	r = route_build(x, key, klen, err);
	if (!r) {
		pthread_mutex_unlock(&x->mu);
		return NULL;
	}
	reader_lock();
	on = cds_lfht_add_replace(x->ht, hash, route_match, &k, &r->node);
	if (on) {
		old = caa_container_of(on, struct route, node);
		old->retired = dead;
		dead = old;
	}
	for (cds_lfht_first(x->ht, &it); (n = cds_lfht_iter_get_node(&it));
	     cds_lfht_next(x->ht, &it)) {
		old = caa_container_of(n, struct route, node);
		if (old->gen != r->gen && cds_lfht_del(x->ht, &old->node) == 0) {
			old->retired = dead;
			dead = old;
		}
	}
	/*
	 * release: publishes the route to readers of last (route_find),
	 * before the grace period below: a reader that still finds a
	 * retired route there found it before this store, inside a read-side
	 * section that the grace period waits for.
	 */
	atomic_store_explicit(&x->last, r, memory_order_release);
	reader_leave();
	/* relaxed: written by the atfork child handler before any thread. */
	forked = atomic_load_explicit(&fork_ghosts, memory_order_relaxed);
	if (dead && !forked) {
		urcu_memb_synchronize_rcu();
		tsan_grace_period_over(x);
	}
	while (dead) {
		old = dead;
		dead = old->retired;
		if (forked) {
			old->retired = x->retired;
			x->retired = old;
			continue;
		}
		/* The table's reference; publishers may still hold theirs. */
		/* acq_rel: as in route_put(). */
		if (atomic_fetch_sub_explicit(&old->refs, 1,
					      memory_order_acq_rel) == 1)
			route_free_locked(x, old);
	}
	pthread_mutex_unlock(&x->mu);
	return r;
}

/*
 * Inside rcu_read_lock(): the cached route of @key, valid at dir_gen @gen,
 * or NULL.  The caller may use it until rcu_read_unlock() (then it takes a
 * reference first: route_hold()).
 */
static inline struct route *route_find(shmq_exchange *x, const char *key,
				       uint32_t klen, uint32_t gen)
{
	struct key_ref k = { key, klen };
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	/* acquire: pairs with route_rebuild()'s release store of last. */
	struct route *r = atomic_load_explicit(&x->last, memory_order_acquire);

	if (__builtin_expect(r && r->gen == gen && r->klen == klen &&
			     memcmp(r->key, key, klen) == 0, 1))
		return r;
	cds_lfht_lookup(x->ht, key_hash(key, klen), route_match, &k, &it);
	n = cds_lfht_iter_get_node(&it);
	if (!n)
		return NULL;
	r = caa_container_of(n, struct route, node);
	return r->gen == gen ? r : NULL;
}

/* Inside rcu_read_lock(): keep @r beyond the read-side section. */
static inline void route_hold(struct route *r)
{
	/*
	 * relaxed: the route was acquired by route_find().  Inside the
	 * read-side section, so before the grace period a remover waits for,
	 * whose decrement (acq_rel) therefore comes after.
	 */
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

/* ---- publishing ------------------------------------------------------------- */


static void write_msg(struct slot *s, uint64_t pos, const char *key,
		      uint32_t klen, const void *msg, size_t len)
{
	if (klen)
		memcpy(s->data, key, klen);
	if (len)
		memcpy(s->data + klen, msg, len);
	slot_publish_key(s, pos, (uint32_t)len, klen);   /* R1 */
}

#define PUB_RETRY INT_MIN /* the route may be stale: get it again */

/*
 * A claimed slot of a blocking queue.  The first uses this thread's cached
 * operation record (op_begin, as shmq_send does: no read-modify-write),
 * the others records from the attachment's bitmap.
 */
struct held {
	uint64_t pos;
	struct proc_rec *rec;
	int idx;                /* bitmap record, or -1: the op's */
};

static inline int held_rec(shmq *q, uint32_t i, struct op *op,
			   struct held *h)
{
	if (i == 0) {
		int rc = op_begin(q, op);

		h->rec = op->rec;
		h->idx = op->idx;
		return rc;
	}
	h->idx = op->idx < 0 && q->seg->pub_nstash > 0 ?
		 q->seg->pub_stash[--q->seg->pub_nstash] :
		 shmq__rec_get(q->seg);
	if (h->idx < 0)
		return h->idx;
	h->rec = &q->seg->recs[h->idx];
	return 0;
}

/*
 * The thread that owns the attachment's cached record (op->idx < 0 after
 * op_begin) keeps up to SHMQ_PUB_STASH clean records aside for the other
 * claims of its publishes, so that a fanout costs no bitmap read-modify-
 * write per queue; they stay handed out (shmq__rec_get) while it lives.
 * Other threads take and give back bitmap records.
 */
static inline void held_put(shmq_seg *seg, const struct op *op,
			    struct held *h)
{
	rec_clear(h->rec);              /* R4 */
	if (h->idx < 0)
		return;
	if (op->idx < 0 && seg->pub_nstash < SHMQ_PUB_STASH)
		seg->pub_stash[seg->pub_nstash++] = h->idx;
	else
		shmq__rec_put(seg, h->idx);
}

/* A claimed slot given up: a tombstone, skipped by consumers. */
static void abandon(shmq *q, const struct op *op, struct held *h)
{
	struct slot *s = ring_slot(&q->main, h->pos);

	/*
	 * T2: release, as the tombstone of a repair (T1); pairs with A2 of
	 * the consumer that claims and frees it.
	 */
	atomic_store_explicit(&s->seq, (h->pos + 1) | SEQ_TOMB,
			      memory_order_release);
	held_put(q->seg, op, h);
	shmq__notify(q, &q->hdr->not_empty, 1);
}

/*
 * Wait for room in full default-policy queue @q, holding nothing, in slices
 * of the queue's stall threshold (SHMQ_DEFAULT_STALL_NS, 5 ms, when it is
 * 0): the route may change while we wait (the queue unbound or unlinked,
 * and then nobody may ever make room), so after each slice the caller
 * looks at dir_gen again.  0: try again; PUB_RETRY: a slice of an
 * SHMQ_AUTODELETE queue ended full (its holder may be dead: rebuild the
 * route, which reaps); -ETIMEDOUT at the caller's deadline; -EAGAIN for
 * a timeout of 0.
 */
static int wait_room(shmq *q, struct deadline *dl, bool *counted)
{
	/* relaxed: a tuning knob. */
	int64_t slice = atomic_load_explicit(&q->stall_ns, memory_order_relaxed);
	struct deadline sd;
	int rc;

	if (dl->timeout_ns == 0)
		return -EAGAIN;
	if (!*counted) {
		/* relaxed: a statistic. */
		atomic_fetch_add_explicit(&q->hdr->full_waits, 1,
					  memory_order_relaxed);
		*counted = true;
	}
	if (slice <= 0)
		slice = SHMQ_DEFAULT_STALL_NS;
	if (dl->timeout_ns != SHMQ_FOREVER) {
		uint64_t now = shmq__now_ns(CLOCK_MONOTONIC);

		if (!dl->abs_ns)
			dl->abs_ns = now + (uint64_t)dl->timeout_ns;
		if (dl->abs_ns <= now || dl->abs_ns - now <= (uint64_t)slice)
			return shmq__wait(q, &q->hdr->not_full, ring_can_send,
					  prod_stuck, dl);
	}
	sd = (struct deadline){ slice, 0, 0 };
	rc = shmq__wait(q, &q->hdr->not_full, ring_can_send, prod_stuck, &sd);
	if (rc == -ETIMEDOUT)
		return (q->flags & SHMQ_AUTODELETE) ? PUB_RETRY : 0;
	return rc;
}

/*
 * How a publish holds its route: inside a read-side section (a route found
 * in the cache, while nothing blocks), or by a reference (a route just
 * built, or once the publish must wait).
 */
struct pub {
	bool in_rcu;
	bool held;
	bool counted;           /* full_waits counted */
};

/* A publisher leaves its read-side section. */
static inline void reader_unlock(shmq_exchange *x)
{
	tsan_reader_leaves(x);
	reader_leave();
}

/* Before blocking: exchange the read-side section for a reference. */
static void pub_leave_rcu(shmq_exchange *x, struct route *r, struct pub *p)
{
	if (p->in_rcu) {
		route_hold(r);
		reader_unlock(x);
		p->in_rcu = false;
		p->held = true;
	}
}

static void pub_end(shmq_exchange *x, struct route *r, struct pub *p)
{
	if (p->in_rcu)
		reader_unlock(x);
	if (p->held)
		route_put(x, r);
	p->in_rcu = p->held = false;
}

/* Leaving queue @q (may be NULL) after a wake-up there, without a claim. */
static void pass_wake(shmq *q)
{
	if (q)
		shmq__pass_on(q, &q->hdr->not_full, ring_can_send);
}

static int route_publish(shmq_exchange *x, struct route *r, const char *key,
			 uint32_t klen, const void *msg, size_t len,
			 struct deadline *dl, struct pub *p)
{
	shmq_seg *seg = x->seg;
	struct held held[SHMQ_PUBLISH_MAX];
	shmq *woken = NULL;     /* the queue whose wake-up we hold */
	struct op op;
	uint32_t i, j, got = 0, dropped = 0;
	bool last = false;
	int rc, brec = -1;

	if (r->n == 0) {
		/* relaxed, both: statistics. */
		atomic_fetch_add_explicit(&x->hdr->published, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&x->hdr->unroutable, 1,
					  memory_order_relaxed);
		return 0;
	}
	if (r->nblock > SHMQ_PUBLISH_MAX)
		return -E2BIG;
	if (klen + len > r->min_msg)
		return -EMSGSIZE;
	for (;;) {
		shmq *full = NULL;

		/* Room everywhere?  Claim nothing until it looks so. */
		for (i = 0; i < r->nblock && !full; i++)
			if (!ring_can_send(r->qs[i]->q))
				full = r->qs[i]->q;
		/*
		 * Every record before the first claim: a shortage then costs
		 * no tombstone, and the drop-policy queues are served too.
		 */
		for (i = 0; i < r->nblock && !full; i++)
			if (held_rec(r->qs[i]->q, i, &op, &held[i])) {
				for (j = 0; j < i; j++)
					held_put(seg, &op, &held[j]);
				pass_wake(woken);
				return -ENOBUFS;
			}
		if (!full && r->n > r->nblock &&
		    (brec = shmq__rec_get(seg)) < 0) {
			for (j = 0; j < r->nblock; j++)
				held_put(seg, &op, &held[j]);
			pass_wake(woken);
			return -ENOBUFS;
		}
		for (i = 0; i < r->nblock && !full; i++) {
			shmq *q = r->qs[i]->q;

			role(q, PROC_ROLE_PROD);
			if (!ring_prod_claim(&q->main, 1, &held[i].pos,
					     held[i].rec)) {
				for (j = 0; j < i; j++)
					abandon(r->qs[j]->q, &op, &held[j]);
				for (j = i; j < r->nblock; j++)
					held_put(seg, &op, &held[j]);
				if (brec >= 0)
					shmq__rec_put(seg, brec);
				brec = -1;
				full = q;
				break;
			}
			shmq__pass_on(q, &q->hdr->not_full, ring_can_send);
		}
		if (!full)
			break;
		/*
		 * A wake-up we took on another queue and leave unused goes to
		 * the next sleeper there ("pass the wake on", wait.c).
		 */
		if (woken != full)
			pass_wake(woken);
		woken = NULL;
		if (last)
			return -ETIMEDOUT;
		if (dl->timeout_ns == 0)
			return -EAGAIN;
		pub_leave_rcu(x, r, p);
		rc = wait_room(full, dl, &p->counted);
		woken = full;
		if (rc == -ETIMEDOUT) {
			last = true;    /* one more try, as claim_prod_slow */
		} else if (rc) {
			pass_wake(woken);
			return rc;
		}
		/* relaxed: a hint; a stale route is rebuilt by the caller. */
		if (atomic_load_explicit(&shmq__hdr(seg)->dir_gen,
					 memory_order_relaxed) != r->gen) {
			pass_wake(woken);
			return PUB_RETRY;
		}
	}
	/* Every blocking queue holds a slot for us: the message goes out. */
	for (i = 0; i < r->nblock; i++) {
		shmq *q = r->qs[i]->q;

		write_msg(ring_slot(&q->main, held[i].pos), held[i].pos, key,
			  klen, msg, len);
		held_put(seg, &op, &held[i]);
	}
	got = r->nblock;
	/*
	 * F1 once for all of them: orders every publish (R1) above before
	 * each queue's load of waiters below, as shmq__notify() does for one.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	for (i = 0; i < r->nblock; i++)
		shmq__notify_fenced(r->qs[i]->q, &r->qs[i]->q->hdr->not_empty,
				    1);
	/* The overflow-policy queues, one at a time, never waiting. */
	for (i = r->nblock; i < r->n; i++) {
		shmq *q = r->qs[i]->q;
		unsigned ev = 0;
		uint64_t pos;

		role(q, PROC_ROLE_PROD);
		rc = claim_prod_ovf(q, 1, &pos, 0, &seg->recs[brec], &ev);
		dropped += ev;
		if (rc < 0) {
			rec_clear(&seg->recs[brec]);
			if (!(q->flags & SHMQ_DROP_NEWEST))
				/* relaxed: a statistic (DROP_NEWEST counted
				 * its own refusal). */
				atomic_fetch_add_explicit(&q->hdr->dropped, 1,
						memory_order_relaxed);
			dropped++;
			continue;
		}
		write_msg(ring_slot(&q->main, pos), pos, key, klen, msg, len);
		rec_clear(&seg->recs[brec]);            /* R4 */
		shmq__notify(q, &q->hdr->not_empty, 1);
		got++;
	}
	if (brec >= 0)
		shmq__rec_put(seg, brec);
	/* relaxed, all: statistics. */
	atomic_fetch_add_explicit(&x->hdr->published, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&x->hdr->routed, got, memory_order_relaxed);
	if (dropped)
		atomic_fetch_add_explicit(&x->hdr->dropped, dropped,
					  memory_order_relaxed);
	return (int)got;
}

int shmq_publish(shmq_exchange *x, const char *key, const void *msg,
		 size_t len, int64_t timeout_ns)
{
	struct deadline dl = { timeout_ns, 0, 0 };
	struct pub p = { false, false, false };
	bool fresh = false;
	struct route *r;
	uint32_t gen;
	size_t klen;
	int rc;

	if (!x || !key || (!msg && len) || timeout_check(timeout_ns))
		return -EINVAL;
	klen = strnlen(key, SHMQ_KEY_MAX + 1);
	if (klen > SHMQ_KEY_MAX)
		return -EINVAL;
	if (len > SHMQ_MAX_MSG_SIZE)
		return -EMSGSIZE;
	rcu_register();
	for (;;) {
		/*
		 * acquire: pairs with the seq_cst bump of a change (dir.c); a
		 * route tagged with this value was built after every change
		 * before it.
		 */
		gen = atomic_load_explicit(&shmq__hdr(x->seg)->dir_gen,
					   memory_order_acquire);
		r = NULL;
		if (__builtin_expect(!fresh, 1)) {
			reader_lock();
			r = route_find(x, key, (uint32_t)klen, gen);
			if (r)
				p.in_rcu = true;
			else
				reader_unlock(x);
		}
		if (!r) {
			r = route_rebuild(x, key, (uint32_t)klen,
					  key_hash(key, (uint32_t)klen), &rc);
			if (!r)
				return rc;
			p.held = true;
		}
		rc = route_publish(x, r, key, (uint32_t)klen, msg, len, &dl,
				   &p);
		pub_end(x, r, &p);
		if (rc != PUB_RETRY)
			return rc;
		fresh = true;
	}
}
