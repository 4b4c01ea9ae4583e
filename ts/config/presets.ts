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
const CLONE_NEWUSER = 0x1000_0000;
const TIOCSTI = 0x5412;
const EPERM = 1;
const ENOSYS = 38;

const masked = (index: number, bit: number) => ({ index, value: bit, valueTwo: bit, op: 'SCMP_CMP_MASKED_EQ' });
const deny = (names: string[], args?: object[]) => ({ names, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, ...(args ? { args } : {}) });

/**
 * contained.c's seccomp filter as an OCI profile: everything allowed but its
 * rules. One addition keeps the rules meaningful on today's libc: clone3
 * answers ENOSYS (its flags live in memory a filter cannot read), so glibc
 * falls back to clone, whose CLONE_NEWUSER the filter does see.
 */
export const SEED_SECCOMP_PROFILE = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
  syscalls: [
    deny(['chmod'], [masked(1, S_ISUID)]),
    deny(['chmod'], [masked(1, S_ISGID)]),
    deny(['fchmod'], [masked(1, S_ISUID)]),
    deny(['fchmod'], [masked(1, S_ISGID)]),
    deny(['fchmodat'], [masked(2, S_ISUID)]),
    deny(['fchmodat'], [masked(2, S_ISGID)]),
    deny(['unshare'], [masked(0, CLONE_NEWUSER)]),
    deny(['clone'], [masked(0, CLONE_NEWUSER)]),
    deny(['ioctl'], [{ index: 1, value: TIOCSTI, op: 'SCMP_CMP_EQ' }]),
    deny(['keyctl', 'add_key', 'request_key', 'ptrace', 'mbind', 'migrate_pages', 'move_pages', 'set_mempolicy', 'userfaultfd', 'perf_event_open']),
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
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
