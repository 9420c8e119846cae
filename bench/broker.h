/* SPDX-License-Identifier: MIT */
/*
 * broker.h - the message brokers of the comparison, each run on 127.0.0.1
 * by the benchmark itself (header only; included by mech.h, whose struct
 * bench_msg and struct bench_shm it uses):
 *
 *   rabbitmq  RabbitMQ through librabbitmq-c (AMQP 0-9-1): messages are
 *             published to a topic exchange with a routing key and
 *             consumed (basic.consume, no-ack) from a queue bound to it;
 *   nats      NATS core publish/subscribe through the NATS C client:
 *             a synchronous subscription per receiving side.
 *
 * What lives here:
 *
 *   - starting a broker for the run, as iox-roudi is started (common.h,
 *     mech.h), in its own process group, on free ports of 127.0.0.1, with
 *     all its state in a scratch directory; waiting, for a bounded time,
 *     until it accepts clients; stopping it by its process group (common.h:
 *     bench_group_stop(), which every fatal path calls too);
 *   - their endpoints, in the manner of mech.h's: setup (parent, before
 *     fork()), attach (child), send, receive, detach (child), teardown.
 *
 * Endpoints have numbered channels as mech.h's do: a RabbitMQ channel is
 * a routing key and the queue bound by it, a NATS channel a subject.  The
 * parent never keeps a client connection across fork(): libnats has
 * threads, and neither library promises anything after fork().
 */
#ifndef BENCH_BROKER_H
#define BENCH_BROKER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#if BENCH_HAVE_RABBITMQ
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif
#if BENCH_HAVE_NATS
#include <nats/nats.h>
#endif

/* ---- starting and stopping a broker -------------------------------------- */

#define BENCH_RMQ_SERVER "/usr/lib/rabbitmq/bin/rabbitmq-server"

/*
 * One broker of the run.  bench_broker_begin() fills it in; err says why
 * its rows do not run (NULL: they do).
 */
struct bench_broker {
	const char *name;	/* the server's program name, for messages */
	const char *err;	/* why its rows do not run, or NULL */
	pid_t pid;		/* the server: a process group leader; 0: none */
	pid_t epmd;		/* RabbitMQ's epmd, ditto */
	int port;		/* clients connect to 127.0.0.1:port */
	char dir[96];		/* scratch directory, or "" */
	char log[PATH_MAX];	/* the server's output */
	char why[PATH_MAX + 96];	/* err's text when it is ours */
};

static struct bench_broker bench_rmq_broker = { .name = "rabbitmq-server" };
static struct bench_broker bench_nats_broker = { .name = "nats-server" };

/*
 * @n distinct free TCP ports of 127.0.0.1: the kernel picks each, and all
 * are held together while it does.  Another program may take one before
 * the broker binds it; the broker then fails to start and says so.
 */
static inline int bench_free_ports(int *port, unsigned n)
{
	struct sockaddr_in a;
	socklen_t len;
	int fd[4] = { -1, -1, -1, -1 }, rc = 0;
	unsigned i;

	for (i = 0; i < n && i < 4 && !rc; i++) {
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(a);
		fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd[i] < 0 ||
		    bind(fd[i], (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(fd[i], (struct sockaddr *)&a, &len) < 0)
			rc = -errno;
		else
			port[i] = ntohs(a.sin_port);
	}
	for (i = 0; i < 4; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return rc;
}

/* 0 when something accepts TCP connections on 127.0.0.1:@port. */
static inline int bench_tcp_probe(int port)
{
	struct sockaddr_in a;
	int fd, rc = 0;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Starts @argv with the NAME=VALUE strings of @env added to ours (NULL
 * ends both), its output in @log, in a process group of its own so that
 * whatever it starts can be stopped with it, and dying with us
 * (PR_SET_PDEATHSIG: RabbitMQ's start script stops the VM on SIGTERM).
 * Records it for the fatal paths, with @dir to remove after it.  Returns
 * its pid or -errno.
 */
static inline pid_t bench_broker_spawn(char *const argv[],
				       char *const env[], const char *log,
				       const char *dir)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGALRM,
				    SIGCHLD };
	unsigned i, slot;
	pid_t pid;

	for (slot = 0; slot < BENCH_MAX_BROKERS; slot++)
		if (!bench_sig.broker[slot])
			break;
	if (slot == BENCH_MAX_BROKERS)
		return -EAGAIN;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		for (i = 0; i < BENCH_ARRAY_SIZE(sigs); i++)
			signal(sigs[i], SIG_DFL);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		for (i = 0; env && env[i]; i++)
			putenv(env[i]);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	/* Both sides set the group: kill(-pid) works as soon as we return. */
	setpgid(pid, pid);
	snprintf(bench_sig.broker_dir[slot], sizeof(bench_sig.broker_dir[slot]),
		 "%s", dir ? dir : "");
	bench_sig.broker[slot] = pid;
	return pid;
}

/* Stops what bench_broker_spawn() started (and removes its dir). */
static inline void bench_broker_kill(pid_t pid)
{
	unsigned i;

	if (pid <= 0)
		return;
	for (i = 0; i < BENCH_MAX_BROKERS; i++) {
		if (bench_sig.broker[i] != pid)
			continue;
		bench_sig.broker[i] = 0;
		bench_group_stop(pid, 5000, bench_sig.broker_dir[i]);
		bench_sig.broker_dir[i][0] = '\0';
		return;
	}
	bench_group_stop(pid, 5000, NULL);
}

/*
 * Waits until @probe(@port) returns 0, for @timeout_ms at most, or until
 * @pid exits.  0, -ECHILD (it exited) or -ETIMEDOUT.
 */
static inline int bench_broker_wait(pid_t pid, int (*probe)(int port),
				    int port, unsigned timeout_ms)
{
	uint64_t deadline = bench_now_ns() + timeout_ms * (uint64_t)1000000;
	int st;

	do {
		if (!probe(port))
			return 0;
		if (waitpid(pid, &st, WNOHANG) != 0)
			return -ECHILD;
		usleep(20000);
	} while (bench_now_ns() < deadline);
	return -ETIMEDOUT;
}

#if BENCH_HAVE_RABBITMQ
static inline int bench_rmq_connect(int port, amqp_connection_state_t *conn);

/* RabbitMQ is up when a client can log in (its listener opens last). */
static inline int bench_rmq_probe(int port)
{
	amqp_connection_state_t c;
	int rc = bench_rmq_connect(port, &c);

	if (!rc) {
		amqp_connection_close(c, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(c);
	}
	return rc;
}
#else
#define bench_rmq_probe bench_tcp_probe
#endif

/* Writes @text to @dir/@name. */
static inline int bench_write_file(const char *dir, const char *name,
				   const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

/*
 * RabbitMQ, private to this run: node shmqbench-PID@localhost, AMQP on
 * 127.0.0.1:a free port, its database, logs, cookie ($HOME) and config in
 * /tmp/shmqbench.PID.rabbitmq, no plugins.  Erlang distribution goes
 * through an epmd of our own on a free port (ERL_EPMD_PORT) that we start
 * first and stop last; -start_epmd false keeps the VM from starting a
 * daemon epmd, which would outlive the run.  The VM's schedulers do not
 * busy-wait (+sbwt none ...): on a host whose CPUs run the benchmark's
 * pinned processes, a spinning broker would take their time between its
 * rows; RabbitMQ's round trip was the same either way (155 against 162 us
 * median, 64 B, one A/B run on 2 CPUs).  Startup takes seconds.  The VM
 * starts erl_child_setup and inet_gethost in sessions of their own; they
 * exit when it does (they read its pipes), shortly after the group.
 */
static inline int bench_rmq_start(struct bench_broker *b)
{
	char envs[20][256], *env[21], *argv[2];
	char eport[16], *eargv[6];
	int ports[3], rc, n = 0;
	pid_t self = getpid();

	if (access(BENCH_RMQ_SERVER, X_OK) < 0)
		return -ENOENT;
	snprintf(b->dir, sizeof(b->dir), "/tmp/shmqbench.%d.rabbitmq",
		 (int)self);
	if (mkdir(b->dir, 0700) < 0)
		return -errno;
	rc = bench_write_file(b->dir, "enabled_plugins", "[].\n");
	if (!rc)
		rc = bench_write_file(b->dir, "rabbitmq.conf",
			"# written by the shmq benchmark for one run\n"
			"disk_free_limit.absolute = 1MB\n");
	if (!rc)
		rc = bench_free_ports(ports, 3);
	if (rc)
		return rc;
	b->port = ports[0];

	snprintf(eport, sizeof(eport), "%d", ports[2]);
	eargv[0] = "epmd";
	eargv[1] = "-port";
	eargv[2] = eport;
	eargv[3] = "-address";
	eargv[4] = "127.0.0.1";
	eargv[5] = NULL;
	/* The directory goes with epmd, which stops last (bench_kill_all). */
	b->epmd = bench_broker_spawn(eargv, NULL, b->log, b->dir);
	if (b->epmd < 0)
		return b->epmd;
	rc = bench_broker_wait(b->epmd, bench_tcp_probe, ports[2], 5000);
	if (rc)
		return rc;

#define BENCH_ENV(...) snprintf(envs[n], sizeof(envs[n]), __VA_ARGS__), \
		       env[n] = envs[n], n++
	BENCH_ENV("HOME=%s", b->dir);
	BENCH_ENV("RABBITMQ_NODENAME=shmqbench-%d@localhost", (int)self);
	BENCH_ENV("RABBITMQ_USE_LONGNAME=false");
	BENCH_ENV("RABBITMQ_NODE_IP_ADDRESS=127.0.0.1");
	BENCH_ENV("RABBITMQ_NODE_PORT=%d", ports[0]);
	BENCH_ENV("RABBITMQ_DIST_PORT=%d", ports[1]);
	BENCH_ENV("ERL_EPMD_PORT=%d", ports[2]);
	BENCH_ENV("RABBITMQ_MNESIA_BASE=%s/mnesia", b->dir);
	BENCH_ENV("RABBITMQ_LOG_BASE=%s/log", b->dir);
	BENCH_ENV("RABBITMQ_LOGS=-");
	BENCH_ENV("RABBITMQ_CONFIG_FILE=%s/rabbitmq.conf", b->dir);
	BENCH_ENV("RABBITMQ_ENABLED_PLUGINS_FILE=%s/enabled_plugins", b->dir);
	/* Neither /etc/rabbitmq/rabbitmq-env.conf nor advanced.config. */
	BENCH_ENV("RABBITMQ_CONF_ENV_FILE=%s/none", b->dir);
	BENCH_ENV("RABBITMQ_ADVANCED_CONFIG_FILE=%s/none.config", b->dir);
	BENCH_ENV("RABBITMQ_PID_FILE=%s/pid", b->dir);
	BENCH_ENV("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false "
		  "+sbwt none +sbwtdcpu none +sbwtdio none");
#undef BENCH_ENV
	env[n] = NULL;
	argv[0] = BENCH_RMQ_SERVER;
	argv[1] = NULL;
	b->pid = bench_broker_spawn(argv, env, b->log, NULL);
	if (b->pid < 0)
		return b->pid;
	return bench_broker_wait(b->pid, bench_rmq_probe, b->port, 60000);
}

/* nats-server -a 127.0.0.1 -p PORT: core NATS, no JetStream, no state. */
static inline int bench_nats_start(struct bench_broker *b)
{
	char port[16], *argv[6];
	int rc;

	rc = bench_free_ports(&b->port, 1);
	if (rc)
		return rc;
	snprintf(port, sizeof(port), "%d", b->port);
	argv[0] = "nats-server";
	argv[1] = "-a";
	argv[2] = "127.0.0.1";
	argv[3] = "-p";
	argv[4] = port;
	argv[5] = NULL;
	b->pid = bench_broker_spawn(argv, NULL, b->log, NULL);
	if (b->pid < 0)
		return b->pid;
	return bench_broker_wait(b->pid, bench_tcp_probe, b->port, 10000);
}

/* Stops @b's server, then its epmd; removes its scratch directory. */
static inline void bench_broker_stop(struct bench_broker *b)
{
	bench_broker_kill(b->pid);
	bench_broker_kill(b->epmd);
	bench_rmtree(b->dir);	/* when epmd did not start */
	b->pid = b->epmd = 0;
	b->dir[0] = '\0';
}

/*
 * Starts broker @b for the run, its output in --out DIR/@logname, else in
 * /tmp/shmqbench.PID.@logname; on failure its rows say why (and the log
 * stays).  @slow: it takes seconds to start, so --smoke skips it.
 */
static inline void bench_broker_begin(const struct bench_opts *o,
				      struct bench_broker *b,
				      const char *logname, int slow)
{
	int rc;

	if (slow && o->smoke) {
		b->err = "skipped in --smoke: its broker takes seconds to "
			 "start (make bench runs it)";
		return;
	}
	if (o->out) {
		mkdir(o->out, 0777);
		snprintf(b->log, sizeof(b->log), "%s/%s", o->out, logname);
	} else {
		snprintf(b->log, sizeof(b->log), "/tmp/shmqbench.%d.%s",
			 (int)getpid(), logname);
	}
	unlink(b->log);
	rc = b == &bench_rmq_broker ? bench_rmq_start(b) : bench_nats_start(b);
	if (!rc)
		return;
	if (rc == -ENOENT)
		snprintf(b->why, sizeof(b->why), "not installed: %s (make "
			 "bench-deps)", b->name);
	else if (rc == -ETIMEDOUT)
		snprintf(b->why, sizeof(b->why), "%s did not come up in time "
			 "(log: %s)", b->name, b->log);
	else if (rc == -ECHILD)
		snprintf(b->why, sizeof(b->why), "%s exited while starting "
			 "(log: %s)", b->name, b->log);
	else
		snprintf(b->why, sizeof(b->why), "%s: %s (log: %s)", b->name,
			 strerror(-rc), b->log);
	b->err = b->why;
	bench_broker_stop(b);
}

/* Prints where @b runs, if we started it. */
static inline void bench_broker_say(const struct bench_broker *b)
{
	if (b->pid > 0)
		printf("%s started for this run (pid %d, 127.0.0.1:%d, log "
		       "%s)\n", b->name, (int)b->pid, b->port, b->log);
}

/* The end of the run: stops @b; its log stays only under --out. */
static inline void bench_broker_end(const struct bench_opts *o,
				    struct bench_broker *b)
{
	int started = b->pid > 0;

	bench_broker_stop(b);
	if (started && !o->out)
		unlink(b->log);
}

/* ---- RabbitMQ: a topic exchange, a queue per channel --------------------- */

/* An unavailable op: NULL when RabbitMQ is built in and its broker runs. */
static inline const char *bench_rmq_unavailable(size_t size BENCH_UNUSED)
{
	if (!BENCH_HAVE_RABBITMQ)
		return "not installed: librabbitmq-dev, rabbitmq-server "
		       "(make bench-deps)";
	return bench_rmq_broker.err;
}

#if BENCH_HAVE_RABBITMQ
/* One process's AMQP connection, channel 1, and its two channels' names. */
struct bench_rmq {
	struct bench_msg m;
	char exchange[48];	/* a topic exchange, one per setup */
	char key[2][64];	/* each channel's routing key */
	char queue[2][64];	/* each channel's queue, bound by "*.DIR" */
	amqp_connection_state_t conn;
	int tx, rx;		/* our channels, after attach; -1: none */
};

/* 0, or -EIO after saying on stderr what failed (an RPC's reply). */
static inline int bench_rmq_check(amqp_rpc_reply_t r, const char *what)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		fprintf(stderr, "rabbitmq: %s: %s\n", what,
			amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		fprintf(stderr, "rabbitmq: %s: server closed the %s (method "
			"0x%08x)\n", what, r.reply.id ==
			AMQP_CONNECTION_CLOSE_METHOD ? "connection" : "channel",
			r.reply.id);
		break;
	default:
		fprintf(stderr, "rabbitmq: %s: no reply\n", what);
	}
	return -EIO;
}

/*
 * Connects to our broker as guest (allowed from localhost only, which we
 * are), without heartbeats, and opens channel 1.  Sockets have TCP_NODELAY
 * on both ends (librabbitmq and RabbitMQ's default).
 */
static inline int bench_rmq_connect(int port, amqp_connection_state_t *conn)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *sock;
	int rc = -ENOMEM;

	if (!c)
		return -ENOMEM;
	sock = amqp_tcp_socket_new(c);
	if (!sock)
		goto fail;
	rc = -ECONNREFUSED;
	if (amqp_socket_open(sock, "127.0.0.1", port) != AMQP_STATUS_OK)
		goto fail;
	rc = -EACCES;
	if (amqp_login(c, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0,
		       AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
	    AMQP_RESPONSE_NORMAL)
		goto fail;
	amqp_channel_open(c, 1);
	rc = bench_rmq_check(amqp_get_rpc_reply(c), "channel.open");
	if (rc)
		goto fail;
	*conn = c;
	return 0;
fail:
	amqp_destroy_connection(c);
	return rc;
}

static inline int bench_rmq_send_buf(void *ep, const void *buf, size_t len)
{
	struct bench_rmq *e = ep;
	amqp_basic_properties_t props = {
		._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
		.delivery_mode = 1,	/* transient: never written to disk */
	};
	amqp_bytes_t body = { .len = len, .bytes = (void *)buf };
	int rc;

	/* Written to the socket before it returns: no client-side buffer. */
	rc = amqp_basic_publish(e->conn, 1, amqp_cstring_bytes(e->exchange),
				amqp_cstring_bytes(e->key[e->tx]), 0, 0,
				&props, body);
	if (rc == AMQP_STATUS_OK)
		return 0;
	fprintf(stderr, "rabbitmq: basic.publish: %s\n",
		amqp_error_string2(rc));
	return -EIO;
}

/* The next delivery on our consumer; copies at most @len bytes of it. */
static inline ssize_t bench_rmq_recv_buf(void *ep, void *buf, size_t len)
{
	struct bench_rmq *e = ep;
	amqp_envelope_t env;
	size_t n;
	int rc;

	amqp_maybe_release_buffers(e->conn);
	rc = bench_rmq_check(amqp_consume_message(e->conn, &env, NULL, 0),
			     "basic.deliver");
	if (rc)
		return rc;
	n = env.message.body.len;
	memcpy(buf, env.message.body.bytes, n < len ? n : len);
	amqp_destroy_envelope(&env);
	return (ssize_t)n;
}

static inline int bench_rmq_send(void *ep)
{
	struct bench_rmq *e = ep;

	return bench_rmq_send_buf(ep, e->m.buf, e->m.size);
}

static inline ssize_t bench_rmq_recv(void *ep)
{
	struct bench_rmq *e = ep;

	return bench_rmq_recv_buf(ep, e->m.buf, e->m.size);
}

static const struct bench_xfer bench_rmq_xfer BENCH_UNUSED = {
	.send = bench_rmq_send, .recv = bench_rmq_recv,
	.send_buf = bench_rmq_send_buf, .recv_buf = bench_rmq_recv_buf,
};

/*
 * Parent: declares topic exchange shmqbench.PID.SERIAL and, for channel i
 * of @nchan, queue shmqbench.PID.SERIAL.DIR[i] bound to it by "*.DIR[i]"
 * (messages go with routing key "shmqbench.DIR[i]").  All non-durable;
 * the queues auto-delete when their consumer leaves, and the exchange
 * when its last binding goes, so a run leaves nothing in the broker.
 */
static inline int bench_rmq_setup(struct bench_rmq *e, size_t size,
				  unsigned serial, unsigned nchan,
				  const char *const *dir)
{
	amqp_connection_state_t c;
	char bind[64];
	unsigned i;
	int rc;

	bench_msg_setup(&e->m, &bench_rmq_xfer, size);
	snprintf(e->exchange, sizeof(e->exchange), "shmqbench.%d.%u",
		 (int)getpid(), serial);
	rc = bench_rmq_connect(bench_rmq_broker.port, &c);
	if (rc)
		return rc;
	amqp_exchange_declare(c, 1, amqp_cstring_bytes(e->exchange),
			      amqp_cstring_bytes("topic"), 0, 0, 1, 0,
			      amqp_empty_table);
	rc = bench_rmq_check(amqp_get_rpc_reply(c), "exchange.declare");
	for (i = 0; i < nchan && !rc; i++) {
		snprintf(e->key[i], sizeof(e->key[i]), "shmqbench.%s", dir[i]);
		snprintf(e->queue[i], sizeof(e->queue[i]), "%s.%s",
			 e->exchange, dir[i]);
		snprintf(bind, sizeof(bind), "*.%s", dir[i]);
		amqp_queue_declare(c, 1, amqp_cstring_bytes(e->queue[i]), 0, 0,
				   0, 1, amqp_empty_table);
		rc = bench_rmq_check(amqp_get_rpc_reply(c), "queue.declare");
		if (rc)
			break;
		amqp_queue_bind(c, 1, amqp_cstring_bytes(e->queue[i]),
				amqp_cstring_bytes(e->exchange),
				amqp_cstring_bytes(bind), amqp_empty_table);
		rc = bench_rmq_check(amqp_get_rpc_reply(c), "queue.bind");
	}
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	return rc;
}

/*
 * Child: its own connection; publishes on channel @tx, consumes channel
 * @rx's queue (-1: none) with no-ack: the broker counts a message
 * delivered once written to us (prefetch limits apply only to acked
 * deliveries).  The queues exist before fork(), so nothing sent before
 * the consumer starts is lost.
 */
static inline int bench_rmq_attach(struct bench_rmq *e, int tx, int rx)
{
	int rc;

	e->tx = tx;
	e->rx = rx;
	rc = bench_msg_attach(&e->m);
	if (!rc)
		rc = bench_rmq_connect(bench_rmq_broker.port, &e->conn);
	if (rc || rx < 0)
		return rc;
	amqp_basic_consume(e->conn, 1, amqp_cstring_bytes(e->queue[rx]),
			   amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
	return bench_rmq_check(amqp_get_rpc_reply(e->conn), "basic.consume");
}

/*
 * Child: closing the connection is a handshake the broker answers after
 * every frame we sent before it: what we published has been routed.
 */
static inline void bench_rmq_detach(void *ep, int side)
{
	struct bench_rmq *e = ep;

	if (e->conn) {
		amqp_connection_close(e->conn, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(e->conn);
		e->conn = NULL;
	}
	bench_msg_detach(&e->m, side);
}
#endif /* BENCH_HAVE_RABBITMQ */

/* ---- NATS: core publish/subscribe, a subject per channel ----------------- */

static inline const char *bench_nats_unavailable(size_t size BENCH_UNUSED)
{
	if (!BENCH_HAVE_NATS)
		return "not installed: libnats-dev, nats-server "
		       "(make bench-deps)";
	return bench_nats_broker.err;
}

#if BENCH_HAVE_NATS
struct bench_nats {
	struct bench_msg m;
	char subj[2][64];	/* each channel's subject */
	struct bench_shm shm;	/* map: the subscribed count, shared */
	natsConnection *nc;
	natsSubscription *sub;	/* on our receiving channel */
	int tx;			/* our sending channel, after attach */
};

/* 0, or -errno after saying on stderr what failed. */
static inline int bench_nats_check(natsStatus s, const char *what)
{
	if (s == NATS_OK)
		return 0;
	fprintf(stderr, "nats: %s: %s\n", what, natsStatus_GetText(s));
	return s == NATS_TIMEOUT ? -ETIMEDOUT : -EIO;
}

/*
 * Publishes: into the client's buffer, which its flusher thread writes
 * at once, or (attach's @asap) straight to the socket.  Either way the
 * receiving side counts what arrives.
 */
static inline int bench_nats_send_buf(void *ep, const void *buf, size_t len)
{
	struct bench_nats *e = ep;

	return bench_nats_check(natsConnection_Publish(e->nc, e->subj[e->tx],
						       buf, (int)len),
				"publish");
}

/* The next message of our subscription; copies at most @len bytes. */
static inline ssize_t bench_nats_recv_buf(void *ep, void *buf, size_t len)
{
	struct bench_nats *e = ep;
	natsMsg *msg;
	size_t n;
	int rc;

	/* A minute: the watchdog ends a run that stalls sooner. */
	rc = bench_nats_check(natsSubscription_NextMsg(&msg, e->sub, 60000),
			      "next message");
	if (rc)
		return rc;
	n = (size_t)natsMsg_GetDataLength(msg);
	memcpy(buf, natsMsg_GetData(msg), n < len ? n : len);
	natsMsg_Destroy(msg);
	return (ssize_t)n;
}

static inline int bench_nats_send(void *ep)
{
	struct bench_nats *e = ep;

	return bench_nats_send_buf(ep, e->m.buf, e->m.size);
}

static inline ssize_t bench_nats_recv(void *ep)
{
	struct bench_nats *e = ep;

	return bench_nats_recv_buf(ep, e->m.buf, e->m.size);
}

static const struct bench_xfer bench_nats_xfer BENCH_UNUSED = {
	.send = bench_nats_send, .recv = bench_nats_recv,
	.send_buf = bench_nats_send_buf, .recv_buf = bench_nats_recv_buf,
};

/*
 * Parent: subjects shmqbench.PID.SERIAL.DIR[i] for the @nchan channels,
 * and the shared word in which both sides count their subscriptions.
 */
static inline int bench_nats_setup(struct bench_nats *e, size_t size,
				   unsigned serial, unsigned nchan,
				   const char *const *dir)
{
	unsigned i;

	bench_msg_setup(&e->m, &bench_nats_xfer, size);
	for (i = 0; i < nchan; i++)
		snprintf(e->subj[i], sizeof(e->subj[i]), "shmqbench.%d.%u.%s",
			 (int)getpid(), serial, dir[i]);
	return bench_shm_setup(&e->shm, BENCH_ALIGN, 0);
}

/*
 * Child: its own connection (no reconnect: a lost connection fails the
 * run rather than losing messages quietly), publishing on channel @tx and
 * subscribed to channel @rx.  Core NATS delivers only to subscriptions the
 * server has when the message arrives, so each of the two sides flushes
 * (the server has then processed our SUB), counts itself in the shared
 * word and waits, 10 s at most, for the other.
 */
static inline int bench_nats_attach(struct bench_nats *e, int tx, int rx,
				    int asap)
{
	_Atomic uint32_t *subscribed = e->shm.map;
	natsOptions *opts = NULL;
	char url[64];
	unsigned i;
	int rc;

	e->tx = tx;
	rc = bench_msg_attach(&e->m);
	if (rc)
		return rc;
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d",
		 bench_nats_broker.port);
	rc = bench_nats_check(natsOptions_Create(&opts), "options");
	if (!rc)
		rc = bench_nats_check(natsOptions_SetURL(opts, url), "url");
	if (!rc)
		rc = bench_nats_check(natsOptions_SetSendAsap(opts, asap),
				      "send asap");
	if (!rc)
		rc = bench_nats_check(natsOptions_SetAllowReconnect(opts,
								   false),
				      "reconnect");
	if (!rc)
		rc = bench_nats_check(natsConnection_Connect(&e->nc, opts),
				      "connect");
	natsOptions_Destroy(opts);
	if (!rc && rx >= 0)
		rc = bench_nats_check(natsConnection_SubscribeSync(&e->sub,
						e->nc, e->subj[rx]),
				      "subscribe");
	if (!rc)
		rc = bench_nats_check(natsConnection_FlushTimeout(e->nc,
								  10000),
				      "flush");
	if (rc)
		return rc;
	/* relaxed: only a count; NATS itself orders the messages. */
	atomic_fetch_add_explicit(subscribed, 1, memory_order_relaxed);
	for (i = 0; i < 10000; i++) {
		if (atomic_load_explicit(subscribed, memory_order_relaxed) >= 2)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/*
 * Child: a flush first (a PING the server answers after everything we
 * published before it), then close; exit() follows.
 */
static inline void bench_nats_detach(void *ep, int side)
{
	struct bench_nats *e = ep;

	if (e->nc)
		natsConnection_FlushTimeout(e->nc, 10000);
	if (e->sub)
		natsSubscription_Destroy(e->sub);
	if (e->nc) {
		natsConnection_Close(e->nc);
		natsConnection_Destroy(e->nc);
	}
	e->sub = NULL;
	e->nc = NULL;
	nats_Close();
	bench_msg_detach(&e->m, side);
}

static inline void bench_nats_teardown(void *ep)
{
	struct bench_nats *e = ep;

	bench_shm_teardown(&e->shm);
}
#endif /* BENCH_HAVE_NATS */

#endif /* BENCH_BROKER_H */
