#!/bin/sh
# Install the Debian 12 packages rotagate needs to build, test and run its demo.
# Uses sudo when not root.  Non-interactive (CI=true, no stdin is fine).
set -eu
PKGS="build-essential autoconf automake libtool pkgconf
libldap2-dev libconfuse-dev syslog-ng-dev libglib2.0-dev liblmdb-dev libpam0g-dev
libjson-c-dev check
slapd ldap-utils syslog-ng-core syslog-ng-mod-python lmdb-utils openssl gnutls-bin python3 tzdata"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# slapd must not configure or start a system directory of its own
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS </dev/null
