/* SPDX-License-Identifier: MIT */
/*
 * shmq.h - the whole public API of libshmq.
 *
 * shmq is a message queue for processes on one Linux host.  Cooperating
 * processes map one shared-memory *segment*; the segment holds a directory
 * of named *queues*; each queue is a bounded multi-producer/multi-consumer
 * ring of fixed-size slots.  A process that must wait spins briefly, then
 * sleeps on a futex in the segment; the peer that makes progress wakes it.
 *
 * Conventions used by every function below:
 *   - Results are 0, a length or a count where stated, or a negative errno
 *     value.  Nothing here sets errno, prints, or aborts.
 *     shmq_strerror() explains every code.
 *   - Timeouts are relative nanoseconds: 0 = do not block,
 *     SHMQ_FOREVER (-1) = block until done, > 0 = block at most that long
 *     (measured on CLOCK_MONOTONIC, not extended by signals).  Any other
 *     negative value is -EINVAL.
 *   - Names (segments and queues) are 1-63 bytes of [A-Za-z0-9._-]; longer
 *     is -ENAMETOOLONG, anything else -EINVAL.  A segment "name" that
 *     contains a '/' is a file path instead (a segment that survives
 *     reboots); NULL means $SHMQ_SEGMENT, else "shmq".  Segment NAME is the
 *     POSIX shared-memory object "/shmq.NAME" (/dev/shm/shmq.NAME).
 *   - Attribute pointers may be NULL; a zero field means the default.
 *   - The control plane.  Calls that change or read the segment's tables
 *     (segment open, observe and recover; queue create, open, close and
 *     unlink; the inspection calls; the first call on an SPSC queue's side)
 *     take the segment's control-plane lock, an OFD lock on one byte of
 *     its file, held only briefly.  They return -EBUSY at once if someone
 *     holds a read lock there (anyone who can read the file can; no
 *     library call ever does: see the README's trust model).  The data
 *     path (send, recv and their variants) never takes it.
 *   - Handles (shmq_seg *, shmq *) may be used by many threads of one process
 *     at once.  A handle that has been closed must not be used again.
 *   - fork(): the child's copies of its parent's attachments are inert (a
 *     pthread_atfork handler drops the child's reference to their files, so
 *     that a parent that dies is seen dead however long the child lives);
 *     their control-plane calls return -EBADF and their queues must not be
 *     used.  The child opens its own.  The list of the process's
 *     attachments that this needs is the library's only global state.
 */
#ifndef SHMQ_H
#define SHMQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_VERSION_MAJOR 0
#define SHMQ_VERSION_MINOR 4
#define SHMQ_VERSION_PATCH 0

/* Block until the operation can complete. */
#define SHMQ_FOREVER ((int64_t)-1)

/* Defaults applied to NULL attributes and zero fields. */
#define SHMQ_DEFAULT_SEG_SIZE   ((size_t)64 << 20)   /* 64 MiB */
#define SHMQ_DEFAULT_SEG_MODE   0600
#define SHMQ_DEFAULT_MAX_QUEUES 256
#define SHMQ_DEFAULT_MAX_PROCS  64
#define SHMQ_DEFAULT_CAPACITY   1024
#define SHMQ_DEFAULT_MSG_SIZE   256
#define SHMQ_DEFAULT_SPIN_NS    20000                /* 20 us */
#define SHMQ_DEFAULT_STALL_NS   5000000              /* 5 ms */

/* Limits checked by shmq_seg_create() and shmq_create(). */
#define SHMQ_NAME_MAX       63
#define SHMQ_MAX_QUEUES     4096
#define SHMQ_MAX_PROCS      1024
#define SHMQ_MAX_CAPACITY   (1u << 24)
#define SHMQ_MAX_MSG_SIZE   (64u << 20)

/*
 * The errors libshmq returns, negated: X(code, name, message).  One table
 * generates shmq_strerror() and shmq_errname().
 */
#define SHMQ_ERRNO_MAP(X)                                                     \
	X(EAGAIN, "EAGAIN", "operation would block (queue empty or full)")   \
	X(ETIMEDOUT, "ETIMEDOUT", "timed out")                                \
	X(EMSGSIZE, "EMSGSIZE",                                               \
	  "message larger than the queue's msg_size or the buffer")           \
	X(ENOENT, "ENOENT", "no such segment or queue")                       \
	X(EEXIST, "EEXIST", "segment or queue already exists")                \
	X(EINVAL, "EINVAL", "invalid argument")                               \
	X(ENAMETOOLONG, "ENAMETOOLONG", "name longer than 63 bytes")          \
	X(ENOSPC, "ENOSPC",                                                   \
	  "no space left: in /dev/shm or the file system (creating a "        \
	  "segment), or in the segment's memory or queue directory "          \
	  "(creating a queue)")                                               \
	X(EPROTO, "EPROTO",                                                   \
	  "segment corrupt, foreign, or of another layout version")          \
	X(EACCES, "EACCES", "permission denied")                              \
	X(EUSERS, "EUSERS",                                                   \
	  "too many processes attached (process table full)")                 \
	X(ENOMEM, "ENOMEM", "out of memory")                                  \
	X(EBADF, "EBADF", "bad handle")                                       \
	X(EINTR, "EINTR", "interrupted")                                      \
	X(ENOSYS, "ENOSYS", "not supported by this kernel")                   \
	X(EIO, "EIO", "I/O error")                                            \
	X(EPERM, "EPERM", "operation not permitted")                          \
	X(EMFILE, "EMFILE", "too many open files")                            \
	X(ENFILE, "ENFILE", "too many open files in system")                  \
	X(ENOTDIR, "ENOTDIR", "a component of the path is not a directory")   \
	X(EROFS, "EROFS", "read-only file system")                            \
	X(EBUSY, "EBUSY", "resource busy")                                    \
	X(ENOBUFS, "ENOBUFS",                                                 \
	  "too many operations in flight in this process (zero-copy "        \
	  "messages held, or a publish's claims)")                            \
	X(E2BIG, "E2BIG",                                                     \
	  "a publish matches more than SHMQ_PUBLISH_MAX blocking queues")     \
	X(ELOOP, "ELOOP",                                                     \
	  "the segment's name is a symbolic link (never followed)")           \
	X(EISDIR, "EISDIR", "the segment's name is a directory")

typedef struct shmq_seg shmq_seg;   /* a process's attachment to a segment */
typedef struct shmq shmq;           /* an open queue */

/*
 * Segment attributes.
 * @size:       bytes, rounded up to the page size (default 64 MiB); reserved
 *              at creation, so a full /dev/shm fails creation, not later.
 * @mode:       permission bits within 0666 (read and write only: anything
 *              else, set-id or execute bits, is -EINVAL), applied exactly,
 *              not filtered by umask (default 0600).  The kernel's file
 *              permissions are the access control.
 * @flags:      0, or SHMQ_SEG_GROUP to apply @gid.
 * @max_queues: directory entries (default 256, at most SHMQ_MAX_QUEUES).
 * @max_procs:  process-table entries: how many attachments may exist at
 *              once (default 64, at most SHMQ_MAX_PROCS).
 * @gid:        (since 0.2) group owner of the segment's file, applied only
 *              when @flags has SHMQ_SEG_GROUP (so a caller built against 0.1,
 *              whose struct ends before it, is never misread).  Set before
 *              the segment gets its name: no peer sees another group.
 */
struct shmq_seg_attr {
	size_t size;
	mode_t mode;
	unsigned flags;
	uint32_t max_queues;
	uint32_t max_procs;
	uint32_t gid;
};

/* shmq_seg_attr.flags: @gid is set. */
#define SHMQ_SEG_GROUP 0x2u

/*
 * Queue attributes.
 * @capacity: messages, rounded up to a power of two, at least 2
 *            (default 1024, at most SHMQ_MAX_CAPACITY).
 * @msg_size: largest payload in bytes (default 256, at most
 *            SHMQ_MAX_MSG_SIZE); messages may be any length from 0 to it.
 * @flags:    0 (a multi-producer multi-consumer queue), or SHMQ_SPSC;
 *            since 0.4 also SHMQ_DROP_NEWEST or SHMQ_DROP_OLDEST, and
 *            SHMQ_AUTODELETE (below).
 */
struct shmq_attr {
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t flags;
	/*
	 * Since 0.4: acknowledged delivery (shmq_fetch()), MPMC queues only
	 * (an SHMQ_SPSC queue takes zeros).  0 in each means its default.
	 * Programs built against 0.3 pass the three fields above and get the
	 * defaults (their shmq_create and shmq_get_attr are the 0.3 ones).
	 * @max_unacked:    messages the queue's unacknowledged area holds:
	 *                  fetched and not yet acknowledged, over every
	 *                  consumer (default min(capacity, 64), at most
	 *                  SHMQ_MAX_UNACKED).  A full area makes shmq_fetch()
	 *                  wait; it never drops.
	 * @prefetch:       how many of them one handle may owe at once, like
	 *                  RabbitMQ's prefetch count (default @max_unacked:
	 *                  no limit beyond the area's).
	 * @max_deliveries: a message delivered this many times is not
	 *                  delivered again: it goes to @dead_letter (default
	 *                  0: no limit).
	 * @dead_letter:    "" or the name of the exchange that gets such
	 *                  messages, with their routing key; without one they
	 *                  are dropped.  Both are counted (dead_lettered).
	 */
	uint32_t max_unacked;
	uint32_t prefetch;
	uint32_t max_deliveries;
	char dead_letter[SHMQ_NAME_MAX + 1];
};

#define SHMQ_MAX_UNACKED 65535
#define SHMQ_DEFAULT_UNACKED 64

/*
 * shmq_attr.flags: a queue for exactly one sender and one receiver at a
 * time (since 0.3), for streams where the MPMC queue's per-message atomic
 * instructions are the cost: no atomic read-modify-write and no fence on
 * its fast paths; a message of up to 64 bytes is one payload line plus an
 * 8-byte entry (eight to a line).
 *
 * Contract.  The sending side belongs to one handle, and within it to the
 * first thread that sends through it (shmq_send, shmq_send_batch,
 * shmq_reserve, shmq_commit); likewise the receiving side (shmq_recv,
 * shmq_recv_batch, shmq_acquire, shmq_release, shmq_purge).  Each is
 * taken on that first call and kept until the handle is closed or its
 * process dies; meanwhile another handle (in any process) or another
 * thread gets -EBUSY.  A stopped process still holds its side.  One
 * thread may hold both sides; a producer and a consumer thread may share
 * one handle.  (As everywhere, a forked child must not use its parent's
 * handles: it would pass for the thread that forked.)
 *
 * Differences from the MPMC queue.  Zero-copy operations of a side
 * complete in the order they were made (shmq_commit/shmq_release of any
 * other than the oldest outstanding token is -EINVAL), and a copying call
 * on a side with one outstanding is -EBUSY.  If the sender dies, its
 * unpublished messages are gone (none is half-visible; one whose call did
 * not return may be out already); if the receiver
 * dies, the message it was reading or held (acquired) is delivered again
 * to the next receiver (at least once), with the rest.  Nothing needs a
 * repair: a side held by a dead process is taken over by the next caller.
 * A receiver about to sleep runs membarrier(2) (MEMBARRIER_CMD_GLOBAL_
 * EXPEDITED) instead of the sender fencing every message: an
 * inter-processor interrupt to each CPU running a process attached to an
 * SPSC queue, on each such sleep; and its first sleep after announcing
 * itself lasts at most 1 ms (it then looks again and sleeps on), because
 * Linux may miss a CPU (see ipc/wait.c, SPSC_GUARD_NS).  The library
 * registers the process for that (MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)
 * at its first shmq_open() of an SPSC queue, unless $SHMQ_SPSC_FENCE is
 * set (non-zero): then its senders and receivers fence each message.
 * Latency: a polling round trip costs about 1.2x the default queue's (a
 * message is an entry line and a payload line, fetched side by side);
 * blocking at the default spin budget, about the same.  SHMQ_SPSC is for
 * streams.
 */
#define SHMQ_SPSC 0x1u

/*
 * shmq_attr.flags (since 0.4): what a send or a publish does at a full
 * queue.  Default (neither): wait, per the call's timeout.
 * SHMQ_DROP_NEWEST: refuse the new message at once (shmq_send: -EAGAIN;
 * shmq_publish: the queue is skipped), counted in shmq_queue_info.dropped.
 * SHMQ_DROP_OLDEST: discard the oldest message(s) to make room, never wait
 * (counted likewise), unless nothing can be discarded (the oldest
 * position is still being written, or awaits the repair of a dead
 * producer's claim): then a send waits as the default does, and a publish
 * skips the queue (counted as dropped).  Not for SHMQ_SPSC queues (its
 * sender cannot receive).  Both together: -EINVAL.
 * SHMQ_AUTODELETE: the queue is unlinked (its bindings with it) when its
 * last handle closes, or when the last process holding one dies (crash
 * recovery does it: at the next attach, shmq_seg_recover(), or a publisher
 * that routes anew).  A queue created with it and never opened stays.
 * The library's own handles (an exchange's route cache) do not count.
 */
#define SHMQ_DROP_NEWEST 0x2u
#define SHMQ_DROP_OLDEST 0x4u
#define SHMQ_AUTODELETE  0x8u

/*
 * A zero-copy message: @data points into the queue's slot, @len is its
 * length, @token identifies the reservation or acquisition.  Fill it only
 * through shmq_reserve()/shmq_acquire(); only @len may be changed (smaller)
 * before shmq_commit().
 */
struct shmq_msg {
	void *data;
	size_t len;
	uint64_t token;
};

/* Library version as MAJOR.MINOR.PATCH, e.g. "0.1.0". */
const char *shmq_version(void);

/**
 * shmq_strerror - describe an error code
 * @err: an error returned by libshmq (negative), or an errno (positive)
 *
 * Returns a static string; never NULL, also for unknown codes.
 * Thread safety: safe.
 */
const char *shmq_strerror(int err);

/**
 * shmq_errname - the symbolic name of an error code ("EAGAIN")
 * @err: negative or positive errno
 *
 * Returns a static string such as "EAGAIN", or "0" for 0, or "E?" for a
 * code this library does not return.  Thread safety: safe.
 */
const char *shmq_errname(int err);

/* ---- segments ---------------------------------------------------------- */

/**
 * shmq_seg_create - create a segment and attach to it
 * @name: segment name or file path (see top of file), NULL for the default
 * @attr: attributes, or NULL for defaults
 * @out:  on success, the attachment
 *
 * The segment is built and reserved under no name, then linked to its name
 * in one step: other processes never see a half-built segment.
 *
 * Returns 0, or -EEXIST (name taken: checked first, so also on a full file
 * system), -EINVAL (bad attribute, a mode bit outside 0666, size too
 * small for its tables, unknown flag), -ENAMETOOLONG, -ENOSPC (no room in
 * /dev/shm or on the file system), -EACCES, -EPERM (SHMQ_SEG_GROUP names a
 * group the caller may not give files to), -EUSERS, -ENOMEM, or another
 * -errno from the kernel.
 *
 * The safe way to share a segment by name is create, and on -EEXIST open:
 * shmq_seg_open() refuses a file someone else squatted on the name (see
 * there), so this never attaches to another user's file unknowingly.
 * Blocks: no.  Thread safety: safe.
 */
int shmq_seg_create(const char *name, const struct shmq_seg_attr *attr,
		    shmq_seg **out);

/**
 * shmq_seg_open - attach to an existing segment
 * @name: segment name or file path, NULL for the default
 * @out:  on success, the attachment
 *
 * Validates the whole segment before use (magic, layout version, every
 * size and offset, every queue record) and takes an entry in its process
 * table.  Same as shmq_seg_open_flags(@name, 0, @out).
 *
 * Ownership.  The segment's file must be owned by the caller's effective
 * uid or by root; anything else is -EACCES, even where the file's mode
 * would let the caller in.  Anyone can create /dev/shm/shmq.NAME before a
 * daemon does (name squatting); its owner could then read every message
 * and shrink the file under the daemon (SIGBUS).  To share a segment
 * among users, create it as root, or have the others opt in to trusting
 * its group or anyone with shmq_seg_open_flags().
 *
 * Returns 0, or -ENOENT, -EINVAL/-ENAMETOOLONG (bad name), -EACCES (no
 * permission, or owned by a user not trusted), -ELOOP (the name is a
 * symbolic link), -EISDIR, -EPROTO (not a shmq segment, not a regular
 * file, corrupt, or another layout version), -EUSERS (process table
 * full), -EBUSY (entries free but read-locked by someone with read access
 * to the file: see the README's trust model), -ENOMEM.
 * Blocks: only on the segment's control-plane lock.  Thread safety: safe.
 */
int shmq_seg_open(const char *name, shmq_seg **out);

/* shmq_seg_open_flags(): whom to trust beside ourselves and root. */
#define SHMQ_OPEN_TRUST_GROUP 0x1u  /* a file whose group is one of ours,
				     * with mode granting it read and write */
#define SHMQ_OPEN_TRUST_ANY   0x2u  /* any owner (tools, tests) */

/**
 * shmq_seg_open_flags - shmq_seg_open() with an ownership policy
 * @name:  segment name or file path, NULL for the default
 * @flags: 0, SHMQ_OPEN_TRUST_GROUP or SHMQ_OPEN_TRUST_ANY (since 0.3.1)
 * @out:   on success, the attachment
 *
 * SHMQ_OPEN_TRUST_GROUP also accepts a segment owned by another user when
 * its group is the caller's effective group or a supplementary one and
 * its mode gives that group read and write (0660, 0666): every member of
 * that group is then trusted with the caller's messages.
 * SHMQ_OPEN_TRUST_ANY accepts any owner.
 *
 * Returns as shmq_seg_open(), and -EINVAL for an unknown flag.
 */
int shmq_seg_open_flags(const char *name, unsigned flags, shmq_seg **out);

/**
 * shmq_seg_close - detach
 * @seg: attachment, or NULL (no-op)
 *
 * Queues still open stay valid: the mapping goes when the last of them is
 * closed.  @seg must not be used again.
 */
void shmq_seg_close(shmq_seg *seg);

/**
 * shmq_seg_unlink - remove a segment's name
 * @name: segment name or file path, NULL for the default
 *
 * Processes attached keep working; the memory is freed when the last one
 * detaches (POSIX unlink semantics).
 *
 * Returns 0, -ENOENT, -EINVAL, -ENAMETOOLONG, -EACCES.
 */
int shmq_seg_unlink(const char *name);

/**
 * shmq_seg_recover - repair what dead processes left in a segment
 * @seg: attachment
 *
 * For every queue: a position a dead producer claimed and never published
 * becomes a tombstone that consumers skip (nothing is invented, nothing
 * committed is lost); a message a dead consumer claimed and never freed
 * (inside shmq_recv, or between shmq_acquire and shmq_release) is moved to
 * the queue's redelivery lane, which consumers drain before the ring, and
 * its slot is freed: that message is delivered again (at least once).  A
 * slot whose owner is alive, even stopped, is left alone.  Dead processes'
 * table entries and open-handle counts are reclaimed, so an unlinked queue
 * whose last user crashed is freed.  Idempotent, and safe while producers,
 * consumers and other repairers run.  shmq_seg_open() runs it; so does a
 * call that stays stuck behind a slot (shmq_set_stall()).
 *
 * Returns the number of slots repaired (>= 0), -EINVAL for a NULL @seg, or
 * an error of the control-plane lock.  A slot that cannot be repaired yet
 * (the redelivery lane is full) is left for a later pass, which a
 * consumer that finds the queue otherwise empty runs itself (and stat
 * counts such messages in the depth).
 * Blocks: on the segment's control-plane lock.  Thread safety: safe.
 */
int shmq_seg_recover(shmq_seg *seg);

/* ---- queues ------------------------------------------------------------ */

/**
 * shmq_create - create a named queue in a segment
 * @seg:  attachment
 * @name: queue name
 * @attr: attributes, or NULL for defaults
 *
 * Returns 0, or -EEXIST, -EINVAL (bad name or attribute: a capacity,
 * message size, max_unacked or prefetch out of range, unknown flags,
 * acknowledged-delivery attributes on an SHMQ_SPSC queue, a dead_letter
 * that is not a valid name; the exchange itself need not exist yet),
 * -ENAMETOOLONG, -ENOSPC (not enough free segment memory for the ring
 * and its unacknowledged area, or the directory is full).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_create(shmq_seg *seg, const char *name, const struct shmq_attr *attr);

/**
 * shmq_open - open a queue for sending and receiving
 * @seg:  attachment
 * @name: queue name
 * @out:  on success, the handle
 *
 * Returns 0, or -ENOENT, -EINVAL, -ENAMETOOLONG, -EPROTO (its record is
 * corrupt), -ENOMEM, -EPERM (@seg is an observer, see shmq_seg_observe()).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_open(shmq_seg *seg, const char *name, shmq **out);

/**
 * shmq_close - close a queue handle
 * @q: handle, or NULL (no-op)
 *
 * Outstanding zero-copy reservations and acquisitions of this handle must
 * be committed/released first: a reservation left open stalls consumers at
 * its position.  If the queue was unlinked and this was its last handle,
 * its memory is freed.  @q must not be used again.
 * Blocks: on the segment's control-plane lock (to drop the handle's count
 * and, for an SPSC queue, give back its sides), without bound: a process
 * stopped while holding that lock (SIGSTOP) stops this call too.
 */
void shmq_close(shmq *q);

/**
 * shmq_unlink - remove a queue's name
 * @seg:  attachment
 * @name: queue name
 *
 * The name disappears at once (a new queue may take it); open handles keep
 * working; the memory is freed when the last handle closes.
 *
 * Returns 0, -ENOENT, -EINVAL, -ENAMETOOLONG.
 */
int shmq_unlink(shmq_seg *seg, const char *name);

/**
 * shmq_set_spin - set the spin budget of a handle
 * @q:       handle
 * @spin_ns: nanoseconds a blocking call polls before it sleeps on the
 *           futex; 0 sleeps at once.  After the first 10 us of a spin the
 *           poll yields the CPU (sched_yield()) between rounds, so that a
 *           peer waiting for a CPU can run; on a busy machine a spin may
 *           then overrun its budget (or a timeout) by a scheduler time
 *           slice.
 *
 * The initial budget is $SHMQ_SPIN_NS if set (a decimal number of
 * nanoseconds), else SHMQ_DEFAULT_SPIN_NS.
 * Returns 0, or -EINVAL for a negative value.  Thread safety: safe.
 */
int shmq_set_spin(shmq *q, int64_t spin_ns);

/**
 * shmq_set_stall - set how long a blocked call waits behind a stuck slot
 *                  before it repairs the queue
 * @q:        handle
 * @stall_ns: nanoseconds; 0 never repairs from this handle's waits
 *
 * A slot is stuck when a producer claimed it and has not published it, or a
 * consumer claimed it and has not freed it.  Its owner may be slow, stopped
 * or dead.  A call that has waited behind the same stuck slot for @stall_ns
 * runs the repair of shmq_seg_recover() on this queue: a slot whose owner
 * is dead is repaired; one whose owner lives is waited for, however long.
 * Blocking calls check before they sleep; polling calls (timeout 0) every
 * 1024 calls that find nothing to do.
 *
 * The initial value is $SHMQ_STALL_NS if set, else SHMQ_DEFAULT_STALL_NS.
 * Returns 0, or -EINVAL for a negative value.  Thread safety: safe.
 */
int shmq_set_stall(shmq *q, int64_t stall_ns);

/**
 * shmq_get_attr - the queue's actual attributes (capacity after rounding)
 * Returns 0, or -EINVAL for a NULL argument.
 */
int shmq_get_attr(const shmq *q, struct shmq_attr *attr);

/* ---- sending and receiving --------------------------------------------- */

/**
 * shmq_send - copy one message into the queue
 * @q:          handle
 * @msg:        payload (may be NULL if @len is 0)
 * @len:        0 to msg_size bytes
 * @timeout_ns: 0, SHMQ_FOREVER, or relative nanoseconds
 *
 * Returns 0, or -EMSGSIZE (@len > msg_size), -EAGAIN (full and
 * @timeout_ns == 0), -ETIMEDOUT (still full at the deadline), -EINVAL,
 * -ENOBUFS (this thread needs an operation record and the process holds
 * all of them through zero-copy calls: see shmq_reserve()).
 * Blocks: while the queue is full, per @timeout_ns.
 * Thread safety: safe; not async-signal-safe.
 * Ordering: FIFO; a receiver that gets this message also sees every byte
 * of it, and everything the sender wrote to memory before the call.
 * Crashes: once it returns 0 the message is committed; a sender killed
 * inside the call committed nothing (its slot becomes a tombstone).
 * SHMQ_SPSC queues, here and in every sending call: -EBUSY when another
 * handle or thread holds the sending side, or (copying calls) a
 * reservation of ours is outstanding; see SHMQ_SPSC.  The first sending
 * call of a handle takes the side under the segment's control-plane lock,
 * within the call's timeout (with timeout 0, within 1 ms): -EAGAIN
 * (timeout 0) or -ETIMEDOUT while the lock stays held (by a stopped
 * process, say), -EBUSY if a read lock blocks it (README, "Trust model").
 * shmq_commit() without a reservation may wait for it without bound.
 */
int shmq_send(shmq *q, const void *msg, size_t len, int64_t timeout_ns);

/**
 * shmq_recv - take the oldest message and copy it out
 * @q:          handle
 * @buf:        destination (may be NULL if @buflen is 0)
 * @buflen:     its size
 * @timeout_ns: 0, SHMQ_FOREVER, or relative nanoseconds
 *
 * Returns the message length (0 to msg_size), or -EMSGSIZE (the message
 * is longer than @buflen; it is not consumed), -EAGAIN (empty and
 * @timeout_ns == 0), -ETIMEDOUT, -EINVAL, -ENOBUFS (as shmq_send()).
 * Blocks: while the queue is empty, per @timeout_ns.
 * Thread safety: safe; not async-signal-safe.
 * Crashes: a receiver killed inside the call after claiming the message
 * leaves it to be delivered again (at least once, for that message).
 * SHMQ_SPSC queues, here and in every receiving call: -EBUSY when another
 * handle or thread holds the receiving side, or (copying calls) an
 * acquisition of ours is outstanding; see SHMQ_SPSC.  Taking the side, on
 * a handle's first receiving call, keeps the call's timeout on the
 * control-plane lock as shmq_send() does; shmq_release() without an
 * acquisition and shmq_purge() wait for it without bound.
 */
ssize_t shmq_recv(shmq *q, void *buf, size_t buflen, int64_t timeout_ns);

/**
 * shmq_send_batch - send up to @n messages with one claim
 * @q:          handle
 * @msgs:       the messages
 * @n:          how many, at least 1
 * @timeout_ns: how long to wait for the *first* free slot
 *
 * Sends a prefix of @msgs: it stops before the first entry longer than
 * msg_size, and sends only as many as there are free slots (at least one,
 * waiting per @timeout_ns for it).  The sent messages are consecutive in
 * the queue.
 *
 * Returns how many were sent (>= 1), or -EMSGSIZE (entry 0 too long),
 * -EAGAIN, -ETIMEDOUT, -EINVAL (@n == 0, NULL @msgs).
 * Thread safety: safe.
 */
int shmq_send_batch(shmq *q, const struct iovec *msgs, unsigned n,
		    int64_t timeout_ns);

/**
 * shmq_recv_batch - receive up to @n messages with one claim
 * @q:          handle
 * @bufs:       buffers; each iov_len is set to the received length
 * @n:          how many, at least 1
 * @timeout_ns: how long to wait for the *first* message
 *
 * Receives consecutive messages into bufs[0..k-1]; stops before a message
 * too long for its buffer (not consumed).
 *
 * Returns k >= 1, or -EMSGSIZE (the first message does not fit bufs[0];
 * not consumed), -EAGAIN, -ETIMEDOUT, -EINVAL (@n == 0, NULL @bufs).
 * Thread safety: safe.
 */
int shmq_recv_batch(shmq *q, struct iovec *bufs, unsigned n,
		    int64_t timeout_ns);

/* ---- zero-copy ----------------------------------------------------------- */

/**
 * shmq_reserve - claim a slot to write a message in place
 * @q:          handle
 * @len:        bytes to reserve, at most msg_size
 * @m:          out: data points at @len writable bytes in the slot
 * @timeout_ns: as for shmq_send()
 *
 * The slot's position in the FIFO is fixed now: consumers wait at it until
 * shmq_commit().  Keep reservations short.  Each outstanding reservation
 * or acquisition holds one of the attachment's 60 operation records.  The
 * first thread to use the attachment keeps one record for its copying
 * calls and up to 4 spare ones for its own zero-copy calls (saving two
 * atomic instructions per message); other threads cannot use those, and
 * if that thread exits they stay unused: make the first call from a
 * long-lived thread.
 *
 * Returns 0, or -EMSGSIZE, -EAGAIN, -ETIMEDOUT, -EINVAL, -ENOMEM,
 * -ENOBUFS (the process already holds 59 zero-copy messages in this
 * attachment, less one per other thread inside a copying call, and, for
 * a thread other than the first, less up to 4 spare records; commit or
 * release some).
 * Thread safety: safe; the token may be committed by any thread using @q.
 * SHMQ_SPSC queues: no operation records (no -ENOBUFS); -EBUSY when the
 * caller already holds every slot reserved; commits in reservation order,
 * by the thread that reserved.
 */
int shmq_reserve(shmq *q, size_t len, struct shmq_msg *m, int64_t timeout_ns);

/**
 * shmq_commit - publish a reserved slot
 * @q: the handle that reserved it
 * @m: as filled by shmq_reserve(), @m->len lowered if fewer bytes were
 *     written
 *
 * Returns 0, or -EINVAL (@m->len larger than reserved, or @m->token not an
 * outstanding reservation of @q).
 * Ordering: bytes written to @m->data before this call are visible to the
 * process that receives the message.
 */
int shmq_commit(shmq *q, struct shmq_msg *m);

/**
 * shmq_acquire - take the oldest message in place
 * @q:          handle
 * @m:          out: data/len of the message inside its slot (read only)
 * @timeout_ns: as for shmq_recv()
 *
 * The slot stays unavailable to producers until shmq_release().  If the
 * process dies first, the message is delivered again (at least once).
 * Returns 0, or -EAGAIN, -ETIMEDOUT, -EINVAL, -ENOMEM, -ENOBUFS (as
 * shmq_reserve()).
 */
int shmq_acquire(shmq *q, struct shmq_msg *m, int64_t timeout_ns);

/**
 * shmq_release - give an acquired slot back to producers
 * @q: the handle that acquired it
 * @m: as filled by shmq_acquire()
 *
 * Returns 0, or -EINVAL (@m->token is not an outstanding acquisition of @q).
 */
int shmq_release(shmq *q, struct shmq_msg *m);

struct shmq_meta;

/**
 * shmq_msg_meta - the metadata of a message held by shmq_acquire()
 * @q:    the handle it was acquired through
 * @m:    the acquisition (its token)
 * @meta: filled as shmq_recv_meta() fills it: the routing key, seq (the
 *        queue position the message was first published at, the same
 *        when a dead holder's message is delivered again from the
 *        redelivery lane: an idempotency key), flags and deliveries
 *
 * Returns 0, or -EINVAL (a NULL argument, or @m is not an outstanding
 * acquisition of @q).  SHMQ_SPSC queues: seq is the position, the key "".
 * Blocks: no.  Thread safety: as shmq_release() on the same token.
 */
int shmq_msg_meta(shmq *q, const struct shmq_msg *m, struct shmq_meta *meta);

/* ---- exchanges: routing by rules (since 0.4) -------------------------- */

/*
 * An exchange takes a message with a routing key and puts it into every
 * queue whose binding matches the key (AMQP 0-9-1 / RabbitMQ semantics).
 * Exchanges share the segment's directory (and namespace) with queues;
 * bindings live in the segment, so every process routes alike.
 */
typedef struct shmq_exchange shmq_exchange;

#define SHMQ_DIRECT 1   /* the binding key equals the routing key */
#define SHMQ_FANOUT 2   /* every bound queue; keys ignored */
#define SHMQ_TOPIC  3   /* dot-separated words; '*' one word, '#' zero or more */

/*
 * Exchange attributes.
 * @type:      SHMQ_DIRECT (also 0), SHMQ_FANOUT or SHMQ_TOPIC.
 * @flags:     0.
 * @alternate: NULL, or the name of the exchange that gets what nothing
 *             here matches (it need not exist yet; a chain is followed,
 *             each exchange at most once).
 */
struct shmq_xattr {
	uint32_t type;
	uint32_t flags;
	const char *alternate;
};

#define SHMQ_KEY_MAX 255

/* What a consumer learns of a message besides its bytes. */
struct shmq_meta {
	uint64_t seq;                    /* the queue position it was first
	                                  * published at: the same on a
	                                  * redelivery (an idempotency key) */
	uint32_t flags;                  /* SHMQ_META_REDELIVERED */
	uint32_t deliveries;             /* 1 the first time, +1 per redelivery */
	uint32_t key_len;
	char     key[SHMQ_KEY_MAX + 1];  /* the routing key, NUL-terminated;
	                                  * "" after shmq_send */
};
#define SHMQ_META_REDELIVERED 0x1u

/**
 * shmq_exchange_create - create a named exchange
 * @seg:  attachment
 * @name: 1-63 bytes of [A-Za-z0-9._-], unique among queues and exchanges
 * @attr: NULL for a direct exchange without an alternate
 *
 * Returns 0, or -EEXIST (a queue or exchange of that name), -EINVAL
 * (unknown type or flags, bad alternate name), -ENAMETOOLONG, -ENOSPC
 * (directory or heap full), -EBUSY/-EBADF (the
 * control plane, as shmq_create()).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_exchange_create(shmq_seg *seg, const char *name,
			 const struct shmq_xattr *attr);

/**
 * shmq_exchange_unlink - remove an exchange's name and its bindings
 * @seg:  attachment
 * @name: exchange name
 *
 * Open handles keep its storage until they close; a publish through them
 * returns -ENOENT.  Returns 0, or -ENOENT (no exchange of that name; a
 * queue's name too), -EINVAL/-ENAMETOOLONG.
 */
int shmq_exchange_unlink(shmq_seg *seg, const char *name);

/**
 * shmq_exchange_open - open an exchange for publishing
 * @seg:  attachment (not an observer: -EPERM)
 * @name: exchange name
 * @out:  on success, the handle
 *
 * The handle keeps a route cache (routing key -> queues), shared by the
 * threads that publish through it, valid until a binding, queue or
 * exchange of the segment changes (one load per publish tells).
 * Returns 0, or -ENOENT, -EINVAL/-ENAMETOOLONG, -ENOMEM, -EPERM.
 */
int shmq_exchange_open(shmq_seg *seg, const char *name, shmq_exchange **out);

/* shmq_exchange_close - close a handle (NULL is ignored); not concurrently
 * with a publish through it. */
void shmq_exchange_close(shmq_exchange *x);

/**
 * shmq_bind - route what @exchange gets with a matching key to @queue
 * @seg:      attachment
 * @exchange: exchange name
 * @queue:    queue name (an MPMC queue: SHMQ_SPSC queues cannot be bound)
 * @key:      binding key, 0-255 bytes (ignored by fanout exchanges; for
 *            topic exchanges, '*' and '#' words are wildcards)
 *
 * Idempotent: the same binding again returns 0.  A publish that starts
 * after this returns, in any process, routes by it.
 * Returns 0, or -ENOENT (no such exchange or queue), -EINVAL (NULL or
 * too long a key, bad names, an SPSC queue), -ENOSPC (the heap is full),
 * -EBUSY/-EBADF (the control-plane lock, as shmq_create()).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_bind(shmq_seg *seg, const char *exchange, const char *queue,
	      const char *key);

/**
 * shmq_unbind - remove a binding
 * Returns 0, or -ENOENT (no such binding, exchange or queue), -EINVAL.
 */
int shmq_unbind(shmq_seg *seg, const char *exchange, const char *queue,
		const char *key);

/**
 * shmq_publish - put a message into every queue whose binding matches @key
 * @x:          exchange handle
 * @key:        routing key, 0-255 bytes, NUL-terminated
 * @msg, @len:  the message (@msg may be NULL when @len is 0)
 * @timeout_ns: how long to wait for room in full queues of the default
 *              overflow policy: 0, SHMQ_FOREVER or > 0
 *
 * All or nothing: returns how many queues got the message, including
 * those reached through the alternate exchange(s) when nothing here
 * matched (0 when no queue took it: counted as unroutable when nothing
 * matched, as dropped when every matching queue was a full
 * SHMQ_DROP_NEWEST one), or a negative errno and then no queue got it,
 * so a failed publish may be retried without duplicates.  The key travels
 * in the slot before the payload: a queue takes a message only if
 * strlen(@key) + @len <= its msg_size.  Full SHMQ_DROP_NEWEST queues are
 * skipped, full SHMQ_DROP_OLDEST queues evict; both counted as dropped.
 * Nothing is held while waiting: a full queue never stops the consumers
 * of the other matching queues.  Each queue receives one publisher's
 * messages in the order they were published.
 *
 * Returns >= 0, or -EAGAIN (@timeout_ns 0) / -ETIMEDOUT (a matching
 * default-policy queue stayed full), -EMSGSIZE (does not fit a matching
 * queue), -ENOENT (the exchange was unlinked), -EINVAL (NULL @x or @key, a
 * key over 255 bytes, a bad timeout), -E2BIG (more than SHMQ_PUBLISH_MAX
 * matching default-policy queues), -ENOBUFS (no operation record free:
 * nothing was claimed), -EPROTO (the binding table is corrupt: see
 * shmq_seg_check()), -EBUSY/-EBADF (the control-plane lock, when the route
 * must be built: as for shmq_create()), -ENOMEM.
 * A publisher killed inside leaves each queue with the whole message or
 * without it (never torn), possibly in some matching queues and not
 * others.
 * Blocks: per @timeout_ns for room in full queues.  A publish whose route
 * must be built (the first of a key after any binding or directory change)
 * also takes the control-plane lock, without bound, as shmq_create() does.
 * Thread safety: safe.
 */
int shmq_publish(shmq_exchange *x, const char *key, const void *msg,
		 size_t len, int64_t timeout_ns);

/*
 * The most default-policy (blocking) queues one publish may match: each
 * is held (claimed) at once, under an operation record of its own, until
 * the message is in all of them.  An attachment has 60 records for all of
 * its threads (the zero-copy calls hold some too): threads publishing such
 * fanouts at the same time may get -ENOBUFS.
 */
#define SHMQ_PUBLISH_MAX 32

/**
 * shmq_recv_meta - shmq_recv() that also reports the message's metadata
 * @meta: NULL, or filled with the routing key ("" after shmq_send()),
 *        seq, and whether the message is a redelivery (a consumer that
 *        held it died)
 *
 * Returns as shmq_recv().  SHMQ_SPSC queues: the key is always "" and seq
 * is the position.
 */
ssize_t shmq_recv_meta(shmq *q, void *buf, size_t buflen,
		       struct shmq_meta *meta, int64_t timeout_ns);

/* ---- acknowledged delivery (since 0.4) -------------------------------- */

/*
 * Take a job, do it, then acknowledge it: if the worker dies first, the
 * job goes to another worker.  shmq_fetch() copies a message out like
 * shmq_recv() and frees its ring slot at once (a slow job never holds up
 * producers), but keeps a copy in the queue's unacknowledged area, owed
 * by the fetching handle, until shmq_ack() forgets it or shmq_nack()
 * gives it back.
 *
 * A message owed by a process that dies (fetched, or held by
 * shmq_acquire()) reaches a consumer waiting on the queue within about
 * 25 ms (shmq(7) says how, and what it costs), with deliveries + 1 and
 * SHMQ_META_REDELIVERED; no recovery call, attach or send is needed.  A
 * stopped (SIGSTOP) process is alive and keeps what it owes.  Closing a
 * handle gives back what it owes (as shmq_nack()).  So delivery is at
 * least once: a job whose worker died after doing it and before
 * shmq_ack() is done twice (shmq_meta.seq names it, for idempotence).
 */

/**
 * shmq_fetch - receive a message that stays owed until acknowledged
 * @q:          handle of an MPMC queue
 * @buf:        where the payload is copied
 * @buflen:     its size
 * @meta:       NULL, or filled as by shmq_recv_meta(), with deliveries
 * @tag:        out: names the message for shmq_ack()/shmq_nack()
 * @timeout_ns: 0 (poll), SHMQ_FOREVER, or relative nanoseconds
 *
 * Waits (per @timeout_ns) while the queue is empty, while its
 * unacknowledged area is full, and while @q owes its queue's prefetch
 * limit (another thread's shmq_ack() through @q ends that wait).
 * Returns the payload length, or -EAGAIN/-ETIMEDOUT, -EMSGSIZE (@buflen
 * too small: nothing is taken), -EINVAL (NULL @q or @tag, bad timeout),
 * -EOPNOTSUPP (an SHMQ_SPSC queue: its one receiver already gets a
 * message it held again after a crash), -ENOBUFS (no operation record
 * free), -ENOMEM.
 * Thread safety: safe; any thread of the process may ack the tag.
 */
ssize_t shmq_fetch(shmq *q, void *buf, size_t buflen, struct shmq_meta *meta,
		   uint64_t *tag, int64_t timeout_ns);

/**
 * shmq_ack - a fetched message is done with: forget it
 * @q:   the handle that fetched it
 * @tag: as shmq_fetch() returned it
 *
 * Returns 0, or -EINVAL (@tag is not an outstanding fetch of @q: unknown,
 * already acknowledged or given back, another handle's).  Never blocks.
 */
int shmq_ack(shmq *q, uint64_t tag);

/**
 * shmq_nack - give a fetched message back: delivered again, first
 * @q:   the handle that fetched it
 * @tag: as shmq_fetch() returned it
 *
 * The message goes back to the queue ahead of the others, deliveries
 * + 1 (or, at the queue's max_deliveries, to its dead-letter exchange).
 * Returns 0, or -EINVAL as shmq_ack().  Blocks: only briefly on the
 * control-plane lock (when another process holds it, the message waits
 * in the area and the next consumer to find the queue empty moves it).
 */
int shmq_nack(shmq *q, uint64_t tag);

/* What one attached process owes one queue (shmq_queue_owed()). */
struct shmq_owed {
	uint32_t proc_index;      /* process-table entry */
	uint32_t pid;
	uint32_t alive;           /* 0: dead, its messages about to go back */
	uint32_t fetched;         /* messages in the unacknowledged area */
	uint32_t acquired;        /* messages held by shmq_acquire() */
	uint32_t pad;
};

/**
 * shmq_queue_owed - who owes what on a queue
 * @seg:  attachment (also an observer)
 * @name: queue name
 * @out:  array of @n entries, or NULL when @n is 0
 * @n:    its size
 *
 * One entry per attached process that owes the queue something: fetched
 * and not acknowledged, or acquired and not released.  A snapshot.
 * Returns how many processes owe (may exceed @n), or -ENOENT, -EINVAL,
 * -EPROTO as shmq_queue_stat().
 */
int shmq_queue_owed(shmq_seg *seg, const char *name, struct shmq_owed *out,
		    unsigned n);

/* ---- waiting on many queues (since 0.4) ------------------------------- */

#define SHMQ_POLLIN   0x1u      /* a message can be received */
#define SHMQ_POLLOUT  0x4u      /* a message can be sent */
#define SHMQ_POLL_MAX 128       /* entries of one shmq_poll() set */

/* One entry of a shmq_poll() set. */
struct shmq_pollq {
	shmq *q;                /* an open handle (MPMC or SHMQ_SPSC) */
	uint32_t events;        /* SHMQ_POLLIN and/or SHMQ_POLLOUT */
	uint32_t revents;       /* out: those of @events that are ready */
};

/**
 * shmq_poll - wait until one of several queues is ready
 * @set:        @n entries; each names a handle and the events it wants
 * @n:          1 to SHMQ_POLL_MAX
 * @timeout_ns: 0 (look once), SHMQ_FOREVER, or relative nanoseconds
 *
 * Sets every entry's @revents to the events of @events that are ready
 * (a message waits: SHMQ_POLLIN; a slot is free: SHMQ_POLLOUT) and
 * returns how many entries have some.  Readiness is a hint, as poll(2)
 * on a socket that several processes read: another consumer may take the
 * message first, so the following shmq_recv() should not block (use
 * timeout 0, or a short one) and a poll that reported nothing usable is
 * simply repeated.  On an SPSC queue readiness is seen through the side
 * the calling thread holds, if any, else through the queue's header.
 *
 * Blocks like shmq_recv(): it polls the set for the largest spin budget
 * of its handles (shmq_set_spin()), then announces itself on every
 * queue's event count, re-checks, and sleeps in one futex_waitv(2) on all
 * of them (Linux 5.16+).  A sender wakes every poller of its queue (as
 * poll(2) wakes every poller of a file) but never takes a wake-up from a
 * receiver blocked in shmq_recv(): pollers and ordinary waiters sleep on
 * different words.  A queue whose next message is held up by a dead
 * producer's claim is repaired as a blocked shmq_recv() would
 * (shmq_set_stall()).  Without futex_waitv (ENOSYS, or
 * $SHMQ_POLL_FALLBACK=1) a poll over several queues sleeps on one of
 * them in bounded steps (100 us growing to 1 ms), so it may notice the
 * others up to 1 ms late; so do sets of more than 128 distinct event
 * counts (SHMQ_POLLIN|SHMQ_POLLOUT on more than 64 queues).
 *
 * Returns the number of ready entries (>= 1), or -EAGAIN (timeout 0,
 * nothing ready), -ETIMEDOUT, -EINVAL (NULL @set, @n 0 or above
 * SHMQ_POLL_MAX, a NULL handle, @events 0 or with an unknown bit, a
 * timeout below -1).
 * A handle closed while in a set is the caller's bug (as for every call):
 * remove it first.  A queue unlinked while polled stays usable, as for
 * any open handle.  Thread safety: safe; any number of threads and
 * processes may poll the same queues.
 * Ordering: none beyond the calls that follow (the message's bytes are
 * ordered by the shmq_recv() that takes it).
 */
int shmq_poll(struct shmq_pollq *set, unsigned n, int64_t timeout_ns);

/*
 * A poll set for an event loop: a file descriptor (an eventfd) that
 * becomes readable when a queue of the set is ready, for epoll, poll(2),
 * select or libuv (uv_poll_t).  A thread the set owns waits in
 * shmq_poll() (spin 0) and signals the descriptor; the loop then calls
 * shmq_pollset_ready(), which says which queues are ready and re-arms
 * the thread.  Cost: one thread (128 KiB stack, all signals blocked) and
 * one descriptor per set; each readiness costs the thread's wake-up, a
 * write and a read of the eventfd, and a wake-up of the thread to re-arm
 * it: a few microseconds, several times a futex round trip (bench/
 * results/README.md).  Not inherited by fork(): a child must create its
 * own.
 */
typedef struct shmq_pollset shmq_pollset;

/**
 * shmq_pollset_create - an empty poll set, its descriptor and its thread
 * @out: the set
 *
 * Returns 0, or -EINVAL (NULL @out), -ENOMEM, -EMFILE/-ENFILE (no
 * descriptor), -EAGAIN (no thread).
 */
int shmq_pollset_create(shmq_pollset **out);

/**
 * shmq_pollset_destroy - stop the thread, close the descriptor, free
 * @ps: the set, or NULL
 *
 * Take the descriptor out of your event loop first.  The handles in the
 * set stay open.
 */
void shmq_pollset_destroy(shmq_pollset *ps);

/**
 * shmq_pollset_add - add a handle to the set, or change its events
 * @ps:     the set
 * @q:      an open handle; it must stay open while in the set
 * @events: SHMQ_POLLIN and/or SHMQ_POLLOUT
 *
 * Returns 0, or -EINVAL (NULL @ps or @q, @events 0 or unknown bits),
 * -ENOSPC (SHMQ_POLL_MAX handles already).
 */
int shmq_pollset_add(shmq_pollset *ps, shmq *q, uint32_t events);

/**
 * shmq_pollset_del - remove a handle from the set
 * @ps: the set
 * @q:  a handle in it
 *
 * Returns 0, or -EINVAL (NULL argument), -ENOENT (not in the set).
 */
int shmq_pollset_del(shmq_pollset *ps, shmq *q);

/**
 * shmq_pollset_fd - the set's descriptor
 * @ps: the set
 *
 * Readable when some queue of the set may be ready since the last
 * shmq_pollset_ready(); level-triggered in effect: while a queue stays
 * ready, each shmq_pollset_ready() makes it readable again within the
 * thread's wake-up.  Only read it through shmq_pollset_ready(); do not
 * close it.  Returns the descriptor, or -EINVAL (NULL @ps).
 */
int shmq_pollset_fd(const shmq_pollset *ps);

/**
 * shmq_pollset_ready - which queues are ready; re-arm the descriptor
 * @ps:  the set
 * @out: room for @n entries: filled with the ready handles, their
 *       events and revents, in the order they were added
 * @n:   size of @out (at least 1)
 *
 * Clears the descriptor, looks at every queue of the set once (no
 * blocking), and re-arms the thread.  Returns how many entries it filled
 * (0: nothing ready now: a hint came to nothing), or -EINVAL (NULL
 * argument, @n 0).  Thread safety: calls on one set (add, del, ready)
 * may come from any thread.
 */
int shmq_pollset_ready(shmq_pollset *ps, struct shmq_pollq *out, unsigned n);

/* ---- inspection and administration (since 0.2) ------------------------ */

/*
 * What mqctl uses.  Everything below reads the segment's tables under the
 * control-plane lock and the rings' words with single atomic loads: a
 * result is a consistent view of the directory and a snapshot, possibly
 * already stale, of each ring.  None of it touches a queue's fast path.
 */

/**
 * shmq_seg_observe - attach to a segment as an observer
 * @name: segment name or file path, NULL for the default
 * @out:  on success, the attachment
 *
 * Maps and validates the segment like shmq_seg_open() but takes no
 * process-table entry, repairs nothing and by itself writes nothing, so
 * observing changes nothing a peer could see (mqctl's info, list, stat,
 * procs and watch use it); only shmq_create(), shmq_unlink(),
 * shmq_exchange_create(), shmq_exchange_unlink(), shmq_bind() and
 * shmq_unbind() through it write.
 * It accepts a segment of any owner (it sends nothing;
 * the segment is read as untrusted input; its owner can still shrink the
 * file under the mapping).  An
 * observer may call shmq_seg_info(), shmq_queue_list(), shmq_queue_stat(),
 * shmq_proc_list(), shmq_peek(), shmq_create(), shmq_unlink(), the
 * exchange listings and calls just named, and shmq_seg_close();
 * shmq_open() and shmq_exchange_open() on it fail with -EPERM.
 *
 * Returns 0, or -ENOENT, -EINVAL/-ENAMETOOLONG (bad name), -EACCES (it
 * needs read and write permission, as shmq_seg_open() does: the
 * control-plane lock is a write lock), -ELOOP, -EISDIR, -EBUSY (a read
 * lock on the control-plane byte), -EPROTO (not a shmq segment, corrupt,
 * or another layout version: see shmq_seg_check()), -ENOMEM.
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_seg_observe(const char *name, shmq_seg **out);

/* A segment's identity and usage (shmq_seg_info()). */
struct shmq_seg_info {
	uint32_t version;         /* layout version of the segment */
	uint32_t mode;            /* permission bits of the file, now */
	uint32_t uid;             /* owner of the file, now */
	uint32_t gid;             /* group of the file, now */
	uint32_t creator_uid;     /* uid of the creating process */
	uint32_t max_queues;      /* directory entries */
	uint32_t queues;          /* named queues (not exchanges) */
	uint32_t unlinked;        /* unlinked queues still open somewhere */
	uint32_t max_procs;       /* process-table entries */
	uint32_t procs;           /* attachments whose process is alive */
	uint32_t procs_dead;      /* entries of dead processes not yet reclaimed */
	uint32_t self;            /* 1 when the caller holds one of @procs */
	uint64_t size;            /* bytes: the file's size */
	uint64_t heap_size;       /* bytes that queues may use */
	uint64_t heap_used;       /* bytes in queue and exchange blocks */
	uint64_t heap_free;       /* heap_size - heap_used */
	uint64_t heap_largest;    /* largest free extent: the biggest new queue */
	uint64_t create_time_ns;  /* CLOCK_REALTIME at creation */
};

/**
 * shmq_seg_info - describe a segment
 * @seg:  attachment (also an observer)
 * @info: out
 *
 * Liveness is the kernel's: a process counts as alive while its lock on
 * the segment file is held (a stopped process is alive; a killed one is
 * dead at once, even as an unreaped zombie).
 *
 * Returns 0, or -EINVAL (NULL argument), -EIO (fstat of the file failed),
 * -ENOMEM.
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_seg_info(shmq_seg *seg, struct shmq_seg_info *info);

/* shmq_queue_info.state */
#define SHMQ_QUEUE_LIVE     1   /* named */
#define SHMQ_QUEUE_UNLINKED 2   /* name removed, storage kept for open handles */

/* One queue, as shmq_queue_list() and shmq_queue_stat() see it. */
struct shmq_queue_info {
	char name[SHMQ_NAME_MAX + 1];
	uint32_t state;           /* SHMQ_QUEUE_LIVE or SHMQ_QUEUE_UNLINKED */
	uint32_t index;           /* directory entry */
	uint32_t capacity;        /* messages */
	uint32_t msg_size;        /* largest payload, bytes */
	uint32_t slot_size;       /* bytes per slot */
	uint32_t handles;         /* open handles, over every live attachment */
	uint32_t send_waiters;    /* threads announced waiting for room
	                           * (since 0.4 including send_pollers) */
	uint32_t recv_waiters;    /* threads announced waiting for a message
	                           * (since 0.4 including recv_pollers) */
	uint64_t depth;           /* messages waiting: sent - received, within
	                           * [0, capacity], + lane_depth, + a dead
	                           * consumer's messages still waiting for
	                           * room in the lane (since 0.3.1) */
	uint64_t sent;            /* positions producers claimed (prod_pos) */
	uint64_t received;        /* positions consumers claimed (cons_pos) */
	uint64_t full_waits;      /* blocking sends that found it full */
	uint64_t empty_waits;     /* blocking receives that found it empty */
	uint64_t sleeps;          /* futex waits entered */
	uint64_t wakes;           /* futex wake calls issued */
	uint64_t repairs;         /* slots repaired: tombstones + redelivered */
	uint64_t bytes;           /* segment bytes its block takes */
	uint64_t create_time_ns;  /* CLOCK_REALTIME at creation */
	uint64_t tombstones;      /* dead producers' claims turned tombstones */
	uint64_t redelivered;     /* dead consumers' messages moved to the lane */
	uint64_t lane_depth;      /* messages waiting in the redelivery lane */
	uint32_t producers;       /* attached processes that have sent to it
	                           * through a handle still open */
	uint32_t consumers;       /* ... that have received from it */
	uint32_t flags;           /* shmq_attr.flags (0.3) */
	uint32_t sender_pid;      /* SPSC: pid of the process holding the */
	uint32_t receiver_pid;    /* sending / receiving side, 0 if none */
	/* since 0.4 (programs built against 0.3 get the 0.3 struct) */
	uint64_t dropped;         /* messages a full SHMQ_DROP_NEWEST queue
	                           * refused plus those a full
	                           * SHMQ_DROP_OLDEST queue evicted */
	uint32_t send_pollers;    /* of send_waiters: shmq_poll() callers
	                           * waiting for room (SHMQ_POLLOUT) */
	uint32_t recv_pollers;    /* of recv_waiters: shmq_poll() callers
	                           * waiting for a message (SHMQ_POLLIN) */
	/* acknowledged delivery (shmq_fetch()) */
	uint32_t unacked;         /* messages fetched and not yet acknowledged */
	uint32_t max_unacked;     /* shmq_attr.max_unacked */
	uint32_t prefetch;        /* shmq_attr.prefetch */
	uint32_t max_deliveries;  /* shmq_attr.max_deliveries (0: no limit) */
	uint64_t nacked;          /* messages given back by shmq_nack() or a
	                           * closing handle */
	uint64_t dead_lettered;   /* messages at max_deliveries: sent to the
	                           * dead-letter exchange, or dropped */
	char dead_letter[SHMQ_NAME_MAX + 1];  /* shmq_attr.dead_letter */
};

/**
 * shmq_queue_list - describe every queue of a segment
 * @seg: attachment (also an observer)
 * @out: array of @n entries, or NULL when @n is 0
 * @n:   its size
 *
 * Fills the first min(@n, count) entries in directory order, named queues
 * and unlinked queues that are still open.  Ring counters are read without
 * stopping anyone: each is exact at the instant it was read.  sent and
 * received count claims, so a message being written or read is counted.
 *
 * Returns how many queues there are (may exceed @n), or -EINVAL (NULL
 * @seg, NULL @out with @n > 0), -EPROTO (a directory entry is corrupt).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_queue_list(shmq_seg *seg, struct shmq_queue_info *out, unsigned n);

/**
 * shmq_queue_stat - describe one named queue
 * @seg:  attachment (also an observer)
 * @name: queue name
 * @out:  out
 *
 * Returns 0, or -ENOENT (no queue of that name), -EINVAL/-ENAMETOOLONG
 * (bad name, NULL argument), -EPROTO (its entry is corrupt).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_queue_stat(shmq_seg *seg, const char *name,
		    struct shmq_queue_info *out);

/* One process-table entry (shmq_proc_list()). */
struct shmq_proc_info {
	uint32_t index;           /* process-table entry */
	uint32_t pid;             /* in the pid namespace of the process */
	uint32_t uid;
	uint32_t alive;           /* 1: its liveness lock is held */
	uint32_t self;            /* 1: the caller's own attachment */
	uint32_t same_pidns;      /* 1: @pid means that process here too */
	uint32_t handles;         /* open queue handles */
	uint32_t held;            /* positions its operation records name:
	                           * claimed, not yet published/freed */
	uint64_t start_time;      /* its start, clock ticks after boot */
	uint64_t attach_time_ns;  /* CLOCK_REALTIME */
	char comm[16];            /* command name */
	/* since 0.4 (programs built against 0.3 get the 0.3 struct) */
	uint32_t unacked;         /* messages it fetched and has not
	                           * acknowledged, over all queues */
	uint32_t pad;
};

/**
 * shmq_proc_list - describe the processes attached to a segment
 * @seg: attachment (also an observer)
 * @out: array of @n entries, or NULL when @n is 0
 * @n:   its size
 *
 * Lists every entry in use: live attachments, and entries of dead
 * processes that no attach or recovery has reclaimed yet (alive == 0).
 *
 * Returns how many entries are in use (may exceed @n), or -EINVAL.
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_proc_list(shmq_seg *seg, struct shmq_proc_info *out, unsigned n);

/* One message copied by shmq_peek(). */
struct shmq_peek_msg {
	void *data;               /* in: buffer */
	size_t size;              /* in: its size */
	size_t len;               /* out: message length; min(len, size) copied */
	uint64_t pos;             /* out: its position (sent order; in the
	                           * redelivery lane's own order if
	                           * redelivered is set) */
	uint32_t redelivered;     /* out: 1 for a message a crashed consumer
	                           * held, waiting in the redelivery lane */
};

/**
 * shmq_peek - copy the oldest messages of a queue without consuming them
 * @seg:  attachment (also an observer)
 * @name: queue name
 * @msgs: buffers
 * @n:    how many, at least 1
 *
 * A snapshot: each message is copied, then its slot is read again, and a
 * copy is kept only if the slot still held the same message afterwards
 * (else a consumer took it meanwhile and it is skipped).  Slots still
 * being written and tombstones of crashed producers are skipped.  By the
 * time this returns, the queue may have moved on.  Messages in the
 * redelivery lane of crash recovery come first, as consumers will get
 * them, with @redelivered set.
 *
 * Returns how many messages were copied (0 for an empty queue), or
 * -ENOENT, -EINVAL/-ENAMETOOLONG (bad name, @n == 0, NULL @msgs),
 * -EPROTO (its entry is corrupt).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_peek(shmq_seg *seg, const char *name, struct shmq_peek_msg *msgs,
	      unsigned n);

/**
 * shmq_purge - drop the messages that a queue holds now
 * @q: handle
 *
 * Drops, oldest first, the messages whose sending had begun when it was
 * called (redelivered ones first), claiming each as a receive does; it
 * stops at the first of them not yet published, and never takes a message
 * sent after the call.  Producers and consumers may run meanwhile: every
 * message is either dropped (and counted) or delivered to them.
 *
 * Returns how many messages were dropped (>= 0), or -EINVAL, -ENOBUFS
 * (no operation record free for this thread, see shmq_reserve()).
 * Blocks: no.  Thread safety: safe.
 * SHMQ_SPSC queues: purging is receiving, so it needs the receiving side:
 * -EBUSY while another handle or thread holds it (mqctl purge of a queue
 * whose receiver is attached); a side taken only for the purge is given
 * back when it returns.
 */
int shmq_purge(shmq *q);

/* One exchange, as shmq_exchange_list() sees it (since 0.4). */
struct shmq_exchange_info {
	char name[SHMQ_NAME_MAX + 1];
	uint32_t state;           /* SHMQ_QUEUE_LIVE or SHMQ_QUEUE_UNLINKED */
	uint32_t index;           /* directory entry */
	uint32_t type;            /* SHMQ_DIRECT, SHMQ_FANOUT, SHMQ_TOPIC */
	uint32_t handles;         /* open handles, over every live attachment */
	uint32_t bindings;        /* bindings to live queues */
	uint32_t pad;
	uint64_t published;       /* shmq_publish calls that succeeded */
	uint64_t routed;          /* deliveries: queues that got a message */
	uint64_t unroutable;      /* publishes that no queue took */
	uint64_t dropped;         /* deliveries skipped or evicted at full
	                           * SHMQ_DROP_NEWEST/_OLDEST queues */
	uint64_t create_time_ns;  /* CLOCK_REALTIME at creation */
	char alternate[SHMQ_NAME_MAX + 1];  /* "" for none */
};

/**
 * shmq_exchange_list - describe every exchange of a segment
 * @seg: attachment (also an observer)
 * @out: array of @n entries, or NULL when @n is 0
 * @n:   its size
 *
 * Returns how many exchanges there are (may exceed @n), or -EINVAL,
 * -EPROTO (an entry or binding table is corrupt).
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_exchange_list(shmq_seg *seg, struct shmq_exchange_info *out,
		       unsigned n);

/* shmq_exchange_stat - one named exchange: 0, -ENOENT, -EINVAL, -EPROTO. */
int shmq_exchange_stat(shmq_seg *seg, const char *name,
		       struct shmq_exchange_info *out);

/* One binding (shmq_binding_list()). */
struct shmq_binding_info {
	char exchange[SHMQ_NAME_MAX + 1];
	char queue[SHMQ_NAME_MAX + 1];
	uint32_t key_len;
	char key[SHMQ_KEY_MAX + 1];   /* NUL-terminated */
};

/**
 * shmq_binding_list - list the bindings of one exchange, or of all
 * @seg:      attachment (also an observer)
 * @exchange: exchange name, or NULL for every exchange
 * @out:      array of @n entries, or NULL when @n is 0
 * @n:        its size
 *
 * Bindings to queues that no longer exist are not listed.
 * Returns how many bindings there are (may exceed @n), or -ENOENT (no
 * such exchange), -EINVAL, -EPROTO.
 * Blocks: only on the control-plane lock.  Thread safety: safe.
 */
int shmq_binding_list(shmq_seg *seg, const char *exchange,
		      struct shmq_binding_info *out, unsigned n);

/* shmq_problem.area */
enum {
	SHMQ_AREA_FILE = 1,       /* the file itself: type, size */
	SHMQ_AREA_HEADER,         /* the first page */
	SHMQ_AREA_DIRECTORY,      /* a directory entry */
	SHMQ_AREA_HEAP,           /* queue blocks: bounds, overlaps */
	SHMQ_AREA_PROCS,          /* a process-table entry */
	SHMQ_AREA_QUEUE,          /* a ring: header, positions, slots */
	SHMQ_AREA_EXCHANGE,       /* an exchange: header, binding table (0.4) */
};

/* shmq_problem.severity */
#define SHMQ_CHECK_ERROR 1   /* corruption: the segment is not consistent */
#define SHMQ_CHECK_NOTE  0   /* consistent, but worth knowing (dead process) */

/* One finding of shmq_seg_check(); valid during the callback only. */
struct shmq_problem {
	int severity;             /* SHMQ_CHECK_ERROR or SHMQ_CHECK_NOTE */
	int area;                 /* SHMQ_AREA_* */
	int index;                /* entry or slot index, or -1 */
	const char *queue;        /* queue name when known, else NULL */
	const char *what;         /* one sentence */
};

typedef void (*shmq_check_fn)(const struct shmq_problem *p, void *arg);

/**
 * shmq_seg_check - verify a segment, like fsck, without changing it
 * @name: segment name or file path, NULL for the default
 * @fn:   called once per finding, or NULL
 * @arg:  passed to @fn
 *
 * Opens the file read-only and maps it read-only, so it works on a segment
 * that shmq_seg_open() refuses with -EPROTO, and reports every problem
 * instead of stopping at the first: header (magic, version, geometry),
 * directory entries, queue blocks (inside the heap, not overlapping), the
 * process table, and each ring (identity, prod_pos - cons_pos within
 * [0, capacity], every slot's sequence word legal for its position).
 * Takes no lock: on a segment in use a ring that keeps moving is re-read
 * until two reads agree, and reported as a note if they never do.
 *
 * Returns the number of errors found (0: consistent; notes do not count;
 * a file that is not regular, a FIFO say, is one error and is not opened
 * for reading), or -ENOENT, -EINVAL/-ENAMETOOLONG (bad name), -EACCES,
 * -ELOOP (the name is a symbolic link: never followed), -ENOMEM, -EIO (the
 * file could not be read or mapped).
 * Blocks: no.  Thread safety: safe.  A peer that shrinks the file while it
 * is checked makes the checker fault (see the README's trust model).
 */
int shmq_seg_check(const char *name, shmq_check_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_H */
