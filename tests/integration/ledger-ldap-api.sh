#!/bin/bash
# The LDAP ledger (ledger { backend = ldap }) through the decision pipeline,
# against a real slapd loaded with conf/schema/rotagate.schema and the ACL
# example conf/schema/rotagate-acl.conf, and a real syslog-ng:
#  a. two controllers (separate configs, separate service accounts) admitting
#     concurrently never exceed the shared capacity; the LDAP entry, the
#     occupancy command and the grants agree;
#  b. the provider down, a read-only replica answering the directory: the
#     directory still answers, the ledger fails closed (ERROR
#     ledger-unavailable, PAM_SERVICE_ERR, a ledger.error audit record) and
#     nothing is counted on the replica; back to normal once the provider is;
#  c. no ledger server at all while the person is answered from the cache of
#     a long-lived (PAM) process: PAM_SERVICE_ERR and ledger.error records,
#     never a grant, and never a host killed by SIGPIPE;
#  d. a separate ledger server (ledger.uri, ledger.bind-dn,
#     ledger.bind-password-file): the directory is read from one server, the
#     count is written to the other with the ledger's own account (never the
#     directory's: ledger.uri without ledger.bind-dn is refused unless it is
#     ldapi://, which binds with SASL EXTERNAL); a ledger
#     server that accepts and then says nothing fails the decision within the
#     timeout; tls-require-cert = never is refused for a remote ledger server;
#  e. a modify whose response is lost (applied, connection gone) is retried on
#     a new session and reported as the admission it was, not as re-entry.
# Without ledger.uri the ledger uses only the FIRST server of directory.uri
# (never a later one: section b) and the directory's credentials (sections a
# to c).
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
RG_SLAPD_SCHEMAS="$top_srcdir/conf/schema/rotagate.schema"
RG_SLAPD_DBEXTRA="$(cat "$top_srcdir/conf/schema/rotagate-acl.conf")"
rg_test_init ldapledger
PRIMARY_URI=$RG_LDAP_URI
# the replica (section b) is ours to stop; then the fixture's cleanup
# (and the separate ledger server and the silent server of section d)
blackhole_pid= dropproxy_pid=
trap 'rc=$?; set +e; rg_slapd_stop "$RG_T/replica" >/dev/null 2>&1
[ -z "$dropproxy_pid" ] || { kill "$dropproxy_pid"; wait "$dropproxy_pid"; } 2>/dev/null
rg_slapd_stop "$RG_T/ledgersrv" >/dev/null 2>&1
[ -z "$blackhole_pid" ] || { kill "$blackhole_pid"; wait "$blackhole_pid"; } 2>/dev/null
(exit $rc); rg__cleanup' EXIT

# the occupancy container and two door controllers' service accounts
cat > "$RG_T/occupancy.ldif" <<'LDIF'
dn: ou=occupancy,dc=example,dc=org
objectClass: organizationalUnit
ou: occupancy

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: ou=controllers,ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: controllers

dn: cn=door-a,ou=controllers,ou=services,dc=example,dc=org
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: door-a
userPassword: door-a-secret

dn: cn=door-b,ou=controllers,ou=services,dc=example,dc=org
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: door-b
userPassword: door-b-secret
LDIF
rg_slapd_ldap ldapadd -f "$RG_T/occupancy.ldif" >/dev/null
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

( umask 077; printf 'door-a-secret\n' > "$RG_T/pw-a"; printf 'door-b-secret\n' > "$RG_T/pw-b" )

# write_conf FILE NAME URIS CAPACITY: a controller bound as cn=NAME, with its
# own ledger.path (which holds its membership snapshot)
write_conf() {
	_path="$RG_T/ledger-$(basename "$1" .conf)"
	mkdir -p -m 700 "$_path"
	cat > "$1" <<CONF
directory {
  uri = "$3"
  base = "dc=example,dc=org"
  bind-dn = "cn=$2,ou=controllers,ou=services,dc=example,dc=org"
  bind-password-file = "$RG_T/pw-${2#door-}"
  user-filter = "(&(objectClass=inetOrgPerson)(uid=%u))"
  membership = member
  timeout = 2
  tls = none
}
ledger {
  backend = ldap
  ldap-base = "ou=occupancy,dc=example,dc=org"
  path = "$_path"
}
audit {
  target = "unix:$RG_SYSLOG_SOCKET"
  facility = authpriv
  ident = "rotagate"
  spool = "$RG_T/spool"
}
site "hq" {
  timezone = "Europe/London"
  capacity = $4
  doors = { "main-entrance", "side-gate" }
  rota "team-a" {
    group = "cn=rota-team-a,ou=groups,dc=example,dc=org"
    days = { mon, wed, fri }
  }
  rota "team-b" {
    group = "cn=rota-team-b,ou=groups,dc=example,dc=org"
    days = { tue, thu }
  }
  exempt "estates" { group = "cn=facilities,ou=groups,dc=example,dc=org" }
}
CONF
}
jcheck() {
	printf '%s' "$RG_OUT" | python3 -c "
import json, sys
d = json.load(sys.stdin)
$1
" || { printf '%s\n' "$RG_OUT" >&2; rg_fail "JSON check failed: $1"; }
}
# the rgCount of hq's entry for DATE on the server URI (empty: no entry)
ldap_count() {
	ldapsearch -LLL -Q -Y EXTERNAL -H "$1" -b "ou=occupancy,dc=example,dc=org" \
		"(&(objectClass=rgOccupancy)(rgSite=hq)(rgDate=$2))" rgCount | sed -n 's/^rgCount: //p'
}

###########################################################################
echo "== a. two controllers, one count: capacity 10, 26 people, Monday 2026-06-01"
CONF_A="$RG_T/door-a.conf"; CONF_B="$RG_T/door-b.conf"
write_conf "$CONF_A" door-a "$PRIMARY_URI" 10
write_conf "$CONF_B" door-b "$PRIMARY_URI" 10
stream() { # stream CONF OUT PEOPLE...
	_c=$1 _o=$2; shift 2
	for p in "$@"; do
		_line=$("$RG_CTL" -c "$_c" admit "$p" --door main-entrance --at "2026-06-01 08:55" 2>&1 | head -n1)
		echo "$p $_line" >> "$_o"
	done
}
odd=""; even=""
for i in $(seq -w 1 24); do
	if [ $((10#$i % 2)) -eq 1 ]; then odd="$odd p$i"; else even="$even p$i"; fi
done
# alice and frank badge at both controllers at the same moment
stream "$CONF_A" "$RG_T/a.out" alice frank $odd &
sa=$!
stream "$CONF_B" "$RG_T/b.out" frank alice $even &
sb=$!
wait $sa $sb   # not a bare wait: slapd and syslog-ng are children too
cat "$RG_T/a.out" "$RG_T/b.out" > "$RG_T/all.out"
python3 - "$RG_T/all.out" <<'PY' || { cat "$RG_T/all.out" >&2; rg_fail "two controllers: grants"; }
import sys
lines = [l.split(None, 1) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 28, len(lines)
new = [u for u, r in lines if r.startswith("GRANT reason=rota-day ")]
again = [u for u, r in lines if r.startswith("GRANT reason=re-entry ")]
full = [u for u, r in lines if r.startswith("DENY reason=capacity-full ")]
assert len(new) == 10 and len(set(new)) == 10, new
assert len(new) + len(again) + len(full) == 28, [r for u, r in lines]
assert set(again) <= set(new), (again, new)
# nobody is told "full" after being admitted, nor admitted twice as new
assert not set(full) & set(new), (full, new)
# the last grant of a new person reports occupancy <= 10
for u, r in lines:
    if r.startswith("GRANT") or r.startswith("DENY reason=capacity-full"):
        occ = [f for f in r.split() if f.startswith("occupancy=")][0]
        n, cap = occ.split("=")[1].split("/")
        assert cap == "10" and 1 <= int(n) <= 10, r
open(sys.argv[1] + ".granted", "w").write(" ".join(sorted(new)))
PY
granted=$(cat "$RG_T/all.out.granted")
for c in "$CONF_A" "$CONF_B"; do
	rg_expect_exit 0 rg_ctl -c "$c" occupancy --site hq --date 2026-06-01 --json --names
	jcheck "
s = d[0]
assert s['count'] == 10 and s['capacity'] == 10, s
assert sorted(a['user'] for a in s['admissions']) == '$granted'.split(), (s, '$granted')
"
done
[ "$(ldap_count "$PRIMARY_URI" 2026-06-01)" = 10 ] || rg_fail "rgCount on the server is not 10"
n=$(ldapsearch -LLL -Q -Y EXTERNAL -H "$PRIMARY_URI" -b "ou=occupancy,dc=example,dc=org" \
	"(&(rgSite=hq)(rgDate=2026-06-01))" rgAttendee | grep -c '^rgAttendee:' || true)
[ "$n" = 10 ] || rg_fail "$n rgAttendee values, expected 10"
echo "# the full day refuses a newcomer at either controller; re-entry is free"
rg_expect_exit 1 rg_ctl -c "$CONF_B" admit grace --door side-gate --at "2026-06-01 10:00"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=10/10$'
first=${granted%% *}
rg_expect_exit 0 rg_ctl -c "$CONF_B" admit "$first" --door side-gate --at "2026-06-01 12:00"
rg_expect_line '^GRANT reason=re-entry site=hq rule=team-a occupancy=10/10$'
[ "$(ldap_count "$PRIMARY_URI" 2026-06-01)" = 10 ] || rg_fail "rgCount changed"

###########################################################################
echo "== b. provider down, a read-only replica answers: the ledger fails closed"
# the replica: the same schema, directory and ledger container, read-only
# (as a consumer is); nothing replicates into it, nothing may be written
rg_slapd_start "$RG_T/replica" "$top_srcdir/tests/fixtures/directory.ldif" "$RG_T/occupancy.ldif" ||
	rg_fail "replica slapd did not start"
rg_slapd_ldap ldapadd -f "$RG_T/people.ldif" >/dev/null
rg_slapd_stop "$RG_T/replica"
echo "readonly on" >> "$RG_T/replica/slapd.conf"
rg_slapd_restart "$RG_T/replica" || rg_fail "replica slapd did not restart"
REPLICA_URI=$RG_LDAP_URI
RG_LDAP_URI=$PRIMARY_URI
CONF_C="$RG_T/door-c.conf"
write_conf "$CONF_C" door-a "$PRIMARY_URI $REPLICA_URI" 10
TUE="2026-06-02 09:00"
rg_expect_exit 0 rg_ctl -c "$CONF_C" admit bob --door main-entrance --at "$TUE"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-b occupancy=1/10$'

rg_slapd_stop "$RG_T/slapd"
echo "# the directory answers (from the replica), the ledger does not"
rg_expect_exit 2 rg_ctl -c "$CONF_C" admit heidi --door main-entrance --at "$TUE" --json
jcheck 'assert d["verdict"] == "ERROR" and d["reason"] == "ledger-unavailable", d
assert d["degraded"] is False and d["rule"] == "team-b" and d["local_date"] == "2026-06-02", d'
rg_expect_exit 2 rg_ctl -c "$CONF_C" admit heidi --door main-entrance --at "$TUE"
rg_expect_line '^ERROR reason=ledger-unavailable site=hq '
echo "# not even a re-entry is granted on the replica's word"
rg_expect_exit 2 rg_ctl -c "$CONF_C" admit bob --door side-gate --at "2026-06-02 11:00"
rg_expect_line '^ERROR reason=ledger-unavailable '
echo "# an exempt person neither"
rg_expect_exit 2 rg_ctl -c "$CONF_C" admit carol --door side-gate --at "2026-06-02 11:00"
rg_expect_line '^ERROR reason=ledger-unavailable '
echo "# through PAM: PAM_SERVICE_ERR"
mkdir -p "$RG_T/pam.d"
echo "account required $RG_MODULE conf=$CONF_C door=main-entrance" > "$RG_T/pam.d/door-c"
TUE_UNIX=$(python3 -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,2,9,30,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')
out=$("$RG_PAM_DRIVER" "$RG_T/pam.d" door-c --when "$TUE_UNIX" ivan bob alice)
[ "$out" = "ivan PAM_SERVICE_ERR
bob PAM_SERVICE_ERR
alice PAM_PERM_DENIED" ] || { printf '%s\n' "$out"; rg_fail "PAM results with the ledger down"; }
[ -z "$(ldap_count "$REPLICA_URI" 2026-06-02)" ] || rg_fail "something was counted on the replica"

echo "# the audit trail: ledger.error records and access.error decisions"
sha_of() { rg_ctl -c "$1" config-test | sed -n 's/.*sha256 \([0-9a-f]*\)$/\1/p'; }
python3 - "$RG_SYSLOG_JSON" "$(sha_of "$CONF_C")" <<'PY' || rg_fail "audit records of the ledger failure"
import json, sys, time
deadline = time.time() + 10
while True:
    recs = [json.loads(l).get("rotagate", {}) for l in open(sys.argv[1]) if l.strip()]
    recs = [r for r in recs if r.get("config_sha") == sys.argv[2]]
    errs = [r for r in recs if r.get("event") == "ledger.error"]
    dec = [r for r in recs if r.get("event", "").startswith("access.")]
    if (len(errs) >= 6 and len(dec) >= 8) or time.time() > deadline:
        break
    time.sleep(0.1)
assert len(errs) == 6, "ledger.error records: %d" % len(errs)
for r in errs:
    assert r.get("site") == "hq" and r.get("error"), r
got = [(r.get("user"), r.get("event"), r.get("reason")) for r in dec]
E = "access.error", "ledger-unavailable"
assert got == [("bob", "access.granted", "rota-day"), ("heidi",) + E, ("heidi",) + E, ("bob",) + E,
               ("carol",) + E, ("ivan",) + E, ("bob",) + E, ("alice", "access.denied", "not-on-rota-today")], got
for r in dec[1:7]:
    assert r.get("verdict") == "ERROR" and r.get("degraded") == "0", r
PY

echo "# the provider back: the count continues where it was"
rg_slapd_restart "$RG_T/slapd" || rg_fail "slapd did not restart"
rg_expect_exit 0 rg_ctl -c "$CONF_C" admit bob --door side-gate --at "2026-06-02 12:00"
rg_expect_line '^GRANT reason=re-entry site=hq rule=team-b occupancy=1/10$'
rg_expect_exit 0 rg_ctl -c "$CONF_C" admit heidi --door side-gate --at "2026-06-02 12:01"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-b occupancy=2/10$'
rg_slapd_stop "$RG_T/replica"

###########################################################################
echo "== c. no ledger server, the person answered from a PAM process's cache"
CONF_D="$RG_T/door-d.conf"
write_conf "$CONF_D" door-b "$PRIMARY_URI" 10
echo "account required $RG_MODULE conf=$CONF_D door=main-entrance" > "$RG_T/pam.d/door-d"
WED_UNIX=$(python3 -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,3,8,30,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')
mkfifo "$RG_T/go"
# alice and frank are looked up (and admitted); slapd stops; alice again and
# frank (both answered from this process's cache) and grace (never seen)
"$RG_PAM_DRIVER" "$RG_T/pam.d" door-d --when "$WED_UNIX" alice frank @"$RG_T/go" alice frank grace \
	> "$RG_T/seq.out" &
drv=$!
rg_syslog_wait_lines "$RG_T/seq.out" 2 10
rg_slapd_stop "$RG_T/slapd"
echo go > "$RG_T/go"
set +e; wait $drv; drc=$?; set -e
[ $drc -ne 141 ] || { cat "$RG_T/seq.out"
	rg_fail "the PAM host process was killed by SIGPIPE (the ledger wrote to a server that went away)"; }
[ "$(cat "$RG_T/seq.out")" = "alice PAM_SUCCESS
frank PAM_SUCCESS
alice PAM_SERVICE_ERR
frank PAM_SERVICE_ERR
grace PAM_AUTHINFO_UNAVAIL" ] || { cat "$RG_T/seq.out"; rg_fail "PAM results with no ledger server"; }
python3 - "$RG_SYSLOG_JSON" "$(sha_of "$CONF_D")" <<'PY' || rg_fail "audit records of section c"
import json, sys, time
deadline = time.time() + 10
while True:
    recs = [json.loads(l).get("rotagate", {}) for l in open(sys.argv[1]) if l.strip()]
    recs = [r for r in recs if r.get("config_sha") == sys.argv[2]]
    dec = [r for r in recs if r.get("event", "").startswith("access.")]
    errs = [r for r in recs if r.get("event") == "ledger.error"]
    if (len(dec) >= 5 and len(errs) >= 2) or time.time() > deadline:
        break
    time.sleep(0.1)
got = [(r.get("user"), r.get("reason")) for r in dec]
assert got == [("alice", "rota-day"), ("frank", "rota-day"), ("alice", "ledger-unavailable"),
               ("frank", "ledger-unavailable"), ("grace", "directory-unavailable")], got
assert len(errs) == 2, "ledger.error records: %d" % len(errs)
PY
###########################################################################
echo "== d. a separate ledger server: ledger.uri, ledger.bind-dn, ledger.bind-password-file"
rg_slapd_restart "$RG_T/slapd" || rg_fail "slapd did not restart"
# the ledger server holds no people, only the occupancy container and an
# account of its own that the directory server does not know
cat > "$RG_T/ledgersrv.ldif" <<'LDIF'
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example Org ledger

dn: ou=occupancy,dc=example,dc=org
objectClass: organizationalUnit
ou: occupancy

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: ou=controllers,ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: controllers

dn: cn=ledger-writer,ou=controllers,ou=services,dc=example,dc=org
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: ledger-writer
userPassword: ledger-writer-secret
LDIF
rg_slapd_start "$RG_T/ledgersrv" "$RG_T/ledgersrv.ldif" || rg_fail "ledger slapd did not start"
LEDGER_URI=$RG_LDAP_URI
RG_LDAP_URI=$PRIMARY_URI
( umask 077; printf 'ledger-writer-secret\n' > "$RG_T/pw-ledger" )
# ledger_keys FILE URI [BIND-DN PWFILE]: add ledger connection keys to a
# config written by write_conf
ledger_keys() {
	python3 - "$@" <<'PY2'
import sys
path, uri = sys.argv[1], sys.argv[2]
extra = '  uri = "%s"\n' % uri
if len(sys.argv) > 3:
    extra += '  bind-dn = "%s"\n  bind-password-file = "%s"\n' % (sys.argv[3], sys.argv[4])
text = open(path).read()
assert "  backend = ldap\n" in text
open(path, "w").write(text.replace("  backend = ldap\n", "  backend = ldap\n" + extra, 1))
PY2
}
CONF_E="$RG_T/door-e.conf"
write_conf "$CONF_E" door-a "$PRIMARY_URI" 10
ledger_keys "$CONF_E" "$LEDGER_URI" "cn=ledger-writer,ou=controllers,ou=services,dc=example,dc=org" \
	"$RG_T/pw-ledger"
rg_expect_exit 0 rg_ctl -c "$CONF_E" config-test
THU="2026-06-04 09:00"
rg_expect_exit 0 rg_ctl -c "$CONF_E" admit bob --door main-entrance --at "$THU"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-b occupancy=1/10$'
rg_expect_exit 0 rg_ctl -c "$CONF_E" admit carol --door side-gate --at "$THU"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=2/10$'
rg_expect_exit 0 rg_ctl -c "$CONF_E" admit bob --door side-gate --at "2026-06-04 13:00"
rg_expect_line '^GRANT reason=re-entry site=hq rule=team-b occupancy=2/10$'
[ "$(ldap_count "$LEDGER_URI" 2026-06-04)" = 2 ] || rg_fail "the count is not on the ledger server"
[ -z "$(ldap_count "$PRIMARY_URI" 2026-06-04)" ] || rg_fail "something was counted on the directory server"
w=$(ldapsearch -LLL -Q -Y EXTERNAL -H "$LEDGER_URI" -b "ou=occupancy,dc=example,dc=org" \
	"(&(rgSite=hq)(rgDate=2026-06-04))" modifiersName | sed -n 's/^modifiersName: //p')
[ "$w" = "cn=ledger-writer,ou=controllers,ou=services,dc=example,dc=org" ] ||
	rg_fail "the ledger entry was written as '$w', not as the ledger's own account"
rg_expect_exit 0 rg_ctl -c "$CONF_E" occupancy --site hq --date 2026-06-04 --json --names
jcheck 'assert d[0]["count"] == 2 and sorted(a["user"] for a in d[0]["admissions"]) == ["bob", "carol"], d'

echo "# the directory's credentials are never sent to the ledger server"
CONF_F="$RG_T/door-f.conf"
for uri in "ldaps://127.0.0.1:1" "ldap://127.0.0.1:1"; do
	write_conf "$CONF_F" door-a "$PRIMARY_URI" 10
	ledger_keys "$CONF_F" "$uri"
	rg_expect_exit 2 rg_ctl -c "$CONF_F" config-test
	grep -Eq "^$CONF_F:[0-9]+: ledger: uri is set but bind-dn is not" "$RG_T/last.err" ||
		{ cat "$RG_T/last.err"; rg_fail "ledger.uri $uri without ledger.bind-dn was not refused"; }
	rg_expect_exit 2 rg_ctl -c "$CONF_F" admit heidi --door main-entrance --at "$THU"
done
echo "# an ldapi:// ledger server without ledger.bind-dn: SASL EXTERNAL, not the directory's account"
write_conf "$CONF_F" door-a "$PRIMARY_URI" 10
ledger_keys "$CONF_F" "$LEDGER_URI"
rg_expect_exit 0 rg_ctl -c "$CONF_F" config-test
rg_expect_exit 0 rg_ctl -c "$CONF_F" admit heidi --door main-entrance --at "$THU"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-b occupancy=3/10$'
w=$(ldapsearch -LLL -Q -Y EXTERNAL -H "$LEDGER_URI" -b "ou=occupancy,dc=example,dc=org" \
	"(&(rgSite=hq)(rgDate=2026-06-04))" modifiersName | sed -n 's/^modifiersName: //p')
[ "$w" = "$RG_LDAP_ADMIN_DN" ] ||
	rg_fail "the ldapi ledger entry was written as '$w', not with SASL EXTERNAL (the test's peer identity)"

echo "# the ledger server down, the directory up: ERROR ledger-unavailable"
rg_slapd_stop "$RG_T/ledgersrv"
rg_expect_exit 2 rg_ctl -c "$CONF_E" admit heidi --door main-entrance --at "$THU"
rg_expect_line '^ERROR reason=ledger-unavailable site=hq rule=team-b '

echo "# a ledger server that accepts and then says nothing: bounded by the timeout"
python3 "$top_srcdir/tests/directory/blackhole.py" "$RG_T/blackhole.port" &
blackhole_pid=$!
i=0; while [ ! -s "$RG_T/blackhole.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$RG_T/blackhole.port" ] || rg_fail "blackhole.py did not start"
BH="127.0.0.1:$(cat "$RG_T/blackhole.port")"
for uri in "ldaps://$BH" "ldap://$BH"; do
	CONF_G="$RG_T/door-g.conf"
	write_conf "$CONF_G" door-a "$PRIMARY_URI" 10
	# ldap:// with StartTLS: the StartTLS request itself waits at most timeout
	sed -i 's/^  tls = none$/  tls = starttls/' "$CONF_G"
	ledger_keys "$CONF_G" "$uri" "cn=ledger-writer,ou=controllers,ou=services,dc=example,dc=org" \
		"$RG_T/pw-ledger"
	t0=$(date +%s%N)
	rg_expect_exit 2 timeout 60 "$RG_CTL" -c "$CONF_G" admit heidi --door main-entrance --at "$THU"
	t1=$(date +%s%N)
	rg_expect_line '^ERROR reason=ledger-unavailable site=hq rule=team-b '
	ms=$(( (t1 - t0) / 1000000 ))
	echo "$uri: failed closed after ${ms} ms (timeout = 2 s)"
	[ "$ms" -lt 10000 ] || rg_fail "a silent ledger server held the door for ${ms} ms"
done
kill "$blackhole_pid"; wait "$blackhole_pid" 2>/dev/null || true; blackhole_pid=

echo "# tls-require-cert = never: refused for a ledger server that is not local"
CONF_H="$RG_T/door-h.conf"
write_conf "$CONF_H" door-a "$PRIMARY_URI" 10
sed -i 's/^  tls = none$/  tls = none\n  tls-require-cert = never/' "$CONF_H"
ledger_keys "$CONF_H" "ldaps://192.0.2.1:636" "cn=ledger-writer,ou=controllers,ou=services,dc=example,dc=org" \
	"$RG_T/pw-ledger"
rg_expect_exit 2 rg_ctl -c "$CONF_H" check heidi --door main-entrance --at "$THU"
rg_expect_line '^ERROR reason=ledger-unavailable '
printf '%s\n' "$RG_OUT" | grep -q 'only accepted for ldapi' ||
	{ printf '%s\n' "$RG_OUT" >&2; rg_fail "the TLS policy refusal is not explained"; }

###########################################################################
echo "== e. a lost modify response: the retry reports the admission, not a re-entry"
# a proxy in front of the provider's ldapi socket passes the second modify
# on (the server applies it) and then drops the connection before the answer
PROV_SOCK=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1][len("ldapi://"):]))' "$PRIMARY_URI")
python3 "$top_srcdir/tests/directory/dropmodify.py" "$RG_T/drop.sock" "$PROV_SOCK" 2 &
dropproxy_pid=$!
i=0; while [ ! -s "$RG_T/drop.sock.ready" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$RG_T/drop.sock.ready" ] || rg_fail "dropmodify.py did not start"
DROP_URI="ldapi://$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$RG_T/drop.sock")"
CONF_X="$RG_T/door-x.conf"
write_conf "$CONF_X" door-a "$PRIMARY_URI" 10
ledger_keys "$CONF_X" "$DROP_URI"   # ldapi: SASL EXTERNAL
echo "account required $RG_MODULE conf=$CONF_X door=main-entrance" > "$RG_T/pam.d/door-x"
FRI_UNIX=$(python3 -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,5,8,30,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')
# one process: alice's session goes back to the pool, frank's admission
# reuses it, loses the answer to its modify and is retried on a new session
out=$("$RG_PAM_DRIVER" "$RG_T/pam.d" door-x --when "$FRI_UNIX" alice frank)
kill "$dropproxy_pid"; wait "$dropproxy_pid" 2>/dev/null || true; dropproxy_pid=
[ "$out" = "alice PAM_SUCCESS
frank PAM_SUCCESS" ] || { printf '%s\n' "$out"; rg_fail "PAM results with a lost modify response"; }
[ "$(ldap_count "$PRIMARY_URI" 2026-06-05)" = 2 ] || rg_fail "rgCount after the lost response is not 2"
python3 - "$RG_SYSLOG_JSON" "$(sha_of "$CONF_X")" <<'PY' || rg_fail "audit records of section e"
import json, sys, time
deadline = time.time() + 10
while True:
    recs = [json.loads(l).get("rotagate", {}) for l in open(sys.argv[1]) if l.strip()]
    recs = [r for r in recs if r.get("config_sha") == sys.argv[2]]
    dec = [r for r in recs if r.get("event", "").startswith("access.")]
    if len(dec) >= 2 or time.time() > deadline:
        break
    time.sleep(0.1)
got = [(r.get("user"), r.get("event"), r.get("reason")) for r in dec]
# frank's first modify was applied: his grant is an admission (rota-day),
# not a re-entry of his own admission
assert got == [("alice", "access.granted", "rota-day"), ("frank", "access.granted", "rota-day")], got
PY
echo "PASS"
