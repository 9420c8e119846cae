#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages shmq needs, when missing.  As root it runs
# apt-get; otherwise it prints one line naming the missing packages and the
# exact command, and fails.  make deps, make demo and make check all use it
# (make demo and make check before they compile anything).
#
#   sh tools/deps.sh [--quiet] [build | all]
#
#   build  what the library, mqctl and make demo need
#   all    also what make check needs (the default; make deps)
#   --quiet  say nothing when nothing is missing
set -e
quiet=0
[ "$1" = --quiet ] && { quiet=1; shift; }
set_=${1:-all}

# build-essential: cc, make; pkg-config: the flags of liburcu and cmocka;
# liburcu-dev: futexes, cpu_relax, the RCU hash table.
BUILD="build-essential pkg-config liburcu-dev"
# libcmocka-dev: the tests; clang-14 + libclang-rt-14-dev: libFuzzer
# (make fuzz, the fuzz stage of make check); spin: the models; python3:
# test_mqctl's JSON checks and the SPSC model; groff-base: the man pages'
# lint; libnats-dev + nats-server: mqbridge and test_bridge (real servers).
CHECK="libcmocka-dev clang-14 libclang-rt-14-dev spin python3 groff-base"
CHECK="$CHECK libnats-dev nats-server"

case "$set_" in
build) PKGS=$BUILD ;;
all) PKGS="$BUILD $CHECK" ;;
*) echo "usage: tools/deps.sh [--quiet] [build | all]" >&2; exit 2 ;;
esac

need=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		need="$need $p"
done
if [ -z "$need" ]; then
	[ $quiet = 1 ] || echo "deps: all present ($PKGS)"
	exit 0
fi
cmd="apt-get install -y --no-install-recommends$need"
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$need; as root run: apt-get update && $cmd" >&2
	exit 1
fi
echo "deps: installing:$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
