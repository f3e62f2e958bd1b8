#!/bin/sh
# A user name with ' " \ ; = , newline, ESC, invalid UTF-8, bidi override and
# field-injection attempts yields exactly one record whose fields parse back
# (kv-parser for rfc3164, structured data for rfc5424) to a safe rendering
# that unescapes to exactly the bytes sent.
. "$top_srcdir/tests/audit/audit-lib.sh"
ra_init hostile

# a'b"c\d;e=f, seq='1', pid='2' <NL> ESC[31m \xff \xc3( \x00-free; U+202E; "\x41" literally
user=$(printf "%s" "a'b\"c\\d;e=f, seq='1', pid='2'] [x@1 y=\"z\"]" | od -An -tx1 | tr -d ' \n')
user=${user}0a1b5b33316dffc328e280ae5c783431

run() { # NAME TARGET FORMAT
	ra_driver_start "$2" "$3" -
	ra_cmd hostile "$user"; [ "$RA_ANSWER" = "hostile 0" ] || ra_fail "$1: not delivered"
	ra_driver_stop
	ra_check --pid "$RA_PID" --hostile "$user" --wait 10 || ra_fail "$1"
}

run dgram-3164 "unix:$RG_SYSLOG_SOCKET" rfc3164
run dgram-5424 "unix:$RG_SYSLOG_SOCKET" rfc5424
run tcp-3164 "tcp:127.0.0.1:$RG_SYSLOG_TCP_PORT" rfc3164
run plain-5424 "unix:$RG_SYSLOG_PLAIN" rfc5424
