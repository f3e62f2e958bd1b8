#!/usr/bin/env python3
# slowtls.py MODE PORTFILE - a server that starts a TLS handshake and then
# sends it one byte at a time, 1.5 s apart, for ever: every single read
# finishes well within any timeout, the handshake never does.  Tests that
# the handshake as a whole is bounded by the directory timeout.
#   MODE ldaps     the client's ClientHello is answered with a record header
#                  promising 16 KiB, then the drip
#   MODE starttls  the StartTLS extended request is answered with success
#                  first, then the same
# Listens on 127.0.0.1 (a free port, written to PORTFILE); one thread per
# connection, so a client may come back.  Stops when killed.
import os
import socket
import sys
import threading
import time

mode, portfile = sys.argv[1], sys.argv[2]
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"


def starttls_response(msgid):
    body = b"\x0a\x01\x00\x04\x00\x04\x00" + b"\x8a" + bytes([len(STARTTLS_OID)]) + STARTTLS_OID
    op = b"\x78" + bytes([len(body)]) + body
    mid = b"\x02\x01" + bytes([msgid])
    return b"\x30" + bytes([len(mid) + len(op)]) + mid + op


def serve(c):
    try:
        if mode == "starttls":
            req = c.recv(65536)
            # 30 LEN 02 01 ID ...: libldap's first message ids are small
            msgid = req[4] if len(req) > 4 and req[2] == 0x02 and req[3] == 0x01 else 1
            c.sendall(starttls_response(msgid))
        c.recv(65536)                      # the ClientHello
        c.sendall(b"\x16\x03\x03\x40\x00")  # handshake record, 16384 bytes to come
        while True:
            time.sleep(1.5)
            c.sendall(b"\x02")
    except OSError:
        pass
    finally:
        c.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(portfile + ".tmp", portfile)
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
