// SPDX-License-Identifier: MIT
/*
 * test_torture.c - producers and consumers in separate processes,
 * SIGKILLed at random moments (also while holding a slot through reserve
 * or acquire), replaced, for many rounds; then a final producer whose
 * messages must all get through.  Counts what was committed, lost,
 * duplicated and redelivered, and whether the final drain finishes
 * (no wedge).  tests/soak.c is the same harness for minutes, adding
 * SIGSTOP/SIGCONT of random peers.
 *
 * The ledger is a MAP_SHARED anonymous mapping of our own (not the
 * segment), written by the children:
 *   - producer incarnation i, before sending seqs [s, s+k): pending[i] =
 *     s+k; after the send/commit returned success: committed[i] = s+k.  A
 *     message with committed[i] <= seq < pending[i] may or may not have
 *     been committed when its producer was killed ("committed but
 *     unrecorded"): it may arrive (counted as extra) or not;
 *   - consumer incarnation c, after shmq_acquire: holding[c] = its tag,
 *     then count[producer][seq]++, then shmq_release, then holding[c] = 0.
 *     A consumer killed between acquire and release has its message
 *     redelivered (the documented at-least-once); if it had counted it
 *     already, the test allows one duplicate of that message.
 * At the end, for every recorded commit (seq < committed[i]): count >= 1
 * (else lost); count - 1 beyond the allowance is a duplicate; a seq
 * >= pending[i] or a corrupt message is an invented one.
 *
 * Duration: SHMQ_TORTURE_S seconds of killing (default 20), then the
 * final producer and the drain (bounded by the watchdog).
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define MAXINC		1024            /* producer incarnations */
#define MAXCONS		1024            /* consumer incarnations */
#define MAXSEQ		2048            /* messages per producer incarnation */
#define FINAL_MSGS	2000
#define MSG_SIZE	64
#define CAPACITY	16
#define NPROD		3               /* live producers at a time */
#define NCONS		3               /* live consumers at a time */

struct ledger {
	_Atomic uint32_t pending[MAXINC];
	_Atomic uint32_t committed[MAXINC];
	_Atomic uint64_t holding[MAXCONS];      /* (producer << 32 | seq) + 1 */
	_Atomic uint32_t corrupt;
	_Atomic uint32_t invented;
	_Atomic uint8_t count[MAXINC][MAXSEQ];
};

static struct ledger *L;

/* ---- children ------------------------------------------------------------ */

static shmq *child_open(const char *segname, shmq_seg **seg)
{
	shmq *q;

	if (shmq_seg_open(segname, seg) || shmq_open(*seg, "q", &q))
		_exit(3);
	return q;
}

/* Random small pause: kills land inside holds, not only between calls. */
static void jitter(uint32_t *rs)
{
	uint32_t r = t_rand(rs) % 8;

	if (r == 0)
		usleep(t_rand(rs) % 300);
}

static void producer(const char *segname, uint32_t id, uint32_t nmsgs,
		     bool final)
{
	unsigned char buf[4][MSG_SIZE];
	uint32_t rs = id * 7919 + 1, seq = 0, timeouts = 0;
	struct iovec v[4];
	shmq_seg *seg;
	shmq *q = child_open(segname, &seg);

	while (seq < nmsgs) {
		uint32_t mode = final ? 0 : t_rand(&rs) % 3, k = 1, i;
		struct shmq_msg m;
		int rc;

		if (mode == 2) {
			k = 1 + t_rand(&rs) % 4;
			if (seq + k > nmsgs)
				k = nmsgs - seq;
		}
		/* release: before the message can exist (pairs: none needed,
		 * the parent reads after waitpid or with seq_cst loads). */
		atomic_store(&L->pending[id], seq + k);
		if (mode == 0) {
			size_t len = t_msg_fill(buf[0], MSG_SIZE, id, seq);

			rc = shmq_send(q, buf[0], len, 2000 * T_MS);
		} else if (mode == 1) {
			rc = shmq_reserve(q, MSG_SIZE, &m, 2000 * T_MS);
			if (rc == 0) {
				m.len = t_msg_fill(m.data, MSG_SIZE, id, seq);
				jitter(&rs);    /* holding a reserved slot */
				rc = shmq_commit(q, &m);
			}
		} else {
			for (i = 0; i < k; i++)
				v[i] = (struct iovec){ buf[i], t_msg_fill(buf[i],
					MSG_SIZE, id, seq + i) };
			rc = shmq_send_batch(q, v, k, 2000 * T_MS);
			if (rc > 0) {
				k = (uint32_t)rc;
				rc = 0;
			}
		}
		if (rc == -ETIMEDOUT) {
			/* Full for long: consumers being killed.  With live
			 * consumers only (the final phase), 20 s is a wedge. */
			if (final && ++timeouts >= 10)
				_exit(5);
			continue;
		}
		timeouts = 0;
		if (rc) {
			fprintf(stderr, "producer %u: %s\n", id, shmq_errname(rc));
			_exit(1);
		}
		seq += k;
		atomic_store(&L->committed[id], seq);
	}
	shmq_close(q);
	shmq_seg_close(seg);
	_exit(0);
}

static void consumer(const char *segname, uint32_t cid)
{
	uint32_t rs = cid * 104729 + 3;
	shmq_seg *seg;
	shmq *q = child_open(segname, &seg);

	for (;;) {
		struct shmq_msg m;
		uint32_t p, s;
		int rc = shmq_acquire(q, &m, 50 * T_MS);

		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			continue;
		if (rc) {
			fprintf(stderr, "consumer %u: %s\n", cid, shmq_errname(rc));
			_exit(1);
		}
		if (t_msg_check(m.data, m.len, &p, &s) != 0) {
			atomic_fetch_add(&L->corrupt, 1);
		} else if (p >= MAXINC || s >= MAXSEQ ||
			   s >= atomic_load(&L->pending[p])) {
			atomic_fetch_add(&L->invented, 1);
		} else {
			atomic_store(&L->holding[cid], ((uint64_t)p << 32 | s) + 1);
			atomic_fetch_add(&L->count[p][s], 1);
		}
		jitter(&rs);            /* holding an acquired slot */
		rc = shmq_release(q, &m);
		if (rc) {
			fprintf(stderr, "consumer %u: release %s\n", cid,
				shmq_errname(rc));
			_exit(1);
		}
		atomic_store(&L->holding[cid], 0);
	}
}

/* ---- the test ------------------------------------------------------------- */

struct peer {
	pid_t pid;
	uint32_t id;
	bool prod;
	bool stopped;
};

struct figures {
	unsigned kills, kills_prod, kills_cons, kills_holding, stops;
};

static uint8_t allow[MAXINC][MAXSEQ];  /* extra deliveries allowed */
static uint32_t next_prod, next_cons;

/*
 * fork() without helpers.c's child table (which holds 64): a child dies
 * with its parent (PR_SET_PDEATHSIG) or after its own alarm.
 */
static pid_t own_fork(void)
{
	pid_t ppid = getpid(), pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		alarm(600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != ppid)
			_exit(4);
	}
	return pid;
}

static int own_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

static pid_t spawn(const char *segname, bool prod, uint32_t *id)
{
	pid_t pid;

	*id = prod ? next_prod++ : next_cons++;
	assert_true(*id < (prod ? MAXINC : MAXCONS));
	pid = own_fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prod)
			producer(segname, *id, MAXSEQ, false);
		consumer(segname, *id);
	}
	return pid;
}

static void kill_peer(struct peer *pe, struct figures *f)
{
	uint64_t h;
	int st;

	kill(pe->pid, SIGKILL);
	st = own_wait(pe->pid);
	(void)st;
	f->kills++;
	if (pe->prod) {
		f->kills_prod++;
		return;
	}
	f->kills_cons++;
	h = atomic_load(&L->holding[pe->id]);
	if (h) {
		h--;
		f->kills_holding++;
		allow[h >> 32][h & 0xffffffffu]++;
	}
}

/*
 * Run the torture for @seconds; @stop_cont adds SIGSTOP/SIGCONT of random
 * peers (the soak).  Prints one summary line; asserts the checks.
 */
void t_torture(const char *segname, shmq_seg *seg, unsigned seconds,
	       bool stop_cont, const char *label);

void t_torture(const char *segname, shmq_seg *seg, unsigned seconds,
	       bool stop_cont, const char *label)
{
	struct peer peers[NPROD + NCONS];
	struct figures f = { 0 };
	uint64_t end, t0 = t_now_ns(), drain_ns;
	uint64_t committed = 0, extra = 0, delivered = 0, lost = 0, dups = 0;
	uint64_t redelivered = 0;
	uint32_t rs = (uint32_t)getpid(), final_id, i, s;
	int recovered = 0, wedged = 0, rc, st;
	pid_t fp;

	L = mmap(NULL, sizeof(*L), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(L != MAP_FAILED);
	memset(allow, 0, sizeof(allow));
	next_prod = next_cons = 0;

	t_assert_err(shmq_create(seg, "q", &(struct shmq_attr){ CAPACITY,
						MSG_SIZE, 0 }), 0);
	for (i = 0; i < NPROD + NCONS; i++) {
		peers[i].prod = i < NPROD;
		peers[i].stopped = false;
		peers[i].pid = spawn(segname, peers[i].prod, &peers[i].id);
	}

	end = t0 + (uint64_t)seconds * 1000000000ull;
	while (t_now_ns() < end) {
		struct peer *pe = &peers[t_rand(&rs) % (NPROD + NCONS)];

		usleep(1000 + t_rand(&rs) % 20000);
		if (stop_cont && t_rand(&rs) % 3 == 0) {
			/* A stopped peer is waited for, never repaired. */
			kill(pe->pid, pe->stopped ? SIGCONT : SIGSTOP);
			pe->stopped = !pe->stopped;
			f.stops += pe->stopped;
			continue;
		}
		if (pe->stopped)
			kill(pe->pid, SIGCONT);
		pe->stopped = false;
		kill_peer(pe, &f);
		if (next_prod >= MAXINC - 2 || next_cons >= MAXCONS - 2)
			break;
		pe->pid = spawn(segname, pe->prod, &pe->id);
		if (t_rand(&rs) % 4 == 0) {
			rc = shmq_seg_recover(seg);
			assert_true(rc >= 0);
			recovered += rc;
		}
	}

	/* Stop every producer; wake every stopped consumer. */
	for (i = 0; i < NPROD + NCONS; i++) {
		if (peers[i].stopped)
			kill(peers[i].pid, SIGCONT);
		peers[i].stopped = false;
		if (peers[i].prod)
			kill_peer(&peers[i], &f);
	}

	/* The final producer: every message must get through. */
	drain_ns = t_now_ns();
	final_id = next_prod++;
	fp = own_fork();
	if (fp == 0)
		producer(segname, final_id, FINAL_MSGS, true);
	st = own_wait(fp);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 5) {
		fprintf(stderr, "torture: WEDGED: the final producer's sends "
			"timed out for 20 s\n");
		wedged = 1;
	} else {
		t_assert_exit0(st);
	}

	/* Drain: every recorded commit delivered, or it is a wedge. */
	for (; !wedged;) {
		bool all = true;

		for (i = 0; i < next_prod && all; i++)
			for (s = 0; s < atomic_load(&L->committed[i]); s++)
				if (!atomic_load(&L->count[i][s])) {
					all = false;
					break;
				}
		if (all)
			break;
		if (t_now_ns() - drain_ns > 30000000000ull) {
			fprintf(stderr, "torture: WEDGED: undelivered messages "
				"after 30 s of drain\n");
			wedged = 1;
			break;
		}
		usleep(5000);
	}
	drain_ns = t_now_ns() - drain_ns;
	for (i = 0; i < NPROD + NCONS; i++)
		if (!peers[i].prod) {
			kill(peers[i].pid, SIGKILL);
			own_wait(peers[i].pid);
		}

	for (i = 0; i < next_prod; i++) {
		uint32_t c = atomic_load(&L->committed[i]);
		uint32_t pend = atomic_load(&L->pending[i]);

		committed += c;
		for (s = 0; s < pend && s < MAXSEQ; s++) {
			uint8_t n = atomic_load(&L->count[i][s]);

			delivered += n;
			if (s >= c) {           /* committed but unrecorded */
				extra += n > 0;
				if (n > 1u + allow[i][s])
					dups += n - 1u - allow[i][s];
				continue;
			}
			if (n == 0) {
				if (lost < 5)
					fprintf(stderr, "torture: lost %u.%u\n",
						i, s);
				lost++;
			} else if (n > 1u + allow[i][s]) {
				dups += n - 1u - allow[i][s];
				if (dups < 5)
					fprintf(stderr, "torture: %u.%u "
						"delivered %u times\n", i, s, n);
			} else if (n > 1) {
				redelivered += n - 1;
			}
		}
	}
	printf("SUMMARY %s: %u s, kills %u (producers %u, consumers %u, "
	       "holding %u), stops %u, committed %llu, committed-unrecorded "
	       "delivered %llu, delivered %llu, lost %llu, duplicated %llu, "
	       "redelivered %llu (allowed), corrupt %u, invented %u, repairs "
	       "by recover() %d, final drain %.2f s, wedges %d\n",
	       label, seconds, f.kills, f.kills_prod, f.kills_cons,
	       f.kills_holding, f.stops, (unsigned long long)committed,
	       (unsigned long long)extra, (unsigned long long)delivered,
	       (unsigned long long)lost, (unsigned long long)dups,
	       (unsigned long long)redelivered, atomic_load(&L->corrupt),
	       atomic_load(&L->invented), recovered, drain_ns / 1e9,
	       wedged);
	fflush(stdout);
	assert_int_equal(wedged, 0);
	assert_true(committed >= FINAL_MSGS);
	assert_int_equal(lost, 0);
	assert_int_equal(dups, 0);
	assert_int_equal(atomic_load(&L->corrupt), 0);
	assert_int_equal(atomic_load(&L->invented), 0);
	munmap(L, sizeof(*L));
}

#ifndef TORTURE_NO_MAIN
static void test_torture_kill(void **state)
{
	struct t_fix *fix = *state;
	const char *e = getenv("SHMQ_TORTURE_S");
	unsigned secs = e ? (unsigned)atoi(e) : 20;

	t_watchdog(secs + 90);
	t_torture(fix->name, fix->seg, secs, false, "torture");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_torture_kill, t_setup,
						t_teardown),
	};

	return cmocka_run_group_tests_name("torture", tests, t_group_setup,
					   t_group_teardown);
}
#endif
