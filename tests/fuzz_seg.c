// SPDX-License-Identifier: MIT
/*
 * fuzz_seg.c - libFuzzer harness: opening a corrupt or hostile segment.
 *
 * At start-up we build a small valid segment (64 KiB, 4 directory entries,
 * 4 process entries, two queues holding a few messages) with the real
 * library, in a file-backed segment under $SHMQ_FUZZ_DIR (or a fresh
 * /dev/shm/shmq-fuzz.<pid>), and keep its bytes as a template.
 *
 * Each input is a list of patches applied to a copy of the template:
 *
 *     u16 offset (little endian), u8 length, length bytes    ... repeated
 *
 * (a patch is clipped at the end of the file), so the empty input is the
 * valid segment and every mutation is a few garbled words.  The image is
 * written to the segment file and opened with shmq_seg_open(), which must
 * reject it cleanly or accept it; if it opens, every name found in the
 * directory is opened as a queue and used with timeout 0 (send, recv,
 * batches, zero-copy), a queue is created and unlinked.  Nothing may crash,
 * hang, leak, or touch memory outside the mapping (ASan, UBSan; the
 * harness also checks every zero-copy pointer it is handed, and every
 * length against the buffer and the queue's msg_size).  The template's
 * third queue, "s", is an SPSC queue (SHMQ_SPSC) holding two messages.
 * The fourth entry is a topic exchange, "x", with alternate "x" (itself:
 * a chain must end) and a binding table of four records, one of them
 * unbound (dead): "a" with "a.#" and "", "b.q-1" with "*.b".  Every
 * input also lists, binds, unbinds and publishes through each exchange
 * the directory names (hostile headers, tables, aux words and records
 * included), checks what the listings return (NUL-terminated, lengths
 * within bounds) and that a publish reaches at most the queues there are,
 * then unlinks "x" so that "new" finds a free entry.
 *
 * SHMQ_FUZZ_SEG_TEMPLATE=FILE makes the harness write the template there
 * at start-up: to find the offsets a hand-written seed patches.
 *
 * Every byte is fuzzed, the control-plane line (ctl_busy: a garbled word
 * makes the next holder sweep) and the process table's liveness-related
 * words included: no lock lives in the segment (layout.h, "Locks the
 * kernel keeps"), so no byte of it can make a call block or abort.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_scratch.h"
#include "shmq.h"
#include "shm.h"
#include "ack.h"

#define SEG_BYTES	(64u * 1024)

static unsigned char *tmpl;
static unsigned char *img;

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz_seg: %s: %s\n", what, shmq_strerror(rc));
	exit(2);
}

/*
 * Leave one message of "a" owed by a dead attachment: fetch it, then make
 * its area entry name process entry 3 (free: dead) as its owner.  Every
 * input's open then runs the repair of a dead owner's entry (ack.c).
 */
static void forge_owed(shmq_seg *seg, shmq *q)
{
	struct shmq_qinfo qi;
	struct ack_view a;
	uint64_t tag;
	uint32_t i;

	if (shmq_fetch(q, (char[64]){ 0 }, 64, NULL, &tag, 0) < 0 ||
	    shmq__dir_lookup(seg, "a", DIR_KIND_QUEUE, &qi) < 0)
		die("forge an owed message", -EIO);
	shmq__ack_view(&a, seg->base + qi.off, &qi);
	i = (uint32_t)tag - 1;
	atomic_store(&a.state[i], (atomic_load(&a.state[i]) & ~ACK_OWNER_MASK) |
		     ack_owner(3, 7));
}

static void build_template(void)
{
	struct shmq_seg_attr sa = {
		.size = SEG_BYTES, .mode = 0600, .max_queues = 4, .max_procs = 4,
	};
	struct shmq_attr qa1 = { .capacity = 4, .msg_size = 40 };
	struct shmq_attr qa2 = { .capacity = 2, .msg_size = 0 };
	struct shmq_attr qa3 = { .capacity = 4, .msg_size = 16,
				 .flags = SHMQ_SPSC };
	struct shmq_xattr xa = { SHMQ_TOPIC, 0, "x" };
	shmq_seg *seg;
	shmq *q;
	int fd, rc, i;

	rc = shmq_seg_create(fuzz_path, &sa, &seg);
	if (rc)
		die("create template", rc);
	if ((rc = shmq_create(seg, "a", &qa1)) ||
	    (rc = shmq_create(seg, "b.q-1", &qa2)))
		die("create queues", rc);
	rc = shmq_open(seg, "a", &q);
	if (rc)
		die("open a", rc);
	for (i = 0; i < 4; i++)
		shmq_send(q, "template message", 4 + 4 * i, 0);
	shmq_recv(q, (char[64]){ 0 }, 64, 0);
	forge_owed(seg, q);
	shmq_close(q);
	if ((rc = shmq_create(seg, "s", &qa3)) || (rc = shmq_open(seg, "s", &q)))
		die("create s", rc);
	shmq_send(q, "spsc message", 12, 0);
	shmq_send(q, "spsc", 4, 0);
	shmq_close(q);
	if ((rc = shmq_exchange_create(seg, "x", &xa)) ||
	    (rc = shmq_bind(seg, "x", "a", "a.#")) ||
	    (rc = shmq_bind(seg, "x", "b.q-1", "*.b")) ||
	    (rc = shmq_bind(seg, "x", "a", "gone")) ||
	    (rc = shmq_bind(seg, "x", "a", "")) ||
	    (rc = shmq_unbind(seg, "x", "a", "gone")))
		die("exchange x", rc);
	shmq_seg_close(seg);

	tmpl = malloc(SEG_BYTES);
	img = malloc(SEG_BYTES);
	fd = open(fuzz_path, O_RDONLY);
	if (!tmpl || !img || fd < 0 ||
	    pread(fd, tmpl, SEG_BYTES, 0) != (ssize_t)SEG_BYTES) {
		fprintf(stderr, "fuzz_seg: cannot read the template\n");
		exit(2);
	}
	close(fd);
	if (getenv("SHMQ_FUZZ_SEG_TEMPLATE")) {
		FILE *f = fopen(getenv("SHMQ_FUZZ_SEG_TEMPLATE"), "w");

		if (!f || fwrite(tmpl, 1, SEG_BYTES, f) != SEG_BYTES ||
		    fclose(f)) {
			fprintf(stderr, "fuzz_seg: cannot write the template\n");
			exit(2);
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_scratch_init("fuzz_seg", "seg");
	build_template();
	atexit(fuzz_scratch_remove);
	return 0;
}

/* The harness's own check: a zero-copy pointer must lie in a slot. */
static void check_zc(const shmq_seg *seg, const struct shmq_msg *m)
{
	const unsigned char *p = m->data;

	if (p < seg->base + seg->heap_off || p + m->len > seg->base + seg->size) {
		fprintf(stderr, "fuzz_seg: zero-copy pointer outside the heap\n");
		abort();
	}
}

/* The harness's own check: a length within @cap and the queue's msg_size. */
static void check_len(size_t n, size_t cap, size_t msg_size)
{
	if (n > cap || n > msg_size) {
		fprintf(stderr, "fuzz_seg: length %zu beyond the buffer (%zu) "
			"or msg_size (%zu)\n", n, cap, msg_size);
		abort();
	}
}

/* The harness's own check: who owes what, within what was asked. */
static void check_owed(shmq_seg *seg, const char *name)
{
	struct shmq_owed o[4];
	int n = shmq_queue_owed(seg, name, o, 4), i;

	for (i = 0; i < n && i < 4; i++)
		if (o[i].proc_index >= 4 || o[i].alive > 1) {
			fprintf(stderr, "fuzz_seg: owed entry %d names "
				"process %u (alive %u)\n", i, o[i].proc_index,
				o[i].alive);
			abort();
		}
}

static void exercise(shmq_seg *seg, shmq *q)
{
	unsigned char buf[64], big[4][48];
	struct shmq_attr a;
	struct iovec v[4];
	struct shmq_msg m;
	ssize_t n;
	int i, rc;

	if (shmq_get_attr(q, &a))
		abort();
	shmq_set_spin(q, 0);
	for (i = 0; i < 3; i++)
		shmq_send(q, "abcdefghijklmnopqrstuvwxyz0123456789", 8 * i, 0);
	n = shmq_recv(q, buf, sizeof(buf), 0);
	if (n >= 0)
		check_len((size_t)n, sizeof(buf), a.msg_size);
	for (i = 0; i < 4; i++)
		v[i] = (struct iovec){ big[i], sizeof(big[i]) };
	rc = shmq_send_batch(q, v, 4, 0);
	(void)rc;
	for (i = 0; i < 4; i++)
		v[i] = (struct iovec){ big[i], (size_t)i * 12 };
	rc = shmq_recv_batch(q, v, 4, 0);
	for (i = 0; i < rc; i++)
		check_len(v[i].iov_len, (size_t)i * 12, a.msg_size);
	if (shmq_reserve(q, 16, &m, 0) == 0) {
		check_zc(seg, &m);
		memset(m.data, 0x5a, m.len);
		shmq_commit(q, &m);
	}
	if (shmq_acquire(q, &m, 0) == 0) {
		check_zc(seg, &m);
		check_len(m.len, m.len, a.msg_size);
		if (m.len)
			memcpy(buf, m.data, m.len < sizeof(buf) ? m.len : sizeof(buf));
		shmq_release(q, &m);
	}
	/* Acknowledged delivery: fetch, ack, nack, and tags made up. */
	for (i = 0; i < 3; i++) {
		struct shmq_meta meta;
		uint64_t tag;

		n = shmq_fetch(q, buf, sizeof(buf), &meta, &tag, 0);
		if (n < 0)
			continue;
		check_len((size_t)n, sizeof(buf), a.msg_size);
		if (meta.key_len > SHMQ_KEY_MAX || meta.key[meta.key_len]) {
			fprintf(stderr, "fuzz_seg: a fetched key is not "
				"terminated\n");
			abort();
		}
		if (i == 1)
			shmq_nack(q, tag);
		else if (shmq_ack(q, tag) != 0)
			abort();        /* our own fresh tag */
	}
	shmq_ack(q, 1);
	shmq_nack(q, (uint64_t)-1);
	/* A tiny positive timeout: the wait path with garbage event words. */
	shmq_recv(q, buf, sizeof(buf), 1000);
}

/*
 * The harness's own check: a string the library returned is terminated at
 * @len, within @size.  (A key from a hostile table may hold a NUL before
 * that: key_len counts it; only the end must be there.)
 */
static void check_str(const char *str, size_t size, size_t len)
{
	if (len >= size || str[len] != 0) {
		fprintf(stderr, "fuzz_seg: a listed string of %zu bytes is "
			"not terminated at %zu\n", size, len);
		abort();
	}
}

static void check_bindings(const struct shmq_binding_info *b, int n,
			   unsigned max)
{
	int i;

	for (i = 0; i < n && i < (int)max; i++) {
		check_str(b[i].exchange, sizeof(b[i].exchange),
			  strnlen(b[i].exchange, sizeof(b[i].exchange)));
		check_str(b[i].queue, sizeof(b[i].queue),
			  strnlen(b[i].queue, sizeof(b[i].queue)));
		if (b[i].key_len > SHMQ_KEY_MAX)
			abort();
		check_str(b[i].key, sizeof(b[i].key), b[i].key_len);
	}
}

/* Publish a few keys through @x; none may reach more queues than exist. */
static void publish_some(shmq_exchange *x)
{
	static const char *const keys[] = { "a", "a.b", "", "x.b", "zz" };
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		rc = shmq_publish(x, keys[i], "published", 9, 0);
		if (rc > 4) {
			fprintf(stderr, "fuzz_seg: a publish reached %d "
				"queues of 4 entries\n", rc);
			abort();
		}
	}
	/* A tiny positive timeout: the wait path for room, if full. */
	shmq_publish(x, "a.b", "w", 1, 1000);
}

/* Everything an exchange named @name offers, on a hostile segment. */
static void exercise_exchange(shmq_seg *seg, const char *name)
{
	struct shmq_binding_info *b = calloc(16, sizeof(*b));
	struct shmq_exchange_info xi;
	shmq_exchange *x;
	int n;

	if (!b)
		abort();
	if (shmq_exchange_stat(seg, name, &xi) == 0) {
		check_str(xi.name, sizeof(xi.name),
			  strnlen(xi.name, sizeof(xi.name)));
		check_str(xi.alternate, sizeof(xi.alternate),
			  strnlen(xi.alternate, sizeof(xi.alternate)));
	}
	n = shmq_binding_list(seg, name, b, 16);
	check_bindings(b, n, 16);
	if (shmq_exchange_open(seg, name, &x) == 0) {
		publish_some(x);
		/* A change: the cached routes are rebuilt from the table. */
		shmq_bind(seg, name, "a", "a.*");
		shmq_bind(seg, name, "b.q-1", "#");
		shmq_bind(seg, name, "s", "s");         /* SPSC: refused */
		shmq_unbind(seg, name, "a", "a.#");
		publish_some(x);
		shmq_exchange_close(x);
	}
	n = shmq_binding_list(seg, NULL, b, 16);
	check_bindings(b, n, 16);
	free(b);
}

/* Receive with metadata from @q: the key must be within bounds. */
static void recv_keys(shmq *q)
{
	unsigned char buf[64];
	struct shmq_meta m;
	int i;

	for (i = 0; i < 3; i++) {
		if (shmq_recv_meta(q, buf, sizeof(buf), &m, 0) < 0)
			return;
		if (m.key_len > SHMQ_KEY_MAX)
			abort();
		check_str(m.key, sizeof(m.key), m.key_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char names[8][64];
	shmq_seg *seg;
	int fd, rc, nn = 0;
	uint32_t i;

	memcpy(img, tmpl, SEG_BYTES);
	while (size >= 3) {
		size_t off = data[0] | (size_t)data[1] << 8, len = data[2];

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (off < SEG_BYTES)
			memcpy(img + off, data,
			       len < SEG_BYTES - off ? len : SEG_BYTES - off);
		data += len;
		size -= len;
	}

	fd = open(fuzz_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || pwrite(fd, img, SEG_BYTES, 0) != (ssize_t)SEG_BYTES) {
		perror("fuzz_seg: write");
		exit(2);
	}
	close(fd);

	rc = shmq_seg_open(fuzz_path, &seg);
	if (rc)
		return 0;       /* rejected: the only other correct outcome */

	/* Names as the (fuzzed) directory spells them; the library re-checks. */
	for (i = 0; i < 4 && nn < 8; i++) {
		const struct dir_entry *e = (const struct dir_entry *)
			(img + SEG_HDR_SIZE) + i;

		if (memchr(e->name, 0, sizeof(e->name)))
			memcpy(names[nn++], e->name, sizeof(e->name));
	}
	strcpy(names[nn < 8 ? nn++ : 7], "a");
	strcpy(names[nn < 8 ? nn++ : 7], "x");
	shmq_exchange_list(seg, (struct shmq_exchange_info[4]){ 0 }, 4);
	for (i = 0; i < (uint32_t)nn; i++)
		exercise_exchange(seg, names[i]);
	for (i = 0; i < (uint32_t)nn; i++) {
		shmq *q;

		if (shmq_open(seg, names[i], &q) == 0) {
			/* exercise() first: it reads the template's messages
			 * as the crashers in tests/crashers/ expect. */
			exercise(seg, q);
			recv_keys(q);
			shmq_close(q);
		}
		check_owed(seg, names[i]);
	}
	/* Frees the fourth entry (and its table) for "new". */
	shmq_exchange_unlink(seg, "x");
	if (shmq_create(seg, "new", &(struct shmq_attr){ .capacity = 4,
						  .msg_size = 8 }) == 0) {
		shmq *q;

		if (shmq_open(seg, "new", &q) == 0) {
			exercise(seg, q);
			shmq_unlink(seg, "new");
			shmq_close(q);
		}
	}
	shmq_unlink(seg, "b.q-1");
	shmq_seg_close(seg);
	return 0;
}
