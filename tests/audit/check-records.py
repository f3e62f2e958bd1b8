#!/usr/bin/env python3
"""Check the rotagate records syslog-ng wrote (tests/fixtures/syslog-ng.sh).

check-records.py AUDIT_JSON --pid PID [--records N] [--replayed K]
                 [--hostile HEX] [--format rfc3164|rfc5424]

For every record of process PID: the fields parsed into rotagate.*, seq
strictly increasing in arrival order with no gap and no repeat, pid matches.
--records N: exactly N test.record records, (thread, i) pairs complete, each once.
--replayed K: an audit.replayed with count >= K (records queued behind the
              spooled ones while it drained count too); 0: there is none.
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
                recs.append((obj, rg))
    if not recs:
        fail("no record from pid %s in %s" % (pid, path))

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
    return "ok: %d records from pid %s, seq %d..%d" % (len(recs), pid, seqs[0], seqs[-1])


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
