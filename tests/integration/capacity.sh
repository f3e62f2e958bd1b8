#!/bin/bash
# The capacity ledger (LMDB, the default backend) at the level of decisions,
# through rotagatectl against a real slapd and syslog-ng:
#  1. reserved places: capacity 10, reserved 2 -> the 9th non-exempt person is
#     capacity-full, two exempt people still get in, the third does not;
#     re-entry on a full day is granted and uses no place;
#  2. the count is per SITE-LOCAL day: midnight rollover in Europe/London,
#     both DST change days of 2026 (00:30 and 23:30 are the same day), and a
#     site in America/New_York where the same instant is another date;
#  3. `rotagatectl occupancy`: text, --json, --names, --site, --date;
#  4. `rotagatectl ledger prune` with retain-days = 400, and pruning on use.
# Every section has its own ledger directory, so the counts are independent.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init capacity

# more team-a members (p01..p06) and more exempt staff (x01..x03, facilities)
{
	for u in p01 p02 p03 p04 p05 p06 x01 x02 x03; do
		printf 'dn: uid=%s,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\n\n' \
			"$u" "$u" "$u" "$u"
	done
} > "$RG_T/people.ldif"
rg_slapd_ldap ldapadd -f "$RG_T/people.ldif" >/dev/null
{
	printf 'dn: cn=rota-team-a,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\n'
	for u in p01 p02 p03 p04 p05 p06; do printf 'member: uid=%s,ou=people,dc=example,dc=org\n' "$u"; done
	printf '\ndn: cn=facilities,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\n'
	for u in x01 x02 x03; do printf 'member: uid=%s,ou=people,dc=example,dc=org\n' "$u"; done
} | rg_slapd_ldap ldapmodify >/dev/null

# write_conf FILE LEDGER-DIR CAPACITY RESERVED
# hq (Europe/London): team-a Mon/Wed/Fri, team-b Tue/Thu and Sundays
# ("weekend"), facilities exempt, self-isolating denied.
# annex (America/New_York): team-a Mon/Wed/Fri, facilities exempt.
write_conf() {
	mkdir -p -m 700 "$2"
	cat > "$1" <<CONF
directory {
  uri = "$RG_LDAP_URI"
  base = "dc=example,dc=org"
  user-filter = "(&(objectClass=inetOrgPerson)(uid=%u))"
  membership = member
  timeout = 2
  tls = none
}
ledger {
  backend = lmdb
  path = "$2"
  retain-days = 400
}
audit {
  target = "unix:$RG_SYSLOG_SOCKET"
  facility = authpriv
  ident = "rotagate"
  spool = "$RG_T/spool"
}
site "hq" {
  timezone = "Europe/London"
  capacity = $3
  reserved = $4
  doors = { "main-entrance", "side-gate" }
  rota "team-a" {
    group = "cn=rota-team-a,ou=groups,dc=example,dc=org"
    days = { mon, wed, fri }
  }
  rota "team-b" {
    group = "cn=rota-team-b,ou=groups,dc=example,dc=org"
    days = { tue, thu }
  }
  rota "weekend" {
    group = "cn=rota-team-b,ou=groups,dc=example,dc=org"
    days = { sun }
  }
  exempt "estates" { group = "cn=facilities,ou=groups,dc=example,dc=org" }
  deny "isolating" { group = "cn=self-isolating,ou=groups,dc=example,dc=org" }
}
site "annex" {
  timezone = "America/New_York"
  capacity = $3
  doors = { "annex-door" }
  rota "team-a" {
    group = "cn=rota-team-a,ou=groups,dc=example,dc=org"
    days = { mon, wed, fri }
  }
  exempt "estates" { group = "cn=facilities,ou=groups,dc=example,dc=org" }
}
CONF
}

admit() { # admit EXIT USER DOOR AT [--json]
	_rc=$1 _u=$2 _d=$3 _at=$4; shift 4
	rg_expect_exit "$_rc" rg_ctl -c "$CONF" admit "$_u" --door "$_d" --at "$_at" "$@"
}
# jcheck PYTHON-ASSERTIONS: $RG_OUT parsed as JSON is `d`
jcheck() {
	printf '%s' "$RG_OUT" | python3 -c "
import json, sys
d = json.load(sys.stdin)
$1
" || { printf '%s\n' "$RG_OUT" >&2; rg_fail "JSON check failed: $1"; }
}
# occ SITE DATE: count of that site-day (from occupancy --json)
occ() {
	rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site "$1" --date "$2" --json
	printf '%s' "$RG_OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==1; print(d[0]["count"])'
}
expect_occ() { # expect_occ SITE DATE N
	_n=$(occ "$1" "$2")
	[ "$_n" = "$3" ] || rg_fail "occupancy of $1 on $2 is $_n, expected $3"
}

###########################################################################
echo "== 1. reserved places (capacity 10, reserved 2), Monday 2026-06-01"
CONF="$RG_T/reserved.conf"
write_conf "$CONF" "$RG_T/l-reserved" 10 2
n=0
for u in alice frank grace judy mallory p01 p02 p03; do
	n=$((n + 1))
	admit 0 "$u" main-entrance "2026-06-01 08:$((10 + n))"
	rg_expect_line "^GRANT reason=rota-day site=hq rule=team-a occupancy=$n/10\$"
done
echo "# the 9th (and 10th) non-exempt person: the last 2 places are reserved"
admit 1 p04 main-entrance "2026-06-01 08:30"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=8/10$'
admit 1 p05 side-gate "2026-06-01 08:31"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=8/10$'
echo "# a dry run says the same and reserves nothing"
rg_expect_exit 1 rg_ctl -c "$CONF" check p06 --door main-entrance --at "2026-06-01 08:32"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=8/10$'
rg_expect_exit 0 rg_ctl -c "$CONF" check carol --door main-entrance --at "2026-06-01 08:32"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=8/10$'
echo "# two exempt people take the reserved places; a third finds the day full"
admit 0 carol side-gate "2026-06-01 08:40"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=9/10$'
admit 0 x01 main-entrance "2026-06-01 08:41"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=10/10$'
admit 1 x02 main-entrance "2026-06-01 08:42"
rg_expect_line '^DENY reason=capacity-full site=hq rule=estates occupancy=10/10$'
echo "# re-entry on a full day is granted and uses no place"
admit 0 alice side-gate "2026-06-01 13:00"
rg_expect_line '^GRANT reason=re-entry site=hq rule=team-a occupancy=10/10$'
admit 0 carol main-entrance "2026-06-01 13:05"
rg_expect_line '^GRANT reason=re-entry site=hq rule=estates occupancy=10/10$'
# a person refused earlier is still refused (their denial took no place)
admit 1 p04 main-entrance "2026-06-01 13:10"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=10/10$'
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-01 --json --names
jcheck '
s = d[0]
assert s["count"] == 10 and s["capacity"] == 10 and s["reserved"] == 2, s
assert s["exempt_admitted"] == 2, s
users = sorted(a["user"] for a in s["admissions"])
assert users == sorted("alice frank grace judy mallory p01 p02 p03 carol x01".split()), users
assert sorted(a["user"] for a in s["admissions"] if a["exempt"]) == ["carol", "x01"], s
'
echo "# the audit record of a capacity-full denial carries occupancy and capacity"
python3 - "$RG_SYSLOG_JSON" <<'PY' || rg_fail "audit record of the capacity-full denial"
import json, sys, time
deadline = time.time() + 10
while True:
    recs = [json.loads(l).get("rotagate", {}) for l in open(sys.argv[1]) if l.strip()]
    hits = [r for r in recs if r.get("user") == "p04" and r.get("event") == "access.denied"]
    if len(hits) >= 2 or time.time() > deadline:
        break
    time.sleep(0.1)
assert len(hits) == 2, hits
for r in hits:
    assert r.get("reason") == "capacity-full" and r.get("verdict") == "DENY", r
    assert r.get("capacity") == "10" and r.get("site") == "hq", r
assert [r.get("occupancy") for r in hits] == ["8", "10"], hits
x = [r for r in recs if r.get("user") == "x02"]
assert len(x) == 1 and x[0].get("reason") == "capacity-full" and x[0].get("rule") == "estates", x
PY

###########################################################################
echo "== 2a. a new count at site-local midnight (Europe/London, BST)"
CONF="$RG_T/rollover.conf"
write_conf "$CONF" "$RG_T/l-rollover" 10 0
# 00:01 BST on 2 June is still 1 June in UTC: a UTC day would make it a re-entry
admit 0 carol main-entrance "2026-06-01 23:59" --json
jcheck 'assert d["reason"] == "exempt" and d["local_date"] == "2026-06-01" and d["occupancy"] == 1, d'
admit 0 carol main-entrance "2026-06-02 00:01" --json
jcheck 'assert d["reason"] == "exempt" and d["local_date"] == "2026-06-02" and d["occupancy"] == 1, d'
expect_occ hq 2026-06-01 1
expect_occ hq 2026-06-02 1
# the second swipe of 2 June is a re-entry of that day
admit 0 carol side-gate "2026-06-02 00:05"
rg_expect_line '^GRANT reason=re-entry site=hq rule=estates occupancy=1/10$'

echo "== 2b. DST change days (Sundays): 00:30 and 23:30 local are one day"
# 2026-03-29: clocks go forward at 01:00 GMT; 2026-10-25: back at 02:00 BST
# (00:30 BST that day is 23:30 UTC on the 24th).  bob and heidi: team-b,
# whose "weekend" rota admits them on Sundays.
for day in 2026-03-29 2026-10-25; do
	admit 0 bob main-entrance "$day 00:30" --json
	jcheck "assert d['reason'] == 'rota-day' and d['rule'] == 'weekend' and d['local_date'] == '$day' and d['occupancy'] == 1, d"
	admit 0 heidi side-gate "$day 23:30" --json
	jcheck "assert d['reason'] == 'rota-day' and d['local_date'] == '$day' and d['occupancy'] == 2, d"
	admit 0 bob side-gate "$day 23:45"
	rg_expect_line '^GRANT reason=re-entry site=hq rule=weekend occupancy=2/10$'
	expect_occ hq "$day" 2
done
prev=$(python3 -c 'import datetime as d; print(d.date(2026,10,25) - d.timedelta(days=1))')
expect_occ hq "$prev" 0
echo "# a wall time skipped or repeated by the change is refused unless an offset says which"
rg_expect_exit 2 rg_ctl -c "$CONF" admit ivan --door main-entrance --at "2026-03-29 01:30"
rg_expect_exit 2 rg_ctl -c "$CONF" admit ivan --door main-entrance --at "2026-10-25 01:30"
admit 0 ivan main-entrance "2026-10-25 01:30+01:00" --json
jcheck 'assert d["local_date"] == "2026-10-25" and d["occupancy"] == 3, d'
admit 0 oscar main-entrance "2026-10-25 01:30+00:00" --json
jcheck 'assert d["local_date"] == "2026-10-25" and d["occupancy"] == 4, d'
expect_occ hq 2026-10-25 4

echo "== 2c. the same instant is another date in America/New_York"
# 2026-06-02 03:30Z: Tuesday 04:30 in London, Monday 23:30 in New York
admit 0 carol main-entrance "2026-06-02 03:30Z" --json
jcheck 'assert d["site"] == "hq" and d["local_date"] == "2026-06-02", d'
admit 0 carol annex-door "2026-06-02 03:30Z" --json
jcheck 'assert d["site"] == "annex" and d["local_date"] == "2026-06-01" and d["occupancy"] == 1 and d["reason"] == "exempt", d'
# team-a (Mon/Wed/Fri): a Monday at the annex, a Tuesday at hq
admit 0 alice annex-door "2026-06-02 03:30Z" --json
jcheck 'assert d["reason"] == "rota-day" and d["local_date"] == "2026-06-01" and d["occupancy"] == 2, d'
admit 1 alice main-entrance "2026-06-02 03:30Z"
rg_expect_line '^DENY reason=not-on-rota-today site=hq'
expect_occ annex 2026-06-01 2
expect_occ annex 2026-06-02 0
# hq 2 June: carol from 2a, then her 03:30Z swipe was a re-entry
expect_occ hq 2026-06-02 1

###########################################################################
echo "== 3. rotagatectl occupancy (Wednesday 2026-06-03, BST)"
CONF="$RG_T/occupancy.conf"
write_conf "$CONF" "$RG_T/l-occupancy" 10 2
admit 0 alice main-entrance "2026-06-03 08:05"
admit 0 carol side-gate "2026-06-03 07:45"
admit 0 frank side-gate "2026-06-03 08:10"
admit 0 grace main-entrance "2026-06-03 09:00"
admit 0 alice side-gate "2026-06-03 12:30"   # re-entry; changes nothing below
admit 1 dave main-entrance "2026-06-03 08:00" # deny group; not counted
admit 0 judy annex-door "2026-06-03 10:00"    # the other site

echo "# text"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-03
out=$RG_OUT
printf '%s\n' "$out" | grep -qx 'hq 2026-06-03: 4/10 admitted, 1 exempt (reserved places: 2)' ||
	{ printf '%s\n' "$out"; rg_fail "occupancy summary line"; }
printf '%s\n' "$out" | grep -qx "  door main-entrance: first entry 08:05, 2 admitted there" ||
	{ printf '%s\n' "$out"; rg_fail "occupancy: main-entrance line"; }
printf '%s\n' "$out" | grep -qx '  door side-gate: first entry 07:45, 2 admitted there' ||
	{ printf '%s\n' "$out"; rg_fail "occupancy: side-gate line (first entry in site-local time)"; }
[ "$(printf '%s\n' "$out" | wc -l)" -eq 3 ] || { printf '%s\n' "$out"; rg_fail "occupancy text: 3 lines expected"; }
for u in alice carol frank grace; do
	printf '%s\n' "$out" | grep -qw "$u" && rg_fail "occupancy without --names lists $u"
done
echo "# text --names"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-03 --names
for l in '  07:45 carol via side-gate (estates, exempt)' '  08:05 alice via main-entrance (team-a)' \
	'  08:10 frank via side-gate (team-a)' '  09:00 grace via main-entrance (team-a)'; do
	printf '%s\n' "$RG_OUT" | grep -qxF -- "$l" || { printf '%s\n' "$RG_OUT"; rg_fail "--names: no line '$l'"; }
done
printf '%s\n' "$RG_OUT" | grep -qw dave && rg_fail "--names lists dave, who was denied"
[ "$(printf '%s\n' "$RG_OUT" | wc -l)" -eq 7 ] || { printf '%s\n' "$RG_OUT"; rg_fail "--names: 7 lines expected"; }
echo "# --json"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-03 --json
jcheck '
assert isinstance(d, list) and len(d) == 1, d
s = d[0]
assert s["site"] == "hq" and s["date"] == "2026-06-03", s
assert s["count"] == 4 and s["capacity"] == 10 and s["reserved"] == 2 and s["exempt_admitted"] == 1, s
assert s["doors"] == {"main-entrance": {"first_entry": "08:05", "admitted": 2},
                      "side-gate": {"first_entry": "07:45", "admitted": 2}}, s["doors"]
assert "admissions" not in s, "names without --names"
assert "alice" not in json.dumps(d), "names without --names"
'
echo "# --json --names: people in order of first entry, with door, rule, time"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-03 --json --names
jcheck '
import datetime, zoneinfo
a = d[0]["admissions"]
assert [x["user"] for x in a] == ["carol", "alice", "frank", "grace"], a
assert [x["door"] for x in a] == ["side-gate", "main-entrance", "side-gate", "main-entrance"], a
assert [x["rule"] for x in a] == ["estates", "team-a", "team-a", "team-a"], a
assert [x["exempt"] for x in a] == [True, False, False, False], a
z = zoneinfo.ZoneInfo("Europe/London")
assert [datetime.datetime.fromtimestamp(x["when"], z).strftime("%Y-%m-%d %H:%M") for x in a] == \
    ["2026-06-03 07:45", "2026-06-03 08:05", "2026-06-03 08:10", "2026-06-03 09:00"], a
'
echo "# no --site: every site; --site picks one"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --date 2026-06-03 --json
jcheck '
by = {s["site"]: s for s in d}
assert sorted(by) == ["annex", "hq"], d
assert by["hq"]["count"] == 4 and by["annex"]["count"] == 1 and by["annex"]["reserved"] == 0, d
assert by["annex"]["doors"] == {"annex-door": {"first_entry": "10:00", "admitted": 1}}, by["annex"]
'
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site annex --date 2026-06-03 --names
printf '%s\n' "$RG_OUT" | grep -qx 'annex 2026-06-03: 1/10 admitted' || { printf '%s\n' "$RG_OUT"; rg_fail "annex summary"; }
printf '%s\n' "$RG_OUT" | grep -qxF '  10:00 judy via annex-door (team-a)' || { printf '%s\n' "$RG_OUT"; rg_fail "annex --names (New York time)"; }
printf '%s\n' "$RG_OUT" | grep -q alice && rg_fail "--site annex shows hq's people"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --date 2026-06-03
printf '%s\n' "$RG_OUT" | grep -q '^hq 2026-06-03: 4/10' && printf '%s\n' "$RG_OUT" | grep -q '^annex 2026-06-03: 1/10' ||
	{ printf '%s\n' "$RG_OUT"; rg_fail "occupancy without --site shows every site"; }
echo "# --date: another day is empty"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-05 --json
jcheck 'assert d[0]["count"] == 0 and d[0]["doors"] == {} and d[0]["date"] == "2026-06-05", d'
echo "# errors: unknown site, bad date"
rg_expect_exit 2 rg_ctl -c "$CONF" occupancy --site nowhere --date 2026-06-03
grep -q nowhere "$RG_T/last.err" || rg_fail "unknown site: no message"
rg_expect_exit 2 rg_ctl -c "$CONF" occupancy --site hq --date 2026-13-45
rg_expect_exit 2 rg_ctl -c "$CONF" occupancy --site hq --date yesterday

###########################################################################
echo "== 4. ledger prune (retain-days = 400)"
CONF="$RG_T/prune.conf"
write_conf "$CONF" "$RG_T/l-prune" 10 0
# `ledger prune` is relative to today, by design: the kept day is 30 days
# ago, the removed ones are in 2015; both far from the 400-day edge.
RECENT=$(python3 -c 'import datetime as d; print(d.date.today() - d.timedelta(days=30))')
# a swipe also prunes (cheaply, once per process) relative to the earlier of
# its own day and today: admit the recent day first, then the 2015 days
admit 0 carol main-entrance "$RECENT 12:00"
admit 0 alice main-entrance "2015-06-01 09:00"   # a Monday
admit 0 x01 side-gate "2015-06-02 09:00"
expect_occ hq 2015-06-01 1
expect_occ hq 2015-06-02 1
rg_expect_exit 0 rg_ctl -c "$CONF" ledger prune
printf '%s\n' "$RG_OUT" | grep -q '^pruned 2 site-day' || { printf '%s\n' "$RG_OUT"; rg_fail "prune did not report 2 site-days"; }
expect_occ hq 2015-06-01 0
expect_occ hq 2015-06-02 0
expect_occ hq "$RECENT" 1
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date "$RECENT" --json --names
jcheck 'assert [a["user"] for a in d[0]["admissions"]] == ["carol"], d'
rg_expect_exit 0 rg_ctl -c "$CONF" ledger prune
printf '%s\n' "$RG_OUT" | grep -q '^pruned 0 site-day' || { printf '%s\n' "$RG_OUT"; rg_fail "second prune removed something"; }
# a pruned day starts again from zero: alice is admitted, not re-entering
admit 0 alice main-entrance "2015-06-01 10:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=1/10$'
echo "# retention on use: a new admission on a recent day removes days past retention"
expect_occ hq 2015-06-01 1
admit 0 x02 main-entrance "$RECENT 12:30"
rg_expect_line 'occupancy=2/10$'
expect_occ hq 2015-06-01 0
expect_occ hq "$RECENT" 2

echo "PASS"
