#!/bin/bash
# Two processes admitting different people at the same moment never exceed
# the capacity: 24 eligible people, capacity 10, two concurrent streams.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init twoproc

# 24 more members of team-a
{
	for i in $(seq -w 1 24); do
		printf 'dn: uid=p%s,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: p%s\ncn: P %s\nsn: P\n\n' "$i" "$i" "$i"
	done
} > "$RG_T/people.ldif"
rg_slapd_ldap ldapadd -f "$RG_T/people.ldif" >/dev/null
{
	printf 'dn: cn=rota-team-a,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\n'
	for i in $(seq -w 1 24); do printf 'member: uid=p%s,ou=people,dc=example,dc=org\n' "$i"; done
} | rg_slapd_ldap ldapmodify >/dev/null

CONF="$RG_T/rotagate.conf"
RG_CAPACITY=10 rg_write_config "$CONF" </dev/null

stream() { # stream NAME PEOPLE...
	_name=$1; shift
	for p in "$@"; do
		_line=$("$RG_CTL" -c "$CONF" admit "$p" --door main-entrance --at "2026-06-01 08:55" 2>&1 | head -n1)
		echo "$p $_line" >>"$RG_T/$_name.out"
	done
}
odd=""; even=""
for i in $(seq -w 1 24); do
	if [ $((10#$i % 2)) -eq 1 ]; then odd="$odd p$i"; else even="$even p$i"; fi
done
stream one $odd &
one=$!
stream two $even &
two=$!
wait $one $two   # not a bare wait: slapd and syslog-ng are children too

grants=$(cat "$RG_T/one.out" "$RG_T/two.out" | grep -c ' GRANT reason=rota-day' || true)
fulls=$(cat "$RG_T/one.out" "$RG_T/two.out" | grep -c ' DENY reason=capacity-full' || true)
[ "$grants" -eq 10 ] || { cat "$RG_T"/*.out; rg_fail "$grants grants, expected 10"; }
[ "$fulls" -eq 14 ] || { cat "$RG_T"/*.out; rg_fail "$fulls capacity-full denials, expected 14"; }
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-01 --json --names
granted=$(cat "$RG_T/one.out" "$RG_T/two.out" | awk '$2 == "GRANT" { print $1 }' | sort | tr '\n' ' ')
printf '%s' "$RG_OUT" | python3 -c '
import json,sys
d=json.load(sys.stdin)[0]
assert d["count"]==10 and len(d["admissions"])==10, d
ledger=sorted(a["user"] for a in d["admissions"])
granted=sys.argv[1].split()
assert ledger==granted, (ledger, granted)
' "$granted" || rg_fail "the ledger does not hold exactly the people granted"
echo "PASS"
