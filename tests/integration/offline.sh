#!/bin/bash
# Decisions while the directory is down (issue 4), through rotagatectl and one
# long-lived PAM process, against a real slapd that the test stops and restarts.
#
#   on-directory-failure = cached (site default), lookup = live:
#     known people keep their answer, marked degraded with its data_age, until
#     offline-max-age: a new process from the persistent snapshot written
#     through by the live lookup, the PAM process from its in-memory cache;
#     people never seen get ERROR directory-unavailable; once slapd is back,
#     decisions are live again.
#   on-directory-failure = deny: once cache-ttl passed, every decision is an
#     ERROR directory-unavailable.
#   directory.down / directory.up: one record per state change of a process,
#     not one per decision.
#
# cache-ttl = 1 s and offline-max-age = 12 s keep the real waits short; the
# swipe time itself is passed explicitly (Monday 2026-06-01 08:55, London).
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init offline
# the interpreter itself, not a version-manager shim (which costs a second per call under load)
PY=$(python3 -c 'import sys; print(sys.executable)')
T_START=$(date +%s.%N)
say() { printf "[%5.1f s] %s\n" "$("$PY" -c 'import sys,time; print(time.time()-float(sys.argv[1]))' "$T_START")" "$*"; }

TTL=1
MAXAGE=12
AT="2026-06-01 08:55"
WHEN=$("$PY" -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,1,8,55,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')

# rg_write_config's file with short cache times, a failure policy and a ledger dir
write_conf() { # write_conf FILE POLICY LEDGERDIR
	rg_write_config "$1" </dev/null
	mkdir -p "$3"
	sed -i -e "s|^  tls = none\$|  tls = none\n  cache-ttl = $TTL\n  offline-max-age = $MAXAGE|" \
		-e "s|^  capacity = \(.*\)\$|  capacity = \1\n  on-directory-failure = $2|" \
		-e "s|^  path = \"$RG_T/ledger\"\$|  path = \"$3\"|" "$1"
	grep -q "offline-max-age = $MAXAGE" "$1" && grep -q "on-directory-failure = $2" "$1" &&
		grep -q "path = \"$3\"" "$1" || rg_fail "could not write $1"
	rg_expect_exit 0 rg_ctl -c "$1" config-test
}
CACHED="$RG_T/cached.conf"
DENY="$RG_T/deny.conf"
write_conf "$CACHED" cached "$RG_T/ledger-cached"
write_conf "$DENY" deny "$RG_T/ledger-deny"

# decide EXIT CONF USER [DOOR]: a real decision (admit) in a new process, --json in RG_OUT
decide() {
	rg_expect_exit "$1" rg_ctl -c "$2" admit "$3" --door "${4:-main-entrance}" --at "$AT" --json
}
# expect_json 'PYTHON-CONDITION' on d = the decision printed by the last decide
expect_json() {
	printf '%s' "$RG_OUT" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
if not eval(sys.argv[1]):
    sys.exit("decision %s does not satisfy: %s" % (json.dumps(d), sys.argv[1]))' "$1" ||
		rg_fail "$2"
}
now() { date +%s.%N; }
sleep_until() { # sleep_until EPOCH.FRACTION
	"$PY" -c 'import sys,time; d=float(sys.argv[1])-time.time(); time.sleep(d if d > 0 else 0)' "$1"
}
plus() { "$PY" -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]))' "$1" "$2"; }

# PAM services: the same configs, at the side-gate (so its records are told apart)
mkdir -p "$RG_T/pam.d"
echo "account required $RG_MODULE conf=$CACHED door=side-gate" > "$RG_T/pam.d/cached"
echo "account required $RG_MODULE conf=$DENY door=side-gate" > "$RG_T/pam.d/deny"
# The drivers reopen their fifo at every "@FIFO" step: a writer such as
# `echo go > FIFO` that has not closed yet when the driver reopens makes it
# read end-of-file.  So this shell holds each fifo open read-write for the
# whole run (never blocks, never EOF) and writes one line per step; when the
# shell exits, the drivers see end-of-file and stop.
mkfifo "$RG_T/go" "$RG_T/go-deny"
exec 7<>"$RG_T/go" 8<>"$RG_T/go-deny"
release() { # release FD OUTFILE LINES: let the driver run its next step, wait for LINES lines
	echo go >&"$1"
	rg_syslog_wait_lines "$2" "$3" 15 || rg_fail "PAM driver did not print $3 lines: $(cat "$2")"
}
expect_pam() { # expect_pam FILE "WANTED LINES"
	[ "$(cat "$1")" = "$2" ] || {
		printf 'got:\n%s\nwanted:\n%s\n' "$(cat "$1")" "$2" >&2
		rg_fail "PAM results differ"
	}
}

# pam_record PID N: "verdict reason degraded data_age" of the Nth (from 1)
# decision record of process PID, once it has arrived
pam_record() {
	"$PY" - "$RG_SYSLOG_JSON" "$1" "$2" <<'PY' || rg_fail "no decision record $2 from process $1"
import json, sys, time
deadline = time.time() + 10
while True:
    acc = []
    for l in open(sys.argv[1]):
        r = json.loads(l).get("rotagate") if l.strip() else None
        if isinstance(r, dict) and r.get("pid") == sys.argv[2] and r["event"].startswith("access."):
            acc.append(r)
    if len(acc) >= int(sys.argv[3]):
        r = acc[int(sys.argv[3]) - 1]
        print(r["verdict"], r["reason"], r["degraded"], r["data_age"])
        break
    if time.time() > deadline:
        sys.exit(1)
    time.sleep(0.1)
PY
}
PAM_CACHED= PAM_DENY=
stop_drivers() { # the drivers are ours: never leave one waiting on its fifo
	for p in $PAM_CACHED $PAM_DENY; do kill "$p" 2>/dev/null || true; done
}
trap '_rc=$?; set +e; stop_drivers; (exit $_rc); rg__cleanup' EXIT

say "# directory up: live answers (degraded = false, data_age = 0)"
decide 0 "$DENY" alice
expect_json 'd["verdict"] == "GRANT" and d["degraded"] is False and d["data_age"] == 0' \
	"live decision for alice (deny policy)"
FIRST_FETCH=$(now)   # every live answer used offline below is fetched after this ...
# One long-lived PAM process per config: "@FIFO" makes it wait between steps.
# cached: alice live | down, TTL passed: alice bob alice bob carol |
#         offline-max-age passed: alice bob | back: alice (repeated until live)
RETRIES=16
back=""
for _ in $(seq $RETRIES); do back="$back @$RG_T/go alice"; done
# shellcheck disable=SC2086
"$RG_PAM_DRIVER" "$RG_T/pam.d" cached --when "$WHEN" alice \
	@"$RG_T/go" alice bob alice bob carol @"$RG_T/go" alice bob $back > "$RG_T/pam-cached.out" &
PAM_CACHED=$!
"$RG_PAM_DRIVER" "$RG_T/pam.d" deny --when "$WHEN" alice @"$RG_T/go-deny" alice bob \
	> "$RG_T/pam-deny.out" &
PAM_DENY=$!
rg_syslog_wait_lines "$RG_T/pam-cached.out" 1 15
rg_syslog_wait_lines "$RG_T/pam-deny.out" 1 15
expect_pam "$RG_T/pam-cached.out" "alice PAM_SUCCESS"
expect_pam "$RG_T/pam-deny.out" "alice PAM_SUCCESS"
[ "$(pam_record "$PAM_CACHED" 1)" = "GRANT rota-day 0 0" ] || rg_fail "PAM: alice not live at first"
decide 0 "$CACHED" alice
expect_json 'd["verdict"] == "GRANT" and d["reason"] == "re-entry" and d["degraded"] is False and d["data_age"] == 0' \
	"live decision for alice (cached policy, new process)"
LIVE_DONE=$(now)   # ... and before this

say "# slapd stopped"
rg_slapd_stop "$RG_T/slapd"
sleep_until "$(plus "$LIVE_DONE" $((TTL + 1)).05)"   # cache-ttl has passed for every answer
ELAPSED=$((TTL + 1))

say "# cached policy, long-lived PAM process: alice from its cache (degraded), others unavailable"
release 7 "$RG_T/pam-cached.out" 6
expect_pam "$RG_T/pam-cached.out" "alice PAM_SUCCESS
alice PAM_SUCCESS
bob PAM_AUTHINFO_UNAVAIL
alice PAM_SUCCESS
bob PAM_AUTHINFO_UNAVAIL
carol PAM_AUTHINFO_UNAVAIL"
for n in 2 4; do
	rec=$(pam_record "$PAM_CACHED" $n)
	set -- $rec
	[ "$1 $2 $3" = "GRANT rota-day 1" ] || [ "$1 $2 $3" = "GRANT re-entry 1" ] ||
		rg_fail "PAM: alice offline: '$rec', expected a degraded GRANT"
	[ "$4" -ge $ELAPSED ] && [ "$4" -le $MAXAGE ] || rg_fail "PAM: alice offline: data_age $4, expected $ELAPSED..$MAXAGE"
done

say "# cached policy, new process: alice from the snapshot (degraded), others unavailable"
decide 0 "$CACHED" alice
expect_json "d['verdict'] == 'GRANT' and d['reason'] == 're-entry' and d['degraded'] is True and $ELAPSED <= d['data_age'] <= $MAXAGE" \
	"alice offline (new process): GRANT, degraded, data_age >= $ELAPSED"
decide 2 "$CACHED" bob
expect_json 'd["verdict"] == "ERROR" and d["reason"] == "directory-unavailable" and d["degraded"] is False' "bob offline"
# this had to happen within offline-max-age of the first live answer
"$PY" -c 'import sys,time; sys.exit(time.time() - float(sys.argv[1]) >= int(sys.argv[2]))' "$FIRST_FETCH" $MAXAGE ||
	rg_fail "the machine is too slow for offline-max-age = $MAXAGE: the checks above came too late"

say "# deny policy: every decision is an error once cache-ttl passed"
decide 2 "$DENY" alice
expect_json 'd["verdict"] == "ERROR" and d["reason"] == "directory-unavailable" and d["degraded"] is False' \
	"alice offline with on-directory-failure = deny"
decide 2 "$DENY" bob
expect_json 'd["verdict"] == "ERROR" and d["reason"] == "directory-unavailable"' "bob offline (deny)"
release 8 "$RG_T/pam-deny.out" 3
wait $PAM_DENY
DENY_PID=$PAM_DENY PAM_DENY=   # reaped: nothing to stop any more
expect_pam "$RG_T/pam-deny.out" "alice PAM_SUCCESS
alice PAM_AUTHINFO_UNAVAIL
bob PAM_AUTHINFO_UNAVAIL"

say "# offline-max-age passed: alice is no longer served from old data"
sleep_until "$(plus "$LIVE_DONE" $((MAXAGE + 1)).05)"
decide 2 "$CACHED" alice
expect_json 'd["verdict"] == "ERROR" and d["reason"] == "directory-unavailable"' \
	"alice after offline-max-age (new process)"
release 7 "$RG_T/pam-cached.out" 8
expect_pam "$RG_T/pam-cached.out" "alice PAM_SUCCESS
alice PAM_SUCCESS
bob PAM_AUTHINFO_UNAVAIL
alice PAM_SUCCESS
bob PAM_AUTHINFO_UNAVAIL
carol PAM_AUTHINFO_UNAVAIL
alice PAM_AUTHINFO_UNAVAIL
bob PAM_AUTHINFO_UNAVAIL"

say "# slapd back: live again (new processes at once)"
rg_slapd_restart "$RG_T/slapd" || rg_fail "slapd did not restart"
decide 0 "$CACHED" alice
expect_json 'd["verdict"] == "GRANT" and d["reason"] == "re-entry" and d["degraded"] is False and d["data_age"] == 0' \
	"alice live again (cached policy)"
decide 1 "$CACHED" bob side-gate   # bob is team-b: a live, definitive answer
expect_json 'd["verdict"] == "DENY" and d["reason"] == "not-on-rota-today"' "bob live again"
decide 0 "$DENY" alice
expect_json 'd["verdict"] == "GRANT" and d["degraded"] is False' "alice live again (deny policy)"

say "# slapd back: the PAM process reconnects (after its retry backoff, bounded)"
# the session skips a failed server for a backoff (1 s doubling): ask again
# every 0.5 s until the answer is live (degraded = 0 in its audit record; an
# answer may also come, degraded, from the snapshot the processes above
# refreshed); a few unavailable or degraded answers may come first
lines=8
live=0
for _ in $(seq $RETRIES); do
	lines=$((lines + 1))
	release 7 "$RG_T/pam-cached.out" $lines
	rec=$(pam_record "$PAM_CACHED" $lines)
	case "$(tail -n1 "$RG_T/pam-cached.out") $rec" in
	"alice PAM_SUCCESS GRANT re-entry 0 0") live=1; break ;;
	"alice PAM_SUCCESS GRANT re-entry 1 "*) ;;
	"alice PAM_AUTHINFO_UNAVAIL ERROR directory-unavailable 0 0") ;;
	*) rg_fail "unexpected answer in the PAM process: $(tail -n1 "$RG_T/pam-cached.out") / $rec" ;;
	esac
	sleep 0.5
done
[ $live = 1 ] || rg_fail "the PAM process did not get live answers within $((RETRIES / 2)) s of slapd's return"
while [ $lines -lt $((8 + RETRIES)) ]; do   # let the driver finish
	lines=$((lines + 1))
	release 7 "$RG_T/pam-cached.out" $lines
done
wait $PAM_CACHED
CACHED_PID=$PAM_CACHED PAM_CACHED=
tail -n +$((8 + 1)) "$RG_T/pam-cached.out" | sed -n '/PAM_SUCCESS/,$p' | grep -v -x 'alice PAM_SUCCESS' &&
	rg_fail "after reconnecting the PAM process gave a non-GRANT answer"

say "# audit: one record per decision; directory.down/up once per state change"
"$PY" - "$RG_SYSLOG_JSON" "$CACHED_PID" "$DENY_PID" "$MAXAGE" "$TTL" "$(wc -l < "$RG_T/pam-cached.out")" <<'PY' || rg_fail "audit records"
import json, sys, time
path, pam_cached, pam_deny = sys.argv[1], sys.argv[2], sys.argv[3]
maxage, ttl, want_cached = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

def load():
    out = []
    for l in open(path):
        l = l.strip()
        if l:
            r = json.loads(l).get("rotagate")
            if isinstance(r, dict):
                out.append(r)
    return out

def of(recs, pid):
    return [r for r in recs if r.get("pid") == pid]

deadline = time.time() + 15
while True:
    recs = load()
    acc_c = [r for r in of(recs, pam_cached) if r["event"].startswith("access.")]
    acc_d = [r for r in of(recs, pam_deny) if r["event"].startswith("access.")]
    if (len(acc_c) >= want_cached and len(acc_d) >= 3) or time.time() > deadline:
        break
    time.sleep(0.2)

# --- the long-lived PAM process with the cached policy
ev = of(recs, pam_cached)
acc = [r for r in ev if r["event"].startswith("access.")]
assert len(acc) == want_cached, "PAM (cached): %d decision records, expected %d" % (len(acc), want_cached)
downs = [i for i, r in enumerate(ev) if r["event"] == "directory.down"]
ups = [i for i, r in enumerate(ev) if r["event"] == "directory.up"]
assert len(downs) == 1, "PAM (cached): %d directory.down records, expected 1" % len(downs)
assert len(ups) == 1, "PAM (cached): %d directory.up records, expected 1" % len(ups)
down, up = downs[0], ups[0]
assert down < up, "directory.up before directory.down"
summary = [(r["user"], r["verdict"], r["reason"], r["degraded"]) for r in acc]
# first: live
assert summary[0] == ("alice", "GRANT", "rota-day", "0"), summary[0]
assert all(r["door"] == "side-gate" for r in acc), "door"
assert all(ev.index(r) > down for r in acc[1:]), "directory.down is not before the first offline decision"
offline = [r for r in acc[1:] if ev.index(r) < up]
back = [r for r in acc if ev.index(r) > up]
# while down: alice bob alice bob carol (cache-ttl passed: alice degraded from
# the cache with its age, the others never seen), then alice bob after
# offline-max-age, then (slapd back, the session still in its retry backoff)
# alice unavailable, or degraded from the snapshot other processes refreshed
assert [r["user"] for r in offline[:7]] == ["alice", "bob", "alice", "bob", "carol", "alice", "bob"], offline
for i, r in enumerate(offline):
    if i in (0, 2):
        assert r["verdict"] == "GRANT" and r["degraded"] == "1" and ttl < int(r["data_age"]) <= maxage, r
    elif i < 7 or r["degraded"] == "0":
        assert (r["verdict"], r["reason"], r["degraded"]) == ("ERROR", "directory-unavailable", "0"), r
    else:
        assert (r["user"], r["verdict"], r["degraded"]) == ("alice", "GRANT", "1"), r
# back: live (then, within cache-ttl, the fresh live answer from the cache)
assert back and (back[0]["verdict"], back[0]["degraded"], back[0]["data_age"]) == ("GRANT", "0", "0"), back[0]
for r in back:
    assert (r["user"], r["verdict"], r["degraded"]) == ("alice", "GRANT", "0") and int(r["data_age"]) <= ttl, r

# --- the PAM process with the deny policy: live grant, then errors, no degraded answer
ev = of(recs, pam_deny)
acc = [r for r in ev if r["event"].startswith("access.")]
assert [(r["user"], r["verdict"], r["reason"], r["degraded"]) for r in acc] == [
    ("alice", "GRANT", "re-entry", "0"),
    ("alice", "ERROR", "directory-unavailable", "0"),
    ("bob", "ERROR", "directory-unavailable", "0")], acc
assert sum(r["event"] == "directory.down" for r in ev) == 1, "PAM (deny): directory.down count"
assert sum(r["event"] == "directory.up" for r in ev) == 0, "PAM (deny): directory.up count"

# every decision of every process produced exactly one record (by seq per pid)
for pid in {r.get("pid") for r in recs}:
    seqs = [int(r["seq"]) for r in recs if r.get("pid") == pid]
    assert len(seqs) == len(set(seqs)), "pid %s: a record was written twice" % pid
print("audit: ok")
PY
echo "PASS"
