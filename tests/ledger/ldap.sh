#!/bin/bash
# tests/ledger/ldap.sh - the LDAP ledger against a throwaway slapd loaded with
# conf/schema/rotagate.schema and the ACL example conf/schema/rotagate-acl.conf:
#  - the behaviour tests of test_ledger, on the ldap backend (SASL EXTERNAL);
#  - race: 16 processes x 4 threads, 400 people, capacity 100, bound as a
#    door controller's service account: exactly 100, every ADMITTED stored;
#  - two controllers (separate configs and bind identities, separate
#    processes) admitting the same people: never more than capacity together;
#  - crash: clients SIGKILLed mid-admission lose no received ADMITTED;
#  - the ACL example: a controller may write the ledger and nothing else;
#  - conf/schema/rotagate.ldif loads into a cn=config directory.
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"
: "${SLAPD:=/usr/sbin/slapd}"
[ -x "$SLAPD" ] || { echo "no slapd: skipped"; exit 77; }
. "$top_srcdir/tests/fixtures/slapd.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/rg-ledger-ldap.XXXXXX")
trap 'rg_slapd_stop "$work/slapd"; rm -rf "$work"' EXIT

RG_SLAPD_SCHEMAS="$top_srcdir/conf/schema/rotagate.schema"
RG_SLAPD_DBEXTRA="$(cat "$top_srcdir/conf/schema/rotagate-acl.conf")"
rg_slapd_start "$work/slapd" "$top_srcdir/tests/fixtures/directory.ldif" \
	"$top_srcdir/tests/ledger/occupancy.ldif"

base="ou=occupancy,$RG_LDAP_BASE"
ctl="ou=controllers,ou=services,$RG_LDAP_BASE"
umask 077
printf 'door-a-secret\n' > "$work/pw-a"
printf 'door-b-secret\n' > "$work/pw-b"
stress="$top_builddir/tests/ledger/ledger-stress"
common=(--backend ldap --uri "$RG_LDAP_URI" --base "$base")

echo "== behaviour (ldap backend)"
RG_TEST_LEDGER_BACKEND=ldap RG_TEST_LEDGER_BASE="$base" "$top_builddir/tests/ledger/test_ledger"

echo "== race"
mkdir "$work/race" "$work/two" "$work/crash"
"$stress" race "${common[@]}" --path "$work/race" --site race \
	--bind-dn "cn=door-a,$ctl" --pwfile "$work/pw-a" \
	--procs 16 --threads 4 --people 400 --capacity 100

echo "== two controllers"
"$stress" race "${common[@]}" --path "$work/two" --site two-controllers \
	--bind-dn "cn=door-a,$ctl" --pwfile "$work/pw-a" \
	--bind-dn2 "cn=door-b,$ctl" --pwfile2 "$work/pw-b" \
	--procs 4 --threads 4 --people 300 --capacity 100 --overlap

echo "== crash"
"$stress" crash "${common[@]}" --path "$work/crash" --site crash --rounds 4

echo "== ACL example"
if ldapmodify -x -H "$RG_LDAP_URI" -D "cn=door-a,$ctl" -w door-a-secret >"$work/acl.out" 2>&1 <<LDIF
dn: uid=alice,ou=people,$RG_LDAP_BASE
changetype: modify
replace: description
description: written by a door controller
LDIF
then
	echo "FAIL: a door controller could write outside ledger.ldap-base" >&2
	exit 1
fi
grep -q "Insufficient access" "$work/acl.out" || { cat "$work/acl.out" >&2; exit 1; }
echo "controller cannot write outside the ledger: ok"

echo "== cn=config form of the schema"
mkdir "$work/cfg"
cat > "$work/config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file://$top_srcdir/conf/schema/rotagate.ldif

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
LDIF
"$SLAPD" -Ta -n0 -F "$work/cfg" -l "$work/config.ldif" >"$work/slapadd.log" 2>&1 ||
	{ cat "$work/slapadd.log" >&2; exit 1; }
"$SLAPD" -Tc -n0 -F "$work/cfg" -o ldif-wrap=no > "$work/cfg.ldif"
# every definition of rotagate.schema is in the loaded cn=config schema
for name in $(sed -n "s/.*NAME '\\([A-Za-z]*\\)'.*/\\1/p" "$top_srcdir/conf/schema/rotagate.schema"); do
	oid=$(grep -B0 "NAME '$name'" "$top_srcdir/conf/schema/rotagate.schema" | sed 's/.*( *\([0-9.]*\) .*/\1/')
	grep -q "( $oid NAME '$name'" "$work/cfg.ldif" || { echo "FAIL: $name ($oid) missing from rotagate.ldif" >&2; exit 1; }
done
echo "rotagate.ldif loads and matches rotagate.schema: ok"
