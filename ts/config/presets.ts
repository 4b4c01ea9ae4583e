/**
 * `preset: 'contained'` (`--preset contained`): the choices of the seed program,
 * "Linux containers in 500 lines of code" (contained.c), reproduced. Options
 * given alongside a preset override it.
 */
import { existsSync } from 'node:fs';

import { ALL_CAPABILITIES } from './capabilities.js';

/** The capabilities contained.c drops from every set (the rest stay), and the three added since. */
export const SEED_DROPPED_CAPABILITIES = [
  'AUDIT_CONTROL', 'AUDIT_READ', 'AUDIT_WRITE', 'BLOCK_SUSPEND', 'DAC_READ_SEARCH', 'FSETID', 'IPC_LOCK', 'MAC_ADMIN', 'MAC_OVERRIDE',
  'MKNOD', 'SETFCAP', 'SYSLOG', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_MODULE', 'SYS_NICE', 'SYS_RAWIO', 'SYS_RESOURCE', 'SYS_TIME', 'WAKE_ALARM',
  // Newer than the seed program, dropped by DESIGN.md's reading of it.
  'BPF', 'PERFMON', 'CHECKPOINT_RESTORE',
].map((c) => `CAP_${c}`);

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const O_CREAT = 0o100;
const O_TMPFILE = 0o20000000; // __O_TMPFILE
const CLONE_NEWUSER = 0x1000_0000;
const LOW_32_BITS = 0xffff_ffff;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;
const TIOCEXCL = 0x540c;
const TIOCSETD = 0x5423;
const TIOCCONS = 0x541d;
const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
/** The socket families a container may open: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET (as the default profile; README, Security). */
const SOCKET_FAMILIES = [1, 2, 10, 16, 17];

const masked = (index: number, mask: number, value: number = mask) => ({ index, value: mask, valueTwo: value, op: 'SCMP_CMP_MASKED_EQ' });
const deny = (names: string[], args?: object[], errnoRet = EPERM) => ({ names, action: 'SCMP_ACT_ERRNO', errnoRet, ...(args ? { args } : {}) });

/**
 * contained.c's seccomp filter as an OCI profile: everything allowed but its
 * rules. Additions that keep those rules meaningful on today's kernels and
 * libc: clone3 answers ENOSYS (its flags live in memory a filter cannot read),
 * so glibc falls back to clone, whose CLONE_NEWUSER the filter does see;
 * fchmodat2 (Linux 6.6) is filtered like fchmodat; a setuid or setgid file
 * cannot be created without chmod either (open/openat/creat with O_CREAT or
 * O_TMPFILE, mknod/mknodat of a regular file; openat2, whose mode a filter
 * cannot read, is ENOSYS); ioctl requests are compared on the 32 bits the
 * kernel reads. And what tsbox's default profile also refuses: socket
 * families other than local, IP, netlink and packet (AF_VSOCK is not
 * network-namespaced), and the terminal ioctls that outlive the container.
 */
export const SEED_SECCOMP_PROFILE = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
  syscalls: [
    ...[S_ISUID, S_ISGID].flatMap((bit) => [
      deny(['chmod', 'fchmod'], [masked(1, bit)]),
      deny(['fchmodat', 'fchmodat2'], [masked(2, bit)]),
      deny(['creat'], [masked(1, bit)]),
      ...[O_CREAT, O_TMPFILE].flatMap((create) => [deny(['open'], [masked(1, create), masked(2, bit)]), deny(['openat'], [masked(2, create), masked(3, bit)])]),
      ...[S_IFREG, 0].flatMap((kind) => [deny(['mknod'], [masked(1, S_IFMT | bit, kind | bit)]), deny(['mknodat'], [masked(2, S_IFMT | bit, kind | bit)])]),
    ]),
    deny(['unshare'], [masked(0, CLONE_NEWUSER)]),
    deny(['clone'], [masked(0, CLONE_NEWUSER)]),
    ...[TIOCSTI, TIOCLINUX, TIOCEXCL, TIOCSETD, TIOCCONS].map((request) => deny(['ioctl'], [masked(1, LOW_32_BITS, request)])),
    ...SOCKET_FAMILIES.map((family) => ({ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [masked(0, LOW_32_BITS, family)] })),
    { names: ['socketpair'], action: 'SCMP_ACT_ALLOW', args: [masked(0, LOW_32_BITS, 1)] },
    deny(['socket', 'socketpair'], undefined, EAFNOSUPPORT),
    deny(['keyctl', 'add_key', 'request_key', 'ptrace', 'mbind', 'migrate_pages', 'move_pages', 'set_mempolicy', 'userfaultfd', 'perf_event_open']),
    deny(['clone3', 'openat2'], undefined, ENOSYS),
  ],
};

/** The kernel has a block I/O weight to write (BFQ on v1, io.weight or BFQ on v2). */
function blkioWeightAvailable(): boolean {
  return ['/sys/fs/cgroup/blkio/blkio.weight', '/sys/fs/cgroup/blkio/blkio.bfq.weight', '/sys/fs/cgroup/io.weight', '/sys/fs/cgroup/io.bfq.weight'].some((f) => existsSync(f)) ||
    existsSync('/sys/fs/cgroup/cgroup.controllers');
}

export const PRESETS = {
  contained: () => ({
    memory: 1024 ** 3,
    cpuShares: 256,
    pidsLimit: 64,
    // contained.c writes blkio.weight 10; a kernel without a weight (no BFQ
    // scheduler on v1) gets none, which the outcome report shows.
    ...(blkioWeightAvailable() ? { blkioWeight: 10 } : {}),
    ulimits: { nofile: 64 },
    uidMap: [{ containerId: 0, hostId: 10000, size: 2000 }],
    gidMap: [{ containerId: 0, hostId: 10000, size: 2000 }],
    capAdd: ['ALL'],
    capDrop: SEED_DROPPED_CAPABILITIES.filter((c) => ALL_CAPABILITIES.includes(c)),
    seccomp: SEED_SECCOMP_PROFILE,
    // contained.c leaves no_new_privs off.
    noNewPrivileges: false,
  }),
} as const;

export type PresetName = keyof typeof PRESETS;
