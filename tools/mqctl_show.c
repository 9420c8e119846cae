/* SPDX-License-Identifier: MIT */
/*
 * mqctl_show.c - the read-only commands: info, list, stat, watch, procs,
 * peek, check (segments: mqctl_segments.c; exchanges and bindings:
 * mqctl_xchg.c).  They attach as observers (shmq_seg_observe()): no
 * process-table entry, no repair, nothing a peer could notice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mqctl.h"

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *state_name(uint32_t state)
{
	return state == SHMQ_QUEUE_LIVE ? "live" : "unlinked";
}

/* ---- info ------------------------------------------------------------------- */

int cmd_info(struct ctx *c, int argc, char **argv)
{
	char path[4200], b1[32], b2[32], b3[32], b4[32], t[64], u[64], g[64];
	uint32_t xlive = 0, xgone = 0;
	struct shmq_seg_info in;
	shmq_seg *seg;
	int rc = parse_opts(c, find_cmd("info"), argc, argv, NULL, NULL);

	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	rc = shmq_seg_info(seg, &in);
	/* Exchanges, which shmq_seg_info() leaves out of its queues. */
	if (!rc)
		count_exchanges(seg, &xlive, &xgone);
	shmq_seg_close(seg);
	if (rc)
		return fail(c, NULL, rc, NULL);
	seg_path(c->seg, path, sizeof(path));
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"path\":");
		json_str(stdout, path);
		printf(",\"version\":%u,\"size\":%llu,\"heap_size\":%llu,"
		       "\"heap_used\":%llu,\"heap_free\":%llu,"
		       "\"heap_largest_free\":%llu,\"mode\":\"%04o\","
		       "\"uid\":%u,\"gid\":%u,\"creator_uid\":%u,"
		       "\"queues\":%u,\"unlinked_queues\":%u,\"exchanges\":%u,"
		       "\"unlinked_exchanges\":%u,\"max_queues\":%u,"
		       "\"procs\":%u,\"procs_dead\":%u,\"max_procs\":%u,"
		       "\"created_ns\":%llu,\"created\":", in.version,
		       (unsigned long long)in.size,
		       (unsigned long long)in.heap_size,
		       (unsigned long long)in.heap_used,
		       (unsigned long long)in.heap_free,
		       (unsigned long long)in.heap_largest, in.mode, in.uid,
		       in.gid, in.creator_uid, in.queues, in.unlinked, xlive,
		       xgone, in.max_queues, in.procs, in.procs_dead, in.max_procs,
		       (unsigned long long)in.create_time_ns);
		json_str(stdout, fmt_time(in.create_time_ns, t, sizeof(t)));
		/* The names of the file's owner, group, and creator. */
		printf(",\"user\":");
		json_str(stdout, user_name(in.uid, u, sizeof(u)));
		printf(",\"group\":");
		json_str(stdout, group_name(in.gid, g, sizeof(g)));
		printf(",\"creator_user\":");
		json_str(stdout, user_name(in.creator_uid, u, sizeof(u)));
		printf("}\n");
		return 0;
	}
	printf("segment:    %s (%s)\n", c->seg, path);
	printf("layout:     version %u\n", in.version);
	printf("size:       %s; %s in use, %s free (largest block %s)\n",
	       fmt_bytes(in.size, b1, sizeof(b1)),
	       fmt_bytes(in.heap_used, b2, sizeof(b2)),
	       fmt_bytes(in.heap_free, b3, sizeof(b3)),
	       fmt_bytes(in.heap_largest, b4, sizeof(b4)));
	/* The file's owner now (fstat), which need not be its creator. */
	printf("mode:       %04o, owner %s (uid %u), group %s (gid %u)\n",
	       in.mode, user_name(in.uid, u, sizeof(u)), in.uid,
	       group_name(in.gid, g, sizeof(g)), in.gid);
	/* Queues and exchanges share the directory's entries. */
	printf("queues:     %u of %u", in.queues, in.max_queues);
	if (in.unlinked)
		printf(" (+%u unlinked, still open)", in.unlinked);
	printf("\nexchanges:  %u", xlive);
	if (xgone)
		printf(" (+%u unlinked, still open)", xgone);
	if (xlive + xgone)
		printf("; with the queues, %u of %u directory entries",
		       in.queues + in.unlinked + xlive + xgone,
		       in.max_queues);
	printf("\nprocesses:  %u attached of %u", in.procs, in.max_procs);
	if (in.procs_dead)
		printf(", %u dead not yet reclaimed ('mqctl recover')",
		       in.procs_dead);
	printf("\ncreated:    %s by %s (uid %u)\n",
	       fmt_time(in.create_time_ns, t, sizeof(t)),
	       user_name(in.creator_uid, u, sizeof(u)), in.creator_uid);
	return 0;
}

/* ---- list and stat ---------------------------------------------------------- */

static int on_prom(struct ctx *c, int code, const char *arg, void *data)
{
	(void)c;
	(void)arg;
	if (code == OPT_PROMETHEUS)
		*(int *)data = 1;
	return 0;
}

static void json_queue(const struct shmq_queue_info *q)
{
	char t[64];

	printf("{\"name\":");
	json_str(stdout, q->name);
	/* The pids of an SPSC queue's sides (0: free); null for MPMC. */
	printf(",\"type\":\"%s\"", queue_type(q->flags));
	if (q->flags & SHMQ_SPSC)
		printf(",\"sender_pid\":%u,\"receiver_pid\":%u",
		       q->sender_pid, q->receiver_pid);
	else
		printf(",\"sender_pid\":null,\"receiver_pid\":null");
	printf(",\"overflow\":\"%s\",\"auto_delete\":%s,\"dropped\":%llu",
	       queue_overflow(q->flags),
	       q->flags & SHMQ_AUTODELETE ? "true" : "false",
	       (unsigned long long)q->dropped);
	printf(",\"state\":\"%s\",\"index\":%u,\"capacity\":%u,"
	       "\"msg_size\":%u,\"slot_size\":%u,\"depth\":%llu,"
	       "\"sent\":%llu,\"received\":%llu,\"handles\":%u,"
	       "\"producers\":%u,\"consumers\":%u,\"send_waiters\":%u,\"recv_waiters\":%u,"
	       "\"send_pollers\":%u,\"recv_pollers\":%u,\"full_waits\":%llu,"
	       "\"empty_waits\":%llu,\"sleeps\":%llu,\"wakes\":%llu,"
	       "\"repairs\":%llu,\"tombstones\":%llu,\"redelivered\":%llu,"
	       "\"lane_depth\":%llu,\"bytes\":%llu,\"created_ns\":%llu,"
	       "\"created\":", state_name(q->state), q->index, q->capacity,
	       q->msg_size, q->slot_size, (unsigned long long)q->depth,
	       (unsigned long long)q->sent, (unsigned long long)q->received,
	       q->handles, q->producers, q->consumers, q->send_waiters,
	       q->recv_waiters, q->send_pollers, q->recv_pollers,
	       (unsigned long long)q->full_waits,
	       (unsigned long long)q->empty_waits,
	       (unsigned long long)q->sleeps, (unsigned long long)q->wakes,
	       (unsigned long long)q->repairs,
	       (unsigned long long)q->tombstones,
	       (unsigned long long)q->redelivered,
	       (unsigned long long)q->lane_depth, (unsigned long long)q->bytes,
	       (unsigned long long)q->create_time_ns);
	json_str(stdout, fmt_time(q->create_time_ns, t, sizeof(t)));
	/* Acknowledged delivery (0.4): zeros on an SPSC queue. */
	printf(",\"unacked\":%u,\"max_unacked\":%u,\"prefetch\":%u,"
	       "\"max_deliveries\":%u,\"nacked\":%llu,\"dead_lettered\":%llu,"
	       "\"dead_letter\":", q->unacked, q->max_unacked, q->prefetch,
	       q->max_deliveries, (unsigned long long)q->nacked,
	       (unsigned long long)q->dead_lettered);
	if (q->dead_letter[0])
		json_str(stdout, q->dead_letter);
	else
		printf("null");
	printf("}");
}

/* A Prometheus label value: backslash, quote and newline escaped. */
void prom_label(const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
	}
}

/* The text exposition format: HELP, TYPE, then one sample per queue. */
static void prometheus(const char *segname, const struct shmq_queue_info *q,
		       int n)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
		int u32;
	} m[] = {
#define M(n, t, h, f, u) { n, t, h, offsetof(struct shmq_queue_info, f), u }
		M("shmq_queue_depth", "gauge", "Messages in the queue.", depth, 0),
		M("shmq_queue_capacity", "gauge", "Slots in the queue.",
		  capacity, 1),
		M("shmq_queue_msg_size_bytes", "gauge",
		  "Largest message the queue takes.", msg_size, 1),
		M("shmq_queue_sent_total", "counter",
		  "Messages sent (positions claimed by producers).", sent, 0),
		M("shmq_queue_received_total", "counter",
		  "Messages received (positions claimed by consumers).",
		  received, 0),
		M("shmq_queue_handles", "gauge",
		  "Open handles over all attached processes.", handles, 1),
		M("shmq_queue_producers", "gauge",
		  "Attached processes that have sent to the queue.",
		  producers, 1),
		M("shmq_queue_consumers", "gauge",
		  "Attached processes that have received from the queue.",
		  consumers, 1),
		M("shmq_queue_send_waiters", "gauge",
		  "Threads waiting for room.", send_waiters, 1),
		M("shmq_queue_recv_waiters", "gauge",
		  "Threads waiting for a message.", recv_waiters, 1),
		M("shmq_queue_send_pollers", "gauge",
		  "Of the send waiters, shmq_poll callers.", send_pollers, 1),
		M("shmq_queue_recv_pollers", "gauge",
		  "Of the receive waiters, shmq_poll callers.",
		  recv_pollers, 1),
		M("shmq_queue_full_waits_total", "counter",
		  "Blocking sends that found the queue full.", full_waits, 0),
		M("shmq_queue_empty_waits_total", "counter",
		  "Blocking receives that found the queue empty.",
		  empty_waits, 0),
		M("shmq_queue_sleeps_total", "counter", "Futex waits entered.",
		  sleeps, 0),
		M("shmq_queue_wakes_total", "counter",
		  "Futex wake calls issued.", wakes, 0),
		M("shmq_queue_repairs_total", "counter",
		  "Slots repaired by crash recovery.", repairs, 0),
		M("shmq_queue_tombstones_total", "counter",
		  "Dead producers' claims turned into tombstones.",
		  tombstones, 0),
		M("shmq_queue_redelivered_total", "counter",
		  "Dead consumers' messages moved to the redelivery lane.",
		  redelivered, 0),
		M("shmq_queue_lane_depth", "gauge",
		  "Messages waiting in the redelivery lane.", lane_depth, 0),
		M("shmq_queue_dropped_total", "counter",
		  "Messages a full drop-newest queue refused or a full "
		  "drop-oldest queue evicted.", dropped, 0),
		M("shmq_queue_unacked", "gauge",
		  "Messages fetched and not yet acknowledged.", unacked, 1),
		M("shmq_queue_max_unacked", "gauge",
		  "Unacknowledged messages the queue holds at most.",
		  max_unacked, 1),
		M("shmq_queue_prefetch", "gauge",
		  "Unacknowledged messages one handle may owe at once.",
		  prefetch, 1),
		M("shmq_queue_max_deliveries", "gauge",
		  "Deliveries of a message before it is dead-lettered "
		  "(0: no limit).", max_deliveries, 1),
		M("shmq_queue_nacked_total", "counter",
		  "Fetched messages given back (shmq_nack or a closing "
		  "handle).", nacked, 0),
		M("shmq_queue_dead_lettered_total", "counter",
		  "Messages at max_deliveries: sent to the dead-letter "
		  "exchange, or dropped.", dead_lettered, 0),
#undef M
	};
	unsigned i;
	int k;

	/* The attributes as labels of a constant 1 (the _info idiom). */
	printf("# HELP shmq_queue_info The queue's type, overflow policy, "
	       "auto-delete flag and dead-letter exchange.\n"
	       "# TYPE shmq_queue_info gauge\n");
	for (k = 0; k < n; k++) {
		printf("shmq_queue_info{segment=\"");
		prom_label(segname);
		printf("\",queue=\"");
		prom_label(q[k].name);
		printf("\",state=\"%s\",type=\"%s\",overflow=\"%s\","
		       "auto_delete=\"%s\",dead_letter=\"",
		       state_name(q[k].state), queue_type(q[k].flags),
		       queue_overflow(q[k].flags),
		       q[k].flags & SHMQ_AUTODELETE ? "true" : "false");
		prom_label(q[k].dead_letter);
		printf("\"} 1\n");
	}

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		printf("# HELP %s %s\n# TYPE %s %s\n", m[i].name, m[i].help,
		       m[i].name, m[i].type);
		for (k = 0; k < n; k++) {
			const char *base = (const char *)&q[k];
			unsigned long long v = m[i].u32 ?
				*(const uint32_t *)(base + m[i].off) :
				*(const uint64_t *)(base + m[i].off);

			printf("%s{segment=\"", m[i].name);
			prom_label(segname);
			printf("\",queue=\"");
			prom_label(q[k].name);
			printf("\",state=\"%s\"} %llu\n", state_name(q[k].state),
			       v);
		}
	}
}

/* A pid, or "none" for a free side. */
static const char *side_pid(uint32_t pid, char *buf, size_t len)
{
	if (pid)
		snprintf(buf, len, "%u", pid);
	else
		snprintf(buf, len, "none");
	return buf;
}

/* "SENDER/RECEIVER" pids of an SPSC queue ("1234/none"); "-" for MPMC. */
static const char *spsc_sides(const struct shmq_queue_info *q, char *buf,
			      size_t len)
{
	char a[16], b[16];

	if (!(q->flags & SHMQ_SPSC))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s/%s", side_pid(q->sender_pid, a, sizeof(a)),
			 side_pid(q->receiver_pid, b, sizeof(b)));
	return buf;
}

/*
 * "UNACKED/MAX" of a queue: "2/64"; "-" for an SPSC queue, which has no
 * unacknowledged area (shmq_fetch() is -EOPNOTSUPP there).
 */
static const char *unacked_text(const struct shmq_queue_info *q, char *buf,
				size_t len)
{
	if (q->flags & SHMQ_SPSC)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%u/%u", q->unacked, q->max_unacked);
	return buf;
}

/* All queues, in a malloc'd array (*n of them); 0 or the exit status. */
static int get_queues(const struct ctx *c, shmq_seg *seg,
		      struct shmq_queue_info **out, int *n)
{
	struct shmq_queue_info *q = NULL;
	int cnt = 0, rc;

	/* The directory may grow between the count and the fill: retry. */
	for (;;) {
		rc = shmq_queue_list(seg, q, (unsigned)cnt);
		if (rc < 0) {
			free(q);
			return fail(c, NULL, rc, NULL);
		}
		if (rc <= cnt)
			break;
		cnt = rc;
		free(q);
		q = calloc((size_t)cnt, sizeof(*q));
		if (!q)
			return fail(c, NULL, -ENOMEM, NULL);
	}
	*out = q;
	*n = rc;
	return 0;
}

int cmd_list(struct ctx *c, int argc, char **argv)
{
	struct shmq_queue_info *q = NULL;
	int prom = 0, n = 0, i, rc;
	shmq_seg *seg;

	rc = parse_opts(c, find_cmd("list"), argc, argv, on_prom, &prom);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	rc = get_queues(c, seg, &q, &n);
	shmq_seg_close(seg);
	if (rc)
		return rc;
	if (prom) {
		prometheus(c->seg, q, n);
	} else if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"queues\":[");
		for (i = 0; i < n; i++) {
			if (i)
				putchar(',');
			json_queue(&q[i]);
		}
		printf("]}\n");
	} else {
		printf("%-20s %15s %11s %8s %12s %12s %8s %9s %-4s %15s "
		       "%-11s %10s %-7s %s\n", "QUEUE", "DEPTH/CAP",
		       "UNACKED/MAX", "MSG_SIZE", "SENT", "RECEIVED",
		       "PROD/CON", "WAIT_S/R", "TYPE", "SENDER/RECEIVER",
		       "OVERFLOW", "DROPPED", "AUTODEL", "STATE");
		for (i = 0; i < n; i++) {
			char dc[48], ua[32], w[32], pc[32], sr[40];

			snprintf(dc, sizeof(dc), "%llu/%u",
				 (unsigned long long)q[i].depth,
				 q[i].capacity);
			unacked_text(&q[i], ua, sizeof(ua));
			snprintf(w, sizeof(w), "%u/%u", q[i].send_waiters,
				 q[i].recv_waiters);
			snprintf(pc, sizeof(pc), "%u/%u", q[i].producers,
				 q[i].consumers);
			spsc_sides(&q[i], sr, sizeof(sr));
			printf("%-20s %15s %11s %8u %12llu %12llu %8s %9s "
			       "%-4s %15s %-11s %10llu %-7s %s\n", q[i].name,
			       dc, ua, q[i].msg_size,
			       (unsigned long long)q[i].sent,
			       (unsigned long long)q[i].received, pc,
			       w, queue_type(q[i].flags), sr,
			       queue_overflow(q[i].flags),
			       (unsigned long long)q[i].dropped,
			       q[i].flags & SHMQ_AUTODELETE ? "yes" : "no",
			       state_name(q[i].state));
		}
	}
	free(q);
	return 0;
}

/*
 * Who owes queue @name what (shmq_queue_owed()), in a malloc'd array (*n
 * of them, maybe 0 and NULL); 0 or a negative errno.
 */
static int get_owed(shmq_seg *seg, const char *name, struct shmq_owed **out,
		    int *n)
{
	struct shmq_owed *o = NULL;
	int cnt = 0, rc;

	/* More processes may come to owe between the count and the fill. */
	for (;;) {
		rc = shmq_queue_owed(seg, name, o, (unsigned)cnt);
		if (rc < 0) {
			free(o);
			return rc;
		}
		if (rc <= cnt)
			break;
		cnt = rc;
		free(o);
		o = calloc((size_t)cnt, sizeof(*o));
		if (!o)
			return -ENOMEM;
	}
	*out = o;
	*n = rc;
	return 0;
}

/* stat's acknowledged-delivery lines: the counters, then who owes what. */
static void stat_acks(const struct shmq_queue_info *q,
		      const struct shmq_owed *o, int n)
{
	int i;

	if (q->flags & SHMQ_SPSC) {
		printf("unacked:      - (acknowledged delivery, shmq_fetch, is "
		       "for mpmc queues)\n");
	} else {
		printf("unacked:      %u of at most %u messages (fetched, not "
		       "yet acknowledged); prefetch %u per handle\n",
		       q->unacked, q->max_unacked, q->prefetch);
		if (q->max_deliveries)
			printf("deliveries:   at most %u per message, then "
			       "dead-lettered\n", q->max_deliveries);
		else
			printf("deliveries:   no limit (max_deliveries 0)\n");
		if (q->dead_letter[0])
			printf("dead-letter:  exchange %s; %llu "
			       "dead-lettered (sent there, or dropped when "
			       "it is missing or refuses)\n", q->dead_letter,
			       (unsigned long long)q->dead_lettered);
		else
			printf("dead-letter:  none; %llu dead-lettered "
			       "(dropped)\n",
			       (unsigned long long)q->dead_lettered);
		printf("nacked:       %llu given back (shmq_nack, or a "
		       "handle closed owing them)\n",
		       (unsigned long long)q->nacked);
	}
	if (!n) {
		printf("owed:         nothing (no process has a message "
		       "fetched or acquired)\n");
		return;
	}
	for (i = 0; i < n; i++)
		printf("%s pid %u (%s, entry %u): %u fetched, %u acquired\n",
		       i ? "             " : "owed:        ", o[i].pid,
		       o[i].alive ? "alive" : "dead: to be delivered again",
		       o[i].proc_index, o[i].fetched, o[i].acquired);
}

static void json_owed(const struct shmq_owed *o, int n)
{
	int i;

	printf(",\"owed\":[");
	for (i = 0; i < n; i++)
		printf("%s{\"index\":%u,\"pid\":%u,\"alive\":%s,"
		       "\"fetched\":%u,\"acquired\":%u}", i ? "," : "",
		       o[i].proc_index, o[i].pid,
		       o[i].alive ? "true" : "false", o[i].fetched,
		       o[i].acquired);
	printf("]");
}

int cmd_stat(struct ctx *c, int argc, char **argv)
{
	struct shmq_queue_info q;
	struct shmq_owed *owed = NULL;
	char b[32], t[64];
	int prom = 0, nowed = 0, rc;
	shmq_seg *seg;

	rc = parse_opts(c, find_cmd("stat"), argc, argv, on_prom, &prom);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	rc = shmq_queue_stat(seg, c->argv[0], &q);
	if (!rc && !prom)
		rc = get_owed(seg, c->argv[0], &owed, &nowed);
	shmq_seg_close(seg);
	if (rc)
		return fail(c, c->argv[0], rc, NULL);
	if (prom) {
		prometheus(c->seg, &q, 1);
		return 0;
	}
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"queue\":");
		json_queue(&q);
		json_owed(owed, nowed);
		printf("}\n");
		free(owed);
		return 0;
	}
	printf("queue:        %s (%s, directory entry %u)\n", q.name,
	       state_name(q.state), q.index);
	if (q.flags & SHMQ_SPSC) {
		char a[16], b2[16];

		printf("type:         spsc (one sender and one receiver at a "
		       "time)\n");
		printf("sides:        sending: %s%s, receiving: %s%s\n",
		       q.sender_pid ? "pid " : "",
		       side_pid(q.sender_pid, a, sizeof(a)),
		       q.receiver_pid ? "pid " : "",
		       side_pid(q.receiver_pid, b2, sizeof(b2)));
	} else {
		printf("type:         mpmc (any number of senders and "
		       "receivers)\n");
	}
	if (q.flags & SHMQ_DROP_NEWEST)
		printf("overflow:     drop-newest (a full queue refuses new "
		       "messages); %llu dropped\n",
		       (unsigned long long)q.dropped);
	else if (q.flags & SHMQ_DROP_OLDEST)
		printf("overflow:     drop-oldest (a full queue evicts its "
		       "oldest messages); %llu dropped\n",
		       (unsigned long long)q.dropped);
	else
		printf("overflow:     block (senders wait for room, per their "
		       "timeout); %llu dropped\n",
		       (unsigned long long)q.dropped);
	printf("auto-delete:  %s\n", q.flags & SHMQ_AUTODELETE ?
	       "yes (unlinked with its bindings when its last handle "
	       "closes)" : "no");
	printf("depth:        %llu of %u messages", (unsigned long long)q.depth,
	       q.capacity);
	if (q.lane_depth)
		printf(" (%llu of them redelivered, in the lane)",
		       (unsigned long long)q.lane_depth);
	printf("\n");
	printf("msg_size:     %u bytes (slots of %u bytes, %s in all)\n",
	       q.msg_size, q.slot_size, fmt_bytes(q.bytes, b, sizeof(b)));
	printf("sent:         %llu\n", (unsigned long long)q.sent);
	printf("received:     %llu\n", (unsigned long long)q.received);
	printf("handles:      %u open; %u process(es) sending, %u receiving\n",
	       q.handles, q.producers, q.consumers);
	printf("waiting:      %u sender(s) for room, %u receiver(s) for "
	       "messages\n", q.send_waiters, q.recv_waiters);
	printf("polling:      %u of the senders, %u of the receivers "
	       "(shmq_poll)\n", q.send_pollers, q.recv_pollers);
	printf("found full:   %llu blocking sends\n",
	       (unsigned long long)q.full_waits);
	printf("found empty:  %llu blocking receives\n",
	       (unsigned long long)q.empty_waits);
	printf("futex:        %llu sleeps, %llu wake calls\n",
	       (unsigned long long)q.sleeps, (unsigned long long)q.wakes);
	if (q.flags & SHMQ_SPSC)
		printf("recovery:     nothing to repair: a side held by a dead "
		       "process is taken over\n              by the next "
		       "handle that uses it\n");
	else
		printf("recovery:     %llu slots repaired after crashes (%llu "
		       "tombstones, %llu redelivered);\n              %llu "
		       "message(s) waiting in the redelivery lane\n",
		       (unsigned long long)q.repairs,
		       (unsigned long long)q.tombstones,
		       (unsigned long long)q.redelivered,
		       (unsigned long long)q.lane_depth);
	stat_acks(&q, owed, nowed);
	free(owed);
	printf("created:      %s\n", fmt_time(q.create_time_ns, t, sizeof(t)));
	return 0;
}

/* ---- watch --------------------------------------------------------------------- */

struct watch_opts {
	int64_t interval_ns;
	uint64_t count;         /* 0: forever */
};

static int on_watch(struct ctx *c, int code, const char *arg, void *data)
{
	struct watch_opts *w = data;
	int rc;

	if (code == OPT_INTERVAL) {
		rc = parse_duration(arg, &w->interval_ns);
		if (rc)
			return bad_value(c, "--interval", arg, rc);
		if (w->interval_ns <= 0)
			return usage(c, "--interval '%s' must be positive", arg);
	} else if (code == OPT_COUNT) {
		rc = parse_count(arg, UINT32_MAX, &w->count);
		if (rc)
			return bad_value(c, "--count", arg, rc);
		if (!w->count)
			return usage(c, "--count must be at least 1");
	}
	return 0;
}

static int wanted(const struct ctx *c, const char *name)
{
	int i;

	if (!c->argc)
		return 1;
	for (i = 0; i < c->argc; i++)
		if (strcmp(c->argv[i], name) == 0)
			return 1;
	return 0;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The same exchange as @x in @prev (same entry, same creation), or NULL. */
static const struct shmq_exchange_info *
same_exchange(const struct shmq_exchange_info *x,
	      const struct shmq_exchange_info *prev, int nprev)
{
	int j;

	for (j = 0; j < nprev; j++)
		if (prev[j].index == x->index &&
		    prev[j].create_time_ns == x->create_time_ns)
			return &prev[j];
	return NULL;
}

/* Per-second rates of an exchange's counters since @p (NULL: zeros). */
struct xrates {
	double pub, routed, unroutable, dropped;
};

static struct xrates xrates(const struct shmq_exchange_info *x,
			    const struct shmq_exchange_info *p, double dt)
{
	struct xrates r = { 0, 0, 0, 0 };

	if (!p)
		return r;
	r.pub = (double)(x->published - p->published) / dt;
	r.routed = (double)(x->routed - p->routed) / dt;
	r.unroutable = (double)(x->unroutable - p->unroutable) / dt;
	r.dropped = (double)(x->dropped - p->dropped) / dt;
	return r;
}

/* One refresh's exchange rows (after the queues'), in the mode given. */
static void watch_exchanges(const struct ctx *c, int tty, const char *when,
			    const struct shmq_exchange_info *cur, int ncur,
			    const struct shmq_exchange_info *prev, int nprev,
			    double dt)
{
	int i, first = 1, header = 0;

	if (c->json)
		printf("],\"exchanges\":[");
	for (i = 0; i < ncur; i++) {
		const struct shmq_exchange_info *x = &cur[i];
		struct xrates r;

		if (!wanted(c, x->name))
			continue;
		r = xrates(x, same_exchange(x, prev, nprev), dt);
		if (c->json) {
			printf("%s{\"name\":", first ? "" : ",");
			json_str(stdout, x->name);
			printf(",\"type\":\"%s\",\"bindings\":%u,"
			       "\"published_per_s\":%.0f,"
			       "\"routed_per_s\":%.0f,"
			       "\"unroutable_per_s\":%.0f,"
			       "\"dropped_per_s\":%.0f,\"published\":%llu,"
			       "\"routed\":%llu,\"unroutable\":%llu,"
			       "\"dropped\":%llu,\"state\":\"%s\"}",
			       exchange_type(x->type), x->bindings, r.pub,
			       r.routed, r.unroutable, r.dropped,
			       (unsigned long long)x->published,
			       (unsigned long long)x->routed,
			       (unsigned long long)x->unroutable,
			       (unsigned long long)x->dropped,
			       state_name(x->state));
			first = 0;
		} else if (tty) {
			if (!header++)
				printf("\n%-20s %-6s %8s %12s %12s %12s "
				       "%12s %s\n", "EXCHANGE", "TYPE",
				       "BINDINGS", "PUBLISHED/s", "ROUTED/s",
				       "UNROUTABLE/s", "DROPPED/s", "STATE");
			printf("%-20s %-6s %8u %12.0f %12.0f %12.0f %12.0f "
			       "%s\n", x->name, exchange_type(x->type),
			       x->bindings, r.pub, r.routed, r.unroutable,
			       r.dropped, state_name(x->state));
		} else {
			printf("%s exchange=%s type=%s bindings=%u "
			       "published_per_s=%.0f routed_per_s=%.0f "
			       "unroutable_per_s=%.0f dropped_per_s=%.0f "
			       "published=%llu routed=%llu unroutable=%llu "
			       "dropped=%llu state=%s\n", when, x->name,
			       exchange_type(x->type), x->bindings, r.pub,
			       r.routed, r.unroutable, r.dropped,
			       (unsigned long long)x->published,
			       (unsigned long long)x->routed,
			       (unsigned long long)x->unroutable,
			       (unsigned long long)x->dropped,
			       state_name(x->state));
		}
	}
}

int cmd_watch(struct ctx *c, int argc, char **argv)
{
	struct watch_opts w = { 1000000000, 0 };
	struct shmq_queue_info *prev = NULL, *cur = NULL, tmp;
	struct shmq_exchange_info *xprev = NULL, *xcur = NULL, xtmp;
	int nprev = 0, ncur = 0, nxprev = 0, nxcur = 0, tty, first = 1, i, j,
	    rc;
	uint64_t tick, t0, t1;
	shmq_seg *seg;

	rc = parse_opts(c, find_cmd("watch"), argc, argv, on_watch, &w);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	/* Every name must be a queue or an exchange now. */
	for (i = 0; i < c->argc; i++) {
		rc = shmq_queue_stat(seg, c->argv[i], &tmp);
		if (rc == -ENOENT &&
		    shmq_exchange_stat(seg, c->argv[i], &xtmp) == 0)
			rc = 0;
		if (rc) {
			shmq_seg_close(seg);
			return fail(c, c->argv[i], rc, NULL);
		}
	}
	/* JSON is one line per refresh, for a program: never redrawn. */
	tty = isatty(STDOUT_FILENO) && !c->json;
	rc = get_queues(c, seg, &prev, &nprev);
	if (!rc)
		rc = get_exchanges(c, seg, &xprev, &nxprev);
	t0 = now_ns(CLOCK_MONOTONIC);
	for (tick = 0; !rc && (!w.count || tick < w.count); tick++) {
		char when[64];
		double dt;

		sleep_ns(w.interval_ns);
		rc = get_queues(c, seg, &cur, &ncur);
		if (!rc)
			rc = get_exchanges(c, seg, &xcur, &nxcur);
		if (rc)
			break;
		t1 = now_ns(CLOCK_MONOTONIC);
		dt = (double)(t1 - t0) / 1e9;
		fmt_time(now_ns(CLOCK_REALTIME), when, sizeof(when));
		if (c->json) {
			printf("{\"segment\":");
			json_str(stdout, c->seg);
			printf(",\"time\":\"%s\",\"queues\":[", when);
			first = 1;
		}
		if (tty) {
			/* Home, clear: redraw like top. */
			printf("\033[H\033[2J");
			printf("mqctl watch: segment %s, every %.3gs, %s  "
			       "(Ctrl-C to stop)\n\n", c->seg,
			       (double)w.interval_ns / 1e9, when);
			printf("%-20s %15s %11s %12s %12s %9s %10s %s\n",
			       "QUEUE", "DEPTH/CAP", "UNACKED/MAX", "IN/s",
			       "OUT/s", "WAIT_S/R", "DROPPED/s", "STATE");
		}
		for (i = 0; i < ncur; i++) {
			const struct shmq_queue_info *q = &cur[i];
			double in = 0, out = 0, drop = 0;

			if (!wanted(c, q->name))
				continue;
			/* The same queue: same entry, same creation. */
			for (j = 0; j < nprev; j++) {
				if (prev[j].index != q->index ||
				    prev[j].create_time_ns != q->create_time_ns)
					continue;
				in = (double)(q->sent - prev[j].sent) / dt;
				out = (double)(q->received - prev[j].received) /
				      dt;
				drop = (double)(q->dropped - prev[j].dropped) /
				       dt;
			}
			if (c->json) {
				printf("%s{\"name\":", first ? "" : ",");
				json_str(stdout, q->name);
				printf(",\"depth\":%llu,\"capacity\":%u,"
				       "\"in_per_s\":%.0f,\"out_per_s\":%.0f,"
				       "\"dropped_per_s\":%.0f,"
				       "\"sent\":%llu,\"received\":%llu,"
				       "\"dropped\":%llu,"
				       "\"send_waiters\":%u,"
				       "\"recv_waiters\":%u,\"unacked\":%u,"
				       "\"max_unacked\":%u,\"state\":\"%s\"}",
				       (unsigned long long)q->depth,
				       q->capacity, in, out, drop,
				       (unsigned long long)q->sent,
				       (unsigned long long)q->received,
				       (unsigned long long)q->dropped,
				       q->send_waiters, q->recv_waiters,
				       q->unacked, q->max_unacked,
				       state_name(q->state));
				first = 0;
			} else if (tty) {
				char dc[48], ua[32], ws[32];

				snprintf(dc, sizeof(dc), "%llu/%u",
					 (unsigned long long)q->depth,
					 q->capacity);
				unacked_text(q, ua, sizeof(ua));
				snprintf(ws, sizeof(ws), "%u/%u",
					 q->send_waiters, q->recv_waiters);
				printf("%-20s %15s %11s %12.0f %12.0f %9s "
				       "%10.0f %s\n", q->name, dc, ua, in, out,
				       ws, drop, state_name(q->state));
			} else {
				printf("%s queue=%s depth=%llu capacity=%u "
				       "in_per_s=%.0f out_per_s=%.0f sent=%llu "
				       "received=%llu send_waiters=%u "
				       "recv_waiters=%u dropped_per_s=%.0f "
				       "dropped=%llu unacked=%u max_unacked=%u "
				       "state=%s\n", when,
				       q->name, (unsigned long long)q->depth,
				       q->capacity, in, out,
				       (unsigned long long)q->sent,
				       (unsigned long long)q->received,
				       q->send_waiters, q->recv_waiters, drop,
				       (unsigned long long)q->dropped,
				       q->unacked, q->max_unacked,
				       state_name(q->state));
			}
		}
		watch_exchanges(c, tty, when, xcur, nxcur, xprev, nxprev, dt);
		if (c->json)
			printf("]}\n");
		fflush(stdout);
		free(prev);
		prev = cur;
		nprev = ncur;
		cur = NULL;
		free(xprev);
		xprev = xcur;
		nxprev = nxcur;
		xcur = NULL;
		t0 = t1;
	}
	free(prev);
	free(cur);
	free(xprev);
	free(xcur);
	shmq_seg_close(seg);
	return rc;
}

/* ---- procs ------------------------------------------------------------------------ */

int cmd_procs(struct ctx *c, int argc, char **argv)
{
	struct shmq_proc_info *p = NULL;
	int cnt = 0, n, i, rc;
	shmq_seg *seg;

	rc = parse_opts(c, find_cmd("procs"), argc, argv, NULL, NULL);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	for (;;) {
		n = shmq_proc_list(seg, p, (unsigned)cnt);
		if (n < 0 || n <= cnt)
			break;
		cnt = n;
		free(p);
		p = calloc((size_t)cnt, sizeof(*p));
		if (!p) {
			n = -ENOMEM;
			break;
		}
	}
	shmq_seg_close(seg);
	if (n < 0) {
		free(p);
		return fail(c, NULL, n, NULL);
	}
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"procs\":[");
	} else {
		printf("%5s %8s %-16s %-25s %-5s %7s %4s %7s %s\n", "ENTRY",
		       "PID", "COMMAND", "ATTACHED", "STATE", "HANDLES",
		       "HELD", "UNACKED", "PIDNS");
	}
	for (i = 0; i < n; i++) {
		char t[64];

		fmt_time(p[i].attach_time_ns, t, sizeof(t));
		if (c->json) {
			printf("%s{\"index\":%u,\"pid\":%u,\"comm\":",
			       i ? "," : "", p[i].index, p[i].pid);
			json_str(stdout, p[i].comm);
			printf(",\"uid\":%u,\"alive\":%s,\"same_pidns\":%s,"
			       "\"handles\":%u,\"held\":%u,\"unacked\":%u,"
			       "\"start_time\":%llu,\"attached_ns\":%llu,"
			       "\"attached\":", p[i].uid,
			       p[i].alive ? "true" : "false",
			       p[i].same_pidns ? "true" : "false",
			       p[i].handles, p[i].held, p[i].unacked,
			       (unsigned long long)p[i].start_time,
			       (unsigned long long)p[i].attach_time_ns);
			json_str(stdout, t);
			printf("}");
		} else {
			printf("%5u %8u %-16s %-25s %-5s %7u %4u %7u %s\n",
			       p[i].index, p[i].pid, p[i].comm, t,
			       p[i].alive ? "alive" : "dead", p[i].handles,
			       p[i].held, p[i].unacked,
			       p[i].same_pidns ? "same" : "other");
		}
	}
	if (c->json)
		printf("]}\n");
	free(p);
	return 0;
}

/* ---- peek ------------------------------------------------------------------------- */

struct peek_opts {
	uint64_t n;
	int hex;
};

static int on_peek(struct ctx *c, int code, const char *arg, void *data)
{
	struct peek_opts *o = data;
	int rc;

	if (code == OPT_N) {
		rc = parse_count(arg, SHMQ_MAX_CAPACITY, &o->n);
		if (rc)
			return bad_value(c, "-n", arg, rc);
		if (!o->n)
			return usage(c, "-n must be at least 1");
	} else if (code == OPT_HEX) {
		o->hex = 1;
	}
	return 0;
}

int cmd_peek(struct ctx *c, int argc, char **argv)
{
	struct peek_opts o = { 10, 0 };
	struct shmq_peek_msg *m = NULL;
	struct shmq_queue_info q;
	unsigned char *bufs = NULL;
	const char *name;
	shmq_seg *seg;
	uint64_t i;
	int rc, got;

	rc = parse_opts(c, find_cmd("peek"), argc, argv, on_peek, &o);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	name = c->argv[0];
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	rc = shmq_queue_stat(seg, name, &q);
	if (rc) {
		shmq_seg_close(seg);
		return fail(c, name, rc, NULL);
	}
	if (o.n > q.capacity)
		o.n = q.capacity;
	m = calloc(o.n, sizeof(*m));
	bufs = malloc(o.n * (q.msg_size ? q.msg_size : 1));
	if (!m || !bufs) {
		rc = fail(c, name, -ENOMEM, NULL);
		goto out;
	}
	for (i = 0; i < o.n; i++) {
		m[i].data = bufs + i * q.msg_size;
		m[i].size = q.msg_size;
	}
	got = shmq_peek(seg, name, m, (unsigned)o.n);
	if (got < 0) {
		rc = fail(c, name, got, NULL);
		goto out;
	}
	rc = 0;
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"queue\":");
		json_str(stdout, name);
		printf(",\"snapshot\":true,\"depth\":%llu,\"messages\":[",
		       (unsigned long long)q.depth);
		for (i = 0; i < (uint64_t)got; i++) {
			printf("%s{\"pos\":%llu,\"len\":%zu,"
			       "\"redelivered\":%s,",
			       i ? "," : "", (unsigned long long)m[i].pos,
			       m[i].len, m[i].redelivered ? "true" : "false");
			/* "data" if valid UTF-8, else "data_base64". */
			json_payload(stdout, "data", m[i].data, m[i].len);
			printf("}");
		}
		printf("]}\n");
		goto out;
	}
	printf("snapshot of queue %s: %d message(s) shown, %llu in the "
	       "queue when looked at;\nnothing was consumed, and the queue "
	       "may have changed since.\n", name, got,
	       (unsigned long long)q.depth);
	for (i = 0; i < (uint64_t)got; i++) {
		printf("#%llu len=%zu%s: ", (unsigned long long)m[i].pos,
		       m[i].len, m[i].redelivered ? " (redelivered)" : "");
		if (o.hex)
			print_hex(stdout, m[i].data, m[i].len);
		else
			print_escaped(stdout, m[i].data, m[i].len);
		putchar('\n');
	}
out:
	free(m);
	free(bufs);
	shmq_seg_close(seg);
	return rc;
}

/* ---- check ------------------------------------------------------------------------ */

static const char *area_name(int area)
{
	switch (area) {
	case SHMQ_AREA_FILE: return "file";
	case SHMQ_AREA_HEADER: return "header";
	case SHMQ_AREA_DIRECTORY: return "directory";
	case SHMQ_AREA_HEAP: return "heap";
	case SHMQ_AREA_PROCS: return "procs";
	case SHMQ_AREA_QUEUE: return "queue";
	case SHMQ_AREA_EXCHANGE: return "exchange";
	}
	return "?";
}

struct check_out {
	int json, n;
};

static void on_problem(const struct shmq_problem *p, void *arg)
{
	struct check_out *o = arg;
	const char *sev = p->severity == SHMQ_CHECK_ERROR ? "error" : "note";
	/* An exchange's own findings name it as the exchange. */
	int x = p->area == SHMQ_AREA_EXCHANGE;

	if (o->json) {
		printf("%s{\"severity\":\"%s\",\"area\":\"%s\",\"index\":%d,"
		       "\"queue\":", o->n ? "," : "", sev, area_name(p->area),
		       p->index);
		if (p->queue && !x)
			json_str(stdout, p->queue);
		else
			printf("null");
		printf(",\"exchange\":");
		if (p->queue && x)
			json_str(stdout, p->queue);
		else
			printf("null");
		printf(",\"what\":");
		json_str(stdout, p->what);
		printf("}");
	} else {
		printf("%s: %s", sev, area_name(p->area));
		if (p->queue)
			printf(" (%s %s)", x ? "exchange" : "queue", p->queue);
		printf(": %s\n", p->what);
	}
	o->n++;
}

int cmd_check(struct ctx *c, int argc, char **argv)
{
	struct check_out o = { 0, 0 };
	char path[4200];
	const char *why;
	int rc = parse_opts(c, find_cmd("check"), argc, argv, NULL, NULL), err;

	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	/*
	 * The checker opens the path read-only and blocking: a FIFO planted
	 * there would block it forever.  Refuse anything but a regular file
	 * before it is opened (a symbolic link it refuses as -EPROTO).  A
	 * file swapped for a FIFO between this lstat() and its open() still
	 * blocks it: that needs O_NONBLOCK in shm/inspect.c.
	 */
	seg_path(c->seg, path, sizeof(path));
	why = file_kind_problem(path, &err);
	if (why)
		return fail_own(c, NULL, err, "%s %s; not checked", path, why);
	o.json = c->json;
	if (o.json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"problems\":[");
	}
	rc = shmq_seg_check(c->seg, on_problem, &o);
	if (rc < 0) {
		if (o.json)
			printf("]}\n");
		fflush(stdout);
		return fail(c, NULL, rc, NULL);
	}
	if (o.json) {
		printf("],\"errors\":%d,\"consistent\":%s}\n", rc,
		       rc ? "false" : "true");
	} else if (!rc) {
		printf("%s: consistent (%d note(s))\n",
		       seg_path(c->seg, path, sizeof(path)), o.n);
	}
	if (rc) {
		fflush(stdout);
		return fail(c, NULL, -EPROTO, "%d error(s) found", rc);
	}
	return 0;
}
