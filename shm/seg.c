/* SPDX-License-Identifier: MIT */
/*
 * seg.c - create, open, validate, close and unlink a segment; the
 * control-plane lock.
 *
 * Creation is atomic: the segment is built in an unnamed O_TMPFILE in the
 * target directory, its memory reserved with posix_fallocate (so a full
 * /dev/shm fails here with -ENOSPC, not later with SIGBUS), initialised,
 * and only then linked to its name (-EEXIST on a clash).  Peers never see a
 * half-built segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

/* ---- the control-plane lock ------------------------------------------------ */

/*
 * One try at the OFD write lock on @byte: 0, -EAGAIN when another open
 * file description holds a write lock on it, -EBUSY when a read lock
 * blocks it, or -errno.  No honest peer takes a read lock there (every
 * peer's lock is a write lock); someone who can only read the file can,
 * and then waiting would be waiting for ever: such a call fails at once.
 */
static int ofd_trylock(int fd, off_t byte)
{
	int rc = shmq__ofd(fd, F_OFD_SETLK, F_WRLCK, byte);

	if (rc != -EAGAIN && rc != -EACCES)
		return rc;
	if (shmq__ofd(fd, F_OFD_GETLK, F_WRLCK, byte) == F_RDLCK)
		return -EBUSY;
	return -EAGAIN;
}

static void ofd_unlock(int fd, off_t byte)
{
	shmq__ofd(fd, F_OFD_SETLK, F_UNLCK, byte);
}

/*
 * The control plane's waits poll, sleeping between tries from 10 us up to
 * 1 ms: the kernel has no timed OFD lock, and its blocking wait
 * (F_OFD_SETLKW) would also wait behind a reader's lock for ever.  The
 * control plane is entered rarely and briefly; a holder that stays is
 * stopped or hostile, and then latency is moot.  Sleep once before the
 * next try: 0, or -ETIMEDOUT when @abs_ns (0: none) has passed.
 */
static int backoff_sleep(uint64_t *backoff, uint64_t abs_ns)
{
	uint64_t ns = *backoff, now;
	struct timespec ts;

	if (abs_ns) {
		now = shmq__now_ns(CLOCK_MONOTONIC);
		if (now >= abs_ns)
			return -ETIMEDOUT;
		if (ns > abs_ns - now)
			ns = abs_ns - now;
	}
	ts.tv_sec = (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	nanosleep(&ts, NULL);
	if (*backoff < 1000000)
		*backoff *= 2;
	return 0;
}

/* The OFD lock on @byte, waiting until @abs_ns (0: for ever). */
static int ofd_lock_until(int fd, off_t byte, uint64_t abs_ns)
{
	uint64_t backoff = 10000;
	int rc;

	while ((rc = ofd_trylock(fd, byte)) == -EAGAIN)
		if (backoff_sleep(&backoff, abs_ns))
			return -ETIMEDOUT;
	return rc;
}

/*
 * Our threads' turn: ctl_mu, within the same timeout.  A timed wait polls
 * too (pthread_mutex_clocklock would do, but ThreadSanitizer does not know
 * it, and the lock is held for microseconds).
 */
static int ctl_mu_lock(shmq_seg *seg, int64_t timeout_ns, uint64_t abs_ns)
{
	uint64_t backoff = 10000;
	int rc;

	if (timeout_ns < 0)
		return -pthread_mutex_lock(&seg->ctl_mu);
	while ((rc = pthread_mutex_trylock(&seg->ctl_mu)) == EBUSY) {
		if (timeout_ns == 0)
			return -EAGAIN;
		if (backoff_sleep(&backoff, abs_ns))
			return -ETIMEDOUT;
	}
	return -rc;
}

/*
 * Enter the control plane: our own threads through ctl_mu, other
 * attachments (in this or any process) through the OFD lock on byte
 * SEG_CTL_LOCK, which the kernel drops if we die holding it.  Nothing in
 * the segment can make this abort, and a forged ctl_busy costs a sweep.
 * @timeout_ns: 0 try once, SHMQ_FOREVER wait, > 0 wait at most that long.
 * Returns 0, -EAGAIN (0: held), -ETIMEDOUT, -EBUSY (a read lock blocks
 * it), -EBADF (our parent's attachment, after fork), or -errno.
 *
 * The holding thread cannot be cancelled (pthread_cancel) until it leaves:
 * ctl_mu is private memory, and a thread cancelled holding it, or inside
 * the attach, would wedge the attachment (the robust mutex of layout 3
 * passed on; this one does not need to).
 */
static int seg_lock(shmq_seg *seg, int64_t timeout_ns)
{
	struct seg_hdr *h = shmq__hdr(seg);
	uint64_t abs_ns = 0;
	uint32_t busy;
	int rc, cancel;

	if (seg->fd < 0)
		return -EBADF;
	if (timeout_ns > 0)
		abs_ns = shmq__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ns;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	rc = ctl_mu_lock(seg, timeout_ns, abs_ns);
	if (rc)
		goto fail;
	if (timeout_ns == 0)
		rc = ofd_trylock(seg->fd, SEG_CTL_LOCK);
	else
		rc = ofd_lock_until(seg->fd, SEG_CTL_LOCK, abs_ns);
	if (rc) {
		pthread_mutex_unlock(&seg->ctl_mu);
		goto fail;
	}
	seg->ctl_cancel = cancel;
	seg->ctl_marked = false;
	if (seg->observer) {
		/*
		 * An observer writes nothing, so it cannot mark the lock busy
		 * either.  acquire: pairs with the last holder's release in
		 * shmq__seg_unlock() (the kernel's lock orders the two as
		 * well; this edge is the one TSan can see).
		 */
		(void)atomic_load_explicit(&h->ctl_busy, memory_order_acquire);
		return 0;
	}
	/* acquire: pairs with the release in shmq__seg_unlock(), as above. */
	busy = atomic_exchange_explicit(&h->ctl_busy, 1, memory_order_acquire);
	seg->ctl_marked = true;
	if (busy) {
		/*
		 * The previous holder died inside the control plane (or a
		 * writer forged the word).  Every directory change is a single
		 * store made last (layout.h), so the directory is consistent;
		 * what may be left is an unlinked entry whose last handle was
		 * being closed, and dead processes' entries.  Sweep.
		 */
		/*
		 * Reaped attachments' messages are repaired at once (ipc/
		 * ack.c, "Promptness"); by the attach itself when this is
		 * the lock taken to attach (no records of ours yet).
		 */
		if (shmq__proc_reap(seg) && seg->proc_idx >= 0)
			shmq__repair_locked(seg);
		shmq__dir_sweep(seg);
	}
	return 0;
fail:
	pthread_setcancelstate(cancel, NULL);
	return rc;
}

int shmq__seg_lock(shmq_seg *seg)
{
	return seg_lock(seg, SHMQ_FOREVER);
}

int shmq__seg_trylock(shmq_seg *seg)
{
	return seg_lock(seg, 0);
}

int shmq__seg_lock_for(shmq_seg *seg, int64_t timeout_ns)
{
	return seg_lock(seg, timeout_ns);
}

void shmq__seg_unlock(shmq_seg *seg)
{
	int cancel = seg->ctl_cancel;

	if (seg->ctl_marked)
		/* release: our control-plane writes before the next holder's. */
		atomic_store_explicit(&shmq__hdr(seg)->ctl_busy, 0,
				      memory_order_release);
	ofd_unlock(seg->fd, SEG_CTL_LOCK);
	pthread_mutex_unlock(&seg->ctl_mu);
	pthread_setcancelstate(cancel, NULL);
}

/* ---- the process's attachments, for fork() -------------------------------- */

/*
 * A child of fork() shares its parent's open file descriptions, and with
 * them the parent's liveness locks: a parent that then died holding a slot
 * would look alive for as long as the child lives.  So the child drops its
 * references at once (pthread_atfork), for every attachment it inherited:
 * the descriptor, and the mapping, which holds a reference to the same
 * open file description (an OFD lock goes only with the last reference).
 * The mapping is replaced by private zero pages at the same address, so a
 * parent's handle that the child uses anyway touches only its own memory.
 * Those attachments are inert (control-plane calls: -EBADF) and the child
 * opens its own.  This list is the library's one piece of global state
 * in shm/ (ipc/publish.c keeps a list of its RCU reader threads, for the
 * same reason).
 */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static shmq_seg *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_prepare(void)
{
	pthread_mutex_lock(&reg_mu);
}

static void reg_parent(void)
{
	pthread_mutex_unlock(&reg_mu);
}

/*
 * proc_idx stays: indexes into the (now private) table keep in range, so
 * a parent's handle used anyway writes only the child's own pages.  A
 * child that waits on such a handle may wait for ever: nobody wakes it.
 */
static void reg_child(void)
{
	shmq_seg *seg;


	for (seg = reg_head; seg; seg = seg->reg_next) {
		if (seg->base != MAP_FAILED &&
		    mmap(seg->base, seg->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		    MAP_FAILED) {
			munmap(seg->base, seg->size);
			seg->base = MAP_FAILED;
		}
		if (seg->fd >= 0)
			close(seg->fd);
		seg->fd = -1;
		/* Another thread of the parent may have held it: not here. */
		pthread_mutex_init(&seg->ctl_mu, NULL);
	}
	/* Locked by reg_prepare() in the thread that forked: this one. */
	pthread_mutex_unlock(&reg_mu);
}

/*
 * Around each open() or mmap() of a segment file and the store of its
 * result: a fork() in between would give the child a reference that
 * reg_child() does not know of.  reg_prepare() waits for us.
 */
static void reg_hold(void)
{
	pthread_mutex_lock(&reg_mu);
}

static void reg_release(void)
{
	pthread_mutex_unlock(&reg_mu);
}

static void reg_init(void)
{
	pthread_atfork(reg_prepare, reg_parent, reg_child);
}

static void reg_add(shmq_seg *seg)
{
	pthread_once(&reg_once, reg_init);
	pthread_mutex_lock(&reg_mu);
	seg->reg_prev = NULL;
	seg->reg_next = reg_head;
	if (reg_head)
		reg_head->reg_prev = seg;
	reg_head = seg;
	pthread_mutex_unlock(&reg_mu);
}

static void reg_del(shmq_seg *seg)
{
	pthread_mutex_lock(&reg_mu);
	if (seg->reg_prev)
		seg->reg_prev->reg_next = seg->reg_next;
	else if (reg_head == seg)
		reg_head = seg->reg_next;
	if (seg->reg_next)
		seg->reg_next->reg_prev = seg->reg_prev;
	pthread_mutex_unlock(&reg_mu);
}

void shmq__seg_get(shmq_seg *seg)
{
	/* relaxed: the caller already holds a reference, as in any refcount. */
	atomic_fetch_add_explicit(&seg->refs, 1, memory_order_relaxed);
}

static void seg_free(shmq_seg *seg)
{
	/* In a child after fork() this fails (-EBADF): not ours to detach. */
	if (seg->proc_idx >= 0 && shmq__seg_lock(seg) == 0) {
		shmq__proc_detach(seg);
		shmq__seg_unlock(seg);
	}
	reg_del(seg);
	munmap(seg->base, seg->size);
	if (seg->fd >= 0)
		close(seg->fd);         /* drops the liveness lock */
	pthread_mutex_destroy(&seg->ctl_mu);
	free(seg);
}

void shmq__seg_put(shmq_seg *seg)
{
	/* acq_rel: the last put must see every other holder's writes. */
	if (atomic_fetch_sub_explicit(&seg->refs, 1, memory_order_acq_rel) == 1)
		seg_free(seg);
}

/* Header checks: everything open relies on, before any other access. */
static int hdr_validate(const struct seg_hdr *h, uint64_t file_size)
{
	uint64_t dir_bytes, proc_bytes;

	if (h->magic != SEG_MAGIC || h->version != SEG_VERSION ||
	    h->hdr_size != SEG_HDR_SIZE || h->seg_size != file_size ||
	    h->flags != 0)
		return -EPROTO;
	if (h->max_queues == 0 || h->max_queues > SHMQ_MAX_QUEUES ||
	    h->max_procs == 0 || h->max_procs > SHMQ_MAX_PROCS ||
	    h->proc_stride != proc_stride_for(h->max_queues))
		return -EPROTO;
	dir_bytes = (uint64_t)h->max_queues * sizeof(struct dir_entry);
	proc_bytes = (uint64_t)h->max_procs * h->proc_stride;
	/* Regions in order, aligned, inside the file, not overlapping. */
	if (h->dir_off != SEG_HDR_SIZE ||
	    h->proc_off % SEG_ALIGN || h->proc_off < h->dir_off + dir_bytes ||
	    h->heap_off % SEG_ALIGN || h->heap_off < h->proc_off + proc_bytes ||
	    h->heap_off > file_size ||
	    h->heap_size != file_size - h->heap_off)
		return -EPROTO;
	return 0;
}

static void copy_geometry(shmq_seg *seg, const struct seg_hdr *h)
{
	seg->max_queues = h->max_queues;
	seg->max_procs = h->max_procs;
	seg->proc_stride = h->proc_stride;
	seg->dir_off = h->dir_off;
	seg->proc_off = h->proc_off;
	seg->heap_off = h->heap_off;
	seg->heap_size = h->heap_size;
}

static shmq_seg *seg_alloc(const char *path)
{
	shmq_seg *seg = calloc(1, sizeof(*seg));

	if (!seg)
		return NULL;
	seg->fd = -1;
	seg->proc_idx = -1;
	seg->base = MAP_FAILED;
	atomic_init(&seg->refs, 1);
	pthread_mutex_init(&seg->ctl_mu, NULL);
	snprintf(seg->path, sizeof(seg->path), "%s", path);
	reg_add(seg);
	return seg;
}

static void seg_abort(shmq_seg *seg)
{
	reg_del(seg);
	if (seg->base != MAP_FAILED)
		munmap(seg->base, seg->size);
	if (seg->fd >= 0)
		close(seg->fd);
	pthread_mutex_destroy(&seg->ctl_mu);
	free(seg);
}

/*
 * May this process trust a segment file owned by @st's owner?  Anyone can
 * create /dev/shm/shmq.NAME (or a file in a world-writable directory)
 * before the intended creator does; attaching to it would hand its owner
 * every message (it can read the file) and our life (it can shrink the file
 * under our mapping: SIGBUS).  So a segment belongs to us or to root,
 * unless the caller says whom else it trusts (SHMQ_OPEN_TRUST_*).
 */
static int owner_check(const struct stat *st, unsigned flags)
{
	gid_t *groups;
	int i, n, rc = -EACCES;

	if (st->st_uid == geteuid() || st->st_uid == 0 ||
	    (flags & SHMQ_OPEN_TRUST_ANY))
		return 0;
	if (!(flags & SHMQ_OPEN_TRUST_GROUP) ||
	    (st->st_mode & 0060) != 0060)
		return -EACCES;
	if (st->st_gid == getegid())
		return 0;
	n = getgroups(0, NULL);
	if (n <= 0)
		return -EACCES;
	groups = malloc((size_t)n * sizeof(*groups));
	if (!groups)
		return -ENOMEM;
	n = getgroups(n, groups);
	for (i = 0; i < n; i++)
		if (groups[i] == st->st_gid)
			rc = 0;
	free(groups);
	return rc;
}

/*
 * Map and validate the segment at @name, its directory included, into a
 * new attachment (no process-table entry yet).  Shared by open and
 * observe; an observer (@observe) writes nothing to the segment, and trusts
 * any owner (it sends nothing, and reads the segment as untrusted input).
 */
static int seg_map(const char *name, unsigned flags, bool observe,
		   shmq_seg **out)
{
	char path[SHMQ_PATH_MAX];
	struct seg_hdr hcopy;
	shmq_seg *seg;
	struct stat st;
	int rc;

	rc = shmq__seg_path(name, path, sizeof(path));
	if (rc)
		return rc;
	seg = seg_alloc(path);
	if (!seg)
		return -ENOMEM;
	seg->observer = observe;
	/*
	 * Read-write even to observe: the control-plane lock is a write lock.
	 * O_NONBLOCK: a FIFO planted at the name must not block the open (it
	 * is refused below); it means nothing for a regular file.
	 */
	reg_hold();
	seg->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	reg_release();
	if (seg->fd < 0) {
		rc = -errno;
		if (rc == -ENXIO)       /* a FIFO with no reader, say */
			rc = -EPROTO;
		goto fail;
	}
	if (fstat(seg->fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	/* The size comes from the file, never from the header. */
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)SEG_MIN_SIZE) {
		rc = -EPROTO;
		goto fail;
	}
	if (!observe) {
		rc = owner_check(&st, flags);
		if (rc)
			goto fail;
	}
	seg->size = (size_t)st.st_size;
	reg_hold();
	seg->base = mmap(NULL, seg->size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 seg->fd, 0);
	reg_release();
	if (seg->base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	/* Copy, then validate: a peer may be writing the page. */
	memcpy(&hcopy, seg->base, sizeof(hcopy));
	rc = hdr_validate(&hcopy, seg->size);
	if (rc)
		goto fail;
	copy_geometry(seg, &hcopy);
	rc = shmq__seg_lock(seg);
	if (rc)
		goto fail;
	rc = shmq__dir_validate(seg);
	shmq__seg_unlock(seg);
	if (rc)
		goto fail;
	*out = seg;
	return 0;
fail:
	seg_abort(seg);
	return rc;
}

/* Take a process-table entry, under the control-plane lock. */
static int seg_attach(shmq_seg *seg)
{
	int rc = shmq__seg_lock(seg);

	if (rc)
		return rc;
	rc = shmq__proc_attach(seg);
	shmq__seg_unlock(seg);
	return rc;
}

int shmq__seg_open(const char *name, unsigned flags,
		   shmq_seg_repair_fn repair, shmq_seg **out)
{
	shmq_seg *seg;
	int rc;

	if (!out || (flags & ~(SHMQ_OPEN_TRUST_GROUP | SHMQ_OPEN_TRUST_ANY)))
		return -EINVAL;
	rc = seg_map(name, flags, false, &seg);
	if (rc)
		return rc;
	rc = seg_attach(seg);
	if (rc) {
		seg_abort(seg);
		return rc;
	}
	/*
	 * Repair what dead processes left (ipc/ passes its recovery).  A
	 * failure there leaves the slots for a later pass; the attachment
	 * itself is good.
	 */
	if (repair)
		repair(seg);
	*out = seg;
	return 0;
}

static int attr_resolve(const struct shmq_seg_attr *attr,
			struct shmq_seg_attr *a)
{
	long page = sysconf(_SC_PAGESIZE);

	memset(a, 0, sizeof(*a));
	if (attr) {
		/*
		 * Field by field: a caller built against 0.1 passes a struct
		 * that ends before gid, which is read only when flagged.
		 */
		a->size = attr->size;
		a->mode = attr->mode;
		a->flags = attr->flags;
		a->max_queues = attr->max_queues;
		a->max_procs = attr->max_procs;
		if (a->flags & SHMQ_SEG_GROUP)
			a->gid = attr->gid;
	}
	if (a->flags & ~SHMQ_SEG_GROUP)
		return -EINVAL;
	if (!a->size)
		a->size = SHMQ_DEFAULT_SEG_SIZE;
	if (!a->mode)
		a->mode = SHMQ_DEFAULT_SEG_MODE;
	/*
	 * Read and write bits only: a set-id or executable file in /dev/shm,
	 * which any writer can fill with a program, is a way to become its
	 * owner (root, for a daemon's segment).
	 */
	if (a->mode & ~(mode_t)0666)
		return -EINVAL;
	if (!a->max_queues)
		a->max_queues = SHMQ_DEFAULT_MAX_QUEUES;
	if (!a->max_procs)
		a->max_procs = SHMQ_DEFAULT_MAX_PROCS;
	if (a->max_queues > SHMQ_MAX_QUEUES || a->max_procs > SHMQ_MAX_PROCS)
		return -EINVAL;
	if (a->size > ((size_t)1 << 46))
		return -EINVAL;
	if (page <= 0)
		page = 4096;
	a->size = (a->size + (size_t)page - 1) & ~((size_t)page - 1);
	return 0;
}

/* Lay out and initialise a zero-filled segment of @a->size bytes. */
static int seg_init(shmq_seg *seg, const struct shmq_seg_attr *a)
{
	struct seg_hdr *h = shmq__hdr(seg);
	uint64_t dir_bytes, proc_bytes, off;

	dir_bytes = (uint64_t)a->max_queues * sizeof(struct dir_entry);
	proc_bytes = (uint64_t)a->max_procs * proc_stride_for(a->max_queues);
	off = SEG_HDR_SIZE + dir_bytes;
	off = (off + SEG_ALIGN - 1) & ~(uint64_t)(SEG_ALIGN - 1);
	h->proc_off = off;
	off += proc_bytes;
	off = (off + SEG_ALIGN - 1) & ~(uint64_t)(SEG_ALIGN - 1);
	/* The tables must leave room for at least one small queue. */
	if (off + SEG_ALIGN > a->size || a->size < SEG_MIN_SIZE)
		return -EINVAL;
	h->magic = SEG_MAGIC;
	h->version = SEG_VERSION;
	h->hdr_size = SEG_HDR_SIZE;
	h->seg_size = a->size;
	h->max_queues = a->max_queues;
	h->max_procs = a->max_procs;
	h->dir_off = SEG_HDR_SIZE;
	h->proc_stride = proc_stride_for(a->max_queues);
	h->mode = a->mode;
	h->heap_off = off;
	h->heap_size = a->size - off;
	h->creator_uid = geteuid();
	h->flags = 0;
	h->create_time_ns = shmq__now_ns(CLOCK_REALTIME);
	/* relaxed, both: nobody else can see the segment before it is linked. */
	atomic_store_explicit(&h->dir_gen, 0, memory_order_relaxed);
	atomic_store_explicit(&h->ctl_busy, 0, memory_order_relaxed);
	copy_geometry(seg, h);
	return 0;
}

/* Open an unnamed file in the directory of @path, or a unique temp name. */
static int tmp_create(const char *path, mode_t mode, char *tmp, size_t tmplen)
{
	char dir[SHMQ_PATH_MAX], *slash;
	int fd, i;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = 0;           /* "/name": the root directory */
	else if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");
	tmp[0] = 0;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
			errno != EINVAL))
		return fd < 0 ? -errno : fd;
	/* No O_TMPFILE on this file system: a hidden name, linked later. */
	for (i = 0; i < 100; i++) {
		snprintf(tmp, tmplen, "%s.tmp.%d.%d", path, (int)getpid(), i);
		fd = open(tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		tmp[0] = 0;
		return -errno;
	}
	return fd;
}

static int link_name(int fd, const char *tmp, const char *path)
{
	char proc[64];

	if (tmp[0])
		return link(tmp, path) < 0 ? -errno : 0;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	/* No /proc: this needs CAP_DAC_READ_SEARCH. */
	return linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) < 0 ? -errno : 0;
}

int shmq_seg_create(const char *name, const struct shmq_seg_attr *attr,
		    shmq_seg **out)
{
	char path[SHMQ_PATH_MAX], tmp[SHMQ_PATH_MAX + 32];
	struct shmq_seg_attr a;
	struct stat st;
	shmq_seg *seg;
	int rc;

	if (!out)
		return -EINVAL;
	rc = shmq__seg_path(name, path, sizeof(path));
	if (rc)
		return rc;
	rc = attr_resolve(attr, &a);
	if (rc)
		return rc;
	/*
	 * A name that exists is -EEXIST whatever else would fail, so that
	 * create-or-open works on a full file system too (the link below
	 * still decides a race).
	 */
	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	seg = seg_alloc(path);
	if (!seg)
		return -ENOMEM;
	reg_hold();
	rc = tmp_create(path, a.mode, tmp, sizeof(tmp));
	if (rc >= 0)
		seg->fd = rc;
	reg_release();
	if (rc < 0)
		goto fail;
	/*
	 * The group first, then the mode, applied exactly whatever the umask;
	 * both before the name exists.
	 */
	if ((a.flags & SHMQ_SEG_GROUP) &&
	    fchown(seg->fd, (uid_t)-1, (gid_t)a.gid) < 0) {
		rc = -errno;
		goto fail;
	}
	if (fchmod(seg->fd, a.mode) < 0) {
		rc = -errno;
		goto fail;
	}
	/* posix_fallocate returns the error; it does not set errno. */
	rc = posix_fallocate(seg->fd, 0, (off_t)a.size);
	if (rc == EOPNOTSUPP || rc == EINVAL)
		rc = ftruncate(seg->fd, (off_t)a.size) < 0 ? errno : 0;
	if (rc) {
		rc = rc == EFBIG ? -ENOSPC : -rc;
		goto fail;
	}
	seg->size = a.size;
	reg_hold();
	seg->base = mmap(NULL, seg->size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 seg->fd, 0);
	reg_release();
	if (seg->base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	rc = seg_init(seg, &a);
	if (rc)
		goto fail;
	/* Nobody can see the segment yet, but attach takes the lock anyway. */
	rc = seg_attach(seg);
	if (rc)
		goto fail;
	rc = link_name(seg->fd, tmp, path);
	if (tmp[0])
		unlink(tmp);
	if (rc)
		goto fail;
	*out = seg;
	return 0;
fail:
	if (tmp[0] && seg->fd >= 0)
		unlink(tmp);
	seg_abort(seg);
	return rc;
}

void shmq_seg_close(shmq_seg *seg)
{
	if (seg)
		shmq__seg_put(seg);
}

int shmq_seg_unlink(const char *name)
{
	char path[SHMQ_PATH_MAX];
	int rc = shmq__seg_path(name, path, sizeof(path));

	if (rc)
		return rc;
	if (unlink(path) == 0)
		return 0;
	/*
	 * /dev/shm is sticky: unlinking another user's object fails with
	 * EPERM.  To the caller that is a permission problem like any other.
	 */
	return errno == EPERM ? -EACCES : -errno;
}

/*
 * An observer: mapped and validated as by shmq_seg_open(), but with no
 * process-table entry (proc_idx stays -1) and no repair, so that looking
 * at a segment changes nothing in it.
 */
int shmq_seg_observe(const char *name, shmq_seg **out)
{
	if (!out)
		return -EINVAL;
	return seg_map(name, 0, true, out);
}
