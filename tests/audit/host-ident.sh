#!/bin/bash
# The host's syslog identity survives loading, using and unloading the module.
#
# tests/audit/host-app plays a door controller: openlog("door-controller",
# LOG_PID, LOG_LOCAL3), syslog(), dlopen(pam_rotagate.so), rotagate_plugin_v1(),
# open a config, a few decisions (times passed explicitly), close, dlclose(),
# then syslog() again from two threads.  Its syslog() goes to /dev/log, which
# for the host alone (a private mount namespace: unshare -m as root, else
# unshare -Urm) is a socket of a second, throwaway syslog-ng ("the host's
# syslog"); rotagate's records go to their configured target.
#
# Asserted:
#  - the host's lines, before and after, arrive at the host's syslog with
#    ident door-controller, facility local3 and the host's pid;
#  - rotagate's records arrive with ident rotagate and facility authpriv, one
#    per decision, with the decision's fields: run 1 with target unix:SOCKET
#    (another syslog-ng), run 2 with target "syslog" (the same /dev/log as the
#    host: two identities side by side on one socket);
#  - the host neither crashes nor stops logging after dlclose().
# A module calling openlog() (or evt_log(), which does) makes the host's later
# lines carry rotagate's ident/facility, or a dangling ident: this test fails.
#
# pam_rotagate.so is linked -z nodelete (its per-config state must outlive
# pam_end), so dlclose() does not unmap it; that is by design, and host-app
# reports it ("mapped-after-dlclose 1") without this test depending on it.
# The host's syslog identity must be its own regardless: rotagate never calls
# openlog(), so nothing of the host's state points into the module.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"

HOST_APP=$top_builddir/tests/audit/host-app
[ -x "$HOST_APP" ] || rg_fail "$HOST_APP not built"

# A private mount namespace in which /dev/log can be replaced.  Skip only when
# the kernel (or the container) does not allow one.
probe=$(mktemp -d "${TMPDIR:-/tmp}/rg-nsprobe.XXXXXX")
NS=
if [ "$(id -u)" = 0 ] &&
	unshare -m --propagation private sh -c 'mount -t tmpfs rg-probe "$1"' sh "$probe" 2>"$probe.err"; then
	NS="unshare -m --propagation private"
elif unshare -Urm --propagation private sh -c 'mount -t tmpfs rg-probe "$1"' sh "$probe" 2>>"$probe.err"; then
	NS="unshare -Urm --propagation private"
fi
why=$(cat "$probe.err")
rm -rf "$probe" "$probe.err"
if [ -z "$NS" ]; then
	echo "SKIP: cannot create a mount namespace to give the host its own /dev/log" \
		"(unshare -m as root, or unshare -Urm): $why"
	exit 77
fi

rg_test_init host-ident
CONF1=$RG_T/rotagate-unix.conf
rg_write_config "$CONF1" </dev/null # audit target = unix:$RG_SYSLOG_SOCKET
CONF2=$RG_T/rotagate-syslog.conf
sed 's|^  target = .*|  target = "syslog"|' "$CONF1" >"$CONF2"
grep -q '^  target = "syslog"$' "$CONF2" || rg_fail "could not set audit.target = syslog"
AUDIT_JSON=$RG_SYSLOG_JSON

# the host's syslog: a second syslog-ng whose JSON file keeps program door-controller
# (host-app's lines have the "EVENT; key='value'" shape the include parses);
# /dev/log is its plain rfc3164 socket, like a distribution's /dev/log source
RG_SYSLOG_IDENT=door-controller rg_syslog_start "$RG_T/hostlog" || rg_fail "host syslog-ng did not start"
HOST_SOCK=$RG_SYSLOG_PLAIN
HOST_JSON=$RG_SYSLOG_JSON
HOST_RAW=$RG_SYSLOG_RAW
hi_cleanup() {
	rc=$?
	set +e # (exit $rc) below must not end the shell before rg__cleanup runs
	rg_syslog_stop "$RG_T/hostlog" >/dev/null 2>&1
	(exit $rc)
	rg__cleanup # stops slapd and the audit syslog-ng, keeps $RG_T on failure
}
trap hi_cleanup EXIT

# Inside the namespace: a tmpfs /dev with the usual nodes bound from the real
# one, and /dev/log bound to the host's syslog socket; then exec the command.
NS_SETUP='set -e
sock=$1; real=$2; shift 2
mkdir -p "$real"
mount --rbind /dev "$real"
mount -t tmpfs -o mode=0755 rg-dev /dev
for n in null zero full random urandom tty; do
	if [ -e "$real/$n" ]; then : >"/dev/$n"; mount --bind "$real/$n" "/dev/$n"; fi
done
for d in shm pts mqueue; do
	if [ -d "$real/$d" ]; then mkdir "/dev/$d"; mount --rbind "$real/$d" "/dev/$d"; fi
done
ln -s /proc/self/fd /dev/fd
ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr
: >/dev/log
mount --bind "$sock" /dev/log
exec "$@"'

run_host() { # TAG CONF REQUEST...
	_tag=$1 _conf=$2
	shift 2
	set +e
	$NS sh -c "$NS_SETUP" sh "$HOST_SOCK" "$RG_T/realdev-$_tag" \
		"$HOST_APP" "$RG_MODULE" "$_conf" "$_tag" "$@" >"$RG_T/$_tag.out" 2>"$RG_T/$_tag.err"
	_rc=$?
	set -e
	if [ $_rc != 0 ] || [ "$(tail -n1 "$RG_T/$_tag.out")" != done ]; then
		sed 's/^/  out| /' "$RG_T/$_tag.out" >&2
		sed 's/^/  err| /' "$RG_T/$_tag.err" >&2
		rg_fail "$_tag: host-app exited with $_rc (a crash after dlclose shows here)"
	fi
	cat "$RG_T/$_tag.out"
}

# 2026-06-01 08:55 Europe/London (BST, a Monday) = 2026-06-01T07:55:00Z
MON=1780300500

echo "# run 1: audit.target = unix:<syslog-ng socket>"
run_host run1 "$CONF1" alice:main-entrance:$MON bob:main-entrance:$MON \
	dave:side-gate:$MON nobody:main-entrance:$MON alice:side-gate:$((MON + 3600))
echo "# run 2: audit.target = syslog (/dev/log, shared with the host)"
run_host run2 "$CONF2" carol:main-entrance:$MON frank:side-gate:$MON

# host lines: 4 per run; rotagate records: config.loaded + 5 decisions (run 1)
# (a shortfall is not fatal here: the checks below say what is missing)
rg_syslog_wait_lines "$HOST_JSON" 8 10 || true
rg_syslog_wait_lines "$AUDIT_JSON" 6 10 || true
rg_syslog_wait_lines "$HOST_RAW" 11 10 || true
sleep 0.3 # anything extra (a stray record) would arrive now

python3 - "$RG_T" "$HOST_JSON" "$HOST_RAW" "$AUDIT_JSON" <<'EOF'
import json, re, sys

t, host_json, host_raw, audit_json = sys.argv[1:]
LOCAL3, AUTHPRIV, INFO = 19, 10, 6
SEV = {"access.granted": 6, "access.denied": 5, "access.error": 3, "config.loaded": 6}
errors = []

def err(msg):
    errors.append(msg)

def host_out(tag):
    pid, decisions = None, []
    for line in open("%s/%s.out" % (t, tag)):
        w = line.split()
        if w[0] == "pid":
            pid = w[1]
        elif w[0] == "decision":
            decisions.append(dict(zip(("user", "door", "verdict", "reason"), w[1:])))
    return pid, decisions

runs = {tag: host_out(tag) for tag in ("run1", "run2")}
want_msgs = [("host.before", None), ("host.after", "1"), ("host.after", "2"), ("host.after", "3")]
want = {
    "run1": [("alice", "GRANT", "rota-day"), ("bob", "DENY", "not-on-rota-today"),
             ("dave", "DENY", "deny-group"), ("nobody", "DENY", "unknown-person"),
             ("alice", "GRANT", "re-entry")],
    "run2": [("carol", "GRANT", "exempt"), ("frank", "GRANT", "rota-day")],
}
for tag, (pid, decs) in runs.items():
    got = [(d["user"], d["verdict"], d["reason"]) for d in decs]
    if got != want[tag]:
        err("%s: decisions %s, expected %s" % (tag, got, want[tag]))

# 1. the host's own lines, parsed by the host's syslog-ng (program door-controller)
host = [json.loads(l) for l in open(host_json)]
for tag, (pid, _) in runs.items():
    mine = [r for r in host if r.get("rotagate", {}).get("tag") == tag]
    msgs = [(r["rotagate"].get("event"), r["rotagate"].get("n")) for r in mine]
    if msgs != want_msgs:
        err("%s: host lines at the host's syslog: %s, expected %s" % (tag, msgs, want_msgs))
    for r in mine:
        if (r.get("PROGRAM"), r.get("FACILITY"), r.get("PRIORITY"), r.get("PID")) != \
                ("door-controller", "local3", "info", pid):
            err("%s: host line with the wrong identity: %s" % (tag, r))
if len(host) != 8:
    err("host's syslog kept %d door-controller lines, expected 8" % len(host))

# 2. everything at the host's socket, as sent: host lines <158>door-controller[pid],
#    and (run 2 only) rotagate's records as authpriv rotagate[pid]
RAW = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+?)\[(\d+)\]: (.*)$")
raw_rg = {"run1": [], "run2": []}
by_pid = {pid: tag for tag, (pid, _) in runs.items()}
for line in open(host_raw):
    line = line.rstrip("\n")
    m = RAW.match(line)
    if not m or m.group(3) not in by_pid:
        err("unexpected line at the host's /dev/log: %r" % line)
        continue
    pri, ident, tag, msg = int(m.group(1)), m.group(2), by_pid[m.group(3)], m.group(4)
    if ident == "door-controller":
        if pri != LOCAL3 * 8 + INFO:
            err("%s: host line with PRI %d, expected local3.info: %r" % (tag, pri, line))
    elif ident == "rotagate":
        ev = msg.split(";", 1)[0]
        if pri >> 3 != AUTHPRIV or pri & 7 != SEV.get(ev, -1):
            err("%s: rotagate record with PRI %d: %r" % (tag, pri, line))
        raw_rg[tag].append((ev, msg))
    else:
        err("%s: line with ident %r at the host's /dev/log: %r" % (tag, ident, line))
if raw_rg["run1"]:
    err("run1: rotagate records went to /dev/log, not to their unix: target: %s" % raw_rg["run1"])
events2 = [ev for ev, _ in raw_rg["run2"]]
if events2 != ["config.loaded", "access.granted", "access.granted"]:
    err("run2: rotagate records at /dev/log: %s" % events2)
access2 = [x for x in raw_rg["run2"] if x[0].startswith("access.")]
for (ev, msg), (user, verdict, reason) in zip(access2, want["run2"]):
    for kv in ("user='%s'" % user, "verdict='%s'" % verdict, "reason='%s'" % reason,
               "pid='%s'" % runs["run2"][0]):
        if kv not in msg:
            err("run2: %s missing from %r" % (kv, msg))

# 3. rotagate's records of run 1, parsed by the shipped syslog-ng include
pid1, decs1 = runs["run1"]
audit = [json.loads(l) for l in open(audit_json)]
recs = [r for r in audit if r.get("PID") == pid1]
if len(recs) != len(audit):
    err("records of other processes at rotagate's target: %s" % [r for r in audit if r not in recs])
events = [r["rotagate"].get("event") for r in recs]
want_events = ["config.loaded"] + ["access.granted" if v == "GRANT" else "access.denied"
                                   for _, v, _ in want["run1"]]
if events != want_events:
    err("run1: rotagate events %s, expected %s" % (events, want_events))
seqs = [int(r["rotagate"].get("seq", 0)) for r in recs]
if seqs != list(range(seqs[0] if seqs else 1, (seqs[0] if seqs else 1) + len(seqs))):
    err("run1: seq not consecutive: %s" % seqs)
for r in recs:
    f = r["rotagate"]
    if (r.get("PROGRAM"), r.get("FACILITY"), f.get("pid")) != ("rotagate", "authpriv", pid1):
        err("run1: rotagate record with the wrong identity: %s" % r)
    if not re.fullmatch(r"[0-9a-f]{64}", f.get("config_sha", "")):
        err("run1: config_sha %r" % f.get("config_sha"))
for r, d in zip(recs[1:], decs1):
    f = r["rotagate"]
    at = "2026-06-01T08:55:00Z" if d["door"] == "side-gate" and d["user"] == "alice" \
        else "2026-06-01T07:55:00Z"
    exp = {"user": d["user"], "door": d["door"], "verdict": d["verdict"], "reason": d["reason"],
           "site": "hq", "at": at, "dry_run": "0", "capacity": "400",
           # no site-local date is worked out for a person the directory lacks
           "date": "" if d["reason"] == "unknown-person" else "2026-06-01"}
    bad = {k: (f.get(k), v) for k, v in exp.items() if f.get(k) != v}
    if bad:
        err("run1: record for %s: (got, expected) %s" % (d["user"], bad))

for e in errors:
    print("FAIL:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
echo "ok: host ident/facility unchanged; rotagate records as rotagate/authpriv"
