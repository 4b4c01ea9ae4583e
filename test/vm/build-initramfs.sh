#!/bin/sh
# Builds $TSBOX_VM_DIR/initramfs.cpio.gz: busybox-static, guest/init and
# guest/stage2, and the modules that mount the host's root over 9p with a tmpfs
# overlay (virtio, 9p, netfs, fscache, overlay), and loop: /dev/loop0-7 are the
# guest's only block devices, for the io.max tests.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${TSBOX_VM_DIR:-$HERE/../../target/vm}
KVER=${KVER:-$(ls "$OUT/kernel-root/lib/modules" | head -1)}
MODDIR=$OUT/kernel-root/lib/modules/$KVER/kernel
BB=${BUSYBOX:-/bin/busybox}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/lib/modules" "$W/proc" "$W/sys" "$W/dev" "$W/mnt" "$W/newroot"
cp "$BB" "$W/bin/busybox"
cp "$HERE/guest/init" "$HERE/guest/stage2" "$W/"
chmod 755 "$W/init" "$W/stage2"
for p in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/9p/9pnet net/9p/9pnet_virtio \
         fs/netfs/netfs fs/fscache/fscache fs/9p/9p fs/overlayfs/overlay drivers/block/loop; do
  f=$(ls "$MODDIR/$p.ko"* 2>/dev/null | head -1)
  [ -n "$f" ] || { echo "build-initramfs: module $p missing under $MODDIR" >&2; exit 1; }
  case "$f" in
    *.xz)  xz -dc "$f" > "$W/lib/modules/$(basename "$p").ko" ;;
    *.zst) zstd -dcq "$f" > "$W/lib/modules/$(basename "$p").ko" ;;
    *)     cp "$f" "$W/lib/modules/$(basename "$p").ko" ;;
  esac
done
(cd "$W" && find . | "$W/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 > "$OUT/initramfs.cpio.gz"
ls -la "$OUT/initramfs.cpio.gz"
