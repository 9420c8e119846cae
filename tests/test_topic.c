// SPDX-License-Identifier: MIT
/*
 * test_topic.c - the topic matcher of topic exchanges (ipc/topic.h): a
 * table of cases (RabbitMQ's tutorial 5 and its teasers, RabbitMQ's own
 * routing test, every DESIGN.md example, empty keys and empty words,
 * literal '*' and '#', 255- and 256-byte keys), shmq__topic_literal(),
 * and bindings that would make a backtracking matcher explode.
 *
 * The matcher is pure: no segment, no child.  The fixtures only arm the
 * watchdog, which turns an exponential blow-up into a failure.
 */
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "topic.h"

struct tcase {
	const char *bind;
	const char *key;
	bool match;
};

static bool match_str(const char *bind, const char *key)
{
	return shmq__topic_match(bind, strlen(bind), key, strlen(key));
}

static void check_cases(const struct tcase *c, size_t n, const char *table)
{
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		bool got = match_str(c[i].bind, c[i].key);

		if (got != c[i].match) {
			print_error("%s: \"%s\" vs \"%s\": %s, expected %s\n",
				    table, c[i].bind, c[i].key,
				    got ? "match" : "no match",
				    c[i].match ? "match" : "no match");
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

#define CHECK(table) check_cases((table), sizeof(table) / sizeof((table)[0]), \
				 #table)

/* ---- RabbitMQ tutorial 5 (Topics) ---------------------------------------- */

/*
 * Q1 is bound with "*.orange.*", Q2 with "*.*.rabbit" and "lazy.#"; the
 * tutorial says which queues each key reaches, and that "orange" and
 * "quick.orange.new.rabbit" reach none while "lazy.orange.new.rabbit"
 * reaches Q2 (four words).
 */
static const struct tcase tutorial[] = {
	{ "*.orange.*", "quick.orange.rabbit", true },
	{ "*.*.rabbit", "quick.orange.rabbit", true },
	{ "lazy.#", "quick.orange.rabbit", false },
	{ "*.orange.*", "lazy.orange.elephant", true },
	{ "*.*.rabbit", "lazy.orange.elephant", false },
	{ "lazy.#", "lazy.orange.elephant", true },
	{ "*.orange.*", "quick.orange.fox", true },
	{ "*.*.rabbit", "quick.orange.fox", false },
	{ "lazy.#", "quick.orange.fox", false },
	{ "*.orange.*", "lazy.brown.fox", false },
	{ "*.*.rabbit", "lazy.brown.fox", false },
	{ "lazy.#", "lazy.brown.fox", true },
	/* Matches both of Q2's bindings (delivered once: the caller's job). */
	{ "*.orange.*", "lazy.pink.rabbit", false },
	{ "*.*.rabbit", "lazy.pink.rabbit", true },
	{ "lazy.#", "lazy.pink.rabbit", true },
	{ "*.orange.*", "quick.brown.fox", false },
	{ "*.*.rabbit", "quick.brown.fox", false },
	{ "lazy.#", "quick.brown.fox", false },
	{ "*.orange.*", "orange", false },
	{ "*.*.rabbit", "orange", false },
	{ "lazy.#", "orange", false },
	{ "*.orange.*", "quick.orange.new.rabbit", false },
	{ "*.*.rabbit", "quick.orange.new.rabbit", false },
	{ "lazy.#", "quick.orange.new.rabbit", false },
	{ "*.orange.*", "lazy.orange.new.rabbit", false },
	{ "*.*.rabbit", "lazy.orange.new.rabbit", false },
	{ "lazy.#", "lazy.orange.new.rabbit", true },
	/* The tutorial's teasers, answered as RabbitMQ's code does. */
	{ "*", "", false },		/* "" is zero words */
	{ "#.*", "..", true },		/* three empty words */
	{ "#.*", "a", true },		/* a single word */
	{ "a.*.#", "a", false },	/* needs a second word... */
	{ "a.#", "a", true },		/* ...where "a.#" does not */
	{ "a.*.#", "a.b", true },
	{ "a.*.#", "a.", true },	/* the second word may be empty */
	{ "#.*", "", false },
};

static void test_topic_tutorial(void **state)
{
	(void)state;
	CHECK(tutorial);
}

/* ---- RabbitMQ's routing test --------------------------------------------- */

/*
 * The bindings t1..t27 of rabbitmq-server's deps/rabbit/test/
 * routing_SUITE.erl (t20 repeats t1) and, for each routing key it tries,
 * the bindings that route it there, with both metadata stores.
 */
static const char *const rmq_bind[] = {
	NULL, "a.b.c", "a.*.c", "a.#.b", "a.b.b.c", "#", "#.#", "#.b", "*.*",
	"a.*", "*.b.c", "a.#", "a.#.#", "b.b.c", "a.b.b", "a.b", "b.c", "",
	"*.*.*", "vodka.martini", "a.b.c", "*.#", "#.*.#", "*.#.#", "#.#.#",
	"*", "#.b.#", "args-test",
};
#define RMQ_N	27

static const struct {
	const char *key;
	int hits[RMQ_N + 1];		/* binding numbers, 0-terminated */
} rmq_route[] = {
	{ "a.b.c", { 1, 2, 5, 6, 10, 11, 12, 18, 20, 21, 22, 23, 24, 26 } },
	{ "a.b", { 3, 5, 6, 7, 8, 9, 11, 12, 15, 21, 22, 23, 24, 26 } },
	{ "a.b.b", { 3, 5, 6, 7, 11, 12, 14, 18, 21, 22, 23, 24, 26 } },
	{ "", { 5, 6, 17, 24 } },
	{ "b.c.c", { 5, 6, 18, 21, 22, 23, 24, 26 } },
	{ "a.a.a.a.a", { 5, 6, 11, 12, 21, 22, 23, 24 } },
	{ "vodka.gin", { 5, 6, 8, 21, 22, 23, 24 } },
	{ "vodka.martini", { 5, 6, 8, 19, 21, 22, 23, 24 } },
	{ "b.b.c", { 5, 6, 10, 13, 18, 21, 22, 23, 24, 26 } },
	{ "nothing.here.at.all", { 5, 6, 21, 22, 23, 24 } },
	{ "oneword", { 5, 6, 21, 22, 23, 24, 25 } },
	{ "args-test", { 5, 6, 21, 22, 23, 24, 25, 27 } },
};

static void test_topic_rabbitmq_routing_suite(void **state)
{
	size_t r, bad = 0;
	int t;

	(void)state;
	for (r = 0; r < sizeof(rmq_route) / sizeof(rmq_route[0]); r++) {
		bool want[RMQ_N + 1] = { false };
		const int *h;

		for (h = rmq_route[r].hits; *h; h++)
			want[*h] = true;
		for (t = 1; t <= RMQ_N; t++) {
			if (match_str(rmq_bind[t], rmq_route[r].key) == want[t])
				continue;
			print_error("routing_SUITE: t%d \"%s\" vs \"%s\": "
				    "expected %s\n", t, rmq_bind[t],
				    rmq_route[r].key,
				    want[t] ? "match" : "no match");
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* ---- DESIGN.md's examples and rules -------------------------------------- */

static const struct tcase design[] = {
	{ "#", "", true },		/* "#" matches everything... */
	{ "#", "a", true },
	{ "#", "a.b.c", true },
	{ "#", ".", true },
	{ "#", "a..b.", true },
	{ "a.#", "a", true },
	{ "a.#", "a.b", true },
	{ "a.#", "a.b.c", true },
	{ "a.#", "b", false },
	{ "a.#", "", false },
	{ "*.b", "x.b", true },
	{ "*.b", "b", false },
	{ "*.b", "x.y.b", false },
	{ "#.b.#", "b", true },
	{ "#.b.#", "x.b", true },
	{ "#.b.#", "b.y", true },
	{ "#.b.#", "x.y.b.z.w", true },
	{ "#.b.#", "x.y", false },
	{ "#.b.#", "", false },
	/* "a..b" has an empty middle word. */
	{ "a.*.b", "a..b", true },
	{ "a..b", "a..b", true },
	{ "a.b", "a..b", false },
	{ "a..b", "a.b", false },
	{ "a.#.b", "a..b", true },
	{ "*", "a", true },
	{ "*", "a.b", false },
	{ "a.b.c", "a.b.c", true },
	{ "a.b.c", "a.b", false },
	{ "a.b", "a.b.c", false },
	{ "A", "a", false },		/* bytes: no case folding */
};

static void test_topic_design_examples(void **state)
{
	(void)state;
	CHECK(design);
}

/* ---- empty keys, empty words, leading and trailing dots ------------------ */

static const struct tcase edges[] = {
	/* The empty key is zero words. */
	{ "", "", true },
	{ "", "a", false },
	{ "", ".", false },
	{ "a", "", false },
	{ "*", "", false },
	{ "#", "", true },
	{ "#.#", "", true },
	{ "#.#.#", "", true },
	{ "#.*.#", "", false },
	{ ".", "", false },
	/* "." is two empty words. */
	{ "*", ".", false },
	{ "*.*", ".", true },
	{ ".", ".", true },
	{ "*.", ".", true },
	{ ".*", ".", true },
	{ "#.*", ".", true },
	{ "*.#", ".", true },
	{ "*.*.*", ".", false },
	{ "*.*.*", "..", true },
	{ "*", "a.", false },
	/* A leading or trailing dot makes an empty first or last word. */
	{ "*.a", ".a", true },
	{ ".a", ".a", true },
	{ ".a", "a", false },
	{ "a", ".a", false },
	{ "#.a", ".a", true },
	{ "#.a", "a", true },
	{ "a.*", "a.", true },
	{ "a.", "a.", true },
	{ "a", "a.", false },
	{ "a.", "a", false },
	{ "a.#", "a.", true },
	{ "a.#", "a..", true },
	{ "*", "", false },
	{ "*.*", "a", false },
	/* "#.#", "#.*", "*.#" */
	{ "#.#", "a", true },
	{ "#.#", "a.b.c", true },
	{ "#.*", "a.b", true },
	{ "#.*", "a.b.c", true },
	{ "*.#", "", false },
	{ "*.#", "a", true },
	{ "*.#", "a.b.c", true },
	{ "#.*.#", "a", true },
	{ "*.#.*", "a", false },
	{ "*.#.*", "a.b", true },
	{ "*.#.*", "a.b.c.d", true },
	{ "#.*.*", "a", false },
	{ "#.*.*", "a.b.c", true },
	/* "a.#.b" */
	{ "a.#.b", "a.b", true },
	{ "a.#.b", "a.x.b", true },
	{ "a.#.b", "a.x.y.b", true },
	{ "a.#.b", "a.b.b", true },
	{ "a.#.b", "a.b.a.b", true },
	{ "a.#.b", "a", false },
	{ "a.#.b", "b", false },
	{ "a.#.b", "a.x.y", false },
	{ "a.#.b", "x.a.b", false },
	{ "a.#.b", "a.b.x", false },
	{ "a.#.b.#.c", "a.b.c", true },
	{ "a.#.b.#.c", "a.x.b.y.z.c", true },
	{ "a.#.b.#.c", "a.c.b", false },
	{ "#.a.#.a", "a.a", true },
	{ "#.a.#.a", "a", false },
};

static void test_topic_edges(void **state)
{
	(void)state;
	CHECK(edges);
}

/* ---- '*' and '#' as literal characters ----------------------------------- */

static const struct tcase literal_chars[] = {
	/* Inside a longer binding word: literal. */
	{ "a*", "a*", true },
	{ "a*", "ab", false },
	{ "a*", "a", false },
	{ "a*", "a.b", false },
	{ "#b", "#b", true },
	{ "#b", "b", false },
	{ "#b", "ab", false },
	{ "#b", "", false },
	{ "**", "**", true },
	{ "**", "a", false },
	{ "##", "##", true },
	{ "##", "", false },
	{ "##", "a", false },
	{ "*#", "*#", true },
	{ "x.a*.#b.y", "x.a*.#b.y", true },
	{ "x.a*.#b.y", "x.ab.b.y", false },
	{ "*.a*", "q.a*", true },
	/* Anywhere in a routing key: literal. */
	{ "a", "*", false },
	{ "a", "#", false },
	{ "*", "*", true },		/* "*" takes any one word, "*" too */
	{ "*", "#", true },
	{ "#", "*", true },
	{ "#", "#", true },
	{ "a.*", "a.#", true },
	{ "a.b", "a.*", false },
	{ "a.b", "#", false },
	{ "a.b.c", "a.#", false },	/* the key's "#" is not a wildcard */
	{ "a.b.c", "*.b.c", false },
	{ "*.*", "#", false },		/* "#" in a key is one word */
	{ "#.#", "#", true },
	{ "a.#", "a.*.*", true },
};

static void test_topic_literal_chars(void **state)
{
	(void)state;
	CHECK(literal_chars);
}

/* ---- lengths, NUL bytes, unterminated buffers ---------------------------- */

/* @words copies of @word joined by '.' into @buf (NUL-terminated). */
static void fill_words(char *buf, size_t words, const char *word)
{
	size_t i, n = 0, wl = strlen(word);

	for (i = 0; i < words; i++) {
		if (i)
			buf[n++] = '.';
		memcpy(buf + n, word, wl);
		n += wl;
	}
	buf[n] = '\0';
}

static void test_topic_lengths(void **state)
{
	char k255[SHMQ_KEY_MAX + 2], k256[SHMQ_KEY_MAX + 2];
	char dots[SHMQ_KEY_MAX + 1], stars[SHMQ_KEY_MAX + 1];
	char big[1024];

	(void)state;
	/* 255 bytes: the longest key; 256: never matches, on either side. */
	memset(k255, 'k', 255);
	k255[255] = '\0';
	memset(k256, 'k', 256);
	k256[256] = '\0';
	assert_true(shmq__topic_match(k255, 255, k255, 255));
	assert_true(shmq__topic_match("#", 1, k255, 255));
	assert_true(shmq__topic_match("*", 1, k255, 255));
	assert_false(shmq__topic_match(k255, 255, k255, 254));
	assert_false(shmq__topic_match(k256, 256, k256, 256));
	assert_false(shmq__topic_match("#", 1, k256, 256));
	assert_false(shmq__topic_match(k256, 256, "a", 1));
	assert_false(shmq__topic_match("#", 1, k256, (size_t)-1));
	assert_false(shmq__topic_match("#", (size_t)-1, "a", 1));

	/* 255 dots: 256 empty words, the most a key can hold. */
	memset(dots, '.', 255);
	assert_true(shmq__topic_match(dots, 255, dots, 255));
	assert_true(shmq__topic_match("#", 1, dots, 255));
	assert_false(shmq__topic_match(dots, 254, dots, 255));
	assert_false(shmq__topic_match(dots, 255, dots, 254));
	/* 128 "*" words (255 bytes) take 128 words, not 127 nor 129. */
	fill_words(stars, 128, "*");
	assert_int_equal(strlen(stars), 255);
	fill_words(big, 128, "");
	assert_true(shmq__topic_match(stars, 255, big, strlen(big)));
	fill_words(big, 128, "w");
	assert_true(shmq__topic_match(stars, 255, big, strlen(big)));
	fill_words(big, 127, "w");
	assert_false(shmq__topic_match(stars, 255, big, strlen(big)));
	fill_words(big, 127, "w");
	strcat(big, ".");		/* 128 words, the last empty */
	assert_true(shmq__topic_match(stars, 255, big, strlen(big)));
	assert_false(shmq__topic_match(stars, 255, dots, 255));
	/* "#" on either side of 64-bit word boundaries of the state set. */
	fill_words(big, 100, "a");
	assert_true(shmq__topic_match(big, strlen(big), big, strlen(big)));
	assert_false(shmq__topic_match(big, strlen(big), big, strlen(big) - 2));
	assert_true(match_str("#.a", big));
	assert_true(match_str("a.#.a", big));
	assert_false(match_str("#.b", big));
	fill_words(big, 63, "*");
	strcat(big, ".#.x.*");
	assert_true(shmq__topic_match(big, strlen(big),
		"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
		"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
		"a.a.a.q.r.x.y", 133));
}

static void test_topic_bytes(void **state)
{
	(void)state;
	/* Neither key needs a NUL: only the given lengths are read. */
	assert_true(shmq__topic_match("a.bX", 3, "a.bY", 3));
	assert_true(shmq__topic_match("a.*Z", 3, "a.q", 3));
	assert_false(shmq__topic_match("a.b", 3, "a.bc", 4));
	assert_true(shmq__topic_match("#.", 1, "", 0));
	/* NUL is an ordinary byte. */
	assert_true(shmq__topic_match("a\0b", 3, "a\0b", 3));
	assert_false(shmq__topic_match("a\0b", 3, "a\0c", 3));
	assert_true(shmq__topic_match("*", 1, "a\0b", 3));
	assert_true(shmq__topic_match("*.\0", 3, "x.\0", 3));
	/* Non-ASCII bytes are bytes. */
	assert_true(match_str("\xc3\xa9.*", "\xc3\xa9.t\xc3\xa9"));
	assert_false(match_str("\xc3\xa9", "\xc3\x89"));
	/* NULL never matches. */
	assert_false(shmq__topic_match(NULL, 0, "", 0));
	assert_false(shmq__topic_match("#", 1, NULL, 0));
}

/* ---- shmq__topic_literal ------------------------------------------------- */

static void test_topic_literal(void **state)
{
	static const struct { const char *bind; bool lit; } lits[] = {
		{ "", true }, { "a", true }, { "a.b", true }, { "a..b", true },
		{ ".", true }, { ".a.", true }, { "a*", true }, { "*a", true },
		{ "#b", true }, { "b#", true }, { "**", true }, { "##", true },
		{ "a.*b.#c", true },
		{ "*", false }, { "#", false }, { "a.*", false },
		{ "*.a", false }, { "a.#.b", false }, { "#.a", false },
		{ ".*", false }, { "*.", false }, { ".#", false },
		{ "#.", false }, { "a..*", false }, { "#.#", false },
	};
	char k255[SHMQ_KEY_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		bool got = shmq__topic_literal(lits[i].bind,
					       strlen(lits[i].bind));

		if (got != lits[i].lit)
			fail_msg("shmq__topic_literal(\"%s\") is %d",
				 lits[i].bind, got);
	}
	memset(k255, 'k', sizeof(k255));
	assert_true(shmq__topic_literal(k255, 255));
	assert_false(shmq__topic_literal(k255, 256));
	assert_false(shmq__topic_literal(NULL, 0));
	/* Only @blen bytes count: "a.*" cut to "a." is literal. */
	assert_true(shmq__topic_literal("a.*", 2));
	assert_true(shmq__topic_literal("*a", 2));
	assert_false(shmq__topic_literal("*a", 1));
}

/*
 * The promise the exchange relies on: a literal binding matches exactly
 * the routing keys equal to it byte for byte.  Checked over every pair of
 * keys from all the tables.
 */
static void test_topic_literal_is_equality(void **state)
{
	static const struct tcase *const tables[] = {
		tutorial, design, edges, literal_chars,
	};
	static const size_t sizes[] = {
		sizeof(tutorial) / sizeof(tutorial[0]),
		sizeof(design) / sizeof(design[0]),
		sizeof(edges) / sizeof(edges[0]),
		sizeof(literal_chars) / sizeof(literal_chars[0]),
	};
	const char *keys[512];
	size_t nk = 0, t, i, a, b, checked = 0;

	(void)state;
	for (t = 0; t < 4; t++)
		for (i = 0; i < sizes[t] && nk + 2 <= 512; i++) {
			keys[nk++] = tables[t][i].bind;
			keys[nk++] = tables[t][i].key;
		}
	for (a = 0; a < nk; a++) {
		if (!shmq__topic_literal(keys[a], strlen(keys[a])))
			continue;
		for (b = 0; b < nk; b++) {
			bool eq = strcmp(keys[a], keys[b]) == 0;

			if (match_str(keys[a], keys[b]) != eq)
				fail_msg("literal \"%s\" vs \"%s\": match "
					 "is not byte equality", keys[a],
					 keys[b]);
			checked++;
		}
	}
	assert_true(checked > 1000);
}

/* ---- no backtracking explosion ------------------------------------------- */

/*
 * A backtracking matcher takes time exponential in the number of "#"
 * words on a key that almost matches: each "#" tries every split of the
 * rest.  Ours is linear in both keys, so each binding below against a
 * 125-word key must take microseconds.  The bound is 1,000 calls in one
 * second, hundreds of times what they need even under ASan on a loaded
 * machine: not a speed measurement (those live in bench/) but a guard
 * that fails, rather than hangs for years, on an exponential matcher
 * (the watchdog backs it up).
 */
static void test_topic_no_blowup(void **state)
{
	char key[SHMQ_KEY_MAX + 1], keyb[SHMQ_KEY_MAX + 1];
	char hashes[64], alt[128], alt2[128];
	const struct {
		const char *bind, *key;
		bool match;
	} runs[] = {
		{ hashes, key, false },		/* 16 "#" then "x" */
		{ alt, key, false },		/* "#.a" x 16 then "b" */
		{ alt, keyb, true },
		{ alt2, key, false },		/* "#.*" x 16 then "b" */
		{ alt2, keyb, true },
	};
	uint64_t t0, ns;
	size_t r;
	int i;

	(void)state;
	fill_words(key, 125, "a");		/* 249 bytes, 125 words */
	fill_words(keyb, 124, "a");
	strcat(keyb, ".b");
	fill_words(hashes, 16, "#");
	strcat(hashes, ".x");
	fill_words(alt, 16, "#.a");
	strcat(alt, ".b");
	fill_words(alt2, 16, "#.*");
	strcat(alt2, ".b");
	for (r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
		size_t bl = strlen(runs[r].bind), kl = strlen(runs[r].key);

		t0 = t_now_ns();
		for (i = 0; i < 1000; i++)
			if (shmq__topic_match(runs[r].bind, bl, runs[r].key,
					      kl) != runs[r].match)
				fail_msg("\"%s\": wrong answer", runs[r].bind);
		ns = t_now_ns() - t0;
		if (ns >= 1000 * T_MS)
			fail_msg("1000 matches of \"%s\" (%zu words of key) "
				 "took %llu ms", runs[r].bind, (size_t)125,
				 (unsigned long long)(ns / T_MS));
	}
	/* Plain "#" words: 16 of them match the 125 words too. */
	fill_words(hashes, 16, "#");
	assert_true(match_str(hashes, key));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup_noseg, t_teardown)
		T(test_topic_tutorial),
		T(test_topic_rabbitmq_routing_suite),
		T(test_topic_design_examples),
		T(test_topic_edges),
		T(test_topic_literal_chars),
		T(test_topic_lengths),
		T(test_topic_bytes),
		T(test_topic_literal),
		T(test_topic_literal_is_equality),
		T(test_topic_no_blowup),
#undef T
	};

	return cmocka_run_group_tests_name("topic", tests, t_group_setup,
					   t_group_teardown);
}
