/*
 * ack.pml - Promela model of acknowledged delivery with crash recovery:
 * ipc/ack.c (shmq_fetch, shmq_ack, shmq_nack), ipc/recover.c (area_dead,
 * repair_ring's step 4 with in_area(), area_move).  Checked by `make
 * model` (spin -a; cc pan.c; ./pan).
 *
 * Actors: NF fetchers taking MSGS messages (already published in the
 * main ring) through an area of AREA entries, each acknowledging or
 * (with -DNACK) sometimes giving back what it fetched; a repairer, whose
 * passes run whenever a fetcher has died or given something back (in
 * the C: a waiting consumer's probe, an attach, shmq_seg_recover, a
 * nack's requeue; all under the control-plane lock, so one at a time);
 * and a killer that kills one fetcher at any step (`unless`).
 *
 * Checked:
 *   - a message is delivered (claimed from the ring or the lane) at most
 *     once plus once per death and per give-back so far (one of each at
 *     most), and the
 *     death of a fetcher between K2 and R2 (its message both in its entry
 *     and in its ring slot) must still cost only one (in_area());
 *   - nothing is lost and nothing wedges: when no process can move, every
 *     message has been acknowledged (a timeout-guarded assertion);
 *   - a repairer never takes a live fetcher's entry or slot (the fetcher
 *     asserts its entry is still its own at K2, ack and nack).
 *
 * Memory model: sequential consistency, as ring.pml (whose argument for
 * the ring's records and positions this model reuses: the record is
 * written in the claim's step, R2 and the record's clear are one step).
 * Each K step is one atomic word.  The lane is a list long enough for
 * every redelivery; ring.pml checks the lane's own slot protocol.  Not
 * modelled: a repairer's death (its lane publish then the entry's FREE:
 * a second copy, "at least once"; ring.pml's lane_put is the same), the
 * prefetch limit (a count private to the handle), dead-lettering.
 *
 * Negative controls (make model checks that spin finds each):
 *   -DNO_IN_AREA        the ring pass moves a slot the area keeps: a
 *                       third delivery (assert)
 *   -DFREE_BEFORE_HELD  the fetcher frees its slot before K2: a death in
 *                       between loses the message (assert)
 */

#ifndef NF
#define NF 2
#endif
#ifndef MSGS
#define MSGS 2
#endif
#define AREA 2
#define LANE 6

#define FREE    0
#define FILLING 1
#define HELD    2
#define READY   3

#define MAIN 0
#define LANE_R 1

/* The main ring: positions 0..MSGS-1 hold messages 0..MSGS-1. */
byte cons = 0;                  /* next main position to claim */
bool freed[MSGS];               /* R2 done for that position */
/* The lane: position i holds message lane_msg[i]. */
byte lane_msg[LANE];
byte lprod = 0, lcons = 0;
bool lfreed[LANE];
/* Operation records: what fetcher f has claimed and not freed. */
bool rvalid[NF];
byte rring[NF];
byte rpos[NF];
/* The area. */
byte akind[AREA];
byte aowner[AREA];
byte amsg[AREA];
byte asrc_ring[AREA];
byte asrc_pos[AREA];
/* Liveness (the OFD lock): cleared by the killer. */
bool alive[NF];
bool kill[NF];
byte deaths = 0;
/* Bookkeeping for the checks. */
byte deliveries[MSGS];
bool acked[MSGS];
byte nacked = 0;                /* messages acknowledged, distinct */
byte nacks = 0;                 /* give-backs made (at most one) */
bool work = false;              /* a repair pass has something to do */

/* One delivery, and one more per death or give-back there has been. */
inline deliver(m)
{
	deliveries[m]++;
	assert(deliveries[m] <= 1 + deaths + nacks)
}

proctype fetcher(byte me)
{
	byte e, m, p, r, i;

	{
end_loop:
	do
	:: nacked == MSGS -> break
	:: else ->
		/* K1: take a free entry (waits while none). */
		atomic {
			if
			:: akind[0] == FREE -> e = 0
			:: akind[1] == FREE -> e = 1
			fi;
			akind[e] = FILLING;
			aowner[e] = me
		}
		/* The claim: the lane first, then the main ring (waits). */
end_claim:
		atomic {
			if
			:: lcons < lprod ->
				p = lcons; r = LANE_R; m = lane_msg[p]; lcons++
			:: lcons == lprod && cons < MSGS ->
				p = cons; r = MAIN; m = p; cons++
			fi;
			rvalid[me] = true; rring[me] = r; rpos[me] = p;
			deliver(m)
		}
#ifdef FREE_BEFORE_HELD
		atomic {
			if
			:: r == MAIN -> freed[p] = true
			:: else -> lfreed[p] = true
			fi;
			rvalid[me] = false
		}
#endif
		/* Step 3: the message into the entry (ours while FILLING). */
		amsg[e] = m; asrc_ring[e] = r; asrc_pos[e] = p;
		/* K2 */
		atomic {
			assert(akind[e] == FILLING && aowner[e] == me);
			akind[e] = HELD
		}
#ifndef FREE_BEFORE_HELD
		/* R2 + R4 */
		atomic {
			if
			:: r == MAIN -> freed[p] = true
			:: else -> lfreed[p] = true
			fi;
			rvalid[me] = false
		}
#endif
		/* The job, then K3 (ack) or, with NACK, K4 (nack). */
		if
		:: atomic {
			assert(akind[e] == HELD && aowner[e] == me);
			akind[e] = FREE;
			if
			:: !acked[m] -> acked[m] = true; nacked++
			:: else
			fi
		   }
#ifdef NACK
		:: atomic {
			nacks == 0 ->
			nacks++;
			assert(akind[e] == HELD && aowner[e] == me);
			akind[e] = READY;
			work = true
		   }
#endif
		fi
	od
	} unless { kill[me] }
}

proctype killer()
{
	byte f;
end_k:
	if
	:: deaths == 0 ->
		atomic {
			if
			:: f = 0
			:: f = 1
			fi;
			kill[f] = true; alive[f] = false; deaths++; work = true
		}
	:: skip
	fi
}

/*
 * A repair pass, under the lock: snapshot liveness and records, then
 * area_dead, the ring passes (lane, main) with in_area(), area_move.
 */
proctype repairer()
{
	bool live[NF], named, kept;
	bool rv[NF];
	byte rr[NF], rp[NF], i, f, p, cp, lcp, m;

end_wait:
	do
	:: work ->
		work = false;
		/* The pass's liveness map (pass_begin). */
		atomic {
			for (f : 0 .. NF - 1) {
				live[f] = alive[f]
			}
		}
		/* area_dead */
		for (i : 0 .. AREA - 1) {
			atomic {
				if
				:: (akind[i] == FILLING || akind[i] == HELD) &&
				   !live[aowner[i]] ->
					if
					:: akind[i] == HELD -> akind[i] = READY
					:: else -> akind[i] = FREE
					fi
				:: else
				fi
			}
		}
		/*
		 * repair_ring, each ring: step 1, its positions (acquire),
		 * then step 2, the live records (so every claim below the
		 * positions read is named); step 4.  The lane, then main.
		 */
		lcp = lcons;
		atomic {
			for (f : 0 .. NF - 1) {
				rv[f] = rvalid[f] && live[f];
				rr[f] = rring[f]; rp[f] = rpos[f]
			}
		}
		for (p : 0 .. LANE - 1) {
			if
			:: p < lcp && !lfreed[p] ->
				named = false;
				for (f : 0 .. NF - 1) {
					named = named || (rv[f] && rr[f] == LANE_R && rp[f] == p)
				}
				kept = false;
#ifndef NO_IN_AREA
				for (i : 0 .. AREA - 1) {
					kept = kept || (akind[i] == READY && asrc_ring[i] == LANE_R && asrc_pos[i] == p)
				}
#endif
				if
				:: !named ->
					if
					:: !kept ->
						atomic { lane_msg[lprod] = lane_msg[p]; lprod++ }
					:: else
					fi;
					lfreed[p] = true
				:: else
				fi
			:: else
			fi
		}
		cp = cons;
		atomic {
			for (f : 0 .. NF - 1) {
				rv[f] = rvalid[f] && live[f];
				rr[f] = rring[f]; rp[f] = rpos[f]
			}
		}
		for (p : 0 .. MSGS - 1) {
			if
			:: p < cp && !freed[p] ->
				named = false;
				for (f : 0 .. NF - 1) {
					named = named || (rv[f] && rr[f] == MAIN && rp[f] == p)
				}
				kept = false;
#ifndef NO_IN_AREA
				for (i : 0 .. AREA - 1) {
					kept = kept || (akind[i] == READY && asrc_ring[i] == MAIN && asrc_pos[i] == p)
				}
#endif
				if
				:: !named ->
					if
					:: !kept ->
						atomic { lane_msg[lprod] = p; lprod++ }
					:: else
					fi;
					freed[p] = true
				:: else
				fi
			:: else
			fi
		}
		/* area_move: READY entries into the lane, then FREE. */
		for (i : 0 .. AREA - 1) {
			if
			:: akind[i] == READY ->
				atomic { m = amsg[i]; lane_msg[lprod] = m; lprod++ };
				akind[i] = FREE
			:: else
			fi
		}
	od
}

/* When nothing can move: every message acknowledged. */
active proctype judge()
{
	timeout -> assert(nacked == MSGS)
}

init
{
	byte f;

	atomic {
		for (f : 0 .. NF - 1) {
			alive[f] = true
		}
		for (f : 0 .. NF - 1) {
			run fetcher(f)
		}
		run repairer();
		run killer()
	}
}
