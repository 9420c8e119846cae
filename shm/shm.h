/* SPDX-License-Identifier: MIT */
/*
 * shm.h - what shm/ offers ipc/ (internal; not installed).
 *
 * shm/ owns the segment: its file, mapping, header, directory, block
 * allocator and process table.  ipc/ asks it for a queue's block and never
 * parses the header itself.
 */
#ifndef SHMQ_SHM_H
#define SHMQ_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shmq.h"
#include "layout.h"

#define SHMQ_PATH_MAX 4096

/*
 * A process's attachment.  Geometry is copied from the validated header at
 * attach time and never re-read from shared memory.
 */
/* Spare records the owner thread keeps for its zero-copy calls, and for
 * the second and later claims of a publish (ipc/publish.c). */
#define SHMQ_ZC_STASH 4
#define SHMQ_PUB_STASH 8

struct shmq_seg {
	_Atomic long refs;      /* 1 for the user + 1 per open queue handle */
	_Atomic uint32_t next_hid; /* ids of this attachment's queue handles
				    * (ipc/ack.c: whose fetch a tag is) */
	int fd;                 /* holds this attachment's liveness lock; -1
				 * in a child after fork() (seg.c, atfork) */
	/*
	 * The threads of this attachment share fd, hence its OFD locks, which
	 * therefore exclude other attachments only: this mutex (private
	 * memory) excludes our own threads from the control plane.
	 */
	pthread_mutex_t ctl_mu;
	/* Under ctl_mu, for shmq__seg_unlock(): did we set ctl_busy, and the
	 * holder's cancel state to restore. */
	bool ctl_marked;
	int ctl_cancel;
	bool observer;          /* shmq_seg_observe(): writes nothing */
	struct shmq_seg *reg_prev, *reg_next;   /* the process's attachments */
	unsigned char *base;    /* mapping */
	size_t size;            /* mapping length == file size */
	uint32_t max_queues;
	uint32_t max_procs;
	uint32_t proc_stride;
	uint64_t dir_off;
	uint64_t proc_off;
	uint64_t heap_off;
	uint64_t heap_size;
	int proc_idx;           /* our process-table entry */
	struct proc_rec *recs;  /* its operation records */
	_Atomic uint64_t recs_used; /* bit i: recs[i] handed out (local) */
	/*
	 * The record cached for the first thread that makes a copying call
	 * through this attachment (ipc/queue.c, op_begin): pthread_self() of
	 * that thread, 0 before; only that thread reads rec_cidx.
	 */
	_Atomic unsigned long rec_owner;
	_Atomic int rec_cidx;
	/*
	 * Clean records that thread keeps for its zero-copy calls (queue.c,
	 * zc_rec_get/zc_rec_put): handed out in recs_used, and read and
	 * written by that thread only.
	 */
	int zc_stash[SHMQ_ZC_STASH];
	int zc_nstash;
	int pub_stash[SHMQ_PUB_STASH];
	int pub_nstash;
	char path[SHMQ_PATH_MAX];
};

/*
 * What ipc/ needs to know of one directory entry: a copy, validated.  For
 * an exchange, capacity/msg_size are 0, slot_size is its type, and aux_off,
 * aux_size its binding table (0, 0: none yet).
 */
struct shmq_qinfo {
	uint32_t idx;           /* directory index */
	uint32_t capacity;
	uint32_t msg_size;
	uint32_t slot_size;
	uint32_t flags;
	uint32_t kind;          /* DIR_KIND_QUEUE, DIR_KIND_EXCHANGE */
	uint32_t gen;           /* creations in this entry */
	uint32_t state;         /* DIR_LIVE, DIR_UNLINKED */
	uint64_t off;           /* block offset */
	uint64_t size;          /* block bytes */
	uint64_t aux_off;       /* exchange: binding table block */
	uint64_t aux_size;
	uint32_t ack_cap;       /* MPMC queue: unacknowledged area entries */
	uint32_t prefetch;      /* ... per-handle limit (<= ack_cap) */
	uint32_t max_deliveries;
	const char *dead_letter; /* shmq__dir_create() of a queue: "" or an
				  * exchange name for its area (else unset) */
};

/*
 * Geometry of a ring.  An MPMC queue (flags 0): header bytes before the
 * slots, then capacity slots, then SHMQ_LANE_CAP slots of the redelivery
 * lane (see ipc/ring.h).  An SPSC queue (SHMQ_SPSC): the header, then a
 * 64-bit entry (position tag, length) per slot (rounded up to a multiple
 * of 128 bytes), then capacity slots holding only the payload (see
 * ipc/spsc.c).
 */
#define SHMQ_RING_HDR_SIZE 1024u
#define SHMQ_SLOT_HDR_SIZE 16u
#define SHMQ_LANE_CAP      8u
#define SHMQ_QUEUE_FLAGS   (SHMQ_SPSC | SHMQ_DROP_NEWEST | SHMQ_DROP_OLDEST | \
			    SHMQ_AUTODELETE)    /* every flag a queue may have */
#define SHMQ_OVERFLOW      (SHMQ_DROP_NEWEST | SHMQ_DROP_OLDEST)

static inline uint32_t shmq__slot_size(uint32_t msg_size, uint32_t flags)
{
	if (flags & SHMQ_SPSC)
		return msg_size ? (msg_size + 63u) & ~63u : 64u;
	return (SHMQ_SLOT_HDR_SIZE + msg_size + 63u) & ~63u;
}

/* Bytes of an SPSC queue's entries (ipc/spsc.c). */
static inline uint64_t shmq__spsc_ents_bytes(uint32_t capacity)
{
	return ((uint64_t)capacity * 8 + 127) & ~127ull;
}

static inline uint64_t shmq__ring_bytes(uint32_t capacity, uint32_t slot_size,
					uint32_t flags)
{
	if (flags & SHMQ_SPSC)
		return SHMQ_RING_HDR_SIZE + shmq__spsc_ents_bytes(capacity) +
		       (uint64_t)capacity * slot_size;
	return SHMQ_RING_HDR_SIZE +
	       ((uint64_t)capacity + SHMQ_LANE_CAP) * slot_size;
}

/*
 * An MPMC queue's unacknowledged area (ipc/ack.h), after the lane, at a
 * 128-byte boundary: a header of SHMQ_ACK_HDR_SIZE bytes, ack_cap 64-bit
 * state words (rounded up to whole 128-byte lines), then ack_cap entries
 * of shmq__ack_entry_size() bytes (a 32-byte header, then the key and
 * payload).  None (ack_cap 0) for SPSC queues.
 */
#define SHMQ_ACK_HDR_SIZE  256u
#define SHMQ_ACK_ENT_HDR   32u

static inline uint32_t shmq__ack_entry_size(uint32_t msg_size)
{
	return (SHMQ_ACK_ENT_HDR + msg_size + 63u) & ~63u;
}

static inline uint64_t shmq__ack_off(uint32_t capacity, uint32_t slot_size,
				     uint32_t flags)
{
	return (shmq__ring_bytes(capacity, slot_size, flags) + 127) & ~127ull;
}

static inline uint64_t shmq__ack_states_bytes(uint32_t ack_cap)
{
	return ((uint64_t)ack_cap * 8 + 127) & ~127ull;
}

/* Bytes a queue's block needs: its rings, then its area (if any). */
static inline uint64_t shmq__queue_bytes(uint32_t capacity, uint32_t msg_size,
					 uint32_t slot_size, uint32_t flags,
					 uint32_t ack_cap)
{
	if (!ack_cap)
		return shmq__ring_bytes(capacity, slot_size, flags);
	return shmq__ack_off(capacity, slot_size, flags) + SHMQ_ACK_HDR_SIZE +
	       shmq__ack_states_bytes(ack_cap) +
	       (uint64_t)ack_cap * shmq__ack_entry_size(msg_size);
}

/* util.c */
int shmq__name_check(const char *name);
int shmq__seg_path(const char *name, char *path, size_t len);
uint64_t shmq__now_ns(clockid_t clk);
/*
 * fcntl(@cmd: F_OFD_SETLK or F_OFD_GETLK) on byte @byte of @fd with lock
 * type @type, retried on EINTR: 0 (GETLK: the type found, F_UNLCK if
 * none) or -errno (SETLK: -EAGAIN or -EACCES when held).
 */
int shmq__ofd(int fd, int cmd, short type, off_t byte);

/* seg.c */
void shmq__seg_get(shmq_seg *seg);
void shmq__seg_put(shmq_seg *seg);
/*
 * The control-plane lock (layout.h, "Locks the kernel keeps").  _lock waits
 * for it; _trylock returns -EAGAIN when it is held; _lock_for waits at most
 * @timeout_ns (0: -EAGAIN when held; SHMQ_FOREVER: as _lock; else
 * -ETIMEDOUT).  All: -EBUSY at once when a read lock (someone with read
 * access only) blocks it; -EBADF in a child after fork() (its parent's
 * attachment).
 */
int shmq__seg_lock(shmq_seg *seg);
int shmq__seg_trylock(shmq_seg *seg);
/*
 * Map, validate and attach (shmq_seg_open_flags() is this with ipc/'s
 * crash recovery as @repair: shm/ knows nothing of rings).
 */
typedef int (*shmq_seg_repair_fn)(shmq_seg *seg);
int shmq__seg_open(const char *name, unsigned flags,
		   shmq_seg_repair_fn repair, shmq_seg **out);
int shmq__seg_lock_for(shmq_seg *seg, int64_t timeout_ns);
void shmq__seg_unlock(shmq_seg *seg);

static inline struct seg_hdr *shmq__hdr(const shmq_seg *seg)
{
	return (struct seg_hdr *)seg->base;
}

/* dir.c: all under the control-plane lock. */
struct dir_entry *shmq__dir_entry(const shmq_seg *seg, uint32_t idx);
int shmq__dir_validate_entry(const shmq_seg *seg, const struct dir_entry *e,
			     struct shmq_qinfo *out);
int shmq__dir_validate(const shmq_seg *seg);
/* A LIVE entry of any kind named @name: its index, or -ENOENT. */
int shmq__dir_find(const shmq_seg *seg, const char *name);
/*
 * Find a LIVE entry of @kind by name and validate a copy: its index, or
 * -errno (-ENOENT also when the name is another kind's).
 */
int shmq__dir_lookup(const shmq_seg *seg, const char *name, uint32_t kind,
		     struct shmq_qinfo *out);
/*
 * Free every unlinked entry that no live attachment has open or pinned,
 * and unlink every SHMQ_AUTODELETE queue that was opened and has no user
 * handle left.
 */
void shmq__dir_sweep(shmq_seg *seg);
uint32_t shmq__dir_opens(const shmq_seg *seg, uint32_t idx);
uint32_t shmq__dir_pins(const shmq_seg *seg, uint32_t idx);
/* The directory or the bindings changed: bump dir_gen (seq_cst). */
void shmq__dir_changed(shmq_seg *seg);

/*
 * Create an entry of kind qi->kind.  @init is called on the zero-filled
 * block before the entry becomes visible; the entry goes LIVE only after
 * it returns.  Queues: the block is the ring; exchanges: qi->size bytes.
 */
typedef void (*shmq_block_init_fn)(void *block, const struct shmq_qinfo *qi);
int shmq__dir_create(shmq_seg *seg, const char *name, struct shmq_qinfo *qi,
		     shmq_block_init_fn init);
/* Look up @name of @kind, count an open handle for this attachment. */
int shmq__dir_open(shmq_seg *seg, const char *name, uint32_t kind,
		   struct shmq_qinfo *out);
/* Drop an open handle; frees the block if unlinked and unused. */
void shmq__dir_close(shmq_seg *seg, uint32_t idx);
/*
 * Under the lock: count a library handle (a pin) to entry @idx, which the
 * caller validated; 0 or -EMFILE.  _unpin takes the lock itself.
 */
int shmq__dir_pin_locked(shmq_seg *seg, uint32_t idx);
void shmq__dir_unpin(shmq_seg *seg, uint32_t idx);
/* Unlink the LIVE entry @name of @kind. */
int shmq__dir_unlink(shmq_seg *seg, const char *name, uint32_t kind);
/* Under the lock, after ipc/ has filled the new block: switch exchange
 * @idx's binding table to it (one store), freeing the old one. */
void shmq__dir_set_aux(shmq_seg *seg, uint32_t idx, uint64_t off,
		       uint64_t size);

/* alloc.c: under the lock; blocks are implied by the directory. */
int shmq__alloc(const shmq_seg *seg, uint64_t size, uint64_t *off);
/* The largest binding table, in bytes (DIR_AUX's 24-bit size field). */
#define SHMQ_AUX_MAX ((uint64_t)0xffffff * SEG_ALIGN)
int shmq__alloc_check(const shmq_seg *seg);
void shmq__alloc_usage(const shmq_seg *seg, uint64_t *used, uint64_t *largest_free);

/* proc.c */
uint16_t *shmq__proc_opens(const shmq_seg *seg, uint32_t pidx);
uint16_t *shmq__proc_pins(const shmq_seg *seg, uint32_t pidx);
_Atomic uint8_t *shmq__proc_roles(const shmq_seg *seg, uint32_t pidx);
/* Count live attachments whose roles[idx] has @bit (under the lock). */
uint32_t shmq__dir_roles(const shmq_seg *seg, uint32_t idx, unsigned bit);
struct proc_entry *shmq__proc_entry(const shmq_seg *seg, uint32_t pidx);
int shmq__proc_attach(shmq_seg *seg);
void shmq__proc_detach(shmq_seg *seg);
bool shmq__proc_alive(const shmq_seg *seg, uint32_t pidx);
/* Free the entries of dead attachments; how many. */
int shmq__proc_reap(shmq_seg *seg);
/*
 * ipc/recover.c: after reaping dead attachments under the lock, repair
 * what they left in every queue (a process-table entry freed without
 * this would hide its dead owner's messages from the probes of waiting
 * consumers: ipc/ack.c, "Promptness").
 */
int shmq__repair_locked(shmq_seg *seg);
/*
 * ipc/ack.c, for shmq_proc_list(): add to @owed[p] the messages process
 * entry p owes in every queue's unacknowledged area.  Under the lock.
 */
void shmq__ack_owed_by(shmq_seg *seg, uint32_t *owed);

/*
 * A live process's operation record, copied for a repairer: see layout.h.
 * Under the lock: shmq__proc_alive_map() sets alive[i] (max_procs bytes)
 * for each attached entry whose owner lives (a process that dies later
 * still counts as alive: the safe direction); shmq__proc_live_recs() copies
 * at most @max valid records of those entries and returns how many.
 */
struct shmq_rec_copy {
	uint64_t pos;
	uint64_t meta;
};
void shmq__proc_alive_map(shmq_seg *seg, uint8_t *alive);
int shmq__proc_live_recs(shmq_seg *seg, const uint8_t *alive,
			 struct shmq_rec_copy *out, unsigned max);
/* Hand out one of our records (-ENOBUFS when all are), give it back. */
int shmq__rec_get(shmq_seg *seg);
void shmq__rec_put(shmq_seg *seg, int i);

#endif /* SHMQ_SHM_H */
