#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# The gate of tests/faults.sh: a TCP relay between tier's pool client and
# the real pool server ("tierctl pool serve") that runs a shell command
# (kill the server, stop it, truncate a CXL object...) once exactly AT
# bytes of the server's answers have gone through, and only then lets
# the next byte through. So a fault lands at a chosen point of a restore
# (the middle of its prefetch, of its lazy faults) without any timing.
# It changes no byte: what the server sends, or the end of its stream
# when it dies, reaches the client as it was.
#
#   faults-relay.py UPSTREAM_PORT AT HOOK [hold]
#
# hold: the connections open when the hook ran pass nothing more from the
# server, only its end: the client sees the server stop or die exactly at
# byte AT, not some megabytes later (what the server had written into its
# socket before the signal took effect is dropped).
#
# Prints "relay PORT" once listening; every client connection gets its
# own connection to 127.0.0.1:UPSTREAM_PORT (a restarted server is
# reached by the next one). Prints "fired N" when the hook ran, after N
# bytes.
import socket
import subprocess
import sys
import threading

upstream, at, hook = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
hold = sys.argv[4:] == ["hold"]
lock = threading.Lock()
state = {"n": 0, "fired": False}


def pipe(src, dst, count):
    with lock:
        before = not state["fired"]
    try:
        while True:
            want = 65536
            if count:
                with lock:
                    # (with several connections the count may pass AT
                    # by what the others read meanwhile)
                    if not state["fired"] and state["n"] >= at:
                        state["fired"] = True
                        subprocess.run(hook, shell=True)
                        print(f"fired {state['n']}", flush=True)
                    if not state["fired"]:
                        want = min(want, at - state["n"])
            b = src.recv(want)
            if not b:
                break
            if count:
                with lock:
                    state["n"] += len(b)
                    if hold and before and state["fired"]:
                        continue
            dst.sendall(b)
    except OSError:
        pass
    # a server's end that comes while the hook runs (it killed it) is
    # passed on once the hook is done (a restarted server is up)
    with lock:
        pass
    for s in (dst, src):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(c):
    try:
        with lock:	# not while the hook runs
            u = socket.create_connection(("127.0.0.1", upstream))
    except OSError:
        c.close()
        return
    threading.Thread(target=pipe, args=(c, u, False), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c, True), daemon=True).start()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print(f"relay {ls.getsockname()[1]}", flush=True)
while True:
    c, _ = ls.accept()
    serve(c)
