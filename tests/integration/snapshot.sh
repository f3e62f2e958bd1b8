#!/bin/bash
# lookup = snapshot (issue 4): decisions read only the membership snapshot that
# `rotagatectl sync` fills from the directory; with the directory gone they
# still work; before any sync they are ERROR directory-unavailable; a sync
# that fails leaves the previous snapshot in use.  Through rotagatectl and the
# real PAM stack; swipes on Monday 2026-06-01 (Europe/London).
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init snapshot
PY=$(python3 -c 'import sys; print(sys.executable)')   # not a version-manager shim

CONF="$RG_T/rotagate.conf"
rg_write_config "$CONF" </dev/null
sed -i 's|^  tls = none$|  tls = none\n  lookup = snapshot|' "$CONF"
grep -q '^  lookup = snapshot$' "$CONF" || rg_fail "could not set lookup = snapshot"
rg_expect_exit 0 rg_ctl -c "$CONF" config-test

MON="2026-06-01 08:55"
WHEN=$("$PY" -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,1,8,55,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')
decisions=0
admit() { # admit EXIT USER: a real decision in a new process; first line in RG_OUT
	decisions=$((decisions + 1))
	rg_expect_exit "$1" rg_ctl -c "$CONF" admit "$2" --door main-entrance --at "$MON"
}
sync_snapshot() { rg_expect_exit "$1" rg_ctl -c "$CONF" sync; }

echo "# before any sync: no data, even though the directory is up"
admit 2 alice
rg_expect_line '^ERROR reason=directory-unavailable site=hq'
rg_expect_exit 2 rg_ctl -c "$CONF" check alice --door main-entrance --at "$MON"
decisions=$((decisions + 1))
printf '%s\n' "$RG_OUT" | grep -q 'never synced' || rg_fail "check does not explain the missing sync: $RG_OUT"

echo "# sync: every member of every configured group (11 people in 4 groups)"
sync_snapshot 0
printf '%s\n' "$RG_OUT" | grep -Eq '^synced 11 person\(s\) from 4 group\(s\)' ||
	rg_fail "unexpected sync summary: $RG_OUT"

echo "# decisions read the snapshot only: a directory change is not seen before the next sync"
rg_slapd_ldap ldapmodify >/dev/null <<'LDIF'
dn: cn=rota-team-a,ou=groups,dc=example,dc=org
changetype: modify
add: member
member: uid=erin,ou=people,dc=example,dc=org
LDIF
admit 1 erin
rg_expect_line '^DENY reason=unknown-person site=hq'

echo "# the directory gone: decisions still work from the snapshot"
rg_slapd_stop "$RG_T/slapd"
admit 0 alice
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=1/400$'
admit 1 dave
rg_expect_line '^DENY reason=deny-group site=hq'
admit 1 erin
rg_expect_line '^DENY reason=unknown-person site=hq'
admit 0 carol
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=2/400$'
admit 1 bob
rg_expect_line '^DENY reason=not-on-rota-today site=hq'
rg_expect_exit 0 rg_ctl -c "$CONF" admit frank --door main-entrance --at "$MON" --json
decisions=$((decisions + 1))
printf '%s' "$RG_OUT" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
assert d["verdict"] == "GRANT" and d["reason"] == "rota-day" and d["data_age"] >= 0, d' ||
	rg_fail "frank from the snapshot: $RG_OUT"

echo "# the same through the real PAM stack"
mkdir -p "$RG_T/pam.d"
echo "account required $RG_MODULE conf=$CONF door=side-gate" > "$RG_T/pam.d/door"
out=$("$RG_PAM_DRIVER" "$RG_T/pam.d" door --when "$WHEN" alice dave erin grace)
decisions=$((decisions + 4))
[ "$out" = "alice PAM_SUCCESS
dave PAM_PERM_DENIED
erin PAM_USER_UNKNOWN
grace PAM_SUCCESS" ] || rg_fail "PAM decisions from the snapshot: $out"

echo "# sync with the directory down fails (exit 2) and keeps the old snapshot"
sync_snapshot 2
grep -q 'snapshot unchanged' "$RG_T/last.err" || rg_fail "sync failure not explained: $(cat "$RG_T/last.err")"
admit 0 alice
rg_expect_line '^GRANT reason=re-entry site=hq rule=team-a occupancy=4/400$'
admit 0 judy
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=5/400$'
admit 1 erin
rg_expect_line '^DENY reason=unknown-person site=hq'

echo "# directory back: the next sync brings the change in"
rg_slapd_restart "$RG_T/slapd" || rg_fail "slapd did not restart"
sync_snapshot 0
printf '%s\n' "$RG_OUT" | grep -Eq '^synced 12 person\(s\)' || rg_fail "unexpected sync summary: $RG_OUT"
rg_slapd_stop "$RG_T/slapd"
admit 0 erin
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=6/400$'

echo "# audit: exactly one record per decision, with the reason shown above"
"$PY" - "$RG_SYSLOG_JSON" "$decisions" <<'PY' || rg_fail "audit records"
import json, sys, time
want = int(sys.argv[2])
deadline = time.time() + 10
while True:
    recs = [json.loads(l).get("rotagate") for l in open(sys.argv[1]) if l.strip()]
    acc = [r for r in recs if isinstance(r, dict) and r["event"].startswith("access.")]
    if len(acc) >= want or time.time() > deadline:
        break
    time.sleep(0.2)
time.sleep(0.3)
recs = [json.loads(l).get("rotagate") for l in open(sys.argv[1]) if l.strip()]
acc = [r for r in recs if isinstance(r, dict) and r["event"].startswith("access.")]
assert len(acc) == want, "%d decision records, expected %d" % (len(acc), want)
got = [(r["user"], r["reason"]) for r in acc]
assert got[:2] == [("alice", "directory-unavailable")] * 2, got
erin = [r["reason"] for r in acc if r["user"] == "erin"]
assert erin == ["unknown-person"] * 4 + ["rota-day"], erin
print("audit: ok")
PY
echo "PASS"
