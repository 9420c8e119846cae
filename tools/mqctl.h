/* SPDX-License-Identifier: MIT */
/*
 * mqctl.h - what the files of mqctl share (not installed).
 *
 *   mqctl.c       main, the command table, option parsing, errors, output
 *                 helpers (sizes, durations, JSON, times)
 *   mqctl_show.c  read-only commands: info, list, stat, watch, procs, peek,
 *                 check (observers: they change nothing in the segment)
 *   mqctl_ops.c   commands that change something: init, destroy, create,
 *                 delete, purge, send, recv, recover
 *
 * Exit status: 0 success, 1 the operation failed (one line on stderr that
 * names the segment and queue, with shmq_strerror()'s reason), 2 usage.
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
	int argc;               /* operands left after the options */
	char **argv;
};

/* Option codes above the short letters. */
enum {
	OPT_SIZE = 256, OPT_MODE, OPT_GROUP, OPT_MAX_QUEUES, OPT_MAX_PROCS,
	OPT_FORCE, OPT_CAPACITY, OPT_MSG_SIZE, OPT_PROMETHEUS, OPT_INTERVAL,
	OPT_COUNT, OPT_FILE, OPT_TIMEOUT, OPT_HEX, OPT_RAW, OPT_SPSC,
	OPT_SEGMENT = 's', OPT_N = 'n', OPT_HELP = 'h', OPT_JSON = 512,
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
 * each.  The global options (-s, --json) are accepted too.  Returns 0, 1
 * when --help was printed (exit 0), or EXIT_USAGE after printing why.
 */
int parse_opts(struct ctx *c, const struct cmd *cmd, int argc, char **argv,
	       int (*on)(struct ctx *c, int code, const char *arg, void *data),
	       void *data);

/* "mqctl: CMD: segment 'S'[: queue 'Q']: reason[; extra]" -> EXIT_FAIL. */
int fail(const struct ctx *c, const char *queue, int err, const char *fmt,
	 ...) __attribute__((format(printf, 4, 5)));
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
void json_bytes(FILE *f, const void *p, size_t n);
const char *fmt_bytes(uint64_t n, char *buf, size_t len);  /* "64 MiB" */
const char *fmt_time(uint64_t ns, char *buf, size_t len);  /* ISO 8601 */
const char *seg_path(const char *seg, char *buf, size_t len);
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

extern const struct cmd mqctl_cmds[];
const struct cmd *find_cmd(const char *name);

#endif /* MQCTL_H */
