/**
 * memory: the hard limit, swap (Docker's memory-swap counts memory plus swap),
 * and the reservation (soft limit); peak usage and OOM kills.
 *
 * | limit             | v1                          | v2                              |
 * |-------------------|-----------------------------|---------------------------------|
 * | memory            | memory.limit_in_bytes       | memory.max                      |
 * | memorySwap        | memory.memsw.limit_in_bytes | memory.swap.max (swap only)     |
 * | memoryReservation | memory.soft_limit_in_bytes  | memory.low                      |
 * | memorySwappiness  | memory.swappiness           | (none: refused)                 |
 * | oomKillDisable    | memory.oom_control 1        | (none: refused)                 |
 * | kernelMemory      | memory.kmem.limit_in_bytes  | (counted in memory.max: refused)|
 * | kernelMemoryTCP   | memory.kmem.tcp.limit_in_bytes | (counted in memory.max: refused) |
 * | peak (stat)       | memory.max_usage_in_bytes   | memory.peak                     |
 * | OOM kills (stat)  | memory.oom_control oom_kill | memory.events oom_kill          |
 */
import type { CgroupStats, Controller, LimitWrite, StatReader } from './controller.js';
import { parseKeyed, parseNumber } from './fs.js';
import { swapLimit, type CgroupLimits } from './limits.js';
import { TsboxError } from '../errors.js';
import { release } from 'node:os';

/** Whether v1's memory.kmem.limit_in_bytes limits anything: Linux 6.1 made writing it a no-op. */
export function kmemLimitEnforced(kernel = release()): boolean {
  const [major = 0, minor = 0] = kernel.split('.').map((n) => Number.parseInt(n, 10));
  return major < 6 || (major === 6 && minor < 1);
}

const NO_MEMCG = 'the kernel has no memory controller file for this; check that the memory controller is enabled (cgroup_enable=memory on some kernels)';
const NO_SWAP_ACCOUNTING_V1 =
  'the kernel does not account swap (memory.memsw.* is missing): boot it with swapaccount=1, or leave memorySwap out';
const NO_SWAP_ACCOUNTING_V2 =
  'the kernel does not account swap (memory.swap.max is missing: CONFIG_MEMCG_SWAP off or swapaccount=0): leave memorySwap out';

/** The v1 memory files that cgroup v2 has no counterpart of, and why. */
const V1_ONLY = [
  { limit: 'memorySwappiness', file: 'memory.swappiness', v2: 'swappiness is the whole system\'s there (vm.swappiness)' },
  { limit: 'oomKillDisable', file: 'memory.oom_control', v2: 'the OOM killer cannot be turned off for a cgroup (memory.high throttles instead of killing)' },
  { limit: 'kernelMemory', file: 'memory.kmem.limit_in_bytes', v2: 'kernel memory is counted in memory.max with the rest' },
  { limit: 'kernelMemoryTCP', file: 'memory.kmem.tcp.limit_in_bytes', v2: 'TCP buffers are counted in memory.max with the rest' },
] as const;

export const memory: Controller = {
  name: 'memory',
  v1: ['memory'],
  limits: ['memory', 'memorySwap', 'memoryReservation', ...V1_ONLY.map((x) => x.limit)],
  stats: true,
  required: (l: CgroupLimits) =>
    l.memory !== undefined || l.memoryReservation !== undefined || (l.memorySwap !== undefined && l.memorySwap !== -1) || V1_ONLY.some((x) => l[x.limit] !== undefined),
  writes(version, l) {
    const out: LimitWrite[] = [];
    const h = version === 1 ? 'memory' : 'unified';
    if (version === 2) {
      const given = V1_ONLY.find((x) => l[x.limit] !== undefined);
      if (given) throw new TsboxError({ step: 'config', errno: 0, path: `limits.${given.limit}`, detail: `cgroup v2 has no ${given.file}: ${given.v2}`, hint: `leave ${given.limit} out on this host` });
    } else {
      if (l.kernelMemory !== undefined && !kmemLimitEnforced()) {
        throw new TsboxError({ step: 'config', errno: 0, path: 'limits.kernelMemory', detail: `this kernel (${release()}) takes memory.kmem.limit_in_bytes and ignores it: since 6.1 kernel memory is limited only with the rest, by memory`, hint: 'leave kernelMemory out (memory limits it)' });
      }
      // The kernel limits take their values before any process is charged (kmem before the first allocation).
      for (const x of V1_ONLY) {
        const v = l[x.limit];
        if (v === undefined || v === false) continue;
        out.push({ hierarchy: 'memory', files: [{ file: x.file, value: v === true ? '1' : String(v) }], limit: x.limit, missingHint: NO_MEMCG });
      }
    }
    const swap = swapLimit(l);
    if (l.memory !== undefined) {
      out.push({ hierarchy: h, files: [{ file: version === 1 ? 'memory.limit_in_bytes' : 'memory.max', value: String(l.memory) }], limit: 'memory', missingHint: NO_MEMCG });
    }
    if (swap !== undefined) {
      // v1 takes memory+swap (after memory: the kernel keeps memsw >= memory); v2 takes the swap alone.
      const value =
        swap.total === 'max' ? (version === 1 ? '-1' : 'max') : String(version === 1 ? swap.total : swap.total - (l.memory ?? 0));
      out.push({
        hierarchy: h,
        files: [{ file: version === 1 ? 'memory.memsw.limit_in_bytes' : 'memory.swap.max', value }],
        limit: 'memorySwap',
        // Docker's default swap, and "unlimited", are no limit to lose.
        optional: !swap.explicit || swap.total === 'max',
        missingHint: version === 1 ? NO_SWAP_ACCOUNTING_V1 : NO_SWAP_ACCOUNTING_V2,
      });
    }
    if (l.memoryReservation !== undefined) {
      out.push({
        hierarchy: h,
        files: [{ file: version === 1 ? 'memory.soft_limit_in_bytes' : 'memory.low', value: String(l.memoryReservation) }],
        limit: 'memoryReservation',
        missingHint: NO_MEMCG,
      });
    }
    return out;
  },
};

/** The peak and the OOM kills alone (CgroupUsage). */
export function memoryUsage(version: 1 | 2, read: StatReader): Pick<CgroupStats['memory'], 'peak' | 'oomKills'> {
  const h = version === 1 ? 'memory' : 'unified';
  return {
    peak: parseNumber(read(h, version === 1 ? 'memory.max_usage_in_bytes' : 'memory.peak')),
    oomKills: parseKeyed(read(h, version === 1 ? 'memory.oom_control' : 'memory.events')).get('oom_kill') ?? null,
  };
}

export function memoryStats(version: 1 | 2, read: StatReader): CgroupStats['memory'] {
  if (version === 1) {
    return {
      current: parseNumber(read('memory', 'memory.usage_in_bytes')),
      peak: parseNumber(read('memory', 'memory.max_usage_in_bytes')),
      oomKills: parseKeyed(read('memory', 'memory.oom_control')).get('oom_kill') ?? null,
    };
  }
  return {
    current: parseNumber(read('unified', 'memory.current')),
    peak: parseNumber(read('unified', 'memory.peak')),
    oomKills: parseKeyed(read('unified', 'memory.events')).get('oom_kill') ?? null,
  };
}
