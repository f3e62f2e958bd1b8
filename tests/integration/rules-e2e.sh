#!/bin/bash
# The full rule language end to end (issue 3): a two-site config with week
# cycles, a night shift, a validity window, closed days, reserved places, an
# exempt and a deny rule, decided through `rotagatectl check` (dry run, with
# its explanation) and `rotagatectl admit` against a real slapd, the LMDB
# ledger and a real syslog-ng.
#
# Every time is given with --at as wall-clock time at the door's site; the
# machine's zone and today's date play no part.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init rules

# ---- people and groups beyond the sample directory
cat > "$RG_T/extra.ldif" <<'LDIF'
dn: uid=nina,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: nina
cn: Nina Nightingale
sn: Nightingale

dn: uid=theo,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: theo
cn: Theo Thirlwell
sn: Thirlwell

dn: uid=sean,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: sean
cn: Sean Summers
sn: Summers

dn: cn=night-shift,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: night-shift
member: uid=nina,ou=people,dc=example,dc=org

dn: cn=rota-thirds,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: rota-thirds
member: uid=theo,ou=people,dc=example,dc=org

dn: cn=summer-staff,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: summer-staff
member: uid=sean,ou=people,dc=example,dc=org
LDIF
rg_slapd_ldap ldapadd -f "$RG_T/extra.ldif" >"$RG_T/extra.log" 2>&1 \
	|| { cat "$RG_T/extra.log" >&2; rg_fail "could not load extra people and groups"; }

# ---- the configuration
# Cycles count from Monday 2026-01-05 (week 1).  For 2-week cycles:
#   week 1: 2026-06-08, 2026-12-21 (W52), 2027-01-04 (W01)
#   week 2: 2026-06-01, 2026-12-28 (ISO W53: ISO parity would wrongly repeat "odd")
# For the 3-week cycle: 06-02 week 1, 06-09 week 2, 06-16 week 3, 06-23 week 1.
CONF="$RG_T/rotagate.conf"
cat > "$CONF" <<CONF
# rotagate.conf for tests/integration/rules-e2e.sh
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
  path = "$RG_T/ledger"
}
audit {
  target = "unix:$RG_SYSLOG_SOCKET"
  facility = authpriv
  ident = "rotagate"
  spool = "$RG_T/spool"
  health-reasons = neutral
}
site "hq" {
  timezone = "Europe/London"
  capacity = 3                  # small, so that reserved places can be shown
  reserved = 1                  # the last place is for exempt staff
  weekly-target = 60
  doors = { "main-entrance", "side-gate" }
  closed = { "2026-12-25", "2026-12-26" }
  on-directory-failure = cached
  /* alternate weeks: A in odd weeks of the cycle, B in even ones */
  rota "team-a" {
    group = "cn=rota-team-a,ou=groups,dc=example,dc=org"
    days = { mon, wed, fri }
    weeks = "1/2"
    cycle-start = "2026-01-05"
  }
  rota "team-b" {
    group = "cn=rota-team-b,ou=groups,dc=example,dc=org"
    days = { monday, wednesday, friday }
    weeks = "2/2"
    cycle-start = "2026-01-05"
    hours = "08:00-18:00"
  }
  rota "thirds" {
    group = "cn=rota-thirds,ou=groups,dc=example,dc=org"
    days = { tue }
    weeks = "3/3"
    cycle-start = "2026-01-05"
  }
  rota "nights" {
    group = "cn=night-shift,ou=groups,dc=example,dc=org"
    days = { wed, sat }
    hours = "22:00-06:00"
  }
  rota "summer" {
    group = "cn=summer-staff,ou=groups,dc=example,dc=org"
    days = { mon, tue, wed, thu, fri }
    from = "2026-06-01"
    until = "2026-08-31"
  }
  exempt "estates" { group = "cn=facilities,ou=groups,dc=example,dc=org" }
  deny "isolating" { group = "cn=self-isolating,ou=groups,dc=example,dc=org" }
}
site "ny" {
  timezone = "America/New_York"
  capacity = 50
  doors = { "ny-lobby" }
  rota "ny-team-b" {
    group = "cn=rota-team-b,ou=groups,dc=example,dc=org"
    days = { mon }
  }
  exempt "ny-estates" { group = "cn=facilities,ou=groups,dc=example,dc=org" }
}
CONF
rg_expect_exit 0 rg_ctl -c "$CONF" config-test
printf '%s\n' "$RG_OUT" | grep -q ': OK, 2 site(s), 3 door(s), ' || rg_fail "config-test: $RG_OUT"

check() { rg_expect_exit "$1" rg_ctl -c "$CONF" check "$2" --door "$3" --at "$4"; }
admit() { rg_expect_exit "$1" rg_ctl -c "$CONF" admit "$2" --door "$3" --at "$4"; }
# explains LINE... : each LINE must be a whole line of the last output
explains() {
	for _l in "$@"; do
		printf '%s\n' "$RG_OUT" | grep -Fxq -- "$_l" || {
			printf '%s\n' "$RG_OUT" >&2
			rg_fail "no line: $_l"
		}
	done
}
# lacks PATTERN... : no line of the last output may match the fixed string
lacks() {
	for _l in "$@"; do
		! printf '%s\n' "$RG_OUT" | grep -Fq -- "$_l" || {
			printf '%s\n' "$RG_OUT" >&2
			rg_fail "unexpected: $_l"
		}
	done
}
# count SITE DATE : admissions in the ledger
count() {
	rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site "$1" --date "$2" --json
	printf '%s\n' "$RG_OUT" | sed -n 's/^ *"count": *\([0-9][0-9]*\),*$/\1/p'
}
stderr_has() {
	grep -Fq -- "$1" "$RG_T/last.err" || { cat "$RG_T/last.err" >&2; rg_fail "stderr lacks: $1"; }
}

A_NOT=' not a member of cn=rota-team-a,ou=groups,dc=example,dc=org'
HQ_HEAD_OPEN='deny '\''isolating'\'': not a member'

echo "# alternate weeks: same weekday, team-a in week 1 of 2, team-b in week 2"
check 1 alice main-entrance "2026-06-01 10:00"
rg_expect_line '^DENY reason=not-on-rota-today site=hq occupancy=0/3$'
explains "2026-06-01 10:00 Europe/London (UTC+01:00), Monday, ISO week 2026-W23, site 'hq'" \
	"$HQ_HEAD_OPEN" \
	"exempt 'estates': not a member of cn=facilities,ou=groups,dc=example,dc=org" \
	"site open on 2026-06-01 (not one of its 2 closed days)" \
	"rota 'team-a': member; Monday is a rota day; week 2 of 2 (cycle from 2026-01-05) is not week 1 -> no match" \
	"rota 'team-b': not a member of cn=rota-team-b,ou=groups,dc=example,dc=org" \
	"rota 'thirds': not a member of cn=rota-thirds,ou=groups,dc=example,dc=org" \
	"rota 'nights': not a member of cn=night-shift,ou=groups,dc=example,dc=org" \
	"rota 'summer': not a member of cn=summer-staff,ou=groups,dc=example,dc=org" \
	"result: DENY not-on-rota-today"
check 0 alice main-entrance "2026-06-08 10:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=0/3$'
explains "rota 'team-a': member; Monday is a rota day; week 1 of 2 (cycle from 2026-01-05); all day -> match" \
	"result: admissible (rota-day, rule 'team-a'), counts on 2026-06-08; capacity is checked next" \
	"ledger: a place is free (dry run), 0/3 on 2026-06-08 (reserved places not usable)"
# the first matching rota decides: later rotas are not listed
lacks "rota 'team-b'"
check 0 bob main-entrance "2026-06-01 10:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-b occupancy=0/3$'
explains "rota 'team-a':$A_NOT" \
	"rota 'team-b': member; Monday is a rota day; week 2 of 2 (cycle from 2026-01-05); 10:00 is within 08:00-18:00 -> match"
check 1 bob main-entrance "2026-06-08 10:00"
rg_expect_line '^DENY reason=not-on-rota-today site=hq occupancy=0/3$'
explains "rota 'team-b': member; Monday is a rota day; week 1 of 2 (cycle from 2026-01-05) is not week 2 -> no match"

echo "# the cycle keeps alternating across ISO week 53 (2026-W53 -> 2027-W01)"
check 1 alice main-entrance "2026-12-28 10:00"
rg_expect_line '^DENY reason=not-on-rota-today site=hq '
explains "2026-12-28 10:00 Europe/London (UTC+00:00), Monday, ISO week 2026-W53, site 'hq'" \
	"rota 'team-a': member; Monday is a rota day; week 2 of 2 (cycle from 2026-01-05) is not week 1 -> no match"
check 0 bob main-entrance "2026-12-28 10:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-b '
check 0 alice main-entrance "2027-01-04 10:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a '
explains "2027-01-04 10:00 Europe/London (UTC+00:00), Monday, ISO week 2027-W01, site 'hq'" \
	"rota 'team-a': member; Monday is a rota day; week 1 of 2 (cycle from 2026-01-05); all day -> match"

echo "# a 3-week rota: one Tuesday in three"
for t in 2026-06-02:1:1 2026-06-09:1:2 2026-06-16:0:3 2026-06-23:1:1; do
	d=${t%%:*}; rest=${t#*:}; want=${rest%%:*}; wk=${rest#*:}
	check "$want" theo side-gate "$d 12:00"
	if [ "$want" = 0 ]; then
		rg_expect_line '^GRANT reason=rota-day site=hq rule=thirds '
		explains "rota 'thirds': member; Tuesday is a rota day; week 3 of 3 (cycle from 2026-01-05); all day -> match"
	else
		rg_expect_line '^DENY reason=not-on-rota-today site=hq '
		explains "rota 'thirds': member; Tuesday is a rota day; week $wk of 3 (cycle from 2026-01-05) is not week 3 -> no match"
	fi
done
check 1 theo side-gate "2026-06-17 12:00"
explains "rota 'thirds': member; Wednesday is not a rota day (tue); week 3 of 3 (cycle from 2026-01-05) -> no match"

echo "# outside-hours (rota day, wrong time) vs not-on-rota-today (wrong day)"
check 1 bob main-entrance "2026-06-01 19:00"
rg_expect_line '^DENY reason=outside-hours site=hq rule=team-b occupancy=0/3$'
explains "rota 'team-b': member; Monday is a rota day; week 2 of 2 (cycle from 2026-01-05); 19:00 is outside 08:00-18:00 -> outside hours" \
	"result: DENY outside-hours (rule 'team-b')"
check 1 bob main-entrance "2026-06-01 18:00"   # the end is exclusive
rg_expect_line '^DENY reason=outside-hours site=hq rule=team-b '
check 0 bob main-entrance "2026-06-01 17:59"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-b '
check 1 bob main-entrance "2026-06-02 10:00"
rg_expect_line '^DENY reason=not-on-rota-today site=hq occupancy=0/3$'
explains "rota 'team-b': member; Tuesday is not a rota day (mon, wed, fri); week 2 of 2 (cycle from 2026-01-05) -> no match" \
	"result: DENY not-on-rota-today"

echo "# night shift 22:00-06:00 on wed and sat: belongs to the day it starts"
check 0 nina side-gate "2026-06-03 22:30"
rg_expect_line '^GRANT reason=rota-day site=hq rule=nights '
explains "rota 'nights': member; night shift 22:00-06:00; Wednesday is a rota day; 22:30 is within the shift that starts at 22:00 today -> match"
check 0 nina side-gate "2026-06-04 05:59"
rg_expect_line '^GRANT reason=rota-day site=hq rule=nights '
check 1 nina side-gate "2026-06-04 06:00"
rg_expect_line '^DENY reason=outside-hours site=hq rule=nights '
explains "rota 'nights': member; night shift 22:00-06:00; Thursday is not a rota day (wed, sat); the shift from Wednesday 2026-06-03 ended at 06:00 -> outside hours"
# 02:00 the morning after a rota day: admitted, counted on the day of the swipe
admit 0 nina side-gate "2026-06-04 02:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=nights occupancy=1/3$'
[ "$(count hq 2026-06-04)" = 1 ] || rg_fail "the 02:00 admission does not count on Thursday"
[ "$(count hq 2026-06-03)" = 0 ] || rg_fail "the 02:00 admission counted on Wednesday"
check 0 nina side-gate "2026-06-04 02:30"
rg_expect_line '^GRANT reason=re-entry site=hq rule=nights occupancy=1/3$'
explains "rota 'nights': member; night shift 22:00-06:00; Thursday is not a rota day (wed, sat); 02:30 belongs to the shift from Wednesday 2026-06-03: Wednesday is a rota day; it runs until 06:00 -> match" \
	"ledger: already admitted on 2026-06-04: re-entry, no place used"
# 02:00 after a non-rota day (Thursday): refused; the day itself is not a rota day either
admit 1 nina side-gate "2026-06-05 02:00"
rg_expect_line '^DENY reason=not-on-rota-today site=hq occupancy=0/3$'
check 1 nina side-gate "2026-06-05 02:00"
explains "rota 'nights': member; night shift 22:00-06:00; Friday is not a rota day (wed, sat); 02:00 belongs to the shift from Thursday 2026-06-04: Thursday is not a rota day (wed, sat) -> no match"
# 02:00 on a rota day after a non-rota day: the shift has not started yet
admit 1 nina side-gate "2026-06-03 02:00"
rg_expect_line '^DENY reason=outside-hours site=hq rule=nights occupancy=0/3$'
check 1 nina side-gate "2026-06-03 02:00"
explains "rota 'nights': member; night shift 22:00-06:00; Wednesday is a rota day; 02:00 belongs to the shift from Tuesday 2026-06-02: Tuesday is not a rota day (wed, sat); today's shift starts at 22:00 -> outside hours"
[ "$(count hq 2026-06-05)" = 0 ] && [ "$(count hq 2026-06-03)" = 0 ] || rg_fail "a refused night swipe was counted"

echo "# validity window: from and until are both included"
check 1 sean main-entrance "2026-05-29 10:00"
rg_expect_line '^DENY reason=not-on-rota-today site=hq '
explains "rota 'summer': member; Friday is a rota day; 2026-05-29 is before the rota starts on 2026-06-01 -> no match"
check 0 sean main-entrance "2026-06-01 10:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=summer '
explains "rota 'summer': member; Monday is a rota day; 2026-06-01 is within the rota's dates 2026-06-01 to 2026-08-31; all day -> match"
admit 0 sean main-entrance "2026-08-31 23:59"
rg_expect_line '^GRANT reason=rota-day site=hq rule=summer occupancy=1/3$'
check 1 sean main-entrance "2026-09-01 00:00"
rg_expect_line '^DENY reason=not-on-rota-today site=hq occupancy=0/3$'
explains "rota 'summer': member; Tuesday is a rota day; 2026-09-01 is after the rota ended on 2026-08-31 -> no match" \
	"result: DENY not-on-rota-today"

echo "# closed day: rota members refused (site-closed), exempt staff admitted"
check 0 alice main-entrance "2026-12-23 10:00"     # Wednesday, week 1: a team-a day
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a '
admit 1 alice main-entrance "2026-12-25 10:00"     # Friday of the same week, closed
rg_expect_line '^DENY reason=site-closed site=hq occupancy=0/3$'
check 1 alice main-entrance "2026-12-25 10:00"
explains "2026-12-25 10:00 Europe/London (UTC+00:00), Friday, ISO week 2026-W52, site 'hq'" \
	"$HQ_HEAD_OPEN" \
	"exempt 'estates': not a member of cn=facilities,ou=groups,dc=example,dc=org" \
	"site closed on 2026-12-25" \
	"result: DENY site-closed"
lacks "rota 'team-a'"
check 1 nina side-gate "2026-12-26 22:30"          # a Saturday night shift on a closed day
rg_expect_line '^DENY reason=site-closed site=hq '
admit 0 carol side-gate "2026-12-25 07:00"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=1/3$'
check 0 carol side-gate "2026-12-25 07:05"
rg_expect_line '^GRANT reason=re-entry site=hq rule=estates occupancy=1/3$'
explains "exempt 'estates': member -> any day, any hour, reserved places too" \
	"site closed on 2026-12-25, but exempt staff may enter" \
	"result: admissible (exempt, rule 'estates'), counts on 2026-12-25; capacity is checked next"

echo "# deny rule beats the rota (dave: team-a and self-isolating, on a team-a day)"
check 1 dave main-entrance "2026-06-08 10:00"
# health-reasons = neutral (the default): the decision line does not name
# the deny rule; only the operator's explanation does
rg_expect_line '^DENY reason=deny-group site=hq occupancy='
explains "deny 'isolating': member -> denied whatever else applies" \
	"result: DENY deny-group (rule 'isolating')"
lacks "rota 'team-a'" "exempt 'estates'"

echo "# reserved places: the last place is for exempt staff; check reserves nothing"
admit 0 alice main-entrance "2026-06-08 09:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=1/3$'
admit 0 frank side-gate "2026-06-08 09:01"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=2/3$'
check 1 grace main-entrance "2026-06-08 09:02"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=2/3$'
explains "rota 'team-a': member; Monday is a rota day; week 1 of 2 (cycle from 2026-01-05); all day -> match" \
	"ledger: 2/3 on 2026-06-08, no place left for non-exempt staff"
check 0 carol main-entrance "2026-06-08 09:02"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=2/3$'
explains "ledger: a place is free (dry run), 2/3 on 2026-06-08 (exempt: reserved places usable)"
# many dry runs, granted and refused, change nothing
before=$(rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-08 --json --names)
for i in 1 2 3; do
	for u in carol grace judy mallory bob heidi; do
		set +e; rg_ctl -c "$CONF" check "$u" --door side-gate --at "2026-06-08 1$i:00" >/dev/null 2>&1
		rc=$?; set -e
		[ $rc -le 1 ] || rg_fail "check $u exited $rc"
	done
done
after=$(rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-08 --json --names)
[ "$before" = "$after" ] || rg_fail "checks changed the ledger: $before -> $after"
[ "$(count hq 2026-06-08)" = 2 ] || rg_fail "occupancy after checks is not 2"
[ "$(count hq 2026-06-01)" = 0 ] || rg_fail "checks on 2026-06-01 reserved a place"
[ "$(count hq 2026-06-16)" = 0 ] || rg_fail "checks on 2026-06-16 reserved a place"
admit 0 carol main-entrance "2026-06-08 09:03"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=3/3$'
admit 1 grace main-entrance "2026-06-08 09:04"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=3/3$'

echo "# --at in a DST gap is an error that says the time does not exist"
for cmd in check admit; do
	rg_expect_exit 2 rg_ctl -c "$CONF" $cmd alice --door main-entrance --at "2026-03-29 01:30"
	[ -z "$RG_OUT" ] || rg_fail "$cmd printed a decision for a time that does not exist: $RG_OUT"
	stderr_has "2026-03-29 01:30 does not exist in Europe/London (clocks go forward)"
done
[ "$(count hq 2026-03-29)" = 0 ] || rg_fail "a rejected --at reserved a place"
# each site's own zone: the London gap exists in New York, New York's gap does not
rg_expect_exit 2 rg_ctl -c "$CONF" check bob --door ny-lobby --at "2026-03-08 02:30"
stderr_has "2026-03-08 02:30 does not exist in America/New_York (clocks go forward)"
check 1 bob ny-lobby "2026-03-29 01:30"
rg_expect_line '^DENY reason=not-on-rota-today site=ny occupancy=0/50$'
explains "2026-03-29 01:30 America/New_York (UTC-04:00), Sunday, ISO week 2026-W13, site 'ny'"

echo "# an ambiguous --at needs an offset; both offsets are accepted"
for cmd in check admit; do
	rg_expect_exit 2 rg_ctl -c "$CONF" $cmd nina --door side-gate --at "2026-10-25 01:30"
	[ -z "$RG_OUT" ] || rg_fail "$cmd decided an ambiguous time: $RG_OUT"
	stderr_has "2026-10-25 01:30 is ambiguous in Europe/London (clocks go back); add an offset such as +01:00 or +00:00"
done
# 01:30 BST and 01:30 GMT are one hour apart but the same wall-clock minute of
# the same day: both fall in Saturday's night shift and count on Sunday
rg_expect_exit 0 rg_ctl -c "$CONF" check nina --door side-gate --at "2026-10-25 01:30+01:00" --json
printf '%s' "$RG_OUT" > "$RG_T/bst.json"
rg_expect_exit 0 rg_ctl -c "$CONF" check nina --door side-gate --at "2026-10-25 01:30+00:00" --json
printf '%s' "$RG_OUT" > "$RG_T/gmt.json"
python3 - "$RG_T/bst.json" "$RG_T/gmt.json" <<'PY' || rg_fail "ambiguous time with offsets"
import json, sys
bst, gmt = (json.load(open(p)) for p in sys.argv[1:3])
assert bst["when"] == 1792888200, bst["when"]          # 2026-10-25T00:30:00Z
assert gmt["when"] - bst["when"] == 3600, (bst["when"], gmt["when"])
for d in (bst, gmt):
    assert d["verdict"] == "GRANT" and d["reason"] == "rota-day" and d["rule"] == "nights", d
    assert d["local_date"] == "2026-10-25" and d["dry_run"] is True, d
assert "\n2026-10-25 01:30 Europe/London (UTC+01:00), Sunday, ISO week 2026-W43, site 'hq'\n" in bst["explain"], bst["explain"]
assert "\n2026-10-25 01:30 Europe/London (UTC+00:00), Sunday, ISO week 2026-W43, site 'hq'\n" in gmt["explain"], gmt["explain"]
line = ("rota 'nights': member; night shift 22:00-06:00; Sunday is not a rota day (wed, sat); "
        "01:30 belongs to the shift from Saturday 2026-10-24: Saturday is a rota day; it runs until 06:00 -> match")
assert line in bst["explain"].splitlines() and line in gmt["explain"].splitlines(), bst["explain"]
PY
# the real decisions: the first 01:30 takes a place, the second is a re-entry
admit 0 nina side-gate "2026-10-25 01:30+01:00"
rg_expect_line '^GRANT reason=rota-day site=hq rule=nights occupancy=1/3$'
admit 0 nina side-gate "2026-10-25 01:30+00:00"
rg_expect_line '^GRANT reason=re-entry site=hq rule=nights occupancy=1/3$'
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-10-25 --json --names
printf '%s' "$RG_OUT" | python3 -c '
import json,sys
d=json.load(sys.stdin)[0]
assert d["count"]==1 and [a["user"] for a in d["admissions"]]==["nina"], d
assert d["admissions"][0]["when"]==1792888200, d
' || rg_fail "ledger after the two 01:30 swipes"
# "Z" is an offset too: 00:30Z is the first 01:30
check 0 nina side-gate "2026-10-25 00:30Z"
explains "2026-10-25 01:30 Europe/London (UTC+01:00), Sunday, ISO week 2026-W43, site 'hq'"

echo "# the second site decides on its own local date"
# 04:30 in London on Tuesday is 23:30 on Monday in New York: a ny-team-b day
check 0 bob ny-lobby "2026-06-02 04:30+01:00"
rg_expect_line '^GRANT reason=rota-day site=ny rule=ny-team-b occupancy=0/50$'
explains "2026-06-01 23:30 America/New_York (UTC-04:00), Monday, ISO week 2026-W23, site 'ny'" \
	"exempt 'ny-estates': not a member of cn=facilities,ou=groups,dc=example,dc=org" \
	"rota 'ny-team-b': member; Monday is a rota day; all day -> match" \
	"result: admissible (rota-day, rule 'ny-team-b'), counts on 2026-06-01; capacity is checked next"
lacks "rota 'team-b'" "isolating" "site 'hq'"
admit 0 bob ny-lobby "2026-06-01 23:30"
rg_expect_line '^GRANT reason=rota-day site=ny rule=ny-team-b occupancy=1/50$'
check 1 bob ny-lobby "2026-06-02 00:30"
rg_expect_line '^DENY reason=not-on-rota-today site=ny occupancy=0/50$'
[ "$(count ny 2026-06-01)" = 1 ] && [ "$(count hq 2026-06-01)" = 0 ] || rg_fail "ny admission in the wrong ledger"

echo "# check --json carries the explanation"
rg_expect_exit 1 rg_ctl -c "$CONF" check alice --door main-entrance --at "2026-06-01 10:00" --json
printf '%s' "$RG_OUT" | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d["verdict"]=="DENY" and d["reason"]=="not-on-rota-today" and d["dry_run"] is True, d
assert d["site"]=="hq" and d["local_date"]=="2026-06-01" and d["occupancy"]==0, d
ex=d["explain"].splitlines()
for want in ("2026-06-01 10:00 Europe/London (UTC+01:00), Monday, ISO week 2026-W23, site '"'"'hq'"'"'",
             "rota '"'"'team-a'"'"': member; Monday is a rota day; week 2 of 2 (cycle from 2026-01-05) is not week 1 -> no match",
             "result: DENY not-on-rota-today"):
    assert want in ex, (want, ex)
' || rg_fail "check --json explanation"

echo "PASS"
