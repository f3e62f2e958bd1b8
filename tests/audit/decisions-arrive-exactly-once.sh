#!/bin/sh
# 2,000 real decisions (rotagate_decide from 4 threads, against a real slapd
# and the LMDB ledger, swipe times passed in) reach a real syslog-ng running
# the shipped snippet exactly once each, parsed into rotagate.* fields, with
# no seq gap, each matching the decision the caller got back field for field:
# grants (rota-day, exempt), re-entries and denials (capacity-full,
# not-on-rota-today, deny-group, unknown-person, unknown-door, bad-input).
# rfc3164 over the unix datagram socket, rfc5424 over tcp.
. "$top_srcdir/tests/audit/audit-lib.sh"
ra_init decisions
ra_slapd_start

WHEN=1780297200 # Monday 2026-06-01 08:00 in Europe/London; decision i swipes at WHEN + i
REASONS=rota-day,exempt,re-entry,capacity-full,not-on-rota-today,deny-group,unknown-person,unknown-door,bad-input

run() { # NAME TARGET FORMAT
	d=$RA_T/$1
	ra_decide_config "$RA_T/$1.conf" "$2" "$3" "$d"
	"$RA_DECIDE" "$RA_T/$1.conf" 2000 4 "$WHEN" >"$d.decisions" 2>>"$RA_T/driver.err" ||
		ra_fail "$1: decide-driver failed"
	[ "$(tail -n 1 "$d.decisions")" = "done 2000" ] || ra_fail "$1: the run did not finish"
	pid=$(sed -n 's/^pid //p' "$d.decisions")
	# rotagate_close() tried to deliver what the spool held; what is left
	# (a slow machine) the next sink on the spool replays, as in production
	k=0
	while [ "$(stat -c %s "$d/spool/audit.spool" 2>/dev/null || echo 0)" -gt 32 ] && [ $k -lt 10 ]; do
		"$RA_DECIDE" "$RA_T/$1.conf" 0 1 "$WHEN" >/dev/null 2>>"$RA_T/driver.err" ||
			ra_fail "$1: decide-driver (replay) failed"
		k=$((k + 1))
	done
	[ "$(stat -c %s "$d/spool/audit.spool" 2>/dev/null || echo 0)" -le 32 ] ||
		ra_fail "$1: the spool did not drain"
	# for the log: the slowest call, and the most any call spent after
	# deciding (the audit record, mostly) when not waiting for a CPU
	awk -F '\t' -v n="$1" 'NF > 2 { if ($17 > m) m = $17; if ($17 - $15 - $18 > a) a = $17 - $15 - $18 }
		END { print n ": slowest rotagate_decide " m " us; at most " a " us of one spent after deciding, on a CPU or waiting" }' "$d.decisions"
	ra_check --pid "$pid" --decisions "$d.decisions" --reasons "$REASONS" --capacity 4 \
		--format "$3" --wait 20 || ra_fail "$1"
}

run dgram-3164 "unix:$RG_SYSLOG_SOCKET" rfc3164
run tcp-5424 "tcp:127.0.0.1:$RG_SYSLOG_TCP_PORT" rfc5424
