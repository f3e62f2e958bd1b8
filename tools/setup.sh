#!/bin/sh
# One command on a fresh Debian 12 machine: install the dependencies, build
# rotagate in ./build and run the demo (a simulated morning at the door).
set -eu
cd "$(dirname "$0")/.."
./tools/install-deps.sh
./autogen.sh >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || ../configure --enable-werror
make -j"$(nproc)"
[ "${1:-}" = "--no-demo" ] || make demo
