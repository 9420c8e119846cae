/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the block allocator for rings and exchanges.
 *
 * The allocator keeps no state of its own: a block is in use exactly when a
 * non-FREE directory entry names it (off, size).  Allocation sorts those
 * extents and takes the first gap that fits (first fit, SEG_ALIGN-aligned).
 * With at most SHMQ_MAX_QUEUES blocks this costs microseconds on the
 * control plane, and it cannot be left inconsistent by a crash: there is no
 * free list to corrupt, and a queue's block is reserved by the same store
 * that makes the queue LIVE (an exchange's binding table by the store of
 * its entry's aux word).  Under the control-plane lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "shm.h"

struct extent {
	uint64_t off, size;
};

static int extent_cmp(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static void add_extent(const shmq_seg *seg, struct extent *ex, uint32_t *n,
		       uint64_t off, uint64_t size)
{
	/* Clamp to the heap: never trust an entry to stay sane. */
	if (off < seg->heap_off || off > seg->heap_off + seg->heap_size)
		return;
	if (size > seg->heap_off + seg->heap_size - off)
		size = seg->heap_off + seg->heap_size - off;
	ex[*n].off = off;
	ex[*n].size = size;
	(*n)++;
}

/* The used extents, sorted by offset.  Entries were validated on open. */
static struct extent *used_extents(const shmq_seg *seg, uint32_t *n)
{
	struct extent *ex = malloc(sizeof(*ex) * (2 * seg->max_queues + 1));
	uint32_t i;

	*n = 0;
	if (!ex)
		return NULL;
	for (i = 0; i < seg->max_queues; i++) {
		const struct dir_entry *e = shmq__dir_entry(seg, i);
		uint64_t aux = e->aux;

		if (e->state == DIR_FREE)
			continue;
		add_extent(seg, ex, n, e->off, e->size);
		/* An exchange's binding table is its second block. */
		if (e->kind == DIR_KIND_EXCHANGE && aux)
			add_extent(seg, ex, n, DIR_AUX_OFF(aux),
				   DIR_AUX_SIZE(aux));
	}
	qsort(ex, *n, sizeof(*ex), extent_cmp);
	return ex;
}

int shmq__alloc(const shmq_seg *seg, uint64_t size, uint64_t *off)
{
	uint64_t cur = seg->heap_off, end = seg->heap_off + seg->heap_size;
	struct extent *ex;
	uint32_t i, n;
	int rc = -ENOSPC;

	ex = used_extents(seg, &n);
	if (!ex)
		return -ENOMEM;
	for (i = 0; i <= n; i++) {
		uint64_t next = i < n ? ex[i].off : end;

		if (next >= cur && next - cur >= size) {
			*off = cur;
			rc = 0;
			break;
		}
		if (i < n && ex[i].off + ex[i].size > cur)
			cur = ex[i].off + ex[i].size;
	}
	free(ex);
	return rc;
}

/* -EPROTO when two blocks overlap (entries already validated). */
int shmq__alloc_check(const shmq_seg *seg)
{
	struct extent *ex;
	uint32_t i, n;
	int rc = 0;

	ex = used_extents(seg, &n);
	if (!ex)
		return -ENOMEM;
	for (i = 1; i < n; i++)
		if (ex[i - 1].off + ex[i - 1].size > ex[i].off)
			rc = -EPROTO;
	free(ex);
	return rc;
}

void shmq__alloc_usage(const shmq_seg *seg, uint64_t *used,
		       uint64_t *largest_free)
{
	uint64_t cur = seg->heap_off, end = seg->heap_off + seg->heap_size;
	struct extent *ex;
	uint32_t i, n;

	*used = 0;
	*largest_free = 0;
	ex = used_extents(seg, &n);
	if (!ex)
		return;
	for (i = 0; i <= n; i++) {
		uint64_t next = i < n ? ex[i].off : end;

		if (next > cur && next - cur > *largest_free)
			*largest_free = next - cur;
		if (i < n) {
			*used += ex[i].size;
			if (ex[i].off + ex[i].size > cur)
				cur = ex[i].off + ex[i].size;
		}
	}
	free(ex);
}
