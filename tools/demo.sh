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
swipes="07:41 carol side-gate
07:52 alice main-entrance
08:03 dave main-entrance
08:10 frank side-gate
08:14 bob main-entrance
08:31 grace main-entrance
08:40 erin side-gate
08:47 judy main-entrance
08:55 mallory side-gate
09:02 x*)(uid=* main-entrance
09:20 alice side-gate
09:45 oscar main-entrance
10:30 nobody main-entrance"
while read -r hhmm who door; do
	when=$(python3 -c 'import sys,datetime,zoneinfo; print(int(datetime.datetime.fromisoformat("2026-06-01 "+sys.argv[1]).replace(tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))' "$hhmm")
	res=$("$RG_PAM_DRIVER" "$RG_T/pam.d" door --tty "door:$door" --when "$when" "$who")
	printf '  %s  %-13s %-10s -> %s\n' "$hhmm" "$door" "$who" "${res##* }"
done <<<"$swipes"

echo
echo "What rotagatectl says about the day:"
"$RG_CTL" -c "$CONF" occupancy --site hq --date 2026-06-01 --names | sed 's/^/  /'
echo
echo "Why was erin turned away? (rotagatectl check, a dry run that reserves nothing)"
"$RG_CTL" -c "$CONF" check erin --door side-gate --at "2026-06-01 08:40" | sed 's/^/  /' || true
echo
rg_syslog_wait_lines "$RG_SYSLOG_JSON" 14 10 || true
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
