/**
 * What each controller file (memory.ts, cpu.ts, cpuset.ts, pids.ts, io.ts)
 * provides: whether a container needs it, the writes that apply its limits —
 * computed before anything is created, v1 and v2 side by side — and its stats.
 */
import type { CgroupLimits } from './limits.js';

/** tsbox's controller names are the v2 ones. */
export type ControllerName = 'memory' | 'cpu' | 'cpuset' | 'pids' | 'io' | 'hugetlb' | 'net_cls' | 'net_prio';

/** The directory a write or a stat goes to: a v1 hierarchy by name (`memory`, `cpuacct`, `blkio`), or `unified`. */
export type Hierarchy = string;

/** One limit, decided before anything exists. */
export interface LimitWrite {
  hierarchy: Hierarchy;
  /**
   * The control file and the value for it. With more than one, each file the
   * kernel has is written (blkio.weight and blkio.bfq.weight), and at least
   * one must exist.
   */
  files: { file: string; value: string }[];
  /** The limit this write applies, as named in {@link CgroupLimits} (`memory`, `pidsLimit`, ...). */
  limit: keyof CgroupLimits;
  /** A default, not a limit the caller gave: skipped when the kernel has none of the files. */
  optional?: boolean;
  /** Why the files could be missing, and what to do. */
  missingHint: string;
}

/** Block devices named in the limits, by deviceKey() (their path, or `major:minor`): `major:minor`. */
export type DeviceNumbers = ReadonlyMap<string, string>;

export interface Controller {
  name: ControllerName;
  /** The v1 hierarchies it uses, first the one that holds its limits: cpu → cpu, cpuacct; io → blkio. */
  v1: readonly string[];
  /** Set for a controller cgroup v2 does not have: why, for the error on a v2 host. */
  v1Only?: string;
  /** The limits it applies. */
  limits: readonly (keyof CgroupLimits)[];
  /** True when a limit (given, or a default such as the pids limit) needs this controller. */
  required(l: CgroupLimits): boolean;
  /** Joined for its statistics even without a limit, where the host has it. */
  stats: boolean;
  /** The writes for `l`, in the order the kernel needs them. On v2 `hierarchy` is `unified`. */
  writes(version: 1 | 2, l: CgroupLimits, devices: DeviceNumbers): LimitWrite[];
}

/** Usage of a container's cgroup. Each value is null where this kernel does not report it. */
export interface CgroupStats {
  memory: {
    /** Bytes in use now. */
    current: number | null;
    /** The most bytes in use at once: memory.peak (v2, 5.19+), memory.max_usage_in_bytes (v1). */
    peak: number | null;
    /** Processes the OOM killer killed in this cgroup: memory.events / memory.oom_control `oom_kill`. */
    oomKills: number | null;
  };
  cpu: {
    usageUsec: number | null;
    userUsec: number | null;
    systemUsec: number | null;
    /** CFS periods that had runnable work, and how many of them hit the quota. */
    periods: number | null;
    throttledPeriods: number | null;
    throttledUsec: number | null;
  };
  pids: {
    current: number | null;
    /** The most processes at once: pids.peak, where the kernel has it. */
    peak: number | null;
    /** Forks refused at the limit: pids.events `max`. */
    limitHits: number | null;
  };
}

/**
 * What a container's result reports of its cgroup (ExitResult's usage and
 * oomKilled): the part of CgroupStats read once it has ended, four files
 * rather than all of them.
 */
export interface CgroupUsage {
  peakMemoryBytes: number | null;
  oomKills: number | null;
  peakPids: number | null;
  cpuThrottledPeriods: number | null;
}

/** Reads a file of a cgroup (null when missing). */
export type StatReader = (hierarchy: Hierarchy, file: string) => string | null;
