// SPDX-License-Identifier: MIT
/*
 * helpers.c - fixtures, watchdog, child tracking, error asserts and tagged
 * messages for the shmq test binaries.  See helpers.h.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define T_MAX_NAMES	256
#define T_MAX_CHILDREN	64
#define T_MAX_DIRS	16

/*
 * The records below are read by the watchdog's signal handler, so they are
 * plain arrays filled before their count is raised, and the handler uses
 * only async-signal-safe calls (kill, unlink, write, _exit).
 */
struct t_name {
	char name[SHMQ_NAME_MAX + 1];
	char path[128];
};

static struct t_name names[T_MAX_NAMES];
static volatile sig_atomic_t nnames;
static pid_t children[T_MAX_CHILDREN];
static volatile sig_atomic_t nchildren;
static char dirs[T_MAX_DIRS][64];
static int ndirs;
static unsigned name_counter;

/* ---- watchdog --------------------------------------------------------- */

static void watchdog_fired(int sig)
{
	static const char msg[] =
		"\nwatchdog: the test hung; killing children, removing its "
		"segments, exiting\n";
	int i;

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* Nothing more to do: we exit below either way. */
	}
	for (i = 0; i < nchildren; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
	for (i = 0; i < nnames; i++)
		unlink(names[i].path);
	_exit(124);
}

void t_watchdog(unsigned seconds)
{
	alarm(seconds);
}

/* ---- the reaper ------------------------------------------------------- */

/*
 * Teardown does not run when the test process itself dies (a sanitizer
 * report, SIGKILL, a crash outside cmocka's handlers).  So each binary
 * forks, before any test, a small reaper that waits for the end of file on
 * a pipe whose write end only the test process (and its children) hold,
 * then removes whatever "t.<pid>.*" segments and "shmq-test.<pid>.*"
 * directories are left.  After a clean run there are none.
 */
static void remove_dir(const char *dir);

static void remove_leftovers(pid_t pid)
{
	char prefix[64], path[512];
	struct dirent *e;
	size_t plen;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "shmq.t.%d.", (int)pid);
	plen = strlen(prefix);
	d = opendir("/dev/shm");
	if (d) {
		while ((e = readdir(d))) {
			if (strncmp(e->d_name, prefix, plen))
				continue;
			snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	snprintf(prefix, sizeof(prefix), "shmq-test.%d.", (int)pid);
	plen = strlen(prefix);
	d = opendir("/tmp");
	if (d) {
		while ((e = readdir(d))) {
			if (strncmp(e->d_name, prefix, plen))
				continue;
			snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
			remove_dir(path);
		}
		closedir(d);
	}
}

/* Leftovers of earlier runs whose process is gone. */
static void remove_stale(void)
{
	struct dirent *e;
	DIR *d;
	int pid;

	d = opendir("/dev/shm");
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (sscanf(e->d_name, "shmq.t.%d.", &pid) != 1 || pid <= 0)
			continue;
		if (kill(pid, 0) < 0 && errno == ESRCH)
			remove_leftovers(pid);
	}
	closedir(d);
}

static void start_reaper(void)
{
	static int reaper_fd = -1;
	pid_t parent = getpid(), pid;
	int fds[2];
	char c;

	if (reaper_fd >= 0 || pipe(fds) < 0)
		return;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		/* Outlive a ^C of the test: clean up after it instead. */
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGALRM, SIG_DFL);
		close(fds[1]);
		while (read(fds[0], &c, 1) < 0 && errno == EINTR)
			;
		remove_leftovers(parent);
		_exit(0);
	}
	close(fds[0]);
	reaper_fd = fds[1];
}

int t_group_setup(void **state)
{
	struct sigaction sa;

	(void)state;
	remove_stale();
	start_reaper();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watchdog_fired;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	/* Children that die must not kill the test runner with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int t_group_teardown(void **state)
{
	(void)state;
	alarm(0);
	return 0;
}

/* ---- names and directories -------------------------------------------- */

char *t_shm_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "/dev/shm/shmq.%s", name);
	return buf;
}

static void set_path(struct t_name *n)
{
	char name[sizeof(n->name)];

	memcpy(name, n->name, sizeof(name));
	t_shm_path(n->path, sizeof(n->path), name);
}

const char *t_segname(void)
{
	struct t_name *n;

	if (nnames >= T_MAX_NAMES) {
		fprintf(stderr, "t_segname: more than %d names in one test\n",
			T_MAX_NAMES);
		abort();
	}
	n = &names[nnames];
	snprintf(n->name, sizeof(n->name), "t.%d.%u", (int)getpid(),
		 name_counter++);
	set_path(n);
	nnames = nnames + 1;
	return n->name;
}

const char *t_segname_len(size_t len)
{
	const char *s = t_segname();
	struct t_name *n = &names[nnames - 1];
	size_t cur = strlen(s);

	if (len > SHMQ_NAME_MAX || len < cur)
		abort();
	memset(n->name + cur, 'x', len - cur);
	n->name[len] = '\0';
	set_path(n);
	return n->name;
}

const char *t_tmpdir(void)
{
	char *d;

	if (ndirs >= T_MAX_DIRS)
		abort();
	d = dirs[ndirs];
	snprintf(d, sizeof(dirs[0]), "/tmp/shmq-test.%d.XXXXXX", (int)getpid());
	if (!mkdtemp(d)) {
		perror("mkdtemp");
		abort();
	}
	ndirs++;
	return d;
}

static void remove_dir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d;

	d = opendir(dir);
	if (d) {
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	chmod(dir, 0700);
	rmdir(dir);
}

/* ---- children --------------------------------------------------------- */

void t_track_child(pid_t pid)
{
	int i;

	/* Reuse the entry of a child already reaped (t_wait_child). */
	for (i = 0; i < nchildren; i++)
		if (children[i] <= 0) {
			children[i] = pid;
			return;
		}
	if (nchildren >= T_MAX_CHILDREN) {
		kill(pid, SIGKILL);
		abort();
	}
	children[nchildren] = pid;
	nchildren = nchildren + 1;
}

pid_t t_fork(unsigned watchdog_s)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return pid;
	if (pid == 0) {
		/*
		 * The handler would unlink the parent's segments: a hung
		 * child just dies of SIGALRM and the parent sees it.
		 */
		signal(SIGALRM, SIG_DFL);
		nchildren = 0;
		alarm(watchdog_s);
		return 0;
	}
	t_track_child(pid);
	return pid;
}

int t_wait_child(pid_t pid)
{
	int status, i;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	for (i = 0; i < nchildren; i++)
		if (children[i] == pid)
			children[i] = -1;
	return status;
}

void _t_assert_exit0(int status, const char *expr, const char *file,
		     int line)
{
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	if (status == -1)
		print_error("%s: waitpid failed\n", expr);
	else if (WIFEXITED(status))
		print_error("%s: child exited with code %d\n", expr,
			    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		print_error("%s: child killed by signal %d (%s)\n", expr,
			    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		print_error("%s: child status 0x%x\n", expr, status);
	_fail(file, line);
}

const char *t_status_str(int status, char *buf, size_t size)
{
	if (status == -1)
		snprintf(buf, size, "waitpid failed");
	else if (WIFEXITED(status))
		snprintf(buf, size, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, size, "status 0x%x", status);
	return buf;
}

void _t_assert_killed(int status, const char *expr, const char *file,
		      int line)
{
	char why[64];

	if (status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return;
	print_error("%s: the child was to die of our SIGKILL; it ended "
		    "on its own: %s\n", expr,
		    t_status_str(status, why, sizeof(why)));
	_fail(file, line);
}

int _t_kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	return t_wait_child(pid);
}

static void kill_children(void)
{
	int i, status;

	for (i = 0; i < nchildren; i++) {
		if (children[i] <= 0)
			continue;
		kill(children[i], SIGKILL);
		while (waitpid(children[i], &status, 0) < 0 && errno == EINTR)
			;
	}
	nchildren = 0;
}

int t_limit_address_space(size_t slack)
{
	unsigned long long kb = 0;
	char line[256];
	struct rlimit rl;
	FILE *f;

	f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
			break;
	fclose(f);
	if (!kb)
		return -1;
	if (getrlimit(RLIMIT_AS, &rl) < 0)
		return -1;
	rl.rlim_cur = (rlim_t)(kb * 1024 + slack);
	return setrlimit(RLIMIT_AS, &rl) < 0 ? -1 : 0;
}

/* ---- fixtures --------------------------------------------------------- */

static int setup_common(void **state, int make_seg)
{
	struct shmq_seg_attr attr = { .size = T_SEG_SIZE };
	struct t_fix *fix;
	int rc;

	t_watchdog(T_WATCHDOG_S);
	fix = calloc(1, sizeof(*fix));
	if (!fix)
		return -1;
	fix->name = t_segname();
	if (make_seg) {
		rc = shmq_seg_create(fix->name, &attr, &fix->seg);
		if (rc) {
			print_error("setup: shmq_seg_create(%s): %s\n",
				    fix->name, shmq_errname(rc));
			free(fix);
			return -1;
		}
	}
	*state = fix;
	return 0;
}

int t_setup(void **state)
{
	return setup_common(state, 1);
}

int t_setup_noseg(void **state)
{
	return setup_common(state, 0);
}

int t_teardown(void **state)
{
	struct t_fix *fix = *state;
	int i;

	kill_children();
	if (fix) {
		shmq_seg_close(fix->seg);
		free(fix);
		*state = NULL;
	}
	for (i = 0; i < nnames; i++) {
		shmq_seg_unlink(names[i].name);
		/* Also what shmq_seg_unlink refused (garbage we wrote). */
		unlink(names[i].path);
	}
	nnames = 0;
	for (i = 0; i < ndirs; i++)
		remove_dir(dirs[i]);
	ndirs = 0;
	unsetenv("SHMQ_SEGMENT");
	unsetenv("SHMQ_SPIN_NS");
	alarm(0);
	return 0;
}

/* ---- errors ----------------------------------------------------------- */

static const char *err_or_value(long long v, char *buf, size_t size)
{
	if (v < 0 && v > -4096)
		return shmq_errname((int)v);
	snprintf(buf, size, "%lld", v);
	return buf;
}

void _t_assert_err(long long rc, long long expected, const char *expr,
		   const char *file, int line)
{
	char b1[32], b2[32];

	if (rc == expected)
		return;
	print_error("%s is %lld (%s), expected %lld (%s)\n", expr, rc,
		    err_or_value(rc, b1, sizeof(b1)), expected,
		    err_or_value(expected, b2, sizeof(b2)));
	_fail(file, line);
}

/* ---- time ------------------------------------------------------------- */

uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void t_sleep_ms(unsigned ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void _t_assert_timeout(long long rc, uint64_t elapsed_ns, int64_t timeout_ns,
		       const char *expr, const char *file, int line)
{
	_t_assert_err(rc, -ETIMEDOUT, expr, file, line);
	if (elapsed_ns >= (uint64_t)timeout_ns &&
	    elapsed_ns <= (uint64_t)timeout_ns + (uint64_t)T_LATE_NS)
		return;
	print_error("%s: -ETIMEDOUT after %.3f ms, for a timeout of %.3f ms "
		    "(allowed: %.3f to %.3f ms)\n", expr, elapsed_ns / 1e6,
		    timeout_ns / 1e6, timeout_ns / 1e6,
		    (timeout_ns + T_LATE_NS) / 1e6);
	_fail(file, line);
}

/* ---- tagged messages -------------------------------------------------- */

uint32_t t_rand(uint32_t *state)
{
	uint32_t x = *state ? *state : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

static uint32_t mix(uint32_t producer, uint32_t seq)
{
	uint32_t h = producer * 0x9e3779b1u ^ (seq + 0x7f4a7c15u);

	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--) {
		h ^= *b++;
		h *= 16777619u;
	}
	return h;
}

static uint32_t tag_csum(const struct t_tag *t, const void *payload)
{
	uint32_t h = 2166136261u;

	h = fnv1a(h, &t->producer, sizeof(t->producer));
	h = fnv1a(h, &t->seq, sizeof(t->seq));
	h = fnv1a(h, &t->len, sizeof(t->len));
	return fnv1a(h, payload, t->len);
}

static void payload_gen(unsigned char *p, uint32_t len, uint32_t producer,
			uint32_t seq)
{
	uint32_t st = mix(producer, seq) | 1;
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)t_rand(&st);
}

size_t t_msg_len(size_t max_len, uint32_t producer, uint32_t seq)
{
	size_t max_payload = max_len - sizeof(struct t_tag);

	/* Every few messages use the extremes: empty and full payloads. */
	if (seq % 7 == 3)
		return sizeof(struct t_tag);
	if (seq % 7 == 5)
		return max_len;
	return sizeof(struct t_tag) + mix(seq, producer) % (max_payload + 1);
}

size_t t_msg_fill(void *buf, size_t max_len, uint32_t producer, uint32_t seq)
{
	size_t len = t_msg_len(max_len, producer, seq);
	unsigned char *payload = (unsigned char *)buf + sizeof(struct t_tag);
	struct t_tag t;

	t.producer = producer;
	t.seq = seq;
	t.len = (uint32_t)(len - sizeof(t));
	payload_gen(payload, t.len, producer, seq);
	t.csum = tag_csum(&t, payload);
	memcpy(buf, &t, sizeof(t));
	return len;
}

size_t t_msg_sentinel(void *buf, uint32_t id)
{
	struct t_tag t = { .producer = T_SENTINEL + id, .seq = 0, .len = 0 };

	t.csum = tag_csum(&t, NULL);
	memcpy(buf, &t, sizeof(t));
	return sizeof(t);
}

int t_msg_check(const void *buf, size_t len, uint32_t *producer,
		uint32_t *seq)
{
	const unsigned char *payload = (const unsigned char *)buf +
				       sizeof(struct t_tag);
	unsigned char expect[1024];
	struct t_tag t;

	if (!buf || len < sizeof(t))
		return -1;
	memcpy(&t, buf, sizeof(t));
	if (t.len != len - sizeof(t) || tag_csum(&t, payload) != t.csum)
		return -1;
	if (t.producer < T_SENTINEL) {
		if (t.len > sizeof(expect))
			return -1;
		payload_gen(expect, t.len, t.producer, t.seq);
		if (memcmp(expect, payload, t.len))
			return -1;
	}
	*producer = t.producer;
	*seq = t.seq;
	return 0;
}

/* ---- queues ----------------------------------------------------------- */

shmq *t_queue(shmq_seg *seg, const char *name, uint32_t capacity,
	      uint32_t msg_size)
{
	return t_queue_flags(seg, name, capacity, msg_size, 0);
}

shmq *t_queue_flags(shmq_seg *seg, const char *name, uint32_t capacity,
		    uint32_t msg_size, uint32_t flags)
{
	struct shmq_attr a = { .capacity = capacity, .msg_size = msg_size,
			       .flags = flags };
	shmq *q = NULL;

	t_assert_err(shmq_create(seg, name, &a), 0);
	t_assert_err(shmq_open(seg, name, &q), 0);
	assert_non_null(q);
	return q;
}

void t_recv_expect(shmq *q, const void *expect, size_t len,
		   int64_t timeout_ns)
{
	char buf[512];

	assert_true(len <= sizeof(buf));
	t_assert_err(shmq_recv(q, buf, sizeof(buf), timeout_ns),
		     (long long)len);
	assert_memory_equal(buf, expect, len);
}

void t_expect_empty(shmq *q)
{
	/* A zero-byte buffer: any waiting message, empty or not, is not
	 * -EAGAIN (0 or -EMSGSIZE), and none is consumed but an empty one. */
	t_assert_err(shmq_recv(q, NULL, 0, 0), -EAGAIN);
}
