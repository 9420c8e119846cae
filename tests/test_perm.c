// SPDX-License-Identifier: MIT
/*
 * test_perm.c - the kernel's file permissions are shmq's access control.
 * As root, segments are created with a mode (and a group), then forked
 * children drop to other users and groups and try to open them.  Skipped
 * when not run as root (only root can become other users).
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define NOBODY		65534	/* uid nobody, gid nogroup on Debian */
#define OTHER_GID	65533	/* a group nobody is not in */

/*
 * In a child: become @uid with primary group @gid and no supplementary
 * groups, then shmq_seg_open(@name).  Returns the result (or -EPERM if the
 * identity could not be taken).
 */
static int open_as(const char *name, uid_t uid, gid_t gid)
{
	int *res = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid;
	int rc;

	assert_true(res != MAP_FAILED);
	*res = 1;
	pid = t_fork(20);
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_seg *seg;

		if (setgroups(0, NULL) || setgid(gid) || setuid(uid)) {
			*res = -EPERM;
			_exit(0);
		}
		*res = shmq_seg_open(name, &seg);
		if (*res == 0)
			shmq_seg_close(seg);
		_exit(0);
	}
	t_assert_exit0(t_wait_child(pid));
	rc = *res;
	munmap(res, sizeof(int));
	return rc;
}

static void test_perm_mode_0600_owner_only(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr a = { .size = T_SEG_SIZE };
	const char *name = t_segname();
	char path[128];
	struct stat st;
	shmq_seg *seg;

	if (geteuid() != 0)
		t_skip("needs root: it switches to other users and groups");
	t_assert_err(shmq_seg_create(name, &a, &seg), 0);
	shmq_seg_close(seg);
	assert_int_equal(stat(t_shm_path(path, sizeof(path), name), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	t_assert_err(open_as(name, NOBODY, NOBODY), -EACCES);
	(void)fix;
}

static void test_perm_group_0660(void **state)
{
	struct shmq_seg_attr a = {
		.size = T_SEG_SIZE, .mode = 0660, .flags = SHMQ_SEG_GROUP,
		.gid = NOBODY,
	};
	const char *name = t_segname();
	char path[128];
	struct stat st;
	shmq_seg *seg;

	(void)state;
	if (geteuid() != 0)
		t_skip("needs root: it switches to other users and groups");
	t_assert_err(shmq_seg_create(name, &a, &seg), 0);
	shmq_seg_close(seg);
	assert_int_equal(stat(t_shm_path(path, sizeof(path), name), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, NOBODY);
	/* A member of the group may; someone outside it may not. */
	t_assert_err(open_as(name, NOBODY, NOBODY), 0);
	t_assert_err(open_as(name, NOBODY, OTHER_GID), -EACCES);
}

static void test_perm_mode_0666_anyone(void **state)
{
	struct shmq_seg_attr a = { .size = T_SEG_SIZE, .mode = 0666 };
	const char *name = t_segname();
	mode_t old = umask(077);        /* the mode is applied exactly */
	shmq_seg *seg;

	(void)state;
	if (geteuid() != 0) {
		umask(old);
		t_skip("needs root: it switches to other users and groups");
	}
	t_assert_err(shmq_seg_create(name, &a, &seg), 0);
	umask(old);
	shmq_seg_close(seg);
	t_assert_err(open_as(name, NOBODY, OTHER_GID), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
		T(test_perm_mode_0600_owner_only),
		T(test_perm_group_0660),
		T(test_perm_mode_0666_anyone),
#undef T
	};

	return cmocka_run_group_tests_name("perm", tests, t_group_setup,
					   t_group_teardown);
}
