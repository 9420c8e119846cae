// SPDX-License-Identifier: MIT
/*
 * test_torture.c - producers and consumers in separate processes, SIGKILLed
 * at random moments for many rounds (inside send, batch send, reserve and
 * commit, recv, acquire and release), each replaced by a fresh process;
 * then a final producer whose messages must all get through.  Counts
 * committed messages lost (must be 0), messages delivered more often than
 * the documented redelivery allows (0), and wedges (0).
 *
 * The ledger is a MAP_SHARED region of our own (not the segment):
 *   - a producer process has an id; before each send it notes the first
 *     sequence number in flight (started), after it returns success it
 *     raises committed.  Messages below committed must arrive; those
 *     between committed and started + batch may have been committed just
 *     before the kill (allowed either way).
 *   - a consumer receives into its own inbox in the ledger (recv copies
 *     there; acquire copies it there before release), appends {consumer,
 *     producer, seq} to a shared log with one 64-bit store, then clears the
 *     inbox (and releases).  When we kill a consumer, an intact message in
 *     its inbox was delivered to it (counted once, whether or not its log
 *     entry made it), and may be delivered again: the documented
 *     redelivery, an allowance of one more.  A zero-copy consumer clears
 *     its inbox before it releases, so an intact inbox there means the
 *     message was held, and it MUST be delivered again.
 *
 * Repairs happen only through the library: blocked calls stalled behind a
 * stuck slot (stall threshold 2 ms) and the shmq_seg_open() of each
 * replacement process.  SHMQ_TORTURE_S sets the duration (default 20 s).
 * SHMQ_TORTURE_STOP=1 (make soak) also SIGSTOPs random peers for up to
 * 30 ms: a stopped process is alive, and its slots must be waited for,
 * never repaired (a repair under it would show as a duplicate, a lost or
 * a garbled message).
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
#define MSG_SIZE	64
#define CAPACITY	16
#define NPROD		2
#define NCONS		2
#define MAX_IDS		4096		/* producer processes over the run */
#define MAX_SEQ		4096		/* messages per producer process */
#define MAX_CONS	4096		/* consumer processes over the run */
#define BATCH		4
#define FINAL_MSGS	2000

struct inbox {
	_Alignas(64) unsigned char buf[MSG_SIZE];
};

struct ledger {
	atomic_uint started[MAX_IDS];	/* first seq of the call in flight */
	atomic_uint committed[MAX_IDS];	/* seqs below: committed */
	atomic_int done[MAX_IDS];	/* it sent its last message */
	atomic_int stop;		/* producers: finish and exit */
	atomic_int cons_stop;		/* consumers: exit when idle */
	atomic_ullong log_n;		/* log entries handed out */
	/* zero-copy consumer: tag (1 | p << 16 | s) cleared from the inbox,
	 * release perhaps not yet done; 0 once released */
	atomic_uint pending[MAX_CONS];
	struct inbox inbox[MAX_CONS];
};

/* Delivery log: LOG_VALID | consumer << 32 | producer << 16 | seq. */
#define LOG_MAX		(1u << 24)
#define LOG_VALID	(1ull << 63)

/* What a killed consumer held. */
struct held {
	uint32_t c, p, s;
	int zc, logged;
};

struct torture {
	const char *seg;
	struct ledger *lg;
	_Atomic uint64_t *log;			/* LOG_MAX entries, shared */
	uint8_t delivered[MAX_IDS][MAX_SEQ];	/* from the log + held */
	uint8_t extra[MAX_IDS][MAX_SEQ];	/* allowed extra deliveries */
	uint8_t again[MAX_IDS][MAX_SEQ];	/* must be delivered again */
	int32_t held_idx[MAX_CONS];		/* consumer -> held[] or -1 */
	struct held held[MAX_CONS];
	uint32_t nheld;
	pid_t prod[NPROD], cons[NCONS];
	uint32_t prod_id[NPROD], cons_id[NCONS];
	uint32_t next_prod, next_cons;
	uint32_t rng;
	unsigned kills_prod, kills_cons, stops;
};

enum { SEND_COPY, SEND_BATCH, SEND_ZC };
enum { RECV_COPY, RECV_ZC };

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
	uint32_t s = 0, rng = id * 2654435761u + 1;
	uint64_t give_up = t_now_ns() + 30000 * (uint64_t)T_MS;
	int rc, i, k;

	while (s < limit && !atomic_load(&lg->stop)) {
		if (t_now_ns() > give_up)
			_exit(15);      /* 30 s without getting through: wedged */
		atomic_store(&lg->started[id], s);
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
		atomic_store(&lg->committed[id], s);
	}
	atomic_store(&lg->done[id], 1);
	_exit(0);
}

/* Log one intact delivery to consumer @c. */
static int count(struct torture *t, uint32_t c, const void *buf, size_t len)
{
	uint64_t i;
	uint32_t p, s;

	if (t_msg_check(buf, len, &p, &s) || p >= MAX_IDS || s >= MAX_SEQ)
		return -1;
	i = atomic_fetch_add(&t->lg->log_n, 1);
	if (i < LOG_MAX)
		atomic_store(&t->log[i], LOG_VALID | (uint64_t)c << 32 |
			     (uint64_t)p << 16 | s);
	return 0;
}

/* The tag of the message in @in, for the window around a release. */
static void note_pending(struct ledger *lg, uint32_t c, const void *in)
{
	struct t_tag tag;

	memcpy(&tag, in, sizeof(tag));
	atomic_store(&lg->pending[c], 0x80000000u | tag.producer << 16 |
		     (tag.seq & 0xffff));
}

/* A consumer process: receive into our inbox, count, clear; until told. */
static void consumer(struct torture *t, uint32_t c, int how)
{
	struct ledger *lg = t->lg;
	unsigned char *in = lg->inbox[c].buf;
	uint32_t rng = c * 2246822519u + 7;
	struct shmq_msg m;
	shmq_seg *seg;
	shmq *q = child_open(t->seg, &seg);
	ssize_t n;

	for (;;) {
		memset(in, 0, MSG_SIZE);
		if (how == RECV_ZC) {
			n = shmq_acquire(q, &m, 50 * T_MS);
			if (n == 0) {
				memcpy(in, m.data, m.len);
				n = (ssize_t)m.len;
				if (count(t, c, in, (size_t)n))
					_exit(12);
				if (t_rand(&rng) % 4 == 0)
					sched_yield();  /* hold it a while */
				note_pending(lg, c, in);
				memset(in, 0, MSG_SIZE);
				if (shmq_release(q, &m))
					_exit(13);
				atomic_store(&lg->pending[c], 0);
				continue;
			}
		} else {
			n = shmq_recv(q, in, MSG_SIZE, 50 * T_MS);
			if (n >= 0) {
				if (count(t, c, in, (size_t)n))
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

static pid_t spawn_producer(struct torture *t, int slot, uint32_t limit)
{
	uint32_t id = t->next_prod++;
	int how = (int)(id % 3);
	pid_t pid;

	assert_true(id < MAX_IDS);
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
	uint32_t c = t->next_cons++;
	pid_t pid;

	assert_true(c < MAX_CONS);
	pid = t_fork(120);
	assert_true(pid >= 0);
	if (pid == 0)
		consumer(t, c, (int)(c % 2));
	t->cons[slot] = pid;
	t->cons_id[slot] = c;
}

/* After killing consumer c: what its inbox says it held. */
static void account_killed_consumer(struct torture *t, uint32_t c)
{
	const unsigned char *in = t->lg->inbox[c].buf;
	struct t_tag tag;
	uint32_t p, s;

	uint32_t pend = atomic_load(&t->lg->pending[c]);

	if (pend) {
		/*
		 * Killed around a release: the message may come again or
		 * not (an allowance, no requirement).  Its delivery to the
		 * dead consumer was logged before the inbox was cleared.
		 */
		p = (pend >> 16) & 0x7fff;
		s = pend & 0xffff;
		if (p < MAX_IDS && s < MAX_SEQ)
			t->extra[p][s]++;
		return;
	}
	memcpy(&tag, in, sizeof(tag));
	if (tag.len > MSG_SIZE - sizeof(tag) ||
	    t_msg_check(in, sizeof(tag) + tag.len, &p, &s) != 0 ||
	    p >= MAX_IDS || s >= MAX_SEQ)
		return;         /* nothing intact: it held nothing */
	t->held_idx[c] = (int32_t)t->nheld;
	t->held[t->nheld++] = (struct held){ c, p, s, c % 2 == RECV_ZC, 0 };
	t->extra[p][s]++;       /* the documented redelivery may follow */
	if (c % 2 == RECV_ZC)
		t->again[p][s]++;
}

/*
 * Tally deliveries: the log, plus what killed consumers held and had not
 * logged.  Returns the number of deliveries.
 */
static uint64_t tally(struct torture *t)
{
	uint64_t n = atomic_load(&t->lg->log_n), i, total = 0;
	uint32_t k;

	if (n > LOG_MAX)
		n = LOG_MAX;
	memset(t->delivered, 0, sizeof(t->delivered));
	for (k = 0; k < t->nheld; k++)
		t->held[k].logged = 0;
	for (i = 0; i < n; i++) {
		uint64_t e = atomic_load(&t->log[i]);
		uint32_t c = (uint32_t)(e >> 32) & 0xfffff;
		uint32_t p = (uint32_t)(e >> 16) & 0xffff, s = e & 0xffff;

		if (!(e & LOG_VALID) || p >= MAX_IDS || s >= MAX_SEQ)
			continue;       /* killed between its two steps */
		if (t->delivered[p][s] < 255)
			t->delivered[p][s]++;
		total++;
		if (c < MAX_CONS && t->held_idx[c] >= 0) {
			struct held *h = &t->held[t->held_idx[c]];

			if (h->p == p && h->s == s)
				h->logged = 1;
		}
	}
	for (k = 0; k < t->nheld; k++)
		if (!t->held[k].logged) {
			t->delivered[t->held[k].p][t->held[k].s]++;
			total++;
		}
	return total;
}

static void kill_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	t_wait_child(pid);
}

static void test_torture_kill_producers_and_consumers(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_attr attr = { .capacity = CAPACITY, .msg_size = MSG_SIZE };
	const char *env = getenv("SHMQ_TORTURE_S");
	const char *stop_env = getenv("SHMQ_TORTURE_STOP");
	int stopping = stop_env && *stop_env == '1';
	unsigned seconds = env ? (unsigned)atoi(env) : 20;
	uint64_t end, committed = 0, lost = 0, dups = 0, unsure = 0;
	uint64_t not_again = 0, delivered, start, killed_until;
	unsigned zc_held = 0, k;
	int wedged = 0;
	uint64_t deadline, last_progress, prev;
	struct torture *t;
	uint32_t id, s, final_id;
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
	t->log = mmap(NULL, LOG_MAX * sizeof(uint64_t),
		      PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(t->log != MAP_FAILED);
	memset(t->held_idx, 0xff, sizeof(t->held_idx));
	t->seg = fix->name;
	t->rng = (uint32_t)getpid();
	t_assert_err(shmq_create(fix->seg, QNAME, &attr), 0);

	for (i = 0; i < NPROD; i++)
		spawn_producer(t, i, MAX_SEQ);
	for (i = 0; i < NCONS; i++)
		spawn_consumer(t, i);

	/* Kill someone every 0-8 ms; replace it. */
	start = t_now_ns();
	end = start + seconds * 1000000000ull;
	while (t_now_ns() < end && t->next_prod < MAX_IDS - 2 * NPROD &&
	       t->next_cons < MAX_CONS - NCONS &&
	       atomic_load(&t->lg->log_n) < LOG_MAX / 2) {
		unsigned r = t_rand(&t->rng);

		usleep(r % 10000);
		if (stopping && r % 3 == 0) {
			pid_t victim = (r & 0x20000) ?
				t->prod[(r >> 8) % NPROD] :
				t->cons[(r >> 8) % NCONS];

			kill(victim, SIGSTOP);
			usleep(1000 + t_rand(&t->rng) % 30000);
			kill(victim, SIGCONT);
			t->stops++;
			continue;
		}
		if (r & 0x10000) {
			i = (int)((r >> 8) % NPROD);
			kill_reap(t->prod[i]);
			t->kills_prod++;
			spawn_producer(t, i, MAX_SEQ);
		} else {
			i = (int)((r >> 8) % NCONS);
			kill_reap(t->cons[i]);
			t->kills_cons++;
			account_killed_consumer(t, t->cons_id[i]);
			spawn_consumer(t, i);
		}
		/* A producer that ran out of sequence numbers: replace. */
		for (i = 0; i < NPROD; i++)
			if (atomic_load(&t->lg->done[t->prod_id[i]])) {
				t_assert_exit0(t_wait_child(t->prod[i]));
				spawn_producer(t, i, MAX_SEQ);
			}
	}

	/*
	 * The kill phase ends early when a ledger is nearly full (the
	 * delivery log holds LOG_MAX / 2 deliveries, about 8M): the report
	 * gives the time it really ran.
	 */
	killed_until = t_now_ns();
	/* Producers finish their call and exit; consumers keep going. */
	atomic_store(&t->lg->stop, 1);
	for (i = 0; i < NPROD; i++)
		t_assert_exit0(t_wait_child(t->prod[i]));
	/* The final producer: every one of its messages must get through. */
	atomic_store(&t->lg->stop, 0);
	final_id = t->next_prod;
	final = spawn_producer(t, -1, FINAL_MSGS);
	t_assert_exit0(t_wait_child(final));

	/* Wait until every committed message is in; no progress: a wedge. */
	for (id = 0; id < t->next_prod; id++)
		committed += atomic_load(&t->lg->committed[id]);
	deadline = t_now_ns() + 60000 * (uint64_t)T_MS;
	last_progress = t_now_ns();
	prev = atomic_load(&t->lg->log_n);
	for (;;) {
		uint64_t missing = 0;

		tally(t);
		for (id = 0; id < t->next_prod && !missing; id++)
			for (s = 0; s < atomic_load(&t->lg->committed[id]);
			     s++)
				if (!t->delivered[id][s] || t->delivered[id][s] <
				    1u + t->again[id][s]) {
					missing++;
					break;
				}
		if (!missing)
			break;
		if (atomic_load(&t->lg->log_n) != prev) {
			prev = atomic_load(&t->lg->log_n);
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
	for (i = 0; i < NCONS; i++)
		t_assert_exit0(t_wait_child(t->cons[i]));
	delivered = tally(t);
	for (k = 0; k < t->nheld; k++)
		zc_held += (unsigned)t->held[k].zc;

	for (id = 0; id < t->next_prod; id++) {
		uint32_t c = atomic_load(&t->lg->committed[id]);
		uint32_t hi = atomic_load(&t->lg->started[id]) + BATCH;

		for (s = 0; s < MAX_SEQ; s++) {
			unsigned d = t->delivered[id][s];

			if (s < c && d == 0)
				lost++;
			if (s >= c && s < hi && d)
				unsure++;       /* committed just before a kill */
			if (s >= hi && d) {
				print_error("invented: producer %u seq %u\n",
					    id, s);
				lost += 1000000;
			}
			if (d > 1u + t->extra[id][s])
				dups += d - 1u - t->extra[id][s];
			if (t->again[id][s] && d < 1u + t->again[id][s])
				not_again++;
		}
	}
	printf("torture: %u s, %u stopped and continued, "
	       "%u producer and %u consumer processes killed "
	       "(%u holding a message, %u of them acquired, %llu of those "
	       "not redelivered), %llu messages committed, %llu delivered, "
	       "%llu lost, %llu duplicated beyond the documented "
	       "redelivery, %llu in flight at a kill and delivered, %s, "
	       "final producer's %u all through: %s\n",
	       (unsigned)((killed_until - start) / 1000000000ull), t->stops,
	       t->kills_prod, t->kills_cons, t->nheld, zc_held,
	       (unsigned long long)not_again,
	       (unsigned long long)committed,
	       (unsigned long long)delivered,
	       (unsigned long long)lost, (unsigned long long)dups,
	       (unsigned long long)unsure, wedged ? "WEDGED" : "no wedge",
	       FINAL_MSGS,
	       atomic_load(&t->lg->committed[final_id]) == FINAL_MSGS ?
	       "yes" : "no");
	assert_int_equal(atomic_load(&t->lg->committed[final_id]),
			 FINAL_MSGS);
	assert_int_equal(lost, 0);
	assert_int_equal(dups, 0);
	assert_int_equal(not_again, 0);
	assert_int_equal(wedged, 0);
	assert_true(t->kills_prod + t->kills_cons > 20);
	munmap(t->log, LOG_MAX * sizeof(uint64_t));
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
