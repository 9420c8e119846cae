/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - what mqctl sees of a segment: identity and usage, the
 * process table, and the checker of a segment's tables (shmq_seg_check()
 * without the rings, which ipc/inspect.c checks, and without the contents
 * of exchanges' blocks, which ipc/xcheck.c checks).
 *
 * Info and process lists run under the control-plane lock, on an
 * attachment or an observer (shmq_seg_observe()).  The checker takes no
 * lock and trusts nothing: it maps the file read-only, copies each
 * structure before looking at it, and derives every offset it follows from
 * fields it has already checked against the file's size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inspect.h"

/* ---- info and process list ------------------------------------------------ */

int shmq_seg_info(shmq_seg *seg, struct shmq_seg_info *info)
{
	const struct seg_hdr *h;
	struct stat st;
	uint32_t i;
	int rc;

	if (!seg || !info)
		return -EINVAL;
	if (fstat(seg->fd, &st) < 0)
		return -EIO;
	memset(info, 0, sizeof(*info));
	h = shmq__hdr(seg);
	rc = shmq__seg_lock(seg);
	if (rc)
		return rc;
	/* Written once before the segment was named; validated at attach. */
	info->version = h->version;
	info->creator_uid = h->creator_uid;
	info->create_time_ns = h->create_time_ns;
	info->mode = (uint32_t)(st.st_mode & 07777);
	info->uid = (uint32_t)st.st_uid;
	info->gid = (uint32_t)st.st_gid;
	info->size = seg->size;
	info->max_queues = seg->max_queues;
	info->max_procs = seg->max_procs;
	info->heap_size = seg->heap_size;
	for (i = 0; i < seg->max_queues; i++) {
		uint32_t state = shmq__dir_entry(seg, i)->state;

		/* Exchanges: shmq_exchange_list(). */
		if (state != DIR_FREE &&
		    shmq__dir_entry(seg, i)->kind != DIR_KIND_QUEUE)
			continue;
		if (state == DIR_LIVE)
			info->queues++;
		else if (state == DIR_UNLINKED)
			info->unlinked++;
	}
	for (i = 0; i < seg->max_procs; i++) {
		if (shmq__proc_entry(seg, i)->state == PROC_FREE)
			continue;
		if (shmq__proc_alive(seg, i))
			info->procs++;
		else
			info->procs_dead++;
	}
	info->self = seg->proc_idx >= 0;
	shmq__alloc_usage(seg, &info->heap_used, &info->heap_largest);
	shmq__seg_unlock(seg);
	info->heap_free = info->heap_size - info->heap_used;
	return 0;
}

static uint64_t own_pidns(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) == 0 ? st.st_ino : 0;
}

/*
 * Positions named by @pe's operation records: claimed, not yet published
 * or freed (a zero-copy reservation or acquisition, or a copy under way).
 */
static uint32_t proc_held(const struct proc_entry *pe)
{
	uint32_t i, n = 0;

	for (i = 0; i < PROC_RECS; i++) {
		/* relaxed: a display count; the records may change as we look. */
		uint64_t meta = atomic_load_explicit(&pe->rec[i].meta,
						     memory_order_relaxed);

		if (meta & REC_VALID)
			n += (uint32_t)(meta & REC_NMASK);
	}
	return n;
}

static int proc_list(shmq_seg *seg, struct shmq_proc_info *out, unsigned n)
{
	uint64_t pidns = own_pidns();
	unsigned count = 0;
	uint32_t i, q, *owed;
	int rc;

	if (!seg || (!out && n))
		return -EINVAL;
	owed = calloc(seg->max_procs, sizeof(*owed));
	if (!owed)
		return -ENOMEM;
	rc = shmq__seg_lock(seg);
	if (rc) {
		free(owed);
		return rc;
	}
	shmq__ack_owed_by(seg, owed);
	for (i = 0; i < seg->max_procs; i++) {
		const struct proc_entry *pe = shmq__proc_entry(seg, i);
		const uint16_t *opens = shmq__proc_opens(seg, i);
		struct shmq_proc_info *pi;

		if (pe->state == PROC_FREE)
			continue;
		if (count++ >= n)
			continue;
		pi = &out[count - 1];
		memset(pi, 0, sizeof(*pi));
		pi->index = i;
		pi->pid = pe->pid;
		pi->uid = pe->uid;
		pi->alive = shmq__proc_alive(seg, i);
		pi->self = (int)i == seg->proc_idx;
		pi->same_pidns = pidns && pe->pidns == pidns;
		for (q = 0; q < seg->max_queues; q++)
			pi->handles += opens[q];
		pi->held = proc_held(pe);
		pi->start_time = pe->start_time;
		pi->attach_time_ns = pe->attach_time_ns;
		memcpy(pi->comm, pe->comm, sizeof(pi->comm));
		pi->comm[sizeof(pi->comm) - 1] = 0;
		pi->unacked = owed[i];
	}
	shmq__seg_unlock(seg);
	free(owed);
	return (int)count;
}

int shmq_proc_list_v04(shmq_seg *seg, struct shmq_proc_info *out,
		       unsigned n);
int shmq_proc_list_v04(shmq_seg *seg, struct shmq_proc_info *out,
		       unsigned n)
{
	return proc_list(seg, out, n);
}
__asm__(".symver shmq_proc_list_v04,shmq_proc_list@@SHMQ_0.4");

/*
 * 0.4 added unacked at the end of struct shmq_proc_info: programs built
 * against 0.2/0.3 pass arrays of the shorter struct (version SHMQ_0.2).
 */
#define PINFO_V02_SIZE offsetof(struct shmq_proc_info, unacked)

int shmq_proc_list_v02(shmq_seg *seg, void *out, unsigned n);
int shmq_proc_list_v02(shmq_seg *seg, void *out, unsigned n)
{
	struct shmq_proc_info *tmp = NULL;
	unsigned i;
	int rc;

	if (!seg || (!out && n))
		return -EINVAL;
	if (n && !(tmp = calloc(n, sizeof(*tmp))))
		return -ENOMEM;
	rc = proc_list(seg, tmp, n);
	for (i = 0; rc > 0 && i < n && i < (unsigned)rc; i++)
		memcpy((char *)out + (size_t)i * PINFO_V02_SIZE, &tmp[i],
		       PINFO_V02_SIZE);
	free(tmp);
	return rc;
}
__asm__(".symver shmq_proc_list_v02,shmq_proc_list@SHMQ_0.2");

/* ---- the checker: file, header, directory, blocks, process table ---------- */

void shmq__check_report(struct shmq_check_ctx *c, int severity, int area,
			int index, const char *queue, const char *fmt, ...)
{
	struct shmq_problem p;
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (severity == SHMQ_CHECK_ERROR)
		c->errors++;
	if (!c->fn)
		return;
	p.severity = severity;
	p.area = area;
	p.index = index;
	p.queue = queue;
	p.what = what;
	c->fn(&p, c->arg);
}

#define ERR(c, area, idx, q, ...) \
	shmq__check_report(c, SHMQ_CHECK_ERROR, area, idx, q, __VA_ARGS__)
#define NOTE(c, area, idx, q, ...) \
	shmq__check_report(c, SHMQ_CHECK_NOTE, area, idx, q, __VA_ARGS__)

/* What the header check established: the regions it is safe to walk. */
struct geom {
	uint64_t size;                  /* file */
	uint32_t max_queues, max_procs, proc_stride;
	uint64_t dir_off, proc_off, heap_off, heap_end;
	int dir_ok, proc_ok;            /* region inside the file, sane */
};

/* Check the header copy @h; report every problem; fill @g. */
static int check_header(struct shmq_check_ctx *c, const struct seg_hdr *h,
			struct geom *g)
{
	uint64_t dir_bytes = 0, proc_bytes = 0;
	int before = c->errors;

	if (h->magic != SEG_MAGIC) {
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "bad magic 0x%016llx: not a shmq segment",
		    (unsigned long long)h->magic);
		return -1;
	}
	if (h->version != SEG_VERSION) {
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "layout version %u; this library reads version %u",
		    h->version, SEG_VERSION);
		return -1;
	}
	if (h->hdr_size != SEG_HDR_SIZE)
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "header size %u, expected %u", h->hdr_size, SEG_HDR_SIZE);
	if (h->seg_size != g->size)
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "header says %llu bytes, the file has %llu",
		    (unsigned long long)h->seg_size,
		    (unsigned long long)g->size);
	if (h->flags)
		ERR(c, SHMQ_AREA_HEADER, -1, NULL, "unknown flags 0x%x",
		    h->flags);
	g->max_queues = h->max_queues;
	g->max_procs = h->max_procs;
	g->proc_stride = h->proc_stride;
	g->dir_off = h->dir_off;
	g->proc_off = h->proc_off;
	g->heap_off = h->heap_off;
	g->heap_end = h->heap_off + h->heap_size;
	if (h->max_queues == 0 || h->max_queues > SHMQ_MAX_QUEUES) {
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "max_queues %u outside 1..%u", h->max_queues,
		    SHMQ_MAX_QUEUES);
	} else {
		dir_bytes = (uint64_t)h->max_queues * sizeof(struct dir_entry);
		if (h->dir_off != SEG_HDR_SIZE)
			ERR(c, SHMQ_AREA_HEADER, -1, NULL,
			    "directory at offset %llu, expected %u",
			    (unsigned long long)h->dir_off, SEG_HDR_SIZE);
		else if (h->dir_off + dir_bytes > g->size)
			ERR(c, SHMQ_AREA_HEADER, -1, NULL,
			    "directory ends past the end of the file");
		else
			g->dir_ok = 1;
	}
	if (h->max_procs == 0 || h->max_procs > SHMQ_MAX_PROCS) {
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "max_procs %u outside 1..%u", h->max_procs,
		    SHMQ_MAX_PROCS);
	} else if (!g->dir_ok ||
		   h->proc_stride != proc_stride_for(h->max_queues)) {
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "process entry stride %u does not match max_queues %u",
		    h->proc_stride, h->max_queues);
	} else {
		proc_bytes = (uint64_t)h->max_procs * h->proc_stride;
		if (h->proc_off % SEG_ALIGN ||
		    h->proc_off < h->dir_off + dir_bytes)
			ERR(c, SHMQ_AREA_HEADER, -1, NULL,
			    "process table at offset %llu overlaps the "
			    "directory or is misaligned",
			    (unsigned long long)h->proc_off);
		else if (h->proc_off + proc_bytes > g->size)
			ERR(c, SHMQ_AREA_HEADER, -1, NULL,
			    "process table ends past the end of the file");
		else
			g->proc_ok = 1;
	}
	if (h->heap_off % SEG_ALIGN || h->heap_off > g->size ||
	    (g->proc_ok && h->heap_off < h->proc_off + proc_bytes) ||
	    h->heap_off < SEG_HDR_SIZE) {
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "heap at offset %llu overlaps the tables, is misaligned "
		    "or outside the file", (unsigned long long)h->heap_off);
		g->heap_off = SEG_HDR_SIZE;
		g->heap_end = g->size;
	} else if (h->heap_size != g->size - h->heap_off) {
		ERR(c, SHMQ_AREA_HEADER, -1, NULL,
		    "heap size %llu does not reach the end of the file",
		    (unsigned long long)h->heap_size);
		g->heap_end = g->size;
	}
	return c->errors == before ? 0 : 1;
}

/* A block the directory names: a ring, an exchange header or its table. */
struct extent {
	uint64_t off, size;
	uint32_t idx;
	const char *what;       /* "ring", "exchange header", "binding table" */
};

static int extent_cmp(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Is [off, off + size) an aligned, non-empty block inside the heap? */
static int block_ok(const struct geom *g, uint64_t off, uint64_t size)
{
	uint64_t end = off + size;

	return !(off % SEG_ALIGN) && !(size % SEG_ALIGN) && size &&
	       end > off && off >= g->heap_off && end <= g->heap_end;
}

/* The queue part of check_dir_entry(): geometry and flags. */
static void check_queue_entry(struct shmq_check_ctx *c, const struct geom *g,
			      uint32_t i, const struct dir_entry *e,
			      const char *name, int before)
{
	if (e->capacity < 2 || e->capacity > SHMQ_MAX_CAPACITY ||
	    (e->capacity & (e->capacity - 1)))
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: capacity %u is not a power of two in 2..%u", i,
		    e->capacity, SHMQ_MAX_CAPACITY);
	if (e->flags & ~SHMQ_QUEUE_FLAGS)
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: unknown queue flags 0x%x", i, e->flags);
	else if ((e->flags & SHMQ_OVERFLOW) == SHMQ_OVERFLOW)
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: flags 0x%x name both overflow policies "
		    "(drop-newest and drop-oldest)", i, e->flags);
	else if ((e->flags & SHMQ_SPSC) && (e->flags & SHMQ_DROP_OLDEST))
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: an SPSC queue with the drop-oldest policy "
		    "(its sender cannot receive)", i);
	if ((e->flags & SHMQ_SPSC) ? e->ack_cap != 0 : e->ack_cap == 0)
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: unacknowledged area of %u entries on %s queue",
		    i, e->ack_cap, (e->flags & SHMQ_SPSC) ? "an SPSC" :
		    "an MPMC");
	else if (e->prefetch > e->ack_cap)
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: prefetch %u above the area's %u entries", i,
		    e->prefetch, e->ack_cap);
	if (e->msg_size > SHMQ_MAX_MSG_SIZE ||
	    e->slot_size != shmq__slot_size(e->msg_size, e->flags))
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: msg_size %u / slot_size %u inconsistent", i,
		    e->msg_size, e->slot_size);
	if (!block_ok(g, e->off, e->size))
		ERR(c, SHMQ_AREA_HEAP, (int)i, name,
		    "entry %u: block [%llu, +%llu) is misaligned or outside "
		    "the heap [%llu, %llu)", i, (unsigned long long)e->off,
		    (unsigned long long)e->size,
		    (unsigned long long)g->heap_off,
		    (unsigned long long)g->heap_end);
	else if (c->errors == before &&
		 shmq__queue_bytes(e->capacity, e->msg_size, e->slot_size,
				   e->flags, e->ack_cap) > e->size)
		ERR(c, SHMQ_AREA_HEAP, (int)i, name,
		    "entry %u: block of %llu bytes is too small for its ring",
		    i, (unsigned long long)e->size);
}

/*
 * The exchange part of check_dir_entry(): its type (kept in slot_size),
 * flags, header block and binding-table block (aux; 0 before the first
 * binding).  The blocks' contents are ipc/xcheck.c's.
 */
static void check_exchange_entry(struct shmq_check_ctx *c,
				 const struct geom *g, uint32_t i,
				 const struct dir_entry *e, const char *name)
{
	uint64_t aoff = DIR_AUX_OFF(e->aux), asize = DIR_AUX_SIZE(e->aux);

	if (e->slot_size < SHMQ_DIRECT || e->slot_size > SHMQ_TOPIC)
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: unknown exchange type %u", i, e->slot_size);
	if (e->flags)
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: unknown exchange flags 0x%x", i, e->flags);
	if (!block_ok(g, e->off, e->size))
		ERR(c, SHMQ_AREA_HEAP, (int)i, name,
		    "entry %u: exchange header block [%llu, +%llu) is "
		    "misaligned or outside the heap [%llu, %llu)", i,
		    (unsigned long long)e->off, (unsigned long long)e->size,
		    (unsigned long long)g->heap_off,
		    (unsigned long long)g->heap_end);
	if (e->aux && !block_ok(g, aoff, asize))
		ERR(c, SHMQ_AREA_HEAP, (int)i, name,
		    "entry %u: binding table block [%llu, +%llu) is empty or "
		    "outside the heap [%llu, %llu)", i,
		    (unsigned long long)aoff, (unsigned long long)asize,
		    (unsigned long long)g->heap_off,
		    (unsigned long long)g->heap_end);
}

/*
 * Check one directory entry (a private copy).  Returns 1 when its blocks
 * may be handed to the ring or exchange check (@qi filled), 0 for a free
 * or broken entry.
 */
static int check_dir_entry(struct shmq_check_ctx *c, const struct geom *g,
			   uint32_t i, const struct dir_entry *e,
			   struct shmq_qinfo *qi)
{
	const char *name = NULL;
	int before = c->errors;

	if (e->state == DIR_FREE)
		return 0;
	if (e->state != DIR_LIVE && e->state != DIR_UNLINKED) {
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, NULL,
		    "entry %u: unknown state %u", i, e->state);
		return 0;
	}
	if (!memchr(e->name, 0, sizeof(e->name)) ||
	    shmq__name_check(e->name) != 0)
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, NULL,
		    "entry %u: name is not 1-63 bytes of [A-Za-z0-9._-]", i);
	else
		name = e->name;
	if (e->kind == DIR_KIND_QUEUE) {
		check_queue_entry(c, g, i, e, name, before);
	} else if (e->kind == DIR_KIND_EXCHANGE) {
		check_exchange_entry(c, g, i, e, name);
	} else {
		ERR(c, SHMQ_AREA_DIRECTORY, (int)i, name,
		    "entry %u: unknown kind %u", i, e->kind);
		return 0;
	}
	if (c->errors != before)
		return 0;
	memset(qi, 0, sizeof(*qi));
	qi->idx = i;
	qi->kind = e->kind;
	qi->state = e->state;
	qi->gen = e->gen;
	qi->slot_size = e->slot_size;
	qi->flags = e->flags;
	qi->off = e->off;
	qi->size = e->size;
	if (e->kind == DIR_KIND_QUEUE) {
		qi->capacity = e->capacity;
		qi->msg_size = e->msg_size;
		qi->ack_cap = e->ack_cap;
		qi->prefetch = e->prefetch ? e->prefetch : e->ack_cap;
		qi->max_deliveries = e->max_deliveries;
	} else if (e->aux) {
		qi->aux_off = DIR_AUX_OFF(e->aux);
		qi->aux_size = DIR_AUX_SIZE(e->aux);
	}
	return 1;
}

static void check_procs(struct shmq_check_ctx *c, const unsigned char *base,
			const struct geom *g, const struct dir_entry *dir,
			int fd)
{
	shmq_seg probe;
	uint32_t i, q;

	/* shmq__proc_alive() only needs the fd and "not one of ours". */
	memset(&probe, 0, sizeof(probe));
	probe.fd = fd;
	probe.proc_idx = -1;
	for (i = 0; i < g->max_procs; i++) {
		const unsigned char *p = base + g->proc_off +
					 (uint64_t)i * g->proc_stride;
		const uint16_t *opens = (const uint16_t *)(p +
					sizeof(struct proc_entry));
		struct proc_entry pe;
		int alive;

		memcpy(&pe, p, sizeof(pe));
		if (pe.state == PROC_FREE)
			continue;
		if (pe.state != PROC_ATTACHED) {
			ERR(c, SHMQ_AREA_PROCS, (int)i, NULL,
			    "process entry %u: unknown state %u", i, pe.state);
			continue;
		}
		pe.comm[sizeof(pe.comm) - 1] = 0;
		alive = shmq__proc_alive(&probe, i);
		if (!alive)
			NOTE(c, SHMQ_AREA_PROCS, (int)i, NULL,
			     "process entry %u: pid %u (%s) is dead; its entry "
			     "is reclaimed by 'mqctl recover' or the next attach",
			     i, pe.pid, pe.comm);
		if (!g->dir_ok)
			continue;
		for (q = 0; q < g->max_queues; q++) {
			if (!opens[q] || dir[q].state != DIR_FREE)
				continue;
			shmq__check_report(c, alive ? SHMQ_CHECK_ERROR :
					   SHMQ_CHECK_NOTE, SHMQ_AREA_PROCS,
					   (int)i, NULL,
					   "process entry %u (pid %u) counts %u "
					   "handle(s) to free directory entry %u",
					   i, pe.pid, opens[q], q);
		}
	}
}

int shmq__seg_check_file(const char *name, struct shmq_check_ctx *c,
			 shmq_ring_check_fn ring_check,
			 shmq_xchg_check_fn xchg_check)
{
	char path[SHMQ_PATH_MAX];
	struct dir_entry *dir = NULL;
	struct extent *ex = NULL;
	struct shmq_qinfo *ok = NULL;
	const unsigned char *base = MAP_FAILED;
	struct seg_hdr h;
	struct geom g;
	struct stat st;
	uint32_t i, n = 0, nok = 0;
	int fd, rc;

	rc = shmq__seg_path(name, path, sizeof(path));
	if (rc)
		return rc;
	/* O_NONBLOCK: a FIFO planted at the name must not block us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -EIO;
		goto out;
	}
	memset(&g, 0, sizeof(g));
	g.size = (uint64_t)st.st_size;
	if (!S_ISREG(st.st_mode)) {
		ERR(c, SHMQ_AREA_FILE, -1, NULL, "%s is not a regular file",
		    path);
		goto out;
	}
	if (g.size < SEG_HDR_SIZE) {
		ERR(c, SHMQ_AREA_FILE, -1, NULL,
		    "file is %llu bytes, smaller than a segment header (%u)",
		    (unsigned long long)g.size, SEG_HDR_SIZE);
		goto out;
	}
	if (g.size < SEG_MIN_SIZE)
		ERR(c, SHMQ_AREA_FILE, -1, NULL,
		    "file is %llu bytes, smaller than any segment (%u)",
		    (unsigned long long)g.size, SEG_MIN_SIZE);
	base = mmap(NULL, (size_t)g.size, PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = errno == ENOMEM ? -ENOMEM : -EIO;
		goto out;
	}
	memcpy(&h, base, sizeof(h));
	if (check_header(c, &h, &g) < 0)
		goto out;
	if (g.dir_ok) {
		/* One private copy: every later look reads the same bytes. */
		dir = malloc(sizeof(*dir) * g.max_queues);
		/* Up to two blocks per entry: an exchange has two. */
		ex = malloc(sizeof(*ex) * 2 * g.max_queues);
		ok = malloc(sizeof(*ok) * g.max_queues);
		if (!dir || !ex || !ok) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(dir, base + g.dir_off, sizeof(*dir) * g.max_queues);
	}
	for (i = 0; dir && i < g.max_queues; i++) {
		struct shmq_qinfo *qi = &ok[nok];
		uint32_t j;

		if (!check_dir_entry(c, &g, i, &dir[i], qi))
			continue;
		for (j = 0; j < i; j++)
			if (dir[i].state == DIR_LIVE &&
			    dir[j].state == DIR_LIVE &&
			    strncmp(dir[i].name, dir[j].name,
				    sizeof(dir[i].name)) == 0)
				ERR(c, SHMQ_AREA_DIRECTORY, (int)i,
				    dir[i].name, "entries %u and %u have the "
				    "same name", j, i);
		ex[n++] = (struct extent){ qi->off, qi->size, i,
			qi->kind == DIR_KIND_QUEUE ? "ring" :
			"exchange header" };
		if (qi->aux_size)
			ex[n++] = (struct extent){ qi->aux_off, qi->aux_size,
						   i, "binding table" };
		nok++;
	}
	if (n > 1) {
		qsort(ex, n, sizeof(*ex), extent_cmp);
		for (i = 1; i < n; i++)
			if (ex[i - 1].off + ex[i - 1].size > ex[i].off)
				ERR(c, SHMQ_AREA_HEAP, (int)ex[i].idx,
				    dir[ex[i].idx].name,
				    "blocks of entries %u (%s) and %u (%s) "
				    "overlap: %s and %s", ex[i - 1].idx,
				    dir[ex[i - 1].idx].name, ex[i].idx,
				    dir[ex[i].idx].name, ex[i - 1].what,
				    ex[i].what);
	}
	if (g.proc_ok)
		check_procs(c, base, &g, dir, fd);
	/* Rings and exchanges last, each only if its own entry was sane. */
	c->max_procs = g.max_procs < SHMQ_MAX_PROCS ? g.max_procs :
			 SHMQ_MAX_PROCS;
	for (i = 0; i < nok; i++) {
		const char *qname = dir[ok[i].idx].name;

		if (ok[i].kind == DIR_KIND_EXCHANGE) {
			if (xchg_check)
				xchg_check(c, base, &ok[i], qname, dir,
					   g.max_queues);
		} else if (ring_check)
			ring_check(c, base + ok[i].off, &ok[i], qname);
	}
	rc = 0;
out:
	if (base != MAP_FAILED)
		munmap((void *)base, (size_t)g.size);
	free(dir);
	free(ex);
	free(ok);
	close(fd);
	return rc;
}
