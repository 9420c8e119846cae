/* SPDX-License-Identifier: MIT */
/*
 * spsc.c - the single-producer single-consumer queue (SHMQ_SPSC).
 *
 * Why a second queue.  In the MPMC ring every message costs each side a
 * locked instruction (the claim CAS) and a full fence (the notify), and
 * both wait for the cache line the other side last touched: one cross-core
 * transfer per message, in series.  With one sender and one receiver no
 * claim is needed, and the notify's fence can move to the rare side that
 * goes to sleep (below).  Then nothing on the fast path waits for a
 * transfer: stores drain from the store buffer while the next message is
 * written, as in Lamport's ring, which is what this is.
 *
 * Block layout (shm/shm.h, shmq__ring_bytes): struct ring_hdr (its
 * prod_pos and cons_pos lines, event counts and counters as for the MPMC
 * ring; spsc_owner on the last line), then a 64-bit entry per slot
 * (ents), then capacity slots of slot_size bytes holding only the
 * payload: a 64-byte message is one cache line.  An entry says which
 * position the slot holds and its length: (low 32 bits of pos + 1) << 32
 * | len; the receiver polls the entry of its next position, and fetches
 * the payload's line beside it (its address is known before the entry
 * arrives), so a message costs one cross-core wait, not two.
 *
 * Positions.  prod_pos is the next position to publish, written by the
 * sender only after the entries (a hint, for inspection and the next
 * sender: the entries decide); cons_pos (tail) the next to free, written
 * by the receiver only.  Free-running; position p lives in slot p & mask.
 * Each side keeps its own position privately (struct spsc_side); the
 * sender reads cons_pos only when its cached copy says full, so while the
 * queue streams it reads that line once per lap, not per message.
 *
 * Ordering edges:
 *   SP1 (sender's store of a position's entry, release) -> SA1 (a load of
 *       it, acquire, that finds the position's tag): the reader sees the
 *       payload.  An entry is rewritten only a lap later, after SC1 freed
 *       the slot (so a stale tag never matches: capacity < 2^32).
 *   SC1 (receiver's store of cons_pos, release) -> SA2 (sender's load of
 *       cons_pos, acquire): the receiver's reads of a slot come before the
 *       sender's next-lap writes to it.
 * Those are plain MOVs on x86: no locked instruction on the fast path.
 *
 * Waking without a fence per message.  The MPMC notifier fences (F1) so
 * that its publish and its load of the waiter count cannot pass each other
 * (wait.c).  Here a sender (or receiver) that notifies does publish;
 * compiler barrier; load waiters.  A waiter does waiters++ (W1); F2;
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) (M); re-check; sleep.  M
 * makes every running thread of every registered process execute a full
 * barrier between W1 and the re-check, at some point of its instruction
 * stream: if that point is after the notifier's publish, the re-check
 * sees it; if before, the notifier's load of waiters comes after the
 * barrier and sees W1.  A thread that is not running passed a full barrier
 * when it was switched out.  Either way no wake-up is lost: the same
 * argument as wait.c's with F1 supplied by the waiter, checked in
 * ipc/wait.pml (-DMEMBARRIER -DPASS_ON).  Only processes registered with
 * MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED are covered, so a handle skips
 * the fence only when its process registered (once per process, at its
 * first SPSC open; SHMQ_SPSC_FENCE=1 in the environment declines); an
 * unregistered one fences as the MPMC notifier does.  If the waiter's
 * membarrier() fails, it sleeps 1 ms at a time; and its first sleep is
 * bounded anyway, against a gap in Linux's delivery (wait.c,
 * SPSC_GUARD_NS).
 *
 * Ownership.  hdr->spsc_owner[side] names the process-table entry holding
 * each side (its index and attach time): written under the control-plane
 * lock when a side is taken, and back to 0 when its handle closes.  A
 * side whose holder's entry is dead (liveness lock free) or reused by
 * another attachment is free to take.  Within a process, struct
 * spsc_side.thread binds the side to one thread of one handle.
 *
 * A process killed here.  A sender killed before SP1: its message was never
 * visible; the next sender writes over it.  Killed after SP1 but before
 * its store of prod_pos: the message is out; the next sender skips the
 * published entries (side_take).  Killed inside a batch, whose entries
 * go out last to first: the next sender takes back the ones published
 * after the first unpublished one (unpublish_ahead).  A receiver killed
 * before SC1:
 * the message stays at cons_pos and is delivered again to the next
 * receiver.  There are no other states: no repair, no record.
 *
 * Untrusted memory.  Positions are masked before use; a length is read
 * once and clamped to msg_size (and checked against the caller's buffer);
 * a hostile cons_pos makes the queue look full, a hostile entry makes it
 * look empty or deliver garbage, never an access outside the block.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "spsc.h"
#include "wait.h"

/* ---- membarrier registration (process-wide, once) ------------------------- */

/*
 * The library's only process-wide state besides its constants: the pid of
 * the process that registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED (0:
 * none).  A registration lasts for the life of the process; a pid, not a
 * flag, because a forked child inherits this variable but must register
 * on its own.
 */
static _Atomic pid_t mb_pid;

/* May this process's SPSC notifiers skip their fence?  (At each open.) */
static bool mb_fence_free(void)
{
	const char *no = getenv("SHMQ_SPSC_FENCE");
	pid_t me = getpid();

	/* acquire: pairs with the release below (another thread's). */
	if (atomic_load_explicit(&mb_pid, memory_order_acquire) == me)
		return true;
	if (no && *no && *no != '0')
		return false;
	/* Idempotent: threads racing here both register, harmlessly. */
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
		    0, 0) != 0)
		return false;
	/* release: the registration precedes any handle that relies on it. */
	atomic_store_explicit(&mb_pid, me, memory_order_release);
	return true;
}

/* ---- white-box counters (spsc.h; the tests read them) ----------------------- */

/*
 * How this process's SPSC waits went, so that a test can see a wake-up
 * protocol that leans on the guard (wait.c, SPSC_GUARD_NS): a lost
 * wake-up costs a waiter at most 1 ms there and shows nowhere else.
 * Touched only on the slow path (a waiter about to sleep, or whose guard
 * ran out), never by a send or receive that does not wait.
 */
static _Atomic uint64_t cnt_waits, cnt_expiries, cnt_hits, cnt_mb_fail;
/* Notifies by this thread that fenced (F1): read back by the same thread. */
static __thread uint64_t fenced_notifies;

void shmq__spsc_counts(struct shmq__spsc_counts *c)
{
	/* relaxed, all: statistics; the reader joined or waited for the
	 * threads whose counts it wants, which orders their increments. */
	c->waits = atomic_load_explicit(&cnt_waits, memory_order_relaxed);
	c->guard_expiries = atomic_load_explicit(&cnt_expiries,
						 memory_order_relaxed);
	c->guard_hits = atomic_load_explicit(&cnt_hits, memory_order_relaxed);
	c->membarrier_failures = atomic_load_explicit(&cnt_mb_fail,
						      memory_order_relaxed);
}

void shmq__spsc_guard_expired(bool hit)
{
	/* relaxed, both: counts only; their reader joins us first. */
	atomic_fetch_add_explicit(&cnt_expiries, 1, memory_order_relaxed);
	if (hit)
		atomic_fetch_add_explicit(&cnt_hits, 1, memory_order_relaxed);
}

uint64_t shmq__spsc_fenced_notifies(void)
{
	return fenced_notifies;
}

bool shmq__spsc_registered(void)
{
	/* relaxed: only this process's own earlier store can match. */
	return atomic_load_explicit(&mb_pid, memory_order_relaxed) == getpid();
}

/* wait.c: M, before a waiter on an SPSC queue re-checks and sleeps. */
bool shmq__spsc_membarrier(void)
{
	bool ok = syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED,
			  0, 0) == 0;

	/* relaxed: a count only, as in shmq__spsc_guard_expired(). */
	atomic_fetch_add_explicit(ok ? &cnt_waits : &cnt_mb_fail, 1,
				  memory_order_relaxed);
	return ok;
}

/* ---- geometry --------------------------------------------------------------- */

void shmq__spsc_init(void *block, const struct shmq_qinfo *qi)
{
	struct ring_hdr *h = block;

	/* The block is zero-filled: positions, lengths and owners start at 0. */
	h->magic = RING_MAGIC;
	h->capacity = qi->capacity;
	h->msg_size = qi->msg_size;
	h->slot_size = qi->slot_size;
	h->flags = qi->flags;
}

void shmq__spsc_view(shmq *q, unsigned char *block,
		     const struct shmq_qinfo *qi)
{
	q->flags = qi->flags;
	q->ents = (_Atomic uint64_t *)(block + SHMQ_RING_HDR_SIZE);
	q->main.slots = block + SHMQ_RING_HDR_SIZE +
			shmq__spsc_ents_bytes(qi->capacity);
	/* No lane: its positions stay 0 == 0, so lane_pending() is false. */
	q->lane.slots = NULL;
	q->fence_free = mb_fence_free();
}

static inline unsigned char *spsc_slot(const shmq *q, uint64_t pos)
{
	return q->main.slots + (pos & q->main.mask) * q->main.slot_size;
}

/*
 * Is position @pos published?  Then *@len is its length, clamped to
 * msg_size (untrusted).  SA1: the entry's acquire load.
 */
static inline bool ent_ready(const shmq *q, uint64_t pos, uint32_t *len)
{
	/* SA1: acquire; pairs with SP1: the payload is visible. */
	uint64_t e = atomic_load_explicit(&q->ents[pos & q->main.mask],
					  memory_order_acquire);

	if (!spsc_ent_names(e, pos))
		return false;
#ifdef SHMQ_FUZZ_PLANT
	/* make check-fuzz's negative control only: the clamp forgotten. */
	*len = (uint32_t)e;
#else
	*len = (uint32_t)e > q->msg_size ? q->msg_size : (uint32_t)e;
#endif
	return true;
}

/* ---- sides: who sends, who receives ----------------------------------------- */

#define OWNER_TIME_MASK ((1ull << (64 - SPSC_OWNER_IDX_BITS)) - 1)

/* The owner word naming process entry @idx as it is attached now. */
static uint64_t owner_word(const shmq_seg *seg, uint32_t idx)
{
	const struct proc_entry *pe = shmq__proc_entry(seg, idx);

	return (pe->attach_time_ns & OWNER_TIME_MASK) << SPSC_OWNER_IDX_BITS |
	       (idx + 1);
}

/*
 * Under the lock: does owner word @v name a live attachment?  Dead, gone
 * (entry free or reused: another attach time) and garbage all say no.
 */
static bool holder_alive(shmq_seg *seg, uint64_t v, uint32_t *pid)
{
	uint32_t idx = SPSC_OWNER_IDX(v);
	const struct proc_entry *pe;

	if (idx == 0 || idx > seg->max_procs)
		return false;
	idx--;
	pe = shmq__proc_entry(seg, idx);
	if (pe->state != PROC_ATTACHED || owner_word(seg, idx) != v ||
	    !shmq__proc_alive(seg, idx))
		return false;
	if (pid)
		*pid = pe->pid;
	return true;
}

/*
 * A sender killed inside a batch (which publishes its first entry last)
 * may leave entries published after @pos, the first unpublished position:
 * the receiver, stopped at @pos, would take them for the next sender's
 * messages there.  Give them their previous lap's tag again.  Nobody
 * reads them meanwhile: the receiver cannot pass @pos, and the sender
 * side is ours (under the lock).
 */
static void unpublish_ahead(shmq *q, uint64_t pos)
{
	/* relaxed: the dead sender's last store; it is gone. */
	uint64_t end = atomic_load_explicit(&q->hdr->spsc_batch_end,
					    memory_order_relaxed), x;
	uint32_t len;

	if (end - pos > q->capacity)
		return;                 /* no batch beyond pos (or garbage) */
	for (x = pos + 1; x < end; x++)
		if (ent_ready(q, x, &len))
			/* relaxed: read only after our own SP1 for x. */
			atomic_store_explicit(&q->ents[x & q->main.mask],
					      spsc_ent_word(x - q->capacity, 0),
					      memory_order_relaxed);
}

/*
 * This thread's identity, for the side a thread holds: the thread
 * pointer where the compiler can read it (one instruction; with glibc it
 * is the pthread_t), else pthread_self() (a library call per message).
 * Only compared with values this function returned.
 */
static inline unsigned long thread_id(void)
{
#if defined(__has_builtin) && (defined(__x86_64__) || defined(__aarch64__))
#if __has_builtin(__builtin_thread_pointer)
	return (unsigned long)__builtin_thread_pointer();
#endif
#endif
	return (unsigned long)pthread_self();
}

/*
 * Under the lock: make the side's owner word ours, unless it names another
 * live handle (or ours already, through another handle).  0 or -EBUSY.
 */
static int side_claim(shmq *q, int side, uint64_t mine)
{
	/* acquire: pairs with the release in side_give_back(). */
	uint64_t cur = atomic_load_explicit(&q->hdr->spsc_owner[side],
					    memory_order_acquire);

	if (cur != 0 && (cur == mine || holder_alive(q->seg, cur, NULL)))
		return -EBUSY;
	/*
	 * acq_rel: as above; a holder's give-back races us only from a value
	 * we judged live, and then this CAS fails (we report -EBUSY; the
	 * caller may try again).
	 */
	if (!atomic_compare_exchange_strong_explicit(&q->hdr->spsc_owner[side],
			&cur, mine, memory_order_acq_rel,
			memory_order_relaxed))
		return -EBUSY;
	return 0;
}

/*
 * Under the lock, the side just claimed: where the previous holder left
 * off.  A sender carries on after the last published position, never
 * behind the receiver, taking back what a dead batch published ahead.
 */
static void side_resume(shmq *q, int side)
{
	struct spsc_side *sd = &q->side[side];

	/*
	 * relaxed, under the lock: only this side's holder ever waits on
	 * its event as an ordinary waiter (the low half of waiters), and
	 * there is none now; a holder killed asleep left its announcement
	 * behind, which would cost every later notify a FUTEX_WAKE system
	 * call.  Pollers' announcements (the high half) stay: the next
	 * notifier takes those of dead pollers (wait.c, "Pollers").
	 */
	atomic_fetch_and_explicit(side == SPSC_SEND ?
				  &q->hdr->not_full.waiters :
				  &q->hdr->not_empty.waiters, ~WAITERS_PLAIN,
				  memory_order_relaxed);
	/*
	 * acquire, both: the previous holder's last position store (SP1/SC1)
	 * and everything before it are visible; its slot writes or reads
	 * are over.
	 */
	if (side == SPSC_SEND) {
		uint32_t len;

		sd->pos = atomic_load_explicit(q->main.prod_pos,
					       memory_order_acquire);
		sd->cached = atomic_load_explicit(q->main.cons_pos,
						  memory_order_acquire);
		/*
		 * prod_pos trails the entries: a sender killed between SP1
		 * and its store of prod_pos published more than it says,
		 * and the receiver may have taken those messages already.
		 */
		if ((int64_t)(sd->cached - sd->pos) > 0)
			sd->pos = sd->cached;
		while (sd->pos - sd->cached < q->capacity &&
		       ent_ready(q, sd->pos, &len))
			sd->pos++;
		unpublish_ahead(q, sd->pos);
		/* release: a hint, as in publish(). */
		atomic_store_explicit(q->main.prod_pos, sd->pos,
				      memory_order_release);
	} else {
		sd->pos = atomic_load_explicit(q->main.cons_pos,
					       memory_order_acquire);
	}
	sd->next = sd->pos;
}

#define SIDE_POLL_NS 1000000    /* 1 ms */

/* side_take()'s result: returned in registers, so that the fast path of
 * its callers need not keep their timeout in memory. */
struct take {
	int rc;
	int64_t left;           /* what is left of the caller's timeout */
};

/*
 * Take side @side for this handle and thread: the slow path of
 * side_enter(), once per handle and side.  -EBUSY when another thread of
 * this handle, or another live handle, holds it.  The control-plane lock
 * is waited for within @t (0: 1 ms), and .left is @t less the time that
 * took: -EAGAIN (0) or -ETIMEDOUT when it stayed busy, -EBUSY when
 * someone's read lock blocks it.
 */
static struct take __attribute__((noinline)) side_take(shmq *q, int side,
						       int64_t t)
{
	struct spsc_side *sd = &q->side[side];
	shmq_seg *seg = q->seg;
	unsigned long none = 0;
	struct take tk = { 0, t };
	uint64_t t0 = 0, mine;
	int rc;

	/*
	 * relaxed: decides which thread of this handle may take the side;
	 * that thread alone then writes the rest of *sd.
	 */
	if (!atomic_compare_exchange_strong_explicit(&sd->thread, &none,
			thread_id(), memory_order_relaxed,
			memory_order_relaxed)) {
		tk.rc = -EBUSY;
		return tk;
	}
	if (t > 0)
		t0 = shmq__now_ns(CLOCK_MONOTONIC);
	/*
	 * A poll (timeout 0) still waits up to SIDE_POLL_NS for the lock:
	 * others hold it only briefly, and a handle's first poll should not
	 * fail for that.
	 */
	rc = shmq__seg_lock_for(seg, t == 0 ? SIDE_POLL_NS : t);
	if (rc == -ETIMEDOUT && t == 0)
		rc = -EAGAIN;
	if (rc)
		goto fail;
	if (t > 0) {
		/* What is left of the caller's timeout, at least 1 ns. */
		uint64_t spent = shmq__now_ns(CLOCK_MONOTONIC) - t0;

		tk.left = spent < (uint64_t)t ? t - (int64_t)spent : 1;
	}
	mine = owner_word(seg, (uint32_t)seg->proc_idx);
	rc = side_claim(q, side, mine);
	if (!rc) {
		sd->owner = mine;
		side_resume(q, side);
	}
	shmq__seg_unlock(seg);
	if (!rc)
		return tk;
fail:
	/* relaxed: only we could have set it. */
	atomic_store_explicit(&sd->thread, 0, memory_order_relaxed);
	tk.rc = rc;
	return tk;
}

/*
 * The calling thread holds side @side of @q, or takes it now (see
 * side_take(); the lvalue @t, the call's timeout, is reduced by the time
 * that took), or -EBUSY.  A macro: @t stays in a register.
 */
#define side_enter(hq, hside, ht) __extension__ ({                        \
	int rc_ = 0;                                                       \
	/* relaxed: only this thread stores its own id here (side_take). */ \
	if (__builtin_expect(atomic_load_explicit(&(hq)->side[hside].thread, \
			memory_order_relaxed) != thread_id(), 0)) {        \
		struct take tk_ = side_take((hq), (hside), (ht));          \
									   \
		rc_ = tk_.rc;                                              \
		(ht) = tk_.left;                                           \
	}                                                                  \
	rc_;                                                               \
})

static void side_give_back(shmq *q, int side)
{
	struct spsc_side *sd = &q->side[side];
	uint64_t v = sd->owner;

	/* relaxed: the handle is being closed; nobody else uses it now. */
	if (!atomic_load_explicit(&sd->thread, memory_order_relaxed))
		return;
	/*
	 * release: our last SP1/SC1 and slot accesses come before the next
	 * holder's acquire of the word (side_take).  Fails only if someone
	 * took the side from us, which happens only to the dead.
	 */
	atomic_compare_exchange_strong_explicit(&q->hdr->spsc_owner[side], &v,
			0, memory_order_release, memory_order_relaxed);
	/* relaxed: as above. */
	atomic_store_explicit(&sd->thread, 0, memory_order_relaxed);
}

void shmq__spsc_close(shmq *q)
{
	free(q->side[SPSC_SEND].res_len);
	side_give_back(q, SPSC_SEND);
	side_give_back(q, SPSC_RECV);
}

uint32_t shmq__spsc_holder(shmq_seg *seg, const struct ring_hdr *h, int side)
{
	/* relaxed: display; checked for liveness below. */
	uint64_t v = atomic_load_explicit(&h->spsc_owner[side],
					  memory_order_relaxed);
	uint32_t pid = 0;

	if (v && !holder_alive(seg, v, &pid))
		pid = 0;
	return pid;
}

int shmq__spsc_reclaim(shmq_seg *seg, struct ring_hdr *h)
{
	int side, n = 0;

	for (side = 0; side < 2; side++) {
		/* acquire: as in side_take(). */
		uint64_t v = atomic_load_explicit(&h->spsc_owner[side],
						  memory_order_acquire);

		if (v && !holder_alive(seg, v, NULL) &&
		    /* relaxed: under the lock; the holder is gone. */
		    atomic_compare_exchange_strong_explicit(&h->spsc_owner[side],
				&v, 0, memory_order_relaxed,
				memory_order_relaxed)) {
			/* relaxed: its announcement, as in side_resume(). */
			atomic_fetch_and_explicit(side == SPSC_SEND ?
						  &h->not_full.waiters :
						  &h->not_empty.waiters,
						  ~WAITERS_PLAIN,
						  memory_order_relaxed);
			n++;
		}
	}
	return n;
}

/*
 * shmq_poll (poll.c): may side @side of @q go on?  Through the side's
 * own position when the calling thread holds it, else through the
 * header's: a hint either way (readiness is a hint, shmq.h).
 */
bool shmq__spsc_poll_ready(const shmq *q, int side)
{
	const struct spsc_side *sd = &q->side[side];
	/* relaxed: only this thread stores its own id there (side_take). */
	bool mine = atomic_load_explicit(&((struct spsc_side *)sd)->thread,
					 memory_order_relaxed) == thread_id();
	uint64_t tail, head;
	uint32_t len;

	if (side == SPSC_RECV) {
		/* acquire: as SA2; the entry's load is SA1 (ent_ready). */
		head = mine ? sd->next :
		       atomic_load_explicit(q->main.cons_pos,
					    memory_order_acquire);
		return ent_ready(q, head, &len);
	}
	/* SA2: acquire, as in spsc_can_send(). */
	tail = atomic_load_explicit(q->main.cons_pos, memory_order_acquire);
	/* relaxed: a hint (the sender's own position when it is ours). */
	head = mine ? sd->next :
	       atomic_load_explicit(q->main.prod_pos, memory_order_relaxed);
	return head - tail < q->capacity;
}

/* ---- waking -------------------------------------------------------------------- */

/* After publishing (SP1) or freeing (SC1): wake the other side if it sleeps. */
static inline void spsc_notify(shmq *q, struct shmq_event *ev, unsigned n)
{
	if (__builtin_expect(q->fence_free, 1))
		/*
		 * F1': a compiler barrier; the CPU's ordering of our store and
		 * the load below is supplied by a waiter's membarrier() (M).
		 */
		atomic_signal_fence(memory_order_seq_cst);
	else {
		/* F1: seq_cst, as in shmq__notify(); pairs with F2. */
		atomic_thread_fence(memory_order_seq_cst);
		fenced_notifies++;      /* thread-local: no atomic needed */
	}
	/* relaxed: ordered by F1' + M (or F1 + F2), see the top. */
	uint32_t w = atomic_load_explicit(&ev->waiters, memory_order_relaxed);

	if (__builtin_expect(w != 0, 0))
		shmq__wake(q, ev, n, w);
}

/* Nothing is ever stuck: no claims, no repairs. */
static bool spsc_stuck(const shmq *q, uint64_t *at)
{
	(void)q;
	(void)at;
	return false;
}

/* Is there room for position q->side[SEND].next?  (SA2, acquire.) */
static bool spsc_can_send(const shmq *q)
{
	/* SA2: acquire; pairs with SC1: the receiver is done with the slot. */
	uint64_t tail = atomic_load_explicit(q->main.cons_pos,
					     memory_order_acquire);

	return q->side[SPSC_SEND].next - tail < q->capacity;
}

static bool spsc_can_recv(const shmq *q)
{
	uint32_t len;

	return ent_ready(q, q->side[SPSC_RECV].next, &len);
}

/*
 * The slow path of both sides: the cached position said full (empty);
 * read the other side's position again, and wait while it stays so.
 * 0 when there is room (a message) at side->next, else -errno.
 */
static int __attribute__((noinline))
spsc_wait(shmq *q, int side, int64_t timeout_ns)
{
	struct spsc_side *sd = &q->side[side];
	bool send = side == SPSC_SEND;
	ready_fn ready = send ? spsc_can_send : spsc_can_recv;
	struct shmq_event *ev = send ? &q->hdr->not_full : &q->hdr->not_empty;
	struct deadline dl = { timeout_ns, 0, 0 };
	bool counted = false;
	int rc = 0;

	for (;;) {
		if (send)
			/* SA2: acquire, as in spsc_can_send(). */
			sd->cached = atomic_load_explicit(q->main.cons_pos,
							  memory_order_acquire);
		if (send ? sd->next - sd->cached < q->capacity : ready(q))
			return 0;
		if (timeout_ns == 0)
			return -EAGAIN;
		if (rc)
			return rc;      /* the last look after the deadline */
		if (!counted) {
			/* relaxed: statistics. */
			atomic_fetch_add_explicit(send ? &q->hdr->full_waits :
						  &q->hdr->empty_waits, 1,
						  memory_order_relaxed);
			counted = true;
		}
		rc = shmq__wait(q, ev, ready, spsc_stuck, &dl);
	}
}

/* Room for position sd->next (the sender's), waiting per @timeout_ns. */
static inline int send_room(shmq *q, struct spsc_side *sd, int64_t timeout_ns)
{
	if (__builtin_expect(sd->next - sd->cached < q->capacity, 1))
		return 0;
	return spsc_wait(q, SPSC_SEND, timeout_ns);
}

/*
 * A message at position sd->next (the receiver's), waiting per timeout:
 * 0 and its length in *@len, or -errno.
 */
static inline int recv_ready(shmq *q, struct spsc_side *sd, uint32_t *len,
			     int64_t timeout_ns)
{
	int rc;

	if (__builtin_expect(ent_ready(q, sd->next, len), 1))
		return 0;
	rc = spsc_wait(q, SPSC_RECV, timeout_ns);
	if (rc == 0 && !ent_ready(q, sd->next, len))
		rc = -EAGAIN;   /* cannot be: ready() said so; be safe */
	return rc;
}

/*
 * Every position below @head is published (SP1, in put_msg or commit):
 * say so in prod_pos, a hint for inspection and for the next sender.
 */
static inline void publish(shmq *q, struct spsc_side *sd, uint64_t head)
{
	/* release: after the entries; readers re-check each entry anyway. */
	atomic_store_explicit(q->main.prod_pos, head, memory_order_release);
	sd->pos = head;
}

/* SC1: free every position below @tail. */
static inline void free_upto(shmq *q, struct spsc_side *sd, uint64_t tail)
{
	/* SC1: release; our reads of the slots first.  Pairs with SA2. */
	atomic_store_explicit(q->main.cons_pos, tail, memory_order_release);
	sd->pos = tail;
}

/* ---- copying calls ---------------------------------------------------------- */

/* SP1: the entry of @pos, after its payload. */
static inline void ent_publish(shmq *q, uint64_t pos, uint32_t len)
{
	/* SP1: release; the payload first.  Pairs with SA1 (ent_ready). */
	atomic_store_explicit(&q->ents[pos & q->main.mask],
			      spsc_ent_word(pos, len), memory_order_release);
}

static inline void put_msg(shmq *q, uint64_t pos, const void *msg, size_t len)
{
	if (len)        /* msg may be NULL when len is 0 */
		memcpy(spsc_slot(q, pos), msg, len);
	ent_publish(q, pos, (uint32_t)len);
}

int shmq__spsc_send(shmq *q, const void *msg, size_t len, int64_t timeout_ns)
{
	struct spsc_side *sd = &q->side[SPSC_SEND];
	int rc = side_enter(q, SPSC_SEND, timeout_ns);

	if (__builtin_expect(rc != 0, 0))
		return rc;
	if (__builtin_expect(sd->next != sd->pos, 0))
		return -EBUSY;          /* a reservation is outstanding */
	rc = send_room(q, sd, timeout_ns);
	if (__builtin_expect(rc != 0, 0))
		return rc;
	put_msg(q, sd->pos, msg, len);
	publish(q, sd, ++sd->next);
	spsc_notify(q, &q->hdr->not_empty, 1);
	return 0;
}

ssize_t shmq__spsc_recv(shmq *q, void *buf, size_t buflen, int64_t timeout_ns)
{
	struct spsc_side *sd = &q->side[SPSC_RECV];
	int rc = side_enter(q, SPSC_RECV, timeout_ns);
	uint32_t len;

	if (__builtin_expect(rc != 0, 0))
		return rc;
	if (__builtin_expect(sd->next != sd->pos, 0))
		return -EBUSY;          /* an acquisition is outstanding */
	rc = recv_ready(q, sd, &len, timeout_ns);
	if (__builtin_expect(rc != 0, 0))
		return rc;
	if (__builtin_expect(len > buflen, 0))
		return -EMSGSIZE;       /* not consumed */
	if (len)        /* buf may be NULL when buflen is 0 */
		memcpy(buf, spsc_slot(q, sd->pos), len);
	free_upto(q, sd, ++sd->next);
	spsc_notify(q, &q->hdr->not_full, 1);
	return len;
}

/* @n messages, each checked by the caller and at most capacity of them. */
int shmq__spsc_send_batch(shmq *q, const struct iovec *msgs, unsigned n,
			  int64_t timeout_ns)
{
	struct spsc_side *sd = &q->side[SPSC_SEND];
	uint64_t room;
	unsigned i;
	int rc = side_enter(q, SPSC_SEND, timeout_ns);

	if (rc)
		return rc;
	if (sd->next != sd->pos)
		return -EBUSY;
	rc = send_room(q, sd, timeout_ns);
	if (rc)
		return rc;
	room = q->capacity - (sd->next - sd->cached);
	if (room < n) {
		/* SA2: acquire; as in spsc_can_send().  More may be free now. */
		uint64_t tail = atomic_load_explicit(q->main.cons_pos,
						     memory_order_acquire);

		if (sd->next - tail < q->capacity) {
			sd->cached = tail;
			room = q->capacity - (sd->next - tail);
		}
	}
	if (n > room)
		n = (unsigned)room;
	/*
	 * relaxed: ordered before the entries by their release (SP1).  If we
	 * die while publishing, the next sender learns from it which later
	 * entries we may have published ahead of the first (side_take).
	 */
	atomic_store_explicit(&q->hdr->spsc_batch_end, sd->pos + n,
			      memory_order_relaxed);
	for (i = 0; i < n; i++)
		if (msgs[i].iov_len)
			memcpy(spsc_slot(q, sd->pos + i), msgs[i].iov_base,
			       msgs[i].iov_len);
	/*
	 * The first entry last: the receiver, which polls the first, then
	 * finds the whole batch, instead of chasing our writes entry by
	 * entry through the lines they share.
	 */
	for (i = n; i-- > 0;)
		ent_publish(q, sd->pos + i, (uint32_t)msgs[i].iov_len);
	sd->next += n;
	publish(q, sd, sd->next);
	spsc_notify(q, &q->hdr->not_empty, n);
	return (int)n;
}

/* At most capacity buffers (the caller's bound). */
int shmq__spsc_recv_batch(shmq *q, struct iovec *bufs, unsigned n,
			  int64_t timeout_ns)
{
	struct spsc_side *sd = &q->side[SPSC_RECV];
	uint32_t len;
	unsigned i;
	int rc = side_enter(q, SPSC_RECV, timeout_ns);

	if (rc)
		return rc;
	if (sd->next != sd->pos)
		return -EBUSY;
	rc = recv_ready(q, sd, &len, timeout_ns);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		if (i && !ent_ready(q, sd->pos + i, &len))
			break;          /* no more published */
		if (len > bufs[i].iov_len)
			break;          /* this one and the rest stay */
		if (len)
			memcpy(bufs[i].iov_base, spsc_slot(q, sd->pos + i), len);
		bufs[i].iov_len = len;
	}
	if (i == 0)
		return -EMSGSIZE;
	sd->next += i;
	free_upto(q, sd, sd->next);
	spsc_notify(q, &q->hdr->not_full, i);
	return (int)i;
}

/* ---- zero-copy: in order -------------------------------------------------- */

int shmq__spsc_reserve(shmq *q, size_t len, struct shmq_msg *m,
		       int64_t timeout_ns)
{
	struct spsc_side *sd = &q->side[SPSC_SEND];
	int rc = side_enter(q, SPSC_SEND, timeout_ns);

	if (rc)
		return rc;
	if (sd->next - sd->pos >= q->capacity)
		return -EBUSY;          /* every slot is reserved already */
	/*
	 * The reserved lengths, for commit's check: private, because reading
	 * them back from the entries would wait for a line the receiver reads.
	 */
	if (__builtin_expect(!sd->res_len, 0)) {
		sd->res_len = calloc(q->capacity, sizeof(*sd->res_len));
		if (!sd->res_len)
			return -ENOMEM;
	}
	rc = send_room(q, sd, timeout_ns);
	if (rc)
		return rc;
	sd->res_len[sd->next & q->main.mask] = (uint32_t)len;
	if (q->capacity >= 32)
		ring_prefetch_write(&q->main, sd->next + 8);
	m->data = spsc_slot(q, sd->next);
	m->len = len;
	m->token = sd->next++;
	return 0;
}

int shmq__spsc_commit(shmq *q, struct shmq_msg *m)
{
	struct spsc_side *sd = &q->side[SPSC_SEND];
	int64_t forever = SHMQ_FOREVER;         /* no timeout to keep */
	int rc = side_enter(q, SPSC_SEND, forever);

	if (rc)
		return rc;
	/* Only the oldest outstanding reservation, with no more than it got. */
	if (m->token != sd->pos || sd->next == sd->pos ||
	    m->len > sd->res_len[sd->pos & q->main.mask])
		return -EINVAL;
	ent_publish(q, sd->pos, (uint32_t)m->len);
	publish(q, sd, sd->pos + 1);
	spsc_notify(q, &q->hdr->not_empty, 1);
	return 0;
}

int shmq__spsc_acquire(shmq *q, struct shmq_msg *m, int64_t timeout_ns)
{
	struct spsc_side *sd = &q->side[SPSC_RECV];
	uint32_t len;
	int rc = side_enter(q, SPSC_RECV, timeout_ns);

	if (rc)
		return rc;
	if (sd->next - sd->pos >= q->capacity)
		return -EBUSY;          /* every message is held already */
	rc = recv_ready(q, sd, &len, timeout_ns);
	if (rc)
		return rc;
	m->data = spsc_slot(q, sd->next);
	m->len = len;
	m->token = sd->next++;
	return 0;
}

int shmq__spsc_release(shmq *q, struct shmq_msg *m)
{
	struct spsc_side *sd = &q->side[SPSC_RECV];
	int64_t forever = SHMQ_FOREVER;         /* no timeout to keep */
	int rc = side_enter(q, SPSC_RECV, forever);

	if (rc)
		return rc;
	if (m->token != sd->pos || sd->next == sd->pos)
		return -EINVAL;
	free_upto(q, sd, sd->pos + 1);
	spsc_notify(q, &q->hdr->not_full, 1);
	return 0;
}

/* ---- purge and peek ------------------------------------------------------- */

int shmq__spsc_purge(shmq *q)
{
	struct spsc_side *sd = &q->side[SPSC_RECV];
	/* relaxed: whether this call takes the side (only for itself). */
	bool took = atomic_load_explicit(&sd->thread,
					 memory_order_relaxed) == 0;
	uint64_t owner, head, lim, n = 0;
	int64_t forever = SHMQ_FOREVER;         /* no timeout to keep */
	uint32_t len;
	int rc = side_enter(q, SPSC_RECV, forever);

	if (rc)
		return rc;
	if (sd->next != sd->pos) {
		rc = -EBUSY;
		goto out;
	}
	/*
	 * What was sent before we began is ours to drop.  While a live
	 * sender holds its side, that is what prod_pos says (it trails the
	 * entries only by a call in flight, which may stay).  A dead or
	 * absent sender may have published beyond prod_pos: then the
	 * entries say, read under the lock so that no new sender takes
	 * the side meanwhile.
	 */
	rc = shmq__seg_lock(q->seg);
	if (rc)
		goto out;
	/* acquire: as in side_take(). */
	owner = atomic_load_explicit(&q->hdr->spsc_owner[SPSC_SEND],
				     memory_order_acquire);
	if (owner && holder_alive(q->seg, owner, NULL))
		/* acquire: pairs with publish()'s release. */
		head = atomic_load_explicit(q->main.prod_pos,
					    memory_order_acquire);
	else
		head = shmq__spsc_published_end(q->hdr, q->ents, q->capacity);
	shmq__seg_unlock(q->seg);
	lim = (int64_t)(head - sd->pos) > 0 ? head - sd->pos : 0;
	if (lim > q->capacity)
		lim = q->capacity;
	while (n < lim && ent_ready(q, sd->pos + n, &len))
		n++;
	if (n) {
		sd->next += n;
		free_upto(q, sd, sd->next);
		spsc_notify(q, &q->hdr->not_full, (unsigned)n);
	}
	rc = (int)n;
out:
	if (took)
		side_give_back(q, SPSC_RECV);
	return rc;
}

uint64_t shmq__spsc_published_end(const struct ring_hdr *h,
				  const _Atomic uint64_t *ents,
				  uint32_t capacity)
{
	/* acquire, both: the receiver's SC1 and the sender's hint. */
	uint64_t c = atomic_load_explicit(&h->cons_pos, memory_order_acquire);
	uint64_t p = atomic_load_explicit(&h->prod_pos, memory_order_acquire);

	if ((int64_t)(c - p) > 0 || p - c > capacity)
		p = c;          /* trails the receiver (or is garbage) */
	while (p - c < capacity) {
		/* SA1: acquire, as in ent_ready(). */
		uint64_t e = atomic_load_explicit(&ents[p & (capacity - 1)],
						  memory_order_acquire);

		if (!spsc_ent_names(e, p))
			break;
		p++;
	}
	return p;
}

int shmq__spsc_peek(shmq_seg *seg, const struct shmq_qinfo *g,
		    struct shmq_peek_msg *msgs, unsigned n)
{
	unsigned char *block = seg->base + g->off;
	const struct ring_hdr *h = (const struct ring_hdr *)block;
	const _Atomic uint64_t *ents =
		(const _Atomic uint64_t *)(block + SHMQ_RING_HDR_SIZE);
	const unsigned char *slots = block + SHMQ_RING_HDR_SIZE +
				     shmq__spsc_ents_bytes(g->capacity);
	uint64_t mask = g->capacity - 1, pos, end;
	unsigned got = 0;

	/* acquire: pairs with SC1; where the receiver is. */
	pos = atomic_load_explicit(&h->cons_pos, memory_order_acquire);
	for (end = pos + g->capacity; pos != end && got < n; pos++) {
		struct shmq_peek_msg *m = &msgs[got];
		/* SA1: acquire; pairs with SP1: the payload is visible. */
		uint64_t e = atomic_load_explicit(&ents[pos & mask],
						  memory_order_acquire), again;
		uint32_t len = (uint32_t)e;

		if (!spsc_ent_names(e, pos))
			break;          /* not published: the end */
		if (len > g->msg_size)
			len = g->msg_size;
		m->len = len;
		/* Bytes a sender may rewrite once the receiver frees them. */
		memcpy(m->data, slots + (pos & mask) * g->slot_size,
		       len < m->size ? len : m->size);
		/*
		 * acquire fence: orders the copy before the load of cons_pos;
		 * a sender rewrites slot pos only after it saw cons_pos > pos
		 * (SA2 after SC1), so cons_pos <= pos now means the copy is
		 * intact.
		 */
		atomic_thread_fence(memory_order_acquire);
		/* relaxed: ordered by the fence. */
		again = atomic_load_explicit(&h->cons_pos, memory_order_relaxed);
		if ((int64_t)(again - pos) > 0)
			continue;       /* consumed while we copied */
		m->pos = pos;
		m->redelivered = 0;
		got++;
	}
	return (int)got;
}
