#!/bin/bash
# The built PAM module's dynamic symbol table and flags (plugin/module.map,
# -z nodelete):
#   - it defines exactly pam_sm_acct_mgmt and rotagate_* symbols, among them
#     every function include/rotagate.h declares;
#   - it imports none of the logging calls that take over the host's syslog
#     identity (openlog, closelog, syslog, vsyslog and their _FORTIFY_SOURCE
#     forms __syslog_chk, __vsyslog_chk) or libevtlog's own sender (evt_log,
#     evt_openlog);
#   - its dynamic section has FLAGS_1 with NODELETE, so pam_end() cannot
#     unload it.
# A module that is missing is a failure, not a skip.  RG_EXPORTS_MODULE may
# name another file (to see this test fail on a library that breaks the rules).
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

MODULE=${RG_EXPORTS_MODULE:-$top_builddir/plugin/.libs/pam_rotagate.so}
[ -f "$MODULE" ] || fail "the PAM module $MODULE does not exist (was plugin/pam_rotagate.la built?)"
for tool in nm readelf; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool (binutils) is not installed"
done
echo "# module: $MODULE"

# symbol names only, without a version suffix (name@VERSION, name@@VERSION)
names() { awk 'NF { print $NF }' | sed 's/@.*//' | sort -u; }

RAW=$(nm -D --defined-only "$MODULE") || fail "nm -D --defined-only $MODULE"
DEFINED=$(printf '%s\n' "$RAW" | names)
RAW=$(nm -D --undefined-only "$MODULE") || fail "nm -D --undefined-only $MODULE"
UNDEFINED=$(printf '%s\n' "$RAW" | names)
[ -n "$DEFINED" ] && [ -n "$UNDEFINED" ] || fail "nm found no dynamic symbols in $MODULE"

echo "# defined dynamic symbols:"
printf '  %s\n' $DEFINED

echo "# exactly pam_sm_acct_mgmt plus rotagate_*"
printf '%s\n' "$DEFINED" | grep -qx 'pam_sm_acct_mgmt' || fail "pam_sm_acct_mgmt is not exported"
extra=$(printf '%s\n' "$DEFINED" | grep -Evx 'pam_sm_acct_mgmt|rotagate_[A-Za-z0-9_]+' || true)
[ -z "$extra" ] || fail "exported besides pam_sm_acct_mgmt and rotagate_*: $(echo $extra)"

echo "# every function of include/rotagate.h is exported"
API=$(sed -n 's/^[^ \t#*/].*[ *]\(rotagate_[a-z0-9_]*\)(.*/\1/p' "$top_srcdir/include/rotagate.h" | sort -u)
[ "$(printf '%s\n' "$API" | grep -c .)" -ge 6 ] || fail "could not read the API from include/rotagate.h: $(echo $API)"
for f in $API; do
	printf '%s\n' "$DEFINED" | grep -qx "$f" || fail "$f (include/rotagate.h) is not exported"
done

echo "# no host-logging imports"
for f in openlog closelog syslog vsyslog __syslog_chk __vsyslog_chk evt_log evt_openlog; do
	if printf '%s\n' "$UNDEFINED" | grep -qx "$f"; then
		fail "the module imports $f"
	fi
done

echo "# FLAGS_1 NODELETE"
DYN=$(readelf -d "$MODULE") || fail "readelf -d $MODULE"
flags=$(printf '%s\n' "$DYN" | grep -E '\(FLAGS_1\)' || true)
[ -n "$flags" ] || fail "no FLAGS_1 entry in the dynamic section of $MODULE"
printf '%s\n' "$flags" | grep -Eq 'Flags:.*\bNODELETE\b' || fail "FLAGS_1 without NODELETE: $flags"
echo "  $flags"

echo "PASS"
