#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The restore benchmark; see bench/README.md. All options go to run.py.
exec python3 "$(dirname "$0")/run.py" "$@"
