#!/bin/bash
# TLS and binding: StartTLS and ldaps:// with a CA made here; a wrong CA, or a
# name the certificate does not carry, is refused; tls-require-cert = never
# only for loopback; a simple bind without TLS is refused unless
# allow-insecure-bind; password file checks; the password never in messages;
# a server speaking only TLS 1.0 is refused; a handshake dripped byte by byte
# is bounded as a whole by the timeout.
. "$top_srcdir/tests/directory/lib.sh"

# ---- a test CA, a server certificate for IP 127.0.0.1, and a stranger CA
mkdir -p "$T/pki" && cd "$T/pki" || exit 99
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj /CN=rotagate-test-ca 2>/dev/null || exit 99
openssl req -x509 $ec -keyout other.key -out other.pem -days 30 -subj /CN=stranger-ca 2>/dev/null || exit 99
openssl req $ec -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null || exit 99
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile ext \
	-out server.pem 2>/dev/null || exit 99
cd - >/dev/null

P1=$(free_port); P2=$(free_port); P3=$(free_port); P4=$(free_port)
RG_SLAPD_URLS="ldap://127.0.0.1:$P1/ ldaps://127.0.0.1:$P2/"
RG_SLAPD_GLOBAL="TLSCACertificateFile $T/pki/ca.pem
TLSCertificateFile $T/pki/server.pem
TLSCertificateKeyFile $T/pki/server.key"
start_slapd s
# a second server that speaks TLS 1.0 only (slapd with GnuTLS: the cipher
# suite is a GnuTLS priority string), over ldaps:// and StartTLS
RG_SLAPD_URLS="ldap://127.0.0.1:$P3/ ldaps://127.0.0.1:$P4/"
RG_SLAPD_GLOBAL="$RG_SLAPD_GLOBAL
TLSCipherSuite NORMAL:-VERS-ALL:+VERS-TLS1.0"
start_slapd tls10
unset RG_SLAPD_URLS RG_SLAPD_GLOBAL

PW=s3cret-Do-Not-Print-Me
printf 'secret\n' > "$T/pw"; chmod 600 "$T/pw"
printf '%s\n' "$PW" > "$T/wrongpw"; chmod 600 "$T/wrongpw"
: > "$T/emptypw"; chmod 600 "$T/emptypw"
printf 'secret\n' > "$T/openpw"; chmod 644 "$T/openpw"
export RGT_BIND_DN="$RG_LDAP_ADMIN_DN" RGT_PWFILE="$T/pw" RGT_PWCHECK=0 RGT_CA="$T/pki/ca.pem" RGT_TIMEOUT=2

one() { # one VAR=VALUE...: start the tool with the settings, look up alice, stop
	dt_stop
	env_save=$(export -p | grep ' RGT_' | sed 's/^declare -x /export /')
	export "$@"
	dt_start
	dt lookup alice
	dt_stop
	unset $(printf '%s\n' "$@" | sed 's/=.*//')
	eval "$env_save"
}

one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=starttls
check "StartTLS with the right CA: simple bind and lookup work" match "^ok .* uid=alice "
one RGT_URI="ldaps://127.0.0.1:$P2"
check "ldaps with the right CA: lookup works" match "^ok .* uid=alice "
one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=starttls RGT_CA="$T/pki/other.pem"
check "StartTLS with a wrong CA: refused" match "^unavailable .*StartTLS"
one RGT_URI="ldaps://127.0.0.1:$P2" RGT_CA="$T/pki/other.pem"
check "ldaps with a wrong CA: refused" match "^unavailable "
one RGT_URI="ldaps://localhost:$P2"
check "ldaps to a name the certificate lacks: refused" match "^unavailable "
one RGT_URI="ldaps://127.0.0.1:$P2" RGT_CA="$T/pki/other.pem" RGT_REQCERT=never
check "tls-require-cert=never is accepted for loopback" match "^ok .* uid=alice "
one RGT_URI="ldaps://192.0.2.1:636" RGT_REQCERT=never
check "tls-require-cert=never refused for a non-loopback host" match "^error .*only accepted for ldapi"
one RGT_URI="ldaps://127.evil.example:636" RGT_REQCERT=never
check "tls-require-cert=never refused for a name that only looks like 127.x" match "^error .*only accepted for ldapi"

one RGT_URI="ldaps://127.0.0.1:$P4"
check "ldaps to a TLS 1.0-only server: refused" match "^unavailable .*(TLS|handshake)"
one RGT_URI="ldap://127.0.0.1:$P3" RGT_TLS=starttls
check "StartTLS to a TLS 1.0-only server: refused" match "^unavailable .*StartTLS"
one RGT_URI="ldaps://127.0.0.1:$P4 ldaps://127.0.0.1:$P2"
check "a TLS 1.0-only server is failed over to a good one" match "^ok .* uid=alice "

# ---- a server that drips its handshake: one byte every 1.5 s, each read well
# within the 2 s timeout, the handshake never complete.  The handshake as a
# whole is bounded: the lookup fails (or fails over) within timeout + margin.
for mode in ldaps starttls; do
	python3 "$top_srcdir/tests/directory/slowtls.py" "$mode" "$T/drip-$mode.port" &
	RG_DIR_PIDS="$RG_DIR_PIDS $!"
	for i in $(seq 100); do [ -s "$T/drip-$mode.port" ] && break; sleep 0.05; done
	[ -s "$T/drip-$mode.port" ] || { echo "slowtls.py $mode did not start"; exit 99; }
done
DRIP_LDAPS="ldaps://127.0.0.1:$(cat "$T/drip-ldaps.port")"
DRIP_STARTTLS="ldap://127.0.0.1:$(cat "$T/drip-starttls.port")"
DRIP_BOUND=4500 # timeout 2 s + margin; without one deadline this never ends
one RGT_URI="$DRIP_LDAPS"
check "ldaps handshake dripped byte by byte: fails" match "^unavailable "
check "ldaps handshake dripped byte by byte: within ${DRIP_BOUND} ms" lt "$(field ms)" "$DRIP_BOUND"
one RGT_URI="$DRIP_STARTTLS" RGT_TLS=starttls
check "StartTLS handshake dripped byte by byte: fails" match "^unavailable .*StartTLS"
check "StartTLS handshake dripped byte by byte: within ${DRIP_BOUND} ms" lt "$(field ms)" "$DRIP_BOUND"
one RGT_URI="$DRIP_LDAPS ldaps://127.0.0.1:$P2"
check "dripped ldaps handshake: fails over to the next server" match "^ok .* uid=alice "
check "dripped ldaps handshake: failed over within ${DRIP_BOUND} ms" lt "$(field ms)" "$DRIP_BOUND"

one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=none
check "simple bind over plain ldap:// refused" match "^error .*refusing to bind without TLS"
one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=none RGT_BIND_DN= RGT_PWFILE=
check "anonymous over plain ldap:// refused too" match "^error .*refusing to bind without TLS"
one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=none RGT_INSECURE=1
check "plain ldap:// allowed with allow-insecure-bind" match "^ok .* uid=alice "

one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=starttls RGT_PWFILE="$T/emptypw"
check "an empty password is refused" match "^error .*is empty"
one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=starttls RGT_PWFILE="$T/openpw" RGT_PWCHECK=1
check "a world-readable password file is refused" match "^error .*accessible by group or others"
if [ "$(id -u)" != 0 ]; then
	one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=starttls RGT_PWCHECK=1
	check "a password file not owned by root is refused" match "^error .*not root"
fi
one RGT_URI="ldap://127.0.0.1:$P1" RGT_TLS=starttls RGT_PWFILE="$T/wrongpw"
check "a wrong password fails the bind" match "^error .*Invalid credentials"
check "the password never appears in messages" not grep -q -- "$PW" "$T/transcript" "$T/dirtool.stderr"

one RGT_URI="$RG_LDAP_URI" RGT_BIND_DN= RGT_PWFILE=
check "SASL EXTERNAL over ldapi (no bind-dn)" match "^ok .* uid=alice "
finish
