#!/bin/sh
# syslog-ng goes away WHILE 4 threads are sending a 2,000-record run (paced,
# 1 ms between records per thread) and comes back a bit later, the run still
# going: stopped (SIGTERM) with the unix datagram and the tcp target, killed
# (SIGKILL) with the unix stream and the tcp target.  Afterwards, once the
# calls that went on have sent again what syslog-ng may not have written
# and replayed the spool (the rest at rg_audit_flush, as rg_audit_free and
# rotagate_close do), for the run's process, in audit.json (the shipped
# include):
#   - every record is there: nothing lost, not even what syslog-ng had in
#     its socket or had read but not written out when it went away;
#   - none twice: the copies sent again are dropped by the include
#     (rotagate-dedup), also those that arrive after the restart; how many
#     syslog-ng received (raw.log) is printed;
#   - seq only increases in arrival order, with no gap;
#   - the sender lost nothing, spooled records while syslog-ng was away,
#     and the audit.replayed records say how many were replayed.
. "$top_srcdir/tests/audit/audit-lib.sh"
ra_init midrun

mono_us() { # CLOCK_MONOTONIC in us, as audit-driver's results
	python3 -c 'import time; print(int(time.monotonic() * 1000000))'
}

run() { # NAME TARGET FORMAT TERM|KILL
	ra_driver_start "$2" "$3" "$RA_T/spool-$1"
	hold=$RA_T/hold-$1
	: >"$hold"
	seen=$(wc -l <"$RG_SYSLOG_JSON")
	echo "emit 2000 4 1000 $hold" >&3
	RA_ANSWERS=$((RA_ANSWERS + 1))
	rg_syslog_wait_lines "$RG_SYSLOG_JSON" $((seen + 300)) 30 || ra_fail "$1: the run did not start"
	t_signal=$(mono_us)
	if [ "$4" = KILL ]; then ra_syslog_kill; else rg_syslog_stop "$RA_T/sng"; fi
	t_gone=$(mono_us)
	sleep 0.3 # records go on: to the spool
	rg_syslog_start "$RA_T/sng" || ra_fail "$1: syslog-ng did not restart"
	sleep 0.2 # records go on: their calls replay the spool
	[ "$(wc -l <"$RA_T/driver.out")" -lt $RA_ANSWERS ] || ra_fail "$1: the run ended before syslog-ng came back"
	rm -f "$hold"
	rg_syslog_wait_lines "$RA_T/driver.out" $RA_ANSWERS 120 || ra_fail "$1: the run did not end"
	ans=$(sed -n "${RA_ANSWERS}p" "$RA_T/driver.out")
	echo "$1: $ans (syslog-ng signalled at $t_signal, gone at $t_gone)"
	set -- "$@" $ans # 5 emitted 6 N 7 delivered 8 D 9 spooled 10 S 11 lost 12 L
	[ "${12}" = 0 ] || ra_fail "$1: records lost by the sender: $ans"
	[ "$8" -gt 0 ] && [ "${10}" -gt 0 ] || ra_fail "$1: syslog-ng was not stopped during sending: $ans"
	ra_cmd results "$RA_T/results-$1"
	ra_cmd flush 10000
	[ "$RA_ANSWER" = "flush 0" ] || ra_fail "$1: the spool did not drain"
	ra_driver_stop
	ra_check --pid "$RA_PID" --records 2000 --results "$RA_T/results-$1" \
		--stopped "$t_signal,$t_gone" --raw "$RG_SYSLOG_RAW" --replayed-sum "${10}" \
		--format "$3" --wait 20 || ra_fail "$1"
}

run dgram-term "unix:$RG_SYSLOG_SOCKET" rfc3164 TERM
run stream-kill "unix:$RG_SYSLOG_STREAM" rfc3164 KILL
run tcp-term "tcp:127.0.0.1:$RG_SYSLOG_TCP_PORT" rfc3164 TERM
run tcp-kill "tcp:127.0.0.1:$RG_SYSLOG_TCP_PORT" rfc5424 KILL
