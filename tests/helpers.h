/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - what every shmq test binary shares (t_ prefix).
 *
 * Fixtures: t_setup() makes a unique segment (T_SEG_SIZE bytes) and arms a
 * watchdog; t_teardown(), which cmocka runs even after a failed assertion,
 * SIGKILLs and reaps every child recorded with t_track_child(), closes the
 * segment, unlinks every name t_segname() handed out and removes every
 * directory t_tmpdir() made.  So no test leaves /dev/shm/shmq.t.* behind.
 *
 * Rules of the suite (STYLE.md, "Tests"): cmocka asserts only in the test's
 * own thread and process.  Worker threads record what they saw; forked
 * children check and _exit(code); the test asserts on the records and the
 * wait statuses.
 */
#ifndef SHMQ_TEST_HELPERS_H
#define SHMQ_TEST_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/types.h>
#include <cmocka.h>

#include "shmq.h"

/* Small segments keep creation (posix_fallocate) and teardown fast. */
#define T_SEG_SIZE		((size_t)4 << 20)
/* A hung test fails after this many seconds instead of blocking CI. */
#define T_WATCHDOG_S		60

/* ---- fixtures --------------------------------------------------------- */

struct t_fix {
	const char *name;		/* the segment's name (t_segname()) */
	shmq_seg *seg;			/* our attachment; a test that closes
					 * it early sets it to NULL */
};

/* Per-test: watchdog, unique name, segment of T_SEG_SIZE; *state = fix. */
int t_setup(void **state);
/* Per-test: watchdog and a unique name, but no segment (seg == NULL). */
int t_setup_noseg(void **state);
/* Per-test: children, segment, names, temporary directories. */
int t_teardown(void **state);
/* Group: install the watchdog's handler; the group teardown disarms it. */
int t_group_setup(void **state);
int t_group_teardown(void **state);

/*
 * A new segment name, "t.<pid>.<n>", unique per call and per process.  It
 * is recorded: teardown unlinks it whether or not the test created it.
 * The string lives until the test's teardown.
 */
const char *t_segname(void);
/* The same, padded with 'x' to exactly @len bytes (at most 63). */
const char *t_segname_len(size_t len);
/* "/dev/shm/shmq.<name>" into @buf (at least 128 bytes). */
char *t_shm_path(char *buf, size_t size, const char *name);
/* A fresh private directory under /tmp, removed with its files at teardown. */
const char *t_tmpdir(void);

/* Re-arm the watchdog (setup does it; long tests may do it again). */
void t_watchdog(unsigned seconds);

/* ---- children --------------------------------------------------------- */

/* Record a child for teardown to SIGKILL and reap. */
void t_track_child(pid_t pid);
/*
 * fork() and record the child.  In the child: the parent's watchdog
 * handler is removed (a child must never clean up the parent's names) and
 * a fresh alarm of @watchdog_s seconds kills it if it hangs.
 */
pid_t t_fork(unsigned watchdog_s);
/* waitpid() a recorded child, forget it; returns the status or -1. */
int t_wait_child(pid_t pid);
/* Assert in the parent that @status is a normal exit with code 0. */
#define t_assert_exit0(status) _t_assert_exit0((status), #status, \
						__FILE__, __LINE__)
void _t_assert_exit0(int status, const char *expr, const char *file,
		     int line);

/*
 * Assert in the parent that @status is a death by SIGKILL (a child we
 * killed), not an exit of its own (then its code is printed: a child's
 * own failure must not pass for our kill).
 */
#define t_assert_killed(status) _t_assert_killed((status), #status, \
						  __FILE__, __LINE__)
void _t_assert_killed(int status, const char *expr, const char *file,
		      int line);
/*
 * SIGKILL a recorded child, reap it, and assert that our kill is what
 * ended it (t_assert_killed).
 */
#define t_kill_reap(pid) _t_assert_killed(_t_kill_wait(pid), "t_kill_reap(" \
					   #pid ")", __FILE__, __LINE__)
int _t_kill_wait(pid_t pid);
/* "exit 12", "killed by signal 9 (Killed)"...: @status in words, in @buf. */
const char *t_status_str(int status, char *buf, size_t size);

/*
 * Limit this process's address space to what it maps now plus @slack
 * bytes (RLIMIT_AS), so that a large mmap or malloc fails with ENOMEM.
 * For a forked child.  Returns 0, or -1 if /proc or setrlimit failed.
 * Sanitizers reserve huge shadow mappings: tests using this skip there.
 */
int t_limit_address_space(size_t slack);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZED	1
#else
#define T_SANITIZED	0
#endif

/*
 * Skip the running test and say why, on a line that make check's summary
 * table shows (tools/check.sh): "[  REASON  ] test_name: why".
 */
#define t_skip(why) do {						\
		print_message("[  REASON  ] %s: %s\n", __func__, (why));	\
		skip();							\
	} while (0)

/* ---- queues ----------------------------------------------------------- */

/* Create queue @name in @seg and open it; asserts both succeed. */
shmq *t_queue(shmq_seg *seg, const char *name, uint32_t capacity,
	      uint32_t msg_size);
/* The same with shmq_attr.flags @flags (SHMQ_SPSC). */
shmq *t_queue_flags(shmq_seg *seg, const char *name, uint32_t capacity,
		    uint32_t msg_size, uint32_t flags);
/* Receive one message within @timeout_ns; assert it is @len bytes of @expect. */
void t_recv_expect(shmq *q, const void *expect, size_t len,
		   int64_t timeout_ns);
/* Assert that @q is empty now (a message of any length would show). */
void t_expect_empty(shmq *q);

/* ---- errors ----------------------------------------------------------- */

/*
 * Compare a result with an expected error (or 0, or a length), printing
 * symbolic names (cmocka 1.1.5 prints mismatched integers in hex).
 */
#define t_assert_err(rc, expected) _t_assert_err((long long)(rc),      \
						   (long long)(expected),     \
						   #rc, __FILE__, __LINE__)
void _t_assert_err(long long rc, long long expected, const char *expr,
		   const char *file, int line);

/* ---- time ------------------------------------------------------------- */

#define T_MS	((int64_t)1000000)
uint64_t t_now_ns(void);			/* CLOCK_MONOTONIC */
void t_sleep_ms(unsigned ms);

/*
 * How late a timed call may return past its timeout on a loaded 2-CPU
 * machine under sanitizers: generous, since only a missing or broken
 * deadline (a 20 ms timeout that takes 20 s) is meant to fail.
 */
#define T_LATE_NS	(2000 * T_MS)
/*
 * Run @call, which must fail with -ETIMEDOUT no sooner than @timeout_ns
 * and no later than @timeout_ns + T_LATE_NS after it started.
 */
#define t_assert_timeout(call, timeout_ns) do {				\
	uint64_t t0_ = t_now_ns();					\
	long long rc_ = (long long)(call);				\
									\
	_t_assert_timeout(rc_, t_now_ns() - t0_, (timeout_ns), #call,	\
			  __FILE__, __LINE__);				\
} while (0)
void _t_assert_timeout(long long rc, uint64_t elapsed_ns, int64_t timeout_ns,
		       const char *expr, const char *file, int line);

/* ---- tagged messages (MPMC checks) ------------------------------------ */

/*
 * A tagged message is this header followed by @len payload bytes that are
 * a pure function of (producer, seq).  @csum covers the header fields and
 * the payload, so a torn, mixed or shortened message is detected.
 */
struct t_tag {
	uint32_t producer;
	uint32_t seq;
	uint32_t len;			/* payload bytes after the tag */
	uint32_t csum;
};

/* Producer ids at and above this are control messages (sentinels). */
#define T_SENTINEL	0xffff0000u

/*
 * Write message (producer, seq) into @buf and return its total length:
 * sizeof(struct t_tag) plus a payload of 0..(@max_len - tag) bytes that
 * varies with seq.  @max_len must be at least sizeof(struct t_tag).
 */
size_t t_msg_fill(void *buf, size_t max_len, uint32_t producer, uint32_t seq);
/* Its total length, without writing it. */
size_t t_msg_len(size_t max_len, uint32_t producer, uint32_t seq);
/* Write a sentinel (tag only) into @buf; returns its length. */
size_t t_msg_sentinel(void *buf, uint32_t id);
/*
 * Check a received message: 0 if it is intact (length, checksum, payload),
 * with its producer and seq stored; -1 otherwise.
 */
int t_msg_check(const void *buf, size_t len, uint32_t *producer,
		uint32_t *seq);

/* A simple deterministic PRNG for tests that vary sizes (xorshift32). */
uint32_t t_rand(uint32_t *state);

#endif /* SHMQ_TEST_HELPERS_H */
