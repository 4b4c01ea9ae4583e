/**
 * Resource limits: their one schema (Docker's flags and semantics), the
 * parsing of Docker's size strings, and the conversions between the v1 and v2
 * kernel interfaces. Pure, but for the one read of the host's pid_max that
 * sizes the default pids limit.
 */
import { readFileSync } from 'node:fs';

import * as z from 'zod/mini';

import '../config/locale.js';
import { lazyStrictObject, once, optional, withDefault, type LazyInput, type LazyOutput } from '../config/lazy.js';

import { TsboxError } from '../errors.js';

/**
 * The pids limit of every container unless the caller gives one: 4096,
 * enough for any sane workload, or a sixteenth of the host's pid_max when
 * that is smaller, so that eight fork bombs at once still leave the host half
 * of its pid space (pid_max is 4194304 where systemd sets it, 32768 by the
 * kernel's default: 2048 there). `pidsLimit: -1` removes it. Docker has no
 * default; podman's is 2048.
 */
export function defaultPidsLimit(pidMax: number | null = readPidMax()): number {
  return pidMax === null ? 4096 : Math.max(64, Math.min(4096, Math.floor(pidMax / 16)));
}

function readPidMax(): number | null {
  try {
    const n = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** {@link defaultPidsLimit} on this host, read once. */
export const DEFAULT_PIDS_LIMIT = defaultPidsLimit();

/** The CFS period used with `cpus`, as Docker's: 100 ms. */
export const DEFAULT_CPU_PERIOD = 100_000;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Docker's byte sizes (go-units RAMInBytes): a number of bytes, or a decimal
 * number with a binary unit k, m, g, t or p, optionally followed by `i` and/or
 * `b`, in any case: `64m` = `64MiB` = 67108864, `1.5g`, `512k`, `100` (bytes).
 */
export function parseByteSize(value: string | number): number {
  const r = sizeOf(value);
  if (typeof r === 'number') return r;
  throw new TsboxError({
    step: 'config',
    errno: 0,
    path: String(value),
    detail: r,
    hint: 'give bytes as a number, or a number with a unit k, m, g, t or p (binary, as Docker: 64m = 64 MiB, 1.5g)',
  });
}

/** {@link parseByteSize}'s reading of `value`, or undefined when it is no size. */
export function sizeInBytes(value: string | number): number | undefined {
  const r = sizeOf(value);
  return typeof r === 'number' ? r : undefined;
}

/** The size in bytes, or what is wrong with it. */
function sizeOf(value: string | number): number | string {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : `invalid size ${value}: a number of bytes must be a whole number, 0 or more`;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$/i.exec(value);
  if (!m || (m[2] === '' && m[3] !== '')) return `invalid size ${JSON.stringify(value)}: use bytes, or a number with a unit such as 64m, 512k, 1.5g`;
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : `invalid size ${JSON.stringify(value)}: too large`;
}

// --- conversions between the v1 and v2 interfaces -------------------------

/**
 * cpu.shares (v1, 2..262144, default 1024) → cpu.weight (v2, 1..10000,
 * default 100), linearly, the way runc and crun convert it:
 * weight = 1 + ((shares - 2) * 9999) / 262142. 0 stays 0 (unset).
 */
export function cpuSharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  const s = Math.min(Math.max(shares, 2), 262_144);
  return 1 + Math.floor(((s - 2) * 9999) / 262_142);
}

/**
 * cpu.weight → cpu.shares, the inverse of {@link cpuSharesToWeight}: the
 * smallest share count that converts back to the same weight, so
 * weight → shares → weight is exact (shares → weight → shares is within 27).
 */
export function cpuWeightToShares(weight: number): number {
  if (weight === 0) return 0;
  const w = Math.min(Math.max(weight, 1), 10_000);
  return 2 + Math.ceil(((w - 1) * 262_142) / 9999);
}

/** blkio.weight (v1, 10..1000) → io.weight (v2, 1..10000), as runc: 1 + (w - 10) * 9999 / 990. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  const w = Math.min(Math.max(weight, 10), 1000);
  return 1 + Math.floor(((w - 10) * 9999) / 990);
}

/** io.weight → blkio.weight, the inverse of {@link blkioWeightToIoWeight}: blkio → io → blkio is exact (io's scale is the finer one). */
export function ioWeightToBlkioWeight(weight: number): number {
  if (weight === 0) return 0;
  const w = Math.min(Math.max(weight, 1), 10_000);
  return 10 + Math.ceil(((w - 1) * 990) / 9999);
}

/** `cpus: 1.5` → quota 150000 µs per period 100000 µs (Docker's NanoCPUs). */
export function cpusToQuota(cpus: number, period = DEFAULT_CPU_PERIOD): { quota: number; period: number } {
  return { quota: Math.round(cpus * period), period };
}

/** quota/period (v1 cfs_quota_us/cfs_period_us; quota -1 = none) → the v2 cpu.max line. */
export function formatCpuMax(quota: number | undefined, period: number | undefined): string {
  return `${quota === undefined || quota < 0 ? 'max' : quota} ${period ?? DEFAULT_CPU_PERIOD}`;
}

/** The v2 cpu.max line → quota (-1 = none) and period. */
export function parseCpuMax(line: string): { quota: number; period: number } {
  const [q, p] = line.trim().split(/\s+/);
  const period = p === undefined ? DEFAULT_CPU_PERIOD : Number(p);
  if (q === undefined || !(q === 'max' || /^\d+$/.test(q)) || !Number.isInteger(period)) {
    throw new TsboxError({ step: 'cgroup', errno: 0, path: line, detail: 'not a cpu.max line', hint: 'cpu.max holds "max|QUOTA PERIOD"' });
  }
  return { quota: q === 'max' ? -1 : Number(q), period };
}

// --- the schema -----------------------------------------------------------

// Each schema is built on first use (ts/config/lazy.ts): a run builds the
// schemas of the limits it gives, not all of them.

export const byteSize = once(() =>
  z.pipe(
    z.union([z.number(), z.string()]),
    z.transform((v: number | string, ctx) => {
      const r = sizeOf(v);
      if (typeof r === 'number') return r;
      ctx.issues.push({ code: 'custom', message: r, input: v });
      return z.NEVER;
    }),
  ),
);

export const positiveSize = once(() => byteSize().check(z.refine((n) => n > 0, { message: 'must be more than 0 bytes; leave it out for no limit' })));

/**
 * The smallest memory limit tsbox takes, as Docker's: below it a container
 * is OOM-killed while it is being set up, before its command runs.
 */
export const MEMORY_FLOOR = 6 * 1024 * 1024;

const memorySize = () =>
  byteSize().check(
    z.refine((n) => n >= MEMORY_FLOOR, {
      message: `must be at least 6m (${MEMORY_FLOOR} bytes): a container needs a few MB to start in (Docker's floor too); leave it out for no limit`,
    }),
  );

/** A cpu or memory-node list as the kernel writes it: `0-3,5`. */
const cpuList = once(() =>
  z.string().check(
    z.regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, { message: 'must be a list such as 0-3,5 (numbers and ranges, comma-separated)' }),
    z.refine((s) => s.split(',').every((r) => { const [a, b] = r.split('-').map(Number); return b === undefined || a! <= b; }), {
      message: 'a range must go from low to high',
    }),
  ),
);

/** cgroup v2 files that only the runtime writes: who is in the cgroup, what its children get, and its state. */
const RUNTIME_FILES = new Set(['cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control', 'cgroup.type', 'cgroup.kill', 'cgroup.freeze', 'cgroup.controllers', 'cgroup.events', 'cgroup.stat']);

/**
 * A block device of a limit with its value: by path (`{ path: '/dev/sda', ... }`),
 * or by number (`{ major: 8, minor: 0, ... }`, as an OCI config gives it).
 */
const deviceLimit = <V extends z.core.$ZodLooseShape>(value: V) => {
  const devicePath = z.string().check(z.refine((p) => p.startsWith('/') && !p.includes('\0'), { message: 'must be an absolute path to a block device' }));
  const deviceNumberPart = () => z.number().check(z.int(), z.gte(0), z.lte(0xffff_ffff));
  const oneDevice = (d: { path?: string | undefined; major?: number | undefined; minor?: number | undefined }) =>
    d.path === undefined ? d.major !== undefined && d.minor !== undefined : d.major === undefined && d.minor === undefined;
  return z.array(
    z
      .strictObject({ path: z.optional(devicePath), major: z.optional(deviceNumberPart()), minor: z.optional(deviceNumberPart()), ...value })
      .check(z.refine((d) => oneDevice(d as Parameters<typeof oneDevice>[0]), { message: 'must name its block device by path, or by major and minor: one of the two' })),
  );
};
const bpsDevices = once(() => deviceLimit({ rate: positiveSize() }));
const iopsDevices = once(() => deviceLimit({ rate: z.number().check(z.int(), z.positive()) }));

/**
 * The resource limits of a container, with Docker's flags' names and
 * meanings. Sizes are bytes or Docker's strings (`64m`). Every field is
 * optional except that `pidsLimit` defaults to {@link DEFAULT_PIDS_LIMIT}.
 * Each field's schema is built when the field is first given.
 */
export const cgroupLimitFields = {
  /** `-m/--memory`: the hard memory limit. v1 memory.limit_in_bytes, v2 memory.max. */
  memory: optional(memorySize),
  /**
   * `--memory-swap`: memory plus swap, so at least `memory`; -1 for unlimited swap. Needs `memory`.
   * Unset with `memory` set: as Docker, as much swap as memory, where the kernel accounts swap.
   */
  memorySwap: optional(() => z.union([z.literal(-1), z.pipe(z.literal('-1'), z.transform(() => -1 as const)), positiveSize()])),
  /** `--memory-reservation`: the soft limit. v1 memory.soft_limit_in_bytes, v2 memory.low. */
  memoryReservation: optional(positiveSize),
  /** `--cpu-shares`: relative weight, 2..262144 (default 1024). v1 cpu.shares, v2 cpu.weight (converted). */
  cpuShares: optional(() => z.number().check(z.int(), z.gte(2), z.lte(262_144))),
  /** `--cpu-quota`: µs of CPU time per period, at least 1000; -1 for none. */
  cpuQuota: optional(() => z.union([z.literal(-1), z.number().check(z.int(), z.gte(1000))])),
  /** `--cpu-period`: the CFS period in µs, 1000..1000000 (default 100000). */
  cpuPeriod: optional(() => z.number().check(z.int(), z.gte(1000), z.lte(1_000_000))),
  /** `--cpus`: CPUs' worth of time, e.g. 1.5 → quota 150000 per period 100000. Not with cpuQuota/cpuPeriod. */
  cpus: optional(() => z.number().check(z.gte(0.01, { message: 'must be at least 0.01' }), z.lte(10_000))),
  /** `--cpuset-cpus`: CPUs the container may run on, e.g. `0-3,5`. */
  cpusetCpus: optional(cpuList),
  /** `--cpuset-mems`: memory nodes the container may allocate from. */
  cpusetMems: optional(cpuList),
  /** `--pids-limit`: the most processes and threads at once; -1 for none. */
  pidsLimit: withDefault(DEFAULT_PIDS_LIMIT, () =>
    z.union([z.literal(-1), z.number().check(z.int(), z.positive({ message: 'must be a positive number of processes, or -1 for no limit' }))], {
      error: (iss) => `must be a whole number of processes, 1 or more, or -1 for no limit${typeof iss.input === 'string' ? ` (a number: 32, not "32")` : ''}`,
    }),
  ),
  /** `--blkio-weight`: relative block I/O weight, 10..1000. v2 io.weight (converted) and io.bfq.weight. */
  blkioWeight: optional(() => z.number().check(z.int(), z.gte(10), z.lte(1000))),
  /** `--blkio-weight-device`: the block I/O weight on one device, 10..1000. v1 blkio.weight_device / blkio.bfq.weight_device, v2 io.weight (converted) / io.bfq.weight. */
  blkioWeightDevice: optional(() => deviceLimit({ weight: z.number().check(z.int(), z.gte(10), z.lte(1000)) })),
  /** `--device-read-bps`: read bytes per second, per block device. */
  deviceReadBps: optional(bpsDevices),
  /** `--device-write-bps`: written bytes per second, per block device. */
  deviceWriteBps: optional(bpsDevices),
  /** `--device-read-iops`: read operations per second, per block device. */
  deviceReadIops: optional(iopsDevices),
  /** `--device-write-iops`: write operations per second, per block device. */
  deviceWriteIops: optional(iopsDevices),
  /** `--memory-swappiness`: 0..100, how readily the kernel swaps the container's anonymous memory out. v1 memory.swappiness (v2 has none). */
  memorySwappiness: optional(() => z.number().check(z.int(), z.gte(0), z.lte(100))),
  /** `--oom-kill-disable`: the OOM killer leaves the container's processes alone; at its memory limit they wait for memory instead. v1 memory.oom_control (v2 has none). */
  oomKillDisable: optional(() => z.boolean()),
  /** `--kernel-memory` (Docker's, deprecated): a limit on the kernel memory the container uses. v1 memory.kmem.limit_in_bytes (v2 counts it in memory). */
  kernelMemory: optional(positiveSize),
  /** A limit on the kernel memory of the container's TCP buffers. v1 memory.kmem.tcp.limit_in_bytes (v2 counts it in memory). */
  kernelMemoryTCP: optional(positiveSize),
  /**
   * Huge pages the container may use, per page size as the kernel names it
   * (`2MB`, `1GB`: see /sys/kernel/mm/hugepages): `[{ pageSize: '2MB', limit: 1073741824 }]`.
   * v1 hugetlb.<size>.limit_in_bytes, v2 hugetlb.<size>.max.
   */
  hugepageLimits: optional(() => z.array(z.strictObject({
    pageSize: z.string().check(z.regex(/^[1-9]\d*[KMG]B$/, { message: 'must be a page size as the kernel names it: 2MB, 1GB, 64KB' })),
    limit: z.number().check(z.int(), z.gte(0)),
  }))),
  /** The net_cls class id of the container's packets (tc and iptables match it). v1 net_cls.classid (v2 has no net_cls). */
  networkClassId: optional(() => z.number().check(z.int(), z.gte(0), z.lte(0xffff_ffff))),
  /** The priority of the container's packets per interface. v1 net_prio.ifpriomap (v2 has no net_prio). */
  networkPriorities: optional(() => z.array(z.strictObject({
    name: z.string().check(z.regex(/^[^\s/]{1,15}$/, { message: 'must be a network interface name (at most 15 characters, no space or /)' })),
    priority: z.number().check(z.int(), z.gte(0), z.lte(0xffff_ffff)),
  }))),
  /**
   * cgroup v2 files to write in the container's cgroup, as podman's
   * `--cgroup-conf` and the OCI `unified` map: `{ 'memory.high': '64M' }`.
   * Written after the other limits; each file's controller is enabled for
   * the container. Pure cgroup v2 only.
   */
  unified: optional(() => z.record(
    z.string().check(
      z.regex(/^[a-z][a-z0-9_]*\.[A-Za-z0-9_.]+$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a cgroup v2 file name, such as memory.high` }),
      z.refine((k) => !RUNTIME_FILES.has(k), { error: (iss) => `${JSON.stringify(iss.input)} is a file the runtime manages: it cannot be set` }),
    ),
    z.string().check(z.refine((v) => !v.includes('\0'), { message: 'must not contain a NUL byte' })),
  )),
};

/** The limits' schema: {@link cgroupLimitFields} as a strict object, with the checks across fields. */
export const cgroupLimitsSchema = lazyStrictObject(cgroupLimitFields, (l, ctx) => {
  for (const i of crossLimitIssues(l)) ctx.addIssue({ code: 'custom', path: [i.path], message: i.message });
});

/**
 * Docker's checks of the limits that involve more than one field, on values
 * each of which passed its own; for the options' schema too, which has the
 * same fields.
 */
export function crossLimitIssues(values: Readonly<Record<string, unknown>>): { path: string; message: string }[] {
  const keys = ['memory', 'memorySwap', 'memoryReservation', 'cpus', 'cpuQuota', 'cpuPeriod'] as const;
  // A field that failed its own check (still its input, not a number) is reported there.
  if (keys.some((k) => values[k] !== undefined && typeof values[k] !== 'number')) return [];
  const l = values as { [K in (typeof keys)[number]]?: number };
  const issues: { path: string; message: string }[] = [];
  if (l.memorySwap !== undefined && l.memorySwap !== -1) {
    if (l.memory === undefined) issues.push({ path: 'memorySwap', message: 'memorySwap counts memory plus swap: set memory too' });
    else if (l.memorySwap < l.memory) issues.push({ path: 'memorySwap', message: 'must be at least memory (it counts memory plus swap)' });
  }
  if (l.memoryReservation !== undefined && l.memory !== undefined && l.memoryReservation > l.memory) {
    issues.push({ path: 'memoryReservation', message: 'must not be more than memory' });
  }
  if (l.cpus !== undefined && (l.cpuQuota !== undefined || l.cpuPeriod !== undefined)) {
    issues.push({ path: 'cpus', message: 'give either cpus or cpuQuota/cpuPeriod, not both' });
  }
  return issues;
}

/** Limits as the caller writes them (sizes may be strings). */
export type CgroupLimitsInput = LazyInput<typeof cgroupLimitFields>;
/** Limits after parsing: sizes in bytes, `pidsLimit` filled in. */
export type CgroupLimits = LazyOutput<typeof cgroupLimitFields>;

function jsonPath(path: readonly PropertyKey[]): string {
  let out = 'limits';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  return out;
}

/**
 * Parses limits with {@link cgroupLimitsSchema}; throws one TsboxError (step
 * `config`) listing each problem with its JSON path, e.g. `limits.memory`.
 */
export function parseLimits(input: unknown): CgroupLimits {
  const r = cgroupLimitsSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const issues = r.error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? i.keys.map((k) => ({ path: jsonPath([...i.path, k]), message: 'unknown limit' }))
      : // zod 4 keeps a record key's own problem in a nested list.
        [{ path: jsonPath(i.path), message: i.code === 'invalid_key' ? (i.issues[0]?.message ?? i.message) : i.message }],
  );
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more: ${issues.slice(1).map((i) => `${i.path}: ${i.message}`).join('; ')})` : '';
  throw new TsboxError({ step: 'config', errno: 0, path: first.path, detail: `${first.message}${more}`, hint: null }, { issues });
}

/** The effective CPU bandwidth: `cpus` as quota/period, or the explicit quota/period. */
export function cpuBandwidth(l: CgroupLimits): { quota: number | undefined; period: number | undefined } {
  if (l.cpus !== undefined) return cpusToQuota(l.cpus);
  return { quota: l.cpuQuota, period: l.cpuPeriod };
}

/** The swap (on top of memory) in v2 terms: bytes, 'max', or undefined to leave it alone; `explicit` when the caller asked. */
export function swapLimit(l: CgroupLimits): { total: number | 'max'; explicit: boolean } | undefined {
  if (l.memorySwap === -1) return { total: 'max', explicit: true };
  if (l.memorySwap !== undefined) return { total: l.memorySwap, explicit: true };
  // Docker: with memory and no memory-swap, as much swap as memory.
  if (l.memory !== undefined) return { total: l.memory * 2, explicit: false };
  return undefined;
}
