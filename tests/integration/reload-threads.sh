#!/bin/bash
# Hot reload while several threads decide through one handle (real slapd,
# real syslog-ng).  The config file is changed 6 times: good configs with
# different content, broken ones, by rename and in place, once while the
# threads are deciding.  Between changes the threads run "rounds" driven over
# a FIFO (tests/integration/reload-driver.c), each round at its own door, so
# every audit record can be tied to the round (and the config) it belongs to.
#
# Asserted:
#  - the process never crashes and exits cleanly (also under ASan);
#  - no decision ever carries the hash of a broken file: every decision (in
#    the driver and in syslog) carries one of the good configs' hashes;
#  - exactly one config.loaded / config.rejected record per change, in the
#    order of the changes, not one per thread;
#  - after a good change every decision carries its hash and follows its
#    content (alice is on the rota on Mondays in some, not in others); after
#    a broken change they keep the last good one; during the change made
#    while deciding, no thread goes back to the old config;
#  - config.loaded names the new hash (as rotagatectl config-test prints it),
#    config.rejected names file:line and the config still in force.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init reloadthr

THREADS=4
PER_THREAD=25
CONF="$RG_T/rotagate.conf"
MON=$(python3 -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,1,8,55,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')

# A second site with many rules makes loading a config take a few
# milliseconds, so that the threads released together really do meet the
# changed file while one of them is still loading it (the point of "one
# record per change, not one per thread").
{
	printf 'site "pad" {\n  timezone = "Europe/London"\n  capacity = 5\n  doors = { "pad-door" }\n'
	for i in $(seq 500); do
		printf '  rota "p%d" {\n    group = "cn=p%d,ou=groups,dc=example,dc=org"\n    days = { sat }\n  }\n' "$i" "$i"
	done
	printf '}\n'
} >"$RG_T/pad.conf"

# mkconf FILE DAYS CAPACITY [EXTRA-COMMENT]: team-a on DAYS; doors r1..r9 for
# the rounds
mkconf() {
	RG_CAPACITY=$3 rg_write_config "$1" <"$RG_T/pad.conf"
	sed -i -e "s/days = { mon, wed, fri }/days = { $2 }/" \
		-e 's/doors = { "main-entrance", "side-gate" }/doors = { "main-entrance", "side-gate", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9" }/' \
		"$1"
	[ -z "${4:-}" ] || printf '# %s\n' "$4" >>"$1"
	grep -q '"r9"' "$1" || rg_fail "mkconf: doors not rewritten"
}
sha_of() { # the hash rotagatectl config-test reports for a good file
	rg_expect_exit 0 rg_ctl -c "$1" config-test
	printf '%s\n' "$RG_OUT" | sed -n 's/.* sha256 \([0-9a-f]\{64\}\)$/\1/p'
}

mkconf "$RG_T/g1.conf" "mon, wed, fri" 400
mkconf "$RG_T/g2.conf" "tue" 300
sed 's/days = { mon, wed, fri }/days = { mon, wed, fry }/' "$RG_T/g1.conf" >"$RG_T/b1.conf"
mkconf "$RG_T/g3.conf" "mon, wed, fri" 350
mkconf "$RG_T/g4.conf" "tue" 250 "written in place, a line longer than the file it replaces"
sed '0,/^  capacity = /s//  capacty = /' "$RG_T/g4.conf" >"$RG_T/b2.conf"
mkconf "$RG_T/g5.conf" "mon" 450
for v in g1 g2 g3 g4 g5; do
	eval "SHA_$v=\$(sha_of \"\$RG_T/$v.conf\")"
done
for v in b1 b2; do
	rg_expect_exit 2 rg_ctl -c "$RG_T/$v.conf" config-test
	eval "SHA_$v=\$(sha256sum \"\$RG_T/$v.conf\" | cut -d' ' -f1)"
done
LINE_b1=$(grep -n 'fry' "$RG_T/b1.conf" | cut -d: -f1)
LINE_b2=$(grep -n 'capacty' "$RG_T/b2.conf" | cut -d: -f1)
[ "$(printf '%s\n' "$LINE_b1" "$LINE_b2" | grep -c '^[0-9][0-9]*$')" = 2 ] ||
	rg_fail "each broken version has exactly one broken line"
[ "$(printf '%s\n' "$SHA_g1" "$SHA_g2" "$SHA_g3" "$SHA_g4" "$SHA_g5" "$SHA_b1" "$SHA_b2" | sort -u | wc -l)" = 7 ] ||
	rg_fail "the seven versions must differ"
[ "$(stat -c %s "$RG_T/g3.conf" "$RG_T/g4.conf" "$RG_T/b2.conf" | sort -u | wc -l)" = 3 ] ||
	rg_fail "the in-place versions must differ in size"

# every version gets its own mtime (seconds apart), so no change can hide in
# one timestamp tick
MT=$(($(date +%s) - 100))
install_rename() { # install_rename VERSION
	MT=$((MT + 1))
	cp "$RG_T/$1.conf" "$CONF.tmp"
	touch -d "@$MT" "$CONF.tmp"
	mv -f "$CONF.tmp" "$CONF"
}
install_in_place() { # install_in_place VERSION: same inode, rewritten
	MT=$((MT + 1))
	_ino=$(stat -c %i "$CONF")
	cat "$RG_T/$1.conf" >"$CONF"
	touch -d "@$MT" "$CONF"
	[ "$(stat -c %i "$CONF")" = "$_ino" ] || rg_fail "in-place write changed the inode"
}

install_rename g1
mkfifo "$RG_T/cmd" "$RG_T/reply"
exec 3<>"$RG_T/cmd" 4<>"$RG_T/reply"
"$top_builddir/tests/integration/reload-driver" "$CONF" "$MON" "$THREADS" \
	"$RG_T/cmd" "$RG_T/reply" 2>"$RG_T/driver.err" 3>&- 4>&- &
drv=$!   # if this script dies, the driver reads end-of-file and quits

REPLY_LINE=
ask() { # ask COMMAND: send it, wait for the driver's one-line answer
	[ $# -eq 0 ] || printf '%s\n' "$*" >&3
	if ! read -r -t 60 REPLY_LINE <&4; then
		cat "$RG_T/driver.err" >&2
		kill -0 $drv 2>/dev/null && rg_fail "no answer from the driver to '$*'"
		wait $drv && rg_fail "driver exited early" || rg_fail "driver died (status $?)"
	fi
}
field() { # field NAME: value of NAME=... in REPLY_LINE
	printf '%s\n' "$REPLY_LINE" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
RESULTS=
# check_round K EXPECTED_SHA ALICE(grant|deny): every decision of round K was
# made with EXPECTED_SHA and follows that config's content
check_round() {
	case $REPLY_LINE in "done $1 "*) ;; *) rg_fail "round $1: driver said '$REPLY_LINE'" ;; esac
	_n=$(field n)
	[ "$_n" = $((THREADS * PER_THREAD)) ] || rg_fail "round $1: $_n decisions"
	[ "$(field errors)" = 0 ] || { cat "$RG_T/driver.err" >&2; rg_fail "round $1: ERROR verdicts"; }
	[ "$(field shas)" = "$2:$_n" ] ||
		rg_fail "round $1: decisions made with $(field shas), expected all with $2"
	_ag=$(field alice_grant); _ad=$(field alice_deny)
	[ $((_ag + _ad)) -gt 0 ] || rg_fail "round $1: alice was never asked"
	case $3 in
	grant) [ "$_ad" = 0 ] || rg_fail "round $1: alice denied $_ad times (config $2 has her on Mondays)" ;;
	deny) [ "$_ag" = 0 ] || rg_fail "round $1: alice granted $_ag times (config $2 has her on Tuesdays only)" ;;
	esac
	RESULTS="$RESULTS r$1=$_n:$2"
}

ask
[ "$REPLY_LINE" = ready ] || rg_fail "driver: $REPLY_LINE"

ask round 1 $PER_THREAD r1
check_round 1 "$SHA_g1" grant

install_rename g2             # change 1: good, other content
ask round 2 $PER_THREAD r2
check_round 2 "$SHA_g2" deny

install_rename b1             # change 2: broken (unknown day)
ask round 3 $PER_THREAD r3
check_round 3 "$SHA_g2" deny

install_rename g3             # change 3: good again
ask round 4 $PER_THREAD r4
check_round 4 "$SHA_g3" grant

install_in_place g4           # change 4: good, written in place
ask round 5 $PER_THREAD r5
check_round 5 "$SHA_g4" deny

install_in_place b2           # change 5: broken (unknown key), in place
ask round 6 $PER_THREAD r6
check_round 6 "$SHA_g4" deny

# change 6: good, renamed in while every thread is deciding
ask start 7 r7
[ "$REPLY_LINE" = "started 7" ] || rg_fail "round 7: driver said '$REPLY_LINE'"
install_rename g5
ask until "$SHA_g5"
case $REPLY_LINE in "done 7 "*) ;; *) rg_fail "round 7: driver said '$REPLY_LINE'" ;; esac
n7=$(field n)
[ "$(field errors)" = 0 ] || { cat "$RG_T/driver.err" >&2; rg_fail "round 7: ERROR verdicts"; }
shas7=$(field shas)
case $shas7 in
"$SHA_g4":*,"$SHA_g5":*) ;;
*) rg_fail "round 7: decisions made with $shas7, expected $SHA_g4 then $SHA_g5" ;;
esac
# each thread: old config, then new config, never back
[ "$(field switches)" = "$(printf '1%.0s,' $(seq $THREADS) | sed 's/,$//')" ] ||
	rg_fail "round 7: per-thread config changes $(field switches), expected exactly one each"
[ "$(field last)" = "$(for _i in $(seq $THREADS); do printf '%s,' "$SHA_g5"; done | sed 's/,$//')" ] ||
	rg_fail "round 7: not every thread ended on the new config: $(field last)"

ask round 8 $PER_THREAD r8
check_round 8 "$SHA_g5" grant
RESULTS="$RESULTS r7=$n7"

ask quit
[ "$REPLY_LINE" = bye ] || rg_fail "driver: $REPLY_LINE"
set +e
wait $drv
st=$?
set -e
[ $st = 0 ] || { cat "$RG_T/driver.err" >&2; rg_fail "driver exit status $st"; }
grep -q 'Sanitizer' "$RG_T/driver.err" && { cat "$RG_T/driver.err" >&2; rg_fail "sanitizer report"; }

# ---- the audit trail
python3 - "$RG_SYSLOG_JSON" "$CONF" "$RESULTS" \
	"$SHA_g1" "$SHA_g2" "$SHA_g3" "$SHA_g4" "$SHA_g5" "$SHA_b1" "$SHA_b2" \
	"$LINE_b1" "$LINE_b2" <<'PY' || rg_fail "audit trail of the reloads"
import json, sys, time
path, conf, results, g1, g2, g3, g4, g5, b1, b2, line1, line2 = sys.argv[1:]
good = {g1, g2, g3, g4, g5}
rounds = {}   # door -> (count, expected sha or None)
for item in results.split():
    door, spec = item.split("=")
    n, _, sha = spec.partition(":")
    rounds[door] = (int(n), sha or None)
total = sum(n for n, _ in rounds.values())

def field(r, k):
    v = r.get("rotagate")
    return v.get(k) if isinstance(v, dict) else r.get("rotagate." + k)

def load():
    # in the order they were made (seq is process-wide); a record that had
    # to wait in the spool arrives later but keeps its seq
    recs = [json.loads(l) for l in open(path) if l.strip()]
    return sorted(recs, key=lambda r: int(field(r, "seq")))
deadline = time.time() + 15
while True:
    recs = load()
    acc = [r for r in recs if (field(r, "event") or "").startswith("access.")]
    if len(acc) >= total or time.time() > deadline:
        break
    time.sleep(0.2)
time.sleep(0.3)  # anything arriving late (duplicates) is counted too
recs = load()
acc = [r for r in recs if (field(r, "event") or "").startswith("access.")]
cfg = [r for r in recs if (field(r, "event") or "").startswith("config.")]
# audit.replayed: records had to wait in the spool (a full socket); allowed
others = [field(r, "event") for r in recs
          if r not in acc and r not in cfg and field(r, "event") != "audit.replayed"]

# one config record per change (plus the one for opening), in order
got = [(field(r, "event"), field(r, "config_sha")) for r in cfg]
want = [("config.loaded", g1), ("config.loaded", g2), ("config.rejected", g2),
        ("config.loaded", g3), ("config.loaded", g4), ("config.rejected", g4),
        ("config.loaded", g5)]
assert got == want, "config records:\n  got  %s\n  want %s" % (got, want)
for r, line, word in ((cfg[2], line1, "fry"), (cfg[5], line2, "capacty")):
    err = field(r, "error") or ""
    assert err.startswith("%s:%s:" % (conf, line)) and word in err, \
        "rejected record without %s:%s: %r" % (conf, line, err)
    assert field(r, "path") == conf, field(r, "path")

# every decision: a good config's hash, the one in force for its round
assert len(acc) == total, "%d decision records, the driver made %d" % (len(acc), total)
bad = [field(r, "config_sha") for r in acc if field(r, "config_sha") not in good]
assert not bad, "decisions with a hash that is not a good config's: %s" % sorted(set(bad))
assert b1 not in {field(r, "config_sha") for r in acc} and b2 not in {field(r, "config_sha") for r in acc}
for door, (n, sha) in rounds.items():
    mine = [r for r in acc if field(r, "door") == door]
    assert len(mine) == n, "%s: %d records, %d decisions" % (door, len(mine), n)
    shas = {field(r, "config_sha") for r in mine}
    if sha:
        assert shas == {sha}, "%s: records carry %s, expected %s" % (door, shas, sha)
    else:
        assert shas == {g4, g5}, "%s (change while deciding): %s" % (door, shas)
assert not others, "unexpected records: %s" % others
print("reload-threads: %d decisions, %d config records: ok" % (len(acc), len(cfg)))
PY
echo PASS
