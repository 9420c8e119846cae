// SPDX-License-Identifier: MIT
/*
 * fuzz_ring.c - libFuzzer harness: a ring whose shared words a hostile
 * peer controls.
 *
 * At start-up: a real file-backed segment under $SHMQ_FUZZ_DIR (or a fresh
 * /dev/shm/shmq-fuzz.<pid>), one queue of capacity 8 with 48-byte messages,
 * opened through the public API.  The heap pages after the queue's block
 * are made PROT_NONE in our mapping, so any access past the ring faults at
 * once instead of landing silently in another block.
 *
 * Each input resets the ring to empty and is then read as a program of
 * one-byte opcodes with operands: overwrite prod_pos, cons_pos, a slot's
 * seq or len, an event word, or any aligned 64-bit word of the ring header
 * (this covers fields added later, such as a redelivery lane); or call the
 * API: send, recv, send_batch, recv_batch, reserve/commit, acquire/release
 * (with real or forged tokens), shmq_seg_recover(), shmq_purge(),
 * shmq_peek() and shmq_queue_stat(); with
 * timeout 0 or a tiny positive timeout.  Values are chosen either absolute
 * or relative to the current positions, so that near-consistent states
 * (the interesting ones) are common.
 *
 * Must never crash, hang, or touch memory outside the block; every length
 * returned is checked against the caller's buffer and msg_size, every
 * zero-copy pointer against the slots.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_scratch.h"
#include "shmq.h"
#include "ring.h"

#define CAP		8u
#define MSG		48u

static shmq_seg *seg;
static shmq *q;

static void cleanup(void)
{
	if (q)
		shmq_close(q);
	if (seg)
		shmq_seg_close(seg);
	fuzz_scratch_remove();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct shmq_seg_attr sa = {
		.size = 64 * 1024, .mode = 0600, .max_queues = 4, .max_procs = 4,
	};
	unsigned char *end, *guard;
	long page = sysconf(_SC_PAGESIZE);
	int rc;

	(void)argc;
	(void)argv;
	fuzz_scratch_init("fuzz_ring", "ring");
	rc = shmq_seg_create(fuzz_path, &sa, &seg);
	if (!rc)
		rc = shmq_create(seg, "q", &(struct shmq_attr){ CAP, MSG, 0 });
	if (!rc)
		rc = shmq_open(seg, "q", &q);
	if (rc) {
		fprintf(stderr, "fuzz_ring: setup: %s\n", shmq_strerror(rc));
		exit(2);
	}
	atexit(cleanup);
	shmq_set_spin(q, 0);
	/* Tiny stall threshold: waits run repair passes on hostile state. */
	shmq_set_stall(q, 1000);
	/* Guard pages: everything after the ring's last slot, page-aligned. */
	end = q->lane.slots + (size_t)q->lane.capacity * q->lane.slot_size;
	guard = (unsigned char *)(((uintptr_t)end + page - 1) & ~(uintptr_t)(page - 1));
	if (guard < seg->base + seg->size &&
	    mprotect(guard, (size_t)(seg->base + seg->size - guard), PROT_NONE)) {
		perror("fuzz_ring: mprotect");
		exit(2);
	}
	return 0;
}

/* The ring as a fresh queue: empty, every slot free for lap 0. */
static void ring_reset(void)
{
	size_t hdr_from = offsetof(struct ring_hdr, prod_pos);
	uint32_t i;

	memset((unsigned char *)q->hdr + hdr_from, 0,
	       SHMQ_RING_HDR_SIZE - hdr_from);
	for (i = 0; i < q->capacity + SHMQ_LANE_CAP; i++) {
		struct ring *r = i < q->capacity ? &q->main : &q->lane;
		uint32_t pos = i < q->capacity ? i : i - q->capacity;
		struct slot *s = ring_slot(r, pos);

		atomic_store_explicit(&s->seq, pos, memory_order_relaxed);
		atomic_store_explicit(&s->len, 0, memory_order_relaxed);
	}
}

/* The input as a stream of operands; zeros once it runs out. */
struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

/* A value: absolute, or a small signed delta from a current position. */
static uint64_t value(struct in *in)
{
	uint8_t mode = u8(in);
	/* relaxed: single-threaded harness; only the values matter. */
	uint64_t pp = atomic_load_explicit(&q->hdr->prod_pos, memory_order_relaxed);
	uint64_t cp = atomic_load_explicit(mode & 8 ? &q->hdr->lane_cons_pos :
					   &q->hdr->cons_pos, memory_order_relaxed);
	int8_t d = (int8_t)u8(in);

	switch (mode & 3) {
	case 0:
		return u64(in);
	case 1:
		return pp + (uint64_t)(int64_t)d;
	case 2:
		return cp + (uint64_t)(int64_t)d;
	default:
		/* With the tombstone bit that recovery uses (1 << 63). */
		return (cp + (uint64_t)(int64_t)d) | (mode & 4 ? 1ull << 63 : 0);
	}
}

static void check_zc(const struct shmq_msg *m)
{
	const unsigned char *p = m->data;
	const unsigned char *end = q->lane.slots +
		(size_t)q->lane.capacity * q->lane.slot_size;

	if (p < q->main.slots + SHMQ_SLOT_HDR_SIZE || p + m->len > end ||
	    m->len > MSG) {
		fprintf(stderr, "fuzz_ring: zero-copy message outside the slots\n");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct shmq_msg held[4];
	unsigned nheld = 0, steps = 0;
	unsigned char buf[MSG + 8];

	ring_reset();
	memset(buf, 0x33, sizeof(buf));
	while (in.n && steps++ < 64) {
		uint8_t op = u8(&in);
		int64_t to = op & 0x80 ? 2000 : 0;    /* ns */
		struct iovec v[CAP + 2];
		unsigned char *bufs[CAP + 2];
		struct shmq_msg m;
		ssize_t n;
		unsigned i, k;
		int rc;

		switch (op & 0x7f) {
		case 0:
			/* relaxed: the hostile peer's plain overwrite. */
			atomic_store_explicit(&q->hdr->prod_pos, value(&in),
					      memory_order_relaxed);
			break;
		case 1:
			atomic_store_explicit(&q->hdr->cons_pos, value(&in),
					      memory_order_relaxed);
			break;
		case 2:
			i = u8(&in);
			atomic_store_explicit(&ring_slot(i & 0x80 ? &q->lane :
					&q->main, i)->seq, value(&in),
					      memory_order_relaxed);
			break;
		case 3:
			i = u8(&in);
			atomic_store_explicit(&ring_slot(i & 0x80 ? &q->lane :
					&q->main, i)->len,
					      (uint32_t)u64(&in),
					      memory_order_relaxed);
			break;
		case 4:
			atomic_store_explicit(&q->hdr->not_empty.waiters,
					      (uint32_t)u64(&in), memory_order_relaxed);
			atomic_store_explicit(&q->hdr->not_full.seq,
					      (uint32_t)u64(&in), memory_order_relaxed);
			break;
		case 5: {
			/* Any aligned word of the header after the identity. */
			size_t off = offsetof(struct ring_hdr, prod_pos) +
				8 * (u8(&in) % ((SHMQ_RING_HDR_SIZE -
				offsetof(struct ring_hdr, prod_pos)) / 8));

			memcpy((unsigned char *)q->hdr + off,
			       &(uint64_t){ value(&in) }, 8);
			break;
		}
		case 6:
			n = u8(&in) % (MSG + 2);
			shmq_send(q, buf, (size_t)n, to);
			break;
		case 7: {
			size_t cap = u8(&in) % (MSG + 4);
			unsigned char *b = malloc(cap ? cap : 1);

			n = shmq_recv(q, b, cap, to);
			if (n > (ssize_t)cap)
				abort();
			free(b);
			break;
		}
		case 8:
			k = 1 + u8(&in) % (CAP + 2);
			for (i = 0; i < k; i++)
				v[i] = (struct iovec){ buf, (size_t)((i * 7) % (MSG + 1)) };
			shmq_send_batch(q, v, k, to);
			break;
		case 9:
			k = 1 + u8(&in) % (CAP + 2);
			for (i = 0; i < k; i++) {
				size_t cap = u8(&in) % (MSG + 4);

				bufs[i] = malloc(cap ? cap : 1);
				v[i] = (struct iovec){ bufs[i], cap };
			}
			rc = shmq_recv_batch(q, v, k, to);
			for (i = 0; i < k; i++) {
				if ((int)i < rc && v[i].iov_len > MSG)
					abort();
				free(bufs[i]);
			}
			break;
		case 10:
			if (nheld < 4 && shmq_reserve(q, u8(&in) % (MSG + 1),
						      &held[nheld], to) == 0) {
				check_zc(&held[nheld]);
				memset(held[nheld].data, 0xa5, held[nheld].len);
				held[nheld++].token |= 0;
			}
			break;
		case 11:
			if (nheld < 4 && shmq_acquire(q, &held[nheld], to) == 0) {
				check_zc(&held[nheld]);
				memcpy(buf, held[nheld].data, held[nheld].len);
				nheld++;
			}
			break;
		case 12:
			/* commit or release a held message, maybe shortened */
			if (nheld) {
				m = held[--nheld];
				if (u8(&in) & 1)
					m.len = u8(&in);
				if (shmq_commit(q, &m) != 0)
					shmq_release(q, &m);
			}
			break;
		case 13:
			/* a forged token */
			m = (struct shmq_msg){ buf, u8(&in), value(&in) };
			shmq_commit(q, &m);
			shmq_release(q, &m);
			break;
		case 14:
			shmq_seg_recover(seg);
			break;
		case 15:
			/* Must end (bounded by what is published) and count. */
			if (shmq_purge(q) < -4095)
				abort();
			break;
		case 16: {
			/* Snapshots and counters of a hostile ring. */
			struct shmq_peek_msg pm[CAP + 2];
			struct shmq_queue_info qi;
			unsigned char pb[CAP + 2][MSG / 2];

			k = 1 + u8(&in) % (CAP + 2);
			for (i = 0; i < k; i++)
				pm[i] = (struct shmq_peek_msg){ .data = pb[i],
							  .size = sizeof(pb[i]) };
			rc = shmq_peek(seg, "q", pm, k);
			if (rc > (int)k)
				abort();
			for (i = 0; (int)i < rc; i++)
				if (pm[i].len > MSG)
					abort();
			if (shmq_queue_stat(seg, "q", &qi) == 0 &&
			    qi.capacity != CAP)
				abort();
			break;
		}
		default:
			break;
		}
	}
	/* Whatever the state, the API still answers without blocking. */
	shmq_recv(q, buf, sizeof(buf), 0);
	shmq_send(q, buf, 1, 0);
	return 0;
}
