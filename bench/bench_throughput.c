// SPDX-License-Identifier: MIT
/*
 * bench_throughput - messages per second from P producer processes to C
 * consumer processes.
 *
 * Producers send numbered messages for a fixed time (--duration); then the
 * last producer to finish sends one end marker per consumer.  Every
 * message carries its producer and sequence number at both ends; each
 * consumer checks every message it gets: the length, no torn copy, and
 * each producer's numbers strictly rising (exactly +1 with one consumer).
 * The parent then checks that the consumers together got exactly what the
 * producers sent (count and sum of numbers per producer).  A failed check
 * ends the program with a non-zero status.  Cases:
 *
 *   spsc            the baseline: a Lamport single-producer single-consumer
 *                   ring in MAP_SHARED memory, busy-polling, no syscalls
 *   shmq            shmq_send/shmq_recv, SHMQ_FOREVER, default spin budget
 *   shmq-batchN     shmq_send_batch/shmq_recv_batch of N (--batches)
 *   shmq-zc         shmq_reserve/commit, shmq_acquire/release
 *   pipe            one pipe, one write and one read per message
 *   unix-stream     an AF_UNIX SOCK_STREAM socketpair
 *   unix-seqpacket  an AF_UNIX SOCK_SEQPACKET socketpair
 *   eventfd         a ring in shared memory; an eventfd doorbell per
 *                   message, a second eventfd returns credits
 *   posix-mq        one POSIX message queue of 10 messages
 *   zeromq          ZMQ_PAIR over ipc:// (libzmq)
 *   iceoryx         iceoryx publisher/subscriber, the producer blocks when
 *                   the subscriber's queue is full, the consumer sleeps in
 *                   a WaitSet
 *   rabbitmq        RabbitMQ on 127.0.0.1: a topic exchange, a no-ack
 *                   consumer; credits bound what is in flight (below)
 *   nats            NATS core pub/sub on 127.0.0.1, the client's buffered
 *                   publish, a synchronous subscription; credits
 *
 * Only the shmq cases run with more than one producer or consumer (--pc);
 * the others are single-producer single-consumer by nature.
 *
 * Each case runs several times, interleaved with the order rotated; the
 * figure is the median.  A mechanism is a struct tp_mech of function
 * pointers; adding one is one struct and one table entry.  The plumbing
 * of the mechanisms that bench_pingpong also compares (names, channels,
 * sockets, queues) is in mech.h; this file keeps the stream and its checks.
 */
#include "mech.h"

#define TP_SEG_MIN ((size_t)16 << 20)
#define TP_RING_MAX ((size_t)4 << 20)	/* most bytes of slots per ring */
#define TP_CAPACITY 1024
#define TP_MAX_BATCH 256
#define TP_MAX_PROCS 64
/* A message is stamped (producer << 48) | sequence; this one ends a run. */
#define TP_PILL UINT64_MAX
#define TP_SEQ_BITS 48

enum { TP_PRODUCER = 0, TP_CONSUMER = 1 };

struct tp_env {
	const char *seg_name;
	shmq_seg *seg;		/* parent's; children open their own */
	size_t size;		/* message bytes */
	unsigned capacity;	/* ring slots */
	unsigned batch;		/* the case's batch size */
	int64_t spin_ns;	/* --spin, or BENCH_NO_SPIN */
	int yield;		/* oversubscribed: polling loops yield */
	unsigned serial;	/* makes names unique per setup */
};

/* What a consumer checks and counts. */
struct tp_cons {
	const char *what;
	size_t size;
	unsigned nprod;
	int exact;		/* one consumer: each producer's +1 */
	int stop;		/* an end marker came */
	unsigned extra_pills;	/* markers meant for other consumers */
	uint64_t got;
	uint64_t last[TP_MAX_PROCS];	/* next expected sequence */
	uint64_t count[TP_MAX_PROCS];
	uint64_t sum[TP_MAX_PROCS];
};

struct tp_mech {
	const char *name;
	const char *desc;
	int mpmc;		/* may run with P, C > 1 */
	int batched;		/* expands to one case per --batches entry */
	int polls;		/* busy-polls: one CPU each */
	uint32_t qflags;	/* shmq: shmq_attr.flags of its queue */
	/* NULL: runs; else why it cannot (not built, limits) */
	const char *(*unavailable)(size_t size);
	size_t state_size;
	/* Parent, before fork(). */
	int (*setup)(struct tp_env *env, const struct tp_mech *m, void *st);
	/* Each child after fork(), side TP_PRODUCER or TP_CONSUMER. */
	int (*attach)(struct tp_env *env, void *st, int side);
	/* Sends messages stamped @stamp .. @stamp + @n - 1; returns how
	 * many went (>= 1) or -errno. */
	int (*send)(void *st, uint64_t stamp, unsigned n);
	/* Receives up to @n messages, passing each to tp_consume(); returns
	 * how many (>= 1) or -errno / BENCH_EBADMSG. */
	int (*recv)(void *st, unsigned n, struct tp_cons *c);
	/* In the child after its last message, before detach: the end of
	 * the run's handshake, if the mechanism needs one (NULL: none). */
	int (*finish)(void *st, int side);
	void (*detach)(void *st, int side);
	/* Parent, after all children are gone. */
	void (*teardown)(void *st);
};

/* Checks one received message; BENCH_EBADMSG when it is wrong. */
static int tp_consume(struct tp_cons *c, const void *msg, size_t len)
{
	uint64_t stamp, seq;
	unsigned p;

	if (len != c->size) {
		fprintf(stderr, "%s: message of %zu bytes, sent %zu\n",
			c->what, len, c->size);
		return BENCH_EBADMSG;
	}
	memcpy(&stamp, msg, sizeof(stamp));
	if (bench_msg_check(msg, len, stamp, NULL)) {
		fprintf(stderr, "%s: torn message (ends differ)\n", c->what);
		return BENCH_EBADMSG;
	}
	if (stamp == TP_PILL) {
		if (c->stop)
			c->extra_pills++;
		c->stop = 1;
		return 0;
	}
	p = (unsigned)(stamp >> TP_SEQ_BITS);
	seq = stamp & (((uint64_t)1 << TP_SEQ_BITS) - 1);
	if (c->stop || p >= c->nprod || seq < c->last[p] ||
	    (c->exact && seq != c->last[p])) {
		fprintf(stderr, "%s: sequence check failed: producer %u "
			"message %" PRIu64 ", expected %s%" PRIu64 "%s\n",
			c->what, p, seq, c->exact ? "" : ">= ", c->last[p],
			c->stop ? " (after the end marker)" : "");
		return BENCH_EBADMSG;
	}
	c->last[p] = seq + 1;
	c->count[p]++;
	c->sum[p] += seq;
	c->got++;
	return 0;
}

static inline void tp_spin(int yield)
{
	if (yield)
		sched_yield();
	else
		bench_relax();
}

/* ---- spsc: the baseline ring --------------------------------------------- */

struct tp_spsc_shared {
	/* next position to fill; written by the producer only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t head;
	/* next position to drain; written by the consumer only */
	_Alignas(BENCH_ALIGN) _Atomic uint64_t tail;
	_Alignas(BENCH_ALIGN) unsigned char slots[];
};

struct tp_spsc {
	struct bench_msg m;	/* size, buf */
	struct bench_shm shm;	/* sh */
	struct tp_spsc_shared *sh;
	size_t slot_size;
	uint64_t capacity;	/* a power of two: positions are masked */
	uint64_t pos;		/* our index: head (producer) or tail */
	uint64_t cached;	/* the other side's index, as last read */
	int yield;
};

static int tp_spsc_setup(struct tp_env *env,
			 const struct tp_mech *m BENCH_UNUSED, void *p)
{
	struct tp_spsc *s = p;
	int rc;

	s->m.size = env->size;
	s->slot_size = bench_stride(env->size);
	s->capacity = env->capacity;
	s->yield = env->yield;
	rc = bench_shm_setup(&s->shm, sizeof(*s->sh) +
			     s->capacity * s->slot_size, 0);
	s->sh = s->shm.map;
	return rc;
}

static int tp_spsc_attach(struct tp_env *env BENCH_UNUSED, void *p,
			  int side BENCH_UNUSED)
{
	struct tp_spsc *s = p;

	return bench_msg_attach(&s->m);
}

static int tp_spsc_send(void *p, uint64_t stamp, unsigned n BENCH_UNUSED)
{
	struct tp_spsc *s = p;

	/*
	 * Full when pos - tail == capacity (free-running counters: the
	 * difference is right across wrap-around).  Read tail only then.
	 */
	if (s->pos - s->cached == s->capacity) {
		/* acquire: pairs with the consumer's release of tail; its
		 * copy out of the slot is done before we overwrite it. */
		while ((s->cached = atomic_load_explicit(&s->sh->tail,
					memory_order_acquire)) + s->capacity ==
		       s->pos)
			tp_spin(s->yield);
	}
	bench_msg_stamp(s->m.buf, s->m.size, stamp);
	memcpy(s->sh->slots + (s->pos & (s->capacity - 1)) * s->slot_size,
	       s->m.buf, s->m.size);
	/* release: publishes the slot's bytes.  Pairs with recv's acquire. */
	atomic_store_explicit(&s->sh->head, ++s->pos, memory_order_release);
	return 1;
}

static int tp_spsc_recv(void *p, unsigned n BENCH_UNUSED, struct tp_cons *c)
{
	struct tp_spsc *s = p;

	if (s->pos == s->cached) {
		/* acquire: pairs with send's release of head. */
		while ((s->cached = atomic_load_explicit(&s->sh->head,
					memory_order_acquire)) == s->pos)
			tp_spin(s->yield);
	}
	memcpy(s->m.buf,
	       s->sh->slots + (s->pos & (s->capacity - 1)) * s->slot_size,
	       s->m.size);
	/* release: our copy is done; the producer may reuse the slot. */
	atomic_store_explicit(&s->sh->tail, ++s->pos, memory_order_release);
	return tp_consume(c, s->m.buf, s->m.size) ?: 1;
}

static void tp_spsc_teardown(void *p)
{
	struct tp_spsc *s = p;

	bench_shm_teardown(&s->shm);
}

/* ---- shmq: copy, batch, zero-copy ---------------------------------------- */

struct tp_shmq {
	shmq_seg *seg;		/* the parent's, where the queue is */
	char qname[SHMQ_NAME_MAX + 1];
	size_t size, stride;
	int64_t spin_ns;
	shmq_seg *own_seg;	/* the child's own attachment */
	shmq *q;
	char *bufs;		/* TP_MAX_BATCH messages, stride bytes apart */
	struct iovec iov[TP_MAX_BATCH];
};

static int tp_shmq_setup(struct tp_env *env, const struct tp_mech *m, void *p)
{
	struct shmq_attr attr = { .capacity = env->capacity,
				  .msg_size = (uint32_t)env->size,
				  .flags = m->qflags };
	struct tp_shmq *s = p;

	s->seg = env->seg;
	s->size = env->size;
	s->stride = bench_stride(env->size);
	s->spin_ns = env->spin_ns;
	env->serial++;
	bench_shmq_name(s->qname, sizeof(s->qname), "tp", env->serial, NULL);
	return shmq_create(env->seg, s->qname, &attr);
}

static int tp_shmq_attach(struct tp_env *env, void *p, int side BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	int rc;

	/* Children never use the parent's attachment: each opens its own. */
	rc = shmq_seg_open(env->seg_name, &s->own_seg);
	if (!rc)
		rc = bench_shmq_open(s->own_seg, s->qname, s->spin_ns, &s->q);
	if (!rc) {
		s->bufs = bench_buf_alloc(s->size, env->batch);
		if (!s->bufs)
			rc = -ENOMEM;
	}
	return rc;
}

static int tp_shmq_send(void *p, uint64_t stamp, unsigned n BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	int rc;

	bench_msg_stamp(s->bufs, s->size, stamp);
	rc = shmq_send(s->q, s->bufs, s->size, SHMQ_FOREVER);
	return rc ? rc : 1;
}

static int tp_shmq_recv(void *p, unsigned n BENCH_UNUSED, struct tp_cons *c)
{
	struct tp_shmq *s = p;
	ssize_t len;

	len = shmq_recv(s->q, s->bufs, s->size, SHMQ_FOREVER);
	if (len < 0)
		return (int)len;
	return tp_consume(c, s->bufs, (size_t)len) ?: 1;
}

static int tp_batch_send(void *p, uint64_t stamp, unsigned n)
{
	struct tp_shmq *s = p;
	unsigned i;

	for (i = 0; i < n; i++) {
		s->iov[i].iov_base = s->bufs + i * s->stride;
		s->iov[i].iov_len = s->size;
		bench_msg_stamp(s->iov[i].iov_base, s->size, stamp + i);
	}
	return shmq_send_batch(s->q, s->iov, n, SHMQ_FOREVER);
}

static int tp_batch_recv(void *p, unsigned n, struct tp_cons *c)
{
	struct tp_shmq *s = p;
	int i, k, rc;

	for (i = 0; i < (int)n; i++) {
		s->iov[i].iov_base = s->bufs + i * s->stride;
		s->iov[i].iov_len = s->size;
	}
	k = shmq_recv_batch(s->q, s->iov, n, SHMQ_FOREVER);
	if (k < 0)
		return k;
	if (k == 0 || k > (int)n) {
		fprintf(stderr, "%s: shmq_recv_batch(n = %u) returned %d\n",
			c->what, n, k);
		return BENCH_EBADMSG;
	}
	for (i = 0; i < k; i++) {
		rc = tp_consume(c, s->iov[i].iov_base, s->iov[i].iov_len);
		if (rc)
			return rc;
	}
	return k;
}

static int tp_zc_send(void *p, uint64_t stamp, unsigned n BENCH_UNUSED)
{
	struct tp_shmq *s = p;
	struct shmq_msg m;
	int rc;

	rc = shmq_reserve(s->q, s->size, &m, SHMQ_FOREVER);
	if (rc)
		return rc;
	/* The message is built in place: the same bytes as the others. */
	memcpy(m.data, s->bufs, s->size);
	bench_msg_stamp(m.data, s->size, stamp);
	m.len = s->size;
	rc = shmq_commit(s->q, &m);
	return rc ? rc : 1;
}

static int tp_zc_recv(void *p, unsigned n BENCH_UNUSED, struct tp_cons *c)
{
	struct tp_shmq *s = p;
	struct shmq_msg m;
	int rc, rc2;

	rc = shmq_acquire(s->q, &m, SHMQ_FOREVER);
	if (rc)
		return rc;
	/* Checked in place, inside the slot. */
	rc = tp_consume(c, m.data, m.len);
	rc2 = shmq_release(s->q, &m);
	return rc ? rc : rc2 ? rc2 : 1;
}

static void tp_shmq_detach(void *p, int side BENCH_UNUSED)
{
	struct tp_shmq *s = p;

	shmq_close(s->q);
	s->q = NULL;
	shmq_seg_close(s->own_seg);
	s->own_seg = NULL;
	free(s->bufs);
	s->bufs = NULL;
}

static void tp_shmq_teardown(void *p)
{
	struct tp_shmq *s = p;

	shmq_unlink(s->seg, s->qname);
}

/* ---- eventfd + a shared ring --------------------------------------------- */

/*
 * The producer copies into the ring and write()s 1 to the data eventfd per
 * message; the consumer read()s the data eventfd when it has nothing (the
 * count says how many are ready), and after draining them write()s that
 * many credits to the space eventfd, which the producer reads only when it
 * has none left.  eventfd read/write are full barriers, so the ring needs
 * no atomics.
 */
struct tp_efd {
	struct bench_msg m;	/* size, buf */
	struct bench_shm shm;	/* ring; efd[0] data, efd[1] space */
	unsigned char *ring;
	size_t slot_size;
	uint64_t capacity, pos, avail, done;
};

static int tp_efd_setup(struct tp_env *env,
			const struct tp_mech *m BENCH_UNUSED, void *p)
{
	struct tp_efd *s = p;
	int rc;

	s->m.size = env->size;
	s->slot_size = bench_stride(env->size);
	s->capacity = env->capacity;
	rc = bench_shm_setup(&s->shm, s->capacity * s->slot_size, 2);
	s->ring = s->shm.map;
	return rc;
}

static int tp_efd_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	struct tp_efd *s = p;

	s->avail = side == TP_PRODUCER ? s->capacity : 0;
	return bench_msg_attach(&s->m);
}

static int tp_efd_send(void *p, uint64_t stamp, unsigned n BENCH_UNUSED)
{
	struct tp_efd *s = p;
	unsigned char *slot;
	uint64_t credits;
	int rc;

	if (!s->avail) {
		rc = bench_efd_read(s->shm.efd[1], &credits);
		if (rc)
			return rc;
		s->avail = credits;
	}
	slot = s->ring + (s->pos++ & (s->capacity - 1)) * s->slot_size;
	memcpy(slot, s->m.buf, s->m.size);
	bench_msg_stamp(slot, s->m.size, stamp);
	s->avail--;
	return bench_efd_write(s->shm.efd[0], 1) ?: 1;
}

static int tp_efd_recv(void *p, unsigned n BENCH_UNUSED, struct tp_cons *c)
{
	struct tp_efd *s = p;
	unsigned char *slot;
	int rc;

	if (!s->avail) {
		rc = bench_efd_read(s->shm.efd[0], &s->avail);
		if (rc)
			return rc;
	}
	slot = s->ring + (s->pos++ & (s->capacity - 1)) * s->slot_size;
	rc = tp_consume(c, slot, s->m.size);
	if (rc)
		return rc;
	s->done++;
	if (!--s->avail) {
		rc = bench_efd_write(s->shm.efd[1], s->done);
		s->done = 0;
		if (rc)
			return rc;
	}
	return 1;
}

static void tp_efd_teardown(void *p)
{
	struct tp_efd *s = p;

	bench_shm_teardown(&s->shm);
}

/*
 * ---- the message-passing mechanisms --------------------------------------
 *
 * Pipes, Unix sockets, POSIX mq, ZeroMQ and iceoryx are mech.h endpoints:
 * one send serves them all, one receive all but iceoryx's (which checks
 * the message in place, in the shared chunk); the brokers add credits.
 * The producer sends on channel 0, the consumer receives from it.
 */
#define TP_TX(side) ((side) == TP_PRODUCER ? 0 : -1)
#define TP_RX(side) ((side) == TP_PRODUCER ? -1 : 0)

static int tp_xfer_send(void *p, uint64_t stamp, unsigned n BENCH_UNUSED)
{
	struct bench_msg *s = p;

	bench_msg_stamp(s->buf, s->size, stamp);
	return s->xfer->send(p) ?: 1;
}

static int tp_xfer_recv(void *p, unsigned n BENCH_UNUSED, struct tp_cons *c)
{
	struct bench_msg *s = p;
	ssize_t len = s->xfer->recv(p);

	if (len < 0)
		return (int)len;
	return tp_consume(c, s->buf, (size_t)len) ?: 1;
}

/* Socket buffers with room for a few messages, however large. */
static int tp_fd_setup(struct tp_env *env, const struct tp_mech *m, void *p)
{
	int type = !strcmp(m->name, "unix-stream") ? SOCK_STREAM :
		   !strcmp(m->name, "unix-seqpacket") ? SOCK_SEQPACKET : 0;

	return bench_fd_ep_setup(p, env->size, 1, type,
				 (int)(4 * env->size + 65536));
}

static int tp_fd_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_fd_ep_attach(p, TP_TX(side), TP_RX(side));
}

#define TP_MQ_MAXMSG 10		/* fs.mqueue.msg_max's default */

static const char *tp_mq_unavailable(size_t size)
{
	return bench_mq_unavailable(size, TP_MQ_MAXMSG,
				    (rlim_t)(TP_MQ_MAXMSG + 2) * (size + 4096));
}

static int tp_mq_setup(struct tp_env *env,
		       const struct tp_mech *m BENCH_UNUSED, void *p)
{
	return bench_mq_ep_setup(p, env->size, 1, TP_MQ_MAXMSG,
				 ++env->serial);
}

static int tp_mq_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_mq_ep_attach(p, TP_TX(side), TP_RX(side));
}

#if BENCH_HAVE_ZMQ
static int tp_zmq_setup(struct tp_env *env,
			const struct tp_mech *m BENCH_UNUSED, void *p)
{
	bench_zmq_setup(p, env->size, ++env->serial);
	return 0;
}

/* The consumer binds, the producer connects. */
static int tp_zmq_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_zmq_attach(p, side == TP_CONSUMER);
}

/*
 * The producer closes only once the consumer has its end marker: libzmq
 * drops what a lagging receiver has not read when its sender hangs up
 * (mech.h, bench_zmq_ack()); without this the marker was lost at 8 B.
 */
static int tp_zmq_finish(void *p, int side)
{
	return side == TP_CONSUMER ? bench_zmq_ack(p) : bench_zmq_await_ack(p);
}
#define TP_ZMQ_OPS							\
	.state_size = sizeof(struct bench_zmq), .setup = tp_zmq_setup,	\
	.attach = tp_zmq_attach, .send = tp_xfer_send,			\
	.recv = tp_xfer_recv, .finish = tp_zmq_finish,			\
	.detach = bench_zmq_detach, .teardown = bench_zmq_teardown
#else
#define TP_ZMQ_OPS .state_size = 0
#endif

#if BENCH_HAVE_ICEORYX
/* Below roudi's default pool of 200 chunks of 128 KiB. */
#define TP_IOX_QUEUE 64

static int tp_iox_setup(struct tp_env *env,
			const struct tp_mech *m BENCH_UNUSED, void *p)
{
	bench_iox_setup(p, env->size, ++env->serial);
	return 0;
}

/* The producer publishes, the consumer subscribes. */
static int tp_iox_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	return bench_iox_attach(p, side == TP_PRODUCER ? "tp" : NULL,
				side == TP_CONSUMER ? "tp" : NULL,
				TP_IOX_QUEUE);
}

static int tp_iox_recv(void *p, unsigned n BENCH_UNUSED, struct tp_cons *c)
{
	struct bench_iox *s = p;
	const void *chunk;
	int rc = bench_iox_take(s, &chunk);

	if (rc)
		return rc;
	/* Checked in place, in the shared chunk. */
	rc = tp_consume(c, chunk, s->m.size);
	iox_sub_release_chunk(s->sub, chunk);
	return rc ?: 1;
}
#define TP_IOX_OPS							\
	.state_size = sizeof(struct bench_iox), .setup = tp_iox_setup,	\
	.attach = tp_iox_attach, .send = tp_xfer_send,			\
	.recv = tp_iox_recv, .detach = bench_iox_detach,		\
	.teardown = bench_nop_teardown
#else
#define TP_IOX_OPS .state_size = 0
#endif

/*
 * ---- the brokers: RabbitMQ and NATS, with credits ------------------------
 *
 * Neither broker holds back a producer that runs ahead of its consumer:
 * core NATS drops a slow consumer's messages (the client's pending limit,
 * the server's per-connection buffer), and a RabbitMQ queue grows in the
 * broker's memory.  So the stream gets what the rings have, a bound: the
 * consumer returns a credit on a second channel (the count of messages
 * it has taken, one 8-byte message every window / 4), and the producer
 * keeps at most a window unacknowledged, the rings' capacity (1024
 * messages, fewer above 4 KiB).  The credits travel through the broker
 * too.  The producer reads them only when its window is full, and since
 * each is cumulative at most about five wait unread.
 */
#if BENCH_HAVE_RABBITMQ || BENCH_HAVE_NATS
struct tp_broker {
	union {			/* first: the endpoint ops take the state */
		struct bench_msg m;
#if BENCH_HAVE_RABBITMQ
		struct bench_rmq rmq;
#endif
#if BENCH_HAVE_NATS
		struct bench_nats nats;
#endif
	} ep;
	uint64_t sent, acked;	/* producer: messages sent, credited */
	uint64_t got, returned;	/* consumer: messages taken, credited */
	unsigned window;
};

/* The broker endpoints' channels: 0 the messages, 1 the credits. */
static const char *const tp_dirs[2] = { "data", "credit" };
#define TP_BTX(side) ((side) == TP_PRODUCER ? 0 : 1)
#define TP_BRX(side) ((side) == TP_PRODUCER ? 1 : 0)

static int tp_broker_send(void *p, uint64_t stamp, unsigned n)
{
	struct tp_broker *b = p;
	uint64_t credit;
	ssize_t len;

	while (b->sent - b->acked >= b->window) {
		len = b->ep.m.xfer->recv_buf(p, &credit, sizeof(credit));
		if (len < 0)
			return (int)len;
		if (len != sizeof(credit) || credit > b->sent) {
			fprintf(stderr, "bad credit: %zd bytes, %" PRIu64
				" of %" PRIu64 " sent\n", len, credit,
				b->sent);
			return BENCH_EBADMSG;
		}
		if (credit > b->acked)
			b->acked = credit;
	}
	b->sent++;
	return tp_xfer_send(p, stamp, n);
}

static int tp_broker_recv(void *p, unsigned n, struct tp_cons *c)
{
	struct tp_broker *b = p;
	int rc = tp_xfer_recv(p, n, c);

	if (rc <= 0)
		return rc;
	b->got++;
	/* Not after the end marker: the producer may be gone. */
	if (!c->stop && b->got - b->returned >= (b->window + 3) / 4) {
		b->returned = b->got;
		rc = b->ep.m.xfer->send_buf(p, &b->got, sizeof(b->got));
		if (rc)
			return rc;
	}
	return 1;
}
#endif

#if BENCH_HAVE_RABBITMQ
static int tp_rmq_setup(struct tp_env *env,
			const struct tp_mech *m BENCH_UNUSED, void *p)
{
	struct tp_broker *b = p;

	b->window = env->capacity;
	return bench_rmq_setup(&b->ep.rmq, env->size, ++env->serial, 2,
			       tp_dirs);
}

static int tp_rmq_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	struct tp_broker *b = p;

	return bench_rmq_attach(&b->ep.rmq, TP_BTX(side), TP_BRX(side));
}
#define TP_RMQ_OPS							\
	.state_size = sizeof(struct tp_broker), .setup = tp_rmq_setup,	\
	.attach = tp_rmq_attach, .send = tp_broker_send,		\
	.recv = tp_broker_recv, .detach = bench_rmq_detach,		\
	.teardown = bench_nop_teardown
#else
#define TP_RMQ_OPS .state_size = 0
#endif

#if BENCH_HAVE_NATS
static int tp_nats_setup(struct tp_env *env,
			 const struct tp_mech *m BENCH_UNUSED, void *p)
{
	struct tp_broker *b = p;

	b->window = env->capacity;
	return bench_nats_setup(&b->ep.nats, env->size, ++env->serial, 2,
				tp_dirs);
}

/*
 * The producer's publishes are buffered, the client's way to stream (its
 * flusher thread writes them); the consumer's credits go out at once.
 */
static int tp_nats_attach(struct tp_env *env BENCH_UNUSED, void *p, int side)
{
	struct tp_broker *b = p;

	return bench_nats_attach(&b->ep.nats, TP_BTX(side), TP_BRX(side),
				 side == TP_CONSUMER);
}
#define TP_NATS_OPS							\
	.state_size = sizeof(struct tp_broker), .setup = tp_nats_setup,	\
	.attach = tp_nats_attach, .send = tp_broker_send,		\
	.recv = tp_broker_recv, .detach = bench_nats_detach,		\
	.teardown = bench_nats_teardown
#else
#define TP_NATS_OPS .state_size = 0
#endif

/* ---- the mechanisms ------------------------------------------------------ */

enum {
	M_SPSC, M_SHMQ, M_BATCH, M_ZC, M_SSPSC, M_SSPSC_BATCH, M_SSPSC_ZC,
	M_PIPE, M_USTREAM, M_USEQ, M_EFD,
	M_MQ, M_ZMQ, M_IOX, M_RMQ, M_NATS, M_NR
};

#define TP_SHMQ1_OPS							\
	.state_size = sizeof(struct tp_shmq), .setup = tp_shmq_setup,	\
	.attach = tp_shmq_attach, .detach = tp_shmq_detach,		\
	.teardown = tp_shmq_teardown
#define TP_SHMQ_OPS TP_SHMQ1_OPS, .mpmc = 1
#define TP_SSPSC_OPS TP_SHMQ1_OPS, .qflags = SHMQ_SPSC
#define TP_FD_OPS							\
	.state_size = sizeof(struct bench_fd_ep), .setup = tp_fd_setup,	\
	.attach = tp_fd_attach, .send = tp_xfer_send,			\
	.recv = tp_xfer_recv, .detach = bench_msg_detach,		\
	.teardown = bench_fd_ep_teardown

static const struct tp_mech tp_mechs[M_NR] = {
	[M_SPSC] = { .name = "spsc", .polls = 1,
		     .desc = "baseline: Lamport SPSC ring, busy-polling",
		     .state_size = sizeof(struct tp_spsc),
		     .setup = tp_spsc_setup, .attach = tp_spsc_attach,
		     .send = tp_spsc_send, .recv = tp_spsc_recv,
		     .detach = bench_msg_detach, .teardown = tp_spsc_teardown },
	[M_SHMQ] = { .name = "shmq",
		     .desc = "shmq_send/shmq_recv, SHMQ_FOREVER",
		     .send = tp_shmq_send, .recv = tp_shmq_recv,
		     TP_SHMQ_OPS },
	[M_BATCH] = { .name = "shmq-batch", .batched = 1,
		      .desc = "shmq_send_batch/shmq_recv_batch of N",
		      .send = tp_batch_send, .recv = tp_batch_recv,
		      TP_SHMQ_OPS },
	[M_ZC] = { .name = "shmq-zc",
		   .desc = "shmq_reserve/commit, shmq_acquire/release",
		   .send = tp_zc_send, .recv = tp_zc_recv, TP_SHMQ_OPS },
	[M_SSPSC] = { .name = "shmq-spsc",
		      .desc = "the same calls on a SHMQ_SPSC queue",
		      .send = tp_shmq_send, .recv = tp_shmq_recv,
		      TP_SSPSC_OPS },
	[M_SSPSC_BATCH] = { .name = "shmq-spsc-batch", .batched = 1,
			    .desc = "batches of N on a SHMQ_SPSC queue",
			    .send = tp_batch_send, .recv = tp_batch_recv,
			    TP_SSPSC_OPS },
	[M_SSPSC_ZC] = { .name = "shmq-spsc-zc",
			 .desc = "zero-copy on a SHMQ_SPSC queue",
			 .send = tp_zc_send, .recv = tp_zc_recv,
			 TP_SSPSC_OPS },
	[M_PIPE] = { .name = "pipe", .desc = "one pipe, write/read per message",
		     TP_FD_OPS },
	[M_USTREAM] = { .name = "unix-stream",
			.desc = "AF_UNIX SOCK_STREAM socketpair", TP_FD_OPS },
	[M_USEQ] = { .name = "unix-seqpacket",
		     .desc = "AF_UNIX SOCK_SEQPACKET socketpair", TP_FD_OPS },
	[M_EFD] = { .name = "eventfd",
		    .desc = "shared ring + eventfd per message, credits back",
		    .state_size = sizeof(struct tp_efd),
		    .setup = tp_efd_setup, .attach = tp_efd_attach,
		    .send = tp_efd_send, .recv = tp_efd_recv,
		    .detach = bench_msg_detach, .teardown = tp_efd_teardown },
	[M_MQ] = { .name = "posix-mq",
		   .desc = "POSIX message queue of 10, mq_send/mq_receive",
		   .unavailable = tp_mq_unavailable,
		   .state_size = sizeof(struct bench_mq_ep),
		   .setup = tp_mq_setup, .attach = tp_mq_attach,
		   .send = tp_xfer_send, .recv = tp_xfer_recv,
		   .detach = bench_msg_detach,
		   .teardown = bench_mq_ep_teardown },
	[M_ZMQ] = { .name = "zeromq", .desc = "libzmq ZMQ_PAIR over ipc://",
		    .unavailable = bench_zmq_unavailable, TP_ZMQ_OPS },
	[M_IOX] = { .name = "iceoryx",
		    .desc = "iceoryx pub/sub, blocking producer, WaitSet",
		    .unavailable = bench_iox_unavailable, TP_IOX_OPS },
	[M_RMQ] = { .name = "rabbitmq",
		    .desc = "RabbitMQ on localhost: topic exchange, no-ack "
			    "consumer, credits",
		    .unavailable = bench_rmq_unavailable, TP_RMQ_OPS },
	[M_NATS] = { .name = "nats",
		     .desc = "NATS core pub/sub on localhost, credits",
		     .unavailable = bench_nats_unavailable, TP_NATS_OPS },
};

/* ---- the driver ---------------------------------------------------------- */

/* Start line, clock and tallies shared by the parent and the children. */
struct tp_ctl {
	/* children attached and waiting; futex word */
	_Alignas(BENCH_ALIGN) _Atomic uint32_t ready;
	/* 1: start; futex word */
	_Alignas(BENCH_ALIGN) _Atomic uint32_t go;
	/* producers finished; the last one sends the end markers */
	_Alignas(BENCH_ALIGN) _Atomic uint32_t prod_done;
	_Alignas(BENCH_ALIGN) uint64_t t_start;	/* written by the parent */
	uint64_t t_end[TP_MAX_PROCS];	/* each consumer's end marker */
	uint64_t sent[TP_MAX_PROCS];	/* each producer's count */
	struct tp_cons cons[TP_MAX_PROCS];
};

/* One row: a mechanism, a batch size, P x C, at one size. */
struct tp_case {
	int mech;
	unsigned batch, np, nc;
	char name[32];
	const char *why;	/* unavailable: the reason */
	double *rate;		/* messages/s per round */
	double med;
};

struct tp_run {
	struct tp_env env;
	const struct bench_opts *o;
	struct tp_ctl *ctl;
	int cpus[CPU_SETSIZE];
	int ncpu;
	uint64_t duration_ns;
	unsigned rounds;
	struct tp_case *cases;
	unsigned ncases;
	unsigned done, total;
	FILE *csv;
};

static void tp_die(struct tp_run *r)
{
	bench_die(r->env.seg, r->env.seg_name);
}

/* What a message of @size bytes takes in a ring, at most. */
static size_t tp_slot(size_t size)
{
	return (size + 64 + 63) & ~(size_t)63;
}

/* 1024 slots, fewer for large messages: a ring stays <= 4 MiB. */
static unsigned tp_capacity(size_t size)
{
	size_t slot = tp_slot(size);
	unsigned capacity = TP_CAPACITY;

	while (capacity > 2 && capacity * slot > TP_RING_MAX)
		capacity /= 2;
	return capacity;
}

static int tp_cpu(const struct tp_run *r, unsigned i)
{
	return r->ncpu > 1 ? r->cpus[i % (unsigned)r->ncpu] : -1;
}

/*
 * A child: pin, attach, wait for the start, then send for the run's
 * duration or receive until an end marker.  exit() at the end, not
 * _exit(): iceoryx unregisters in a destructor.
 */
static void tp_child(struct tp_run *r, const struct tp_case *k, void *st,
		     int side, unsigned idx)
{
	const struct tp_mech *m = &tp_mechs[k->mech];
	struct tp_ctl *ctl = r->ctl;
	uint64_t seq = 0, base = (uint64_t)idx << TP_SEQ_BITS, deadline;
	uint64_t check = 0;
	struct tp_cons *c = &ctl->cons[idx];
	int rc = 0;
	unsigned i;

	rc = bench_pin(tp_cpu(r, side == TP_PRODUCER ? idx : k->np + idx));
	if (!rc)
		rc = m->attach(&r->env, st, side);
	if (rc) {
		fprintf(stderr, "%s: %s setup: %s\n", k->name,
			side == TP_PRODUCER ? "producer" : "consumer",
			bench_strerror(rc));
		_exit(1);
	}
	if (side == TP_CONSUMER) {
		memset(c, 0, sizeof(*c));
		c->what = k->name;
		c->size = r->env.size;
		c->nprod = k->np;
		c->exact = k->nc == 1;
	}
	/* relaxed: only a count; the parent's go store orders the start. */
	atomic_fetch_add_explicit(&ctl->ready, 1, memory_order_relaxed);
	bench_futex_wake(&ctl->ready, 1);
	/* acquire: pairs with the parent's release store of go. */
	while (!atomic_load_explicit(&ctl->go, memory_order_acquire))
		bench_futex_wait(&ctl->go, 0);

	if (side == TP_PRODUCER) {
		deadline = ctl->t_start + r->duration_ns;
		for (;;) {
			/* Read the clock every 256 messages or so. */
			if (seq >= check) {
				if (bench_now_ns() >= deadline)
					break;
				check = seq + 256;
			}
			rc = m->send(st, base | seq, k->batch);
			if (rc <= 0)
				goto fail;
			seq += (unsigned)rc;
		}
		ctl->sent[idx] = seq;
		/* acq_rel: the last producer sees every other's sends done
		 * (their fetch_add released them), so the markers follow
		 * all messages in the queue. */
		if (atomic_fetch_add_explicit(&ctl->prod_done, 1,
					      memory_order_acq_rel) ==
		    k->np - 1) {
			for (i = 0; i < k->nc; i++) {
				rc = m->send(st, TP_PILL, 1);
				if (rc <= 0)
					goto fail;
			}
		}
	} else {
		while (!c->stop) {
			rc = m->recv(st, k->batch, c);
			if (rc <= 0)
				goto fail;
		}
		ctl->t_end[idx] = bench_now_ns();
		/* A batch may have taken another consumer's marker. */
		for (i = 0; i < c->extra_pills; i++) {
			rc = m->send(st, TP_PILL, 1);
			if (rc <= 0)
				goto fail;
		}
	}
	if (m->finish) {
		rc = m->finish(st, side);
		if (rc)
			goto fail;
	}
	m->detach(st, side);
	exit(0);
fail:
	fprintf(stderr, "%s: %s %u, message %" PRIu64 ": %s\n", k->name,
		side == TP_PRODUCER ? "producer" : "consumer", idx,
		side == TP_PRODUCER ? seq : c->got,
		rc ? bench_strerror(rc) : "returned 0");
	_exit(2);
}

static void tp_round(struct tp_run *r, struct tp_case *k, unsigned round)
{
	const struct tp_mech *m = &tp_mechs[k->mech];
	struct tp_ctl *ctl = r->ctl;
	pid_t pids[2 * TP_MAX_PROCS];
	uint64_t got = 0, sent = 0, t_end = 0, dt;
	unsigned i, p, n = k->np + k->nc;
	uint32_t v;
	void *st;
	int bad = 0, rc;

	bench_progress("throughput %zu B: %-18s %ux%u round %u/%u  [%u/%u]",
		       r->env.size, k->name, k->np, k->nc, round + 1,
		       r->rounds, r->done + 1, r->total);
	st = calloc(1, m->state_size);
	if (!st) {
		fprintf(stderr, "%s: out of memory\n", k->name);
		tp_die(r);
	}
	memset(ctl, 0, sizeof(*ctl));
	r->env.batch = k->batch;
	/* Oversubscribed: busy-polling loops must yield. */
	r->env.yield = n > (unsigned)r->ncpu;
	rc = m->setup(&r->env, m, st);
	if (rc) {
		fprintf(stderr, "%s: setup: %s\n", k->name, bench_strerror(rc));
		tp_die(r);
	}
	/* Budget: 30 s plus the run; markers come right after it. */
	bench_watchdog(30 + (unsigned)(r->duration_ns / 1000000000u),
		       k->name);
	fflush(NULL);
	for (i = 0; i < n; i++) {
		pids[i] = bench_fork();
		if (pids[i] == 0)
			tp_child(r, k, st, i < k->np ? TP_PRODUCER :
				 TP_CONSUMER, i < k->np ? i : i - k->np);
		if (pids[i] < 0) {
			fprintf(stderr, "%s: fork: %s\n", k->name,
				bench_strerror((int)pids[i]));
			tp_die(r);
		}
	}
	/* acquire: only a count (the children's setup is theirs). */
	while ((v = atomic_load_explicit(&ctl->ready, memory_order_acquire)) <
	       n)
		bench_futex_wait(&ctl->ready, v);
	ctl->t_start = bench_now_ns();
	/* release: the start line, and t_start with it. */
	atomic_store_explicit(&ctl->go, 1, memory_order_release);
	bench_futex_wake(&ctl->go, INT32_MAX);

	for (i = 0; i < n; i++)
		bad |= bench_reap(pids[i], i < k->np ? "producer" :
				  "consumer") != 0;
	alarm(0);
	if (bad) {
		fprintf(stderr, "%s: run failed\n", k->name);
		tp_die(r);
	}
	m->teardown(st);
	free(st);
	/*
	 * waitpid() ordered the children's writes.  Together the consumers
	 * got exactly what each producer sent: count and sum of numbers.
	 */
	for (p = 0; p < k->np; p++) {
		uint64_t cnt = 0, sum = 0, s = ctl->sent[p];

		for (i = 0; i < k->nc; i++) {
			cnt += ctl->cons[i].count[p];
			sum += ctl->cons[i].sum[p];
		}
		if (cnt != s || sum != (s ? s * (s - 1) / 2 : 0)) {
			fprintf(stderr, "%s: producer %u sent %" PRIu64
				" messages, consumers got %" PRIu64 " (sum of "
				"numbers %s)\n", k->name, p, s, cnt,
				sum == s * (s - 1) / 2 ? "right" : "wrong");
			tp_die(r);
		}
		sent += s;
	}
	for (i = 0; i < k->nc; i++) {
		got += ctl->cons[i].got;
		if (ctl->t_end[i] > t_end)
			t_end = ctl->t_end[i];
	}
	dt = t_end > ctl->t_start ? t_end - ctl->t_start : 1;
	k->rate[round] = (double)got * 1e9 / (double)dt;
	r->done++;
	if (r->o->verbose) {
		char b[32];

		printf("  round %u %-18s %9s msgs/s  (%" PRIu64 " messages in "
		       "%.3f s)\n", round + 1, k->name,
		       bench_fmt_rate(b, sizeof(b), k->rate[round]), sent,
		       (double)dt / 1e9);
	}
}

static const char tp_help[] =
	"usage: bench_throughput [options]\n"
	"\n"
	"Messages per second from P producer processes to C consumer\n"
	"processes: shmq (copy, batches, zero-copy) against a single-producer\n"
	"single-consumer ring written for this one case (the limit), pipes,\n"
	"Unix sockets, eventfd + shared memory, POSIX message queues, ZeroMQ\n"
	"ipc://, iceoryx, RabbitMQ and NATS on localhost (when built in),\n"
	"interleaved in the same run.\n"
	"Every message is checked (length, content, per-producer order, none\n"
	"lost, none twice); a failed check exits non-zero.  Prints a table\n"
	"per size and P x C, GOAL lines for the throughput goals at 64\n"
	"bytes, and one SUMMARY line per row.\n"
	"\n"
	"options:\n"
	"  --duration MS    how long producers send, per run (default 500;\n"
	"                   --quick 100, --smoke 10)\n"
	"  --batches LIST   batch sizes of shmq-batch, 1-256 (default 32)\n"
	"  --pc LIST        producers x consumers, e.g. 1x1,2x2,4x4 (default\n"
	"                   1x1); only shmq cases run beyond 1x1\n"
	"  (default sizes: 8,64,512,4k,64k; --quick 64,4k)\n"
	BENCH_COMMON_HELP
	"\n"
	"CSV (--out): throughput.csv, one row per case, size and P x C.\n"
	"Cases (--only): spsc shmq shmq-batch (or shmq-batchN) shmq-zc pipe\n"
	"unix-stream unix-seqpacket eventfd posix-mq zeromq iceoryx rabbitmq\n"
	"nats.  RabbitMQ and NATS: a private rabbitmq-server and nats-server\n"
	"are started on 127.0.0.1 for the run and stopped (--smoke skips\n"
	"RabbitMQ, which takes seconds to start).\n";

static struct tp_case *tp_find(struct tp_run *r, int mech, unsigned batch)
{
	unsigned i;

	for (i = 0; i < r->ncases; i++)
		if (r->cases[i].mech == mech && !r->cases[i].why &&
		    (!batch || r->cases[i].batch == batch) &&
		    r->cases[i].rate)
			return &r->cases[i];
	return NULL;
}

static void tp_report(struct tp_run *r, unsigned np, unsigned nc,
		      const char *cpus, int goals)
{
	struct tp_case *sq = tp_find(r, M_SHMQ, 0);
	struct tp_case *spsc = tp_find(r, M_SPSC, 0);
	char b1[32], b2[32], b3[32], b4[32], b5[32];
	unsigned i;

	/* bench_median() sorts: then min and max are at the ends. */
	for (i = 0; i < r->ncases; i++)
		if (!r->cases[i].why && r->cases[i].rate)
			r->cases[i].med = bench_median(r->cases[i].rate,
						       r->rounds);

	printf("\n%zu-byte messages, %u producer%s x %u consumer%s "
	       "(median of %u runs of %.2f s)\n", r->env.size, np,
	       np > 1 ? "s" : "", nc, nc > 1 ? "s" : "", r->rounds,
	       (double)r->duration_ns / 1e9);
	printf("%-18s %10s %10s %10s %11s %8s %8s %8s\n", "case", "msgs/s",
	       "min", "max", "bytes/s", "ns/msg", "x shmq", "x spsc");
	for (i = 0; i < r->ncases; i++) {
		struct tp_case *k = &r->cases[i];
		double lo, hi, rq, rs;

		if (k->why) {
			printf("%-18s %s\n", k->name, k->why);
			if (r->csv)
				fprintf(r->csv, "%zu,%u,%u,%s,%u,,,,,,\"%s\"\n",
					r->env.size, np, nc, k->name, k->batch,
					k->why);
			continue;
		}
		if (!k->rate)
			continue;
		lo = k->rate[0];
		hi = k->rate[r->rounds - 1];
		rq = sq && sq->med > 0 ? k->med / sq->med : 0;
		rs = spsc && spsc->med > 0 ? k->med / spsc->med : 0;
		snprintf(b4, sizeof(b4), "%.1fM",
			 k->med * (double)r->env.size / 1e6);
		snprintf(b5, sizeof(b5), rs > 0 ? "%.2f" : "-", rs);
		printf("%-18s %10s %10s %10s %10sB %8.1f %8.2f %8s\n", k->name,
		       bench_fmt_rate(b1, sizeof(b1), k->med),
		       bench_fmt_rate(b2, sizeof(b2), lo),
		       bench_fmt_rate(b3, sizeof(b3), hi), b4, 1e9 / k->med,
		       rq, b5);
		if (r->csv)
			fprintf(r->csv, "%zu,%u,%u,%s,%u,%.0f,%.0f,%.0f,%.0f,"
				"%.4f,\n", r->env.size, np, nc, k->name,
				k->batch, k->med, k->med * (double)r->env.size,
				lo, hi, rq);
	}
	printf("(x shmq, x spsc: ratio of medians, higher is faster)\n");
	for (i = 0; i < r->ncases; i++) {
		struct tp_case *k = &r->cases[i];

		if (k->why || !k->rate)
			continue;
		printf("SUMMARY throughput %s cpus=%s size=%zu msgs_per_s=%.0f",
		       k->name, cpus, r->env.size, k->med);
		if (spsc && spsc->med > 0)
			printf(" ratio=%.3f", k->med / spsc->med);
		else
			printf(" ratio=n/a");
		if (sq && sq->med > 0)
			printf(" ratio_shmq=%.3f", k->med / sq->med);
		else
			printf(" ratio_shmq=n/a");
		printf(" pc=%ux%u bytes_per_s=%.0f\n", np, nc,
		       k->med * (double)r->env.size);
	}
	/*
	 * Issue 2's 1:1 goal: shmq's queue for one producer and one consumer
	 * (SHMQ_SPSC) against the ring written for that case; the default
	 * MPMC queue's ratio beside it, for the record.
	 */
	if (goals && spsc && spsc->med > 0) {
		struct tp_case *ss = tp_find(r, M_SSPSC, 0);

		if (ss)
			printf("GOAL throughput-1:1-vs-spsc %s: shmq-spsc "
			       "%.2fM msgs/s = %.2fx spsc (goal >= 0.5x; the "
			       "MPMC queue: %.2fx; %zu B)\n",
			       ss->med >= 0.5 * spsc->med ? "PASS" : "SHORT",
			       ss->med / 1e6, ss->med / spsc->med,
			       sq ? sq->med / spsc->med : 0.0, r->env.size);
	}
	/* Only where the run includes what the goals compare. */
	if (!goals || !bench_selected(r->o, "posix-mq") ||
	    !bench_selected(r->o, "pipe"))
		return;
	/* The throughput goals. */
	{
		struct tp_case *mq = tp_find(r, M_MQ, 0);
		struct tp_case *pipe_ = tp_find(r, M_PIPE, 0);
		struct tp_case *b32 = tp_find(r, M_BATCH, 32);

		if (sq && mq && pipe_) {
			double a = sq->med / mq->med;
			double b = sq->med / pipe_->med;

			printf("GOAL throughput-1:1 %s: shmq %.2fM msgs/s = "
			       "%.1fx posix-mq, %.1fx pipe (goal >= 10x both; "
			       "%zu B)\n", a >= 10 && b >= 10 ? "PASS" :
			       "SHORT", sq->med / 1e6, a, b, r->env.size);
		} else {
			printf("GOAL throughput-1:1 NOT-MEASURED: needs shmq, "
			       "posix-mq and pipe\n");
		}
		if (sq && b32)
			printf("GOAL throughput-batch32 %s: shmq-batch32 "
			       "%.2fM msgs/s = %.2fx shmq (goal >= 2x; %zu "
			       "B)\n", b32->med >= 2 * sq->med ? "PASS" :
			       "SHORT", b32->med / 1e6, b32->med / sq->med,
			       r->env.size);
		else
			printf("GOAL throughput-batch32 NOT-MEASURED: needs "
			       "shmq and shmq-batch32\n");
	}
}

/* Does --only select @k (by "shmq-batch32" or "shmq-batch")? */
static int tp_selected(const struct bench_opts *o, const struct tp_case *k)
{
	return bench_selected(o, k->name) ||
	       bench_selected(o, tp_mechs[k->mech].name);
}

/* Builds, runs and reports the cases of one size and one P x C. */
static void tp_group(struct tp_run *r, unsigned np, unsigned nc,
		     const unsigned *batches, unsigned nbatches,
		     const char *cpus, int goals)
{
	unsigned i, j, round, k;
	int mi;

	r->ncases = 0;
	for (mi = 0; mi < M_NR; mi++) {
		const struct tp_mech *m = &tp_mechs[mi];
		unsigned nb = m->batched ? nbatches : 1;

		if ((np > 1 || nc > 1) && !m->mpmc)
			continue;
		for (j = 0; j < nb; j++) {
			struct tp_case *c = &r->cases[r->ncases];

			memset(c, 0, sizeof(*c));
			c->mech = mi;
			c->np = np;
			c->nc = nc;
			c->batch = m->batched ? batches[j] : 1;
			if (m->batched)
				snprintf(c->name, sizeof(c->name), "%s%u",
					 m->name, c->batch);
			else
				snprintf(c->name, sizeof(c->name), "%s",
					 m->name);
			/* shmq is every row's yardstick: always run it. */
			if (!tp_selected(r->o, c) && mi != M_SHMQ)
				continue;
			if (m->polls && (unsigned)r->ncpu < np + nc)
				c->why = "skipped: busy-polls, needs a CPU "
					 "per process";
			else if (m->unavailable)
				c->why = m->unavailable(r->env.size);
			if (!c->why)
				c->rate = calloc(r->rounds, sizeof(double));
			r->ncases++;
		}
	}
	for (round = 0; round < r->rounds; round++) {
		/* Rotate the order so no case always follows the same one. */
		for (k = 0; k < r->ncases; k++) {
			i = (k + round) % r->ncases;
			if (r->cases[i].rate)
				tp_round(r, &r->cases[i], round);
		}
	}
	bench_sig.what = NULL;
	bench_progress_done();
	tp_report(r, np, nc, cpus, goals);
	for (i = 0; i < r->ncases; i++)
		free(r->cases[i].rate);
	fflush(stdout);
}

/* How many rounds tp_group() will run (for the progress line). */
static unsigned tp_count(struct tp_run *r, unsigned np, unsigned nc,
			 unsigned nbatches)
{
	unsigned n = 0;
	int mi;

	for (mi = 0; mi < M_NR; mi++) {
		const struct tp_mech *m = &tp_mechs[mi];

		if ((np > 1 || nc > 1) && !m->mpmc)
			continue;
		if (bench_selected(r->o, m->name) || mi == M_SHMQ ||
		    m->batched)
			n += m->batched ? nbatches : 1;
	}
	return n * r->rounds;
}

int main(int argc, char **argv)
{
	static const unsigned dflt_batches[] = { 32 };
	static const unsigned dflt_pc[][2] = { { 1, 1 } };
	const unsigned *batches, (*pc)[2];
	unsigned nbatches, npc, nsizes, i, j, maxproc = 0;
	const size_t *sizes;
	size_t ring, maxsize;
	struct bench_opts o;
	struct tp_run r;
	char seg_name[32], cpus[64], log[PATH_MAX];
	pid_t roudi = 0;
	int c, goal_i;

	bench_parse_opts(argc, argv, &o, tp_help);
	memset(&r, 0, sizeof(r));
	r.o = &o;
	bench_sizes(&o, &sizes, &nsizes, &maxsize, &goal_i);
	batches = o.nbatches ? o.batches : dflt_batches;
	nbatches = o.nbatches ? o.nbatches : 1;
	pc = o.npc ? (const unsigned (*)[2])o.pc : dflt_pc;
	npc = o.npc ? o.npc : 1;
	for (i = 0; i < npc; i++)
		if (pc[i][0] + pc[i][1] > maxproc)
			maxproc = pc[i][0] + pc[i][1];
	if (maxproc > BENCH_MAX_CHILDREN) {
		fprintf(stderr, "bench_throughput: --pc: at most %d processes "
			"in all\n", BENCH_MAX_CHILDREN);
		return 2;
	}
	r.rounds = o.rounds ? o.rounds : o.quick ? 1 : 3;
	r.duration_ns = (uint64_t)(o.duration_ms ? o.duration_ms :
				   o.smoke ? 10 : o.quick ? 100 : 500) *
			1000000u;

	/* The CPUs we may use, in order; --cpus puts its two first. */
	if (bench_cpu_list("bench_throughput", o.cpu_a, o.cpu_b, r.cpus,
			   &r.ncpu, cpus, sizeof(cpus)))
		return 2;

	/* The largest ring of the run: room for four. */
	ring = tp_capacity(maxsize) * tp_slot(maxsize);
	r.env.spin_ns = o.spin_ns;
	r.env.seg_name = seg_name;
	if (bench_seg_begin("bench_throughput", seg_name, sizeof(seg_name),
			    TP_SEG_MIN > 4 * ring ? TP_SEG_MIN : 4 * ring,
			    &r.env.seg))
		return 1;
	r.ctl = bench_shared_alloc(sizeof(*r.ctl));
	r.cases = calloc(M_NR + BENCH_MAX_LIST, sizeof(*r.cases));
	if (!r.ctl || !r.cases) {
		fprintf(stderr, "bench_throughput: out of memory\n");
		tp_die(&r);
	}

	if (BENCH_HAVE_ICEORYX && bench_selected(&o, "iceoryx"))
		roudi = bench_roudi_begin(&o, "iox-roudi-tp.log", log,
					  sizeof(log));
	if (BENCH_HAVE_RABBITMQ && bench_selected(&o, "rabbitmq"))
		bench_broker_begin(&o, &bench_rmq_broker, "rabbitmq-tp.log", 1);
	if (BENCH_HAVE_NATS && bench_selected(&o, "nats"))
		bench_broker_begin(&o, &bench_nats_broker, "nats-server-tp.log",
				   0);

	printf("bench_throughput: producer processes -> consumer processes, "
	       "every message checked (scratch names: bench.%d)\n",
	       (int)getpid());
	printf("CPUs used round-robin: %d of them%s; %u interleaved runs per "
	       "case; shmq spin: %s\n", r.ncpu,
	       r.ncpu < 2 ? " (unpinned)" : "", r.rounds,
	       o.spin_ns < 0 ? "library default" : "--spin");
	printf("rings of 1024 slots, fewer above 4 KiB (4 MiB at most; shmq, "
	       "spsc, eventfd; the brokers' credit windows); posix-mq of "
	       "%d\n", TP_MQ_MAXMSG);
	for (c = 0; c < M_NR; c++)
		if (bench_selected(&o, tp_mechs[c].name) || c == M_SHMQ)
			printf("  %-15s %s\n", tp_mechs[c].name,
			       tp_mechs[c].desc);
	if (roudi > 0)
		printf("iox-roudi started for this run (pid %d, log %s)\n",
		       (int)roudi, log);
	bench_broker_say(&bench_rmq_broker);
	bench_broker_say(&bench_nats_broker);
	fflush(stdout);

	r.csv = bench_csv_open(&o, "throughput",
			       "size,producers,consumers,case,batch,msgs_per_s,"
			       "bytes_per_s,min_msgs_per_s,max_msgs_per_s,"
			       "ratio_shmq,note");
	for (i = 0; i < nsizes; i++)
		for (j = 0; j < npc; j++)
			r.total += tp_count(&r, pc[j][0], pc[j][1], nbatches);
	for (i = 0; i < nsizes; i++) {
		r.env.size = sizes[i];
		r.env.capacity = tp_capacity(sizes[i]);
		for (j = 0; j < npc; j++)
			tp_group(&r, pc[j][0], pc[j][1], batches, nbatches,
				 cpus, (int)i == goal_i && pc[j][0] == 1 &&
				 pc[j][1] == 1);
	}
	if (r.csv)
		fclose(r.csv);

	bench_roudi_end(&o, roudi, log);
	bench_broker_end(&o, &bench_nats_broker);
	bench_broker_end(&o, &bench_rmq_broker);
	bench_seg_end("bench_throughput", seg_name, r.env.seg);
	free(r.cases);
	bench_shared_free(r.ctl, sizeof(*r.ctl));
	return 0;
}
