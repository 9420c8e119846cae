// SPDX-License-Identifier: MIT
/*
 * test_perm_more.c - more permission cases than test_perm.c: the default
 * mode, 0640 (read-only for the group: shmq needs write), membership through
 * a supplementary group, a group given with chgrp, and unlink by another
 * user.
 *
 * A segment is created by root (the test) with some mode and group; a
 * forked child drops its privileges (setgroups, setgid, setuid) to an
 * unprivileged user and tries shmq_seg_open(): it must get -EACCES where
 * the mode denies read+write, and a working attachment where it allows
 * them.  The child checks and exits with a code; the parent asserts on it.
 * Skipped unless run as root (dropping privileges needs it).
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define NOBODY_UID	65534
#define NOGROUP_GID	65534
#define OTHER_GID	65533   /* a group nobody is in */

/* Child: become (uid, gid) with no supplementary groups but @extra. */
static int drop_to(uid_t uid, gid_t gid, gid_t extra)
{
	gid_t groups[1] = { extra };

	if (setgroups(extra ? 1 : 0, groups) || setgid(gid) || setuid(uid))
		return -1;
	/* Make sure the drop is not reversible. */
	return setuid(0) == 0 ? -1 : 0;
}

/*
 * Fork a child that drops to (uid, gid, extra) and opens @name: it exits
 * 0 when the result is @want (0: opened, used and closed), 1 when it is
 * not, 2 when dropping privileges failed.
 */
static void open_as(const char *name, uid_t uid, gid_t gid, gid_t extra,
		    int want)
{
	pid_t pid = t_fork(20);
	int st;

	if (pid == 0) {
		shmq_seg *seg;
		shmq *q;
		int rc;

		if (drop_to(uid, gid, extra))
			_exit(2);
		rc = shmq_seg_open(name, &seg);
		if (rc != want) {
			fprintf(stderr, "perm child: open: %s, want %s\n",
				shmq_errname(rc), shmq_errname(want));
			_exit(1);
		}
		if (rc == 0) {
			/* A working attachment: a round trip through a queue. */
			char buf[8];

			if (shmq_open(seg, "q", &q) ||
			    shmq_send(q, "perm", 4, 0) ||
			    shmq_recv(q, buf, sizeof(buf), 0) != 4)
				_exit(1);
			shmq_close(q);
			shmq_seg_close(seg);
		}
		_exit(0);
	}
	st = t_wait_child(pid);
	t_assert_exit0(st);
}

static void make_seg(const char *name, mode_t mode, gid_t gid)
{
	struct shmq_seg_attr a = { .size = T_SEG_SIZE, .mode = mode };
	char path[128];
	shmq_seg *seg;

	t_assert_err(shmq_seg_create(name, &a, &seg), 0);
	t_assert_err(shmq_create(seg, "q", NULL), 0);
	if (gid != (gid_t)-1)
		assert_int_equal(chown(t_shm_path(path, sizeof(path), name),
				       (uid_t)-1, gid), 0);
	shmq_seg_close(seg);
}

static int setup_root(void **state)
{
	if (geteuid() != 0)
		t_skip("needs root: it switches to other users and groups");
	return t_setup_noseg(state);
}

/* 0600 root: another user gets -EACCES. */
static void test_seg_open_0600_other_user(void **state)
{
	const char *name = t_segname();

	(void)state;
	make_seg(name, 0600, (gid_t)-1);
	open_as(name, NOBODY_UID, NOGROUP_GID, 0, -EACCES);
}

/* The default mode (attr NULL) is 0600 too. */
static void test_seg_open_default_mode_other_user(void **state)
{
	const char *name = t_segname();
	char path[128];
	struct stat st;
	shmq_seg *seg;

	(void)state;
	t_assert_err(shmq_seg_create(name, &(struct shmq_seg_attr){
			.size = T_SEG_SIZE }, &seg), 0);
	shmq_seg_close(seg);
	assert_int_equal(stat(t_shm_path(path, sizeof(path), name), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	open_as(name, NOBODY_UID, NOGROUP_GID, 0, -EACCES);
}

/* 0660 with group nogroup: a member opens it, a non-member does not. */
static void test_seg_open_0660_group(void **state)
{
	const char *name = t_segname();

	(void)state;
	make_seg(name, 0660, NOGROUP_GID);
	/* member through the primary group */
	open_as(name, NOBODY_UID, NOGROUP_GID, 0, 0);
	/* member through a supplementary group */
	open_as(name, NOBODY_UID, OTHER_GID, NOGROUP_GID, 0);
	/* not a member */
	open_as(name, NOBODY_UID, OTHER_GID, 0, -EACCES);
}

/* 0640: the group may read but shmq needs write: -EACCES. */
static void test_seg_open_0640_group_readonly(void **state)
{
	const char *name = t_segname();

	(void)state;
	make_seg(name, 0640, NOGROUP_GID);
	open_as(name, NOBODY_UID, NOGROUP_GID, 0, -EACCES);
}

/* 0666: anyone may attach. */
static void test_seg_open_0666_anyone(void **state)
{
	const char *name = t_segname();

	(void)state;
	make_seg(name, 0666, (gid_t)-1);
	open_as(name, NOBODY_UID, OTHER_GID, 0, 0);
}

/* Unlinking root's segment as another user: -EACCES (sticky /dev/shm). */
static void test_seg_unlink_other_user(void **state)
{
	const char *name = t_segname();
	pid_t pid;
	int st;

	(void)state;
	make_seg(name, 0666, (gid_t)-1);
	pid = t_fork(20);
	if (pid == 0) {
		if (drop_to(NOBODY_UID, NOGROUP_GID, 0))
			_exit(2);
		_exit(shmq_seg_unlink(name) == -EACCES ? 0 : 1);
	}
	st = t_wait_child(pid);
	t_assert_exit0(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_seg_open_0600_other_user,
						setup_root, t_teardown),
		cmocka_unit_test_setup_teardown(
			test_seg_open_default_mode_other_user, setup_root,
			t_teardown),
		cmocka_unit_test_setup_teardown(test_seg_open_0660_group,
						setup_root, t_teardown),
		cmocka_unit_test_setup_teardown(
			test_seg_open_0640_group_readonly, setup_root,
			t_teardown),
		cmocka_unit_test_setup_teardown(test_seg_open_0666_anyone,
						setup_root, t_teardown),
		cmocka_unit_test_setup_teardown(test_seg_unlink_other_user,
						setup_root, t_teardown),
	};

	return cmocka_run_group_tests_name("perm_more", tests, t_group_setup,
					   t_group_teardown);
}
