// SPDX-License-Identifier: MIT
/*
 * test_timeout.c - a timed wait ends at its deadline, not sooner and not
 * much later, even while signals keep interrupting it.
 *
 * shmq_recv (empty), shmq_send (full), shmq_acquire (empty) and
 * shmq_reserve (full), on an MPMC and an SHMQ_SPSC queue, each with a
 * handle that sleeps at once (spin 0) and one with the default spin, run
 * while a POSIX timer sends SIGUSR1 every SIG_PERIOD_NS to a no-op handler
 * installed without SA_RESTART: each interrupted futex wait returns EINTR
 * to the library, which must keep its deadline (computed once) rather than
 * start the timeout again.  Each call must return -ETIMEDOUT within
 * [timeout, timeout + T_LATE_NS].
 *
 * Why not setitimer()/SIGALRM: ITIMER_REAL is the timer behind alarm(),
 * the suite's watchdog; arming it would disarm the watchdog.
 *
 * The timer stops by itself after SIG_MAX signals (from the handler), a
 * little more than T_LATE_NS worth: a library that restarts its timeout
 * at each EINTR then returns one timeout after the last signal, too late,
 * and the test fails with the time it took instead of hanging.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

#define QNAME		"tq"
#define TIMEOUT_NS	(50 * T_MS)
#define SIG_PERIOD_NS	(2 * T_MS)
#define SIG_MAX		((TIMEOUT_NS + T_LATE_NS) / SIG_PERIOD_NS + 100)

static timer_t timer;
/* Written by the handler, read by the test in the same thread. */
static volatile sig_atomic_t nsig;

static void on_signal(int sig)
{
	struct itimerspec off = { { 0, 0 }, { 0, 0 } };

	(void)sig;
	/* timer_settime is async-signal-safe (POSIX). */
	if (++nsig >= SIG_MAX)
		timer_settime(timer, 0, &off, NULL);
}

/* Start SIGUSR1 every SIG_PERIOD_NS, interrupting (no SA_RESTART). */
static void signals_start(void)
{
	struct sigevent sev;
	struct sigaction sa;
	struct itimerspec its = {
		{ 0, SIG_PERIOD_NS }, { 0, SIG_PERIOD_NS }
	};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
	nsig = 0;
	assert_int_equal(timer_settime(timer, 0, &its, NULL), 0);
}

static void signals_stop(void)
{
	assert_int_equal(timer_delete(timer), 0);
	signal(SIGUSR1, SIG_IGN);
}

/*
 * Time @call under the signals; it must time out within bounds, and must
 * have been interrupted (else the test proves nothing).
 */
#define timed_under_signals(call) do {					\
	sig_atomic_t n0_ = nsig;					\
	uint64_t t0_ = t_now_ns();					\
	long long rc_ = (long long)(call);				\
									\
	_t_assert_timeout(rc_, t_now_ns() - t0_, TIMEOUT_NS, #call,	\
			  __FILE__, __LINE__);				\
	if (nsig - n0_ < 5) {						\
		print_error("%s: only %d signals during the wait\n",	\
			    #call, (int)(nsig - n0_));			\
		fail();							\
	}								\
} while (0)

static void all_four(shmq_seg *seg, uint32_t flags, int64_t spin)
{
	shmq *q = t_queue_flags(seg, QNAME, 4, 16, flags);
	struct shmq_msg m;
	char buf[16];
	int i;

	if (spin >= 0)
		t_assert_err(shmq_set_spin(q, spin), 0);
	signals_start();
	timed_under_signals(shmq_recv(q, buf, sizeof(buf), TIMEOUT_NS));
	timed_under_signals(shmq_acquire(q, &m, TIMEOUT_NS));
	for (i = 0; i < 4; i++)
		t_assert_err(shmq_send(q, &i, sizeof(i), 0), 0);
	timed_under_signals(shmq_send(q, &i, sizeof(i), TIMEOUT_NS));
	timed_under_signals(shmq_reserve(q, sizeof(i), &m, TIMEOUT_NS));
	signals_stop();
	/* The interrupted calls changed nothing. */
	for (i = 0; i < 4; i++)
		t_recv_expect(q, &i, sizeof(i), 0);
	t_expect_empty(q);
	shmq_close(q);
	t_assert_err(shmq_unlink(seg, QNAME), 0);
}

static void test_timeout_signals_mpmc_sleep(void **state)
{
	struct t_fix *fix = *state;

	all_four(fix->seg, 0, 0);
}

static void test_timeout_signals_mpmc_spin(void **state)
{
	struct t_fix *fix = *state;

	all_four(fix->seg, 0, -1);
}

static void test_timeout_signals_spsc_sleep(void **state)
{
	struct t_fix *fix = *state;

	all_four(fix->seg, SHMQ_SPSC, 0);
}

static void test_timeout_signals_spsc_spin(void **state)
{
	struct t_fix *fix = *state;

	all_four(fix->seg, SHMQ_SPSC, -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_timeout_signals_mpmc_sleep),
		T(test_timeout_signals_mpmc_spin),
		T(test_timeout_signals_spsc_sleep),
		T(test_timeout_signals_spsc_spin),
	};

	return cmocka_run_group_tests_name("timeout", tests, t_group_setup,
					   t_group_teardown);
}
