#!/bin/sh
# 2,000 records from 4 threads arrive at a real syslog-ng exactly once, parsed
# into rotagate.* fields, with no seq gap - for every target and format:
# unix datagram, unix stream, tcp (octet counting); rfc3164 and rfc5424.
. "$top_srcdir/tests/audit/audit-lib.sh"
ra_init once

run() { # NAME TARGET FORMAT
	ra_driver_start "$2" "$3" "$RA_T/spool-$1"
	ra_cmd emit 2000 4; ans=$RA_ANSWER
	echo "$1: $ans"
	case $ans in *" lost 0") ;; *) ra_fail "$1: records lost: $ans" ;; esac
	ra_cmd flush 10000; [ "$RA_ANSWER" = "flush 0" ] || ra_fail "$1: the spool did not drain"
	ra_driver_stop
	ra_check --pid "$RA_PID" --records 2000 --format "$3" --wait 20 || ra_fail "$1"
}

run dgram-3164 "unix:$RG_SYSLOG_SOCKET" rfc3164
run dgram-5424 "unix:$RG_SYSLOG_SOCKET" rfc5424
run stream-3164 "unix:$RG_SYSLOG_STREAM" rfc3164
run tcp-3164 "tcp:127.0.0.1:$RG_SYSLOG_TCP_PORT" rfc3164
run tcp-5424 "tcp:127.0.0.1:$RG_SYSLOG_TCP_PORT" rfc5424
# a distribution's /dev/log source parses everything as rfc3164: the shipped
# snippet still finds the rfc5424 structured data
run plain-5424 "unix:$RG_SYSLOG_PLAIN" rfc5424
