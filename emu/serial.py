#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Talk to the workload VM's request console (a QEMU serial unix socket).

usage: emu/serial.py [--timeout S] [--wait S] SOCK REQUEST...
       emu/serial.py [--timeout S] [--wait S] --raw [--expect REGEX] SOCK LINE

Request mode (default): sends "ID REQUEST" and prints the answer of the line
"@ID ANSWER" the guest's init (emu/guest/workload-init) writes back; lines
that carry another ID (stale answers, noise) are skipped.  Several REQUESTs
are sent one after another, one answer line each.
--raw: send LINE as is and print the first line matching REGEX (default: any).
--wait S: retry connecting for S seconds.  Exit 1 on timeout or EOF.
"""
import os
import re
import socket
import sys
import time


def connect(path, wait):
    deadline = time.monotonic() + wait
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


class Lines:
    def __init__(self, sock):
        self.sock, self.buf = sock, b''

    def next(self, deadline):
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no answer in time')
            self.sock.settimeout(left)
            data = self.sock.recv(4096)
            if not data:
                raise EOFError('serial connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return line.decode('utf-8', 'replace').strip('\r\x00 ')


def request(sock, reqs, timeout, rd=None):
    """Send each request as "ID REQ", return the answers of the "@ID" lines.
    sock: a connected socket or the socket's path."""
    if isinstance(sock, str):
        sock = connect(sock, 0)
    rd = rd or Lines(sock)
    base = '%x%x' % (os.getpid(), int(time.monotonic() * 1000) & 0xffff)
    out = []
    for n, req in enumerate(reqs):
        rid = '%s.%d' % (base, n)
        sock.sendall(('%s %s\n' % (rid, req)).encode())
        deadline = time.monotonic() + timeout
        while True:
            line = rd.next(deadline)
            if line.startswith('@' + rid + ' '):
                out.append(line[len(rid) + 2:])
                break
    return out


def main(argv):
    timeout, wait, raw, expect = 30.0, 0.0, False, None
    while argv and argv[0].startswith('--'):
        opt = argv.pop(0)
        if opt == '--timeout':
            timeout = float(argv.pop(0))
        elif opt == '--wait':
            wait = float(argv.pop(0))
        elif opt == '--raw':
            raw = True
        elif opt == '--expect':
            expect = re.compile(argv.pop(0))
        else:
            sys.exit(__doc__)
    if len(argv) < 2:
        sys.exit(__doc__)
    path, reqs = argv[0], argv[1:]
    try:
        s = connect(path, wait)
        rd = Lines(s)
        if raw:
            s.sendall(' '.join(reqs).encode() + b'\n')
            deadline = time.monotonic() + timeout
            while True:
                line = rd.next(deadline)
                if expect is None or expect.search(line):
                    print(line)
                    return 0
        for ans in request(s, reqs, timeout, rd):
            print(ans)
            sys.stdout.flush()
        return 0
    except (OSError, EOFError) as e:
        print('serial.py: %s' % (e or 'timeout'), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
