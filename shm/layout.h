/* SPDX-License-Identifier: MIT */
/*
 * layout.h - the byte map of a shmq segment.
 *
 * A segment is one file (a POSIX shm object under /dev/shm, or a regular
 * file) mapped MAP_SHARED by every attached process, at different addresses:
 * every reference inside it is an offset from its first byte.
 *
 *   offset 0            struct seg_hdr (one page): identity, geometry, the
 *                       control-plane lock's busy word
 *   hdr.dir_off         struct dir_entry[max_queues]: the named queues
 *   hdr.proc_off        max_procs process entries of hdr.proc_stride bytes:
 *                       struct proc_entry (identity, then the records of
 *                       operations in flight), then uint16_t opens[max_queues],
 *                       uint16_t pins[max_queues] and _Atomic uint8_t
 *                       roles[max_queues]
 *   hdr.heap_off        the heap, up to the end of the file: one block per
 *                       live queue, two per exchange (dir_entry), 4096-aligned
 *
 * Write rules.  Every field of the header except dir_gen and ctl_busy is
 * written once, before the segment gets its name, and never again.
 * Directory and
 * process entries are written only under the control-plane lock, except a
 * process entry's operation records, which its owner writes.  The
 * contents of a queue's block belong to ipc/ (see ipc/ring.h).
 *
 * Crash consistency.  A directory entry changes state by a single 32-bit
 * store after its other fields are written: FREE -> LIVE when created,
 * LIVE -> UNLINKED when its name is removed, -> FREE when its last handle
 * closes.  The block allocator keeps no state of its own (a block is in use
 * exactly when a non-FREE entry names it), so a process killed inside the
 * control plane leaves the directory consistent; the next holder of the
 * control-plane lock, finding ctl_busy still set, only sweeps entries whose
 * handles are gone.
 *
 * Locks the kernel keeps.  Nothing that decides who may proceed is a word
 * in the segment, which any writer could forge: both kinds of lock are
 * open-file-description locks (F_OFD_SETLK) on single bytes of the file,
 * which the kernel drops when their holder dies (or the boot ends).
 *   - Liveness: process entry i is owned by whoever holds a WRITE lock on
 *     byte SEG_LIVE_LOCK_BASE + i.  A read lock there (anyone who can read
 *     the file can take one) proves nothing and counts as no owner.
 *   - The control plane: byte SEG_CTL_LOCK, write-locked by the process in
 *     the control plane (shm/seg.c).  hdr.ctl_busy is set by each attached
 *     holder while inside and cleared on the way out: a holder that finds
 *     it set knows the previous one died inside (as EOWNERDEAD did for the
 *     robust mutex of layout version 3).  A forged ctl_busy only costs a
 *     sweep, which is idempotent.
 *
 * Nothing read from the segment is trusted: open validates the header and
 * every directory entry (shmq__seg_validate, shmq__dir_validate) and copies
 * the geometry into private memory, never to be re-read.
 */
#ifndef SHMQ_LAYOUT_H
#define SHMQ_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

#define SEG_MAGIC        0x31474553514d4853ull  /* "SHMQSEG1" in file order */
#define SEG_VERSION      6u                     /* 5: exchanges, keys;
						 * 6: unacknowledged areas */
#define SEG_HDR_SIZE     4096u
#define SEG_ALIGN        4096u                  /* dir, proc table, blocks */
#define SEG_MIN_SIZE     (64u * 1024)
#define SEG_LIVE_LOCK_BASE 0                    /* + proc index */
#define SEG_CTL_LOCK     4094                   /* > SHMQ_MAX_PROCS */

/*
 * The first page, byte by byte (each offset is asserted below):
 *
 *   off  size  field           written            meaning
 *     0     8  magic           at creation        SEG_MAGIC
 *     8     4  version         at creation        SEG_VERSION
 *    12     4  hdr_size        at creation        SEG_HDR_SIZE
 *    16     8  seg_size        at creation        bytes; == the file size
 *    24     4  max_queues      at creation        directory entries
 *    28     4  max_procs       at creation        process entries
 *    32     8  dir_off         at creation        == SEG_HDR_SIZE
 *    40     8  proc_off        at creation        SEG_ALIGN-aligned
 *    48     4  proc_stride     at creation        proc_stride_for(max_queues)
 *    52     4  mode            at creation        permission bits (display)
 *    56     8  heap_off        at creation        SEG_ALIGN-aligned
 *    64     8  heap_size       at creation        seg_size - heap_off
 *    72     4  creator_uid     at creation        effective uid (display)
 *    76     4  flags           at creation        0
 *    80     8  create_time_ns  at creation        CLOCK_REALTIME (display)
 *    88    16  reserved0                          zero (layout 3: a boot id)
 *   104    24  pad0                               zero
 *   128     4  dir_gen         directory changes  bumped by each, and by each
 *                                                  binding change (route caches)
 *   132   124  pad1                               zero
 *   256     4  ctl_busy        control plane      1 while a holder is in it
 *   260  3836  pad2                               zero
 *
 * Readers copy the page and validate the copy (seg.c, hdr_validate); only
 * dir_gen and ctl_busy are read in place, as atomics.
 */
struct seg_hdr {
	uint64_t magic;          /* SEG_MAGIC */
	uint32_t version;        /* SEG_VERSION: another value is -EPROTO */
	uint32_t hdr_size;       /* SEG_HDR_SIZE */
	uint64_t seg_size;       /* bytes; equals the file size */
	uint32_t max_queues;     /* directory entries */
	uint32_t max_procs;      /* process entries */
	uint64_t dir_off;
	uint64_t proc_off;
	uint32_t proc_stride;    /* bytes per process entry */
	uint32_t mode;           /* permission bits at creation (display) */
	uint64_t heap_off;
	uint64_t heap_size;      /* heap_off + heap_size == seg_size */
	uint32_t creator_uid;
	uint32_t flags;          /* 0 */
	uint64_t create_time_ns; /* CLOCK_REALTIME at creation (display) */
	uint8_t reserved0[16];   /* zero; layout 3 kept a boot id here */
	uint8_t pad0[128 - 104];

	_Atomic uint32_t dir_gen; /* bumped by every directory or binding
				   * change, under the lock (seq_cst) */
	uint8_t pad1[128 - 4];

	/*
	 * 1 while an attached process is inside the control plane (under
	 * the lock on byte SEG_CTL_LOCK), else 0.  Observers never write it.
	 */
	_Atomic uint32_t ctl_busy;
	uint8_t pad2[SEG_HDR_SIZE - 260];
};

#define SEG_AT(type, field, off) \
	_Static_assert(offsetof(struct type, field) == (off), #field)
SEG_AT(seg_hdr, magic, 0);
SEG_AT(seg_hdr, version, 8);
SEG_AT(seg_hdr, hdr_size, 12);
SEG_AT(seg_hdr, seg_size, 16);
SEG_AT(seg_hdr, max_queues, 24);
SEG_AT(seg_hdr, max_procs, 28);
SEG_AT(seg_hdr, dir_off, 32);
SEG_AT(seg_hdr, proc_off, 40);
SEG_AT(seg_hdr, proc_stride, 48);
SEG_AT(seg_hdr, mode, 52);
SEG_AT(seg_hdr, heap_off, 56);
SEG_AT(seg_hdr, heap_size, 64);
SEG_AT(seg_hdr, creator_uid, 72);
SEG_AT(seg_hdr, flags, 76);
SEG_AT(seg_hdr, create_time_ns, 80);
SEG_AT(seg_hdr, reserved0, 88);
SEG_AT(seg_hdr, pad0, 104);
SEG_AT(seg_hdr, dir_gen, 128);
SEG_AT(seg_hdr, pad1, 132);
SEG_AT(seg_hdr, ctl_busy, 256);
SEG_AT(seg_hdr, pad2, 260);
_Static_assert(sizeof(struct seg_hdr) == SEG_HDR_SIZE, "header is one page");
_Static_assert(SEG_CTL_LOCK >= SEG_LIVE_LOCK_BASE + 1024,
	       "the control lock byte is no process entry's");

enum { DIR_FREE = 0, DIR_LIVE = 1, DIR_UNLINKED = 2 };
enum { DIR_KIND_QUEUE = 1, DIR_KIND_EXCHANGE = 2 };

/*
 * One named object.  128 bytes.  A queue (kind DIR_KIND_QUEUE) owns one
 * block, its ring (ipc/ring.h).  An exchange (DIR_KIND_EXCHANGE) owns two:
 * its header (off, size: identity and counters, never moved, see
 * ipc/exchange.h) and its binding table, described by the single word aux
 * so that a table that grows or is compacted into a new block is switched
 * by one store (a holder killed before it leaves the old table in force).
 * gen counts the creations in this entry: (index, gen) names one queue
 * for ever, which is how a binding names its queue.
 */
struct dir_entry {
	char name[64];           /* NUL-terminated, [A-Za-z0-9._-]{1,63} */
	uint32_t state;          /* DIR_FREE, DIR_LIVE, DIR_UNLINKED */
	uint32_t kind;           /* DIR_KIND_QUEUE, DIR_KIND_EXCHANGE */
	uint64_t off;            /* block offset from segment start */
	uint64_t size;           /* block bytes, multiple of SEG_ALIGN */
	union {
		struct {                 /* a queue */
			uint32_t capacity;       /* messages, power of two */
			uint32_t msg_size;       /* largest payload */
		};
		uint64_t aux;            /* an exchange: DIR_AUX(off, size) */
	};
	uint32_t slot_size;      /* queue: bytes per slot, multiple of 64;
				  * exchange: its type (SHMQ_DIRECT...) */
	uint32_t flags;          /* queue attribute flags; exchange: 0 */
	uint64_t create_time_ns; /* CLOCK_REALTIME (display) */
	uint32_t gen;            /* creations in this entry */
	uint32_t opened;         /* 1 once a user handle opened it (the
				  * SHMQ_AUTODELETE rule) */
	/*
	 * An MPMC queue's unacknowledged area (ipc/ack.c), placed after the
	 * lane: entries (0 for other kinds), and the attributes that
	 * govern it.  Since layout 6.
	 */
	uint16_t ack_cap;
	uint16_t prefetch;
	uint32_t max_deliveries; /* 0: no limit */
};

/* An exchange's binding-table block: offset and size in SEG_ALIGN units. */
#define DIR_AUX(off, size)  (((uint64_t)(off) / SEG_ALIGN) << 24 | \
			     (uint64_t)(size) / SEG_ALIGN)
#define DIR_AUX_OFF(aux)    (((aux) >> 24) * SEG_ALIGN)
#define DIR_AUX_SIZE(aux)   (((aux) & 0xffffffull) * SEG_ALIGN)

SEG_AT(dir_entry, name, 0);
SEG_AT(dir_entry, state, 64);
SEG_AT(dir_entry, kind, 68);
SEG_AT(dir_entry, off, 72);
SEG_AT(dir_entry, size, 80);
SEG_AT(dir_entry, capacity, 88);
SEG_AT(dir_entry, aux, 88);
SEG_AT(dir_entry, msg_size, 92);
SEG_AT(dir_entry, slot_size, 96);
SEG_AT(dir_entry, flags, 100);
SEG_AT(dir_entry, create_time_ns, 104);
SEG_AT(dir_entry, gen, 112);
SEG_AT(dir_entry, opened, 116);
SEG_AT(dir_entry, ack_cap, 120);
SEG_AT(dir_entry, prefetch, 122);
SEG_AT(dir_entry, max_deliveries, 124);
_Static_assert(sizeof(struct dir_entry) == 128, "dir entry size");

enum { PROC_FREE = 0, PROC_ATTACHED = 1 };

/*
 * An operation in flight: the positions a process is about to claim, or has
 * claimed and not yet published (producer) or freed (consumer).  Written
 * only by the owning process, on its data path, with atomics (ipc/ring.h
 * says when); read by repairers under the control-plane lock.
 *
 *   pos    first position of the claim
 *   meta   REC_VALID | REC_CONS (else producer) | REC_LANE (the queue's
 *          redelivery lane, else its main ring) | queue's directory index
 *          << REC_QSHIFT | count of consecutive positions (batches)
 */
struct proc_rec {
	_Atomic uint64_t pos;
	_Atomic uint64_t meta;
};

#define REC_VALID   (1ull << 63)
#define REC_CONS    (1ull << 62)
#define REC_LANE    (1ull << 61)
#define REC_QSHIFT  32
#define REC_QMASK   0xffffull              /* >= SHMQ_MAX_QUEUES - 1 */
#define REC_NMASK   0xffffffffull          /* >= SHMQ_MAX_CAPACITY */
#define PROC_RECS   60                     /* records per process */
#define ACK_NONCE_MASK 0xfffffu            /* attach_gen: 20 bits */

/*
 * One attachment.  Followed, within proc_stride, by
 * uint16_t opens[max_queues]: this attachment's open handles per directory
 * entry, so that the handles of a dead process can be reclaimed.  The
 * identity (first line) is written under the lock; the records by the
 * owner at any time.
 */
struct proc_entry {
	uint32_t state;          /* PROC_FREE, PROC_ATTACHED */
	uint32_t pid;            /* in the pid namespace pidns (display) */
	uint64_t start_time;     /* /proc/PID/stat starttime, clock ticks */
	uint64_t pidns;          /* inode of /proc/self/ns/pid */
	uint64_t attach_time_ns; /* CLOCK_REALTIME (display) */
	char comm[16];           /* command name (display) */
	uint32_t uid;
	/*
	 * Attachments made in this entry, bumped by each (under the lock):
	 * with the entry's index it names one attachment for ever, which is
	 * how an unacknowledged-area entry names its owner (ipc/ack.c).
	 */
	uint32_t attach_gen;     /* 1..ACK_NONCE_MASK */
	uint64_t pad1;
	struct proc_rec rec[PROC_RECS];
};

SEG_AT(proc_entry, state, 0);
SEG_AT(proc_entry, pid, 4);
SEG_AT(proc_entry, start_time, 8);
SEG_AT(proc_entry, pidns, 16);
SEG_AT(proc_entry, attach_time_ns, 24);
SEG_AT(proc_entry, comm, 32);
SEG_AT(proc_entry, uid, 48);
SEG_AT(proc_entry, attach_gen, 52);
SEG_AT(proc_entry, pad1, 56);
SEG_AT(proc_entry, rec, 64);            /* the records' own line */
_Static_assert(sizeof(struct proc_rec) == 16, "record size");
_Static_assert(sizeof(struct proc_entry) == 1024, "proc entry size");

/*
 * Bytes of a process entry for a segment with max_queues directory entries:
 * struct proc_entry, uint16_t opens[max_queues] (the user's handles),
 * uint16_t pins[max_queues] (the library's own handles: an exchange's route
 * cache; they keep a block but do not keep a SHMQ_AUTODELETE queue), then
 * uint8_t roles[max_queues] (PROC_ROLE_* bits: this attachment has sent to
 * / received from the queue through a handle still open; display only).
 */
#define PROC_ROLE_PROD 1u
#define PROC_ROLE_CONS 2u

static inline uint32_t proc_stride_for(uint32_t max_queues)
{
	uint32_t b = (uint32_t)sizeof(struct proc_entry) + 5 * max_queues;

	return (b + 127) & ~127u;
}

#endif /* SHMQ_LAYOUT_H */
