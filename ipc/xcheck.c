/* SPDX-License-Identifier: MIT */
/*
 * xcheck.c - the exchange part of shmq_seg_check(): an exchange's header
 * block and its binding table (formats in exchange.h).
 *
 * shm/inspect.c has checked the directory entry: its type, and that both
 * blocks lie inside the heap and overlap nothing else.  Here the blocks'
 * contents are read from the read-only mapping the way every reader of the
 * segment must (STYLE.md, "Shared memory is untrusted input"): each
 * structure is copied once into a local and checked there; `used` is read
 * once and bounds the walk, and each record's header is copied before its
 * key length is believed.  Each step of the walk advances by at least a
 * record header (16 bytes), so it ends after at most used / 16 steps
 * whatever the table holds, and it stops at the first record it cannot
 * step over (a bad length), since nothing says where the next one starts.
 *
 * What is an error: anything the library cannot have written (a bad magic,
 * a type that disagrees with the directory, an alternate that is no name,
 * `used` beyond the block or not a multiple of 8, a key over 255 bytes or
 * holding a NUL, a record past `used`, a `dead` word other than 0 or 1, a
 * record naming a directory entry that cannot exist).  What is not: a
 * record naming a queue that was unlinked (or whose entry was reused
 * since): the library ignores it, and drops it at the table's next copy;
 * an alternate that names no exchange (it need not exist yet).
 */
#include <stddef.h>
#include <string.h>

#include "exchange.h"
#include "inspect.h"

#define XERR(c, xi, name, ...) \
	shmq__check_report(c, SHMQ_CHECK_ERROR, SHMQ_AREA_EXCHANGE, \
			   (int)(xi)->idx, name, __VA_ARGS__)

static void header_check(struct shmq_check_ctx *c, const unsigned char *base,
			 const struct shmq_qinfo *xi, const char *name)
{
	/* Line 0 only: identity, written once (the counters move). */
	struct {
		uint64_t magic;
		uint32_t type;
		uint32_t flags;
		char alternate[SHMQ_NAME_MAX + 1];
	} h;

	_Static_assert(offsetof(struct xchg_hdr, alternate) == 16,
		       "the copy's layout is the header's");
	memcpy(&h, base + xi->off, sizeof(h));
	if (h.magic != XCHG_MAGIC) {
		XERR(c, xi, name, "exchange header: bad magic 0x%016llx",
		     (unsigned long long)h.magic);
		return;
	}
	if (h.type != xi->slot_size)
		XERR(c, xi, name, "exchange header says type %u; the "
		     "directory says %u", h.type, xi->slot_size);
	if (h.flags)
		XERR(c, xi, name, "exchange header: unknown flags 0x%x",
		     h.flags);
	if (!memchr(h.alternate, 0, sizeof(h.alternate)))
		XERR(c, xi, name, "exchange header: the alternate exchange's "
		     "name is not NUL-terminated");
	else if (h.alternate[0] && shmq__name_check(h.alternate))
		XERR(c, xi, name, "exchange header: the alternate exchange's "
		     "name is not 1-63 bytes of [A-Za-z0-9._-]");
}

/*
 * One record's header (a copy) at byte @at of the records: is what it
 * names possible?  The key itself is checked by the caller.
 */
static void record_check(struct shmq_check_ctx *c,
			 const struct shmq_qinfo *xi, const char *name,
			 uint64_t at, const struct xbind *b,
			 const struct dir_entry *dir, uint32_t max_queues)
{
	const struct dir_entry *q;

	if (b->dead > 1)
		XERR(c, xi, name, "binding table: record at byte %llu: dead "
		     "word %u (0 or 1)", (unsigned long long)at, b->dead);
	if (b->qidx >= max_queues) {
		XERR(c, xi, name, "binding table: record at byte %llu names "
		     "directory entry %u; the directory has %u",
		     (unsigned long long)at, b->qidx, max_queues);
		return;
	}
	q = &dir[b->qidx];
	/* Bound to an SPSC queue of its own creation: never allowed. */
	if (!b->dead && q->state == DIR_LIVE && q->kind == DIR_KIND_QUEUE &&
	    q->gen == b->qgen && (q->flags & SHMQ_SPSC))
		XERR(c, xi, name, "binding table: record at byte %llu binds "
		     "SPSC queue %.63s, which cannot be bound",
		     (unsigned long long)at, q->name);
}

static void table_check(struct shmq_check_ctx *c, const unsigned char *base,
			const struct shmq_qinfo *xi, const char *name,
			const struct dir_entry *dir, uint32_t max_queues)
{
	const unsigned char *recs = base + xi->aux_off + sizeof(struct xtab);
	uint64_t used, off = 0, room;
	struct xtab t;

	if (xi->aux_size < sizeof(t)) {
		XERR(c, xi, name, "binding table: block of %llu bytes",
		     (unsigned long long)xi->aux_size);
		return;
	}
	memcpy(&t, base + xi->aux_off, sizeof(t));
	room = xi->aux_size - sizeof(t);
	if (t.magic != XTAB_MAGIC) {
		XERR(c, xi, name, "binding table: bad magic 0x%016llx",
		     (unsigned long long)t.magic);
		return;
	}
	used = t.used;
	if (used > room || used % 8) {
		XERR(c, xi, name, "binding table: %llu bytes of records in "
		     "use, %s %llu", (unsigned long long)used,
		     used > room ? "beyond the room of its block:" :
		     "not a multiple of 8; room", (unsigned long long)room);
		return;
	}
	while (off < used) {
		struct xbind b;
		uint64_t size;

		if (used - off < sizeof(b)) {
			XERR(c, xi, name, "binding table: record at byte %llu "
			     "is cut off by the end of the records (%llu)",
			     (unsigned long long)off,
			     (unsigned long long)used);
			return;
		}
		memcpy(&b, recs + off, sizeof(b));
		if (b.klen > SHMQ_KEY_MAX) {
			XERR(c, xi, name, "binding table: record at byte %llu: "
			     "key length %u exceeds %u; the records after it "
			     "cannot be found", (unsigned long long)off,
			     b.klen, SHMQ_KEY_MAX);
			return;
		}
		size = XBIND_SIZE(b.klen);
		if (size > used - off) {
			XERR(c, xi, name, "binding table: record at byte %llu "
			     "(%llu bytes) ends past the end of the records "
			     "(%llu)", (unsigned long long)off,
			     (unsigned long long)size,
			     (unsigned long long)used);
			return;
		}
		if (memchr(recs + off + sizeof(b), 0, b.klen))
			XERR(c, xi, name, "binding table: record at byte %llu: "
			     "the key holds a NUL byte",
			     (unsigned long long)off);
		record_check(c, xi, name, off, &b, dir, max_queues);
		off += size;
	}
}

void shmq__xchg_check(struct shmq_check_ctx *c, const unsigned char *base,
		      const struct shmq_qinfo *xi, const char *name,
		      const struct dir_entry *dir, uint32_t max_queues)
{
	header_check(c, base, xi, name);
	if (xi->aux_size)
		table_check(c, base, xi, name, dir, max_queues);
}
