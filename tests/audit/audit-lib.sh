# tests/audit/audit-lib.sh - shared by the audit integration tests (POSIX sh).
#
#   ra_init NAME            temp dir $RA_T (removed on success), syslog-ng started
#                           in $RA_T/sng, cleanup on exit
#   ra_driver_start TARGET FORMAT SPOOL|-   start tests/audit/audit-driver;
#                           its process id (the records' pid) in $RA_PID
#   ra_cmd LINE             send a command to the driver; its answer in $RA_ANSWER
#                           (not printed: a $(...) subshell would lose count)
#   ra_driver_stop          quit the driver and wait for it
#   ra_check ARGS...        run check-records.py on $RG_SYSLOG_JSON
#   ra_fail MSG             fail loudly
#   ra_slapd_start          also start the throwaway slapd (tests/fixtures/slapd.sh,
#                           tests/fixtures/directory.ldif) in $RA_T/slapd
#   ra_decide_config FILE TARGET FORMAT DIR   write a config for tests/audit/decide-driver:
#                           rg_write_config's (tests/fixtures/config.sh: site hq,
#                           Europe/London) with audit target TARGET and format FORMAT,
#                           capacity 4, of which 1 reserved for exempt staff,
#                           ledger DIR/ledger (created, mode 700), audit spool DIR/spool
#   ra_syslog_kill          SIGKILL syslog-ng (rg_syslog_start restarts it)

set -u
: "${top_srcdir:?}" "${top_builddir:?}"
. "$top_srcdir/tests/fixtures/syslog-ng.sh"
. "$top_srcdir/tests/fixtures/config.sh"

RA_DRIVER=$top_builddir/tests/audit/audit-driver
RA_DECIDE=$top_builddir/tests/audit/decide-driver
RA_CHECK=$top_srcdir/tests/audit/check-records.py

ra_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

ra__cleanup() {
	_ra_rc=$?
	if [ -n "${RA_DRIVER_PID:-}" ]; then
		kill "$RA_DRIVER_PID" 2>/dev/null
		wait "$RA_DRIVER_PID" 2>/dev/null
	fi
	rg_syslog_stop "$RA_T/sng" >/dev/null 2>&1
	[ -n "${RA_SLAPD:-}" ] && rg_slapd_stop "$RA_T/slapd" >/dev/null 2>&1
	if [ $_ra_rc -ne 0 ] || [ -n "${RG_KEEP:-}" ]; then
		echo "test files kept in $RA_T" >&2
		[ -f "$RA_T/driver.err" ] && sed 's/^/driver: /' "$RA_T/driver.err" >&2
	else
		rm -rf "$RA_T"
	fi
	exit $_ra_rc
}

ra_init() {
	command -v python3 >/dev/null 2>&1 || { echo "python3 missing" >&2; exit 77; }
	[ -n "${SYSLOG_NG:-}" ] && [ -x "$SYSLOG_NG" ] || command -v syslog-ng >/dev/null 2>&1 ||
		{ echo "syslog-ng missing" >&2; exit 77; }
	RA_T=$(mktemp -d "${TMPDIR:-/tmp}/rg-$1.XXXXXX")
	trap ra__cleanup EXIT
	trap 'exit 1' INT TERM
	rg_syslog_start "$RA_T/sng" || ra_fail "syslog-ng fixture did not start"
}

ra_driver_start() {
	rm -f "$RA_T/driver.in"
	mkfifo "$RA_T/driver.in" || ra_fail "mkfifo"
	: >"$RA_T/driver.out"
	"$RA_DRIVER" "$@" <"$RA_T/driver.in" >"$RA_T/driver.out" 2>>"$RA_T/driver.err" &
	RA_DRIVER_PID=$!
	exec 3>"$RA_T/driver.in"
	RA_ANSWERS=1
	rg_syslog_wait_lines "$RA_T/driver.out" 1 30 || ra_fail "driver did not start"
	RA_PID=$(sed -n 's/^pid //p' "$RA_T/driver.out")
}

ra_cmd() {
	echo "$*" >&3
	RA_ANSWERS=$((RA_ANSWERS + 1))
	rg_syslog_wait_lines "$RA_T/driver.out" "$RA_ANSWERS" 60 || ra_fail "driver did not answer '$*'"
	RA_ANSWER=$(sed -n "${RA_ANSWERS}p" "$RA_T/driver.out")
}

ra_driver_stop() {
	ra_cmd quit
	exec 3>&-
	wait "$RA_DRIVER_PID" || ra_fail "driver exited with $?"
	RA_DRIVER_PID=
}

ra_check() {
	python3 "$RA_CHECK" "$RG_SYSLOG_JSON" "$@"
}

ra_slapd_start() {
	[ -x "${SLAPD:-/usr/sbin/slapd}" ] || { echo "slapd missing" >&2; exit 77; }
	. "$top_srcdir/tests/fixtures/slapd.sh"
	RA_SLAPD=1
	rg_slapd_start "$RA_T/slapd" || ra_fail "slapd fixture did not start"
}

ra_decide_config() { # FILE TARGET FORMAT DIR
	mkdir -p -m 700 "$4/ledger" || ra_fail "mkdir $4/ledger"
	(
		unset RG_WEEKLY_TARGET RG_RETAIN_DAYS
		RG_STATE_DIR=$4 RG_AUDIT_TARGET=$2 RG_AUDIT_FORMAT=$3 RG_CAPACITY=4 RG_RESERVED=1
		rg_write_config "$1" </dev/null
	) || ra_fail "could not write $1"
}

ra_syslog_kill() {
	[ -f "$RA_T/sng/fixture.pid" ] || return 0
	_ra_sng=$(cat "$RA_T/sng/fixture.pid")
	rm -f "$RA_T/sng/fixture.pid"
	kill -KILL "$_ra_sng" 2>/dev/null
	wait "$_ra_sng" 2>/dev/null
	return 0
}
