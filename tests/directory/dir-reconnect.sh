#!/bin/bash
# slapd stopped mid-run: lookups fail fast with "unavailable" (and the session
# reports down), without killing the process by SIGPIPE; once the same slapd
# is back, the same session reconnects and answers again.
. "$top_srcdir/tests/directory/lib.sh"
start_slapd s
export RGT_URI="$RG_LDAP_URI" RGT_TIMEOUT=2 RGT_BACKOFF_MIN_MS=200 RGT_BACKOFF_MAX_MS=400
dt_start
dt lookup alice
check "before: alice found" match "^ok .* uid=alice "
dt up
check "before: session is up" match "^up 1$"

rg_slapd_stop "$T/s"
dt lookup alice
check "slapd gone: unavailable" match "^unavailable "
check "slapd gone: answered quickly (< 1 s)" lt "$(field ms)" 1000
dt up
check "slapd gone: session is down" match "^up 0$"
dt lookup bob
check "slapd gone: next lookup also unavailable, quickly" match "^unavailable .*ms=[0-9]{1,3} "
dt members cn=rota-team-a,ou=groups,dc=example,dc=org
check "slapd gone: members unavailable too" match "^unavailable "

rg_slapd_restart "$T/s" || exit 99
ok=""
for i in $(seq 40); do
	dt lookup alice
	if match "^ok "; then ok=1; break; fi
	dt sleep 100
done
check "slapd back: the same session answers again" [ -n "$ok" ]
check "slapd back: alice with her groups" match "^ok .* uid=alice .*groups=cn=rota-team-a,"
dt up
check "slapd back: session is up" match "^up 1$"

# the server closing an idle connection is not a failure: one silent reconnect
rg_slapd_stop "$T/s"; rg_slapd_restart "$T/s" || exit 99
dt lookup bob
check "restarted while idle: next lookup reconnects transparently" match "^ok .* uid=bob "
dt_stop
finish
