#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Expected answers of the workload VM, computed on the host independently of
the guest's C program (emu/workload.c): same formulas, separate code.

usage: emu/expect.py ping | sha [MIB] | touch N | kv SEED COUNT
"""
import hashlib
import struct
import sys

M64 = (1 << 64) - 1
KV_RECORDS = 1 << 18
KV_SEED = 0x7469657200000001
KV_WORDS = 7


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def sha(mib=8):
    h = hashlib.sha256()
    words = mib << 18
    chunk = 1 << 16
    for base in range(0, words, chunk):
        vals = []
        for w in range(base, base + chunk):
            x = (w * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF
            vals.append(x ^ (x >> 15))
        h.update(struct.pack('<%dI' % chunk, *vals))
    return h.hexdigest()


def kv(seed, count):
    # The guest looks keys up in its hash index; the record holding a key is
    # known here directly, so a broken index or dataset shows as a mismatch.
    h = 0xCBF29CE484222325
    for j in range(count):
        i = splitmix64((seed * 1000003 + j) & M64) % KV_RECORDS
        key = splitmix64(i ^ KV_SEED)
        for k in range(KV_WORDS):
            for b in struct.pack('<Q', splitmix64((key + k + 1) & M64)):
                h = ((h ^ b) * 0x100000001B3) & M64
    return 'kv %d %d %016x' % (seed, count, h)


def main(argv):
    if argv[:1] == ['ping']:
        return 'pong'
    if argv[:1] == ['sha']:
        return sha(int(argv[1]) if len(argv) > 1 else 8)
    if argv[:1] == ['touch'] and len(argv) == 2:
        return 'touched %d' % int(argv[1])
    if argv[:1] == ['kv'] and len(argv) == 3:
        return kv(int(argv[1]), int(argv[2]))
    sys.exit(__doc__)


if __name__ == '__main__':
    print(main(sys.argv[1:]))
