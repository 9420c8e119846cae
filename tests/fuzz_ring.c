// SPDX-License-Identifier: MIT
/*
 * fuzz_ring.c - libFuzzer harness: queues whose shared words a hostile
 * peer controls.
 *
 * At start-up: two real file-backed segments under $SHMQ_FUZZ_DIR (or a
 * fresh /dev/shm/shmq-fuzz.<pid>), each holding one queue of capacity 8
 * with 48-byte messages, opened through the public API: "q", an MPMC
 * queue, and "s", an SPSC queue (SHMQ_SPSC).  Each queue's block is the
 * last one of its segment, and the heap pages after it are made PROT_NONE
 * in our mapping, so any access past the block faults at once instead of
 * landing silently in other memory.  So is the page before it: a queue
 * "pad" created first and unlinked once ours exists leaves a free page
 * there (the allocator keeps nothing in free space, shm/alloc.c).
 *
 * Each input resets the queues to empty (the SPSC queue with fresh
 * handles, since its handle caches positions) and is then read as a
 * program of one-byte opcodes with operands, applied to the current
 * target (the MPMC queue first; opcode 17 switches): overwrite prod_pos,
 * cons_pos, a slot's seq or len (MPMC) or a side's owner word or a length
 * (SPSC), an event word, any aligned 64-bit word of the ring header, or up
 * to 16 bytes anywhere in the block (identity, positions, lengths,
 * payload); or call the API: send, recv, send_batch, recv_batch,
 * reserve/commit, acquire/release (with real or forged tokens, committed
 * oldest or newest first), shmq_seg_recover(), shmq_purge(), shmq_peek(),
 * shmq_queue_stat(), shmq_seg_check(), and copying calls through a second
 * handle of the same queue (which an SPSC queue must refuse, -EBUSY,
 * unless the owner words were forged); with timeout 0 or a tiny positive
 * timeout.  Values are chosen either absolute or relative to the current
 * positions, so that near-consistent states (the interesting ones) are
 * common.
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

/* One queue under attack, alone at the end of its own segment. */
struct target {
	const char *name;       /* queue name */
	const char *path;       /* segment file */
	uint32_t flags;         /* 0 or SHMQ_SPSC */
	shmq_seg *seg;
	shmq *q;
	shmq *q2;               /* a second handle, opened on demand */
	unsigned char *block;   /* the queue's block in our mapping */
	size_t bytes;           /* its size */
	unsigned char *slots, *slots_end;       /* where payloads may be */
	unsigned char *pristine;        /* the block as created: empty */
	int used;               /* touched since its last reset */
};

static struct target tg[2] = {
	{ .name = "q", .flags = 0 },
	{ .name = "s", .flags = SHMQ_SPSC },
};

static void cleanup(void)
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		shmq_close(tg[i].q2);
		shmq_close(tg[i].q);
		shmq_seg_close(tg[i].seg);
		free(tg[i].pristine);
	}
	fuzz_scratch_remove();
}

static void setup_fail(const struct target *t, const char *what, int rc)
{
	fprintf(stderr, "fuzz_ring: setup of %s: %s: %s\n", t->name, what,
		shmq_strerror(rc));
	exit(2);
}

/* A fresh handle for @t: no spin, a tiny stall threshold. */
static void target_open(struct target *t)
{
	int rc = shmq_open(t->seg, t->name, &t->q);

	if (rc)
		setup_fail(t, "shmq_open", rc);
	shmq_set_spin(t->q, 0);
	/* Tiny stall threshold: waits run repair passes on hostile state. */
	shmq_set_stall(t->q, 1000);
}

static void target_init(struct target *t, const char *path)
{
	struct shmq_seg_attr sa = {
		.size = 64 * 1024, .mode = 0600, .max_queues = 4, .max_procs = 4,
	};
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *guard, *end;
	int rc;

	t->path = path;
	rc = shmq_seg_create(path, &sa, &t->seg);
	if (rc)
		setup_fail(t, "shmq_seg_create", rc);
	/* A one-page block before ours, freed below: the guard before. */
	rc = shmq_create(t->seg, "pad", &(struct shmq_attr){ 1, 1, 0 });
	if (rc)
		setup_fail(t, "shmq_create pad", rc);
	rc = shmq_create(t->seg, t->name,
			 &(struct shmq_attr){ CAP, MSG, t->flags });
	if (rc)
		setup_fail(t, "shmq_create", rc);
	rc = shmq_unlink(t->seg, "pad");
	if (rc)
		setup_fail(t, "shmq_unlink pad", rc);
	target_open(t);
	t->block = (unsigned char *)t->q->hdr;
	if (t->flags & SHMQ_SPSC) {
		/* Header, a length per slot, then payload-only slots. */
		t->slots = t->q->main.slots;
		end = t->slots + (size_t)CAP * t->q->main.slot_size;
	} else {
		/* Slots with their headers, then the redelivery lane. */
		t->slots = t->q->main.slots + SHMQ_SLOT_HDR_SIZE;
		end = t->q->lane.slots +
		      (size_t)t->q->lane.capacity * t->q->lane.slot_size;
	}
	t->slots_end = end;
	t->bytes = (size_t)(end - t->block);
	t->pristine = malloc(t->bytes);
	if (!t->pristine) {
		perror("fuzz_ring: malloc");
		exit(2);
	}
	memcpy(t->pristine, t->block, t->bytes);
	/* Guard pages: the free page before the block (the pad's, which
	 * nothing else uses), then everything after it, page-aligned. */
	guard = t->block - page;
	if ((uintptr_t)t->block % (uintptr_t)page ||
	    guard < t->seg->base + t->seg->heap_off ||
	    mprotect(guard, (size_t)page, PROT_NONE)) {
		fprintf(stderr, "fuzz_ring: no free page before the block\n");
		exit(2);
	}
	guard = (unsigned char *)(((uintptr_t)end + page - 1) &
				  ~(uintptr_t)(page - 1));
	if (guard < t->seg->base + t->seg->size &&
	    mprotect(guard, (size_t)(t->seg->base + t->seg->size - guard),
		     PROT_NONE)) {
		perror("fuzz_ring: mprotect");
		exit(2);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_scratch_init("fuzz_ring", "ring");
	atexit(cleanup);
	target_init(&tg[0], fuzz_path);
	target_init(&tg[1], fuzz_scratch_more("spsc"));
	return 0;
}

/*
 * @t as a fresh queue: empty, every slot free for lap 0.  An SPSC handle
 * keeps its side's positions privately, so it is reopened (after the
 * block is restored, so that no forged owner word outlives the input).
 */
static void target_reset(struct target *t)
{
	if (t->q2) {
		shmq_close(t->q2);
		t->q2 = NULL;
	}
	if (t->flags & SHMQ_SPSC) {
		shmq_close(t->q);
		t->q = NULL;
	}
	memcpy(t->block, t->pristine, t->bytes);
	if (!t->q)
		target_open(t);
	t->used = 0;
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
static uint64_t value(const struct target *t, struct in *in)
{
	uint8_t mode = u8(in);
	struct ring_hdr *h = t->q->hdr;
	/* relaxed: single-threaded harness; only the values matter. */
	uint64_t pp = atomic_load_explicit(&h->prod_pos, memory_order_relaxed);
	uint64_t cp = atomic_load_explicit(mode & 8 ? &h->lane_cons_pos :
					   &h->cons_pos, memory_order_relaxed);
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

/*
 * A forged SPSC owner word: nobody, the other side's holder, a live
 * holder's word with another process entry or attach time, or anything.
 */
static uint64_t owner_value(const struct target *t, struct in *in, int side)
{
	uint8_t mode = u8(in);
	/* relaxed: as above. */
	uint64_t other = atomic_load_explicit(&t->q->hdr->spsc_owner[!side],
					      memory_order_relaxed);

	switch (mode & 3) {
	case 0:
		return 0;
	case 1:
		return other;
	case 2:
		/* Flip bits of the other side's word (index or time). */
		return other ^ ((uint64_t)u8(in) << (mode & 4 ? 16 : 0));
	default:
		return u64(in);
	}
}

static void check_zc(const struct target *t, const struct shmq_msg *m)
{
	const unsigned char *p = m->data;

	if (p < t->slots || p + m->len > t->slots_end || m->len > MSG) {
		fprintf(stderr, "fuzz_ring: zero-copy message outside the "
			"slots\n");
		abort();
	}
}

/* A length the library returned: within the buffer and msg_size. */
static void check_len(ssize_t n, size_t cap)
{
	if (n > (ssize_t)cap || n > (ssize_t)MSG) {
		fprintf(stderr, "fuzz_ring: length %zd beyond the buffer (%zu) "
			"or msg_size\n", n, cap);
		abort();
	}
}

/* A copying call through the second handle of the queue. */
static void second_handle(struct target *t, struct in *in, int64_t to)
{
	unsigned char b[MSG + 8];
	uint8_t op = u8(in);
	ssize_t n;

	if (!t->q2 && shmq_open(t->seg, t->name, &t->q2))
		return;
	shmq_set_spin(t->q2, 0);
	switch (op & 3) {
	case 0:
		shmq_send(t->q2, b, op % (MSG + 1), to);
		break;
	case 1:
		n = shmq_recv(t->q2, b, sizeof(b), to);
		check_len(n, sizeof(b));
		break;
	case 2:
		if (shmq_purge(t->q2) < -4095)
			abort();
		break;
	default:
		/* Closing gives its sides back: the first handle may retake. */
		shmq_close(t->q2);
		t->q2 = NULL;
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct shmq_msg held[4];
	unsigned nheld = 0, steps = 0, j;
	unsigned char buf[MSG + 8];
	struct target *t = &tg[0];

	/* The MPMC queue every time, as before; the SPSC one if touched. */
	target_reset(&tg[0]);
	if (tg[1].used)
		target_reset(&tg[1]);
	t->used = 1;
	memset(buf, 0x33, sizeof(buf));
	while (in.n && steps++ < 64) {
		uint8_t op = u8(&in);
		int64_t to = op & 0x80 ? 2000 : 0;    /* ns */
		int spsc = (t->flags & SHMQ_SPSC) != 0;
		struct ring_hdr *h = t->q->hdr;
		shmq *q = t->q;
		struct iovec v[CAP + 2];
		unsigned char *bufs[CAP + 2];
		struct shmq_msg m;
		ssize_t n;
		unsigned i, k;
		int rc;

		switch (op & 0x7f) {
		case 0:
			/* relaxed: the hostile peer's plain overwrite. */
			atomic_store_explicit(&h->prod_pos, value(t, &in),
					      memory_order_relaxed);
			break;
		case 1:
			atomic_store_explicit(&h->cons_pos, value(t, &in),
					      memory_order_relaxed);
			break;
		case 2:
			i = u8(&in);
			if (spsc)
				atomic_store_explicit(&h->spsc_owner[i & 1],
						      owner_value(t, &in, i & 1),
						      memory_order_relaxed);
			else
				atomic_store_explicit(&ring_slot(i & 0x80 ?
						&q->lane : &q->main, i)->seq,
						value(t, &in),
						memory_order_relaxed);
			break;
		case 3:
			i = u8(&in);
			if (spsc)
				atomic_store_explicit(&q->ents[i % CAP],
						      u64(&in),
						      memory_order_relaxed);
			else
				atomic_store_explicit(&ring_slot(i & 0x80 ?
						&q->lane : &q->main, i)->len,
						(uint32_t)u64(&in),
						memory_order_relaxed);
			break;
		case 4:
			atomic_store_explicit(&h->not_empty.waiters,
					      (uint32_t)u64(&in), memory_order_relaxed);
			atomic_store_explicit(&h->not_full.seq,
					      (uint32_t)u64(&in), memory_order_relaxed);
			break;
		case 5: {
			/* Any aligned word of the header after the identity. */
			size_t off = offsetof(struct ring_hdr, prod_pos) +
				8 * (u8(&in) % ((SHMQ_RING_HDR_SIZE -
				offsetof(struct ring_hdr, prod_pos)) / 8));

			memcpy((unsigned char *)h + off,
			       &(uint64_t){ value(t, &in) }, 8);
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
			check_len(n, cap);
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
				if ((int)i < rc && v[i].iov_len > MSG) {
					fprintf(stderr, "fuzz_ring: length %zu "
						"beyond msg_size\n",
						v[i].iov_len);
					abort();
				}
				free(bufs[i]);
			}
			break;
		case 10:
			if (nheld < 4 && shmq_reserve(q, u8(&in) % (MSG + 1),
						      &held[nheld], to) == 0) {
				check_zc(t, &held[nheld]);
				memset(held[nheld].data, 0xa5, held[nheld].len);
				nheld++;
			}
			break;
		case 11:
			if (nheld < 4 && shmq_acquire(q, &held[nheld], to) == 0) {
				check_zc(t, &held[nheld]);
				memcpy(buf, held[nheld].data, held[nheld].len);
				nheld++;
			}
			break;
		case 12:
			/*
			 * Commit or release a held message, maybe shortened:
			 * the newest, or (operand bit 1) the oldest, which is
			 * the only one an SPSC queue takes.
			 */
			if (nheld) {
				uint8_t how = u8(&in);

				k = how & 2 ? 0 : nheld - 1;
				m = held[k];
				memmove(&held[k], &held[k + 1],
					(nheld - k - 1) * sizeof(held[0]));
				nheld--;
				if (how & 1)
					m.len = u8(&in);
				if (shmq_commit(q, &m) != 0)
					shmq_release(q, &m);
			}
			break;
		case 13:
			/* a forged token */
			m = (struct shmq_msg){ buf, u8(&in), value(t, &in) };
			shmq_commit(q, &m);
			shmq_release(q, &m);
			break;
		case 14:
			shmq_seg_recover(t->seg);
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
			rc = shmq_peek(t->seg, t->name, pm, k);
			if (rc > (int)k)
				abort();
			for (i = 0; (int)i < rc; i++)
				if (pm[i].len > MSG)
					abort();
			if (shmq_queue_stat(t->seg, t->name, &qi) == 0 &&
			    (qi.capacity != CAP || qi.flags != t->flags ||
			     qi.depth > CAP + SHMQ_LANE_CAP))
				abort();
			break;
		}
		case 17:
			/* Switch queues; held messages are forgotten (still held). */
			t = &tg[t == &tg[0]];
			t->used = 1;
			nheld = 0;
			break;
		case 18: {
			/* Up to 16 bytes of the input anywhere in the block. */
			size_t off = (u8(&in) | (size_t)u8(&in) << 8) % t->bytes;

			k = 1 + u8(&in) % 16;
			for (i = 0; i < k && off + i < t->bytes; i++)
				t->block[off + i] = u8(&in);
			break;
		}
		case 19:
			second_handle(t, &in, to);
			break;
		case 20:
			/* fsck of the whole file, read-only: must not fault. */
			rc = shmq_seg_check(t->path, NULL, NULL);
			if (rc < 0 && rc != -ENOMEM)
				abort();
			break;
		default:
			break;
		}
	}
	/* Whatever the state, the API still answers without blocking. */
	for (j = 0; j < 2; j++) {
		if (!tg[j].used)
			continue;
		check_len(shmq_recv(tg[j].q, buf, sizeof(buf), 0), sizeof(buf));
		shmq_send(tg[j].q, buf, 1, 0);
	}
	tg[0].used = 0;
	return 0;
}
