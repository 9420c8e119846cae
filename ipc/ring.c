/* SPDX-License-Identifier: MIT */
/*
 * ring.c - a queue block's ring: its initial state (before the directory
 * entry makes it visible) and the views (struct ring) of its main ring and
 * redelivery lane that every handle and repairer works through.  The slot
 * protocol itself is in ring.h.
 */
#include "ack.h"
#include "ring.h"

void shmq__ring_init(void *block, const struct shmq_qinfo *qi)
{
	struct ring_hdr *h = block;
	unsigned char *slots = (unsigned char *)block + SHMQ_RING_HDR_SIZE;
	uint32_t i;

	h->magic = RING_MAGIC;
	h->capacity = qi->capacity;
	h->msg_size = qi->msg_size;
	h->slot_size = qi->slot_size;
	h->flags = qi->flags;
	/*
	 * relaxed: the queue becomes visible only through the directory,
	 * under the control-plane lock, which orders these stores.  The lane's
	 * slots follow the main ring's and start at lap 0 too.
	 */
	for (i = 0; i < qi->capacity + SHMQ_LANE_CAP; i++)
		atomic_store_explicit(&((struct slot *)(slots +
				(uint64_t)i * qi->slot_size))->seq,
				i < qi->capacity ? i : i - qi->capacity,
				memory_order_relaxed);
	/* Then the unacknowledged area after the lane (ack.c). */
	shmq__ack_init(block, qi, qi->dead_letter);
}

void shmq__ring_view(struct ring *main, struct ring *lane,
		     unsigned char *block, const struct shmq_qinfo *qi)
{
	struct ring_hdr *h = (struct ring_hdr *)block;

	main->prod_pos = &h->prod_pos;
	main->cons_pos = &h->cons_pos;
	main->slots = block + SHMQ_RING_HDR_SIZE;
	main->capacity = qi->capacity;
	main->mask = qi->capacity - 1;
	main->msg_size = qi->msg_size;
	main->slot_size = qi->slot_size;
	main->rec_meta = (uint64_t)qi->idx << REC_QSHIFT;
	*lane = *main;
	lane->prod_pos = &h->lane_prod_pos;
	lane->cons_pos = &h->lane_cons_pos;
	lane->slots = main->slots + (uint64_t)qi->capacity * qi->slot_size;
	lane->capacity = SHMQ_LANE_CAP;
	lane->mask = SHMQ_LANE_CAP - 1;
	lane->rec_meta |= REC_LANE;
}
