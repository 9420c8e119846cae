#!/bin/sh
# bench/run.sh - the whole benchmark in one command (make bench, make
# bench-quick, and the smoke run of make check).
#
#   sh bench/run.sh [--quick | --smoke] [--out DIR] [--bin DIR] [--no-plots]
#
# Runs, in this order, each in one process so that every figure has its
# comparison measured side by side:
#   1. bench_pingpong    latency of every mechanism, every size
#   2. bench_throughput  1:1 throughput of every mechanism, every size
#   3. bench_throughput  shmq batch sizes 1-256 (64 B)
#   4. bench_throughput  shmq with P producers x C consumers (64 B), from
#                        1x1 up to nproc x nproc and oversubscribed
#   5. bench_route       publish through an exchange: route cache miss
#                        against hit, at 10 to 100,000 bindings
#   6. bench_fanout      fanout to 1-16 queues, each drained by its own
#                        process, against a plain shmq_send() loop
#   7. bench_ack         shmq_fetch + shmq_ack against shmq_recv at 1:1
#                        and 1:3 (64 B), and the time from SIGKILL of a
#                        worker holding a job (fetched, acquired) to its
#                        arrival at a waiting worker
#   8. bench_bridge      a queue of segment A through two mqbridge
#                        processes and nats-server -js to a queue of
#                        segment B, against JetStream async publish and
#                        NATS request/reply (built with libnats only)
# then writes the CSV files, draws the PNG plots with gnuplot (when
# installed), and repeats the GOAL lines (the latency, throughput,
# exchange, acknowledged-delivery and bridge goals).
# --smoke: a tiny workload that proves every case runs and cleans up
# (no figure means anything; no timing is checked); it also checks that
# nothing was left in /dev/shm, /tmp or the POSIX mq filesystem, and that
# no server the programs started still runs.  It skips RabbitMQ, whose
# broker takes seconds to start; NATS starts in a fraction of one.
set -eu

# A program that fails fails the run (sh has no pipefail): run PROG ARGS...
# In a smoke run the workload is far too small for any figure to mean
# something, so the goal verdicts are cut from what it shows and keeps:
# GOAL lines, the tables' goal column, SUMMARY's goal= and met=.
run() {
	name=$1; shift
	{ "$@"; echo $? > "$out/$name.rc"; } | verdicts | tee "$out/$name.txt"
	[ "$(cat "$out/$name.rc")" = 0 ] || { echo "run.sh: $name failed" >&2; exit 1; }
}

verdicts() {
	if [ "$mode" = smoke ]; then
		sed -E -e '/^GOAL /d' -e 's/ goal=[^ ]* met=[^ ]*//' \
			-e 's/ +(<=|>=) [0-9.]+x? (ok|MISSED)$//' -e 's/ +goal$//'
	else
		cat
	fi
}

mode=full
out=
bin=build/bench
plots=1
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) mode=quick ;;
	--smoke) mode=smoke ;;
	--out) out="$2"; shift ;;
	--bin) bin="$2"; shift ;;
	--no-plots) plots=0 ;;
	-h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$out" ] || out=build/bench-results/$mode
mkdir -p "$out"
rm -f "$out"/*.csv "$out"/*.png "$out"/*.txt "$out"/*.log "$out"/*.rc

flag=
[ "$mode" = full ] || flag=--$mode
n=$(nproc)
# 1x1 .. n x n (at most 4 each), then oversubscribed 2n x 2n (at most 4x4).
pcs=
p=1
while [ $p -le "$n" ] && [ $p -le 4 ]; do
	c=1
	while [ $c -le "$n" ] && [ $c -le 4 ]; do
		pcs="$pcs${pcs:+,}${p}x$c"
		c=$((c * 2))
	done
	p=$((p * 2))
done
o=$((2 * n))
[ $o -le 4 ] || o=4
case ",$pcs," in *",${o}x$o,"*) ;; *) pcs="$pcs,${o}x$o" ;; esac
batches=1,2,4,8,16,32,64,128,256
[ "$mode" = smoke ] && { pcs="1x2,2x1,2x2"; batches=1,32,256; }

# Leftovers check (smoke): each program prints "scratch names: bench.PID";
# nothing of that PID may remain (other engineers' runs may well exist),
# no server it started ("... started for this run (pid N") may still
# run, and iox-roudi's files must be as before.
leftovers() {
	for pid in $(sed -n 's/.*(scratch names: bench\.\([0-9]*\)).*/\1/p' \
			"$out"/*.txt); do
		ls -d /dev/shm/shmq.bench.$pid /dev/shm/shmq.bench.$pid.* \
			/tmp/shmqbench.$pid.* \
			/dev/mqueue/shmqbench.$pid.* 2>/dev/null || true
	done
	for pid in $(sed -n 's/.* started for this run (pid \([0-9]*\).*/\1/p' \
			"$out"/*.txt); do
		! kill -0 "$pid" 2>/dev/null || echo "server process $pid"
	done
}
roudi_files() {
	ls -d /tmp/roudi /dev/shm/iceoryx_mgmt 2>/dev/null || true
}
before=$(roudi_files)
start=$(date +%s)

{
	echo "# shmq benchmark, mode $mode, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "# nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); kernel $(uname -r)"
} > "$out/machine.txt"
cat "$out/machine.txt"

run pingpong "$bin/bench_pingpong" $flag --out "$out"
run throughput-size "$bin/bench_throughput" $flag --out "$out" --tag size
run throughput-batch "$bin/bench_throughput" $flag --out "$out" --tag batch \
	--sizes 64 --only shmq,shmq-batch --batches "$batches"
run throughput-pc "$bin/bench_throughput" $flag --out "$out" --tag pc \
	--sizes 64 --only shmq,shmq-batch,shmq-zc --batches 32 --pc "$pcs"
run route "$bin/bench_route" $flag --out "$out"
run fanout "$bin/bench_fanout" $flag --out "$out"
run ack "$bin/bench_ack" $flag --out "$out"
ncases=7
if [ -x "$bin/bench_bridge" ] && command -v nats-server >/dev/null 2>&1; then
	run bridge "$bin/bench_bridge" $flag --out "$out"
	ncases=8
else
	echo "bench_bridge: skipped: needs libnats-dev (at build time) and" \
		"nats-server (make deps)" | tee "$out/bridge.txt"
fi

if [ "$mode" = smoke ]; then
	left=$(leftovers)
	after=$(roudi_files)
	if [ -n "$left" ] || [ "$before" != "$after" ]; then
		echo "run.sh: the benchmarks left objects behind:" >&2
		echo "$left" "$after" >&2
		exit 1
	fi
	echo "bench smoke: every case ran and cleaned up (a tiny workload: no figure is judged)"
	echo "$ncases passed, 0 failed"
	exit 0
fi

if [ "$plots" = 1 ] && command -v gnuplot >/dev/null 2>&1; then
	sh "$(dirname "$0")/plot.sh" "$out"
elif [ "$plots" = 1 ]; then
	echo "run.sh: gnuplot not installed (make bench-deps): no plots"
fi

echo
echo "== the goals (64-byte messages; each against its baseline in the same run) =="
cat "$out"/pingpong.txt "$out"/throughput-size.txt "$out"/fanout.txt \
	"$out"/ack.txt "$out"/bridge.txt | grep '^GOAL' \
	| tee "$out/goals.txt"
echo "results: $out ($(($(date +%s) - start)) s)"
