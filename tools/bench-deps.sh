#!/bin/sh
# Install what the benchmark comparison needs besides the build deps:
# ZeroMQ (libzmq3-dev), iceoryx with its C binding and iox-roudi
# (iceoryx, libiceoryx-binding-c-dev), the RabbitMQ and NATS brokers with
# their C clients (rabbitmq-server, librabbitmq-dev, nats-server,
# libnats-dev; all in Debian 12), and gnuplot for the plots.  As root it
# runs apt-get; otherwise it prints the command.
# The benchmark starts private brokers of its own (bench/broker.h), so the
# packages' system services are not wanted: while installing, a temporary
# policy-rc.d (when none exists) keeps invoke-rc.d from starting them, and
# the services are not enabled for boot where systemd runs.
# As root it also raises fs.mqueue.msgsize_max to 65536 (default 8192) so
# that the POSIX mq rows reach 64 KiB messages, when the kernel lets us.
set -e
pkgs="libzmq3-dev iceoryx libiceoryx-binding-c-dev rabbitmq-server
librabbitmq-dev nats-server libnats-dev gnuplot-nox"
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
	policy=/usr/sbin/policy-rc.d
	if [ ! -e $policy ]; then
		trap 'rm -f $policy' EXIT
		printf '#!/bin/sh\n# bench-deps: no service starts while installing\nexit 101\n' > $policy
		chmod 755 $policy
	fi
	apt-get update -qq
	$cmd
	if [ -d /run/systemd/system ]; then
		for s in rabbitmq-server nats-server; do
			case "$need" in *" $s"*)
				systemctl disable --now "$s" >/dev/null 2>&1 || true
				echo "bench-deps: $s's system service disabled (the benchmark runs its own)" ;;
			esac
		done
	fi
else
	echo "bench-deps: all present ($(echo $pkgs))"
fi
f=/proc/sys/fs/mqueue/msgsize_max
if [ -r $f ] && [ "$(cat $f)" -lt 65536 ]; then
	if [ "$(id -u)" = 0 ] && echo 65536 > $f 2>/dev/null; then
		echo "bench-deps: fs.mqueue.msgsize_max raised to 65536"
	else
		echo "bench-deps: fs.mqueue.msgsize_max is $(cat $f): the posix-mq rows stop there"
	fi
fi
