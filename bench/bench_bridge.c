// SPDX-License-Identifier: MIT
/*
 * bench_bridge - what mqbridge costs: one-way latency and throughput of
 * 64-byte messages from a queue of segment A, through two mqbridge
 * processes and one nats-server -js, to a queue of segment B; beside, in
 * the same run, the NATS figures the bridge is judged against.
 *
 *   bridge      A:"out" -> mqbridge --export out=shmqbench.bridge ->
 *               nats-server -js (stream BRIDGE, file storage) ->
 *               mqbridge --import shmqbench.bridge=in -> B:"in"
 *   js-async    a plain NATS client publishing the same messages into a
 *               stream of the same kind (RAW: file storage, the same
 *               duplicate window, a message id on each publish, as the
 *               bridge's exporter does) with js_PublishAsync(), then
 *               js_PublishAsyncComplete(): every publish acknowledged
 *   js-sync     one js_Publish() at a time: the JetStream ack round trip,
 *               which each export batch waits for
 *   req-reply   a NATS request/reply round trip (core NATS, two
 *               connections, a responder thread that echoes)
 *
 * Latency: one message in flight.  The message carries its CLOCK_MONOTONIC
 * send time; its receiver (the same process: both segments are on this
 * host, so the clock is common) subtracts it from its own.  Throughput: a
 * sender thread keeps A's queue full (shmq_send() blocks when it is), the
 * main thread receives from B's; timed from the first send to the last
 * receive.  Every message is checked: its sequence number at both ends,
 * in order, none missing, none twice; a gap exits 1.
 *
 * Where the time goes: the CPU time (user + system) each process spent
 * per message in the two throughput runs (nats-server, the exporter, the
 * importer, this program), read from /proc/PID/stat before and after, and
 * the ceiling that total allows: online CPUs / CPU per message, the rate
 * if the CPUs did nothing else.
 *
 * The goals (issue 14): bridge throughput >= 0.5x js-async; bridge
 * one-way median <= 1.5x the req-reply round trip.
 *
 * The program starts its own nats-server -js (free port of 127.0.0.1,
 * store in /tmp/shmqbench.PID.nats, removed after) and its two mqbridge
 * processes (the mqbridge built beside build/bench/: ../mqbridge, or
 * $MQBRIDGE), and stops all of them by pid on every exit path.
 */
#include "mech.h"

#include <pthread.h>

#if !BENCH_HAVE_NATS
int main(void)
{
	printf("bench_bridge: built without libnats (libnats-dev): "
	       "skipped\n");
	return 0;
}
#else

#define BB_MSG		64
#define BB_SUBJ		"shmqbench.bridge"
#define BB_RAW_SUBJ	"shmqbench.raw"
#define BB_RR_SUBJ	"shmqbench.rr"
#define BB_DUP_NS	(120ll * 1000000000)	/* mqbridge's --dup-window */
#define BB_TIMEOUT_NS	(20ll * 1000000000)	/* one message, at most */

static const char bb_help[] =
	"usage: bench_bridge [options]\n"
	"\n"
	"One-way latency and throughput of 64-byte messages from a queue of\n"
	"segment A through two mqbridge processes and nats-server -js to a\n"
	"queue of segment B, against JetStream async publish (throughput)\n"
	"and a NATS request/reply round trip (latency), in the same run.\n"
	"\n"
	"options:\n"
	"  --iters N        latency samples per case (default 2000; --quick\n"
	"                   500; --smoke 20)\n"
	"  --rounds N       throughput messages, in thousands (default 100;\n"
	"                   --quick 20; --smoke 1)\n"
	"  --quick, --smoke, --out DIR, --verbose, --help\n"
	"\n"
	"Environment: MQBRIDGE, the mqbridge to run (default: ../mqbridge\n"
	"beside this program's directory).\n";

struct bb {
	const struct bench_opts *o;
	char seg_a[64], seg_b[72];
	shmq_seg *a, *b;
	shmq *out, *in;
	int port;
	pid_t server;
	char url[64];
	char dir[96];
	char log_server[PATH_MAX], log_exp[PATH_MAX], log_imp[PATH_MAX];
	pid_t exp, imp;
	natsConnection *nc;
	jsCtx *js;
	uint64_t lat_n, tput_n;
};

struct bb_msg {
	uint64_t seq;
	uint64_t sent_ns;
	char fill[BB_MSG - 3 * sizeof(uint64_t)];
	uint64_t seq2;
};
_Static_assert(sizeof(struct bb_msg) == BB_MSG, "64-byte messages");

static void bb_stamp(struct bb_msg *m, uint64_t seq)
{
	memset(m->fill, 0xa5, sizeof(m->fill));
	m->seq = m->seq2 = seq;
	m->sent_ns = bench_now_ns();
}

/* 0 when @buf of @len bytes is message @seq, intact. */
static int bb_check(const void *buf, ssize_t len, uint64_t seq)
{
	struct bb_msg m;

	if (len != BB_MSG)
		return -1;
	memcpy(&m, buf, sizeof(m));
	return m.seq == seq && m.seq2 == seq ? 0 : -1;
}

static struct bb *bb_g;	/* for bb_die() */

static void bb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
							 noreturn));
static void bb_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench_bridge: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (bb_g)
		fprintf(stderr, "bench_bridge: logs: %s %s %s\n",
			bb_g->log_server, bb_g->log_exp, bb_g->log_imp);
	bench_kill_all();
	if (bb_g) {
		if (bb_g->b)
			shmq_seg_close(bb_g->b);
		shmq_seg_unlink(bb_g->seg_b);
	}
	bench_die(bb_g ? bb_g->a : NULL, bb_g ? bb_g->seg_a : "");
	exit(1);	/* (bench_die() does not return either) */
}

static void bb_nats_ok(natsStatus s, const char *what)
{
	if (s != NATS_OK)
		bb_die("%s: %s (%s)", what, natsStatus_GetText(s),
		       nats_GetLastError(NULL));
}

/* ---- processes ------------------------------------------------------------ */

static void bb_logpath(const struct bb *b, char *buf, const char *name)
{
	if (b->o->out)
		snprintf(buf, PATH_MAX, "%s/bridge-%s.log", b->o->out, name);
	else
		snprintf(buf, PATH_MAX, "/tmp/shmqbench.%d.%s.log",
			 (int)getpid(), name);
	unlink(buf);
}

/* nats-server -js on a free port of 127.0.0.1, its store in our dir. */
static void bb_server_start(struct bb *b)
{
	char port[16], *argv[10];
	int rc;

	rc = bench_free_ports(&b->port, 1);
	if (rc)
		bb_die("no free port: %s", strerror(-rc));
	snprintf(b->dir, sizeof(b->dir), "/tmp/shmqbench.%d.nats",
		 (int)getpid());
	if (mkdir(b->dir, 0700) < 0)
		bb_die("mkdir %s: %s", b->dir, strerror(errno));
	snprintf(port, sizeof(port), "%d", b->port);
	snprintf(b->url, sizeof(b->url), "nats://127.0.0.1:%d", b->port);
	argv[0] = "nats-server";
	argv[1] = "-js";
	argv[2] = "-a";
	argv[3] = "127.0.0.1";
	argv[4] = "-p";
	argv[5] = port;
	argv[6] = "-sd";
	argv[7] = b->dir;
	argv[8] = NULL;
	b->server = bench_broker_spawn(argv, NULL, b->log_server, b->dir);
	if (b->server < 0)
		bb_die("nats-server: %s", strerror(-b->server));
	rc = bench_broker_wait(b->server, bench_tcp_probe, b->port, 10000);
	if (rc)
		bb_die("nats-server did not start: %s (log %s)",
		       strerror(-rc), b->log_server);
	printf("nats-server -js started for this run (pid %d, 127.0.0.1:%d, "
	       "store %s)\n", (int)b->server, b->port, b->dir);
}

static const char *bb_mqbridge(void)
{
	static char path[PATH_MAX];
	char exe[PATH_MAX], *slash;
	ssize_t n;

	if (getenv("MQBRIDGE") && *getenv("MQBRIDGE"))
		return getenv("MQBRIDGE");
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "mqbridge";
	exe[n] = '\0';
	/* build/bench/bench_bridge -> build/mqbridge */
	slash = strrchr(exe, '/');
	*slash = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof(path), "%.4000s/mqbridge", exe);
	return path;
}

/* One mqbridge child (recorded: every exit path kills it). */
static pid_t bb_bridge_start(const char *const argv[], const char *log)
{
	pid_t pid = bench_fork();

	if (pid < 0)
		bb_die("fork: %s", strerror(-pid));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* SIGTERM: a bridge finishes its batch and exits 0. */
static void bb_bridge_stop(pid_t pid, const char *what)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	if (bench_reap(pid, what))
		bb_die("%s did not stop cleanly", what);
}

static void bb_bridges_start(struct bb *b)
{
	const char *mqb = bb_mqbridge();
	const char *exp[] = { mqb, "-s", b->seg_a, "--nats", b->url,
			      "--stream", "BRIDGE", "--export",
			      "out=" BB_SUBJ, NULL };
	const char *imp[] = { mqb, "-s", b->seg_b, "--nats", b->url,
			      "--stream", "BRIDGE", "--durable", "bench",
			      "--import", BB_SUBJ "=in", NULL };

	if (access(mqb, X_OK) < 0)
		bb_die("%s: %s (make builds it when libnats-dev is there)",
		       mqb, strerror(errno));
	b->exp = bb_bridge_start(exp, b->log_exp);
	b->imp = bb_bridge_start(imp, b->log_imp);
	printf("mqbridge --export out=%s (pid %d), --import %s=in (pid %d): "
	       "%s\n", BB_SUBJ, (int)b->exp, BB_SUBJ, (int)b->imp, mqb);
}

/* ---- the bridge ------------------------------------------------------------- */

static void bb_queues(struct bb *b)
{
	struct shmq_seg_attr sa = { .size = (size_t)4 << 20 };
	/* The export fetches up to 256 at a time (mqbridge's window). */
	struct shmq_attr qa = { .capacity = 1024, .msg_size = BB_MSG,
				.max_unacked = 512 };
	int rc;

	rc = shmq_create(b->a, "out", &qa);
	if (!rc)
		rc = shmq_open(b->a, "out", &b->out);
	if (rc)
		bb_die("queue out: %s", shmq_strerror(rc));
	snprintf(b->seg_b, sizeof(b->seg_b), "%s.b", b->seg_a);
	/* The fatal paths unlink one file besides the run's segment. */
	snprintf(bench_sig.zmq_path, sizeof(bench_sig.zmq_path),
		 "/dev/shm/shmq.%s", b->seg_b);
	rc = shmq_seg_create(b->seg_b, &sa, &b->b);
	if (!rc)
		rc = shmq_create(b->b, "in", &qa);
	if (!rc)
		rc = shmq_open(b->b, "in", &b->in);
	if (rc)
		bb_die("segment %s, queue in: %s", b->seg_b,
		       shmq_strerror(rc));
}

/* Receives message @seq from B's queue, or dies; its one-way latency. */
static uint64_t bb_recv(struct bb *b, uint64_t seq)
{
	struct bb_msg m;
	ssize_t n;

	n = shmq_recv(b->in, &m, sizeof(m), BB_TIMEOUT_NS);
	if (n < 0)
		bb_die("message %" PRIu64 " did not arrive: %s", seq,
		       shmq_strerror((int)n));
	if (bb_check(&m, n, seq))
		bb_die("message %" PRIu64 ": got %zd bytes, seq %" PRIu64
		       " (a gap, a duplicate or a torn copy)", seq, n, m.seq);
	return bench_now_ns() - m.sent_ns;
}

/* One message at a time, @n of them from @seq on; into @h. */
static uint64_t bb_bridge_latency(struct bb *b, uint64_t seq, uint64_t n,
				  struct hist *h)
{
	struct bb_msg m;
	uint64_t i;
	int rc;

	for (i = 0; i < n; i++, seq++) {
		bb_stamp(&m, seq);
		rc = shmq_send(b->out, &m, sizeof(m), BB_TIMEOUT_NS);
		if (rc)
			bb_die("send: %s", shmq_strerror(rc));
		if (h)
			hist_add(h, bb_recv(b, seq));
		else
			bb_recv(b, seq);
	}
	return seq;
}

struct bb_sender {
	shmq *q;
	uint64_t seq, n;
	int rc;
};

static void *bb_send_thread(void *arg)
{
	struct bb_sender *s = arg;
	struct bb_msg m;
	uint64_t i;

	for (i = 0; i < s->n && !s->rc; i++) {
		bb_stamp(&m, s->seq + i);
		s->rc = shmq_send(s->q, &m, sizeof(m), BB_TIMEOUT_NS);
	}
	return NULL;
}

/* @n messages as fast as they go; msgs/s; the loaded latency into @h. */
static double bb_bridge_tput(struct bb *b, uint64_t seq, uint64_t n,
			     struct hist *h)
{
	struct bb_sender s = { .q = b->out, .seq = seq, .n = n };
	pthread_t t;
	uint64_t t0, i;

	t0 = bench_now_ns();
	if (pthread_create(&t, NULL, bb_send_thread, &s))
		bb_die("cannot start a thread");
	for (i = 0; i < n; i++)
		hist_add(h, bb_recv(b, seq + i));
	pthread_join(t, NULL);
	if (s.rc)
		bb_die("send: %s", shmq_strerror(s.rc));
	return (double)n * 1e9 / (double)(bench_now_ns() - t0);
}

/* ---- where the CPU goes ---------------------------------------------------- */

/* CPU time (user + system, all threads) of process @pid so far, ns; 0 self. */
static uint64_t bb_cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid ? (int)pid :
		 (int)getpid());
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* After "(comm)": state is field 3; utime, stime are 14, 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu", &ut, &st) != 2)
		return 0;
	return (uint64_t)(ut + st) * (1000000000ull /
				      (uint64_t)sysconf(_SC_CLK_TCK));
}

enum { BB_SERVER, BB_EXP, BB_IMP, BB_SELF, BB_NPROC };

/* A snapshot of the CPU time of the server, both bridges and us. */
static void bb_cpu(const struct bb *b, uint64_t out[BB_NPROC])
{
	out[BB_SERVER] = bb_cpu_ns(b->server);
	out[BB_EXP] = bb_cpu_ns(b->exp);
	out[BB_IMP] = bb_cpu_ns(b->imp);
	out[BB_SELF] = bb_cpu_ns(0);
}

/*
 * One row: each process's CPU per message between the snapshots @t0 and
 * @t1 (us), their sum, and what that sum allows on this machine's CPUs:
 * the throughput if every CPU did nothing else.
 */
static void bb_cpu_row(const char *name, const uint64_t t0[BB_NPROC],
		       const uint64_t t1[BB_NPROC], bool bridges, uint64_t n,
		       double got, FILE *csv)
{
	double us[BB_NPROC], sum = 0, ceil;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	for (int i = 0; i < BB_NPROC; i++) {
		us[i] = (double)(t1[i] - t0[i]) / 1e3 / (double)n;
		if (!bridges && (i == BB_EXP || i == BB_IMP))
			us[i] = 0;
		sum += us[i];
	}
	ceil = sum > 0 ? (double)cpus * 1e6 / sum : 0;
	if (bridges)
		printf("%-12s %11.1f %8.1f %8.1f %8.1f %6.1f %9.0f  %.0f%% of "
		       "it\n", name, us[BB_SERVER], us[BB_EXP], us[BB_IMP],
		       us[BB_SELF], sum, ceil, ceil > 0 ? 100 * got / ceil : 0);
	else
		printf("%-12s %11.1f %8s %8s %8.1f %6.1f %9.0f  %.0f%% of "
		       "it\n", name, us[BB_SERVER], "-", "-", us[BB_SELF], sum,
		       ceil, ceil > 0 ? 100 * got / ceil : 0);
	if (csv)
		fprintf(csv, "%s,cpu_us_per_msg,%" PRIu64 ",%.2f,%.2f,%.2f,"
			"%.2f,%.2f,%.0f\n", name, n, us[BB_SERVER], us[BB_EXP],
			us[BB_IMP], us[BB_SELF], sum, ceil);
}

/* ---- NATS alone ----------------------------------------------------------- */

/*
 * @asap: every publish written to the socket at once (natsOptions_
 * SetSendAsap, as mqbridge's exports publish); else into the client's
 * buffer, which its flusher thread writes about 1 ms later (the default,
 * as mqbridge's imports acknowledge).
 */
static void bb_connect(struct bb *b, natsConnection **nc, bool asap)
{
	natsOptions *opts;

	bb_nats_ok(natsOptions_Create(&opts), "options");
	bb_nats_ok(natsOptions_SetURL(opts, b->url), "url");
	bb_nats_ok(natsOptions_SetSendAsap(opts, asap), "send asap");
	bb_nats_ok(natsOptions_SetAllowReconnect(opts, false), "reconnect");
	bb_nats_ok(natsConnection_Connect(nc, opts), "connect");
	natsOptions_Destroy(opts);
}

/* Stream RAW: what mqbridge creates (file storage, 1 replica, dups). */
static void bb_raw_stream(struct bb *b)
{
	const char *subj[] = { BB_RAW_SUBJ };
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;

	jsStreamConfig_Init(&sc);
	sc.Name = "RAW";
	sc.Subjects = subj;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = 1;
	sc.Duplicates = BB_DUP_NS;
	bb_nats_ok(js_AddStream(&si, b->js, &sc, NULL, &jerr), "stream RAW");
	jsStreamInfo_Destroy(si);
}

static uint64_t bb_stream_msgs(struct bb *b, const char *name)
{
	jsStreamInfo *si = NULL;
	uint64_t n;

	bb_nats_ok(js_GetStreamInfo(&si, b->js, name, NULL, NULL),
		   "stream info");
	n = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	return n;
}

static _Atomic uint64_t bb_pub_errors;

static void bb_on_pub_error(jsCtx *js BENCH_UNUSED, jsPubAckErr *pae,
			    void *closure BENCH_UNUSED)
{
	/* relaxed: a count, read after js_PublishAsyncComplete(). */
	atomic_fetch_add_explicit(&bb_pub_errors, 1, memory_order_relaxed);
	fprintf(stderr, "bench_bridge: async publish: %s\n",
		pae->ErrText ? pae->ErrText : "error");
}

/*
 * @n async publishes with ids RAW.SEQ into stream RAW, all acknowledged;
 * msgs/s.  The client's default window (4,000 unacknowledged publishes)
 * and one ack per message, as a plain JetStream client does.
 */
static double bb_js_async(jsCtx *js, uint64_t seq, uint64_t n,
			  unsigned batch)
{
	jsPubOptions po;
	struct bb_msg m;
	char id[64];
	uint64_t t0, i;

	t0 = bench_now_ns();
	for (i = 0; i < n; i++) {
		bb_stamp(&m, seq + i);
		snprintf(id, sizeof(id), "raw.%" PRIu64, seq + i);
		jsPubOptions_Init(&po);
		po.MsgId = id;
		bb_nats_ok(js_PublishAsync(js, BB_RAW_SUBJ, &m, sizeof(m),
					   &po), "async publish");
		if (batch && (i + 1) % batch == 0) {
			jsPubOptions_Init(&po);
			po.MaxWait = 60000;
			bb_nats_ok(js_PublishAsyncComplete(js, &po),
				   "async publish complete");
		}
	}
	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	bb_nats_ok(js_PublishAsyncComplete(js, &po), "async publish complete");
	if (atomic_load_explicit(&bb_pub_errors, memory_order_relaxed))
		bb_die("async publishes failed");
	return (double)n * 1e9 / (double)(bench_now_ns() - t0);
}

/* @n synchronous publishes: each waits for its ack; into @h. */
static void bb_js_sync(jsCtx *js, uint64_t seq, uint64_t n, struct hist *h)
{
	jsPubOptions po;
	jsPubAck *pa;
	struct bb_msg m;
	char id[64];
	uint64_t t0, i;

	for (i = 0; i < n; i++) {
		bb_stamp(&m, seq + i);
		snprintf(id, sizeof(id), "raw.%" PRIu64, seq + i);
		jsPubOptions_Init(&po);
		po.MsgId = id;
		t0 = bench_now_ns();
		bb_nats_ok(js_Publish(&pa, js, BB_RAW_SUBJ, &m, sizeof(m),
				      &po, NULL), "publish");
		hist_add(h, bench_now_ns() - t0);
		jsPubAck_Destroy(pa);
	}
}

static void bb_echo(natsConnection *nc, natsSubscription *sub BENCH_UNUSED,
		    natsMsg *msg, void *closure BENCH_UNUSED)
{
	natsConnection_Publish(nc, natsMsg_GetReply(msg), natsMsg_GetData(msg),
			       natsMsg_GetDataLength(msg));
	natsMsg_Destroy(msg);
}

/*
 * @n requests, each answered by an echo on a second connection; both
 * connections @asap or not.
 */
static void bb_req_reply(struct bb *b, bool asap, uint64_t seq, uint64_t n,
			 struct hist *h)
{
	natsConnection *req = NULL, *resp = NULL;
	natsSubscription *sub = NULL;
	natsMsg *reply;
	struct bb_msg m;
	uint64_t i, t0;

	bb_connect(b, &req, asap);
	bb_connect(b, &resp, asap);
	bb_nats_ok(natsConnection_Subscribe(&sub, resp, BB_RR_SUBJ, bb_echo,
					    NULL), "subscribe");
	bb_nats_ok(natsConnection_Flush(resp), "flush");
	for (i = 0; i < n; i++) {
		bb_stamp(&m, seq + i);
		t0 = bench_now_ns();
		bb_nats_ok(natsConnection_Request(&reply, req, BB_RR_SUBJ,
						  &m, sizeof(m), 10000),
			   "request");
		if (h)
			hist_add(h, bench_now_ns() - t0);
		if (bb_check(natsMsg_GetData(reply),
			     natsMsg_GetDataLength(reply), seq + i))
			bb_die("reply %" PRIu64 " is not its request", seq + i);
		natsMsg_Destroy(reply);
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	natsConnection_Close(resp);
	natsConnection_Destroy(resp);
	natsConnection_Close(req);
	natsConnection_Destroy(req);
}

/* ---- report --------------------------------------------------------------- */

static void bb_lat_row(const char *name, const struct hist *h,
		       const char *what, FILE *csv)
{
	printf("%-12s %8" PRIu64 " %9.1f %9.1f %9.1f %9.1f  %s\n", name,
	       h->count, hist_pct(h, 50) / 1e3, hist_pct(h, 99) / 1e3,
	       hist_pct(h, 99.9) / 1e3, h->max / 1e3, what);
	if (csv)
		fprintf(csv, "%s,latency,%" PRIu64 ",%" PRIu64 ",%" PRIu64
			",%" PRIu64 ",%" PRIu64 ",\n", name, h->count,
			hist_pct(h, 50), hist_pct(h, 99), hist_pct(h, 99.9),
			h->max);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bb b = { 0 };
	struct hist *lat = hist_new(), *load = hist_new(),
		    *sync = hist_new(), *rr = hist_new(),
		    *rrbuf = hist_new();
	jsCtx *js_async = NULL, *js_asap = NULL;
	natsConnection *nc_asap = NULL;
	jsOptions jo;
	double tput, raw, raw32;
	uint64_t cpu_b0[BB_NPROC], cpu_b1[BB_NPROC], cpu_r0[BB_NPROC],
		 cpu_r1[BB_NPROC];
	uint64_t seq = 1, raw_seq = 1, warm;
	char r1[32], r2[32];
	FILE *csv;

	bench_parse_opts(argc, argv, &o, bb_help);
	b.o = &o;
	b.lat_n = o.iters ? o.iters : o.smoke ? 20 : o.quick ? 500 : 2000;
	b.tput_n = (o.rounds ? o.rounds : o.smoke ? 1 : o.quick ? 20 : 100) *
		   1000ull;
	warm = o.smoke ? 10 : 200;
	if (!lat || !load || !sync || !rr || !rrbuf) {
		fprintf(stderr, "bench_bridge: out of memory\n");
		return 1;
	}
	if (o.out)
		mkdir(o.out, 0777);
	bb_logpath(&b, b.log_server, "nats");
	bb_logpath(&b, b.log_exp, "export");
	bb_logpath(&b, b.log_imp, "import");
	if (bench_seg_begin("bench_bridge", b.seg_a, sizeof(b.seg_a),
			    (size_t)4 << 20, &b.a))
		return 1;
	bb_g = &b;
	printf("bench_bridge: shmq queue -> mqbridge -> nats-server -js -> "
	       "mqbridge -> shmq queue, %d-byte messages (scratch names: "
	       "bench.%d)\n", BB_MSG, (int)getpid());
	bench_watchdog(600, "bench_bridge");
	bb_queues(&b);
	bb_server_start(&b);
	/* Children first: the NATS client's threads do not cross fork(). */
	bb_bridges_start(&b);

	/* The bridges are ready once a message went through (stream made). */
	seq = bb_bridge_latency(&b, seq, warm, NULL);
	seq = bb_bridge_latency(&b, seq, b.lat_n, lat);
	seq = bb_bridge_latency(&b, seq, warm, NULL);
	bb_cpu(&b, cpu_b0);
	tput = bb_bridge_tput(&b, seq, b.tput_n, load);
	bb_cpu(&b, cpu_b1);
	seq += b.tput_n;

	bb_connect(&b, &b.nc, false);
	bb_connect(&b, &nc_asap, true);
	bb_nats_ok(natsConnection_JetStream(&b.js, b.nc, NULL), "JetStream");
	if (bb_stream_msgs(&b, "BRIDGE") != seq - 1)
		bb_die("stream BRIDGE holds %" PRIu64 " messages, not %" PRIu64,
		       bb_stream_msgs(&b, "BRIDGE"), seq - 1);
	bb_raw_stream(&b);
	jsOptions_Init(&jo);
	jo.PublishAsync.ErrHandler = bb_on_pub_error;
	bb_nats_ok(natsConnection_JetStream(&js_async, b.nc, &jo),
		   "JetStream");
	bb_nats_ok(natsConnection_JetStream(&js_asap, nc_asap, &jo),
		   "JetStream");
	raw_seq += warm;
	bb_js_sync(js_asap, 1, warm, sync);
	hist_reset(sync);
	bb_js_sync(js_asap, raw_seq, b.lat_n, sync);
	raw_seq += b.lat_n;
	bb_cpu(&b, cpu_r0);
	raw = bb_js_async(js_async, raw_seq, b.tput_n, 0);
	bb_cpu(&b, cpu_r1);
	raw_seq += b.tput_n;
	raw32 = bb_js_async(js_asap, raw_seq, b.tput_n, 32);
	raw_seq += b.tput_n;
	if (bb_stream_msgs(&b, "RAW") != raw_seq - 1)
		bb_die("stream RAW holds %" PRIu64 " messages, not %" PRIu64,
		       bb_stream_msgs(&b, "RAW"), raw_seq - 1);
	bb_req_reply(&b, true, 1, warm, NULL);
	bb_req_reply(&b, true, 1, b.lat_n, rr);
	bb_req_reply(&b, false, 1, warm, NULL);
	bb_req_reply(&b, false, 1, b.lat_n, rrbuf);

	jsCtx_Destroy(js_async);
	jsCtx_Destroy(js_asap);
	jsCtx_Destroy(b.js);
	natsConnection_Close(nc_asap);
	natsConnection_Destroy(nc_asap);
	natsConnection_Close(b.nc);
	natsConnection_Destroy(b.nc);
	bb_bridge_stop(b.exp, "mqbridge --export");
	bb_bridge_stop(b.imp, "mqbridge --import");
	alarm(0);

	printf("\n%-12s %8s %9s %9s %9s %9s\n", "latency", "samples",
	       "median_us", "p99_us", "p99.9_us", "max_us");
	csv = bench_csv_open(&o, "bridge", "case,kind,samples,median_ns,"
			     "p99_ns,p999_ns,max_ns,msgs_per_s");
	bb_lat_row("bridge", lat, "one way, A:out -> B:in, one in flight",
		   csv);
	bb_lat_row("js-sync", sync, "js_Publish() until its ack", csv);
	bb_lat_row("req-reply", rr, "NATS request/reply round trip "
		   "(SendAsap)", csv);
	bb_lat_row("req-reply-buf", rrbuf, "the same, publishes buffered "
		   "(the client's default)", csv);
	bb_lat_row("bridge-load", load, "one way, during the throughput run",
		   csv);
	printf("\n%-12s %8s %12s\n", "throughput", "msgs", "msgs/s");
	printf("%-12s %8" PRIu64 " %12.0f  A:out -> B:in, every message "
	       "checked\n", "bridge", b.tput_n, tput);
	printf("%-12s %8" PRIu64 " %12.0f  js_PublishAsync() into a file "
	       "stream, all acked\n", "js-async", b.tput_n, raw);
	printf("%-12s %8" PRIu64 " %12.0f  the same, SendAsap, all acks "
	       "awaited every 32 (mqbridge's old export)\n", "js-async-32",
	       b.tput_n, raw32);
	if (csv) {
		fprintf(csv, "bridge,throughput,%" PRIu64 ",,,,,%.0f\n",
			b.tput_n, tput);
		fprintf(csv, "js-async,throughput,%" PRIu64 ",,,,,%.0f\n",
			b.tput_n, raw);
		fprintf(csv, "js-async-32,throughput,%" PRIu64 ",,,,,%.0f\n",
			b.tput_n, raw32);
		fclose(csv);
	}
	printf("\n%-12s %11s %8s %8s %8s %6s %9s\n", "cpu_us/msg",
	       "nats-server", "exporter", "importer", "bench", "total",
	       "ceiling");
	csv = bench_csv_open(&o, "bridge-cpu", "case,kind,msgs,server_us,"
			     "exporter_us,importer_us,bench_us,total_us,"
			     "ceiling_msgs_per_s");
	bb_cpu_row("bridge", cpu_b0, cpu_b1, true, b.tput_n, tput, csv);
	bb_cpu_row("js-async", cpu_r0, cpu_r1, false, b.tput_n, raw, csv);
	if (csv)
		fclose(csv);
	printf("(CPU time per message of each process in the throughput "
	       "runs; ceiling: %ld CPUs / total)\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("\nSUMMARY bridge lat_median_ns=%" PRIu64 " lat_p99_ns=%"
	       PRIu64 " msgs_per_s=%.0f js_async_msgs_per_s=%.0f "
	       "js_sync_median_ns=%" PRIu64 " req_reply_median_ns=%" PRIu64
	       " tput_ratio=%.2f lat_ratio=%.2f\n", hist_pct(lat, 50),
	       hist_pct(lat, 99), tput, raw, hist_pct(sync, 50),
	       hist_pct(rr, 50), tput / raw,
	       (double)hist_pct(lat, 50) / (double)hist_pct(rr, 50));
	printf("GOAL bridge-throughput %s: bridge %s msgs/s = %.2fx js-async "
	       "%s msgs/s (goal >= 0.5x; 64 B)\n",
	       tput >= 0.5 * raw ? "PASS" : "SHORT",
	       bench_fmt_rate(r1, sizeof(r1), tput), tput / raw,
	       bench_fmt_rate(r2, sizeof(r2), raw));
	printf("GOAL bridge-latency %s: bridge one-way median %.1f us = "
	       "%.2fx req-reply round trip %.1f us (goal <= 1.5x; 64 B)\n",
	       hist_pct(lat, 50) <= 1.5 * hist_pct(rr, 50) ? "PASS" : "SHORT",
	       hist_pct(lat, 50) / 1e3,
	       (double)hist_pct(lat, 50) / (double)hist_pct(rr, 50),
	       hist_pct(rr, 50) / 1e3);

	bench_broker_kill(b.server);
	shmq_close(b.out);
	shmq_close(b.in);
	shmq_seg_close(b.b);
	shmq_seg_unlink(b.seg_b);
	bench_sig.zmq_path[0] = '\0';
	bench_seg_end("bench_bridge", b.seg_a, b.a);
	if (!o.out) {
		unlink(b.log_server);
		unlink(b.log_exp);
		unlink(b.log_imp);
	}
	nats_Close();
	free(lat);
	free(load);
	free(sync);
	free(rr);
	free(rrbuf);
	return 0;
}
#endif /* BENCH_HAVE_NATS */
