#!/bin/sh
# Usage: extract-vmlinux.sh BZIMAGE OUT
# Finds the XZ stream inside a Debian bzImage and writes the uncompressed ELF
# vmlinux, which qemu boots directly (PVH) without decompressing in the guest.
set -eu
in=$1; out=$2
for off in $(grep -abo "$(printf '\3757zXZ\000')" "$in" | cut -d: -f1); do
  tail -c +$((off + 1)) "$in" | xz -dc 2>/dev/null > "$out.tmp" || true
  if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = "177ELF" ]; then
    mv "$out.tmp" "$out"; echo "$out"; exit 0
  fi
done
rm -f "$out.tmp"
echo "extract-vmlinux: no ELF image found in $in" >&2
exit 1
