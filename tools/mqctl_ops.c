/* SPDX-License-Identifier: MIT */
/*
 * mqctl_ops.c - the commands that change something: init, destroy,
 * create, delete, purge, send, publish, recv, recover.
 *
 * "Nothing mqctl does loses a message that it was not asked to drop":
 * send and publish report exactly how many messages went in before a
 * failure (a publish that fails reached no queue: shmq_publish() is all or
 * nothing); recv
 * takes only as many as it prints (a message too long for the queue's
 * msg_size cannot exist, so every one fits the buffer); purge counts what
 * it drops and goes through the ordinary receive path.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "mqctl.h"

/* ---- init and destroy ---------------------------------------------------------- */

/*
 * The limits of init's values, as the library enforces them, so that a
 * value out of range is refused with the range instead of "invalid
 * argument".  SEG_MIN_SIZE and the 2^46 cap are shm/layout.h's and
 * shm/seg.c's (attr_resolve()), which mqctl does not include.
 */
#define SEG_MIN_BYTES ((uint64_t)64 << 10)
#define SEG_MAX_BYTES ((uint64_t)1 << 46)

static int on_init(struct ctx *c, int code, const char *arg, void *data)
{
	struct shmq_seg_attr *a = data;
	uint64_t v;
	char *end;
	int rc;

	switch (code) {
	case OPT_SIZE:
		rc = parse_size(arg, SEG_MAX_BYTES, &v);
		if (rc == -2)
			return usage(c, "--size '%s' does not fit: a segment "
				     "is 64 KiB to 64 TiB", arg);
		if (rc)
			return bad_value(c, "--size", arg, rc);
		if (v < SEG_MIN_BYTES)
			return usage(c, "--size '%s' is too small: a segment "
				     "is 64 KiB to 64 TiB", arg);
		a->size = (size_t)v;
		break;
	case OPT_MODE:
		errno = 0;
		v = strtoull(arg, &end, 8);
		if (!*arg || *end || errno)
			return bad_value(c, "--mode", arg, -1);
		/*
		 * The mode is applied exactly (no umask): an execute, setuid,
		 * setgid or sticky bit on a data file only invites misuse.
		 */
		if (v & ~(uint64_t)0666)
			return usage(c, "--mode %s: bits %04llo not allowed "
				     "(setuid/setgid/sticky/execute); a "
				     "segment's mode is within 0666", arg,
				     (unsigned long long)(v & ~(uint64_t)0666));
		if (v == 0)
			return usage(c, "--mode %s: no permission at all; a "
				     "segment's mode is 0001..0666", arg);
		a->mode = (mode_t)v;
		break;
	case OPT_GROUP: {
		struct group *gr = getgrnam(arg);

		if (gr) {
			a->gid = (uint32_t)gr->gr_gid;
		} else {
			rc = parse_count(arg, UINT32_MAX - 1, &v);
			if (rc)
				return usage(c, "--group '%s': no such group",
					     arg);
			a->gid = (uint32_t)v;
		}
		a->flags |= SHMQ_SEG_GROUP;
		break;
	}
	case OPT_MAX_QUEUES:
		rc = parse_count(arg, UINT32_MAX, &v);
		if (rc == -1)
			return bad_value(c, "--max-queues", arg, rc);
		if (rc || !v || v > SHMQ_MAX_QUEUES)
			return usage(c, "--max-queues %s is out of range: "
				     "1..%u", arg, SHMQ_MAX_QUEUES);
		a->max_queues = (uint32_t)v;
		break;
	case OPT_MAX_PROCS:
		rc = parse_count(arg, UINT32_MAX, &v);
		if (rc == -1)
			return bad_value(c, "--max-procs", arg, rc);
		if (rc || !v || v > SHMQ_MAX_PROCS)
			return usage(c, "--max-procs %s is out of range: 1..%u",
				     arg, SHMQ_MAX_PROCS);
		a->max_procs = (uint32_t)v;
		break;
	}
	return 0;
}

/* The library's rule for names (include/shmq.h, top); mqctl.h. */
int name_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
			  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	return n && !s[n] && n <= SHMQ_NAME_MAX;
}

/* The size the library will reserve: the default, rounded to pages. */
static uint64_t init_size(const struct shmq_seg_attr *a)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), v;

	v = a->size ? a->size : SHMQ_DEFAULT_SEG_SIZE;
	if (page && page < ((uint64_t)1 << 30))
		v = (v + page - 1) / page * page;
	return v;
}

/*
 * -ENOSPC from shmq_seg_create() is the file system (/dev/shm, or the
 * directory of a file path) refusing to reserve the size: say so, with
 * what statvfs() says is free.
 */
static int init_nospace(const struct ctx *c, const struct shmq_seg_attr *a)
{
	char dir[4200], want[32], avail[32], total[32];
	struct statvfs sv;

	seg_dir(c->seg, dir, sizeof(dir));
	fmt_bytes(init_size(a), want, sizeof(want));
	if (statvfs(dir, &sv) < 0)
		return fail_own(c, NULL, -ENOSPC, "no space on the file system "
				"of %s for a segment of %s", dir, want);
	fmt_bytes((uint64_t)sv.f_bavail * sv.f_frsize, avail, sizeof(avail));
	fmt_bytes((uint64_t)sv.f_blocks * sv.f_frsize, total, sizeof(total));
	return fail_own(c, NULL, -ENOSPC, "no space on %s for a segment of %s: "
			"%s free of %s (try a smaller --size, or free some "
			"there)", dir, want, avail, total);
}

int cmd_init(struct ctx *c, int argc, char **argv)
{
	struct shmq_seg_attr a = { 0 };
	struct shmq_seg_info in;
	char path[4200], b[32];
	shmq_seg *seg;
	int rc;

	rc = parse_opts(c, find_cmd("init"), argc, argv, on_init, &a);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	rc = shmq_seg_create(c->seg, &a, &seg);
	if (rc == -ENOSPC)
		return init_nospace(c, &a);
	if (rc == -EINVAL && !strchr(c->seg, '/') && !name_ok(c->seg))
		return fail(c, NULL, rc, "a segment name is 1-63 bytes of "
			    "[A-Za-z0-9._-]; a file path has a '/'");
	if (rc == -EINVAL) {
		uint64_t v = init_size(&a);

		/* Every value was checked: the tables do not fit the size. */
		return fail(c, NULL, rc, "--size %s leaves no room for the "
			    "tables of %u queues and %u processes plus one "
			    "queue: give a larger --size, or a smaller "
			    "--max-queues or --max-procs",
			    fmt_bytes(v, b, sizeof(b)),
			    a.max_queues ? a.max_queues :
			    SHMQ_DEFAULT_MAX_QUEUES,
			    a.max_procs ? a.max_procs : SHMQ_DEFAULT_MAX_PROCS);
	}
	if (rc == -EEXIST || rc == -EISDIR || rc == -ELOOP) {
		const char *why;
		int err = rc;

		seg_path(c->seg, path, sizeof(path));
		why = file_kind_problem(path, &err);
		if (why)
			return fail_own(c, NULL, rc, "%s %s; nothing created",
					path, why);
	}
	if (rc)
		return fail(c, NULL, rc, NULL);
	rc = shmq_seg_info(seg, &in);
	shmq_seg_close(seg);
	if (rc)
		return fail(c, NULL, rc, NULL);
	seg_path(c->seg, path, sizeof(path));
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"path\":");
		json_str(stdout, path);
		printf(",\"created\":true,\"size\":%llu,\"mode\":\"%04o\","
		       "\"uid\":%u,\"gid\":%u,\"max_queues\":%u,"
		       "\"max_procs\":%u}\n", (unsigned long long)in.size,
		       in.mode, in.uid, in.gid, in.max_queues, in.max_procs);
		return 0;
	}
	printf("created segment %s (%s): %s, mode %04o, gid %u, "
	       "%u queues, %u processes at most\n", c->seg, path,
	       fmt_bytes(in.size, b, sizeof(b)), in.mode, in.gid,
	       in.max_queues, in.max_procs);
	return 0;
}

static int on_force(struct ctx *c, int code, const char *arg, void *data)
{
	(void)c;
	(void)arg;
	if (code == OPT_FORCE)
		*(int *)data = 1;
	return 0;
}

int cmd_destroy(struct ctx *c, int argc, char **argv)
{
	struct shmq_seg_info in = { 0 };
	int force = 0, rc, err;
	char path[4200];
	const char *why;
	shmq_seg *seg;

	rc = parse_opts(c, find_cmd("destroy"), argc, argv, on_force, &force);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	seg_path(c->seg, path, sizeof(path));
	/* An observer is not counted among the attached processes. */
	rc = shmq_seg_observe(c->seg, &seg);
	if (rc == 0) {
		rc = shmq_seg_info(seg, &in);
		shmq_seg_close(seg);
		if (rc)
			return fail(c, NULL, rc, NULL);
		if (in.procs && !force)
			return fail(c, NULL, -EBUSY, "%u process(es) attached "
				    "('mqctl procs'; --force to unlink anyway)",
				    in.procs);
	} else if ((why = file_kind_problem(path, &err)) != NULL) {
		/* unlink() removes a link itself, never what it points to. */
		if (!force || err == -EISDIR)
			return fail_own(c, NULL, err, "%s %s; not removed%s",
					path, why, err == -EISDIR ? "" :
					" (--force unlinks it)");
	} else if (rc == -EPROTO && !force) {
		return fail(c, NULL, rc, "not removed; --force removes it "
			    "anyway");
	} else if (rc != -EPROTO) {
		return fail(c, NULL, rc, NULL);
	}
	rc = shmq_seg_unlink(c->seg);
	if (rc)
		return fail(c, NULL, rc, NULL);
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"path\":");
		json_str(stdout, path);
		printf(",\"destroyed\":true,\"attached\":%u}\n", in.procs);
		return 0;
	}
	printf("destroyed segment %s", c->seg);
	if (in.procs)
		printf(" (%u process(es) still attached keep it until they "
		       "detach)", in.procs);
	printf("\n");
	return 0;
}

/* ---- create, delete ---------------------------------------------------------- */

static int on_create(struct ctx *c, int code, const char *arg, void *data)
{
	struct shmq_attr *a = data;
	uint64_t v;
	int rc;

	if (code == OPT_CAPACITY) {
		rc = parse_count(arg, UINT32_MAX, &v);
		if (rc)
			return bad_value(c, "--capacity", arg, rc);
		if (!v || v > SHMQ_MAX_CAPACITY)
			return usage(c, "--capacity %s is out of range: 1..%u "
				     "(rounded up to a power of two)", arg,
				     SHMQ_MAX_CAPACITY);
		a->capacity = (uint32_t)v;
	} else if (code == OPT_MSG_SIZE) {
		rc = parse_size(arg, UINT32_MAX, &v);
		if (rc == -1)
			return bad_value(c, "--msg-size", arg, rc);
		if (rc || !v || v > SHMQ_MAX_MSG_SIZE)
			return usage(c, "--msg-size %s is out of range: 1..%u "
				     "bytes (64M)", arg, SHMQ_MAX_MSG_SIZE);
		a->msg_size = (uint32_t)v;
	} else if (code == OPT_SPSC) {
		a->flags |= SHMQ_SPSC;
	} else if (code == OPT_OVERFLOW) {
		a->flags &= ~(SHMQ_DROP_NEWEST | SHMQ_DROP_OLDEST);
		if (strcmp(arg, "drop-newest") == 0)
			a->flags |= SHMQ_DROP_NEWEST;
		else if (strcmp(arg, "drop-oldest") == 0)
			a->flags |= SHMQ_DROP_OLDEST;
		else if (strcmp(arg, "block") != 0)
			return usage(c, "--overflow '%s': a policy is block, "
				     "drop-newest or drop-oldest", arg);
	} else if (code == OPT_AUTODELETE) {
		a->flags |= SHMQ_AUTODELETE;
	} else if (code == OPT_MAX_UNACKED || code == OPT_PREFETCH) {
		const char *what = code == OPT_PREFETCH ? "--prefetch" :
				   "--max-unacked";

		/* 0 would mean the default: say nothing rather than that. */
		rc = parse_count(arg, UINT32_MAX, &v);
		if (rc == -1)
			return bad_value(c, what, arg, rc);
		if (rc || !v || v > SHMQ_MAX_UNACKED)
			return usage(c, "%s %s is out of range: 1..%u", what,
				     arg, SHMQ_MAX_UNACKED);
		if (code == OPT_PREFETCH)
			a->prefetch = (uint32_t)v;
		else
			a->max_unacked = (uint32_t)v;
	} else if (code == OPT_MAX_DELIVERIES) {
		/* 0 is a value here: no limit, as the default. */
		rc = parse_count(arg, UINT32_MAX, &v);
		if (rc)
			return bad_value(c, "--max-deliveries", arg, rc);
		a->max_deliveries = (uint32_t)v;
	} else if (code == OPT_DEAD_LETTER) {
		if (!name_ok(arg) || strcmp(arg, ".") == 0 ||
		    strcmp(arg, "..") == 0)
			return usage(c, "--dead-letter '%s': an exchange name "
				     "is 1-63 bytes of [A-Za-z0-9._-], not '.' "
				     "or '..'", arg);
		snprintf(a->dead_letter, sizeof(a->dead_letter), "%s", arg);
	}
	return 0;
}

/* Any acknowledged-delivery attribute given (0.4's fields of shmq_attr). */
static int ack_attrs(const struct shmq_attr *a)
{
	return a->max_unacked || a->prefetch || a->max_deliveries ||
	       a->dead_letter[0];
}

/*
 * The library's -EINVAL for a queue with acknowledged-delivery attributes
 * (the name and the other attributes already passed mqctl's checks):
 * which one, as far as mqctl can tell.  A --prefetch alone can pass the
 * default max_unacked, min(capacity, SHMQ_DEFAULT_UNACKED) (shmq.h), which
 * mqctl leaves to the library and only recomputes for the message.
 */
static int create_einval(const struct ctx *c, const struct shmq_attr *a)
{
	uint32_t cap = a->capacity ? a->capacity : SHMQ_DEFAULT_CAPACITY;

	if (a->prefetch && !a->max_unacked)
		return fail(c, c->argv[0], -EINVAL, "--prefetch %u is more "
			    "than the queue's max_unacked (default "
			    "min(capacity, %u): %u here); give --max-unacked "
			    "too", a->prefetch, SHMQ_DEFAULT_UNACKED,
			    cap < SHMQ_DEFAULT_UNACKED ? cap :
			    SHMQ_DEFAULT_UNACKED);
	return fail(c, c->argv[0], -EINVAL, "the library refused the "
		    "acknowledged-delivery attributes (max_unacked %u, "
		    "prefetch %u, max_deliveries %u, dead-letter '%s'; 0 and "
		    "'' are the defaults)", a->max_unacked, a->prefetch,
		    a->max_deliveries, a->dead_letter);
}

/*
 * A dead-letter exchange that is not there (yet) is no error, but its
 * messages would be dropped: say so, on stderr, not with --json.
 */
static void dead_letter_note(const struct ctx *c, shmq_seg *seg,
			     const struct shmq_attr *a)
{
	struct shmq_exchange_info x;
	struct shmq_queue_info qi;

	if (c->json)
		return;
	if (a->dead_letter[0] && !a->max_deliveries)
		fprintf(stderr, "note: without --max-deliveries no message "
			"is ever dead-lettered to %s\n", a->dead_letter);
	if (!a->dead_letter[0] ||
	    shmq_exchange_stat(seg, a->dead_letter, &x) == 0)
		return;
	if (shmq_queue_stat(seg, a->dead_letter, &qi) == 0)
		fprintf(stderr, "note: '%s' is a queue, not an exchange: "
			"dead-lettered messages are dropped until an exchange "
			"of that name exists\n", a->dead_letter);
	else
		fprintf(stderr, "note: no exchange '%s' yet: dead-lettered "
			"messages are dropped until it exists\n",
			a->dead_letter);
}

int create_nospace(const struct ctx *c, shmq_seg *seg, const char *what,
		   const char *name, const char *blocks)
{
	uint32_t xlive, xgone, used;
	struct shmq_seg_info in;
	char b1[32], b2[32];
	int q = strcmp(what, "queue") == 0;

	if (shmq_seg_info(seg, &in))
		return fail(c, q ? name : NULL, -ENOSPC, NULL);
	/* Queues and exchanges share the directory's entries. */
	count_exchanges(seg, &xlive, &xgone);
	used = in.queues + in.unlinked + xlive + xgone;
	if (used >= in.max_queues)
		return fail_own(c, q ? name : NULL, -ENOSPC, "%s '%s': no "
				"space: the queue directory is full: %u of %u "
				"entries (%u unlinked, still open; %u for "
				"exchanges)", what, name, used, in.max_queues,
				in.unlinked + xgone, xlive + xgone);
	return fail_own(c, q ? name : NULL, -ENOSPC, "%s '%s': no space: not "
			"enough free segment memory for its %s: the largest "
			"free block is %s (%s free in all)", what, name, blocks,
			fmt_bytes(in.heap_largest, b1, sizeof(b1)),
			fmt_bytes(in.heap_free, b2, sizeof(b2)));
}

int cmd_create(struct ctx *c, int argc, char **argv)
{
	struct shmq_attr a = { 0 };
	struct shmq_queue_info q;
	shmq_seg *seg;
	int rc;

	rc = parse_opts(c, find_cmd("create"), argc, argv, on_create, &a);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	/* The sender of an SPSC queue may not receive, so cannot evict. */
	if ((a.flags & SHMQ_SPSC) && (a.flags & SHMQ_DROP_OLDEST))
		return usage(c, "--overflow drop-oldest is not for --spsc "
			     "queues (their sender cannot receive)");
	/*
	 * The library refuses these on an SPSC queue (-EINVAL): its one
	 * receiver gets a message it held again after a crash anyway, and
	 * shmq_fetch() is -EOPNOTSUPP there.  Said here, as a usage error
	 * naming the flags, rather than as a bare "invalid argument".
	 */
	if ((a.flags & SHMQ_SPSC) && ack_attrs(&a))
		return usage(c, "--max-unacked, --prefetch, --max-deliveries "
			     "and --dead-letter are not for --spsc queues "
			     "(acknowledged delivery is mpmc only)");
	if (a.max_unacked && a.prefetch > a.max_unacked)
		return usage(c, "--prefetch %u is more than --max-unacked %u "
			     "(one handle cannot owe more than the queue "
			     "holds)", a.prefetch, a.max_unacked);
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	rc = shmq_create(seg, c->argv[0], &a);
	if (rc == -ENOSPC) {
		rc = create_nospace(c, seg, "queue", c->argv[0],
				    a.flags & SHMQ_SPSC ? "ring" :
				    "ring and unacknowledged area");
		shmq_seg_close(seg);
		return rc;
	}
	if (!rc)
		rc = shmq_queue_stat(seg, c->argv[0], &q);
	if (!rc)
		dead_letter_note(c, seg, &a);
	shmq_seg_close(seg);
	if (rc == -EINVAL && name_ok(c->argv[0]) && ack_attrs(&a))
		return create_einval(c, &a);
	if (rc)
		return fail(c, c->argv[0], rc, NULL);
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"queue\":");
		json_str(stdout, q.name);
		printf(",\"created\":true,\"capacity\":%u,\"msg_size\":%u,"
		       "\"type\":\"%s\",\"overflow\":\"%s\","
		       "\"auto_delete\":%s,\"max_unacked\":%u,\"prefetch\":%u,"
		       "\"max_deliveries\":%u,\"dead_letter\":", q.capacity,
		       q.msg_size, queue_type(q.flags), queue_overflow(q.flags),
		       q.flags & SHMQ_AUTODELETE ? "true" : "false",
		       q.max_unacked, q.prefetch, q.max_deliveries);
		if (q.dead_letter[0])
			json_str(stdout, q.dead_letter);
		else
			printf("null");
		printf("}\n");
		return 0;
	}
	printf("created queue %s: capacity %u, msg_size %u, type %s, "
	       "overflow %s%s", q.name, q.capacity, q.msg_size,
	       queue_type(q.flags), queue_overflow(q.flags),
	       q.flags & SHMQ_AUTODELETE ? ", auto-delete" : "");
	/*
	 * The acknowledged-delivery settings when any was asked for (the
	 * line stays as it was for a queue that takes the defaults).
	 */
	if (ack_attrs(&a)) {
		printf("; unacked at most %u, prefetch %u, ", q.max_unacked,
		       q.prefetch);
		if (q.max_deliveries)
			printf("max_deliveries %u, dead-letter %s",
			       q.max_deliveries, q.dead_letter[0] ?
			       q.dead_letter : "none (dropped)");
		else
			printf("max_deliveries unlimited, dead-letter %s",
			       q.dead_letter[0] ? q.dead_letter : "none");
	}
	printf("\n");
	return 0;
}

int cmd_delete(struct ctx *c, int argc, char **argv)
{
	struct shmq_exchange_info x;
	struct shmq_queue_info q;
	shmq_seg *seg;
	int rc;

	rc = parse_opts(c, find_cmd("delete"), argc, argv, NULL, NULL);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	rc = shmq_queue_stat(seg, c->argv[0], &q);
	if (!rc)
		rc = shmq_unlink(seg, c->argv[0]);
	/* Queues and exchanges share names; delete takes queues only. */
	if (rc == -ENOENT && shmq_exchange_stat(seg, c->argv[0], &x) == 0) {
		shmq_seg_close(seg);
		return fail(c, c->argv[0], rc, "'%s' is an exchange ('mqctl "
			    "exchange delete')", c->argv[0]);
	}
	shmq_seg_close(seg);
	if (rc)
		return fail(c, c->argv[0], rc, NULL);
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"queue\":");
		json_str(stdout, c->argv[0]);
		printf(",\"deleted\":true,\"handles\":%u}\n", q.handles);
		return 0;
	}
	printf("deleted queue %s", c->argv[0]);
	if (q.handles)
		printf(" (%u open handle(s) keep its storage until closed)",
		       q.handles);
	printf("\n");
	return 0;
}

/* ---- purge ---------------------------------------------------------------------- */

/* Attach and open @name; 0 or the exit status (message printed). */
static int open_queue(const struct ctx *c, const char *name, shmq_seg **seg,
		      shmq **q)
{
	int rc;

	if (seg_attach(c, seg))
		return EXIT_FAIL;
	rc = shmq_open(*seg, name, q);
	if (rc) {
		shmq_seg_close(*seg);
		return fail(c, name, rc, NULL);
	}
	return 0;
}

/*
 * An SHMQ_AUTODELETE queue goes when its last handle closes: when mqctl's
 * was the last, say so (on stderr, after success, not with --json), so
 * that a queue vanishing after 'mqctl recv' is no surprise.
 */
static void autodelete_note(const struct ctx *c, shmq_seg *seg,
			    const char *name, uint32_t flags)
{
	struct shmq_queue_info qi;

	if (!(flags & SHMQ_AUTODELETE) || c->json)
		return;
	if (shmq_queue_stat(seg, name, &qi) == -ENOENT)
		fprintf(stderr, "note: auto-delete queue %s was deleted when "
			"mqctl closed it (it held the last handle)\n", name);
}

/*
 * Why an SPSC queue said -EBUSY: another handle holds the side we need.
 * Into @buf: who holds it, as the library sees it now (the holder may
 * have gone since, then "another handle").  "" for an MPMC queue.
 */
static const char *busy_why(shmq_seg *seg, const char *name, int side,
			    char *buf, size_t len)
{
	struct shmq_queue_info qi;
	const char *what = side ? "receiving" : "sending";
	uint32_t pid;

	buf[0] = 0;
	if (shmq_queue_stat(seg, name, &qi) || !(qi.flags & SHMQ_SPSC))
		return buf;
	pid = side ? qi.receiver_pid : qi.sender_pid;
	if (pid)
		snprintf(buf, len, "the %s side of this SPSC queue is held by "
			 "pid %u (one %s at a time)", what, pid,
			 side ? "receiver" : "sender");
	else
		snprintf(buf, len, "the %s side of this SPSC queue is held by "
			 "another handle (one %s at a time)", what,
			 side ? "receiver" : "sender");
	return buf;
}

int cmd_purge(struct ctx *c, int argc, char **argv)
{
	char why[160];
	shmq_seg *seg;
	shmq *q;
	int rc;

	rc = parse_opts(c, find_cmd("purge"), argc, argv, NULL, NULL);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (open_queue(c, c->argv[0], &seg, &q))
		return EXIT_FAIL;
	rc = shmq_purge(q);
	shmq_close(q);
	if (rc == -EBUSY && *busy_why(seg, c->argv[0], 1, why, sizeof(why))) {
		shmq_seg_close(seg);
		return fail(c, c->argv[0], rc, "%s; nothing purged", why);
	}
	shmq_seg_close(seg);
	if (rc < 0)
		return fail(c, c->argv[0], rc, NULL);
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"queue\":");
		json_str(stdout, c->argv[0]);
		printf(",\"purged\":%d}\n", rc);
	} else {
		printf("purged %d message(s) from %s\n", rc, c->argv[0]);
	}
	return 0;
}

/* ---- send ------------------------------------------------------------------------- */

struct send_opts {
	const char *file;
	int64_t timeout_ns;
};

static int on_send(struct ctx *c, int code, const char *arg, void *data)
{
	struct send_opts *o = data;
	int rc;

	if (code == OPT_FILE) {
		o->file = arg;
	} else if (code == OPT_TIMEOUT) {
		rc = parse_duration(arg, &o->timeout_ns);
		if (rc)
			return bad_value(c, "--timeout", arg, rc);
	}
	return 0;
}

/* The whole of @path, at most @max bytes (-EMSGSIZE beyond). */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
	size_t cap = max + 1, n = 0;
	char *buf = malloc(cap ? cap : 1);
	int fd, rc = 0;
	ssize_t r;

	if (!buf)
		return -ENOMEM;
	fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		rc = -errno;
		free(buf);
		return rc;
	}
	/* Read one byte past msg_size to tell "fits" from "too long". */
	while (n < cap) {
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (fd)
		close(fd);
	if (!rc && n > max)
		rc = -EMSGSIZE;
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return 0;
}

/*
 * Where send and publish put one message: its result, >= 0 (publish: the
 * queues it reached) or -errno.
 */
typedef int (*put_fn)(void *arg, const void *p, size_t n);

/*
 * Feed the messages of send and publish to @put, in order, until one
 * fails: the operands from c->argv[@first] on, else the bytes of --file
 * (at most @max) as one message, else each line of standard input
 * without its newline.  *@done counts the messages @put took.  Returns 0,
 * @put's error, or --file's (then *@file_err is set and nothing was put).
 */
static int feed(const struct ctx *c, const struct send_opts *o, int first,
		size_t max, put_fn put, void *arg, unsigned long *done,
		int *file_err)
{
	char *line = NULL;
	size_t cap = 0;
	int i, rc = 0;

	*done = 0;
	*file_err = 0;
	if (o->file) {
		char *buf = NULL;
		size_t len = 0;

		rc = read_file(o->file, max, &buf, &len);
		if (rc) {
			*file_err = 1;
			return rc;
		}
		rc = put(arg, buf, len);
		free(buf);
		*done += rc >= 0;
	} else if (c->argc > first) {
		for (i = first; i < c->argc && rc >= 0; i++) {
			rc = put(arg, c->argv[i], strlen(c->argv[i]));
			*done += rc >= 0;
		}
	} else {
		ssize_t n;

		while (rc >= 0 && (n = getline(&line, &cap, stdin)) >= 0) {
			if (n > 0 && line[n - 1] == '\n')
				n--;
			rc = put(arg, line, (size_t)n);
			*done += rc >= 0;
		}
		free(line);
	}
	return rc < 0 ? rc : 0;
}

struct send_sink {
	shmq *q;
	int64_t timeout_ns;
};

static int send_put(void *arg, const void *p, size_t n)
{
	struct send_sink *k = arg;

	return shmq_send(k->q, p, n, k->timeout_ns);
}

int cmd_send(struct ctx *c, int argc, char **argv)
{
	struct send_opts o = { NULL, 0 };
	struct send_sink k;
	struct shmq_attr a;
	const char *name;
	unsigned long sent = 0;
	char why[160];
	shmq_seg *seg;
	int rc, file_err;

	rc = parse_opts(c, find_cmd("send"), argc, argv, on_send, &o);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	name = c->argv[0];
	snprintf(c->jextra, sizeof(c->jextra), "\"sent\":0");
	if (o.file && c->argc > 1)
		return usage(c, "--file and MESSAGE operands exclude each other");
	if (open_queue(c, name, &seg, &k.q))
		return EXIT_FAIL;
	k.timeout_ns = o.timeout_ns;
	shmq_get_attr(k.q, &a);
	rc = feed(c, &o, 1, a.msg_size, send_put, &k, &sent, &file_err);
	shmq_close(k.q);
	if (file_err) {
		shmq_seg_close(seg);
		if (rc == -EMSGSIZE)
			return fail(c, name, rc, "--file %s is longer than "
				    "msg_size (%u bytes); nothing sent",
				    o.file, a.msg_size);
		/* The file's error, not the queue's: strerror. */
		return fail_sys(c, name, rc, "--file %s", o.file);
	}
	snprintf(c->jextra, sizeof(c->jextra), "\"sent\":%lu", sent);
	if (rc == -EBUSY && *busy_why(seg, name, 0, why, sizeof(why))) {
		shmq_seg_close(seg);
		return fail(c, name, rc, "message %lu not sent (%lu sent "
			    "before it): %s", sent + 1, sent, why);
	}
	/* -EAGAIN is one-sided here: a sender waits only for room. */
	if (rc == -EAGAIN)
		rc = fail_own(c, name, rc, "queue '%s' is full: message %lu "
			      "not sent (%lu sent before it); --timeout "
			      "waits for room", name, sent + 1, sent);
	else if (rc)
		rc = fail(c, name, rc, "message %lu not sent (%lu sent "
			  "before it)", sent + 1, sent);
	if (rc) {
		shmq_seg_close(seg);
		return rc;
	}
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"queue\":");
		json_str(stdout, name);
		printf(",\"sent\":%lu}\n", sent);
		shmq_seg_close(seg);
		return 0;
	}
	fprintf(stderr, "sent %lu message(s) to %s\n", sent, name);
	autodelete_note(c, seg, name, a.flags);
	shmq_seg_close(seg);
	return 0;
}

/* ---- publish ---------------------------------------------------------------------- */

struct pub_sink {
	const struct ctx *c;
	shmq_exchange *x;
	const char *key;
	int64_t timeout_ns;
	unsigned long n;                /* messages published */
	unsigned long long deliveries;  /* queues reached, summed */
	int *reached;                   /* per message, for --json */
	size_t cap;
};

/* Publish one message; print (text) or keep (JSON) how far it got. */
static int pub_put(void *arg, const void *p, size_t len)
{
	struct pub_sink *k = arg;
	int rc = shmq_publish(k->x, k->key, p, len, k->timeout_ns);

	if (rc < 0)
		return rc;
	k->n++;
	k->deliveries += (unsigned)rc;
	if (!k->c->json) {
		printf("message %lu: %d queue(s)%s\n", k->n, rc, rc ? "" :
		       " (unroutable: no binding matched and no alternate "
		       "exchange took it)");
		/* What is published is said now, whatever comes next. */
		fflush(stdout);
		return rc;
	}
	if (k->n > k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		int *r = realloc(k->reached, cap * sizeof(*r));

		if (!r)
			return rc;      /* published: only the list is short */
		k->reached = r;
		k->cap = cap;
	}
	k->reached[k->n - 1] = rc;
	return rc;
}

int cmd_publish(struct ctx *c, int argc, char **argv)
{
	struct send_opts o = { NULL, 0 };
	struct pub_sink k = { 0 };
	unsigned long done, i;
	const char *xname;
	size_t klen;
	shmq_seg *seg;
	int rc, file_err;

	rc = parse_opts(c, find_cmd("publish"), argc, argv, on_send, &o);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	xname = c->exchange = c->argv[0];
	k.c = c;
	k.key = c->argv[1];
	k.timeout_ns = o.timeout_ns;
	snprintf(c->jextra, sizeof(c->jextra), "\"published\":0");
	if (o.file && c->argc > 2)
		return usage(c, "--file and MESSAGE operands exclude each other");
	klen = strlen(k.key);
	if (klen > SHMQ_KEY_MAX)
		return usage(c, "KEY is %zu bytes; a routing key is 0-%u bytes",
			     klen, SHMQ_KEY_MAX);
	if (seg_attach(c, &seg))
		return EXIT_FAIL;
	rc = shmq_exchange_open(seg, xname, &k.x);
	if (rc) {
		rc = rc == -ENOENT ? no_exchange(c, seg, xname) :
		     fail(c, NULL, rc, NULL);
		shmq_seg_close(seg);
		return rc;
	}
	/* The library says whether it fits a matching queue (-EMSGSIZE). */
	rc = feed(c, &o, 2, SHMQ_MAX_MSG_SIZE, pub_put, &k, &done, &file_err);
	shmq_exchange_close(k.x);
	shmq_seg_close(seg);
	snprintf(c->jextra, sizeof(c->jextra), "\"published\":%lu", k.n);
	if (file_err && rc == -EMSGSIZE)
		rc = fail(c, NULL, rc, "--file %s is longer than the largest "
			  "message (%u bytes); nothing published", o.file,
			  SHMQ_MAX_MSG_SIZE);
	else if (file_err)
		rc = fail_sys(c, NULL, rc, "--file %s", o.file);
	else if (rc == -EAGAIN)
		rc = fail_own(c, NULL, rc, "exchange '%s': a matching queue is "
			      "full: message %lu published to no queue (%lu "
			      "published before it); --timeout waits for "
			      "room", xname, k.n + 1, k.n);
	else if (rc == -EMSGSIZE)
		rc = fail(c, NULL, rc, "message %lu published to no queue "
			  "(%lu published before it): with its key (%zu "
			  "bytes) it does not fit the msg_size of a matching "
			  "queue", k.n + 1, k.n, klen);
	else if (rc == -ENOENT)
		rc = fail(c, NULL, rc, "the exchange was deleted: message %lu "
			  "not published (%lu published before it)", k.n + 1,
			  k.n);
	else if (rc)
		rc = fail(c, NULL, rc, "message %lu published to no queue "
			  "(%lu published before it)", k.n + 1, k.n);
	if (rc) {
		free(k.reached);
		return rc;
	}
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"exchange\":");
		json_str(stdout, xname);
		printf(",\"key\":");
		json_str(stdout, k.key);
		printf(",\"published\":%lu,\"deliveries\":%llu,\"queues\":[",
		       k.n, k.deliveries);
		for (i = 0; k.reached && i < k.n && i < k.cap; i++)
			printf("%s%d", i ? "," : "", k.reached[i]);
		printf("]}\n");
	} else {
		fprintf(stderr, "published %lu message(s) through %s: %llu "
			"deliveries\n", k.n, xname, k.deliveries);
	}
	free(k.reached);
	return 0;
}

/* ---- recv ------------------------------------------------------------------------- */

struct recv_opts {
	uint64_t n;
	int64_t timeout_ns;
	int hex, raw, keys;
};

static int on_recv(struct ctx *c, int code, const char *arg, void *data)
{
	struct recv_opts *o = data;
	int rc;

	switch (code) {
	case OPT_N:
		rc = parse_count(arg, UINT32_MAX, &o->n);
		if (rc)
			return bad_value(c, "-n", arg, rc);
		if (!o->n)
			return usage(c, "-n must be at least 1");
		break;
	case OPT_TIMEOUT:
		rc = parse_duration(arg, &o->timeout_ns);
		if (rc)
			return bad_value(c, "--timeout", arg, rc);
		break;
	case OPT_HEX:
		o->hex = 1;
		break;
	case OPT_RAW:
		o->raw = 1;
		break;
	case OPT_KEYS:
		o->keys = 1;
		break;
	}
	if (o->hex && o->raw)
		return usage(c, "--hex and --raw exclude each other");
	/* Raw bytes have no separator to put a key before. */
	if (o->keys && o->raw)
		return usage(c, "--keys and --raw exclude each other");
	return 0;
}

/* One received message as text: [key TAB] bytes, per --hex / --raw. */
static void print_msg(const struct recv_opts *o, const struct shmq_meta *m,
		      const unsigned char *buf, size_t n)
{
	if (m) {
		char k[KEY_TEXT_MAX];

		/* The key escaped ("" when empty), a tab. */
		fputs(key_text(m->key, m->key_len <= SHMQ_KEY_MAX ?
			       m->key_len : SHMQ_KEY_MAX, k, sizeof(k)),
		      stdout);
		putchar('\t');
	}
	if (o->raw) {
		fwrite(buf, 1, n, stdout);
	} else if (o->hex) {
		print_hex(stdout, buf, n);
		putchar('\n');
	} else {
		fwrite(buf, 1, n, stdout);
		putchar('\n');
	}
}

int cmd_recv(struct ctx *c, int argc, char **argv)
{
	struct recv_opts o = { 1, 0, 0, 0, 0 };
	struct shmq_meta meta;
	struct shmq_attr a;
	const char *name;
	unsigned char *buf;
	char why[160];
	uint64_t got = 0;
	shmq_seg *seg;
	ssize_t n = 0;
	shmq *q;
	int rc;

	rc = parse_opts(c, find_cmd("recv"), argc, argv, on_recv, &o);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	name = c->argv[0];
	if (open_queue(c, name, &seg, &q))
		return EXIT_FAIL;
	shmq_get_attr(q, &a);
	buf = malloc(a.msg_size ? a.msg_size : 1);
	if (!buf) {
		n = -ENOMEM;
		goto out;
	}
	while (got < o.n) {
		n = o.keys ? shmq_recv_meta(q, buf, a.msg_size, &meta,
					    o.timeout_ns) :
			     shmq_recv(q, buf, a.msg_size, o.timeout_ns);
		if (n < 0)
			break;
		got++;
		if (c->json) {
			if (got == 1) {
				printf("{\"segment\":");
				json_str(stdout, c->seg);
				printf(",\"queue\":");
				json_str(stdout, name);
				printf(",\"messages\":[");
			}
			printf("%s{\"len\":%zd,", got > 1 ? "," : "", n);
			if (o.keys) {
				json_payload(stdout, "key", meta.key,
					     meta.key_len <= SHMQ_KEY_MAX ?
					     meta.key_len : SHMQ_KEY_MAX);
				printf(",\"seq\":%llu,\"redelivered\":%s,"
				       "\"deliveries\":%u,",
				       (unsigned long long)meta.seq,
				       meta.flags & SHMQ_META_REDELIVERED ?
				       "true" : "false", meta.deliveries);
			}
			json_payload(stdout, "data", buf, (size_t)n);
			putchar('}');
		} else {
			print_msg(&o, o.keys ? &meta : NULL, buf, (size_t)n);
		}
		/* What was consumed is printed now, whatever comes next. */
		fflush(stdout);
	}
out:
	free(buf);
	shmq_close(q);
	if (c->json && got)
		printf("],\"received\":%llu}\n", (unsigned long long)got);
	if (got == 0 && n == -EBUSY &&
	    *busy_why(seg, name, 1, why, sizeof(why))) {
		shmq_seg_close(seg);
		return fail(c, name, (int)n, "nothing received: %s", why);
	}
	if (got)
		autodelete_note(c, seg, name, a.flags);
	shmq_seg_close(seg);
	/* -EAGAIN is one-sided here: a receiver waits only for messages. */
	if (got == 0 && n == -EAGAIN)
		return fail_own(c, name, (int)n, "queue '%s' is empty: nothing "
				"received; --timeout waits for a message",
				name);
	if (got == 0)
		return fail(c, name, (int)n, "nothing received");
	return 0;
}

/* ---- recover ----------------------------------------------------------------------- */


/* Slots repaired so far over every queue (recovery's ring counters). */
static uint64_t total_repairs(shmq_seg *obs)
{
	struct shmq_queue_info *q;
	uint64_t sum = 0;
	int n = shmq_queue_list(obs, NULL, 0), i;

	if (n <= 0)
		return 0;
	q = calloc((size_t)n, sizeof(*q));
	if (!q)
		return 0;
	n = shmq_queue_list(obs, q, (unsigned)n);
	for (i = 0; i < n; i++)
		sum += q[i].repairs;
	free(q);
	return sum;
}

/*
 * Attaching already repairs (shmq_seg_open() runs the recovery), so the
 * count reported is the change of the queues' repair counters over the
 * whole command, attach included, read by an observer that repairs
 * nothing itself.  Another repairer running at the same time (a stalled
 * waiter) is counted too: the figure is "repaired while mqctl ran".
 */
int cmd_recover(struct ctx *c, int argc, char **argv)
{
	struct shmq_seg_info before, after;
	uint64_t rep0, rep1;
	shmq_seg *obs, *seg;
	int rc, repaired;

	rc = parse_opts(c, find_cmd("recover"), argc, argv, NULL, NULL);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &obs))
		return EXIT_FAIL;
	rc = shmq_seg_info(obs, &before);
	if (rc) {
		shmq_seg_close(obs);
		return fail(c, NULL, rc, NULL);
	}
	rep0 = total_repairs(obs);
	if (seg_attach(c, &seg)) {
		shmq_seg_close(obs);
		return EXIT_FAIL;
	}
	repaired = shmq_seg_recover(seg);
	shmq_seg_close(seg);
	rc = shmq_seg_info(obs, &after);
	rep1 = total_repairs(obs);
	shmq_seg_close(obs);
	if (repaired < 0)
		return fail(c, NULL, repaired, NULL);
	if (rc)
		return fail(c, NULL, rc, NULL);
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"repaired\":%llu,\"dead_before\":%u,"
		       "\"dead_after\":%u}\n", (unsigned long long)(rep1 - rep0),
		       before.procs_dead, after.procs_dead);
	} else {
		printf("recovered segment %s: %llu slot(s) repaired; dead "
		       "process entries: %u before, %u after\n", c->seg,
		       (unsigned long long)(rep1 - rep0), before.procs_dead,
		       after.procs_dead);
	}
	return 0;
}
