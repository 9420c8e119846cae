#!/bin/sh
# SPDX-License-Identifier: MIT
# The man pages' lint and installation (the Makefile's check-man, install
# and uninstall).  Pages arrive with @VERSION@ already replaced.
#
#   sh tools/man.sh lint PAGE...            groff -ww -z -man: no warnings;
#                                           each function of include/shmq.map
#                                           on some page's NAME line
#   sh tools/man.sh install MANDIR PAGE...  PAGE.N into MANDIR/manN/, and
#                                           for every other name in its NAME
#                                           section a page ".so manN/PAGE.N"
#   sh tools/man.sh uninstall MANDIR PAGE...
#
# So `man shmq_recv` finds shmq_send(3), which documents it: the names a
# page documents are the ones its NAME line lists, and nothing else.
set -e
cmd=$1; shift

# The names on a page's NAME line: "a, b, c \- summary" -> "a b c".
names() {
	sed -n '/^\.SH NAME/{n;s/ *\\-.*//;s/\\//g;s/,/ /g;p;q;}' "$1"
}

case "$cmd" in
lint)
	rc=0
	for p in "$@"; do
		# -ww: every warning; -z: no output; -t: tbl.  Anything on
		# stderr is a warning.
		out=$(groff -ww -z -t -man "$p" 2>&1) || true
		if [ -n "$out" ]; then
			echo "$p:"; echo "$out"; rc=1
		fi
		[ -n "$(names "$p")" ] || { echo "$p: no NAME line"; rc=1; }
	done
	# Every exported function has a page that names it.
	all=$(for p in "$@"; do names "$p"; done)
	for f in $(sed -n 's/^[[:space:]]*\(shmq_[a-z_]*\);.*/\1/p' \
			include/shmq.map 2>/dev/null); do
		echo " $all " | tr '\n' ' ' | grep -q " $f " ||
			{ echo "include/shmq.map: $f has no man page"; rc=1; }
	done
	[ $rc = 0 ] && echo "man pages: $# page(s), no groff warnings;" \
		"every function of include/shmq.map named in one"
	exit $rc
	;;
install|uninstall)
	dir=$1; shift
	for p in "$@"; do
		base=$(basename "$p"); sec=${base##*.}; page=${base%.*}
		[ $cmd = install ] && install -d "$dir/man$sec"
		for n in $(names "$p"); do
			f="$dir/man$sec/$n.$sec"
			if [ $cmd = uninstall ]; then
				rm -f "$f"
			elif [ "$n" = "$page" ]; then
				install -m 644 "$p" "$f"
			else
				echo ".so man$sec/$page.$sec" > "$f"
				chmod 644 "$f"
			fi
		done
	done
	;;
*)
	echo "usage: tools/man.sh lint PAGE... | install|uninstall MANDIR PAGE..." >&2
	exit 2
	;;
esac
