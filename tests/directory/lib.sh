# tests/directory/lib.sh - helpers for the directory tests (sourced).
#
#   dt_start            start rg-dirtool as a coprocess (config from RGT_* env)
#   dt CMD...           send one command, the answer line is in $R
#   dt_stop             quit it
#   check NAME COND...  run COND (a command); count and report a failure
#   match REGEX         does $R match the extended regex?
#   free_port           print a TCP port on 127.0.0.1 nobody listens on
#   field KEY           value of KEY=... in $R
#   finish              print the summary, exit 0/1
# Every script sets T (a temp dir) and calls rg_dir_cleanup from its trap.

set -u
: "${top_srcdir:?}" "${top_builddir:?}"
. "$top_srcdir/tests/fixtures/slapd.sh"

DIRTOOL="$top_builddir/tests/directory/rg-dirtool"
FAILS=0
CHECKS=0
T=$(mktemp -d "${TMPDIR:-/tmp}/rg-dir.XXXXXX")
RG_DIR_PIDS=""
RG_DIR_SLAPDS=""

rg_dir_cleanup() {
	dt_stop 2>/dev/null || true
	for d in $RG_DIR_SLAPDS; do rg_slapd_stop "$d"; done
	for p in $RG_DIR_PIDS; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	if [ "$FAILS" -eq 0 ] && [ -z "${KEEP_TMP:-}" ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap 'rg_dir_cleanup' EXIT
trap 'exit 130' INT TERM

# start slapd in $T/NAME with the sample directory and our extra data
start_slapd() {
	rg_slapd_start "$T/$1" "$top_srcdir/tests/fixtures/directory.ldif" \
		"$top_srcdir/tests/directory/membership.ldif" || exit 99
	RG_DIR_SLAPDS="$RG_DIR_SLAPDS $T/$1"
}

dt_start() {
	coproc DT { exec "$DIRTOOL" 2>>"$T/dirtool.stderr"; }
	DT_PID=$DT_PID
}

dt() {
	R=""
	printf '%s\n' "$*" >&"${DT[1]}"
	if ! IFS= read -r -t 60 R <&"${DT[0]}"; then
		R="(no answer from rg-dirtool)"
	fi
	echo "  > $* => $R" >>"$T/transcript"
}

dt_stop() {
	if [ -n "${DT_PID:-}" ]; then
		printf 'quit\n' >&"${DT[1]}" 2>/dev/null || true
		wait "$DT_PID" 2>/dev/null
		_rc=$?
		DT_PID=""
		if [ "$_rc" -ne 0 ]; then
			echo "FAIL: rg-dirtool exited with status $_rc"
			cat "$T/dirtool.stderr" 2>/dev/null
			FAILS=$((FAILS + 1))
		fi
	fi
}

match() { printf '%s\n' "$R" | grep -Eq -- "$1"; }

field() { printf '%s\n' "$R" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

check() {
	_name=$1; shift
	CHECKS=$((CHECKS + 1))
	if "$@"; then
		echo "ok   - $_name"
	else
		echo "FAIL - $_name  [last answer: $R]"
		FAILS=$((FAILS + 1))
	fi
}

lt() { [ "$1" -lt "$2" ]; }
not() { ! "$@"; }
ge() { [ "$1" -ge "$2" ]; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

finish() {
	echo "$CHECKS checks, $FAILS failed"
	[ "$FAILS" -eq 0 ] && exit 0
	echo "--- transcript"; cat "$T/transcript" 2>/dev/null
	exit 1
}
