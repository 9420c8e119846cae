// SPDX-License-Identifier: MIT
/*
 * soak.c - `make soak`: the torture of test_torture.c for minutes, plus
 * SIGSTOP/SIGCONT of random peers (a stopped peer is alive: it is waited
 * for, never repaired).  Not part of make check.
 *
 *   build/tests/soak [SECONDS]      (default 300; or $SHMQ_SOAK_S)
 *
 * Prints one SUMMARY line with the figures and exits non-zero when a
 * committed message was lost, duplicated beyond the documented
 * redelivery, corrupted or invented, or when the final drain wedged.
 */
#define TORTURE_NO_MAIN
#include "test_torture.c"

static unsigned soak_s = 300;

static void test_soak(void **state)
{
	struct t_fix *fix = *state;

	t_watchdog(soak_s + 120);
	t_torture(fix->name, fix->seg, soak_s, true, "soak");
}

int main(int argc, char **argv)
{
	const char *e = getenv("SHMQ_SOAK_S");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_soak, t_setup, t_teardown),
	};

	if (argc > 1)
		soak_s = (unsigned)atoi(argv[1]);
	else if (e)
		soak_s = (unsigned)atoi(e);
	return cmocka_run_group_tests_name("soak", tests, t_group_setup,
					   t_group_teardown);
}
