/* SPDX-License-Identifier: MIT */
/*
 * topic.c - the AMQP 0-9-1 topic matcher of topic exchanges.
 *
 * The rules (DESIGN.md "Exchanges: routing by rules (0.4)"; the decided
 * cases and RabbitMQ's evidence are in topic.h):
 *   - both keys are split into words at each '.'; the empty key is zero
 *     words, any other key of d dots is d + 1 words, empty ones included;
 *   - in the binding key a word that is exactly "*" matches one word (any,
 *     even empty), one that is exactly "#" matches zero or more words, and
 *     every other word matches only the same bytes;
 *   - in the routing key every byte is literal;
 *   - a key longer than SHMQ_KEY_MAX bytes never matches.
 *
 * The algorithm: the binding key is a tiny regular expression over words,
 * so we run its NFA (Thompson's construction, without the backtracking
 * that makes "#.#.#.#.x" exponential).  The binding's m words give m + 1
 * states: state i means "the first i binding words have matched the key
 * words read so far"; state m accepts.  From state i, on a key word w:
 *   - word i is "*", or the literal w:   go to i + 1;
 *   - word i is "#":                      stay in i (it eats w);
 * and without reading anything, a "#" at i may match nothing: i -> i + 1
 * (the closure).  The set S of live states is a bitset; one key word is
 *
 *     S' = close(shl1(S & (star | literals equal to w)) | (S & hash))
 *
 * Start with close({0}), feed the key's words left to right, and match
 * when state m is in S at the end.  An empty S ends the walk early.
 *
 * Consecutive "#" words are merged while parsing ("#.#" matches exactly
 * what "#" does: zero or more, then zero or more), so no "#" follows a
 * "#" and the closure is a single shift: close(S) = S | shl1(S & hash).
 *
 * Cost.  A 255-byte key has at most 256 words (255 dots), so m <= 256
 * and S fits SET_LEN = 5 words of 64 bits on the stack.  Parsing the
 * binding is one pass over its bytes.  Each of the key's n words costs
 * SET_LEN-word operations plus one comparison per live literal state whose
 * word has the same length, a memcmp() of that length: over the whole key
 * at most m x (n + klen) steps, about 130,000 for two 255-byte keys, and
 * in practice far fewer (S is small and dies early).  No recursion, no
 * allocation, no input-dependent stack: the worst case is the bound, not
 * an exponential (a binding of 16 "#" words against 125 key words takes
 * microseconds; test_topic checks it).
 *
 * Keys may live in shared memory and change while we read them: every
 * offset and length we use comes from @blen and @klen and is bounded by
 * them, so a concurrent change can spoil the answer but never make us
 * read outside the two buffers.
 */
#include <stdint.h>
#include <string.h>

#include "topic.h"

/* 255 dots make 256 empty words; states are 0..WORDS_MAX. */
#define WORDS_MAX	(SHMQ_KEY_MAX + 1)
#define SET_LEN		((WORDS_MAX + 1 + 63) / 64)

_Static_assert(SHMQ_KEY_MAX < UINT16_MAX, "word offsets are 16-bit");

/* A parsed binding key: its words, and one bitset per kind of word. */
struct pattern {
	unsigned n;			/* words, after merging "#.#" */
	uint64_t star[SET_LEN];		/* bit i: word i is "*" */
	uint64_t hash[SET_LEN];		/* bit i: word i is "#" */
	uint64_t lit[SET_LEN];		/* bit i: word i is literal */
	uint16_t off[WORDS_MAX];	/* word i: bind[off[i]], len[i] bytes */
	uint16_t len[WORDS_MAX];
};

static inline void set_bit(uint64_t *s, unsigned i)
{
	s[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline bool test_bit(const uint64_t *s, unsigned i)
{
	return s[i / 64] >> (i % 64) & 1;
}

/* out = in << 1 across the words (out and in may not overlap). */
static inline void shl1(uint64_t *out, const uint64_t *in)
{
	unsigned k;

	out[0] = in[0] << 1;
	for (k = 1; k < SET_LEN; k++)
		out[k] = in[k] << 1 | in[k - 1] >> 63;
}

/* S |= shl1(S & hash): a "#" at i may match nothing (see the top). */
static void close_set(uint64_t *s, const struct pattern *p)
{
	uint64_t h[SET_LEN], t[SET_LEN];
	unsigned k;

	for (k = 0; k < SET_LEN; k++)
		h[k] = s[k] & p->hash[k];
	shl1(t, h);
	for (k = 0; k < SET_LEN; k++)
		s[k] |= t[k];
}

/* Is the word @w (@wlen bytes) exactly the one-byte word @c? */
static inline bool word_is(const char *w, size_t wlen, char c)
{
	return wlen == 1 && w[0] == c;
}

/* Split @bind (at most SHMQ_KEY_MAX bytes, so at most WORDS_MAX words). */
static void parse(struct pattern *p, const char *bind, size_t blen)
{
	size_t start = 0, i;

	/* off[] and len[] are written before they are read: not cleared. */
	p->n = 0;
	memset(p->star, 0, sizeof(p->star));
	memset(p->hash, 0, sizeof(p->hash));
	memset(p->lit, 0, sizeof(p->lit));
	if (blen == 0)
		return;			/* zero words */
	for (i = 0; i <= blen; i++) {
		const char *w = bind + start;
		size_t wlen = i - start;

		if (i < blen && bind[i] != '.')
			continue;
		start = i + 1;
		if (word_is(w, wlen, '#')) {
			/* "#.#" is "#": keep one, so the closure is one shift. */
			if (p->n > 0 && test_bit(p->hash, p->n - 1))
				continue;
			set_bit(p->hash, p->n);
		} else if (word_is(w, wlen, '*')) {
			set_bit(p->star, p->n);
		} else {
			set_bit(p->lit, p->n);
			p->off[p->n] = (uint16_t)(w - bind);
			p->len[p->n] = (uint16_t)wlen;
		}
		p->n++;
	}
}

/*
 * Feed one key word @w (@wlen bytes) to the live set @s.  Returns false
 * when no state is left alive (the key cannot match any more).
 */
static bool step(uint64_t *s, const struct pattern *p, const char *bind,
		 const char *w, size_t wlen)
{
	uint64_t adv[SET_LEN], next[SET_LEN], any = 0;
	unsigned k;

	for (k = 0; k < SET_LEN; k++) {
		uint64_t lits = s[k] & p->lit[k];

		adv[k] = s[k] & p->star[k];
		/* Each live literal state advances if its word is @w. */
		while (lits) {
			unsigned i = k * 64 + (unsigned)__builtin_ctzll(lits);

			if (p->len[i] == wlen &&
			    memcmp(bind + p->off[i], w, wlen) == 0)
				adv[k] |= lits & -lits;
			lits &= lits - 1;
		}
	}
	shl1(next, adv);
	for (k = 0; k < SET_LEN; k++)
		next[k] |= s[k] & p->hash[k];	/* "#" eats @w, stays */
	close_set(next, p);
	for (k = 0; k < SET_LEN; k++) {
		s[k] = next[k];
		any |= next[k];
	}
	return any != 0;
}

bool shmq__topic_match(const char *bind, size_t blen, const char *key,
		       size_t klen)
{
	struct pattern p;
	uint64_t s[SET_LEN] = { 0 };
	size_t start = 0, i;

	if (!bind || !key || blen > SHMQ_KEY_MAX || klen > SHMQ_KEY_MAX)
		return false;
	parse(&p, bind, blen);
	set_bit(s, 0);
	close_set(s, &p);
	if (klen > 0) {
		for (i = 0; i <= klen; i++) {
			if (i < klen && key[i] != '.')
				continue;
			if (!step(s, &p, bind, key + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return test_bit(s, p.n);
}

bool shmq__topic_literal(const char *bind, size_t blen)
{
	size_t start = 0, i;

	if (!bind || blen > SHMQ_KEY_MAX)
		return false;
	for (i = 0; i < blen; i++) {
		if (bind[i] != '.')
			continue;
		if (word_is(bind + start, i - start, '*') ||
		    word_is(bind + start, i - start, '#'))
			return false;
		start = i + 1;
	}
	/* The last word ("" when @bind is empty: not a wildcard). */
	return !word_is(bind + start, blen - start, '*') &&
	       !word_is(bind + start, blen - start, '#');
}
