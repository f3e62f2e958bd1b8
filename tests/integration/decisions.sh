#!/bin/bash
# End-to-end decisions through rotagatectl against a real slapd, the LMDB
# ledger and a real syslog-ng.  Times are passed with --at in Europe/London.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init decisions

CONF="$RG_T/rotagate.conf"
RG_CAPACITY=3 rg_write_config "$CONF" </dev/null
decisions=0
admit() { decisions=$((decisions + 1)); rg_expect_exit "$1" rg_ctl -c "$CONF" admit "$2" --door "$3" --at "$4"; }
check() { decisions=$((decisions + 1)); rg_expect_exit "$1" rg_ctl -c "$CONF" check "$2" --door "$3" --at "$4"; }

MON="2026-06-01 08:55"   # a Monday
TUE="2026-06-02 09:10"
SUN="2026-06-07 10:00"

echo "# on-rota day granted"
admit 0 alice main-entrance "$MON"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=1/3$'

echo "# off-rota day denied"
admit 1 alice main-entrance "$TUE"
rg_expect_line '^DENY reason=not-on-rota-today site=hq occupancy=0/3$'

echo "# deny group wins over rota (dave is in team-a and self-isolating)"
admit 1 dave main-entrance "$MON"
rg_expect_line '^DENY reason=deny-group site=hq'

echo "# exempt granted on any day"
admit 0 carol side-gate "$SUN"
rg_expect_line '^GRANT reason=exempt site=hq rule=estates occupancy=1/3$'

echo "# a dry run explains and reserves nothing"
check 0 frank side-gate "$MON"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=1/3$'
printf '%s\n' "$RG_OUT" | grep -q "team-a" || rg_fail "check did not explain the rota"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-01 --json
printf '%s' "$RG_OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[0]["count"]==1, d' \
	|| rg_fail "check reserved a place"

echo "# capacity reached denies the next new person"
admit 0 frank side-gate "$MON"
rg_expect_line 'occupancy=2/3$'
admit 0 grace main-entrance "2026-06-01 09:01"
rg_expect_line '^GRANT reason=rota-day site=hq rule=team-a occupancy=3/3$'
admit 1 judy main-entrance "2026-06-01 09:02"
rg_expect_line '^DENY reason=capacity-full site=hq rule=team-a occupancy=3/3$'

echo "# re-entry of an admitted person is granted without using a place"
admit 0 alice side-gate "2026-06-01 13:30"
rg_expect_line '^GRANT reason=re-entry site=hq rule=team-a occupancy=3/3$'
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-01 --json --names
printf '%s' "$RG_OUT" | python3 -c '
import json,sys
d=json.load(sys.stdin)[0]
assert d["count"]==3, d
assert sorted(a["user"] for a in d["admissions"])==["alice","frank","grace"], d
' || rg_fail "ledger does not hold exactly alice, frank, grace"

echo "# a new day starts a fresh count"
admit 0 judy main-entrance "2026-06-03 08:00"
rg_expect_line 'occupancy=1/3$'

echo "# unknown person"
admit 1 nobody main-entrance "$MON"
rg_expect_line '^DENY reason=unknown-person site=hq'

echo "# unknown door"
admit 1 alice back-window "$MON"
rg_expect_line '^DENY reason=unknown-door'

echo "# LDAP filter injection matches nobody"
for evil in '*)(uid=*' '*' 'alice)(uid=*' '*)(|(uid=*' 'al*'; do
	admit 1 "$evil" main-entrance "2026-06-03 09:00"
	rg_expect_line '^DENY reason=(unknown-person|bad-input) '
done

echo "# --json prints the decision struct"
decisions=$((decisions + 1))
rg_expect_exit 0 rg_ctl -c "$CONF" admit bob --door main-entrance --at "$TUE" --json
printf '%s' "$RG_OUT" | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d["verdict"]=="GRANT" and d["reason"]=="rota-day" and d["rule"]=="team-b", d
assert d["site"]=="hq" and d["capacity"]==3 and d["occupancy"]==1 and d["local_date"]=="2026-06-02", d
for k in ("degraded","data_age","latency_us","config_sha"): assert k in d, k
' || rg_fail "--json output"

echo "# syslog-ng received one parseable record per decision"
rg_syslog_wait_lines "$RG_SYSLOG_JSON" 1 5
python3 - "$RG_SYSLOG_JSON" "$decisions" <<'PY' || rg_fail "audit records"
import json, sys
path, want = sys.argv[1], int(sys.argv[2])
import time
deadline = time.time() + 10
while True:
    recs = [json.loads(l) for l in open(path) if l.strip()]
    def field(r, k):
        return r.get("rotagate", {}).get(k) if isinstance(r.get("rotagate"), dict) else r.get("rotagate." + k)
    dec = [r for r in recs if str(field(r, "event") or "").startswith("access.")]
    if len(dec) >= want or time.time() > deadline:
        break
    time.sleep(0.2)
assert len(dec) == want, "decision records: %d, decisions: %d" % (len(dec), want)
need = ["event", "seq", "config_sha", "user", "door", "site", "rule", "verdict", "reason",
        "occupancy", "capacity", "degraded", "data_age", "latency_us"]
for r in dec:
    for k in need:
        assert field(r, k) is not None, "record lacks %s: %r" % (k, r)
ok = [r for r in dec if field(r, "user") == "alice" and field(r, "reason") == "re-entry"]
assert len(ok) == 1 and field(ok[0], "verdict") == "GRANT" and field(ok[0], "door") == "side-gate", ok
inj = [r for r in dec if field(r, "user") == "*)(uid=*"]
assert len(inj) == 1 and field(inj[0], "verdict") == "DENY", inj
loaded = [r for r in recs if field(r, "event") == "config.loaded"]
assert loaded and all(field(r, "config_sha") == field(dec[0], "config_sha") for r in loaded)
print("audit: %d decision records, all fields present" % len(dec))
PY

echo "# config-test on a broken config prints file:line and exits 2"
BROKEN="$RG_T/broken.conf"
cp "$CONF" "$BROKEN"
# line 9 gets an unknown key
sed -i '9i\  bogus-key = 1' "$BROKEN"
rg_expect_exit 2 rg_ctl -c "$BROKEN" config-test
grep -Eq "^$BROKEN:9: .*bogus-key" "$RG_T/last.err" || { cat "$RG_T/last.err"; rg_fail "no file:line message"; }
rg_expect_exit 0 rg_ctl -c "$CONF" config-test

echo "PASS"
