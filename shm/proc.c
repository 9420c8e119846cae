/* SPDX-License-Identifier: MIT */
/*
 * proc.c - the process table and liveness.
 *
 * Entry i belongs to whoever holds an open-file-description lock on byte
 * SEG_LIVE_LOCK_BASE + i of the segment file.  The kernel releases it when
 * the owner dies (even as an unreaped zombie), whatever its pid namespace,
 * and a reused pid cannot inherit it: a lock we can take means the entry's
 * owner is gone.  pid, start time and pid namespace are kept for display.
 *
 * All functions here run under the control-plane lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm.h"

struct proc_entry *shmq__proc_entry(const shmq_seg *seg, uint32_t pidx)
{
	return (struct proc_entry *)(seg->base + seg->proc_off +
				     (uint64_t)pidx * seg->proc_stride);
}

uint16_t *shmq__proc_opens(const shmq_seg *seg, uint32_t pidx)
{
	return (uint16_t *)((unsigned char *)shmq__proc_entry(seg, pidx) +
			    sizeof(struct proc_entry));
}

uint16_t *shmq__proc_pins(const shmq_seg *seg, uint32_t pidx)
{
	return shmq__proc_opens(seg, pidx) + seg->max_queues;
}

_Atomic uint8_t *shmq__proc_roles(const shmq_seg *seg, uint32_t pidx)
{
	return (_Atomic uint8_t *)(shmq__proc_opens(seg, pidx) +
				   2 * (size_t)seg->max_queues);
}

static int live_lock(int fd, short type, uint32_t pidx, int cmd)
{
	return shmq__ofd(fd, cmd, type, SEG_LIVE_LOCK_BASE + (off_t)pidx);
}

/*
 * True when another open file description holds entry @pidx's WRITE lock.
 * A read lock is no sign of life: anyone who can read the file can take
 * one, and an owner's write lock excludes it, so a byte read-locked has no
 * live owner.  Our own attachment's lock never conflicts with our own fd,
 * so it is reported alive without asking.
 */
bool shmq__proc_alive(const shmq_seg *seg, uint32_t pidx)
{
	int rc;

	if ((int)pidx == seg->proc_idx)
		return true;
	rc = live_lock(seg->fd, F_WRLCK, pidx, F_OFD_GETLK);
	/* On an error we cannot tell: treat as alive, never repair wrongly. */
	return rc < 0 || rc == F_WRLCK;
}

static uint64_t read_start_time(void)
{
	char buf[1024], *p;
	unsigned long long st = 0;
	ssize_t n;
	int fd, field;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* Field 22; count from after the ")" that ends the command name. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (field = 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	sscanf(p, "%llu", &st);
	return st;
}

static void fill_identity(struct proc_entry *pe)
{
	struct stat st;
	char comm[32] = "";
	ssize_t n;
	int fd;

	pe->pid = (uint32_t)getpid();
	pe->start_time = read_start_time();
	pe->pidns = stat("/proc/self/ns/pid", &st) == 0 ? st.st_ino : 0;
	pe->attach_time_ns = shmq__now_ns(CLOCK_REALTIME);
	pe->uid = getuid();
	fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n > 0) {
			comm[n] = 0;
			comm[strcspn(comm, "\n")] = 0;
		}
	}
	memset(pe->comm, 0, sizeof(pe->comm));
	memcpy(pe->comm, comm, strnlen(comm, sizeof(pe->comm) - 1));
}

/* Forget what a dead attachment held: its open handles. */
static void proc_clear(shmq_seg *seg, uint32_t pidx)
{
	struct proc_entry *pe = shmq__proc_entry(seg, pidx);

	int i;

	/* opens[], pins[] and roles[]: the owner is gone, or is us, detaching. */
	memset(shmq__proc_opens(seg, pidx), 0, 5 * (size_t)seg->max_queues);
	/* relaxed: the owner is dead (or is us, detaching); the lock orders. */
	for (i = 0; i < PROC_RECS; i++) {
		atomic_store_explicit(&pe->rec[i].meta, 0, memory_order_relaxed);
		atomic_store_explicit(&pe->rec[i].pos, 0, memory_order_relaxed);
	}
	pe->state = PROC_FREE;
}

/*
 * Take a free entry, or the entry of a dead process: the first whose
 * liveness lock we can take.  A dead owner's handles are dropped first.
 */
int shmq__proc_attach(shmq_seg *seg)
{
	uint32_t i, read_locked = 0;

	for (i = 0; i < seg->max_procs; i++) {
		struct proc_entry *pe = shmq__proc_entry(seg, i);

		if (live_lock(seg->fd, F_WRLCK, i, F_OFD_SETLK) != 0) {
			/* Held: its owner is alive, or a reader blocks it. */
			if (live_lock(seg->fd, F_WRLCK, i, F_OFD_GETLK) ==
			    F_RDLCK)
				read_locked++;
			continue;
		}
		if (pe->state != PROC_FREE) {
			proc_clear(seg, i);
			shmq__dir_sweep(seg);
		}
		memset(shmq__proc_opens(seg, i), 0, 5 * (size_t)seg->max_queues);
		fill_identity(pe);
		/* A new attachment in this entry (never 0: see ipc/ack.h). */
		pe->attach_gen = (pe->attach_gen + 1) & ACK_NONCE_MASK;
		if (!pe->attach_gen)
			pe->attach_gen = 1;
		pe->state = PROC_ATTACHED;
		seg->proc_idx = (int)i;
		seg->recs = pe->rec;
		/* relaxed: the attachment is not shared with other threads yet. */
		atomic_store_explicit(&seg->recs_used, 0, memory_order_relaxed);
		atomic_store_explicit(&seg->rec_owner, 0, memory_order_relaxed);
		return 0;
	}
	/*
	 * Entries that only a reader's lock keeps from us: not a full table
	 * but someone with read access to the file denying service (which
	 * read access allows: README, "Trust model").
	 */
	return read_locked ? -EBUSY : -EUSERS;
}

void shmq__proc_detach(shmq_seg *seg)
{
	if (seg->proc_idx < 0)
		return;
	proc_clear(seg, (uint32_t)seg->proc_idx);
	shmq__dir_sweep(seg);
	live_lock(seg->fd, F_UNLCK, (uint32_t)seg->proc_idx, F_OFD_SETLK);
	seg->proc_idx = -1;
}

/* Clear the entries of every dead attachment. */
int shmq__proc_reap(shmq_seg *seg)
{
	uint32_t i;
	int n = 0;

	for (i = 0; i < seg->max_procs; i++) {
		struct proc_entry *pe = shmq__proc_entry(seg, i);

		if (pe->state != PROC_FREE && !shmq__proc_alive(seg, i)) {
			proc_clear(seg, i);
			n++;
		}
	}
	return n;
}

void shmq__proc_alive_map(shmq_seg *seg, uint8_t *alive)
{
	uint32_t i;

	for (i = 0; i < seg->max_procs; i++)
		alive[i] = shmq__proc_entry(seg, i)->state == PROC_ATTACHED &&
			   shmq__proc_alive(seg, i);
}

int shmq__proc_live_recs(shmq_seg *seg, const uint8_t *alive,
			 struct shmq_rec_copy *out, unsigned max)
{
	unsigned n = 0;
	uint32_t i;
	int r;

	for (i = 0; i < seg->max_procs; i++) {
		struct proc_entry *pe = shmq__proc_entry(seg, i);

		if (!alive[i])
			continue;
		for (r = 0; r < PROC_RECS && n < max; r++) {
			/*
			 * acquire: pairs with the owner's release clear (after
			 * its publish or free): a record we see cleared means
			 * we also see the slot it covered moved on, so the
			 * repairer's CAS on that slot fails.  A record written
			 * before a claim CAS that the repairer has seen (by
			 * its acquire of prod_pos/cons_pos) is visible here.
			 */
			uint64_t meta = atomic_load_explicit(&pe->rec[r].meta,
							memory_order_acquire);

			if (!(meta & REC_VALID))
				continue;
			/* relaxed: written before meta; ordered as above. */
			out[n].pos = atomic_load_explicit(&pe->rec[r].pos,
							  memory_order_relaxed);
			out[n].meta = meta;
			n++;
		}
	}
	return (int)n;
}

int shmq__rec_get(shmq_seg *seg)
{
	/* relaxed: a process-local bitmap; the CAS alone decides ownership. */
	uint64_t used = atomic_load_explicit(&seg->recs_used,
					     memory_order_relaxed);
	int i;

	for (;;) {
		if ((~used & ((1ull << PROC_RECS) - 1)) == 0)
			return -ENOBUFS;
		i = __builtin_ctzll(~used);
		/*
		 * acquire: pairs with the release in shmq__rec_put(): the
		 * previous holder's last stores to the record come before
		 * ours in its modification order.
		 */
		if (atomic_compare_exchange_weak_explicit(&seg->recs_used,
				&used, used | (1ull << i),
				memory_order_acquire, memory_order_relaxed))
			return i;
	}
}

void shmq__rec_put(shmq_seg *seg, int i)
{
	/* release: our last writes to the record come before its reuse. */
	atomic_fetch_and_explicit(&seg->recs_used, ~(1ull << i),
				  memory_order_release);
}
