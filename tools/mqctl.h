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
 *                 delete, purge, send, publish, recv, recover
 *   mqctl_xchg.c  exchanges and bindings: exchange create, exchange delete,
 *                 exchanges, bindings, bind, unbind
 *
 * Exit status: 0 success, 1 the operation failed (one line on stderr that
 * names the segment, exchange and queue, with shmq_strerror()'s reason, or
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
	const char *exchange;   /* the exchange the command is about, if any:
				 * named in its error lines */
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
	OPT_TYPE, OPT_ALTERNATE, OPT_OVERFLOW, OPT_AUTODELETE, OPT_KEYS,
	OPT_MAX_UNACKED, OPT_PREFETCH, OPT_MAX_DELIVERIES, OPT_DEAD_LETTER,
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
 * "queue":...} (plus "exchange":... when c->exchange is set, plus
 * c->jextra):
 *   fail():     "mqctl: CMD: segment 'S'[: exchange 'X'][: queue 'Q']:
 *               reason[; extra]",
 *               the reason shmq_strerror(@err), a library error;
 *   fail_sys(): "mqctl: CMD: segment 'S'[: exchange 'X'][: queue 'Q']:
 *               extra: reason",
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
/* "block", "drop-newest" or "drop-oldest", from shmq_queue_info.flags. */
const char *queue_overflow(uint32_t flags);
/* "direct", "fanout", "topic" (or "?"), from shmq_exchange_info.type. */
const char *exchange_type(uint32_t type);
/* 1 when @s passes the library's rule for names: 1-63 of [A-Za-z0-9._-]. */
int name_ok(const char *s);
/*
 * A key as mqctl shows it: escaped as print_escaped() does, "" for the
 * empty key.  @buf needs 4 * SHMQ_KEY_MAX + 3 bytes (KEY_TEXT_MAX).
 */
#define KEY_TEXT_MAX (4 * SHMQ_KEY_MAX + 3)
const char *key_text(const char *key, size_t n, char *buf, size_t len);
/*
 * -ENOENT for exchange @name -> EXIT_FAIL: "exchange 'X': no such
 * exchange", saying so when a queue has that name.
 */
int no_exchange(const struct ctx *c, shmq_seg *seg, const char *name);
/* A Prometheus label value on stdout: backslash, quote, newline escaped. */
void prom_label(const char *s);
/* Live and unlinked (still open) exchanges; 0, 0 when they cannot be read. */
void count_exchanges(shmq_seg *seg, uint32_t *live, uint32_t *unlinked);
/*
 * -ENOSPC from creating queue or exchange @name (@what): the directory is
 * full, or the heap -> EXIT_FAIL, saying which; @blocks names what needed
 * the memory ("ring", "ring and unacknowledged area", "blocks").
 */
int create_nospace(const struct ctx *c, shmq_seg *seg, const char *what,
		   const char *name, const char *blocks);
/* All exchanges, in a malloc'd array (*n of them); 0 or the exit status. */
int get_exchanges(const struct ctx *c, shmq_seg *seg,
		  struct shmq_exchange_info **out, int *n);

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
int cmd_publish(struct ctx *c, int argc, char **argv);
int cmd_exchange_create(struct ctx *c, int argc, char **argv);
int cmd_exchange_delete(struct ctx *c, int argc, char **argv);
int cmd_exchanges(struct ctx *c, int argc, char **argv);
int cmd_bindings(struct ctx *c, int argc, char **argv);
int cmd_bind(struct ctx *c, int argc, char **argv);
int cmd_unbind(struct ctx *c, int argc, char **argv);

extern const struct cmd mqctl_cmds[];
const struct cmd *find_cmd(const char *name);

#endif /* MQCTL_H */
