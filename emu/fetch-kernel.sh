#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Fetch the Debian kernel package (exactly the one linux-image-amd64 depends
# on, never a glob) and extract it into a cache directory.  Idempotent.
# Prints the path of vmlinuz on stdout.  Next to it: DIR/kernel/vmlinux (the
# same kernel uncompressed, for PVH boot: emu/lib.sh prefers it) and the
# module tree with the modules.dep that depmod -b made on our copy.
#
# usage: emu/fetch-kernel.sh [DIR]     (default: emu/cache, or $EMU_CACHE)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${EMU_CACHE:-$here/cache}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# One fetcher at a time per cache (tests of several builds may share it).
exec 9>"$dir/.fetch.lock"
flock 9

# An already extracted kernel wins: no apt query, works offline.
if [ -z "${EMU_REFRESH:-}" ] && [ -f "$dir/kernel/KVER" ]; then
	kver=$(cat "$dir/kernel/KVER")
	if [ -f "$dir/kernel/boot/vmlinuz-$kver" ] &&
	   [ -f "$dir/kernel/lib/modules/$kver/modules.dep" ]; then
		echo "$dir/kernel/boot/vmlinuz-$kver"
		exit 0
	fi
fi

command -v apt-cache >/dev/null || { echo "fetch-kernel: apt-cache missing" >&2; exit 1; }
command -v depmod >/dev/null || { echo "fetch-kernel: depmod missing (apt-get install kmod)" >&2; exit 1; }
# awk reads to the end: an early exit could SIGPIPE apt-cache (pipefail).
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ && !p {print $2; p=1}')
if [ -z "$pkg" ]; then
	echo "fetch-kernel: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
	exit 1
fi
kver=${pkg#linux-image-}

dl="$dir/deb"
mkdir -p "$dl"
deb=$(ls "$dl/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
	# apt-get download writes into the cwd, as _apt unless told otherwise:
	# as root, download as root (no sandbox warning for a private dir).
	sandbox=()
	[ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
	(cd "$dl" && apt-get download -q "${sandbox[@]}" "$pkg" >&2) ||
		(cd "$dl" && chmod 777 . && apt-get download -q "$pkg" >&2)
	deb=$(ls "$dl/${pkg}"_*.deb | head -n1)
fi

tmp="$dir/kernel.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
dpkg -x "$deb" "$tmp"
# Debian's 12 package puts modules in /lib/modules; bookworm has no usrmerge
# inside the .deb, but be tolerant of /usr/lib/modules too.
moddir="$tmp/lib/modules/$kver"
if [ ! -d "$moddir" ] && [ -d "$tmp/usr/lib/modules/$kver" ]; then
	mkdir -p "$tmp/lib/modules"
	mv "$tmp/usr/lib/modules/$kver" "$moddir"
fi
depmod -b "$tmp" "$kver"
# An uncompressed ELF vmlinux boots through QEMU's PVH entry (Debian's kernel
# has CONFIG_PVH): that skips the in-guest xz decompression, ~5 s under TCG.
vmlinuz=$tmp/boot/vmlinuz-$kver
off=$(grep -abo $'\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1 || true)
if [ -n "$off" ] && command -v xz >/dev/null; then
	# tail dies of SIGPIPE when xz stops after the stream: judge xz alone.
	tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream >"$tmp/vmlinux" 2>/dev/null ||
		[ "${PIPESTATUS[1]}" = 0 ] || rm -f "$tmp/vmlinux"
	[ -f "$tmp/vmlinux" ] && [ "$(head -c 4 "$tmp/vmlinux" | od -An -c | tr -d ' ')" = 177ELF ] ||
		rm -f "$tmp/vmlinux"
fi
echo "$kver" >"$tmp/KVER"
rm -rf "$dir/kernel"
mv "$tmp" "$dir/kernel"
echo "$dir/kernel/boot/vmlinuz-$kver"
