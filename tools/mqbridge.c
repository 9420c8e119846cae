// SPDX-License-Identifier: MIT
/*
 * mqbridge - forward shmq queues to NATS subjects and NATS subjects to
 * shmq queues or exchanges, through JetStream (or core NATS with --core).
 *
 * Export (queue -> subject), exactly once into the stream.  A batch of up
 * to --window messages is taken in place (shmq_acquire), each is published
 * asynchronously with the JetStream message id
 *
 *     shmq.<segment>.<queue>.<queue creation time ns>.<seq>
 *
 * (seq: shmq_msg_meta(), the position the message was first published at,
 * the same when shmq delivers it again), and the batch is released to shmq
 * only once the server acknowledged every publish.  A failed or timed-out
 * batch is published again, whole: the stream's duplicate window drops the
 * copies it already holds.  A bridge killed anywhere leaves its acquired
 * messages to shmq's crash recovery, which delivers them again to the next
 * bridge (which attaches, and so repairs); their ids are unchanged, so the
 * stream keeps one copy as long as the bridge is back within the duplicate
 * window (--dup-window).
 *
 * Import (subject -> queue or exchange), at least once.  A durable pull
 * consumer (explicit acks, at most --window unacknowledged) feeds the
 * queue; a message is acknowledged only after shmq_send()/shmq_publish()
 * returned.  A killed bridge's unacknowledged messages are redelivered by
 * NATS after --ack-wait: at most --window duplicates per bridge kill or
 * server restart.  A full queue blocks the import (with "in progress"
 * notes to the server, so NATS does not redeliver meanwhile): nothing is
 * buffered beyond one batch.
 *
 * One thread per export and per import; the main thread waits for
 * SIGTERM/SIGINT, then the workers finish their batch and the bridge exits
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

struct link {
	bool export;            /* queue -> subject; else subject -> queue */
	char *subject;
	char *target;           /* queue or exchange name */
	bool exchange;          /* --import SUBJECT=@EXCHANGE */
	shmq *q;
	shmq_exchange *x;
	uint64_t qctime;        /* the queue's creation time (export ids) */
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
	int window;
	int ack_wait_s;
	int dup_window_s;
	int replicas;
	struct link links[MAX_LINKS];
	int nlinks;
} cfg = {
	.segname = "shmq", .stream = "SHMQ", .durable = "mqbridge",
	.window = 32, .ack_wait_s = 30, .dup_window_s = 120, .replicas = 1,
};

static shmq_seg *seg;
static natsConnection *nc;
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
		case 'w': cfg.window = parse_int("--window", optarg, 1, 48); break;
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
	 * Each acquired message holds one of the attachment's 60 operation
	 * records (shmq_reserve(3)): the exports' windows must fit.
	 */
	int nexp = 0;

	for (int i = 0; i < cfg.nlinks; i++)
		nexp += cfg.links[i].export;
	if (!cfg.core && nexp * cfg.window > 48)
		die(2, "%d exports x --window %d: more than 48 messages held "
		    "at once; lower --window", nexp, cfg.window);
	if (strpbrk(cfg.stream, ".*> ") || strpbrk(cfg.durable, ".*> "))
		die(1, "bad stream or durable name (no '.', '*', '>', space)");
}

/* ---- NATS connection -------------------------------------------------------- */

static void on_disconnected(natsConnection *c, void *closure)
{
	if (!atomic_load(&stop))
		logf_("disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *c, void *closure)
{
	char url[256] = "?";

	natsConnection_GetConnectedUrl(c, url, sizeof(url));
	logf_("reconnected to %s", url);
}

/*
 * Connect; while no server answers, retry every half second (a bridge
 * started before its server waits for it).  A server that refuses us
 * (authentication, permissions) is an error: exit 1.
 *
 * SendAsap: every publish, ack and pull request is written to the socket
 * at once.  The client's default buffers them for its flusher thread,
 * which writes about a millisecond later: that millisecond was most of a
 * message's trip (bench_bridge: one-way median 1.0 ms buffered, 0.37 ms
 * with SendAsap; throughput unchanged, as each batch waits for its acks
 * anyway).
 */
static void nats_connect(void)
{
	natsOptions *o;
	natsStatus s;
	char url[256] = "?";
	bool said = false;

	if (natsOptions_Create(&o) != NATS_OK ||
	    natsOptions_SetServers(o, cfg.urls, cfg.nurls) != NATS_OK ||
	    natsOptions_SetNoRandomize(o, true) != NATS_OK ||
	    natsOptions_SetSendAsap(o, true) != NATS_OK ||
	    natsOptions_SetMaxReconnect(o, -1) != NATS_OK ||
	    natsOptions_SetReconnectWait(o, 200) != NATS_OK ||
	    natsOptions_SetReconnectBufSize(o, 16 << 20) != NATS_OK ||
	    natsOptions_SetDisconnectedCB(o, on_disconnected, NULL) != NATS_OK ||
	    natsOptions_SetReconnectedCB(o, on_reconnected, NULL) != NATS_OK)
		die(1, "NATS options: %s", nats_GetLastError(NULL));
	for (;;) {
		s = natsConnection_Connect(&nc, o);
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
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	logf_("connected to %s", url);
}

static jsCtx *js_ctx(void)
{
	jsOptions jo;
	jsCtx *js;

	jsOptions_Init(&jo);
	jo.Wait = 5000;
	if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
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

static atomic_uint_fast64_t pub_errors;

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	atomic_fetch_add(&pub_errors, 1);
}

/*
 * Publish the batch and wait for every acknowledgement.  Returns true when
 * the server acknowledged all (stored now, or earlier: duplicates).
 */
static bool publish_batch(jsCtx *js, const struct link *l,
			  const struct shmq_msg *m, char (*ids)[128], int n)
{
	uint64_t errs = atomic_load(&pub_errors);
	jsPubOptions po;
	natsMsgList pend;
	natsStatus s = NATS_OK;

	for (int i = 0; i < n && s == NATS_OK; i++) {
		jsPubOptions_Init(&po);
		po.MsgId = ids[i];
		s = js_PublishAsync(js, l->subject, m[i].data, (int)m[i].len,
				    &po);
	}
	if (s == NATS_OK) {
		jsPubOptions_Init(&po);
		po.MaxWait = 5000;
		s = js_PublishAsyncComplete(js, &po);
	}
	if (s != NATS_OK) {
		/* Take back what is still pending; we publish it again. */
		if (js_PublishAsyncGetPendingList(&pend, js) == NATS_OK)
			natsMsgList_Destroy(&pend);
		return false;
	}
	return atomic_load(&pub_errors) == errs;
}

static void *export_js(void *arg)
{
	struct link *l = arg;
	int w = cfg.window;
	struct shmq_msg *m = calloc(w, sizeof(*m));
	char (*ids)[128] = calloc(w, 128);
	struct shmq_meta meta;
	jsCtx *js = NULL;
	jsOptions jo;

	jsOptions_Init(&jo);
	jo.Wait = 5000;
	jo.PublishAsync.ErrHandler = on_pub_error;
	if (!m || !ids || natsConnection_JetStream(&js, nc, &jo) != NATS_OK) {
		fail("export %s: out of memory", l->target);
		goto out;
	}
	while (!atomic_load(&stop)) {
		int n = 0, rc, tries = 0;

		rc = shmq_acquire(l->q, &m[0], POLL_NS);
		if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EINTR)
			continue;
		if (rc < 0) {
			fail("export %s: %s", l->target, shmq_strerror(rc));
			break;
		}
		n = 1;
		while (n < w && shmq_acquire(l->q, &m[n], 0) == 0)
			n++;
		for (int i = 0; i < n; i++) {
			rc = shmq_msg_meta(l->q, &m[i], &meta);
			if (rc < 0) {
				fail("export %s: %s", l->target,
				     shmq_strerror(rc));
				goto out;       /* left to shmq's recovery */
			}
			snprintf(ids[i], 128, "shmq.%s.%s.%" PRIu64 ".%" PRIu64,
				 cfg.segname, l->target, l->qctime, meta.seq);
		}
		/*
		 * Until the server has them all.  After SIGTERM, a few more
		 * tries; then exit holding them: shmq delivers them again to
		 * the next bridge, which publishes them under the same ids.
		 */
		while (!publish_batch(js, l, m, ids, n)) {
			if (++tries == 1)
				logf_("export %s -> %s: publish not "
				      "acknowledged; retrying", l->target,
				      l->subject);
			if (atomic_load(&stop) && tries > 20) {
				fail("export %s: stopped with %d messages "
				     "unacknowledged by NATS (shmq delivers "
				     "them again)", l->target, n);
				goto out;
			}
			sleep_ms(tries < 10 ? 100 : 500);
		}
		if (tries)
			logf_("export %s -> %s: acknowledged again",
			      l->target, l->subject);
		for (int i = 0; i < n; i++)
			shmq_release(l->q, &m[i]);
	}
out:
	if (js)
		jsCtx_Destroy(js);
	free(m);
	free(ids);
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

/*
 * Commit message @i of the @n in @msgs to shmq, waiting while the queue is
 * full (telling the server that it and the rest of the batch, which waits
 * behind it, are in progress, so none of them is redelivered meanwhile:
 * test_bridge_backpressure saw the rest redelivered, as duplicates,
 * before).  Returns true once committed; false when it was not (stopping,
 * or a message that can never fit: terminated with a log line).
 */
static bool put_wait(const struct link *l, natsMsg **msgs, int i, int n,
		     bool js)
{
	int64_t slice = (int64_t)cfg.ack_wait_s * 1000000000 / 3;
	natsMsg *msg = msgs[i];
	int rc;

	for (;;) {
		rc = put(l, msg, slice);
		if (rc == 0)
			return true;
		if (rc == -ETIMEDOUT) {
			if (atomic_load(&stop))
				return false;   /* unacked: redelivered */
			for (int j = i; js && j < n; j++)
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

static natsSubscription *import_sub(jsCtx *js, struct link *l)
{
	jsConsumerConfig cc;
	jsConsumerInfo *ci = NULL;
	jsSubOptions so;
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;
	natsStatus s;

	/*
	 * The durable consumer is created here, not by the subscribe call,
	 * so that the library never deletes it: its position survives us.
	 */
	s = js_GetConsumerInfo(&ci, js, cfg.stream, l->durable, NULL, &jerr);
	if (s != NATS_OK) {
		jsConsumerConfig_Init(&cc);
		cc.Durable = l->durable;
		cc.AckPolicy = js_AckExplicit;
		cc.DeliverPolicy = js_DeliverAll;
		cc.AckWait = (int64_t)cfg.ack_wait_s * 1000000000;
		cc.MaxAckPending = cfg.window;
		cc.FilterSubject = l->subject;
		jerr = 0;
		s = js_AddConsumer(&ci, js, cfg.stream, &cc, NULL, &jerr);
		if (s != NATS_OK) {
			logf_("import %s: consumer %s: %s (%d)", l->subject,
			      l->durable, nats_GetLastError(NULL), (int)jerr);
			return NULL;
		}
		logf_("consumer %s created on stream %s (%s)", l->durable,
		      cfg.stream, l->subject);
	}
	jsConsumerInfo_Destroy(ci);
	jsSubOptions_Init(&so);
	so.Stream = cfg.stream;
	so.Consumer = l->durable;
	s = js_PullSubscribe(&sub, js, l->subject, l->durable, NULL, &so,
			     &jerr);
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
	jsCtx *js = js_ctx();
	int tries = 0;

	while (!atomic_load(&stop)) {
		natsMsgList list;
		jsErrCode jerr = 0;
		natsStatus s;

		if (!sub) {
			sub = import_sub(js, l);
			if (!sub) {
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
		s = natsSubscription_Fetch(&list, sub, cfg.window, 500, &jerr);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			/* Disconnected or the cluster moving: wait. */
			sleep_ms(200);
			continue;
		}
		for (int i = 0; i < list.Count; i++) {
			if (!put_wait(l, list.Msgs, i, list.Count, true))
				break;          /* the rest: redelivered */
			natsMsg_Ack(list.Msgs[i], NULL);
		}
		natsMsgList_Destroy(&list);
	}
	/* Not Unsubscribe: that could delete the consumer. */
	if (sub)
		natsSubscription_Destroy(sub);
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
		natsConnection_Publish(nc, l->subject, buf, (int)n);
	}
	free(buf);
	return NULL;
}

static void *import_core(void *arg)
{
	struct link *l = arg;
	natsSubscription *sub = NULL;

	if (natsConnection_SubscribeSync(&sub, nc, l->subject) != NATS_OK) {
		fail("import %s: %s", l->subject, nats_GetLastError(NULL));
		return NULL;
	}
	while (!atomic_load(&stop)) {
		natsMsg *msg = NULL;

		if (natsSubscription_NextMsg(&msg, sub, 200) != NATS_OK)
			continue;
		put_wait(l, &msg, 0, 1, false);
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
			if (l->export)
				l->qctime = qi.create_time_ns;
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
	nats_connect();
	if (!cfg.core) {
		jsCtx *js = js_ctx();

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
	natsConnection_FlushTimeout(nc, 2000);
	natsConnection_Destroy(nc);
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
