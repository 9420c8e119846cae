/* SPDX-License-Identifier: MIT */
/*
 * mech.h - the compared mechanisms' plumbing, shared by bench_pingpong and
 * bench_throughput (header only; includes common.h).
 *
 * Each benchmark keeps its own measuring loop (a round trip; a stream of
 * numbered messages, checked) and its own table of cases; what does not
 * depend on the loop lives here, once:
 *
 *   - message buffers, their stride, scratch names (after our pid);
 *   - the baselines' shared memory and eventfd doorbells;
 *   - message endpoints: one process's end of a pipe, a Unix socket, a
 *     POSIX message queue, a ZeroMQ socket, iceoryx, a RabbitMQ or NATS
 *     client (broker.h, which also starts and stops the brokers), with
 *     its setup (parent, before fork()), attach (child), send, receive,
 *     detach (child, after its last message) and teardown (parent, after
 *     every child is gone);
 *   - starting and stopping the iox-roudi of a run;
 *   - shmq: a child's queue handle with the case's spin budget.
 *
 * Functions return 0 (or a length) or -errno.
 */
#ifndef BENCH_MECH_H
#define BENCH_MECH_H

#include "common.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#if BENCH_HAVE_ZMQ
#include <zmq.h>
#endif
#if BENCH_HAVE_ICEORYX
#include <iceoryx_binding_c/api.h>
#endif

/* A case that leaves the library's spin budget (or --spin's) alone. */
#define BENCH_NO_SPIN ((int64_t)-1)

/* ---- buffers and names --------------------------------------------------- */

/* Bytes from one message to the next in a run of them (cache lines). */
static inline size_t bench_stride(size_t size)
{
	return (size + 63) & ~(size_t)63;
}

/* @n messages of @size bytes, bench_stride() apart, filled by msg_init. */
static inline void *bench_buf_alloc(size_t size, unsigned n)
{
	size_t stride = bench_stride(size);
	char *p = aligned_alloc(64, stride * n);
	unsigned i;

	if (p)
		for (i = 0; i < n; i++)
			bench_msg_init(p + i * stride, size);
	return p;
}

/*
 * PREFIXshmqbench.PID.SERIAL[.SUFFIX]: the scratch name of one setup.
 * run.sh --smoke looks for leftovers by this pattern (/tmp/shmqbench.PID.*,
 * /dev/mqueue/shmqbench.PID.*).
 */
static inline void bench_scratch_name(char *buf, size_t len,
				      const char *prefix, unsigned serial,
				      const char *suffix)
{
	snprintf(buf, len, "%sshmqbench.%d.%u%s%s", prefix, (int)getpid(),
		 serial, suffix ? "." : "", suffix ? suffix : "");
}

/* ---- eventfd ------------------------------------------------------------- */

/* read(2) of an eventfd blocks until non-zero and is a full barrier. */
static inline int bench_efd_read(int fd, uint64_t *v)
{
	ssize_t n;

	while ((n = read(fd, v, sizeof(*v))) < 0 && errno == EINTR)
		;
	return n == sizeof(*v) ? 0 : n < 0 ? -errno : -EIO;
}

static inline int bench_efd_write(int fd, uint64_t v)
{
	ssize_t n;

	while ((n = write(fd, &v, sizeof(v))) < 0 && errno == EINTR)
		;
	return n == sizeof(v) ? 0 : n < 0 ? -errno : -EIO;
}

/* ---- message endpoints --------------------------------------------------- */

/*
 * Every endpoint struct begins with struct bench_msg: its message buffer
 * and the mechanism's send and receive, so that a benchmark's loop moves
 * messages of any of them through ep->xfer.  Channels: a mechanism that
 * is one-way by nature (pipes, sockets, message queues) has one (index 0)
 * or two (0: ping -> pong, 1: pong -> ping); each process says at attach
 * which one it sends on and which one it receives from (-1: none).
 */
struct bench_xfer {
	int (*send)(void *ep);		/* buf, size bytes: 0 or -errno */
	ssize_t (*recv)(void *ep);	/* into buf: its length or -errno */
	/*
	 * The same with any buffer (NULL: not offered): a broker endpoint
	 * also carries bench_throughput's credits.  recv_buf returns the
	 * message's length, and copies at most @len bytes of it.
	 */
	int (*send_buf)(void *ep, const void *buf, size_t len);
	ssize_t (*recv_buf)(void *ep, void *buf, size_t len);
};

struct bench_msg {
	const struct bench_xfer *xfer;	/* set by setup */
	size_t size;			/* message bytes */
	uint64_t seq;			/* the loop's sequence number */
	char *buf;			/* a child's message, after attach */
};

/* Parent, in setup: the mechanism's send and receive, the message size. */
static inline void bench_msg_setup(struct bench_msg *m,
				   const struct bench_xfer *xfer, size_t size)
{
	m->xfer = xfer;
	m->size = size;
}

static inline int bench_msg_attach(struct bench_msg *m)
{
	m->buf = bench_buf_alloc(m->size, 1);
	return m->buf ? 0 : -ENOMEM;
}

/* A detach op: frees the message buffer of endpoint @ep. */
static inline void bench_msg_detach(void *ep, int side BENCH_UNUSED)
{
	struct bench_msg *m = ep;

	free(m->buf);
	m->buf = NULL;
}

/* A teardown op for endpoints that leave nothing in the parent. */
static inline void bench_nop_teardown(void *ep BENCH_UNUSED)
{
}

/* ---- shared memory and eventfd doorbells --------------------------------- */

/*
 * The baselines' region: anonymous MAP_SHARED memory mapped before fork()
 * (so both children see it at the same address), and up to two eventfds.
 */
struct bench_shm {
	void *map;
	size_t map_size;
	int efd[2];		/* -1: none */
};

static inline int bench_shm_setup(struct bench_shm *m, size_t map_size,
				  unsigned nefd)
{
	unsigned i;

	m->efd[0] = m->efd[1] = -1;
	m->map_size = map_size;
	m->map = bench_shared_alloc(map_size);
	if (!m->map)
		return -ENOMEM;
	for (i = 0; i < nefd; i++) {
		m->efd[i] = eventfd(0, EFD_CLOEXEC);
		if (m->efd[i] < 0)
			return -errno;
	}
	return 0;
}

static inline void bench_shm_teardown(struct bench_shm *m)
{
	unsigned i;

	for (i = 0; i < 2; i++)
		if (m->efd[i] >= 0)
			close(m->efd[i]);
	bench_shared_free(m->map, m->map_size);
}

/* ---- pipes and Unix sockets ---------------------------------------------- */

/* A one-way channel. */
struct bench_fd {
	int fd[2];		/* [0] read end, [1] write end; -1: none */
	int seqpacket;		/* one recv() is one whole message */
};

struct bench_fd_ep {
	struct bench_msg m;
	struct bench_fd chan[2];
	struct bench_fd *tx, *rx;	/* ours, after attach; NULL: none */
};

/*
 * A pipe (@type 0) or an AF_UNIX socketpair of @type, its write end's
 * send buffer and its read end's receive buffer set to @bufsize bytes.
 */
static inline int bench_fd_chan(struct bench_fd *c, int type, int bufsize)
{
	c->seqpacket = type == SOCK_SEQPACKET;
	if (!type)
		return pipe2(c->fd, O_CLOEXEC) < 0 ? -errno : 0;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, c->fd) < 0)
		return -errno;
	setsockopt(c->fd[1], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
	setsockopt(c->fd[0], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
	return 0;
}

static inline int bench_fd_ep_send(void *ep)
{
	struct bench_fd_ep *e = ep;

	return bench_write_full(e->tx->fd[1], e->m.buf, e->m.size);
}

/*
 * One message: the bytes of one recv() on a seqpacket socket, exactly
 * size bytes otherwise (-EPIPE: the writer is gone).
 */
static inline ssize_t bench_fd_ep_recv(void *ep)
{
	struct bench_fd_ep *e = ep;
	ssize_t n;
	int rc;

	if (!e->rx->seqpacket) {
		rc = bench_read_full(e->rx->fd[0], e->m.buf, e->m.size);
		return rc ? rc : (ssize_t)e->m.size;
	}
	while ((n = recv(e->rx->fd[0], e->m.buf, e->m.size, 0)) < 0 &&
	       errno == EINTR)
		;
	return n < 0 ? -errno : n;
}

static const struct bench_xfer bench_fd_xfer BENCH_UNUSED = {
	.send = bench_fd_ep_send, .recv = bench_fd_ep_recv,
};

/* Parent: @nchan (1 or 2) channels of @type (see bench_fd_chan()). */
static inline int bench_fd_ep_setup(struct bench_fd_ep *e, size_t size,
				    unsigned nchan, int type, int bufsize)
{
	unsigned i;
	int rc = 0;

	bench_msg_setup(&e->m, &bench_fd_xfer, size);
	for (i = 0; i < 2; i++)
		e->chan[i].fd[0] = e->chan[i].fd[1] = -1;
	for (i = 0; i < nchan && !rc; i++)
		rc = bench_fd_chan(&e->chan[i], type, bufsize);
	return rc;
}

/*
 * Child: send on channel @tx, receive from @rx (-1: none).  Every other
 * end is closed, so that a dead peer shows as EOF or EPIPE.
 */
static inline int bench_fd_ep_attach(struct bench_fd_ep *e, int tx, int rx)
{
	unsigned i, end;

	e->tx = tx >= 0 ? &e->chan[tx] : NULL;
	e->rx = rx >= 0 ? &e->chan[rx] : NULL;
	for (i = 0; i < 2; i++)
		for (end = 0; end < 2; end++)
			if (e->chan[i].fd[end] >= 0 &&
			    !(end == 1 && (int)i == tx) &&
			    !(end == 0 && (int)i == rx)) {
				close(e->chan[i].fd[end]);
				e->chan[i].fd[end] = -1;
			}
	return bench_msg_attach(&e->m);
}

/* Parent: closes what it holds. */
static inline void bench_fd_ep_teardown(void *ep)
{
	struct bench_fd_ep *e = ep;
	unsigned i, end;

	for (i = 0; i < 2; i++)
		for (end = 0; end < 2; end++)
			if (e->chan[i].fd[end] >= 0)
				close(e->chan[i].fd[end]);
}

/* ---- POSIX message queues ------------------------------------------------ */

struct bench_mq_ep {
	struct bench_msg m;
	mqd_t q[2];		/* the channels; (mqd_t)-1: none */
	mqd_t tx, rx;		/* ours, after attach */
};

/*
 * NULL when a queue of @maxmsg messages of @size bytes can be made (after
 * raising RLIMIT_MSGQUEUE towards @need bytes), else why not.  Linux caps
 * mq_msgsize at /proc/sys/fs/mqueue/msgsize_max (8192 by default) unless
 * the caller has CAP_SYS_RESOURCE.
 */
static inline const char *bench_mq_unavailable(size_t size, long maxmsg,
					       rlim_t need)
{
	static char why[160];

	bench_mq_rlimit(need);
	if (bench_mq_probe(size, maxmsg) != -EINVAL)
		return NULL;
	snprintf(why, sizeof(why), "capped: %zu B > fs.mqueue.msgsize_max "
		 "(%ld); `make bench-deps` raises it (root)", size,
		 bench_mq_sysctl("msgsize_max", 8192));
	return why;
}

static inline int bench_mq_ep_send(void *ep)
{
	struct bench_mq_ep *e = ep;

	while (mq_send(e->tx, e->m.buf, e->m.size, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static inline ssize_t bench_mq_ep_recv(void *ep)
{
	struct bench_mq_ep *e = ep;
	ssize_t n;

	while ((n = mq_receive(e->rx, e->m.buf, e->m.size, NULL)) < 0)
		if (errno != EINTR)
			return -errno;
	return n;
}

static const struct bench_xfer bench_mq_xfer BENCH_UNUSED = {
	.send = bench_mq_ep_send, .recv = bench_mq_ep_recv,
};

/*
 * Parent: @nchan (1 or 2) queues of @maxmsg messages of @size bytes,
 * named after @serial (two: .down and .up).  Each is opened and its name
 * unlinked at once: a queue lives as long as its descriptors (inherited
 * by fork()), so no run can leave one behind.
 */
static inline int bench_mq_ep_setup(struct bench_mq_ep *e, size_t size,
				    unsigned nchan, long maxmsg,
				    unsigned serial)
{
	static const char *const dir[2] = { "down", "up" };
	struct mq_attr a = { .mq_maxmsg = maxmsg, .mq_msgsize = (long)size };
	char name[64];
	unsigned i;

	bench_msg_setup(&e->m, &bench_mq_xfer, size);
	e->q[0] = e->q[1] = (mqd_t)-1;
	for (i = 0; i < nchan; i++) {
		bench_scratch_name(name, sizeof(name), "/", serial,
				   nchan > 1 ? dir[i] : NULL);
		e->q[i] = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
				  0600, &a);
		if (e->q[i] == (mqd_t)-1)
			return -errno;
		mq_unlink(name);
	}
	return 0;
}

/* Child: send on queue @tx, receive from @rx (-1: none). */
static inline int bench_mq_ep_attach(struct bench_mq_ep *e, int tx, int rx)
{
	e->tx = tx >= 0 ? e->q[tx] : (mqd_t)-1;
	e->rx = rx >= 0 ? e->q[rx] : (mqd_t)-1;
	return bench_msg_attach(&e->m);
}

static inline void bench_mq_ep_teardown(void *ep)
{
	struct bench_mq_ep *e = ep;
	unsigned i;

	for (i = 0; i < 2; i++)
		if (e->q[i] != (mqd_t)-1)
			mq_close(e->q[i]);
}

/* ---- ZeroMQ: one ZMQ_PAIR socket over ipc:// ----------------------------- */

/* An unavailable op: NULL when ZeroMQ is built in, else why not. */
static inline const char *bench_zmq_unavailable(size_t size BENCH_UNUSED)
{
	return BENCH_HAVE_ZMQ ? NULL :
	       "not installed: libzmq3-dev (make bench-deps)";
}

#if BENCH_HAVE_ZMQ
struct bench_zmq {
	struct bench_msg m;
	char path[96];		/* the ipc:// socket file */
	void *ctx, *sock;
};

static inline int bench_zmq_send_buf(struct bench_zmq *z, const void *buf,
				     size_t size)
{
	while (zmq_send(z->sock, buf, size, 0) < 0)
		if (zmq_errno() != EINTR)
			return -zmq_errno();
	return 0;
}

/* The message's length (truncated to @size) or -errno. */
static inline int bench_zmq_recv_buf(struct bench_zmq *z, void *buf,
				     size_t size)
{
	int n;

	while ((n = zmq_recv(z->sock, buf, size, 0)) < 0)
		if (zmq_errno() != EINTR)
			return -zmq_errno();
	return n;
}

static inline int bench_zmq_send(void *ep)
{
	struct bench_zmq *z = ep;

	return bench_zmq_send_buf(z, z->m.buf, z->m.size);
}

static inline ssize_t bench_zmq_recv(void *ep)
{
	struct bench_zmq *z = ep;

	return bench_zmq_recv_buf(z, z->m.buf, z->m.size);
}

static const struct bench_xfer bench_zmq_xfer BENCH_UNUSED = {
	.send = bench_zmq_send, .recv = bench_zmq_recv,
};

/* Parent: names the socket file; a fatal exit removes it (common.h). */
static inline void bench_zmq_setup(struct bench_zmq *z, size_t size,
				   unsigned serial)
{
	bench_msg_setup(&z->m, &bench_zmq_xfer, size);
	bench_scratch_name(z->path, sizeof(z->path), "/tmp/", serial, "zmq");
	snprintf(bench_sig.zmq_path, sizeof(bench_sig.zmq_path), "%s",
		 z->path);
}

/*
 * Child: a context per process, made after fork(): ZeroMQ has threads.
 * One side binds (@bind), the other connects (ZeroMQ retries until the
 * bind) and waits until its socket is writable, so that the connection
 * is not part of what is timed.
 */
static inline int bench_zmq_attach(struct bench_zmq *z, int bind)
{
	zmq_pollitem_t pi;
	char ep[112];
	int rc, ivl = 1;

	rc = bench_msg_attach(&z->m);
	if (rc)
		return rc;
	z->ctx = zmq_ctx_new();
	if (!z->ctx)
		return -ENOMEM;
	z->sock = zmq_socket(z->ctx, ZMQ_PAIR);
	if (!z->sock)
		return -zmq_errno();
	snprintf(ep, sizeof(ep), "ipc://%s", z->path);
	/* Retry the connect every ms, not 100 ms, while the peer binds. */
	zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
	rc = bind ? zmq_bind(z->sock, ep) : zmq_connect(z->sock, ep);
	if (rc < 0)
		return -zmq_errno();
	if (bind)
		return 0;
	pi = (zmq_pollitem_t){ .socket = z->sock, .events = ZMQ_POLLOUT };
	rc = zmq_poll(&pi, 1, 10000);
	return rc < 0 ? -zmq_errno() : rc == 0 ? -ETIMEDOUT : 0;
}

/*
 * The end of a one-way stream.  libzmq (4.3, stream_engine_base.cpp) loses
 * messages when a sender closes while its receiver is behind: once the
 * receiving socket's queue reaches ZMQ_RCVHWM, its engine stops polling
 * the connection for input, and the hang-up that the sender's close(2)
 * raises (EPOLLHUP, which epoll reports even then) makes in_event() mark
 * the connection failed; after the messages already decoded, the engine
 * is destroyed with the rest of the kernel's receive buffer unread.
 * ZMQ_LINGER cannot help: the sender did write everything.  So the sender
 * closes only after the receiver, having taken the last message, says so:
 * bench_zmq_ack() on the receiving side, bench_zmq_await_ack() on the
 * sending side.
 */
static inline int bench_zmq_ack(struct bench_zmq *z)
{
	return bench_zmq_send_buf(z, "", 1);
}

static inline int bench_zmq_await_ack(struct bench_zmq *z)
{
	char ack;
	int n = bench_zmq_recv_buf(z, &ack, 1);

	return n < 0 ? n : n == 1 ? 0 : BENCH_EBADMSG;
}

/* Child: zmq_ctx_term() waits until what we sent is written. */
static inline void bench_zmq_detach(void *ep, int side)
{
	struct bench_zmq *z = ep;

	if (z->sock)
		zmq_close(z->sock);
	if (z->ctx)
		zmq_ctx_term(z->ctx);
	z->sock = z->ctx = NULL;
	bench_msg_detach(&z->m, side);
}

static inline void bench_zmq_teardown(void *ep)
{
	struct bench_zmq *z = ep;

	unlink(z->path);
	bench_sig.zmq_path[0] = '\0';
}
#endif /* BENCH_HAVE_ZMQ */

/* ---- iceoryx ------------------------------------------------------------- */

/* Set by bench_roudi_begin(): why our iox-roudi does not run, or NULL. */
static const char *bench_roudi_err;

/* An unavailable op: NULL when iceoryx is built in and roudi runs. */
static inline const char *bench_iox_unavailable(size_t size BENCH_UNUSED)
{
	if (!BENCH_HAVE_ICEORYX)
		return "not installed: libiceoryx-binding-c-dev, iceoryx "
		       "(make bench-deps)";
	return bench_roudi_err;
}

/*
 * Starts the run's iox-roudi (common.h: bench_roudi_start()) with its log
 * in --out DIR/@logname, else in /tmp (written to @log); on failure the
 * iceoryx rows say why.  Returns what bench_roudi_start() returned.
 */
static inline pid_t bench_roudi_begin(const struct bench_opts *o,
				      const char *logname, char *log,
				      size_t len)
{
	pid_t roudi;

	if (o->out) {
		mkdir(o->out, 0777);
		snprintf(log, len, "%s/%s", o->out, logname);
	} else {
		snprintf(log, len, "/tmp/shmqbench.%d.roudi.log",
			 (int)getpid());
	}
	roudi = bench_roudi_start(log);
	if (roudi < 0)
		bench_roudi_err = roudi == -ENOENT ?
			"iox-roudi failed to start (see its log)" :
			"iox-roudi did not come up within 10 s";
	return roudi;
}

/* Stops the iox-roudi we started; its log stays only under --out. */
static inline void bench_roudi_end(const struct bench_opts *o, pid_t roudi,
				   const char *log)
{
	bench_roudi_stop(roudi);
	if (roudi > 0 && !o->out)
		unlink(log);
}

#if BENCH_HAVE_ICEORYX
/* One process's publisher and/or subscriber (with a WaitSet). */
struct bench_iox {
	struct bench_msg m;
	char instance[64];	/* the service instance: unique per setup */
	iox_pub_storage_t pub_st;
	iox_sub_storage_t sub_st;
	iox_ws_storage_t ws_st;
	iox_pub_t pub;
	iox_sub_t sub;
	iox_ws_t ws;
};

/* A chunk of size bytes to fill, then iox_pub_publish_chunk(). */
static inline int bench_iox_loan(struct bench_iox *s, void **chunk)
{
	if (iox_pub_loan_chunk(s->pub, chunk, (uint32_t)s->m.size) !=
	    AllocationResult_SUCCESS)
		return -ENOMEM;
	return 0;
}

/* The next chunk (sleeping in the WaitSet); iox_sub_release_chunk() it. */
static inline int bench_iox_take(struct bench_iox *s, const void **chunk)
{
	iox_notification_info_t ev[2];
	enum iox_ChunkReceiveResult r;
	uint64_t missed;

	while ((r = iox_sub_take_chunk(s->sub, chunk)) ==
	       ChunkReceiveResult_NO_CHUNK_AVAILABLE)
		iox_ws_wait(s->ws, ev, 2, &missed);
	return r == ChunkReceiveResult_SUCCESS ? 0 : -EIO;
}

/* Copies buf into a chunk and publishes it. */
static inline int bench_iox_send(void *ep)
{
	struct bench_iox *s = ep;
	void *chunk;
	int rc = bench_iox_loan(s, &chunk);

	if (rc)
		return rc;
	memcpy(chunk, s->m.buf, s->m.size);
	iox_pub_publish_chunk(s->pub, chunk);
	return 0;
}

/* Copies the next chunk into buf. */
static inline ssize_t bench_iox_recv(void *ep)
{
	struct bench_iox *s = ep;
	const void *chunk;
	int rc = bench_iox_take(s, &chunk);

	if (rc)
		return rc;
	memcpy(s->m.buf, chunk, s->m.size);
	iox_sub_release_chunk(s->sub, chunk);
	return (ssize_t)s->m.size;
}

static const struct bench_xfer bench_iox_xfer BENCH_UNUSED = {
	.send = bench_iox_send, .recv = bench_iox_recv,
};

static inline void bench_iox_setup(struct bench_iox *s, size_t size,
				   unsigned serial)
{
	bench_msg_setup(&s->m, &bench_iox_xfer, size);
	snprintf(s->instance, sizeof(s->instance), "%d.%u", (int)getpid(),
		 serial);
}

/*
 * Child: registers with roudi under its own name, then publishes event
 * @pub (NULL: none; the publisher blocks while its subscriber's queue is
 * full: nothing is dropped) and subscribes to event @sub (NULL: none; a
 * queue of @queue chunks and a WaitSet to sleep in).  Waits (10 s at most)
 * until each has its peer, so that the first message is never lost.
 */
static inline int bench_iox_attach(struct bench_iox *s, const char *pub,
				   const char *sub, uint64_t queue)
{
	iox_pub_options_t po;
	iox_sub_options_t so;
	char rt[64];
	unsigned i;
	int rc;

	rc = bench_msg_attach(&s->m);
	if (rc)
		return rc;
	snprintf(rt, sizeof(rt), "shmqbench.%d", (int)getpid());
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(rt);
	if (pub) {
		iox_pub_options_init(&po);
		po.subscriberTooSlowPolicy =
			ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
		s->pub = iox_pub_init(&s->pub_st, "shmqbench", s->instance,
				      pub, &po);
	}
	if (sub) {
		iox_sub_options_init(&so);
		so.queueCapacity = queue;
		so.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
		s->sub = iox_sub_init(&s->sub_st, "shmqbench", s->instance,
				      sub, &so);
		s->ws = iox_ws_init(&s->ws_st);
		if (iox_ws_attach_subscriber_state(s->ws, s->sub,
				SubscriberState_HAS_DATA, 0, NULL) !=
		    WaitSetResult_SUCCESS)
			return -ENOSPC;
	}
	for (i = 0; i < 10000; i++) {
		if ((!s->pub || iox_pub_has_subscribers(s->pub)) &&
		    (!s->sub || iox_sub_get_subscription_state(s->sub) ==
				SubscribeState_SUBSCRIBED))
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/* Deinit all; the caller then exit()s (not _exit()): roudi unregisters. */
static inline void bench_iox_detach(void *ep, int side)
{
	struct bench_iox *s = ep;

	if (s->ws)
		iox_ws_deinit(s->ws);
	if (s->sub)
		iox_sub_deinit(s->sub);
	if (s->pub)
		iox_pub_deinit(s->pub);
	s->ws = NULL;
	s->sub = NULL;
	s->pub = NULL;
	bench_msg_detach(&s->m, side);
}
#endif /* BENCH_HAVE_ICEORYX */

#include "broker.h"

/* ---- shmq ---------------------------------------------------------------- */

/* Queue name PREFIX SERIAL[.SUFFIX] (in the run's own segment). */
static inline void bench_shmq_name(char *buf, size_t len, const char *prefix,
				   unsigned serial, const char *suffix)
{
	snprintf(buf, len, "%s%u%s%s", prefix, serial, suffix ? "." : "",
		 suffix ? suffix : "");
}

/*
 * In a child, on its own attachment @seg (never the parent's): opens
 * queue @name and sets its spin budget unless @spin_ns is BENCH_NO_SPIN.
 */
static inline int bench_shmq_open(shmq_seg *seg, const char *name,
				  int64_t spin_ns, shmq **q)
{
	int rc = shmq_open(seg, name, q);

	if (!rc && spin_ns != BENCH_NO_SPIN)
		rc = shmq_set_spin(*q, spin_ns);
	return rc;
}

#endif /* BENCH_MECH_H */
