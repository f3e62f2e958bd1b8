#!/bin/sh
# syslog-ng stopped for part of a run and restarted: every record arrives,
# in order, none twice; the records that waited in the spool come first,
# then one audit.replayed saying how many.  For a datagram and a tcp target.
. "$top_srcdir/tests/audit/audit-lib.sh"
ra_init restart

run() { # NAME TARGET FORMAT
	spool=$RA_T/spool-$1/sub
	ra_driver_start "$2" "$3" "$spool"
	ra_cmd emit 300 2; ans=$RA_ANSWER
	case $ans in *" lost 0") ;; *) ra_fail "$1: before: $ans" ;; esac
	ra_cmd flush 10000; [ "$RA_ANSWER" = "flush 0" ] || ra_fail "$1: the spool did not drain"
	ra_check --pid "$RA_PID" --records 300 --wait 20 >/dev/null || ra_fail "$1: first part"

	rg_syslog_stop "$RA_T/sng"
	ra_cmd emit 300 2; ans=$RA_ANSWER
	[ "$ans" = "emitted 300 delivered 0 spooled 300 lost 0" ] || ra_fail "$1: while down: $ans"
	[ "$(stat -c %a "$spool")" = 700 ] || ra_fail "$1: spool directory is not 0700"

	rg_syslog_start "$RA_T/sng" || ra_fail "$1: syslog-ng did not restart"
	ra_cmd emit 300 2; ans=$RA_ANSWER
	case $ans in *" lost 0") ;; *) ra_fail "$1: after: $ans" ;; esac
	ra_cmd flush 10000; [ "$RA_ANSWER" = "flush 0" ] || ra_fail "$1: the spool did not drain"
	ra_driver_stop
	ra_check --pid "$RA_PID" --records 900 --replayed 300 --wait 20 || ra_fail "$1"
	# the 300 records that waited in the spool (i = 300..599) all arrived
	# before the audit.replayed that reports them
	python3 - "$RG_SYSLOG_JSON" "$RA_PID" <<'PY' || ra_fail "$1: order around audit.replayed"
import json, sys
ev = [r["rotagate"] for r in map(json.loads, open(sys.argv[1]))
      if r["rotagate"].get("pid") == sys.argv[2]]
k = next(n for n, r in enumerate(ev) if r["event"] == "audit.replayed" and int(r["count"]) >= 300)
before = {int(r["i"]) for r in ev[:k] if r["event"] == "test.record"}
assert set(range(600)) <= before, "spooled records not before audit.replayed"
PY
}

run dgram "unix:$RG_SYSLOG_SOCKET" rfc3164
run tcp "tcp:127.0.0.1:$RG_SYSLOG_TCP_PORT" rfc5424
