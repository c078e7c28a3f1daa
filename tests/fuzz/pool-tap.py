#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pool-tap.py LISTEN_PORT SERVER_PORT DIR: a TCP proxy on 127.0.0.1 that
records each connection between a real pool client and a real pool server
as DIR/N.c2s (what the client sent: the requests) and DIR/N.s2c (what the
server sent: the replies), for the pool-server and pool-client fuzz seeds
(tests/fuzz/gen-corpus.sh). Prints "ready" once it listens; runs until
killed."""
import os
import socket
import sys
import threading


def pump(src, dst, log):
    with open(log, "wb") as f:
        while True:
            try:
                b = src.recv(65536)
            except OSError:
                b = b""
            if not b:
                break
            f.write(b)
            f.flush()
            try:
                dst.sendall(b)
            except OSError:
                break
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    lport, sport, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(64)
    print("ready", flush=True)
    n = 0
    while True:
        c, _ = ls.accept()
        s = socket.create_connection(("127.0.0.1", sport))
        n += 1
        base = os.path.join(out, str(n))
        for a, b, suffix in ((c, s, ".c2s"), (s, c, ".s2c")):
            threading.Thread(target=pump, args=(a, b, base + suffix),
                             daemon=True).start()


main()
