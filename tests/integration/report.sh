#!/bin/bash
# rotagatectl report: weekly attendance per site and rota, against a real
# slapd and syslog-ng, admissions made with `rotagatectl admit --at`:
#  1. ISO week 2026-W23 (Mon 2026-06-01 .. Sun 2026-06-07): people per
#     site-local day, distinct people of the week, exempt admissions apart,
#     per rota members / attended / percent against weekly-target (met and
#     below target); a re-entry, the week before and the week after do not
#     count; an admission at 00:30 / 23:30 local time counts on its local day;
#  2. table, csv and json, compared exactly; --site;
#  3. membership live from the directory before the first sync, from the
#     snapshot after `rotagatectl sync` (same figures);
#  4. errors exit 2: unknown site, weeks that do not exist or are malformed,
#     unknown format, missing --week;
#  5. the output does not depend on the machine's time zone (TZ is varied).
# Sample directory: team-a = alice dave frank grace judy mallory (dave is
# self-isolating), team-b = bob heidi ivan oscar, facilities = carol.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init report

CONF="$RG_T/report.conf"
RG_RETAIN_DAYS=3650 RG_WEEKLY_TARGET=50 rg_write_config "$CONF" <<CONF
site "annex" {
  timezone = "America/New_York"
  capacity = 20
  doors = { "annex-door" }
  rota "team-a" {
    group = "cn=rota-team-a,ou=groups,dc=example,dc=org"
    days = { mon, tue, wed, thu, fri, sat, sun }
  }
}
CONF

admit() { # admit EXIT USER DOOR AT
	rg_expect_exit "$1" rg_ctl -c "$CONF" admit "$2" --door "$3" --at "$4"
}
# expect_out NAME : $RG_OUT must equal stdin exactly
expect_out() {
	printf '%s\n' "$RG_OUT" > "$RG_T/got.$1"
	cat > "$RG_T/want.$1"
	diff -u "$RG_T/want.$1" "$RG_T/got.$1" >&2 || rg_fail "$1: output differs (see diff above)"
}

echo "== admissions"
# the week before (hq, Friday 2026-05-29) and after (annex, Monday 2026-06-08)
admit 0 judy main-entrance "2026-05-29 09:00"
admit 0 grace annex-door "2026-06-08 00:30"
# hq, 2026-W23
admit 0 alice main-entrance "2026-06-01 08:00"   # Mon
admit 0 frank side-gate "2026-06-01 09:00"
admit 0 carol main-entrance "2026-06-01 10:00"   # exempt
admit 0 alice side-gate "2026-06-01 12:00"       # re-entry: no second place
admit 1 dave main-entrance "2026-06-01 08:05"    # deny group: no place
admit 0 bob main-entrance "2026-06-02 08:30"     # Tue
admit 1 heidi main-entrance "2026-06-03 08:30"   # Wed: team-b not on rota
admit 0 alice main-entrance "2026-06-03 08:00"   # Wed
admit 0 grace main-entrance "2026-06-03 23:30"   # Wed (22:30 UTC)
admit 0 bob main-entrance "2026-06-04 07:00"     # Thu
admit 0 alice main-entrance "2026-06-05 00:30"   # Fri (Thu 23:30 UTC)
# annex (America/New_York), 2026-W23
admit 0 mallory annex-door "2026-06-01 18:00"    # Mon (22:00 UTC)
admit 0 frank annex-door "2026-06-07 23:30"      # Sun (Mon 03:30 UTC)

HQ_TABLE='site hq, week 2026-W23 (2026-06-01 .. 2026-06-07, Europe/London)
  day        date        people  capacity  exempt
  Monday     2026-06-01       3       400       1
  Tuesday    2026-06-02       1       400       0
  Wednesday  2026-06-03       2       400       0
  Thursday   2026-06-04       1       400       0
  Friday     2026-06-05       1       400       0
  Saturday   2026-06-06       0       400       0
  Sunday     2026-06-07       0       400       0
  week: 5 distinct people came at least once; exempt admissions: 1 (1 distinct)
  rota              members  attended  percent  target  status
  team-a                  6         3    50.0%     50%  met
  team-b                  4         1    25.0%     50%  below target'
ANNEX_TABLE='site annex, week 2026-W23 (2026-06-01 .. 2026-06-07, America/New_York)
  day        date        people  capacity  exempt
  Monday     2026-06-01       1        20       0
  Tuesday    2026-06-02       0        20       0
  Wednesday  2026-06-03       0        20       0
  Thursday   2026-06-04       0        20       0
  Friday     2026-06-05       0        20       0
  Saturday   2026-06-06       0        20       0
  Sunday     2026-06-07       1        20       0
  week: 2 distinct people came at least once; exempt admissions: 0 (0 distinct)
  rota              members  attended  percent  target  status
  team-a                  6         2    33.3%     80%  below target'
LIVE='  membership: directory (live; the snapshot was never synced)'
HQ_CSV='hq,2026-W23,day,Mon,2026-06-01,3,400,1,,,,,
hq,2026-W23,day,Tue,2026-06-02,1,400,0,,,,,
hq,2026-W23,day,Wed,2026-06-03,2,400,0,,,,,
hq,2026-W23,day,Thu,2026-06-04,1,400,0,,,,,
hq,2026-W23,day,Fri,2026-06-05,1,400,0,,,,,
hq,2026-W23,day,Sat,2026-06-06,0,400,0,,,,,
hq,2026-W23,day,Sun,2026-06-07,0,400,0,,,,,
hq,2026-W23,week,,2026-06-01..2026-06-07,5,,1,,,,50,
hq,2026-W23,rota,team-a,,,,,6,3,50.0,50,met
hq,2026-W23,rota,team-b,,,,,4,1,25.0,50,below target'
ANNEX_CSV='annex,2026-W23,day,Mon,2026-06-01,1,20,0,,,,,
annex,2026-W23,day,Tue,2026-06-02,0,20,0,,,,,
annex,2026-W23,day,Wed,2026-06-03,0,20,0,,,,,
annex,2026-W23,day,Thu,2026-06-04,0,20,0,,,,,
annex,2026-W23,day,Fri,2026-06-05,0,20,0,,,,,
annex,2026-W23,day,Sat,2026-06-06,0,20,0,,,,,
annex,2026-W23,day,Sun,2026-06-07,1,20,0,,,,,
annex,2026-W23,week,,2026-06-01..2026-06-07,2,,0,,,,80,
annex,2026-W23,rota,team-a,,,,,6,2,33.3,80,below target'
CSV_HEADER='site,week,kind,name,date,people,capacity,exempt,members,attended,percent,target,status'

# check_json SOURCE : $RG_OUT (report --format json, both sites) is exactly this
check_json() {
	printf '%s' "$RG_OUT" | python3 -c '
import json, sys
source = sys.argv[1]
d = json.load(sys.stdin)
def days(counts, cap, exempt):
    dates = ["2026-06-0%d" % i for i in range(1, 8)]
    names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    return [{"date": dt, "weekday": n, "people": c, "capacity": cap, "exempt": e}
            for dt, n, c, e in zip(dates, names, counts, exempt)]
A = "cn=rota-team-a,ou=groups,dc=example,dc=org"
B = "cn=rota-team-b,ou=groups,dc=example,dc=org"
common = {"week": "2026-W23", "from": "2026-06-01", "to": "2026-06-07", "membership": source}
want = [
  dict(common, site="hq", timezone="Europe/London", capacity=400,
       days=days([3, 1, 2, 1, 1, 0, 0], 400, [1, 0, 0, 0, 0, 0, 0]),
       distinct_people=5, exempt_admissions=1, exempt_people=1, weekly_target=50,
       rotas=[{"rota": "team-a", "group": A, "members": 6, "attended": 3, "percent": 50.0,
               "target": 50, "met": True, "status": "met"},
              {"rota": "team-b", "group": B, "members": 4, "attended": 1, "percent": 25.0,
               "target": 50, "met": False, "status": "below target"}]),
  dict(common, site="annex", timezone="America/New_York", capacity=20,
       days=days([1, 0, 0, 0, 0, 0, 1], 20, [0] * 7),
       distinct_people=2, exempt_admissions=0, exempt_people=0, weekly_target=80,
       rotas=[{"rota": "team-a", "group": A, "members": 6, "attended": 2, "percent": 33.3,
               "target": 80, "met": False, "status": "below target"}]),
]
synced = [s.pop("snapshot_synced_at") for s in d]
if source == "directory":
    assert synced == [None, None], synced
else:
    assert all(isinstance(x, int) and x > 0 for x in synced), synced
assert d == want, json.dumps(d, indent=1)
' "$1" || { printf '%s\n' "$RG_OUT" >&2; rg_fail "report --format json ($1)"; }
}

echo "== table, live membership (never synced)"
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --site hq
expect_out table-hq <<EOF
$HQ_TABLE
$LIVE
EOF
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --format table
expect_out table-all <<EOF
$HQ_TABLE
$LIVE

$ANNEX_TABLE
$LIVE
EOF

echo "== csv"
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --format csv
expect_out csv-all <<EOF
$CSV_HEADER
$HQ_CSV
$ANNEX_CSV
EOF
rg_expect_exit 0 rg_ctl -c "$CONF" report --site annex --week 2026-W23 --format csv
expect_out csv-annex <<EOF
$CSV_HEADER
$ANNEX_CSV
EOF
live_csv=$RG_OUT

echo "== json"
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --format json
check_json directory

echo "== the week before: only judy (Friday 2026-05-29 at hq)"
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W22 --site hq --format csv
printf '%s\n' "$RG_OUT" | grep -qx 'hq,2026-W22,day,Fri,2026-05-29,1,400,0,,,,,' || rg_fail "W22: $RG_OUT"
printf '%s\n' "$RG_OUT" | grep -qx 'hq,2026-W22,week,,2026-05-25..2026-05-31,1,,0,,,,50,' || rg_fail "W22: $RG_OUT"
printf '%s\n' "$RG_OUT" | grep -qx 'hq,2026-W22,rota,team-a,,,,,6,1,16.7,50,below target' || rg_fail "W22: $RG_OUT"

echo "== independent of the machine's time zone"
for tz in Pacific/Kiritimati Pacific/Pago_Pago America/Adak UTC; do
	rg_expect_exit 0 env TZ="$tz" "$RG_CTL" -c "$CONF" report --week 2026-W23 --site hq
	expect_out "table-hq-${tz//\//-}" <<EOF
$HQ_TABLE
$LIVE
EOF
done

echo "== membership from the snapshot after sync (same figures)"
rg_expect_exit 0 rg_ctl -c "$CONF" sync
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --format json
check_json snapshot
rg_expect_exit 0 rg_ctl -c "$CONF" report --site annex --week 2026-W23 --format csv
[ "$RG_OUT" = "$live_csv" ] || rg_fail "csv from the snapshot differs from live: $RG_OUT"
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --site hq
printf '%s\n' "$RG_OUT" | head -n -1 > "$RG_T/got.snap-table"
printf '%s\n' "$HQ_TABLE" | cmp -s - "$RG_T/got.snap-table" || rg_fail "snapshot table: $RG_OUT"
printf '%s\n' "$RG_OUT" | tail -n 1 |
	grep -Eqx '  membership: snapshot synced [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}Z' ||
	rg_fail "snapshot table, membership line: $RG_OUT"
# the snapshot, not the directory, is used now: a member added in the
# directory only shows after the next sync
printf 'dn: cn=rota-team-b,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=erin,ou=people,dc=example,dc=org\n' |
	rg_slapd_ldap ldapmodify >/dev/null
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --site hq --format csv
printf '%s\n' "$RG_OUT" | grep -qx 'hq,2026-W23,rota,team-b,,,,,4,1,25.0,50,below target' || rg_fail "before re-sync: $RG_OUT"
rg_expect_exit 0 rg_ctl -c "$CONF" sync
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W23 --site hq --format csv
printf '%s\n' "$RG_OUT" | grep -qx 'hq,2026-W23,rota,team-b,,,,,5,1,20.0,50,below target' || rg_fail "after re-sync: $RG_OUT"

echo "== errors exit 2"
rg_expect_exit 2 rg_ctl -c "$CONF" report --week 2026-W23 --site nowhere
grep -q "no site named 'nowhere'" "$RG_T/last.err" || rg_fail "unknown site message"
[ -z "$RG_OUT" ] || rg_fail "unknown site printed: $RG_OUT"
for w in 2026-W54 2027-W53 2026-W00 2026-W5 2026-w23 26-W23 2026W23 2026-W23x ""; do
	rg_expect_exit 2 rg_ctl -c "$CONF" report --week "$w"
	[ -z "$RG_OUT" ] || rg_fail "bad week '$w' printed: $RG_OUT"
done
grep -q "not an ISO week" "$RG_T/last.err" || rg_fail "bad week message"
rg_expect_exit 0 rg_ctl -c "$CONF" report --week 2026-W53 --site hq --format csv # 2026 has 53 weeks
rg_expect_exit 2 rg_ctl -c "$CONF" report --week 2026-W23 --format svgx
rg_expect_exit 2 rg_ctl -c "$CONF" report --site hq
rg_expect_exit 2 rg_ctl -c "$CONF" report --week 2026-W23 extra

echo "PASS"
