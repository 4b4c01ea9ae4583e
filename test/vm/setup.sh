#!/bin/sh
# One-time setup of the pure cgroup v2 test VM (test/vm/README.md). Needs root and
# apt (Debian 12). Installs qemu-system-x86 (no recommends), busybox-static and
# xz-utils; downloads -- never installs -- Debian's kernel package and unpacks
# from it only the kernel and the few modules the initramfs loads (virtio, 9p,
# overlay, and loop for block devices the io tests can throttle); extracts an
# uncompressed vmlinux (direct PVH boot); builds the initramfs.
#
# Output, in $TSBOX_VM_DIR (default <repo>/target/vm, ignored by git; cache it in CI):
#   debs/linux-image-*.deb   kernel-root/   vmlinux-<kver>   initramfs.cpio.gz
# Env: TSBOX_VM_DIR; TSBOX_VM_FULL_MODULES=1 unpacks the whole module tree (~390 MB)
# for guests that need veth, bridge or nf_tables.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${TSBOX_VM_DIR:-$HERE/../../target/vm}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export DEBIAN_FRONTEND=noninteractive

need_install=
command -v qemu-system-x86_64 >/dev/null || need_install=1
command -v xz >/dev/null || need_install=1
{ [ -x /bin/busybox ] && /bin/busybox --list | grep -qx cpio; } || need_install=1
if [ -n "$need_install" ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends qemu-system-x86 busybox-static xz-utils >/dev/null
fi

# The versioned kernel package the linux-image-amd64 metapackage points at.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
PKG=$(kernel_pkg)
if [ -z "$PKG" ]; then apt-get update -qq; PKG=$(kernel_pkg); fi
[ -n "$PKG" ] || { echo "setup: cannot resolve the kernel package behind linux-image-amd64" >&2; exit 1; }

mkdir -p "$OUT/debs"
if ! ls "$OUT/debs/${PKG}"_*.deb >/dev/null 2>&1; then
  # apt-get download writes to the current directory; as root it warns that the
  # _apt sandbox user cannot write there, which is harmless.
  (cd "$OUT/debs" && apt-get download "$PKG" 2>/dev/null)
fi
DEB=$(ls "$OUT/debs/${PKG}"_*.deb | head -1)

rm -rf "$OUT/kernel-root" && mkdir "$OUT/kernel-root"
if [ -n "${TSBOX_VM_FULL_MODULES:-}" ]; then
  dpkg-deb -x "$DEB" "$OUT/kernel-root"
  KVER=$(ls "$OUT/kernel-root/lib/modules" | head -1)
  /bin/busybox depmod -b "$OUT/kernel-root" "$KVER"
else
  dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$OUT/kernel-root" --wildcards \
    './boot/vmlinuz-*' './boot/config-*' \
    './lib/modules/*/kernel/drivers/virtio/virtio*.ko*' './lib/modules/*/kernel/net/9p/9pnet*.ko*' \
    './lib/modules/*/kernel/fs/9p/*' './lib/modules/*/kernel/fs/netfs/*' './lib/modules/*/kernel/fs/fscache/*' \
    './lib/modules/*/kernel/fs/overlayfs/*' './lib/modules/*/kernel/drivers/block/loop.ko*'
fi
KVER=$(ls "$OUT/kernel-root/lib/modules" | head -1)
rm -f "$OUT"/vmlinux-*
"$HERE/extract-vmlinux.sh" "$OUT/kernel-root/boot/vmlinuz-$KVER" "$OUT/vmlinux-$KVER" >/dev/null \
  || echo "setup: no vmlinux extracted; the VM boots the compressed bzImage (a few seconds slower)"
TSBOX_VM_DIR=$OUT KVER=$KVER "$HERE/build-initramfs.sh" >/dev/null
echo "setup: kernel $KVER in $OUT"
du -sh "$OUT/debs" "$OUT/kernel-root" "$OUT/initramfs.cpio.gz" 2>/dev/null
