#!/usr/bin/env python3
# dropmodify.py LISTEN-SOCKET SERVER-SOCKET [N] - a proxy between two unix
# sockets (ldapi://) that loses the response to the Nth (default: first) LDAP
# modify request it sees: the request is passed on, the server applies it, and the
# connection is then closed before any answer goes back.  Every other
# request, and every later connection, is passed through untouched.  Tests
# that a retried admission whose first modify was applied is reported as
# the admission it is, not as a re-entry.  Stops when killed.
import os
import socket
import sys
import threading
import time

listen_path, server_path = sys.argv[1], sys.argv[2]
nth = int(sys.argv[3]) if len(sys.argv) > 3 else 1
modifies = [0]
dropped = threading.Event()
lock = threading.Lock()


def ber_message(buf):
    """(length of the first complete BER element in buf, its op tag) or None."""
    if len(buf) < 2:
        return None
    first = buf[1]
    if first < 0x80:
        hl, ln = 2, first
    else:
        n = first & 0x7F
        if len(buf) < 2 + n:
            return None
        hl, ln = 2 + n, int.from_bytes(buf[2:2 + n], "big")
    if len(buf) < hl + ln:
        return None
    body = buf[hl:hl + ln]
    # messageID INTEGER, then the protocolOp
    if len(body) < 2 or body[0] != 0x02:
        return hl + ln, None
    op = 2 + body[1]
    return hl + ln, body[op] if op < len(body) else None


def pump_up(c, s, state):
    buf = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            buf += d
            while True:
                m = ber_message(buf)
                if m is None:
                    break
                n, op = m
                msg, buf = buf[:n], buf[n:]
                with lock:
                    if op == 0x66:
                        modifies[0] += 1
                    drop = op == 0x66 and modifies[0] == nth and not dropped.is_set()
                    if drop:
                        dropped.set()
                        state["mute"] = True  # nothing goes back from now on
                s.sendall(msg)
                if drop:
                    time.sleep(0.5)  # the server applies it; its answer is lost
                    for x in (c, s):
                        try:
                            x.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return
    except OSError:
        pass
    for x in (c, s):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pump_down(s, c, state):
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            with lock:
                mute = state["mute"]
            if mute:
                continue
            c.sendall(d)
    except OSError:
        pass
    try:
        c.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def serve(c):
    s = socket.socket(socket.AF_UNIX)
    s.connect(server_path)
    state = {"mute": False}
    up = threading.Thread(target=pump_up, args=(c, s, state), daemon=True)
    down = threading.Thread(target=pump_down, args=(s, c, state), daemon=True)
    up.start()
    down.start()
    up.join()
    down.join()
    c.close()
    s.close()


try:
    os.unlink(listen_path)
except FileNotFoundError:
    pass
ls = socket.socket(socket.AF_UNIX)
ls.bind(listen_path)
ls.listen(16)
with open(listen_path + ".ready", "w") as f:
    f.write("ready\n")
while True:
    conn, _ = ls.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
