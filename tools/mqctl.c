/* SPDX-License-Identifier: MIT */
/*
 * mqctl - create, inspect, operate and repair shmq segments and queues.
 *
 * This file: main, the command table with every option and help text,
 * option parsing, error reporting, and the parsers and printers the
 * commands share.  The commands are in mqctl_show.c (read-only) and
 * mqctl_ops.c (changing).  Only include/shmq.h is used.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "mqctl.h"

/* ---- the commands and their options ---------------------------------------- */

static const struct opt opts_init[] = {
	{ "size", 1, OPT_SIZE, "SIZE",
	  "segment size, 64K..64T, K/M/G/T (default 64M)" },
	{ "mode", 1, OPT_MODE, "MODE",
	  "permission bits, octal, within 0666 (default 0600)" },
	{ "group", 1, OPT_GROUP, "GROUP", "group owner: name or number" },
	{ "max-queues", 1, OPT_MAX_QUEUES, "N",
	  "directory entries, 1..4096 (default 256)" },
	{ "max-procs", 1, OPT_MAX_PROCS, "N",
	  "process-table entries, 1..1024 (default 64)" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_destroy[] = {
	{ "force", 0, OPT_FORCE, NULL,
	  "unlink even while processes are attached, or if corrupt" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_create[] = {
	{ "capacity", 1, OPT_CAPACITY, "N",
	  "messages, rounded up to a power of two (default 1024)" },
	{ "msg-size", 1, OPT_MSG_SIZE, "BYTES",
	  "largest message, K/M suffixes (default 256)" },
	{ "spsc", 0, OPT_SPSC, NULL,
	  "single-producer single-consumer queue (SHMQ_SPSC)" },
	{ "overflow", 1, OPT_OVERFLOW, "POLICY",
	  "at a full queue: block (default: wait, per the sender's "
	  "timeout), drop-newest (refuse the new message) or drop-oldest "
	  "(evict the oldest); counted as dropped" },
	{ "auto-delete", 0, OPT_AUTODELETE, NULL,
	  "unlink the queue, bindings too, when its last handle closes or "
	  "its last holder dies (SHMQ_AUTODELETE)" },
	{ "max-unacked", 1, OPT_MAX_UNACKED, "N",
	  "messages fetched and not yet acknowledged that the queue holds, "
	  "over all consumers, 1..65535 (default min(capacity, 64))" },
	{ "prefetch", 1, OPT_PREFETCH, "N",
	  "how many of them one handle may owe at once, 1..max-unacked "
	  "(default: max-unacked)" },
	{ "max-deliveries", 1, OPT_MAX_DELIVERIES, "N",
	  "deliver a message at most N times, then dead-letter it "
	  "(default 0: no limit)" },
	{ "dead-letter", 1, OPT_DEAD_LETTER, "EXCHANGE",
	  "where a message past --max-deliveries goes, with its routing "
	  "key (need not exist yet; default: dropped, counted)" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_xcreate[] = {
	{ "type", 1, OPT_TYPE, "TYPE",
	  "direct (default), fanout or topic" },
	{ "alternate", 1, OPT_ALTERNATE, "EXCHANGE",
	  "where what matches no binding goes (need not exist yet)" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_prom[] = {
	{ "prometheus", 0, OPT_PROMETHEUS, NULL,
	  "print the Prometheus text exposition format" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_watch[] = {
	{ "interval", 1, OPT_INTERVAL, "DURATION",
	  "time between refreshes (default 1s)" },
	{ "count", 1, OPT_COUNT, "N", "stop after N refreshes (default: never)" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_send[] = {
	{ "file", 1, OPT_FILE, "FILE", "send the bytes of FILE as one message" },
	{ "timeout", 1, OPT_TIMEOUT, "DURATION",
	  "wait this long for room per message (default 0: never wait; "
	  "'forever')" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_publish[] = {
	{ "file", 1, OPT_FILE, "FILE",
	  "publish the bytes of FILE as one message" },
	{ "timeout", 1, OPT_TIMEOUT, "DURATION",
	  "wait this long for room in full queues of the block policy, per "
	  "message (default 0: never wait; 'forever')" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_recv[] = {
	{ NULL, 1, OPT_N, "N", "receive up to N messages (default 1)" },
	{ "timeout", 1, OPT_TIMEOUT, "DURATION",
	  "wait this long for each message (default 0: never wait; "
	  "'forever')" },
	{ "hex", 0, OPT_HEX, NULL, "print each message as hex, one per line" },
	{ "raw", 0, OPT_RAW, NULL,
	  "write the bytes exactly, with no separator" },
	{ "keys", 0, OPT_KEYS, NULL,
	  "show each message's routing key (JSON: also seq and "
	  "redelivery)" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_peek[] = {
	{ NULL, 1, OPT_N, "N", "show up to N messages (default 10)" },
	{ "hex", 0, OPT_HEX, NULL, "print each message as hex" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct opt opts_none[] = {
	{ NULL, 0, 0, NULL, NULL },
};

const struct cmd mqctl_cmds[] = {
	{ "init", cmd_init, "", "create a segment",
	  "Built under no name and linked in one step: peers never see it "
	  "half-built.\nIts memory is reserved now: a full /dev/shm (or file "
	  "system, for a path) fails\nhere, not later, and says how much is "
	  "free.  The mode is applied exactly (no\numask) and may have no "
	  "bit outside 0666: no execute, setuid, setgid or sticky.\nThe "
	  "size must also leave room for the tables of --max-queues and\n"
	  "--max-procs.", opts_init, 0, 0 },
	{ "destroy", cmd_destroy, "", "unlink a segment",
	  "Refuses while processes are attached, unless --force.  Attached "
	  "processes\nkeep working; the memory goes when the last detaches.",
	  opts_destroy, 0, 0 },
	{ "info", cmd_info, "", "the segment's header and usage",
	  "The owner and group are the file's now (from fstat); the creator "
	  "is the uid\nof the process that created it.", opts_none, 0, 0 },
	{ "create", cmd_create, "QUEUE", "create a queue",
	  "A queue is MPMC (any number of senders and receivers) unless "
	  "--spsc: then\none handle at a time sends and one receives, with "
	  "no atomic read-modify-write\nper message.  Each side belongs to "
	  "the first handle that uses it, until that\nhandle closes or its "
	  "process dies; meanwhile others get 'resource busy'.\n"
	  "--max-unacked, --prefetch, --max-deliveries and --dead-letter "
	  "set up\nacknowledged delivery (shmq_fetch, shmq_ack, shmq_nack): "
	  "mpmc queues only.",
	  opts_create, 1, 1 },
	{ "delete", cmd_delete, "QUEUE", "unlink a queue",
	  "The name goes at once; open handles keep working until closed.",
	  opts_none, 1, 1 },
	{ "purge", cmd_purge, "QUEUE", "drop the messages the queue holds now",
	  "Drops, oldest first, the messages whose sending had begun when it "
	  "started,\nthrough the ordinary receive path; never one sent after "
	  "it started.  Producers\nand consumers may run meanwhile: each "
	  "message is either dropped (and counted)\nor delivered.  On an SPSC "
	  "queue it takes the "
	  "receiving side while it runs, so it fails\n(resource busy) while "
	  "another handle holds that side.", opts_none, 1, 1 },
	{ "list", cmd_list, "", "one row per queue",
	  "UNACKED/MAX: messages fetched (shmq_fetch) and not yet "
	  "acknowledged, of the\nmost the queue holds; - for spsc queues.  "
	  "JSON and Prometheus add the\nprefetch limit, max_deliveries, "
	  "nacked and dead-lettered counts.", opts_prom, 0, 0 },
	{ "stat", cmd_stat, "QUEUE", "everything known about one queue",
	  "With who owes it what: each process with messages fetched and "
	  "not acknowledged,\nor acquired and not released.", opts_prom, 1,
	  1 },
	{ "watch", cmd_watch, "[NAME...]",
	  "a refreshing view of depth and rates",
	  "Each NAME is a queue or an exchange; with none, every queue and "
	  "exchange.  On a\nterminal the screen is redrawn; otherwise one "
	  "plain line per queue or exchange\nper refresh.  With --json, one "
	  "JSON document per refresh, one per line.", opts_watch, 0, -1 },
	{ "send", cmd_send, "QUEUE [MESSAGE...]", "send messages",
	  "Each MESSAGE is one message; with none, each line of standard "
	  "input is one\n(without its newline).  Fails at once on a full "
	  "queue unless --timeout.", opts_send, 1, -1 },
	{ "recv", cmd_recv, "QUEUE", "receive (consume) messages",
	  "Prints each message followed by a newline, unless --hex or --raw."
	  "\nWith --keys, each line is the message's routing key (escaped; "
	  "\"\" for the\nempty key), a tab, then the message.  "
	  "With --json, one document; each\nmessage's bytes are \"data\" "
	  "(a string) when they are valid UTF-8, else\n\"data_base64\" "
	  "(the key likewise: \"key\" or \"key_base64\").  Fails at once "
	  "on an\nempty queue unless --timeout; exit status 1 when none was "
	  "received.", opts_recv, 1, 1 },
	{ "peek", cmd_peek, "QUEUE", "look at messages without consuming them",
	  "A snapshot: copied without taking them; by the time it is "
	  "printed the queue\nmay have moved on.  With --json, each "
	  "message's bytes are \"data\" (a string)\nwhen they are valid "
	  "UTF-8, else \"data_base64\".", opts_peek, 1, 1 },
	{ "exchange create", cmd_exchange_create, "NAME",
	  "create an exchange",
	  "An exchange routes each message published to it into every queue "
	  "whose binding\nmatches the message's routing key (AMQP 0-9-1 "
	  "rules).  direct: the binding key\nequals the routing key; "
	  "fanout: every bound queue, keys ignored; topic: keys\nare "
	  "dot-separated words, and a binding word '*' matches one word, "
	  "'#' zero\nor more.  What matches nothing goes to the --alternate "
	  "exchange, else it is\ncounted as unroutable.  Queues and "
	  "exchanges share one namespace.", opts_xcreate, 1, 1 },
	{ "exchange delete", cmd_exchange_delete, "NAME",
	  "unlink an exchange and its bindings",
	  "The name goes at once; publishing through handles still open "
	  "fails.", opts_none, 1, 1 },
	{ "exchanges", cmd_exchanges, "", "one row per exchange",
	  "BINDINGS counts bindings to queues that exist; PUBLISHED the "
	  "publishes that\nsucceeded, ROUTED the deliveries (queues "
	  "reached), UNROUTABLE the publishes no\nqueue took, DROPPED the "
	  "deliveries skipped or evicted at full drop-newest\nor "
	  "drop-oldest queues.", opts_prom, 0, 0 },
	{ "bindings", cmd_bindings, "[EXCHANGE]",
	  "the bindings of one exchange, or of all",
	  "Bindings to queues that no longer exist are not shown (they are "
	  "ignored).  The\nempty key is shown as \"\"; other keys are "
	  "escaped as recv --keys shows them.", opts_none, 0, 1 },
	{ "bind", cmd_bind, "EXCHANGE QUEUE [KEY]",
	  "route matching messages to a queue",
	  "KEY defaults to \"\", the empty key; keys are 0-255 bytes.  "
	  "Binding again is no\nerror.  SPSC queues cannot be bound.  A "
	  "publish that starts after this returns,\nin any process, routes "
	  "by it.", opts_none, 2, 3 },
	{ "unbind", cmd_unbind, "EXCHANGE QUEUE [KEY]", "remove a binding",
	  "KEY defaults to \"\"; it must be the key of an existing "
	  "binding.", opts_none, 2, 3 },
	{ "publish", cmd_publish, "EXCHANGE KEY [MESSAGE...]",
	  "publish messages through an exchange",
	  "Each MESSAGE is one message; with none, each line of standard "
	  "input is one\n(without its newline).  Prints, per message, how "
	  "many queues it reached (0:\nnothing matched it, and no alternate "
	  "exchange took it: counted as unroutable).\nFails at once when a "
	  "matching queue of the block policy is full, unless\n--timeout; "
	  "a message that fails reached no queue.  The key travels with the"
	  "\nmessage: a queue takes it only if both fit its msg_size.",
	  opts_publish, 2, -1 },
	{ "procs", cmd_procs, "", "processes attached, alive or dead",
	  "HELD: slots claimed and not yet published or freed; UNACKED: "
	  "messages fetched\nand not yet acknowledged, over all queues "
	  "('mqctl stat QUEUE' says which).", opts_none, 0, 0 },
	{ "recover", cmd_recover, "",
	  "repair what dead processes left behind", NULL, opts_none, 0, 0 },
	{ "check", cmd_check, "", "verify the segment, like fsck; read-only",
	  "Works on segments that cannot be opened because they are corrupt.\n"
	  "Refuses, without opening it, a path that is not a regular file "
	  "(symbolic link,\ndirectory, FIFO, device).  Exit status 1 when "
	  "errors were found.", opts_none, 0, 0 },
	{ "segments", cmd_segments, "[PATH...]", "list segments",
	  "Every /dev/shm/shmq.* object, then each file-backed segment PATH "
	  "given: name,\nsize, owner, group, mode, and whether it opens as a "
	  "segment (observed,\nchanging nothing); a foreign or corrupt file "
	  "says so.  -s is not used.", opts_none, 0, -1 },
	{ NULL, NULL, NULL, NULL, NULL, NULL, 0, 0 },
};

const struct cmd *find_cmd(const char *name)
{
	const struct cmd *c;

	for (c = mqctl_cmds; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* ---- help ----------------------------------------------------------------- */

static void print_main_help(FILE *f)
{
	const struct cmd *c;

	fprintf(f,
		"usage: mqctl [-s SEGMENT] [--json] [--trust] COMMAND [OPTIONS] "
		"[ARGS]\n"
		"\n"
		"Create, inspect, operate and repair shmq message queues.\n"
		"\n"
		"  -s, --segment SEGMENT  segment name (/dev/shm/shmq.NAME) or "
		"a file path\n"
		"                         (default: $SHMQ_SEGMENT, else shmq)\n"
		"      --json             JSON output, for every command "
		"(watch: one\n"
		"                         document per line); errors as one "
		"JSON object on\n"
		"                         stderr\n"
		"      --trust            attach to a segment whose file "
		"belongs to another\n"
		"                         user (not you, not root): by "
		"default refused, as\n"
		"                         anyone may create a name before "
		"you do\n"
		"  -h, --help             this help; COMMAND --help for a "
		"command's\n"
		"  -V, --version          print the version\n"
		"\ncommands:\n");
	for (c = mqctl_cmds; c->name; c++)
		fprintf(f, "  %-15s %-25s %s\n", c->name, c->operands,
			c->summary);
	fprintf(f, "\nNames (segments, queues, exchanges) are 1-63 bytes of "
		"[A-Za-z0-9._-], not '.'\nor '..'; keys are 0-255 bytes.  "
		"Sizes take K/M/G/T suffixes; durations\nns/us/ms/s.  Exit "
		"status: 0 success, 1 failure, 2 usage error.  See mqctl(1).\n");
}

static void print_cmd_help(const struct cmd *cmd)
{
	const struct opt *o;

	printf("usage: mqctl [-s SEGMENT] [--json] %s [OPTIONS]%s%s\n\n%s.\n",
	       cmd->name, *cmd->operands ? " " : "", cmd->operands,
	       cmd->summary);
	if (cmd->details)
		printf("%s\n", cmd->details);
	printf("\noptions:\n");
	for (o = cmd->opts; o->name || o->val; o++) {
		char lhs[64];

		if (o->name && o->val < 256)
			snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", o->val,
				 o->name, o->arg ? " " : "", o->arg ? o->arg : "");
		else if (o->name)
			snprintf(lhs, sizeof(lhs), "    --%s%s%s", o->name,
				 o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(lhs, sizeof(lhs), "-%c %s", o->val, o->arg);
		printf("  %-26s %s\n", lhs, o->help);
	}
	printf("  %-26s %s\n", "-s, --segment SEGMENT", "segment to use");
	printf("  %-26s %s\n", "    --json", "JSON output; errors as JSON on "
	       "stderr");
	printf("  %-26s %s\n", "-h, --help", "this help");
}

/* ---- names ------------------------------------------------------------------ */

static int dot_name(const char *s)
{
	return strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
}

/*
 * '.' and '..' pass the library's name rule ([A-Za-z0-9._-]) but name a
 * directory, not an object: refuse them here, for the segment (unless it
 * is a path) and for each QUEUE, EXCHANGE or NAME operand, before anything
 * is opened.  The operands' words say what each operand is.
 */
static int check_names(const struct ctx *c, const struct cmd *cmd)
{
	const char *w = cmd->operands;
	int i = 0, all = 0;

	if (cmd->fn != cmd_segments && !strchr(c->seg, '/') && dot_name(c->seg))
		return fail(c, NULL, -EINVAL, "'.' and '..' are not segment "
			    "names (a file in the current directory is "
			    "'./NAME')");
	for (; *w && i < c->argc; i++) {
		size_t len;
		int q, x;

		w += strspn(w, " [");
		len = strcspn(w, " ].");
		q = len == 5 && strncmp(w, "QUEUE", 5) == 0;
		x = (len == 8 && strncmp(w, "EXCHANGE", 8) == 0) ||
		    (len == 4 && strncmp(w, "NAME", 4) == 0);
		/* "[QUEUE...]", "[NAME...]": every remaining operand. */
		all = (q || x) && strncmp(w + len, "...", 3) == 0;
		if (all)
			break;
		if ((q || x) && dot_name(c->argv[i]))
			return fail(c, q ? c->argv[i] : NULL, -EINVAL,
				    "'.' and '..' are not %s names",
				    q ? "queue" : "exchange");
		w += len;
		w += strspn(w, ".]");
	}
	for (; all && i < c->argc; i++)
		if (dot_name(c->argv[i]))
			return fail(c, c->argv[i], -EINVAL, "'.' and '..' are "
				    "not queue or exchange names");
	return 0;
}

/* ---- option parsing ---------------------------------------------------------- */

int parse_opts(struct ctx *c, const struct cmd *cmd, int argc, char **argv,
	       int (*on)(struct ctx *c, int code, const char *arg, void *data),
	       void *data)
{
	struct option lopts[32];
	char sopts[64] = "+:s:h";
	const struct opt *o;
	int n = 0, ch, rc;

	for (o = cmd->opts; o->name || o->val; o++) {
		if (o->name)
			lopts[n++] = (struct option){ o->name, o->has_arg,
						      NULL, o->val };
		if (o->val < 256) {
			size_t l = strlen(sopts);

			sopts[l] = (char)o->val;
			sopts[l + 1] = o->has_arg ? ':' : 0;
			sopts[l + 2] = 0;
		}
	}
	lopts[n++] = (struct option){ "segment", 1, NULL, OPT_SEGMENT };
	lopts[n++] = (struct option){ "json", 0, NULL, OPT_JSON };
	lopts[n++] = (struct option){ "trust", 0, NULL, OPT_TRUST };
	lopts[n++] = (struct option){ "help", 0, NULL, OPT_HELP };
	lopts[n] = (struct option){ NULL, 0, NULL, 0 };
	/* Options may follow operands ("send q --timeout 1s"): no '+'. */
	memmove(sopts, sopts + 1, strlen(sopts));
	opterr = 0;
	optind = 0;             /* 0: a full restart of getopt's state */
	while ((ch = getopt_long(argc, argv, sopts, lopts, NULL)) != -1) {
		switch (ch) {
		case OPT_HELP:
			print_cmd_help(cmd);
			return PARSED_HELP;
		case OPT_SEGMENT:
			c->seg = optarg;
			break;
		case OPT_JSON:
			c->json = 1;
			break;
		case OPT_TRUST:
			c->trust = 1;
			break;
		case ':':
			return usage(c, "option '%s' needs a value",
				     argv[optind - 1]);
		case '?':
			return usage(c, "unknown option '%s'",
				     argv[optind - 1]);
		default:
			rc = on ? on(c, ch, optarg, data) : 0;
			if (rc)
				return rc;
		}
	}
	c->argc = argc - optind;
	c->argv = argv + optind;
	if (c->argc < cmd->min_args)
		return usage(c, "missing operand: %s", cmd->operands);
	if (cmd->max_args >= 0 && c->argc > cmd->max_args)
		return usage(c, "unexpected operand '%s'",
			     c->argv[cmd->max_args]);
	return check_names(c, cmd);
}

const char *queue_type(uint32_t flags)
{
	return flags & SHMQ_SPSC ? "spsc" : "mpmc";
}

const char *queue_overflow(uint32_t flags)
{
	if (flags & SHMQ_DROP_NEWEST)
		return "drop-newest";
	return flags & SHMQ_DROP_OLDEST ? "drop-oldest" : "block";
}

const char *exchange_type(uint32_t type)
{
	switch (type) {
	case SHMQ_DIRECT: return "direct";
	case SHMQ_FANOUT: return "fanout";
	case SHMQ_TOPIC: return "topic";
	}
	return "?";
}

/* ---- errors --------------------------------------------------------------------- */

enum { WHY_LIB, WHY_SYS, WHY_OWN };

/* "ENOENT": the library's name, else the C library's (a file's errno). */
const char *err_name(int err)
{
	const char *n = shmq_errname(err), *sys;

	sys = err ? strerrorname_np(err < 0 ? -err : err) : NULL;
	return strcmp(n, "E?") == 0 && sys ? sys : n;
}

/*
 * {"error":...,"message":...,"command":...,"segment":...,"queue":...};
 * a usage error (@name "usage") has no segment or queue.
 */
static void json_error(const struct ctx *c, const char *name,
		       const char *queue, const char *msg)
{
	int with_seg = c->cmd && strcmp(name, "usage") != 0;

	fputs("{\"error\":", stderr);
	json_str(stderr, name);
	fputs(",\"message\":", stderr);
	json_str(stderr, msg);
	fputs(",\"command\":", stderr);
	if (c->cmd)
		json_str(stderr, c->cmd);
	else
		fputs("null", stderr);
	if (with_seg) {
		fputs(",\"segment\":", stderr);
		json_str(stderr, c->seg);
		if (c->exchange) {
			fputs(",\"exchange\":", stderr);
			json_str(stderr, c->exchange);
		}
		fputs(",\"queue\":", stderr);
		if (queue)
			json_str(stderr, queue);
		else
			fputs("null", stderr);
	}
	if (with_seg && c->jextra[0])
		fprintf(stderr, ",%s", c->jextra);
	fputs("}\n", stderr);
}

static int vreport(const struct ctx *c, const char *queue, int err, int why,
		   const char *fmt, va_list ap)
{
	/* Room for two paths of PATH_MAX: the message may name a file. */
	char extra[9000] = "", msg[9400];

	if (fmt)
		vsnprintf(extra, sizeof(extra), fmt, ap);
	if (why == WHY_SYS)
		snprintf(msg, sizeof(msg), "%s%s%s", extra, *extra ? ": " : "",
			 strerror(err < 0 ? -err : err));
	else if (why == WHY_OWN || !err)
		snprintf(msg, sizeof(msg), "%s", extra);
	else
		snprintf(msg, sizeof(msg), "%s%s%s", shmq_strerror(err),
			 *extra ? "; " : "", extra);
	if (c->json) {
		json_error(c, err_name(err), queue, msg);
		return EXIT_FAIL;
	}
	fprintf(stderr, "mqctl: %s: segment '%s'", c->cmd, c->seg);
	if (c->exchange && why != WHY_OWN)
		fprintf(stderr, ": exchange '%s'", c->exchange);
	if (queue && why != WHY_OWN)
		fprintf(stderr, ": queue '%s'", queue);
	fprintf(stderr, ": %s\n", msg);
	return EXIT_FAIL;
}

int fail(const struct ctx *c, const char *queue, int err, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vreport(c, queue, err, WHY_LIB, fmt, ap);
	va_end(ap);
	return rc;
}

int fail_sys(const struct ctx *c, const char *queue, int err,
	     const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vreport(c, queue, err, WHY_SYS, fmt, ap);
	va_end(ap);
	return rc;
}

int fail_own(const struct ctx *c, const char *queue, int err,
	     const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vreport(c, queue, err, WHY_OWN, fmt, ap);
	va_end(ap);
	return rc;
}

int usage(const struct ctx *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->json) {
		json_error(c, "usage", NULL, msg);
		return EXIT_USAGE;
	}
	fprintf(stderr, "mqctl: %s: %s (try 'mqctl %s%s--help')\n",
		c->cmd ? c->cmd : "usage", msg, c->cmd ? c->cmd : "",
		c->cmd ? " " : "");
	return EXIT_USAGE;
}

int bad_value(const struct ctx *c, const char *what, const char *s, int why)
{
	return usage(c, "%s '%s' %s", what, s,
		     why == -2 ? "does not fit" : "does not parse");
}

/* The name given, else $SHMQ_SEGMENT, else "shmq" (as the library). */
static const char *default_segment(void)
{
	const char *s = getenv("SHMQ_SEGMENT");

	return s && *s ? s : "shmq";
}

const char *file_kind_problem(const char *path, int *err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return NULL;
	*err = -EPROTO;
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		return NULL;
	case S_IFLNK:
		*err = -ELOOP;
		return "is a symbolic link (not followed)";
	case S_IFDIR:
		*err = -EISDIR;
		return "is a directory";
	case S_IFIFO:
		return "is a FIFO, not a regular file";
	case S_IFSOCK:
		return "is a socket, not a regular file";
	case S_IFCHR:
	case S_IFBLK:
		return "is a device, not a regular file";
	}
	return "is not a regular file";
}

/*
 * Why the library could not open the segment.  -ELOOP (a symbolic link:
 * it opens with O_NOFOLLOW), -EISDIR, and -EPROTO for anything that is not
 * a regular file are said from lstat() of the path, not as "corrupt".
 */
static int open_failed(const struct ctx *c, int rc)
{
	char path[4200];
	const char *why;
	int err = rc;

	if (rc == -ELOOP || rc == -EISDIR || rc == -EPROTO || rc == -ENXIO) {
		seg_path(c->seg, path, sizeof(path));
		why = file_kind_problem(path, &err);
		if (why)
			return fail_own(c, NULL, err, "%s %s", path, why);
	}
	if (rc == -EPROTO)
		return fail(c, NULL, rc, "'mqctl -s %s check' says what is "
			    "wrong", c->seg);
	if (rc == -EACCES && !c->trust) {
		struct stat st;

		seg_path(c->seg, path, sizeof(path));
		if (stat(path, &st) == 0 && st.st_uid != geteuid() &&
		    st.st_uid != 0 && access(path, R_OK | W_OK) == 0) {
			char u[64];

			return fail(c, NULL, rc, "%s belongs to %s (uid %u), "
				    "neither you nor root; --trust to attach "
				    "anyway", path, user_name(st.st_uid, u,
				    sizeof(u)), (unsigned)st.st_uid);
		}
	}
	if (rc == -EBUSY)
		return fail(c, NULL, rc, "a process that can read the segment "
			    "holds a read lock on it (no shmq process does; "
			    "see 'man 7 shmq', TRUST MODEL)");
	return fail(c, NULL, rc, NULL);
}

int seg_observe(const struct ctx *c, shmq_seg **out)
{
	int rc = shmq_seg_observe(c->seg, out);

	return rc ? open_failed(c, rc) : 0;
}

int seg_attach(const struct ctx *c, shmq_seg **out)
{
	int rc = shmq_seg_open_flags(c->seg, c->trust ? SHMQ_OPEN_TRUST_ANY :
				     0, out);

	return rc ? open_failed(c, rc) : 0;
}

const char *user_name(uint32_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", uid);
	return buf;
}

const char *group_name(uint32_t gid, char *buf, size_t len)
{
	struct group *gr = getgrgid(gid);

	if (gr)
		snprintf(buf, len, "%s", gr->gr_name);
	else
		snprintf(buf, len, "%u", gid);
	return buf;
}

/* ---- parsers -------------------------------------------------------------------- */

/* A decimal integer prefix: digits only, no sign; -2 on overflow. */
static int parse_digits(const char **s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = *s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -2;
		v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return 0;
}

int parse_count(const char *s, uint64_t max, uint64_t *out)
{
	int rc = parse_digits(&s, out);

	if (rc)
		return rc;
	if (*s)
		return -1;
	return *out > max ? -2 : 0;
}

/* "4096", "64K", "64M", "1G", "2T", optionally "KB"/"KiB"; powers of 1024. */
int parse_size(const char *s, uint64_t max, uint64_t *out)
{
	unsigned shift = 0;
	uint64_t v;
	int rc = parse_digits(&s, &v);

	if (rc)
		return rc;
	switch (toupper((unsigned char)*s)) {
	case 'K': shift = 10; s++; break;
	case 'M': shift = 20; s++; break;
	case 'G': shift = 30; s++; break;
	case 'T': shift = 40; s++; break;
	}
	if (shift && (*s == 'i' || *s == 'I'))
		s++;
	if (*s == 'B' || *s == 'b')
		s++;
	if (*s)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -2;
	v <<= shift;
	if (v > max)
		return -2;
	*out = v;
	return 0;
}

/* "500ms", "2s", "100us", "10ns", "1.5s"; a bare number is seconds. */
int parse_duration(const char *s, int64_t *ns)
{
	static const struct { const char *unit; uint64_t ns; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 },
		{ "s", 1000000000 }, { "", 1000000000 },
	};
	uint64_t whole, frac = 0, fscale = 1;
	unsigned i;
	int rc;

	if (strcmp(s, "forever") == 0 || strcmp(s, "-1") == 0) {
		*ns = -1;
		return 0;
	}
	rc = parse_digits(&s, &whole);
	if (rc)
		return rc;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		for (; isdigit((unsigned char)*s); s++) {
			if (fscale < 1000000000ull) {
				frac = frac * 10 + (uint64_t)(*s - '0');
				fscale *= 10;
			}
		}
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (whole > (uint64_t)INT64_MAX / units[i].ns)
			return -2;
		*ns = (int64_t)(whole * units[i].ns +
				frac * units[i].ns / fscale);
		return 0;
	}
	return -1;
}

/* ---- printers --------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at @b (at most @n bytes), or 0. */
static size_t utf8_seq(const unsigned char *b, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (b[0] < 0x80)
		return 1;
	if (b[0] >= 0xc2 && b[0] <= 0xdf)
		len = 2, cp = b[0] & 0x1f;
	else if (b[0] >= 0xe0 && b[0] <= 0xef)
		len = 3, cp = b[0] & 0x0f;
	else if (b[0] >= 0xf0 && b[0] <= 0xf4)
		len = 4, cp = b[0] & 0x07;
	else
		return 0;       /* a continuation byte, or C0, C1, F5..FF */
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((b[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (b[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates, beyond U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

int utf8_valid(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0, l;

	while (i < n) {
		l = utf8_seq(b + i, n - i);
		if (!l)
			return 0;
		i += l;
	}
	return 1;
}

/*
 * @n bytes as a JSON string: valid UTF-8 as it is (quote, backslash and
 * control characters escaped); a byte that is not part of valid UTF-8
 * becomes the code point of the same value (\u00XX), which is how names
 * and paths print; payloads go through json_payload() instead.
 */
static void json_text(FILE *f, const unsigned char *b, size_t n)
{
	size_t i = 0, l;

	fputc('"', f);
	while (i < n) {
		if (b[i] == '"' || b[i] == '\\') {
			fprintf(f, "\\%c", b[i]);
			i++;
		} else if (b[i] == '\n') {
			fputs("\\n", f);
			i++;
		} else if (b[i] < 0x20 || b[i] == 0x7f) {
			fprintf(f, "\\u%04x", b[i]);
			i++;
		} else if ((l = utf8_seq(b + i, n - i)) != 0) {
			fwrite(b + i, 1, l, f);
			i += l;
		} else {
			fprintf(f, "\\u%04x", b[i]);
			i++;
		}
	}
	fputc('"', f);
}

void json_str(FILE *f, const char *s)
{
	json_text(f, (const unsigned char *)s, strlen(s));
}

static void base64(FILE *f, const unsigned char *b, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 |
			     b[i + 2];

		fputc(tab[v >> 18], f);
		fputc(tab[(v >> 12) & 63], f);
		fputc(tab[(v >> 6) & 63], f);
		fputc(tab[v & 63], f);
	}
	if (n - i == 1) {
		fputc(tab[b[i] >> 2], f);
		fputc(tab[(b[i] & 3) << 4], f);
		fputs("==", f);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)b[i] << 8 | b[i + 1];

		fputc(tab[v >> 10], f);
		fputc(tab[(v >> 4) & 63], f);
		fputc(tab[(v & 15) << 2], f);
		fputc('=', f);
	}
}

void json_payload(FILE *f, const char *key, const void *p, size_t n)
{
	if (utf8_valid(p, n)) {
		fprintf(f, "\"%s\":", key);
		json_text(f, p, n);
	} else {
		fprintf(f, "\"%s_base64\":\"", key);
		base64(f, p, n);
		fputc('"', f);
	}
}

const char *fmt_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;
	double v = (double)n;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else if (v == (double)(uint64_t)v)
		snprintf(buf, len, "%.0f %s", v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

const char *fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	if (!localtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%S%z", &tm))
		snprintf(buf, len, "?");
	return buf;
}

const char *seg_path(const char *seg, char *buf, size_t len)
{
	if (strchr(seg, '/'))
		snprintf(buf, len, "%s", seg);
	else
		snprintf(buf, len, "/dev/shm/shmq.%s", seg);
	return buf;
}

const char *seg_dir(const char *seg, char *buf, size_t len)
{
	char *slash;

	if (!strchr(seg, '/')) {
		snprintf(buf, len, "/dev/shm");
		return buf;
	}
	snprintf(buf, len, "%s", seg);
	slash = strrchr(buf, '/');
	if (slash == buf)
		slash[1] = 0;   /* "/name": the root directory */
	else
		*slash = 0;
	return buf;
}

/* Printable ASCII as is, the rest as C escapes: safe on a terminal. */
void print_escaped(FILE *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		if (b[i] == '\\')
			fputs("\\\\", f);
		else if (b[i] == '\n')
			fputs("\\n", f);
		else if (b[i] == '\t')
			fputs("\\t", f);
		else if (b[i] < 0x20 || b[i] >= 0x7f)
			fprintf(f, "\\x%02x", b[i]);
		else
			fputc(b[i], f);
	}
}

void print_hex(FILE *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

/* ---- main ------------------------------------------------------------------------- */

/*
 * The command named at argv[optind]: one word, or two for "exchange
 * create" and "exchange delete" (then optind moves to the second, which
 * becomes the command's argv[0]).  0, PARSED_HELP ("exchange --help"
 * printed both), or the exit status of a usage error.
 */
static int lookup_cmd(struct ctx *c, int argc, char **argv,
		      const struct cmd **out)
{
	char full[64];
	const char *sub;

	if (strcmp(argv[optind], "exchange") != 0) {
		*out = find_cmd(argv[optind]);
		if (!*out)
			return usage(c, "unknown command '%s'", argv[optind]);
		return 0;
	}
	sub = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)) {
		print_cmd_help(find_cmd("exchange create"));
		printf("\n");
		print_cmd_help(find_cmd("exchange delete"));
		return PARSED_HELP;
	}
	if (!sub)
		return usage(c, "exchange: missing subcommand: create or "
			     "delete");
	snprintf(full, sizeof(full), "exchange %.40s", sub);
	*out = find_cmd(full);
	if (!*out)
		return usage(c, "unknown exchange subcommand '%s': create or "
			     "delete", sub);
	optind++;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "segment", 1, NULL, 's' },
		{ "json", 0, NULL, OPT_JSON },
		{ "trust", 0, NULL, OPT_TRUST },
		{ "help", 0, NULL, 'h' },
		{ "version", 0, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctx c = { 0 };
	const struct cmd *cmd;
	int ch, rc;

	c.seg = default_segment();
	/*
	 * --json anywhere before "--" asks for JSON errors too, also for a
	 * usage error found before the option itself is parsed.
	 */
	for (ch = 1; ch < argc && strcmp(argv[ch], "--"); ch++)
		if (strcmp(argv[ch], "--json") == 0)
			c.json = 1;
	opterr = 0;
	/* '+': global options stop at the command's name. */
	while ((ch = getopt_long(argc, argv, "+:s:hV", lopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			c.seg = optarg;
			break;
		case OPT_JSON:
			c.json = 1;
			break;
		case OPT_TRUST:
			c.trust = 1;
			break;
		case 'h':
			print_main_help(stdout);
			return 0;
		case 'V':
			printf("mqctl (shmq) %s\n", shmq_version());
			return 0;
		case ':':
			return usage(&c, "option '%s' needs a value",
				     argv[optind - 1]);
		default:
			return usage(&c, "unknown option '%s'",
				     argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage(&c, "no command; usage: mqctl [-s SEGMENT] [--json] "
			     "COMMAND [OPTIONS] [ARGS]");
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 >= argc) {
			print_main_help(stdout);
			return 0;
		}
		optind++;
		rc = lookup_cmd(&c, argc, argv, &cmd);
		if (rc)
			return rc == PARSED_HELP ? 0 : rc;
		print_cmd_help(cmd);
		return 0;
	}
	rc = lookup_cmd(&c, argc, argv, &cmd);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	c.cmd = cmd->name;
	rc = cmd->fn(&c, argc - optind, argv + optind);
	if (fflush(stdout) != 0 && rc == 0)
		rc = fail_sys(&c, NULL, -errno, "writing the output");
	return rc;
}
