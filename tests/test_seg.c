// SPDX-License-Identifier: MIT
/*
 * test_seg.c - segments: create, open, close, unlink, names, modes,
 * attributes, validation of corrupt or foreign segments, permissions and
 * the process table.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define NOBODY	65534

static struct shmq_seg_attr small_attr(void)
{
	struct shmq_seg_attr a = { .size = T_SEG_SIZE };

	return a;
}

/* Send @s through @q and receive it back through @r. */
static void roundtrip(shmq *q, shmq *r, const char *s)
{
	char buf[64];
	ssize_t n;

	t_assert_err(shmq_send(q, s, strlen(s), 0), 0);
	n = shmq_recv(r, buf, sizeof(buf), 0);
	t_assert_err(n, (long long)strlen(s));
	assert_memory_equal(buf, s, strlen(s));
}

static void assert_gone(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* ---- create, open, close, unlink -------------------------------------- */

static void test_seg_create_open_close_unlink(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *a = NULL, *b = NULL;
	shmq *qa, *qb;
	char path[128];
	struct stat st;

	t_assert_err(shmq_seg_create(fix->name, &attr, &a), 0);
	assert_non_null(a);
	fix->seg = a;
	t_shm_path(path, sizeof(path), fix->name);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_true((size_t)st.st_size >= T_SEG_SIZE);

	/* A second attachment sees the first one's queues. */
	t_assert_err(shmq_seg_open(fix->name, &b), 0);
	assert_non_null(b);
	t_assert_err(shmq_create(a, "q", NULL), 0);
	t_assert_err(shmq_open(b, "q", &qb), 0);
	t_assert_err(shmq_open(a, "q", &qa), 0);
	roundtrip(qa, qb, "through two attachments");
	roundtrip(qb, qa, "and back");
	shmq_close(qa);
	shmq_close(qb);
	shmq_seg_close(b);
	shmq_seg_close(a);
	fix->seg = NULL;

	/* Reattach: the queue persists with the segment. */
	t_assert_err(shmq_seg_open(fix->name, &b), 0);
	t_assert_err(shmq_open(b, "q", &qb), 0);
	roundtrip(qb, qb, "after reattaching");
	shmq_close(qb);
	shmq_seg_close(b);

	t_assert_err(shmq_seg_unlink(fix->name), 0);
	assert_gone(path);
	t_assert_err(shmq_seg_unlink(fix->name), -ENOENT);
	t_assert_err(shmq_seg_open(fix->name, &b), -ENOENT);
}

static void test_seg_close_null(void **state)
{
	(void)state;
	shmq_seg_close(NULL);
	shmq_close(NULL);
}

static void test_seg_default_attr(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr zero = { 0 };
	const char *name2 = t_segname();
	shmq_seg *s2;
	char path[128];
	struct stat st;
	mode_t old = umask(0);

	/* NULL attributes: 64 MiB, mode 0600. */
	t_assert_err(shmq_seg_create(fix->name, NULL, &fix->seg), 0);
	/* All-zero attributes: the same. */
	t_assert_err(shmq_seg_create(name2, &zero, &s2), 0);
	umask(old);
	shmq_seg_close(s2);

	assert_int_equal(stat(t_shm_path(path, sizeof(path), fix->name), &st),
			 0);
	assert_true((size_t)st.st_size >= SHMQ_DEFAULT_SEG_SIZE);
	assert_int_equal(st.st_mode & 07777, SHMQ_DEFAULT_SEG_MODE);
	assert_int_equal(stat(t_shm_path(path, sizeof(path), name2), &st), 0);
	assert_true((size_t)st.st_size >= SHMQ_DEFAULT_SEG_SIZE);
	assert_int_equal(st.st_mode & 07777, SHMQ_DEFAULT_SEG_MODE);
}

static void test_seg_size_rounded_to_page(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = { .size = T_SEG_SIZE + 1 };
	long page = sysconf(_SC_PAGESIZE);
	char path[128];
	struct stat st;

	t_assert_err(shmq_seg_create(fix->name, &attr, &fix->seg), 0);
	assert_int_equal(stat(t_shm_path(path, sizeof(path), fix->name), &st),
			 0);
	assert_true((size_t)st.st_size >= T_SEG_SIZE + 1);
	assert_int_equal(st.st_size % page, 0);
}

/* ---- the default name ------------------------------------------------- */

static void test_seg_default_name_env(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *b;
	shmq *q;
	char path[128];
	struct stat st;

	t_shm_path(path, sizeof(path), fix->name);
	setenv("SHMQ_SEGMENT", fix->name, 1);
	t_assert_err(shmq_seg_create(NULL, &attr, &fix->seg), 0);
	assert_int_equal(stat(path, &st), 0);

	/* NULL opens the same segment, by name or through the env var. */
	t_assert_err(shmq_create(fix->seg, "q", NULL), 0);
	t_assert_err(shmq_seg_open(NULL, &b), 0);
	t_assert_err(shmq_open(b, "q", &q), 0);
	roundtrip(q, q, "default segment");
	shmq_close(q);
	shmq_seg_close(b);

	t_assert_err(shmq_seg_unlink(NULL), 0);
	assert_gone(path);
	t_assert_err(shmq_seg_open(NULL, &b), -ENOENT);
	unsetenv("SHMQ_SEGMENT");
}

static void test_seg_default_name_unset(void **state)
{
	shmq_seg *s;

	(void)state;
	unsetenv("SHMQ_SEGMENT");
	/* Only where nobody uses the real default segment on this host. */
	if (access("/dev/shm/shmq.shmq", F_OK) == 0)
		t_skip("/dev/shm/shmq.shmq exists: the default segment is in use here");
	t_assert_err(shmq_seg_open(NULL, &s), -ENOENT);
	t_assert_err(shmq_seg_unlink(NULL), -ENOENT);
}

/* ---- file-backed segments --------------------------------------------- */

static void test_seg_file_backed(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	const char *dir = t_tmpdir();
	char path[256], missing[256];
	shmq_seg *a, *b;
	shmq *qa, *qb;
	struct stat st;
	mode_t old;

	snprintf(path, sizeof(path), "%s/seg", dir);
	snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);

	attr.mode = 0640;
	old = umask(077);
	t_assert_err(shmq_seg_create(path, &attr, &a), 0);
	umask(old);
	fix->seg = a;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_true((size_t)st.st_size >= T_SEG_SIZE);
	assert_int_equal(st.st_mode & 07777, 0640);

	t_assert_err(shmq_seg_create(path, &attr, &b), -EEXIST);
	t_assert_err(shmq_seg_open(path, &b), 0);
	t_assert_err(shmq_create(a, "q", NULL), 0);
	t_assert_err(shmq_open(a, "q", &qa), 0);
	t_assert_err(shmq_open(b, "q", &qb), 0);
	roundtrip(qa, qb, "file-backed");
	shmq_close(qa);
	shmq_close(qb);
	shmq_seg_close(b);
	shmq_seg_close(a);
	fix->seg = NULL;

	/* It persists as a file: reopen it, the queue is still there. */
	t_assert_err(shmq_seg_open(path, &b), 0);
	t_assert_err(shmq_open(b, "q", &qb), 0);
	roundtrip(qb, qb, "reopened");
	shmq_close(qb);
	shmq_seg_close(b);

	t_assert_err(shmq_seg_unlink(path), 0);
	assert_gone(path);
	t_assert_err(shmq_seg_unlink(path), -ENOENT);
	t_assert_err(shmq_seg_open(path, &b), -ENOENT);
	t_assert_err(shmq_seg_open(missing, &b), -ENOENT);
}

/* ---- errors of create and open ---------------------------------------- */

static void test_seg_create_eexist(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *s = NULL;
	shmq *q;

	t_assert_err(shmq_create(fix->seg, "q", NULL), 0);
	t_assert_err(shmq_seg_create(fix->name, &attr, &s), -EEXIST);
	/* The existing segment was not touched. */
	t_assert_err(shmq_seg_open(fix->name, &s), 0);
	t_assert_err(shmq_open(s, "q", &q), 0);
	shmq_close(q);
	shmq_seg_close(s);
}

static void test_seg_open_enoent(void **state)
{
	struct t_fix *fix = *state;
	shmq_seg *s;

	t_assert_err(shmq_seg_open(fix->name, &s), -ENOENT);
	t_assert_err(shmq_seg_unlink(fix->name), -ENOENT);
}

/* Try a bad name everywhere; clean up whatever a buggy library created. */
static void try_bad_seg_name(const char *name, int expected)
{
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *s = NULL;
	char path[256];
	int rc, rc2, rc3;

	rc = shmq_seg_create(name, &attr, &s);
	if (rc == 0) {
		shmq_seg_close(s);
		snprintf(path, sizeof(path), "/dev/shm/shmq.%s", name);
		unlink(path);
	}
	rc2 = shmq_seg_open(name, &s);
	if (rc2 == 0)
		shmq_seg_close(s);
	rc3 = shmq_seg_unlink(name);
	if (rc != expected || rc2 != expected || rc3 != expected)
		print_error("segment name \"%s\"\n", name);
	t_assert_err(rc, expected);
	t_assert_err(rc2, expected);
	t_assert_err(rc3, expected);
}

static void test_seg_bad_names(void **state)
{
	static const char *const bad[] = {
		"", "a b", "a*b", "tab\tx", "new\nline", "\xc3\xa9t\xc3\xa9",
		"a:b", "a\\b", "q?", "pct%d",
	};
	char long_name[201];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		try_bad_seg_name(bad[i], -EINVAL);

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[64] = '\0';
	try_bad_seg_name(long_name, -ENAMETOOLONG);
	long_name[64] = 'a';
	long_name[200] = '\0';
	try_bad_seg_name(long_name, -ENAMETOOLONG);
}

static void test_seg_name_63_bytes(void **state)
{
	struct shmq_seg_attr attr = small_attr();
	const char *name = t_segname_len(SHMQ_NAME_MAX);
	struct t_fix *fix = *state;
	shmq_seg *s;

	assert_int_equal(strlen(name), 63);
	t_assert_err(shmq_seg_create(name, &attr, &fix->seg), 0);
	t_assert_err(shmq_seg_open(name, &s), 0);
	shmq_seg_close(s);
	t_assert_err(shmq_seg_unlink(name), 0);
}

static void test_seg_valid_name_chars(void **state)
{
	struct shmq_seg_attr attr = small_attr();
	struct t_fix *fix = *state;
	char name[SHMQ_NAME_MAX + 1];

	/* Every allowed character class at once. */
	snprintf(name, sizeof(name), "%s_AZaz09.-", fix->name);
	assert_true(strlen(name) <= SHMQ_NAME_MAX);
	t_assert_err(shmq_seg_create(name, &attr, &fix->seg), 0);
	shmq_seg_close(fix->seg);
	fix->seg = NULL;
	t_assert_err(shmq_seg_unlink(name), 0);
}

/* ---- modes ------------------------------------------------------------ */

static void test_seg_mode_ignores_umask(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	const char *name2 = t_segname();
	shmq_seg *s2;
	char path[128];
	struct stat st;
	mode_t old;

	attr.mode = 0640;
	old = umask(077);
	t_assert_err(shmq_seg_create(fix->name, &attr, &fix->seg), 0);
	/* A mode more open than the umask allows, too. */
	attr.mode = 0666;
	t_assert_err(shmq_seg_create(name2, &attr, &s2), 0);
	umask(old);
	shmq_seg_close(s2);

	assert_int_equal(stat(t_shm_path(path, sizeof(path), fix->name), &st),
			 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(stat(t_shm_path(path, sizeof(path), name2), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
}

static void test_seg_mode_default(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	char path[128];
	struct stat st;
	mode_t old;

	/* umask 0 would let a default of 0666 through: the default is 0600. */
	old = umask(0);
	t_assert_err(shmq_seg_create(fix->name, &attr, &fix->seg), 0);
	umask(old);
	assert_int_equal(stat(t_shm_path(path, sizeof(path), fix->name), &st),
			 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

/* ---- attributes ------------------------------------------------------- */

static void expect_bad_attr(const char *name, struct shmq_seg_attr attr,
			    int expected)
{
	shmq_seg *s = NULL;
	char path[128];
	int rc;

	rc = shmq_seg_create(name, &attr, &s);
	if (rc == 0)
		shmq_seg_close(s);
	t_assert_err(rc, expected);
	/* A failed creation leaves nothing behind under the name. */
	assert_gone(t_shm_path(path, sizeof(path), name));
}

static void test_seg_attr_invalid(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr a;

	a = small_attr();
	a.flags = 1;
	expect_bad_attr(fix->name, a, -EINVAL);
	a.flags = 0x80000000u;
	expect_bad_attr(fix->name, a, -EINVAL);

	/* Too small for the header and its tables. */
	a = small_attr();
	a.size = 4096;
	expect_bad_attr(fix->name, a, -EINVAL);
	a.size = 1;
	expect_bad_attr(fix->name, a, -EINVAL);

	a = small_attr();
	a.max_queues = SHMQ_MAX_QUEUES + 1;
	expect_bad_attr(fix->name, a, -EINVAL);
	a = small_attr();
	a.max_procs = SHMQ_MAX_PROCS + 1;
	expect_bad_attr(fix->name, a, -EINVAL);
}

static void test_seg_attr_limits_ok(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr a = small_attr();
	const char *name2 = t_segname();
	shmq_seg *s2;

	a.max_queues = 1;
	a.max_procs = 1;
	t_assert_err(shmq_seg_create(fix->name, &a, &fix->seg), 0);
	a.max_queues = SHMQ_MAX_QUEUES;
	a.max_procs = SHMQ_MAX_PROCS;
	a.size = 32 << 20;   /* 22 MiB of process tables (layout 5) */
	t_assert_err(shmq_seg_create(name2, &a, &s2), 0);
	shmq_seg_close(s2);
}

static void test_seg_create_enospc(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr a = small_attr();
	struct statvfs sv;
	shmq_seg *s = NULL;
	char path[128];
	int rc;

	/* More than the whole of /dev/shm: reserving it must fail now. */
	assert_int_equal(statvfs("/dev/shm", &sv), 0);
	if (sv.f_blocks == 0)
		t_skip("/dev/shm has no size limit to exceed");
	a.size = (size_t)sv.f_blocks * sv.f_frsize + ((size_t)64 << 20);
	rc = shmq_seg_create(fix->name, &a, &s);
	if (rc == 0)
		shmq_seg_close(s);
	t_assert_err(rc, -ENOSPC);
	assert_gone(t_shm_path(path, sizeof(path), fix->name));
}

/* ---- validation on open ----------------------------------------------- */

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void make_seg_file(const char *name)
{
	struct shmq_seg_attr a = small_attr();
	shmq_seg *s;

	t_assert_err(shmq_seg_create(name, &a, &s), 0);
	t_assert_err(shmq_create(s, "q", NULL), 0);
	shmq_seg_close(s);
}

static void test_seg_open_garbage(void **state)
{
	struct t_fix *fix = *state;
	size_t len = 1 << 20;
	unsigned char *buf = malloc(len);
	uint32_t st = 12345;
	char path[128];
	shmq_seg *s;
	size_t i;

	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)t_rand(&st);
	t_shm_path(path, sizeof(path), fix->name);
	write_file(path, buf, len);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);

	/* All zeroes: no magic either. */
	memset(buf, 0, len);
	write_file(path, buf, len);
	free(buf);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
}

static void test_seg_open_empty_file(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	shmq_seg *s;

	t_shm_path(path, sizeof(path), fix->name);
	write_file(path, "", 0);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
	/* Short of even the magic. */
	write_file(path, "shmq", 4);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
}

static void test_seg_open_truncated(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	shmq_seg *s;

	t_shm_path(path, sizeof(path), fix->name);
	make_seg_file(fix->name);
	/* Shorter than its header says, by one page... */
	assert_int_equal(truncate(path, T_SEG_SIZE - 4096), 0);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
	/* ...and down to its first page. */
	assert_int_equal(truncate(path, 4096), 0);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
}

static void bump_u32(const char *path, off_t off, int32_t delta)
{
	uint32_t v;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &v, sizeof(v), off), sizeof(v));
	/* The header is little-endian, as this x86 host. */
	v += (uint32_t)delta;
	assert_int_equal(pwrite(fd, &v, sizeof(v), off), sizeof(v));
	close(fd);
}

static void test_seg_open_other_layout_version(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	shmq_seg *s;
	shmq *q;

	t_shm_path(path, sizeof(path), fix->name);
	make_seg_file(fix->name);

	/* Bytes 8..11: the layout version. */
	bump_u32(path, 8, 1);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
	bump_u32(path, 8, -2);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);

	/* Put back, it opens: the version alone made the difference. */
	bump_u32(path, 8, 1);
	t_assert_err(shmq_seg_open(fix->name, &s), 0);
	t_assert_err(shmq_open(s, "q", &q), 0);
	shmq_close(q);
	shmq_seg_close(s);
}

static void test_seg_open_bad_magic(void **state)
{
	struct t_fix *fix = *state;
	char path[128];
	shmq_seg *s;

	t_shm_path(path, sizeof(path), fix->name);
	make_seg_file(fix->name);
	bump_u32(path, 0, 1);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
	bump_u32(path, 4, 0x01000000);
	t_assert_err(shmq_seg_open(fix->name, &s), -EPROTO);
	bump_u32(path, 0, -1);
	bump_u32(path, 4, -0x01000000);
	t_assert_err(shmq_seg_open(fix->name, &s), 0);
	shmq_seg_close(s);
}

/* ---- lifetime: close and unlink while in use -------------------------- */

static void test_seg_close_with_queues_open(void **state)
{
	struct t_fix *fix = *state;
	shmq *q1, *q2, *r1;

	t_assert_err(shmq_create(fix->seg, "q1", NULL), 0);
	t_assert_err(shmq_create(fix->seg, "q2", NULL), 0);
	t_assert_err(shmq_open(fix->seg, "q1", &q1), 0);
	t_assert_err(shmq_open(fix->seg, "q1", &r1), 0);
	t_assert_err(shmq_open(fix->seg, "q2", &q2), 0);
	t_assert_err(shmq_send(q1, "pending", 7, 0), 0);

	shmq_seg_close(fix->seg);
	fix->seg = NULL;

	/* The mapping stays while handles are open. */
	{
		char buf[16];

		t_assert_err(shmq_recv(r1, buf, sizeof(buf), 0), 7);
		assert_memory_equal(buf, "pending", 7);
	}
	roundtrip(q1, r1, "after seg_close");
	roundtrip(q2, q2, "q2 too");
	shmq_close(q1);
	roundtrip(r1, r1, "one handle left on q1");
	shmq_close(r1);
	roundtrip(q2, q2, "the last handle");
	shmq_close(q2);

	/* The segment itself is intact for others. */
	t_assert_err(shmq_seg_open(fix->name, &fix->seg), 0);
	t_assert_err(shmq_open(fix->seg, "q1", &q1), 0);
	roundtrip(q1, q1, "reattached");
	shmq_close(q1);
}

static void test_seg_unlink_while_attached(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *other, *fresh;
	shmq *q, *q_other, *q_fresh;
	char path[128];

	t_shm_path(path, sizeof(path), fix->name);
	t_assert_err(shmq_create(fix->seg, "q", NULL), 0);
	t_assert_err(shmq_seg_open(fix->name, &other), 0);
	t_assert_err(shmq_seg_unlink(fix->name), 0);
	assert_gone(path);
	t_assert_err(shmq_seg_open(fix->name, &fresh), -ENOENT);
	t_assert_err(shmq_seg_unlink(fix->name), -ENOENT);

	/* Both existing attachments keep working, on the same memory. */
	t_assert_err(shmq_create(fix->seg, "later", NULL), 0);
	t_assert_err(shmq_open(other, "later", &q_other), 0);
	t_assert_err(shmq_open(fix->seg, "later", &q), 0);
	roundtrip(q, q_other, "unlinked segment");
	roundtrip(q_other, q, "both ways");

	/* A new segment may take the name; it is independent. */
	t_assert_err(shmq_seg_create(fix->name, &attr, &fresh), 0);
	t_assert_err(shmq_open(fresh, "later", &q_fresh), -ENOENT);
	t_assert_err(shmq_open(fresh, "q", &q_fresh), -ENOENT);
	t_assert_err(shmq_create(fresh, "later", NULL), 0);
	t_assert_err(shmq_open(fresh, "later", &q_fresh), 0);
	t_assert_err(shmq_send(q, "old", 3, 0), 0);
	{
		char buf[8];

		t_assert_err(shmq_recv(q_fresh, buf, sizeof(buf), 0), -EAGAIN);
	}
	roundtrip(q_fresh, q_fresh, "new");
	{
		char buf[8];

		t_assert_err(shmq_recv(q_other, buf, sizeof(buf), 0), 3);
	}
	shmq_close(q_fresh);
	shmq_close(q_other);
	shmq_close(q);
	shmq_seg_close(other);
	shmq_seg_close(fresh);
}

/* ---- permissions ------------------------------------------------------ */

/*
 * Run @fn in a child that dropped root to nobody; it stores its results in
 * @res (shared memory) and exits 0 if it got that far.
 */
static void run_as_nobody(void (*fn)(int *res, const void *arg),
			  const void *arg, int *res)
{
	pid_t pid = t_fork(20);
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(10);
		fn(res, arg);
		_exit(0);
	}
	status = t_wait_child(pid);
	t_assert_exit0(status);
}

static void nobody_seg_ops(int *res, const void *arg)
{
	const char *const *names = arg;
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *s;

	res[0] = shmq_seg_open(names[0], &s);
	res[1] = shmq_seg_unlink(names[0]);
	res[2] = shmq_seg_open(names[1], &s);		/* mode 0644 */
	res[3] = shmq_seg_create(names[2], &attr, &s);	/* root's dir */
	res[4] = shmq_seg_open(names[3], &s);		/* root's dir */
	res[5] = shmq_seg_unlink(names[3]);
}

static void test_seg_eacces(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	const char *name2 = t_segname();
	const char *dir = t_tmpdir();		/* 0700, root's */
	char newpath[256], oldpath[256];
	const char *names[4] = { fix->name, name2, newpath, oldpath };
	shmq_seg *s;
	int *res;

	if (geteuid() != 0)
		t_skip("needs root (it runs a part as nobody; root ignores modes)");
	res = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(res != MAP_FAILED);

	snprintf(newpath, sizeof(newpath), "%s/new", dir);
	snprintf(oldpath, sizeof(oldpath), "%s/old", dir);
	attr.mode = 0644;
	t_assert_err(shmq_seg_create(name2, &attr, &s), 0);
	shmq_seg_close(s);
	attr.mode = 0666;	/* the directory, not the file, denies */
	t_assert_err(shmq_seg_create(oldpath, &attr, &s), 0);
	shmq_seg_close(s);

	run_as_nobody(nobody_seg_ops, names, res);
	t_assert_err(res[0], -EACCES);	/* open a 0600 segment of root's */
	t_assert_err(res[1], -EACCES);	/* unlink it (sticky /dev/shm) */
	t_assert_err(res[2], -EACCES);	/* open read-only for us */
	t_assert_err(res[3], -EACCES);	/* create in a directory of root's */
	t_assert_err(res[4], -EACCES);	/* open a path in it */
	t_assert_err(res[5], -EACCES);	/* unlink a path in it */
	munmap(res, 4096);

	/* Nothing was removed. */
	t_assert_err(shmq_seg_open(fix->name, &s), 0);
	shmq_seg_close(s);
	t_assert_err(shmq_seg_open(oldpath, &s), 0);
	shmq_seg_close(s);
}

/* ---- the process table ------------------------------------------------ */

static void test_seg_eusers(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *s[4] = { NULL };
	int i, rc = 0;

	attr.max_procs = 3;
	t_assert_err(shmq_seg_create(fix->name, &attr, &fix->seg), 0);
	/* The creator holds one entry: two more attachments fit. */
	for (i = 0; i < 2; i++)
		t_assert_err(shmq_seg_open(fix->name, &s[i]), 0);
	rc = shmq_seg_open(fix->name, &s[2]);
	if (rc == 0)
		shmq_seg_close(s[2]);
	t_assert_err(rc, -EUSERS);

	/* Closing an attachment frees its entry. */
	shmq_seg_close(s[0]);
	t_assert_err(shmq_seg_open(fix->name, &s[0]), 0);
	t_assert_err(shmq_seg_open(fix->name, &s[2]), -EUSERS);
	shmq_seg_close(s[0]);
	shmq_seg_close(s[1]);
}

static void eusers_child_ops(int *res, const void *arg)
{
	shmq_seg *s;

	res[0] = shmq_seg_open(arg, &s);
}

/* A process that died without closing gives its entry back. */
static void test_seg_dead_process_entry_reused(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = small_attr();
	shmq_seg *s = NULL;
	int *res, rc;
	pid_t pid;

	attr.max_procs = 2;
	t_assert_err(shmq_seg_create(fix->name, &attr, &fix->seg), 0);
	res = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(res != MAP_FAILED);

	pid = t_fork(20);
	assert_true(pid >= 0);
	if (pid == 0) {
		eusers_child_ops(res, fix->name);
		_exit(res[0] == 0 ? 0 : 1);	/* dies attached */
	}
	t_assert_exit0(t_wait_child(pid));
	t_assert_err(res[0], 0);
	munmap(res, 4096);

	rc = shmq_seg_open(fix->name, &s);
	t_assert_err(rc, 0);
	shmq_seg_close(s);
}

/* ---- out of memory -------------------------------------------------------- */

static void enomem_child_ops(int *res, const void *arg)
{
	const char *const *names = arg;
	struct shmq_seg_attr attr = { .size = 64 << 20 };
	shmq_seg *s;

	if (t_limit_address_space(1 << 20))
		_exit(11);
	res[0] = shmq_seg_open(names[0], &s);
	res[1] = shmq_seg_create(names[1], &attr, &s);
}

/* Mapping a 64 MiB segment fails in a process limited to 1 MiB more. */
static void test_seg_enomem(void **state)
{
	struct t_fix *fix = *state;
	struct shmq_seg_attr attr = { .size = 64 << 20 };
	const char *names[2] = { fix->name, t_segname() };
	char path[128];
	int *res;
	pid_t pid;

	if (T_SANITIZED)
		t_skip("RLIMIT_AS and the sanitizer's shadow memory do not mix");
	t_assert_err(shmq_seg_create(fix->name, &attr, &fix->seg), 0);
	res = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(res != MAP_FAILED);
	pid = t_fork(20);
	assert_true(pid >= 0);
	if (pid == 0) {
		enomem_child_ops(res, names);
		_exit(0);
	}
	t_assert_exit0(t_wait_child(pid));
	t_assert_err(res[0], -ENOMEM);
	t_assert_err(res[1], -ENOMEM);
	munmap(res, 4096);
	/* The failed creation left no name behind. */
	assert_gone(t_shm_path(path, sizeof(path), names[1]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, t_teardown)
		T(test_seg_create_open_close_unlink, t_setup_noseg),
		T(test_seg_close_null, t_setup_noseg),
		T(test_seg_default_attr, t_setup_noseg),
		T(test_seg_size_rounded_to_page, t_setup_noseg),
		T(test_seg_default_name_env, t_setup_noseg),
		T(test_seg_default_name_unset, t_setup_noseg),
		T(test_seg_file_backed, t_setup_noseg),
		T(test_seg_create_eexist, t_setup),
		T(test_seg_open_enoent, t_setup_noseg),
		T(test_seg_bad_names, t_setup_noseg),
		T(test_seg_name_63_bytes, t_setup_noseg),
		T(test_seg_valid_name_chars, t_setup_noseg),
		T(test_seg_mode_ignores_umask, t_setup_noseg),
		T(test_seg_mode_default, t_setup_noseg),
		T(test_seg_attr_invalid, t_setup_noseg),
		T(test_seg_attr_limits_ok, t_setup_noseg),
		T(test_seg_create_enospc, t_setup_noseg),
		T(test_seg_open_garbage, t_setup_noseg),
		T(test_seg_open_empty_file, t_setup_noseg),
		T(test_seg_open_truncated, t_setup_noseg),
		T(test_seg_open_other_layout_version, t_setup_noseg),
		T(test_seg_open_bad_magic, t_setup_noseg),
		T(test_seg_close_with_queues_open, t_setup),
		T(test_seg_unlink_while_attached, t_setup),
		T(test_seg_eacces, t_setup),
		T(test_seg_eusers, t_setup_noseg),
		T(test_seg_dead_process_entry_reused, t_setup_noseg),
		T(test_seg_enomem, t_setup_noseg),
#undef T
	};

	return cmocka_run_group_tests_name("seg", tests, t_group_setup,
					   t_group_teardown);
}
