#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small QMP client (stdlib only) for the emu/ scripts.

usage: emu/qmp.py [--wait S] [--timeout S] SOCK CMD [ARGS] [+ CMD [ARGS]]...

Commands run in order on one connection; each result is printed as one JSON
line.  ARGS is a JSON object ('{"uri": "exec:cat > F"}') or key=value words
(a value that parses as JSON is taken as JSON, else as a string).
Pseudo-commands:
  wait-migrate          poll query-migrate until completed (fails on failed)
  wait-event NAME       wait for an asynchronous event
  sleep SECONDS
  ignore-shared         migrate-set-capabilities x-ignore-shared=true
  ask SOCK REQUEST      a workload VM request on its serial socket (as
                        emu/serial.py does); prints the answer
--wait S: keep retrying to connect for S seconds (QEMU still starting).
--stamps FILE: append "COMMAND EPOCH_NS" to FILE when each command is done
(one process for the whole sequence keeps Python's start-up out of timings).
Exit status: 0, or 1 with the error on stderr.
"""
import json
import os
import socket
import sys
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, wait=0.0, timeout=60.0):
        self.timeout = timeout
        deadline = time.monotonic() + wait
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
        self.sock.settimeout(timeout)
        self.buf = b''
        self.events = []
        greeting = self._recv()
        if 'QMP' not in greeting:
            raise QMPError('no QMP greeting: %r' % greeting)
        self.execute('qmp_capabilities')

    def _recv(self):
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QMPError('QMP connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        msg = {'execute': cmd}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self._recv()
            if 'event' in r:
                self.events.append(r)
                continue
            if 'error' in r:
                raise QMPError('%s: %s' % (cmd, r['error'].get('desc', r['error'])))
            return r.get('return')

    def wait_event(self, name, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, e in enumerate(self.events):
                if e['event'] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError('timeout waiting for event %s' % name)
            self.sock.settimeout(left)
            try:
                r = self._recv()
            finally:
                self.sock.settimeout(self.timeout)
            if 'event' in r:
                self.events.append(r)

    def wait_migrate(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        delay = 0.001
        while True:
            r = self.execute('query-migrate')
            st = r.get('status')
            if st == 'completed':
                return r
            if st in ('failed', 'cancelled'):
                raise QMPError('migration %s: %s' % (st, r.get('error-desc', '')))
            if time.monotonic() >= deadline:
                raise QMPError('timeout waiting for migration (status %s)' % st)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def ignore_shared(self):
        return self.execute('migrate-set-capabilities', {'capabilities': [
            {'capability': 'x-ignore-shared', 'state': True}]})

    def close(self):
        self.sock.close()


def ask(sock, request, timeout):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import serial  # emu/serial.py, not pyserial
    try:
        return serial.request(sock, [request], timeout)[0]
    except (OSError, EOFError) as e:
        raise QMPError('ask %s: %s' % (request, e or 'timeout'))


def parse_args(words):
    if not words:
        return None
    if len(words) == 1 and words[0].lstrip().startswith('{'):
        return json.loads(words[0])
    args = {}
    for w in words:
        k, sep, v = w.partition('=')
        if not sep:
            raise QMPError('argument %r is neither JSON nor key=value' % w)
        try:
            args[k] = json.loads(v)
        except ValueError:
            args[k] = v
    return args


def run(argv):
    wait, timeout, stamps = 0.0, 60.0, None
    while argv and argv[0].startswith('--'):
        opt = argv.pop(0)
        if opt == '--wait':
            wait = float(argv.pop(0))
        elif opt == '--timeout':
            timeout = float(argv.pop(0))
        elif opt == '--stamps':
            stamps = open(argv.pop(0), 'a')
        else:
            raise QMPError('unknown option ' + opt)
    if len(argv) < 2:
        sys.exit(__doc__)
    path = argv.pop(0)
    cmds, cur = [], []
    for w in argv:
        if w == '+':
            cmds.append(cur)
            cur = []
        else:
            cur.append(w)
    cmds.append(cur)
    q = QMP(path, wait=wait, timeout=timeout)
    for c in cmds:
        if not c:
            continue
        name, rest = c[0], c[1:]
        if name == 'wait-migrate':
            r = q.wait_migrate()
        elif name == 'wait-event':
            r = q.wait_event(rest[0])
        elif name == 'sleep':
            time.sleep(float(rest[0]))
            r = None
        elif name == 'ignore-shared':
            r = q.ignore_shared()
        elif name == 'ask':
            r = ask(rest[0], ' '.join(rest[1:]), timeout)
        elif name == 'quit':
            # QEMU may close the socket before or after answering.
            try:
                r = q.execute('quit')
            except (QMPError, OSError):
                r = None
        else:
            r = q.execute(name, parse_args(rest))
        if stamps:
            stamps.write('%s %d\n' % (name, time.time_ns()))
            stamps.flush()
        print(json.dumps(r))
    q.close()


def main():
    try:
        run(sys.argv[1:])
    except (QMPError, OSError, ValueError) as e:
        print('qmp.py: %s' % e, file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
