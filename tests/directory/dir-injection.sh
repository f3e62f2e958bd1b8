#!/bin/bash
# User names from an injection corpus never widen a search: each one is
# either escaped (an exact match that finds nobody) or refused before LDAP
# (bad-input).  A uid made of filter characters is matched literally.
. "$top_srcdir/tests/directory/lib.sh"
start_slapd ldap
export RGT_URI="$RG_LDAP_URI"

hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }
a256=$(printf 'a%.0s' $(seq 256))
a257=$(printf 'a%.0s' $(seq 257))
a300=$(printf 'a%.0s' $(seq 300))

for badge in "" employeeNumber; do
	dt_stop
	if [ -n "$badge" ]; then export RGT_BADGE=$badge; m="badge"; else unset RGT_BADGE; m="uid"; fi
	dt_start
	# escaped: the server is asked for exactly this value, and nobody has it
	for name in '*' ')(' '*)(uid=*' '*)(|(uid=*' '\' '\2a' 'alice*' '*alice' 'al*ce' '(uid=alice)' \
		'alice)(uid=bob' '*)(objectClass=*' 'a\00' "$a256" ' *' '%u' 'ALICE)' '1*' '100*'; do
		dt lookuphex "$(hex "$name")"
		check "$m: '$(printf '%.40s' "$name")' is escaped and matches nobody" match "^not-found .*searches=1 "
	done
	# refused before any search
	for h in "$(hex "$a257")" "$(hex "$a300")" "" ff 616c6963ff65 c0af 616c01 0a 616c6963650a 09 7f c285 \
		1b5b306d 0d; do
		dt lookuphex "$h"
		check "$m: bytes $(printf '%.24s' "$h") refused as bad-input without a search" match "^bad-input .*searches=0 "
	done
done

# a uid literally made of filter characters is found exactly, and only it
dt_stop; unset RGT_BADGE; dt_start
dt lookup 'star*'
check "uid 'star*' matches only that entry" match "^ok .* uid=star\\* dn=uid=star\\*,ou=contractors"
dt lookup 'star'
check "'star' does not match 'star*'" match "^not-found "
dt lookup 'st*'
check "'st*' is not a wildcard" match "^not-found "
dt_stop
finish
