#!/bin/sh
# Install what the benchmark comparison needs besides the build deps:
# ZeroMQ (libzmq3-dev), iceoryx with its C binding and iox-roudi
# (iceoryx, libiceoryx-binding-c-dev; both in Debian 12), and gnuplot for
# the plots.  As root it runs apt-get; otherwise it prints the command.
# As root it also raises fs.mqueue.msgsize_max to 65536 (default 8192) so
# that the POSIX mq rows reach 64 KiB messages, when the kernel lets us.
set -e
pkgs="libzmq3-dev iceoryx libiceoryx-binding-c-dev gnuplot-nox"
need=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		need="$need $p"
done
cmd="apt-get install -y --no-install-recommends$need"
if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench-deps: missing:$need"
		echo "bench-deps: run as root: apt-get update && $cmd"
		exit 1
	fi
	echo "bench-deps: installing:$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	$cmd
else
	echo "bench-deps: all present ($pkgs)"
fi
f=/proc/sys/fs/mqueue/msgsize_max
if [ -r $f ] && [ "$(cat $f)" -lt 65536 ]; then
	if [ "$(id -u)" = 0 ] && echo 65536 > $f 2>/dev/null; then
		echo "bench-deps: fs.mqueue.msgsize_max raised to 65536"
	else
		echo "bench-deps: fs.mqueue.msgsize_max is $(cat $f): the posix-mq rows stop there"
	fi
fi
