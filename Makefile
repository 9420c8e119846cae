# shmq - one non-recursive Makefile.
#
#   make            libshmq.a, libshmq.so, mqctl, tests, benchmarks,
#                   examples (build/)
#   make check      the test suite: plain, under ASan+UBSan, and the thread
#                   tests under TSan, each in its own build directory; the
#                   examples, the man pages' lint, an install linked with
#                   pkg-config, the bench smoke run, the fuzzers, the
#                   models; then a summary table (tools/check.sh)
#   make bench      the benchmarks and the comparison (bench/results/)
#   make bench-quick  the same in under two minutes; make bench-deps: its packages
#   make demo       a producer and a consumer process exchanging messages
#   make deps       install missing Debian packages (as root); make demo
#                   and make check do it first (tools/deps.sh)
#   make install    PREFIX=/usr/local DESTDIR= (ldconfig when it applies)
#
# CC, CFLAGS, LDFLAGS, PREFIX and DESTDIR are yours; our flags are added from
# separate variables.

VERSION_MAJOR := 0
VERSION_MINOR := 4
VERSION_PATCH := 0
VERSION       := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
PREFIX  ?= /usr/local
DESTDIR ?=
PKG_CONFIG ?= pkg-config

B := build

URCU_CFLAGS := $(shell $(PKG_CONFIG) --cflags liburcu-cds liburcu-memb 2>/dev/null)
URCU_LIBS   := $(shell $(PKG_CONFIG) --libs liburcu-cds liburcu-memb 2>/dev/null || echo -lurcu-cds -lurcu-memb -lurcu-common)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

# -falign-functions=64: every function starts a cache line.  With gcc's
# default (16), the blocking round trip depended on where the linker put
# ipc/queue.o's and ipc/wait.o's hot functions relative to each other:
# one layout cost it ~120 ns (519 -> 401 ns median, 64 B, bench_pingpong
# --verbose per-round medians, A/B of the same source; aligning only one
# of the two objects recovered part or none of it).
SHMQ_CFLAGS := -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter \
	-D_GNU_SOURCE -Iinclude -Ishm -Iipc $(URCU_CFLAGS) -MMD -MP \
	-falign-functions=64 -DSHMQ_VERSION_STR='"$(VERSION)"'
SHMQ_LIBS   := $(URCU_LIBS) -lpthread -lrt
# libnats: mqbridge and its test only (built when libnats-dev is there).
NATS_OK     := $(shell $(PKG_CONFIG) --exists libnats 2>/dev/null && echo 1)
NATS_CFLAGS := $(if $(NATS_OK),$(shell $(PKG_CONFIG) --cflags libnats))
NATS_LIBS   := $(if $(NATS_OK),$(shell $(PKG_CONFIG) --libs libnats))
BRIDGE      := $(if $(NATS_OK),$(B)/mqbridge)

LIB_SRCS   := $(wildcard shm/*.c ipc/*.c)
TEST_SRCS  := $(wildcard tests/test_*.c)
TEST_HELP  := $(wildcard tests/helpers.c)
BENCH_SRCS := $(wildcard bench/bench_*.c)
TOOL_SRCS  := $(wildcard tools/mqctl*.c)
EXAMPLE_SRCS := $(wildcard examples/*.c)
MAN_PAGES  := $(wildcard man/*.3 man/*.7) tools/mqctl.1 tools/mqbridge.1

TESTS   := $(filter-out $(if $(NATS_OK),,test_bridge),$(TEST_SRCS:tests/%.c=%))
# bench_bridge runs mqbridge: built, as mqbridge is, only with libnats.
BENCHES := $(filter-out $(if $(NATS_OK),,bench_bridge),$(BENCH_SRCS:bench/%.c=%))
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=%)

# Every test that starts threads (pthread_create) also runs under TSan:
# test_api, test_batch, test_spsc, test_threads, test_zerocopy today.  Each
# passes there; test_spsc forks children after threads have run, which TSan
# allows (it warns only about a fork while other threads exist).
TSAN_TESTS := $(patsubst tests/%.c,%,$(shell grep -l pthread_create $(TEST_SRCS)))

# ---- variants: plain, asan, tsan --------------------------------------------
# $(call variant,DIR,EXTRA_CFLAGS)
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
# -Wno-tsan: gcc warns that TSan does not model atomic_thread_fence (it
# ignores stand-alone fences).  Nothing TSan needs goes through ours:
#  - F1 (shmq__notify, ipc/wait.h; spsc.c) and F2 (shmq__wait, ipc/wait.c)
#    are seq_cst store->load fences: each orders its side's store (the
#    publish or free of a slot; the waiter's W1 announcement) before its
#    load of the other side's word (waiters; the ring), so that no wake-up
#    is lost.  No data is published through them: messages and their
#    bytes are published by release stores of slot sequence words and SPSC
#    entries (R1, acquired by A1), which TSan does see.  Ignoring F1/F2
#    costs TSan no happens-before edge and so causes no false report; what
#    it cannot check is the store->load order itself, which the spin model
#    ipc/wait.pml checks (make model), with negative controls dropping F1
#    or F2.
#  - the acquire fences of shmq_peek(), shmq_seg_check() (ipc/inspect.c)
#    and the SPSC peek (ipc/spsc.c) order a speculative copy before a
#    re-read that decides whether the copy is kept; they run on observers,
#    which the thread tests do not exercise (test_mqctl does, across
#    processes, where TSan sees nothing anyway).
TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan

define variant
$(1)/obj/%.o: %.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $(2) $$(SHMQ_CFLAGS) -c $$< -o $$@

$(1)/libshmq.a: $$(LIB_SRCS:%.c=$(1)/obj/%.o)
	@rm -f $$@
	$$(AR) rcs $$@ $$^

$(1)/tests/%: $(1)/obj/tests/%.o $$(TEST_HELP:%.c=$(1)/obj/%.o) $(1)/libshmq.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $(2) $$(LDFLAGS) -o $$@ $$^ $$(CMOCKA_LIBS) $$(SHMQ_LIBS)

-include $$(shell find $(1)/obj -name '*.d' 2>/dev/null)
endef

$(eval $(call variant,$(B),))
$(eval $(call variant,$(B)/asan,$(ASAN_FLAGS)))
$(eval $(call variant,$(B)/tsan,$(TSAN_FLAGS)))

SONAME := libshmq.so.$(VERSION_MAJOR)

$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=default $(SHMQ_CFLAGS) -c $< -o $@

$(B)/libshmq.so.$(VERSION): $(LIB_SRCS:%.c=$(B)/pic/%.o) include/shmq.map
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) \
		-Wl,-z,defs -Wl,--version-script=include/shmq.map \
		-o $@ $(filter %.o,$^) $(SHMQ_LIBS)
	ln -sf libshmq.so.$(VERSION) $(B)/$(SONAME)
	ln -sf libshmq.so.$(VERSION) $(B)/libshmq.so

# The comparison's optional mechanisms, built in when their Debian packages
# are installed (make bench-deps): ZeroMQ, iceoryx's C binding, and the
# RabbitMQ and NATS clients (their servers are found at run time).
ZMQ_OK  := $(shell $(PKG_CONFIG) --exists libzmq 2>/dev/null && echo 1)
IOX_INC := $(firstword $(wildcard /usr/include/iceoryx/*/iceoryx_binding_c/api.h))
RMQ_OK  := $(shell $(PKG_CONFIG) --exists librabbitmq 2>/dev/null && echo 1)
BENCH_CFLAGS := $(if $(ZMQ_OK),-DBENCH_HAVE_ZMQ=1) \
	$(if $(IOX_INC),-DBENCH_HAVE_ICEORYX=1 -I$(patsubst %/iceoryx_binding_c/api.h,%,$(IOX_INC))) \
	$(if $(RMQ_OK),-DBENCH_HAVE_RABBITMQ=1 $(shell $(PKG_CONFIG) --cflags librabbitmq)) \
	$(if $(NATS_OK),-DBENCH_HAVE_NATS=1 $(shell $(PKG_CONFIG) --cflags libnats))
BENCH_LIBS := $(if $(ZMQ_OK),$(shell $(PKG_CONFIG) --libs libzmq)) \
	$(if $(IOX_INC),-liceoryx_binding_c) \
	$(if $(RMQ_OK),$(shell $(PKG_CONFIG) --libs librabbitmq)) \
	$(if $(NATS_OK),$(shell $(PKG_CONFIG) --libs libnats))

$(B)/bench/%: bench/%.c bench/common.h bench/mech.h bench/broker.h $(B)/libshmq.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SHMQ_CFLAGS) $(BENCH_CFLAGS) $(LDFLAGS) -o $@ $< \
		$(B)/libshmq.a $(SHMQ_LIBS) $(BENCH_LIBS) -lm


# The examples, in-tree: the static library, as a user's build would link
# it with pkg-config --static (make check also builds them against an
# installed copy with pkg-config, see check-install).
$(B)/examples/%: examples/%.c include/shmq.h $(B)/libshmq.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=gnu11 -Wall -Wextra -Iinclude $(LDFLAGS) -o $@ $< \
		$(B)/libshmq.a $(SHMQ_LIBS)

# Man pages with @VERSION@ replaced (the .TH lines), for install and lint.
$(B)/man/%: %
	@mkdir -p $(dir $@)
	sed -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(B)/shmq.pc: include/shmq.pc.in Makefile
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

-include $(shell find $(B)/pic $(B)/bench -name '*.d' 2>/dev/null)

# ---- fuzzing (libFuzzer, clang-14) -------------------------------------------
# tests/fuzz_<area>.c, each with its seed corpus tests/corpus/fuzz_<area>/.
# The library is rebuilt with coverage instrumentation under $(B)/fuzz.
FUZZ_CC    ?= clang-14
FUZZ_TIME  ?= 60
FUZZ_CHECK_TIME ?= 10
FUZZ_SRCS  := $(wildcard tests/fuzz_*.c)
FUZZERS    := $(FUZZ_SRCS:tests/%.c=%)
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-DSHMQ_FUZZING
FUZZ_SAN   := address,undefined

$(B)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) \
		$(SHMQ_CFLAGS) -c $< -o $@

$(B)/fuzz/libshmq.a: $(LIB_SRCS:%.c=$(B)/fuzz/obj/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/fuzz/fuzz_%: $(B)/fuzz/obj/tests/fuzz_%.o $(B)/fuzz/libshmq.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) $(LDFLAGS) \
		-o $@ $^ $(SHMQ_LIBS)

-include $(shell find $(B)/fuzz -name '*.d' 2>/dev/null)

# The fuzzers' negative control: the same harnesses over a library with a
# bug planted (-DSHMQ_FUZZ_PLANT: ipc/spsc.c forgets to clamp a length
# read from the segment), under $(B)/fuzz-plant.  tests/crashers/<fuzzer>/
# holds inputs that fuzzing this build found; check-fuzz replays each: it
# must make the planted build report the bug (PLANT_SIGN in its log; any
# other failure does not count) and pass through the real build.
PLANT_FUZZERS := fuzz_ring fuzz_seg
PLANT_SIGN := fuzz_[a-z]*: length .* beyond\|fuzz_ring: zero-copy message outside

$(B)/fuzz-plant/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -DSHMQ_FUZZ_PLANT \
		-fsanitize=fuzzer-no-link,$(FUZZ_SAN) $(SHMQ_CFLAGS) -c $< -o $@

$(B)/fuzz-plant/libshmq.a: $(LIB_SRCS:%.c=$(B)/fuzz-plant/obj/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/fuzz-plant/fuzz_%: $(B)/fuzz-plant/obj/tests/fuzz_%.o \
		$(B)/fuzz-plant/libshmq.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) $(LDFLAGS) \
		-o $@ $^ $(SHMQ_LIBS)

-include $(shell find $(B)/fuzz-plant -name '*.d' 2>/dev/null)

# $(call fuzz_control): replay tests/crashers/<fuzzer>/* as said above.
define fuzz_control
	@set -e; for f in $(PLANT_FUZZERS); do \
		n=0; log=$(B)/fuzz-plant/$$f.replay.log; \
		for c in tests/crashers/$$f/*; do \
			[ -f "$$c" ] || continue; n=$$((n + 1)); \
			d=$$(mktemp -d /dev/shm/shmq-fuzz.XXXXXX); rc=0; \
			SHMQ_FUZZ_DIR=$$d $(B)/fuzz-plant/$$f $$c >$$log 2>&1 \
				|| rc=$$?; \
			rm -rf $$d; \
			if [ $$rc = 0 ] || ! grep -q "$(PLANT_SIGN)" $$log; then \
				tail -20 $$log; echo "fuzz control $$f: $$c did" \
				"not make the planted bug show (exit $$rc)"; \
				exit 1; fi; \
			d=$$(mktemp -d /dev/shm/shmq-fuzz.XXXXXX); rc=0; \
			SHMQ_FUZZ_DIR=$$d $(B)/fuzz/$$f $$c >$$log 2>&1 || rc=$$?; \
			rm -rf $$d; \
			if [ $$rc != 0 ]; then tail -20 $$log; \
				echo "fuzz control $$f: $$c fails the real build"; \
				exit 1; fi; \
		done; \
		if [ $$n = 0 ]; then echo "fuzz control $$f: no crashers"; \
			exit 1; fi; \
		echo "fuzz control $$f: $$n planted-bug inputs caught by the" \
			"planted build, passed by the real one"; \
	done
endef

# $(call fuzz_run,SECONDS): each fuzzer for SECONDS, from its committed seeds
# plus what earlier runs found (build/fuzz/corpus/, not committed), in a
# private directory under /dev/shm that is removed afterwards.  A crash,
# leak, timeout (-timeout=5 s per input) or sanitizer report fails the run
# and leaves the reproducer in build/fuzz/crash-* (or leak-*, timeout-*).
define fuzz_run
	@set -e; for f in $(FUZZERS); do \
		mkdir -p $(B)/fuzz/corpus/$$f; \
		d=$$(mktemp -d /dev/shm/shmq-fuzz.XXXXXX); rc=0; \
		echo "== fuzz $$f for $(1) s"; \
		SHMQ_FUZZ_DIR=$$d ASAN_OPTIONS=detect_leaks=1 \
		$(B)/fuzz/$$f -max_total_time=$(1) -timeout=5 \
			-rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(B)/fuzz/ \
			$(B)/fuzz/corpus/$$f tests/corpus/$$f \
			2>$(B)/fuzz/$$f.log || rc=$$?; \
		rm -rf $$d; \
		grep -E '^stat::number_of_executed_units|^stat::new_units_added' \
			$(B)/fuzz/$$f.log | tr '\n' ' '; echo; \
		if [ $$rc != 0 ]; then tail -40 $(B)/fuzz/$$f.log; \
			echo "fuzz $$f: FAILED (log: $(B)/fuzz/$$f.log)"; exit $$rc; fi; \
	done
endef

# ---- targets ------------------------------------------------------------------

ALL := $(B)/libshmq.a $(B)/libshmq.so.$(VERSION) $(B)/shmq.pc \
	$(TESTS:%=$(B)/tests/%) $(BENCHES:%=$(B)/bench/%) \
	$(EXAMPLES:%=$(B)/examples/%) $(if $(TOOL_SRCS),$(B)/mqctl) $(BRIDGE)

.PHONY: all check check-plain check-asan check-tsan check-bench check-fuzz \
	check-model check-examples check-man check-readme check-install fuzz \
	model bench \
	bench-quick bench-deps demo demo-run deps deps-check deps-demo soak install \
	uninstall clean
.DEFAULT_GOAL := all
# Keep objects that are only intermediate steps of a test binary.
.SECONDARY:

all: $(ALL)

# make check: first the packages (tools/deps.sh: installed as root, else
# one line naming them and the command), then every stage, each in a
# make of its own so that one failure does not hide the others' results;
# each test binary and stage adds a line to $(B)/check-summary
# (tools/check.sh), printed as a table at the end.  Exit status 1 if
# anything failed.
CHECK_STAGES := check-plain check-asan check-tsan check-examples check-man \
	check-readme check-install check-bench check-fuzz check-model
# check-plain, -asan, -tsan, -examples, -man, -readme and -install record
# their own lines; the others are recorded as one line each.
CHECK_SELF := check-plain check-asan check-tsan check-examples check-man \
	check-readme check-install
check: deps-check
	@rm -f $(B)/check-summary; rm -rf $(B)/check-logs; mkdir -p $(B)
	@date +%s > $(B)/check-start
	@rc=0; for s in $(CHECK_STAGES); do \
		case " $(CHECK_SELF) " in \
		*" $$s "*) $(MAKE) --no-print-directory $$s || rc=1 ;; \
		*) n=$${s#check-}; [ $$n = bench ] && n="bench smoke"; \
		   B=$(B) sh tools/check.sh stage "$$n" \
			$(MAKE) --no-print-directory $$s || rc=1 ;; \
		esac; done; \
		B=$(B) sh tools/check.sh table || rc=1; exit $$rc

# The test binaries (tools/check.sh runs each and records its counts).
check-plain: $(TESTS:%=$(B)/tests/%) $(BENCHES:%=$(B)/bench/%)
	@rc=0; for t in $(TESTS); do B=$(B) sh tools/check.sh test \
		"plain $$t" $(B)/tests/$$t || rc=1; done; exit $$rc

check-asan: $(TESTS:%=$(B)/asan/tests/%)
	@rc=0; for t in $(TESTS); do \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1 B=$(B) sh tools/check.sh test \
		"asan $$t" $(B)/asan/tests/$$t || rc=1; done; exit $$rc

check-tsan: $(TSAN_TESTS:%=$(B)/tsan/tests/%)
	@rc=0; for t in $(TSAN_TESTS); do \
		TSAN_OPTIONS=halt_on_error=1 B=$(B) sh tools/check.sh test \
		"tsan $$t" $(B)/tsan/tests/$$t || rc=1; done; exit $$rc

# Each example checks its own output and exits non-zero on a failure.
check-examples: $(EXAMPLES:%=$(B)/examples/%)
	@rc=0; for e in $(EXAMPLES); do B=$(B) sh tools/check.sh stage \
		"example $$e" sh -c "echo '== example $$e'; $(B)/examples/$$e" \
		|| rc=1; done; exit $$rc

# Man pages: groff's warnings (-ww) on every page, as installed.
check-man: $(MAN_PAGES:%=$(B)/man/%)
	@B=$(B) sh tools/check.sh stage "man pages (groff -ww)" \
		sh tools/man.sh lint $^

# The README's API tour is an excerpt of examples/hello.c: each of its
# lines (but "...") is a line of the example, so the tour compiles.
check-readme:
	@B=$(B) sh tools/check.sh stage "README tour (hello.c)" \
		awk '/^```c$$/ { n++; next } /^```/ { if (n == 1) n++; next } \
		FILENAME == "README.md" && n == 1 && !/^[ \t]*(\.\.\.)?$$/ \
		{ sub(/^[ \t]+/, ""); want[$$0] = 1 } \
		FILENAME != "README.md" { sub(/^[ \t]+/, ""); have[$$0] = 1 } \
		END { for (l in want) if (!(l in have)) { \
			print "README.md: not in examples/hello.c: " l; bad = 1 } \
		  if (!bad) print "README: the API tour is an excerpt of examples/hello.c"; \
		  exit bad }' README.md examples/hello.c

# The README's linking lines, against a real install under $(B)/inst:
# the examples built with pkg-config and an rpath (hello run), and hello
# -static with --static;
# the man pages and their .so links installed; uninstall leaves no file.
INST := $(abspath $(B)/inst)
check-install:
	@B=$(B) sh tools/check.sh stage "install + pkg-config" sh -c '\
	set -e; echo "== install into $(INST), examples through pkg-config"; \
	rm -rf $(INST); \
	$(MAKE) --no-print-directory -s install PREFIX=$(INST); \
	export PKG_CONFIG_PATH=$(INST)/lib/pkgconfig; \
	for e in $(EXAMPLES); do $(CC) -o $(B)/inst/$$e examples/$$e.c \
		$$($(PKG_CONFIG) --cflags --libs shmq) -Wl,-rpath,$(INST)/lib; \
	done; \
	$(CC) -static -o $(B)/inst/hello-static examples/hello.c \
		$$($(PKG_CONFIG) --static --cflags --libs shmq); \
	ldd $(B)/inst/hello | grep -q "libshmq.so.0 => $(INST)/lib/"; \
	! ldd $(B)/inst/hello-static >/dev/null 2>&1; \
	$(B)/inst/hello >/dev/null; $(B)/inst/hello-static >/dev/null; \
	test -f $(INST)/share/man/man3/shmq_recv.3; \
	test -f $(INST)/share/man/man7/shmq.7; \
	! grep -q @VERSION@ $(INST)/share/man/man1/mqctl.1; \
	rm -f $(EXAMPLES:%=$(B)/inst/%) $(B)/inst/hello-static; \
	$(MAKE) --no-print-directory -s uninstall PREFIX=$(INST); \
	test -z "$$(find $(INST) -type f)"; rm -rf $(INST); \
	echo "install, pkg-config (shared + rpath, --static), uninstall: ok"'

# Fuzzers: FUZZ_TIME seconds each (make fuzz FUZZ_TIME=600); briefly in check.
fuzz: $(FUZZERS:%=$(B)/fuzz/%)
	$(call fuzz_run,$(FUZZ_TIME))

check-fuzz: $(FUZZERS:%=$(B)/fuzz/%) $(PLANT_FUZZERS:%=$(B)/fuzz-plant/%)
	$(call fuzz_run,$(FUZZ_CHECK_TIME))
	$(call fuzz_control)

# ---- models (spin) -------------------------------------------------------------
# ipc/wait.pml (futex wait/wake) and ipc/ring.pml (claim/publish/consume/free
# with records and crash recovery).  Each line: model, flags, expected result.
# The negative controls drop a fence or an ordering rule: spin must find
# that error, which shows that the model can fail; they name the kind of
# error it must report ("end": an invalid end state, the lost wake-up or a
# wedge; "assert": an assertion), so that another failure does not count.
# A "pass" run must be complete: pan exits 0, no "out of memory", no
# "Search not completed", no depth bound hit, and "errors: 0".
# ipc/poll.pml: a poller (shmq_poll) beside a blocked receiver (MPMC, and
# SPSC's membarrier variant); its controls put the poller on the receivers'
# futex word (the receiver is stranded: "end"), drop the poller's
# membarrier() on an SPSC queue or its check that a notifier took its
# announcement (the poller sleeps beside a message: "assert").
# WAIT_FLAGS must match the code: -DPASS_ON, a claimer passes a wake-up on
# (shmq__pass_on).  Without it the model finds the lost wake-up of
# out-of-order publishes.
SPIN ?= spin
WAIT_FLAGS ?= -DPASS_ON
MODELS := \
	wait:$(WAIT_FLAGS):pass \
	wait:-DSTALL:pass \
	wait:-DMEMBARRIER,-DPASS_ON:pass \
	wait:-DNP=2:end \
	wait:-DNO_F1,-DPASS_ON:end \
	wait:-DNO_F2,-DPASS_ON:end \
	ring:-DNP=1,-DMSGS=2:pass \
	ring:-DNP=1,-DMSGS=2,-DNO_RECORD_BEFORE_CAS:assert \
	poll::pass \
	poll:-DNP=1:pass \
	poll:-DNP=1,-DMEMBARRIER:pass \
	poll:-DNP=1,-DSHARED_WORD:end \
	poll:-DMEMBARRIER,-DNO_POLLER_M:assert \
	poll:-DNO_EPOCH_CHECK:assert \
	ack::pass \
	ack:-DNF=3:pass \
	ack:-DNACK:pass \
	ack:-DNO_IN_AREA:assert \
	ack:-DFREE_BEFORE_HELD:assert

# ipc/ack.pml: fetch, ack and nack through the unacknowledged area with a
# fetcher killed at any step and repair passes; its controls let the ring
# pass move a slot that a dead fetcher's entry keeps (a third delivery) or
# free the slot before the entry holds the message (a loss).
# ipc/spsc_model.py: the SPSC queue's sender and receiver with SIGKILLs at
# every step (capacity:messages:kills[:flag]:expected); the negative
# controls drop the take-back of a dead batch or the takeover's
# max(prod, cons), and must end with the model's verdict line naming the
# violation expected (exit 3): a usage error (2), a traceback (1) or
# another violation does not count.
SPSC_MODELS := 3:6:2:pass 2:6:3:pass \
	3:6:2:--no-takeback:skipped-message \
	3:6:2:--no-max:wedge

# Each entry: model:flags (commas for spaces):expected
model check-model:
	@set -e; mkdir -p $(B)/model; for m in $(MODELS); do \
		name=$${m%%:*}; rest=$${m#*:}; flags=$$(echo $${rest%:*} | tr , " "); \
		want=$${rest##*:}; d=$(B)/model/$$name$$(echo $$flags | tr -d ' =-'); \
		rm -rf $$d; mkdir -p $$d; cp ipc/$$name.pml $$d/; rc=0; \
		( cd $$d && $(SPIN) -a $$flags $$name.pml >spin.log && \
		  $(CC) -O2 -w -DSAFETY -DHC4 -o pan pan.c && \
		  ./pan -m20000 -w23 >pan.log 2>&1 ) || rc=$$?; \
		errs=$$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' $$d/pan.log 2>/dev/null); \
		states=$$(sed -n 's/^ *\([0-9e.+]*\) states, stored.*/\1/p' $$d/pan.log); \
		if [ $$rc != 0 ] || [ -z "$$errs" ]; then \
			echo "model $$name $$flags: no result (exit $$rc)"; \
			cat $$d/spin.log $$d/pan.log 2>/dev/null | tail -20; exit 1; fi; \
		if grep -qi "out of memory" $$d/pan.log; then \
			echo "model $$name $$flags: pan ran out of memory"; exit 1; fi; \
		if grep -q "max search depth too small" $$d/pan.log; then \
			echo "model $$name $$flags: depth bound hit"; exit 1; fi; \
		if [ $$want = pass ]; then \
			if [ $$errs != 0 ]; then \
				echo "model $$name $$flags: FAILED ($$errs errors, trail in $$d)"; \
				grep -E "pan:1|assert" $$d/pan.log | head -3; exit 1; fi; \
			if grep -q "Search not completed" $$d/pan.log; then \
				echo "model $$name $$flags: search not completed"; exit 1; fi; \
		else \
			case $$want in end) sign="pan:1: invalid end state";; \
				assert) sign="pan:1: assertion violated";; \
				*) echo "model $$name: unknown expectation $$want"; exit 1;; \
			esac; \
			if [ $$errs = 0 ] || ! grep -q "$$sign" $$d/pan.log; then \
				echo "model $$name $$flags: the negative control did not" \
					"find the expected error ($$sign)"; \
				grep -E "pan:1|errors:" $$d/pan.log | head -3; exit 1; fi; \
		fi; \
		echo "model $$name $$flags: $$states states, $$errs errors (expected: $$want)"; \
	done
	@set -e; for m in $(SPSC_MODELS); do \
		args=$$(echo $${m%:*} | tr : " "); want=$${m##*:}; rc=0; \
		python3 ipc/spsc_model.py $$args > $(B)/model/spsc.log 2>&1 || rc=$$?; \
		line=$$(head -1 $(B)/model/spsc.log); \
		if [ $$want = pass ]; then code=0; verdict="VERDICT: pass"; \
		else code=3; verdict="VERDICT: violation $$want"; fi; \
		if [ $$rc != $$code ] || \
		   [ "$$(tail -1 $(B)/model/spsc.log)" != "$$verdict" ]; then \
			echo "$$line (expected: $$verdict, exit $$code; got exit $$rc)"; \
			cat $(B)/model/spsc.log; exit 1; fi; \
		echo "$$line (expected: $$want)"; \
	done

# The benchmark and the comparison: tables on stdout, CSV + PNG under
# build/bench-results/MODE/ (bench/run.sh --help).
bench: $(BENCHES:%=$(B)/bench/%) $(BRIDGE)
	sh bench/run.sh --bin $(B)/bench

bench-quick: $(BENCHES:%=$(B)/bench/%) $(BRIDGE)
	sh bench/run.sh --quick --bin $(B)/bench

# make check: every case on a tiny workload; proves they run and clean up.
check-bench: $(BENCHES:%=$(B)/bench/%) $(BRIDGE)
	sh bench/run.sh --smoke --bin $(B)/bench

# ZeroMQ, iceoryx (+ iox-roudi), RabbitMQ, NATS and gnuplot for the
# comparison (as root).
bench-deps:
	@sh tools/bench-deps.sh

# make demo and make check begin with the packages they need: as root
# tools/deps.sh installs what is missing (as make deps does); otherwise it
# stops the build with one line naming the packages and the command.
# The build runs in a second make, so that it sees what was installed.
demo: deps-demo
	@$(MAKE) --no-print-directory demo-run

demo-run: $(B)/bench/bench_demo
	$(B)/bench/bench_demo

deps:
	@sh tools/deps.sh all

deps-check:
	@sh tools/deps.sh --quiet all

deps-demo:
	@sh tools/deps.sh --quiet build

# The torture test for minutes or hours (its ledger is checked and recycled
# as it goes), also stopping and continuing random peers:
# make soak SOAK_S=600.  Not part of check.
SOAK_S ?= 300
soak: $(B)/tests/test_torture $(B)/tests/test_spsc
	SHMQ_TORTURE_S=$(SOAK_S) SHMQ_TORTURE_STOP=1 $(B)/tests/test_torture
	SHMQ_TORTURE_S=$(SOAK_S) $(B)/tests/test_spsc

# ldconfig: only for a real install (no DESTDIR) as root into a prefix
# whose lib directory the dynamic linker searches; otherwise a program
# needs -Wl,-rpath,$(PREFIX)/lib (README: Install).
LIBDIR := $(PREFIX)/lib
install: $(B)/libshmq.a $(B)/libshmq.so.$(VERSION) $(B)/shmq.pc \
		$(if $(TOOL_SRCS),$(B)/mqctl) $(BRIDGE) $(MAN_PAGES:%=$(B)/man/%)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(PREFIX)/bin
	install -m 644 include/shmq.h $(DESTDIR)$(PREFIX)/include/shmq.h
	install -m 644 $(B)/libshmq.a $(DESTDIR)$(LIBDIR)/libshmq.a
	install -m 755 $(B)/libshmq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libshmq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libshmq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libshmq.so
	# Written here, not copied: PREFIX may differ from the one 'make' used.
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
		include/shmq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/shmq.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/shmq.pc
	$(if $(TOOL_SRCS),install -m 755 $(B)/mqctl $(DESTDIR)$(PREFIX)/bin/mqctl)
	$(if $(BRIDGE),install -m 755 $(B)/mqbridge $(DESTDIR)$(PREFIX)/bin/mqbridge)
	sh tools/man.sh install $(DESTDIR)$(PREFIX)/share/man \
		$(MAN_PAGES:%=$(B)/man/%)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
	    { [ "$(LIBDIR)" = /usr/lib ] || [ "$(LIBDIR)" = /usr/local/lib ] || \
	      ldconfig -v -N 2>/dev/null | grep -q "^$(LIBDIR):"; }; then \
		echo ldconfig; ldconfig; \
	elif [ -z "$(DESTDIR)" ]; then \
		echo "note: $(LIBDIR) is not in the dynamic linker's cache:" \
			"link programs with -Wl,-rpath,$(LIBDIR)"; fi

# The man pages' names come from their NAME lines (tools/man.sh).
uninstall: $(MAN_PAGES:%=$(B)/man/%)
	rm -f $(DESTDIR)$(PREFIX)/include/shmq.h \
		$(DESTDIR)$(LIBDIR)/libshmq.a \
		$(DESTDIR)$(LIBDIR)/libshmq.so* \
		$(DESTDIR)$(LIBDIR)/pkgconfig/shmq.pc \
		$(DESTDIR)$(PREFIX)/bin/mqctl $(DESTDIR)$(PREFIX)/bin/mqbridge
	sh tools/man.sh uninstall $(DESTDIR)$(PREFIX)/share/man \
		$(MAN_PAGES:%=$(B)/man/%)

clean:
	rm -rf $(B)

# ---- mqctl and its test ---------------------------------------------------------
# mqctl is built in the plain and the ASan variants; test_mqctl runs the
# mqctl of its own variant (build/mqctl, build/asan/mqctl), found next to
# its own binary.
$(B)/mqctl: $(TOOL_SRCS:%.c=$(B)/obj/%.o) $(B)/libshmq.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(SHMQ_LIBS)

$(B)/asan/mqctl: $(TOOL_SRCS:%.c=$(B)/asan/obj/%.o) $(B)/asan/libshmq.a
	$(CC) $(CFLAGS) $(ASAN_FLAGS) $(LDFLAGS) -o $@ $^ $(SHMQ_LIBS)

check-plain: $(if $(TOOL_SRCS),$(B)/mqctl)
check-asan: $(if $(TOOL_SRCS),$(B)/asan/mqctl)

# ---- mqbridge and its test --------------------------------------------------------
# mqbridge links libnats (pkg-config libnats); test_bridge runs the mqbridge
# of its own variant (build/mqbridge, build/asan/mqbridge) against real
# nats-server processes and queries the stream through libnats.
$(B)/obj/tools/mqbridge.o $(B)/asan/obj/tools/mqbridge.o \
$(B)/obj/tests/test_bridge.o $(B)/asan/obj/tests/test_bridge.o \
$(B)/tsan/obj/tests/test_bridge.o: SHMQ_CFLAGS += $(NATS_CFLAGS)
$(B)/tests/test_bridge $(B)/asan/tests/test_bridge \
$(B)/tsan/tests/test_bridge: SHMQ_LIBS += $(NATS_LIBS)

$(B)/mqbridge: $(B)/obj/tools/mqbridge.o $(B)/libshmq.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(SHMQ_LIBS) $(NATS_LIBS)

$(B)/asan/mqbridge: $(B)/asan/obj/tools/mqbridge.o $(B)/asan/libshmq.a
	$(CC) $(CFLAGS) $(ASAN_FLAGS) $(LDFLAGS) -o $@ $^ $(SHMQ_LIBS) \
		$(NATS_LIBS)

check-plain: $(BRIDGE)
check-asan: $(if $(NATS_OK),$(B)/asan/mqbridge)

# ---- a program built against the 0.3 header --------------------------------------
# tests/abi03/old_client.c includes the 0.3.1 release's shmq.h and binds the
# 0.3.1 symbol versions; test_ack runs it against today's libshmq.so (found
# through the rpath).  An order-only prerequisite of test_ack: not linked in.
# If the library lost one of those versions, the link fails: then the
# "client" is a script that prints the linker's errors (kept in .log) and
# exits 3, so that test_ack fails, not the whole build.
$(B)/abi03/old_client: tests/abi03/old_client.c tests/abi03/shmq-0.3.h \
		$(B)/libshmq.so.$(VERSION)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=gnu11 -Wall -Wextra $(LDFLAGS) -o $@ $< \
		$(B)/libshmq.so.$(VERSION) -Wl,-rpath,$(abspath $(B)) \
		2>$@.log || { printf '#!/bin/sh\ncat "$$0.log" >&2\nexit 3\n' \
		>$@; chmod +x $@; }
	@cat $@.log

$(B)/tests/test_ack $(B)/asan/tests/test_ack: | $(B)/abi03/old_client
