/* SPDX-License-Identifier: MIT */
/*
 * mqctl.h - what the files of mqctl share (not installed).
 *
 *   mqctl.c       main, the command table, option parsing, errors, output
 *                 helpers (sizes, durations, JSON, times)
 *   mqctl_show.c  read-only commands: info, list, stat, watch, procs, peek,
 *                 check, segments (observers: they change nothing in the
 *                 segment)
 *   mqctl_ops.c   commands that change something: init, destroy, create,
 *                 delete, purge, send, recv, recover
 *
 * Exit status: 0 success, 1 the operation failed (one line on stderr that
 * names the segment and queue, with shmq_strerror()'s reason, or
 * strerror()'s for a file mqctl itself opened), 2 usage.  With --json,
 * every command prints JSON on stdout, and every error is one JSON object
 * on stderr instead of the line.
 */
#ifndef MQCTL_H
#define MQCTL_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "shmq.h"

#define EXIT_FAIL  1
#define EXIT_USAGE 2

struct ctx {
	const char *seg;        /* segment name or path, resolved default */
	const char *cmd;        /* command name, for messages */
	int json;
	int trust;              /* --trust: attach whatever the owner */
	int argc;               /* operands left after the options */
	char **argv;
	char jextra[128];       /* JSON error's extra members: "\"sent\":3" */
};

/* parse_opts() printed the command's help: exit 0. */
#define PARSED_HELP (-1)

/* Option codes above the short letters. */
enum {
	OPT_SIZE = 256, OPT_MODE, OPT_GROUP, OPT_MAX_QUEUES, OPT_MAX_PROCS,
	OPT_FORCE, OPT_CAPACITY, OPT_MSG_SIZE, OPT_PROMETHEUS, OPT_INTERVAL,
	OPT_COUNT, OPT_FILE, OPT_TIMEOUT, OPT_HEX, OPT_RAW, OPT_SPSC,
	OPT_SEGMENT = 's', OPT_N = 'n', OPT_HELP = 'h', OPT_JSON = 512,
	OPT_TRUST,
};

/* One option of a command: getopt_long's, plus its help line. */
struct opt {
	const char *name;       /* long name */
	int has_arg;
	int val;                /* short letter or a code >= 256 */
	const char *arg;        /* "N", "SIZE"..., NULL for a flag */
	const char *help;
};

struct cmd {
	const char *name;
	int (*fn)(struct ctx *c, int argc, char **argv);
	const char *operands;   /* "QUEUE [MESSAGE...]" */
	const char *summary;
	const char *details;    /* more paragraphs, or NULL */
	const struct opt *opts; /* terminated by a NULL name */
	int min_args, max_args; /* operands; max -1: unlimited */
};

/*
 * Parse the options of @cmd from argv; calls @on(code, optarg, data) for
 * each.  The global options (-s, --json) are accepted too.  Refuses the
 * names '.' and '..' for the segment and the QUEUE operands.  Returns 0,
 * PARSED_HELP when --help was printed (exit 0), or the exit status after
 * printing why (EXIT_USAGE, or EXIT_FAIL for a refused name).
 */
int parse_opts(struct ctx *c, const struct cmd *cmd, int argc, char **argv,
	       int (*on)(struct ctx *c, int code, const char *arg, void *data),
	       void *data);

/*
 * Report a failure -> EXIT_FAIL.  One line on stderr, or with --json one
 * object {"error":"ENOENT","message":...,"command":...,"segment":...,
 * "queue":...} (plus c->jextra):
 *   fail():     "mqctl: CMD: segment 'S'[: queue 'Q']: reason[; extra]",
 *               the reason shmq_strerror(@err), a library error;
 *   fail_sys(): "mqctl: CMD: segment 'S'[: queue 'Q']: extra: reason",
 *               the reason strerror(-@err), for a file mqctl opened;
 *   fail_own(): "mqctl: CMD: segment 'S': message", the message saying
 *               it all (it names the queue itself); @err names the error.
 */
int fail(const struct ctx *c, const char *queue, int err, const char *fmt,
	 ...) __attribute__((format(printf, 4, 5)));
int fail_sys(const struct ctx *c, const char *queue, int err,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int fail_own(const struct ctx *c, const char *queue, int err,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "ENOENT": shmq_errname(), else strerrorname_np() for a file's errno. */
const char *err_name(int err);
/* "mqctl: CMD: message" + hint -> EXIT_USAGE. */
int usage(const struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parsers: 0, or -1 (does not parse), -2 (does not fit). */
int parse_size(const char *s, uint64_t max, uint64_t *out);
int parse_duration(const char *s, int64_t *ns);   /* "forever" -> -1 */
int parse_count(const char *s, uint64_t max, uint64_t *out);
/* Complain about a failed parse of @what (e.g. "--size") -> EXIT_USAGE. */
int bad_value(const struct ctx *c, const char *what, const char *s, int why);

/* Output helpers. */
void json_str(FILE *f, const char *s);
/*
 * A payload as a JSON member: "data":"text" when the bytes are valid
 * UTF-8, else "data_base64":"..." (RFC 4648).  @key is "data".
 */
void json_payload(FILE *f, const char *key, const void *p, size_t n);
int utf8_valid(const void *p, size_t n);
const char *fmt_bytes(uint64_t n, char *buf, size_t len);  /* "64 MiB" */
const char *fmt_time(uint64_t ns, char *buf, size_t len);  /* ISO 8601 */
const char *seg_path(const char *seg, char *buf, size_t len);
/* The directory holding @path ("/dev/shm" for a name) into @buf. */
const char *seg_dir(const char *seg, char *buf, size_t len);
/*
 * What lstat() says keeps @path from being a segment: "is a symbolic link
 * (not followed)" (*err -ELOOP), "is a directory" (-EISDIR), "is a FIFO,
 * not a regular file" (-EPROTO)...; NULL for a regular file or none.
 */
const char *file_kind_problem(const char *path, int *err);
const char *user_name(uint32_t uid, char *buf, size_t len);
const char *group_name(uint32_t gid, char *buf, size_t len);
void print_escaped(FILE *f, const void *p, size_t n);
void print_hex(FILE *f, const void *p, size_t n);

/* "mpmc" or "spsc", from shmq_queue_info.flags. */
const char *queue_type(uint32_t flags);

/* Open for reading only (observer) or as a full attachment. */
int seg_observe(const struct ctx *c, shmq_seg **out);
int seg_attach(const struct ctx *c, shmq_seg **out);

/* Commands. */
int cmd_info(struct ctx *c, int argc, char **argv);
int cmd_list(struct ctx *c, int argc, char **argv);
int cmd_stat(struct ctx *c, int argc, char **argv);
int cmd_watch(struct ctx *c, int argc, char **argv);
int cmd_procs(struct ctx *c, int argc, char **argv);
int cmd_peek(struct ctx *c, int argc, char **argv);
int cmd_check(struct ctx *c, int argc, char **argv);
int cmd_init(struct ctx *c, int argc, char **argv);
int cmd_destroy(struct ctx *c, int argc, char **argv);
int cmd_create(struct ctx *c, int argc, char **argv);
int cmd_delete(struct ctx *c, int argc, char **argv);
int cmd_purge(struct ctx *c, int argc, char **argv);
int cmd_send(struct ctx *c, int argc, char **argv);
int cmd_recv(struct ctx *c, int argc, char **argv);
int cmd_recover(struct ctx *c, int argc, char **argv);
int cmd_segments(struct ctx *c, int argc, char **argv);

extern const struct cmd mqctl_cmds[];
const struct cmd *find_cmd(const char *name);

#endif /* MQCTL_H */
