#!/usr/bin/env python3
"""Accept TCP connections on 127.0.0.1 and never answer (tests/directory).

Usage: blackhole.py PORTFILE   -- writes the chosen port to PORTFILE, runs until killed.
"""
import socket
import sys
import time

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
while True:
    c, _ = s.accept()
    held.append(c)  # keep it open, read nothing, say nothing
