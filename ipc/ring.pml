/*
 * ring.pml - Promela model of the ring's claim/publish/consume/free
 * protocol with operation records and crash recovery: ipc/ring.h,
 * ipc/claim.h, ipc/queue.c, ipc/recover.c (design: shmq(7), CRASH RECOVERY).
 * Checked by `make model` (spin -a; cc pan.c; ./pan).
 *
 * Actors: NP producers sending MSGS messages each, NC consumers, NR
 * repairers (a repair pass runs under the control-plane lock, an OFD lock
 * that the kernel drops when its holder dies, so it passes to the next),
 * and a killer
 * that kills up to MAXDEATH processes, each at any step (`unless`).
 * A repair pass may run whenever anything changed since the last pass
 * (a superset of what the C does: stalled waiters, shmq_seg_open,
 * shmq_seg_recover, mqctl recover).  Processes wait (block) while they
 * cannot claim anything: the wake-up protocol itself is wait.pml's job.
 *
 * Checked:
 *   - no message delivered twice, except a message held by a process
 *     that died (a consumer between claim and free, a repairer between
 *     the lane publish and the free): at most once more per such death;
 *   - a delivered message is committed and belongs to the position it is
 *     read from (no stale or invented message; a tombstone delivers
 *     nothing);
 *   - a repairer never touches a live producer's claimed slot (the
 *     producer asserts its slot is intact before publishing, R1);
 *   - no committed message lost and no wedge: consumers stop only when
 *     every committed message was delivered and every producer finished
 *     (or died); a state where live processes can make no step before
 *     that is an invalid end state, which spin reports.
 *
 * Memory model: sequential consistency.  The recovery argument is about
 * ownership and crash points, not about reordering: its ordering edges
 * (the record before the claim CAS, C1/C2 release -> the repairer's
 * acquire of the positions; R1/R2 before the record is cleared, R4) make
 * exactly the SC interleavings possible among the steps modelled here.
 * Steps whose split no crash or repairer can observe are merged: the
 * A1/A2 load with the record store that follows it (only the claimer can
 * change an unclaimed slot's state), and R1/R2 with R4 (between them the
 * record names a slot that moved on, which only delays a repair; a death
 * there leaves a dead record, ignored).
 * Records are {pos, meta} pairs written before the claim; the model
 * writes the pair in one step (a torn pair can only name a position
 * that is not claimed, which makes a repairer wait, never repair).
 * Batches (k > 1 positions per record) are not modelled: a record naming
 * [pos, pos+k) behaves as k single records.
 *
 * Correspondence (C function / label -> model):
 *   ring_prod_claim(): A1 seq load       producer: s = seq[..]
 *     rec_set() before the CAS           producer: SETREC(me, p, MAIN, PROD)
 *     C1 CAS on prod_pos                 producer: atomic { prod_pos == p -> .. }
 *   claim_prod(): rec_clear() on failure producer: CLEARREC (unless NO_CLEAR)
 *   shmq_send() memcpy + ring_publish R1 producer: payload; R1
 *   op_end() -> rec_clear() R4           producer: CLEARREC after R1
 *   ring_cons_claim(): A2, rec_set, C2   consumer: claim()
 *     CLAIM_TOMB                         consumer: s == (p+1)|TOMB
 *   shmq_recv(): copy-out, ring_free R2  consumer: deliver at claim; R2
 *   lane first (claim.h claim_cons)      consumer: lane option before main
 *   recover.c repair_ring() step 1       repairer: cp = cons; pp = prod
 *     step 2 shmq__proc_live_recs        repairer: snapshot()
 *     step 3 T1 CAS -> tombstone         repairer: atomic { seq == p -> TOMB }
 *     step 4 lane_put() + R2 (repair)    repairer: lane_put(); CAS free
 *   repair_queue(): lane, then main      repairer: repair(lane); repair(main)
 *   control lock (OFD), kernel-dropped   killer: releases a dead holder's lock
 *   OFD liveness lock                    alive[]
 *
 * Build with -DNO_RECORD_BEFORE_CAS (record written after the CAS): spin
 * finds a repaired live slot (an assertion), so the model can fail; make
 * model checks that it does.
 *
 * -DNO_CLEAR (records left set after a failed claim, as the design note
 * first read) is not a negative control: no configuration make model can
 * afford fails with it.  With NP=1 a producer's claim never fails, and a
 * consumer's stale record is overwritten by its next attempt before the
 * run ends (5.5M states, 0 errors); NP=2 ran for over 2 minutes without
 * a result; NC=1 ends in an invalid end state with or without the flag
 * (the only consumer's death strands messages, which the model does not
 * mean to cover).  So the rec_clear() after a failed claim (ipc/claim.h)
 * is not checked by spin.
 */

#ifndef NP
#define NP 2
#endif
#ifndef MSGS
#define MSGS 2
#endif
#ifndef NC
#define NC 2
#endif
#ifndef NR
#define NR 1                      /* 2 to let a repairer's death be repaired */
#endif
#ifndef MAXDEATH
#define MAXDEATH 1
#endif
#define CAP 2                     /* capacity of the main ring and of
				     the lane (C: capacity and 8) */
#define NPROC (NP + NC + NR)
#define NMSG (NP * MSGS + 1)      /* message ids 1 .. NP*MSGS */
#define TOMB 128
#define PROD 0
#define CONS 1
#define MAIN 0
#define LANE 1

/*
 * Ring W (MAIN 0, LANE 1): positions prodp[W], consp[W]; slot of position
 * p is S(W, p) in seq[] (Vyukov sequence word), msg[] (message id) and
 * mpos[] (the position the message was written for).
 */
byte prodp[2], consp[2], seq[2 * CAP], msg[2 * CAP], mpos[2 * CAP];
#define S(W, p) ((W) * CAP + (p) % CAP)

/* Process table: liveness and one operation record each. */
bool alive[8];
bool rv[NPROC];                   /* meta valid */
byte rp[NPROC];                   /* pos */
bool rl[NPROC];                   /* lane bit */

/* Bookkeeping for the checks. */
byte delivered[NMSG], extra[NMSG];
bool committed[NMSG];
byte ncommitted, ndistinct, pdone;
byte holding[8];              /* consumer: message claimed, not freed */
byte moving[8];               /* repairer: lane copy published, main not freed */
byte deaths;
bool dirty, mutex;
byte owner;

/* Something changed: a repair pass may be due (only matters after a death). */
#define MARK dirty = (deaths > 0)
#define FINISHED (pdone == NP && ndistinct == ncommitted)
#define READY(W) (seq[S(W, consp[W])] == consp[W] + 1 || \
		  seq[S(W, consp[W])] == ((consp[W] + 1) | TOMB))

inline SETREC(w, pos, lane)
{
	atomic { rp[w] = pos; rl[w] = lane; rv[w] = true }
}

/* Clearing a record counts as a change: a stalled waiter repeats its
 * repair pass every stall period, so a pass skipped because of this record
 * is retried. */
inline CLEARREC(w)
{
	atomic { rv[w] = false; MARK }
}

inline deliver(w, m, mp, p)
{
	/* a message claimed is as good as delivered (at least once) */
	assert(m > 0 && committed[m] && mp == p);
	delivered[m]++;
	if
	:: delivered[m] == 1 -> ndistinct++
	:: else -> skip
	fi;
	assert(delivered[m] <= 1 + extra[m]);
	holding[w] = m
}

proctype producer(byte me)
{
	byte k = 0, p, s, m;

	{
	do
	:: k == MSGS ->
		atomic { pdone++; alive[me] = false }  /* done (not a death) */
		break
	:: k < MSGS && seq[S(MAIN, prodp[MAIN])] == prodp[MAIN] ->
		atomic {
			p = prodp[MAIN];
			s = seq[S(MAIN, p)];          /* A1 */
			if
			:: s == p ->
#ifndef NO_RECORD_BEFORE_CAS
				SETREC(me, p, MAIN)   /* before C1 */
#else
				skip
#endif
			:: else -> skip
			fi
		}
		if
		:: s == p ->
			if
			:: atomic { prodp[MAIN] == p -> prodp[MAIN] = p + 1 } /* C1 */
#ifdef NO_RECORD_BEFORE_CAS
				SETREC(me, p, MAIN);
#endif
				m = me * MSGS + k + 1;
				atomic {  /* the payload, then R1: a death between
					   * the two is the same as before both */
					msg[S(MAIN, p)] = m; mpos[S(MAIN, p)] = p;
					assert(seq[S(MAIN, p)] == p);
					seq[S(MAIN, p)] = p + 1;
					committed[m] = true;
					ncommitted++;
					CLEARREC(me)  /* R4 */
				};
				k++; p = 0; s = 0; m = 0
			:: atomic { prodp[MAIN] != p ->
#ifndef NO_CLEAR
				CLEARREC(me)
#else
				skip
#endif
			   }
			fi
		:: else -> skip
		fi
	od
	} unless { !alive[me] }
}

/* One claim attempt on ring W: ring_cons_claim(), copy-out, ring_free(). */
inline consume(W)
{
	atomic {
		p = consp[W];
		s = seq[S(W, p)];                     /* A2 */
		if
		:: s == p + 1 || s == ((p + 1) | TOMB) ->
			SETREC(me, p, W)              /* before C2 */
		:: else -> skip
		fi
	}
	if
	:: s == p + 1 || s == ((p + 1) | TOMB) ->
		if
		:: atomic { consp[W] == p -> consp[W] = p + 1;     /* C2 */
			if
			:: s == p + 1 -> deliver(me, msg[S(W, p)], mpos[S(W, p)], p)
			:: else -> skip       /* CLAIM_TOMB: nothing delivered */
			fi
		   }
			atomic {                              /* R2, R4 */
				seq[S(W, p)] = p + CAP; holding[me] = 0;
				CLEARREC(me)
			}
		:: atomic { consp[W] != p ->
#ifndef NO_CLEAR
			CLEARREC(me)
#else
			skip
#endif
		   }
		fi
	:: else -> skip
	fi
}

proctype consumer(byte me)
{
	byte p, s;

	{
	do
	:: atomic { FINISHED -> break }
	:: atomic { !FINISHED && READY(LANE) } -> consume(LANE); p = 0; s = 0
	:: atomic { !FINISHED && !READY(LANE) && READY(MAIN) } ->
		consume(MAIN); p = 0; s = 0
	od
	} unless { !alive[me] }
}

/*
 * step 2: the records of live processes.  One step: what matters is that
 * it comes after step 1 (the positions); a record that changes during the
 * C's walk over the table is covered by a snapshot taken before or after
 * that change.
 */
inline snapshot()
{
	atomic {
		q = 0;
		do
		:: q < NPROC ->
			sv[q] = alive[q] && rv[q]; sp[q] = rp[q]; sl[q] = rl[q];
			q++
		:: else -> break
		od
	}
}

inline is_named(pos, lane)
{
	atomic {
		named = false;
		q = 0;
		do
		:: q < NPROC ->
			if
			:: sv[q] && sp[q] == pos && sl[q] == lane -> named = true
			:: else -> skip
			fi;
			q++
		:: else -> break
		od
	}
}

/* lane_put(): copy message m (of a stuck position) into a new lane slot */
inline lane_put(m)
{
	mm = m;
	lp = prodp[LANE];
	if
	:: seq[S(LANE, lp)] == lp ->                  /* A1 (lane) */
		SETREC(me, lp, LANE);
		atomic { prodp[LANE] == lp -> prodp[LANE] = lp + 1 }; /* C1 */
		atomic { msg[S(LANE, lp)] = mm; mpos[S(LANE, lp)] = lp };
		atomic { seq[S(LANE, lp)] = lp + 1; moving[me] = mm; MARK } /* R1 */
		CLEARREC(me);                                 /* R4 */
		ok = true
	:: else -> ok = false                         /* lane full: later */
	fi
}

/* repair_ring() over ring W */
inline repair(W)
{
	cp = consp[W];                                /* step 1 */
	pp = prodp[W];
	snapshot();                                   /* step 2 */
	p = cp;                                       /* step 3 */
	do
	:: p != pp ->
		atomic { s = seq[S(W, p)]; is_named(p, W) }  /* load; local check */
		if
		:: s == p && !named ->
			atomic {                      /* T1: CAS */
				if
				:: seq[S(W, p)] == p ->
					seq[S(W, p)] = (p + 1) | TOMB;
					MARK
				:: else -> skip
				fi
			}
		:: else -> skip
		fi;
		p++
	:: else -> break
	od;
	if                                            /* step 4 */
	:: pp >= CAP -> p = pp - CAP
	:: else -> p = 0
	fi;
	if
	:: p > cp -> p = cp
	:: else -> skip
	fi;
	do
	:: p < cp ->
		atomic { s = seq[S(W, p)]; is_named(p, W) }  /* load; local check */
		if
		:: (s & ~TOMB) == p + 1 && !named ->
			if
			:: s & TOMB -> ok = true
			:: else -> lane_put(msg[S(W, p)])
			fi;
			if
			:: ok ->
				atomic {              /* R2 (repair): CAS */
					if
					:: seq[S(W, p)] == s ->
						seq[S(W, p)] = p + CAP;
						MARK
					:: else -> skip
					fi;
					moving[me] = 0
				}
			:: else -> skip
			fi
		:: else -> skip
		fi;
		p++
	:: else -> break
	od
}

proctype repairer(byte me)
{
	byte cp, pp, p, s, q, lp, mm;
	bool named, ok;
	bool sv[NPROC];
	byte sp[NPROC];
	bool sl[NPROC];

	{
	do
	:: atomic { FINISHED -> break }
	:: atomic { !FINISHED && deaths > 0 && dirty && !mutex ->
		mutex = true; owner = me; dirty = false }
		repair(LANE);
		repair(MAIN);
		atomic {
			mutex = false;
			/* forget the pass's locals: fewer distinct states */
			cp = 0; pp = 0; p = 0; s = 0; lp = 0; mm = 0;
			ok = false; named = false;
			for (q : 0 .. NPROC - 1) {
				sv[q] = false; sp[q] = 0; sl[q] = false
			}
			q = 0
		}
	od
	} unless { !alive[me] }
}

/* Kills up to MAXDEATH processes, each at any moment. */
#define KILL(v) :: atomic { deaths < MAXDEATH && v < NPROC && alive[v] && \
	!FINISHED -> alive[v] = false; deaths++; MARK; \
	if :: v < NP -> pdone++ :: else -> skip fi; \
	if :: holding[v] -> extra[holding[v]]++ :: else -> skip fi; \
	if :: moving[v] -> extra[moving[v]]++ :: else -> skip fi; \
	if :: mutex && owner == v -> mutex = false :: else -> skip fi }

active proctype killer()
{
end:	do
	KILL(0)
	KILL(1)
	KILL(2)
	KILL(3)
	KILL(4)
	KILL(5)
	KILL(6)
	KILL(7)
	od
}

init {
	byte i;

	atomic {
		for (i : 0 .. CAP - 1) {
			seq[S(MAIN, i)] = i;
			seq[S(LANE, i)] = i
		}
		for (i : 0 .. NPROC - 1) {
			alive[i] = true
		}
		for (i : 0 .. NP - 1) {
			run producer(i)
		}
		for (i : NP .. NP + NC - 1) {
			run consumer(i)
		}
		for (i : NP + NC .. NPROC - 1) {
			run repairer(i)
		}
	}
}
