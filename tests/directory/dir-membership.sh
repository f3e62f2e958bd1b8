#!/bin/bash
# Each membership model (member, uniqueMember, memberUid, memberOf) with its
# documented round-trip count, nested groups to the depth limit, a cycle,
# badge lookups and ambiguous principals.
. "$top_srcdir/tests/directory/lib.sh"
start_slapd ldap
export RGT_URI="$RG_LDAP_URI"   # ldapi: SASL EXTERNAL

G=ou=groups,dc=example,dc=org
P=ou=people,dc=example,dc=org

with() { # with VAR=VALUE... : restart the tool with this config
	dt_stop
	unset RGT_MEMBERSHIP RGT_NESTED RGT_BADGE
	export "$@"
	dt_start
}

# ---- member
with RGT_MEMBERSHIP=member RGT_NESTED=0
dt lookup alice
check "member: alice found with her groups" match "^ok .* uid=alice dn=uid=alice,$P groups=cn=rota-team-a,$G$"
check "member: 2 searches (person, groups)" [ "$(field searches)" = 2 ]
dt lookup dave
check "member: dave is in rota-team-a and self-isolating" match "groups=cn=rota-team-a,$G\|cn=self-isolating,$G$"
dt lookup erin
check "member: nested-groups=0 does not follow nesting" match "^ok .* groups=cn=n1,$G$"
check "member: nested-groups=0 costs 2 searches" [ "$(field searches)" = 2 ]
dt lookup nobody
check "member: unknown person is not-found" match "^not-found "
dt lookup ALICE
check "member: uid matching is case-insensitive, canonical uid returned" match "^ok .* uid=alice "

with RGT_MEMBERSHIP=member RGT_NESTED=1
dt lookup erin
check "member: nested-groups=1 adds exactly one level" match "groups=cn=n1,$G\|cn=n2,$G$"
check "member: one more search per level" [ "$(field searches)" = 3 ]

with RGT_MEMBERSHIP=member RGT_NESTED=2
dt lookup erin
check "member: nested-groups=2 reaches n3" match "groups=cn=n1,$G\|cn=n2,$G\|cn=n3,$G$"
check "member: depth limit stops the walk (4 searches)" [ "$(field searches)" = 4 ]

with RGT_MEMBERSHIP=member RGT_NESTED=10
dt lookup erin
check "member: deeper limit finds nothing more" match "groups=cn=n1,$G\|cn=n2,$G\|cn=n3,$G$"
check "member: walk stops at the first empty level (5 searches)" [ "$(field searches)" = 5 ]
dt lookup frank
check "member: a cycle terminates with both groups" match "^ok .*groups=cn=all-staff,$G\|cn=cyc-a,$G\|cn=cyc-b,$G\|cn=rota-team-a,$G$"
check "member: the cycle is not walked again (4 searches)" [ "$(field searches)" = 4 ]
dt members cn=cyc-b,$G
check "members: a cycle terminates" match "^ok n=1 frank$"
dt members cn=n3,$G
check "members: nested members within the limit" match "^ok n=1 erin$"
dt members cn=rota-team-a,$G
check "members: direct members" match "^ok n=6 alice,dave,frank,grace,judy,mallory$"
dt members cn=no-such-group,$G
check "members: a missing group is not-found" match "^not-found "

with RGT_MEMBERSHIP=member RGT_NESTED=1
dt members cn=n3,$G
check "members: depth limit honoured (erin is 2 levels down)" match "^ok n=0 $"

# ---- uniqueMember
with RGT_MEMBERSHIP=uniqueMember RGT_NESTED=0
dt lookup bob
check "uniqueMember: bob in u-team" match "^ok .* uid=bob .*groups=cn=u-team,$G$"
check "uniqueMember: 2 searches" [ "$(field searches)" = 2 ]
with RGT_MEMBERSHIP=uniqueMember RGT_NESTED=3
dt lookup bob
check "uniqueMember: nesting follows uniqueMember" match "groups=cn=u-outer,$G\|cn=u-team,$G$"
dt members cn=u-outer,$G
check "uniqueMember: members through nesting" match "^ok n=2 alice,bob$"

# ---- memberUid
with RGT_MEMBERSHIP=memberUid RGT_NESTED=0
dt lookup carol
check "memberUid: carol in the posixGroup" match "^ok .* uid=carol .*groups=cn=px-team,$G$"
check "memberUid: 2 searches" [ "$(field searches)" = 2 ]
dt members cn=px-team,$G
check "memberUid: members are the memberUid values" match "^ok n=2 carol,erin$"
with RGT_MEMBERSHIP=memberUid RGT_NESTED=1
dt lookup carol
check "memberUid: nesting through member" match "groups=cn=px-outer,$G\|cn=px-team,$G$"
check "memberUid: 3 searches with one level" [ "$(field searches)" = 3 ]
dt members cn=px-outer,$G
check "memberUid: members of a group containing the posixGroup" match "^ok n=2 carol,erin$"

# ---- memberOf (maintained by the memberof overlay)
with RGT_MEMBERSHIP=memberOf RGT_NESTED=0
dt lookup alice
check "memberOf: read from the entry" match "^ok .* uid=alice .*groups=cn=rota-team-a,$G$"
check "memberOf: 1 search" [ "$(field searches)" = 1 ]
with RGT_MEMBERSHIP=memberOf RGT_NESTED=2
dt lookup alice
check "memberOf: nested groups via member" match "groups=cn=all-staff,$G\|cn=rota-team-a,$G$"
check "memberOf: 1 search + 1 per level until nothing new" [ "$(field searches)" = 3 ]

# ---- badge-attribute
with RGT_MEMBERSHIP=member RGT_BADGE=employeeNumber
dt lookup 1001
check "badge: 1001 is alice, uid read from the entry" match "^ok .* uid=alice dn=uid=alice,$P groups=cn=rota-team-a,$G$"
dt lookup alice
check "badge: a uid is not a badge" match "^not-found "
dt lookup 9999
check "badge: unknown badge is not-found" match "^not-found "
dt lookup 2001
check "badge: a badge on two entries is ambiguous, never a pick" match "^ambiguous .*more than one"
dt members cn=facilities,$G
check "badge: group members are badge numbers" match "^ok n=1 1003$"
dt lookup '1*'
check "badge: wildcard escaped" match "^not-found "

# ---- ambiguous uid
with RGT_MEMBERSHIP=member
dt lookup twin
check "two entries for one uid: ambiguous, never a pick" match "^ambiguous .*more than one"

dt_stop
finish
