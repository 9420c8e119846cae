/*
 * wait.pml - Promela model of the futex wait/wake protocol of ipc/wait.c
 * and ipc/wait.h, checked by `make model` (spin -a; cc pan.c; ./pan).
 *
 * Property: no lost wake-up.  NP producers each publish one message and
 * notify; NC consumers each want one message.  Consumer 0 blocks forever
 * (SHMQ_FOREVER); the others may also time out at any moment (a timed
 * wait), after which they make one last claim attempt and leave, as
 * claim_cons() does.  With NP >= NC a consumer that blocks forever is a
 * lost wake-up: spin reports it as an invalid end state.  Spurious wake-ups
 * (EINTR, a wake meant for someone else) are allowed at any time.
 *
 * Memory model.  Sequential consistency would hide the very reordering the
 * fences exist for, so each process has a store buffer (one pending store,
 * as in x86-TSO and weaker): its stores (R1 publish, W1 waiters++, the
 * leaving waiters--, R3 seq++) become visible to others only when the
 * buffer drains, which happens at any moment (process `memory`) and at a
 * fence.  Loads read the process's own pending store first (forwarding),
 * then memory.  W1 and R3 are read-modify-writes: we buffer their *delta*,
 * applied atomically when drained, so no update is lost but its visibility
 * may be late, which is all C11 promises for an RMW not followed by a
 * fence.  A process that stores while its buffer is full drains it first
 * (stronger than hardware, harmless here: every path has at most one store
 * between fences).  Claims are CASes on cons_pos in memory (relaxed RMWs:
 * they do not drain).  The kernel's futex_wait() and futex_wake() execute
 * a full barrier first (kernel/futex/waitwake.c, "smp_mb() (A)/(B)"), so
 * they drain; futex_wait compares the word with the expected value and
 * queues the waiter atomically.
 *
 * Variants (make model runs -DPASS_ON, -DSTALL, -DMEMBARRIER -DPASS_ON and
 * the negative controls: no fix at all, -DNO_F1, -DNO_F2; the MPMC queue
 * implements -DPASS_ON with fences, the SPSC queue (ipc/spsc.c) implements
 * -DMEMBARRIER (its one waiter per event needs no pass-on, which it
 * harmlessly models); -DWAKE_READY is an alternative neither uses.  An
 * earlier -DMEMBARRIER reported a lost wake-up that was
 * the model's own bug: M2 drained the buffers of processes 4 and 5, which
 * do not exist with NP = NC = 2 and whose uninitialised entries (variable
 * 0, value 0) then "stored" 0 into slot 0, unpublishing a message.  M2 now
 * drains existing processes only, and the variant verifies):
 *   -DWAKE_READY  the notifier wakes as many sleepers as there are
 *                 consecutive published positions from its own (the fix
 *                 proposed for finding F1: with one wake per message, a
 *                 message published ahead of an unpublished head wakes a
 *                 waiter that cannot use it; spin finds that lost wake-up
 *                 with neither variant: 121731 states, invalid end state);
 *   -DPASS_ON     the fix the C uses: a consumer that has claimed a
 *                 message and sees waiters, and the next position ready,
 *                 wakes one more (shmq__pass_on()).  The publisher of a
 *                 head that was holding others up wakes one; each woken
 *                 claimer passes it on while messages are ready.  Also
 *                 covers a waiter that is woken and times out at once, and
 *                 takes one message in its last attempt;
 *   -DSTALL       a waiter whose head position is claimed but unpublished
 *                 sleeps at most the stall period (shmq__stall_check), as
 *                 the C does while stuck -- also hides the lost wake-up;
 *   -DMEMBARRIER  the asymmetric variant SHMQ_SPSC queues use: F1 is
 *                 only a compiler barrier and the waiter calls
 *                 membarrier(GLOBAL_EXPEDITED) (M2) after F2, which makes
 *                 every process run a full barrier (drains its store
 *                 buffer) before it returns.  (Linux can miss a CPU that
 *                 idled lazily on the process's mm at registration; the C
 *                 bounds a waiter's first sleep against that, wait.c
 *                 SPSC_GUARD_NS, which this model does not need.);
 *   -DNO_F1, -DNO_F2  drop a fence: spin must find the lost wake-up
 *                 (so this model can fail).
 *
 * Correspondence (C label -> model):
 *   ring_publish() R1 (release store seq=p+1)   producer: STORE(SLOT0+i)
 *   shmq__notify() F1 (seq_cst fence)           producer: DRAIN (unless NO_F1)
 *   shmq__notify() load of waiters              producer: w = waiters
 *   shmq__wake() R3 (fetch_add seq)             producer: ADD(SEQ, 1)
 *   shmq__wake() FUTEX_WAKE(n = 1)              producer: futex_wake
 *   ring_cons_claim() A2 + C2 CAS               consumer: claim()
 *   shmq__wait() spin                           consumer: claim() retried
 *   shmq__wait() W1 (fetch_add waiters)         consumer: ADD(WAITERS, 1)
 *   shmq__wait() F2 (seq_cst fence)             consumer: DRAIN (unless NO_F2)
 *   shmq__wait() A3 (load seq)                  consumer: v = LOAD(SEQ)
 *   shmq__wait() re-check ready()               consumer: ready()
 *   shmq__wait() FUTEX_WAIT_BITSET              consumer: futex_wait
 *   shmq__wait() out: waiters-- (relaxed)       consumer: ADD(WAITERS, -1)
 *   claim_cons() last attempt after -ETIMEDOUT  consumer: timed-out path
 * The not_full direction (producers wait, consumers free with R2 and
 * notify) is the same protocol with the roles swapped.
 */

#ifndef NP
#define NP 2
#endif
#ifndef NC
#define NC 2
#endif
#define NPROC (NP + NC)
#ifndef SPURIOUS
#define SPURIOUS 1        /* spurious wake-ups per consumer; bounded, or a
			     * lost wake-up could hide behind one forever */
#endif

/* Shared variables, by index: slots 0..NP-1, then the event words. */
#define SEQ      NP
#define WAITERS  (NP + 1)
#define NVAR     (NP + 2)

byte mem[NVAR];           /* slot i: 1 = published; SEQ; WAITERS */
byte cons_pos;            /* next position to claim (memory, CAS) */

/* Store buffers: one pending store or RMW delta per process. */
byte pvar[6];         /* 255: empty */
short pval[6];        /* a value (STORE) or a delta (ADD) */
bool padd[6];

bool sleeping[8];     /* queued in FUTEX_WAIT */
byte got;                 /* messages consumed */

#define EMPTY 255

/* FUTEX_WAKE(1): any one sleeper, none if nobody sleeps. */
inline futex_wake1(f_c)
{
	atomic {
		f_c = NP;
		do
		:: f_c == NPROC -> break
		:: f_c < NPROC && sleeping[f_c] ->
			sleeping[f_c] = false; break
		:: f_c < NPROC && (!sleeping[f_c] ||
			(f_c + 1 < NPROC && sleeping[f_c + 1]) ||
			(f_c + 2 < NPROC && sleeping[f_c + 2])) -> f_c++
		od
	}
}

inline drain(d_who)
{
	atomic {
		if
		:: pvar[d_who] != EMPTY ->
			if
			:: padd[d_who] -> mem[pvar[d_who]] = mem[pvar[d_who]] + pval[d_who]
			:: else -> mem[pvar[d_who]] = pval[d_who]
			fi;
			pvar[d_who] = EMPTY
		:: else -> skip
		fi
	}
}

inline store(s_who, s_var, s_val, s_add)
{
	drain(s_who);
	atomic { pvar[s_who] = s_var; pval[s_who] = s_val; padd[s_who] = s_add }
}

/* Forwarding load: our own pending store first, then memory. */
inline load(l_who, l_var, l_out)
{
	atomic {
		if
		:: pvar[l_who] == l_var && !padd[l_who] -> l_out = pval[l_who]
		:: pvar[l_who] == l_var && padd[l_who] -> l_out = mem[l_var] + pval[l_who]
		:: else -> l_out = mem[l_var]
		fi
	}
}

/* The buffers drain at any moment (one option per process, up to 6). */
#define FLUSH(k) :: atomic { k < NPROC && pvar[k] != EMPTY -> drain(k) }

active proctype memory()
{
end:	do
	FLUSH(0)
	FLUSH(1)
	FLUSH(2)
	FLUSH(3)
	FLUSH(4)
	FLUSH(5)
	od
}

proctype producer(byte me)
{
	byte w, c, k, s, nw;

	store(me, me, 1, false);          /* R1: publish slot `me` */
#if !defined(NO_F1) && !defined(MEMBARRIER)
	drain(me);                        /* F1 (MEMBARRIER: a compiler barrier) */
#endif
	load(me, WAITERS, w);
	if
	:: w != 0 ->
#ifdef WAKE_READY
		/* wake as many as consecutive published slots from ours */
		k = me;
		do
		:: k < NP -> load(me, k, s); if :: s == 1 -> k++ :: else -> break fi
		:: else -> break
		od;
		nw = k - me;
#else
		nw = 1;
#endif
		store(me, SEQ, 1, true);  /* R3 */
		drain(me);                /* the kernel's barrier */
		atomic {                  /* FUTEX_WAKE(nw) */
		  do
		  :: nw == 0 -> break
		  :: else ->
			nw--;
			/* any one sleeper, none if nobody sleeps */
			c = NP;
			do
			:: c == NPROC -> break
			:: c < NPROC && sleeping[c] ->
				sleeping[c] = false; break
			:: c < NPROC && (!sleeping[c] ||
				(c + 1 < NPROC && sleeping[c + 1]) ||
				(c + 2 < NPROC && sleeping[c + 2])) -> c++
			od
		  od
		}
	:: else -> skip
	fi
}

/* Consumers: process ids NP .. NP+NC-1; index NP is the FOREVER one. */
proctype consumer(byte me)
{
	byte p, s, v, e, w, c, spurious = 0;
	bool timed = (me != NP), timedout = false, bounded = false;

retry:
	/* ring_cons_claim: A2 on the slot, then the CAS on cons_pos. */
	atomic {
		p = cons_pos;
		if
		:: p < NP -> load(me, p, s)
		:: else -> s = 0
		fi;
		if
		:: s == 1 && cons_pos == p -> cons_pos = p + 1; got++; goto claimed
		:: else -> skip
		fi
	}
	if
	:: timedout -> goto done          /* the last attempt failed: leave */
	:: else -> skip
	fi;
#ifdef STALL
	/* shmq__stall_check(): is the head claimed but unpublished? */
	atomic {
		p = cons_pos;
		if
		:: p < NP -> load(me, p, s); bounded = (s == 0)
		:: else -> bounded = false
		fi
	}
#endif
	store(me, WAITERS, 1, true);      /* W1 */
#ifndef NO_F2
	drain(me);                        /* F2 */
#endif
#ifdef MEMBARRIER
	/* M2: membarrier(GLOBAL_EXPEDITED): every process runs a full
	 * barrier before it returns (their buffers drain, in any order). */
	for (c : 0 .. NPROC - 1) {
		drain(c)
	}
#endif
	load(me, SEQ, v);                 /* A3 */
	atomic {                          /* re-check ready() */
		p = cons_pos;
		if
		:: p < NP -> load(me, p, s)
		:: else -> s = 0
		fi
	}
	if
	:: s == 1 -> goto leave
	:: else -> skip
	fi;
	drain(me);                        /* futex_wait: kernel barrier */
	atomic {
		load(me, SEQ, e);
		if
		:: e != v -> goto leave   /* EAGAIN: a wake-up came first */
		:: else -> sleeping[me] = true
		fi
	}
	if
	:: !sleeping[me] -> skip          /* woken */
	:: atomic { sleeping[me] && spurious < SPURIOUS ->
			sleeping[me] = false; spurious++ }  /* EINTR etc. */
	:: timed -> atomic { sleeping[me] = false; timedout = true }
	:: bounded -> atomic { sleeping[me] = false }  /* stall period */
	fi;
leave:
	store(me, WAITERS, -1, true);     /* waiters-- */
	goto retry;
claimed:
#ifdef PASS_ON
	/* shmq__pass_on(): F1 (as in shmq__notify), waiters, ready(), wake 1 */
#if !defined(NO_F1) && !defined(MEMBARRIER)
	drain(me);
#endif
	load(me, WAITERS, w);
	if
	:: w != 0 ->
		atomic {
			p = cons_pos;
			if
			:: p < NP -> load(me, p, s)
			:: else -> s = 0
			fi
		}
		if
		:: s == 1 ->
			store(me, SEQ, 1, true);  /* R3 */
			drain(me);                /* the kernel's barrier */
			futex_wake1(c)
		:: else -> skip
		fi
	:: else -> skip
	fi;
#endif
done:
	skip
}

init {
	byte i;

	atomic {
		for (i : 0 .. NPROC - 1) {
			pvar[i] = EMPTY
		}
		for (i : 0 .. NP - 1) {
			run producer(i)
		}
		for (i : NP .. NPROC - 1) {
			run consumer(i)
		}
	}
}
