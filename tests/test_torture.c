// SPDX-License-Identifier: MIT
/*
 * test_torture.c - producers and consumers in separate processes, SIGKILLed
 * at random moments for many rounds (inside send, batch send, reserve and
 * commit, publish through an exchange, recv, acquire and release), each
 * replaced by a fresh process;
 * then a final producer whose messages must all get through.  Every
 * killed child must have died of our SIGKILL: one that exited on its own
 * (a torn message, an error, a wedge, a sanitizer report) is a failure,
 * reported with its exit reason.  Counts
 * committed messages lost (must be 0), messages delivered more often than
 * the documented redelivery allows (0), and wedges (0).
 *
 * The ledger is a MAP_SHARED region of our own (not the segment):
 *   - a producer process has an id; before each send it notes the first
 *     sequence number in flight (started), after it returns success it
 *     raises committed.  Messages below committed must arrive; those
 *     between committed and started + batch may have been committed just
 *     before the kill (allowed either way).
 *   - a consumer receives into its inbox in the ledger (recv copies there;
 *     acquire copies it there before release), appends {producer, seq} to
 *     its delivery log, then clears the inbox (and releases).  When we
 *     kill a consumer, an intact message in its inbox was delivered to it
 *     (counted once, whether or not its log entry made it), and may be
 *     delivered again: the documented redelivery, an allowance of one
 *     more.  A zero-copy consumer clears its inbox before it releases, so
 *     an intact inbox there means the message was held, and it MUST be
 *     delivered again.
 *
 * The ledger is recycled, so a run may last for hours:
 *   - each consumer slot (NCONS of them) has a delivery log that is a ring
 *     with one writer (the consumer in the slot: entry, then head) and one
 *     reader (the parent, which drains it every round of the kill loop:
 *     entries, then tail).  A consumer whose ring is full waits for the
 *     parent; it never overwrites an entry not yet counted.
 *   - the parent folds each entry at once into private per-message counts
 *     of the producer ids whose ledger is open (at most W_IDS, rows
 *     indexed by id % W_IDS).  It closes ids in order: the oldest open id
 *     once its process has been reaped for CLOSE_NS and CLOSE_MSGS more
 *     deliveries have been counted (or, if deliveries stall, when W_IDS
 *     newer ids need rows).  Closing drains every log, then judges each of
 *     the id's messages exactly as the end of the run judges the ids still
 *     open (lost, duplicated, invented, redelivery missing), then frees
 *     its rows.  The queue is FIFO and holds at most CAPACITY messages
 *     plus its redelivery lane, and a killed consumer's message is
 *     repaired by its replacement's attach, so by then every delivery of
 *     the id's messages has been counted; a committed message still
 *     missing is lost, and a delivery of a closed id's message afterwards
 *     (or of an id never spawned) counts as "outside the ledger", a
 *     failure.
 *
 * The worker pool (since 0.4; SHMQ_TORTURE_POOL=0 leaves it out): a third
 * consumer slot runs workers that shmq_fetch() a message into the inbox,
 * log it, note it pending, clear the inbox, shmq_ack() it and clear
 * pending: killed like the others, at random.  They are judged as the
 * zero-copy consumers are: an intact inbox at the kill means the job was
 * fetched and its ack not begun, so it MUST be delivered again (the one
 * duplicate allowed: its worker died before acking); a pending one was
 * being acked, so it may come again or not; nothing else may come twice.
 * Every held job (fetched or acquired) whose holder we kill is also
 * timed: from just before the kill to the consumer's clock reading when
 * its next delivery was logged, which must be within PROMPT_NS (the
 * promise is 100 ms; a waiting consumer notices a dead holder by itself).
 * The max and the count of each kind are printed.  The two classic slots
 * alternate copying and zero-copy consumers as before.
 *
 * Every fourth producer publishes through a direct exchange ("torture.x",
 * the queue bound with the empty key, so the message fills the slot as a
 * send's does) instead of sending: a publisher killed inside
 * shmq_publish() must leave the queue with the whole message or without
 * it, as a killed send does, and its committed messages count alike.
 *
 * Repairs happen only through the library: blocked calls stalled behind a
 * stuck slot (stall threshold 2 ms), the shmq_seg_open() of each
 * replacement process, and (since 0.4) waiting consumers that find a
 * holder dead.  SHMQ_TORTURE_S sets the duration (default 20 s).
 * SHMQ_TORTURE_STOP=1 (make soak) also SIGSTOPs random peers for up to
 * 30 ms: a stopped process is alive, and its slots and the jobs it owes
 * must be waited for, never repaired (a repair under it would show as a
 * duplicate, a lost or a garbled message).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define QNAME		"torture"
#define XNAME		"torture.x"
#define MSG_SIZE	64
#define CAPACITY	16
#define NPROD		2
#define NCONS		3		/* slots; the last: the worker pool */
#define NCLASSIC	2		/* copying and zero-copy consumers */
#define W_IDS		4096		/* most producer ids with an open ledger */
#define MAX_SEQ		4096		/* messages per producer process */
#define MAX_IDS		0x7fffffffu	/* producer processes over the run */
#define BATCH		4
#define FINAL_MSGS	2000
#define LOG_RING	(1u << 18)	/* entries per consumer slot's log */
#define MAX_REPORT	10		/* errors printed per kind */
/* An id is judged this long and this many deliveries after its end. */
#define CLOSE_NS	(1000 * (uint64_t)T_MS)
#define CLOSE_MSGS	4096
/* A killed holder's job is delivered again within this (promise: 100 ms). */
#define PROMPT_NS	(2000 * (uint64_t)T_MS)
#define MAX_AWAIT	64		/* held jobs timed at once */

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics lock-free");

struct cons_slot {
	/* entries written; only the slot's consumer writes it */
	_Alignas(128) atomic_ullong head;
	/* entries counted; only the parent writes it */
	_Alignas(128) atomic_ullong tail;
	_Alignas(128) unsigned char inbox[MSG_SIZE];
	/* zero-copy consumer: 1 << 63 | producer << 32 | seq, cleared from
	 * the inbox, release perhaps not yet done; 0 once released */
	atomic_ullong pending;
};

struct ledger {
	/* indexed by producer id % W_IDS; reset before the id is spawned */
	atomic_uint started[W_IDS];	/* first seq of the call in flight */
	atomic_uint committed[W_IDS];	/* seqs below: committed */
	atomic_int done[W_IDS];		/* it sent its last message */
	atomic_int stop;		/* producers: finish and exit */
	atomic_int cons_stop;		/* consumers: exit when idle */
	struct cons_slot cs[NCONS];
};

/* Log entry: producer << 32 | seq. */
#define ENTRY(p, s)	((uint64_t)(p) << 32 | (s))
#define NO_ENTRY	UINT64_MAX

/* A held job whose holder we killed, waiting for its next delivery. */
struct await {
	uint32_t p, s;
	uint64_t kill_ns;		/* just before the kill */
	int how;			/* RECV_ZC or RECV_FETCH */
	int used;
};

struct torture {
	const char *seg;
	struct ledger *lg;
	_Atomic uint64_t *log;			/* NCONS * LOG_RING, shared */
	_Atomic uint64_t *log_ns;		/* its entries' clock readings */
	unsigned ncons;				/* slots in use: 2, or 3 */
	/* the open ids' messages, row id % W_IDS */
	uint8_t delivered[W_IDS][MAX_SEQ];	/* from the logs + held */
	uint8_t extra[W_IDS][MAX_SEQ];		/* allowed extra deliveries */
	uint8_t again[W_IDS][MAX_SEQ];		/* must be delivered again */
	uint64_t ended_ns[W_IDS];		/* reaped then; 0: running */
	uint64_t ended_dn[W_IDS];		/* delivered_n then */
	uint64_t last[NCONS];			/* last entry counted, by slot */
	pid_t prod[NPROD], cons[NCONS];
	uint32_t prod_id[NPROD], cons_id[NCONS];
	int cons_how[NCONS];			/* RECV_* */
	uint32_t next_prod, next_cons, next_classic;
	uint32_t closed;			/* ids below: judged */
	uint32_t rng;
	unsigned kills_prod, kills_cons, stops;
	/* totals over the closed ids (and the drained logs) */
	uint64_t committed, delivered_n, lost, dups, unsure, not_again;
	uint64_t late;			/* for a closed or unknown id */
	unsigned nheld, zc_held, closed_running;
	unsigned own_exits;		/* children that died not of a kill */
	/* the worker pool, and redelivery after a holder's kill */
	unsigned kills_pool, pool_held, pool_acking;
	struct await aw[MAX_AWAIT];
	uint64_t lat_max[2], lat_n[2];	/* [0] acquired, [1] fetched */
	uint64_t slow, unmeasured;
};

enum { SEND_COPY, SEND_BATCH, SEND_ZC, SEND_PUB, SEND_KINDS };
enum { RECV_COPY, RECV_ZC, RECV_FETCH };

static shmq *child_open(const char *segname, shmq_seg **seg)
{
	shmq *q;

	if (shmq_seg_open(segname, seg) || shmq_open(*seg, QNAME, &q))
		_exit(10);
	shmq_set_stall(q, 2 * T_MS);
	return q;
}

/* A producer process: id's messages 0, 1, 2... until told to stop. */
static void producer(struct torture *t, uint32_t id, int how, uint32_t limit)
{
	struct ledger *lg = t->lg;
	unsigned char m[BATCH][MSG_SIZE];
	struct iovec v[BATCH];
	struct shmq_msg zm;
	shmq_seg *seg;
	shmq *q = child_open(t->seg, &seg);
	shmq_exchange *x = NULL;
	uint32_t s = 0, rng = id * 2654435761u + 1, k_id = id % W_IDS;
	uint64_t give_up = t_now_ns() + 30000 * (uint64_t)T_MS;
	int rc, i, k;

	if (how == SEND_PUB && shmq_exchange_open(seg, XNAME, &x))
		_exit(10);
	while (s < limit && !atomic_load(&lg->stop)) {
		if (t_now_ns() > give_up)
			_exit(15);      /* 30 s without getting through: wedged */
		atomic_store(&lg->started[k_id], s);
		switch (how) {
		case SEND_BATCH:
			k = 1 + (int)(t_rand(&rng) % BATCH);
			if (s + (uint32_t)k > limit)
				k = (int)(limit - s);
			for (i = 0; i < k; i++) {
				v[i].iov_base = m[i];
				v[i].iov_len = t_msg_fill(m[i], MSG_SIZE, id,
							  s + (uint32_t)i);
			}
			rc = shmq_send_batch(q, v, (unsigned)k, 100 * T_MS);
			break;
		case SEND_ZC:
			rc = shmq_reserve(q, MSG_SIZE, &zm, 100 * T_MS);
			if (rc == 0) {
				zm.len = t_msg_fill(zm.data, MSG_SIZE, id, s);
				if (t_rand(&rng) % 8 == 0)
					sched_yield();  /* hold it a while */
				rc = shmq_commit(q, &zm) ? -EBADMSG : 1;
			}
			break;
		case SEND_PUB:
			/* 1: the one queue bound; 0 would be a lost route. */
			rc = shmq_publish(x, "", m[0], t_msg_fill(m[0],
					  MSG_SIZE, id, s), 100 * T_MS);
			rc = rc == 0 ? -ENOENT : rc;
			break;
		default:
			rc = shmq_send(q, m[0], t_msg_fill(m[0], MSG_SIZE, id,
							     s), 100 * T_MS);
			rc = rc ? rc : 1;
		}
		if (rc == -ETIMEDOUT)
			continue;
		if (rc < 0)
			_exit(11);
		s += (uint32_t)rc;
		atomic_store(&lg->committed[k_id], s);
	}
	atomic_store(&lg->done[k_id], 1);
	_exit(0);
}

/* The consumer's end of its slot's log. */
struct log_writer {
	struct cons_slot *cs;
	_Atomic uint64_t *ring;
	_Atomic uint64_t *ring_ns;
	uint64_t head, tail;		/* ours; the last tail we read */
};

/* Log one intact delivery, waiting while the ring is full. */
static int count(struct log_writer *w, const void *buf, size_t len)
{
	uint32_t p, s;

	if (t_msg_check(buf, len, &p, &s) || p >= MAX_IDS || s >= MAX_SEQ)
		return -1;
	while (w->head - w->tail >= LOG_RING) {
		/* L1: acquire; the parent read those entries before it
		 * raised tail (L4), so we may overwrite them. */
		w->tail = atomic_load_explicit(&w->cs->tail,
					       memory_order_acquire);
		if (w->head - w->tail >= LOG_RING)
			usleep(100);
	}
	/* relaxed, both: published by the release store of head (L2). */
	atomic_store_explicit(&w->ring[w->head % LOG_RING], ENTRY(p, s),
			      memory_order_relaxed);
	atomic_store_explicit(&w->ring_ns[w->head % LOG_RING], t_now_ns(),
			      memory_order_relaxed);
	/* L2: release; publishes the entry.  Pairs with L3 in drain(). */
	atomic_store_explicit(&w->cs->head, ++w->head, memory_order_release);
	return 0;
}

/* The tag of the message in @in, for the window around a release. */
static void note_pending(struct cons_slot *cs, const void *in)
{
	struct t_tag tag;

	memcpy(&tag, in, sizeof(tag));
	atomic_store(&cs->pending, 1ull << 63 | ENTRY(tag.producer,
						       tag.seq & 0xffff));
}

/* A consumer process: receive into our inbox, count, clear; until told. */
static void consumer(struct torture *t, int slot, uint32_t c, int how)
{
	struct ledger *lg = t->lg;
	struct cons_slot *cs = &lg->cs[slot];
	unsigned char *in = cs->inbox;
	uint32_t rng = c * 2246822519u + 7;
	struct log_writer w = { .cs = cs };
	struct shmq_meta meta;
	struct shmq_msg m;
	shmq_seg *seg;
	shmq *q = child_open(t->seg, &seg);
	uint64_t tag;
	ssize_t n;

	w.ring = t->log + (size_t)slot * LOG_RING;
	w.ring_ns = t->log_ns + (size_t)slot * LOG_RING;
	/* relaxed: the parent set both before it forked us. */
	w.head = atomic_load_explicit(&cs->head, memory_order_relaxed);
	w.tail = atomic_load_explicit(&cs->tail, memory_order_relaxed);
	for (;;) {
		memset(in, 0, MSG_SIZE);
		if (how == RECV_ZC) {
			n = shmq_acquire(q, &m, 50 * T_MS);
			if (n == 0) {
				memcpy(in, m.data, m.len);
				n = (ssize_t)m.len;
				if (count(&w, in, (size_t)n))
					_exit(12);
				if (t_rand(&rng) % 4 == 0)
					sched_yield();  /* hold it a while */
				note_pending(cs, in);
				memset(in, 0, MSG_SIZE);
				if (shmq_release(q, &m))
					_exit(13);
				atomic_store(&cs->pending, 0);
				continue;
			}
		} else if (how == RECV_FETCH) {
			/* A worker: fetch, log (the job done), ack. */
			n = shmq_fetch(q, in, MSG_SIZE, &meta, &tag, 50 * T_MS);
			if (n >= 0) {
				if (count(&w, in, (size_t)n))
					_exit(12);
				if (meta.deliveries < 1 ||
				    (meta.deliveries > 1) !=
				    !!(meta.flags & SHMQ_META_REDELIVERED))
					_exit(16);
				if (t_rand(&rng) % 4 == 0)
					sched_yield();  /* work a while */
				note_pending(cs, in);
				memset(in, 0, MSG_SIZE);
				if (shmq_ack(q, tag))
					_exit(17);
				atomic_store(&cs->pending, 0);
				continue;
			}
		} else {
			n = shmq_recv(q, in, MSG_SIZE, 50 * T_MS);
			if (n >= 0) {
				if (count(&w, in, (size_t)n))
					_exit(12);
				continue;
			}
		}
		if (n != -ETIMEDOUT)
			_exit(14);
		if (atomic_load(&lg->cons_stop))
			_exit(0);
	}
}

/* Is @p's ledger open?  Counts a message of a closed or unknown id. */
static int open_id(struct torture *t, uint32_t p, uint32_t s,
		   const char *what)
{
	if (p < t->next_prod && p >= t->closed && s < MAX_SEQ)
		return 1;
	if (t->late++ < MAX_REPORT)
		print_error("%s producer %u seq %u: %s\n", what, p, s,
			    p < t->closed ? "its ledger was closed" :
			    "no such message");
	return 0;
}

/*
 * (p, s) was delivered at @when_ns: if it is a killed holder's job that
 * we wait for, how long it took.
 */
static void redelivered_at(struct torture *t, uint32_t p, uint32_t s,
			   uint64_t when_ns)
{
	struct await *a;
	uint64_t lat;
	int i, k;

	for (i = 0; i < MAX_AWAIT; i++) {
		a = &t->aw[i];
		if (!a->used || a->p != p || a->s != s)
			continue;
		lat = when_ns > a->kill_ns ? when_ns - a->kill_ns : 0;
		k = a->how == RECV_FETCH;
		t->lat_n[k]++;
		if (lat > t->lat_max[k])
			t->lat_max[k] = lat;
		if (lat > PROMPT_NS && t->slow++ < MAX_REPORT)
			print_error("slow: producer %u seq %u, %s by a killed "
				    "consumer, delivered again %.1f ms after "
				    "the kill\n", p, s, k ? "fetched" :
				    "acquired", lat / 1e6);
		a->used = 0;
	}
}

/* Time the next delivery of (p, s), held by a consumer killed at @kill_ns. */
static void await_redelivery(struct torture *t, uint32_t p, uint32_t s,
			     uint64_t kill_ns, int how)
{
	int i;

	for (i = 0; i < MAX_AWAIT; i++)
		if (!t->aw[i].used) {
			t->aw[i] = (struct await){ p, s, kill_ns, how, 1 };
			return;
		}
	t->unmeasured++;
}

/*
 * One more delivery of (p, s), from a log or a dead consumer's inbox, at
 * @when_ns (the consumer's clock when it logged it; ours, later, for an
 * inbox).
 */
static void count_delivery(struct torture *t, uint32_t p, uint32_t s,
			   const char *what, uint64_t when_ns)
{
	uint8_t *d;

	if (!open_id(t, p, s, what))
		return;
	d = &t->delivered[p % W_IDS][s];
	if (*d < 255)
		(*d)++;
	t->delivered_n++;
	redelivered_at(t, p, s, when_ns);
}

/* Count what consumer slot @slot has logged since the last call. */
static void drain(struct torture *t, int slot)
{
	struct cons_slot *cs = &t->lg->cs[slot];
	_Atomic uint64_t *ring = t->log + (size_t)slot * LOG_RING;
	_Atomic uint64_t *ring_ns = t->log_ns + (size_t)slot * LOG_RING;
	/* relaxed: only we write tail. */
	uint64_t tail = atomic_load_explicit(&cs->tail, memory_order_relaxed);
	/* L3: acquire; the entries below head are written.  Pairs with L2. */
	uint64_t head = atomic_load_explicit(&cs->head, memory_order_acquire);

	assert_true(head - tail <= LOG_RING);
	for (; tail != head; tail++) {
		/* relaxed, both: ordered by L3. */
		uint64_t e = atomic_load_explicit(&ring[tail % LOG_RING],
						  memory_order_relaxed);
		uint64_t ns = atomic_load_explicit(&ring_ns[tail % LOG_RING],
						   memory_order_relaxed);

		count_delivery(t, (uint32_t)(e >> 32), (uint32_t)e, "logged",
			       ns);
		t->last[slot] = e;
	}
	/* L4: release; our reads of the entries come first.  Pairs with
	 * L1: the consumer may reuse them. */
	atomic_store_explicit(&cs->tail, tail, memory_order_release);
}

static void drain_all(struct torture *t)
{
	int i;

	for (i = 0; i < (int)t->ncons; i++)
		drain(t, i);
}

/*
 * Judge every message of producer @id, whose process is gone and whose
 * deliveries are all counted: lost, in flight at a kill, invented,
 * duplicated beyond the allowance, redelivery missing.
 */
static void judge(struct torture *t, uint32_t id)
{
	uint32_t k = id % W_IDS, s;
	uint32_t c = atomic_load(&t->lg->committed[k]);
	uint32_t hi = atomic_load(&t->lg->started[k]) + BATCH;

	t->committed += c;
	for (s = 0; s < MAX_SEQ; s++) {
		unsigned d = t->delivered[k][s];
		unsigned x = t->extra[k][s], a = t->again[k][s];

		if (s < c && d == 0 && t->lost++ < MAX_REPORT)
			print_error("lost: producer %u seq %u\n", id, s);
		if (s >= c && s < hi && d)
			t->unsure++;    /* committed just before a kill */
		if (s >= hi && d) {
			print_error("invented: producer %u seq %u\n", id, s);
			t->lost += 1000000;
		}
		if (d > 1u + x) {
			if (t->dups < MAX_REPORT)
				print_error("duplicated: producer %u seq %u, "
					    "%u deliveries, %u allowed\n",
					    id, s, d, 1u + x);
			t->dups += d - 1u - x;
		}
		if (a && d < 1u + a && t->not_again++ < MAX_REPORT)
			print_error("not redelivered: producer %u seq %u\n",
				    id, s);
	}
}

/* Judge the oldest open id, whose process is reaped, and free its rows. */
static void close_oldest(struct torture *t)
{
	uint32_t k = t->closed % W_IDS;
	int i;

	assert_true(t->ended_ns[k] != 0);
	drain_all(t);
	/* A job still awaited is judged "not redelivered": stop timing it. */
	for (i = 0; i < MAX_AWAIT; i++)
		if (t->aw[i].used && t->aw[i].p == t->closed)
			t->aw[i].used = 0;
	judge(t, t->closed++);
	memset(t->delivered[k], 0, MAX_SEQ);
	memset(t->extra[k], 0, MAX_SEQ);
	memset(t->again[k], 0, MAX_SEQ);
}

static pid_t spawn_producer(struct torture *t, int slot, uint32_t limit)
{
	uint32_t id = t->next_prod, k = id % W_IDS;
	int how = (int)(id % SEND_KINDS);
	pid_t pid;

	assert_true(id < MAX_IDS);
	if (id - t->closed >= W_IDS) {
		/* Deliveries stalled for thousands of spawns: judge it. */
		close_oldest(t);
		t->closed_running++;
	}
	t->ended_ns[k] = 0;
	atomic_store(&t->lg->started[k], 0);
	atomic_store(&t->lg->committed[k], 0);
	atomic_store(&t->lg->done[k], 0);
	t->next_prod++;
	pid = t_fork(120);
	assert_true(pid >= 0);
	if (pid == 0)
		producer(t, id, how, limit);
	if (slot >= 0) {
		t->prod[slot] = pid;
		t->prod_id[slot] = id;
	}
	return pid;
}

static void spawn_consumer(struct torture *t, int slot)
{
	struct cons_slot *cs = &t->lg->cs[slot];
	uint32_t c = t->next_cons++;
	/* The classic slots alternate as before the pool existed. */
	int how = slot >= NCLASSIC ? RECV_FETCH :
		  (int)(t->next_classic++ % 2);
	pid_t pid;

	/* The previous consumer of the slot is reaped and accounted for. */
	memset(cs->inbox, 0, MSG_SIZE);
	atomic_store(&cs->pending, 0);
	t->last[slot] = NO_ENTRY;
	pid = t_fork(120);
	assert_true(pid >= 0);
	if (pid == 0)
		consumer(t, slot, c, how);
	t->cons[slot] = pid;
	t->cons_id[slot] = c;
	t->cons_how[slot] = how;
}

/*
 * After killing (at @kill_ns) and draining the consumer of @slot: what it
 * held.  A fetching worker is judged as a zero-copy consumer: pending
 * means inside (or just after) its ack, an intact inbox means fetched and
 * not acked.
 */
static void account_killed_consumer(struct torture *t, int slot,
				    uint64_t kill_ns)
{
	struct cons_slot *cs = &t->lg->cs[slot];
	int how = t->cons_how[slot];
	int zc = how == RECV_ZC || how == RECV_FETCH;
	uint64_t pend = atomic_load(&cs->pending);
	struct t_tag tag;
	uint32_t p, s;

	if (pend) {
		/*
		 * Killed around a release: the message may come again or
		 * not (an allowance, no requirement).  Its delivery to the
		 * dead consumer was logged before the inbox was cleared.
		 */
		p = (uint32_t)(pend >> 32) & 0x7fffffff;
		s = (uint32_t)pend;
		t->pool_acking += how == RECV_FETCH;
		if (open_id(t, p, s, "held around a release:"))
			t->extra[p % W_IDS][s]++;
		return;
	}
	memcpy(&tag, cs->inbox, sizeof(tag));
	if (tag.len > MSG_SIZE - sizeof(tag) ||
	    t_msg_check(cs->inbox, sizeof(tag) + tag.len, &p, &s) != 0)
		return;         /* nothing intact: it held nothing */
	t->nheld++;
	t->zc_held += how == RECV_ZC;
	t->pool_held += how == RECV_FETCH;
	if (!open_id(t, p, s, "held:"))
		return;
	t->extra[p % W_IDS][s]++;       /* the documented redelivery may follow */
	if (zc)
		t->again[p % W_IDS][s]++;
	/* Delivered to it once, whether or not its log entry made it. */
	if (t->last[slot] != ENTRY(p, s))
		count_delivery(t, p, s, "held:", t_now_ns());
	if (zc)
		await_redelivery(t, p, s, kill_ns, how);
}

/* A child's exit code in words: what it ran into (see producer, consumer). */
static const char *exit_reason(int code)
{
	switch (code) {
	case 0:  return "finished (told to stop, or out of sequence numbers)";
	case 1:  return "a sanitizer report";
	case 10: return "could not open the segment, the queue or the "
			"exchange";
	case 11: return "an unexpected send or publish error (or a publish "
			"that reached no queue)";
	case 12: return "a torn or foreign message";
	case 13: return "an unexpected release error";
	case 14: return "an unexpected receive error";
	case 15: return "wedged: 30 s without getting a message through";
	case 16: return "a fetched message's deliveries and "
			"SHMQ_META_REDELIVERED disagree";
	case 17: return "an unexpected ack error";
	default: return "unknown";
	}
}

/*
 * SIGKILL @what (a producer or consumer, ledger id @id) and reap it.  It
 * must die of our signal: a child that exited on its own between two
 * kills (a torn message, an error, a wedge, a sanitizer report) is
 * recorded with its reason and fails the run at the end.  A producer
 * whose last message is committed may have exited 0 just before the kill.
 */
static void kill_reap(struct torture *t, pid_t pid, const char *what,
		      uint32_t id, int may_finish)
{
	char why[64];
	int st;

	kill(pid, SIGKILL);
	st = t_wait_child(pid);
	if (st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
		return;
	if (may_finish && st != -1 && WIFEXITED(st) && !WEXITSTATUS(st))
		return;
	if (t->own_exits++ < MAX_REPORT)
		print_error("%s %u (pid %d) ended on its own, not by our "
			    "SIGKILL: %s%s%s\n", what, id, (int)pid,
			    t_status_str(st, why, sizeof(why)),
			    st != -1 && WIFEXITED(st) ? ": " : "",
			    st != -1 && WIFEXITED(st) ?
			    exit_reason(WEXITSTATUS(st)) : "");
}

/* Producer @id is reaped: its started and committed are final. */
static void ended(struct torture *t, uint32_t id)
{
	t->ended_ns[id % W_IDS] = t_now_ns();
	t->ended_dn[id % W_IDS] = t->delivered_n;
}

/*
 * Judge the oldest ids that ended long enough ago, in both time and
 * deliveries, for any message of theirs still in the queue (at most
 * CAPACITY plus the redelivery lane) or held by a consumer to be through.
 */
static void close_ready(struct torture *t)
{
	uint32_t k;

	while (t->closed < t->next_prod) {
		k = t->closed % W_IDS;
		if (!t->ended_ns[k] ||
		    t_now_ns() - t->ended_ns[k] < CLOSE_NS ||
		    t->delivered_n - t->ended_dn[k] < CLOSE_MSGS)
			return;
		close_oldest(t);
		t->closed_running++;
	}
}

/* Wait for child @pid to exit, counting deliveries meanwhile. */
static void wait_draining(struct torture *t, pid_t pid)
{
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
			break;
		drain_all(t);
		usleep(1000);
	}
	t_assert_exit0(t_wait_child(pid));
}

/* Does an open id still lack a message that must come? */
static int missing(struct torture *t)
{
	uint32_t id, s, k, c;

	for (id = t->closed; id < t->next_prod; id++) {
		k = id % W_IDS;
		c = atomic_load(&t->lg->committed[k]);
		for (s = 0; s < c; s++)
			if (t->delivered[k][s] < 1u + t->again[k][s])
				return 1;
	}
	return 0;
}

static void test_torture_kill_producers_and_consumers(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr attr = { .capacity = CAPACITY, .msg_size = MSG_SIZE };
	const char *env = getenv("SHMQ_TORTURE_S");
	const char *stop_env = getenv("SHMQ_TORTURE_STOP");
	const char *pool_env = getenv("SHMQ_TORTURE_POOL");
	int stopping = stop_env && *stop_env == '1';
	int pool = !pool_env || *pool_env != '0';
	unsigned seconds = env ? (unsigned)atoi(env) : 20;
	uint64_t end, start, killed_until, deadline, last_progress, prev;
	struct torture *t;
	uint32_t final_id, final_committed;
	int wedged = 0;
	pid_t final;
	int i;

	if (!seconds)
		seconds = 20;
	t_watchdog(seconds + 120);
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(t != MAP_FAILED);
	t->lg = mmap(NULL, sizeof(*t->lg), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(t->lg != MAP_FAILED);
	t->log = mmap(NULL, NCONS * LOG_RING * sizeof(uint64_t),
		      PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(t->log != MAP_FAILED);
	t->log_ns = mmap(NULL, NCONS * LOG_RING * sizeof(uint64_t),
			 PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(t->log_ns != MAP_FAILED);
	t->ncons = pool ? NCONS : NCLASSIC;
	t->seg = fix->name;
	t->rng = (uint32_t)getpid();
	t_assert_err(shmq_create(fix->seg, QNAME, &attr), 0);
	t_assert_err(shmq_exchange_create(fix->seg, XNAME, NULL), 0);
	t_assert_err(shmq_bind(fix->seg, XNAME, QNAME, ""), 0);

	for (i = 0; i < NPROD; i++)
		spawn_producer(t, i, MAX_SEQ);
	for (i = 0; i < (int)t->ncons; i++)
		spawn_consumer(t, i);

	/* Kill someone every 0-10 ms; replace it. */
	start = t_now_ns();
	end = start + seconds * 1000000000ull;
	while (t_now_ns() < end) {
		unsigned r = t_rand(&t->rng);

		drain_all(t);
		close_ready(t);
		/* A producer that ran out of sequence numbers: replace. */
		for (i = 0; i < NPROD; i++)
			if (atomic_load(&t->lg->done[t->prod_id[i] % W_IDS])) {
				t_assert_exit0(t_wait_child(t->prod[i]));
				ended(t, t->prod_id[i]);
				spawn_producer(t, i, MAX_SEQ);
			}
		usleep(r % 10000);
		if (stopping && r % 3 == 0) {
			pid_t victim = (r & 0x20000) ?
				t->prod[(r >> 8) % NPROD] :
				t->cons[(r >> 8) % t->ncons];

			kill(victim, SIGSTOP);
			usleep(1000 + t_rand(&t->rng) % 30000);
			kill(victim, SIGCONT);
			t->stops++;
			continue;
		}
		if (r & 0x10000) {
			i = (int)((r >> 8) % NPROD);
			kill_reap(t, t->prod[i], "producer", t->prod_id[i],
				  atomic_load(&t->lg->done[t->prod_id[i] %
							    W_IDS]));
			ended(t, t->prod_id[i]);
			t->kills_prod++;
			spawn_producer(t, i, MAX_SEQ);
		} else {
			uint64_t kill_ns;

			i = (int)((r >> 8) % t->ncons);
			kill_ns = t_now_ns();
			kill_reap(t, t->cons[i], "consumer", t->cons_id[i], 0);
			t->kills_cons++;
			t->kills_pool += t->cons_how[i] == RECV_FETCH;
			drain(t, i);    /* all it logged, then its inbox */
			account_killed_consumer(t, i, kill_ns);
			spawn_consumer(t, i);
		}
	}
	killed_until = t_now_ns();

	/* Producers finish their call and exit; consumers keep going. */
	atomic_store(&t->lg->stop, 1);
	for (i = 0; i < NPROD; i++) {
		wait_draining(t, t->prod[i]);
		ended(t, t->prod_id[i]);
	}
	/* The final producer: every one of its messages must get through. */
	atomic_store(&t->lg->stop, 0);
	final_id = t->next_prod;
	final = spawn_producer(t, -1, FINAL_MSGS);
	wait_draining(t, final);
	ended(t, final_id);
	final_committed = atomic_load(&t->lg->committed[final_id % W_IDS]);

	/* Wait until every committed message is in; no progress: a wedge. */
	deadline = t_now_ns() + 60000 * (uint64_t)T_MS;
	last_progress = t_now_ns();
	prev = t->delivered_n;
	for (;;) {
		drain_all(t);
		if (!missing(t))
			break;
		if (t->delivered_n != prev) {
			prev = t->delivered_n;
			last_progress = t_now_ns();
		}
		if (t_now_ns() - last_progress > 10000 * (uint64_t)T_MS ||
		    t_now_ns() > deadline) {
			wedged = 1;
			break;  /* counted as lost below */
		}
		usleep(50000);
	}
	atomic_store(&t->lg->cons_stop, 1);
	for (i = 0; i < (int)t->ncons; i++) {
		/* A consumer may wait for room in its log: keep draining. */
		wait_draining(t, t->cons[i]);
		drain(t, i);
	}
	while (t->closed < t->next_prod)
		close_oldest(t);

	printf("torture: %u s, %u stopped and continued, "
	       "%u producer and %u consumer processes killed "
	       "(%u holding a message, %u of them acquired and %u fetched, "
	       "%llu of those not redelivered), %llu messages committed, "
	       "%llu delivered, "
	       "%llu lost, %llu duplicated beyond the documented "
	       "redelivery, %llu in flight at a kill and delivered, "
	       "%llu outside the ledger, %s, "
	       "final producer's %u all through: %s; %u producer ids, "
	       "%u judged while running; %u children ended on their own\n",
	       (unsigned)((killed_until - start) / 1000000000ull), t->stops,
	       t->kills_prod, t->kills_cons, t->nheld, t->zc_held,
	       t->pool_held, (unsigned long long)t->not_again,
	       (unsigned long long)t->committed,
	       (unsigned long long)t->delivered_n,
	       (unsigned long long)t->lost, (unsigned long long)t->dups,
	       (unsigned long long)t->unsure, (unsigned long long)t->late,
	       wedged ? "WEDGED" : "no wedge", FINAL_MSGS,
	       final_committed == FINAL_MSGS ? "yes" : "no",
	       t->next_prod, t->closed_running, t->own_exits);
	if (pool)
		printf("torture: worker pool: %u fetching workers killed, %u "
		       "holding a job not yet acked, %u inside their ack\n",
		       t->kills_pool, t->pool_held, t->pool_acking);
	printf("torture: a killed holder's job delivered again after at most "
	       "%.1f ms (%llu fetched jobs timed), %.1f ms (%llu acquired); "
	       "%llu over %.0f ms, %llu not timed (too many at once)\n",
	       t->lat_max[1] / 1e6, (unsigned long long)t->lat_n[1],
	       t->lat_max[0] / 1e6, (unsigned long long)t->lat_n[0],
	       (unsigned long long)t->slow, PROMPT_NS / 1e6,
	       (unsigned long long)t->unmeasured);
	assert_int_equal(t->own_exits, 0);
	assert_int_equal(final_committed, FINAL_MSGS);
	assert_int_equal(t->lost, 0);
	assert_int_equal(t->dups, 0);
	assert_int_equal(t->not_again, 0);
	assert_int_equal(t->late, 0);
	assert_int_equal(wedged, 0);
	assert_int_equal(t->slow, 0);
	assert_true(t->kills_prod + t->kills_cons > 20);
	munmap(t->log_ns, NCONS * LOG_RING * sizeof(uint64_t));
	munmap(t->log, NCONS * LOG_RING * sizeof(uint64_t));
	munmap(t->lg, sizeof(*t->lg));
	munmap(t, sizeof(*t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_torture_kill_producers_and_consumers, t_setup,
			t_teardown),
	};

	return cmocka_run_group_tests_name("torture", tests, t_group_setup,
					   t_group_teardown);
}
