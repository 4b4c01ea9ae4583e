/**
 * pids: the most processes and threads at once (tsbox sets
 * DEFAULT_PIDS_LIMIT unless told otherwise; -1 removes it), and the peak and
 * the forks refused at the limit. Same files on v1 and v2.
 */
import type { CgroupStats, Controller, Hierarchy, StatReader } from './controller.js';
import { parseKeyed, parseNumber } from './fs.js';

export const pids: Controller = {
  name: 'pids',
  v1: ['pids'],
  limits: ['pidsLimit'],
  stats: true,
  required: (l) => l.pidsLimit !== -1,
  writes(version, l) {
    return [
      {
        hierarchy: version === 1 ? 'pids' : 'unified',
        files: [{ file: 'pids.max', value: l.pidsLimit === -1 ? 'max' : String(l.pidsLimit) }],
        limit: 'pidsLimit',
        missingHint: 'the kernel has no pids controller (4.3+); pass pidsLimit: -1 to run without a pids limit',
      },
    ];
  },
};

/** pids.peak alone (CgroupUsage). */
export function pidsPeak(version: 1 | 2, read: StatReader): number | null {
  return parseNumber(read(version === 1 ? 'pids' : 'unified', 'pids.peak'));
}

export function pidsStats(version: 1 | 2, read: StatReader): CgroupStats['pids'] {
  const h: Hierarchy = version === 1 ? 'pids' : 'unified';
  return {
    current: parseNumber(read(h, 'pids.current')),
    peak: parseNumber(read(h, 'pids.peak')),
    limitHits: parseKeyed(read(h, 'pids.events')).get('max') ?? null,
  };
}
