#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""spsc_model.py - every interleaving of ipc/spsc.c's sender and receiver,
with SIGKILLs at every step, checked exhaustively (breadth-first).

    python3 ipc/spsc_model.py CAPACITY MESSAGES KILLS [--no-takeback] [--no-max]

What is modelled (sequentially consistent: the orderings SP1/SA1 and SC1/SA2
of spsc.c make each step below one atomic event; the futex wake-up
protocol is ipc/wait.pml's business and is left out):
  shared   entries (tag position, the message in it), payload slots,
           prod_pos, cons_pos, spsc_batch_end
  sender   a caller with a ledger (the next message it must send, moved on
           only when a call returns), making single sends (payload, entry,
           prod_pos) or batches of any size that fits (batch end, payloads,
           entries last to first, prod_pos); killed at any step, replaced
           by a sender that takes the side over as side_take() does: start
           at max(prod_pos, cons_pos), skip published entries one by one,
           take back published entries up to the batch end one by one
           (unpublish_ahead), store prod_pos, then resume from the ledger
  receiver takes over at cons_pos; reads the entry and payload, then SC1
           (freeing and recording the message in one step: the receiver's
           ledger is exact here; test_spsc_torture has the real one)
Checked in every state: no torn message (payload not the entry's), no
slot rewritten while its message is unread, no skipped message (one the
caller's ledger says was sent that the receiver passes over), no message
more than a ring's worth behind; and no wedge: every final state has all
MESSAGES delivered.  Repeats (a message sent again after a sender died
before its call returned) are allowed.

Negative controls (make model runs them; each must fail):
  --no-takeback   a new sender does not take back a dead batch's entries
                  published ahead of its first (the skip fixed in 092d6d9)
  --no-max        a new sender starts at prod_pos even when the receiver is
                  past it (the wedge fixed in 0c6d230)
Output: a summary line, then (on a violation) the first one and its
state, then a last line that is the verdict: "VERDICT: pass" (exit 0)
when every state is fine, "VERDICT: violation <kind>" (exit 3) when one
is not, <kind> being torn-message, slot-rewritten, skipped-message,
repeat-too-far or wedge.  A usage error exits 2; a crash of the model
(a Python traceback) exits 1: neither is a verdict, so a negative control
(make model) checks for the verdict line and the exit status 3.
"""
import sys
from collections import deque

args = [a for a in sys.argv[1:] if not a.startswith("--")]
flags = {a for a in sys.argv[1:] if a.startswith("--")}
if len(args) != 3 or flags - {"--no-takeback", "--no-max"}:
    print(__doc__, file=sys.stderr)
    sys.exit(2)
CAP, M, K = (int(a) for a in args)
TAKEBACK = "--no-takeback" not in flags
MAXPOS = "--no-max" not in flags


def dist(a, b):
    """a - b as the C code's uint64_t difference."""
    return (a - b) % (1 << 64)


def ready(ents, pos):
    return ents[pos % CAP][0] == pos


def put(t, pos, val):
    lst = list(t)
    lst[pos % CAP] = val
    return tuple(lst)


def steps(st, kills):
    """All successor states of st: (new state, kills used), or an error."""
    ents, slots, prod, cons, bend, ledger, S, got, R = st
    out = []

    def mk(**kw):
        d = dict(ents=ents, slots=slots, prod=prod, cons=cons, bend=bend,
                 ledger=ledger, S=S, got=got, R=R)
        d.update(kw)
        return (d["ents"], d["slots"], d["prod"], d["cons"], d["bend"],
                d["ledger"], d["S"], d["got"], d["R"])

    # ---- the sender
    if S[0] != "dead" and kills < K:
        out.append((mk(S=("dead",)), 1))
    if S[0] == "dead":
        out.append((mk(S=("take",)), 0))
    elif S[0] == "take":                        # read prod_pos, cons_pos
        pos = prod
        if MAXPOS and cons > pos:
            pos = cons
        out.append((mk(S=("skip", pos, cons)), 0))
    elif S[0] == "skip":                        # skip published entries
        _, pos, c = S
        if dist(pos, c) < CAP and ready(ents, pos):
            out.append((mk(S=("skip", pos + 1, c)), 0))
        elif TAKEBACK and dist(bend, pos) <= CAP:
            out.append((mk(S=("unpub", pos, c, pos + 1, bend)), 0))
        else:
            out.append((mk(S=("hint", pos, c)), 0))
    elif S[0] == "unpub":                       # take back one entry
        _, pos, c, x, end = S
        if x < end:
            e = put(ents, x, (x - CAP, None)) if ready(ents, x) else ents
            out.append((mk(ents=e, S=("unpub", pos, c, x + 1, end)), 0))
        else:
            out.append((mk(S=("hint", pos, c)), 0))
    elif S[0] == "hint":                        # store prod_pos
        _, pos, c = S
        out.append((mk(prod=pos, S=("idle", pos, c, ledger)), 0))
    elif S[0] == "idle":                        # a call: 1 or a batch
        _, pos, c, seq = S
        if seq < M:
            if dist(pos, c) >= CAP and dist(pos, cons) < CAP:
                out.append((mk(S=("idle", pos, cons, seq)), 0))
            elif dist(pos, c) < CAP:
                room = CAP - dist(pos, c)
                for n in range(1, min(room, M - seq) + 1):
                    if n == 1:
                        out.append((mk(S=("pay1", pos, c, seq)), 0))
                    else:
                        out.append((mk(bend=pos + n,
                                       S=("payn", pos, c, seq, n, 0)), 0))
    elif S[0] == "pay1":
        _, pos, c, seq = S
        out.append((mk(slots=put(slots, pos, seq),
                       S=("ent1", pos, c, seq)), 0))
    elif S[0] == "ent1":                        # SP1
        _, pos, c, seq = S
        out.append((mk(ents=put(ents, pos, (pos, seq)),
                       S=("prod", pos, c, seq, 1)), 0))
    elif S[0] == "payn":
        _, pos, c, seq, n, i = S
        if i < n:
            out.append((mk(slots=put(slots, pos + i, seq + i),
                           S=("payn", pos, c, seq, n, i + 1)), 0))
        else:
            out.append((mk(S=("entn", pos, c, seq, n, n - 1)), 0))
    elif S[0] == "entn":                        # SP1, last to first
        _, pos, c, seq, n, i = S
        nxt = ("entn", pos, c, seq, n, i - 1) if i > 0 else \
              ("prod", pos, c, seq, n)
        out.append((mk(ents=put(ents, pos + i, (pos + i, seq + i)),
                       S=nxt), 0))
    elif S[0] == "prod":
        _, pos, c, seq, n = S
        out.append((mk(prod=pos + n, S=("ret", pos + n, c, seq, n)), 0))
    elif S[0] == "ret":                         # the call returns
        _, pos, c, seq, n = S
        out.append((mk(ledger=seq + n, S=("idle", pos, c, seq + n)), 0))

    # ---- the receiver
    if R[0] != "dead" and kills < K:
        out.append((mk(R=("dead",)), 1))
    if R[0] == "dead":
        out.append((mk(R=("idle", cons)), 0))
    elif R[0] == "idle":                        # SA1, then the payload
        pos = R[1]
        if ready(ents, pos):
            out.append((mk(R=("read", pos, slots[pos % CAP],
                              ents[pos % CAP][1])), 0))
    elif R[0] == "read":                        # SC1, recorded with it
        _, pos, val, want = R
        if val != want:
            return None, ("torn-message", pos, val, want)
        if slots[pos % CAP] != val or ents[pos % CAP][0] != pos:
            return None, ("slot-rewritten", pos)
        if val > got:
            return None, ("skipped-message", got, "got", val)
        if got - val > CAP:
            return None, ("repeat-too-far", val, got)
        out.append((mk(cons=pos + 1, got=max(got, val + 1),
                       R=("idle", pos + 1)), 0))
    return out, None


init = (tuple((i - CAP, None) for i in range(CAP)), (None,) * CAP,
        0, 0, 0, 0, ("dead",), 0, ("dead",))
seen = {(init, 0)}
todo = deque([(init, 0)])
states = 0
error = None
while todo and not error:
    st, k = todo.popleft()
    states += 1
    succ, error = steps(st, k)
    if error:
        error = (error, st)
        break
    if not succ and st[7] != M:
        error = (("wedge", "nothing can move, delivered", st[7], "of", M),
                 st)
        break
    for ns, dk in succ:
        key = (ns, k + dk)
        if key not in seen:
            seen.add(key)
            todo.append(key)
print(f"spsc model CAP={CAP} M={M} K={K} {' '.join(sorted(flags))}: "
      f"{states} states, {1 if error else 0} errors")
if error:
    print("first error:", error[0])
    print("state:", error[1])
    print("VERDICT: violation", error[0][0])
    sys.exit(3)
print("VERDICT: pass")
