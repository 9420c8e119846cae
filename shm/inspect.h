/* SPDX-License-Identifier: MIT */
/*
 * inspect.h - how shm/inspect.c and ipc/inspect.c share the checker
 * (internal; not installed).
 *
 * shmq_seg_check() is split along the usual line: shm/ checks the file,
 * header, directory, blocks and process table of a read-only mapping;
 * for each queue and each exchange whose directory entry is sane it calls
 * back into ipc/, which alone knows what a ring (ipc/inspect.c) and an
 * exchange's blocks (ipc/xcheck.c, the formats of ipc/exchange.h) look
 * like: shmq_seg_check() passes both callbacks.
 */
#ifndef SHMQ_INSPECT_H
#define SHMQ_INSPECT_H

#include "shm.h"

struct shmq_check_ctx {
	shmq_check_fn fn;
	void *arg;
	int errors;             /* findings of severity SHMQ_CHECK_ERROR */
	uint32_t max_procs;     /* the header's, once checked (for rings) */
};

/* Report one finding (printf-style @fmt); counts errors. */
void shmq__check_report(struct shmq_check_ctx *c, int severity, int area,
			int index, const char *queue, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/*
 * Check the ring of one queue: @block is its block (qi->size bytes, inside
 * the read-only mapping), @qi its validated directory geometry.
 */
typedef void (*shmq_ring_check_fn)(struct shmq_check_ctx *c,
				   const unsigned char *block,
				   const struct shmq_qinfo *qi,
				   const char *name);

/*
 * Check the blocks of one exchange (ipc/xcheck.c, shmq__xchg_check): its
 * header block at @base + @xi->off and, when @xi->aux_size, its binding
 * table at @base + @xi->aux_off, both already checked to lie inside the
 * heap of the read-only mapping @base.  @dir is the checker's private copy
 * of the directory (@max_queues entries), to tell which queues bindings
 * name.
 */
typedef void (*shmq_xchg_check_fn)(struct shmq_check_ctx *c,
				   const unsigned char *base,
				   const struct shmq_qinfo *xi,
				   const char *name,
				   const struct dir_entry *dir,
				   uint32_t max_queues);
void shmq__xchg_check(struct shmq_check_ctx *c, const unsigned char *base,
		      const struct shmq_qinfo *xi, const char *name,
		      const struct dir_entry *dir, uint32_t max_queues);

/*
 * Open @name read-only, map it, and check everything but the rings and the
 * exchanges' blocks, which are handed to @ring_check and @xchg_check (ipc/
 * knows their formats; shm/ does not).  Returns 0 once checked (findings
 * go to @c), or -errno when the file cannot be opened or mapped.
 */
int shmq__seg_check_file(const char *name, struct shmq_check_ctx *c,
			 shmq_ring_check_fn ring_check,
			 shmq_xchg_check_fn xchg_check);

#endif /* SHMQ_INSPECT_H */
