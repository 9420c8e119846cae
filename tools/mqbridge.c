// SPDX-License-Identifier: MIT
/*
 * mqbridge - forward shmq queues to NATS subjects and NATS subjects to
 * shmq queues or exchanges, through JetStream (or core NATS with --core).
 *
 * Export (queue -> subject), exactly once into the stream.  A sliding
 * window of up to --window messages in flight (default 256, at most the
 * queue's prefetch): each is fetched (shmq_fetch: a copy, owed to shmq)
 * and published at once, asynchronously, with the JetStream message id
 *
 *     shmq.<segment>.<queue>.<queue creation time ns>.<seq>
 *
 * (seq: shmq_meta.seq, the position the message was first published at,
 * the same when shmq delivers it again), and each is acknowledged to shmq
 * (shmq_ack) as soon as the server acknowledged its own publish.  A
 * refused publish goes again, same id, before any new message; with no
 * answer to the oldest for 5 s, every publish in flight goes again: the
 * stream's duplicate window drops the copies it already holds.  A bridge
 * killed anywhere leaves its fetched messages owed: shmq delivers them
 * again within about 25 ms to whoever consumes the queue (the next
 * bridge), under the same ids, so the stream keeps one copy as long as
 * the bridge is back within the duplicate window (--dup-window).  An SPSC
 * queue (no shmq_fetch) is exported with shmq_acquire instead, its
 * messages held in place and released in order (window 48 by default).
 *
 * Import (subject -> queue or exchange), at least once.  A durable push
 * consumer (explicit acks, at most --window, 256, unacknowledged) streams
 * the subject's messages to the bridge, which commits each to the queue
 * (shmq_send()/shmq_publish()) before acknowledging it.  A killed
 * bridge's unacknowledged messages are redelivered by NATS after
 * --ack-wait: at most --window duplicates per bridge kill or server
 * restart.  A full queue blocks the import (with "in progress" notes to
 * the server, so NATS does not redeliver meanwhile): nothing is buffered
 * beyond the window.
 *
 * Exports publish on a connection that writes each publish at once
 * (SendAsap); imports receive on one that buffers (their acks go out with
 * the client's own flush about a millisecond later, many per write).
 *
 * One thread per export and per import; the main thread waits for
 * SIGTERM/SIGINT, then the workers finish what is in flight (exports: at
 * most 10 s for the acknowledgements) and the bridge exits
 * 0.  Exit status 1: a runtime error (one line on stderr); 2: usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "shmq.h"

#define MAX_LINKS       32
#define MAX_URLS        16
#define POLL_NS         200000000ll     /* how often a worker checks stop */
#define WINDOW_MAX      4096            /* --window */
#define EXPORT_WINDOW   256             /* an MPMC export's default */
#define HELD_MAX        48              /* an SPSC export's default window */
#define IMPORT_WINDOW   256             /* an import's default */

struct link {
	bool export;            /* queue -> subject; else subject -> queue */
	char *subject;
	char *target;           /* queue or exchange name */
	bool exchange;          /* --import SUBJECT=@EXCHANGE */
	shmq *q;
	shmq_exchange *x;
	uint64_t qctime;        /* the queue's creation time (export ids) */
	bool spsc;              /* SHMQ_SPSC: acquired, released in order */
	uint32_t msg_size;      /* export: the queue's largest payload */
	uint32_t prefetch;      /* export (MPMC): what one handle may owe */
	int window;             /* export: messages in flight */
	char durable[64];
	pthread_t tid;
	bool started;
};

static struct {
	const char *segname;
	const char *urls[MAX_URLS];
	int nurls;
	const char *stream;
	const char *durable;
	bool core;
	int window;             /* --window; 0: the defaults below */
	int export_window;      /* messages in flight per export */
	int import_window;      /* unacknowledged messages per import */
	int ack_wait_s;
	int dup_window_s;
	int replicas;
	struct link links[MAX_LINKS];
	int nlinks;
} cfg = {
	.segname = "shmq", .stream = "SHMQ", .durable = "mqbridge",
	.window = 0, .ack_wait_s = 30, .dup_window_s = 120, .replicas = 1,
};

static shmq_seg *seg;
static natsConnection *nc_out;  /* exports: SendAsap */
static natsConnection *nc_in;   /* imports: buffered */
static atomic_bool stop;
static atomic_int fatal;        /* a worker's exit status, 0 while none */

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mqbridge: %s\n", line);
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mqbridge: %s\n", line);
	exit(code);
}

/* A worker's fatal error: logged, then the main thread stops everything. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int zero = 0;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mqbridge: %s\n", line);
	atomic_compare_exchange_strong(&fatal, &zero, 1);
	atomic_store(&stop, true);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: mqbridge [-s SEGMENT] --nats URL[,URL...] [--stream NAME] [--durable NAME]\n"
"                [--export QUEUE=SUBJECT]... [--import SUBJECT=QUEUE]...\n"
"                [--import SUBJECT=@EXCHANGE]... [--core] [--window N]\n"
"                [--ack-wait SECONDS] [--dup-window SECONDS] [--replicas N]\n");
}

/*
 * NATS subjects: dot-separated non-empty tokens of printable characters
 * other than space; '*' (one token) and '>' (the rest, last only) are
 * wildcards, allowed only where @wild.
 */
static bool subject_ok(const char *s, bool wild)
{
	const char *t = s;

	if (!*s || strlen(s) > 255)
		return false;
	for (;;) {
		const char *e = strchr(t, '.');
		size_t n = e ? (size_t)(e - t) : strlen(t);

		if (n == 0)
			return false;
		for (size_t i = 0; i < n; i++)
			if (t[i] <= ' ' || t[i] >= 127)
				return false;
		if (memchr(t, '*', n) || memchr(t, '>', n)) {
			if (!wild || n != 1)
				return false;
			if (t[0] == '>' && e)
				return false;   /* '>' only as the last token */
		}
		if (!e)
			return true;
		t = e + 1;
	}
}

static void add_link(bool export, const char *arg)
{
	struct link *l;
	char *s, *eq;

	if (cfg.nlinks == MAX_LINKS)
		die(2, "at most %d --export/--import", MAX_LINKS);
	s = strdup(arg);
	eq = s ? strchr(s, '=') : NULL;
	if (!eq || eq == s || !eq[1]) {
		free(s);
		usage(stderr);
		die(2, "%s %s: expected %s", export ? "--export" : "--import",
		    arg, export ? "QUEUE=SUBJECT" : "SUBJECT=QUEUE");
	}
	*eq = 0;
	l = &cfg.links[cfg.nlinks++];
	l->export = export;
	l->subject = export ? eq + 1 : s;
	l->target = export ? s : eq + 1;
	if (!export && l->target[0] == '@') {
		l->exchange = true;
		l->target++;
	}
	if (!subject_ok(l->subject, !export))
		die(1, "bad subject '%s'%s", l->subject,
		    export ? " (an export needs a literal subject: "
			     "no '*' or '>')" : "");
}

static int parse_int(const char *opt, const char *v, int lo, int hi)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < lo || n > hi) {
		usage(stderr);
		die(2, "%s %s: expected an integer from %d to %d", opt, v, lo,
		    hi);
	}
	return (int)n;
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "segment", required_argument, NULL, 's' },
		{ "nats", required_argument, NULL, 'n' },
		{ "stream", required_argument, NULL, 'S' },
		{ "durable", required_argument, NULL, 'd' },
		{ "export", required_argument, NULL, 'e' },
		{ "import", required_argument, NULL, 'i' },
		{ "core", no_argument, NULL, 'c' },
		{ "window", required_argument, NULL, 'w' },
		{ "ack-wait", required_argument, NULL, 'a' },
		{ "dup-window", required_argument, NULL, 'D' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	char *urls = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': cfg.segname = optarg; break;
		case 'n': urls = optarg; break;
		case 'S': cfg.stream = optarg; break;
		case 'd': cfg.durable = optarg; break;
		case 'e': add_link(true, optarg); break;
		case 'i': add_link(false, optarg); break;
		case 'c': cfg.core = true; break;
		case 'w': cfg.window = parse_int("--window", optarg, 1,
						 WINDOW_MAX); break;
		case 'a': cfg.ack_wait_s = parse_int("--ack-wait", optarg, 1,
						     86400); break;
		case 'D': cfg.dup_window_s = parse_int("--dup-window", optarg,
						       1, 86400 * 7); break;
		case 'r': cfg.replicas = parse_int("--replicas", optarg, 1, 5);
			  break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		die(2, "unexpected argument '%s'", argv[optind]);
	}
	if (!urls || !cfg.nlinks) {
		usage(stderr);
		die(2, "%s", !urls ? "--nats URL is required" :
		    "nothing to do: give --export or --import");
	}
	for (char *u = strtok(urls, ","); u; u = strtok(NULL, ",")) {
		if (cfg.nurls == MAX_URLS)
			die(2, "at most %d URLs", MAX_URLS);
		cfg.urls[cfg.nurls++] = u;
	}
	/*
	 * Exports of MPMC queues fetch (shmq_fetch(3)): their window is
	 * --window, else EXPORT_WINDOW, and at most the queue's prefetch
	 * (known once it is open).  An SPSC queue's messages are acquired
	 * in place instead (--window, else HELD_MAX).  Imports: --window,
	 * else IMPORT_WINDOW, the bound on the duplicates per kill (at 48
	 * the import's acks, buffered for a millisecond, held it near 30k
	 * msgs/s in bench_bridge; 42k at 256).
	 */
	cfg.export_window = cfg.window ? cfg.window : EXPORT_WINDOW;
	cfg.import_window = cfg.window ? cfg.window : IMPORT_WINDOW;
	if (strpbrk(cfg.stream, ".*> ") || strpbrk(cfg.durable, ".*> "))
		die(1, "bad stream or durable name (no '.', '*', '>', space)");
}

/* ---- NATS connection -------------------------------------------------------- */

static void on_disconnected(natsConnection *c, void *closure)
{
	if (!atomic_load(&stop))
		logf_("disconnected from NATS (%s); reconnecting",
		      (const char *)closure);
}

static void on_reconnected(natsConnection *c, void *closure)
{
	char url[256] = "?";

	natsConnection_GetConnectedUrl(c, url, sizeof(url));
	logf_("reconnected to %s (%s)", url, (const char *)closure);
}

/*
 * Connect; while no server answers, retry every half second (a bridge
 * started before its server waits for it).  A server that refuses us
 * (authentication, permissions) is an error: exit 1.
 *
 * Two connections, each made only when there is something for it:
 * - exports publish with SendAsap, each publish written to the socket at
 *   once; the client's default buffers it for its flusher thread, which
 *   writes about a millisecond later (bench_bridge: one-way median 1.0 ms
 *   buffered, 0.2-0.3 ms with SendAsap; a flush thread of ours that wrote
 *   each burst with a PING cost 30-50 us more than SendAsap, a thread
 *   wake-up on the message's way);
 * - imports receive on a buffered connection: their acks are not on a
 *   message's way, so the client's flusher writes them, many per write,
 *   about a millisecond later, which the import's window covers.
 */
static natsConnection *nats_connect(bool asap, const char *what)
{
	natsConnection *c = NULL;
	natsOptions *o;
	natsStatus s;
	char url[256] = "?";
	bool said = false;

	if (natsOptions_Create(&o) != NATS_OK ||
	    natsOptions_SetServers(o, cfg.urls, cfg.nurls) != NATS_OK ||
	    natsOptions_SetNoRandomize(o, true) != NATS_OK ||
	    natsOptions_SetSendAsap(o, asap) != NATS_OK ||
	    natsOptions_SetMaxReconnect(o, -1) != NATS_OK ||
	    natsOptions_SetReconnectWait(o, 200) != NATS_OK ||
	    natsOptions_SetReconnectBufSize(o, 16 << 20) != NATS_OK ||
	    natsOptions_SetDisconnectedCB(o, on_disconnected,
					  (void *)what) != NATS_OK ||
	    natsOptions_SetReconnectedCB(o, on_reconnected,
					 (void *)what) != NATS_OK)
		die(1, "NATS options: %s", nats_GetLastError(NULL));
	for (;;) {
		s = natsConnection_Connect(&c, o);
		if (s == NATS_OK)
			break;
		if (s != NATS_NO_SERVER && s != NATS_TIMEOUT &&
		    s != NATS_IO_ERROR)
			die(1, "NATS %s refused the connection: %s",
			    cfg.urls[0], nats_GetLastError(NULL));
		if (!said)
			logf_("no NATS server at %s yet (%s); retrying",
			      cfg.urls[0], natsStatus_GetText(s));
		said = true;
		if (atomic_load(&stop))
			exit(0);
		sleep_ms(500);
	}
	natsOptions_Destroy(o);
	natsConnection_GetConnectedUrl(c, url, sizeof(url));
	logf_("connected to %s (%s)", url, what);
	return c;
}

static jsCtx *js_ctx(natsConnection *c)
{
	jsOptions jo;
	jsCtx *js;

	jsOptions_Init(&jo);
	jo.Wait = 5000;
	if (natsConnection_JetStream(&js, c, &jo) != NATS_OK)
		die(1, "JetStream context: %s", nats_GetLastError(NULL));
	return js;
}

/*
 * The stream: used as it is when it exists, created (file storage, the
 * links' subjects, the duplicate window) when it does not.  Never changed
 * or deleted.
 */
static void ensure_stream(jsCtx *js)
{
	const char *subj[MAX_LINKS];
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	int n = 0;

	for (int tries = 0;; tries++) {
		s = js_GetStreamInfo(&si, js, cfg.stream, NULL, &jerr);
		if (s == NATS_OK) {
			jsStreamInfo_Destroy(si);
			return;
		}
		if (jerr == JSStreamNotFoundErr || s == NATS_NOT_FOUND)
			break;
		if (jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr ||
		    s == NATS_NO_RESPONDERS)
			die(1, "the NATS server has no JetStream (start it with "
			    "-js, or use --core)");
		/* A cluster electing its meta leader answers late: retry. */
		if (tries >= 20)
			die(1, "stream %s: %s (%d)", cfg.stream,
			    nats_GetLastError(NULL), (int)jerr);
		sleep_ms(500);
	}
	for (int i = 0; i < cfg.nlinks; i++) {
		bool dup = false;

		for (int j = 0; j < n; j++)
			dup |= !strcmp(subj[j], cfg.links[i].subject);
		if (!dup)
			subj[n++] = cfg.links[i].subject;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = cfg.stream;
	sc.Subjects = subj;
	sc.SubjectsLen = n;
	sc.Storage = js_FileStorage;
	sc.Replicas = cfg.replicas;
	sc.Duplicates = (int64_t)cfg.dup_window_s * 1000000000;
	for (int tries = 0;; tries++) {
		jerr = 0;
		s = js_AddStream(&si, js, &sc, NULL, &jerr);
		if (s == NATS_OK) {
			jsStreamInfo_Destroy(si);
			logf_("stream %s created (file storage, %d replica%s, "
			      "duplicate window %d s)", cfg.stream,
			      cfg.replicas, cfg.replicas > 1 ? "s" : "",
			      cfg.dup_window_s);
			return;
		}
		/* Another bridge created it meanwhile: use it. */
		if (jerr == JSStreamNameExistErr &&
		    js_GetStreamInfo(&si, js, cfg.stream, NULL, NULL) ==
		    NATS_OK) {
			jsStreamInfo_Destroy(si);
			return;
		}
		if (tries >= 20)
			die(1, "creating stream %s: %s (%d)", cfg.stream,
			    nats_GetLastError(NULL), (int)jerr);
		sleep_ms(500);
	}
}

/* ---- export: queue -> subject ----------------------------------------------- */

/*
 * The export's sliding window: up to --window messages acquired and
 * published, each released to shmq as soon as the server acknowledged its
 * own publish.  The acknowledgement callback runs on a library thread: it
 * only marks the message's slot (under the mutex) and wakes the exporter,
 * which does every shmq call itself.
 */
enum { SLOT_FREE, SLOT_SENT, SLOT_ACKED, SLOT_FAILED };

struct window {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int w;
	struct shmq_msg *m;     /* [w] the messages: acquired in place (SPSC)
				 * or fetched into buf */
	unsigned char *buf;     /* [w * msg_size] fetched copies (MPMC) */
	uint64_t *tag;          /* [w] their shmq_fetch() tags (MPMC) */
	int *acked, *failed;    /* [w] the exporter's lists of slots */
	char (*ids)[128];       /* [w] their JetStream message ids */
	uint64_t *seq;          /* [w] the ids' last part (shmq_meta.seq) */
	int *state;             /* [w] SLOT_* */
	uint64_t *order;        /* [w] acquisition order (SPSC releases) */
	int64_t *sent_ns;       /* [w] last publish */
	int sent;               /* slots SLOT_SENT */
	int done;               /* answers since the exporter last looked */
	bool waiting;           /* the exporter waits on cv */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
		       void *closure)
{
	struct window *win = closure;
	const char *id = NULL, *dot;

	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id &&
	    (dot = strrchr(id, '.'))) {
		/* The seq first: one compare per slot, not a strcmp. */
		uint64_t seq = strtoull(dot + 1, NULL, 10);

		pthread_mutex_lock(&win->mu);
		for (int i = 0; i < win->w; i++) {
			if (win->state[i] != SLOT_SENT || win->seq[i] != seq ||
			    strcmp(win->ids[i], id))
				continue;
			/* Stored now, or earlier (a duplicate): either way. */
			win->state[i] = pa && !pae ? SLOT_ACKED : SLOT_FAILED;
			win->sent--;
			win->done++;
			/*
			 * Wake a waiting exporter for a quarter of the
			 * window at a time (or the last ack, or a failure):
			 * one wake-up per ack cost more than the releases'
			 * delay.
			 */
			if (win->waiting && (pae || !win->sent ||
					     win->done * 4 >= win->w))
				pthread_cond_signal(&win->cv);
			break;
		}
		pthread_mutex_unlock(&win->mu);
	}
	natsMsg_Destroy(msg);
}

static bool publish_one(jsCtx *js, const struct link *l, struct window *win,
			int i)
{
	jsPubOptions po;

	jsPubOptions_Init(&po);
	po.MsgId = win->ids[i];
	win->sent_ns[i] = now_ns();
	/* SLOT_SENT before the publish: its ack may come before we return. */
	pthread_mutex_lock(&win->mu);
	win->state[i] = SLOT_SENT;
	win->sent++;
	pthread_mutex_unlock(&win->mu);
	if (js_PublishAsync(js, l->subject, win->m[i].data,
			    (int)win->m[i].len, &po) == NATS_OK)
		return true;
	pthread_mutex_lock(&win->mu);
	if (win->state[i] == SLOT_SENT) {
		win->state[i] = SLOT_FAILED;
		win->sent--;
	}
	pthread_mutex_unlock(&win->mu);
	return false;
}

/*
 * The next message into window slot @i, waiting at most @timeout_ns: an
 * MPMC queue's is fetched (a copy, owed to shmq until shmq_ack(), which
 * only the server's acknowledgement brings); an SPSC queue's is acquired
 * in place (released likewise).  0 or -errno.
 */
static int take(const struct link *l, struct window *win, int i,
		struct shmq_meta *meta, int64_t timeout_ns)
{
	ssize_t n;
	int rc;

	if (l->spsc) {
		rc = shmq_acquire(l->q, &win->m[i], timeout_ns);
		/*
		 * The meta of a token just acquired cannot fail; if it did,
		 * the bridge stops and leaves the message to shmq's recovery.
		 */
		return rc ? rc : shmq_msg_meta(l->q, &win->m[i], meta);
	}
	n = shmq_fetch(l->q, win->m[i].data, l->msg_size, meta, &win->tag[i],
		       timeout_ns);
	if (n < 0)
		return (int)n;
	win->m[i].len = (size_t)n;
	return 0;
}

#define ACK_TIMEOUT_NS  5000000000ll    /* no ack by then: publish again */
#define STOP_DRAIN_NS  10000000000ll    /* after SIGTERM, at most this */

static void *export_js(void *arg)
{
	struct link *l = arg;
	/* Static: a callback may outlive this thread (stopped, below). */
	static struct window wins[MAX_LINKS];
	struct window *win = &wins[l - cfg.links];
	bool spsc = l->spsc;
	struct shmq_meta meta;
	jsCtx *js = NULL;
	jsOptions jo;
	uint64_t next_order = 0;
	int64_t stop_at = 0, retry_at = 0;
	int inflight = 0, fails = 0;
	bool published = false;

	win->w = l->window;
	if (!spsc && l->window < cfg.export_window)
		logf_("export %s: window %d, the queue's prefetch (mqctl "
		      "create --max-unacked allows more)", l->target,
		      l->window);
	pthread_mutex_init(&win->mu, NULL);
	pthread_cond_init(&win->cv, NULL);
	win->m = calloc(win->w, sizeof(*win->m));
	win->acked = calloc(win->w, sizeof(*win->acked));
	win->failed = calloc(win->w, sizeof(*win->failed));
	if (!spsc) {
		win->buf = malloc((size_t)win->w * (l->msg_size ? l->msg_size :
						    1));
		win->tag = calloc(win->w, sizeof(*win->tag));
		for (int i = 0; win->buf && i < win->w; i++)
			win->m[i].data = win->buf + (size_t)i * l->msg_size;
	}
	win->ids = calloc(win->w, 128);
	win->seq = calloc(win->w, sizeof(*win->seq));
	win->state = calloc(win->w, sizeof(*win->state));
	win->order = calloc(win->w, sizeof(*win->order));
	win->sent_ns = calloc(win->w, sizeof(*win->sent_ns));
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	jo.PublishAsync.AckHandler = on_pub_ack;
	jo.PublishAsync.AckHandlerClosure = win;
	if (!win->m || !win->ids || !win->seq || !win->state || !win->order ||
	    !win->sent_ns || !win->acked || !win->failed ||
	    (!spsc && (!win->buf || !win->tag)) ||
	    natsConnection_JetStream(&js, nc_out, &jo) != NATS_OK) {
		fail("export %s: out of memory", l->target);
		goto out;
	}
	for (;;) {
		int *acked = win->acked, nacked = 0, *failed = win->failed,
		    nfailed = 0;
		int64_t t = now_ns(), oldest = 0;
		int free_slot = -1, rc;

		if (atomic_load(&stop) && !stop_at)
			stop_at = t + STOP_DRAIN_NS;
		/* What the callbacks said. */
		pthread_mutex_lock(&win->mu);
		win->done = 0;
		for (int i = 0; i < win->w; i++) {
			if (win->state[i] == SLOT_ACKED)
				acked[nacked++] = i;
			else if (win->state[i] == SLOT_FAILED)
				failed[nfailed++] = i;
			else if (win->state[i] == SLOT_FREE && free_slot < 0)
				free_slot = i;
			if (win->state[i] == SLOT_SENT &&
			    (!oldest || win->sent_ns[i] < oldest))
				oldest = win->sent_ns[i];
		}
		pthread_mutex_unlock(&win->mu);
		/*
		 * Acknowledged: released now, each on its own (an MPMC
		 * queue's zero-copy releases need no order).  An SPSC
		 * queue's go in acquisition order: there a message waits
		 * for the ones acquired before it.
		 */
		for (int k = 0; k < (spsc ? win->w : nacked); k++) {
			int i = spsc ? -1 : acked[k];

			if (spsc) {
				for (int j = 0; j < win->w; j++)
					if (win->state[j] != SLOT_FREE &&
					    (i < 0 || win->order[j] <
					     win->order[i]))
						i = j;
				if (i < 0 || win->state[i] != SLOT_ACKED)
					break;
			}
			rc = spsc ? shmq_release(l->q, &win->m[i]) :
				    shmq_ack(l->q, win->tag[i]);
			if (rc < 0) {
				fail("export %s: %s: %s", l->target,
				     spsc ? "release" : "ack",
				     shmq_strerror(rc));
				goto out;
			}
			pthread_mutex_lock(&win->mu);
			win->state[i] = SLOT_FREE;
			pthread_mutex_unlock(&win->mu);
			inflight--;
			if (free_slot < 0)
				free_slot = i;
		}
		if (nacked && fails && !nfailed) {
			logf_("export %s -> %s: acknowledged again",
			      l->target, l->subject);
			fails = 0;
		}
		/*
		 * Not acknowledged in time (the server away, or its answer
		 * lost): take every pending publish back from the library and
		 * publish them all again, same ids; the stream's duplicate
		 * window drops the copies it already holds.
		 */
		if (oldest && t - oldest > ACK_TIMEOUT_NS) {
			natsMsgList pend;

			if (js_PublishAsyncGetPendingList(&pend, js) == NATS_OK)
				natsMsgList_Destroy(&pend);
			nfailed = 0;
			pthread_mutex_lock(&win->mu);
			for (int i = 0; i < win->w; i++) {
				if (win->state[i] == SLOT_SENT) {
					win->state[i] = SLOT_FAILED;
					win->sent--;
				}
				if (win->state[i] == SLOT_FAILED)
					failed[nfailed++] = i;
			}
			pthread_mutex_unlock(&win->mu);
		}
		/* Failed publishes go again first, oldest first. */
		if (nfailed) {
			if (!fails) {
				logf_("export %s -> %s: publish not "
				      "acknowledged; retrying", l->target,
				      l->subject);
				retry_at = t + 100000000;
				fails = 1;
			}
			if (stop_at && t > stop_at)
				goto stopped;
			if (t < retry_at) {
				sleep_ms((retry_at - t) / 1000000 + 1);
				continue;
			}
			for (int a = 0; a < nfailed; a++)
				for (int b = a + 1; b < nfailed; b++)
					if (win->order[failed[b]] <
					    win->order[failed[a]]) {
						int x = failed[a];

						failed[a] = failed[b];
						failed[b] = x;
					}
			for (int k = 0; k < nfailed; k++)
				published |= publish_one(js, l, win,
							 failed[k]);
			fails++;
			retry_at = now_ns() + (fails < 10 ? 100000000 :
					       500000000);
			continue;
		}
		if (stop_at) {
			if (!inflight)
				break;
			if (t > stop_at)
				goto stopped;
		} else if (inflight < win->w && free_slot >= 0) {
			/*
			 * Room in the window: take what the queue holds, up to
			 * the window, publishing each as it is taken, before
			 * looking at the acks again.  The first is waited for:
			 * with publishes in flight only briefly, so their acks
			 * are turned into releases soon.
			 */
			int taken = 0;

			for (;;) {
				rc = take(l, win, free_slot, &meta, taken ? 0 :
					  inflight ? 1000000 : POLL_NS);
				if (rc)
					break;
				snprintf(win->ids[free_slot], 128,
					 "shmq.%s.%s.%" PRIu64 ".%" PRIu64,
					 cfg.segname, l->target, l->qctime,
					 meta.seq);
				win->seq[free_slot] = meta.seq;
				win->order[free_slot] = next_order++;
				inflight++;
				taken++;
				published |= publish_one(js, l, win, free_slot);
				if (inflight == win->w || atomic_load(&stop))
					break;
				pthread_mutex_lock(&win->mu);
				while (++free_slot < win->w &&
				       win->state[free_slot] != SLOT_FREE)
					;
				pthread_mutex_unlock(&win->mu);
				if (free_slot == win->w)
					break;
			}
			if (rc && rc != -ETIMEDOUT && rc != -EAGAIN &&
			    rc != -EINTR) {
				fail("export %s: %s", l->target,
				     shmq_strerror(rc));
				break;
			}
			continue;
		}
		/* The window full (or stopping): wait for an ack. */
		{
			struct timespec ts;
			int64_t until;

			clock_gettime(CLOCK_REALTIME, &ts);
			until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
				100000000;
			ts.tv_sec = until / 1000000000;
			ts.tv_nsec = until % 1000000000;
			pthread_mutex_lock(&win->mu);
			bool any = false;

			for (int i = 0; i < win->w; i++)
				any |= win->state[i] == SLOT_FAILED;
			if (!any && win->sent && win->done * 4 < win->w) {
				win->waiting = true;
				pthread_cond_timedwait(&win->cv, &win->mu, &ts);
				win->waiting = false;
			}
			pthread_mutex_unlock(&win->mu);
		}
	}
	goto out;
stopped:
	/*
	 * Exit holding them: shmq delivers them again to the next bridge,
	 * which publishes them under the same ids.
	 */
	fail("export %s: stopped with %d messages unacknowledged by NATS "
	     "(shmq delivers them again)", l->target, inflight);
out:
	if (js) {
		natsMsgList pend;

		/*
		 * No callback after this: it points at our window.  (Only
		 * with publishes pending: libnats 3.4 crashes on a context
		 * that never published.)
		 */
		if (published &&
		    js_PublishAsyncGetPendingList(&pend, js) == NATS_OK)
			natsMsgList_Destroy(&pend);
		jsCtx_Destroy(js);
	}
	if (inflight)
		return NULL;    /* a callback may still be running: keep it */
	free(win->buf);
	free(win->tag);
	free(win->acked);
	free(win->failed);
	free(win->m);
	free(win->ids);
	free(win->seq);
	free(win->state);
	free(win->order);
	free(win->sent_ns);
	return NULL;
}

/* ---- import: subject -> queue or exchange ------------------------------------ */

/* Into shmq: 0, or -ETIMEDOUT (full past @timeout_ns), or an error. */
static int put(const struct link *l, natsMsg *msg, int64_t timeout_ns)
{
	const char *data = natsMsg_GetData(msg);
	int len = natsMsg_GetDataLength(msg);
	int rc;

	if (l->exchange) {
		rc = shmq_publish(l->x, natsMsg_GetSubject(msg), data,
				  (size_t)len, timeout_ns);
		return rc > 0 ? 0 : rc;
	}
	rc = shmq_send(l->q, data, (size_t)len, timeout_ns);
	return rc == -EAGAIN ? -ETIMEDOUT : rc;
}

static int take_pending(natsSubscription *sub, natsMsg **msgs, int n)
{
	int more = 0;

	if (natsSubscription_GetPending(sub, &more, NULL) != NATS_OK)
		more = 0;
	while (n < cfg.import_window && more-- > 0 &&
	       natsSubscription_NextMsg(&msgs[n], sub, 1) == NATS_OK)
		n++;
	return n;
}

/*
 * Commit message *@i of the *@n in @msgs to shmq, waiting while the queue
 * is full (telling the server that it and every other message delivered
 * to us, which waits behind it, are in progress, so none of them is
 * redelivered meanwhile: test_bridge_backpressure saw them redelivered,
 * as duplicates, before).  For that, the messages before *@i (committed,
 * acknowledged and destroyed) are dropped from @msgs and the others
 * delivered since are taken from @sub: the server delivers at most the
 * window unacknowledged, so they fit.  Returns true once committed; false
 * when it was not (stopping, or a message that can never fit: terminated
 * with a log line).
 */
static bool put_wait(const struct link *l, natsSubscription *sub,
		     natsMsg **msgs, int *i, int *n)
{
	bool js = sub != NULL;
	int64_t slice = (int64_t)cfg.ack_wait_s * 1000000000 / 3;
	natsMsg *msg = msgs[*i];
	int rc;

	for (;;) {
		rc = put(l, msg, slice);
		if (rc == 0)
			return true;
		if (rc == -ETIMEDOUT) {
			if (atomic_load(&stop))
				return false;   /* unacked: redelivered */
			if (!js)
				continue;
			memmove(msgs, msgs + *i, (size_t)(*n - *i) *
				sizeof(*msgs));
			*n -= *i;
			*i = 0;
			*n = take_pending(sub, msgs, *n);
			for (int j = 0; j < *n; j++)
				natsMsg_InProgress(msgs[j], NULL);
			continue;
		}
		logf_("import %s -> %s: message of %d bytes dropped: %s",
		      natsMsg_GetSubject(msg), l->target,
		      natsMsg_GetDataLength(msg), shmq_strerror(rc));
		if (js)
			natsMsg_Term(msg, NULL);
		if (rc != -EMSGSIZE)
			fail("import %s: %s", l->target, shmq_strerror(rc));
		return false;
	}
}

/*
 * The durable consumer is a push consumer: the server sends each message
 * as soon as it is stored, keeping at most --window unacknowledged, and
 * sends the next as each acknowledgement comes back, so the import never
 * waits a round trip for a batch (a pull consumer did: each fetch of 48
 * cost about a millisecond, which capped the import near 48k msgs/s).
 * Its deliver subject is a fresh inbox chosen when the consumer is
 * created and kept in its configuration, so a restarted bridge binds to
 * it again; its deliver group is its name, so several bridges may share
 * it (each message goes to one of them).  It is created here, not by the
 * subscribe call, so that the client library never deletes it: its
 * position survives us.
 */
static natsSubscription *import_sub(jsCtx *js, struct link *l)
{
	jsConsumerConfig cc;
	jsConsumerInfo *ci = NULL;
	jsSubOptions so;
	natsSubscription *sub = NULL;
	natsInbox *inbox = NULL;
	bool grouped;
	jsErrCode jerr = 0;
	natsStatus s;

	s = js_GetConsumerInfo(&ci, js, cfg.stream, l->durable, NULL, &jerr);
	if (s == NATS_OK && (!ci->Config || !ci->Config->DeliverSubject)) {
		jsConsumerInfo_Destroy(ci);
		fail("import %s: consumer %s on stream %s is a pull consumer "
		     "(made by an earlier mqbridge): delete it "
		     "(nats consumer rm %s %s) or pick another --durable",
		     l->subject, l->durable, cfg.stream, cfg.stream,
		     l->durable);
		return NULL;
	}
	if (s != NATS_OK) {
		if (natsInbox_Create(&inbox) != NATS_OK)
			return NULL;
		jsConsumerConfig_Init(&cc);
		cc.Durable = l->durable;
		cc.DeliverSubject = inbox;
		cc.DeliverGroup = l->durable;
		cc.AckPolicy = js_AckExplicit;
		cc.DeliverPolicy = js_DeliverAll;
		cc.AckWait = (int64_t)cfg.ack_wait_s * 1000000000;
		cc.MaxAckPending = cfg.import_window;
		cc.FilterSubject = l->subject;
		jerr = 0;
		s = js_AddConsumer(&ci, js, cfg.stream, &cc, NULL, &jerr);
		natsInbox_Destroy(inbox);
		if (s != NATS_OK) {
			logf_("import %s: consumer %s: %s (%d)", l->subject,
			      l->durable, nats_GetLastError(NULL), (int)jerr);
			return NULL;
		}
		logf_("consumer %s created on stream %s (%s)", l->durable,
		      cfg.stream, l->subject);
	}
	grouped = ci->Config && ci->Config->DeliverGroup;
	jsConsumerInfo_Destroy(ci);
	jsSubOptions_Init(&so);
	so.Stream = cfg.stream;
	so.Consumer = l->durable;
	if (grouped)
		so.Queue = l->durable;
	so.ManualAck = true;
	jerr = 0;
	s = js_SubscribeSync(&sub, js, l->subject, NULL, &so, &jerr);
	if (s != NATS_OK) {
		logf_("import %s: subscribe: %s (%d)", l->subject,
		      nats_GetLastError(NULL), (int)jerr);
		return NULL;
	}
	return sub;
}

static void *import_js(void *arg)
{
	struct link *l = arg;
	natsSubscription *sub = NULL;
	jsCtx *js = js_ctx(nc_in);
	natsMsg **batch = calloc((size_t)cfg.import_window, sizeof(*batch));
	int tries = 0;

	if (!batch) {
		fail("import %s: out of memory", l->subject);
		jsCtx_Destroy(js);
		return NULL;
	}
	while (!atomic_load(&stop)) {
		int n = 0, i;
		natsStatus s;

		if (!sub) {
			sub = import_sub(js, l);
			if (!sub) {
				if (atomic_load(&stop))
					break;
				if (++tries == 20) {
					fail("import %s: cannot subscribe",
					     l->subject);
					break;
				}
				sleep_ms(500);
				continue;
			}
			tries = 0;
		}
		/*
		 * What has arrived, up to the window: the first waited for,
		 * the rest already here.  While one of them waits for room
		 * in the queue, the others are told "in progress" too.
		 */
		s = natsSubscription_NextMsg(&batch[n], sub, 500);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			/* Disconnected, or the cluster moving: wait. */
			sleep_ms(200);
			continue;
		}
		n = take_pending(sub, batch, 1);
		for (i = 0; i < n; i++) {
			if (!put_wait(l, sub, batch, &i, &n))
				break;          /* the rest: redelivered */
			/*
			 * Buffered: the client writes the acks within about a
			 * millisecond, many per write; the window (256) covers
			 * that delay.  Not on a message's way: no hurry.
			 */
			natsMsg_Ack(batch[i], NULL);
			natsMsg_Destroy(batch[i]);
		}
		for (; i < n; i++)
			natsMsg_Destroy(batch[i]);
	}
	/* Not Unsubscribe: that could delete the consumer. */
	if (sub)
		natsSubscription_Destroy(sub);
	free(batch);
	jsCtx_Destroy(js);
	return NULL;
}

/* ---- core NATS: at most once ------------------------------------------------ */

static void *export_core(void *arg)
{
	struct link *l = arg;
	size_t cap = 1 << 20;
	char *buf = malloc(cap);

	while (buf && !atomic_load(&stop)) {
		ssize_t n = shmq_recv(l->q, buf, cap, POLL_NS);

		if (n == -ETIMEDOUT || n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0) {
			fail("export %s: %s", l->target, shmq_strerror((int)n));
			break;
		}
		natsConnection_Publish(nc_out, l->subject, buf, (int)n);
	}
	free(buf);
	return NULL;
}

static void *import_core(void *arg)
{
	struct link *l = arg;
	natsSubscription *sub = NULL;

	if (natsConnection_SubscribeSync(&sub, nc_in, l->subject) != NATS_OK) {
		fail("import %s: %s", l->subject, nats_GetLastError(NULL));
		return NULL;
	}
	while (!atomic_load(&stop)) {
		natsMsg *msg = NULL;
		int zero = 0, one = 1;

		if (natsSubscription_NextMsg(&msg, sub, 200) != NATS_OK)
			continue;
		put_wait(l, NULL, &msg, &zero, &one);
		natsMsg_Destroy(msg);
	}
	natsSubscription_Destroy(sub);
	return NULL;
}

/* ---- main -------------------------------------------------------------------- */

static void open_links(void)
{
	int rc, nimp = 0;

	rc = shmq_seg_open(cfg.segname, &seg);
	if (rc < 0)
		die(1, "segment %s: %s", cfg.segname, shmq_strerror(rc));
	for (int i = 0; i < cfg.nlinks; i++) {
		struct link *l = &cfg.links[i];
		struct shmq_queue_info qi;

		if (l->exchange) {
			rc = shmq_exchange_open(seg, l->target, &l->x);
			if (rc < 0)
				die(1, "exchange %s in segment %s: %s",
				    l->target, cfg.segname, shmq_strerror(rc));
		} else {
			rc = shmq_open(seg, l->target, &l->q);
			if (rc == 0 && l->export)
				rc = shmq_queue_stat(seg, l->target, &qi);
			if (rc < 0)
				die(1, "queue %s in segment %s: %s", l->target,
				    cfg.segname, shmq_strerror(rc));
			if (l->export) {
				l->qctime = qi.create_time_ns;
				l->spsc = qi.flags & SHMQ_SPSC;
				l->msg_size = qi.msg_size;
				l->prefetch = qi.prefetch;
			}
		}
		if (!l->export) {
			/* One durable consumer per import. */
			if (nimp++ == 0)
				snprintf(l->durable, sizeof(l->durable), "%s",
					 cfg.durable);
			else
				snprintf(l->durable, sizeof(l->durable),
					 "%s_%d", cfg.durable, nimp);
		}
	}
	/* The exports' windows (see parse_args). */
	for (int i = 0; i < cfg.nlinks; i++) {
		struct link *l = &cfg.links[i];

		if (!l->export)
			continue;
		if (l->spsc) {
			l->window = cfg.window ? cfg.window : HELD_MAX;
		} else {
			l->window = cfg.export_window;
			/* Said when the export starts (export_js). */
			if (l->window > (int)l->prefetch)
				l->window = (int)l->prefetch;
		}
	}
}

int main(int argc, char **argv)
{
	sigset_t set;
	int code;

	if (getenv("SHMQ_SEGMENT") && *getenv("SHMQ_SEGMENT"))
		cfg.segname = getenv("SHMQ_SEGMENT");   /* as mqctl */
	parse_args(argc, argv);
	/* Every thread (ours and the NATS library's) inherits this mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	open_links();
	for (int i = 0; i < cfg.nlinks; i++) {
		if (cfg.links[i].export && !nc_out)
			nc_out = nats_connect(true, "exports");
		if (!cfg.links[i].export && !nc_in)
			nc_in = nats_connect(false, "imports");
	}
	if (!cfg.core) {
		jsCtx *js = js_ctx(nc_out ? nc_out : nc_in);

		ensure_stream(js);
		jsCtx_Destroy(js);
	}
	for (int i = 0; i < cfg.nlinks; i++) {
		struct link *l = &cfg.links[i];
		void *(*fn)(void *) = l->export ?
			(cfg.core ? export_core : export_js) :
			(cfg.core ? import_core : import_js);

		if (pthread_create(&l->tid, NULL, fn, l))
			die(1, "cannot start a thread");
		l->started = true;
		logf_("%s %s %s %s%s%s", l->export ? "export" : "import",
		      l->export ? l->target : l->subject, "->",
		      l->exchange ? "@" : "",
		      l->export ? l->subject : l->target,
		      cfg.core ? " (core NATS, at most once)" : "");
	}
	while (!atomic_load(&stop)) {
		struct timespec ts = { 0, POLL_NS };
		int sig = sigtimedwait(&set, NULL, &ts);

		if (sig == SIGTERM || sig == SIGINT) {
			logf_("%s: finishing what is in flight",
			      sig == SIGTERM ? "SIGTERM" : "SIGINT");
			atomic_store(&stop, true);
		}
	}
	for (int i = 0; i < cfg.nlinks; i++)
		if (cfg.links[i].started)
			pthread_join(cfg.links[i].tid, NULL);
	code = atomic_load(&fatal);
	/* Acks and core publishes still buffered go out before we leave. */
	for (int i = 0; i < 2; i++) {
		natsConnection *c = i ? nc_in : nc_out;

		if (c) {
			natsConnection_FlushTimeout(c, 2000);
			natsConnection_Destroy(c);
		}
	}
	if (code == 0) {
		for (int i = 0; i < cfg.nlinks; i++) {
			if (cfg.links[i].q)
				shmq_close(cfg.links[i].q);
			if (cfg.links[i].x)
				shmq_exchange_close(cfg.links[i].x);
		}
		shmq_seg_close(seg);
		logf_("stopped");
	}
	return code;
}
