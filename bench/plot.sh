#!/bin/sh
# bench/plot.sh DIR - PNG plots from the CSV files bench/run.sh wrote:
#   DIR/latency.png          round-trip percentiles per mechanism (64 B)
#   DIR/latency-size.png     median round trip against message size
#   DIR/throughput-size.png  1:1 messages/s against message size
#   DIR/throughput-pc.png    shmq messages/s against producers x consumers
#   DIR/throughput-batch.png shmq messages/s against batch size
#   DIR/route.png            publish cost, route cache miss and hit,
#                            against the number of bindings
#   DIR/fanout.png           ns per message against fanout width: one
#                            publish, and one shmq_send() to each queue
set -eu
d=$1
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# latency.csv: size,case,samples,median_ns,mean_ns,p90_ns,p99_ns,p999_ns,...
lsize=64
grep -q '^64,' "$d/latency.csv" || lsize=$(sed -n 2p "$d/latency.csv" | cut -d, -f1)
awk -F, -v s="$lsize" '$1 == s && $4 != "" { print $2, $4, $6, $7, $8 }' \
	"$d/latency.csv" > "$t/lat.dat"
cases=$(awk -F, 'NR > 1 && $4 != "" { print $2 }' "$d/latency.csv" | awk '!seen[$0]++')
for c in $cases; do
	awk -F, -v c="$c" '$2 == c && $4 != "" { print $1, $4 }' "$d/latency.csv" \
		> "$t/lat-$c.dat"
done
# throughput.csv: size,producers,consumers,case,batch,msgs_per_s,...
tcases=$(awk -F, 'NR > 1 && $6 != "" { print $4 }' "$d/throughput-size.csv" | awk '!seen[$0]++')
for c in $tcases; do
	awk -F, -v c="$c" '$4 == c && $6 != "" { print $1, $6 }' \
		"$d/throughput-size.csv" > "$t/tp-$c.dat"
done
awk -F, 'NR > 1 && $6 != "" { print $2 "x" $3, $4, $6 }' "$d/throughput-pc.csv" \
	> "$t/pc.dat"
awk -F, 'NR > 1 && $6 != "" && $4 ~ /batch/ { print $5, $6 }' \
	"$d/throughput-batch.csv" > "$t/batch.dat"
unb=$(awk -F, 'NR > 1 && $4 == "shmq" { print $6; exit }' "$d/throughput-batch.csv")
machine=$(sed -n 2p "$d/machine.txt" | sed 's/^# //')

lat_plots=
for c in $cases; do
	lat_plots="$lat_plots${lat_plots:+, }'$t/lat-$c.dat' using 1:2 with linespoints title '$c'"
done
tp_plots=
for c in $tcases; do
	tp_plots="$tp_plots${tp_plots:+, }'$t/tp-$c.dat' using 1:2 with linespoints title '$c'"
done
pcs=$(awk '{ print $1 }' "$t/pc.dat" | awk '!seen[$0]++')
pc_cols=
for c in shmq shmq-batch32 shmq-zc; do
	awk -v c="$c" '$2 == c { print $1, $3 }' "$t/pc.dat" > "$t/pc-$c.dat"
done

gnuplot <<EOF
set terminal pngcairo size 1000,560 font 'sans,10'
set grid ytics
set key outside right top

set output '$d/latency.png'
set title "Round-trip latency, $lsize-byte messages, two processes on two CPUs\n$machine" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'round trip (ns, log scale)'
set xtics rotate by -35 noenhanced
plot '$t/lat.dat' using 2:xtic(1) title 'median', '' using 3 title 'p90', \
     '' using 4 title 'p99', '' using 5 title 'p99.9'

set output '$d/latency-size.png'
set title "Median round trip against message size\n$machine" noenhanced
set style data linespoints
unset style
set logscale xy 2
set format x '%.0s%cB'
set xtics norotate
set ylabel 'median round trip (ns, log scale)'
set xlabel 'message size (bytes)'
plot $lat_plots

set output '$d/throughput-size.png'
set title "Throughput, 1 producer -> 1 consumer process, against message size\n$machine" noenhanced
set ylabel 'messages/s (log scale)'
set format y '%.0s%c'
plot $tp_plots

set output '$d/throughput-batch.png'
set title "shmq batched throughput (64 B, 1 -> 1) against batch size\n$machine" noenhanced
set logscale x 2
unset logscale y
set format x '%g'
set xlabel 'batch size (messages per call)'
set ylabel 'messages/s'
set yrange [0:*]
plot '$t/batch.dat' using 1:2 with linespoints title 'shmq-batchN', \
     ${unb:-0} with lines dashtype 2 title 'shmq unbatched'

set output '$d/throughput-pc.png'
set title "shmq throughput (64 B) against producers x consumers processes\n$machine" noenhanced
unset logscale
set yrange [0:*]
set format y '%.0s%c'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xlabel 'producers x consumers'
set ylabel 'messages/s'
plot '$t/pc-shmq.dat' using 2:xtic(1) title 'shmq', \
     '$t/pc-shmq-batch32.dat' using 2 title 'shmq-batch32', \
     '$t/pc-shmq-zc.dat' using 2 title 'shmq-zc'
EOF
plots="$d/latency.png $d/latency-size.png $d/throughput-size.png $d/throughput-batch.png $d/throughput-pc.png"

# route.csv: type,bindings,samples,miss_median_ns,miss_p99_ns,...,
# hit_median_ns,hit_p99_ns,build_s,heap_bytes
if [ -f "$d/route.csv" ]; then
	rplots=
	for ty in topic direct; do
		awk -F, -v t="$ty" '$1 == t { print $2, $4, $5, $8 }' \
			"$d/route.csv" > "$t/route-$ty.dat"
		[ -s "$t/route-$ty.dat" ] || continue
		f="$t/route-$ty.dat"
		rplots="$rplots${rplots:+, }'$f' using 1:2 with linespoints title '$ty miss median', '$f' using 1:3 with linespoints dashtype 2 title '$ty miss p99', '$f' using 1:4 with linespoints title '$ty hit median'"
	done
	if [ -n "$rplots" ]; then
		gnuplot <<EOF
set terminal pngcairo size 1000,560 font 'sans,10'
set grid ytics
set key outside right top
set output '$d/route.png'
set title "shmq_publish(), 64 B: route cache miss (first publish after a binding change) and hit\n$machine" noenhanced
set logscale xy 10
set xlabel 'bindings on the exchange'
set ylabel 'one publish call (ns, log scale)'
plot $rplots
EOF
		plots="$plots $d/route.png"
	fi
fi

# fanout.csv: case,queues,msgs_per_s,deliveries_per_s,ns_per_msg,cpu_ns,
# cpu_ns_per_queue,ratio_send,waits_per_1k,solo_ns,solo_ns_per_queue,
# solo_ratio_send,ratio_sends,solo_ratio_sends,sleeps_per_1k; case is
# fanout (one publish to N queues) or sends (one shmq_send() to each).
if [ -f "$d/fanout.csv" ] && grep -q '^fanout,' "$d/fanout.csv" &&
   grep -q '^sends,' "$d/fanout.csv"; then
	awk -F, '$1 == "fanout" { print $2, $6, $10 }' "$d/fanout.csv" \
		| sort -n > "$t/fanout.dat"
	awk -F, '$1 == "sends" { print $2, $6, $10 }' "$d/fanout.csv" \
		| sort -n > "$t/sends.dat"
	gnuplot <<EOF
set terminal pngcairo size 1000,560 font 'sans,10'
set grid ytics
set key outside right top
set output '$d/fanout.png'
set title "Fanout, 64 B: the producer's cost per message (one publish, or one shmq_send() to each queue)\n$machine" noenhanced
set xlabel 'queues (each drained by its own process)'
set termoption noenhanced
set ylabel 'ns per message (log scale)'
set logscale x 2
set logscale y 10
set xrange [0.8:20]
plot '$t/fanout.dat' using 1:2 with linespoints lc 1 title 'publish, streaming: producer CPU', \
     '$t/sends.dat' using 1:2 with linespoints lc 1 dashtype 2 title 'N x shmq_send, streaming: producer CPU', \
     '$t/sends.dat' using 1:(1.5 * \$2) with lines lc 1 dashtype 3 title 'goal: 1.5 x N sends (streaming)', \
     '$t/fanout.dat' using 1:3 with linespoints lc 2 title 'publish, solo: one process', \
     '$t/sends.dat' using 1:3 with linespoints lc 2 dashtype 2 title 'N x shmq_send, solo', \
     '$t/sends.dat' using 1:(1.5 * \$3) with lines lc 2 dashtype 3 title 'goal: 1.5 x N sends (solo)'
EOF
	plots="$plots $d/fanout.png"
fi
echo "plots: $plots"
