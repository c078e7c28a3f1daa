#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# module-id.py WASM HEADER OUT: the module's identity (sha-256 of the .wasm)
# for its snapshots, after checking that wasm2c's instance struct holds no
# state the snapshot does not capture (doc/wasm.md): the stack pointer, the
# memory and the table only.
import hashlib, re, sys

wasm, header, out = sys.argv[1:4]
text = open(header).read()
m = re.search(r'typedef struct Z_\w+_instance_t \{(.*?)\} Z_\w+_instance_t;', text, re.S)
if not m:
    sys.exit(f'{header}: no instance struct')
allowed = ('Z_wasi_snapshot_preview1_instance', 'w2c___stack_pointer', 'w2c_memory', 'w2c_T0')
for field in re.findall(r'(\w+);', m.group(1)):
    if field not in allowed:
        sys.exit(f'{header}: instance field {field} is state a snapshot would not capture')
digest = hashlib.sha256(open(wasm, 'rb').read()).hexdigest()
open(out, 'w').write(f'#define MODULE_ID "{digest}"\n')
