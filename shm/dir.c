/* SPDX-License-Identifier: MIT */
/*
 * dir.c - the directory of named queues and exchanges.
 *
 * Everything here runs under the control-plane lock.  An entry changes
 * state by one store made after its other fields are written (layout.h), so
 * a holder killed at any instruction leaves a consistent directory.  A
 * queue's open handles are counted per attachment (proc_entry opens[]), so
 * the handles of a dead process vanish with its entry; an unlinked queue is
 * freed when no attachment counts a handle to it.
 */
#include <errno.h>
#include <string.h>

#include "shm.h"

struct dir_entry *shmq__dir_entry(const shmq_seg *seg, uint32_t idx)
{
	return (struct dir_entry *)(seg->base + seg->dir_off) + idx;
}

void shmq__dir_changed(shmq_seg *seg)
{
	/*
	 * seq_cst: route caches (ipc/exchange.c) compare their generation
	 * with this word at the start of every publish; a publish that
	 * starts after the change returned must see the new value.  The
	 * change itself was written under the lock, which a cache rebuild
	 * takes, so the data needs no ordering from this word.
	 */
	atomic_fetch_add_explicit(&shmq__hdr(seg)->dir_gen, 1,
				  memory_order_seq_cst);
}

#define dir_changed shmq__dir_changed

/* Open handles to entry @idx over every attachment. */
uint32_t shmq__dir_opens(const shmq_seg *seg, uint32_t idx)
{
	uint32_t p, n = 0;

	for (p = 0; p < seg->max_procs; p++)
		if (shmq__proc_entry(seg, p)->state == PROC_ATTACHED)
			n += shmq__proc_opens(seg, p)[idx];
	return n;
}

/* Library handles (route caches) to entry @idx over every attachment. */
uint32_t shmq__dir_pins(const shmq_seg *seg, uint32_t idx)
{
	uint32_t p, n = 0;

	for (p = 0; p < seg->max_procs; p++)
		if (shmq__proc_entry(seg, p)->state == PROC_ATTACHED)
			n += shmq__proc_pins(seg, p)[idx];
	return n;
}

uint32_t shmq__dir_roles(const shmq_seg *seg, uint32_t idx, unsigned bit)
{
	uint32_t p, n = 0;

	for (p = 0; p < seg->max_procs; p++)
		/* relaxed: display only; set by the owner, cleared under us. */
		if (shmq__proc_entry(seg, p)->state == PROC_ATTACHED &&
		    (atomic_load_explicit(&shmq__proc_roles(seg, p)[idx],
					  memory_order_relaxed) & bit))
			n++;
	return n;
}

/*
 * Check one entry and copy its geometry.  Copy first: each field is read
 * once, and only the copy is checked and returned.  A FREE entry is valid:
 * 0, with @out zeroed but for idx and state (DIR_FREE).
 */
int shmq__dir_validate_entry(const shmq_seg *seg, const struct dir_entry *e,
			     struct shmq_qinfo *out)
{
	uint64_t end, heap_end = seg->heap_off + seg->heap_size;
	uint64_t aux_off = 0, aux_size = 0;
	struct dir_entry c;

	memcpy(&c, e, sizeof(c));
	if (c.state == DIR_FREE) {
		/*
		 * Nothing to check, but @out must still say FREE (kind 0,
		 * capacity 0): a caller that judges the copy (a binding's
		 * queue, LIVE and of its gen?) would otherwise judge what
		 * @out held before, another entry's.
		 */
		if (out) {
			memset(out, 0, sizeof(*out));
			out->idx = (uint32_t)(e - shmq__dir_entry(seg, 0));
			out->state = DIR_FREE;
		}
		return 0;
	}
	if (c.state != DIR_LIVE && c.state != DIR_UNLINKED)
		return -EPROTO;
	if (memchr(c.name, 0, sizeof(c.name)) == NULL ||
	    shmq__name_check(c.name) != 0)
		return -EPROTO;
	end = c.off + c.size;
	if (c.off % SEG_ALIGN || c.size % SEG_ALIGN || end < c.off ||
	    c.off < seg->heap_off || end > heap_end)
		return -EPROTO;
	if (c.kind == DIR_KIND_QUEUE) {
		if (c.capacity < 2 || c.capacity > SHMQ_MAX_CAPACITY ||
		    (c.capacity & (c.capacity - 1)) ||
		    c.msg_size > SHMQ_MAX_MSG_SIZE ||
		    (c.flags & ~SHMQ_QUEUE_FLAGS) ||
		    (c.flags & SHMQ_OVERFLOW) == SHMQ_OVERFLOW ||
		    c.slot_size != shmq__slot_size(c.msg_size, c.flags) ||
		    ((c.flags & SHMQ_SPSC) ? c.ack_cap != 0 : c.ack_cap == 0) ||
		    c.prefetch > c.ack_cap ||
		    shmq__queue_bytes(c.capacity, c.msg_size, c.slot_size,
				      c.flags, c.ack_cap) > c.size)
			return -EPROTO;
	} else if (c.kind == DIR_KIND_EXCHANGE) {
		aux_off = DIR_AUX_OFF(c.aux);
		aux_size = DIR_AUX_SIZE(c.aux);
		if (c.slot_size < SHMQ_DIRECT || c.slot_size > SHMQ_TOPIC ||
		    c.flags || c.size < SEG_ALIGN)
			return -EPROTO;
		if (c.aux && (aux_off < seg->heap_off || aux_size == 0 ||
			      aux_off + aux_size > heap_end ||
			      aux_off + aux_size < aux_off))
			return -EPROTO;
		c.capacity = c.msg_size = 0;
		c.ack_cap = c.prefetch = 0;
		c.max_deliveries = 0;
	} else {
		return -EPROTO;
	}
	if (out) {
		out->idx = (uint32_t)(e - shmq__dir_entry(seg, 0));
		out->capacity = c.capacity;
		out->msg_size = c.msg_size;
		out->slot_size = c.slot_size;
		out->flags = c.flags;
		out->kind = c.kind;
		out->ack_cap = c.ack_cap;
		out->prefetch = c.prefetch ? c.prefetch : c.ack_cap;
		out->max_deliveries = c.max_deliveries;
		out->gen = c.gen;
		out->state = c.state;
		out->off = c.off;
		out->size = c.size;
		out->aux_off = aux_off;
		out->aux_size = aux_size;
	}
	return 0;
}

/* Every entry valid, no two blocks overlapping. */
int shmq__dir_validate(const shmq_seg *seg)
{
	uint32_t i;
	int rc;

	for (i = 0; i < seg->max_queues; i++) {
		rc = shmq__dir_validate_entry(seg, shmq__dir_entry(seg, i), NULL);
		if (rc)
			return rc;
	}
	return shmq__alloc_check(seg);
}

int shmq__dir_find(const shmq_seg *seg, const char *name)
{
	uint32_t i;

	for (i = 0; i < seg->max_queues; i++) {
		const struct dir_entry *e = shmq__dir_entry(seg, i);

		if (e->state == DIR_LIVE &&
		    strncmp(e->name, name, sizeof(e->name)) == 0)
			return (int)i;
	}
	return -ENOENT;
}

/*
 * Free every unlinked entry that no live attachment has open or pinned;
 * unlink SHMQ_AUTODELETE queues that were opened and have no user handle.
 */
void shmq__dir_sweep(shmq_seg *seg)
{
	uint32_t i;

	for (i = 0; i < seg->max_queues; i++) {
		struct dir_entry *e = shmq__dir_entry(seg, i);

		if (e->state == DIR_LIVE && e->kind == DIR_KIND_QUEUE &&
		    (e->flags & SHMQ_AUTODELETE) && e->opened &&
		    shmq__dir_opens(seg, i) == 0) {
			e->state = DIR_UNLINKED;
			dir_changed(seg);
		}
		if (e->state == DIR_UNLINKED && shmq__dir_opens(seg, i) == 0 &&
		    shmq__dir_pins(seg, i) == 0) {
			e->state = DIR_FREE;
			dir_changed(seg);
		}
	}
}

int shmq__dir_create(shmq_seg *seg, const char *name, struct shmq_qinfo *qi,
		     shmq_block_init_fn init)
{
	uint64_t bytes, off;
	struct dir_entry *e = NULL;
	uint32_t i;
	int rc;

	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	if (shmq__dir_find(seg, name) >= 0) {
		rc = -EEXIST;
		goto out;
	}
	for (i = 0; i < seg->max_queues && !e; i++)
		if (shmq__dir_entry(seg, i)->state == DIR_FREE)
			e = shmq__dir_entry(seg, i);
	if (!e) {
		rc = -ENOSPC;
		goto out;
	}
	if (qi->kind == DIR_KIND_EXCHANGE)
		bytes = qi->size;
	else
		bytes = shmq__queue_bytes(qi->capacity, qi->msg_size,
					  qi->slot_size, qi->flags,
					  qi->ack_cap);
	bytes = (bytes + SEG_ALIGN - 1) & ~(uint64_t)(SEG_ALIGN - 1);
	rc = shmq__alloc(seg, bytes, &off);
	if (rc)
		goto out;
	/* Fill the entry while it is still FREE; it goes LIVE last. */
	memset(e->name, 0, sizeof(e->name));
	strcpy(e->name, name);
	e->kind = qi->kind == DIR_KIND_EXCHANGE ? DIR_KIND_EXCHANGE :
		  DIR_KIND_QUEUE;
	e->off = off;
	e->size = bytes;
	if (e->kind == DIR_KIND_EXCHANGE) {
		e->aux = 0;
		e->ack_cap = e->prefetch = 0;
		e->max_deliveries = 0;
	} else {
		e->capacity = qi->capacity;
		e->msg_size = qi->msg_size;
		e->ack_cap = (uint16_t)qi->ack_cap;
		e->prefetch = (uint16_t)qi->prefetch;
		e->max_deliveries = qi->max_deliveries;
	}
	e->slot_size = qi->slot_size;
	e->flags = qi->flags;
	e->create_time_ns = shmq__now_ns(CLOCK_REALTIME);
	e->opened = 0;
	e->gen++;
	qi->gen = e->gen;
	qi->kind = e->kind;
	qi->idx = (uint32_t)(e - shmq__dir_entry(seg, 0));
	qi->off = off;
	qi->size = bytes;
	/* A block may hold a freed queue's bytes: start from zero. */
	memset(seg->base + off, 0, bytes);
	init(seg->base + off, qi);
	/*
	 * Plain store under the lock: readers of the directory take the
	 * lock, whose release orders the fields and the ring before it.
	 */
	e->state = DIR_LIVE;
	dir_changed(seg);
out:
	shmq__seg_unlock(seg);
	return rc;
}

int shmq__dir_lookup(const shmq_seg *seg, const char *name, uint32_t kind,
		     struct shmq_qinfo *out)
{
	struct shmq_qinfo tmp;
	int idx = shmq__dir_find(seg, name);
	int rc;

	if (idx < 0)
		return idx;
	if (!out)
		out = &tmp;
	rc = shmq__dir_validate_entry(seg, shmq__dir_entry(seg, (uint32_t)idx),
				      out);
	if (rc)
		return rc;
	return out->kind == kind ? idx : -ENOENT;
}

int shmq__dir_open(shmq_seg *seg, const char *name, uint32_t kind,
		   struct shmq_qinfo *out)
{
	uint16_t *opens;
	int idx, rc;

	/* An observer (shmq_seg_observe) has no entry to count handles in. */
	if (seg->proc_idx < 0)
		return -EPERM;
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	idx = shmq__dir_lookup(seg, name, kind, out);
	if (idx < 0) {
		rc = idx;
		goto out;
	}
	opens = shmq__proc_opens(seg, (uint32_t)seg->proc_idx);
	if (opens[idx] == UINT16_MAX) {
		rc = -EMFILE;
		goto out;
	}
	opens[idx]++;
	shmq__dir_entry(seg, (uint32_t)idx)->opened = 1;
out:
	shmq__seg_unlock(seg);
	return rc;
}

void shmq__dir_close(shmq_seg *seg, uint32_t idx)
{
	uint16_t *opens;

	if (shmq__seg_lock(seg))
		return;
	opens = shmq__proc_opens(seg, (uint32_t)seg->proc_idx);
	if (opens[idx])
		opens[idx]--;
	/* relaxed: display only.  No handle left: no role either. */
	if (!opens[idx])
		atomic_store_explicit(&shmq__proc_roles(seg,
				(uint32_t)seg->proc_idx)[idx], 0,
				memory_order_relaxed);
	shmq__dir_sweep(seg);
	shmq__seg_unlock(seg);
}

int shmq__dir_pin_locked(shmq_seg *seg, uint32_t idx)
{
	uint16_t *pins = shmq__proc_pins(seg, (uint32_t)seg->proc_idx);

	if (pins[idx] == UINT16_MAX)
		return -EMFILE;
	pins[idx]++;
	return 0;
}

void shmq__dir_unpin(shmq_seg *seg, uint32_t idx)
{
	uint16_t *pins;

	if (shmq__seg_lock(seg))
		return;
	pins = shmq__proc_pins(seg, (uint32_t)seg->proc_idx);
	if (pins[idx])
		pins[idx]--;
	shmq__dir_sweep(seg);
	shmq__seg_unlock(seg);
}

int shmq__dir_unlink(shmq_seg *seg, const char *name, uint32_t kind)
{
	int idx, rc;

	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	idx = shmq__dir_find(seg, name);
	if (idx >= 0 && shmq__dir_entry(seg, (uint32_t)idx)->kind == kind) {
		shmq__dir_entry(seg, (uint32_t)idx)->state = DIR_UNLINKED;
		dir_changed(seg);
		shmq__dir_sweep(seg);
		rc = 0;
	} else {
		rc = -ENOENT;
	}
	shmq__seg_unlock(seg);
	return rc;
}

void shmq__dir_set_aux(shmq_seg *seg, uint32_t idx, uint64_t off,
		       uint64_t size)
{
	/*
	 * One store switches the table (and frees the old block, which the
	 * allocator knows only through this word).  Plain: under the lock,
	 * which every reader of the table takes.
	 */
	shmq__dir_entry(seg, idx)->aux = size ? DIR_AUX(off, size) : 0;
	dir_changed(seg);
}
