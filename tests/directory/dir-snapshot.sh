#!/bin/bash
# sync fills the snapshot from the directory (all members of the configured
# groups, with their groups); with slapd gone the snapshot still answers; a
# failed sync leaves the snapshot untouched; files are private.
. "$top_srcdir/tests/directory/lib.sh"
start_slapd s
G=ou=groups,dc=example,dc=org
export RGT_URI="$RG_LDAP_URI" RGT_SNAPDIR="$T/state" RGT_BACKOFF_MIN_MS=100 RGT_BACKOFF_MAX_MS=100
GROUPS_="cn=rota-team-a,$G cn=rota-team-b,$G cn=facilities,$G cn=self-isolating,$G cn=no-such-group,$G"
dt_start
dt sync $GROUPS_
check "sync: 11 distinct people from 4 groups (a missing group is empty)" match "^ok n=11$"
dt snapget alice
check "snapshot: alice with her groups" match "^found uid=alice .*groups=cn=rota-team-a,$G$"
dt snapget dave
check "snapshot: dave with all his groups" match "^found uid=dave .*groups=cn=rota-team-a,$G\|cn=self-isolating,$G$"
dt snapget erin
check "snapshot: erin is in no configured group, so absent" match "^absent$"
check "snapshot dir is 0700" [ "$(stat -c %a "$T/state/snapshot")" = 700 ]
check "snapshot data file is 0600" [ "$(stat -c %a "$T/state/snapshot/data.mdb")" = 600 ]

rg_slapd_stop "$T/s"
dt lookup alice
check "slapd gone: live lookup unavailable" match "^unavailable "
dt snapget alice
check "slapd gone: snapshot still answers for alice" match "^found uid=alice .*groups=cn=rota-team-a,$G$"
dt snapget ALICE
check "slapd gone: snapshot keys are case-insensitive like uids" match "^found uid=alice "
dt sync $GROUPS_
check "slapd gone: sync fails" match "^fail "
dt snapget oscar
check "failed sync leaves the snapshot as it was" match "^found uid=oscar .*groups=cn=rota-team-b,$G$"
dt_stop

# a second process (fresh start) reads the same snapshot
dt_start
dt snapget heidi
check "snapshot survives the process" match "^found uid=heidi "
dt_stop

# sync replaces everything: a smaller set drops the others
rg_slapd_restart "$T/s" || exit 99
dt_start
dt sync cn=facilities,$G
check "sync with one group" match "^ok n=1$"
dt snapget carol
check "replaced snapshot has carol" match "^found uid=carol "
dt snapget alice
check "replaced snapshot no longer has alice" match "^absent$"
dt_stop
finish
