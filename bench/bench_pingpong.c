// SPDX-License-Identifier: MIT
/*
 * bench_pingpong - round-trip latency of one message between two processes.
 *
 * Two child processes, "ping" (pinned to CPU a) and "pong" (pinned to CPU
 * b), bounce one message: ping sends, pong receives, checks and echoes it,
 * ping receives and checks it.  Each round trip is timed on its own with
 * CLOCK_MONOTONIC into a histogram (common.h: log buckets, no sample cap).
 * Cases, all measured in the same run:
 *
 *   raw-spin          a one-message mailbox per direction in MAP_SHARED
 *                     memory, each side spins (PAUSE) on a sequence word:
 *                     the polling limit (copies the payload like shmq)
 *   shmq-poll         shmq_send/shmq_recv with timeout 0, retried on -EAGAIN
 *   shmq-block        SHMQ_FOREVER at the default spin budget (or --spin)
 *   raw-futex         the mailboxes, FUTEX_WAIT/FUTEX_WAKE every message:
 *                     the sleeping limit
 *   shmq-block-spin0  SHMQ_FOREVER with shmq_set_spin(q, 0)
 *   shmq-spsc-poll    shmq-poll, shmq-block and shmq-block-spin0 on
 *   shmq-spsc-block   SHMQ_SPSC queues (one per direction: each has one
 *   shmq-spsc-spin0   sender and one receiver); spin0's every receive
 *                     sleeps, so it prices membarrier() against raw-futex
 *   shmq-direct-poll  shmq-poll and shmq-block where ping publishes each
 *   shmq-direct-block message through a direct exchange with one binding
 *                     (shmq_publish), compared with their shmq twin
 *   shmq-topic10k-poll   the same through a topic exchange that holds
 *   shmq-topic10k-block  10,000 bindings, the key matching one
 *   shmq-poll8        shmq-block, but the echo (pong) waits in shmq_poll()
 *                     over 8 queues, the message on one of them, then
 *                     receives with timeout 0: the price of waiting on
 *                     many queues (compared with shmq-block)
 *   shmq-poll8-spin0  the same at spin 0 (compared with raw-futex)
 *   pollset-fd        the echo waits in epoll_wait() on a poll set's
 *                     descriptor over the same 8 queues, then
 *                     shmq_pollset_ready() and a receive: the event-loop
 *                     integration (compared with eventfd; pipe beside it)
 *   pipe              two pipes, write then read
 *   unix-stream       two AF_UNIX SOCK_STREAM socketpairs
 *   unix-seqpacket    two AF_UNIX SOCK_SEQPACKET socketpairs
 *   eventfd           the shared mailboxes, an eventfd per direction as
 *                     the doorbell (write 1 / blocking read)
 *   posix-mq          two POSIX message queues (mq_send/mq_receive)
 *   zeromq            a ZMQ_PAIR socket over ipc:// (libzmq)
 *   iceoryx           iceoryx publisher/subscriber per direction, through
 *                     its C binding; the receiver sleeps in a WaitSet
 *   rabbitmq          RabbitMQ on 127.0.0.1 (librabbitmq-c): published to a
 *                     topic exchange, consumed no-ack from the queue bound
 *                     by the direction's key (broker.h)
 *   nats              NATS core pub/sub on 127.0.0.1 (libnats): a subject
 *                     per direction, a synchronous subscription each
 *
 * Every case is compared with its baseline (raw-spin or raw-futex) and with
 * shmq (shmq-poll for polling cases, shmq-block for the others; an SPSC
 * case with its MPMC twin).
 *
 * Noise (vCPU migration, frequency, neighbours) comes in spells, so the cases
 * run in several rounds, interleaved with the order rotated, and each case's
 * figures come from all its rounds' samples together.
 *
 * A mechanism is a struct pp_mech of function pointers; adding one is one
 * struct and one table entry.  The plumbing of the mechanisms that
 * bench_throughput also compares (names, channels, sockets, queues) is in
 * mech.h; this file keeps the round trip.
 */
#include <sys/epoll.h>

#include "mech.h"

#define PP_QCAP 8		/* one message in flight: a small ring */
#define PP_SEG_MIN ((size_t)16 << 20)

struct pp_env {
	const char *seg_name;
	shmq_seg *seg;		/* the parent's; children open their own */
	size_t size;		/* message bytes */
	int64_t spin_ns;	/* --spin, or BENCH_NO_SPIN */
	unsigned serial;	/* makes names unique per setup */
	int xready[4];		/* by exchange type: created (pp_x_prepare) */
};

enum { PP_PING = 0, PP_PONG = 1 };

struct pp_mech {
	const char *name;
	const char *desc;
	int base;		/* index of the baseline it is compared to */
	int shmq;		/* index of the shmq case it is compared to */
	double goal;		/* largest allowed ratio to base; 0: none */
	int polls;		/* busy-polls: needs two CPUs */
	int64_t timeout_ns;	/* shmq cases: 0 (poll) or SHMQ_FOREVER */
	int64_t spin_ns;	/* shmq cases: BENCH_NO_SPIN or a budget */
	uint32_t qflags;	/* shmq cases: shmq_attr.flags of the queues */
	uint32_t xtype;		/* exchange cases: SHMQ_DIRECT or SHMQ_TOPIC */
	int wait;		/* shmq cases: PP_WAIT_* of the echo */
	int sock_type;		/* fd cases: 0 (pipe) or a SOCK_ type */
	/* NULL: runs; else why it cannot (not built, limits) */
	const char *(*unavailable)(size_t size);
	size_t state_size;
	/* Parent, before fork(): shared memory, queues, pipes. */
	int (*setup)(struct pp_env *env, const struct pp_mech *m, void *st);
	/* Each child after fork(), side PP_PING or PP_PONG. */
	int (*attach)(struct pp_env *env, void *st, int side);
	int (*ping)(void *st);	/* one round trip */
	int (*pong)(void *st);	/* wait for one message, echo it */
	/* In the child, after its last message. */
	void (*detach)(void *st, int side);
	/* Parent, after both children are gone. */
	void (*teardown)(void *st);
};

/* ---- raw spin: a mailbox per direction ----------------------------------- */

struct pp_spin_shared {
	/* written by ping only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t ping;
	/* written by pong only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t pong;
	/* the futex words of raw-futex and the eventfd case's spare */
	_Alignas(BENCH_ALIGN) _Atomic uint32_t fping;
	_Alignas(BENCH_ALIGN) _Atomic uint32_t fpong;
	/* the mailboxes: down (ping -> pong), then up, size bytes each */
	_Alignas(BENCH_ALIGN) unsigned char box[];
};

struct pp_spin {
	struct bench_msg m;	/* size, seq, buf (no xfer) */
	struct bench_shm shm;	/* sh; efd[0] down, efd[1] up (eventfd) */
	struct pp_spin_shared *sh;
	size_t stride;
	unsigned char *down, *up;
};

/* The mailboxes, and @nefd eventfds (the eventfd case). */
static int pp_box_setup(struct pp_env *env, struct pp_spin *s, unsigned nefd)
{
	int rc;

	s->m.size = env->size;
	s->stride = (env->size + BENCH_ALIGN - 1) & ~(size_t)(BENCH_ALIGN - 1);
	rc = bench_shm_setup(&s->shm, sizeof(*s->sh) + 2 * s->stride, nefd);
	if (rc)
		return rc;
	s->sh = s->shm.map;
	s->down = s->sh->box;
	s->up = s->sh->box + s->stride;
	return 0;
}

static int pp_spin_setup(struct pp_env *env,
			 const struct pp_mech *m BENCH_UNUSED, void *p)
{
	return pp_box_setup(env, p, 0);
}

static int pp_spin_attach(struct pp_env *env BENCH_UNUSED, void *p,
			  int side BENCH_UNUSED)
{
	struct pp_spin *s = p;

	return bench_msg_attach(&s->m);
}

static int pp_spin_ping(void *p)
{
	struct pp_spin *s = p;
	uint64_t seq = ++s->m.seq;

	bench_msg_stamp(s->m.buf, s->m.size, seq);
	memcpy(s->down, s->m.buf, s->m.size);
	/* release: publishes the mailbox bytes; pairs with pong's acquire. */
	atomic_store_explicit(&s->sh->ping, seq, memory_order_release);
	/* acquire: pairs with pong's release of pong; the reply is there. */
	while (atomic_load_explicit(&s->sh->pong, memory_order_acquire) != seq)
		bench_relax();
	memcpy(s->m.buf, s->up, s->m.size);
	return bench_msg_check(s->m.buf, s->m.size, seq, NULL);
}

static int pp_spin_pong(void *p)
{
	struct pp_spin *s = p;
	uint64_t seq = ++s->m.seq;
	int rc;

	/* acquire: pairs with ping's release of ping. */
	while (atomic_load_explicit(&s->sh->ping, memory_order_acquire) != seq)
		bench_relax();
	memcpy(s->m.buf, s->down, s->m.size);
	rc = bench_msg_check(s->m.buf, s->m.size, seq, NULL);
	if (rc)
		return rc;
	memcpy(s->up, s->m.buf, s->m.size);
	/* release: publishes the reply; pairs with ping's acquire. */
	atomic_store_explicit(&s->sh->pong, seq, memory_order_release);
	return 0;
}

static void pp_spin_teardown(void *p)
{
	struct pp_spin *s = p;

	bench_shm_teardown(&s->shm);
}

/* ---- raw futex: the same mailboxes, sleep and wake every message --------- */

/* Sleeps until *word == want; the loop absorbs spurious wake-ups. */
static int pp_futex_await(_Atomic uint32_t *word, uint32_t want)
{
	uint32_t v;
	int rc;

	/* acquire: pairs with the peer's release store before its wake. */
	while ((v = atomic_load_explicit(word, memory_order_acquire)) != want) {
		rc = bench_futex_wait(word, v);
		if (rc && rc != -EAGAIN && rc != -EINTR)
			return rc;
	}
	return 0;
}

static int pp_futex_ping(void *p)
{
	struct pp_spin *s = p;
	uint32_t seq = (uint32_t)++s->m.seq;
	int rc;

	bench_msg_stamp(s->m.buf, s->m.size, s->m.seq);
	memcpy(s->down, s->m.buf, s->m.size);
	/* release: publishes the mailbox; pairs with pong's acquire. */
	atomic_store_explicit(&s->sh->fping, seq, memory_order_release);
	rc = bench_futex_wake(&s->sh->fping, 1);
	if (rc < 0)
		return rc;
	rc = pp_futex_await(&s->sh->fpong, seq);
	if (rc)
		return rc;
	memcpy(s->m.buf, s->up, s->m.size);
	return bench_msg_check(s->m.buf, s->m.size, s->m.seq, NULL);
}

static int pp_futex_pong(void *p)
{
	struct pp_spin *s = p;
	uint32_t seq = (uint32_t)++s->m.seq;
	int rc;

	rc = pp_futex_await(&s->sh->fping, seq);
	if (rc)
		return rc;
	memcpy(s->m.buf, s->down, s->m.size);
	rc = bench_msg_check(s->m.buf, s->m.size, s->m.seq, NULL);
	if (rc)
		return rc;
	memcpy(s->up, s->m.buf, s->m.size);
	/* release: publishes the reply; pairs with ping's acquire. */
	atomic_store_explicit(&s->sh->fpong, seq, memory_order_release);
	rc = bench_futex_wake(&s->sh->fpong, 1);
	return rc < 0 ? rc : 0;
}

/* ---- eventfd + shared memory: the mailboxes, an eventfd doorbell --------- */

static int pp_efd_setup(struct pp_env *env,
			const struct pp_mech *m BENCH_UNUSED, void *p)
{
	return pp_box_setup(env, p, 2);
}

/* Rings the peer's doorbell, then sleeps on ours until the reply. */
static int pp_efd_ring_wait(int ring, int wait)
{
	uint64_t v;
	int rc = bench_efd_write(ring, 1);

	return rc ? rc : bench_efd_read(wait, &v);
}

static int pp_efd_ping(void *p)
{
	struct pp_spin *s = p;
	int rc;

	bench_msg_stamp(s->m.buf, s->m.size, ++s->m.seq);
	memcpy(s->down, s->m.buf, s->m.size);
	rc = pp_efd_ring_wait(s->shm.efd[0], s->shm.efd[1]);
	if (rc)
		return rc;
	memcpy(s->m.buf, s->up, s->m.size);
	return bench_msg_check(s->m.buf, s->m.size, s->m.seq, NULL);
}

static int pp_efd_pong(void *p)
{
	struct pp_spin *s = p;
	uint64_t v;
	int rc;

	rc = bench_efd_read(s->shm.efd[0], &v);
	if (rc)
		return rc;
	memcpy(s->m.buf, s->down, s->m.size);
	rc = bench_msg_check(s->m.buf, s->m.size, ++s->m.seq, NULL);
	if (rc)
		return rc;
	memcpy(s->up, s->m.buf, s->m.size);
	return bench_efd_write(s->shm.efd[1], 1);
}

/*
 * ---- the message-passing mechanisms --------------------------------------
 *
 * Pipes, Unix sockets, POSIX mq, ZeroMQ, iceoryx and the brokers are
 * mech.h endpoints:
 * one ping and one pong serve them all.  Ping sends on channel 0 (down)
 * and receives on 1 (up); pong the other way round.
 */
#define PP_TX(side) ((side) == PP_PING ? 0 : 1)
#define PP_RX(side) ((side) == PP_PING ? 1 : 0)

/* Receives a message and checks that it carries @seq. */
static int pp_xfer_take(struct bench_msg *s, uint64_t seq)
{
	ssize_t n = s->xfer->recv(s);

	if (n < 0)
		return (int)n;
	if ((size_t)n != s->size)
		return BENCH_EBADMSG;
	return bench_msg_check(s->buf, s->size, seq, NULL);
}

/* One round trip: stamp, send, receive the echo, check it. */
static int pp_xfer_ping(void *p)
{
	struct bench_msg *s = p;
	int rc;

	bench_msg_stamp(s->buf, s->size, ++s->seq);
	rc = s->xfer->send(p);
	return rc ? rc : pp_xfer_take(s, s->seq);
}

/* Receive, check, echo. */
static int pp_xfer_pong(void *p)
{
	struct bench_msg *s = p;
	int rc = pp_xfer_take(s, ++s->seq);

	return rc ? rc : s->xfer->send(p);
}

/* Socket buffers large enough for one message of @size each way. */
static int pp_fd_setup(struct pp_env *env, const struct pp_mech *m, void *p)
{
	return bench_fd_ep_setup(p, env->size, 2, m->sock_type,
				 (int)(2 * env->size + 4096));
}

static int pp_fd_attach(struct pp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_fd_ep_attach(p, PP_TX(side), PP_RX(side));
}

#define PP_MQ_MAXMSG 4
#define PP_MQ_RLIMIT(size) ((rlim_t)16 * ((size) + 4096))

static const char *pp_mq_unavailable(size_t size)
{
	return bench_mq_unavailable(size, PP_MQ_MAXMSG, PP_MQ_RLIMIT(size));
}

static int pp_mq_setup(struct pp_env *env,
		       const struct pp_mech *m BENCH_UNUSED, void *p)
{
	env->serial++;
	bench_mq_rlimit(PP_MQ_RLIMIT(env->size));
	return bench_mq_ep_setup(p, env->size, 2, PP_MQ_MAXMSG, env->serial);
}

static int pp_mq_attach(struct pp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_mq_ep_attach(p, PP_TX(side), PP_RX(side));
}

#if BENCH_HAVE_ZMQ
static int pp_zmq_setup(struct pp_env *env,
			const struct pp_mech *m BENCH_UNUSED, void *p)
{
	bench_zmq_setup(p, env->size, ++env->serial);
	return 0;
}

/*
 * pong binds, ping connects.  The end needs no handshake (compare
 * bench_throughput): the last echo goes to a ping with nothing queued.
 */
static int pp_zmq_attach(struct pp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_zmq_attach(p, side == PP_PONG);
}
#define PP_ZMQ_OPS							\
	.state_size = sizeof(struct bench_zmq), .setup = pp_zmq_setup,	\
	.attach = pp_zmq_attach, .ping = pp_xfer_ping,			\
	.pong = pp_xfer_pong, .detach = bench_zmq_detach,		\
	.teardown = bench_zmq_teardown
#else
#define PP_ZMQ_OPS .state_size = 0
#endif

#if BENCH_HAVE_ICEORYX
#define PP_IOX_QUEUE 4

static int pp_iox_setup(struct pp_env *env,
			const struct pp_mech *m BENCH_UNUSED, void *p)
{
	bench_iox_setup(p, env->size, ++env->serial);
	return 0;
}

/* Each side publishes one direction and subscribes to the other. */
static int pp_iox_attach(struct pp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_iox_attach(p, side == PP_PING ? "down" : "up",
				side == PP_PING ? "up" : "down", PP_IOX_QUEUE);
}
#define PP_IOX_OPS							\
	.state_size = sizeof(struct bench_iox), .setup = pp_iox_setup,	\
	.attach = pp_iox_attach, .ping = pp_xfer_ping,			\
	.pong = pp_xfer_pong, .detach = bench_iox_detach,		\
	.teardown = bench_nop_teardown
#else
#define PP_IOX_OPS .state_size = 0
#endif

/* The brokers' two channels: routing keys or subjects. */
static const char *const pp_dirs[2] BENCH_UNUSED = { "down", "up" };

#if BENCH_HAVE_RABBITMQ
static int pp_rmq_setup(struct pp_env *env,
			const struct pp_mech *m BENCH_UNUSED, void *p)
{
	return bench_rmq_setup(p, env->size, ++env->serial, 2, pp_dirs);
}

static int pp_rmq_attach(struct pp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_rmq_attach(p, PP_TX(side), PP_RX(side));
}
#define PP_RMQ_OPS							\
	.state_size = sizeof(struct bench_rmq), .setup = pp_rmq_setup,	\
	.attach = pp_rmq_attach, .ping = pp_xfer_ping,			\
	.pong = pp_xfer_pong, .detach = bench_rmq_detach,		\
	.teardown = bench_nop_teardown
#else
#define PP_RMQ_OPS .state_size = 0
#endif

#if BENCH_HAVE_NATS
static int pp_nats_setup(struct pp_env *env,
			 const struct pp_mech *m BENCH_UNUSED, void *p)
{
	return bench_nats_setup(p, env->size, ++env->serial, 2, pp_dirs);
}

/* Publishes go to the socket at once (SendAsap): one message in flight. */
static int pp_nats_attach(struct pp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_nats_attach(p, PP_TX(side), PP_RX(side), 1);
}
#define PP_NATS_OPS							\
	.state_size = sizeof(struct bench_nats), .setup = pp_nats_setup, \
	.attach = pp_nats_attach, .ping = pp_xfer_ping,			\
	.pong = pp_xfer_pong, .detach = bench_nats_detach,		\
	.teardown = bench_nats_teardown
#else
#define PP_NATS_OPS .state_size = 0
#endif

/* ---- shmq ---------------------------------------------------------------- */

#define PP_POLLQ 8		/* queues the poll cases' echo waits on */

enum { PP_WAIT_RECV = 0, PP_WAIT_POLL, PP_WAIT_POLLSET };

struct pp_shmq {
	shmq_seg *seg;		/* the parent's, where the queues are */
	int wait;		/* PP_WAIT_*: how pong waits for a message */
	char qidle[PP_POLLQ - 1][SHMQ_NAME_MAX + 1];	/* the poll cases' */
	shmq *idle[PP_POLLQ - 1];
	struct shmq_pollq set[PP_POLLQ];
	shmq_pollset *ps;
	int ep;
	char qdown[SHMQ_NAME_MAX + 1];	/* ping -> pong */
	char qup[SHMQ_NAME_MAX + 1];	/* pong -> ping */
	int64_t timeout_ns;
	int64_t spin_ns;
	size_t size;
	shmq_seg *own_seg;	/* this child's attachment */
	shmq *tx, *rx;
	uint64_t seq;
	char *buf;
	/* exchange cases: ping publishes down through this exchange */
	const char *xname;	/* NULL: ping sends with shmq_send() */
	const char *key;	/* the routing key */
	shmq_exchange *x;
};

/*
 * ---- shmq exchanges -------------------------------------------------------
 *
 * The shmq-direct-* and shmq-topic10k-* cases are the shmq cases with one
 * change: ping puts its message into the down queue with shmq_publish()
 * through an exchange instead of shmq_send() (pong, and the way back, are
 * the same).  The exchanges live for the whole run (the topic exchange's
 * bindings take a while to make); each round binds its new down queue, and
 * its teardown unlinks the queue, which removes that binding.  A publish
 * finds its route in the handle's cache after the first one (warm-up):
 * nothing changes the segment's directory during a round.
 *
 *   direct      one binding, key PP_XD_KEY -> the down queue
 *   topic10k    PP_XT_OTHER bindings that never match the key (a sink
 *               queue; literal, '*' and '#' patterns), plus one that does:
 *               PP_XT_BIND -> the down queue, published with PP_XT_KEY
 *
 * The queues of these cases have room for the key, which travels in the
 * slot before the payload: msg_size = size + key length (the same slot
 * size as the shmq cases' up to 4 KiB: a slot is the 16-byte header plus
 * msg_size, rounded up to 64 bytes; at 8 and 64 bytes both fit one slot
 * of 64 or 128 bytes).
 */
#define PP_XD_NAME "ppx.direct"
#define PP_XD_KEY "pp.down"
#define PP_XT_NAME "ppx.topic"
#define PP_XT_SINK "ppx.sink"
#define PP_XT_BIND "ping.*.down"
#define PP_XT_KEY "ping.x.down"
#define PP_XT_OTHER 9999u

static const char *pp_xname(uint32_t type)
{
	return type == SHMQ_TOPIC ? PP_XT_NAME : PP_XD_NAME;
}

static const char *pp_xkey(uint32_t type)
{
	return type == SHMQ_TOPIC ? PP_XT_KEY : PP_XD_KEY;
}

/*
 * The @i-th of the topic exchange's non-matching binding keys: a third
 * literal, a third with '*', a third with '#'.
 */
static void pp_xt_other(char *buf, size_t len, unsigned i)
{
	switch (i % 3) {
	case 0:
		snprintf(buf, len, "svc%u.info", i);
		break;
	case 1:
		snprintf(buf, len, "svc%u.*.error", i);
		break;
	default:
		snprintf(buf, len, "log.svc%u.#", i);
		break;
	}
}

/* Creates the exchange of @type for the run, once (parent). */
static int pp_x_prepare(struct pp_env *env, uint32_t type)
{
	struct shmq_xattr xa = { .type = type };
	struct shmq_attr qa = { .capacity = 2, .msg_size = 64 };
	char key[64];
	unsigned i;
	int rc;

	if (env->xready[type])
		return 0;
	rc = shmq_exchange_create(env->seg, pp_xname(type), &xa);
	if (rc)
		return rc;
	if (type == SHMQ_TOPIC) {
		rc = shmq_create(env->seg, PP_XT_SINK, &qa);
		for (i = 0; !rc && i < PP_XT_OTHER; i++) {
			pp_xt_other(key, sizeof(key), i);
			rc = shmq_bind(env->seg, PP_XT_NAME, PP_XT_SINK, key);
		}
		if (rc)
			return rc;
	}
	env->xready[type] = 1;
	return 0;
}

static int pp_shmq_setup(struct pp_env *env, const struct pp_mech *m, void *p)
{
	struct shmq_attr attr = { .capacity = PP_QCAP,
				  .msg_size = (uint32_t)env->size,
				  .flags = m->qflags };
	struct pp_shmq *s = p;
	int rc, i;

	if (m->xtype) {
		rc = pp_x_prepare(env, m->xtype);
		if (rc)
			return rc;
		s->xname = pp_xname(m->xtype);
		s->key = pp_xkey(m->xtype);
		attr.msg_size += (uint32_t)strlen(s->key);
	}
	s->seg = env->seg;
	s->size = env->size;
	s->timeout_ns = m->timeout_ns;
	/* --spin overrides the default budget, never the spin-0 case's. */
	s->spin_ns = m->spin_ns == BENCH_NO_SPIN ? env->spin_ns : m->spin_ns;
	env->serial++;
	bench_shmq_name(s->qdown, sizeof(s->qdown), "pp", env->serial, "down");
	bench_shmq_name(s->qup, sizeof(s->qup), "pp", env->serial, "up");
	rc = shmq_create(env->seg, s->qdown, &attr);
	if (rc)
		return rc;
	rc = shmq_create(env->seg, s->qup, &attr);
	if (rc) {
		shmq_unlink(env->seg, s->qdown);
		return rc;
	}
	s->wait = m->wait;
	for (i = 0; s->wait && i < PP_POLLQ - 1 && !rc; i++) {
		char tag[8];

		snprintf(tag, sizeof(tag), "idle%d", i);
		bench_shmq_name(s->qidle[i], sizeof(s->qidle[i]), "pp",
				env->serial, tag);
		rc = shmq_create(env->seg, s->qidle[i], &attr);
	}
	if (!rc && s->xname) {
		rc = shmq_bind(env->seg, s->xname, s->qdown, m->xtype ==
			       SHMQ_TOPIC ? PP_XT_BIND : s->key);
		if (rc) {
			shmq_unlink(env->seg, s->qdown);
			shmq_unlink(env->seg, s->qup);
		}
	}
	return rc;
}

/*
 * The poll cases' pong: its receive queue among PP_POLLQ - 1 idle ones
 * (in the middle of the set), and the poll set with its epoll descriptor.
 */
static int pp_shmq_attach_poll(struct pp_shmq *s)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int i, k = 0, rc = 0;

	for (i = 0; i < PP_POLLQ - 1 && !rc; i++)
		rc = bench_shmq_open(s->own_seg, s->qidle[i], s->spin_ns,
				     &s->idle[i]);
	for (i = 0; i < PP_POLLQ && !rc; i++) {
		s->set[i].q = i == PP_POLLQ / 2 ? s->rx : s->idle[k++];
		s->set[i].events = SHMQ_POLLIN;
	}
	if (rc || s->wait != PP_WAIT_POLLSET)
		return rc;
	rc = shmq_pollset_create(&s->ps);
	for (i = 0; i < PP_POLLQ && !rc; i++)
		rc = shmq_pollset_add(s->ps, s->set[i].q, SHMQ_POLLIN);
	if (rc)
		return rc;
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD,
				   shmq_pollset_fd(s->ps), &ev) < 0)
		return -errno;
	return 0;
}

static int pp_shmq_attach(struct pp_env *env, void *p, int side)
{
	struct pp_shmq *s = p;
	int rc;

	/* A child never touches the parent's attachment: it opens its own. */
	rc = shmq_seg_open(env->seg_name, &s->own_seg);
	if (!rc && s->xname && side == PP_PING)
		rc = shmq_exchange_open(s->own_seg, s->xname, &s->x);
	else if (!rc)
		rc = bench_shmq_open(s->own_seg, side == PP_PING ? s->qdown :
				     s->qup, s->spin_ns, &s->tx);
	if (!rc)
		rc = bench_shmq_open(s->own_seg, side == PP_PING ? s->qup :
				     s->qdown, s->spin_ns, &s->rx);
	if (!rc) {
		s->buf = bench_buf_alloc(s->size, 1);
		if (!s->buf)
			rc = -ENOMEM;
	}
	s->ep = -1;
	if (!rc && s->wait && side == PP_PONG)
		rc = pp_shmq_attach_poll(s);
	return rc;
}

/* Pong of the poll cases: wait in shmq_poll, or epoll on the poll set. */
static ssize_t pp_shmq_poll_recv(struct pp_shmq *s)
{
	struct shmq_pollq ready[PP_POLLQ];
	struct epoll_event ev;
	ssize_t n;
	int rc;

	for (;;) {
		n = shmq_recv(s->rx, s->buf, s->size, 0);
		if (n != -EAGAIN)
			return n;
		if (s->wait == PP_WAIT_POLL) {
			rc = shmq_poll(s->set, PP_POLLQ, SHMQ_FOREVER);
		} else {
			rc = epoll_wait(s->ep, &ev, 1, -1);
			if (rc < 0 && errno != EINTR)
				return -errno;
			rc = shmq_pollset_ready(s->ps, ready, PP_POLLQ);
		}
		if (rc < 0)
			return rc;
	}
}

static int pp_shmq_send(struct pp_shmq *s)
{
	int rc;

	if (s->x) {
		/* The spin budget is the receiver's: publish has none. */
		while ((rc = shmq_publish(s->x, s->key, s->buf, s->size,
					  s->timeout_ns)) == -EAGAIN &&
		       !s->timeout_ns)
			bench_relax();
		return rc == 1 ? 0 : rc < 0 ? rc : BENCH_EBADMSG;
	}

	while ((rc = shmq_send(s->tx, s->buf, s->size, s->timeout_ns)) ==
	       -EAGAIN && !s->timeout_ns)
		bench_relax();
	return rc;
}

static int pp_shmq_recv(struct pp_shmq *s, uint64_t seq)
{
	ssize_t n;

	if (s->wait && s->idle[0])
		n = pp_shmq_poll_recv(s);
	else
		while ((n = shmq_recv(s->rx, s->buf, s->size,
				      s->timeout_ns)) == -EAGAIN &&
		       !s->timeout_ns)
			bench_relax();
	if (n < 0)
		return (int)n;
	if ((size_t)n != s->size)
		return BENCH_EBADMSG;
	return bench_msg_check(s->buf, s->size, seq, NULL);
}

static int pp_shmq_ping(void *p)
{
	struct pp_shmq *s = p;
	int rc;

	bench_msg_stamp(s->buf, s->size, ++s->seq);
	rc = pp_shmq_send(s);
	return rc ? rc : pp_shmq_recv(s, s->seq);
}

static int pp_shmq_pong(void *p)
{
	struct pp_shmq *s = p;
	int rc;

	rc = pp_shmq_recv(s, ++s->seq);
	return rc ? rc : pp_shmq_send(s);
}

static void pp_shmq_detach(void *p, int side BENCH_UNUSED)
{
	struct pp_shmq *s = p;
	int i;

	if (s->ep >= 0)
		close(s->ep);
	s->ep = -1;
	shmq_pollset_destroy(s->ps);
	s->ps = NULL;
	for (i = 0; i < PP_POLLQ - 1; i++) {
		shmq_close(s->idle[i]);
		s->idle[i] = NULL;
	}

	shmq_close(s->tx);
	shmq_close(s->rx);
	shmq_exchange_close(s->x);
	s->tx = s->rx = NULL;
	s->x = NULL;
	shmq_seg_close(s->own_seg);
	s->own_seg = NULL;
	free(s->buf);
	s->buf = NULL;
}

static void pp_shmq_teardown(void *p)
{
	struct pp_shmq *s = p;

	int i;

	shmq_unlink(s->seg, s->qdown);
	shmq_unlink(s->seg, s->qup);
	for (i = 0; s->wait && i < PP_POLLQ - 1; i++)
		shmq_unlink(s->seg, s->qidle[i]);
}

/* ---- the cases ----------------------------------------------------------- */

enum {
	C_SPIN, C_POLL, C_BLOCK, C_FUTEX, C_SPIN0, C_SPOLL, C_SBLOCK, C_SSPIN0,
	C_XDPOLL, C_XDBLOCK, C_XTPOLL, C_XTBLOCK, C_POLL8, C_POLL8S0, C_PSETFD,
	C_PIPE, C_USTREAM, C_USEQ, C_EFD, C_MQ, C_ZMQ, C_IOX, C_RMQ, C_NATS,
	C_NR
};

#define PP_SPIN_OPS							\
	.state_size = sizeof(struct pp_spin), .setup = pp_spin_setup,	\
	.attach = pp_spin_attach, .ping = pp_spin_ping,			\
	.pong = pp_spin_pong, .detach = bench_msg_detach,		\
	.teardown = pp_spin_teardown
#define PP_FUTEX_OPS							\
	.state_size = sizeof(struct pp_spin), .setup = pp_spin_setup,	\
	.attach = pp_spin_attach, .ping = pp_futex_ping,		\
	.pong = pp_futex_pong, .detach = bench_msg_detach,		\
	.teardown = pp_spin_teardown
#define PP_EFD_OPS							\
	.state_size = sizeof(struct pp_spin), .setup = pp_efd_setup,	\
	.attach = pp_spin_attach, .ping = pp_efd_ping,			\
	.pong = pp_efd_pong, .detach = bench_msg_detach,		\
	.teardown = pp_spin_teardown
#define PP_SHMQ_OPS							\
	.state_size = sizeof(struct pp_shmq), .setup = pp_shmq_setup,	\
	.attach = pp_shmq_attach, .ping = pp_shmq_ping,			\
	.pong = pp_shmq_pong, .detach = pp_shmq_detach,			\
	.teardown = pp_shmq_teardown
/* Each direction its own queue: ping sends down, pong up (pp_shmq_attach). */
#define PP_SSPSC_OPS PP_SHMQ_OPS, .qflags = SHMQ_SPSC
#define PP_FD_OPS							\
	.state_size = sizeof(struct bench_fd_ep), .setup = pp_fd_setup,	\
	.attach = pp_fd_attach, .ping = pp_xfer_ping,			\
	.pong = pp_xfer_pong, .detach = bench_msg_detach,		\
	.teardown = bench_fd_ep_teardown
#define PP_MQ_OPS							\
	.state_size = sizeof(struct bench_mq_ep), .setup = pp_mq_setup,	\
	.attach = pp_mq_attach, .ping = pp_xfer_ping,			\
	.pong = pp_xfer_pong, .detach = bench_msg_detach,		\
	.teardown = bench_mq_ep_teardown

static const struct pp_mech pp_mechs[C_NR] = {
	[C_SPIN] = { .name = "raw-spin", .base = C_SPIN, .shmq = C_POLL,
		     .polls = 1,
		     .desc = "mailboxes in MAP_SHARED memory, PAUSE-spin",
		     PP_SPIN_OPS },
	[C_POLL] = { .name = "shmq-poll", .base = C_SPIN, .shmq = C_POLL,
		     .goal = 1.10, .polls = 1, .timeout_ns = 0,
		     .spin_ns = BENCH_NO_SPIN,
		     .desc = "shmq_send/recv, timeout 0, retry on EAGAIN",
		     PP_SHMQ_OPS },
	[C_BLOCK] = { .name = "shmq-block", .base = C_SPIN, .shmq = C_BLOCK,
		      .goal = 1.25, .timeout_ns = SHMQ_FOREVER,
		      .spin_ns = BENCH_NO_SPIN,
		      .desc = "SHMQ_FOREVER, default spin budget (or --spin)",
		      PP_SHMQ_OPS },
	[C_FUTEX] = { .name = "raw-futex", .base = C_SPIN, .shmq = C_BLOCK,
		      .desc = "the mailboxes, FUTEX_WAIT/WAKE every message",
		      PP_FUTEX_OPS },
	[C_SPIN0] = { .name = "shmq-block-spin0", .base = C_FUTEX,
		      .shmq = C_BLOCK, .goal = 1.25,
		      .timeout_ns = SHMQ_FOREVER, .spin_ns = 0,
		      .desc = "SHMQ_FOREVER, shmq_set_spin(q, 0)",
		      PP_SHMQ_OPS },
	[C_SPOLL] = { .name = "shmq-spsc-poll", .base = C_SPIN,
		      .shmq = C_POLL, .polls = 1, .timeout_ns = 0,
		      .spin_ns = BENCH_NO_SPIN,
		      .desc = "shmq-poll on SHMQ_SPSC queues",
		      PP_SSPSC_OPS },
	[C_SBLOCK] = { .name = "shmq-spsc-block", .base = C_SPIN,
		       .shmq = C_BLOCK, .timeout_ns = SHMQ_FOREVER,
		       .spin_ns = BENCH_NO_SPIN,
		       .desc = "shmq-block on SHMQ_SPSC queues",
		       PP_SSPSC_OPS },
	[C_SSPIN0] = { .name = "shmq-spsc-spin0", .base = C_FUTEX,
		       .shmq = C_SPIN0, .timeout_ns = SHMQ_FOREVER,
		       .spin_ns = 0,
		       .desc = "shmq-block-spin0 on SHMQ_SPSC queues: "
			       "membarrier() per sleep",
		       PP_SSPSC_OPS },
	[C_XDPOLL] = { .name = "shmq-direct-poll", .base = C_POLL,
		       .shmq = C_POLL, .goal = 1.10, .polls = 1,
		       .timeout_ns = 0, .spin_ns = BENCH_NO_SPIN,
		       .xtype = SHMQ_DIRECT,
		       .desc = "shmq-poll, ping publishes through a direct "
			       "exchange (1 binding)", PP_SHMQ_OPS },
	[C_XDBLOCK] = { .name = "shmq-direct-block", .base = C_BLOCK,
			.shmq = C_BLOCK, .goal = 1.10,
			.timeout_ns = SHMQ_FOREVER, .spin_ns = BENCH_NO_SPIN,
			.xtype = SHMQ_DIRECT,
			.desc = "shmq-block, ping publishes through a direct "
				"exchange (1 binding)", PP_SHMQ_OPS },
	[C_XTPOLL] = { .name = "shmq-topic10k-poll", .base = C_POLL,
		       .shmq = C_POLL, .goal = 1.15, .polls = 1,
		       .timeout_ns = 0, .spin_ns = BENCH_NO_SPIN,
		       .xtype = SHMQ_TOPIC,
		       .desc = "shmq-poll, ping publishes through a topic "
			       "exchange of 10,000 bindings", PP_SHMQ_OPS },
	[C_XTBLOCK] = { .name = "shmq-topic10k-block", .base = C_BLOCK,
			.shmq = C_BLOCK, .goal = 1.15,
			.timeout_ns = SHMQ_FOREVER, .spin_ns = BENCH_NO_SPIN,
			.xtype = SHMQ_TOPIC,
			.desc = "shmq-block, ping publishes through a topic "
				"exchange of 10,000 bindings", PP_SHMQ_OPS },
	[C_POLL8] = { .name = "shmq-poll8", .base = C_BLOCK, .shmq = C_BLOCK,
		      .goal = 1.25, .timeout_ns = SHMQ_FOREVER,
		      .spin_ns = BENCH_NO_SPIN, .wait = PP_WAIT_POLL,
		      .desc = "shmq-block, echo waits in shmq_poll on 8 queues",
		      PP_SHMQ_OPS },
	[C_POLL8S0] = { .name = "shmq-poll8-spin0", .base = C_FUTEX,
			.shmq = C_SPIN0, .goal = 1.25,
			.timeout_ns = SHMQ_FOREVER, .spin_ns = 0,
			.wait = PP_WAIT_POLL,
			.desc = "shmq-poll8 at spin 0",
			PP_SHMQ_OPS },
	[C_PSETFD] = { .name = "pollset-fd", .base = C_EFD, .shmq = C_BLOCK,
		       .timeout_ns = SHMQ_FOREVER, .spin_ns = 0,
		       .wait = PP_WAIT_POLLSET,
		       .desc = "echo in epoll_wait on a poll set's fd (8 queues)",
		       PP_SHMQ_OPS },
	[C_PIPE] = { .name = "pipe", .base = C_FUTEX, .shmq = C_BLOCK,
		     .desc = "two pipes, write + read", PP_FD_OPS },
	[C_USTREAM] = { .name = "unix-stream", .base = C_FUTEX,
			.shmq = C_BLOCK, .sock_type = SOCK_STREAM,
			.desc = "two AF_UNIX SOCK_STREAM socketpairs",
			PP_FD_OPS },
	[C_USEQ] = { .name = "unix-seqpacket", .base = C_FUTEX,
		     .shmq = C_BLOCK, .sock_type = SOCK_SEQPACKET,
		     .desc = "two AF_UNIX SOCK_SEQPACKET socketpairs",
		     PP_FD_OPS },
	[C_EFD] = { .name = "eventfd", .base = C_FUTEX, .shmq = C_BLOCK,
		    .desc = "the mailboxes, an eventfd doorbell each way",
		    PP_EFD_OPS },
	[C_MQ] = { .name = "posix-mq", .base = C_FUTEX, .shmq = C_BLOCK,
		   .unavailable = pp_mq_unavailable,
		   .desc = "two POSIX message queues, mq_send/mq_receive",
		   PP_MQ_OPS },
	[C_ZMQ] = { .name = "zeromq", .base = C_FUTEX, .shmq = C_BLOCK,
		    .unavailable = bench_zmq_unavailable,
		    .desc = "libzmq ZMQ_PAIR over ipc://", PP_ZMQ_OPS },
	[C_IOX] = { .name = "iceoryx", .base = C_FUTEX, .shmq = C_BLOCK,
		    .unavailable = bench_iox_unavailable,
		    .desc = "iceoryx C binding, pub/sub + WaitSet (iox-roudi)",
		    PP_IOX_OPS },
	[C_RMQ] = { .name = "rabbitmq", .base = C_FUTEX, .shmq = C_BLOCK,
		    .unavailable = bench_rmq_unavailable,
		    .desc = "RabbitMQ on localhost: topic exchange, no-ack "
			    "consumers", PP_RMQ_OPS },
	[C_NATS] = { .name = "nats", .base = C_FUTEX, .shmq = C_BLOCK,
		     .unavailable = bench_nats_unavailable,
		     .desc = "NATS core pub/sub on localhost, sync "
			     "subscriptions", PP_NATS_OPS },
};

/* ---- the driver ---------------------------------------------------------- */

enum { PP_RUN = 0, PP_NEEDS_2CPU, PP_UNSELECTED, PP_UNAVAILABLE };

/* The figures of one case at one size. */
struct pp_result {
	struct hist *h;		/* all rounds' samples */
	double *round_med;	/* per round */
	int skipped;		/* PP_RUN, ... */
	const char *why;	/* PP_UNAVAILABLE: the reason */
};

struct pp_run {
	struct pp_env env;
	const struct bench_opts *o;
	int cpu_a, cpu_b;
	uint64_t warm, iters;	/* per round */
	unsigned rounds;
	struct hist *shared_h;	/* MAP_SHARED: the ping child fills it */
	struct pp_result res[C_NR];
	unsigned done, total;	/* rounds run, for the progress line */
};

/* Everything this program created goes; then exit(1). */
static void pp_die(struct pp_run *r)
{
	bench_die(r->env.seg, r->env.seg_name);
}

/*
 * A child: pin, attach, run @n pings (timed after @warm) or pongs, leave.
 * exit(), not _exit(): iceoryx unregisters from roudi in a destructor
 * (stdio was flushed before fork(), so nothing is written twice).
 */
static void pp_child(struct pp_run *r, const struct pp_mech *m, void *st,
		     int side)
{
	uint64_t i, n = r->warm + r->iters, t0, t1;
	struct hist *h = r->shared_h;
	int rc;

	rc = bench_pin(side == PP_PING ? r->cpu_a : r->cpu_b);
	if (!rc)
		rc = m->attach(&r->env, st, side);
	if (rc) {
		fprintf(stderr, "%s: %s setup: %s\n", m->name,
			side == PP_PING ? "ping" : "pong", bench_strerror(rc));
		_exit(1);
	}
	if (side == PP_PONG) {
		for (i = 0; i < n; i++) {
			rc = m->pong(st);
			if (rc)
				goto fail;
		}
	} else {
		for (i = 0; i < r->warm; i++) {
			rc = m->ping(st);
			if (rc)
				goto fail;
		}
		hist_reset(h);
		for (; i < n; i++) {
			t0 = bench_now_ns();
			rc = m->ping(st);
			t1 = bench_now_ns();
			if (rc)
				goto fail;
			hist_add(h, t1 - t0);
		}
	}
	m->detach(st, side);
	exit(0);
fail:
	fprintf(stderr, "%s: %s %" PRIu64 ": %s\n", m->name,
		side == PP_PING ? "round trip" : "echo", i, bench_strerror(rc));
	_exit(1);
}

static void pp_round(struct pp_run *r, int c, unsigned round)
{
	const struct pp_mech *m = &pp_mechs[c];
	struct pp_result *res = &r->res[c];
	pid_t pong, ping;
	void *st;
	int rc, bad;

	bench_progress("pingpong %zu B: %-16s round %u/%u  [%u/%u]",
		       r->env.size, m->name, round + 1, r->rounds, r->done + 1,
		       r->total);
	st = calloc(1, m->state_size);
	if (!st) {
		fprintf(stderr, "%s: out of memory\n", m->name);
		pp_die(r);
	}
	rc = m->setup(&r->env, m, st);
	if (rc) {
		fprintf(stderr, "%s: setup: %s\n", m->name, bench_strerror(rc));
		pp_die(r);
	}
	/* Budget: 30 s plus 1 ms per round trip, ample even when sleeping. */
	bench_watchdog(30 + (unsigned)((r->warm + r->iters) / 1000), m->name);
	fflush(NULL);
	pong = bench_fork();
	if (pong == 0)
		pp_child(r, m, st, PP_PONG);
	ping = pong > 0 ? bench_fork() : pong;
	if (ping == 0)
		pp_child(r, m, st, PP_PING);
	if (pong < 0 || ping < 0) {
		fprintf(stderr, "%s: fork: %s\n", m->name,
			bench_strerror(pong < 0 ? (int)pong : (int)ping));
		pp_die(r);
	}
	bad = bench_reap(ping, "ping") != 0;
	bad |= bench_reap(pong, "pong") != 0;
	alarm(0);
	if (bad) {
		fprintf(stderr, "%s: run failed\n", m->name);
		pp_die(r);
	}
	m->teardown(st);
	free(st);
	/* waitpid() ordered the child's writes to the shared histogram. */
	hist_merge(res->h, r->shared_h);
	res->round_med[round] = (double)hist_pct(r->shared_h, 50);
	r->done++;
	if (r->o->verbose)
		printf("  round %u %-18s median %6" PRIu64 " ns  p99 %7" PRIu64
		       " ns\n", round + 1, m->name, hist_pct(r->shared_h, 50),
		       hist_pct(r->shared_h, 99));
}

static const char pp_help[] =
	"usage: bench_pingpong [options]\n"
	"\n"
	"Round-trip latency of one message between two processes pinned to\n"
	"two CPUs: shmq (polling, blocking, blocking without spin; on the\n"
	"default MPMC queues and on SHMQ_SPSC queues) against\n"
	"raw shared-memory spin and futex ping-pongs (the limits), pipes,\n"
	"Unix sockets (stream, seqpacket), eventfd + shared memory, POSIX\n"
	"message queues, ZeroMQ ipc://, iceoryx, RabbitMQ and NATS (when\n"
	"built in), measured in the same run in interleaved rounds.  Every\n"
	"message is checked.\n"
	"Prints a table per size, GOAL lines for the two latency goals at\n"
	"64 bytes, and one SUMMARY line per case and size.\n"
	"\n"
	"options:\n"
	"  --iters N        round trips per case and size, over all rounds\n"
	"                   (default 100000, 20000 above 4 KiB; --quick 6000)\n"
	"  (default sizes: 8,64,512,4k,64k; --quick 64,4k)\n"
	BENCH_COMMON_HELP
	"\n"
	"CSV (--out): latency.csv, one row per case and size.\n"
	"iceoryx: an iox-roudi is started for the run (and stopped) unless\n"
	"one runs already.  RabbitMQ and NATS: a private rabbitmq-server and\n"
	"nats-server are started on 127.0.0.1 for the run and stopped\n"
	"(--smoke skips RabbitMQ, which takes seconds to start).\n"
	"Cases: raw-spin shmq-poll shmq-block raw-futex\n"
	"shmq-block-spin0 shmq-spsc-poll shmq-spsc-block shmq-spsc-spin0\n"
	"shmq-direct-poll shmq-direct-block shmq-topic10k-poll\n"
	"shmq-topic10k-block shmq-poll8 shmq-poll8-spin0 pollset-fd\n"
	"pipe unix-stream unix-seqpacket eventfd posix-mq zeromq iceoryx\n"
	"rabbitmq nats.\n"
	"A case brings its baselines along (x base, x shmq columns); the\n"
	"shmq-spsc cases' x shmq is their MPMC twin (spin0: shmq-block-spin0);\n"
	"the exchange cases' base is their shmq_send() twin (shmq-poll or\n"
	"shmq-block), and their goal (1.10x direct, 1.15x topic) is against\n"
	"it.\n";

static double pp_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0;
}

static double pp_med(const struct pp_run *r, int c)
{
	if (r->res[c].skipped)
		return 0;
	return (double)hist_pct(r->res[c].h, 50);
}

/* "3.2x shmq-block", or "-" */
static double pp_ratio(const struct pp_run *r, int c, int base)
{
	double b = pp_med(r, base), v = pp_med(r, c);

	return b > 0 && v > 0 ? v / b : 0;
}

static void pp_report(struct pp_run *r, const char *cpus, FILE *csv)
{
	int c;

	printf("\n%zu-byte messages: round trip in ns\n", r->env.size);
	printf("%-19s %8s %8s %8s %8s %8s %9s %7s %-10s %6s %-16s %s\n",
	       "case", "median", "mean", "p90", "p99", "p99.9", "max",
	       "x base", "base", "x shmq", "vs", "goal");
	for (c = 0; c < C_NR; c++) {
		const struct pp_mech *m = &pp_mechs[c];
		const struct pp_result *res = &r->res[c];
		const struct hist *h = res->h;
		double rb = pp_ratio(r, c, m->base);
		double rq = pp_ratio(r, c, m->shmq);
		char goal[32] = "", b1[16] = "-", b2[16] = "-";

		if (res->skipped == PP_NEEDS_2CPU)
			printf("%-19s skipped: busy-polls, needs two CPUs\n",
			       m->name);
		if (res->skipped == PP_UNAVAILABLE)
			printf("%-19s %s\n", m->name, res->why);
		if (res->skipped)
			continue;
		if (rb > 0)
			snprintf(b1, sizeof(b1), "%.2f", rb);
		if (rq > 0)
			snprintf(b2, sizeof(b2), "%.2f", rq);
		if (m->goal > 0 && rb > 0)
			snprintf(goal, sizeof(goal), "<= %.2f %s", m->goal,
				 rb <= m->goal ? "ok" : "MISSED");
		printf("%-19s %8" PRIu64 " %8.0f %8" PRIu64 " %8" PRIu64 " %8"
		       PRIu64 " %9" PRIu64 " %7s %-10s %6s %-16s %s\n", m->name,
		       hist_pct(h, 50), pp_mean(h), hist_pct(h, 90),
		       hist_pct(h, 99), hist_pct(h, 99.9), h->max, b1,
		       pp_mechs[m->base].name, b2, pp_mechs[m->shmq].name,
		       goal);
	}
	printf("(each sample includes one clock read; x base, x shmq = median "
	       "/ that case's median)\n");
	if (r->o->verbose) {
		printf("per-round medians (ns):\n");
		for (c = 0; c < C_NR; c++) {
			unsigned i;

			if (r->res[c].skipped)
				continue;
			printf("  %-19s", pp_mechs[c].name);
			for (i = 0; i < r->rounds; i++)
				printf(" %7.0f", r->res[c].round_med[i]);
			printf("\n");
		}
	}
	for (c = 0; c < C_NR; c++) {
		const struct pp_mech *m = &pp_mechs[c];
		const struct hist *h = r->res[c].h;
		double rb = pp_ratio(r, c, m->base);
		double rq = pp_ratio(r, c, m->shmq);

		if (r->res[c].skipped) {
			if (csv && r->res[c].skipped != PP_UNSELECTED)
				fprintf(csv, "%zu,%s,,,,,,,,,,,,\"%s\"\n",
					r->env.size, m->name,
					r->res[c].skipped == PP_NEEDS_2CPU ?
					"needs two CPUs" : r->res[c].why);
			continue;
		}
		printf("SUMMARY pingpong %s cpus=%s size=%zu median_ns=%" PRIu64
		       " p99_ns=%" PRIu64, m->name, cpus, r->env.size,
		       hist_pct(h, 50), hist_pct(h, 99));
		if (rb > 0) {
			printf(" ratio=%.3f vs=%s", rb, pp_mechs[m->base].name);
			if (m->goal > 0)
				printf(" goal=%.2f met=%s", m->goal,
				       rb <= m->goal ? "yes" : "no");
		} else {
			printf(" ratio=n/a vs=-");
		}
		printf(" p999_ns=%" PRIu64 " max_ns=%" PRIu64 " mean_ns=%.1f",
		       hist_pct(h, 99.9), h->max, pp_mean(h));
		if (rq > 0)
			printf(" ratio_shmq=%.3f vs_shmq=%s", rq,
			       pp_mechs[m->shmq].name);
		printf("\n");
		if (csv)
			fprintf(csv, "%zu,%s,%" PRIu64 ",%" PRIu64 ",%.1f,%"
				PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
				",%s,%.4f,%s,%.4f,\n", r->env.size, m->name,
				h->count, hist_pct(h, 50), pp_mean(h),
				hist_pct(h, 90), hist_pct(h, 99),
				hist_pct(h, 99.9), h->max,
				pp_mechs[m->base].name, rb,
				pp_mechs[m->shmq].name, rq);
	}
}

/*
 * The issue's two latency goals, at this size: shmq-poll within 1.10x of
 * raw-spin; shmq-block >= 10x lower than pipes, Unix sockets and POSIX mq,
 * and lower than ZeroMQ and iceoryx.
 */
/*
 * The exchange goals: a round trip whose outbound message is published
 * through a direct exchange (one binding) within 1.10x of the same round
 * trip with shmq_send(); through a topic exchange of 10,000 bindings,
 * 1.15x.  Polling and blocking flavours, each against its shmq twin.
 */
static void pp_xgoal(struct pp_run *r, const char *what, int poll, int block)
{
	double goal = pp_mechs[poll].goal, qp = pp_ratio(r, poll, C_POLL);
	double qb = pp_ratio(r, block, C_BLOCK);

	if (qp <= 0 && qb <= 0)
		return;
	printf("GOAL %s %s: %s", what, (qp <= 0 || qp <= goal) &&
	       (qb <= 0 || qb <= goal) ? "PASS" : "SHORT", pp_mechs[poll].name);
	if (qp > 0)
		printf(" median %.0f ns = %.2fx shmq-poll %.0f ns",
		       pp_med(r, poll), qp, pp_med(r, C_POLL));
	else
		printf(" n/a");
	printf("; %s", pp_mechs[block].name);
	if (qb > 0)
		printf(" median %.0f ns = %.2fx shmq-block %.0f ns",
		       pp_med(r, block), qb, pp_med(r, C_BLOCK));
	else
		printf(" n/a");
	printf(" (goal <= %.2fx; %zu B)\n", goal, r->env.size);
}

static void pp_goals(struct pp_run *r)
{
	static const int tenx[] = { C_PIPE, C_USTREAM, C_USEQ, C_MQ };
	static const int lower[] = { C_ZMQ, C_IOX };
	double blk = pp_med(r, C_BLOCK), worst = 0;
	int ok = 1, c;
	unsigned i;
	char detail[512] = "";
	size_t len = 0;

	pp_xgoal(r, "exchange-direct", C_XDPOLL, C_XDBLOCK);
	pp_xgoal(r, "exchange-topic10k", C_XTPOLL, C_XTBLOCK);

	if (pp_med(r, C_POLL) > 0 && pp_med(r, C_SPIN) > 0) {
		double q = pp_ratio(r, C_POLL, C_SPIN);

		printf("GOAL latency-poll %s: shmq-poll median %.0f ns = %.2fx "
		       "raw-spin %.0f ns (goal <= 1.10x; %zu B)\n",
		       q <= 1.10 ? "PASS" : "SHORT", pp_med(r, C_POLL), q,
		       pp_med(r, C_SPIN), r->env.size);
	} else {
		printf("GOAL latency-poll NOT-MEASURED: needs shmq-poll and "
		       "raw-spin on two CPUs\n");
	}
	if (blk <= 0) {
		printf("GOAL latency-block NOT-MEASURED: shmq-block did not "
		       "run\n");
		return;
	}
	worst = 1e300;
	for (i = 0; i < BENCH_ARRAY_SIZE(tenx); i++) {
		c = tenx[i];
		if (pp_med(r, c) <= 0) {
			len += (size_t)snprintf(detail + len,
				sizeof(detail) - len, " %s n/a;",
				pp_mechs[c].name);
			continue;
		}
		if (pp_med(r, c) / blk < worst)
			worst = pp_med(r, c) / blk;
		if (pp_med(r, c) < 10 * blk)
			ok = 0;
		len += (size_t)snprintf(detail + len, sizeof(detail) - len,
					" %s %.1fx;", pp_mechs[c].name,
					pp_med(r, c) / blk);
	}
	for (i = 0; i < BENCH_ARRAY_SIZE(lower); i++) {
		c = lower[i];
		if (pp_med(r, c) <= 0) {
			len += (size_t)snprintf(detail + len,
				sizeof(detail) - len, " %s n/a;",
				pp_mechs[c].name);
			continue;
		}
		if (pp_med(r, c) <= blk)
			ok = 0;
		len += (size_t)snprintf(detail + len, sizeof(detail) - len,
					" %s %.1fx;", pp_mechs[c].name,
					pp_med(r, c) / blk);
	}
	printf("GOAL latency-block %s: shmq-block median %.0f ns; others / "
	       "shmq-block:%s (goal >= 10x pipe/unix/mq, > 1x zeromq/"
	       "iceoryx; %zu B)\n", ok ? "PASS" : "SHORT", blk, detail,
	       r->env.size);
}

/* Runs every selected case at r->env.size. */
static void pp_size(struct pp_run *r, const char *cpus, FILE *csv,
		    int want_goals)
{
	unsigned round, k;
	int c, ncpu2 = r->cpu_a >= 0;

	for (c = 0; c < C_NR; c++) {
		struct pp_result *res = &r->res[c];

		hist_reset(res->h);
		memset(res->round_med, 0, r->rounds * sizeof(double));
		if (res->skipped == PP_UNSELECTED)
			continue;
		res->skipped = PP_RUN;
		res->why = pp_mechs[c].unavailable ?
			   pp_mechs[c].unavailable(r->env.size) : NULL;
		if (res->why)
			res->skipped = PP_UNAVAILABLE;
		else if (!ncpu2 && pp_mechs[c].polls)
			res->skipped = PP_NEEDS_2CPU;
	}
	for (round = 0; round < r->rounds; round++) {
		/* Rotate the order so no case always follows the same one. */
		for (k = 0; k < C_NR; k++) {
			c = (int)((k + round) % C_NR);
			if (!r->res[c].skipped)
				pp_round(r, c, round);
		}
	}
	bench_sig.what = NULL;
	bench_progress_done();
	pp_report(r, cpus, csv);
	if (want_goals)
		pp_goals(r);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct pp_run r;
	char seg_name[32], cpus[32], log[PATH_MAX];
	uint64_t clock_step, total;
	const size_t *sizes;
	double clock_cost;
	unsigned nsizes, i, k, nsel = 0;
	size_t maxsize, seg_size;
	pid_t roudi = 0;
	int c, ncpu, goal_i;
	FILE *csv;

	bench_parse_opts(argc, argv, &o, pp_help);
	memset(&r, 0, sizeof(r));
	r.o = &o;
	bench_sizes(&o, &sizes, &nsizes, &maxsize, &goal_i);
	r.rounds = o.rounds ? o.rounds : o.smoke ? 1 : o.quick ? 2 : 5;

	ncpu = bench_pick_cpus(&o, &r.cpu_a, &r.cpu_b);
	if (ncpu < 0) {
		fprintf(stderr, "bench_pingpong: --cpus: not two distinct "
			"CPUs of our affinity mask\n");
		return 2;
	}
	bench_cpus_str(cpus, sizeof(cpus), r.cpu_a, r.cpu_b);

	r.env.seg_name = seg_name;
	r.env.spin_ns = o.spin_ns;
	seg_size = PP_SEG_MIN + 4 * (size_t)PP_QCAP * (maxsize + 128) * 2;
	if (bench_seg_begin("bench_pingpong", seg_name, sizeof(seg_name),
			    seg_size, &r.env.seg))
		return 1;

	r.shared_h = bench_shared_alloc(sizeof(struct hist));
	if (!r.shared_h) {
		fprintf(stderr, "bench_pingpong: out of memory\n");
		pp_die(&r);
	}
	for (c = 0; c < C_NR; c++) {
		r.res[c].h = hist_new();
		r.res[c].round_med = calloc(r.rounds, sizeof(double));
		if (!r.res[c].h || !r.res[c].round_med) {
			fprintf(stderr, "bench_pingpong: out of memory\n");
			pp_die(&r);
		}
		if (!bench_selected(&o, pp_mechs[c].name))
			r.res[c].skipped = PP_UNSELECTED;
	}
	/* A case selected brings its baselines (and theirs) along. */
	for (k = 0; k < 2; k++)
		for (c = 0; c < C_NR; c++)
			if (!r.res[c].skipped) {
				r.res[pp_mechs[c].base].skipped = PP_RUN;
				r.res[pp_mechs[c].shmq].skipped = PP_RUN;
			}
	for (c = 0; c < C_NR; c++)
		nsel += !r.res[c].skipped;

	if (BENCH_HAVE_ICEORYX && !r.res[C_IOX].skipped)
		roudi = bench_roudi_begin(&o, "iox-roudi.log", log,
					  sizeof(log));
	if (BENCH_HAVE_RABBITMQ && !r.res[C_RMQ].skipped)
		bench_broker_begin(&o, &bench_rmq_broker, "rabbitmq.log", 1);
	if (BENCH_HAVE_NATS && !r.res[C_NATS].skipped)
		bench_broker_begin(&o, &bench_nats_broker, "nats-server.log", 0);

	printf("bench_pingpong: round trip of one message between two "
	       "processes (scratch names: bench.%d)\n", (int)getpid());
	if (ncpu < 2)
		printf("only one CPU available: running unpinned; the "
		       "busy-polling cases are skipped\n");
	else
		printf("ping on CPU %d, pong on CPU %d\n", r.cpu_a, r.cpu_b);
	bench_clock_info(&clock_step, &clock_cost);
	printf("%u interleaved rounds per case; shmq-block spin: %s; clock: "
	       "CLOCK_MONOTONIC, step %" PRIu64 " ns, %.1f ns per read\n",
	       r.rounds, o.spin_ns < 0 ? "library default" : "--spin",
	       clock_step, clock_cost);
	if (o.spin_ns >= 0)
		printf("--spin %" PRId64 " ns applies to shmq-block and "
		       "shmq-spsc-block only\n", o.spin_ns);
	for (c = 0; c < C_NR; c++)
		if (r.res[c].skipped != PP_UNSELECTED)
			printf("  %-19s %s\n", pp_mechs[c].name,
			       pp_mechs[c].desc);
	if (roudi > 0)
		printf("iox-roudi started for this run (pid %d, log %s)\n",
		       (int)roudi, log);
	bench_broker_say(&bench_rmq_broker);
	bench_broker_say(&bench_nats_broker);
	fflush(stdout);

	csv = bench_csv_open(&o, "latency",
			     "size,case,samples,median_ns,mean_ns,p90_ns,"
			     "p99_ns,p999_ns,max_ns,base,ratio_base,shmq_case,"
			     "ratio_shmq,note");
	for (i = 0; i < nsizes; i++)
		r.total += r.rounds * nsel;
	for (i = 0; i < nsizes; i++) {
		r.env.size = sizes[i];
		total = o.iters ? o.iters : o.smoke ? 200 :
			o.quick ? 6000 : sizes[i] > 4096 ? 20000 : 100000;
		r.iters = total / r.rounds;
		if (!r.iters)
			r.iters = 1;
		r.warm = o.smoke ? 20 : r.iters / 10 > 500 ? r.iters / 10 : 500;
		pp_size(&r, cpus, csv, (int)i == goal_i);
	}
	if (csv)
		fclose(csv);

	bench_roudi_end(&o, roudi, log);
	bench_broker_end(&o, &bench_nats_broker);
	bench_broker_end(&o, &bench_rmq_broker);
	bench_seg_end("bench_pingpong", seg_name, r.env.seg);
	for (c = 0; c < C_NR; c++) {
		free(r.res[c].h);
		free(r.res[c].round_med);
	}
	bench_shared_free(r.shared_h, sizeof(struct hist));
	return 0;
}
