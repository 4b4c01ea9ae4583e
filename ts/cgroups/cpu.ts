/**
 * cpu (and, on v1, cpuacct): relative weight and CFS bandwidth; usage and
 * throttling.
 *
 * | limit              | v1                                   | v2                        |
 * |--------------------|--------------------------------------|---------------------------|
 * | cpuShares          | cpu.shares                           | cpu.weight (converted)    |
 * | cpuQuota/cpuPeriod | cpu.cfs_period_us, cpu.cfs_quota_us  | cpu.max "QUOTA PERIOD"    |
 * | cpus               | as quota/period (1.5 → 150000/100000)| cpu.max "150000 100000"   |
 * | usage (stat)       | cpuacct.usage, .usage_user, .usage_sys (ns) | cpu.stat usage_usec ... |
 * | throttling (stat)  | cpu.stat nr_periods, nr_throttled, throttled_time (ns) | cpu.stat nr_*, throttled_usec |
 */
import type { CgroupStats, Controller, LimitWrite, StatReader } from './controller.js';
import { parseKeyed, parseNumber } from './fs.js';
import { cpuBandwidth, cpuSharesToWeight, formatCpuMax } from './limits.js';

const HINT = 'the kernel has no CPU bandwidth control for this (CONFIG_CFS_BANDWIDTH, CONFIG_FAIR_GROUP_SCHED); leave the cpu limits out';

export const cpu: Controller = {
  name: 'cpu',
  v1: ['cpu', 'cpuacct'],
  limits: ['cpuShares', 'cpuQuota', 'cpuPeriod', 'cpus'],
  stats: true,
  required: (l) => l.cpuShares !== undefined || l.cpuQuota !== undefined || l.cpuPeriod !== undefined || l.cpus !== undefined,
  writes(version, l) {
    const out: LimitWrite[] = [];
    const { quota, period } = cpuBandwidth(l);
    const limit = l.cpus !== undefined ? 'cpus' : l.cpuQuota !== undefined ? 'cpuQuota' : 'cpuPeriod';
    if (version === 1) {
      if (l.cpuShares !== undefined) out.push({ hierarchy: 'cpu', files: [{ file: 'cpu.shares', value: String(l.cpuShares) }], limit: 'cpuShares', missingHint: HINT });
      // The period first: the kernel checks the quota against it.
      if (period !== undefined) out.push({ hierarchy: 'cpu', files: [{ file: 'cpu.cfs_period_us', value: String(period) }], limit, missingHint: HINT });
      if (quota !== undefined) out.push({ hierarchy: 'cpu', files: [{ file: 'cpu.cfs_quota_us', value: String(quota) }], limit, missingHint: HINT });
      return out;
    }
    if (l.cpuShares !== undefined) {
      out.push({ hierarchy: 'unified', files: [{ file: 'cpu.weight', value: String(cpuSharesToWeight(l.cpuShares)) }], limit: 'cpuShares', missingHint: HINT });
    }
    if (quota !== undefined || period !== undefined) {
      out.push({ hierarchy: 'unified', files: [{ file: 'cpu.max', value: formatCpuMax(quota, period) }], limit, missingHint: HINT });
    }
    return out;
  },
};

const usec = (ns: number | null | undefined): number | null => (ns === null || ns === undefined ? null : Math.floor(ns / 1000));

/** USER_HZ, the unit of cpuacct.stat: 100 on every Linux architecture tsbox targets. */
const USER_HZ = 100;

/** The periods the quota throttled alone (CgroupUsage): cpu.stat, on either version. */
export function cpuThrottledPeriods(version: 1 | 2, read: StatReader): number | null {
  return parseKeyed(read(version === 1 ? 'cpu' : 'unified', 'cpu.stat')).get('nr_throttled') ?? null;
}

export function cpuStats(version: 1 | 2, read: StatReader): CgroupStats['cpu'] {
  if (version === 2) {
    const s = parseKeyed(read('unified', 'cpu.stat'));
    return {
      usageUsec: s.get('usage_usec') ?? null,
      userUsec: s.get('user_usec') ?? null,
      systemUsec: s.get('system_usec') ?? null,
      periods: s.get('nr_periods') ?? null,
      throttledPeriods: s.get('nr_throttled') ?? null,
      throttledUsec: s.get('throttled_usec') ?? null,
    };
  }
  const throttling = parseKeyed(read('cpu', 'cpu.stat'));
  let userUsec = usec(parseNumber(read('cpuacct', 'cpuacct.usage_user')));
  let systemUsec = usec(parseNumber(read('cpuacct', 'cpuacct.usage_sys')));
  if (userUsec === null || systemUsec === null) {
    // Kernels before 4.7 have only cpuacct.stat, in USER_HZ ticks.
    const ticks = parseKeyed(read('cpuacct', 'cpuacct.stat'));
    const t = (k: string) => (ticks.has(k) ? (ticks.get(k)! * 1_000_000) / USER_HZ : null);
    userUsec ??= t('user');
    systemUsec ??= t('system');
  }
  return {
    usageUsec: usec(parseNumber(read('cpuacct', 'cpuacct.usage'))),
    userUsec,
    systemUsec,
    periods: throttling.get('nr_periods') ?? null,
    throttledPeriods: throttling.get('nr_throttled') ?? null,
    throttledUsec: usec(throttling.get('throttled_time')),
  };
}
