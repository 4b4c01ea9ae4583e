/**
 * hugetlb: how much of each huge page size the container may use.
 *
 * | limit          | v1                               | v2                                       |
 * |----------------|----------------------------------|------------------------------------------|
 * | hugepageLimits | hugetlb.<size>.limit_in_bytes    | hugetlb.<size>.max (and .rsvd.max, 5.7+) |
 *
 * `<size>` is the kernel's name of the page size (`2MB`, `1GB`); a size the
 * kernel has no pages of has no file, and is refused.
 */
import { readdirSync } from 'node:fs';

import type { Controller, LimitWrite } from './controller.js';

/** The huge page sizes of this host as the cgroup files name them: hugepages-2048kB → 2MB. */
export function hugePageSizes(dir = '/sys/kernel/mm/hugepages'): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const m = /^hugepages-(\d+)kB$/.exec(n);
    if (!m) return [];
    const kb = Number(m[1]);
    return [kb % (1024 * 1024) === 0 ? `${kb / 1024 / 1024}GB` : kb % 1024 === 0 ? `${kb / 1024}MB` : `${kb}KB`];
  });
}

const missingHint = (size: string) => {
  const sizes = hugePageSizes();
  return `the kernel has no ${size} huge pages to limit (the sizes here: ${sizes.join(', ') || 'none'}, from /sys/kernel/mm/hugepages); give one of those`;
};

export const hugetlb: Controller = {
  name: 'hugetlb',
  v1: ['hugetlb'],
  limits: ['hugepageLimits'],
  stats: false,
  required: (l) => (l.hugepageLimits?.length ?? 0) > 0,
  writes(version, l) {
    return (l.hugepageLimits ?? []).map(({ pageSize, limit }): LimitWrite => ({
      hierarchy: version === 1 ? 'hugetlb' : 'unified',
      // v2: the reservation limit too where the kernel has it, as runc does, so a
      // mmap'ed reservation cannot go past what faulting the pages in could.
      files: version === 1 ? [{ file: `hugetlb.${pageSize}.limit_in_bytes`, value: String(limit) }] : [{ file: `hugetlb.${pageSize}.max`, value: String(limit) }, { file: `hugetlb.${pageSize}.rsvd.max`, value: String(limit) }],
      limit: 'hugepageLimits',
      missingHint: missingHint(pageSize),
    }));
  },
};
