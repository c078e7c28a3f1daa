#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: root -- bench/soak.sh, short: 30 s of rounds of 64 restores (4
# faulting threads each) and 16 restores with prefetch, all at once on one
# pool server; tier-load fails on a wrong byte, a page not verified, a
# failed restore, a hang (its alarm), or the server's RSS at the end more
# than 16 MiB above its RSS after the warm-up rounds. No timing checks.
: "${TIERCTL:?run under meson test (TIERCTL unset)}"
src=${TIER_SRCDIR:-$(dirname "$0")/..}
build=$(dirname "$(dirname "$TIERCTL")")
exec "$src/bench/soak.sh" --build "$build" --seconds 30 --rss-bound 16384
