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
 *   - Handles (shmq_seg *, shmq *) may be used by many threads of one process
 *     at once.  They must not be used in a child after fork(): the child
 *     opens its own (the parent's liveness lock is inherited by the child
 *     otherwise, and a dead parent would look alive).
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
#define SHMQ_VERSION_MINOR 1
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
	  "no space: segment memory or queue directory full")                 \
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
	  "too many messages held at once by this process (zero-copy)")

typedef struct shmq_seg shmq_seg;   /* a process's attachment to a segment */
typedef struct shmq shmq;           /* an open queue */

/*
 * Segment attributes.
 * @size:       bytes, rounded up to the page size (default 64 MiB); reserved
 *              at creation, so a full /dev/shm fails creation, not later.
 * @mode:       permission bits, applied exactly, not filtered by umask
 *              (default 0600).  The kernel's file permissions are the access
 *              control.
 * @flags:      reserved, must be 0.
 * @max_queues: directory entries (default 256, at most SHMQ_MAX_QUEUES).
 * @max_procs:  process-table entries: how many attachments may exist at
 *              once (default 64, at most SHMQ_MAX_PROCS).
 */
struct shmq_seg_attr {
	size_t size;
	mode_t mode;
	unsigned flags;
	uint32_t max_queues;
	uint32_t max_procs;
};

/*
 * Queue attributes.
 * @capacity: messages, rounded up to a power of two, at least 2
 *            (default 1024, at most SHMQ_MAX_CAPACITY).
 * @msg_size: largest payload in bytes (default 256, at most
 *            SHMQ_MAX_MSG_SIZE); messages may be any length from 0 to it.
 * @flags:    reserved, must be 0.
 */
struct shmq_attr {
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t flags;
};

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
 * Returns 0, or -EEXIST (name taken), -EINVAL (bad attribute, size too
 * small for its tables), -ENAMETOOLONG, -ENOSPC (no room in /dev/shm or on
 * the file system), -EACCES, -EUSERS, -ENOMEM, or another -errno from the
 * kernel.
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
 * table.
 *
 * Returns 0, or -ENOENT, -EINVAL/-ENAMETOOLONG (bad name), -EACCES,
 * -EPROTO (not a shmq segment, corrupt, or another layout version),
 * -EUSERS (process table full), -ENOMEM.
 * Blocks: only on the segment's control-plane lock.  Thread safety: safe.
 */
int shmq_seg_open(const char *name, shmq_seg **out);

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
 * (the redelivery lane is full) is left for a later call.
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
 * Returns 0, or -EEXIST, -EINVAL (bad name or attribute), -ENAMETOOLONG,
 * -ENOSPC (not enough free segment memory for the ring, or the directory
 * is full).
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
 * corrupt), -ENOMEM.
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
 * its memory is freed.
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
 *           futex; 0 sleeps at once.
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
 * @timeout_ns == 0), -ETIMEDOUT (still full at the deadline), -EINVAL.
 * Blocks: while the queue is full, per @timeout_ns.
 * Thread safety: safe.
 * Ordering: FIFO; a receiver that gets this message also sees every byte
 * of it, and everything the sender wrote to memory before the call.
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
 * @timeout_ns == 0), -ETIMEDOUT, -EINVAL.
 * Blocks: while the queue is empty, per @timeout_ns.
 * Thread safety: safe.
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
 * shmq_commit().  Keep reservations short.
 *
 * Returns 0, or -EMSGSIZE, -EAGAIN, -ETIMEDOUT, -EINVAL, -ENOMEM.
 * Thread safety: safe; the token may be committed by any thread using @q.
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
 * The slot stays unavailable to producers until shmq_release().
 * Returns 0, or -EAGAIN, -ETIMEDOUT, -EINVAL, -ENOMEM.
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

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_H */
