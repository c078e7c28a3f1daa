#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build a guest initramfs (uncompressed cpio: TCG unpacks it faster than it
# decompresses one).  Cached by a hash of every input; prints its path.
#
# usage: emu/initramfs.sh [workload|hw] [CACHEDIR]
#   workload  busybox + emu/guest/workload-init + static emu/workload.c
#   hw        busybox + emu/guest/hw-init + kernel modules per flag group
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kind=${1:-workload}
cache=${2:-${EMU_CACHE:-$here/cache}}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

busybox=${EMU_BUSYBOX:-/bin/busybox}
# (No grep -q on a pipe here: with pipefail, the writer's SIGPIPE fails it.)
applets=$("$busybox" --list 2>/dev/null || true)
if ! grep -qx sh <<<"$applets" || [ -n "$(ldd "$busybox" 2>/dev/null | grep '=>' || true)" ]; then
	echo "initramfs: $busybox is not a static busybox (apt-get install busybox-static)" >&2
	exit 1
fi

# Module groups for the hardware guest: top-level modules per run-in-guest flag.
declare -A groups=(
	[base]="virtio_pci 9pnet_virtio 9p overlay"
	[rxe]="udp_tunnel ip6_udp_tunnel ib_core ib_uverbs crc32_generic rdma_rxe configfs ib_cm iw_cm rdma_cm rdma_ucm veth"
	[pmem]="nd_e820 nd_pmem dax_pmem device_dax ext4"
	[cxl]="cxl_acpi cxl_pci cxl_mem cxl_port cxl_pmem nd_pmem dax_pmem device_dax ext4"
	[numa]=""
)

# Copy a module without its appended signature: checking one costs ~0.3 s
# under TCG, and an unsigned module loads fine (it only taints the kernel)
# unless module.sig_enforce is set, which the guest's command line never does.
unsign() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
magic = b'~Module signature appended~\n'
if data.endswith(magic):
    # struct module_signature: 12 bytes, sig_len big-endian at offset 8
    info = data[-len(magic) - 12:-len(magic)]
    sig_len = struct.unpack('>I', info[8:12])[0]
    data = data[:-len(magic) - 12 - sig_len]
open(sys.argv[2], 'wb').write(data)
PY
}

case $kind in
workload)
	init=$here/guest/workload-init
	key=$( (cat "$init" "$here/workload.c" "$busybox"; gcc --version | head -n1) | sha256sum | cut -c1-16)
	;;
hw)
	init=$here/guest/hw-init
	"$here/fetch-kernel.sh" "$cache" >/dev/null
	kroot=$cache/kernel
	kver=$(cat "$kroot/KVER")
	key=$( (cat "$init" "$busybox" "$0"; echo "$kver") | sha256sum | cut -c1-16)
	;;
*)
	echo "usage: $0 [workload|hw] [CACHEDIR]" >&2
	exit 2
	;;
esac

out=$cache/initramfs-$kind-$key.cpio
exec 9>"$cache/.initramfs.lock"
flock 9
if [ -s "$out" ]; then
	echo "$out"
	exit 0
fi

root=$(mktemp -d "$cache/initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc/emu,run,mnt}
cp "$busybox" "$root/bin/busybox"
for a in $applets; do
	[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
ln -s bin "$root/sbin"
cp "$init" "$root/init"
chmod 755 "$root/init"

if [ "$kind" = workload ]; then
	gcc -O2 -static -o "$root/bin/wl" "$here/workload.c"
	echo pong >"$root/etc/pong"
else
	echo "$kver" >"$root/etc/emu/kver"
	for g in "${!groups[@]}"; do
		: >"$root/etc/emu/mods-$g"
		for m in ${groups[$g]}; do
			# -C /dev/null: ndctl's modprobe.d would hide libnvdimm.
			modprobe -C /dev/null -d "$kroot" -S "$kver" --show-depends "$m" |
				awk '$1 == "insmod" { print $2 }'
		done | awk '!seen[$0]++' | while read -r ko; do
			rel=${ko#"$kroot/lib/modules/$kver/"}
			mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
			[ -e "$root/lib/modules/$kver/$rel" ] || unsign "$ko" "$root/lib/modules/$kver/$rel"
			echo "$rel" >>"$root/etc/emu/mods-$g"
		done
	done
fi

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out.tmp"
rm -f "$cache/initramfs-$kind-"*.cpio
mv "$out.tmp" "$out"
echo "$out"
