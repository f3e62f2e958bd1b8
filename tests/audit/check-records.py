#!/usr/bin/env python3
"""Check the rotagate records syslog-ng wrote (tests/fixtures/syslog-ng.sh).

check-records.py AUDIT_JSON --pid PID [--records N] [--replayed K]
                 [--hostile HEX] [--format rfc3164|rfc5424]
                 [--decisions FILE [--reasons R1,R2,...] [--capacity K]]
                 [--results FILE --stopped T1,T2 [--raw RAW]] [--replayed-sum S]

For every record of process PID: the fields parsed into rotagate.*, seq
strictly increasing in arrival order with no gap and no repeat, pid matches.
--records N: exactly N test.record records, (thread, i) pairs complete, each once.
--replayed K: an audit.replayed with count >= K (records queued behind the
              spooled ones while it drained count too); 0: there is none.
--replayed-sum S: the counts of all audit.replayed records of PID add up to
              at least S and at most S + their number (an audit.replayed
              that had to wait in the spool itself is counted by the next).
--decisions FILE: FILE is tests/audit/decide-driver's output.  The access.*
              records of PID and the driver's decisions match one to one
              (by `at`, unique per decision): same user (unescaped: the
              bytes sent), door, verdict, reason, site, rule, occupancy,
              capacity, date, degraded, data_age, latency_us, config_sha;
              event and PRIORITY follow the verdict; every decision field
              is present; each driver thread's records arrive in the
              order it decided them; the only other events are one
              config.loaded (the first record) and audit.replayed.
  --reasons R1,...: each of these reasons occurs among the decisions.
  --capacity K: no one took a place (GRANT rota-day or exempt) twice,
              at most K did, and no decision reports an occupancy above K.
--results FILE --stopped T1,T2 [--raw RAW]: for a run during which
              syslog-ng went away and came back: FILE holds audit-driver's
              "i rc start end" lines (rc 0 delivered, 1 spooled; times
              CLOCK_MONOTONIC us): the sender lost none.  Every check above
              applies unchanged (each record once, in order, none missing:
              copies sent again are dropped by the include).  With RAW
              (the fixture's raw.log) the number of records syslog-ng
              received more than once is printed.
--wait SECONDS: re-read the file until the checks pass or SECONDS pass.
--hostile HEX: exactly one test.hostile record whose user renders the bytes HEX
               safely (no quote, backslash or control character except in \\xHH
               escapes) and unambiguously (unescaping gives HEX back), with no
               field other than the ones sent.
"""
import json
import re
import sys
import time

SAFE = re.compile(r'^(?:[^\x00-\x1f\x7f-\x9f\'"\\]|\\x[0-9a-f]{2})*$')


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        if s.startswith("\\x", i):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += s[i].encode("utf-8")
            i += 1
    return bytes(out)


DECISION_FIELDS = ("event", "seq", "pid", "config_sha", "user", "door", "site", "rule",
                   "verdict", "reason", "occupancy", "capacity", "degraded", "data_age",
                   "latency_us", "at", "date", "dry_run")
DRIVER_COLUMNS = ("i", "thread", "user_hex", "door", "at", "verdict", "reason", "site", "rule",
                  "occupancy", "capacity", "date", "degraded", "data_age", "latency_us",
                  "config_sha", "call_us", "offcpu_us")
EVENT_OF = {"GRANT": ("access.granted", "info"), "DENY": ("access.denied", "notice"),
            "ERROR": ("access.error", "err")}


def read_decisions(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("pid ") or line.startswith("done "):
                continue
            cols = line.split("\t")
            if len(cols) != len(DRIVER_COLUMNS):
                fail("bad driver line: %r" % line)
            out.append(dict(zip(DRIVER_COLUMNS, cols)))
    if not out:
        fail("no decisions in %s" % path)
    return out


def check_decisions(recs, opts):
    """recs: [(obj, rg)] of one pid in arrival order."""
    want = read_decisions(opts["decisions"])
    access = [(k, obj, rg) for k, (obj, rg) in enumerate(recs)
              if rg.get("event", "").startswith("access.")]
    others = [rg for _, rg in recs if not rg.get("event", "").startswith("access.")]
    for rg in others:
        if rg["event"] not in ("config.loaded", "audit.replayed"):
            fail("unexpected record: %s" % rg)
    loaded = [rg for rg in others if rg["event"] == "config.loaded"]
    if len(loaded) != 1 or recs[0][1]["event"] != "config.loaded":
        fail("expected one config.loaded, first: %s" % loaded)
    by_at = {}
    for k, obj, rg in access:
        missing = [f for f in DECISION_FIELDS if f not in rg]
        if missing:
            fail("decision record without %s: %s" % (missing, rg))
        if rg["at"] in by_at:
            fail("two records for the decision at %s:\n %s\n %s" % (rg["at"], by_at[rg["at"]][2], rg))
        by_at[rg["at"]] = (k, obj, rg)
    if len(access) != len(want):
        fail("%d access.* records for %d decisions" % (len(access), len(want)))
    last_seq = {}
    for d in want:
        got = by_at.get(d["at"])
        if got is None:
            fail("no record for decision %s" % d)
        _, obj, rg = got
        if unescape(rg["user"]) != bytes.fromhex(d["user_hex"]):
            fail("user %r in the record, %r decided" % (rg["user"], bytes.fromhex(d["user_hex"])))
        for f in ("door", "verdict", "reason", "site", "rule", "occupancy", "capacity", "date",
                  "degraded", "data_age", "latency_us", "config_sha"):
            if rg[f] != d[f]:
                fail("%s: %r in the record, %r decided: %s / %s" % (f, rg[f], d[f], rg, d))
        event, prio = EVENT_OF[d["verdict"]]
        if rg["event"] != event or obj.get("PRIORITY") != prio or rg["dry_run"] != "0":
            fail("event/priority/dry_run do not fit %s: %s" % (d["verdict"], obj))
        seq = int(rg["seq"])
        if seq <= last_seq.get(d["thread"], 0):
            fail("thread %s: decision %s (seq %d) recorded before an earlier one (seq %d)" %
                 (d["thread"], d["i"], seq, last_seq[d["thread"]]))
        last_seq[d["thread"]] = seq
    mix = {}
    for d in want:
        mix[(d["verdict"], d["reason"])] = mix.get((d["verdict"], d["reason"]), 0) + 1
    for r in filter(None, opts.get("reasons", "").split(",")):
        if not any(reason == r for _, reason in mix):
            fail("no decision with reason %s; the mix was %s" % (r, mix))
    if "capacity" in opts:
        cap = int(opts["capacity"])
        firsts = [bytes.fromhex(d["user_hex"]) for d in want
                  if d["verdict"] == "GRANT" and d["reason"] in ("rota-day", "exempt")]
        if len(firsts) > cap or len(set(firsts)) != len(firsts):
            fail("places taken by %s, capacity %d" % (firsts, cap))
        if max(int(d["occupancy"]) for d in want) > cap:
            fail("an occupancy above the capacity %d" % cap)
    return " ".join("%s/%s=%d" % (v, r, n) for (v, r), n in sorted(mix.items()))


def check_results(opts):
    """The sender's own answers: every record delivered or spooled."""
    results = {}
    with open(opts["results"], encoding="utf-8") as f:
        for line in f:
            i, rc, t0, t1 = line.split()
            results[i] = (int(rc), int(t0), int(t1))
    bad = [i for i, r in results.items() if r[0] not in (0, 1)]
    if bad:
        fail("records lost by the sender itself: %s" % bad[:10])


RAW_SEQ = re.compile(r"\bseq='(\d+)', pid='(\d+)'")


def copies_received(raw, pid):
    """How many records of pid syslog-ng received more than once (raw.log:
    everything received, before the include's parsing and dropping)."""
    seen, copies = set(), 0
    with open(raw, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = RAW_SEQ.search(line)
            if not m or m.group(2) != pid:
                continue
            if m.group(1) in seen:
                copies += 1
            seen.add(m.group(1))
    return copies


def check(path, opts):
    pid = opts["pid"]
    recs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                obj = json.loads(line)
            except ValueError as e:
                fail("line %d of %s is not JSON: %s" % (n, path, e))
            rg = obj.get("rotagate")
            if not isinstance(rg, dict):
                fail("line %d has no rotagate fields: %s" % (n, line.strip()))
            if rg.get("pid") == pid:
                recs.append((obj, rg, line))
    if not recs:
        fail("no record from pid %s in %s" % (pid, path))
    if "stopped" in opts:
        check_results(opts)
    recs = [(obj, rg) for obj, rg, _ in recs]

    # seq: 1..M in arrival order, none twice, none missing
    seqs = [int(rg["seq"]) for _, rg in recs]
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        bad = next(k for k in range(1, len(seqs)) if seqs[k] != seqs[k - 1] + 1)
        fail("seq not contiguous in arrival order at record %d: ... %s ..." %
             (bad, seqs[max(0, bad - 3):bad + 3]))
    for obj, rg in recs:
        if obj.get("PROGRAM") != "rotagate" or obj.get("PID") != pid:
            fail("syslog header mismatch: %s" % obj)
        if obj.get("FACILITY") != "authpriv":
            fail("facility is not authpriv: %s" % obj)
        if "config_sha" not in rg or rg.get("event") is None:
            fail("record without config_sha/event: %s" % rg)
        if "format" in opts:
            is5424 = "MSGID" in obj
            if is5424 != (opts["format"] == "rfc5424"):
                fail("record not in %s: %s" % (opts["format"], obj))

    if "records" in opts:
        want = int(opts["records"])
        tr = [rg for _, rg in recs if rg["event"] == "test.record"]
        if len(tr) != want:
            fail("%d test.record records, expected %d" % (len(tr), want))
        pairs = set()
        for rg in tr:
            for k in ("user", "thread", "i", "note"):
                if k not in rg:
                    fail("field %s missing: %s" % (k, rg))
            if rg["note"] != "a, b=c; d":
                fail("note did not parse back as one field: %r" % rg["note"])
            if rg["user"] != "user-%s-%s" % (rg["thread"], rg["i"]):
                fail("fields mixed up: %s" % rg)
            pairs.add((rg["thread"], rg["i"]))
        if len(pairs) != want:
            fail("%d distinct records, expected %d" % (len(pairs), want))

    if "replayed" in opts:
        want = int(opts["replayed"])
        rp = [(k, rg) for k, (_, rg) in enumerate(recs) if rg["event"] == "audit.replayed"]
        if want == 0:
            if rp:
                fail("unexpected audit.replayed: %s" % rp)
        else:
            if not any(int(rg.get("count", "0")) >= want for _, rg in rp):
                fail("expected an audit.replayed with count >= %d, got %s" % (want, rp))

    if "replayed-sum" in opts:
        want = int(opts["replayed-sum"])
        rp = [int(rg.get("count", "0")) for _, rg in recs if rg["event"] == "audit.replayed"]
        if not want <= sum(rp) <= want + len(rp):
            fail("audit.replayed counts %s, expected them to add up to %d (+ at most %d)" %
                 (rp, want, len(rp)))

    mix = ""
    if "decisions" in opts:
        mix = "; " + check_decisions(recs, opts)

    if "hostile" in opts:
        raw = bytes.fromhex(opts["hostile"])
        hs = [rg for _, rg in recs if rg["event"] == "test.hostile"]
        if len(hs) != 1:
            fail("%d test.hostile records, expected 1" % len(hs))
        rg = hs[0]
        if set(rg) != {"event", "seq", "pid", "config_sha", "user", "door"}:
            fail("fields injected or lost: %s" % sorted(rg))
        if rg["door"] != "main" or rg["config_sha"] != "0123456789abcdef":
            fail("neighbouring fields garbled: %s" % rg)
        if not SAFE.match(rg["user"]):
            fail("user rendering is not safe: %r" % rg["user"])
        if unescape(rg["user"]) != raw:
            fail("user rendering is ambiguous: %r -> %r, sent %r" %
                 (rg["user"], unescape(rg["user"]), raw))
    dup = ""
    if "stopped" in opts:
        dup = "; every record there once"
        if "raw" in opts:
            dup += " (syslog-ng received %d sent again, which the include dropped)" % (
                copies_received(opts["raw"], pid))
    return "ok: %d records from pid %s, seq %d..%d%s%s" % (
        len(recs), pid, seqs[0], seqs[-1], dup, mix)


def main(argv):
    path = argv[1]
    opts = {}
    i = 2
    while i < len(argv):
        opts[argv[i].lstrip("-")] = argv[i + 1]
        i += 2
    deadline = time.monotonic() + float(opts.get("wait", "0"))
    while True:
        try:
            print(check(path, opts))
            return 0
        except Failed as e:
            if time.monotonic() >= deadline:
                print("FAIL: %s" % e, file=sys.stderr)
                return 1
        time.sleep(0.1)


sys.exit(main(sys.argv))
