#!/bin/sh
# Every key and section of the config schema (plugin/config.c) appears in
# rotagate.conf(5) and in the shipped example, so neither falls behind.
set -u
src=${top_srcdir:?top_srcdir not set}
keys=$(sed -n 's/^[[:space:]]*CFG_[A-Z_]*("\([a-z-]*\)".*/\1/p' "$src/plugin/config.c" | sort -u)
[ -n "$keys" ] || { echo "no keys found in plugin/config.c"; exit 1; }
n=$(printf '%s\n' "$keys" | wc -l)
[ "$n" -ge 40 ] || { echo "only $n keys found in plugin/config.c: extraction broken?"; exit 1; }
rc=0
for k in $keys; do
	# in roff a '-' is often written '\-'; accept both
	pat=$(printf '%s' "$k" | sed 's/-/\\\\\\{0,1\\}-/g')
	grep -q "^\.[BI]R* *$pat\b" "$src/conf/rotagate.conf.5" ||
		grep -q "^\.B[RI]* $pat\b" "$src/conf/rotagate.conf.5" ||
		grep -q "SECTION $pat\b\|^\.SS \"$pat " "$src/conf/rotagate.conf.5" || {
		echo "rotagate.conf.5 does not describe '$k'"; rc=1; }
	grep -Eq "^[[:space:]#]*$k([[:space:]]+\"|[[:space:]]*=|[[:space:]]*\{)" \
		"$src/conf/rotagate.conf.example" || {
		echo "rotagate.conf.example does not show '$k'"; rc=1; }
done
exit $rc
