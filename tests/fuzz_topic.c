// SPDX-License-Identifier: MIT
/*
 * fuzz_topic.c - libFuzzer harness: the topic matcher (ipc/topic.c)
 * against a reference written to be obviously right.
 *
 * An input is
 *
 *     mode byte, binding key bytes, 0x00, routing key bytes
 *
 * (no 0x00: all of it is the binding and the routing key is empty).  When
 * bit 0 of the mode is set, each key byte is first mapped onto the small
 * alphabet "ab.*#", so that most inputs are made of the words that matter
 * (wildcards, empty words, repeated words); otherwise the bytes are used
 * as they are, NULs and dots included.  Each key is copied into a buffer
 * of exactly its length, so ASan reports any read past it (neither key
 * has a terminator).
 *
 * Checked, with abort() on any disagreement:
 *   - shmq__topic_match() equals ref_match(), for (binding, key) and for
 *     the two swapped (each side in turn is the binding);
 *   - shmq__topic_literal() equals "no word is exactly * or #, and at
 *     most SHMQ_KEY_MAX bytes" on the reference's own split;
 *   - a literal binding matches exactly the byte-equal key (the promise
 *     that lets the exchange use a hash lookup).
 *
 * The reference splits with memchr() into arrays of words and recurses
 * over (binding word, key word) straight from the rules.  Plain recursion
 * would be exponential in the "#" words; it memoizes on (i, j), which
 * changes nothing about its answers, so long keys (up to 256 words) are
 * checked too.  Its depth is at most the two word counts, ~512 frames.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"

#define WMAX	(SHMQ_KEY_MAX + 1)	/* words in a key of 255 dots */

struct words {
	size_t n;
	const char *w[WMAX];
	size_t len[WMAX];
};

/* The rules: "" is zero words; otherwise every '.' ends a word. */
static void ref_split(struct words *ws, const char *s, size_t len)
{
	const char *end = s + len, *dot;

	ws->n = 0;
	if (len == 0)
		return;
	for (;;) {
		dot = memchr(s, '.', (size_t)(end - s));
		ws->w[ws->n] = s;
		ws->len[ws->n] = (size_t)((dot ? dot : end) - s);
		ws->n++;
		if (!dot)
			return;
		s = dot + 1;
	}
}

static bool is_word(const struct words *ws, size_t i, char c)
{
	return ws->len[i] == 1 && ws->w[i][0] == c;
}

static const struct words *rb, *rk;
/* memo[i * (rk->n + 1) + j]: 0 unknown, 1 false, 2 true. */
static unsigned char memo[(WMAX + 1) * (WMAX + 1)];

/* Do binding words i.. match key words j..? */
static bool ref_rec(size_t i, size_t j)
{
	unsigned char *m = &memo[i * (rk->n + 1) + j];
	bool r;

	if (*m)
		return *m == 2;
	if (i == rb->n)
		r = j == rk->n;
	else if (is_word(rb, i, '#'))	/* nothing, or one more word */
		r = ref_rec(i + 1, j) || (j < rk->n && ref_rec(i, j + 1));
	else if (j == rk->n)
		r = false;
	else if (is_word(rb, i, '*'))	/* any one word */
		r = ref_rec(i + 1, j + 1);
	else				/* the same bytes */
		r = rb->len[i] == rk->len[j] &&
		    memcmp(rb->w[i], rk->w[j], rb->len[i]) == 0 &&
		    ref_rec(i + 1, j + 1);
	*m = r ? 2 : 1;
	return r;
}

static bool ref_match(const char *bind, size_t blen, const char *key,
		      size_t klen)
{
	static struct words b, k;

	if (blen > SHMQ_KEY_MAX || klen > SHMQ_KEY_MAX)
		return false;
	ref_split(&b, bind, blen);
	ref_split(&k, key, klen);
	rb = &b;
	rk = &k;
	memset(memo, 0, (b.n + 1) * (k.n + 1));
	return ref_rec(0, 0);
}

static bool ref_literal(const char *bind, size_t blen)
{
	static struct words b;
	size_t i;

	if (blen > SHMQ_KEY_MAX)
		return false;
	ref_split(&b, bind, blen);
	for (i = 0; i < b.n; i++)
		if (is_word(&b, i, '*') || is_word(&b, i, '#'))
			return false;
	return true;
}

static void show(const char *what, const char *s, size_t len)
{
	size_t i;

	fprintf(stderr, "  %s (%zu bytes): \"", what, len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fprintf(stderr, "\"\n");
}

static void check(const char *bind, size_t blen, const char *key,
		  size_t klen)
{
	bool got = shmq__topic_match(bind, blen, key, klen);
	bool want = ref_match(bind, blen, key, klen);
	bool lit = shmq__topic_literal(bind, blen);

	if (got != want) {
		fprintf(stderr, "fuzz_topic: shmq__topic_match is %d, the "
			"reference says %d\n", got, want);
		goto fail;
	}
	if (lit != ref_literal(bind, blen)) {
		fprintf(stderr, "fuzz_topic: shmq__topic_literal is %d\n", lit);
		goto fail;
	}
	if (lit && got != (blen == klen && memcmp(bind, key, blen) == 0)) {
		fprintf(stderr, "fuzz_topic: a literal binding %s a key that "
			"is %s\n", got ? "matches" : "does not match",
			got ? "not equal" : "equal");
		goto fail;
	}
	return;
fail:
	show("binding", bind, blen);
	show("key", key, klen);
	abort();
}

/* A buffer of exactly @len bytes, mapped onto "ab.*#" if @small. */
static char *copy_key(const uint8_t *p, size_t len, bool small)
{
	static const char alpha[] = "ab.*#";
	char *s = malloc(len);	/* ASan: even malloc(0) traps a read */
	size_t i;

	if (!s && len == 0)
		s = malloc(1);
	if (!s)
		abort();
	for (i = 0; i < len; i++)
		s[i] = small ? alpha[p[i] % 5] : (char)p[i];
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep;
	size_t blen, klen;
	char *bind, *key;
	bool small;

	if (size == 0)
		return 0;
	small = data[0] & 1;
	data++;
	size--;
	sep = memchr(data, 0, size);
	blen = sep ? (size_t)(sep - data) : size;
	klen = sep ? size - blen - 1 : 0;
	bind = copy_key(data, blen, small);
	key = copy_key(data + blen + (sep ? 1 : 0), klen, small);
	check(bind, blen, key, klen);
	check(key, klen, bind, blen);
	free(bind);
	free(key);
	return 0;
}
