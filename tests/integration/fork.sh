#!/bin/bash
# A pre-forking controller: the handle is opened and used in the parent, then
# inherited by forked workers that decide at the same time as the parent.
# Each process must get its own LDAP connections, LMDB environments and audit
# socket; shared ones would mix up replies between processes.
set -e
. "$top_srcdir/tests/fixtures/lib.sh"
rg_test_init fork

CONF="$RG_T/rotagate.conf"
rg_write_config "$CONF" </dev/null
# cache-ttl 1: the workers go to the directory too, not only to the cache
sed -i 's/^  tls = none$/  tls = none\n  cache-ttl = 1/' "$CONF"
MON=$(python3 -c 'import datetime,zoneinfo; print(int(datetime.datetime(2026,6,1,8,55,tzinfo=zoneinfo.ZoneInfo("Europe/London")).timestamp()))')

"$top_builddir/tests/integration/fork-driver" "$CONF" "$MON" 4 40 || rg_fail "wrong answers after fork"
rg_expect_exit 0 rg_ctl -c "$CONF" occupancy --site hq --date 2026-06-01 --json
printf '%s' "$RG_OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; assert d["count"]==1, d' \
	|| rg_fail "alice should be admitted exactly once"
echo PASS
