#!/bin/bash
# Failover along the uri list: a first URI that refuses connections, and one
# that accepts but never answers (plain, StartTLS and ldaps), cost at most
# `timeout` + a margin before the second answers; the session then stays on
# the second (and so does a new session on the same target: the backoff is
# shared), and moves back to the first URI once it is back.
. "$top_srcdir/tests/directory/lib.sh"
start_slapd a
A_URI=$RG_LDAP_URI
export RGT_TIMEOUT=2 RGT_TLS=none RGT_INSECURE=1
BOUND=3500   # timeout + 1.5 s: a functional bound, not a benchmark

# ---- connection refused
dead=$(free_port)
export RGT_URI="ldap://127.0.0.1:$dead $A_URI"
dt_start
dt lookup alice
check "refused first URI: lookup succeeds via the second" match "^ok .* uid=alice "
check "refused first URI: answered via the second URI" [ "$(field uri)" = "$A_URI" ]
check "refused first URI: within the bound (${BOUND} ms)" lt "$(field ms)" "$BOUND"
dt lookup bob
check "refused first URI: next lookup stays on the second, fast" match "^ok .* uid=bob "
check "refused first URI: no new wait" lt "$(field ms)" 1000
dt_stop

# ---- accepts, never answers
python3 "$top_srcdir/tests/directory/blackhole.py" "$T/bh.port" &
RG_DIR_PIDS="$RG_DIR_PIDS $!"
for i in $(seq 100); do [ -s "$T/bh.port" ] && break; sleep 0.05; done
bh=$(cat "$T/bh.port")

# (a long backoff: the checks below must not race its end)
export RGT_BACKOFF_MIN_MS=30000 RGT_BACKOFF_MAX_MS=60000
for mode in plain starttls ldaps; do
	case $mode in
	plain) export RGT_TLS=none RGT_URI="ldap://127.0.0.1:$bh $A_URI" ;;
	starttls) export RGT_TLS=starttls RGT_URI="ldap://127.0.0.1:$bh $A_URI" ;;
	ldaps) export RGT_TLS=none RGT_URI="ldaps://127.0.0.1:$bh $A_URI" ;;
	esac
	dt_start
	dt lookup alice
	check "silent first URI ($mode): lookup succeeds via the second" match "^ok .* uid=alice "
	check "silent first URI ($mode): within the bound (${BOUND} ms)" lt "$(field ms)" "$BOUND"
	check "silent first URI ($mode): the first was really tried (waited >= 1.5 s)" ge "$(field ms)" 1500
	dt lookup bob
	check "silent first URI ($mode): next lookup does not wait again" lt "$(field ms)" 1000
	# a new session on the same target (the api layer's pool grows): the
	# backoff is shared, so it does not pay the timeout again either
	dt fresh
	dt lookup carol
	check "silent first URI ($mode): a new session on the target succeeds" match "^ok .* uid=carol "
	check "silent first URI ($mode): a new session does not wait again" lt "$(field ms)" 1000
	dt_stop
done
unset RGT_BACKOFF_MIN_MS RGT_BACKOFF_MAX_MS
export RGT_TLS=none

# ---- back to the preferred URI once it answers again
bport=$(free_port)
export RGT_URI="ldap://127.0.0.1:$bport $A_URI" RGT_PREFER_MS=300 RGT_BACKOFF_MIN_MS=100 RGT_BACKOFF_MAX_MS=200
dt_start
dt lookup alice
check "preferred URI down: served by the second" [ "$(field uri)" = "$A_URI" ]
RG_SLAPD_URLS="ldap://127.0.0.1:$bport/" start_slapd b
RG_LDAP_URI=$A_URI
dt sleep 400
dt lookup alice
check "preferred URI back: lookup succeeds" match "^ok .* uid=alice "
check "preferred URI back: the session moved back to it" [ "$(field uri)" = "ldap://127.0.0.1:$bport" ]
dt_stop
finish
