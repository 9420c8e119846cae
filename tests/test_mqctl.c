// SPDX-License-Identifier: MIT
/*
 * test_mqctl.c - the real mqctl binary against real segments.
 *
 * Each test runs build[/asan]/mqctl (the one beside this binary's
 * directory) with fork/exec, its stdout and stderr captured in memfds and
 * its stdin fed from one, and checks the exit status, the output and the
 * one stderr line of every failure.  JSON documents are parsed and checked
 * by python3's json module; Prometheus output by the exposition format's
 * grammar.  Segments are named t.<pid>.<n> (helpers.c) and removed at
 * teardown, children SIGKILLed, whether the test passed or not.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "layout.h"
#include "ring.h"
#include "ack.h"

/* ---- running mqctl --------------------------------------------------------- */

struct run {
	int code;               /* exit code; 128+sig when killed */
	char out[65536];
	char err[4096];
};

static char mqctl_path[4096];

static const char *mqctl(void)
{
	char exe[4096], *slash;
	ssize_t n;

	if (mqctl_path[0])
		return mqctl_path;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	/* build/tests/test_mqctl -> build/mqctl */
	slash = strrchr(exe, '/');
	*slash = 0;
	slash = strrchr(exe, '/');
	*slash = 0;
	snprintf(mqctl_path, sizeof(mqctl_path), "%.4000s/mqctl", exe);
	assert_int_equal(access(mqctl_path, X_OK), 0);
	return mqctl_path;
}

static void slurp(int fd, char *buf, size_t size)
{
	ssize_t n, got = 0;

	lseek(fd, 0, SEEK_SET);
	while ((size_t)got < size - 1 &&
	       (n = read(fd, buf + got, size - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = 0;
	close(fd);
}

#define AS_NOBODY 1

/*
 * Run mqctl with the NULL-terminated arguments; @in (may be NULL) is its
 * stdin.  Returns the exit code (also in r->code).
 */
static int run_v(struct run *r, const char *in, size_t inlen, int flags,
		 va_list ap)
{
	const char *argv[64];
	int fin, fout, ferr, status, n = 0;
	const char *a;
	pid_t pid;

	argv[n++] = "mqctl";
	while ((a = va_arg(ap, const char *)) && n < 63)
		argv[n++] = a;
	argv[n] = NULL;
	fin = memfd_create("in", 0);
	fout = memfd_create("out", 0);
	ferr = memfd_create("err", 0);
	assert_true(fin >= 0 && fout >= 0 && ferr >= 0);
	if (in)
		assert_int_equal(write(fin, in, inlen), (ssize_t)inlen);
	lseek(fin, 0, SEEK_SET);
	pid = t_fork(30);
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fin, 0);
		dup2(fout, 1);
		dup2(ferr, 2);
		if ((flags & AS_NOBODY) && (setgid(65534) || setuid(65534)))
			_exit(99);
		execv(mqctl(), (char *const *)argv);
		_exit(98);
	}
	close(fin);
	status = t_wait_child(pid);
	slurp(fout, r->out, sizeof(r->out));
	slurp(ferr, r->err, sizeof(r->err));
	r->code = WIFEXITED(status) ? WEXITSTATUS(status) :
		  128 + WTERMSIG(status);
	return r->code;
}

static int run(struct run *r, ...)
{
	va_list ap;
	int rc;

	va_start(ap, r);
	rc = run_v(r, NULL, 0, 0, ap);
	va_end(ap);
	return rc;
}

static int run_in(struct run *r, const char *in, size_t len, ...)
{
	va_list ap;
	int rc;

	va_start(ap, len);
	rc = run_v(r, in, len, 0, ap);
	va_end(ap);
	return rc;
}

static int run_flags(struct run *r, int flags, ...)
{
	va_list ap;
	int rc;

	va_start(ap, flags);
	rc = run_v(r, NULL, 0, flags, ap);
	va_end(ap);
	return rc;
}

/* Exit code and, on failure, the text expected in stderr. */
#define EXPECT(r, code, err_substr) \
	expect_run((r), (code), (err_substr), __FILE__, __LINE__)

static void expect_run(const struct run *r, int code, const char *err,
		       const char *file, int line)
{
	int ok = r->code == code;

	if (ok && err && !strstr(r->err, err))
		ok = 0;
	/* A failure is one line on stderr. */
	if (ok && code != 0 && (!strchr(r->err, '\n') ||
				strchr(r->err, '\n')[1] != 0))
		ok = 0;
	if (ok)
		return;
	print_error("mqctl exit %d (want %d), stderr wants \"%s\"\n"
		    "stdout: %s\nstderr: %s\n", r->code, code,
		    err ? err : "", r->out, r->err);
	_fail(file, line);
}

#define HAS(r, s) has_text((r)->out, (s), __FILE__, __LINE__)
#define HAS_ERR(r, s) has_text((r)->err, (s), __FILE__, __LINE__)
/* A line of the output has @a, and after it @b (columns padded). */
#define ROW(r, a, b) row_has((r)->out, (a), (b), __FILE__, __LINE__)

static void row_has(const char *text, const char *a, const char *b,
		    const char *file, int line)
{
	const char *p = text, *hit, *eol;

	while ((hit = strstr(p, a)) != NULL) {
		eol = strchr(hit, '\n');
		if (!eol)
			eol = hit + strlen(hit);
		if (b[strlen(b) - 1] == '\n' && *eol == '\n')
			eol++;
		{
			char row[8192];

			snprintf(row, sizeof(row), "%.*s", (int)(eol - hit),
				 hit);
			if (strstr(row + strlen(a) - 1, b))
				return;
		}
		p = hit + 1;
	}
	print_error("no line with \"%s\" then \"%s\":\n%s\n", a, b, text);
	_fail(file, line);
}

static void has_text(const char *text, const char *s, const char *file,
		     int line)
{
	if (strstr(text, s))
		return;
	print_error("output lacks \"%s\":\n%s\n", s, text);
	_fail(file, line);
}

/* Run the Python program @prog with @input on stdin; its wait status. */
static int python_run(const char *prog, const char *input)
{
	int fin, status;
	pid_t pid;

	fin = memfd_create("input", 0);
	assert_true(fin >= 0);
	assert_int_equal(write(fin, input, strlen(input)),
			 (ssize_t)strlen(input));
	lseek(fin, 0, SEEK_SET);
	pid = t_fork(30);
	if (pid == 0) {
		dup2(fin, 0);
		execlp("python3", "python3", "-c", prog, (char *)NULL);
		_exit(97);
	}
	close(fin);
	status = t_wait_child(pid);
	return status;
}

/*
 * Parse @json with python3 and check @expr (Python, the document is d).
 * Fails the test when it is not one valid JSON document or @expr is false.
 */
#define JSON(json, expr) json_check((json), (expr), __FILE__, __LINE__)

static void json_check(const char *json, const char *expr, const char *file,
		       int line)
{
	char prog[1024];
	int status;

	snprintf(prog, sizeof(prog),
		 "import json, sys\n"
		 "d = json.loads(sys.stdin.read())\n"
		 "ok = bool(%s)\n"
		 "print('json check failed: %s', file=sys.stderr) if not ok "
		 "else None\n"
		 "sys.exit(0 if ok else 1)\n", expr, "<expr>");
	status = python_run(prog, json);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	print_error("JSON check \"%s\" failed (status 0x%x) on:\n%s\n", expr,
		    status, json);
	_fail(file, line);
}

/*
 * The Prometheus text format: "# HELP name text", "# TYPE name
 * gauge|counter" before a metric's samples, samples
 * 'name{label="value",...} number', counters named *_total.
 */
#define PROM(text) prom_check((text), __FILE__, __LINE__)

static void prom_check(const char *text, const char *file, int line)
{
	static const char prog[] =
		"import re, sys\n"
		"name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'\n"
		"lab = r'[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\[\\\\\"n])*\"'\n"
		"sample = re.compile('^(' + name + r')\\{' + lab + '(?:,' + lab"
		" + r')*\\} (-?[0-9]+(?:\\.[0-9]+)?)$')\n"
		"types = {}; n = 0\n"
		"for l in sys.stdin.read().splitlines():\n"
		"    m = re.match('^# TYPE (' + name + ') (gauge|counter)$', l)\n"
		"    if m: types[m.group(1)] = m.group(2); continue\n"
		"    if re.match('^# HELP ' + name + ' .+$', l): continue\n"
		"    m = sample.match(l)\n"
		"    assert m, 'bad line: ' + l\n"
		"    t = types.get(m.group(1))\n"
		"    assert t, 'sample before its TYPE: ' + l\n"
		"    assert t != 'counter' or m.group(1).endswith('_total'), l\n"
		"    n += 1\n"
		"assert n > 0, 'no samples'\n";
	int status = python_run(prog, text);

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	print_error("Prometheus check failed (status 0x%x) on:\n%s\n", status,
		    text);
	_fail(file, line);
}

/* The value of the sample of @metric whose label @label is @value, or -1. */
static long long prom_value_l(const char *text, const char *metric,
			      const char *label, const char *value)
{
	char line[512], pat[128];
	size_t ml = strlen(metric);
	const char *p = text;

	snprintf(pat, sizeof(pat), "%s=\"%s\"", label, value);
	while (*p) {
		size_t n = strcspn(p, "\n");
		char *brace;

		snprintf(line, sizeof(line), "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
		if (strncmp(line, metric, ml) || line[ml] != '{' ||
		    !strstr(line, pat))
			continue;
		brace = strrchr(line, '}');
		return brace ? atoll(brace + 1) : -1;
	}
	return -1;
}

/* The value of the sample of @metric for @queue, or -1. */
static long long prom_value(const char *text, const char *metric,
			    const char *queue)
{
	return prom_value_l(text, metric, "queue", queue);
}

static void make_queue(shmq_seg *seg, const char *name, uint32_t cap,
		       uint32_t msg_size)
{
	struct shmq_attr a = { .capacity = cap, .msg_size = msg_size };

	t_assert_err(shmq_create(seg, name, &a), 0);
}

static void send_str(shmq_seg *seg, const char *qname, const char *s)
{
	shmq *q;

	t_assert_err(shmq_open(seg, qname, &q), 0);
	t_assert_err(shmq_send(q, s, strlen(s), 0), 0);
	shmq_close(q);
}

/* ---- usage, help, version -------------------------------------------------- */

static void test_help_version_usage(void **state)
{
	static const char *cmds[] = { "init", "destroy", "info", "create",
		"delete", "purge", "list", "stat", "watch", "send", "recv",
		"peek", "procs", "recover", "check", "segments", "exchanges",
		"bindings", "bind", "unbind", "publish" };
	static struct run r, top;
	unsigned i;

	(void)state;
	run(&r, "--version", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "mqctl (shmq) ");
	HAS(&r, shmq_version());
	run(&top, "--help", NULL);
	EXPECT(&top, 0, NULL);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		HAS(&top, cmds[i]);
		run(&r, cmds[i], "--help", NULL);
		EXPECT(&r, 0, NULL);
		HAS(&r, "usage: mqctl");
		HAS(&r, cmds[i]);
		run(&r, "help", cmds[i], NULL);
		EXPECT(&r, 0, NULL);
	}
	/* The two-word commands. */
	HAS(&top, "exchange create");
	HAS(&top, "exchange delete");
	run(&r, "exchange", "create", "--help", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "usage: mqctl [-s SEGMENT] [--json] exchange create [OPTIONS] "
	    "NAME");
	HAS(&r, "--type TYPE");
	HAS(&r, "--alternate EXCHANGE");
	run(&r, "help", "exchange", "delete", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "exchange delete [OPTIONS] NAME");
	run(&r, "exchange", "--help", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "exchange create");
	HAS(&r, "exchange delete");
	run(&r, "exchange", NULL);
	EXPECT(&r, 2, "exchange: missing subcommand: create or delete");
	run(&r, "exchange", "frob", NULL);
	EXPECT(&r, 2, "unknown exchange subcommand 'frob'");
	run(&r, "help", "exchange", "frob", NULL);
	EXPECT(&r, 2, "unknown exchange subcommand 'frob'");
	run(&r, "exchange", "create", NULL);
	EXPECT(&r, 2, "missing operand: NAME");
	run(&r, "bind", "x", NULL);
	EXPECT(&r, 2, "missing operand: EXCHANGE QUEUE [KEY]");
	run(&r, "bind", "x", "q", "k", "extra", NULL);
	EXPECT(&r, 2, "unexpected operand 'extra'");
	run(&r, "publish", "x", NULL);
	EXPECT(&r, 2, "missing operand: EXCHANGE KEY [MESSAGE...]");
	run(&r, "recv", "q", "--keys", "--raw", NULL);
	EXPECT(&r, 2, "--keys and --raw exclude each other");
	run(&r, NULL);
	EXPECT(&r, 2, "usage: mqctl");
	run(&r, "frobnicate", NULL);
	EXPECT(&r, 2, "unknown command 'frobnicate'");
	run(&r, "--frob", "list", NULL);
	EXPECT(&r, 2, "unknown option '--frob'");
	run(&r, "list", "--frob", NULL);
	EXPECT(&r, 2, "unknown option '--frob'");
	run(&r, "stat", NULL);
	EXPECT(&r, 2, "missing operand");
	run(&r, "info", "extra", NULL);
	EXPECT(&r, 2, "unexpected operand 'extra'");
	run(&r, "-s", NULL);
	EXPECT(&r, 2, "needs a value");
}

/* ---- init, info, destroy ------------------------------------------------------ */

static void test_init_info_destroy(void **state)
{
	struct t_fix *fix = *state;
	char gid[16], path[128], expr[256];
	struct stat st;
	struct run r;

	snprintf(gid, sizeof(gid), "%u", (unsigned)getgid());
	run(&r, "-s", fix->name, "init", "--size", "4M", "--mode", "0640",
	    "--group", gid, "--max-queues", "8", "--max-procs", "4", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "created segment");
	assert_int_equal(stat(t_shm_path(path, sizeof(path), fix->name), &st),
			 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_gid, getgid());
	assert_int_equal(st.st_size, 4 << 20);

	run(&r, "-s", fix->name, "info", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr), "layout:     version %u", SEG_VERSION);
	HAS(&r, expr);
	HAS(&r, "0640");
	HAS(&r, "queues:     0 of 8");
	run(&r, "--json", "-s", fix->name, "info", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr),
		 "d['size'] == 4194304 and d['mode'] == '0640' and "
		 "d['gid'] == %s and d['max_queues'] == 8 and "
		 "d['max_procs'] == 4 and d['queues'] == 0 and d['procs'] == 0 "
		 "and d['version'] == %u and d['heap_free'] > 0", gid,
		 SEG_VERSION);
	JSON(r.out, expr);

	/* The environment names the default segment. */
	setenv("SHMQ_SEGMENT", fix->name, 1);
	run(&r, "info", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, fix->name);
	unsetenv("SHMQ_SEGMENT");

	run(&r, "-s", fix->name, "init", NULL);
	EXPECT(&r, 1, "already exists");
	assert_non_null(strstr(r.err, fix->name));

	run(&r, "-s", fix->name, "destroy", NULL);
	EXPECT(&r, 0, NULL);
	assert_int_equal(access(path, F_OK), -1);
	run(&r, "-s", fix->name, "destroy", NULL);
	EXPECT(&r, 1, "no such segment or queue");
}

static void test_init_bad_values(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct run r;

	run(&r, "-s", s, "init", "--size", "12Q", NULL);
	EXPECT(&r, 2, "--size '12Q' does not parse");
	run(&r, "-s", s, "init", "--size", "99999999999G", NULL);
	EXPECT(&r, 2, "does not fit");
	run(&r, "-s", s, "init", "--size", "-5M", NULL);
	EXPECT(&r, 2, "does not parse");
	/* Out of range: the range is said (SEG_MIN_SIZE, SHMQ_MAX_*). */
	assert_int_equal(SEG_MIN_SIZE, 64 * 1024);
	run(&r, "-s", s, "init", "--size", "16K", NULL);
	EXPECT(&r, 2, "--size '16K' is too small: a segment is 64 KiB to "
	       "64 TiB");
	run(&r, "-s", s, "init", "--size", "65T", NULL);
	EXPECT(&r, 2, "--size '65T' does not fit: a segment is 64 KiB to "
	       "64 TiB");
	run(&r, "-s", s, "init", "--max-procs", "100000", NULL);
	EXPECT(&r, 2, "--max-procs 100000 is out of range: 1..1024");
	run(&r, "-s", s, "init", "--max-procs", "1025", NULL);
	EXPECT(&r, 2, "out of range: 1..1024");
	run(&r, "-s", s, "init", "--max-queues", "4097", NULL);
	EXPECT(&r, 2, "--max-queues 4097 is out of range: 1..4096");
	/* In range, but the tables of 4096 queues do not fit 64 KiB. */
	run(&r, "-s", s, "init", "--size", "64K", "--max-queues", "4096",
	    NULL);
	EXPECT(&r, 1, "--size 64 KiB leaves no room for the tables of 4096 "
	       "queues and 64 processes");
	run(&r, "-s", s, "init", "--mode", "0999", NULL);
	EXPECT(&r, 2, "--mode '0999' does not parse");
	run(&r, "-s", s, "init", "--group", "no-such-group-xyz", NULL);
	EXPECT(&r, 2, "no such group");
	run(&r, "-s", s, "init", "--max-queues", "0", NULL);
	EXPECT(&r, 2, "out of range: 1..4096");
	run(&r, "-s", s, "init", "--max-queues", "100000", NULL);
	EXPECT(&r, 2, "out of range: 1..4096");
	run(&r, "-s", s, "init", "--size", NULL);
	EXPECT(&r, 2, "needs a value");
	run(&r, "-s", "bad name", "init", NULL);
	EXPECT(&r, 1, "invalid argument; a segment name is 1-63 bytes of "
	       "[A-Za-z0-9._-]");
	run(&r, "-s", "a234567890123456789012345678901234567890123456789012345"
	    "678901234", "info", NULL);
	EXPECT(&r, 1, "longer than 63");
	/* Nothing was created by any of these. */
	assert_int_equal(shmq_seg_unlink(s), -ENOENT);
}

/* ---- queues: create, list, stat, delete ---------------------------------------- */

static void test_queues(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct run r;

	run(&r, "-s", s, "create", "orders", "--capacity", "100",
	    "--msg-size", "1K", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "capacity 128, msg_size 1024");
	run(&r, "-s", s, "create", "logs", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "create", "orders", NULL);
	EXPECT(&r, 1, "queue 'orders': segment or queue already exists");
	run(&r, "-s", s, "create", "bad/name", NULL);
	EXPECT(&r, 1, "invalid argument");
	run(&r, "-s", s, "create", "x234567890123456789012345678901234567890"
	    "1234567890123456789012345", NULL);
	EXPECT(&r, 1, "longer than 63");
	run(&r, "-s", s, "create", "q2", "--capacity", "many", NULL);
	EXPECT(&r, 2, "--capacity 'many' does not parse");
	run(&r, "-s", s, "create", "q2", "--capacity", "99999999999", NULL);
	EXPECT(&r, 2, "does not fit");
	run(&r, "-s", s, "create", "q2", "--msg-size", "100M", NULL);
	EXPECT(&r, 2, "--msg-size 100M is out of range: 1..67108864 bytes");
	run(&r, "-s", s, "create", "q2", "--capacity", "16777217", NULL);
	EXPECT(&r, 2, "--capacity 16777217 is out of range: 1..16777216");
	run(&r, "-s", s, "create", "huge", "--capacity", "1048576",
	    "--msg-size", "1K", NULL);
	EXPECT(&r, 1, "queue 'huge': no space: not enough free segment "
	       "memory for its ring and unacknowledged area: the largest "
	       "free block is");

	send_str(fix->seg, "orders", "one");
	send_str(fix->seg, "orders", "two");
	run(&r, "-s", s, "list", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "QUEUE");
	HAS(&r, "2/128");
	HAS(&r, "0/1024");
	run(&r, "-s", s, "--json", "list", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "len(d['queues']) == 2 and "
	     "[q['name'] for q in d['queues']] == ['orders', 'logs'] and "
	     "d['queues'][0]['depth'] == 2 and d['queues'][0]['sent'] == 2 "
	     "and d['queues'][0]['received'] == 0 and "
	     "d['queues'][0]['capacity'] == 128 and "
	     "d['queues'][0]['msg_size'] == 1024 and "
	     "d['queues'][0]['state'] == 'live' and "
	     "d['queues'][0]['type'] == 'mpmc' and "
	     "d['queues'][0]['sender_pid'] is None and "
	     "d['queues'][0]['receiver_pid'] is None and "
	     "d['queues'][1]['depth'] == 0");
	run(&r, "-s", s, "stat", "orders", "--json", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['queue']['name'] == 'orders' and "
	     "d['queue']['depth'] == 2 and d['queue']['handles'] == 0 and "
	     "all(k in d['queue'] for k in ('full_waits', 'empty_waits', "
	     "'sleeps', 'wakes', 'repairs', 'send_waiters', 'recv_waiters'))");
	run(&r, "-s", s, "stat", "orders", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "depth:        2 of 128 messages");
	HAS(&r, "type:         mpmc");
	run(&r, "-s", s, "stat", "nope", NULL);
	EXPECT(&r, 1, "queue 'nope': no such segment or queue");

	run(&r, "-s", s, "delete", "logs", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "delete", "logs", NULL);
	EXPECT(&r, 1, "queue 'logs': no such segment or queue");
	run(&r, "-s", s, "--json", "list", NULL);
	JSON(r.out, "[q['name'] for q in d['queues']] == ['orders']");
}

/* ---- send, recv, peek ------------------------------------------------------------ */

static void test_send_recv_peek(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	char file[256], dir[200];
	static const unsigned char bin[] = { 0, 1, 2, 0xff, '\n', 'z' };
	struct run r;
	int fd;

	make_queue(fix->seg, "q", 4, 16);
	run(&r, "-s", s, "send", "q", "alpha", "beta", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "peek", "q", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "snapshot");
	HAS(&r, "nothing was consumed");
	HAS(&r, "#0 len=5: alpha");
	HAS(&r, "#1 len=4: beta");
	run(&r, "-s", s, "--json", "peek", "q", "-n", "1", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['snapshot'] is True and len(d['messages']) == 1 and "
	     "d['messages'][0]['data'] == 'alpha' and d['depth'] == 2");
	/* Peek consumed nothing: recv gets both, in order. */
	run(&r, "-s", s, "recv", "q", "-n", "5", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "alpha\nbeta\n");
	/* Empty: said one-sided, not the library's "empty or full". */
	run(&r, "-s", s, "recv", "q", NULL);
	EXPECT(&r, 1, "queue 'q' is empty: nothing received; --timeout "
	       "waits for a message");
	run(&r, "-s", s, "recv", "q", "--timeout", "30ms", NULL);
	EXPECT(&r, 1, "timed out");

	/* One message per line of stdin. */
	run_in(&r, "l1\nl2\n", 6, "-s", s, "send", "q", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "recv", "q", "-n", "2", "--hex", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "6c31\n6c32\n");

	/* A binary file is one message, exactly. */
	snprintf(dir, sizeof(dir), "%s", t_tmpdir());
	snprintf(file, sizeof(file), "%s/bin", dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bin, sizeof(bin)), sizeof(bin));
	close(fd);
	run(&r, "-s", s, "send", "q", "--file", file, NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "peek", "q", "--hex", NULL);
	HAS(&r, "000102ff0a7a");
	run(&r, "-s", s, "peek", "q", NULL);
	HAS(&r, "\\x00\\x01\\x02\\xff\\nz");
	run(&r, "-s", s, "recv", "q", "--raw", NULL);
	EXPECT(&r, 0, NULL);
	assert_memory_equal(r.out, bin, sizeof(bin));

	/* Errors. */
	run(&r, "-s", s, "send", "q", "this is longer than sixteen", NULL);
	EXPECT(&r, 1, "message larger than the queue's msg_size");
	/* A file's error is the file's, through strerror, naming it. */
	run(&r, "-s", s, "send", "q", "--file", "/nonexistent/x", NULL);
	EXPECT(&r, 1, "queue 'q': --file /nonexistent/x: No such file or "
	       "directory");
	run(&r, "-s", s, "send", "q", "--file", dir, NULL);
	EXPECT(&r, 1, "Is a directory");
	assert_non_null(strstr(r.err, dir));
	run(&r, "-s", s, "--json", "send", "q", "--file", "/nonexistent/x",
	    NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOENT' and d['queue'] == 'q' and "
	     "'/nonexistent/x' in d['message'] and d['sent'] == 0");
	fd = open(file, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "0123456789abcdef", 16), 16);
	close(fd);
	run(&r, "-s", s, "send", "q", "--file", file, NULL);
	EXPECT(&r, 1, "longer than msg_size (16 bytes); nothing sent");
	run(&r, "-s", s, "send", "q", "a", "b", "c", "d", "e", NULL);
	EXPECT(&r, 1, "queue 'q' is full: message 5 not sent (4 sent before "
	       "it); --timeout waits for room");
	run(&r, "-s", s, "send", "q", "x", "--timeout", "20ms", NULL);
	EXPECT(&r, 1, "timed out");
	run(&r, "-s", s, "send", "q", "x", "--timeout", "soon", NULL);
	EXPECT(&r, 2, "--timeout 'soon' does not parse");
	run(&r, "-s", s, "recv", "q", "--hex", "--raw", NULL);
	EXPECT(&r, 2, "exclude each other");
	run(&r, "-s", s, "recv", "q", "-n", "0", NULL);
	EXPECT(&r, 2, "at least 1");
	run(&r, "-s", s, "recv", "nope", NULL);
	EXPECT(&r, 1, "queue 'nope': no such segment or queue");
	run(&r, "-s", s, "peek", "nope", NULL);
	EXPECT(&r, 1, "queue 'nope': no such segment or queue");
	/* Nothing was lost by the failures: the 4 messages are there. */
	run(&r, "-s", s, "recv", "q", "-n", "9", NULL);
	assert_string_equal(r.out, "a\nb\nc\nd\n");
}

/* ---- missing segment, permissions ------------------------------------------------- */

static void test_missing_segment(void **state)
{
	struct t_fix *fix = *state;
	static const char *cmds[][3] = {
		{ "info" }, { "list" }, { "stat", "q" }, { "procs" },
		{ "check" }, { "send", "q", "m" }, { "recv", "q" },
		{ "peek", "q" }, { "purge", "q" }, { "create", "q" },
		{ "delete", "q" }, { "watch" }, { "destroy" }, { "recover" },
		{ "exchange", "create", "x" }, { "exchange", "delete", "x" },
		{ "exchanges" }, { "bindings" }, { "bind", "x", "q" },
		{ "unbind", "x", "q" }, { "publish", "x", "k" },
	};
	struct run r;
	unsigned i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		run(&r, "-s", fix->name, cmds[i][0], cmds[i][1], cmds[i][2],
		    NULL);
		EXPECT(&r, 1, "no such segment or queue");
		assert_non_null(strstr(r.err, fix->name));
		assert_non_null(strstr(r.err, cmds[i][0]));
	}
}

static void test_permission_denied(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	struct run r;
	int as_root = geteuid() == 0;

	/* Root passes every permission check: run mqctl as nobody then. */
	t_shm_path(path, sizeof(path), fix->name);
	if (!as_root)
		assert_int_equal(chmod(path, 0), 0);
	run_flags(&r, as_root ? AS_NOBODY : 0, "-s", fix->name, "info", NULL);
	EXPECT(&r, 1, "permission denied");
	run_flags(&r, as_root ? AS_NOBODY : 0, "-s", fix->name, "check", NULL);
	EXPECT(&r, 1, "permission denied");
	run_flags(&r, as_root ? AS_NOBODY : 0, "-s", fix->name, "destroy",
		  "--force", NULL);
	EXPECT(&r, 1, "permission denied");
	assert_int_equal(access(path, F_OK), 0);
	if (as_root) {
		/* nobody may not give a file to group 0; nothing is left. */
		const char *other = t_segname();

		run_flags(&r, AS_NOBODY, "-s", other, "init", "--size", "1M",
			  "--group", "0", NULL);
		EXPECT(&r, 1, "operation not permitted");
		assert_int_equal(access(t_shm_path(path, sizeof(path), other),
					F_OK), -1);
	}
}

/* ---- corruption and check ------------------------------------------------------------ */

static void poke(const char *name, uint64_t off, const void *p, size_t n)
{
	char path[128];
	int fd;

	fd = open(t_shm_path(path, sizeof(path), name), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static struct dir_entry peek_dir(const char *name, uint32_t idx)
{
	struct dir_entry e;
	char path[128];
	int fd;

	fd = open(t_shm_path(path, sizeof(path), name), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &e, sizeof(e), SEG_HDR_SIZE +
			       (off_t)idx * sizeof(e)), (ssize_t)sizeof(e));
	close(fd);
	return e;
}

static void test_check(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct dir_entry e0, e1;
	uint64_t v;
	uint32_t u;
	struct run r;

	make_queue(fix->seg, "a", 8, 32);
	make_queue(fix->seg, "b", 8, 32);
	send_str(fix->seg, "a", "m1");
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "consistent");
	run(&r, "-s", s, "--json", "check", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['errors'] == 0 and d['consistent'] is True");

	e0 = peek_dir(s, 0);
	e1 = peek_dir(s, 1);
	/* A slot seq that no position allows: slot 5 of "a" (free, lap 0). */
	v = 12345;
	poke(s, e0.off + SHMQ_RING_HDR_SIZE + 5ull * e0.slot_size, &v, 8);
	/* "b": more claimed than capacity. */
	v = 100;
	poke(s, e1.off + offsetof(struct ring_hdr, prod_pos), &v, 8);
	/* "a"'s redelivery lane, after its 8 slots: slot 2, lap 0. */
	v = 777;
	poke(s, e0.off + SHMQ_RING_HDR_SIZE + (8ull + 2) * e0.slot_size, &v,
	     8);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "3 error(s) found");
	HAS(&r, "error: queue (queue a): slot 5 (position -3): seq 12345");
	HAS(&r, "error: queue (queue a): redelivery lane: slot 2 (position "
	    "-6): seq 777");
	HAS(&r, "error: queue (queue b): prod_pos - cons_pos = 100 exceeds "
	    "capacity 8");
	run(&r, "-s", s, "--json", "check", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.out, "d['errors'] == 3 and d['consistent'] is False and "
	     "sorted(p['queue'] for p in d['problems'] if "
	     "p['severity'] == 'error') == ['a', 'a', 'b']");
	/* Such rings still open: the tool says what is wrong, not open. */
	run(&r, "-s", s, "info", NULL);
	EXPECT(&r, 0, NULL);

	/* Overlapping blocks: open refuses, check names both queues. */
	poke(s, SEG_HDR_SIZE + 128 + offsetof(struct dir_entry, off), &e0.off,
	     8);
	run(&r, "-s", s, "info", NULL);
	EXPECT(&r, 1, "segment corrupt, foreign, or of another layout "
	       "version; 'mqctl -s");
	run(&r, "-s", s, "list", NULL);
	EXPECT(&r, 1, "segment corrupt");
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "error(s) found");
	HAS(&r, "blocks of entries 0 (a) and 1 (b) overlap");
	/* destroy refuses a corrupt segment without --force. */
	run(&r, "-s", s, "destroy", NULL);
	EXPECT(&r, 1, "--force removes it anyway");

	/* A bad capacity in the directory, and a wrong version. */
	u = 7;
	poke(s, SEG_HDR_SIZE + offsetof(struct dir_entry, capacity), &u, 4);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "capacity 7 is not a power of two");
	u = 99;
	poke(s, offsetof(struct seg_hdr, version), &u, 4);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "1 error(s) found");
	{
		char want[80];

		snprintf(want, sizeof(want), "layout version 99; this library "
			 "reads version %u", SEG_VERSION);
		HAS(&r, want);
	}
	v = 0;
	poke(s, 0, &v, 8);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "not a shmq segment");

	/* A file too small to be a segment (unmapped here first). */
	shmq_seg_close(fix->seg);
	fix->seg = NULL;
	{
		char path[128];

		t_shm_path(path, sizeof(path), s);
		assert_int_equal(truncate(path, 100), 0);
	}
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "1 error(s) found");
	HAS(&r, "file is 100 bytes");
	run(&r, "-s", s, "destroy", "--force", NULL);
	EXPECT(&r, 0, NULL);
}

/* ---- processes: procs, destroy refusing ----------------------------------------------- */

enum { CHILD_IDLE, CHILD_ACQUIRE, CHILD_RECV, CHILD_FETCH };

/*
 * A child attached with one handle open, until its pipe closes or it is
 * killed; @hold: CHILD_ACQUIRE holds one message (zero-copy), CHILD_RECV
 * receives one (within 5 s: on an SPSC queue that takes the receiving
 * side), CHILD_FETCH fetches one (within 5 s) and owes it, never
 * acknowledging it (closing gives it back).  Tracked: teardown kills it
 * on a failure.
 */
static pid_t attached_child(const char *seg, const char *queue, int *wfd,
			    int hold)
{
	int go[2], ready[2];
	pid_t pid;
	char ch;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid = t_fork(30);
	if (pid == 0) {
		shmq_seg *s;
		shmq *q;
		struct shmq_msg m;
		uint64_t tag;
		char buf[64];

		close(go[1]);
		close(ready[0]);
		if (shmq_seg_open(seg, &s) || shmq_open(s, queue, &q))
			_exit(1);
		if (hold == CHILD_ACQUIRE && shmq_acquire(q, &m, 0))
			_exit(2);
		if (hold == CHILD_RECV &&
		    shmq_recv(q, buf, sizeof(buf), 5000 * T_MS) < 0)
			_exit(2);
		if (hold == CHILD_FETCH &&
		    shmq_fetch(q, buf, sizeof(buf), NULL, &tag,
			       5000 * T_MS) < 0)
			_exit(2);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		/* Wait until told (or killed). */
		while (read(go[0], &ch, 1) < 0 && errno == EINTR)
			;
		if (hold == CHILD_ACQUIRE)
			shmq_release(q, &m);
		shmq_close(q);
		shmq_seg_close(s);
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &ch, 1), 1);
	close(ready[0]);
	*wfd = go[1];
	return pid;
}

/* Producers and consumers are processes that sent / received via an open handle. */
static void test_producers_consumers(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	shmq *tx, *rx;
	struct run r;
	char buf[8];

	make_queue(fix->seg, "pc", 8, 32);
	t_assert_err(shmq_open(fix->seg, "pc", &tx), 0);
	t_assert_err(shmq_open(fix->seg, "pc", &rx), 0);
	run(&r, "-s", s, "--json", "stat", "pc", NULL);
	JSON(r.out, "d['queue']['handles'] == 2 and "
	     "d['queue']['producers'] == 0 and d['queue']['consumers'] == 0");
	t_assert_err(shmq_send(tx, "x", 1, 0), 0);
	run(&r, "-s", s, "--json", "list", NULL);
	JSON(r.out, "d['queues'][0]['producers'] == 1 and "
	     "d['queues'][0]['consumers'] == 0");
	t_assert_err(shmq_recv(rx, buf, sizeof(buf), 0), 1);
	run(&r, "-s", s, "list", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "PROD/CON");
	HAS(&r, " 1/1 ");
	run(&r, "-s", s, "stat", "pc", NULL);
	HAS(&r, "1 process(es) sending, 1 receiving");
	run(&r, "-s", s, "stat", "pc", "--prometheus", NULL);
	HAS(&r, "shmq_queue_producers{");
	shmq_close(tx);
	shmq_close(rx);
	run(&r, "-s", s, "--json", "stat", "pc", NULL);
	JSON(r.out, "d['queue']['handles'] == 0 and "
	     "d['queue']['producers'] == 0 and d['queue']['consumers'] == 0");
}

/*
 * A process asleep in shmq_poll counts among the receive waiters, and as
 * a poller: list, stat, JSON and Prometheus say so.
 */
static void test_pollers(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_queue_info qi;
	struct run r;
	uint64_t t0;
	pid_t pid;

	make_queue(fix->seg, "polled", 8, 32);
	pid = t_fork(30);
	if (pid == 0) {
		struct shmq_pollq e = { NULL, SHMQ_POLLIN, 0 };
		shmq_seg *seg;

		if (shmq_seg_open(s, &seg) || shmq_open(seg, "polled", &e.q) ||
		    shmq_set_spin(e.q, 0))
			_exit(10);
		shmq_poll(&e, 1, SHMQ_FOREVER);
		_exit(11);      /* nobody sends */
	}
	t0 = t_now_ns();
	do {
		t_sleep_ms(2);
		t_assert_err(shmq_queue_stat(fix->seg, "polled", &qi), 0);
	} while (qi.recv_pollers == 0 && t_now_ns() - t0 < 10000 * T_MS);
	run(&r, "-s", s, "--json", "stat", "polled", NULL);
	JSON(r.out, "d['queue']['recv_pollers'] == 1 and "
	     "d['queue']['recv_waiters'] == 1 and "
	     "d['queue']['send_pollers'] == 0 and "
	     "d['queue']['send_waiters'] == 0");
	run(&r, "-s", s, "--json", "list", NULL);
	JSON(r.out, "d['queues'][0]['recv_pollers'] == 1 and "
	     "d['queues'][0]['recv_waiters'] == 1");
	run(&r, "-s", s, "stat", "polled", NULL);
	HAS(&r, "waiting:      0 sender(s) for room, 1 receiver(s) for messages");
	HAS(&r, "polling:      0 of the senders, 1 of the receivers (shmq_poll)");
	run(&r, "-s", s, "list", NULL);
	HAS(&r, " 0/1 ");
	run(&r, "-s", s, "stat", "polled", "--prometheus", NULL);
	HAS(&r, "shmq_queue_recv_pollers{");
	t_kill_reap(pid);
}

static void test_procs_destroy(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	char expr[512];
	struct run r;
	pid_t pid;
	int wfd;

	make_queue(fix->seg, "q", 8, 32);
	shmq_seg_close(fix->seg);
	fix->seg = NULL;
	pid = attached_child(s, "q", &wfd, CHILD_IDLE);
	run(&r, "-s", s, "procs", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "alive");
	run(&r, "-s", s, "--json", "procs", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr),
		 "len(d['procs']) == 1 and d['procs'][0]['pid'] == %d and "
		 "d['procs'][0]['alive'] is True and "
		 "d['procs'][0]['handles'] == 1 and "
		 "d['procs'][0]['same_pidns'] is True and "
		 "d['procs'][0]['held'] == 0 and d['procs'][0]['comm'] != ''",
		 (int)pid);
	JSON(r.out, expr);
	run(&r, "-s", s, "--json", "stat", "q", NULL);
	JSON(r.out, "d['queue']['handles'] == 1");
	run(&r, "-s", s, "destroy", NULL);
	EXPECT(&r, 1, "resource busy; 1 process(es) attached");

	/* Killed: dead, and still listed (observers reclaim nothing). */
	t_kill_reap(pid);
	close(wfd);
	run(&r, "-s", s, "--json", "procs", NULL);
	snprintf(expr, sizeof(expr),
		 "len(d['procs']) == 1 and d['procs'][0]['pid'] == %d and "
		 "d['procs'][0]['alive'] is False", (int)pid);
	JSON(r.out, expr);
	run(&r, "-s", s, "--json", "info", NULL);
	JSON(r.out, "d['procs'] == 0 and d['procs_dead'] == 1");
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "note: procs: process entry");
	HAS(&r, "is dead");
	/* A dead process does not keep the segment: destroy works. */
	pid = attached_child(s, "q", &wfd, CHILD_IDLE);
	run(&r, "-s", s, "destroy", "--force", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "still attached");
	close(wfd);
	t_assert_exit0(t_wait_child(pid));
}

/* ---- watch -------------------------------------------------------------------------- */

static void test_watch(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name, *p;
	struct run r;
	int lines = 0;

	make_queue(fix->seg, "w1", 8, 32);
	make_queue(fix->seg, "w2", 8, 32);
	send_str(fix->seg, "w1", "x");
	/* stdout is a memfd, not a terminal: plain lines. */
	run(&r, "-s", s, "watch", "w1", "--interval", "20ms", "--count", "3",
	    NULL);
	EXPECT(&r, 0, NULL);
	for (p = r.out; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, 3);
	HAS(&r, "queue=w1 depth=1 capacity=8 in_per_s=0 out_per_s=0");
	assert_null(strstr(r.out, "w2"));
	assert_null(strstr(r.out, "\033["));
	run(&r, "-s", s, "watch", "--interval", "10ms", "--count", "2", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "queue=w2");
	run(&r, "-s", s, "watch", "nope", "--count", "1", NULL);
	EXPECT(&r, 1, "queue 'nope': no such segment or queue");
	run(&r, "-s", s, "watch", "--interval", "0s", NULL);
	EXPECT(&r, 2, "must be positive");
	run(&r, "-s", s, "watch", "--interval", "1h", NULL);
	EXPECT(&r, 2, "--interval '1h' does not parse");
	run(&r, "-s", s, "watch", "--count", "x", NULL);
	EXPECT(&r, 2, "--count 'x' does not parse");
}

/* A sender that keeps w1 moving while watch measures a rate above 0. */
static void test_watch_rates(void **state)
{
	struct t_fix *fix = *state;
	struct run r;
	pid_t pid;

	make_queue(fix->seg, "r", 64, 32);
	pid = t_fork(30);
	if (pid == 0) {
		shmq_seg *sg;
		shmq *q;
		char buf[32];

		if (shmq_seg_open(fix->name, &sg) || shmq_open(sg, "r", &q))
			_exit(1);
		for (;;) {
			if (shmq_send(q, "m", 1, SHMQ_FOREVER) ||
			    shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER) < 0)
				_exit(2);
			t_sleep_ms(1);
		}
	}
	run(&r, "-s", fix->name, "watch", "r", "--interval", "100ms",
	    "--count", "2", NULL);
	t_kill_reap(pid);
	EXPECT(&r, 0, NULL);
	assert_null(strstr(r.out, "in_per_s=0 "));
	assert_null(strstr(r.out, "out_per_s=0 "));
}

/* ---- prometheus --------------------------------------------------------------------- */

static void test_prometheus(void **state)
{
	struct t_fix *fix = *state;
	struct run r;

	make_queue(fix->seg, "p1", 16, 32);
	make_queue(fix->seg, "p2", 4, 32);
	send_str(fix->seg, "p1", "a");
	send_str(fix->seg, "p1", "b");
	send_str(fix->seg, "p1", "c");
	run(&r, "-s", fix->name, "list", "--prometheus", NULL);
	EXPECT(&r, 0, NULL);
	PROM(r.out);
	assert_int_equal(prom_value(r.out, "shmq_queue_depth", "p1"), 3);
	assert_int_equal(prom_value(r.out, "shmq_queue_depth", "p2"), 0);
	assert_int_equal(prom_value(r.out, "shmq_queue_capacity", "p2"), 4);
	assert_int_equal(prom_value(r.out, "shmq_queue_sent_total", "p1"), 3);
	HAS(&r, "# TYPE shmq_queue_sent_total counter");
	run(&r, "-s", fix->name, "stat", "p1", "--prometheus", NULL);
	EXPECT(&r, 0, NULL);
	PROM(r.out);
	assert_null(strstr(r.out, "p2"));
	assert_int_equal(prom_value(r.out, "shmq_queue_received_total", "p1"),
			 0);
}

/* ---- purge while a producer and a consumer run ------------------------------------------ */

#define PURGE_N 20000u

struct purge_shared {
	atomic_uint prod_done;
	atomic_uint received;
	atomic_uint dup;
	atomic_uint disorder;
	atomic_uchar seen[PURGE_N];
};

static void test_purge_concurrent(void **state)
{
	struct t_fix *fix = *state;
	struct purge_shared *sh;
	unsigned purged = 0, i, runs = 0;
	struct run r;
	pid_t prod, cons;
	shmq *q;
	uint32_t end = UINT32_MAX;

	make_queue(fix->seg, "pq", 256, 16);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	prod = t_fork(40);
	if (prod == 0) {
		shmq_seg *sg;

		if (shmq_seg_open(fix->name, &sg) || shmq_open(sg, "pq", &q))
			_exit(1);
		for (i = 0; i < PURGE_N; i++)
			if (shmq_send(q, &i, sizeof(i), SHMQ_FOREVER))
				_exit(2);
		atomic_store(&sh->prod_done, 1);
		_exit(0);
	}
	cons = t_fork(40);
	if (cons == 0) {
		shmq_seg *sg;
		uint32_t v, last = 0;
		int first = 1;

		if (shmq_seg_open(fix->name, &sg) || shmq_open(sg, "pq", &q))
			_exit(1);
		for (i = 0;; i++) {
			if (shmq_recv(q, &v, sizeof(v), SHMQ_FOREVER) != 4)
				_exit(2);
			if (v == UINT32_MAX)
				_exit(0);
			if (v >= PURGE_N || atomic_fetch_add(&sh->seen[v], 1))
				atomic_fetch_add(&sh->dup, 1);
			if (!first && v <= last)
				atomic_fetch_add(&sh->disorder, 1);
			first = 0;
			last = v;
			atomic_fetch_add(&sh->received, 1);
			/* Slower than the producer: the queue fills up. */
			if (i % 64 == 0)
				t_sleep_ms(1);
		}
	}
	/* Purge repeatedly while both run. */
	do {
		unsigned n = 0;

		t_sleep_ms(20);
		run(&r, "-s", fix->name, "purge", "pq", NULL);
		EXPECT(&r, 0, NULL);
		assert_int_equal(sscanf(r.out, "purged %u message(s)", &n), 1);
		purged += n;
		runs++;
	} while (runs < 3 || (!atomic_load(&sh->prod_done) && runs < 50));
	run(&r, "-s", fix->name, "--json", "purge", "pq", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['queue'] == 'pq' and d['purged'] >= 0");
	purged += (unsigned)atoi(strstr(r.out, "\"purged\":") + 9);
	t_assert_exit0(t_wait_child(prod));
	/* Producer done: the end marker cannot be purged any more. */
	t_assert_err(shmq_open(fix->seg, "pq", &q), 0);
	t_assert_err(shmq_send(q, &end, sizeof(end), SHMQ_FOREVER), 0);
	shmq_close(q);
	t_assert_exit0(t_wait_child(cons));
	print_message("purge: %u purged in %u runs, %u received, of %u\n",
		      purged, runs + 1, atomic_load(&sh->received), PURGE_N);
	assert_int_equal(atomic_load(&sh->dup), 0);
	assert_int_equal(atomic_load(&sh->disorder), 0);
	/* Every message was either received or purged, exactly once. */
	assert_int_equal(atomic_load(&sh->received) + purged, PURGE_N);
	assert_true(purged > 0);
	munmap(sh, sizeof(*sh));
}

/* ---- recover after SIGKILL ------------------------------------------------------------ */

static void test_recover_after_sigkill(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	char expr[256];
	struct run r;
	pid_t pid;
	int wfd;

	make_queue(fix->seg, "rq", 8, 32);
	send_str(fix->seg, "rq", "precious");
	send_str(fix->seg, "rq", "second");
	shmq_seg_close(fix->seg);
	fix->seg = NULL;
	/* The child acquires "precious" and is killed holding its slot. */
	pid = attached_child(s, "rq", &wfd, CHILD_ACQUIRE);
	t_kill_reap(pid);
	close(wfd);
	run(&r, "-s", s, "--json", "procs", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "len(d['procs']) == 1 and d['procs'][0]['alive'] is False");
	run(&r, "-s", s, "--json", "procs", NULL);
	JSON(r.out, "d['procs'][0]['held'] == 1 and "
	     "d['procs'][0]['unacked'] == 0");
	/* stat names the dead holder: acquired, not fetched. */
	run(&r, "-s", s, "--json", "stat", "rq", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr), "[(o['pid'], o['alive'], o['fetched'], "
		 "o['acquired']) for o in d['owed']] == [(%d, False, 0, 1)]",
		 (int)pid);
	JSON(r.out, expr);
	run(&r, "-s", s, "recover", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "recovered segment");
	HAS(&r, "1 slot(s) repaired; dead process entries: 1 before, 0 after");
	run(&r, "-s", s, "--json", "recover", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['repaired'] == 0 and d['dead_after'] == 0");
	run(&r, "-s", s, "--json", "procs", NULL);
	JSON(r.out, "len(d['procs']) == 0");
	run(&r, "-s", s, "--json", "stat", "rq", NULL);
	JSON(r.out, "d['queue']['redelivered'] == 1 and "
	     "d['queue']['repairs'] == 1 and d['queue']['lane_depth'] == 1 "
	     "and d['queue']['depth'] == 2 and d['owed'] == []");
	run(&r, "-s", s, "stat", "rq", "--prometheus", NULL);
	PROM(r.out);
	assert_int_equal(prom_value(r.out, "shmq_queue_redelivered_total",
				    "rq"), 1);
	/* The killed consumer's message is delivered again, first. */
	run(&r, "-s", s, "recv", "rq", "-n", "3", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "precious\nsecond\n");
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
}

/* ---- SPSC queues ----------------------------------------------------------------------- */

/*
 * An SPSC queue through every command: create --spsc, the type and the
 * sides' pids in list/stat (text and JSON), send/peek/purge/check, a
 * side held by this process (send busy), then by a forked child (purge
 * and recv busy, naming its pid), and after the child is killed: the
 * side free again, recover, recv, check.
 */
static void test_spsc(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	char expr[512], want[256];
	int me = (int)getpid(), wfd;
	struct run r;
	shmq *tx;
	pid_t pid;

	run(&r, "-s", s, "create", "sp", "--spsc", "--capacity", "6",
	    "--msg-size", "32", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "created queue sp: capacity 8, msg_size 32, type spsc");
	run(&r, "-s", s, "create", "mp", NULL);
	HAS(&r, "type mpmc");
	run(&r, "-s", s, "--json", "list", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "[(q['name'], q['type']) for q in d['queues']] == "
	     "[('sp', 'spsc'), ('mp', 'mpmc')] and "
	     "d['queues'][0]['sender_pid'] == 0 and "
	     "d['queues'][0]['receiver_pid'] == 0 and "
	     "d['queues'][1]['sender_pid'] is None");

	/* This process sends, and keeps the sending side. */
	t_assert_err(shmq_open(fix->seg, "sp", &tx), 0);
	t_assert_err(shmq_send(tx, "one", 3, 0), 0);
	t_assert_err(shmq_send(tx, "two", 3, 0), 0);
	t_assert_err(shmq_send(tx, "three", 5, 0), 0);
	run(&r, "-s", s, "--json", "stat", "sp", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr), "d['queue']['type'] == 'spsc' and "
		 "d['queue']['sender_pid'] == %d and "
		 "d['queue']['receiver_pid'] == 0 and d['queue']['depth'] == 3",
		 me);
	JSON(r.out, expr);
	run(&r, "-s", s, "stat", "sp", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "type:         spsc");
	snprintf(want, sizeof(want), "sides:        sending: pid %d, "
		 "receiving: none", me);
	HAS(&r, want);
	run(&r, "-s", s, "list", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "SENDER/RECEIVER");
	snprintf(want, sizeof(want), "%d/none block ", me);
	HAS(&r, want);
	run(&r, "-s", s, "send", "sp", "intruder", NULL);
	snprintf(want, sizeof(want), "resource busy; message 1 not sent (0 "
		 "sent before it): the sending side of this SPSC queue is "
		 "held by pid %d", me);
	EXPECT(&r, 1, want);

	/* peek: a snapshot, in order; nothing consumed. */
	run(&r, "-s", s, "peek", "sp", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "3 message(s) shown");
	HAS(&r, "#0 len=3: one\n#1 len=3: two\n#2 len=5: three\n");
	run(&r, "-s", s, "--json", "peek", "sp", "-n", "2", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "[m['data'] for m in d['messages']] == ['one', 'two'] "
	     "and d['depth'] == 3 and "
	     "not any(m['redelivered'] for m in d['messages'])");
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "consistent");

	/* purge takes the free receiving side, drops 3, gives it back. */
	run(&r, "-s", s, "purge", "sp", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "purged 3 message(s) from sp");
	run(&r, "-s", s, "--json", "stat", "sp", NULL);
	JSON(r.out, "d['queue']['depth'] == 0 and "
	     "d['queue']['received'] == 3 and d['queue']['receiver_pid'] == 0");
	t_assert_err(shmq_send(tx, "four", 4, 0), 0);
	run(&r, "-s", s, "recv", "sp", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "four\n");
	run(&r, "-s", s, "--json", "purge", "sp", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['purged'] == 0");
	t_assert_err(shmq_send(tx, "five", 4, 0), 0);
	shmq_close(tx);
	run(&r, "-s", s, "--json", "stat", "sp", NULL);
	JSON(r.out, "d['queue']['sender_pid'] == 0");

	/* A child takes the receiving side (it receives "five"). */
	pid = attached_child(s, "sp", &wfd, CHILD_RECV);
	run(&r, "-s", s, "send", "sp", "six", "seven", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "--json", "stat", "sp", NULL);
	snprintf(expr, sizeof(expr), "d['queue']['receiver_pid'] == %d and "
		 "d['queue']['sender_pid'] == 0 and d['queue']['depth'] == 2",
		 (int)pid);
	JSON(r.out, expr);
	run(&r, "-s", s, "list", NULL);
	snprintf(want, sizeof(want), "none/%d block ", (int)pid);
	HAS(&r, want);
	run(&r, "-s", s, "stat", "sp", NULL);
	snprintf(want, sizeof(want), "receiving: pid %d", (int)pid);
	HAS(&r, want);
	run(&r, "-s", s, "purge", "sp", NULL);
	snprintf(want, sizeof(want), "queue 'sp': resource busy; the "
		 "receiving side of this SPSC queue is held by pid %d (one "
		 "receiver at a time); nothing purged", (int)pid);
	EXPECT(&r, 1, want);
	run(&r, "-s", s, "recv", "sp", NULL);
	snprintf(want, sizeof(want), "resource busy; nothing received: the "
		 "receiving side of this SPSC queue is held by pid %d",
		 (int)pid);
	EXPECT(&r, 1, want);
	/* Nothing was dropped by the refused purge. */
	run(&r, "-s", s, "--json", "stat", "sp", NULL);
	JSON(r.out, "d['queue']['depth'] == 2");

	/* Killed: its side is free at once, and recover reclaims it. */
	t_kill_reap(pid);
	close(wfd);
	run(&r, "-s", s, "--json", "stat", "sp", NULL);
	JSON(r.out, "d['queue']['receiver_pid'] == 0");
	run(&r, "-s", s, "recover", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "dead process entries: 1 before, 0 after");
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "consistent (0 note(s))");
	/* "five" was received before the kill: not delivered again. */
	run(&r, "-s", s, "recv", "sp", "-n", "5", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "six\nseven\n");
}

/* check on a damaged SPSC queue: positions, a length, an owner word. */
/*
 * Hostile words in a queue's unacknowledged area: check names each, and
 * the queue still works (every reader clamps them: ipc/ack.c).
 */
static void test_ack_check(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_qinfo qi = { 0 };
	struct dir_entry e;
	uint64_t area, v;
	uint32_t u;
	struct run r;
	shmq *q;
	char buf[64];
	uint64_t tag;

	make_queue(fix->seg, "a", 8, 32);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
	e = peek_dir(s, 0);
	assert_int_equal(e.ack_cap, 8);
	qi.capacity = e.capacity;
	qi.slot_size = e.slot_size;
	area = e.off + shmq__ack_off(qi.capacity, qi.slot_size, 0);
	/* Entry 1 owned by process entry 1000 (the segment has 64). */
	v = ack_word(ACK_HELD, ack_owner(1000, 1), 3);
	poke(s, area + SHMQ_ACK_HDR_SIZE + 8, &v, 8);
	/* Entry 2 given back, with a length beyond msg_size. */
	v = ack_word(ACK_READY, 0, 1);
	poke(s, area + SHMQ_ACK_HDR_SIZE + 16, &v, 8);
	u = 5000;
	poke(s, area + SHMQ_ACK_HDR_SIZE + shmq__ack_states_bytes(8) +
	     2ull * shmq__ack_entry_size(32) + offsetof(struct ack_ent, len),
	     &u, 4);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "2 error(s) found");
	HAS(&r, "unacknowledged entry 1 (state 0x");
	HAS(&r, "owned by a process entry that cannot exist");
	HAS(&r, "unacknowledged entry 2 (state 0x");
	HAS(&r, "holds a message longer than msg_size");
	/*
	 * The queue works around them: the forged READY entry goes to the
	 * lane clamped to msg_size, the forged owner's (dead) to the lane.
	 */
	assert_int_equal(shmq_open(fix->seg, "a", &q), 0);
	assert_int_equal(shmq_seg_recover(fix->seg) >= 0, 1);
	while (shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 0) >= 0)
		assert_int_equal(shmq_ack(q, tag), 0);
	shmq_close(q);
	/* A bad header: check says what it expected. */
	u = 9;
	poke(s, area + offsetof(struct ack_hdr, cap), &u, 4);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "1 error(s) found");
	HAS(&r, "unacknowledged area: header says magic");
}

static void test_spsc_check(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct dir_entry e;
	struct run r;
	uint64_t v;
	uint32_t u;

	run(&r, "-s", s, "create", "sc", "--spsc", "--capacity", "8",
	    "--msg-size", "32", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "send", "sc", "a", "bb", NULL);
	EXPECT(&r, 0, NULL);
	e = peek_dir(s, 0);
	/* The length of position 1 (low half of its entry): over 32. */
	u = 1000;
	poke(s, e.off + SHMQ_RING_HDR_SIZE + 8, &u, 4);
	/* The sending side "held" by process entry 65534 of 64. */
	v = 0xffff;
	poke(s, e.off + offsetof(struct ring_hdr, spsc_owner), &v, 8);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "2 error(s) found");
	HAS(&r, "error: queue (queue sc): 1 waiting messages longer than "
	    "msg_size 32 (e.g. 1000 bytes)");
	HAS(&r, "error: queue (queue sc): sending side held by process "
	    "entry 65534, which cannot exist");
	/* peek clamps the length it cannot trust. */
	run(&r, "-s", s, "peek", "sc", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "#1 len=32: bb");
	/* Positions further apart than the capacity. */
	v = 100;
	poke(s, e.off + offsetof(struct ring_hdr, prod_pos), &v, 8);
	run(&r, "-s", s, "--json", "check", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.out, "d['errors'] == 2 and any('more than capacity 8 apart' "
	     "in p['what'] for p in d['problems'])");
	/* peek trusts the entries, not prod_pos: the two are still there. */
	run(&r, "-s", s, "peek", "sc", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "2 message(s) shown");
	/* So does stat: the depth is what the entries say is waiting. */
	run(&r, "-s", s, "--json", "stat", "sc", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['queue']['depth'] == 2 and "
	     "d['queue']['sender_pid'] == 0");
}

/* ---- what a new user meets (issue 10 item 7, hardening) ----------------------------- */

/* --mode: nothing outside 0666, named; nothing created. */
static void test_init_mode_bits(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	char path[128];
	struct stat st;
	struct run r;

	run(&r, "-s", s, "init", "--mode", "4777", NULL);
	EXPECT(&r, 2, "--mode 4777: bits 4111 not allowed (setuid/setgid/"
	       "sticky/execute); a segment's mode is within 0666");
	run(&r, "-s", s, "init", "--mode", "0755", NULL);
	EXPECT(&r, 2, "bits 0111 not allowed");
	run(&r, "-s", s, "init", "--mode", "1666", NULL);
	EXPECT(&r, 2, "bits 1000 not allowed");
	run(&r, "-s", s, "init", "--mode", "0", NULL);
	EXPECT(&r, 2, "0001..0666");
	run(&r, "--json", "-s", s, "init", "--mode", "2660", NULL);
	EXPECT(&r, 2, NULL);
	JSON(r.err, "d['error'] == 'usage' and 'bits 2000' in d['message']");
	assert_int_equal(access(t_shm_path(path, sizeof(path), s), F_OK), -1);
	run(&r, "-s", s, "init", "--size", "1M", "--mode", "0666", NULL);
	EXPECT(&r, 0, NULL);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
}

/* A full file system: the size and what is free, not "queue directory". */
static void test_init_no_space(void **state)
{
	struct t_fix *fix = *state;
	struct statvfs sv;
	char size[32], path[128];
	struct run r;

	assert_int_equal(statvfs("/dev/shm", &sv), 0);
	/*
	 * More than the whole file system, so that tmpfs refuses it before
	 * reserving anything (shmem_fallocate() checks the size first).
	 */
	snprintf(size, sizeof(size), "%lluK",
		 (unsigned long long)sv.f_blocks * sv.f_frsize / 1024 +
		 (1ull << 20));
	run(&r, "-s", fix->name, "init", "--size", size, NULL);
	EXPECT(&r, 1, "no space on /dev/shm for a segment of ");
	HAS_ERR(&r, " free of ");
	assert_null(strstr(r.err, "queue directory"));
	run(&r, "--json", "-s", fix->name, "init", "--size", size, NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOSPC' and d['command'] == 'init' and "
	     "'/dev/shm' in d['message'] and 'free of' in d['message']");
	assert_int_equal(access(t_shm_path(path, sizeof(path), fix->name),
				F_OK), -1);
	/* A file path: its directory's file system (here /dev/shm too). */
	t_shm_path(path, sizeof(path), t_segname());
	run(&r, "-s", path, "init", "--size", size, NULL);
	EXPECT(&r, 1, "no space on /dev/shm for a segment of ");
	assert_int_equal(access(path, F_OK), -1);
}

/* --json on every command: a document on stdout, errors on stderr. */
static void test_json_everywhere(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	char expr[256];
	struct run r;
	const char *p;
	int lines = 0;

	run(&r, "--json", "-s", s, "init", "--size", "1M", "--max-queues",
	    "2", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['created'] is True and d['size'] == 1048576 and "
	     "d['max_queues'] == 2 and d['mode'] == '0600' and "
	     "d['path'].startswith('/dev/shm/shmq.')");
	run(&r, "--json", "-s", s, "create", "j", "--capacity", "2",
	    "--msg-size", "8", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['queue'] == 'j' and d['capacity'] == 2 and "
	     "d['msg_size'] == 8 and d['type'] == 'mpmc'");
	run(&r, "-s", s, "send", "j", "m1", "--json", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['sent'] == 1 and d['queue'] == 'j'");
	assert_string_equal(r.err, "");
	run(&r, "--json", "-s", s, "send", "j", "m2", "m3", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'EAGAIN' and d['sent'] == 1 and "
	     "\"queue 'j' is full\" in d['message'] and d['queue'] == 'j'");
	assert_string_equal(r.out, "");
	run(&r, "--json", "-s", s, "recv", "j", "-n", "5", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['received'] == 2 and [m['data'] for m in "
	     "d['messages']] == ['m1', 'm2'] and d['messages'][0]['len'] == 2");
	run(&r, "--json", "-s", s, "recv", "j", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'EAGAIN' and \"queue 'j' is empty\" in "
	     "d['message']");
	assert_string_equal(r.out, "");
	run(&r, "--json", "-s", s, "watch", "j", "--interval", "10ms",
	    "--count", "2", NULL);
	EXPECT(&r, 0, NULL);
	for (p = r.out; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, 2);
	*strchr(r.out, '\n') = 0;
	JSON(r.out, "d['queues'][0]['name'] == 'j' and "
	     "d['queues'][0]['depth'] == 0 and 'in_per_s' in d['queues'][0] "
	     "and 'time' in d");
	run(&r, "--json", "-s", s, "purge", "j", NULL);
	JSON(r.out, "d['purged'] == 0");
	run(&r, "--json", "-s", s, "create", "k", NULL);
	run(&r, "--json", "-s", s, "create", "l", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOSPC' and 'directory is full' in "
	     "d['message']");
	/* Exchanges take directory entries too. */
	run(&r, "--json", "-s", s, "exchange", "create", "ex", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOSPC' and d['exchange'] == 'ex' and "
	     "\"exchange 'ex': no space: the queue directory is full: 2 of 2\" "
	     "in d['message']");
	run(&r, "--json", "-s", s, "delete", "j", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['deleted'] is True and d['queue'] == 'j'");
	/* Errors: one object on stderr, whatever the command. */
	run(&r, "--json", "-s", s, "stat", "nope", NULL);
	EXPECT(&r, 1, NULL);
	snprintf(expr, sizeof(expr), "d['error'] == 'ENOENT' and "
		 "d['segment'] == '%s' and d['queue'] == 'nope' and "
		 "d['command'] == 'stat' and d['message'] == "
		 "'no such segment or queue'", s);
	JSON(r.err, expr);
	run(&r, "--json", "-s", s, "list", "--frob", NULL);
	EXPECT(&r, 2, NULL);
	JSON(r.err, "d['error'] == 'usage' and 'unknown option' in "
	     "d['message'] and d['command'] == 'list' and 'segment' not in d");
	run(&r, "--json", "-s", s, "send", "nope", "m", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOENT' and d['sent'] == 0");
	run(&r, "frob", "--json", NULL);
	EXPECT(&r, 2, NULL);
	JSON(r.err, "d['error'] == 'usage' and d['command'] is None");
	run(&r, "--json", "-s", s, "destroy", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['destroyed'] is True and d['attached'] == 0");
	run(&r, "--json", "-s", s, "info", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOENT' and d['queue'] is None");
}

/* peek/recv --json: UTF-8 as a string, anything else as base64. */
static void test_json_payloads(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	static const char utf8[] = "h\xc3\xa9llo \xe2\x9c\x93";
	static const char bin[] = { 'a', (char)0xff, 0, 'b' };
	static const char overlong[] = { (char)0xc0, (char)0xaf };
	shmq *q;
	struct run r;

	make_queue(fix->seg, "u", 8, 32);
	t_assert_err(shmq_open(fix->seg, "u", &q), 0);
	t_assert_err(shmq_send(q, utf8, strlen(utf8), 0), 0);
	t_assert_err(shmq_send(q, bin, sizeof(bin), 0), 0);
	t_assert_err(shmq_send(q, overlong, sizeof(overlong), 0), 0);
	t_assert_err(shmq_send(q, "tab\there \"q\"", 12, 0), 0);
	shmq_close(q);
	run(&r, "--json", "-s", s, "peek", "u", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['messages'][0]['data'] == 'h\\u00e9llo \\u2713' and "
	     "'data_base64' not in d['messages'][0] and "
	     "d['messages'][1]['data_base64'] == 'Yf8AYg==' and "
	     "'data' not in d['messages'][1] and "
	     "d['messages'][2]['data_base64'] == 'wK8=' and "
	     "d['messages'][3]['data'] == 'tab\\there \"q\"'");
	/* The bytes themselves, not \u00c3\u00a9 (mojibake). */
	HAS(&r, "h\xc3\xa9llo");
	run(&r, "--json", "-s", s, "recv", "u", "-n", "2", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['messages'][0]['data'] == 'h\\u00e9llo \\u2713' and "
	     "d['messages'][1]['data_base64'] == 'Yf8AYg==' and "
	     "d['messages'][1]['len'] == 4");
}

/* '.' and '..' are not names, for queues or segments. */
static void test_dot_names(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	static const char *qcmds[] = { "create", "delete", "purge", "stat",
		"recv", "peek", "watch" };
	char path[128];
	struct run r;
	unsigned i;

	for (i = 0; i < sizeof(qcmds) / sizeof(qcmds[0]); i++) {
		run(&r, "-s", s, qcmds[i], i % 2 ? "." : "..", NULL);
		/* watch: "not queue or exchange names". */
		EXPECT(&r, 1, "invalid argument; '.' and '..' are not queue ");
	}
	run(&r, "-s", s, "send", "..", "m", NULL);
	EXPECT(&r, 1, "queue '..': invalid argument; '.' and '..' are not "
	       "queue names");
	run(&r, "-s", s, "watch", "ok", "..", NULL);
	EXPECT(&r, 1, "queue '..'");
	run(&r, "-s", "..", "init", "--size", "1M", NULL);
	EXPECT(&r, 1, "segment '..': invalid argument; '.' and '..' are not "
	       "segment names");
	assert_int_equal(access("/dev/shm/shmq..", F_OK), -1);
	run(&r, "-s", ".", "info", NULL);
	EXPECT(&r, 1, "are not segment names");
	run(&r, "--json", "-s", s, "create", ".", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'EINVAL' and d['queue'] == '.'");
	run(&r, "--json", "-s", s, "list", NULL);
	JSON(r.out, "d['queues'] == []");
	(void)path;
}

/* info: the file's owner and group now, beside the creator. */
static void test_info_owner(void **state)
{
	struct t_fix *fix = *state;
	char path[128], want[160], u[64], g[64], expr[512];
	struct passwd *pw;
	struct group *gr;
	uid_t uid = geteuid() == 0 ? 65534 : getuid();
	gid_t gid = geteuid() == 0 ? 65534 : getgid();
	struct run r;

	t_shm_path(path, sizeof(path), fix->name);
	assert_int_equal(chown(path, uid, gid), 0);
	pw = getpwuid(uid);
	gr = getgrgid(gid);
	snprintf(u, sizeof(u), "%s", pw ? pw->pw_name : "");
	snprintf(g, sizeof(g), "%s", gr ? gr->gr_name : "");
	if (!pw)
		snprintf(u, sizeof(u), "%u", (unsigned)uid);
	if (!gr)
		snprintf(g, sizeof(g), "%u", (unsigned)gid);
	run(&r, "-s", fix->name, "info", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(want, sizeof(want), "owner %s (uid %u), group %s (gid %u)", u,
		 (unsigned)uid, g, (unsigned)gid);
	HAS(&r, want);
	pw = getpwuid(getuid());
	snprintf(want, sizeof(want), " by %s (uid %u)\n", pw ? pw->pw_name :
		 "?", (unsigned)getuid());
	HAS(&r, want);
	run(&r, "--json", "-s", fix->name, "info", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr), "d['uid'] == %u and d['user'] == '%s' "
		 "and d['gid'] == %u and d['group'] == '%s' and "
		 "d['creator_uid'] == %u and d['creator_user'] != ''",
		 (unsigned)uid, u, (unsigned)gid, g, (unsigned)getuid());
	JSON(r.out, expr);
}

/*
 * A segment whose file belongs to another user (not root): commands that
 * attach refuse it and say how to opt in; --trust attaches; the read-only
 * ones look at it anyway.
 */
static void test_trust_other_owner(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	struct run r;

	if (geteuid() != 0) {
		print_message("skipped: needs root (a file of another user)\n");
		skip();
	}
	t_assert_err(shmq_create(fix->seg, "q", NULL), 0);
	t_shm_path(path, sizeof(path), fix->name);
	assert_int_equal(chown(path, 65534, 65534), 0);
	run(&r, "-s", fix->name, "send", "q", "hi", NULL);
	EXPECT(&r, 1, "neither you nor root; --trust to attach anyway");
	run(&r, "-s", fix->name, "--trust", "send", "q", "hi", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "--trust", "-s", fix->name, "recv", "q", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "hi");
	run(&r, "-s", fix->name, "list", NULL);
	EXPECT(&r, 0, NULL);
}

/* A symbolic link, a directory, a FIFO: said, never followed or opened. */
static void test_file_kinds(void **state)
{
	struct t_fix *fix = *state;
	const char *lnk = t_segname(), *dir = t_tmpdir();
	char lpath[128], fifo[256], foreign[256];
	struct run r;
	int fd;

	t_shm_path(lpath, sizeof(lpath), lnk);
	assert_int_equal(symlink(t_shm_path(fifo, sizeof(fifo), fix->name),
				 lpath), 0);
	run(&r, "-s", lnk, "info", NULL);
	EXPECT(&r, 1, "is a symbolic link (not followed)");
	assert_non_null(strstr(r.err, lpath));
	run(&r, "-s", lnk, "check", NULL);
	EXPECT(&r, 1, "is a symbolic link (not followed); not checked");
	run(&r, "-s", lnk, "recover", NULL);
	EXPECT(&r, 1, "is a symbolic link (not followed)");
	run(&r, "-s", lnk, "destroy", NULL);
	EXPECT(&r, 1, "is a symbolic link (not followed); not removed "
	       "(--force unlinks it)");
	run(&r, "-s", lnk, "init", "--size", "1M", NULL);
	EXPECT(&r, 1, "is a symbolic link (not followed); nothing created");
	run(&r, "--json", "-s", lnk, "list", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ELOOP' and 'symbolic link' in "
	     "d['message']");

	/* A directory as a file-path segment. */
	run(&r, "-s", dir, "info", NULL);
	EXPECT(&r, 1, "is a directory");
	run(&r, "-s", dir, "check", NULL);
	EXPECT(&r, 1, "is a directory; not checked");
	run(&r, "--json", "-s", dir, "stat", "q", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'EISDIR'");

	/* A FIFO: check used to block forever in open(). */
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	run(&r, "-s", fifo, "check", NULL);
	EXPECT(&r, 1, "is a FIFO, not a regular file; not checked");
	run(&r, "-s", fifo, "info", NULL);
	EXPECT(&r, 1, "is a FIFO, not a regular file");

	/* A foreign regular file is "corrupt or foreign", as before. */
	snprintf(foreign, sizeof(foreign), "%s/foreign", dir);
	fd = open(foreign, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	run(&r, "-s", foreign, "info", NULL);
	EXPECT(&r, 1, "segment corrupt, foreign, or of another layout "
	       "version; 'mqctl -s");
}

/* segments: /dev/shm/shmq.* and the files named, validated or not. */
static void test_segments(void **state)
{
	struct t_fix *fix = *state;
	const char *dir = t_tmpdir(), *lnk = t_segname(), *bad = t_segname();
	char fseg[256], foreign[256], fifo[256], lpath[128], spath[128];
	char want[512];
	char expr[1024];
	struct run r;
	int fd;

	snprintf(fseg, sizeof(fseg), "%s/seg", dir);
	snprintf(foreign, sizeof(foreign), "%s/foreign", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	run(&r, "-s", fseg, "init", "--size", "1M", "--mode", "0640", NULL);
	EXPECT(&r, 0, NULL);
	fd = open(foreign, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a segment", 13), 13);
	close(fd);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	t_shm_path(lpath, sizeof(lpath), lnk);
	assert_int_equal(symlink("/etc/passwd", lpath), 0);
	make_queue(fix->seg, "sq", 8, 32);
	/* A foreign object in /dev/shm: the hint names it as -s takes it. */
	fd = open(t_shm_path(spath, sizeof(spath), bad), O_CREAT | O_WRONLY,
		  0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);

	run(&r, "segments", fseg, foreign, fifo, NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "NAME");
	snprintf(want, sizeof(want), "/dev/shm/shmq.%s ", fix->name);
	ROW(&r, want, " ok\n");
	snprintf(want, sizeof(want), "%s ", fseg);
	ROW(&r, want, " 0640 ");
	ROW(&r, want, " ok\n");
	snprintf(want, sizeof(want), "%s ", foreign);
	ROW(&r, want, " not a shmq segment");
	snprintf(want, sizeof(want), "%s ", fifo);
	ROW(&r, want, " is a FIFO, not a regular file");
	snprintf(want, sizeof(want), "%s ", lpath);
	ROW(&r, want, " is a symbolic link (not followed)");
	snprintf(want, sizeof(want), "%s ", spath);
	snprintf(expr, sizeof(expr), " not a shmq segment, corrupt, or "
		 "another layout version ('mqctl -s %s check')", bad);
	ROW(&r, want, expr);
	run(&r, "--json", "segments", fseg, foreign, NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr),
		 "[x for x in d['segments'] if x['name'] == '%s' and "
		 "x['valid'] and x['queues'] == 1 and x['uid'] == %u and "
		 "x['mode'] == '0600' and x['size'] == %zu and x['error'] is "
		 "None] and "
		 "[x for x in d['segments'] if x['path'] == '%s' and "
		 "x['valid'] and x['mode'] == '0640'] and "
		 "[x for x in d['segments'] if x['path'] == '%s' and not "
		 "x['valid'] and x['error'] == 'EPROTO'] and "
		 "[x for x in d['segments'] if x['name'] == '%s' and "
		 "x['error'] == 'ELOOP']", fix->name, (unsigned)geteuid(),
		 T_SEG_SIZE, fseg, foreign, lnk);
	JSON(r.out, expr);
	/* A path without a '/' is a file here, not a segment name. */
	run(&r, "segments", "no-such-file", NULL);
	EXPECT(&r, 0, NULL);
	ROW(&r, "./no-such-file ", " No such file or directory");
	run(&r, "-s", fseg, "destroy", NULL);
	EXPECT(&r, 0, NULL);
}

/* ---- exchanges and bindings ---------------------------------------------------------- */

/* The directory index of the live entry @name (queue or exchange). */
static uint32_t dir_index(const char *seg, const char *name)
{
	uint32_t i;

	for (i = 0; i < 256; i++) {
		struct dir_entry e = peek_dir(seg, i);

		if (e.state == DIR_LIVE && strcmp(e.name, name) == 0)
			return i;
	}
	fail_msg("no directory entry named %s", name);
	return 0;
}

static void test_exchange_create_delete(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct run r;

	make_queue(fix->seg, "q", 8, 64);
	run(&r, "-s", s, "exchange", "create", "orders", "--type", "topic",
	    "--alternate", "lost", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "created exchange orders: type topic, "
			    "alternate lost\n");
	run(&r, "-s", s, "exchange", "create", "plain", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "type direct, alternate none");
	run(&r, "--json", "-s", s, "exchange", "create", "fan", "--type",
	    "fanout", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['exchange'] == 'fan' and d['created'] is True and "
	     "d['type'] == 'fanout' and d['alternate'] is None");

	/* Usage errors: exit 2, nothing created. */
	run(&r, "-s", s, "exchange", "create", "x1", "--type", "headers",
	    NULL);
	EXPECT(&r, 2, "--type 'headers': an exchange is direct, fanout or "
	       "topic");
	run(&r, "--json", "-s", s, "exchange", "create", "x1", "--type",
	    "bogus", NULL);
	EXPECT(&r, 2, NULL);
	JSON(r.err, "d['error'] == 'usage' and 'direct, fanout or topic' in "
	     "d['message'] and d['command'] == 'exchange create'");
	run(&r, "-s", s, "exchange", "create", "x1", "--alternate", "a/b",
	    NULL);
	EXPECT(&r, 2, "--alternate 'a/b': a name is 1-63 bytes");
	run(&r, "-s", s, "exchange", "create", "x1", "--type", NULL);
	EXPECT(&r, 2, "needs a value");
	run(&r, "-s", s, "exchange", "create", "..", NULL);
	EXPECT(&r, 1, "'.' and '..' are not exchange names");
	/* Failures: exit 1, the reason said. */
	run(&r, "-s", s, "exchange", "create", "orders", NULL);
	EXPECT(&r, 1, "exchange create: segment '");
	HAS_ERR(&r, "exchange 'orders': segment or queue already exists; an "
		"exchange of that name exists");
	run(&r, "-s", s, "exchange", "create", "q", NULL);
	EXPECT(&r, 1, "a queue of that name exists");
	run(&r, "-s", s, "create", "orders", NULL);
	EXPECT(&r, 1, "already exists");
	run(&r, "-s", s, "exchange", "create", "bad/name", NULL);
	EXPECT(&r, 1, "an exchange name is 1-63 bytes of [A-Za-z0-9._-]");
	run(&r, "--json", "-s", s, "exchange", "create", "q", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'EEXIST' and d['exchange'] == 'q' and "
	     "d['queue'] is None and d['command'] == 'exchange create'");

	/* delete */
	run(&r, "-s", s, "exchange", "delete", "plain", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "deleted exchange plain and its 0 "
			    "binding(s)\n");
	run(&r, "-s", s, "exchange", "delete", "plain", NULL);
	EXPECT(&r, 1, "exchange 'plain': no such exchange");
	run(&r, "-s", s, "exchange", "delete", "q", NULL);
	EXPECT(&r, 1, "exchange 'q': no such exchange (a queue has that "
	       "name)");
	/* A queue's command does not delete an exchange either. */
	run(&r, "-s", s, "delete", "fan", NULL);
	EXPECT(&r, 1, "queue 'fan': no such segment or queue; 'fan' is an "
	       "exchange ('mqctl exchange delete')");
	t_assert_err(shmq_bind(fix->seg, "fan", "q", ""), 0);
	run(&r, "--json", "-s", s, "exchange", "delete", "fan", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['deleted'] is True and d['exchange'] == 'fan' and "
	     "d['bindings'] == 1 and d['handles'] == 0");
	run(&r, "--json", "-s", s, "exchange", "delete", "fan", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOENT' and d['exchange'] == 'fan' and "
	     "'no such exchange' in d['message']");
	/* The library sees what mqctl did. */
	t_assert_err(shmq_exchange_create(fix->seg, "fan", NULL), 0);
	t_assert_err(shmq_exchange_create(fix->seg, "orders", NULL), -EEXIST);
}

static void test_exchanges_listing(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_xattr ta = { SHMQ_TOPIC, 0, "alt" };
	shmq_exchange *x;
	struct run r;
	char expr[512];

	make_queue(fix->seg, "a", 8, 64);
	make_queue(fix->seg, "b", 8, 64);
	t_assert_err(shmq_exchange_create(fix->seg, "t", &ta), 0);
	t_assert_err(shmq_exchange_create(fix->seg, "alt", NULL), 0);
	t_assert_err(shmq_bind(fix->seg, "t", "a", "x.*"), 0);
	t_assert_err(shmq_bind(fix->seg, "t", "b", "#"), 0);
	t_assert_err(shmq_exchange_open(fix->seg, "t", &x), 0);
	t_assert_err(shmq_publish(x, "x.y", "m", 1, 0), 2);
	t_assert_err(shmq_publish(x, "z", "m", 1, 0), 1);
	shmq_exchange_close(x);

	run(&r, "-s", s, "exchanges", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "EXCHANGE");
	HAS(&r, "UNROUTABLE");
	ROW(&r, "t ", " topic         2            2            3          "
	    "0          0 alt ");
	ROW(&r, "alt ", " direct        0            0            0          "
	    "0          0 - ");
	run(&r, "--json", "-s", s, "exchanges", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr),
		 "d['segment'] == '%s' and [x['name'] for x in "
		 "d['exchanges']] == ['t', 'alt'] and "
		 "d['exchanges'][0]['type'] == 'topic' and "
		 "d['exchanges'][0]['bindings'] == 2 and "
		 "d['exchanges'][0]['published'] == 2 and "
		 "d['exchanges'][0]['routed'] == 3 and "
		 "d['exchanges'][0]['unroutable'] == 0 and "
		 "d['exchanges'][0]['dropped'] == 0 and "
		 "d['exchanges'][0]['alternate'] == 'alt' and "
		 "d['exchanges'][1]['alternate'] is None and "
		 "d['exchanges'][0]['state'] == 'live'", s);
	JSON(r.out, expr);
	run(&r, "-s", s, "exchanges", "--prometheus", NULL);
	EXPECT(&r, 0, NULL);
	PROM(r.out);
	assert_int_equal(prom_value_l(r.out, "shmq_exchange_published_total",
				      "exchange", "t"), 2);
	assert_int_equal(prom_value_l(r.out, "shmq_exchange_routed_total",
				      "exchange", "t"), 3);
	assert_int_equal(prom_value_l(r.out, "shmq_exchange_bindings",
				      "exchange", "t"), 2);
	assert_int_equal(prom_value_l(r.out, "shmq_exchange_unroutable_total",
				      "exchange", "alt"), 0);
	assert_int_equal(prom_value_l(r.out, "shmq_exchange_dropped_total",
				      "exchange", "t"), 0);
	HAS(&r, "# TYPE shmq_exchange_routed_total counter");
	HAS(&r, "type=\"topic\"");
	/* Exchanges are neither queues in list nor counted as queues. */
	run(&r, "--json", "-s", s, "list", NULL);
	JSON(r.out, "[q['name'] for q in d['queues']] == ['a', 'b']");
	run(&r, "--json", "-s", s, "info", NULL);
	JSON(r.out, "d['queues'] == 2 and d['exchanges'] == 2");
	run(&r, "-s", s, "info", NULL);
	HAS(&r, "exchanges:  2; with the queues, 4 of ");
	run(&r, "-s", s, "exchanges", "extra", NULL);
	EXPECT(&r, 2, "unexpected operand 'extra'");
}

static void test_bind_unbind(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_attr sp = { .capacity = 8, .msg_size = 64,
				.flags = SHMQ_SPSC };
	struct shmq_binding_info b[4];
	char longkey[300];
	struct run r;

	make_queue(fix->seg, "q1", 8, 64);
	make_queue(fix->seg, "q2", 8, 64);
	t_assert_err(shmq_create(fix->seg, "sp", &sp), 0);
	t_assert_err(shmq_exchange_create(fix->seg, "x", NULL), 0);

	run(&r, "-s", s, "bind", "x", "q1", "red", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "bound queue q1 to exchange x with key "
			    "'red'\n");
	/* Again: no error (idempotent). */
	run(&r, "-s", s, "bind", "x", "q1", "red", NULL);
	EXPECT(&r, 0, NULL);
	/* KEY defaults to the empty key. */
	run(&r, "-s", s, "bind", "x", "q2", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "bound queue q2 to exchange x with key "
			    "\"\"\n");
	run(&r, "--json", "-s", s, "bind", "x", "q2", "a\tb", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['bound'] is True and d['exchange'] == 'x' and "
	     "d['queue'] == 'q2' and d['key'] == 'a\\tb'");
	/* The library sees them. */
	assert_int_equal(shmq_binding_list(fix->seg, "x", b, 4), 3);
	assert_string_equal(b[0].queue, "q1");
	assert_string_equal(b[0].key, "red");
	assert_string_equal(b[1].key, "");

	run(&r, "-s", s, "bindings", NULL);
	EXPECT(&r, 0, NULL);
	ROW(&r, "EXCHANGE", "QUEUE");
	ROW(&r, "x ", " q1                   red\n");
	ROW(&r, "x ", " q2                   \"\"\n");
	ROW(&r, "x ", " q2                   a\\tb\n");
	run(&r, "--json", "-s", s, "bindings", "x", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['exchange'] == 'x' and d['bindings'] == ["
	     "{'exchange': 'x', 'queue': 'q1', 'key': 'red'}, "
	     "{'exchange': 'x', 'queue': 'q2', 'key': ''}, "
	     "{'exchange': 'x', 'queue': 'q2', 'key': 'a\\tb'}]");
	run(&r, "--json", "-s", s, "bindings", NULL);
	JSON(r.out, "d['exchange'] is None and len(d['bindings']) == 3");

	/* Usage errors. */
	memset(longkey, 'k', 256);
	longkey[256] = 0;
	run(&r, "-s", s, "bind", "x", "q1", longkey, NULL);
	EXPECT(&r, 2, "KEY is 256 bytes; a binding key is 0-255 bytes");
	run(&r, "-s", s, "bind", "..", "q1", NULL);
	EXPECT(&r, 1, "'.' and '..' are not exchange names");
	run(&r, "-s", s, "bind", "x", ".", NULL);
	EXPECT(&r, 1, "'.' and '..' are not queue names");
	/* Failures, each saying which name is wrong. */
	run(&r, "-s", s, "bind", "nox", "q1", NULL);
	EXPECT(&r, 1, "exchange 'nox': no such exchange");
	run(&r, "-s", s, "bind", "q1", "q2", NULL);
	EXPECT(&r, 1, "exchange 'q1': no such exchange (a queue has that "
	       "name)");
	run(&r, "-s", s, "bind", "x", "noq", "k", NULL);
	EXPECT(&r, 1, "queue 'noq': no such queue");
	run(&r, "-s", s, "bind", "x", "x", "k", NULL);
	EXPECT(&r, 1, "queue 'x': no such queue (an exchange has that name)");
	run(&r, "-s", s, "bind", "x", "sp", NULL);
	EXPECT(&r, 1, "exchange 'x': queue 'sp': invalid argument; an SPSC "
	       "queue cannot be bound");
	run(&r, "--json", "-s", s, "bind", "x", "noq", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'ENOENT' and d['exchange'] == 'x' and "
	     "d['queue'] == 'noq' and d['command'] == 'bind'");
	run(&r, "-s", s, "bindings", "nox", NULL);
	EXPECT(&r, 1, "exchange 'nox': no such exchange");

	/* unbind */
	run(&r, "-s", s, "unbind", "x", "q1", "red", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "unbound queue q1 from exchange x with "
			    "key 'red'\n");
	run(&r, "-s", s, "unbind", "x", "q1", "red", NULL);
	EXPECT(&r, 1, "no binding of queue 'q1' to exchange 'x' with key "
	       "'red' ('mqctl bindings x' lists them)");
	run(&r, "-s", s, "unbind", "x", "q1", NULL);
	EXPECT(&r, 1, "with key \"\"");
	run(&r, "--json", "-s", s, "unbind", "x", "q2", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['unbound'] is True and d['key'] == ''");
	run(&r, "-s", s, "unbind", "nox", "q2", NULL);
	EXPECT(&r, 1, "exchange 'nox': no such exchange");
	run(&r, "-s", s, "unbind", "x", "noq", NULL);
	EXPECT(&r, 1, "queue 'noq': no such queue");
	assert_int_equal(shmq_binding_list(fix->seg, "x", b, 4), 1);
	assert_string_equal(b[0].key, "a\tb");

	/*
	 * A queue deleted: its binding record stays in the table, ignored,
	 * and check finds nothing wrong with it.  (Whether 'bindings' still
	 * lists it is the library's business: shmq_binding_list() of 0.4.0
	 * can, through xbind_queue() reading a FREE entry's stale copy.)
	 */
	run(&r, "-s", s, "delete", "q2", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "consistent");
}

static void test_publish(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_xattr xa = { SHMQ_DIRECT, 0, "fallback" };
	char file[256], longkey[300];
	struct run r;
	int fd;

	make_queue(fix->seg, "a", 4, 16);
	make_queue(fix->seg, "b", 8, 64);
	make_queue(fix->seg, "c", 8, 64);
	t_assert_err(shmq_exchange_create(fix->seg, "d", &xa), 0);
	t_assert_err(shmq_bind(fix->seg, "d", "a", "k"), 0);
	t_assert_err(shmq_bind(fix->seg, "d", "b", "k"), 0);
	t_assert_err(shmq_bind(fix->seg, "d", "b", "only-b"), 0);

	/* One message per operand; how many queues each reached. */
	run(&r, "-s", s, "publish", "d", "k", "m1", "m2", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "message 1: 2 queue(s)\n"
			    "message 2: 2 queue(s)\n");
	HAS_ERR(&r, "published 2 message(s) through d: 4 deliveries");
	/* Nothing matches, and the alternate does not exist: unroutable. */
	run(&r, "-s", s, "publish", "d", "zzz", "lost", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "message 1: 0 queue(s) (unroutable: no "
			    "binding matched and no alternate exchange took "
			    "it)\n");
	/* Now the alternate exists and takes it. */
	t_assert_err(shmq_exchange_create(fix->seg, "fallback", &(struct
		     shmq_xattr){ SHMQ_FANOUT, 0, NULL }), 0);
	t_assert_err(shmq_bind(fix->seg, "fallback", "c", ""), 0);
	/* One message per line of stdin. */
	run_in(&r, "l1\nl2\n", 6, "-s", s, "publish", "d", "zzz", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "message 1: 1 queue(s)\n"
			    "message 2: 1 queue(s)\n");
	run(&r, "--json", "-s", s, "publish", "d", "only-b", "x", "y", "z",
	    NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['exchange'] == 'd' and d['key'] == 'only-b' and "
	     "d['published'] == 3 and d['deliveries'] == 3 and "
	     "d['queues'] == [1, 1, 1]");
	assert_string_equal(r.err, "");
	/* --file: its bytes as one message. */
	snprintf(file, sizeof(file), "%s/m", t_tmpdir());
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "F\n", 2), 2);
	close(fd);
	run(&r, "-s", s, "publish", "d", "only-b", "--file", file, NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "message 1: 1 queue(s)\n");

	/* What arrived where, with its key. */
	run(&r, "-s", s, "recv", "a", "-n", "9", "--keys", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "k\tm1\nk\tm2\n");
	run(&r, "-s", s, "recv", "c", "-n", "9", "--keys", NULL);
	assert_string_equal(r.out, "zzz\tl1\nzzz\tl2\n");
	run(&r, "--json", "-s", s, "recv", "b", "-n", "9", "--keys", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "[(m['key'], m['data']) for m in d['messages']] == "
	     "[('k', 'm1'), ('k', 'm2'), ('only-b', 'x'), ('only-b', 'y'), "
	     "('only-b', 'z'), ('only-b', 'F\\n')] and "
	     "[m['seq'] for m in d['messages']] == [0, 1, 2, 3, 4, 5] and "
	     "all(m['redelivered'] is False and m['deliveries'] == 1 "
	     "for m in d['messages'])");
	/* Without --keys, recv's JSON is as before. */
	send_str(fix->seg, "b", "plain");
	run(&r, "--json", "-s", s, "recv", "b", NULL);
	JSON(r.out, "'key' not in d['messages'][0]");
	/* A message sent, not published, has the empty key. */
	send_str(fix->seg, "b", "sent");
	run(&r, "-s", s, "recv", "b", "--keys", NULL);
	assert_string_equal(r.out, "\"\"\tsent\n");
	send_str(fix->seg, "b", "sent");
	run(&r, "-s", s, "recv", "b", "--keys", "--hex", NULL);
	assert_string_equal(r.out, "\"\"\t73656e74\n");

	/* a holds 4: the 5th publish to it fails, reaching no queue. */
	run(&r, "-s", s, "publish", "d", "k", "1", "2", "3", "4", "5", NULL);
	EXPECT(&r, 1, "exchange 'd': a matching queue is full: message 5 "
	       "published to no queue (4 published before it); --timeout "
	       "waits for room");
	assert_string_equal(r.out, "message 1: 2 queue(s)\n"
			    "message 2: 2 queue(s)\nmessage 3: 2 queue(s)\n"
			    "message 4: 2 queue(s)\n");
	run(&r, "--json", "-s", s, "publish", "d", "k", "6", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'EAGAIN' and d['exchange'] == 'd' and "
	     "d['published'] == 0 and d['command'] == 'publish'");
	run(&r, "-s", s, "publish", "d", "k", "6", "--timeout", "20ms", NULL);
	EXPECT(&r, 1, "timed out");
	/* All or nothing: b did not get the refused messages. */
	run(&r, "--json", "-s", s, "stat", "b", NULL);
	JSON(r.out, "d['queue']['depth'] == 4");
	/* Too long for a (msg_size 16) with its key. */
	run(&r, "-s", s, "publish", "d", "only-b",
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "4", NULL);
	EXPECT(&r, 1, "message larger than the queue's msg_size or the "
	       "buffer; message 1 published to no queue (0 published before it): with its key "
	       "(6 bytes) it does not fit");

	/* Usage errors and missing names. */
	run(&r, "-s", s, "publish", "d", "k", "m", "--file", file, NULL);
	EXPECT(&r, 2, "--file and MESSAGE operands exclude each other");
	run(&r, "-s", s, "publish", "d", "k", "--timeout", "soon", NULL);
	EXPECT(&r, 2, "--timeout 'soon' does not parse");
	memset(longkey, 'k', 256);
	longkey[256] = 0;
	run(&r, "-s", s, "publish", "d", longkey, "m", NULL);
	EXPECT(&r, 2, "KEY is 256 bytes; a routing key is 0-255 bytes");
	run(&r, "-s", s, "publish", "nox", "k", "m", NULL);
	EXPECT(&r, 1, "publish: segment '");
	HAS_ERR(&r, "exchange 'nox': no such exchange");
	run(&r, "-s", s, "publish", "a", "k", "m", NULL);
	EXPECT(&r, 1, "exchange 'a': no such exchange (a queue has that "
	       "name)");
	run(&r, "-s", s, "publish", "d", "k", "--file", "/nonexistent/f",
	    NULL);
	EXPECT(&r, 1, "--file /nonexistent/f: No such file or directory");
	run(&r, "-s", s, "publish", "d", "k", "--file", file, NULL);
	EXPECT(&r, 1, "a matching queue is full");

	/*
	 * The counters: 13 publishes (4 + 8 deliveries to a and b, 1 + 3
	 * to b, 2 through the alternate to c), one unroutable.
	 */
	run(&r, "--json", "-s", s, "exchanges", NULL);
	JSON(r.out, "d['exchanges'][0]['name'] == 'd' and "
	     "d['exchanges'][0]['published'] == 13 and "
	     "d['exchanges'][0]['unroutable'] == 1 and "
	     "d['exchanges'][0]['routed'] == 18");
}

static void test_overflow_autodelete(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_queue_info qi;
	struct run r;

	run(&r, "-s", s, "create", "dn", "--capacity", "2", "--overflow",
	    "drop-newest", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "created queue dn: capacity 2, msg_size "
			    "256, type mpmc, overflow drop-newest\n");
	run(&r, "--json", "-s", s, "create", "do", "--capacity", "2",
	    "--overflow", "drop-oldest", "--auto-delete", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "d['overflow'] == 'drop-oldest' and "
	     "d['auto_delete'] is True and d['type'] == 'mpmc'");
	run(&r, "-s", s, "create", "bl", "--overflow", "block", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "overflow block\n");
	t_assert_err(shmq_queue_stat(fix->seg, "dn", &qi), 0);
	assert_int_equal(qi.flags, SHMQ_DROP_NEWEST);
	t_assert_err(shmq_queue_stat(fix->seg, "do", &qi), 0);
	assert_int_equal(qi.flags, SHMQ_DROP_OLDEST | SHMQ_AUTODELETE);
	/* Usage errors. */
	run(&r, "-s", s, "create", "x", "--overflow", "discard", NULL);
	EXPECT(&r, 2, "--overflow 'discard': a policy is block, drop-newest "
	       "or drop-oldest");
	run(&r, "-s", s, "create", "x", "--overflow", "drop-oldest", "--spsc",
	    NULL);
	EXPECT(&r, 2, "--overflow drop-oldest is not for --spsc queues");
	run(&r, "--json", "-s", s, "create", "x", "--overflow", "", NULL);
	EXPECT(&r, 2, NULL);
	JSON(r.err, "d['error'] == 'usage' and d['command'] == 'create'");
	assert_int_equal(shmq_queue_stat(fix->seg, "x", &qi), -ENOENT);

	/* drop-newest: a full queue refuses at once, counted. */
	run(&r, "-s", s, "send", "dn", "1", "2", "3", "--timeout", "forever",
	    NULL);
	EXPECT(&r, 1, "queue 'dn' is full: message 3 not sent (2 sent "
	       "before it)");
	/* drop-oldest: never fails, evicts. */
	t_assert_err(shmq_create(fix->seg, "do2", &(struct shmq_attr){
		     .capacity = 2, .msg_size = 64,
		     .flags = SHMQ_DROP_OLDEST }), 0);
	run(&r, "-s", s, "send", "do2", "1", "2", "3", "4", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "list", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "OVERFLOW");
	HAS(&r, "DROPPED");
	HAS(&r, "AUTODEL");
	ROW(&r, "dn ", " drop-newest          1 no      live");
	ROW(&r, "do ", " drop-oldest          0 yes     live");
	ROW(&r, "do2 ", " drop-oldest          2 no      live");
	ROW(&r, "bl ", " block                0 no      live");
	run(&r, "--json", "-s", s, "list", NULL);
	JSON(r.out, "{q['name']: (q['overflow'], q['auto_delete'], "
	     "q['dropped']) for q in d['queues']} == {"
	     "'dn': ('drop-newest', False, 1), 'do': ('drop-oldest', True, 0), "
	     "'bl': ('block', False, 0), 'do2': ('drop-oldest', False, 2)}");
	run(&r, "-s", s, "stat", "do2", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "overflow:     drop-oldest (a full queue evicts its oldest "
	    "messages); 2 dropped\n");
	HAS(&r, "auto-delete:  no\n");
	run(&r, "-s", s, "stat", "do", NULL);
	HAS(&r, "auto-delete:  yes");
	run(&r, "-s", s, "stat", "bl", NULL);
	HAS(&r, "overflow:     block (senders wait for room");
	run(&r, "--json", "-s", s, "stat", "dn", NULL);
	JSON(r.out, "d['queue']['dropped'] == 1 and "
	     "d['queue']['overflow'] == 'drop-newest'");
	run(&r, "-s", s, "list", "--prometheus", NULL);
	EXPECT(&r, 0, NULL);
	PROM(r.out);
	assert_int_equal(prom_value(r.out, "shmq_queue_dropped_total", "do2"),
			 2);
	HAS(&r, "shmq_queue_info{segment=\"");
	HAS(&r, "queue=\"do\",state=\"live\",type=\"mpmc\","
	    "overflow=\"drop-oldest\",auto_delete=\"true\","
	    "dead_letter=\"\"} 1\n");
	/* The oldest went: 3 and 4 are left. */
	run(&r, "-s", s, "recv", "do2", "-n", "5", NULL);
	assert_string_equal(r.out, "3\n4\n");

	/* auto-delete: mqctl's handle was the last; mqctl says so. */
	run(&r, "-s", s, "send", "do", "gone", NULL);
	EXPECT(&r, 0, NULL);
	HAS_ERR(&r, "note: auto-delete queue do was deleted when mqctl "
		"closed it");
	assert_int_equal(shmq_queue_stat(fix->seg, "do", &qi), -ENOENT);
}

/* Garbage in a real binding table: check reports it, nothing crashes. */
static void test_check_exchange(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	unsigned char junk[256];
	struct dir_entry e, eq;
	uint64_t tab, v;
	uint32_t xi, qi, u;
	struct run r;
	unsigned i;

	make_queue(fix->seg, "q", 8, 64);
	t_assert_err(shmq_exchange_create(fix->seg, "x", &(struct shmq_xattr){
		     SHMQ_TOPIC, 0, "alt" }), 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "a.#"), 0);
	t_assert_err(shmq_bind(fix->seg, "x", "q", "*.b"), 0);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "consistent (0 note(s))");

	xi = dir_index(s, "x");
	qi = dir_index(s, "q");
	e = peek_dir(s, xi);
	eq = peek_dir(s, qi);
	assert_int_equal(e.kind, DIR_KIND_EXCHANGE);
	assert_int_not_equal(e.aux, 0);
	tab = DIR_AUX_OFF(e.aux);

	/* Garbage over the records: the first key length is absurd. */
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(0xa5 ^ (i * 37));
	poke(s, tab + 64, junk, sizeof(junk));
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "1 error(s) found");
	HAS(&r, "error: exchange (exchange x): binding table: record at byte "
	    "0: key length");
	run(&r, "--json", "-s", s, "check", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.out, "d['errors'] == 1 and d['consistent'] is False and "
	     "d['problems'][0]['area'] == 'exchange' and "
	     "d['problems'][0]['exchange'] == 'x' and "
	     "d['problems'][0]['queue'] is None and "
	     "'binding table' in d['problems'][0]['what']");
	/*
	 * The bindings listing refuses it and points at check.  (exchanges
	 * does not: shmq_exchange_list() of 0.4.0 counts the bindings it
	 * can walk and ignores the walk's -EPROTO.)
	 */
	run(&r, "-s", s, "bindings", "x", NULL);
	EXPECT(&r, 1, "segment corrupt, foreign, or of another layout "
	       "version; 'mqctl -s");
	run(&r, "-s", s, "bindings", NULL);
	EXPECT(&r, 1, "check' says what is wrong");

	/* A record that is well formed but names no possible entry. */
	{
		struct { uint32_t qidx, qgen, klen, dead; char key[8]; } rec =
			{ 9999, 1, 3, 7, "abc" };

		poke(s, tab + 64, &rec, sizeof(rec));
		v = 16 + 8;
		poke(s, tab + 8, &v, 8);
		run(&r, "-s", s, "check", NULL);
		EXPECT(&r, 1, "2 error(s) found");
		HAS(&r, "record at byte 0: dead word 7 (0 or 1)");
		HAS(&r, "record at byte 0 names directory entry 9999; the "
		    "directory has");
	}
	/* used beyond the block; then a bad magic. */
	v = 1ull << 40;
	poke(s, tab + 8, &v, 8);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "1 error(s) found");
	HAS(&r, "binding table: 1099511627776 bytes of records in use, beyond "
	    "the room of its block");
	v = 0x1122334455667788ull;
	poke(s, tab, &v, 8);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "binding table: bad magic 0x1122334455667788");
	/* The header block: magic and type. */
	poke(s, e.off, &v, 8);
	u = 2;
	poke(s, e.off + 8, &u, 4);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "exchange header: bad magic 0x1122334455667788");
	v = 0x47484358514d4853ull;      /* XCHG_MAGIC */
	poke(s, e.off, &v, 8);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "exchange header says type 2; the directory says 3");
	u = 3;
	poke(s, e.off + 8, &u, 4);

	/* The directory: an unknown type, then a table over q's ring. */
	u = 9;
	poke(s, SEG_HDR_SIZE + (uint64_t)xi * 128 +
	     offsetof(struct dir_entry, slot_size), &u, 4);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "unknown exchange type 9");
	u = 3;
	poke(s, SEG_HDR_SIZE + (uint64_t)xi * 128 +
	     offsetof(struct dir_entry, slot_size), &u, 4);
	v = DIR_AUX(eq.off, SEG_ALIGN);
	poke(s, SEG_HDR_SIZE + (uint64_t)xi * 128 +
	     offsetof(struct dir_entry, aux), &v, 8);
	run(&r, "-s", s, "check", NULL);
	EXPECT(&r, 1, "error(s) found");
	HAS(&r, "overlap: ring and binding table");
	/* A table outside the heap. */
	v = DIR_AUX(0, SEG_ALIGN);
	poke(s, SEG_HDR_SIZE + (uint64_t)xi * 128 +
	     offsetof(struct dir_entry, aux), &v, 8);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "binding table block [0, +4096) is empty or outside the heap");
	/* An unknown kind is still an error. */
	u = 7;
	poke(s, SEG_HDR_SIZE + (uint64_t)xi * 128 +
	     offsetof(struct dir_entry, kind), &u, 4);
	run(&r, "-s", s, "check", NULL);
	HAS(&r, "unknown kind 7");
}

/* watch: exchanges' rates beside the queues'. */
static void test_watch_exchanges(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct run r;
	pid_t pid;

	make_queue(fix->seg, "wq", 64, 32);
	t_assert_err(shmq_exchange_create(fix->seg, "wx", &(struct shmq_xattr){
		     SHMQ_FANOUT, 0, NULL }), 0);
	t_assert_err(shmq_bind(fix->seg, "wx", "wq", ""), 0);
	run(&r, "-s", s, "watch", "wx", "--interval", "10ms", "--count", "1",
	    NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "exchange=wx type=fanout bindings=1 published_per_s=0 ");
	assert_null(strstr(r.out, "queue=wq"));
	run(&r, "-s", s, "watch", "nope", "--count", "1", NULL);
	EXPECT(&r, 1, "queue 'nope': no such segment or queue");
	/* A publisher keeps it moving: the rate is above 0. */
	pid = t_fork(30);
	if (pid == 0) {
		shmq_exchange *x;
		shmq_seg *sg;
		shmq *q;
		char buf[32];

		if (shmq_seg_open(fix->name, &sg) || shmq_open(sg, "wq", &q) ||
		    shmq_exchange_open(sg, "wx", &x))
			_exit(1);
		for (;;) {
			if (shmq_publish(x, "k", "m", 1, SHMQ_FOREVER) != 1 ||
			    shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER) < 0)
				_exit(2);
			t_sleep_ms(1);
		}
	}
	run(&r, "--json", "-s", s, "watch", "--interval", "100ms", "--count",
	    "2", NULL);
	t_kill_reap(pid);
	EXPECT(&r, 0, NULL);
	*strrchr(r.out, '\n') = 0;
	JSON(strrchr(r.out, '\n') + 1,
	     "[x['name'] for x in d['exchanges']] == ['wx'] and "
	     "d['exchanges'][0]['published_per_s'] > 0 and "
	     "d['exchanges'][0]['routed_per_s'] > 0 and "
	     "d['exchanges'][0]['bindings'] == 1 and "
	     "d['queues'][0]['name'] == 'wq'");
}

/* ---- acknowledged delivery: create, the figures, procs, dead letters ---- */

/* create --max-unacked --prefetch --max-deliveries --dead-letter. */
static void test_ack_create(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_queue_info qi;
	struct run r;

	run(&r, "-s", s, "create", "jobs", "--max-unacked", "16", "--prefetch",
	    "4", "--max-deliveries", "3", "--dead-letter", "dlx", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "created queue jobs: capacity 1024, "
			    "msg_size 256, type mpmc, overflow block; unacked "
			    "at most 16, prefetch 4, max_deliveries 3, "
			    "dead-letter dlx\n");
	/* The exchange need not exist yet: only a note says so. */
	HAS_ERR(&r, "note: no exchange 'dlx' yet: dead-lettered messages "
		"are dropped until it exists\n");
	t_assert_err(shmq_queue_stat(fix->seg, "jobs", &qi), 0);
	assert_int_equal(qi.max_unacked, 16);
	assert_int_equal(qi.prefetch, 4);
	assert_int_equal(qi.max_deliveries, 3);
	assert_string_equal(qi.dead_letter, "dlx");
	run(&r, "--json", "-s", s, "stat", "jobs", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "(d['queue']['unacked'], d['queue']['max_unacked'], "
	     "d['queue']['prefetch'], d['queue']['max_deliveries'], "
	     "d['queue']['nacked'], d['queue']['dead_lettered'], "
	     "d['queue']['dead_letter'], d['owed']) == "
	     "(0, 16, 4, 3, 0, 0, 'dlx', [])");

	/* Without the flags: the defaults, and the line as before. */
	run(&r, "-s", s, "create", "plain", "--capacity", "8", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "created queue plain: capacity 8, msg_size "
			    "256, type mpmc, overflow block\n");
	assert_string_equal(r.err, "");
	run(&r, "--json", "-s", s, "stat", "plain", NULL);
	JSON(r.out, "(d['queue']['unacked'], d['queue']['max_unacked'], "
	     "d['queue']['prefetch'], d['queue']['max_deliveries'], "
	     "d['queue']['dead_letter']) == (0, 8, 8, 0, None)");
	run(&r, "--json", "-s", s, "create", "big", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "(d['max_unacked'], d['prefetch'], d['max_deliveries'], "
	     "d['dead_letter']) == (64, 64, 0, None)");

	/* An existing exchange: no note; JSON: no note either. */
	run(&r, "-s", s, "exchange", "create", "dlx", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "create", "j2", "--capacity", "4", "--max-deliveries",
	    "1", "--dead-letter", "dlx", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.err, "");
	HAS(&r, "; unacked at most 4, prefetch 4, max_deliveries 1, "
	    "dead-letter dlx\n");
	run(&r, "--json", "-s", s, "create", "j3", "--capacity", "4",
	    "--max-unacked", "2", "--max-deliveries", "5", "--dead-letter",
	    "nowhere", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.err, "");
	JSON(r.out, "(d['max_unacked'], d['prefetch'], d['max_deliveries'], "
	     "d['dead_letter'], d['type']) == (2, 2, 5, 'nowhere', 'mpmc')");
	/* A queue's name, and no limit: both said. */
	run(&r, "-s", s, "create", "j4", "--dead-letter", "plain", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "max_deliveries unlimited, dead-letter plain\n");
	HAS_ERR(&r, "note: without --max-deliveries no message is ever "
		"dead-lettered to plain\n");
	HAS_ERR(&r, "note: 'plain' is a queue, not an exchange");
	/* 0 is no limit, the default. */
	run(&r, "-s", s, "create", "j5", "--max-deliveries", "0", NULL);
	EXPECT(&r, 0, NULL);

	/* Bad values: usage errors naming the flag and the range. */
	run(&r, "-s", s, "create", "bad", "--max-unacked", "0", NULL);
	EXPECT(&r, 2, "--max-unacked 0 is out of range: 1..65535");
	run(&r, "-s", s, "create", "bad", "--max-unacked", "65536", NULL);
	EXPECT(&r, 2, "--max-unacked 65536 is out of range: 1..65535");
	run(&r, "-s", s, "create", "bad", "--max-unacked",
	    "99999999999999999999999", NULL);
	EXPECT(&r, 2, "is out of range: 1..65535");
	run(&r, "-s", s, "create", "bad", "--max-unacked", "lots", NULL);
	EXPECT(&r, 2, "--max-unacked 'lots' does not parse");
	run(&r, "-s", s, "create", "bad", "--prefetch", "0", NULL);
	EXPECT(&r, 2, "--prefetch 0 is out of range: 1..65535");
	run(&r, "-s", s, "create", "bad", "--prefetch", "-1", NULL);
	EXPECT(&r, 2, "--prefetch '-1' does not parse");
	run(&r, "-s", s, "create", "bad", "--prefetch", "8", "--max-unacked",
	    "4", NULL);
	EXPECT(&r, 2, "--prefetch 8 is more than --max-unacked 4");
	run(&r, "-s", s, "create", "bad", "--max-deliveries", "4294967296",
	    NULL);
	EXPECT(&r, 2, "--max-deliveries '4294967296' does not fit");
	run(&r, "-s", s, "create", "bad", "--max-deliveries", "1.5", NULL);
	EXPECT(&r, 2, "--max-deliveries '1.5' does not parse");
	run(&r, "-s", s, "create", "bad", "--max-deliveries", NULL);
	EXPECT(&r, 2, "option '--max-deliveries' needs a value");
	run(&r, "-s", s, "create", "bad", "--dead-letter", "a/b", NULL);
	EXPECT(&r, 2, "--dead-letter 'a/b': an exchange name is 1-63 bytes "
	       "of [A-Za-z0-9._-], not '.' or '..'");
	run(&r, "-s", s, "create", "bad", "--dead-letter", "", NULL);
	EXPECT(&r, 2, "--dead-letter '': an exchange name is");
	run(&r, "-s", s, "create", "bad", "--dead-letter", "..", NULL);
	EXPECT(&r, 2, "--dead-letter '..': an exchange name is");
	run(&r, "-s", s, "create", "bad", "--dead-letter", "x23456789012345678"
	    "9012345678901234567890123456789012345678901234", NULL);
	EXPECT(&r, 2, "an exchange name is 1-63 bytes");
	/* SPSC queues have no unacknowledged area. */
	run(&r, "-s", s, "create", "bad", "--spsc", "--max-unacked", "4",
	    NULL);
	EXPECT(&r, 2, "--max-unacked, --prefetch, --max-deliveries and "
	       "--dead-letter are not for --spsc queues (acknowledged "
	       "delivery is mpmc only)");
	run(&r, "-s", s, "create", "bad", "--dead-letter", "dlx", "--spsc",
	    NULL);
	EXPECT(&r, 2, "are not for --spsc queues");
	run(&r, "--json", "-s", s, "create", "bad", "--spsc", "--prefetch",
	    "1", NULL);
	EXPECT(&r, 2, NULL);
	JSON(r.err, "d['error'] == 'usage' and d['command'] == 'create' and "
	     "'--spsc' in d['message']");
	/* Past the default max_unacked (64 here): the library refuses. */
	run(&r, "-s", s, "create", "bad", "--prefetch", "100", NULL);
	EXPECT(&r, 1, "queue 'bad': invalid argument; --prefetch 100 is more "
	       "than the queue's max_unacked (default min(capacity, 64): 64 "
	       "here); give --max-unacked too");
	run(&r, "-s", s, "create", "bad", "--prefetch", "9", "--capacity", "5",
	    NULL);
	EXPECT(&r, 1, "(default min(capacity, 64): 5 here)");
	run(&r, "--json", "-s", s, "create", "bad", "--prefetch", "100", NULL);
	EXPECT(&r, 1, NULL);
	JSON(r.err, "d['error'] == 'EINVAL' and d['queue'] == 'bad'");
	assert_int_equal(shmq_queue_stat(fix->seg, "bad", &qi), -ENOENT);
	run(&r, "create", "--help", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "--max-unacked N");
	HAS(&r, "--prefetch N");
	HAS(&r, "--max-deliveries N");
	HAS(&r, "--dead-letter EXCHANGE");
}

/*
 * Messages fetched by this process and not acknowledged: list, stat, JSON,
 * Prometheus and watch show them, stat says this process owes them; nack
 * and ack move the figures; an acquired message shows as acquired.
 */
static void test_ack_figures(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_attr a = { .capacity = 8, .msg_size = 32,
			       .max_unacked = 4, .prefetch = 3 };
	char buf[32], want[256], expr[512];
	int me = (int)getpid();
	struct shmq_meta meta;
	uint64_t t1, t2, t3;
	struct shmq_msg m;
	struct run r;
	shmq *q;

	/* "work" second in the directory: stat must find it anywhere. */
	t_assert_err(shmq_create(fix->seg, "sp", &(struct shmq_attr){
		     .capacity = 4, .msg_size = 32, .flags = SHMQ_SPSC }), 0);
	t_assert_err(shmq_create(fix->seg, "work", &a), 0);
	t_assert_err(shmq_open(fix->seg, "work", &q), 0);
	t_assert_err(shmq_send(q, "a", 1, 0), 0);
	t_assert_err(shmq_send(q, "b", 1, 0), 0);
	t_assert_err(shmq_send(q, "c", 1, 0), 0);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), &meta, &t1, 0), 1);
	assert_int_equal(meta.deliveries, 1);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &t2, 0), 1);

	/* list: UNACKED/MAX after DEPTH/CAP; "-" for the SPSC queue. */
	run(&r, "-s", s, "list", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "      DEPTH/CAP UNACKED/MAX MSG_SIZE ");
	snprintf(want, sizeof(want), "%15s %11s %8u ", "1/8", "2/4", 32);
	ROW(&r, "work ", want);
	snprintf(want, sizeof(want), "%15s %11s %8u ", "0/4", "-", 32);
	ROW(&r, "sp ", want);
	run(&r, "--json", "-s", s, "list", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "[(q['name'], q['unacked'], q['max_unacked'], "
	     "q['prefetch'], q['max_deliveries'], q['nacked'], "
	     "q['dead_lettered'], q['dead_letter']) for q in d['queues']] == "
	     "[('sp', 0, 0, 0, 0, 0, 0, None), ('work', 2, 4, 3, 0, 0, 0, "
	     "None)]");

	/* stat: every figure, and who owes them: this process. */
	run(&r, "-s", s, "stat", "work", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "\nunacked:      2 of at most 4 messages (fetched, not yet "
	    "acknowledged); prefetch 3 per handle\n");
	HAS(&r, "\ndeliveries:   no limit (max_deliveries 0)\n");
	HAS(&r, "\ndead-letter:  none; 0 dead-lettered (dropped)\n");
	HAS(&r, "\nnacked:       0 given back (shmq_nack, or a handle closed "
	    "owing them)\n");
	snprintf(want, sizeof(want), "\nowed:         pid %d (alive, entry ",
		 me);
	HAS(&r, want);
	HAS(&r, "): 2 fetched, 0 acquired\ncreated:");
	run(&r, "--json", "-s", s, "stat", "work", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr), "d['queue']['unacked'] == 2 and "
		 "[(o['pid'], o['alive'], o['fetched'], o['acquired'], "
		 "type(o['index'])) for o in d['owed']] == "
		 "[(%d, True, 2, 0, int)]", me);
	JSON(r.out, expr);

	/* Prometheus: gauges and counters, the dead-letter label. */
	run(&r, "-s", s, "list", "--prometheus", NULL);
	EXPECT(&r, 0, NULL);
	PROM(r.out);
	assert_int_equal(prom_value(r.out, "shmq_queue_unacked", "work"), 2);
	assert_int_equal(prom_value(r.out, "shmq_queue_max_unacked", "work"),
			 4);
	assert_int_equal(prom_value(r.out, "shmq_queue_prefetch", "work"), 3);
	assert_int_equal(prom_value(r.out, "shmq_queue_max_deliveries",
				    "work"), 0);
	assert_int_equal(prom_value(r.out, "shmq_queue_nacked_total", "work"),
			 0);
	assert_int_equal(prom_value(r.out, "shmq_queue_dead_lettered_total",
				    "work"), 0);
	assert_int_equal(prom_value(r.out, "shmq_queue_unacked", "sp"), 0);
	HAS(&r, "# TYPE shmq_queue_unacked gauge\n");
	HAS(&r, "# TYPE shmq_queue_nacked_total counter\n");
	HAS(&r, "# TYPE shmq_queue_dead_lettered_total counter\n");
	HAS(&r, "queue=\"work\",state=\"live\",type=\"mpmc\","
	    "overflow=\"block\",auto_delete=\"false\",dead_letter=\"\"} 1\n");
	run(&r, "-s", s, "stat", "work", "--prometheus", NULL);
	EXPECT(&r, 0, NULL);
	PROM(r.out);
	assert_int_equal(prom_value(r.out, "shmq_queue_unacked", "work"), 2);

	/* watch: the figure per refresh. */
	run(&r, "-s", s, "watch", "work", "--interval", "10ms", "--count", "1",
	    NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, " unacked=2 max_unacked=4 state=live\n");
	run(&r, "--json", "-s", s, "watch", "work", "--interval", "10ms",
	    "--count", "1", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "(d['queues'][0]['unacked'], "
	     "d['queues'][0]['max_unacked']) == (2, 4)");

	/* nack one: given back, delivered again first; ack the rest. */
	t_assert_err(shmq_nack(q, t1), 0);
	run(&r, "--json", "-s", s, "stat", "work", NULL);
	snprintf(expr, sizeof(expr), "(d['queue']['unacked'], "
		 "d['queue']['nacked']) == (1, 1) and [(o['pid'], "
		 "o['fetched']) for o in d['owed']] == [(%d, 1)]", me);
	JSON(r.out, expr);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), &meta, &t3, 0), 1);
	assert_memory_equal(buf, "a", 1);
	assert_int_equal(meta.deliveries, 2);
	assert_true(meta.flags & SHMQ_META_REDELIVERED);
	t_assert_err(shmq_ack(q, t2), 0);
	t_assert_err(shmq_ack(q, t3), 0);
	run(&r, "-s", s, "stat", "work", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "\nunacked:      0 of at most 4 messages");
	HAS(&r, "\nnacked:       1 given back");
	HAS(&r, "\nowed:         nothing (no process has a message fetched "
	    "or acquired)\n");
	run(&r, "--json", "-s", s, "stat", "work", NULL);
	JSON(r.out, "(d['queue']['unacked'], d['queue']['nacked'], "
	     "d['owed']) == (0, 1, [])");

	/* A message held in place (shmq_acquire) is owed too: acquired. */
	t_assert_err(shmq_acquire(q, &m, 0), 0);
	run(&r, "--json", "-s", s, "stat", "work", NULL);
	snprintf(expr, sizeof(expr), "[(o['pid'], o['alive'], o['fetched'], "
		 "o['acquired']) for o in d['owed']] == [(%d, True, 0, 1)] "
		 "and d['queue']['unacked'] == 0", me);
	JSON(r.out, expr);
	run(&r, "-s", s, "stat", "work", NULL);
	HAS(&r, "): 0 fetched, 1 acquired\n");
	t_assert_err(shmq_release(q, &m), 0);
	shmq_close(q);

	/* SPSC: no unacknowledged area, said. */
	run(&r, "-s", s, "stat", "sp", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "\nunacked:      - (acknowledged delivery, shmq_fetch, is for "
	    "mpmc queues)\n");
	assert_null(strstr(r.out, "\ndead-letter:"));
}

/*
 * procs and stat name the process that owes a message: a child that
 * fetched one and never acknowledges it; dead after SIGKILL, its message
 * is delivered again to this process.
 */
static void test_ack_procs(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	char want[128], expr[512], buf[32];
	struct shmq_meta meta;
	struct run r;
	uint64_t tag;
	shmq *q;
	pid_t pid;
	int wfd;

	make_queue(fix->seg, "pq", 8, 32);
	send_str(fix->seg, "pq", "job");
	shmq_seg_close(fix->seg);
	fix->seg = NULL;
	pid = attached_child(s, "pq", &wfd, CHILD_FETCH);

	run(&r, "-s", s, "procs", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, " STATE HANDLES HELD UNACKED PIDNS\n");
	snprintf(want, sizeof(want), " %d ", (int)pid);
	ROW(&r, want, " alive       1    0       1 same\n");
	run(&r, "--json", "-s", s, "procs", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(expr, sizeof(expr), "[(p['pid'], p['alive'], p['handles'], "
		 "p['held'], p['unacked']) for p in d['procs']] == "
		 "[(%d, True, 1, 0, 1)]", (int)pid);
	JSON(r.out, expr);
	run(&r, "-s", s, "stat", "pq", NULL);
	EXPECT(&r, 0, NULL);
	snprintf(want, sizeof(want), "\nowed:         pid %d (alive, entry ",
		 (int)pid);
	HAS(&r, want);
	HAS(&r, "): 1 fetched, 0 acquired\n");
	HAS(&r, "\nunacked:      1 of at most 8 messages");
	run(&r, "-s", s, "list", NULL);
	ROW(&r, "pq ", " 1/8 ");

	/* Killed owing it: dead, still owing (observers repair nothing). */
	t_kill_reap(pid);
	close(wfd);
	run(&r, "--json", "-s", s, "procs", NULL);
	snprintf(expr, sizeof(expr), "[(p['pid'], p['alive'], p['unacked']) "
		 "for p in d['procs']] == [(%d, False, 1)]", (int)pid);
	JSON(r.out, expr);
	run(&r, "-s", s, "procs", NULL);
	snprintf(want, sizeof(want), " %d ", (int)pid);
	ROW(&r, want, " dead ");
	run(&r, "--json", "-s", s, "stat", "pq", NULL);
	snprintf(expr, sizeof(expr), "[(o['pid'], o['alive'], o['fetched'], "
		 "o['acquired']) for o in d['owed']] == [(%d, False, 1, 0)]",
		 (int)pid);
	JSON(r.out, expr);
	run(&r, "-s", s, "stat", "pq", NULL);
	snprintf(want, sizeof(want), "\nowed:         pid %d (dead: to be "
		 "delivered again, entry ", (int)pid);
	HAS(&r, want);

	/* A consumer gets it again, second delivery; then nobody owes. */
	t_assert_err(shmq_seg_open(s, &fix->seg), 0);
	t_assert_err(shmq_open(fix->seg, "pq", &q), 0);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), &meta, &tag,
				2000 * T_MS), 3);
	assert_memory_equal(buf, "job", 3);
	assert_int_equal(meta.deliveries, 2);
	t_assert_err(shmq_ack(q, tag), 0);
	shmq_close(q);
	run(&r, "--json", "-s", s, "procs", NULL);
	JSON(r.out, "all(p['unacked'] == 0 for p in d['procs'])");
	run(&r, "--json", "-s", s, "stat", "pq", NULL);
	JSON(r.out, "d['owed'] == [] and d['queue']['unacked'] == 0");
}

/*
 * A message given back more often than --max-deliveries allows goes to
 * the --dead-letter exchange (or, without one, is dropped): stat, JSON
 * and Prometheus count it, and the exchange's queue has it.
 */
static void test_ack_dead_letter(void **state)
{
	struct t_fix *fix = *state;
	const char *s = fix->name;
	struct shmq_meta meta;
	struct run r;
	uint64_t tag;
	char buf[32];
	shmq *q;
	int i;

	run(&r, "-s", s, "exchange", "create", "dlx", "--type", "fanout", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "create", "dlq", "--capacity", "8", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "bind", "dlx", "dlq", NULL);
	EXPECT(&r, 0, NULL);
	run(&r, "-s", s, "create", "poison", "--capacity", "8",
	    "--max-deliveries", "2", "--dead-letter", "dlx", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.err, "");
	run(&r, "-s", s, "create", "poison2", "--capacity", "8",
	    "--max-deliveries", "1", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "max_deliveries 1, dead-letter none (dropped)\n");

	/*
	 * Delivered twice, given back twice: the next consumer to come to
	 * it (the fetch that finds nothing) sends it to dlx.  "poison" is
	 * not the directory's first entry (the exchange and dlq are).
	 */
	t_assert_err(shmq_open(fix->seg, "poison", &q), 0);
	t_assert_err(shmq_send(q, "bad", 3, 0), 0);
	for (i = 1; i <= 2; i++) {
		t_assert_err(shmq_fetch(q, buf, sizeof(buf), &meta, &tag,
					2000 * T_MS), 3);
		assert_int_equal(meta.deliveries, i);
		t_assert_err(shmq_nack(q, tag), 0);
	}
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), &meta, &tag, 0),
		     -EAGAIN);
	shmq_close(q);
	run(&r, "--json", "-s", s, "stat", "poison", NULL);
	EXPECT(&r, 0, NULL);
	JSON(r.out, "(d['queue']['dead_lettered'], d['queue']['nacked'], "
	     "d['queue']['max_deliveries'], d['queue']['dead_letter'], "
	     "d['queue']['unacked'], d['queue']['depth'], d['owed']) == "
	     "(1, 2, 2, 'dlx', 0, 0, [])");
	run(&r, "-s", s, "stat", "poison", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "\ndeliveries:   at most 2 per message, then dead-lettered\n");
	HAS(&r, "\ndead-letter:  exchange dlx; 1 dead-lettered (sent there, "
	    "or dropped when it is missing or refuses)\n");
	HAS(&r, "\nnacked:       2 given back");
	run(&r, "-s", s, "list", "--prometheus", NULL);
	EXPECT(&r, 0, NULL);
	PROM(r.out);
	assert_int_equal(prom_value(r.out, "shmq_queue_dead_lettered_total",
				    "poison"), 1);
	assert_int_equal(prom_value(r.out, "shmq_queue_nacked_total",
				    "poison"), 2);
	assert_int_equal(prom_value(r.out, "shmq_queue_max_deliveries",
				    "poison"), 2);
	HAS(&r, "queue=\"poison\",state=\"live\",type=\"mpmc\","
	    "overflow=\"block\",auto_delete=\"false\",dead_letter=\"dlx\"} 1\n");
	/* The dead-letter queue has it, with its (empty) routing key. */
	run(&r, "-s", s, "recv", "dlq", "--keys", NULL);
	EXPECT(&r, 0, NULL);
	assert_string_equal(r.out, "\"\"\tbad\n");

	/* Without a dead-letter exchange: dropped, and counted. */
	t_assert_err(shmq_open(fix->seg, "poison2", &q), 0);
	t_assert_err(shmq_send(q, "bad2", 4, 0), 0);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 0), 4);
	t_assert_err(shmq_nack(q, tag), 0);
	t_assert_err(shmq_fetch(q, buf, sizeof(buf), NULL, &tag, 0), -EAGAIN);
	shmq_close(q);
	run(&r, "-s", s, "stat", "poison2", NULL);
	EXPECT(&r, 0, NULL);
	HAS(&r, "\ndead-letter:  none; 1 dead-lettered (dropped)\n");
	run(&r, "--json", "-s", s, "list", NULL);
	JSON(r.out, "[(q['name'], q['dead_lettered'], q['nacked'], "
	     "q['dead_letter']) for q in d['queues'] if "
	     "q['name'].startswith('poison')] == [('poison', 1, 2, 'dlx'), "
	     "('poison2', 1, 1, None)]");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
#define TN(fn) cmocka_unit_test_setup_teardown(fn, t_setup_noseg, t_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TN(test_help_version_usage),
		TN(test_init_info_destroy),
		TN(test_init_bad_values),
		T(test_queues),
		T(test_send_recv_peek),
		TN(test_missing_segment),
		T(test_permission_denied),
		T(test_check),
		T(test_ack_check),
		T(test_producers_consumers),
		T(test_pollers),
		T(test_procs_destroy),
		T(test_watch),
		T(test_watch_rates),
		T(test_prometheus),
		T(test_purge_concurrent),
		T(test_recover_after_sigkill),
		T(test_spsc),
		T(test_spsc_check),
		TN(test_init_mode_bits),
		TN(test_init_no_space),
		TN(test_json_everywhere),
		T(test_json_payloads),
		T(test_dot_names),
		T(test_info_owner),
		T(test_trust_other_owner),
		T(test_file_kinds),
		T(test_segments),
		T(test_exchange_create_delete),
		T(test_exchanges_listing),
		T(test_bind_unbind),
		T(test_publish),
		T(test_overflow_autodelete),
		T(test_check_exchange),
		T(test_watch_exchanges),
		T(test_ack_create),
		T(test_ack_figures),
		T(test_ack_procs),
		T(test_ack_dead_letter),
	};

	return cmocka_run_group_tests_name("mqctl", tests, t_group_setup,
					   t_group_teardown);
}
