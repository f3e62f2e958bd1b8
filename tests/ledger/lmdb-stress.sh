#!/bin/bash
# tests/ledger/lmdb-stress.sh - the LMDB ledger across processes:
#  - race: 16 processes x 4 threads admit 400 distinct people against
#    capacity 100: exactly 100 admitted, every ADMITTED received is stored;
#  - crash: workers SIGKILLed at random moments in the middle of admissions:
#    the ledger opens, count == stored admissions, no received ADMITTED lost.
set -eu
: "${top_builddir:?}"
stress="$top_builddir/tests/ledger/ledger-stress"
work=$(mktemp -d "${TMPDIR:-/tmp}/rg-ledger-lmdb.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$stress" race --backend lmdb --path "$work/race" --procs 16 --threads 4 --people 400 --capacity 100
# the same people arriving at several doors at once: still 100, nobody twice
"$stress" race --backend lmdb --path "$work/overlap" --procs 8 --threads 4 --people 300 \
	--capacity 100 --overlap
"$stress" crash --backend lmdb --path "$work/crash" --rounds 8
