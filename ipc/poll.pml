/*
 * poll.pml - Promela model of a poller (shmq_poll, ipc/poll.c) beside an
 * ordinary receiver (shmq__wait, ipc/wait.c) on one queue, checked by
 * `make model`.  The memory model (store buffers that drain at any moment
 * and at fences; RMW deltas; the kernel's barriers in futex calls) is
 * ipc/wait.pml's, which explains it.
 *
 * Actors.  NP producers (default 2) each publish one message and notify
 * (shmq__notify + shmq__wake).  One receiver blocks for ever for one
 * message (shmq_recv, SHMQ_FOREVER).  One poller polls the queue for
 * SHMQ_POLLIN and never consumes (the worst neighbour: "a poller woken in
 * place of a receiver that then does not consume"); it returns ready at
 * most SEEN_MAX times, then leaves.  Spurious wake-ups: one each.
 *
 * Properties.
 *   - The receiver never sleeps for ever: spin reports an invalid end
 *     state (the receiver has no end label).
 *   - The poller never sleeps for ever while a message waits: when
 *     nothing else can move, a watchdog asserts that the poller is not
 *     asleep beside a published, unconsumed message.  (The poller may
 *     sleep for ever beside an empty queue: its sleep is an end state.)
 *
 * Variants (make model runs the first three and the three controls):
 *   (none)            NP = 2: the protocol as the C implements it;
 *   -DNP=1            one message: the receiver and the poller compete;
 *   -DMEMBARRIER      (with -DNP=1) an SHMQ_SPSC queue: the notifier does
 *                     not fence (F1 is a compiler barrier) and the
 *                     receiver and the poller call membarrier() after F2
 *                     (spsc.c; poll.c does so when a set has an SPSC
 *                     queue);
 *   -DSHARED_WORD     negative control (with -DNP=1): the poller sleeps on
 *                     the receivers' futex word seq and counts in waiters
 *                     like a receiver, and the notifier wakes as many as it
 *                     published.  The wake-up goes to the poller, which
 *                     does not consume; the receiver sleeps beside the
 *                     message: invalid end state;
 *   -DNO_POLLER_M     negative control (with -DMEMBARRIER, NP = 2): the
 *                     poller skips membarrier() on an SPSC queue; the
 *                     sender's unfenced load of waiters misses it, and
 *                     the poller sleeps beside the second message.  (With
 *                     NP = 1 the receiver's membarrier() hides it.)  The
 *                     positive twin, -DMEMBARRIER with NP = 2, verifies
 *                     (19.8M states, 37 s, 1 GB: run by hand, not by
 *                     make model, which runs it with NP = 1);
 *   -DNO_EPOCH_CHECK  negative control: the poller does not check after
 *                     A4 whether a notifier took its announcement; it then
 *                     sleeps uncounted, and the next producer, seeing no
 *                     poller, wakes nobody: the watchdog's assertion.
 *
 * Correspondence (C -> model):
 *   R1 publish; F1; load waiters             producer: STORE slot; DRAIN; w
 *   shmq__wake: ordinary half (w & 0xffff)    ADD(SEQ) R3; futex_wake(1)
 *   wake_pollers: P3 take (CAS, seq_cst)       pcount = 0, pepoch++ (drained)
 *              waiters -= c * WAITERS_POLLER   ADD(WAITERS, -16c)
 *              R6 pseq++; FUTEX_WAKE(all)      ADD(PSEQ); wake the poller
 *   poll.c P1 waiters += WAITERS_POLLER        ADD(WAITERS, 16)  (16 = one poller)
 *          P2 pollers++ (seq_cst RMW)          drained, then e = pepoch; pcount++
 *          F2; A4 v = pseq; epoch check        DRAIN; v = PSEQ; pepoch == e?
 *          re-check (scan)                     ready()
 *          futex_waitv                         compare PSEQ with v, sleep
 *          withdraw (CAS if epoch current)     pcount--, ADD(WAITERS, -16)
 */

#ifndef NP
#define NP 2
#endif
#define RECV     NP           /* the receiver's process id */
#define POLLER   (NP + 1)     /* the poller's */
#define NPROC    (NP + 2)
#ifndef SEEN_MAX
#define SEEN_MAX 2
#endif

/* Shared variables, by index: slots 0..NP-1, then the event words. */
#define SEQ      NP
#define WAITERS  (NP + 1)
#define PSEQ     (NP + 2)
#define NVAR     (NP + 3)

#ifdef SHARED_WORD
#define UNIT     1            /* the poller counts as a receiver */
#else
#define UNIT     16           /* WAITERS_POLLER */
#endif

byte mem[NVAR];
byte cons_pos;
byte pepoch, pcount;          /* the pollers word: epoch, count */

byte pvar[6];
short pval[6];
bool padd[6];

bool sleeping[6];             /* queued on seq (receiver; SHARED_WORD: poller) */
bool psleeping;               /* the poller queued on pseq */
bool pdone;

#define EMPTY 255

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

/* ready(): the message at cons_pos is published (as seen by @who). */
inline ready(r_who, r_out)
{
	atomic {
		if
		:: cons_pos < NP -> load(r_who, cons_pos, r_out)
		:: else -> r_out = 0
		fi
	}
}

/*
 * M: membarrier(GLOBAL_EXPEDITED), on an SPSC queue whose notifier does
 * not fence: every process runs a full barrier (its buffer drains).
 */
inline membarrier(m_c)
{
#ifdef MEMBARRIER
	for (m_c : 0 .. NPROC - 1) {
		drain(m_c)
	}
#else
	skip
#endif
}

#define FLUSH(k) :: atomic { k < NPROC && pvar[k] != EMPTY -> drain(k) }

active proctype memory()
{
end:	do
	FLUSH(0)
	FLUSH(1)
	FLUSH(2)
	FLUSH(3)
	FLUSH(4)
	od
}

proctype producer(byte me)
{
	byte w, c;

	store(me, me, 1, false);          /* R1 */
#ifndef MEMBARRIER
	drain(me);                        /* F1 (MEMBARRIER: a compiler barrier) */
#endif
	load(me, WAITERS, w);
	if
	:: w % 16 != 0 ->                 /* ordinary waiters (SHARED_WORD: all) */
		store(me, SEQ, 1, true);  /* R3 */
		drain(me);                /* the kernel's barrier */
		atomic {                  /* FUTEX_WAKE(1): any one sleeper on seq */
			if
			:: sleeping[RECV] -> sleeping[RECV] = false
			:: sleeping[POLLER] -> sleeping[POLLER] = false
			:: !sleeping[RECV] && !sleeping[POLLER] -> skip
			fi
		}
	:: else -> skip
	fi;
#ifndef SHARED_WORD
	if
	:: w >= 16 ->                     /* pollers: take them, wake them all */
		drain(me);                /* P3 is a seq_cst RMW */
		atomic { c = pcount; if :: c > 0 -> pcount = 0; pepoch++ :: else -> skip fi };
		if
		:: c > 0 ->
			store(me, WAITERS, -16 * c, true);
			store(me, PSEQ, 1, true);       /* R6 */
			drain(me);                      /* the kernel's barrier */
			psleeping = false               /* FUTEX_WAKE(all) */
		:: else -> skip
		fi
	:: else -> skip
	fi
#endif
}

/* The ordinary receiver: one message, SHMQ_FOREVER (wait.pml's consumer 0). */
proctype receiver(byte me)
{
	byte p, s, v, e, mc, spurious = 0;

retry:
	atomic {
		p = cons_pos;
		if
		:: p < NP -> load(me, p, s)
		:: else -> s = 0
		fi;
		if
		:: s == 1 && cons_pos == p -> cons_pos = p + 1; goto done
		:: else -> skip
		fi
	}
	store(me, WAITERS, 1, true);      /* W1 */
	drain(me);                        /* F2 */
	membarrier(mc);                   /* M (MEMBARRIER only) */
	load(me, SEQ, v);                 /* A3 */
	ready(me, s);
	if
	:: s == 1 -> goto leave
	:: else -> skip
	fi;
	drain(me);
	atomic {
		load(me, SEQ, e);
		if
		:: e != v -> goto leave
		:: else -> sleeping[me] = true
		fi
	}
	if
	:: !sleeping[me] -> skip
	:: atomic { sleeping[me] && spurious < 1 -> sleeping[me] = false; spurious++ }
	fi;
leave:
	store(me, WAITERS, -1, true);
	goto retry;
done:
	skip
}

/* The poller: polls for SHMQ_POLLIN, never consumes. */
proctype poller(byte me)
{
	byte s, v, x, e, mc, seen = 0, spurious = 0;
	bool withdrew;

retry:
	ready(me, s);                     /* scan */
	if
	:: s == 1 ->
		seen++;
		if
		:: seen == SEEN_MAX -> goto done
		:: else -> goto retry     /* the caller polls again at once */
		fi
	:: else -> skip
	fi;
	store(me, WAITERS, UNIT, true);   /* P1 (SHARED_WORD: W1) */
#ifndef SHARED_WORD
	drain(me);                        /* P2: seq_cst RMW */
	atomic { e = pepoch; pcount++ };
#endif
	drain(me);                        /* F2 */
#ifndef NO_POLLER_M
	membarrier(mc);                   /* M (MEMBARRIER only) */
#endif
#ifdef SHARED_WORD
	load(me, SEQ, v);                 /* A3 */
#else
	load(me, PSEQ, v);                /* A4 */
#ifndef NO_EPOCH_CHECK
	if
	:: pepoch != e -> goto leave      /* taken: do not sleep uncounted */
	:: else -> skip
	fi;
#endif
#endif
	ready(me, s);                     /* re-check */
	if
	:: s == 1 -> goto leave
	:: else -> skip
	fi;
	drain(me);                        /* futex_waitv: kernel barrier */
	atomic {
#ifdef SHARED_WORD
		load(me, SEQ, x);
		if
		:: x != v -> goto leave
		:: else -> sleeping[me] = true
		fi
#else
		load(me, PSEQ, x);
		if
		:: x != v -> goto leave
		:: else -> psleeping = true
		fi
#endif
	}
end_asleep:                           /* may sleep for ever beside an empty queue */
#ifdef SHARED_WORD
	if
	:: !sleeping[me] -> skip
	:: atomic { sleeping[me] && spurious < 1 -> sleeping[me] = false; spurious++ }
	fi;
#else
	if
	:: !psleeping -> skip
	:: atomic { psleeping && spurious < 1 -> psleeping = false; spurious++ }
	fi;
#endif
leave:
#ifdef SHARED_WORD
	store(me, WAITERS, -1, true);
#else
	atomic {                          /* withdraw: CAS if the epoch is ours */
		if
		:: pepoch == e && pcount > 0 -> pcount--; withdrew = true
		:: else -> withdrew = false
		fi
	}
	if
	:: withdrew -> store(me, WAITERS, -16, true)
	:: else -> skip
	fi;
#endif
	goto retry;
done:
	pdone = true
}

/* When nothing else can move: the poller is not asleep beside a message. */
active proctype watchdog()
{
	byte s;

	timeout ->
	if
	:: cons_pos < NP -> s = mem[cons_pos]
	:: else -> s = 0
	fi;
	assert(!(s == 1 && (psleeping || sleeping[POLLER])))
}

init {
	byte i;

	atomic {
		for (i : 0 .. 5) {
			pvar[i] = EMPTY
		}
		for (i : 0 .. NP - 1) {
			run producer(i)
		}
		run receiver(RECV);
		run poller(POLLER)
	}
}
