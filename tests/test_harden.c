/* SPDX-License-Identifier: MIT */
/*
 * test_harden.c - the promises an adversarial run found broken in 0.3.0,
 * one test each (README, "Trust model"; the closing note maps them):
 *
 *   1  an unreadable boot id does not wipe the process table
 *   2  a segment squatted by another user is refused unless trusted
 *   3  set-id and execute mode bits are refused
 *   4  forged lock words in the segment cannot abort or wedge a process
 *   5  a forked child does not keep its dead parent alive
 *   6  a read lock is no sign of life, and says who blocks an attach
 *   7  SPSC calls keep their timeout on a busy control plane
 *   8  a consumer that died holding more than the lane's room: all come back
 *   9  a FIFO at a file-path name does not block open or check
 *  10  create of an existing name on a full file system is -EEXIST
 *  11  symlink and directory names have documented errors
 *
 * Each of these fails on 0.3.0 (the forged lock words make it abort).  Two
 * more guard the OFD control lock that replaced 0.3.0's mutex against the
 * failure modes a review found in its first version: a thread cancelled
 * in the control plane, and a busy word left set by a clean close.
 *
 * Tests that need root (other uids, mounts) say why they skip without it.
 * Children are forked with t_fork() and SIGKILLed at teardown; every
 * segment name comes from t_segname() and is unlinked at teardown.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Bytes the tests forge: see shm/layout.h. */
#define CTL_LOCK_BYTE   4094
#define CTL_LINE        256

static void skip_unless_root(const char *why)
{
	if (geteuid() != 0) {
		print_message("skipped: needs root (%s)\n", why);
		skip();
	}
}

/* Child side of a pipe handshake: one byte, then wait to be killed. */
static void ready_and_pause(int fd)
{
	char c = 1;

	if (write(fd, &c, 1) != 1)
		_exit(90);
	for (;;)
		pause();
}

static void wait_ready(int fd)
{
	char c;

	assert_int_equal(read(fd, &c, 1), 1);
}

static void kill_child(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	st = t_wait_child(pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/*
 * A child that attaches to @seg, opens @queue, acquires @n messages
 * zero-copy, says so on the pipe and waits: a holder to kill or keep.
 */
static pid_t holder(const char *seg, const char *queue, int n)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = t_fork(30);
	if (pid == 0) {
		shmq_seg *s;
		shmq *q;
		struct shmq_msg m;
		int i;

		close(p[0]);
		if (shmq_seg_open(seg, &s) || shmq_open(s, queue, &q))
			_exit(10);
		for (i = 0; i < n; i++)
			if (shmq_acquire(q, &m, 1000 * T_MS))
				_exit(11);
		ready_and_pause(p[1]);
	}
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);
	return pid;
}

static void send_n(shmq *q, int n)
{
	char buf[16];
	int i;

	for (i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof(buf), "m%d", i);

		t_assert_err(shmq_send(q, buf, (size_t)len, 0), 0);
	}
}

static struct shmq_queue_info qstat(shmq_seg *seg, const char *name)
{
	struct shmq_queue_info qi;

	t_assert_err(shmq_queue_stat(seg, name, &qi), 0);
	return qi;
}

/* ---- 1: boot id ------------------------------------------------------- */

/*
 * In a child where /proc/sys/kernel/random/boot_id cannot be read (@how:
 * 1 = one free descriptor, 2 = /proc mounted subset=pid in a private
 * mount namespace), attach and observe.  0.3.0 took that for a new boot
 * and freed every process entry, so the holder's message came back.
 */
static int boot_child(const char *name, int how)
{
	shmq_seg *s;

	if (how == 1) {
		/*
		 * One free descriptor left, the lowest (open() takes it for
		 * the segment): whatever the test runner left open.
		 */
		int low = dup(0);
		struct rlimit rl;

		if (low < 0)
			return 20;
		close(low);
		rl.rlim_cur = rl.rlim_max = (rlim_t)low + 1;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			return 20;
	} else {
		if (unshare(CLONE_NEWNS))
			return 77;
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("proc", "/proc", "proc", 0, "subset=pid"))
			return 77;
		if (access("/proc/sys/kernel/random/boot_id", R_OK) == 0)
			return 77;      /* subset=pid not honoured */
	}
	if (shmq_seg_observe(name, &s))
		return 21;
	shmq_seg_close(s);
	if (shmq_seg_open(name, &s))
		return 22;
	shmq_seg_close(s);
	return 0;
}

static void boot_case(void **state, int how)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "jobs", 8, 64);
	struct shmq_proc_info pi[8];
	char buf[64];
	pid_t h, c;
	int st, i, n, alive = 0;

	send_n(q, 1);
	h = holder(fix->name, "jobs", 1);
	c = t_fork(20);
	if (c == 0)
		_exit(boot_child(fix->name, how));
	st = t_wait_child(c);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		kill_child(h);
		shmq_close(q);
		print_message("skipped: cannot mount /proc subset=pid here\n");
		skip();
	}
	t_assert_exit0(st);
	/* The holder is still attached and still holds its message. */
	n = shmq_proc_list(fix->seg, pi, 8);
	assert_true(n >= 2);
	for (i = 0; i < n; i++)
		if (pi[i].pid == (uint32_t)h && pi[i].alive)
			alive = 1;
	assert_int_equal(alive, 1);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(qstat(fix->seg, "jobs").lane_depth, 0);
	kill_child(h);
	shmq_close(q);
}

static void test_boot_id_unreadable_fd_limit(void **state)
{
	boot_case(state, 1);
}

static void test_boot_id_unreadable_proc_subset(void **state)
{
	skip_unless_root("a private /proc mount");
	boot_case(state, 2);
}

/* ---- 2: name squatting ------------------------------------------------ */

/* In a child as @uid/@gid (and only that group): create @name, @mode. */
static void create_as(const char *name, uid_t uid, gid_t gid, mode_t mode)
{
	pid_t c = t_fork(10);

	if (c == 0) {
		struct shmq_seg_attr a = { .size = 1 << 20, .mode = mode };
		shmq_seg *s;

		if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
			_exit(30);
		if (shmq_seg_create(name, &a, &s))
			_exit(31);
		shmq_seg_close(s);
		_exit(0);
	}
	t_assert_exit0(t_wait_child(c));
}

/*
 * In a child as @uid with supplementary group @group: open @name with
 * @flags; the child's exit code is the error's number (0 on success).
 */
static int open_as(const char *name, uid_t uid, gid_t group, unsigned flags)
{
	pid_t c = t_fork(10);
	int st;

	if (c == 0) {
		gid_t g[1] = { group };
		shmq_seg *s;
		int rc;

		if (setgroups(1, g) || setgid(uid) || setuid(uid))
			_exit(99);
		rc = shmq_seg_open_flags(name, flags, &s);
		if (rc == 0)
			shmq_seg_close(s);
		_exit(-rc);
	}
	st = t_wait_child(c);
	assert_true(WIFEXITED(st));
	return -WEXITSTATUS(st);
}

static void test_squatted_segment_refused(void **state)
{
	const char *name = t_segname();
	shmq_seg *s;

	(void)state;
	skip_unless_root("another user squats a name");
	create_as(name, 4243, 4242, 0666);
	/* The README's pattern: create, and on -EEXIST open: refused. */
	t_assert_err(shmq_seg_create(name, NULL, &s), -EEXIST);
	t_assert_err(shmq_seg_open(name, &s), -EACCES);
	t_assert_err(shmq_seg_open_flags(name, SHMQ_OPEN_TRUST_GROUP, &s),
		     -EACCES);
	t_assert_err(shmq_seg_open_flags(name, 0x100, &s), -EINVAL);
	/* Opting in works; an observer sends nothing and may look. */
	t_assert_err(shmq_seg_open_flags(name, SHMQ_OPEN_TRUST_ANY, &s), 0);
	shmq_seg_close(s);
	t_assert_err(shmq_seg_observe(name, &s), 0);
	shmq_seg_close(s);
	/* Its owner may open it; so may another user of 0666, if trusting. */
	t_assert_err(open_as(name, 4243, 4242, 0), 0);
	t_assert_err(open_as(name, 4244, 4245, 0), -EACCES);
	t_assert_err(open_as(name, 4244, 4245, SHMQ_OPEN_TRUST_ANY), 0);
}

static void test_group_trust_opt_in(void **state)
{
	const char *shared = t_segname(), *world = t_segname();

	(void)state;
	skip_unless_root("users sharing a group");
	create_as(shared, 4243, 4242, 0660);
	create_as(world, 4243, 4242, 0666);
	/* A member of group 4242: only when it trusts the group. */
	t_assert_err(open_as(shared, 4244, 4242, 0), -EACCES);
	t_assert_err(open_as(shared, 4244, 4242, SHMQ_OPEN_TRUST_GROUP), 0);
	/* Not a member: the group is not ours, whatever the mode says. */
	t_assert_err(open_as(world, 4244, 4245, SHMQ_OPEN_TRUST_GROUP),
		     -EACCES);
	t_assert_err(open_as(world, 4244, 4242, SHMQ_OPEN_TRUST_GROUP), 0);
}

/* ---- 3: mode bits ----------------------------------------------------- */

static void test_mode_bits_outside_0666(void **state)
{
	static const mode_t bad[] = { 04777, 04666, 02660, 01666, 0755, 0700,
				      0677, 0100 };
	char path[128];
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = t_segname();
		struct shmq_seg_attr a = { .size = 1 << 20, .mode = bad[i] };
		struct stat st;
		shmq_seg *s;

		t_assert_err(shmq_seg_create(name, &a, &s), -EINVAL);
		t_shm_path(path, sizeof(path), name);
		assert_int_equal(stat(path, &st), -1);
	}
}

/* ---- 4: forged lock words ----------------------------------------------- */

static void test_forged_lock_words(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	unsigned char *h;
	pid_t c;
	int fd;

	shmq_close(t_queue(fix->seg, "q", 8, 64));
	t_shm_path(path, sizeof(path), fix->name);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(h != MAP_FAILED);
	close(fd);
	/*
	 * What made 0.3.0 abort (glibc: "e != ESRCH || !robust"): a robust,
	 * priority-inheriting mutex "held" by a thread that does not exist,
	 * in glibc's x86-64 layout (lock, count, owner, nusers, kind) at the
	 * old mutex's place; then everything else on that page garbled.
	 */
	{
		int words[5] = { 999999, 0, 999999, 1, 0x10 | 0x20 };

		memcpy(h + CTL_LINE, words, sizeof(words));
		memset(h + CTL_LINE + sizeof(words), 0xa5,
		       4096 - CTL_LINE - sizeof(words));
	}
	c = t_fork(20);
	if (c == 0) {
		shmq_seg *s;
		shmq *q;

		if (shmq_seg_observe(fix->name, &s))
			_exit(40);
		shmq_seg_close(s);
		if (shmq_seg_open(fix->name, &s))
			_exit(41);
		if (shmq_create(s, "q2", NULL) || shmq_open(s, "q", &q) ||
		    shmq_send(q, "x", 1, 0))
			_exit(42);
		shmq_close(q);
		shmq_seg_close(s);
		_exit(0);
	}
	t_assert_exit0(t_wait_child(c));
	munmap(h, 4096);
}

/* ---- 5: fork ---------------------------------------------------------- */

/*
 * P attaches, acquires a message, forks a long-lived child C (as a server
 * forking a worker would), and is killed.  C keeps running.  The message
 * must come back: P is dead, whatever C inherited.  C also finds its
 * inherited attachment inert (-EBADF on the control plane).
 */
static void test_fork_child_does_not_keep_parent_alive(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "jobs", 8, 64);
	int p[2], st, inert = 0;
	pid_t pp, child = 0;
	char buf[64];

	send_n(q, 1);
	assert_int_equal(pipe(p), 0);
	pp = t_fork(30);
	if (pp == 0) {
		shmq_seg *s;
		shmq *pq;
		struct shmq_msg m;
		pid_t c;

		if (shmq_seg_open(fix->name, &s) || shmq_open(s, "jobs", &pq) ||
		    shmq_acquire(pq, &m, 1000 * T_MS))
			_exit(50);
		c = fork();
		if (c == 0) {
			/*
			 * The worker: says whether its parent's attachment is
			 * inert, then lives on (whatever it said).
			 */
			int rc = shmq_seg_recover(s);

			alarm(30);
			/* Misuse, but it must not fault: private pages now. */
			(void)shmq_send(pq, "y", 1, 0);
			(void)shmq_release(pq, &m);
			if (write(p[1], &rc, sizeof(rc)) != sizeof(rc))
				_exit(51);
			for (;;)
				pause();
		}
		if (c < 0 || write(p[1], &c, sizeof(c)) != sizeof(c))
			_exit(52);
		for (;;)
			pause();
	}
	close(p[1]);
	/* Two words, in either order: the worker's pid and its rc. */
	for (st = 0; st < 2; st++) {
		int w;

		assert_int_equal(read(p[0], &w, sizeof(w)), sizeof(w));
		if (w > 0)
			child = w;
		else
			inert = w;
	}
	close(p[0]);
	assert_true(child > 0);
	t_track_child(child);   /* a grandchild: teardown SIGKILLs it */
	kill_child(pp);
	/* The worker lives on; the dead parent's message comes back. */
	assert_int_equal(kill(child, 0), 0);
	assert_true(shmq_seg_recover(fix->seg) >= 1);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 1000 * T_MS), 2);
	assert_memory_equal(buf, "m0", 2);
	/* Its inherited attachment was inert. */
	t_assert_err(inert, -EBADF);
	assert_int_equal(kill(child, 0), 0);
	shmq_close(q);
}

/* ---- 6: read locks ------------------------------------------------------ */

/*
 * A child that opens the segment's file (read-only for a read lock) and
 * locks, with lock type @type, every byte of [@first, @last] it can (some
 * may be held by others), then waits to be killed.  At least one must be
 * taken.
 */
static pid_t locker(const char *name, short type, off_t first, off_t last)
{
	uint32_t taken = 0;
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = t_fork(30);
	if (pid == 0) {
		char path[128];
		off_t b;
		int fd;

		close(p[0]);
		t_shm_path(path, sizeof(path), name);
		fd = open(path, type == F_RDLCK ? O_RDONLY : O_RDWR);
		if (fd < 0)
			_exit(60);
		for (b = first; b <= last; b++) {
			struct flock fl = {
				.l_type = type, .l_whence = SEEK_SET,
				.l_start = b, .l_len = 1,
			};

			if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
				taken++;
		}
		if (write(p[1], &taken, sizeof(taken)) != sizeof(taken))
			_exit(61);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &taken, sizeof(taken)), sizeof(taken));
	close(p[0]);
	assert_true(taken > 0);
	return pid;
}

static void test_read_locks_are_not_life(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "jobs", 8, 64);
	struct shmq_seg_info si;
	char buf[64];
	shmq_seg *s;
	pid_t h, r;

	t_assert_err(shmq_seg_info(fix->seg, &si), 0);
	send_n(q, 1);
	h = holder(fix->name, "jobs", 1);
	kill_child(h);
	/* Read locks on every byte, the dead holder's included. */
	r = locker(fix->name, F_RDLCK, 0, si.max_procs - 1);
	/* The holder is seen dead: its message is delivered again. */
	assert_true(shmq_seg_recover(fix->seg) >= 1);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 1000 * T_MS), 2);
	/* No entry can be taken, and the error says why: not "full". */
	t_assert_err(shmq_seg_open(fix->name, &s), -EBUSY);
	kill_child(r);
	t_assert_err(shmq_seg_open(fix->name, &s), 0);
	shmq_seg_close(s);
	shmq_close(q);
}

/*
 * A read lock on the control-plane byte: every call that needs the
 * control plane fails at once with -EBUSY instead of waiting for ever.
 */
static void test_read_lock_on_control_plane(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue_flags(fix->seg, "ticks", 8, 64, SHMQ_SPSC);
	shmq_seg *s;
	uint64_t t0;
	pid_t r;

	r = locker(fix->name, F_RDLCK, CTL_LOCK_BYTE, CTL_LOCK_BYTE);
	t0 = t_now_ns();
	t_assert_err(shmq_seg_open(fix->name, &s), -EBUSY);
	t_assert_err(shmq_seg_observe(fix->name, &s), -EBUSY);
	t_assert_err(shmq_create(fix->seg, "other", NULL), -EBUSY);
	t_assert_err(shmq_seg_recover(fix->seg), -EBUSY);
	t_assert_err(shmq_send(q, "x", 1, SHMQ_FOREVER), -EBUSY);
	assert_true(t_now_ns() - t0 < 1000 * (uint64_t)T_MS);
	kill_child(r);
	t_assert_err(shmq_send(q, "x", 1, 0), 0);
	shmq_close(q);
}

/* ---- 7: SPSC and the control plane ------------------------------------ */

/* A child holding the control-plane lock (as a stopped repairer would). */
static pid_t ctl_holder(const char *name)
{
	return locker(name, F_WRLCK, CTL_LOCK_BYTE, CTL_LOCK_BYTE);
}

static void test_spsc_timeout_on_busy_control_plane(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue_flags(fix->seg, "ticks", 8, 64, SHMQ_SPSC);
	shmq *out = t_queue_flags(fix->seg, "out", 8, 64, SHMQ_SPSC);
	char buf[64];
	uint64_t t0, dt;
	pid_t l;

	/* A message waits: only the control plane can keep recv from it. */
	t_assert_err(shmq_send(q, "m", 1, 0), 0);
	l = ctl_holder(fix->name);
	/* Taking a side needs the control plane: the timeout still holds. */
	t0 = t_now_ns();
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 100 * T_MS), -ETIMEDOUT);
	dt = t_now_ns() - t0;
	assert_true(dt >= 100 * (uint64_t)T_MS);
	assert_true(dt < 2000 * (uint64_t)T_MS);
	t0 = t_now_ns();
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
	t_assert_err(shmq_send(out, "x", 1, 0), -EAGAIN);
	assert_true(t_now_ns() - t0 < 500 * (uint64_t)T_MS);
	t0 = t_now_ns();
	t_assert_err(shmq_send(out, "x", 1, 50 * T_MS), -ETIMEDOUT);
	dt = t_now_ns() - t0;
	assert_true(dt >= 50 * (uint64_t)T_MS && dt < 2000 * (uint64_t)T_MS);
	kill_child(l);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), 1);
	t_assert_err(shmq_send(out, "x", 1, 0), 0);
	shmq_close(out);
	shmq_close(q);
}

/*
 * Two attachments of one process exclude each other too: the lock is an
 * OFD lock, owned by an open file description.  Here this very process
 * holds the byte with a POSIX record lock, owned by the process: it
 * conflicts with an OFD lock, but would not with the library's own lock
 * if that were a POSIX one (which could then not tell two attachments of
 * one process apart).
 */
static void test_two_attachments_exclude(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue_flags(fix->seg, "ticks", 8, 64, SHMQ_SPSC);
	struct flock fl = {
		.l_type = F_WRLCK, .l_whence = SEEK_SET,
		.l_start = CTL_LOCK_BYTE, .l_len = 1,
	};
	char path[128], buf[8];
	int fd;

	/* A message waits: only the control plane can keep recv from it. */
	t_assert_err(shmq_send(q, "m", 1, 0), 0);
	t_shm_path(path, sizeof(path), fix->name);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_SETLK, &fl), 0);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 50 * T_MS), -ETIMEDOUT);
	close(fd);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), 1);
	shmq_close(q);
}

struct cancel_arg {
	shmq_seg *seg;
	int rc;
};

static void *cancel_thread(void *p)
{
	struct cancel_arg *a = p;

	a->rc = shmq_create(a->seg, "late", NULL);
	for (;;)
		pause();        /* a cancellation point */
	return NULL;
}

/*
 * A thread cancelled while it waits for the control plane finishes its
 * call first (cancellation is held off inside), so the attachment is not
 * left with its private lock taken.
 */
static void test_cancel_in_control_plane(void **state)
{
	struct t_fix *fix = *state;
	struct cancel_arg a = { fix->seg, 1 };
	pthread_t th;
	pid_t l;

	l = ctl_holder(fix->name);
	assert_int_equal(pthread_create(&th, NULL, cancel_thread, &a), 0);
	t_sleep_ms(50);
	assert_int_equal(pthread_cancel(th), 0);
	t_sleep_ms(50);
	kill_child(l);
	assert_int_equal(pthread_join(th, NULL), 0);
	t_assert_err(a.rc, 0);
	/* The attachment still works for its other threads. */
	t_assert_err(shmq_create(fix->seg, "after", NULL), 0);
}

/* A clean close leaves the busy word clear: nobody sweeps for nothing. */
static void test_clean_close_clears_busy(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	uint32_t busy;
	shmq_seg *s;
	int fd;

	t_assert_err(shmq_seg_open(fix->name, &s), 0);
	t_assert_err(shmq_create(s, "x", NULL), 0);
	shmq_seg_close(s);
	t_shm_path(path, sizeof(path), fix->name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &busy, sizeof(busy), CTL_LINE), 4);
	close(fd);
	assert_int_equal(busy, 0);
}

/* ---- 8: more stranded than the lane holds --------------------------------- */

static void test_dead_consumer_more_than_lane(void **state)
{
	struct t_fix *fix = *state;
	shmq *q = t_queue(fix->seg, "jobs", 64, 64);
	int seen[20] = { 0 }, i, n;
	char buf[64];
	pid_t h;

	/* No stall repairs: the consumers' own rescue must do it. */
	t_assert_err(shmq_set_stall(q, 0), 0);
	send_n(q, 20);
	h = holder(fix->name, "jobs", 20);
	kill_child(h);
	/* One pass moves what the lane holds (8); the rest wait in place. */
	assert_int_equal(shmq_seg_recover(fix->seg), 8);
	assert_int_equal(qstat(fix->seg, "jobs").depth, 20);
	/* Consumers get all 20, with no further recovery call. */
	for (i = 0; i < 20; i++) {
		ssize_t len = shmq_recv(q, buf, sizeof(buf) - 1, 1000 * T_MS);

		assert_true(len > 1);
		buf[len] = 0;
		n = atoi(buf + 1);
		assert_true(n >= 0 && n < 20);
		seen[n]++;
	}
	for (i = 0; i < 20; i++)
		assert_int_equal(seen[i], 1);
	t_assert_err(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(qstat(fix->seg, "jobs").depth, 0);
	shmq_close(q);
}

/* ---- 9: a FIFO at the name ---------------------------------------------- */

static void test_fifo_does_not_block(void **state)
{
	char path[512];
	pid_t c;

	(void)state;
	snprintf(path, sizeof(path), "%s/seg", t_tmpdir());
	assert_int_equal(mkfifo(path, 0600), 0);
	c = t_fork(5);          /* a hang is SIGALRM: a failure */
	if (c == 0) {
		shmq_seg *s;

		if (shmq_seg_open(path, &s) != -EPROTO)
			_exit(80);
		if (shmq_seg_observe(path, &s) != -EPROTO)
			_exit(81);
		if (shmq_seg_check(path, NULL, NULL) != 1)
			_exit(82);
		_exit(0);
	}
	t_assert_exit0(t_wait_child(c));
}

/* ---- 10: full file system ------------------------------------------------ */

static void test_create_existing_on_full_fs(void **state)
{
	const char *dir = t_tmpdir();
	pid_t c;
	int st;

	(void)state;
	skip_unless_root("a tmpfs mount");
	c = t_fork(20);
	if (c == 0) {
		struct shmq_seg_attr big = { .size = 768 << 10 };
		struct shmq_seg_attr more = { .size = 512 << 10 };
		char path[512], other[512];
		shmq_seg *s;

		/* A private mount namespace: the mount dies with us. */
		if (unshare(CLONE_NEWNS) ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=1m"))
			_exit(77);
		snprintf(path, sizeof(path), "%s/seg", dir);
		snprintf(other, sizeof(other), "%s/other", dir);
		if (shmq_seg_create(path, &big, &s))
			_exit(90);
		shmq_seg_close(s);
		/* 256 KiB left: the name exists, which is what matters. */
		if (shmq_seg_create(path, &more, &s) != -EEXIST)
			_exit(91);
		if (shmq_seg_create(other, &more, &s) != -ENOSPC)
			_exit(92);
		if (shmq_seg_open(path, &s))
			_exit(93);
		shmq_seg_close(s);
		_exit(0);
	}
	st = t_wait_child(c);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		print_message("skipped: cannot mount a tmpfs here\n");
		skip();
	}
	t_assert_exit0(st);
}

/* ---- 11: errors with names ----------------------------------------------- */

static void test_symlink_and_directory_errors(void **state)
{
	const char *dir = t_tmpdir();
	char link[512], target[512], sub[512];
	struct shmq_seg_attr a = { .size = 1 << 20 };
	shmq_seg *s;

	(void)state;
	snprintf(target, sizeof(target), "%s/real", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	t_assert_err(shmq_seg_create(target, &a, &s), 0);
	shmq_seg_close(s);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(mkdir(sub, 0700), 0);

	t_assert_err(shmq_seg_open(link, &s), -ELOOP);
	t_assert_err(shmq_seg_observe(link, &s), -ELOOP);
	t_assert_err(shmq_seg_check(link, NULL, NULL), -ELOOP);
	t_assert_err(shmq_seg_open(sub, &s), -EISDIR);
	t_assert_err(shmq_seg_create(sub, &a, &s), -EEXIST);
	t_assert_err(shmq_seg_create(link, &a, &s), -EEXIST);
	assert_string_equal(shmq_errname(-ELOOP), "ELOOP");
	assert_string_equal(shmq_errname(-EISDIR), "EISDIR");
	assert_null(strstr(shmq_strerror(-ELOOP), "nknown"));
	assert_null(strstr(shmq_strerror(-EISDIR), "nknown"));
	/* "." and ".." are path components, not names. */
	t_assert_err(shmq_seg_create(".", &a, &s), -EINVAL);
	t_assert_err(shmq_seg_create("..", &a, &s), -EINVAL);
	t_assert_err(shmq_seg_open("..", &s), -EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, t_setup, t_teardown)
#define TN(f) cmocka_unit_test_setup_teardown(f, t_setup_noseg, t_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_boot_id_unreadable_fd_limit),
		T(test_boot_id_unreadable_proc_subset),
		TN(test_squatted_segment_refused),
		TN(test_group_trust_opt_in),
		TN(test_mode_bits_outside_0666),
		T(test_forged_lock_words),
		T(test_fork_child_does_not_keep_parent_alive),
		T(test_read_locks_are_not_life),
		T(test_read_lock_on_control_plane),
		T(test_two_attachments_exclude),
		T(test_cancel_in_control_plane),
		T(test_clean_close_clears_busy),
		T(test_spsc_timeout_on_busy_control_plane),
		T(test_dead_consumer_more_than_lane),
		TN(test_fifo_does_not_block),
		TN(test_create_existing_on_full_fs),
		TN(test_symlink_and_directory_errors),
	};

	return cmocka_run_group_tests(tests, t_group_setup, t_group_teardown);
}
