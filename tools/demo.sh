#!/bin/bash
# rotagate demo: a simulated Monday morning at two doors of "hq", decided by
# pam_rotagate.so through the real PAM stack, against a throwaway slapd with
# the sample directory, an LMDB ledger in a temp dir and a throwaway syslog-ng
# that receives the audit records.  Run by `make demo` from the build dir.
set -e
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$PWD}"
export top_srcdir top_builddir
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init demo

CONF="$RG_T/rotagate.conf"
RG_CAPACITY=6 rg_write_config "$CONF" </dev/null
# places kept for exempt staff: the last one of the six
sed -i 's/^  capacity = 6$/  capacity = 6\n  reserved = 1/' "$CONF"
mkdir -p "$RG_T/pam.d"
echo "account required $RG_MODULE conf=$CONF" > "$RG_T/pam.d/door"

cat <<'TXT'
== rotagate demo ==
site hq (Europe/London): doors main-entrance, side-gate; capacity 6, 1 kept for exempt staff
rota team-a: Mon/Wed/Fri   rota team-b: Tue/Thu   exempt: facilities   deny: self-isolating
Monday 2026-06-01, one door controller process, one PAM transaction per swipe:

TXT
cat > "$RG_T/morning" <<'TXT'
07:41 side-gate carol
07:52 main-entrance alice
08:03 main-entrance dave
08:10 side-gate frank
08:14 main-entrance bob
08:31 main-entrance grace
08:40 side-gate erin
08:47 main-entrance judy
08:55 side-gate mallory
09:02 main-entrance x*)(uid=*
09:20 side-gate alice
09:45 main-entrance oscar
10:30 main-entrance nobody
TXT
# "UNIXTIME door:NAME USER" lines for the driver: one controller process,
# one PAM transaction per swipe, the time of each swipe passed in
python3 - "$RG_T/morning" > "$RG_T/swipes" <<'PY'
import sys, datetime, zoneinfo
london = zoneinfo.ZoneInfo("Europe/London")
for line in open(sys.argv[1]):
    hhmm, door, user = line.rstrip("\n").split(" ", 2)
    t = datetime.datetime.fromisoformat("2026-06-01 " + hhmm).replace(tzinfo=london)
    print(int(t.timestamp()), "door:" + door, user)
PY
"$RG_PAM_DRIVER" "$RG_T/pam.d" door --swipes "$RG_T/swipes" > "$RG_T/results"
rg_syslog_wait_lines "$RG_SYSLOG_JSON" 14 10
python3 - "$RG_T/morning" "$RG_T/results" "$RG_SYSLOG_JSON" <<'PY'
import json, sys
def field(r, k):
    v = r.get("rotagate")
    return v.get(k, "") if isinstance(v, dict) else r.get("rotagate." + k, "")
swipes = [l.rstrip("\n").split(" ", 2) for l in open(sys.argv[1])]
results = [l.rstrip("\n").rsplit(" ", 1)[1] for l in open(sys.argv[2])]
recs = [json.loads(l) for l in open(sys.argv[3]) if l.strip()]
decisions = [r for r in recs if field(r, "event").startswith("access.")]
print("  time  door          user       PAM result             decision")
for (hhmm, door, user), pam, r in zip(swipes, results, decisions):
    dec = "%s %s" % (field(r, "verdict"), field(r, "reason"))
    if field(r, "site"):
        dec += " occupancy=%s/%s" % (field(r, "occupancy"), field(r, "capacity"))
    print("  %s %-13s %-10s %-22s %s" % (hhmm, door, user, pam, dec))
PY
echo
echo "What rotagatectl says about the day:"
"$RG_CTL" -c "$CONF" occupancy --site hq --date 2026-06-01 --names | sed 's/^/  /'
echo
echo "Why was erin turned away? (rotagatectl check, a dry run that reserves nothing)"
"$RG_CTL" -c "$CONF" check erin --door side-gate --at "2026-06-01 08:40" | sed 's/^/  /' || true
echo
rg_syslog_wait_lines "$RG_SYSLOG_JSON" 17 10 || true
echo "Audit records received by syslog-ng ($RG_SYSLOG_JSON), parsed into fields:"
python3 - "$RG_SYSLOG_JSON" <<'PY'
import json, sys
def field(r, k):
    v = r.get("rotagate")
    return v.get(k, "") if isinstance(v, dict) else r.get("rotagate." + k, "")
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    r = json.loads(line)
    ev = field(r, "event")
    if ev.startswith("access."):
        print("  seq=%-3s %-15s user=%-10s door=%-13s verdict=%-5s reason=%-18s occupancy=%s/%s" % (
            field(r, "seq"), ev, field(r, "user"), field(r, "door"), field(r, "verdict"),
            field(r, "reason"), field(r, "occupancy"), field(r, "capacity")))
    else:
        print("  seq=%-3s %-15s config_sha=%s" % (field(r, "seq"), ev, field(r, "config_sha")[:12]))
PY
echo
echo "(demo files in $RG_T are removed on exit; set RG_KEEP=1 to keep them)"
