/* SPDX-License-Identifier: MIT */
/*
 * topic.h - the AMQP 0-9-1 topic matcher of topic exchanges (internal;
 * the rules, the algorithm and its cost are at the top of topic.c).
 *
 * Pure functions: no shared state, no allocation, no recursion, no
 * system call; safe from any thread and on keys read from shared memory.
 *
 * The rules (DESIGN.md, "Exchanges: routing by rules (0.4)"), with the
 * cases we had to decide and RabbitMQ's evidence for each:
 *
 *  - A key is split into words at every '.'.  The empty key is ZERO
 *    words; any other key of d dots is d + 1 words, some possibly empty:
 *    "a..b" is a, "", b; "a." is a, ""; "." is two empty words; 255 dots
 *    are 256 empty words.  RabbitMQ: split_topic_key(<<>>) is [] and
 *    every '.' closes a word, empty or not (rabbit_db_topic_exchange.erl,
 *    both the Mnesia and the Khepri splitter); rabbitmq-server PR #16271
 *    quotes AMQP 0-9-1's "zero or more words" for the empty key.
 *  - In a binding key, a word that is exactly "*" matches exactly one
 *    word, which may be empty; one that is exactly "#" matches zero or
 *    more words.  '*' or '#' inside a longer word ("a*", "#b", "**") and
 *    every byte of a routing key are literal.  RabbitMQ's trie has an
 *    edge per whole word and looks up "*" and "#" only as whole words;
 *    a routing-key word "*" or "#" there can only take the edge its
 *    binding word would have taken anyway, so the sets it routes to are
 *    the ones literal matching gives.
 *  - So "*" does NOT match "" (zero words, and "*" needs one); "#", "#.#"
 *    and the empty binding key "" DO match "" (and "" matches only "");
 *    "#.*.#" does not match "".  These four are rows of RabbitMQ's own
 *    routing test (deps/rabbit/test/routing_SUITE.erl: key "" routes to
 *    "#", "#.#", "", "#.#.#" and to no other of its 26 bindings).
 *  - "*" does not match "." (two words) but "*.*" does; "#.*" matches
 *    ".." (three empty words) and "a"; "a.*.#" needs a second word where
 *    "a.#" does not: the answers to tutorial 5's three teasers.
 *  - Bytes are compared as bytes: no case folding, no UTF-8 handling;
 *    NUL is an ordinary byte (neither key needs a terminator).
 *  - A key longer than SHMQ_KEY_MAX (255, AMQP's shortstr limit) never
 *    matches, whichever side it is on: such a length comes from a
 *    corrupt or hostile segment, since shmq_bind() and shmq_publish()
 *    refuse it with -EINVAL.  A NULL pointer never matches either.
 */
#ifndef SHMQ_TOPIC_H
#define SHMQ_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* Keys are 0..255 bytes (DESIGN.md); shmq.h will carry the same value. */
#ifndef SHMQ_KEY_MAX
#define SHMQ_KEY_MAX 255
#endif

/*
 * shmq__topic_match - does a binding key match a routing key?
 * @bind: the binding key, @blen bytes (no NUL needed)
 * @key:  the routing key, @klen bytes (no NUL needed)
 *
 * Returns true when @bind matches @key under the rules above; false
 * otherwise, and always when @blen or @klen exceeds SHMQ_KEY_MAX or a
 * pointer is NULL.
 *
 * Cost: O(words of bind x words of key) steps, plus at most one byte
 * comparison per byte of @key per literal word of @bind: at most a few
 * tens of thousands of operations for 255-byte keys, whatever they hold.
 *
 * Thread safety: pure.  Every index is derived from @blen and @klen, so
 * the call never reads outside those bytes even if they change under it
 * (keys in shared memory); the answer is then meaningless, not unsafe.
 * Copy a shared key first for a stable answer.
 */
bool shmq__topic_match(const char *bind, size_t blen, const char *key,
		       size_t klen);

/*
 * shmq__topic_literal - is a binding key free of wildcards?
 * @bind: the binding key, @blen bytes (no NUL needed)
 *
 * Returns true when no word of @bind is exactly "*" or "#" (a '*' or '#'
 * inside a longer word does not count): then shmq__topic_match(@bind, @key)
 * holds exactly when the two keys are equal byte for byte, so the caller
 * may look the routing key up in a hash of literal bindings.  False
 * otherwise, and for a NULL @bind or @blen beyond SHMQ_KEY_MAX (a binding
 * that shmq__topic_match() never matches).  The empty key is literal: it
 * matches only the empty routing key.
 *
 * Thread safety: pure.
 */
bool shmq__topic_literal(const char *bind, size_t blen);

#endif /* SHMQ_TOPIC_H */
