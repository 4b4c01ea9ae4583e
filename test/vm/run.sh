#!/bin/bash
# Usage: test/vm/run.sh 'SHELL COMMAND'
# Boots the Debian kernel prepared by setup.sh under qemu with a pure cgroup v2
# hierarchy (cgroup_no_v1=all), the host's root shared read-only (+ a tmpfs
# overlay), runs the command inside in the current directory, and exits with
# its status -- 125 when the guest crashed or timed out.
#
# Results must go to the job share, /tsbox-vm-job in the guest ($TSBOX_VM_JOB on
# the host side); everything else the guest writes is thrown away.
# Env: TSBOX_VM_DIR (setup's output), TSBOX_VM_MEM (MiB, default 2048),
#      TSBOX_VM_SMP (default 2), TSBOX_VM_TIMEOUT (s, default 1200),
#      TSBOX_VM_JOB (job dir to use and keep; default a fresh one under $TSBOX_VM_DIR/jobs,
#        removed at exit unless TSBOX_VM_KEEP_JOB=1),
#      TSBOX_VM_ACCEL=tcg|kvm (default tcg: software emulation. Many CI and
#        development machines are themselves VMs whose /dev/kvm exists but whose
#        nested KVM crashes qemu (MSR 0x10a) or hangs the guest; use kvm where
#        nested virtualization is known to work),
#      TSBOX_VM_APPEND (extra kernel arguments).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${TSBOX_VM_DIR:-$HERE/../../target/vm}
if [ ! -f "$OUT/initramfs.cpio.gz" ]; then
  echo "tsbox-vm: $OUT/initramfs.cpio.gz missing; run test/vm/setup.sh (as root) first" >&2
  exit 125
fi
OUT=$(cd "$OUT" && pwd)
KVER=${KVER:-$(ls "$OUT/kernel-root/lib/modules" | head -1)}
# The uncompressed vmlinux boots directly (PVH), saving the in-guest XZ decompression.
if [ -f "$OUT/vmlinux-$KVER" ]; then KERNEL=$OUT/vmlinux-$KVER; else KERNEL=$OUT/kernel-root/boot/vmlinuz-$KVER; fi
case "${TSBOX_VM_ACCEL:-tcg}" in
  kvm) ACCEL=(-accel kvm -cpu host) ;;
  tcg) ACCEL=(-accel tcg,thread=multi,tb-size=512 -cpu max) ;;
  *) echo "tsbox-vm: TSBOX_VM_ACCEL must be tcg or kvm" >&2; exit 125 ;;
esac
MODARG=
[ -f "$OUT/kernel-root/lib/modules/$KVER/modules.dep" ] && MODARG="tsbox_vm.modules=$OUT/kernel-root/lib/modules"
mkdir -p "$OUT/jobs"
if [ -n "${TSBOX_VM_JOB:-}" ]; then
  JOB=$TSBOX_VM_JOB
else
  JOB=$(mktemp -d "$OUT/jobs/job.XXXXXX")
  [ -n "${TSBOX_VM_KEEP_JOB:-}" ] || trap 'rm -rf "$JOB"' EXIT
fi
mkdir -p "$JOB" && JOB=$(cd "$JOB" && pwd)
rm -f "$JOB/exit_status"
printf '%s\n' "$*" > "$JOB/cmd.sh"
pwd > "$JOB/cwd"
t0=$(date +%s.%N)
timeout --foreground -k 10 "${TSBOX_VM_TIMEOUT:-1200}" \
  qemu-system-x86_64 \
  -machine q35 "${ACCEL[@]}" \
  -smp "${TSBOX_VM_SMP:-2}" -m "${TSBOX_VM_MEM:-2048}" \
  -nodefaults -no-user-config -display none -serial stdio -monitor none -no-reboot \
  -kernel "$KERNEL" -initrd "$OUT/initramfs.cpio.gz" \
  -append "console=ttyS0 panic=-1 cgroup_no_v1=all quiet loglevel=4 mitigations=off random.trust_cpu=on $MODARG ${TSBOX_VM_APPEND:-}" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$JOB",mount_tag=job,security_model=none,multidevs=remap \
  </dev/null
qrc=$?
t1=$(date +%s.%N)
echo "tsbox-vm: qemu exit $qrc, ${ACCEL[1]}, wall $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")s, guest boot-to-job $(cat "$JOB/boot_uptime" 2>/dev/null)s, job dir $JOB" >&2
# qemu exits 0 after the guest powers off; the job's own status is in exit_status.
if [ -f "$JOB/exit_status" ]; then exit "$(cat "$JOB/exit_status")"; fi
echo "tsbox-vm: no exit status (the guest crashed or timed out)" >&2
exit 125
