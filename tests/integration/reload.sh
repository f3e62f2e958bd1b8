#!/bin/bash
# Hot reload inside one long-lived controller process: good -> broken -> good.
# The broken file never applies (decisions keep the last good config) and
# both changes appear in syslog (config.rejected with file:line, config.loaded
# with the new config_sha, which later decisions carry).
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init reload

CONF="$RG_T/rotagate.conf"
rg_write_config "$CONF" </dev/null
mkdir -p "$RG_T/pam.d"
echo "account required $RG_MODULE conf=$CONF door=main-entrance" > "$RG_T/pam.d/door"
MON=$(python3 -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,1,8,55,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')
mkfifo "$RG_T/step1" "$RG_T/step2"

"$RG_PAM_DRIVER" "$RG_T/pam.d" door --when "$MON" \
	alice @"$RG_T/step1" frank @"$RG_T/step2" grace > "$RG_T/out" &
drv=$!

rg_syslog_wait_lines "$RG_T/out" 1 10
sha1=$(sha256sum "$CONF" | cut -d' ' -f1)

# broken: an unknown day name on line 25 (after a comment line, which
# libconfuse 3.3 would count twice)
sed -i 's/days = { mon, wed, fri }/days = { mon, wed, fry }/' "$CONF"
grep -n 'fry' "$CONF" | cut -d: -f1 > "$RG_T/badline"
echo go > "$RG_T/step1"
rg_syslog_wait_lines "$RG_T/out" 2 10

# good again, but team-a now comes on Tuesdays only: Monday is refused
sed -i 's/days = { mon, wed, fry }/days = { tue }/' "$CONF"
sha2=$(sha256sum "$CONF" | cut -d' ' -f1)
echo go > "$RG_T/step2"
wait $drv

out=$(cat "$RG_T/out")
[ "$out" = "alice PAM_SUCCESS
frank PAM_SUCCESS
grace PAM_PERM_DENIED" ] || { echo "$out"; rg_fail "decisions across reloads"; }

rg_syslog_wait_lines "$RG_SYSLOG_JSON" 6 10
python3 - "$RG_SYSLOG_JSON" "$sha1" "$sha2" "$CONF:$(cat "$RG_T/badline"):" <<'PY' || rg_fail "audit trail of the reloads"
import json, sys, time
path, sha1, sha2, where = sys.argv[1:]
def field(r, k):
    v = r.get("rotagate")
    return v.get(k) if isinstance(v, dict) else r.get("rotagate." + k)
deadline = time.time() + 10
while True:
    recs = [json.loads(l) for l in open(path) if l.strip()]
    evs = [(field(r, "event"), r) for r in recs]
    if sum(1 for e, _ in evs if e.startswith("access.")) >= 3 or time.time() > deadline:
        break
    time.sleep(0.2)
seq = [e for e, _ in evs]
assert seq == ["config.loaded", "access.granted", "config.rejected", "access.granted",
               "config.loaded", "access.denied"], seq
rej = evs[2][1]
assert where in field(rej, "error") and "fry" in field(rej, "error"), field(rej, "error")
assert field(rej, "config_sha") == sha1, "rejected record names the config still in force"
assert field(evs[0][1], "config_sha") == sha1
assert field(evs[3][1], "config_sha") == sha1, "frank was decided by the last good config"
assert field(evs[4][1], "config_sha") == sha2
assert field(evs[5][1], "config_sha") == sha2 and field(evs[5][1], "reason") == "not-on-rota-today"
print("reload: ok")
PY
echo PASS
