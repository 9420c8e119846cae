#!/bin/sh
# SPDX-License-Identifier: MIT
# make check's bookkeeping: run one test binary or one stage, keep its
# output in build/check-logs/, and add one line to build/check-summary;
# at the end, print that file as a table.  The Makefile calls:
#
#   sh tools/check.sh test SUITE BINARY      a cmocka binary; its counts are
#                                           read from cmocka's own lines
#   sh tools/check.sh stage SUITE CMD...     anything else (fuzzers, models,
#                                           the bench smoke run, examples,
#                                           man pages): passed or failed
#   sh tools/check.sh table                  the table; exit 1 on any failure
#
# A line of build/check-summary: suite, tests, passed, failed, skipped,
# seconds, notes (tab-separated).  A test that skips says why on a line
# "[  REASON  ] test: why" (t_skip() in tests/helpers.h); the table shows
# it.  The output of each run still goes to the terminal as it comes.
B=${B:-build}
sum=$B/check-summary
logs=$B/check-logs
mkdir -p "$logs"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

case "$1" in
test)
	suite=$2 bin=$3
	log=$logs/$(echo "$suite" | tr ' /' '__').log
	echo "== $suite"
	t0=$(now)
	# The status of the binary, not of tee; its output to our stdout (4).
	exec 4>&1
	rc=$( { { "$bin"; echo $? >&3; } 2>&1 | tee "$log" >&4; } 3>&1 )
	exec 4>&-
	t1=$(now)
	run=$(sed -n 's/^\[==========\] \([0-9]*\) test(s) run\./\1/p' "$log")
	pass=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log")
	fail=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log")
	skip=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:/\1/p' "$log")
	notes=$(sed -n 's/^\[  REASON  \] \(.*\)/skipped \1/p' "$log" | sort -u |
		paste -sd ';' - | sed 's/;/; /g')
	for t in $(grep '^\[  SKIPPED \] test_' "$log" | sed 's/^.* //' | sort -u); do
		grep -q "^\[  REASON  \] $t:" "$log" ||
			notes="${notes:+$notes; }skipped $t (no reason printed)"
	done
	fnames=$(grep '^\[  FAILED  \] test_' "$log" | sed 's/^\[  FAILED  \] //' |
		sort -u | paste -sd ',' -)
	[ -n "$fnames" ] && notes="failed: $fnames${notes:+; $notes}"
	if [ -z "$run" ]; then
		# No cmocka summary: the binary crashed or was killed.
		run=- pass=- fail=1 skip=-
		notes="exit status $rc before cmocka's summary (log: $log)"
	fi
	[ "$rc" != 0 ] && [ "${fail:-0}" = 0 ] && {
		fail=1; notes="exit status $rc${notes:+; $notes}"; }
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$suite" "$run" "${pass:-0}" \
		"${fail:-0}" "${skip:-0}" "$(secs "$t0" "$t1")" "$notes" >> "$sum"
	exit "$rc"
	;;
stage)
	suite=$2; shift 2
	t0=$(now)
	"$@"; rc=$?
	t1=$(now)
	if [ $rc = 0 ]; then p=1 f=0 notes=""; else p=0 f=1 notes="exit status $rc"; fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$suite" 1 $p $f 0 \
		"$(secs "$t0" "$t1")" "$notes" >> "$sum"
	exit $rc
	;;
table)
	[ -s "$sum" ] || { echo "make check: nothing ran"; exit 1; }
	echo
	echo "== make check: summary ($sum; logs in $logs/)"
	awk -F '\t' '
	BEGIN { fmt = "%-30s %6s %6s %6s %7s %8s  %s\n"
		printf fmt, "SUITE", "TESTS", "PASSED", "FAILED", "SKIPPED", "TIME_S", "NOTES" }
	{ printf fmt, $1, $2, $3, $4, $5, $6, $7
	  if ($2 ~ /^[0-9]+$/) t += $2; if ($3 ~ /^[0-9]+$/) p += $3
	  f += $4; if ($5 ~ /^[0-9]+$/) s += $5; sec += $6
	  if ($4 != 0) bad = bad " " $1 }
	END { printf fmt, "total", t, p, f, s, sprintf("%.0f", sec), ""
	      if (f) { printf "make check: FAILED:%s\n", bad; exit 1 }
	      printf "make check: all %d suites passed (%d tests, %d skipped)\n", NR, t, s }
	' "$sum"; rc=$?
	if [ -f "$B/check-start" ]; then
		echo "make check: $(($(date +%s) - $(cat "$B/check-start"))) s" \
			"in all, builds included"
	fi
	exit $rc
	;;
*)
	echo "usage: tools/check.sh test SUITE BINARY | stage SUITE CMD... | table" >&2
	exit 2
	;;
esac
