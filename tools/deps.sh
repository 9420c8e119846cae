#!/bin/sh
# Install the Debian packages shmq needs to build and test, when missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -e
need=""
# clang-14 + libclang-rt-14-dev: libFuzzer (make fuzz); spin: the models.
PKGS="build-essential pkg-config liburcu-dev libcmocka-dev clang-14 libclang-rt-14-dev spin python3"
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		need="$need $p"
done
if [ -z "$need" ]; then
	echo "deps: all present ($PKGS)"
	exit 0
fi
cmd="apt-get install -y --no-install-recommends$need"
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$need"
	echo "deps: run as root: apt-get update && $cmd"
	exit 1
fi
echo "deps: installing:$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
