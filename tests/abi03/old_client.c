// SPDX-License-Identifier: MIT
/*
 * old_client.c - a program built against the 0.3.1 header, run against
 * today's libshmq.so (by test_ack's test_abi_0_3_client).
 *
 * shmq-0.3.h beside it is include/shmq.h of the 0.3.1 release, verbatim
 * (git show 67a847b:include/shmq.h).  A program linked against 0.3.1's
 * libshmq.so recorded, for each function, the version that was the
 * default then; the .symver lines below make our references name those
 * same versions, so that linking against today's library binds exactly
 * what an old binary binds at run time (shmq_create@SHMQ_0.1, not
 * today's default @@SHMQ_0.4).
 *
 * Each structure the library fills or reads is placed at the very end of
 * a page whose next page is PROT_NONE: a library that reads or writes one
 * byte past the 0.3 struct (12 bytes of shmq_attr; the old shmq_proc_info
 * and shmq_queue_info) takes SIGSEGV, which the test sees in our wait
 * status.
 *
 * Usage: old_client SEGMENT.  Creates queue "old" (capacity 16, msg_size
 * 64), checks its attributes, sends "old 0" .. "old 3", lists the
 * processes and the queue, and exits 0; on a failed check it prints what
 * and exits with the step's number.  The test then fetches the messages
 * with the 0.4 API and checks the defaults the queue got.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmq-0.3.h"

#if SHMQ_VERSION_MAJOR != 0 || SHMQ_VERSION_MINOR != 3
#error "old_client.c must be built against the 0.3 header (tests/abi03)"
#endif

/* The versions these functions had in 0.3.1 (its include/shmq.map). */
__asm__(".symver shmq_seg_open,shmq_seg_open@SHMQ_0.1");
__asm__(".symver shmq_seg_close,shmq_seg_close@SHMQ_0.1");
__asm__(".symver shmq_create,shmq_create@SHMQ_0.1");
__asm__(".symver shmq_open,shmq_open@SHMQ_0.1");
__asm__(".symver shmq_close,shmq_close@SHMQ_0.1");
__asm__(".symver shmq_get_attr,shmq_get_attr@SHMQ_0.1");
__asm__(".symver shmq_send,shmq_send@SHMQ_0.1");
__asm__(".symver shmq_strerror,shmq_strerror@SHMQ_0.1");
__asm__(".symver shmq_proc_list,shmq_proc_list@SHMQ_0.2");
__asm__(".symver shmq_queue_stat,shmq_queue_stat@SHMQ_0.2");

#define NMSG	4

static int step;

static void fail(const char *what, long long rc)
{
	fprintf(stderr, "old_client: step %d: %s: %lld (%s)\n", step, what,
		rc, rc < 0 ? shmq_strerror((int)rc) : "unexpected value");
	exit(step);
}

/*
 * @size bytes that end where a PROT_NONE page begins.  Filled with 0x5a
 * so that a field the library did not write shows.
 */
static void *at_page_end(size_t size)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t span = ((size + (size_t)pg - 1) / (size_t)pg + 1) * (size_t)pg;
	unsigned char *p;

	p = mmap(NULL, span, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap", -errno);
	if (mprotect(p + span - (size_t)pg, (size_t)pg, PROT_NONE))
		fail("mprotect", -errno);
	p += span - (size_t)pg - size;
	memset(p, 0x5a, size);
	return p;
}

int main(int argc, char **argv)
{
	struct shmq_attr *a, *got;
	struct shmq_proc_info *pi;
	struct shmq_queue_info *qi;
	char msg[16];
	shmq_seg *seg;
	shmq *q;
	int rc, i, n, self;

	if (argc != 2) {
		fprintf(stderr, "usage: old_client SEGMENT\n");
		return 64;
	}
	step = 1;
	if (sizeof(struct shmq_attr) != 12)
		fail("sizeof(struct shmq_attr) is not 0.3's", 0);
	if ((rc = shmq_seg_open(argv[1], &seg)))
		fail("shmq_seg_open", rc);

	/* shmq_create@SHMQ_0.1 must read 12 bytes and no more. */
	step = 2;
	a = at_page_end(sizeof(*a));
	a->capacity = 16;
	a->msg_size = 64;
	a->flags = 0;
	if ((rc = shmq_create(seg, "old", a)))
		fail("shmq_create", rc);
	if ((rc = shmq_open(seg, "old", &q)))
		fail("shmq_open", rc);

	/* shmq_get_attr@SHMQ_0.1 must write 12 bytes and no more. */
	step = 3;
	got = at_page_end(sizeof(*got));
	if ((rc = shmq_get_attr(q, got)))
		fail("shmq_get_attr", rc);
	if (got->capacity != 16)
		fail("capacity", got->capacity);
	if (got->msg_size != 64)
		fail("msg_size", got->msg_size);
	if (got->flags != 0)
		fail("flags", got->flags);

	step = 4;
	for (i = 0; i < NMSG; i++) {
		snprintf(msg, sizeof(msg), "old %d", i);
		if ((rc = shmq_send(q, msg, strlen(msg), 0)))
			fail("shmq_send", rc);
	}

	/*
	 * shmq_proc_list@SHMQ_0.2 with exactly as many old entries as are in
	 * use (the parent, us, maybe dead ones): the last ends at the guard
	 * page, so a library that strides by the 0.4 struct writes into it.
	 */
	step = 5;
	if ((n = shmq_proc_list(seg, NULL, 0)) < 1)
		fail("shmq_proc_list (count)", n);
	pi = at_page_end((size_t)n * sizeof(*pi));
	if ((rc = shmq_proc_list(seg, pi, (unsigned)n)) != n)
		fail("shmq_proc_list", rc);
	for (i = 0, self = -1; i < n; i++)
		if (pi[i].pid == (uint32_t)getpid() && pi[i].alive)
			self = i;
	if (self < 0)
		fail("own entry not listed", n);
	if (!pi[self].self || pi[self].handles != 1)
		fail("own entry: self, handles", pi[self].handles);

	/* shmq_queue_stat@SHMQ_0.2: the 0.3 struct, nothing past it. */
	step = 6;
	qi = at_page_end(sizeof(*qi));
	if ((rc = shmq_queue_stat(seg, "old", qi)))
		fail("shmq_queue_stat", rc);
	if (strcmp(qi->name, "old") || qi->capacity != 16 ||
	    qi->msg_size != 64 || qi->depth != NMSG)
		fail("shmq_queue_stat: name/capacity/msg_size/depth",
		     (long long)qi->depth);

	shmq_close(q);
	shmq_seg_close(seg);
	return 0;
}
