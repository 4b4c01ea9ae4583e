/**
 * memory: the hard limit, swap (Docker's memory-swap counts memory plus swap),
 * and the reservation (soft limit); peak usage and OOM kills.
 *
 * | limit             | v1                          | v2                              |
 * |-------------------|-----------------------------|---------------------------------|
 * | memory            | memory.limit_in_bytes       | memory.max                      |
 * | memorySwap        | memory.memsw.limit_in_bytes | memory.swap.max (swap only)     |
 * | memoryReservation | memory.soft_limit_in_bytes  | memory.low                      |
 * | peak (stat)       | memory.max_usage_in_bytes   | memory.peak                     |
 * | OOM kills (stat)  | memory.oom_control oom_kill | memory.events oom_kill          |
 */
import type { CgroupStats, Controller, LimitWrite, StatReader } from './controller.js';
import { parseKeyed, parseNumber } from './fs.js';
import { swapLimit, type CgroupLimits } from './limits.js';

const NO_MEMCG = 'the kernel has no memory controller file for this; check that the memory controller is enabled (cgroup_enable=memory on some kernels)';
const NO_SWAP_ACCOUNTING_V1 =
  'the kernel does not account swap (memory.memsw.* is missing): boot it with swapaccount=1, or leave memorySwap out';
const NO_SWAP_ACCOUNTING_V2 =
  'the kernel does not account swap (memory.swap.max is missing: CONFIG_MEMCG_SWAP off or swapaccount=0): leave memorySwap out';

export const memory: Controller = {
  name: 'memory',
  v1: ['memory'],
  limits: ['memory', 'memorySwap', 'memoryReservation'],
  stats: true,
  required: (l: CgroupLimits) => l.memory !== undefined || l.memoryReservation !== undefined || (l.memorySwap !== undefined && l.memorySwap !== -1),
  writes(version, l) {
    const out: LimitWrite[] = [];
    const h = version === 1 ? 'memory' : 'unified';
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
