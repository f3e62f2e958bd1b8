#!/bin/bash
# pam_rotagate.so through the real Linux-PAM stack (pam_start_confdir: only the
# service file written here is read), against a real slapd and syslog-ng.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init pam

CONF="$RG_T/rotagate.conf"
rg_write_config "$CONF" </dev/null
mkdir -p "$RG_T/pam.d"
echo "account required $RG_MODULE conf=$CONF door=main-entrance" > "$RG_T/pam.d/door"
echo "account required $RG_MODULE conf=$CONF" > "$RG_T/pam.d/door-tty"
echo "account required $RG_MODULE conf=$RG_T/missing.conf door=main-entrance" > "$RG_T/pam.d/no-config"
echo "account required $RG_MODULE conf=$CONF door=main-entrance colour=blue" > "$RG_T/pam.d/bad-arg"

MON=$(python3 -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,1,8,55,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')
TUE=$((MON + 86400))

drive() { "$RG_PAM_DRIVER" "$RG_T/pam.d" "$@"; }
expect() { # expect "OUTPUT" "WANTED"
	[ "$1" = "$2" ] || { printf 'got:\n%s\nwanted:\n%s\n' "$1" "$2" >&2; rg_fail "PAM results differ"; }
}

echo "# return codes of the account phase"
out=$(drive door --when "$MON" alice dave nobody carol 'x*)(uid=*')
expect "$out" "alice PAM_SUCCESS
dave PAM_PERM_DENIED
nobody PAM_USER_UNKNOWN
carol PAM_SUCCESS
x*)(uid=* PAM_USER_UNKNOWN"

out=$(drive door --when "$TUE" alice)
expect "$out" "alice PAM_PERM_DENIED"

echo "# door from PAM_TTY door:NAME; no door is refused"
out=$(drive door-tty --tty door:side-gate --when "$MON" alice)
expect "$out" "alice PAM_SUCCESS"
out=$(drive door-tty --tty door:loading-bay --when "$MON" alice)
expect "$out" "alice PAM_PERM_DENIED"
out=$(drive door-tty --when "$MON" alice)
expect "$out" "alice PAM_PERM_DENIED"

echo "# a broken setup fails closed with PAM_SERVICE_ERR"
out=$(drive no-config --when "$MON" alice)
expect "$out" "alice PAM_SERVICE_ERR"
out=$(drive bad-arg --when "$MON" alice)
expect "$out" "alice PAM_SERVICE_ERR"
echo "bogus" > "$RG_T/garbage.conf"
echo "account required $RG_MODULE conf=$RG_T/garbage.conf door=main-entrance" > "$RG_T/pam.d/garbage"
out=$(drive garbage --when "$MON" alice)
expect "$out" "alice PAM_SERVICE_ERR"

echo "# state survives across transactions: the second swipe of a process is"
echo "# answered from its cache even after the directory went away"
# frank is admitted by one process; a second process looks him up, then slapd
# stops; its next transaction for frank is still decided (re-entry, from the
# cache kept across transactions), and a person never seen there gets
# PAM_AUTHINFO_UNAVAIL.
out=$(drive door --when "$MON" frank)
expect "$out" "frank PAM_SUCCESS"
# a single process doing frank, then (after slapd is stopped) frank and grace:
mkfifo "$RG_T/go"
(
	# "@FILE" makes the driver wait for a line from FILE between transactions
	"$RG_PAM_DRIVER" "$RG_T/pam.d" door --when "$MON" frank @"$RG_T/go" frank grace > "$RG_T/seq.out"
) &
drv=$!
rg_syslog_wait_lines "$RG_T/seq.out" 1 10
rg_slapd_stop "$RG_T/slapd"
echo go > "$RG_T/go"
wait $drv
expect "$(cat "$RG_T/seq.out")" "frank PAM_SUCCESS
frank PAM_SUCCESS
grace PAM_AUTHINFO_UNAVAIL"

echo "# the audit trail has the PAM decisions with the door and reason"
rg_syslog_wait_lines "$RG_SYSLOG_JSON" 10 5
python3 - "$RG_SYSLOG_JSON" <<'PY' || rg_fail "audit records"
import json, sys, time
def field(r, k):
    v = r.get("rotagate")
    return v.get(k) if isinstance(v, dict) else r.get("rotagate." + k)
deadline = time.time() + 10
while True:
    recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    dec = [r for r in recs if str(field(r, "event") or "").startswith("access.")]
    if len(dec) >= 14 or time.time() > deadline: break
    time.sleep(0.2)
frank = [(field(r, "reason"), field(r, "degraded")) for r in dec if field(r, "user") == "frank"]
assert frank == [("rota-day", "0"), ("re-entry", "0"), ("re-entry", "0")], frank
grace = [field(r, "reason") for r in dec if field(r, "user") == "grace"]
assert grace == ["directory-unavailable"], grace
downs = [r for r in recs if field(r, "event") == "directory.down"]
assert len(downs) == 1, "directory.down records: %d" % len(downs)
tty = [r for r in dec if field(r, "door") == "side-gate" and field(r, "user") == "alice"]
assert tty and field(tty[0], "reason") == "re-entry", tty
print("audit: ok")
PY
echo "PASS"
